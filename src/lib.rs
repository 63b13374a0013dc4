//! remote-agent: drive Claude Code on this computer from a phone browser, over HTTPS, safely.
// Three exceptions: in `supervise`, a pre-exec hook that asks the kernel to stop a child when we die; in `pages`,
// handing back the code pages only start-up ran (madvise); in `auth`, the allocator keeping argon2's memory and
// handing back what a burst of logins freed (mallopt, malloc_trim).
#![deny(unsafe_code)]

pub mod auth;
pub mod claude;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod pages;
pub mod server;
pub mod service;
pub mod store;
pub mod supervise;
pub mod tunnel;
pub mod turns;
pub mod up;
