//! `fake-cloudflared`: a stand-in for `cloudflared` 2026.8.x used by the integration tests of `remote-agent up`.
//!
//! It follows cloudflared's observed behaviour (see docs/architecture.md): every log line on stderr as
//! `2026-11-24T19:54:05Z INF <message> key=value …` (or JSON lines with `--output json` /
//! `TUNNEL_LOG_OUTPUT=json`), stdout empty, the quick-tunnel banner, a metrics server with `/ready`,
//! `/quicktunnel`, `/healthcheck` and `/metrics`, the same exit codes, and graceful SIGTERM/SIGINT. It never
//! touches the network except to listen on the metrics address and to make one `GET /health` to the origin.
//!
//! # Command line (urfave/cli style)
//! Flags take `--flag value`, `--flag=value`, `-flag value` or `-flag=value`, and are read at every level
//! (before `tunnel`, after `tunnel`, after the subcommand) up to the first plain argument, like Go's `flag`
//! package: after it everything is an argument (so `run NAME --token T` has two arguments and fails).
//! Value flags: `--url`, `--metrics`, `--config`, `--quick-service` (accepted, never called), `--loglevel`
//! (debug|info|warn|error|fatal), `--protocol` (quic|http2|auto), `--grace-period` (Go duration),
//! `--token`, `--token-file`, `--output` (default|json). Boolean: `--no-autoupdate`. `-h/--help` prints help
//! on stdout, rc 0. `-v/-V/--version` and the `version` command print
//! `cloudflared version 2026.8.0 (built 2026-08-01-0000 UTC)` on stdout, rc 0.
//! An unknown flag, a flag without its value or a bad value prints `Incorrect Usage: flag provided but not
//! defined: -<name>` (or the matching Go message) and the help on **stdout**, rc **0**, like the real one.
//! The first command must be `tunnel` (the fake does not model the bare `cloudflared` service mode):
//! - `tunnel --url URL` — quick tunnel. Without `--url`: the real "did not specify any valid additional
//!   argument" text, rc 1.
//! - `tunnel run [NAME]` — named tunnel. The token comes from `--token`, `TUNNEL_TOKEN`, `--token-file`,
//!   `TUNNEL_TOKEN_FILE` (in that order) and must be base64 (standard alphabet, padded) of a JSON object
//!   with string keys `a`, `t` (a UUID) and `s` (base64), else `Provided Tunnel token is not valid.`, rc 255.
//!   Without a token the tunnel is `NAME` or the config's `tunnel:` key; neither → the `"cloudflared tunnel
//!   run" requires the ID or name …` text, rc 255. More than one argument → rc 255.
//! - `tunnel [--config FILE] ingress validate` — stdout `Validating rules from FILE` then `OK` (rc 0), or
//!   stderr `Validation failed: <why>` (rc 1): no ingress rules, or a last rule with a `hostname:` (other than
//!   `*`) or a `path:`. A missing file → `Validation failed: open FILE: no such file or directory`, rc 1.
//! - `tunnel [--config FILE] ingress rule URL` — stdout `Using rules from FILE`, `Matched rule #N` (from 0)
//!   and the rule's keys. Hostnames match exactly or by `*.` wildcard; a `path:` is compared as plain text
//!   (a leading `^` anchors it), not as a regex.
//!
//! The config file is read line by line, not as real YAML: top-level `key: value` scalars (`tunnel:` names
//! the tunnel, `metrics:` is used when `--metrics` is absent) and the `ingress:` list (`hostname`, `path`,
//! `service` of each item; nested keys such as `originRequest` are skipped). Only `--config` is read: the
//! fake never searches `~/.cloudflared` and the like. Like the real one, a running tunnel treats a missing
//! `--config` file as no config, and ingress rules from the config override `--url` (doc "Gotcha"); invalid
//! ingress rules stop a running tunnel with `Couldn't start tunnel`, rc 1.
//!
//! # A running tunnel (quick or named)
//! Quick: `Thank you for trying Cloudflare Tunnel…`, `Requesting new quick Tunnel on trycloudflare.com...`,
//! then the 5-line banner with a fresh `https://<word>-<word>-<word>-<4 of [a-z0-9]>.trycloudflare.com`.
//! Both: `Version`, `Settings`, `Generated Connector ID`, `Initial protocol` lines, then
//! `Starting metrics server on <addr>/metrics` (`--metrics`, else the config's `metrics:`, else
//! `127.0.0.1:0`; the real bound address is logged; a bind failure → `Error opening metrics server
//! listener: listen tcp …`, rc 1). After `FAKE_CLOUDFLARED_READY_MS` it logs `Registered tunnel connection
//! connIndex=0 connection=<uuid> event=0 ip=198.41.200.13 location=lhr01 protocol=quic` and is ready; then,
//! as a tunnel would forward traffic, it makes one `GET /health` (plain HTTP) to the origin — the ingress
//! rule that matches the quick hostname or the first named rule, else `--url` — and logs
//! `INF origin answered /health with <status>` or `ERR origin unreachable: <error>` (an `http_status:N`
//! service "answers" N; no origin at all, e.g. a bare token, → no request).
//!
//! Metrics server (HTTP/1.1, `Connection: close`, any method, query ignored):
//! - `/ready` → 503 `{"status":503,"readyConnections":0,"connectorId":"<uuid>"}` until registered and again
//!   from the first signal on; 200 `{"status":200,"readyConnections":1,"connectorId":"<uuid>"}` in between.
//! - `/quicktunnel` → 200 `{"hostname":"<quick host without scheme>"}`, `{"hostname":""}` for a named tunnel.
//! - `/healthcheck` → 200 `OK`. `/metrics` → Prometheus text (`cloudflared_tunnel_ha_connections` 1 or 0,
//!   `cloudflared_tunnel_total_requests`, `cloudflared_tunnel_request_errors`, and for a quick tunnel
//!   `cloudflared_tunnel_user_hostnames_counts{userHostname="https://<host>"} 1`). Anything else → 404.
//!
//! # Signals
//! SIGTERM or SIGINT: `Initiating graceful shutdown due to signal terminated ...` (`interrupt` for SIGINT),
//! `/ready` answers 503 at once, `Unregistered tunnel connection …` if it was registered, then after the
//! grace `Tunnel server stopped`, `Metrics server stopped`, rc 0. The grace is `FAKE_CLOUDFLARED_GRACE_MS`,
//! cut short by `--grace-period` / `TUNNEL_GRACE_PERIOD` when that is shorter (the real one exits when its
//! connections are closed or the grace period runs out). A second signal during the grace kills the
//! process with the default action (status "killed by SIGTERM/SIGINT", 143/130 in a shell).
//!
//! # Environment
//! - `FAKE_CLOUDFLARED_MODE` (unset or empty = normal; an unknown value → stderr message, rc 2):
//!   - `crash`: a quick tunnel prints the plain-text fatal line `failed to request quick Tunnel: Post
//!     "https://api.trycloudflare.com/tunnel": dial tcp: lookup api.trycloudflare.com: no such host` right
//!     after `Requesting new quick Tunnel…` and exits 1; a named tunnel does the same after starting its
//!     metrics server with `ERR edge discovery: error looking up Cloudflare edge IPs: the DNS query failed`.
//!   - `never-ready`: never registers (`/ready` stays 503); from the ready delay on, logs
//!     `ERR Failed to dial a quic connection error="timeout: no recent network activity"` and
//!     `INF Retrying connection in up to 2s` every second.
//!   - `exit0`: whatever the arguments, `Incorrect Usage: flag provided but not defined: -bogus` and the help
//!     on stdout, rc 0.
//!   - `stubborn`: SIGTERM/SIGINT only log `WRN fake-cloudflared: ignoring signal …`; only SIGKILL stops it.
//! - `FAKE_CLOUDFLARED_READY_MS`: delay before the registration (default 150).
//! - `FAKE_CLOUDFLARED_GRACE_MS`: shutdown grace (default 100).
//! - `FAKE_CLOUDFLARED_FAILED_PATH=<path>`: after the origin probe, also logs `ERR Request failed …
//!   dest=https://agent.example.com<path>`, as the real one logs a request its origin did not answer.
//! - `FAKE_CLOUDFLARED_RECORD=<dir>`: first thing at every start, appends `<pid> <argv as a JSON array>`
//!   (without argv[0]) as one line to `<dir>/starts` (the directory is created if needed).
//! - Read like the real one: `TUNNEL_TOKEN`, `TUNNEL_TOKEN_FILE`, `TUNNEL_LOG_OUTPUT`, `TUNNEL_GRACE_PERIOD`.

