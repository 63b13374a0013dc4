//! The allocator around password checks: an argon2id check allocates 19 MiB, and glibc would otherwise keep that
//! memory, and the buffers of a burst of logins, after they are freed.

/// Makes every large allocation a mapping of its own, unmapped when freed. An argon2id check allocates 19 MiB;
/// glibc raises its mmap threshold past the size of the first such block freed, so later ones come from the heap
/// and per-thread arenas, which keep that memory after a burst of logins (a fixed threshold turns that off).
#[allow(unsafe_code)]
pub fn keep_large_allocations_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, which it may do at any time.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

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
