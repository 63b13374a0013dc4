//! A message to a conversation, with what it brings from the phone: `POST /api/conversations/{id}/messages` as
//! JSON (attachments in base64) or `multipart/form-data` (the app's way, for large files), checked in full before
//! anything is stored or run; files saved in the project under `.remote-agent/uploads/`; and
//! `GET /api/attachments/{id}`, which serves an attachment back (the transcript's thumbnails).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::respond::{
    Body, MAX_BODY, error, full, internal, is_uuid, json, non_empty_message, parse_json, read_body,
    submit_error, valid_conversation_id,
};
use super::upload::{self, Checked, MAX_UPLOAD_BODY, Sent};
use crate::store::{Attachment, Conversation};
use crate::turns::Submit;

/// Where files go, relative to the project.
pub const UPLOADS: &str = ".remote-agent/uploads";

/// `POST /api/conversations/{id}/messages`'s JSON body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMessage {
    message: Option<String>,
    client_id: Option<String>,
    /// Interrupt the turn running now, so this one runs next ("interrupt and send").
    #[serde(default)]
    interrupt: bool,
    #[serde(default)]
    attachments: Vec<JsonAttachment>,
}

/// An attachment in a JSON body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonAttachment {
    name: String,
    #[serde(default)]
    media_type: String,
    /// The bytes in base64.
    data: String,
}

/// Reads the body (JSON, or multipart/form-data) under [`MAX_UPLOAD_BODY`], then [`post_message`].
pub(super) async fn post(
    app: &App,
    conversation: &Conversation,
    req: Request<Incoming>,
) -> Response<Body> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(upload::boundary);
    let bytes = match read_body(req, MAX_UPLOAD_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let parsed = match boundary {
        Some(boundary) => from_form(&bytes, &boundary),
        None => parse_json::<NewMessage>(&bytes).and_then(from_json),
    };
    match parsed {
        Ok((body, sent)) => post_message(app, conversation, body, sent).await,
        Err(resp) => resp,
    }
}

fn from_json(mut body: NewMessage) -> Result<(NewMessage, Vec<Sent>), Response<Body>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let sent = std::mem::take(&mut body.attachments)
        .into_iter()
        .map(|a| {
            let data = engine.decode(a.data.trim()).map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("attachment {:?}: data is not base64: {e}", a.name),
                )
            })?;
            Ok(Sent {
                name: a.name,
                media_type: a.media_type,
                data,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((body, sent))
}

/// A form's fields are the JSON body's (`message`, `client_id`, `interrupt`); its file parts, the attachments.
fn from_form(bytes: &[u8], boundary: &str) -> Result<(NewMessage, Vec<Sent>), Response<Body>> {
    let form =
        upload::parse_form(bytes, boundary).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let mut body = NewMessage {
        message: None,
        client_id: None,
        interrupt: false,
        attachments: Vec::new(),
    };
    for (name, value) in form.fields {
        match name.as_str() {
            "message" => body.message = Some(value),
            "client_id" => body.client_id = Some(value),
            "interrupt" => {
                body.interrupt = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    _ => {
                        return Err(error(
                            StatusCode::BAD_REQUEST,
                            "interrupt must be true or false",
                        ));
                    }
                }
            }
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown field {other:?} (message, client_id, interrupt and files are)"
                    ),
                ));
            }
        }
    }
    Ok((body, form.files))
}