#[path = "clock.rs"]
mod clock;

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, raise, sigaction};
use serde_json::{Value, json};

const VERSION: &str = "2026.8.0";
const BUILT: &str = "2026-08-01-0000 UTC";
const CHECKSUM: &str = "5f0c1d2e3a4b59687766554433221100ffeeddccbbaa99887766554433221100";
const GO_VERSION: &str = "go1.24.6";
const EDGE_IP: &str = "198.41.200.13";
const DEFAULT_READY_MS: u64 = 150;
const DEFAULT_GRACE_MS: u64 = 100;
/// How often the main loop looks at the signal flags and the clock.
const TICK: Duration = Duration::from_millis(10);
/// Connect and read timeout of the origin probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const BOOL_FLAGS: &[&str] = &["no-autoupdate"];
const VALUE_FLAGS: &[&str] = &[
    "url",
    "metrics",
    "config",
    "quick-service",
    "loglevel",
    "protocol",
    "grace-period",
    "token",
    "token-file",
    "output",
];

const RUN_NEEDS_NAME: &str = "\"cloudflared tunnel run\" requires the ID or name of the tunnel to run as the last command line argument or in the configuration file.";
const RUN_ONE_ARG: &str =
    "\"cloudflared tunnel run\" accepts only one argument, the ID or name of the tunnel to run.";
const BAD_TOKEN: &str = "Provided Tunnel token is not valid.";
const NO_RULES: &str = "No ingress rules were defined in provided config (if any) nor from the cli, cloudflared will proxy all traffic to http://localhost:8080";
const LAST_RULE: &str =
    "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)";
const QUICK_FAIL: &str = "failed to request quick Tunnel: Post \"https://api.trycloudflare.com/tunnel\": dial tcp: lookup api.trycloudflare.com: no such host";
const EDGE_FAIL: &str =
    "edge discovery: error looking up Cloudflare edge IPs: the DNS query failed";
const NO_ARGUMENT: &str = "You did not specify any valid additional argument to the cloudflared tunnel command.

If you are trying to run a Quick Tunnel then you need to explicitly pass the --url flag.
See https://developers.cloudflare.com/cloudflare-one/connections/connect-apps/do-more-with-tunnels/trycloudflare for more information.

If you wish to start a named tunnel, you can do so with the `cloudflared tunnel run` command.";
const NO_CONFIG: &str = "Cannot determine default configuration path. No file [config.yml config.yaml] in [~/.cloudflared ~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]";
const THANK_YOU: &str = "Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee, are subject to the Cloudflare Online Services Terms of Use (https://www.cloudflare.com/website-terms/), and Cloudflare reserves the right to investigate your use of Tunnels for violations of such terms. If you intend to use Tunnels in production you should use a pre-created named tunnel by following: https://developers.cloudflare.com/cloudflare-one/connections/connect-apps";
const BANNER_TITLE: &str =
    "Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):";
const HELP: &str = "NAME:
   cloudflared tunnel - Use Cloudflare Tunnel to expose private services to the Internet or to Cloudflare connected private users.

USAGE:
   cloudflared tunnel [tunnel command options] [subcommand options] [arguments...]

COMMANDS:
   run      Proxy a local web server by running the given tunnel
   ingress  Validate and test cloudflared tunnel's ingress configuration

