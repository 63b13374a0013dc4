//! The push API (docs/api.md, "Push"): the VAPID key, subscriptions (a browser's endpoint and keys), a test message,
//! and the presence reports that keep notifications away from a conversation on screen.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::respond::{Body, error, full, internal, json};
use super::{App, Signed};
use crate::store::{MAX_PUSH_SUBSCRIPTIONS, Subscribed};

/// The longest endpoint accepted.
const MAX_ENDPOINT: usize = 1024;

/// `POST /api/push/subscriptions`'s body: a browser's `PushSubscription.toJSON()` (other fields ignored), plus
/// whether to hide the content.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SubscribeBody {
    endpoint: Option<String>,
    keys: Option<Keys>,
    hide_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Keys {
    p256dh: Option<String>,
    auth: Option<String>,
}

/// A body naming an endpoint (`DELETE /api/push/subscriptions`, `POST /api/push/test`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct EndpointBody {
    endpoint: Option<String>,
}

/// `POST /api/presence`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PresenceBody {
    conversation_id: Option<String>,
}

fn no_content() -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// `GET /api/push/key`.
pub(super) fn key(app: &App) -> Response<Body> {
    match app.push.public_key() {
        Ok(key) => json(StatusCode::OK, &json!({ "key": key })),
        Err(e) => internal(format!("{e:#}")),
    }
}

fn endpoint(body: Option<String>) -> Result<String, Response<Body>> {
    let endpoint = body.ok_or_else(|| error(StatusCode::BAD_REQUEST, "endpoint is required"))?;
    if endpoint.len() > MAX_ENDPOINT {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("endpoint is over {MAX_ENDPOINT} bytes"),
        ));
    }
    Ok(endpoint)
}

/// The bytes of a base64url key of `len` bytes (padding tolerated), or why not.
fn key_bytes(value: Option<&str>, name: &str, len: usize) -> Result<Vec<u8>, Response<Body>> {
    let bad = || {
        error(
            StatusCode::BAD_REQUEST,
            format!("keys.{name} must be {len} bytes, base64url"),
        )
    };
    let bytes = B64
        .decode(value.ok_or_else(bad)?.trim_end_matches('='))
        .map_err(|_| bad())?;
    if bytes.len() != len {
        return Err(bad());
    }
    Ok(bytes)
}

/// `POST /api/push/subscriptions`: 201 `{"id"}` for a new one, 200 for a known endpoint (updated).
pub(super) fn subscribe(app: &App, signed: &Signed, body: SubscribeBody) -> Response<Body> {
    let endpoint = match endpoint(body.endpoint) {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    if let Err(why) = crate::push::check_endpoint(&endpoint) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let keys = body.keys.unwrap_or_default();
    let p256dh = match key_bytes(keys.p256dh.as_deref(), "p256dh", 65) {
        Ok(k) if k[0] == 4 && p256::PublicKey::from_sec1_bytes(&k).is_ok() => k,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "keys.p256dh must be an uncompressed P-256 point",
            );
        }
        Err(resp) => return resp,
    };
    let auth = match key_bytes(keys.auth.as_deref(), "auth", 16) {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let session = match signed {
        Signed::Cookie(hash) => Some(hash.as_str()),
        Signed::Basic => None,
    };
    match app.store.upsert_push_subscription(
        &endpoint,
        &B64.encode(p256dh),
        &B64.encode(auth),
        body.hide_content.unwrap_or(false),
        session,
    ) {
        Ok(Subscribed::Created(id)) => json(StatusCode::CREATED, &json!({ "id": id })),
        Ok(Subscribed::Updated(id)) => json(StatusCode::OK, &json!({ "id": id })),
        Ok(Subscribed::Full) => error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_PUSH_SUBSCRIPTIONS} subscriptions: remove one first"),
        ),
        Err(e) => internal(e),
    }
}

/// `DELETE /api/push/subscriptions`: 204, known or not.
pub(super) fn unsubscribe(app: &App, body: EndpointBody) -> Response<Body> {
    let endpoint = match endpoint(body.endpoint) {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match app.store.delete_push_subscription_by_endpoint(&endpoint) {
        Ok(_) => no_content(),
        Err(e) => internal(e),
    }
}

/// `POST /api/push/test`: 202 once queued, 404 for an endpoint not subscribed.
pub(super) fn test(app: &App, body: EndpointBody) -> Response<Body> {
    let endpoint = match endpoint(body.endpoint) {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    if app.push.test(&endpoint) {
        json(StatusCode::ACCEPTED, &Value::Object(Default::default()))
    } else {
        error(StatusCode::NOT_FOUND, "no subscription with this endpoint")
    }
}

/// `POST /api/presence`: the app shows this conversation now (or none): 204.
pub(super) fn presence(
    app: &App,
    signed: &Signed,
    client: std::net::IpAddr,
    body: PresenceBody,
) -> Response<Body> {
    if body.conversation_id.as_ref().is_some_and(|c| c.len() > 64) {
        return error(StatusCode::BAD_REQUEST, "conversation_id is too long");
    }
    let who = match signed {
        Signed::Cookie(hash) => hash.clone(),
        Signed::Basic => format!("basic {client}"),
    };
    app.push.present(&who, body.conversation_id);
    no_content()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(resp: Response<Body>) -> Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    fn sub(endpoint: &str, p256dh: &[u8], auth: &[u8]) -> SubscribeBody {
        serde_json::from_value(json!({
            "endpoint": endpoint, "expirationTime": null,
            "keys": {"p256dh": B64.encode(p256dh), "auth": B64.encode(auth)},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn subscriptions_are_checked_stored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let point = p256::SecretKey::from_slice(&[1u8; 32])
            .unwrap()
            .public_key()
            .to_sec1_bytes()
            .to_vec();
        let signed = Signed::Basic;
        let ok = "https://push.example/abc";
        let resp = subscribe(&app, &signed, sub(ok, &point, &[0; 16]));
        assert_eq!(resp.status(), StatusCode::CREATED);
        let id = body(resp).await["id"].as_str().unwrap().to_string();
        let resp = subscribe(&app, &signed, sub(ok, &point, &[1; 16]));
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await["id"], id.as_str());

        for (bad, why) in [
            (sub("http://push.example/a", &point, &[0; 16]), "https"),
            (sub(ok, &point[..64], &[0; 16]), "p256dh"),
            (sub(ok, &[4; 65], &[0; 16]), "p256dh"),
            (sub(ok, &point, &[0; 15]), "auth"),
            (
                sub(&format!("{ok}/{}", "x".repeat(1100)), &point, &[0; 16]),
                "1024",
            ),
            (SubscribeBody::default(), "endpoint"),
        ] {
            let resp = subscribe(&app, &signed, bad);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let msg = body(resp).await["error"].as_str().unwrap().to_string();
            assert!(msg.contains(why), "{msg}");
        }

        let test_body = |e: &str| EndpointBody {
            endpoint: Some(e.into()),
        };
        assert_eq!(test(&app, test_body(ok)).status(), StatusCode::ACCEPTED);
        assert_eq!(
            test(&app, test_body("https://push.example/none")).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            unsubscribe(&app, test_body(ok)).status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            unsubscribe(&app, test_body(ok)).status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(test(&app, test_body(ok)).status(), StatusCode::NOT_FOUND);

        let resp = key(&app);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await["key"].as_str().unwrap().len(), 87);
        let client = "127.0.0.1".parse().unwrap();
        let p = PresenceBody {
            conversation_id: Some("c".into()),
        };
        assert_eq!(
            presence(&app, &signed, client, p).status(),
            StatusCode::NO_CONTENT
        );
    }
}
