//! `fake-claude`: a stand-in for the Claude Code CLI (`claude`, v2.1.197) used by the integration tests.
//!
//! It follows the headless contract of the real CLI as observed (`-p` mode only, one-shot or long-lived; see
//! docs/architecture.md):
//! the same flags, the same error texts and exit codes, the same stream-json message shapes, sessions that
//! can be resumed, and the same reaction to SIGINT/SIGTERM. Instead of calling a model it replies
//! `echo[n]: <prompt>`, where `n` counts the prompts of the session so far (this one included).
//!
//! # Arguments (like the real CLI, which uses commander)
//! `-p/--print` (required), `--output-format text|json|stream-json` (stream-json needs `--verbose`;
//! json + `--verbose` prints a JSON array of every message), `--verbose`, `--include-partial-messages`,
//! `--resume ID`, `--permission-mode MODE`, `--allowedTools/--allowed-tools TOOLS...` (variadic in the
//! space form: it swallows the following non-option arguments, like the real CLI), `--model`,
//! `--max-budget-usd`, `--append-system-prompt`, `--input-format text|stream-json` and
//! `--permission-prompt-tool TOOL` (see "Long-lived mode"). Value options accept `--opt=V` and `--opt V` (a
//! value that starts with `-` is taken literally). `--` ends the options. `-v/--version` prints `2.1.197 (Claude Code)`.
//! Any other option: `error: unknown option '<arg>'`, rc 1.
//! `--permission-mode bypassPermissions` as root fails unless `IS_SANDBOX=1`.
//!
//! # Prompt
//! Without a positional argument the prompt is stdin read to EOF (raw bytes, NULs kept). With one, the
//! prompt is the argument, plus `"\n" + stdin` when stdin is not a TTY and gives data; an open stdin that
//! gives nothing for 3 s prints `Warning: no stdin data received in 3s, proceeding without it…` on stderr.
//!
//! # Markers (anywhere in the prompt text; all combinable)
//! - `[[slow:S]]` sleep S seconds (float) while "running a tool", checking signals every 10 ms.
//! - `[[tool]]` a Bash `tool_use` (id `toolu_fake1`) and its `tool_result` (`hi`) first; `num_turns` = 2.
//! - `[[thinking]]` a thinking block first (with `thinking_delta`/`signature_delta` events).
//! - `[[error]]` API failure: synthetic assistant, result `success` + `is_error:true`
//!   (`API Error: Unable to connect to API (ConnectionRefused)`), rc 1.
//! - `[[not-logged-in]]` no credentials: like `[[error]]`, with the text `Not logged in · Please run /login` and
//!   the synthetic message's `"error":"authentication_failed"`, rc 1.
//! - `[[retry:N]]` N `system`/`api_retry` lines before the reply.
//! - `[[deltas:N]]` exactly N `text_delta` events (the reply is padded with `.` if it is shorter than N).
//! - `[[reply:B]]` the reply is padded with `.` to B characters (with `[[deltas:N]]`, still N deltas).
//! - `[[paced:N:MS]]` the text block is instead N `text_delta` events sent MS milliseconds apart, each holding
//!   the wall-clock time it was printed (nanoseconds since the epoch, then a space): for latency benchmarks.
//! - `[[garbage]]` also a non-JSON line, a line of an unknown type and a `system`/`status` line
//!   (stream-json only).
//! - `[[orphan]]` spawn `sleep 300` in its own session (like the Bash tool; stdio on /dev/null) and
//!   never wait for it, so it outlives the fake.
//! - `[[linger:S]]` keep running S seconds after the result line (SIGINT ignored, SIGTERM exits 143).
//! - `[[ignore-int]]` ignore SIGINT. `[[stubborn]]` ignore SIGINT and SIGTERM (only SIGKILL works); in the
//!   long-lived mode also the `interrupt` control request (acknowledged, then nothing: a hung CLI).
//! - `[[success-on-int]]` on SIGINT print a success result (`finished anyway`) and exit 0.
//! - `[[stderr]]` write a few lines to stderr.
//! - `[[huge-line:MB]]` print MB MiB of `x` on stdout with no newline (a runaway line), then go on (the rest of
//!   the turn's first line follows it).
//! - `[[write:NAME]]` create the file NAME in the cwd, as the Write tool does (mode 0666 less the umask).
//!
//! Order of a turn: init, stderr lines, huge line, garbage, retries, [tool_use, orphan, write, slow,
//! tool_result | orphan, write, slow], reply (or API error), result, linger.
//!
//! # Signals
//! SIGINT (default): during `[[tool]]`'s `[[slow]]` the tool's `tool_result` (`is_error`, `[Request interrupted by
//! user for tool use]`); a `user` line `[Request interrupted by user]`, then a `result` with subtype
//! `error_during_execution` and `terminal_reason` `aborted_tools` (during `[[slow]]`) or `aborted_streaming`
//! (elsewhere), rc 0. SIGTERM: rc 143 and no result. While stdin is still being read (before the markers
//! are known): SIGINT → rc 130, SIGTERM → rc 143, nothing printed.
//!
//! # Long-lived mode (`--input-format stream-json`; the code is in claude_live.rs)
//! Needs `--output-format stream-json` (else `Error: --input-format=stream-json requires
//! output-format=stream-json`, rc 1). `--resume` of a session of another cwd fails as above, before stdin is
//! read. Nothing is printed before the first stdin line. A thread reads stdin line by line; the main thread
//! runs turns:
//! - `{"type":"user","message":{"role":"user","content":TEXT|[blocks]}}` is a prompt (blocks: their `text`
//!   joined by `"\n"`, an `image` block standing as `[image MEDIA_TYPE, N bytes of base64]`); it runs as the
//!   next turn, queued if a turn runs. A turn is a one-shot turn with every
//!   marker above (`[[linger:S]]` only delays the next turn; `[[error]]` does not end the process), its own
//!   `system/init` (same session id for the whole process, the model of the latest `set_model`, the current
//!   mode) and its `result`, whose `total_cost_usd` is cumulative for the process (+0.0021 per turn, a
//!   one-shot turn's cost, so each turn's own cost is the difference; no `result_index`). The session gets one
//!   line per prompt, so `echo[n]` counts across turns and `--resume`.
//!   Stdin EOF: the current and queued turns finish, then rc 0 (while a permission request waits: rc 0 at once).
//! - Control requests `{"type":"control_request","request_id":R,"request":{"subtype":…}}`, answered at once with
//!   `{"type":"control_response","response":{"subtype":"success","request_id":R,"response":{…}}}`: `initialize`
//!   (`{"commands":[],"models":[],"pid":PID}`), `interrupt` (`{}`), `set_permission_mode {"mode"}` (any string;
//!   from the next tool call on), `set_model {"model"}` (`null`: the default model). Any other subtype:
//!   `{"subtype":"error","request_id":R,"error":"Unknown request subtype: X"}`. `interrupt` stops a running turn
//!   at once (during `[[slow]]`, a command, or a wait for a permission answer): during a tool its `tool_result`
//!   (`is_error`), then a `user` line `[Request interrupted by user for tool use]` and a result
//!   `error_during_execution` / `aborted_tools`; elsewhere `[Request interrupted by user]` / `aborted_streaming`.
//!   The process stays; a pending `can_use_tool` is abandoned (a late answer is ignored, as is any
//!   `control_response` we did not ask for).
//! - Tool markers, run in the order they appear, after `[[tool]]`/`[[slow]]` and before the reply; each is a
//!   `tool_use` `toolu_fakeN` (N = 2, 3, … over the process) and its `tool_result`, and adds 1 to `num_turns`:
//!   - `[[bash:CMD]]`: Bash `{"command":CMD,"description":<first word>}`. Runs without asking when the mode is
//!     `bypassPermissions`, the first word is echo/ls/pwd/cat/true, the mode is `acceptEdits` and the first word
//!     is touch/mkdir/cp/mv, or an allow rule matches: `Bash`, `Bash(CMD)`, `Bash(PREFIX *)`, `Bash(PREFIX:*)`,
//!     from `--allowedTools`, from an earlier answer in this process, or from `permissions.allow` of
//!     `<cwd>/.claude/settings.local.json` (read at each check). Else it asks: `{"type":"control_request",
//!     "request_id":<uuid>,"request":{"subtype":"can_use_tool","tool_name":"Bash","display_name":"Bash",
//!     "input":…,"description":…,"permission_suggestions":[addRules CMD localSettings, setMode acceptEdits
//!     session],"blocked_path":"<cwd>/<last word>","tool_use_id":…}}` and waits (no timeout). A command that
//!     runs: `sh -c` in the cwd in its own session (killed on interrupt), output = stdout+stderr, `is_error` if
//!     rc≠0.
//!   - `[[question]]`: AskUserQuestion with two questions (Database: SQLite/Postgres; Checks, multi-select: Unit
//!     tests/Lint/Browser); always asks (no suggestions). Allow: `Your questions have been answered:
//!     "Q1"="A1", "Q2"="A2". You can now continue with these answers in mind.` from `updatedInput.answers`.
//!   - `[[plan]]`: ExitPlanMode `{"plan":"# Plan…"}`. Outside plan mode `You are not in plan mode…` (`is_error`)
//!     without asking; in plan mode asks, and allow gives `User has approved your plan. You can now start
//!     coding.` and mode `default`.
//!   - `[[edit:PATH:OLD=>NEW]]`: Edit `{"file_path":<cwd>/PATH (PATH if absolute),"old_string":OLD,
//!     "new_string":NEW}` (`\n` in OLD and NEW is a newline; PATH has no `:`). Runs without asking in
//!     `acceptEdits` and `bypassPermissions`; else asks (`tool_name` Edit, a setMode acceptEdits suggestion,
//!     `blocked_path` the file). Allowed, it replaces the first OLD in the file (`The file P has been updated.`),
//!     or fails (`String to replace not found in file.`, `is_error`).
//!   - `[[writefile:PATH:CONTENT]]`: Write `{"file_path":<cwd>/PATH (PATH if absolute),"content":CONTENT}` (`\n`
//!     in CONTENT is a newline; PATH has no `:`). Asks as `[[edit]]` does (`tool_name` Write); allowed, writes the
//!     file, made if missing (`File created successfully at: P`, or `The file P has been updated.`).
//!   - `[[withdraw]]`: 300 ms after asking, `{"type":"control_cancel_request","request_id":R}`, then as a deny
//!     with message `withdrawn`.
//!
//!   Answers (`control_response` with our request id): allow with `updatedInput` → the tool runs with it;
//!   `updatedPermissions` `addRules` are remembered for the process (`localSettings` ones are also written to
//!   `permissions.allow` as `Bash(<ruleContent>)`), `setMode` changes the mode. Allow without `updatedInput`:
//!   `Tool permission request failed: ZodError: updatedInput required` (`is_error`), nothing runs. Deny: the
//!   message (`is_error`), the turn goes on and its result lists `permission_denials` (`tool_name`,
//!   `tool_use_id`, `tool_input`). Deny with `"interrupt":true`: as an interrupt during a tool. An `error`
//!   response: `Tool permission request failed: Error: <error>`, the turn goes on. Without
//!   `--permission-prompt-tool stdio` nothing is asked: the call is denied (`Claude requested permissions to use
//!   <tool>, but you haven't granted it yet.`).
//! - Signals: SIGINT during a turn ends it like `interrupt`, then rc 0; SIGTERM rc 143 without a result. Between
//!   turns SIGINT → rc 130, SIGTERM → rc 143, nothing printed.
//!
//! # Environment
//! - `CLAUDE_CONFIG_DIR` (else `$HOME/.claude`): sessions live in `<dir>/fake-sessions/<uuid>.jsonl`, one
//!   JSON line per prompt; the first line holds the cwd and `--resume` from another cwd fails, like the
//!   real CLI. `--resume ID` also takes a session in the real CLI's layout, `<dir>/projects/<enc(cwd)>/ID.jsonl`
//!   (an adopted one), but only when the fake's own cwd encodes to that folder (`enc`: every character but ASCII
//!   letters and digits becomes `-`; past 200 characters, those 200, `-` and the base-36 Java string hash), as the
//!   real CLI finds a session only under its cwd's folder; from another cwd: `No conversation found with session
//!   ID: ID`. The resumed session goes on in `fake-sessions/` (its first prompt there is `echo[1]`); the real
//!   file is never written.
//! - `FAKE_CLAUDE_RECORD=<dir>`: before any output writes `<pid>.argv.json` (argv without argv[0]),
//!   `<pid>.env.json`, `<pid>.cwd`, then `<pid>.prompt` (exact bytes) and, with `[[orphan]]`,
//!   `<pid>.orphan` (the orphan's pid). Long-lived mode: `<pid>.prompt` is the latest turn's prompt,
//!   `<pid>.prompt.<n>` the prompt of the process's n-th turn (from 1), and `<pid>.stdin` gets every stdin
//!   line appended as it is received.
//! - `FAKE_CLAUDE_TIMING=<file>`: appends `start_ns end_ns` (realtime ns since the epoch) at exit; in the
//!   long-lived mode one line per turn instead (its start, and its end once its result is out), none at exit.
//! - `FAKE_CLAUDE_STAMPS=<file>` (live mode): appends `asked <ns>` when a permission request is printed and
//!   `answered <ns>` when a `control_response` line is read (realtime ns since the epoch).
//! - `CLAUDE_CODE_MAX_RETRIES`: `max_retries` in `api_retry` lines (default 10).
//!
//! # `claude auth status [--json|--text]`
//! Like the real CLI (2.1.197 and 2.1.332), answers without a request: logged in with `ANTHROPIC_API_KEY`
//! (`authMethod` `api_key`), `CLAUDE_CODE_OAUTH_TOKEN` (`oauth_token`) or a `claudeAiOauth` login in
//! `<config dir>/.credentials.json` (`claude.ai`), rc 0; else `{"loggedIn":false,"authMethod":"none",…}`, rc 1.
//! `--text` prints `API key: ANTHROPIC_API_KEY`, `Login method: …` or
//! `Not logged in. Run claude auth login to authenticate.`.