OPTIONS:
   --config value        Specifies a config file in YAML format.
   --url value           Connect to the local webserver at URL. (default: \"http://localhost:8080\") [$TUNNEL_URL]
   --metrics value       Listen address for metrics reporting. (default: \"localhost:0\") [$TUNNEL_METRICS]
   --no-autoupdate       Disable periodic check for updates, restarting the server with the new version. (default: false) [$NO_AUTOUPDATE]
   --loglevel value      Application logging level {debug, info, warn, error, fatal}. (default: \"info\") [$TUNNEL_LOGLEVEL]
   --output value        Output format for the logs (default, json) (default: \"default\") [$TUNNEL_MANAGEMENT_OUTPUT, $TUNNEL_LOG_OUTPUT]
   --protocol value      Protocol implementation to connect with Cloudflare's edge network. (default: \"auto\") [$TUNNEL_TRANSPORT_PROTOCOL]
   --grace-period value  When cloudflared receives SIGINT/SIGTERM it will stop accepting new requests, wait for in-progress requests to terminate, then shutdown. (default: 30s) [$TUNNEL_GRACE_PERIOD]
   --quick-service value URL for a service which manages unauthenticated 'quick' tunnels. (default: \"https://api.trycloudflare.com\")
   --token value         The Tunnel token. When provided along with credentials, this will take precedence. [$TUNNEL_TOKEN]
   --token-file value    Filepath at which to read the tunnel token. [$TUNNEL_TOKEN_FILE]
   --help, -h            show help
";

const WORDS: &[&str] = &[
    "amber", "atlas", "basin", "beacon", "blend", "border", "bridge", "cabin", "candle", "canyon",
    "cedar", "charter", "clever", "coastal", "comet", "copper", "coral", "crystal", "delta",
    "desert", "ember", "fabric", "falcon", "fiber", "forest", "galaxy", "garden", "glacier",
    "granite", "harbor", "hollow", "island", "jasmine", "kernel", "lantern", "lemon", "lunar",
    "maple", "marble", "meadow", "mirror", "motion", "nebula", "nectar", "ocean", "orbit",
    "palace", "pepper", "pixel", "prairie", "quartz", "ribbon", "river", "saddle", "scenic",
    "signal", "silver", "spruce", "summit", "thunder", "timber", "tulip", "valley", "velvet",
    "willow", "winter",
];

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
static REGISTERED: AtomicBool = AtomicBool::new(false);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON_LOGS: AtomicBool = AtomicBool::new(false);
static SHARED: OnceLock<Shared> = OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Normal,
    Crash,
    NeverReady,
    Exit0,
    Stubborn,
}

fn main() {
    set_signal_action(SigHandler::Handler(on_signal));
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    record_start(&argv);
    let mode = mode_from_env();
    if mode == Mode::Exit0 {
        incorrect_usage("flag provided but not defined: -bogus");
    }
    let cli = match parse_args(&argv) {
        Ok(cli) => cli,
        Err(Stop::Usage(message)) => incorrect_usage(&message),
        Err(Stop::Help) => print_help(),
        Err(Stop::Version) => print_version(),
        Err(Stop::Fail(message)) => fail(255, &message),
    };
    configure_logging(&cli);
    let command: Vec<&str> = cli.command.iter().map(String::as_str).collect();
    match command.as_slice() {
        ["version"] => print_version(),
        ["help"] | ["tunnel", "help"] | ["tunnel", "ingress"] => print_help(),
        ["tunnel"] => quick_tunnel(&cli, mode),
        ["tunnel", "run"] => named_tunnel(&cli, mode),
        ["tunnel", "ingress", "validate"] => ingress_validate(&cli),
        ["tunnel", "ingress", "rule"] => ingress_rule(&cli),
        _ => fail(
            255,
            "fake-cloudflared: the first command must be \"tunnel\" (or \"version\")",
        ),
    }
}

fn mode_from_env() -> Mode {
    match std::env::var("FAKE_CLOUDFLARED_MODE").as_deref() {
        Err(_) | Ok("") => Mode::Normal,
        Ok("crash") => Mode::Crash,
        Ok("never-ready") => Mode::NeverReady,
        Ok("exit0") => Mode::Exit0,
        Ok("stubborn") => Mode::Stubborn,
        Ok(other) => fail(
            2,
            &format!("fake-cloudflared: unknown FAKE_CLOUDFLARED_MODE {other:?}"),
        ),
    }
}

fn env_ms(name: &str, default: u64) -> Duration {
    let ms = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_millis(ms)
}

// ---------------------------------------------------------------------------------------------------
// Command line

/// The command line: flags from every level, the command words (`tunnel`, `run`, `ingress`, `validate`, …)
/// and the plain arguments after the last command word.
#[derive(Default, Debug)]
struct Cli {
    flags: BTreeMap<String, String>,
    command: Vec<String>,
    args: Vec<String>,
}

impl Cli {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }
}

/// Why parsing stopped before a command could run.
enum Stop {
    /// `Incorrect Usage: <message>` + help on stdout, rc 0.
    Usage(String),
    Help,
    Version,
    /// A message on stderr, rc 255.
    Fail(String),
}

/// The subcommands that may follow the command words `path`.
fn subcommands(path: &[String]) -> &'static [&'static str] {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        [] => &["tunnel", "version", "help"],
        ["tunnel"] => &["run", "ingress", "help"],
        ["tunnel", "ingress"] => &["validate", "rule"],
        _ => &[],
    }
}

fn parse_args(argv: &[String]) -> Result<Cli, Stop> {
    let mut cli = Cli::default();
    let mut rest = argv.iter();
    while let Some(arg) = rest.next() {
        if !cli.args.is_empty() {
            cli.args.push(arg.clone()); // flags end at the first plain argument
            continue;
        }
        if arg == "--" {
            cli.args.extend(rest.by_ref().cloned());
            break;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            parse_flag(arg, &mut rest, &mut cli.flags)?;
            continue;
        }
        if subcommands(&cli.command).contains(&arg.as_str()) {
            cli.command.push(arg.clone());
        } else if cli.command.is_empty() {
            return Err(Stop::Fail(format!(
                "fake-cloudflared: unknown command {arg:?}: the first command must be \"tunnel\""
            )));
        } else if cli.command == ["tunnel", "ingress"] {
            return Err(Stop::Fail(format!(
                "fake-cloudflared: unknown ingress command {arg:?} (validate or rule)"
            )));
        } else {
            cli.args.push(arg.clone());
        }
    }
    Ok(cli)
}

/// One flag, Go `flag` style: `-name`, `--name`, `-name=value`, `--name value`.
fn parse_flag<'a>(
    arg: &str,
    rest: &mut impl Iterator<Item = &'a String>,
    flags: &mut BTreeMap<String, String>,
) -> Result<(), Stop> {
    let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    let (name, inline) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (body, None),
    };
    match name {
        "h" | "help" => return Err(Stop::Help),
        "v" | "V" | "version" => return Err(Stop::Version),
        "" => return Err(Stop::Usage(format!("bad flag syntax: {arg}"))),
        _ if name.starts_with('-') => return Err(Stop::Usage(format!("bad flag syntax: {arg}"))),
        _ => {}
    }
    let value = if BOOL_FLAGS.contains(&name) {
        let value = inline.unwrap_or_else(|| "true".into());
        match parse_go_bool(&value) {
            Some(b) => b.to_string(),
            None => {
                return Err(Stop::Usage(format!(
                    "invalid boolean value {value:?} for -{name}: parse error"
                )));
            }
        }
    } else if VALUE_FLAGS.contains(&name) {
        match inline.or_else(|| rest.next().cloned()) {
            Some(value) => value,
            None => return Err(Stop::Usage(format!("flag needs an argument: -{name}"))),
        }
    } else {
        return Err(Stop::Usage(format!(
            "flag provided but not defined: -{name}"
        )));
    };
    if name == "grace-period" && parse_go_duration(&value).is_none() {
        return Err(Stop::Usage(format!(
            "invalid value {value:?} for flag -{name}: parse error"
        )));
    }
    flags.insert(name.to_string(), value);
    Ok(())
}

fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A Go duration such as `30s`, `1m30s`, `1.5s`, `250ms` or `0`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0.0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

fn incorrect_usage(message: &str) -> ! {
    write_stdout(&format!("Incorrect Usage: {message}\n\n{HELP}"));
    process::exit(0);
}

fn print_help() -> ! {
    write_stdout(HELP);
    process::exit(0);
}

fn print_version() -> ! {
    write_stdout(&format!("cloudflared version {VERSION} (built {BUILT})\n"));
    process::exit(0);
}

// ---------------------------------------------------------------------------------------------------
// Config file and ingress rules

#[derive(Default, Debug)]
struct Config {
    /// Top-level `key: value` scalars.
    keys: BTreeMap<String, String>,
    /// `None` without an `ingress:` key.
    ingress: Option<Vec<Rule>>,
}

#[derive(Default, Debug, Clone)]
struct Rule {
    hostname: Option<String>,
    path: Option<String>,
    service: Option<String>,
}

impl Rule {
    fn matches_all(&self) -> bool {
        self.hostname
            .as_deref()
            .is_none_or(|h| h.is_empty() || h == "*")
            && self.path.as_deref().is_none_or(str::is_empty)
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        let host_ok = match self.hostname.as_deref() {
            None | Some("" | "*") => true,
            Some(pattern) => match pattern.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => host.ends_with(suffix),
                _ => pattern.eq_ignore_ascii_case(host),
            },
        };
        let path_ok = match self.path.as_deref() {
            None | Some("") => true,
            Some(p) => match p.strip_prefix('^') {
                Some(prefix) => path.starts_with(prefix.trim_end_matches('$')),
                None => path.contains(p.trim_end_matches('$')),
            },
        };
        host_ok && path_ok
    }

    fn describe(&self) -> String {
        let mut text = String::new();
        for (key, value) in [
            ("hostname", &self.hostname),
            ("path", &self.path),
            ("service", &self.service),
        ] {
            if let Some(value) = value {
                let _ = writeln!(text, "\t{key}: {value}");
            }
        }
        text
    }
}

/// Reads `--config`, if given. `Err` is a Go-style `open FILE: …` message.
fn load_config(cli: &Cli) -> Result<Option<Config>, String> {
    let Some(path) = cli.flag("config") else {
        return Ok(None);
    };
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_config(&text))),
        Err(e) => Err(format!("open {path}: {}", go_error(&e))),
    }
}

/// The config of a running tunnel: an unreadable file counts as none, like the real one.
fn running_config(cli: &Cli) -> Option<Config> {
    load_config(cli).ok().flatten()
}

/// A line-based reading of the YAML subset cloudflared configs use.
fn parse_config(text: &str) -> Config {
    let mut config = Config::default();
    let mut in_ingress = false;
    // The column of the keys of the current ingress item; `None` right after a bare `-`.
    let mut key_indent: Option<usize> = None;
    for raw in text.lines() {
        let line = strip_comment(raw).trim_end();
        let content = line.trim_start();
        if content.is_empty() || content == "---" {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 && !content.starts_with('-') {
            in_ingress = false;
            if let Some((key, value)) = split_key(content) {
                if key == "ingress" {
                    in_ingress = true;
                    config.ingress = Some(Vec::new()); // `ingress: []` stays empty
                } else {
                    config.keys.insert(key.to_string(), value);
                }
            }
            continue;
        }
        if !in_ingress {
            continue;
        }
        let rules = config.ingress.get_or_insert_with(Vec::new);
        let entry = if let Some(item) = content.strip_prefix('-') {
            rules.push(Rule::default());
            let item_text = item.trim_start();
            key_indent =
                (!item_text.is_empty()).then(|| indent + 1 + (item.len() - item_text.len()));
            item_text
        } else {
            if key_indent.is_none() {
                key_indent = Some(indent);
            }
            if key_indent != Some(indent) {
                continue; // a nested key such as originRequest's
            }
            content
        };
        let (Some(rule), Some((key, value))) = (rules.last_mut(), split_key(entry)) else {
            continue;
        };
        match key {
            "hostname" => rule.hostname = Some(value),
            "path" => rule.path = Some(value),
            "service" => rule.service = Some(value),
            _ => {}
        }
    }
    config
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    line.find(" #").map_or(line, |i| &line[..i])
}

/// `key: value` → (`key`, `value` without quotes).
fn split_key(text: &str) -> Option<(&str, String)> {
    let (key, value) = text.split_once(':')?;
    let key = key.trim();
    if key.is_empty() || key.contains(' ') {
        return None;
    }
    let value = value.trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((key, unquoted.to_string()))
}

/// The ingress rules of `config`, checked the way `ingress validate` does.
fn checked_rules(config: Option<&Config>) -> Result<&[Rule], &'static str> {
    let rules = config
        .and_then(|c| c.ingress.as_deref())
        .filter(|r| !r.is_empty())
        .ok_or(NO_RULES)?;
    if rules.last().is_some_and(Rule::matches_all) {
        Ok(rules)
    } else {
        Err(LAST_RULE)
    }
}

