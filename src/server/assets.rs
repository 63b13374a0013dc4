//! The web app, embedded into the binary at build time, and how one of its files is answered.

use bytes::Bytes;
use hyper::Response;
use hyper::header::{self, HeaderValue};

use super::respond::{Body, full, with_type};

/// The web app, embedded at build time: (file name, content type, bytes). `/` is `index.html`.
pub(super) const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/app.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/compose.js"),
    ),
    (
        "requests.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/requests.js"),
    ),
    (
        "push.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/push.js"),
    ),
    (
        "turn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/turn.js"),
    ),
    (
        "markdown.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/markdown.js"),
    ),
    (
        "export.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/export.js"),
    ),
    (
        "attach.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/attach.js"),
    ),
    (
        "continue.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/continue.js"),
    ),
    (
        "projects.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/projects.js"),
    ),
    (
        "computer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/computer.js"),
    ),
    (
        "changes.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/changes.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/api.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/sw.js"),
    ),
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_bytes!("../../assets/manifest.webmanifest"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/icon.svg"),
    ),
    // iOS takes only a PNG for the home screen, and Android's install prompt wants one of 512 px.
    (
        "icon-180.png",
        "image/png",
        include_bytes!("../../assets/icon-180.png"),
    ),
    (
        "icon-512.png",
        "image/png",
        include_bytes!("../../assets/icon-512.png"),
    ),
];

/// An embedded asset; `no-cache` so that a new binary's app is picked up (the service worker keeps it offline).
pub(super) fn asset(name: &str) -> Option<Response<Body>> {
    let (_, content_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    let mut resp = with_type(Response::new(full(Bytes::from_static(bytes))), content_type);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}
