//! remote-agent: drive Claude Code on this computer from a phone browser, over HTTPS, safely.
#![forbid(unsafe_code)]

pub mod auth;
pub mod claude;
pub mod cli;
pub mod config;
pub mod server;
pub mod store;
pub mod turns;