/// The index and rule that serve `host` + `path` (the last rule when none matches).
fn find_rule<'a>(rules: &'a [Rule], host: &str, path: &str) -> (usize, &'a Rule) {
    let last = rules.len() - 1;
    rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.matches(host, path))
        .unwrap_or((last, &rules[last]))
}

/// Ingress rules that override `--url` in a running tunnel; invalid ones stop it like the real one.
fn running_rules(config: Option<&Config>) -> Option<&[Rule]> {
    let has_rules = config
        .and_then(|c| c.ingress.as_ref())
        .is_some_and(|r| !r.is_empty());
    if !has_rules {
        return None;
    }
    match checked_rules(config) {
        Ok(rules) => Some(rules),
        Err(why) => {
            log(Level::Error, "Couldn't start tunnel", &[("error", why)]);
            fail(1, why);
        }
    }
}

fn ingress_validate(cli: &Cli) -> ! {
    let config = load_config(cli).unwrap_or_else(|e| fail(1, &format!("Validation failed: {e}")));
    if let Some(path) = cli.flag("config") {
        write_stdout(&format!("Validating rules from {path}\n"));
    }
    match checked_rules(config.as_ref()) {
        Ok(_) => {
            write_stdout("OK\n");
            process::exit(0);
        }
        Err(why) => fail(1, &format!("Validation failed: {why}")),
    }
}

fn ingress_rule(cli: &Cli) -> ! {
    let [url] = cli.args.as_slice() else {
        fail(
            255,
            "\"cloudflared tunnel ingress rule\" requires exactly one argument, the URL to test.",
        );
    };
    let config = load_config(cli).unwrap_or_else(|e| fail(1, &e));
    if let Some(path) = cli.flag("config") {
        write_stdout(&format!("Using rules from {path}\n"));
    }
    let rules = checked_rules(config.as_ref())
        .unwrap_or_else(|why| fail(1, &format!("Validation failed: {why}")));
    let Some((host, path)) = split_url(url) else {
        fail(
            1,
            &format!("{url} doesn't have a hostname, consider adding a scheme"),
        );
    };
    let (index, rule) = find_rule(rules, &host, &path);
    write_stdout(&format!("Matched rule #{index}\n{}", rule.describe()));
    process::exit(0);
}

/// `scheme://[user@]host[:port]/path` → (host, path); `None` without a scheme or a host.
fn split_url(url: &str) -> Option<(String, String)> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let path = rest[end..].split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    (!host.is_empty()).then(|| (host.to_lowercase(), path.to_string()))
}

// ---------------------------------------------------------------------------------------------------
// Tunnels

/// What a running tunnel needs to know.
struct Tunnel {
    /// The quick tunnel's hostname (no scheme); `None` for a named tunnel.
    quick_host: Option<String>,
    /// A named tunnel's id.
    tunnel_id: Option<String>,
    /// The service the one `GET /health` goes to.
    origin: Option<String>,
    metrics: String,
    /// Whether a config file was read (else the real one logs that it found none).
    has_config: bool,
    mode: Mode,
}

fn quick_tunnel(cli: &Cli, mode: Mode) -> ! {
    if let Some(arg) = cli.args.first() {
        fail(
            255,
            &format!("fake-cloudflared: unknown tunnel subcommand {arg:?}"),
        );
    }
    let config = running_config(cli);
    let Some(url) = cli.flag("url") else {
        if let Some(id) = config.as_ref().and_then(|c| c.keys.get("tunnel")) {
            fail(
                1,
                &format!("Use `cloudflared tunnel run` to start tunnel {id}"),
            );
        }
        fail(1, NO_ARGUMENT);
    };
    log(Level::Info, THANK_YOU, &[]);
    log(
        Level::Info,
        "Requesting new quick Tunnel on trycloudflare.com...",
        &[],
    );
    if mode == Mode::Crash {
        fail(1, QUICK_FAIL);
    }
    let host = random_hostname();
    for line in ascii_box(&[BANNER_TITLE, &format!("https://{host}")]) {
        log(Level::Info, &line, &[]);
    }
    // Ingress rules from the config take over from --url (doc "Gotcha").
    let origin = match running_rules(config.as_ref()) {
        Some(rules) => find_rule(rules, &host, "/health").1.service.clone(),
        None => Some(url.to_string()),
    };
    let tunnel = Tunnel {
        quick_host: Some(host),
        tunnel_id: None,
        origin,
        metrics: metrics_address(cli, config.as_ref()),
        has_config: config.is_some(),
        mode,
    };
    run_tunnel(cli, &tunnel);
}

fn named_tunnel(cli: &Cli, mode: Mode) -> ! {
    if cli.args.len() > 1 {
        fail(255, RUN_ONE_ARG);
    }
    let config = running_config(cli);
    let token = tunnel_token(cli).unwrap_or_else(|e| fail(255, &e));
    let tunnel_id = match token {
        Some(token) => parse_token(&token).unwrap_or_else(|| fail(255, BAD_TOKEN)),
        None => {
            let reference = cli
                .args
                .first()
                .or_else(|| config.as_ref().and_then(|c| c.keys.get("tunnel")))
                .unwrap_or_else(|| fail(255, RUN_NEEDS_NAME));
            match uuid::Uuid::parse_str(reference) {
                Ok(id) => id.to_string(),
                Err(_) => new_uuid(), // a name: the real one looks its id up
            }
        }
    };
    let origin = match running_rules(config.as_ref()) {
        Some(rules) => rules[0].service.clone(),
        None => cli.flag("url").map(str::to_string),
    };
    let tunnel = Tunnel {
        quick_host: None,
        tunnel_id: Some(tunnel_id),
        origin,
        metrics: metrics_address(cli, config.as_ref()),
        has_config: config.is_some(),
        mode,
    };
    run_tunnel(cli, &tunnel);
}

