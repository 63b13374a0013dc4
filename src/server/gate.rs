//! The checks a request passes before a handler sees it, in a fixed order: the host it names (against DNS
//! rebinding), who the client is, its credentials (cookie or Basic, under the brute-force defences), the request
//! rate, and the cross-site check. `auth` decides; this module turns its answers into 401, 403, 421 and 429.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::listen::{Door, Via};
use super::respond::{Body, error, internal};
use super::{App, Ctx, Signed};
use crate::auth;

/// Whether the request's host (`Host`, or the target's authority) names this server on its door; the error is the
/// host refused. The local listener answers `localhost`, loopback addresses, the address the client connected to
/// and the configured `--host`; the tunnel listener the tunnel's hostnames alone. A request without a host is no
/// browser's, and over our own TLS the certificate already ties the name, so both pass.
pub(super) fn host_allowed<B>(app: &App, req: &Request<B>, door: Door) -> Result<(), String> {
    let raw = match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => match req.headers().get(header::HOST) {
            Some(value) => value.to_str().map_err(|_| "(not text)".to_string())?,
            None => return Ok(()),
        },
    };
    if door.via == Via::Local && door.tls {
        return Ok(());
    }
    let refused = || Err(raw.chars().take(100).collect::<String>());
    let Some(name) = host_name(raw) else {
        return refused();
    };
    let ok = match door.via {
        Via::Local => {
            let settings = app.settings.get();
            local_host(&name, door.addr, &settings.host) || settings.allowed_hosts.contains(&name)
        }
        Via::Tunnel => tunnel_host(&name, &app.settings.get().state_dir),
    };
    if ok { Ok(()) } else { refused() }
}

/// The host of an authority (`name`, `name:port`, `[v6]`, `[v6]:port`), lowercased, without a trailing dot.
fn host_name(authority: &str) -> Option<String> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let name = match authority.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(digits)) {
                return None;
            }
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            inside
        }
        None => match authority.split_once(':') {
            Some((name, port)) if digits(port) => name,
            Some(_) => return None,
            None => authority,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// A host the local listener answers: this computer by name or loopback address, the address the client
/// reached, or the configured `--host`.
fn local_host(name: &str, reached: Option<std::net::IpAddr>, configured: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let configured = configured.trim_start_matches('[').trim_end_matches(']');
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback()
                || reached.is_some_and(|r| r.to_canonical() == ip)
                || configured
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|c| c.to_canonical() == ip)
        }
        Err(_) => configured.trim_end_matches('.').eq_ignore_ascii_case(name),
    }
}

/// The hostnames the tunnel routes to us, from `up`'s state file: None when its hostname is not known to us (a
/// named tunnel run from a token, whose routes live in Cloudflare's dashboard), then any host passes.
fn tunnel_hostnames(state: Option<&crate::state::UpState>) -> Option<Vec<String>> {
    let Some(tunnel) = state.map(|s| &s.tunnel) else {
        return Some(Vec::new());
    };
    let mut names: Vec<String> = tunnel
        .hostnames
        .iter()
        .filter_map(|h| host_name(h))
        .collect();
    if let Some(url) = tunnel.url.as_deref()
        && let Some(rest) = url.strip_prefix("https://")
        && let Some(name) = host_name(rest.split('/').next().unwrap_or(rest))
    {
        names.push(name);
    }
    if names.is_empty() && tunnel.kind == crate::state::TunnelKind::Named {
        return None;
    }
    Some(names)
}

/// Whether the tunnel routes `name` to us. The state file is read at most once a second, and at once for a name
/// not known, since a quick tunnel that restarts gets a new hostname.
fn tunnel_host(name: &str, state_dir: &std::path::Path) -> bool {
    struct Cached {
        read: Instant,
        names: Option<Vec<String>>,
    }
    static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);
    let matches = |names: &Option<Vec<String>>| match names {
        None => true,
        Some(names) => names.iter().any(|n| match n.strip_prefix("*.") {
            Some(domain) => name
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => n == name,
        }),
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_ref()
        && c.read.elapsed() < Duration::from_secs(1)
        && matches(&c.names)
    {
        return true;
    }
    let names = tunnel_hostnames(crate::state::read_live(state_dir).as_ref());
    let ok = matches(&names);
    *cache = Some(Cached {
        read: Instant::now(),
        names,
    });
    ok
}