#[path = "clock.rs"]
mod clock;
#[path = "claude_live.rs"]
mod live;

use std::ffi::{OsString, c_int};
use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use serde_json::{Value, json};

const VERSION: &str = "2.1.197";
const MODEL: &str = "claude-fake-1";
const API_ERROR: &str = "API Error: Unable to connect to API (ConnectionRefused)";
const NOT_LOGGED_IN: &str = "Not logged in · Please run /login";
const NO_INPUT: &str =
    "Error: Input must be provided either through stdin or as a prompt argument when using --print";
const TOOLS: &[&str] = &[
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "Read",
    "Edit",
    "Write",
    "WebFetch",
    "WebSearch",
    "TodoWrite",
];
const FORMATS: &[&str] = &["text", "json", "stream-json"];
const INPUT_FORMATS: &[&str] = &["text", "stream-json"];
const PERMISSION_MODES: &[&str] = &[
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];
/// How often waits look at the signal flags.
const TICK: Duration = Duration::from_millis(10);

static GOT_INT: AtomicBool = AtomicBool::new(false);
static GOT_TERM: AtomicBool = AtomicBool::new(false);
/// Set by `[[stubborn]]`: SIGTERM no longer ends the process.
static IGNORE_TERM: AtomicBool = AtomicBool::new(false);
static START_NS: AtomicU64 = AtomicU64::new(0);