/// The token from `--token`/`TUNNEL_TOKEN`, else from `--token-file`/`TUNNEL_TOKEN_FILE`.
fn tunnel_token(cli: &Cli) -> Result<Option<String>, String> {
    let from_flag_or_env = |flag: &str, env: &str| {
        cli.flag(flag)
            .map(str::to_string)
            .or_else(|| std::env::var(env).ok())
            .filter(|v| !v.is_empty())
    };
    if let Some(token) = from_flag_or_env("token", "TUNNEL_TOKEN") {
        return Ok(Some(token));
    }
    let Some(file) = from_flag_or_env("token-file", "TUNNEL_TOKEN_FILE") else {
        return Ok(None);
    };
    match fs::read_to_string(&file) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) => Err(format!(
            "Failed to read token file: open {file}: {}",
            go_error(&e)
        )),
    }
}

/// The tunnel id of a valid token: base64 of `{"a": "...", "t": "<uuid>", "s": "<base64>"}`.
fn parse_token(token: &str) -> Option<String> {
    let json: Value = serde_json::from_slice(&decode_base64(token)?).ok()?;
    let field = |key: &str| json.get(key).and_then(Value::as_str);
    field("a")?;
    decode_base64(field("s")?)?;
    uuid::Uuid::parse_str(field("t")?)
        .ok()
        .map(|id| id.to_string())
}

/// Standard base64 with padding, like Go's `base64.StdEncoding` (which skips `\r` and `\n`).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let sextet = |b: u8| -> Option<u32> {
        Some(u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let data_len = bytes.len() - padding;
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let mut word = 0u32;
        for &b in chunk {
            word = (word << 6) | if b == b'=' { 0 } else { sextet(b)? };
        }
        out.extend_from_slice(&word.to_be_bytes()[1..]);
    }
    if bytes[..data_len].contains(&b'=') {
        return None;
    }
    out.truncate(out.len() - padding);
    Some(out)
}

fn metrics_address(cli: &Cli, config: Option<&Config>) -> String {
    cli.flag("metrics")
        .map(str::to_string)
        .or_else(|| config.and_then(|c| c.keys.get("metrics").cloned()))
        .unwrap_or_else(|| "127.0.0.1:0".into())
}

/// Starts the metrics server and runs the tunnel until a signal ends it.
fn run_tunnel(cli: &Cli, tunnel: &Tunnel) -> ! {
    if !tunnel.has_config {
        log(Level::Info, NO_CONFIG, &[]);
    }
    let protocol = match cli.flag("protocol") {
        Some("http2") => "http2",
        _ => "quic",
    };
    log(
        Level::Info,
        &format!("Version {VERSION} (Checksum {CHECKSUM})"),
        &[],
    );
    log(
        Level::Info,
        &format!(
            "GOOS: {}, GOVersion: {GO_VERSION}, GoArch: {}",
            go_os(),
            go_arch()
        ),
        &[],
    );
    log(
        Level::Info,
        &format!("Settings: {}", settings(cli, tunnel.quick_host.is_some())),
        &[],
    );
    if let Some(id) = &tunnel.tunnel_id {
        log(Level::Info, "Starting tunnel", &[("tunnelID", id)]);
    }
    let connector_id = new_uuid();
    log(
        Level::Info,
        &format!("Generated Connector ID: {connector_id}"),
        &[],
    );
    log(Level::Info, &format!("Initial protocol {protocol}"), &[]);
    let listener = bind_metrics(&tunnel.metrics).unwrap_or_else(|e| {
        log(
            Level::Error,
            "Error opening metrics server listener",
            &[("error", &e)],
        );
        fail(1, &format!("Error opening metrics server listener: {e}"));
    });
    let address = listener
        .local_addr()
        .map_or_else(|_| tunnel.metrics.clone(), |a| a.to_string());
    let _ = SHARED.set(Shared {
        connector_id,
        quick_host: tunnel.quick_host.clone(),
    });
    log(
        Level::Info,
        &format!("Starting metrics server on {address}/metrics"),
        &[],
    );
    thread::spawn(move || serve_metrics(listener));
    if tunnel.mode == Mode::Crash {
        log(
            Level::Error,
            EDGE_FAIL,
            &[(
                "error",
                "lookup _v2-origintunneld._tcp.argotunnel.com: no such host",
            )],
        );
        fail(1, EDGE_FAIL);
    }
    supervise(tunnel, protocol)
}

/// The main loop: registers after the ready delay (or keeps failing to), and reacts to signals.
fn supervise(tunnel: &Tunnel, protocol: &str) -> ! {
    let ready_at = Instant::now() + env_ms("FAKE_CLOUDFLARED_READY_MS", DEFAULT_READY_MS);
    let mut next_retry = ready_at;
    let mut handled = 0;
    loop {
        let seen = SIGNALS.load(Ordering::SeqCst);
        if seen > handled {
            handled = seen;
            let name = signal_name(LAST_SIGNAL.load(Ordering::SeqCst));
            if tunnel.mode == Mode::Stubborn {
                let message = format!("fake-cloudflared: ignoring signal {name} (stubborn mode)");
                log(Level::Warn, &message, &[]);
            } else {
                shutdown(name);
            }
        }
        let now = Instant::now();
        if now >= ready_at {
            if tunnel.mode == Mode::NeverReady {
                if now >= next_retry {
                    log(
                        Level::Error,
                        "Failed to dial a quic connection",
                        &[("error", "timeout: no recent network activity")],
                    );
                    log(Level::Info, "Retrying connection in up to 2s", &[]);
                    next_retry += Duration::from_secs(1);
                }
            } else if !REGISTERED.load(Ordering::SeqCst) {
                register(tunnel, protocol);
            }
        }
        thread::sleep(TICK);
    }
}