/// Who is asking: the socket peer, or on the tunnel listener (where every peer is cloudflared) the address
/// Cloudflare puts in `CF-Connecting-IP`. Nowhere else is that header believed.
pub(super) fn client_ip<B>(req: &Request<B>, peer: SocketAddr, via: Via) -> std::net::IpAddr {
    let forwarded = (via == Via::Tunnel)
        .then(|| {
            req.headers()
                .get("cf-connecting-ip")?
                .to_str()
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .flatten();
    forwarded.unwrap_or(peer.ip())
}

/// Everything a route past the public ones needs: credentials, then (for a remote client) the request rate, then
/// for a request that changes state the cross-site check.
pub(super) async fn admit(
    app: &App,
    headers: &HeaderMap,
    method: &Method,
    ctx: Ctx,
) -> Result<Signed, Response<Body>> {
    let signed = authenticate(app, headers, ctx).await?;
    if !ctx.local
        && let Err(wait) = app.throttle.request(ctx.client)
    {
        return Err(too_many(wait, "too many requests; slow down"));
    }
    // A browser that holds credentials must not act for another site's page; signed in by cookie, it must
    // even say that the request comes from our own.
    let same_site = match signed {
        Signed::Cookie(_) => auth::same_origin_strict(headers, ctx.secure),
        Signed::Basic => auth::same_origin(headers, ctx.secure),
    };
    if method != Method::GET && !same_site {
        return Err(error(StatusCode::FORBIDDEN, "cross-site request refused"));
    }
    Ok(signed)
}

/// Checks the credentials (a sign-in cookie, else HTTP Basic) with the brute-force defences of
/// [`auth::Throttle::verify`]: a locked-out or over-eager client gets 429, a failed attempt is counted and logged.
async fn authenticate(app: &App, headers: &HeaderMap, ctx: Ctx) -> Result<Signed, Response<Body>> {
    if auth::session_cookie_repeated(headers) {
        let mut resp = error(
            StatusCode::BAD_REQUEST,
            "the request carries more than one ra_session cookie; refused",
        );
        resp.headers_mut()
            .insert(header::SET_COOKIE, auth::set_cookie(None, ctx.secure));
        return Err(resp);
    }
    if let Some(token) = auth::session_cookie(headers) {
        let hash = auth::sha256_hex(token.as_bytes());
        match app.store.session_valid(&hash) {
            Ok(true) => return Ok(Signed::Cookie(hash)),
            Ok(false) => {}
            Err(e) => return Err(internal(e)),
        }
    }
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(unauthorized(headers));
    }
    // Locked out: refused before even the cache of verified headers, so a lockout holds for every password.
    if let Some(wait) = app.throttle.locked(ctx.client) {
        return Err(refused(auth::Refused::Locked(wait)));
    }
    let settings = app.settings.get();
    match auth::basic_verified(
        headers,
        &settings.username,
        &settings.password,
        &app.basic_cache,
        &app.throttle,
        ctx.client,
    )
    .await
    {
        Ok(true) => Ok(Signed::Basic),
        Ok(false) => Err(unauthorized(headers)),
        Err(r) => Err(refused(r)),
    }
}

/// 429 for a password that was not checked, saying how long to wait.
pub(super) fn refused(why: auth::Refused) -> Response<Body> {
    let (message, wait) = why.message();
    too_many(wait, &message)
}

/// 429 with `Retry-After` in whole seconds.
fn too_many(wait: Duration, message: &str) -> Response<Body> {
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, message);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// 401, with the Basic challenge that `auth` says this client should get.
fn unauthorized(headers: &HeaderMap) -> Response<Body> {
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    if let Some(challenge) = auth::basic_challenge(headers) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_401_challenges_everyone_but_the_web_app() {
        let mut headers = HeaderMap::new();
        let resp = unauthorized(&headers);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        headers.insert("x-requested-with", HeaderValue::from_static("remote-agent"));
        let resp = unauthorized(&headers);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(!resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn the_local_door_answers_for_this_computer_alone() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let door = Door {
            via: Via::Local,
            secure: false,
            tls: false,
            addr: Some([127, 0, 0, 1].into()),
        };
        let asking = |host: &'static str| {
            Request::builder()
                .uri("/api/status")
                .header(header::HOST, host)
                .body(())
                .unwrap()
        };
        assert_eq!(host_allowed(&app, &asking("localhost:8000"), door), Ok(()));
        assert_eq!(host_allowed(&app, &asking("127.0.0.1"), door), Ok(()));
        assert_eq!(
            host_allowed(&app, &asking("evil.example:8000"), door),
            Err("evil.example:8000".to_string())
        );
    }

    #[test]
    fn host_names() {
        assert_eq!(
            host_name("Example.COM:8000").as_deref(),
            Some("example.com")
        );
        assert_eq!(host_name("localhost.").as_deref(), Some("localhost"));
        assert_eq!(host_name("[::1]:8000").as_deref(), Some("::1"));
        assert_eq!(host_name("[::1]").as_deref(), Some("::1"));
        for bad in [
            "",
            ":80",
            "::1",
            "[::1",
            "[::1]x",
            "[zz]",
            "host:",
            "host:http",
            "a:1:2",
        ] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn local_hosts() {
        let lan: std::net::IpAddr = "192.168.1.10".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert!(local_host("localhost", None, "127.0.0.1"));
        assert!(local_host("127.0.0.2", None, "127.0.0.1"));
        assert!(local_host("::1", None, "127.0.0.1"));
        assert!(local_host("192.168.1.10", Some(lan), "0.0.0.0"));
        assert!(local_host("192.168.1.10", Some(mapped), "::"));
        assert!(local_host("192.168.1.10", None, "192.168.1.10"));
        assert!(local_host("mybox.lan", None, "MyBox.lan."));
        assert!(local_host("fd00::2", None, "[fd00::2]"));
        assert!(!local_host("192.168.1.11", Some(lan), "0.0.0.0"));
        assert!(!local_host("evil.example", Some(lan), "0.0.0.0"));
        // Unspecified is what browsers reach this computer by too; no name is involved, so no rebinding.
        assert!(local_host("0.0.0.0", Some(lan), "0.0.0.0"));
    }

    #[test]
    fn tunnel_hostnames_from_the_state_file() {
        // The records of these tests name no pid; a running `up` always does.
        let names = |mut v: Value| {
            v["pid"] = json!(1);
            tunnel_hostnames(Some(&serde_json::from_value(v).unwrap()))
        };
        assert_eq!(tunnel_hostnames(None), Some(vec![]));
        assert_eq!(
            names(json!({"tunnel": {"kind": "quick", "url": "https://a-b.trycloudflare.com"}})),
            Some(vec!["a-b.trycloudflare.com".to_string()])
        );
        assert_eq!(
            names(json!({"tunnel": {"kind": "quick", "url": null}})),
            Some(vec![])
        );
        // A token tunnel's routes are not known here.
        assert_eq!(
            names(json!({"tunnel": {"kind": "named", "url": "(the hostname your tunnel routes)"}})),
            None
        );
        assert_eq!(
            names(json!({"tunnel": {"kind": "none", "url": null}})),
            Some(vec![])
        );
    }
}
