//! Handing back the code pages that only start-up ran: `up` and `serve` run for days, mostly idle.

/// Unmaps the pages of our executable's code that this process has touched, so that its resident set is what it
/// runs from now on, not everything start-up ran once (argument parsing, settings, migrations, the first run, the
/// QR code): about 1 MB of the supervisor's 5 MB, 2 MB of an idle `serve`'s 8. The pages stay in the page cache
/// and come back on their next use, read from the file.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_code() {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Ok(path), Ok(smaps)) = (
        std::fs::metadata("/proc/self/exe"),
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return;
    };
    let exe = Exe {
        dev: meta.dev(),
        ino: meta.ino(),
        path: path.to_string_lossy().into_owned(),
    };
    for (start, end) in clean_code(&smaps, &exe) {
        let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is one of the executable's own code mappings, which stay mapped for the life of the
        // process (nothing unmaps the program's text), so no other thread can have put other memory there since
        // smaps was read. It holds no anonymous or swapped-out page, so every page is the file's, and after
        // MADV_DONTNEED the next access reads the same bytes back. (A breakpoint a debugger set in between would be
        // dropped: the only writes code pages see.)
        let _ = unsafe {
            nix::sys::mman::madvise(addr, end - start, nix::sys::mman::MmapAdvise::MADV_DONTNEED)
        };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_code() {}

/// Our executable: its device and inode as `stat` gives them, and its path as `/proc/self/exe` names it.
pub struct Exe {
    pub dev: u64,
    pub ino: u64,
    pub path: String,
}

/// The ranges of `exe`'s read-and-execute mappings in `smaps` (matched by device and inode, or by path where a
/// stacked file system such as overlayfs reports the file underneath) whose every page is the file's: `Anonymous`
/// (copied on write) and `Swap` both 0. A mapping missing either figure is left alone.
pub fn clean_code(smaps: &str, exe: &Exe) -> Vec<(usize, usize)> {
    // smaps writes the device as hex "major:minor"; stat's dev_t packs them (glibc's encoding).
    let dev = exe.dev;
    let device = format!(
        "{:02x}:{:02x}",
        ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000),
        (dev & 0xff) | ((dev >> 12) & 0xffff_ff00)
    );
    struct Mapping {
        range: (usize, usize),
        anonymous: Option<u64>,
        swap: Option<u64>,
    }
    let mut clean = Vec::new();
    let mut settle = |m: Option<Mapping>| {
        if let Some(m) = m
            && m.anonymous == Some(0)
            && m.swap == Some(0)
        {
            clean.push(m.range);
        }
    };
    let mut current: Option<Mapping> = None;
    let mut ours = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // A new mapping: "start-end perms offset dev inode path".
            settle(current.take());
            let (perms, _offset, map_dev, map_ino) =
                (fields.next(), fields.next(), fields.next(), fields.next());
            // The path is the rest of the line, spaces and all, after the padding.
            let path = (0..5)
                .fold(line, |rest, _| {
                    rest.trim_start().split_once(' ').map_or("", |(_, r)| r)
                })
                .trim_start();
            let same_file = map_dev == Some(device.as_str())
                && map_ino.and_then(|i| i.parse().ok()) == Some(exe.ino);
            ours = perms == Some("r-xp") && (same_file || path == exe.path);
            current = ours.then_some(Mapping {
                range: (start, end),
                anonymous: None,
                swap: None,
            });
        } else if ours && let Some(m) = current.as_mut() {
            let value = fields.next().and_then(|v| v.parse().ok());
            match first {
                "Anonymous:" => m.anonymous = value,
                "Swap:" => m.swap = value,
                _ => {}
            }
        }
    }
    settle(current.take());
    clean
}

#[cfg(test)]
mod tests {
    use super::{Exe, clean_code};

    fn exe(dev: u64, ino: u64, path: &str) -> Exe {
        Exe {
            dev,
            ino,
            path: path.into(),
        }
    }

    // dev 0xfd01 is "fd:01"; the executable is inode 42.
    const SMAPS: &str = "\
5600aa000000-5600aa100000 r--p 00000000 fd:01 42     /opt/my app/remote-agent
Rss:                 400 kB
Anonymous:             0 kB
Swap:                  0 kB
5600aa100000-5600aa600000 r-xp 00100000 fd:01 42     /opt/my app/remote-agent
Rss:                2200 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
5600aa600000-5600aa700000 r-xp 00600000 fd:01 42     /opt/my app/remote-agent (deleted)
Anonymous:             4 kB
Swap:                  0 kB
5600aa700000-5600aa800000 r-xp 00700000 fd:01 42     /opt/my app/remote-agent
Anonymous:             0 kB
Swap:                  8 kB
5600aa800000-5600aa900000 r-xp 00800000 fd:01 42     /opt/my app/remote-agent
Rss:                 100 kB
7f0000000000-7f0000100000 r-xp 00026000 fd:01 77     /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
7f0000200000-7f0000300000 r-xp 00000000 fd:02 42     /mnt/other/inode-42
Anonymous:             0 kB
Swap:                  0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]
Anonymous:             0 kB
Swap:                  0 kB
";

    #[test]
    fn only_our_own_code_with_every_page_from_the_file() {
        let ours = vec![(0x5600aa100000, 0x5600aa600000)];
        assert_eq!(
            clean_code(SMAPS, &exe(0xfd01, 42, "/elsewhere")),
            ours,
            "not the data, a copied or swapped page, a mapping without figures, libc, another device, the vdso"
        );
        // Where stat and smaps disagree on the file (overlayfs), its path still finds it.
        assert_eq!(
            clean_code(SMAPS, &exe(0x2a, 9, "/opt/my app/remote-agent")),
            ours
        );
        assert!(clean_code(SMAPS, &exe(0xfd01, 43, "/elsewhere")).is_empty());
        assert!(clean_code("", &exe(0xfd01, 42, "/opt/my app/remote-agent")).is_empty());
    }
}
