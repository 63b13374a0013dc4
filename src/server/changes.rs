//! The change routes: what a turn, or a whole conversation, changed in its project, and one file's diff.

use hyper::{Response, StatusCode};

use super::respond::{internal, is_uuid};
use super::{App, Body, error, json, valid_conversation_id};
use crate::changes::{self, ChangesError};

/// Which change set: a turn's or a conversation's.
pub(super) enum Of<'a> {
    Turn(&'a str),
    Conversation(&'a str),
}

fn answer(r: Result<serde_json::Value, ChangesError>) -> Response<Body> {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(ChangesError::NotFound(what)) => error(StatusCode::NOT_FOUND, what),
        Err(ChangesError::Store(e)) => internal(e),
        Err(e @ ChangesError::Git(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn known(of: &Of) -> Option<Response<Body>> {
    match of {
        Of::Turn(id) if !is_uuid(id) => Some(error(StatusCode::NOT_FOUND, "no such turn")),
        Of::Conversation(id) if !valid_conversation_id(id) => {
            Some(error(StatusCode::NOT_FOUND, "no such conversation"))
        }
        _ => None,
    }
}

/// `GET /api/turns/{id}/changes`, `GET /api/conversations/{id}/changes`.
pub(super) async fn list(app: &App, of: Of<'_>) -> Response<Body> {
    if let Some(refused) = known(&of) {
        return refused;
    }
    let data_dir = app.settings.get().data_dir.clone();
    answer(match of {
        Of::Turn(id) => changes::turn(&app.store, &data_dir, id).await,
        Of::Conversation(id) => changes::conversation(&app.store, &data_dir, id).await,
    })
}

/// Why a path may not name a file of a change set (it is one of the project's, relative and plain), if it may not.
fn refuse_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("no path given")
    } else if path.starts_with('/') {
        Some("the path must be relative to the project")
    } else if path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("the path may not hold empty, `.` or `..` components")
    } else {
        None
    }
}

/// `GET /api/turns/{id}/changes/{path…}`, `GET /api/conversations/{id}/changes/{path…}`: the segments after
/// `changes`, each decoded, joined by `/` (so `a%2Fb` and `a/b` name the same file).
pub(super) async fn file(app: &App, of: Of<'_>, segments: &[&str]) -> Response<Body> {
    if let Some(refused) = known(&of) {
        return refused;
    }
    let path = segments.join("/");
    if let Some(why) = refuse_path(&path) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let data_dir = app.settings.get().data_dir.clone();
    answer(match of {
        Of::Turn(id) => changes::turn_file(&app.store, &data_dir, id, &path).await,
        Of::Conversation(id) => changes::conversation_file(&app.store, &data_dir, id, &path).await,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_taken() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(refuse_path(bad).is_some(), "{bad:?}");
        }
        for good in ["a", "src/main.rs", "with space/ü.txt", "..a", "a..b"] {
            assert!(refuse_path(good).is_none(), "{good:?}");
        }
    }
}
