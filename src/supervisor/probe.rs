//! The probes, each second: `serve`'s /health (a serve that stops answering is restarted), cloudflared's /ready
//! and, for a quick tunnel, its URL; and what their answers change.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use super::{EDGE_WARNING, Event, Supervisor};
use crate::tunnel::{self, Kind, Named};

impl Supervisor {
    /// Each tick: probe serve's /health, and cloudflared's /ready (and /quicktunnel until the URL is known);
    /// restart a serve that has not answered for the health timeout.
    pub(super) fn probe(&mut self) {
        if self.serve.running() && self.last_healthy.elapsed() > self.health_timeout {
            println!(
                "serve has not answered /health for {} s; restarting it",
                self.health_timeout.as_secs()
            );
            self.serve.stop_run();
            self.last_healthy = Instant::now();
        }
        let tx = self.events.0.clone();
        if let Some(local) = self.local.filter(|_| self.serve.running()) {
            let generation = self.serve.generation;
            let addr = if local.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], local.port()))
            } else {
                local
            };
            tokio::spawn(async move {
                let probe = format!("{}: 1\r\n", crate::server::PROBE_HEADER);
                if let Some((200, _)) = tunnel::get_with(&addr.to_string(), "/health", &probe).await
                {
                    let _ = tx.send(Event::Healthy { generation });
                }
            });
        }
        self.probe_tunnel();
        if let Some(since) = self.cf_started
            && !self.ready
            && !self.edge_warned
            && self.tunnel.running()
            && since.elapsed() > EDGE_WARNING
        {
            self.edge_warned = true;
            println!(
                "still no connection to the Cloudflare edge after {} s: is this computer online? cloudflared's log: {}",
                EDGE_WARNING.as_secs(),
                self.state_dir.join("cloudflared.log").display()
            );
        }
    }

    /// Asks cloudflared's metrics server whether it is ready (and, for a quick tunnel, its URL).
    pub(super) fn probe_tunnel(&self) {
        let Some(metrics) = self.metrics.filter(|_| self.tunnel.running()) else {
            return;
        };
        let tx = self.events.0.clone();
        let generation = self.tunnel.generation;
        let want_url = matches!(self.kind, Some(Kind::Quick)) && self.public_url.is_none();
        tokio::spawn(async move {
            let addr = metrics.to_string();
            let ready = tunnel::ready(&addr).await;
            let url = if want_url {
                tunnel::quick_url(&addr).await
            } else {
                None
            };
            let _ = tx.send(Event::Tunnel {
                generation,
                ready,
                url,
            });
        });
    }

    pub(super) fn on_tunnel_probe(&mut self, ready: bool, url: Option<String>) {
        let url = match &self.kind {
            // The banner's URL, once cloudflared's own /quicktunnel confirms it.
            Some(Kind::Quick) => url.filter(|u| self.banner_url.as_ref().is_none_or(|b| b == u)),
            Some(Kind::Named(named)) if self.public_url.is_none() => Some(named_url(named)),
            _ => None,
        };
        // What changed is recorded first (state.json, which `status` and the tests read), then printed: a line on
        // the console is already true of the state file.
        let new_url = url.filter(|u| self.public_url.as_ref() != Some(u));
        let again = self.public_url.is_some() || self.announced;
        if let Some(url) = &new_url {
            self.public_url = Some(url.clone());
        }
        let connected = ready && !self.ready;
        self.ready = ready;
        // A late answer from the run that just ended: its URL ended with it.
        self.forget_stale_url();
        self.write_state();

        if let Some(url) = new_url {
            if again {
                println!("cloudflared restarted; the public URL is now:");
                super::console::notify_desktop(&url);
            }
            println!("  public:  {url}");
            if !again && self.kind == Some(Kind::Quick) {
                println!(
                    "  note:    a quick tunnel's address changes whenever the tunnel restarts (up prints the new \
                     one); a named tunnel keeps one address (--tunnel named, see terraform/README.md)"
                );
            }
            self.offer_pairing(&url);
            if !ready {
                println!("waiting for the Cloudflare edge…");
            }
            self.announced = true;
        }
        if connected {
            println!("tunnel connected to the Cloudflare edge");
        }
        let _ = std::io::stdout().flush();
    }
}

fn named_url(named: &Named) -> String {
    match named {
        Named::Config { config, .. } => std::fs::read_to_string(config)
            .ok()
            .and_then(|c| tunnel::ingress_hostnames(&c).into_iter().next())
            .map_or_else(
                || "(see the ingress of your tunnel's config)".into(),
                |h| format!("https://{h}"),
            ),
        Named::Token(_) | Named::TokenFile(_) => {
            "(the hostname your tunnel routes: see terraform output or the Cloudflare dashboard)"
                .into()
        }
    }
}