/// Queues the message as a turn of an existing conversation → 202 with the turn's id. Its attachments are
/// checked first, then its files saved in the project; a refusal stores and runs nothing.
pub(super) async fn post_message(
    app: &App,
    conversation: &Conversation,
    body: NewMessage,
    sent: Vec<Sent>,
) -> Response<Body> {
    let message = match non_empty_message(body.message) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    // The text keeps the other routes' cap; only attachments make a body larger.
    if message.len() > MAX_BODY {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("message over {MAX_BODY} bytes"),
        );
    }
    if body
        .client_id
        .as_deref()
        .is_some_and(|c| !valid_conversation_id(c))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "client_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        );
    }
    let checked = match upload::check(sent) {
        Ok(c) => c,
        Err((status, message)) => return error(status, message),
    };
    // A retried send gets its turn back without saving its files again.
    if !checked.is_empty() {
        if let Some(client_id) = body.client_id.as_deref() {
            match app.store.turn_by_client_id(&conversation.id, client_id) {
                Ok(Some(turn)) => {
                    return json(
                        StatusCode::ACCEPTED,
                        &json!({"turn_id": turn.id, "status": turn.status}),
                    );
                }
                Ok(None) => {}
                Err(e) => return internal(e),
            }
        }
        if let Err(e) = app.turns.ready() {
            return submit_error(e);
        }
    }
    let project = Path::new(&conversation.project);
    let (attachments, saved) = match save(project, checked) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    match app.turns.submit(Submit {
        conversation_id: conversation.id.clone(),
        prompt: message,
        resume: None,
        fresh: false,
        client_id: body.client_id,
        attachments,
    }) {
        Ok((turn, waiter)) => {
            // Only a new turn interrupts: a retried send (no waiter) has done so already.
            if body.interrupt && waiter.is_some() {
                app.turns.interrupt_running(&conversation.id);
            }
            if waiter.is_none() {
                remove(&saved);
            }
            json(
                StatusCode::ACCEPTED,
                &json!({"turn_id": turn.id, "status": turn.status}),
            )
        }
        Err(e) => {
            remove(&saved);
            submit_error(e)
        }
    }
}

