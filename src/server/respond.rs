//! What goes in and out of a handler: JSON bodies read under a size cap and a deadline, query strings and path
//! segments decoded, ids checked, and the answers built (JSON, the `{"error": …}` shape, a streamed body, the
//! security headers every response carries).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::turns::SubmitError;

/// Response bodies: whole buffers now, streams later, behind one type.
pub type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a request's body may take to arrive once its handler starts reading it; then 408. A client that
/// stops halfway would otherwise hold its connection, and a slot under the cap, for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn submit_error(e: SubmitError) -> Response<Body> {
    match e {
        SubmitError::NotFound(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        SubmitError::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        SubmitError::QueueFull => error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        SubmitError::Store(e) => internal(e),
    }
}

/// The message of a request, which must have some text.
pub(super) fn non_empty_message(message: Option<String>) -> Result<String, Response<Body>> {
    message.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "message must be a non-empty string",
        )
    })
}

/// A conversation id is `[A-Za-z0-9_-]{1,64}`.
pub fn valid_conversation_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn check_conversation_id(field: &str, id: &str) -> Result<(), Response<Body>> {
    if valid_conversation_id(id) {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            format!("{field} must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"),
        ))
    }
}

/// A UUID in its usual hyphenated form (what the CLI prints and accepts).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// [`BODY_TIMEOUT`], or the milliseconds in `REMOTE_AGENT_BODY_TIMEOUT_MS` (undocumented: it lets the tests see
/// the deadline without waiting for it).
pub(super) fn body_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("REMOTE_AGENT_BODY_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(BODY_TIMEOUT, Duration::from_millis)
            // Only ever shorter, and never so short that no body could arrive.
            .clamp(Duration::from_millis(100), BODY_TIMEOUT)
    })
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; the error is the response to send.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = read_body(req, MAX_BODY).await?;
    parse_json(&bytes)
}

/// Reads a body of at most `limit` bytes, refused by its `Content-Length` before anything is read, and while
/// reading if it runs over; the error is the response to send (413, 408, 400).
pub(super) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(body_timeout(), collect).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                body_timeout().as_secs_f64()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("could not read the body: {e}"),
        )),
    }
}

/// A JSON object body parsed into `T`; the error is the 400 to send.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, Response<Body>> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    }
    // Well-formed JSON with a field of the wrong type or an unknown one: say that, not "invalid JSON".
    serde_json::from_value(value).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("a field of the body does not fit: {e}"),
        )
    })
}

/// A path segment with its %-escapes decoded (a `+` stays a `+` in a path); borrowed when there are none.
pub(super) fn decode_segment(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(std::borrow::Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v))?
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A whole-buffer body.
pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

pub(super) fn with_type(mut resp: Response<Body>, content_type: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    with_type(resp, "application/json")
}

/// The error shape of every API answer: `{"error": "…"}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &json!({ "error": message.into() }))
}

pub(super) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A failure of ours: 500, with the details in the log only. A full disk (507) or a damaged database (503) is
/// not a bug and is said so, in the words of docs/api.md.
pub(super) fn internal(e: impl std::fmt::Display + 'static) -> Response<Body> {
    let fault = (&e as &dyn std::any::Any)
        .downcast_ref::<rusqlite::Error>()
        .and_then(crate::store::Fault::of);
    tracing::error!("internal error: {e}");
    match fault {
        Some(f @ crate::store::Fault::DiskFull) => {
            error(StatusCode::INSUFFICIENT_STORAGE, f.message())
        }
        Some(f @ crate::store::Fault::Damaged) => {
            error(StatusCode::SERVICE_UNAVAILABLE, f.message())
        }
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// A response body fed by a channel; the stream ends when the sender is dropped.
pub(super) struct ChannelBody(pub(super) mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// The headers every answer carries: no caching of the API, a strict content policy, no sniffing, no referrer,
/// no framing, and HSTS when the browser is on HTTPS (`secure`).
pub(super) fn harden(h: &mut HeaderMap, api: bool, secure: bool) {
    if api {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids() {
        assert!(valid_conversation_id("default"));
        assert!(valid_conversation_id(&"a".repeat(64)));
        for bad in ["", "a b", "../x", "x\r\n", "é", &"a".repeat(65)] {
            assert!(!valid_conversation_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("6e656139-0000-4000-8000-00000000abcd"));
        for bad in [
            "6e656139000040008000000000000000",
            "--version",
            "",
            "6e656139-0000-4000-8000-00000000abcg",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param(Some("a=1&conv_id=my%2Did"), "conv_id").as_deref(),
            Some("my-id")
        );
        assert_eq!(
            query_param(Some("conv_id=a+b"), "conv_id").as_deref(),
            Some("a b")
        );
        assert_eq!(query_param(Some("conv_id=%zz"), "conv_id"), None);
        assert_eq!(query_param(None, "conv_id"), None);
    }

    #[tokio::test]
    async fn storage_faults_are_said_in_plain_words() {
        use http_body_util::BodyExt;
        use rusqlite::ffi;
        let fault = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        for (e, status, said) in [
            (fault(ffi::SQLITE_FULL), 507, "disk full"),
            (
                fault(ffi::SQLITE_CORRUPT),
                503,
                "database damaged: run `remote-agent doctor`",
            ),
            (
                fault(ffi::SQLITE_NOTADB),
                503,
                "database damaged: run `remote-agent doctor`",
            ),
            (fault(ffi::SQLITE_MISUSE), 500, "internal error"),
        ] {
            let resp = internal(e);
            assert_eq!(resp.status().as_u16(), status);
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                serde_json::from_slice::<Value>(&bytes).unwrap(),
                json!({ "error": said })
            );
        }
        assert_eq!(internal("x").status().as_u16(), 500);
    }
}
