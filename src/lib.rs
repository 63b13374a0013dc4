//! remote-agent: drive Claude Code on this computer from a phone browser, over HTTPS, safely.
// Two exceptions: in `process`, the pre-exec hooks (the kernel stops a child when we die; Claude gets the user's
// umask), which no safe API covers; in `auth::memory`, handing back to the system what a burst of logins freed
// (malloc_trim, which has no safe wrapper; BENCHMARKS.md measures what it saves).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod auth;
pub mod changes;
pub mod claude;
pub mod cli;
pub mod config;
pub mod desk;
pub mod diff;
pub mod doctor;
pub mod files;
pub mod history;
pub mod import;
pub mod process;
pub mod projects;
pub mod push;
pub mod serve;
pub mod server;
pub mod service;
pub mod sessions;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod tunnel;
pub mod turns;
