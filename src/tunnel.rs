//! cloudflared: its command line for a quick or a named tunnel, what its log lines tell (the public URL, the
//! metrics address, edge registrations), its metrics endpoints (`/ready`, `/quicktunnel`), and the ingress check.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which tunnel to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A `trycloudflare.com` URL that changes with every start; needs no account.
    Quick,
    /// A tunnel on the user's own domain: by name with a config file, or by token.
    Named(Named),
}

/// How a named tunnel is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// By name, with cloudflared's config file (which holds the ingress rules and the credentials' path).
    Config {
        /// The tunnel's name.
        name: String,
        /// cloudflared's config file for it.
        config: PathBuf,
    },
    /// The token is passed in the environment (`TUNNEL_TOKEN`), never on the command line.
    Token(String),
    /// A file holding the token (cloudflared reads it).
    TokenFile(PathBuf),
}

impl Kind {
    /// The kind's word in `up`'s state and in `status` (`quick` or `named`).
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Quick => "quick",
            Kind::Named(_) => "named",
        }
    }
}

/// Whether cloudflared inherits the environment variable `name`: not this server's settings and secrets (`AUTH_*`,
/// `REMOTE_AGENT_*`, a `TUNNEL_TOKEN` of the shell, …) nor Claude's (`ANTHROPIC_*`, `CLAUDE_*`). A named tunnel's
/// token reaches it through `--token-file` or the `TUNNEL_TOKEN` we set, nothing else.
pub fn inherits(name: &str) -> bool {
    !(crate::config::is_own_env(name)
        || name.starts_with("ANTHROPIC_")
        || name.starts_with("CLAUDE_"))
}

/// Gives `cmd` (a cloudflared) the scrubbed environment of [`inherits`].
pub fn scrub_env(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    cmd.env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(inherits)))
}

/// The cloudflared arguments. `origin` is where a quick tunnel sends traffic; `quick_config` is a config file
/// without ingress rules, so that a `config.yml` in `~/.cloudflared` cannot take a quick tunnel over.
pub fn args(
    kind: &Kind,
    origin: SocketAddr,
    metrics: SocketAddr,
    quick_config: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["tunnel".into(), "--no-autoupdate".into()];
    let metrics = ["--metrics".to_string(), metrics.to_string()];
    match kind {
        Kind::Quick => {
            args.extend(["--config".into(), quick_config.display().to_string()]);
            args.extend(["--url".into(), format!("http://{origin}")]);
            args.extend(metrics);
        }
        Kind::Named(Named::Config { name, config }) => {
            args.extend(["--config".into(), config.display().to_string()]);
            args.extend(metrics);
            args.extend(["run".into(), name.clone()]);
        }
        Kind::Named(Named::Token(_)) => {
            args.extend(metrics);
            args.push("run".into());
        }
        Kind::Named(Named::TokenFile(file)) => {
            args.extend(metrics);
            args.extend([
                "run".into(),
                "--token-file".into(),
                file.display().to_string(),
            ]);
        }
    }
    args
}

/// What a cloudflared log line says that we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A quick tunnel's public URL.
    QuickUrl(String),
    /// The address of cloudflared's metrics server (host:port).
    Metrics(String),
    /// A connection to Cloudflare's edge was registered.
    Registered,
    /// Nothing we act on.
    Other,
}

/// Reads one log line (plain or JSON format; anything unparsable is `Other`).
pub fn parse_line(line: &str) -> Line {
    if let Some(url) = find_quick_url(line) {
        return Line::QuickUrl(url);
    }
    if let Some(rest) = line.split("Starting metrics server on ").nth(1) {
        let addr = rest.split_whitespace().next().unwrap_or("");
        let addr = addr.trim_end_matches('"').trim_end_matches("/metrics");
        if !addr.is_empty() {
            return Line::Metrics(addr.to_string());
        }
    }
    // Current builds say "Registered tunnel connection"; builds from 2022 said "Connection <uuid> registered".
    if line.contains("Registered tunnel connection")
        || (line.contains("Connection ") && line.contains(" registered"))
    {
        return Line::Registered;
    }
    Line::Other
}

/// The first `https://<name>.trycloudflare.com` in `text`.
pub fn find_quick_url(text: &str) -> Option<String> {
    let start = text.find("https://")?;
    let rest = &text[start + "https://".len()..];
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')
        .collect();
    let name = host.strip_suffix(".trycloudflare.com")?;
    (!name.is_empty() && !name.contains('.') && name != "api").then(|| format!("https://{host}"))
}

