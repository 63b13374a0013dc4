//! What we write to a live CLI's stdin (docs/architecture.md, "A message, end to end"): a message as a `user`
//! line, our control requests (interrupt, mode, model), and our answers to its permission requests. Each is one
//! line of JSON; a message's text only ever travels inside one, never as an argument.

use serde_json::{Value, json};

/// A message from the person: starts a turn (or queues behind the running one).
pub fn user_line(text: &str) -> String {
    user_line_with(text, &[])
}

/// What a message brought besides its text.
#[derive(Debug, Clone, Copy)]
pub enum Attached<'a> {
    /// An image (JPEG, PNG, GIF or WebP, checked): an `image` block with the bytes in base64.
    Image {
        /// image/jpeg, image/png, image/gif or image/webp.
        media_type: &'a str,
        /// The image's bytes.
        data: &'a [u8],
    },
    /// A file saved in the project: named in the text by its path, relative to the project.
    File {
        /// Relative to the project, e.g. `.remote-agent/uploads/report.pdf`.
        path: &'a str,
    },
}

/// A message with attachments: its images as `image` blocks, then its text as a `text` block, followed by the
/// paths of its files ("Attached files: …"). Without attachments the content is the text alone.
pub fn user_line_with(text: &str, attached: &[Attached<'_>]) -> String {
    use base64::Engine;
    let files: Vec<&str> = attached
        .iter()
        .filter_map(|a| match a {
            Attached::File { path } => Some(*path),
            Attached::Image { .. } => None,
        })
        .collect();
    let content = if attached.is_empty() {
        json!(text)
    } else {
        let mut blocks: Vec<Value> = attached
            .iter()
            .filter_map(|a| match a {
                Attached::Image { media_type, data } => Some(json!({
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": media_type,
                        "data": base64::engine::general_purpose::STANDARD.encode(data),
                    },
                })),
                Attached::File { .. } => None,
            })
            .collect();
        let text = if files.is_empty() {
            text.to_string()
        } else {
            format!("{text}\n\nAttached files: {}", files.join(", "))
        };
        blocks.push(json!({ "type": "text", "text": text }));
        Value::Array(blocks)
    };
    line(json!({
        "type": "user",
        "message": { "role": "user", "content": content },
        "parent_tool_use_id": null,
        "session_id": "",
    }))
}

/// A control request of ours, with a fresh id; returns the id and the line.
pub fn request_line(request: Value) -> (String, String) {
    let id = format!("ra-{}", uuid::Uuid::new_v4());
    let l = line(json!({ "type": "control_request", "request_id": id, "request": request }));
    (id, l)
}

/// Stops the running turn; the process stays and takes the next message.
pub fn interrupt() -> Value {
    json!({ "subtype": "interrupt" })
}

/// Changes the permission mode from the next tool call on.
pub fn set_permission_mode(mode: &str) -> Value {
    json!({ "subtype": "set_permission_mode", "mode": mode })
}

/// Changes the model from the next turn on.
pub fn set_model(model: Option<&str>) -> Value {
    json!({ "subtype": "set_model", "model": model })
}

/// Our answer to a request of the CLI's (`can_use_tool`): `response` is what the person decided
/// (`{"behavior":"allow","updatedInput":…}` or `{"behavior":"deny","message":…}`).
pub fn response_line(request_id: &str, response: &Value) -> String {
    line(json!({
        "type": "control_response",
        "response": { "subtype": "success", "request_id": request_id, "response": response },
    }))
}

/// An error answer to a request of the CLI's that we do not handle: the CLI goes on without it.
pub fn error_line(request_id: &str, error: &str) -> String {
    line(json!({
        "type": "control_response",
        "response": { "subtype": "error", "request_id": request_id, "error": error },
    }))
}

fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_json_objects() {
        let text = "two\nlines and \"quotes\" --flag";
        let l = user_line(text);
        assert_eq!(l.matches('\n').count(), 1, "{l}");
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["message"]["content"], text);
        let l = user_line_with(
            "look",
            &[
                Attached::File {
                    path: ".remote-agent/uploads/r.pdf",
                },
                Attached::Image {
                    media_type: "image/png",
                    data: b"png",
                },
            ],
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            v["message"]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "cG5n"}},
                {"type": "text", "text": "look\n\nAttached files: .remote-agent/uploads/r.pdf"},
            ])
        );
        let (id, l) = request_line(interrupt());
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(
            (v["request_id"].as_str(), &v["request"]["subtype"]),
            (Some(id.as_str()), &json!("interrupt"))
        );
        let v: Value = serde_json::from_str(&response_line(
            "r",
            &json!({"behavior":"deny","message":"no"}),
        ))
        .unwrap();
        assert_eq!(v["response"]["request_id"], "r");
        assert_eq!(v["response"]["response"]["behavior"], "deny");
    }
}