fn main() {
    START_NS.store(now_ns(), Ordering::Relaxed);
    install_signal_handlers();
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    record_invocation(&argv, &cwd);
    if argv.first().is_some_and(|a| a == "auth") {
        auth(&argv[1..]);
    }

    let args = match parse_args(&argv) {
        Parsed::Run(args) => args,
        Parsed::Version => {
            write_stdout(format!("{VERSION} (Claude Code)\n").as_bytes());
            finish(0);
        }
        Parsed::Fail(message) => fail(&message),
    };
    if !args.print {
        fail("fake-claude: only --print (-p) mode is supported");
    }
    if args.format == Format::StreamJson && !args.verbose {
        fail("Error: When using --print, --output-format=stream-json requires --verbose");
    }
    if args.input_stream_json && args.format != Format::StreamJson {
        fail("Error: --input-format=stream-json requires output-format=stream-json");
    }
    if args.permission_mode == "bypassPermissions"
        && running_as_root()
        && std::env::var_os("IS_SANDBOX").is_none_or(|v| v != "1")
    {
        fail(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
        );
    }

    if args.input_stream_json {
        live::serve(&args, cwd);
    }
    let prompt = read_prompt(args.prompt.as_deref());
    record("prompt", &prompt);
    if prompt.is_empty() {
        fail(NO_INPUT);
    }
    let text = String::from_utf8_lossy(&prompt).into_owned();

    let (session_id, n) = match open_session(args.resume.as_deref(), &cwd, &text) {
        Ok(found) => found,
        Err(id) => no_session(&id, args.format),
    };

    let markers = Markers::parse(&text);
    IGNORE_TERM.store(markers.stubborn, Ordering::SeqCst);
    let mut turn = Turn {
        out: Out::new(args.format, args.verbose),
        partial: args.include_partial,
        markers,
        session_id,
        cwd,
        permission_mode: args.permission_mode,
        started: Instant::now(),
        num_turns: 1,
        in_tool: false,
        done: false,
        live: None,
    };
    let rc = turn.run(&text, n);
    finish(rc);
}

/// `--resume` of a session that does not exist (or belongs to another cwd): rc 1.
fn no_session(id: &str, format: Format) -> ! {
    let message = format!("No conversation found with session ID: {id}");
    if format == Format::StreamJson {
        let mut result = base_result(&new_uuid(), "error_during_execution", true, 0, 0);
        result["errors"] = json!([message]);
        write_line(&result);
    }
    fail(&message);
}

// ---------------------------------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Text,
    Json,
    StreamJson,
}