/// The hostnames in a cloudflared config file's ingress rules (a line-based read of the YAML).
pub fn ingress_hostnames(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("- ").trim();
            l.strip_prefix("hostname:")
        })
        .map(|h| h.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// A GET to cloudflared's metrics server: the status and body, or None if it did not answer in time.
pub async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    get_with(addr, path, "").await
}

/// A GET on loopback with extra header lines (`Name: value\r\n`), under a two-second deadline.
pub async fn get_with(addr: &str, path: &str, extra: &str) -> Option<(u16, String)> {
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .ok()
        .flatten()
}

/// `/ready`: true once cloudflared holds a connection to the Cloudflare edge.
pub async fn ready(metrics: &str) -> bool {
    matches!(get(metrics, "/ready").await, Some((200, _)))
}

/// `/quicktunnel`: the quick tunnel's URL as cloudflared reports it.
pub async fn quick_url(metrics: &str) -> Option<String> {
    let (status, body) = get(metrics, "/quicktunnel").await?;
    let host = serde_json::from_str::<serde_json::Value>(&body).ok()?["hostname"]
        .as_str()?
        .to_string();
    (status == 200 && !host.is_empty()).then(|| format!("https://{host}"))
}

/// Checks a named tunnel's config with `cloudflared tunnel --config F ingress validate`; the error is what
/// cloudflared said.
pub async fn validate(bin: &Path, config: &Path) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(bin);
    let out = scrub_env(&mut cmd)
        .args(["tunnel", "--config"])
        .arg(config)
        .args(["ingress", "validate"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("could not run {}: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(if said.is_empty() {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    } else {
        said
    })
}

/// How to install cloudflared, for the message when it is missing.
pub const INSTALL_HINT: &str = "install it with `brew install cloudflared` on macOS, or on Linux from \
Cloudflare's package repository (pkg.cloudflare.com: `apt install cloudflared` / `dnf install cloudflared`) or a \
release binary from github.com/cloudflare/cloudflared/releases";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_url_and_the_metrics_address_are_found() {
        let banner = "2026-11-24T19:54:05Z INF |  https://example-words-here.trycloudflare.com                      |";
        assert_eq!(
            parse_line(banner),
            Line::QuickUrl("https://example-words-here.trycloudflare.com".into())
        );
        assert_eq!(
            parse_line(
                "2026-11-24T19:54:05Z INF Starting metrics server on 127.0.0.1:36769/metrics"
            ),
            Line::Metrics("127.0.0.1:36769".into())
        );
        assert_eq!(
            parse_line(
                "2026-11-24T19:54:06Z INF Registered tunnel connection connIndex=0 connection=abc event=0 ip=198.41.200.13 location=lhr01 protocol=quic"
            ),
            Line::Registered
        );
        assert_eq!(
            parse_line("INF Connection 6ff42ae2-765d registered connIndex=0"),
            Line::Registered
        );
        // The API host in a failure line is not a tunnel URL.
        let fatal = r#"failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp"#;
        assert_eq!(parse_line(fatal), Line::Other);
        let json = r#"{"level":"info","message":"|  https://a-b-c.trycloudflare.com  |"}"#;
        assert_eq!(
            parse_line(json),
            Line::QuickUrl("https://a-b-c.trycloudflare.com".into())
        );
    }

    #[test]
    fn ingress_hostnames_are_read() {
        let config = "tunnel: 6ff4\ningress:\n  - hostname: agent.example.com\n    service: http://127.0.0.1:8000\n  - hostname: \"b.example.com\"\n    service: x\n  - service: http_status:404\n";
        assert_eq!(
            ingress_hostnames(config),
            ["agent.example.com", "b.example.com"]
        );
    }

    #[test]
    fn a_quick_tunnel_never_reads_a_users_ingress() {
        let a = args(
            &Kind::Quick,
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            Path::new("/state/quick.yml"),
        );
        assert_eq!(
            a,
            [
                "tunnel",
                "--no-autoupdate",
                "--config",
                "/state/quick.yml",
                "--url",
                "http://127.0.0.1:4000",
                "--metrics",
                "127.0.0.1:5000"
            ]
        );
        let token = args(
            &Kind::Named(Named::Token("secret".into())),
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            Path::new("/x"),
        );
        assert!(!token.iter().any(|a| a.contains("secret")));
    }
}
