//! Handing back the code pages that only start-up ran: `up` and `serve` run for days, mostly idle.

/// Unmaps the pages of code (ours and the libraries') this process has touched, so that its resident set is what
/// it runs from now on, not everything start-up ran once (argument parsing, settings, migrations, the first run, the
/// QR code): about 2 MB of the supervisor's 5 MB, 3 MB of an idle `serve`'s 8. The pages stay in the page cache and
/// come back on their next use, as from the file. Only file-backed read-and-execute mappings with no anonymous page
/// are touched: a page copied on write (a relocation, a debugger's breakpoint) would be lost; one that is only dirty
/// in the page cache (a binary just built) is still the file's.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_code() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut mapping: Option<(usize, usize)> = None;
    let mut clean = true;
    let release = |range: Option<(usize, usize)>, clean: bool| {
        if let Some((start, end)) = range.filter(|_| clean)
            && let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void)
        {
            // SAFETY: a private file mapping that holds no anonymous (copied-on-write) page reads the same from
            // the file after MADV_DONTNEED as before it; code pages are never written, so nothing can change
            // between the check and the call.
            let _ = unsafe {
                nix::sys::mman::madvise(
                    addr,
                    end - start,
                    nix::sys::mman::MmapAdvise::MADV_DONTNEED,
                )
            };
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // A new mapping: settle the previous one.
            release(mapping.take(), clean);
            clean = true;
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            if perms == "r-xp" && path.starts_with('/') {
                mapping = Some((start, end));
            }
        } else if first == "Anonymous:" {
            clean &= fields.next() == Some("0");
        }
    }
    release(mapping.take(), clean);
}

#[cfg(not(target_os = "linux"))]
pub fn release_code() {}
