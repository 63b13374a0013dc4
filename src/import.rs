//! `remote-agent import`: the prototype's conversations (its sessions.json) brought into the store, attached to a
//! project a server runs them in.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Flags, Settings};
use crate::server;

/// Reads the prototype's sessions.json: `{"<conv id>": {"session_id", "created_at", "last_message_at",
/// "turn_count", "last_message", "total_cost_usd"}}`. Any fault names the conversation and field, and nothing is imported.
pub fn parse_sessions(text: &str) -> anyhow::Result<Vec<crate::store::Imported>> {
    use serde_json::Value;
    let all: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("not a sessions.json (a JSON object of conversations): {e}")
    })?;
    let mut out = Vec::new();
    for (id, c) in all {
        let bad = |field: &str, why: &str| {
            anyhow::anyhow!("conversation {id:?}: {field} {why}; nothing imported")
        };
        anyhow::ensure!(
            server::valid_conversation_id(&id),
            "conversation id {id:?} is not 1 to 64 of A-Z a-z 0-9 _ -; nothing imported"
        );
        let c = c
            .as_object()
            .ok_or_else(|| bad("the entry", "is not an object"))?;
        let text = |field: &str| -> anyhow::Result<Option<String>> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(field, "is not a string")),
            }
        };
        let session_id = text("session_id")?;
        if let Some(s) = &session_id {
            anyhow::ensure!(server::is_uuid(s), bad("session_id", "is not a UUID"));
        }
        for field in ["created_at", "last_message_at"] {
            if text(field)?
                .is_some_and(|t| t.len() > 40 || !t.starts_with(|ch: char| ch.is_ascii_digit()))
            {
                return Err(bad(field, "is not a time"));
            }
        }
        let turn_count = match c.get("turn_count") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad("turn_count", "is not a count"))?,
        };
        let total_cost_usd = match c.get("total_cost_usd") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| bad("total_cost_usd", "is not an amount"))?,
        };
        out.push(crate::store::Imported {
            total_cost_usd,
            id: id.clone(),
            session_id,
            created_at: text("created_at")?,
            last_message_at: text("last_message_at")?,
            turn_count,
            last_message: text("last_message")?,
        });
    }
    Ok(out)
}

/// `remote-agent import sessions.json`.
pub fn run(file: &Path, flags: &Flags) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let conversations = parse_sessions(&text)?;
    let settings = Settings::load(flags)?;
    let project = import_project(flags, &settings)?;
    let store = crate::store::open_private(&settings.data_dir)?;
    let project = project.display().to_string();
    let done = store.import(&conversations, &project)?;
    println!(
        "imported {} of {} conversation(s) into {}, to run in {project}",
        done.len(),
        conversations.len(),
        settings.data_dir.display()
    );
    for c in conversations.iter().filter(|c| !done.contains(&c.id)) {
        println!("  skipped {:?}: a conversation with that id exists", c.id);
    }
    Ok(())
}

/// The project imported conversations run in: the configured one (`--project`, `CLAUDE_PROJECT_PATH`, the first
/// of `[projects] allow`), else that of a running `up`, else the current directory with a warning. A server runs a
/// conversation only in a project it allows, so a project the running `up` does not allow is warned of too.
fn import_project(flags: &Flags, settings: &Settings) -> anyhow::Result<PathBuf> {
    let configured =
        flags.with_env()?.project.is_some() || file_allows_projects(&settings.config_path);
    let running = crate::config::state_dir(flags)
        .ok()
        .and_then(|d| crate::state::read_live(&d));
    let served: Option<Vec<PathBuf>> = running.map(|state| state.projects);
    let project = match served.as_deref() {
        _ if configured => settings.default_project().to_path_buf(),
        Some([first, ..]) => first.clone(),
        _ => {
            println!(
                "warning: no project is configured (--project, CLAUDE_PROJECT_PATH or [projects] allow), so these \
                 conversations are attached to the current directory {}; a server runs them only if it allows \
                 that directory",
                settings.default_project().display()
            );
            settings.default_project().to_path_buf()
        }
    };
    if let Some(served) = served.filter(|s| !s.is_empty() && !s.contains(&project)) {
        println!(
            "warning: the running `remote-agent up` does not allow {} (it allows {}): these conversations will \
             not run there until it does ([projects] allow in the config file)",
            project.display(),
            served
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(project)
}

/// Whether the config file lists allowed projects (the settings already checked that it parses).
fn file_allows_projects(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| Some(!t.get("projects")?.get("allow")?.as_array()?.is_empty()))
        .unwrap_or(false)
}