fn register(tunnel: &Tunnel, protocol: &str) {
    REGISTERED.store(true, Ordering::SeqCst);
    let connection = new_uuid();
    log(
        Level::Info,
        "Registered tunnel connection",
        &[
            ("connIndex", "0"),
            ("connection", &connection),
            ("event", "0"),
            ("ip", EDGE_IP),
            ("location", "lhr01"),
            ("protocol", protocol),
        ],
    );
    if let Some(origin) = tunnel.origin.clone() {
        thread::spawn(move || probe_origin(&origin));
    }
}

/// Graceful shutdown after the first SIGTERM/SIGINT; a second one kills the process.
fn shutdown(signal: &str) -> ! {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    set_signal_action(SigHandler::SigDfl);
    if SIGNALS.load(Ordering::SeqCst) >= 2 {
        reraise();
    }
    log(
        Level::Info,
        &format!("Initiating graceful shutdown due to signal {signal} ..."),
        &[],
    );
    if REGISTERED.load(Ordering::SeqCst) {
        log(
            Level::Info,
            "Unregistered tunnel connection",
            &[("connIndex", "0"), ("event", "0"), ("ip", EDGE_IP)],
        );
    }
    thread::sleep(grace());
    log(Level::Info, "Tunnel server stopped", &[]);
    log(Level::Info, "Metrics server stopped", &[]);
    process::exit(0);
}

/// `FAKE_CLOUDFLARED_GRACE_MS`, cut short by `--grace-period` / `TUNNEL_GRACE_PERIOD`.
fn grace() -> Duration {
    let fake = env_ms("FAKE_CLOUDFLARED_GRACE_MS", DEFAULT_GRACE_MS);
    let configured = CONFIGURED_GRACE.get().copied().flatten();
    configured.map_or(fake, |g| g.min(fake))
}

static CONFIGURED_GRACE: OnceLock<Option<Duration>> = OnceLock::new();

fn settings(cli: &Cli, quick: bool) -> String {
    let mut map = cli.flags.clone();
    if quick {
        map.insert("ha-connections".into(), "1".into());
        map.entry("protocol".into())
            .or_insert_with(|| "quic".into());
    }
    if let Some(token) = map.get_mut("token") {
        *token = "*****".into();
    }
    let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", pairs.join(" "))
}

/// cloudflared's `AsciiBox` with a padding of 2.
fn ascii_box(lines: &[&str]) -> Vec<String> {
    let width = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let border = format!("+{}+", "-".repeat(width + 4));
    let mut out = vec![border.clone()];
    out.extend(lines.iter().map(|l| format!("|  {l:<width$}  |")));
    out.push(border);
    out
}

fn random_hostname() -> String {
    let word = || WORDS[random_u32() as usize % WORDS.len()];
    const ALPHANUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tag: String = (0..4)
        .map(|_| char::from(ALPHANUM[random_u32() as usize % ALPHANUM.len()]))
        .collect();
    format!("{}-{}-{}-{tag}.trycloudflare.com", word(), word(), word())
}

/// 32 random bits (the first bytes of a v4 UUID are all random).
fn random_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn go_os() -> &'static str {
    std::env::consts::OS
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------------
// Origin probe

/// The one request a ready tunnel makes to its origin; the outcome goes to the log.
fn probe_origin(service: &str) {
    if let Some(code) = service.strip_prefix("http_status:") {
        let message = format!("origin answered /health with {code}");
        log(Level::Info, &message, &[]);
        return;
    }
    match http_get_status(service, "/health") {
        Ok(status) => log(
            Level::Info,
            &format!("origin answered /health with {status}"),
            &[],
        ),
        Err(e) => log(Level::Error, &format!("origin unreachable: {e}"), &[]),
    }
    // A request the origin did not take, logged as the real one logs it: its URL in `dest=`.
    if let Ok(path) = std::env::var("FAKE_CLOUDFLARED_FAILED_PATH") {
        log(
            Level::Error,
            "Request failed",
            &[
                ("error", "Unable to reach the origin service"),
                ("connIndex", "0"),
                ("dest", &format!("https://agent.example.com{path}")),
                ("event", "0"),
                ("type", "http"),
            ],
        );
    }
}

/// `GET path` on a plain-HTTP `service` (`http://host:port`, or `host:port`); returns the status code.
fn http_get_status(service: &str, path: &str) -> Result<u16, String> {
    let (scheme, rest) = service.split_once("://").unwrap_or(("http", service));
    if scheme != "http" {
        return Err(format!(
            "fake-cloudflared only speaks plain http, not {scheme} ({service})"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let target = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addresses: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp: lookup {authority}: {e}"))?
        .collect();
    let mut last_error = format!("dial tcp {target}: no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, PROBE_TIMEOUT) {
            Ok(stream) => {
                return read_status(stream, authority, path)
                    .map_err(|e| format!("read tcp {address}: {}", go_error(&e)));
            }
            Err(e) => last_error = format!("dial tcp {address}: connect: {}", go_error(&e)),
        }
    }
    Err(last_error)
}

fn read_status(mut stream: TcpStream, host: &str, path: &str) -> io::Result<u16> {
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fake-cloudflared/{VERSION}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next().and_then(|c| c.parse().ok())) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => Ok(code),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed HTTP response",
        )),
    }
}

// ---------------------------------------------------------------------------------------------------
// Metrics server

/// What the metrics endpoints report besides the atomics.
struct Shared {
    connector_id: String,
    quick_host: Option<String>,
}

fn bind_metrics(address: &str) -> Result<TcpListener, String> {
    // Go reads `:port` as every interface.
    let address = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_string(),
    };
    TcpListener::bind(&address).map_err(|e| format!("listen tcp {address}: bind: {}", go_error(&e)))
}

fn serve_metrics(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        thread::spawn(move || answer(stream));
    }
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((method, path)) = read_request(&mut stream) else {
        return;
    };
    let (status, content_type, body) = route(&path);
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Reads the request head; returns its method and path (without the query).
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next()?.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    Some((method, path))
}

fn is_ready() -> bool {
    REGISTERED.load(Ordering::SeqCst) && !SHUTTING_DOWN.load(Ordering::SeqCst)
}