/// Saves the files in the project's uploads dir and makes the attachments to store; returns them with the paths
/// written (to remove if the message is not taken after all).
fn save(
    project: &Path,
    checked: Vec<Checked>,
) -> Result<(Vec<Attachment>, Vec<PathBuf>), Response<Body>> {
    let mut saved: Vec<PathBuf> = Vec::new();
    let mut attachments = Vec::new();
    let dir = if checked.iter().any(|c| !c.image) {
        Some(uploads_dir(project)?)
    } else {
        None
    };
    for c in checked {
        let mut a = Attachment {
            id: uuid::Uuid::new_v4().to_string(),
            name: c.name,
            media_type: c.media_type,
            path: None,
            data: c.data,
        };
        if let (false, Some(dir)) = (c.image, dir.as_deref()) {
            match write_new(dir, &a.name, &a.data) {
                Ok((name, path)) => {
                    a.path = Some(format!("{UPLOADS}/{name}"));
                    a.name = name;
                    saved.push(path);
                }
                Err(e) => {
                    remove(&saved);
                    return Err(internal(format!(
                        "saving an upload in {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        attachments.push(a);
    }
    Ok((attachments, saved))
}

fn remove(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// `PROJECT/.remote-agent/uploads`, made if missing (with a `.gitignore` of `*`, so git leaves it alone); a
/// symlink at either level is refused, so that nothing is written outside the project.
fn uploads_dir(project: &Path) -> Result<PathBuf, Response<Body>> {
    let mut dir = project.to_path_buf();
    for part in UPLOADS.split('/') {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!(
                        "{} in the project is a symlink; uploads are only saved inside the project",
                        dir.strip_prefix(project).unwrap_or(&dir).display()
                    ),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!("{} in the project is not a directory", dir.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Err(e) = std::fs::create_dir(&dir)
                    && e.kind() != std::io::ErrorKind::AlreadyExists
                {
                    return Err(internal(format!("making {}: {e}", dir.display())));
                }
            }
            Err(e) => return Err(internal(format!("{}: {e}", dir.display()))),
        }
    }
    // Written once; a .gitignore the user changed is theirs.
    let _ = write_new_exact(&dir.join(".gitignore"), b"*\n");
    Ok(dir)
}

/// Writes `data` to a new file `name` in `dir`, or `stem-2.ext`, `stem-3.ext`, … when the name is taken; never
/// through a symlink, never over a file. Returns the name used and the path.
fn write_new(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<(String, PathBuf)> {
    let (stem, ext) = upload::split_ext(name);
    for n in 1..1000 {
        let candidate = if n == 1 {
            name.to_string()
        } else {
            format!("{stem}-{n}{ext}")
        };
        let path = dir.join(&candidate);
        match write_new_exact(&path, data) {
            Ok(()) => return Ok((candidate, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name"))
}

fn write_new_exact(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .mode(0o644)
        .open(path)?;
    file.write_all(data)?;
    Ok(())
}

/// `GET /api/attachments/{id}`: the bytes, with their type; an image inline (thumbnails), anything else as a
/// download. Attachments never change, so the browser may keep them (privately).
pub(super) fn get_attachment(app: &App, id: &str) -> Response<Body> {
    let missing = || error(StatusCode::NOT_FOUND, "no such attachment");
    if !is_uuid(id) {
        return missing();
    }
    let a = match app.store.attachment(id) {
        Ok(Some(a)) => a,
        Ok(None) => return missing(),
        Err(e) => return internal(e),
    };
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if a.is_image() { "inline" } else { "attachment" },
        a.name
            .chars()
            .map(
                |c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            )
            .collect::<String>(),
        percent_encode(&a.name)
    );
    let mut resp = Response::new(full(a.data));
    let h = resp.headers_mut();
    if let Ok(t) = HeaderValue::from_str(&a.media_type) {
        h.insert(header::CONTENT_TYPE, t);
    }
    if let Ok(d) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// RFC 8187's encoding of a header parameter's value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::conversations::find_conversation;
    use http_body_util::BodyExt;
    use serde_json::Value;

    async fn answer(resp: Response<Body>) -> (u16, Value) {
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The test app with `claude_bin` set, so that whether a turn may start does not depend on what this machine
    /// has installed.
    fn with_claude(app: &App, bin: &str) {
        let mut settings = (*app.settings.get()).clone();
        settings.claude_bin = bin.into();
        app.settings.replace(settings);
    }

    #[tokio::test]
    async fn a_message_is_checked_then_queued_once_per_client_id() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        app.store.ensure_conversation("c1", "/p", None).unwrap();
        let c1 = find_conversation(&app, "c1").unwrap();
        let message = |message: &str, client_id: &str| NewMessage {
            message: Some(message.into()),
            client_id: Some(client_id.into()),
            interrupt: false,
            attachments: Vec::new(),
        };
        let post = |m| post_message(&app, &c1, m, Vec::new());
        let refused = |error: &str| (400, json!({ "error": error }));
        assert_eq!(
            answer(post(message(" ", "a")).await).await,
            refused("message must be a non-empty string")
        );
        assert_eq!(
            answer(post(message("hi", "a b")).await).await,
            refused("client_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
        );
        with_claude(&app, &dir.path().join("no-claude").display().to_string());
        let (status, _) = answer(post(message("hi", "a")).await).await;
        assert_eq!(status, 503);
        assert_eq!(app.store.conversation("c1").unwrap().unwrap().turn_count, 0);
        // An executable that exits at once: the turn is queued, then fails; the handler's part is the 202.
        with_claude(&app, "true");
        let (status, first) = answer(post(message("hi", "a")).await).await;
        assert_eq!((status, &first["status"]), (202, &json!("queued")));
        let (status, again) = answer(post(message("hi", "a")).await).await;
        assert_eq!((status, &again["turn_id"]), (202, &first["turn_id"]));
    }

    #[test]
    fn files_get_a_new_name_when_theirs_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = uploads_dir(dir.path()).unwrap();
        assert_eq!(std::fs::read(uploads.join(".gitignore")).unwrap(), b"*\n");
        let (a, _) = write_new(&uploads, "r.pdf", b"1").unwrap();
        let (b, _) = write_new(&uploads, "r.pdf", b"2").unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("r.pdf", "r-2.pdf"));
        assert_eq!(std::fs::read(uploads.join("r.pdf")).unwrap(), b"1");
        // A symlink in place of a file name is not written through.
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), uploads.join("s.txt")).unwrap();
        let (c, _) = write_new(&uploads, "s.txt", b"3").unwrap();
        assert_eq!(c, "s-2.txt");
        assert!(!dir.path().join("elsewhere").exists());
    }
}
