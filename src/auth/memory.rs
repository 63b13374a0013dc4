//! Giving memory back after a burst of logins: glibc keeps the freed buffers of hundreds of connections in the
//! arenas of the threads that served them. (argon2's own 19 MiB per check is a mapping of its own, unmapped when the
//! check ends: see `argon2_matches`.) This is the one `unsafe` outside the pre-exec hooks: `malloc_trim` has no safe
//! wrapper, and without it a burst of 500 logins leaves 2.4–6.8 MB behind (BENCHMARKS.md).

/// Hands the free pages of the allocator's arenas back to the system. After a burst of logins, the hundreds of
/// connections' buffers are freed into the arenas of the threads that served them, and glibc keeps them there.
#[allow(unsafe_code)]
pub(super) fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages that no allocation uses.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
