//! What `up` prints: the URLs, the user, advice for a phone, the pairing link and its QR code; and
//! `remote-agent status`, from the state file.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;

use tokio::process::Command;

use super::Supervisor;
use crate::config::Flags;
use crate::state::{self, TunnelKind};
use crate::tunnel::{self, Kind};

impl Supervisor {
    pub(super) fn announce_local(&mut self) {
        let local = self.local_url();
        println!("remote-agent {} is up", env!("CARGO_PKG_VERSION"));
        println!("  local:   {local}");
        println!("  user:    {}", self.settings.username);
        println!("  logs:    {}", self.state_dir.join("serve.log").display());
        if self.kind.is_none() {
            println!("  tunnel:  none (this computer and its network only)");
            self.announced = true;
            match self.local.and_then(phone_advice) {
                Some(advice) => println!("{advice}"),
                None => self.offer_pairing(&local),
            }
        } else {
            println!(
                "  tunnel:  opening a {} Cloudflare tunnel…",
                self.kind.as_ref().map_or("", Kind::label)
            );
        }
        let _ = std::io::stdout().flush();
    }

    pub(super) fn local_url(&self) -> String {
        match self.local {
            Some(addr) if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            Some(addr) => format!("http://{addr}"),
            None => "(starting)".into(),
        }
    }

    /// How a phone signs in at `base`. A pairing link signs in whoever holds it, so it goes only to a terminal;
    /// under a service the output is a log that others may read, and `remote-agent pair` gives a link on demand.
    pub(super) fn offer_pairing(&self, base: &str) {
        use std::io::IsTerminal;
        if !base.starts_with("http") {
            println!(
                "  sign in a phone: `remote-agent pair --base https://YOUR-HOSTNAME` prints a one-time link"
            );
        } else if std::io::stdout().is_terminal() {
            self.print_pairing(base);
        } else {
            println!(
                "  sign in a phone: run `remote-agent pair` in a terminal for a one-time link and its QR code"
            );
        }
    }

    /// Prints a one-time link (and its QR code, the only one: the bare URL leads to a password form) that signs a
    /// phone in, made by `remote-agent pair` in a child process so that the supervisor itself never opens the
    /// database.
    fn print_pairing(&self, base: &str) {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.launch_dir)
            .arg("pair")
            .arg(format!("--data-dir={}", self.settings.data_dir.display()))
            .arg("--quiet")
            .arg(format!("--base={base}"))
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        tokio::spawn(async move {
            let Ok(out) = cmd.output().await else { return };
            let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !link.is_empty() {
                println!("  sign in a phone at once (one use, 10 minutes): {link}");
                println!("{}", qr(&link));
                let _ = std::io::stdout().flush();
            }
        });
    }
}

/// Shows a new public URL in the computer's own notifications, where there is a way to: `notify-send` (Linux),
/// `osascript` (macOS). Best effort and in the background: a missing program, no desktop session or a hung one
/// never holds up or fails `up`.
pub(super) fn notify_desktop(url: &str) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        // The URL is an argument of the script, never part of its text.
        let script = [
            "-e",
            "on run argv",
            "-e",
            "display notification (item 1 of argv) with title \"remote-agent\"",
            "-e",
            "end run",
        ];
        ("osascript", script.into_iter().chain([url]).collect())
    } else {
        ("notify-send", vec!["--", "remote-agent", url])
    };
    let Some(path) = crate::process::find_executable(program) else {
        return;
    };
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    tokio::spawn(async move {
        let Ok(mut child) = cmd.spawn() else { return };
        // A desktop bus that never answers: give up (dropping the child kills it).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await;
    });
}

/// Without a tunnel, what to tell the owner when a phone cannot open the local address: loopback is this computer
/// alone, and "every address" names none a phone could type. None for an address a phone can reach.
fn phone_advice(local: SocketAddr) -> Option<String> {
    let port = local.port();
    if local.ip().is_loopback() {
        Some(format!(
            "  phone:   a phone cannot open {local}, which is this computer's own address. To use one, listen on a \
             LAN or Tailscale address (--host 192.168.1.20, --host 100.101.102.103), or get a \
             public HTTPS address from a tunnel: {}",
            tunnel::INSTALL_HINT
        ))
    } else if local.ip().is_unspecified() {
        Some(format!(
            "  phone:   listening on every address: a phone on this network or tailnet opens \
             http://<this computer's LAN or Tailscale address>:{port}; `remote-agent pair --base \
             http://ADDRESS:{port}` prints a one-time link for it"
        ))
    } else {
        None
    }
}

pub use crate::account::qr;

/// `remote-agent status`: what `up` runs, from its state file. Fails when `up` is not running.
pub fn status(flags: &Flags) -> anyhow::Result<()> {
    let state_dir = crate::config::state_dir(flags)?;
    let Some(state) = state::read_live(&state_dir) else {
        anyhow::bail!(
            "remote-agent up is not running (no live state in {})",
            state_dir.display()
        );
    };
    println!(
        "remote-agent up {} (pid {})",
        state.version.as_deref().unwrap_or("?"),
        state.pid
    );
    println!(
        "  local:   {}",
        state.local_url.as_deref().unwrap_or("(starting)")
    );
    let tunnel = &state.tunnel;
    let kind = tunnel.kind;
    if kind == TunnelKind::None {
        println!("  tunnel:  none (this computer and its network only)");
    } else {
        println!(
            "  tunnel:  {} {} ({})",
            kind.label(),
            tunnel.url.as_deref().unwrap_or("(no URL yet)"),
            if tunnel.ready {
                "connected"
            } else {
                "not connected"
            }
        );
    }
    println!("  user:    {}", state.user.as_deref().unwrap_or("?"));
    for (name, child) in state.children.iter() {
        // Without a tunnel there is no cloudflared to speak of.
        if kind == TunnelKind::None && name == "cloudflared" {
            continue;
        }
        println!(
            "  {name}: {} ({}{} restarts{})",
            child.state.label(),
            child
                .pid
                .map(|pid| format!("pid {pid}, "))
                .unwrap_or_default(),
            child.restarts,
            child
                .last_exit
                .as_deref()
                .map(|e| format!(", last exit: {}", describe_exit(e)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// How a child ended, in words: the recorded exit is an `ExitStatus` as Rust prints it (`exit status: 1`,
/// `signal: 9 (SIGKILL)`), or what kept it from starting.
fn describe_exit(how: &str) -> String {
    if let Some(code) = how.strip_prefix("exit status: ") {
        format!("exited with status {code}")
    } else if let Some(signal) = how.strip_prefix("signal: ") {
        format!("killed by signal {signal}")
    } else {
        how.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_gets_advice_where_it_cannot_reach_the_address() {
        let loopback = phone_advice("127.0.0.1:8000".parse().unwrap()).unwrap();
        assert!(
            loopback.contains("--host") && loopback.contains("cloudflared"),
            "{loopback}"
        );
        let every = phone_advice("0.0.0.0:8000".parse().unwrap()).unwrap();
        assert!(
            every.contains("remote-agent pair --base") && every.contains(":8000"),
            "{every}"
        );
        assert_eq!(phone_advice("192.168.1.20:8000".parse().unwrap()), None);
        assert!(phone_advice("[::1]:8000".parse().unwrap()).is_some());
    }

    #[test]
    fn a_qr_code_is_drawn() {
        let code = qr("https://example-words-here.trycloudflare.com");
        assert!(code.lines().count() > 10);
        assert!(code.contains('█') || code.contains('▀') || code.contains('▄'));
    }
}
