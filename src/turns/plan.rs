//! The process a turn needs: where and how the CLI runs for its conversation, checked against the settings as
//! they are when the turn leaves the queue.

use std::sync::Arc;

use super::{Inner, Submit};
use crate::claude;
use crate::config::Settings;
use crate::sessions::Plan;

/// The process a turn needs, read once the conversation is free (so it resumes the session the previous turn
/// left).
///
/// The conversation's project must still be an allowed one (the list can change, and a conversation can come from an
/// import): Claude never runs anywhere else.
pub(super) fn plan_for(inner: &Inner, s: &Submit) -> Result<Plan, String> {
    let conv = inner
        .store
        .conversation_settings(&s.conversation_id)
        .map_err(|e| format!("storage: {e}"))?
        .ok_or("the conversation is gone")?;
    let settings: Arc<Settings> = inner.settings.get();
    // Checked again at every turn (crate::projects): the list and the roots can change, a conversation can come
    // from an import, and its directory can be swapped for a symlink out of its root.
    let cwd = settings
        .allowed_project(std::path::Path::new(&conv.project))
        .map_err(|refusal| {
            format!(
                "the conversation's project {} may not be used: {refusal}; start a new conversation in an \
                 allowed project",
                conv.project
            )
        })?;
    // A stored mode is checked again: the settings may have lowered the ceiling since it was chosen.
    if let Some(refused) = conv
        .permission_mode
        .as_deref()
        .and_then(|m| settings.refuse_mode(m))
    {
        return Err(format!(
            "{refused}; change the conversation's permission_mode"
        ));
    }
    let mut options: Vec<(&'static str, String)> = Vec::new();
    for rule in &settings.allowed_tools {
        options.push(("allowedTools", rule.clone()));
    }
    if let Some(budget) = conv.max_budget_usd {
        options.push(("max-budget-usd", budget.to_string()));
    }
    Ok(Plan {
        spec: claude::Spec {
            bin: settings.claude_bin.clone(),
            cwd,
            resume: None,
            options,
            marker: claude::Marker::new(&s.conversation_id, &settings.data_dir),
        },
        resume: match s.fresh {
            true => None,
            false => s.resume.clone().or(conv.session_id),
        },
        fresh: s.fresh,
        mode: conv
            .permission_mode
            .clone()
            .unwrap_or_else(|| settings.default_permission_mode.clone()),
        model: conv.model.clone(),
    })
}
