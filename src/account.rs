//! The login and the browsers signed in with it: `remote-agent passwd`, `pair` (a one-time sign-in link and its QR
//! code), `logout --all`, and the login the first `up` makes when there is none.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::config::{Flags, Settings};
use crate::store::Store;

/// Opens the database of the data dir in `flags` (it must exist: a server made it).
fn open_store_at(flags: &Flags) -> anyhow::Result<Store> {
    crate::store::open_existing(&crate::config::data_dir(flags)?)
}

/// `remote-agent passwd`.
pub fn passwd(flags: &Flags, username: Option<String>) -> anyhow::Result<()> {
    let config = crate::config::config_path(flags)?;
    let password = read_new_password()?;
    anyhow::ensure!(
        password.chars().count() >= crate::auth::MIN_PASSWORD_CHARS,
        "the password must have at least {} characters",
        crate::auth::MIN_PASSWORD_CHARS
    );
    let username = username
        .or_else(|| Settings::load(flags).ok().map(|s| s.username))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "me".into());
    let hash = crate::auth::hash_password(&password)?;
    crate::config::save_credentials(&config, &username, &crate::config::Secret::Hash(hash))?;
    println!(
        "Saved the password for {username} in {} (as an argon2id hash).",
        config.display()
    );
    // Whoever signed in under the old password (perhaps the reason it changes) is signed out.
    match signed_out_everywhere(flags) {
        Ok(Some(n)) => {
            println!("Signed out {n} browser session(s): sign in again with the new password.")
        }
        Ok(None) => {}
        Err(e) => println!(
            "Warning: could not sign the browsers out ({e:#}); run `remote-agent logout --all`."
        ),
    }
    if std::env::var_os("AUTH_PASSWORD").is_some() {
        println!("Note: AUTH_PASSWORD is set in the environment and wins over the config file.");
    }
    match crate::config::state_dir(flags)
        .ok()
        .and_then(|d| crate::state::read_live(&d))
    {
        Some(state) => {
            let pid = state.pid;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            );
            println!("Asked the running `remote-agent up` (pid {pid}) to reload it.");
        }
        None => println!(
            "A running `remote-agent serve` watches its config file and takes it within seconds (or on SIGHUP)."
        ),
    }
    Ok(())
}

/// Revokes every browser sign-in; None when there is no database yet (so nobody to sign out).
fn signed_out_everywhere(flags: &Flags) -> anyhow::Result<Option<usize>> {
    let path = crate::config::data_dir(flags)?.join(crate::store::FILE_NAME);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(open_store_at(flags)?.revoke_all_sessions()?))
}

/// Reads the new password: twice, without echo, from a terminal; else one line of standard input.
fn read_new_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Again: ")?;
    anyhow::ensure!(
        first == second,
        "the two passwords differ; nothing was changed"
    );
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    print!("{prompt}");
    std::io::stdout().flush()?;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    println!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `remote-agent pair`: a one-time sign-in link, stored as a hash.
pub fn pair(flags: &Flags, quiet: bool, base: Option<String>) -> anyhow::Result<()> {
    // Checked before a token is made: a link on a made-up address would spend one for nothing.
    if let Some(base) = &base
        && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        anyhow::bail!(
            "--base must be the server's address, e.g. http://192.168.1.20:8000 (got {base:?})"
        );
    }
    let store = open_store_at(flags)?;
    let token = crate::auth::random_token();
    store.create_pairing(
        &crate::auth::sha256_hex(token.as_bytes()),
        crate::auth::PAIRING_TTL_SECS,
    )?;
    let base = base
        .or_else(|| {
            let state = crate::state::read_live(&crate::config::state_dir(flags).ok()?)?;
            state.tunnel.url.or(state.local_url)
        })
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let link = format!("{}/pair/{token}", base.trim_end_matches('/'));
    if quiet {
        println!("{link}");
    } else {
        println!("Open this on your phone to sign its browser in (one use, 10 minutes):");
        println!("  {link}");
        println!("{}", qr(&link));
    }
    Ok(())
}

/// The URL as a QR code drawn with half blocks, dark on light, for a phone's camera.
pub fn qr(url: &str) -> String {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}

/// `remote-agent logout --all`.
pub fn logout(flags: &Flags, all: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        all,
        "say --all to sign every browser out (a single browser signs out from the app)"
    );
    let n = open_store_at(flags)?.revoke_all_sessions()?;
    println!("Signed out {n} browser session(s).");
    Ok(())
}

/// No credentials anywhere: make a login, save it to the config file (0600), and show it once.
pub fn first_run(config: &Path) -> anyhow::Result<()> {
    let username = std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .unwrap_or_else(|| "me".into());
    let password = random_password();
    let hash = crate::auth::hash_password(&password)?;
    crate::config::save_credentials(config, &username, &crate::config::Secret::Hash(hash))?;
    println!("First run: created a login for this server.");
    println!("  user:     {username}");
    println!("  password: {password}");
    println!(
        "Saved in {} as an argon2 hash (readable only by you); this is the only time the password is shown. \
         Change it with `remote-agent passwd`.",
        config.display()
    );
    Ok(())
}

/// 24 characters from 62, from the OS's random source: about 142 bits.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // A byte below 248 (4 × 62) picks a character with no bias; the rest are drawn again.
    let fair = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut password = String::with_capacity(24);
    while password.len() < 24 {
        for b in crate::auth::random_bytes::<32>() {
            if b < fair && password.len() < 24 {
                password.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_differ() {
        let a = random_password();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_password());
    }

    #[test]
    fn a_qr_code_is_drawn() {
        let code = qr("https://example-words-here.trycloudflare.com");
        assert!(code.lines().count() > 10);
        assert!(code.contains('█') || code.contains('▀') || code.contains('▄'));
    }
}