struct Args {
    print: bool,
    format: Format,
    verbose: bool,
    include_partial: bool,
    resume: Option<String>,
    permission_mode: String,
    /// The positional prompt, as raw bytes.
    prompt: Option<Vec<u8>>,
    /// `--input-format stream-json`: the long-lived mode (claude_live.rs).
    input_stream_json: bool,
    /// `--permission-prompt-tool stdio`: permission requests go to the host on stdout.
    prompt_tool_stdio: bool,
    /// Every `--allowedTools` value, as given.
    allowed_tools: Vec<String>,
    model: Option<String>,
}

enum Parsed {
    Run(Args),
    Version,
    Fail(String),
}

/// Parses argv the way commander does for the real CLI: known options are handled wherever they are
/// (so `--version` fires even after an unknown option), the first unknown option is reported after the
/// whole command line was read, and `--` makes everything after it positional.
fn parse_args(argv: &[OsString]) -> Parsed {
    let mut args = Args {
        print: false,
        format: Format::Text,
        verbose: false,
        include_partial: false,
        resume: None,
        permission_mode: "default".into(),
        prompt: None,
        input_stream_json: false,
        prompt_tool_stdio: false,
        allowed_tools: Vec::new(),
        model: None,
    };
    let mut positionals: Vec<Vec<u8>> = Vec::new();
    let mut unknown: Option<String> = None;
    let mut variadic = false;
    let mut i = 0;
    while i < argv.len() {
        let raw = &argv[i];
        let arg = raw.to_string_lossy().into_owned();
        i += 1;
        let is_option = arg.len() > 1 && arg.starts_with('-');
        if arg == "--" {
            positionals.extend(argv[i..].iter().map(|a| a.as_bytes().to_vec()));
            break;
        }
        if variadic && !is_option {
            args.allowed_tools.push(arg); // one more --allowedTools value
            continue;
        }
        variadic = false;
        if !is_option {
            if unknown.is_none() {
                positionals.push(raw.as_bytes().to_vec());
            }
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        // The value of an option: `--opt=V` or the next argument, taken literally.
        let mut value = |spec: &str| -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            let next = argv
                .get(i)
                .ok_or_else(|| format!("error: option '{spec}' argument missing"))?;
            i += 1;
            Ok(next.to_string_lossy().into_owned())
        };
        let outcome: Result<(), String> = match (name, inline.is_some()) {
            ("-v" | "--version", false) => return Parsed::Version,
            ("-p" | "--print", false) => {
                args.print = true;
                Ok(())
            }
            ("--verbose", false) => {
                args.verbose = true;
                Ok(())
            }
            ("--include-partial-messages", false) => {
                args.include_partial = true;
                Ok(())
            }
            ("--output-format", _) => value("--output-format <format>").and_then(|v| {
                args.format = match v.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    "stream-json" => Format::StreamJson,
                    _ => return Err(invalid_choice("--output-format <format>", &v, FORMATS)),
                };
                Ok(())
            }),
            ("--permission-mode", _) => value("--permission-mode <mode>").and_then(|v| {
                if !PERMISSION_MODES.contains(&v.as_str()) {
                    return Err(invalid_choice(
                        "--permission-mode <mode>",
                        &v,
                        PERMISSION_MODES,
                    ));
                }
                args.permission_mode = v;
                Ok(())
            }),
            ("--resume", _) => value("-r, --resume [value]").map(|v| args.resume = Some(v)),
            ("--allowedTools" | "--allowed-tools", has_inline) => {
                variadic = !has_inline;
                value("--allowedTools, --allowed-tools <tools...>")
                    .map(|v| args.allowed_tools.push(v))
            }
            ("--model", _) => value("--model <model>").map(|v| args.model = Some(v)),
            ("--input-format", _) => value("--input-format <format>").and_then(|v| {
                args.input_stream_json = match v.as_str() {
                    "text" => false,
                    "stream-json" => true,
                    _ => return Err(invalid_choice("--input-format <format>", &v, INPUT_FORMATS)),
                };
                Ok(())
            }),
            ("--permission-prompt-tool", _) => value("--permission-prompt-tool <tool>")
                .map(|v| args.prompt_tool_stdio = v == "stdio"),
            ("--max-budget-usd", _) => value("--max-budget-usd <amount>").map(drop),
            ("--append-system-prompt", _) => value("--append-system-prompt <prompt>").map(drop),
            _ => {
                unknown.get_or_insert(arg.clone());
                Ok(())
            }
        };
        if let Err(message) = outcome {
            return Parsed::Fail(message);
        }
    }
    if let Some(arg) = unknown {
        return Parsed::Fail(format!("error: unknown option '{arg}'"));
    }
    if positionals.len() > 1 {
        return Parsed::Fail(format!(
            "error: too many arguments. Expected 1 argument but got {}.",
            positionals.len()
        ));
    }
    args.prompt = positionals.pop();
    Parsed::Run(args)
}

