//! What a notification says (docs/api.md, "Push payload"): built from a [`Notice`] for one subscription, kept small
//! enough that the encrypted body stays under 3 kB.

use serde_json::{Value, json};

use super::Notice;
use crate::store::{RequestKind, TurnStatus};

/// The largest plaintext: 3 kB encrypted, less the encryption's overhead.
pub const MAX_PLAINTEXT: usize = 3072 - super::ece::OVERHEAD;
/// How much of a reply or error a turn's notification shows.
const EXCERPT: usize = 120;
/// How much of a command or path a request's notification shows at first.
const DETAIL: usize = 400;

/// One message to queue: the plaintext JSON and its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The JSON the service worker gets.
    pub payload: Value,
    /// The `Urgency` header.
    pub urgency: &'static str,
    /// The `TTL` header (seconds).
    pub ttl: i64,
    /// The `Topic` header, if any.
    pub topic: Option<String>,
}

impl Message {
    /// The payload as sent, shortened until it fits [`MAX_PLAINTEXT`].
    pub fn text(&self) -> String {
        let mut payload = self.payload.clone();
        let mut text = payload.to_string();
        while text.len() > MAX_PLAINTEXT {
            // Shorten the body first, then the title; the rest (ids, url) is small and needed.
            let field = if payload["body"]
                .as_str()
                .is_some_and(|b| b.chars().count() > 16)
            {
                "body"
            } else {
                "title"
            };
            let now = payload[field].as_str().unwrap_or("").to_string();
            let keep = now
                .chars()
                .count()
                .saturating_sub((text.len() - MAX_PLAINTEXT).max(16));
            if keep == 0 && field == "title" {
                payload["title"] = json!("remote-agent");
                payload["body"] = json!("");
                return payload.to_string();
            }
            payload[field] = json!(shorten(&now, keep));
            text = payload.to_string();
        }
        text
    }
}

/// `text`'s first `max` characters, with "…" when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// The last component of a project path.
fn basename(project: &str) -> &str {
    let trimmed = project.trim_end_matches('/');
    trimmed
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(trimmed)
}

/// A `Topic` made of an id: at most 32 base64url characters, or none.
fn topic(id: &str) -> Option<String> {
    let t: String = id.chars().filter(|c| *c != '-').collect();
    (!t.is_empty() && t.len() <= 32 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(t)
}

fn ended(status: TurnStatus) -> &'static str {
    match status {
        TurnStatus::Succeeded => "done",
        TurnStatus::Cancelled => "cancelled",
        TurnStatus::TimedOut => "timed out",
        _ => "failed",
    }
}

/// The test message.
pub fn test() -> Message {
    Message {
        payload: json!({"kind": "test", "title": "remote-agent", "body": "Notifications work.", "url": "/", "tag": "test"}),
        urgency: "normal",
        ttl: 600,
        topic: None,
    }
}

/// The message for `notice` to a subscription that hides content (`hide`) or not.
pub fn build(notice: &Notice, hide: bool) -> Message {
    match notice {
        Notice::TurnEnded {
            conversation_id,
            title,
            project,
            turn_id,
            status,
            text,
        } => {
            let project = basename(project);
            let (title, body) = if hide {
                (format!("A turn ended in {project}"), String::new())
            } else {
                let name = title
                    .as_deref()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or("Claude");
                let excerpt = shorten(text.as_deref().unwrap_or(""), EXCERPT);
                (
                    format!("{} — {}", shorten(name, 100), ended(*status)),
                    format!("{project}: {excerpt}").trim_end().to_string(),
                )
            };
            Message {
                payload: json!({
                    "kind": "turn", "title": title, "body": body,
                    "url": format!("/?c={conversation_id}"), "tag": format!("turn-{conversation_id}"),
                    "conversation_id": conversation_id, "turn_id": turn_id, "status": status.as_str(),
                }),
                urgency: "normal",
                ttl: 86400,
                topic: topic(conversation_id),
            }
        }
        Notice::Waiting {
            project, request, ..
        } => {
            let project = basename(project);
            let (title, body) = if hide {
                (format!("Claude needs you in {project}"), String::new())
            } else {
                (
                    format!("Claude needs you in {project}"),
                    shorten(&asks(request), DETAIL),
                )
            };
            let mut payload = json!({
                "kind": "request", "title": title, "body": body,
                "url": format!("/?c={}&r={}", request.conversation_id, request.id),
                "tag": format!("request-{}", request.id),
                "conversation_id": request.conversation_id, "request_id": request.id,
                "tool_name": request.tool_name,
            });
            if matches!(
                request.tool_name.as_str(),
                "Bash" | "Edit" | "MultiEdit" | "Write"
            ) {
                payload["actions"] = json!(["allow", "deny"]);
            }
            Message {
                payload,
                urgency: "high",
                ttl: 3600,
                topic: topic(&request.id),
            }
        }
        // Each subscription gets a pairing link of its own (`address`); without one, the new address itself.
        Notice::AddressChanged { url } => address(url, None),
    }
}