/// Status, content type and body for `path`.
fn route(path: &str) -> (u16, &'static str, String) {
    let (connector_id, quick_host) = SHARED.get().map_or(("", ""), |s| {
        (
            s.connector_id.as_str(),
            s.quick_host.as_deref().unwrap_or(""),
        )
    });
    match path {
        "/ready" => {
            let ready = is_ready();
            let status = if ready { 200 } else { 503 };
            let body = format!(
                "{{\"status\":{status},\"readyConnections\":{},\"connectorId\":\"{connector_id}\"}}\n",
                u8::from(ready)
            );
            (status, "application/json", body)
        }
        "/quicktunnel" => (
            200,
            "application/json",
            format!("{}\n", json!({ "hostname": quick_host })),
        ),
        "/healthcheck" => (200, "text/plain; charset=utf-8", "OK\n".into()),
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus(quick_host),
        ),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n".into(),
        ),
    }
}

fn prometheus(quick_host: &str) -> String {
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u8)]| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    };
    metric(
        "build_info",
        "gauge",
        "Build and version information",
        &[(
            format!(
                "{{goversion=\"{GO_VERSION}\",revision=\"{BUILT}\",type=\"\",version=\"{VERSION}\"}}"
            ),
            1,
        )],
    );
    metric(
        "cloudflared_tunnel_ha_connections",
        "gauge",
        "Number of active ha connections",
        &[(String::new(), u8::from(is_ready()))],
    );
    metric(
        "cloudflared_tunnel_request_errors",
        "counter",
        "Amount of errors due to proxying",
        &[(String::new(), 0)],
    );
    metric(
        "cloudflared_tunnel_total_requests",
        "counter",
        "Amount of requests proxied through all the tunnels",
        &[(String::new(), 0)],
    );
    if !quick_host.is_empty() {
        metric(
            "cloudflared_tunnel_user_hostnames_counts",
            "counter",
            "Which user hostnames cloudflared is serving",
            &[(format!("{{userHostname=\"https://{quick_host}\"}}"), 1)],
        );
    }
    text
}

// ---------------------------------------------------------------------------------------------------
// Logging

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Debug => "DBG",
            Level::Info => "INF",
            Level::Warn => "WRN",
            Level::Error => "ERR",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Applies `--loglevel`, `--output`/`TUNNEL_LOG_OUTPUT` and `--grace-period`/`TUNNEL_GRACE_PERIOD`.
fn configure_logging(cli: &Cli) {
    let min = match cli.flag("loglevel") {
        Some("debug" | "trace") => Level::Debug as u8,
        Some("warn" | "warning") => Level::Warn as u8,
        Some("error") => Level::Error as u8,
        Some("fatal" | "panic") => Level::Error as u8 + 1,
        _ => Level::Info as u8,
    };
    MIN_LEVEL.store(min, Ordering::SeqCst);
    let output = cli
        .flag("output")
        .map(str::to_string)
        .or_else(|| std::env::var("TUNNEL_LOG_OUTPUT").ok());
    JSON_LOGS.store(output.as_deref() == Some("json"), Ordering::SeqCst);
    let grace = cli
        .flag("grace-period")
        .map(str::to_string)
        .or_else(|| std::env::var("TUNNEL_GRACE_PERIOD").ok())
        .and_then(|g| parse_go_duration(&g));
    let _ = CONFIGURED_GRACE.set(grace);
}

/// One log line on stderr: `<time> INF <message> key=value …`, or a JSON object with `--output json`.
fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    if (level as u8) < MIN_LEVEL.load(Ordering::SeqCst) {
        return;
    }
    let time = timestamp();
    let line = if JSON_LOGS.load(Ordering::SeqCst) {
        let mut object = serde_json::Map::new();
        object.insert("level".into(), json!(level.name()));
        object.insert("time".into(), json!(time));
        object.insert("message".into(), json!(message));
        for (key, value) in fields {
            let value = value
                .parse::<i64>()
                .map_or_else(|_| json!(value), |n| json!(n));
            object.insert((*key).to_string(), value);
        }
        Value::Object(object).to_string()
    } else {
        let mut line = format!("{time} {} {message}", level.tag());
        for (key, value) in fields {
            let _ = write!(line, " {key}={}", console_value(value));
        }
        line
    };
    write_stderr(&line);
}

/// zerolog's console writer quotes values with spaces, quotes, `=` or `\`.
fn console_value(value: &str) -> String {
    let quote = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
    if quote {
        json!(value).to_string()
    } else {
        value.to_string()
    }
}

/// The current UTC time as `2026-11-24T19:54:05Z`.
fn timestamp() -> String {
    clock::utc(false)
}

/// A Go-like text for an I/O error (`connection refused`, `no such file or directory`, …).
fn go_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Process plumbing

extern "C" fn on_signal(signal: c_int) {
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Sets the action of SIGINT and SIGTERM: our flag-setting handler, or the default (to die on the next one).
fn set_signal_action(handler: SigHandler) {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe; SigDfl needs nothing.
        unsafe { sigaction(signal, &action) }.expect("sigaction");
    }
}

/// Dies of the last signal received (its action is the default by now).
fn reraise() {
    if let Ok(signal) = Signal::try_from(LAST_SIGNAL.load(Ordering::SeqCst)) {
        let _ = raise(signal);
    }
}

fn signal_name(signal: c_int) -> &'static str {
    if signal == Signal::SIGINT as c_int {
        "interrupt"
    } else {
        "terminated"
    }
}

/// Appends `<pid> <argv JSON>` to `$FAKE_CLOUDFLARED_RECORD/starts`, if set.
fn record_start(argv: &[String]) {
    let Some(dir) = std::env::var_os("FAKE_CLOUDFLARED_RECORD").map(PathBuf::from) else {
        return;
    };
    let line = format!("{} {}\n", process::id(), json!(argv));
    let written = fs::create_dir_all(&dir)
        .and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("starts"))
        })
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        write_stderr(&format!(
            "fake-cloudflared: cannot record to {}: {e}",
            dir.display()
        ));
    }
}

fn write_stdout(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn write_stderr(line: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

/// Prints `message` on stderr as a plain line (no timestamp, like cloudflared's fatal line) and exits.
fn fail(code: i32, message: &str) -> ! {
    write_stderr(message);
    process::exit(code);
}