fn invalid_choice(spec: &str, value: &str, choices: &[&str]) -> String {
    format!(
        "error: option '{spec}' argument '{value}' is invalid. Allowed choices are {}.",
        choices.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------------
// Prompt

/// Reads the prompt: stdin to EOF, or the positional argument plus what stdin gives.
/// Stdin is read on a helper thread so that this thread can keep looking at the signal flags.
fn read_prompt(positional: Option<&[u8]>) -> Vec<u8> {
    let stdin_is_tty = io::stdin().is_terminal();
    if stdin_is_tty {
        return positional.map(<[u8]>::to_vec).unwrap_or_default();
    }
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        let _ = set.thread_block(); // signals go to the main thread
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(len) => {
                    if tx.send(Some(buf[..len].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // an unreadable stdin counts as empty
            }
        }
        let _ = tx.send(None);
    });
    let begun = Instant::now();
    let mut data = Vec::new();
    loop {
        if GOT_TERM.load(Ordering::SeqCst) {
            finish(143);
        }
        if GOT_INT.load(Ordering::SeqCst) {
            finish(130);
        }
        match rx.recv_timeout(TICK) {
            Ok(Some(chunk)) => data.extend_from_slice(&chunk),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if positional.is_some()
                    && data.is_empty()
                    && begun.elapsed() >= Duration::from_secs(3)
                {
                    eprintln!("Warning: no stdin data received in 3s, proceeding without it…");
                    break;
                }
            }
        }
    }
    match positional {
        None => data,
        Some(arg) if data.is_empty() => arg.to_vec(),
        Some(arg) => [arg, b"\n", &data].concat(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Markers

#[derive(Default)]
struct Markers {
    slow: f64,
    linger: f64,
    retries: usize,
    deltas: Option<usize>,
    reply: Option<usize>,
    paced: Option<(usize, f64)>,
    tool: bool,
    thinking: bool,
    error: bool,
    not_logged_in: bool,
    garbage: bool,
    orphan: bool,
    ignore_int: bool,
    stubborn: bool,
    success_on_int: bool,
    stderr: bool,
    huge_line_mb: usize,
    write: Option<String>,
    /// `[[bash:CMD]]`, `[[question]]`, `[[plan]]` in the order they appear (long-lived mode only).
    tools: Vec<live::Tool>,
    withdraw: bool,
}

impl Markers {
    fn parse(text: &str) -> Markers {
        let flag = |name: &str| text.contains(&format!("[[{name}]]"));
        let seconds = |name: &str| {
            marker_value(text, name)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0)
        };
        let count = |name: &str| marker_value(text, name).and_then(|v| v.parse::<usize>().ok());
        Markers {
            slow: seconds("slow"),
            linger: seconds("linger"),
            retries: count("retry").unwrap_or(0),
            deltas: count("deltas"),
            reply: count("reply"),
            paced: marker_value(text, "paced").and_then(|v| {
                let (n, ms) = v.split_once(':')?;
                Some((n.parse().ok()?, ms.parse().ok()?))
            }),
            tool: flag("tool"),
            thinking: flag("thinking"),
            error: flag("error"),
            not_logged_in: flag("not-logged-in"),
            garbage: flag("garbage"),
            orphan: flag("orphan"),
            ignore_int: flag("ignore-int"),
            stubborn: flag("stubborn"),
            success_on_int: flag("success-on-int"),
            stderr: flag("stderr"),
            huge_line_mb: count("huge-line").unwrap_or(0),
            write: marker_value(text, "write").map(String::from),
            tools: live::tools(text),
            withdraw: flag("withdraw"),
        }
    }
}

/// The `V` of the first `[[name:V]]` in `text`.
fn marker_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("[[{name}:");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find("]]")?;
    Some(text[start..start + len].trim())
}

// ---------------------------------------------------------------------------------------------------
// Sessions

/// The config dir: `CLAUDE_CONFIG_DIR`, else `$HOME/.claude`.
fn config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".claude")
        }
    }
}

/// Where the sessions live.
fn sessions_dir() -> PathBuf {
    config_dir().join("fake-sessions")
}

/// The real CLI's project folder name for a cwd: every character but ASCII letters and digits becomes `-`; past
/// 200 characters, the first 200, `-`, and the base-36 absolute value of the path's Java string hash.
fn encode_cwd(cwd: &str) -> String {
    let enc: String = cwd
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if enc.len() <= 200 {
        return enc;
    }
    let hash = cwd
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let mut n = i64::from(hash).unsigned_abs();
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    format!(
        "{}-{}",
        &enc[..200],
        String::from_utf8(digits).unwrap_or_default()
    )
}

/// Whether `id` names a session started in `cwd`: one of ours, or one the real CLI wrote under the project folder
/// of this very cwd (from another cwd the real CLI finds no session).
fn resumable(id: &str, cwd: &str) -> bool {
    let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return false;
    }
    let file = sessions_dir().join(format!("{id}.jsonl"));
    let first: Option<Value> = fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| serde_json::from_str(l).ok()));
    match first {
        Some(line) => line["cwd"] == cwd,
        None => config_dir()
            .join("projects")
            .join(encode_cwd(cwd))
            .join(format!("{id}.jsonl"))
            .is_file(),
    }
}

/// Creates a session or appends to the resumed one; returns its id and the number of prompts in it.
/// `Err(id)` when `--resume` names no session of this cwd.
fn open_session(resume: Option<&str>, cwd: &str, prompt: &str) -> Result<(String, usize), String> {
    let dir = sessions_dir();
    let session_id = match resume {
        Some(id) if resumable(id, cwd) => id.to_string(),
        Some(id) => return Err(id.to_string()),
        None => new_uuid(),
    };
    let file = dir.join(format!("{session_id}.jsonl"));
    let line = json!({
        "type": "user",
        "sessionId": session_id,
        "cwd": cwd,
        "timestamp": timestamp(),
        "prompt": prompt,
    });
    let appended = fs::create_dir_all(&dir).and_then(|()| {
        let mut f = OpenOptions::new().create(true).append(true).open(&file)?;
        f.write_all(format!("{line}\n").as_bytes())
    });
    if let Err(e) = appended {
        fail(&format!(
            "fake-claude: cannot write session {}: {e}",
            file.display()
        ));
    }
    let n = fs::read(&file)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(1);
    Ok((session_id, n))
}

// ---------------------------------------------------------------------------------------------------
// The turn

/// Where the messages go, per `--output-format`.
struct Out {
    format: Format,
    verbose: bool,
    /// json + verbose: every message, printed as one array with the result.
    collected: Vec<Value>,
}

impl Out {
    fn new(format: Format, verbose: bool) -> Out {
        Out {
            format,
            verbose,
            collected: Vec::new(),
        }
    }

    fn message(&mut self, message: Value) {
        match self.format {
            Format::StreamJson => write_line(&message),
            Format::Json if self.verbose => self.collected.push(message),
            _ => {}
        }
    }

    fn raw(&mut self, line: &str) {
        if self.format == Format::StreamJson {
            write_stdout(format!("{line}\n").as_bytes());
        }
    }

    fn result(&mut self, result: Value) {
        time_turn();
        match self.format {
            Format::StreamJson => write_line(&result),
            Format::Json if self.verbose => {
                self.collected.push(result);
                write_line(&Value::Array(std::mem::take(&mut self.collected)));
            }
            Format::Json => write_line(&result),
            Format::Text => {
                if let Some(text) = result["result"].as_str() {
                    write_stdout(format!("{text}\n").as_bytes());
                }
            }
        }
    }
}

