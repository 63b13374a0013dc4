//! Browser sign-in: `POST /api/login` (a cookie for the password), `POST /api/logout`, and one-time pairing
//! links (`GET /pair/{token}` shows a page and changes nothing, `POST` signs the browser in).

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use super::gate::refused;
use super::respond::{Body, error, full, internal, json};
use super::{App, Ctx, Signed};
use crate::auth;
use crate::store::Pairing;

/// `POST /api/login`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    username: String,
    password: String,
}

/// What `POST /api/login` refuses before its body is read: a cross-site request (403), and a client locked out
/// (429), which is not worth reading a body for.
pub(super) fn login_allowed(
    app: &App,
    headers: &HeaderMap,
    ctx: Ctx,
) -> Result<(), Response<Body>> {
    if !auth::same_origin(headers, ctx.secure) {
        return Err(error(StatusCode::FORBIDDEN, "cross-site request refused"));
    }
    if let Some(wait) = app.throttle.locked(ctx.client) {
        return Err(refused(auth::Refused::Locked(wait)));
    }
    Ok(())
}

/// `POST /api/login {username, password}` → 204 and the `ra_session` cookie; the brute-force defences apply as
/// for Basic. The router has asked [`login_allowed`] first.
pub(super) async fn login(app: &App, body: Login, ctx: Ctx) -> Response<Body> {
    let settings = app.settings.get();
    let user_ok = auth::ct_eq(body.username.as_bytes(), settings.username.as_bytes());
    match app
        .throttle
        .verify(ctx.client, user_ok, body.password, &settings.password)
        .await
    {
        Ok(true) => {}
        Ok(false) => return error(StatusCode::UNAUTHORIZED, "wrong user name or password"),
        Err(why) => return refused(why),
    }
    let token = auth::random_token();
    if let Err(e) = app
        .store
        .create_session(&auth::sha256_hex(token.as_bytes()), auth::SESSION_TTL_SECS)
    {
        return internal(e);
    }
    tracing::info!(client = %ctx.client, "signed in");
    signed_in(StatusCode::NO_CONTENT, &token, ctx)
}

/// `GET /api/session` → 200 `{"signed_in": bool}`: whether this browser's sign-in cookie is valid, so that the app
/// can choose between the login screen and the list without a 401 in the console. Only the cookie counts: checking
/// a password here would be a guess oracle outside the login throttle.
pub(super) fn session(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let signed_in = match auth::session_cookie(req.headers()) {
        Some(token) => match app.store.session_valid(&auth::sha256_hex(token.as_bytes())) {
            Ok(valid) => valid,
            Err(e) => return internal(e),
        },
        None => false,
    };
    json(
        StatusCode::OK,
        &serde_json::json!({ "signed_in": signed_in }),
    )
}

fn signed_in(status: StatusCode, token: &str, ctx: Ctx) -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::SET_COOKIE,
        auth::set_cookie(Some(token), ctx.secure),
    );
    resp
}

/// `POST /api/logout`: revokes this browser's sign-in and clears its cookie.
pub(super) fn logout(app: &App, signed: &Signed, ctx: Ctx) -> Response<Body> {
    if let Signed::Cookie(hash) = signed
        && let Err(e) = app.store.revoke_session(hash)
    {
        return internal(e);
    }
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut()
        .insert(header::SET_COOKIE, auth::set_cookie(None, ctx.secure));
    resp
}

/// `GET /pair/{token}`: a page that asks to confirm. Chat apps fetch links to preview them, so a GET spends
/// nothing.
pub(super) fn pair_page(app: &App, token: &str) -> Response<Body> {
    match app.store.pairing(&auth::sha256_hex(token.as_bytes())) {
        Ok(Pairing::Valid) => page(
            StatusCode::OK,
            "Sign in this browser?",
            "This one-time link signs this browser in to remote-agent, which can run Claude Code on your \
             computer. Continue only if you opened this link yourself.",
            true,
        ),
        Ok(other) => spent(other),
        Err(e) => internal(e),
    }
}

/// `POST /pair/{token}`: spends the token, signs the browser in, and sends it to the app.
pub(super) fn pair(app: &App, req: &Request<Incoming>, token: &str, ctx: Ctx) -> Response<Body> {
    if !auth::same_origin(req.headers(), ctx.secure) {
        return error(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let session = auth::random_token();
    match app.store.spend_pairing(
        &auth::sha256_hex(token.as_bytes()),
        &auth::sha256_hex(session.as_bytes()),
        auth::SESSION_TTL_SECS,
    ) {
        Ok(Pairing::Valid) => {
            tracing::info!(client = %ctx.client, "signed in with a pairing link");
            let mut resp = signed_in(StatusCode::SEE_OTHER, &session, ctx);
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            resp
        }
        Ok(other) => {
            tracing::warn!(client = %ctx.client, "a spent or unknown pairing link was used");
            spent(other)
        }
        Err(e) => internal(e),
    }
}

fn spent(state: Pairing) -> Response<Body> {
    let why = match state {
        Pairing::Used => "This pairing link has already been used.",
        Pairing::Expired => "This pairing link has expired (they last 10 minutes).",
        Pairing::Valid | Pairing::Unknown => "This pairing link is not valid.",
    };
    page(
        StatusCode::GONE,
        "Link no longer valid",
        &format!(
            "{why} Run <code>remote-agent pair</code> on your computer for a new one, or sign in with your password."
        ),
        false,
    )
}

/// A small HTML page, with no script and no inline style (the CSP allows neither).
fn page(status: StatusCode, title: &str, text: &str, confirm: bool) -> Response<Body> {
    let form = if confirm {
        r#"<form method="post"><button class="primary" type="submit">Sign in</button></form>"#
    } else {
        r#"<p><a href="/">Open remote-agent</a></p>"#
    };
    // The app's own stylesheet (the CSP allows it; no inline style), and its login card.
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1, viewport-fit=cover\">\
         <meta name=\"color-scheme\" content=\"light dark\"><link rel=\"stylesheet\" href=\"/app.css\">\
         <title>{title} · remote-agent</title></head>\
         <body><main class=\"login\"><div class=\"login-card\"><h1>{title}</h1><p>{text}</p>{form}</div></main>\
         </body></html>\n"
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const CTX: Ctx = Ctx {
        client: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        local: false,
        secure: false,
    };

    async fn answer(resp: Response<Body>) -> (u16, serde_json::Value) {
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn login_as(username: &str, password: &str) -> Login {
        Login {
            username: username.into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn login_refuses_other_sites_before_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let mut headers = HeaderMap::new();
        assert!(login_allowed(&app, &headers, CTX).is_ok());
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(
            answer(login_allowed(&app, &headers, CTX).unwrap_err()).await,
            (
                403,
                serde_json::json!({"error": "cross-site request refused"})
            )
        );
    }

    #[tokio::test]
    async fn login_signs_in_with_the_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        for wrong in [login_as("me", "not it"), login_as("you", "a long password")] {
            let resp = login(&app, wrong, CTX).await;
            assert!(resp.headers().get(header::SET_COOKIE).is_none());
            assert_eq!(
                answer(resp).await,
                (
                    401,
                    serde_json::json!({"error": "wrong user name or password"})
                )
            );
        }
        let resp = login(&app, login_as("me", "a long password"), CTX).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        let token = cookie
            .strip_prefix("ra_session=")
            .and_then(|c| c.split(';').next())
            .unwrap();
        assert!(
            app.store
                .session_valid(&auth::sha256_hex(token.as_bytes()))
                .unwrap()
        );
    }
}
