//! The real Claude Code CLI behind `remote-agent serve`, talking to a mock Messages API on loopback
//! (claude-cli.md §7). Skipped with a visible message when the CLI is absent; required under `CI=true`.

mod common;

use common::Server;
use common::mock_api::MockApi;
use serde_json::{Value, json};

fn server_with_real_cli(test: &str, mock: &MockApi) -> Option<Server> {
    let claude = common::real_claude(test)?;
    Some(
        Server::builder()
            .claude(claude)
            .env("ANTHROPIC_BASE_URL", mock.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .arg("--turn-timeout")
            .arg("60")
            .start(),
    )
}

/// The user texts the mock saw in a request's history, in order.
fn user_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| match &m["content"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str().map(String::from))
                .collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn a_message_gets_the_models_reply_and_the_next_one_resumes_the_session() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::resume", &mock) else {
        return;
    };
    let first = server.chat(&json!({"message": "hello real cli", "conv_id": "real"}));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(first["success"], true, "{first}\n{}", server.log());
    assert_eq!(first["response"], "mock reply: hello real cli");
    assert!(first["turns"].as_i64().unwrap() >= 1);
    let session = first["session_id"].as_str().unwrap().to_string();

    let second = server
        .chat(&json!({"message": "and again", "conv_id": "real"}))
        .json();
    assert_eq!(second["success"], true, "{second}");
    assert_eq!(second["response"], "mock reply: and again");
    assert_eq!(second["session_id"], session.as_str());
    // The model saw the first exchange: the CLI resumed the session.
    let last = mock.requests().pop().unwrap();
    let texts = user_texts(&last);
    assert!(
        texts.iter().any(|t| t.contains("hello real cli")),
        "history lacks the first message: {texts:?}"
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["real"]["turn_count"], 2);
}

#[test]
fn a_message_that_looks_like_a_flag_reaches_the_model_as_text() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::flag", &mock) else {
        return;
    };
    let r = server.chat(&json!({"message": "--version"})).json();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["response"], "mock reply: --version");
}

#[test]
fn a_tool_call_runs_in_the_project_dir() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::tool", &mock) else {
        return;
    };
    // The default allow-list lets git run through Bash without asking.
    let r = server
        .chat(&json!({"message": "RUN_BASH: git --version > git-version.txt"}))
        .json();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["response"], "Tool ran fine.");
    let written = server.path("project").join("git-version.txt");
    assert!(
        common::file_contains(&written, "git version"),
        "the tool did not run in the project dir"
    );
}