/// A content block of a fake API message.
enum Block {
    Thinking,
    ToolUse {
        id: String,
        name: &'static str,
        input: Value,
    },
    Text(String),
}

const THINKING: &str = "The user wants their message echoed back. I will do that.";
const SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU=";

struct Turn {
    out: Out,
    partial: bool,
    markers: Markers,
    session_id: String,
    cwd: String,
    permission_mode: String,
    started: Instant,
    num_turns: u64,
    /// True while the `[[slow]]` "tool" runs: an interrupt then ends with `aborted_tools`.
    in_tool: bool,
    /// The result line is out: SIGINT no longer does anything.
    done: bool,
    /// The long-lived mode's state (claude_live.rs); `None` for a one-shot `-p` run.
    live: Option<Box<live::Live>>,
}

impl Turn {
    /// Runs the turn and returns the exit code.
    fn run(&mut self, prompt: &str, n: usize) -> i32 {
        self.emit(json!({
            "type": "system", "subtype": "init", "cwd": self.cwd, "session_id": self.session_id,
            "tools": TOOLS, "mcp_servers": [], "model": self.live.as_ref().map_or(MODEL, |l| &l.model),
            "permissionMode": self.permission_mode,
            "slash_commands": ["compact", "context", "cost", "init", "review"], "apiKeySource": "none",
            "claude_code_version": VERSION, "output_style": "default", "agents": ["general-purpose"],
            "skills": [], "plugins": [], "uuid": new_uuid(), "fast_mode_state": "off",
        }));
        if self.markers.stderr {
            for i in 1..=3 {
                eprintln!("fake-claude: stderr line {i} of 3");
            }
        }
        if self.markers.huge_line_mb > 0 {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..self.markers.huge_line_mb {
                self.checkpoint();
                write_stdout(&chunk);
            }
        }
        if self.markers.garbage {
            self.checkpoint();
            self.out.raw("this is not json");
            self.emit(json!({"type": "brand_new_kind", "x": 1}));
            self.emit(json!({
                "type": "system", "subtype": "status", "status": "requesting",
                "uuid": new_uuid(), "session_id": self.session_id,
            }));
        }
        let max_retries = std::env::var("CLAUDE_CODE_MAX_RETRIES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(10)
            .max(self.markers.retries);
        const DELAYS: [u64; 10] = [
            512, 1137, 2391, 4048, 9223, 17120, 38005, 39210, 36044, 33512,
        ];
        for attempt in 1..=self.markers.retries {
            self.emit(json!({
                "type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": max_retries,
                "retry_delay_ms": DELAYS[(attempt - 1) % DELAYS.len()], "error_status": 529,
                "error": "server_error", "session_id": self.session_id, "uuid": new_uuid(),
            }));
        }

        let mut thinking = self.markers.thinking;
        if self.markers.tool {
            let tool = Block::ToolUse {
                id: "toolu_fake1".into(),
                name: "Bash",
                input: json!({"command": "echo hi", "description": "echo"}),
            };
            let blocks = if thinking {
                vec![Block::Thinking, tool]
            } else {
                vec![tool]
            };
            thinking = false;
            self.api_message(blocks, "tool_use");
        }
        if self.markers.orphan {
            spawn_orphan();
        }
        if let Some(name) = &self.markers.write
            && let Err(e) = fs::write(name, b"written by fake-claude\n")
        {
            eprintln!("fake-claude: cannot write {name}: {e}");
        }
        self.in_tool = true;
        self.sleep(self.markers.slow);
        self.in_tool = false;
        if self.markers.tool {
            self.emit(json!({
                "type": "user",
                "message": {"role": "user", "content": [
                    {"tool_use_id": "toolu_fake1", "type": "tool_result", "content": "hi", "is_error": false},
                ]},
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
                "timestamp": timestamp(),
                "tool_use_result": {
                    "stdout": "hi", "stderr": "", "interrupted": false, "isImage": false,
                    "noOutputExpected": false,
                },
            }));
            self.num_turns = 2;
        }
        if self.live.is_some() {
            self.live_tools();
        }

        let rc = if self.markers.error || self.markers.not_logged_in {
            let (text, kind) = if self.markers.not_logged_in {
                (NOT_LOGGED_IN, "authentication_failed")
            } else {
                (API_ERROR, "unknown")
            };
            self.emit(json!({
                "type": "assistant",
                "message": {
                    "id": new_uuid(), "container": null, "model": "<synthetic>", "role": "assistant",
                    "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                    "usage": usage(0, 0), "content": [{"type": "text", "text": text}],
                },
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
                "error": kind,
            }));
            let mut result = self.result("success", true, "completed");
            result["result"] = json!(text);
            result["stop_reason"] = json!("stop_sequence");
            result["total_cost_usd"] = json!(0);
            result["usage"] = usage(0, 0);
            result["modelUsage"] = json!({});
            self.finish_turn(result);
            1
        } else {
            let mut reply = format!("echo[{n}]: {prompt}");
            if let Some(want) = self.markers.deltas.max(self.markers.reply) {
                let have = reply.chars().count();
                reply.extend(std::iter::repeat_n('.', want.saturating_sub(have)));
            }
            let blocks = if thinking {
                vec![Block::Thinking, Block::Text(reply.clone())]
            } else {
                vec![Block::Text(reply.clone())]
            };
            self.api_message(blocks, "end_turn");
            let mut result = self.result("success", false, "completed");
            result["result"] = json!(reply);
            result["stop_reason"] = json!("end_turn");
            self.finish_turn(result);
            0
        };
        self.sleep(self.markers.linger);
        rc
    }

    /// One fake Messages-API response: its stream events (with `--include-partial-messages`) and one
    /// `assistant` line per content block, sent when that block is complete.
    fn api_message(&mut self, blocks: Vec<Block>, stop_reason: &str) {
        let id = format!("msg_fake_{}", uuid::Uuid::new_v4().simple());
        let request_id = format!("req_fake_{}", uuid::Uuid::new_v4().simple());
        let message = |content: Value, usage: Value| {
            json!({
                "id": id, "type": "message", "role": "assistant", "model": MODEL, "content": content,
                "stop_reason": null, "stop_sequence": null, "usage": usage,
            })
        };
        self.stream_event(
            json!({"type": "message_start", "message": message(json!([]), usage(200, 1))}),
        );
        let mut output_tokens = 1;
        for (index, block) in blocks.into_iter().enumerate() {
            if let (Block::Text(_), Some((n, ms))) = (&block, self.markers.paced) {
                self.paced_text(index, n, ms, &message);
                continue;
            }
            let (start, deltas, full) = match block {
                Block::Thinking => (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    split_chunks(THINKING, 2)
                        .into_iter()
                        .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                        .chain([json!({"type": "signature_delta", "signature": SIGNATURE})])
                        .collect::<Vec<_>>(),
                    json!({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}),
                ),
                Block::ToolUse { id, name, input } => (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    split_chunks(&input.to_string(), 2)
                        .into_iter()
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                        .collect(),
                    json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                ),
                Block::Text(text) => {
                    let chunks = self
                        .markers
                        .deltas
                        .unwrap_or_else(|| text.chars().count().min(4));
                    (
                        json!({"type": "text", "text": ""}),
                        split_chunks(&text, chunks)
                            .into_iter()
                            .map(|t| json!({"type": "text_delta", "text": t}))
                            .collect(),
                        json!({"type": "text", "text": text}),
                    )
                }
            };
            output_tokens += 10;
            self.stream_event(
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            );
            for delta in deltas {
                self.stream_event(
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                );
            }
            self.stream_event(json!({"type": "content_block_stop", "index": index}));
            self.emit(json!({
                "type": "assistant", "message": message(json!([full]), usage(200, output_tokens)),
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
                "request_id": request_id,
            }));
        }
        self.stream_event(json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens},
        }));
        self.stream_event(json!({"type": "message_stop"}));
    }

    /// `[[paced:N:MS]]`: a text block of N deltas, MS ms apart, each stamped with the time it was printed.
    fn paced_text(
        &mut self,
        index: usize,
        n: usize,
        ms: f64,
        message: &dyn Fn(Value, Value) -> Value,
    ) {
        self.stream_event(json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}));
        let mut text = String::new();
        for i in 0..n {
            if i > 0 {
                self.sleep(ms / 1000.0);
            }
            let stamp = format!("{} ", now_ns());
            text.push_str(&stamp);
            self.stream_event(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": stamp}}));
        }
        self.stream_event(json!({"type": "content_block_stop", "index": index}));
        self.emit(json!({
            "type": "assistant", "message": message(json!([{"type": "text", "text": text}]), usage(200, 10)),
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
        }));
    }

    fn stream_event(&mut self, event: Value) {
        if self.partial {
            self.emit(json!({
                "type": "stream_event", "event": event, "session_id": self.session_id,
                "parent_tool_use_id": null, "uuid": new_uuid(),
            }));
        }
    }

    fn emit(&mut self, message: Value) {
        self.checkpoint();
        self.out.message(message);
    }

    fn result(&self, subtype: &str, is_error: bool, terminal_reason: &str) -> Value {
        let ms = self.started.elapsed().as_millis() as u64;
        let mut result = base_result(&self.session_id, subtype, is_error, self.num_turns, ms);
        result["total_cost_usd"] = json!(0.0021);
        result["usage"] = usage(200 * self.num_turns, 14);
        result["modelUsage"] = json!({MODEL: {
            "inputTokens": 200 * self.num_turns, "outputTokens": 14, "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0, "webSearchRequests": 0, "costUSD": 0.0021,
            "contextWindow": 200000, "maxOutputTokens": 64000,
        }});
        result["terminal_reason"] = json!(terminal_reason);
        if let Some(live) = &self.live {
            result["permission_denials"] = json!(live.denials);
        }
        result
    }

    fn finish_turn(&mut self, mut result: Value) {
        self.checkpoint();
        self.add_cost(&mut result);
        self.out.result(result);
        self.done = true;
    }

    /// Sleeps `seconds` in small steps, reacting to signals in between.
    fn sleep(&mut self, seconds: f64) {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        loop {
            self.checkpoint();
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep(TICK.min(until - now));
        }
    }

    /// Reacts to a pending SIGINT/SIGTERM as the markers say; may end the process. In the long-lived
    /// mode it also takes in what arrived on stdin, and may end the turn (see `live_checkpoint`).
    fn checkpoint(&mut self) {
        if GOT_TERM.load(Ordering::SeqCst) && !self.markers.stubborn {
            finish(143);
        }
        if self.live.is_some() {
            self.live_checkpoint();
        }
        if !GOT_INT.swap(false, Ordering::SeqCst)
            || self.done
            || self.markers.stubborn
            || self.markers.ignore_int
        {
            return;
        }
        self.done = true;
        if self.markers.success_on_int {
            let mut result = self.result("success", false, "completed");
            result["result"] = json!("finished anyway");
            result["stop_reason"] = json!("end_turn");
            self.out.result(result);
            finish(0);
        }
        if self.in_tool && self.markers.tool {
            // The interrupted tool's result, as the real CLI reports it: an error.
            self.out.message(json!({
                "type": "user",
                "message": {"role": "user", "content": [{"tool_use_id": "toolu_fake1", "type": "tool_result",
                    "content": "[Request interrupted by user for tool use]", "is_error": true}]},
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
                "timestamp": timestamp(),
            }));
        }
        self.out.message(json!({
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
            "timestamp": timestamp(),
        }));
        let reason = if self.in_tool {
            "aborted_tools"
        } else {
            "aborted_streaming"
        };
        let mut result = self.result("error_during_execution", true, reason);
        result["errors"] = json!([]);
        self.out.result(result);
        finish(0);
    }
}

