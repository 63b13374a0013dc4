//! The cross-site checks: whether a request comes from our own page, by `Sec-Fetch-Site` or `Origin` and `Host`.

use hyper::header::HeaderMap;

/// For a request signed in by cookie that changes state: the browser must say it comes from our own page
/// (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host). `secure`: the browser is on HTTPS.
pub fn same_origin_strict(headers: &HeaderMap, secure: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site_ok = text("sec-fetch-site").is_some_and(|s| s == "same-origin");
    let origin_ok = matches!((text("origin"), text("host")), (Some(origin), Some(host))
        if origin_is_ours(origin, host, secure));
    (site_ok || origin_ok) && same_origin(headers, secure)
}

/// An `Origin` names this server when both its host and its scheme match: `http://` and `https://` on one host
/// are different sites to a browser (a page on plain HTTP, which anyone on the path can write, must not act for
/// the HTTPS one).
fn origin_is_ours(origin: &str, host: &str, secure: bool) -> bool {
    let scheme = if secure { "https" } else { "http" };
    origin.split_once("://").is_some_and(|(s, authority)| {
        s.eq_ignore_ascii_case(scheme) && authority.eq_ignore_ascii_case(host)
    })
}

/// False when a browser says the request comes from another site. A browser that sends `Sec-Fetch-Site` (a header no
/// page can set) is believed: `same-origin` or `none` pass, anything else fails. Otherwise an `Origin` must name the
/// `Host` asked for, with the scheme the browser is on (`secure`: HTTPS). Clients that send neither (curl,
/// scripts) pass.
pub fn same_origin(headers: &HeaderMap, secure: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        // Checked before Origin: under `Referrer-Policy: no-referrer` a same-origin form POST says `Origin: null`.
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin_is_ours(origin, host, secure),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn cross_site_requests_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&h(&[]), true));
        assert!(same_origin(
            &h(&[("host", "a.example"), ("origin", "https://a.example")]),
            true
        ));
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")]), true));
        assert!(!same_origin(
            &h(&[("host", "a.example"), ("origin", "https://evil.example")]),
            true
        ));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")]), true));
        assert!(!same_origin(&h(&[("origin", "null")]), true));
        // A same-origin form POST from a page with `Referrer-Policy: no-referrer` (Chromium).
        assert!(same_origin(
            &h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            true
        ));
        assert!(!same_origin(
            &h(&[("origin", "null"), ("sec-fetch-site", "same-site")]),
            true
        ));
        // The scheme counts: a plain-HTTP page of the same host is another site to an HTTPS one, and back.
        let ours = h(&[("host", "a.example"), ("origin", "https://a.example")]);
        assert!(!same_origin(&ours, false) && !same_origin_strict(&ours, false));
        assert!(same_origin_strict(&ours, true));
        let plain = h(&[("host", "a.example"), ("origin", "http://a.example")]);
        assert!(!same_origin(&plain, true) && same_origin(&plain, false));
    }
}