/// The new public address, with a one-time pairing link for one subscription when there is a token.
pub(super) fn address(url: &str, pairing_token: Option<&str>) -> Message {
    let url = url.trim_end_matches('/');
    Message {
        payload: json!({
            "kind": "address", "title": "remote-agent has a new address", "body": "Tap to open it and sign in",
            "url": match pairing_token {
                Some(token) => format!("{url}/pair/{token}"),
                None => format!("{url}/"),
            },
            "tag": "address",
        }),
        urgency: "high",
        ttl: 600,
        topic: None,
    }
}

/// What a request asks, in a line: the command, the file, the first question, or a plan.
fn asks(request: &crate::store::PendingRequest) -> String {
    let input = &request.input;
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    match request.kind {
        RequestKind::Plan => "a plan to approve".into(),
        RequestKind::Question => input["questions"][0]["question"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "a question".into()),
        RequestKind::Tool => match request.tool_name.as_str() {
            "Bash" => s(&input["command"]),
            "Edit" | "MultiEdit" | "Write" | "NotebookEdit" => {
                let path = s(&input["file_path"]);
                if path.is_empty() {
                    s(&input["notebook_path"])
                } else {
                    path
                }
            }
            name => request
                .title
                .clone()
                .unwrap_or_else(|| format!("run {name}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tool: &str, input: Value) -> crate::store::PendingRequest {
        crate::store::PendingRequest {
            id: "r1".into(),
            conversation_id: "c1".into(),
            turn_id: "t1".into(),
            cli_request_id: "x".into(),
            kind: RequestKind::of_tool(tool),
            tool_name: tool.into(),
            input,
            suggestions: json!([]),
            blocked_path: None,
            decision_reason: None,
            title: None,
            display_name: None,
            description: None,
            tool_use_id: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            state: crate::store::RequestState::Pending,
            diff: None,
            diff_note: None,
        }
    }

    fn turn(text: &str) -> Notice {
        Notice::TurnEnded {
            conversation_id: "c1".into(),
            title: Some("Fix the bug".into()),
            project: "/home/me/src/shop/".into(),
            turn_id: "t1".into(),
            status: TurnStatus::Succeeded,
            text: Some(text.into()),
        }
    }

    #[test]
    fn turn_and_hidden_turn() {
        let m = build(&turn(&"word ".repeat(100)), false);
        assert_eq!(m.payload["title"], "Fix the bug — done");
        let body = m.payload["body"].as_str().unwrap();
        assert!(
            body.starts_with("shop: word word")
                && body.ends_with('…')
                && body.chars().count() < 130
        );
        assert_eq!(m.payload["url"], "/?c=c1");
        assert_eq!(m.payload["tag"], "turn-c1");
        assert_eq!(m.payload["status"], "succeeded");
        assert_eq!((m.urgency, m.ttl), ("normal", 86400));
        let h = build(&turn("secret"), true);
        assert_eq!(h.payload["title"], "A turn ended in shop");
        assert_eq!(h.payload["body"], "");
        assert!(!h.text().contains("secret") && !h.text().contains("Fix the bug"));
    }

    #[test]
    fn requests_say_what_is_asked_and_offer_actions_for_edits() {
        let waiting = |tool: &str, input: Value| Notice::Waiting {
            title: None,
            project: "/p/shop".into(),
            request: request(tool, input),
        };
        let m = build(&waiting("Bash", json!({"command": "rm -rf build"})), false);
        assert_eq!(m.payload["title"], "Claude needs you in shop");
        assert_eq!(m.payload["body"], "rm -rf build");
        assert_eq!(m.payload["url"], "/?c=c1&r=r1");
        assert_eq!(m.payload["actions"], json!(["allow", "deny"]));
        assert_eq!((m.urgency, m.ttl), ("high", 3600));
        let q = build(
            &waiting(
                "AskUserQuestion",
                json!({"questions": [{"question": "Which DB?"}]}),
            ),
            false,
        );
        assert_eq!(q.payload["body"], "Which DB?");
        assert!(q.payload.get("actions").is_none());
        let p = build(&waiting("ExitPlanMode", json!({"plan": "x"})), false);
        assert_eq!(p.payload["body"], "a plan to approve");
        let h = build(&waiting("Bash", json!({"command": "cat secret"})), true);
        assert_eq!(h.payload["body"], "");
        assert!(!h.text().contains("secret"));
    }

    #[test]
    fn long_payloads_are_cut_to_fit() {
        let mut m = build(&turn("x"), false);
        m.payload["body"] = json!("é".repeat(5000));
        m.payload["title"] = json!("t".repeat(5000));
        let text = m.text();
        assert!(text.len() <= MAX_PLAINTEXT, "{}", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["url"], "/?c=c1");
        let address = address("https://a.trycloudflare.com", Some("tok"));
        assert_eq!(
            address.payload["url"],
            "https://a.trycloudflare.com/pair/tok"
        );
        assert_eq!(test().payload["body"], "Notifications work.");
    }
}