fn base_result(session_id: &str, subtype: &str, is_error: bool, num_turns: u64, ms: u64) -> Value {
    json!({
        "type": "result", "subtype": subtype, "is_error": is_error, "api_error_status": null,
        "duration_ms": ms, "duration_api_ms": ms / 2, "ttft_ms": ms / 4, "num_turns": num_turns,
        "stop_reason": null, "session_id": session_id, "total_cost_usd": 0, "usage": usage(0, 0),
        "modelUsage": {}, "permission_denials": [], "fast_mode_state": "off", "uuid": new_uuid(),
    })
}

fn usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "output_tokens": output, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
    })
}

/// Splits `text` into `n` pieces of about the same number of characters (some may be empty if the text
/// has fewer than `n` characters).
fn split_chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    (0..n)
        .map(|i| chars[i * len / n..(i + 1) * len / n].iter().collect())
        .collect()
}

/// Starts `sleep 300` in its own session, the way the Bash tool runs commands, and leaves it running.
fn spawn_orphan() {
    let mut cmd = Command::new("sleep");
    cmd.arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls setsid(2), which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    match cmd.spawn() {
        Ok(child) => record("orphan", child.id().to_string().as_bytes()), // never waited for
        Err(e) => eprintln!("fake-claude: cannot spawn the orphan: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Process plumbing

extern "C" fn on_signal(signal: c_int) {
    if signal == Signal::SIGINT as c_int {
        GOT_INT.store(true, Ordering::SeqCst);
    } else {
        GOT_TERM.store(true, Ordering::SeqCst);
    }
}

/// SIGINT and SIGTERM only set flags; the code looks at them at its checkpoints. No `SA_RESTART`, so a
/// write blocked on a full stdout pipe returns `EINTR` and SIGTERM still ends the process.
fn install_signal_handlers() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.expect("sigaction");
    }
}

fn write_line(message: &Value) {
    let mut line = message.to_string();
    line.push('\n');
    write_stdout(line.as_bytes());
}

/// Writes all of `bytes` to fd 1 unbuffered (so every line is flushed at once).
fn write_stdout(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(io::stdout(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {
                if GOT_TERM.load(Ordering::SeqCst) && !IGNORE_TERM.load(Ordering::SeqCst) {
                    finish(143);
                }
            }
            Err(_) => finish(1), // stdout closed
        }
    }
}

/// Prints `message` on stderr and exits 1.
fn fail(message: &str) -> ! {
    eprintln!("{message}");
    finish(1);
}

/// Set in the long-lived mode, which times each turn rather than the process.
static LIVE_MODE: AtomicBool = AtomicBool::new(false);

/// Whether the current turn's timing line is written (a turn ends once: its result, or the process's exit).
static TIMED: AtomicBool = AtomicBool::new(false);

/// Exits with `code`, appending `start_ns end_ns` to `$FAKE_CLAUDE_TIMING` first unless a result already did
/// (one-shot mode).
fn finish(code: i32) -> ! {
    if !LIVE_MODE.load(Ordering::SeqCst) {
        time_turn();
    }
    std::process::exit(code);
}

/// Starts timing a turn of the long-lived mode (a one-shot process's turn starts with the process).
fn start_turn_timing() {
    START_NS.store(now_ns(), Ordering::Relaxed);
    TIMED.store(false, Ordering::SeqCst);
}

/// Ends the current turn's timing, once; called before its result is printed, so that a test which has read the
/// result finds the line.
fn time_turn() {
    if !TIMED.swap(true, Ordering::SeqCst) {
        append_timing(START_NS.load(Ordering::Relaxed));
    }
}

/// Appends `start_ns now_ns` to `$FAKE_CLAUDE_TIMING`, if set.
fn append_timing(start_ns: u64) {
    if let Some(path) = std::env::var_os("FAKE_CLAUDE_TIMING") {
        let line = format!("{start_ns} {}\n", now_ns());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "fake-claude: cannot write {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// Writes `<pid>.<name>` into `$FAKE_CLAUDE_RECORD`, if set.
fn record(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("FAKE_CLAUDE_RECORD") {
        let path = Path::new(&dir).join(format!("{}.{name}", std::process::id()));
        if let Err(e) = fs::write(&path, bytes) {
            eprintln!("fake-claude: cannot write {}: {e}", path.display());
        }
    }
}

fn record_invocation(argv: &[OsString], cwd: &str) {
    if std::env::var_os("FAKE_CLAUDE_RECORD").is_none() {
        return;
    }
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: serde_json::Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::from(v.to_string_lossy()),
            )
        })
        .collect();
    record("argv.json", Value::from(argv).to_string().as_bytes());
    record("env.json", Value::Object(env).to_string().as_bytes());
    record("cwd", cwd.as_bytes());
}

