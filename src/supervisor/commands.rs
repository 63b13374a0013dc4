//! How `up` starts each child: `serve` with the flags it was given and the ports it got, cloudflared for the
//! tunnel chosen.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::Context;
use tokio::process::Command;

use super::Supervisor;
use crate::files;
use crate::process;
use crate::tunnel::{self, Kind, Named};

impl Supervisor {
    pub(super) fn serve_command(&mut self) -> anyhow::Result<Command> {
        let mut flags = self.flags.clone();
        // After the first start, keep the ports it got, so the URLs printed stay true across restarts.
        if let Some(local) = self.local {
            flags.port = Some(local.port());
        }
        let log_path = self.state_dir.join("serve.log");
        // Its stderr (a panic, an early error) goes to the same file as its log.
        let log = files::append_private(&log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.launch_dir)
            .arg("serve")
            .args(flags.to_args())
            .arg(format!("--log-file={}", log_path.display()));
        // We run with umask 0077; Claude is to get the one the user started us with.
        if let Some(mask) = process::user_umask() {
            cmd.arg(format!("--child-umask={mask:03o}"));
        }
        match self.kind {
            Some(Kind::Quick) => {
                let origin = self
                    .tunnel_origin
                    .map_or("127.0.0.1:0".to_string(), |a| a.to_string());
                cmd.arg(format!("--tunnel-listen={origin}"));
            }
            // A named tunnel's ingress names a fixed port; serve's tunnel listener must be there.
            Some(Kind::Named(_)) => {
                cmd.arg(format!("--tunnel-listen=127.0.0.1:{}", self.tunnel_port));
            }
            None => {}
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        Ok(cmd)
    }

    pub(super) fn tunnel_command(&mut self) -> anyhow::Result<Option<Command>> {
        let (Some(kind), Some(bin)) = (&self.kind, &self.cloudflared) else {
            return Ok(None);
        };
        // Named tunnels reach serve where their ingress says (the local port); quick ones the tunnel listener.
        let origin = match kind {
            Kind::Quick => match self.tunnel_origin {
                Some(origin) => origin,
                None => return Ok(None),
            },
            Kind::Named(_) => SocketAddr::from(([127, 0, 0, 1], self.tunnel_port)),
        };
        let metrics = free_port()?;
        self.metrics = Some(metrics);
        let mut cmd = Command::new(bin);
        tunnel::scrub_env(&mut cmd)
            .args(tunnel::args(kind, origin, metrics, &self.quick_config))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Kind::Named(Named::Token(token)) = kind {
            cmd.env("TUNNEL_TOKEN", token);
        }
        Ok(Some(cmd))
    }
}

/// Picks a free loopback port for cloudflared's metrics server.
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}
