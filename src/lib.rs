//! remote-agent: drive Claude Code on this computer from a phone browser, over HTTPS, safely.
// Three exceptions: in `supervise`, pre-exec hooks (the kernel stops a child when we die; Claude gets the user's
// umask); in `pages`, handing back the code pages only start-up ran (madvise); in `auth`, the allocator keeping
// argon2's memory and handing back what a burst of logins freed (mallopt, malloc_trim).
#![deny(unsafe_code)]

pub mod account;
pub mod auth;
pub mod claude;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod import;
pub mod pages;
pub mod serve;
pub mod server;
pub mod service;
pub mod store;
pub mod supervise;
pub mod tunnel;
pub mod turns;
pub mod up;