/// Whether the effective uid is 0 (`/proc/self` belongs to the effective uid).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The current UTC time as `2026-11-24T19:45:37.346Z`.
fn timestamp() -> String {
    clock::utc(true)
}

/// `claude auth status`: what the real CLI reports from its environment and config dir alone.
fn auth(args: &[OsString]) -> ! {
    if args.first().is_none_or(|a| a != "status") {
        fail("error: unknown command; use claude auth status");
    }
    let text = args.iter().any(|a| a == "--text");
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let config = match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".claude")
        }
    };
    let stored = fs::read(config.join(".credentials.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["claudeAiOauth"]["accessToken"].is_string());
    let (json, line, code) = if set("ANTHROPIC_API_KEY") {
        (
            json!({"loggedIn": true, "authMethod": "api_key", "apiProvider": "firstParty",
                   "apiKeySource": "ANTHROPIC_API_KEY"}),
            "API key: ANTHROPIC_API_KEY",
            0,
        )
    } else if set("CLAUDE_CODE_OAUTH_TOKEN") {
        (
            json!({"loggedIn": true, "authMethod": "oauth_token", "apiProvider": "firstParty"}),
            "Login method: OAuth token",
            0,
        )
    } else if stored {
        (
            json!({"loggedIn": true, "authMethod": "claude.ai", "apiProvider": "firstParty"}),
            "Login method: Claude account",
            0,
        )
    } else {
        (
            json!({"loggedIn": false, "authMethod": "none", "apiProvider": "firstParty"}),
            "Not logged in. Run claude auth login to authenticate.",
            1,
        )
    };
    let out = if text {
        format!("{line}\n")
    } else {
        format!("{}\n", serde_json::to_string_pretty(&json).unwrap())
    };
    write_stdout(out.as_bytes());
    finish(code);
}
