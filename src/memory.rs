//! Giving memory back once the daemon is idle (Linux; elsewhere these do
//! nothing). Most of an idle daemon's RSS is its own code: starting up (the
//! AWS SDK's config chain, TLS, clap, the detectors) touches code all over
//! the binary, and the kernel maps it in 64 KB blocks. [`release`] unmaps
//! the binary's read-only pages (they stay in the page cache: what is used
//! again faults back in cheaply) and hands malloc's free memory back, so
//! what stays resident is what the idle loops really use.

/// What [`release`] gave back, in kB of RSS (0 where it does nothing).
pub fn release() -> u64 {
    #[cfg(target_os = "linux")]
    {
        linux::release()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The resident set now, in kB (0 where unknown).
pub fn resident_kb() -> u64 {
    #[cfg(target_os = "linux")]
    {
        linux::rss_kb()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// One malloc arena for every two threads would be dozens of arenas for
/// the daemon's ~40 threads, each keeping its own free memory: at most two
/// (glibc only; call before threads start), unless `MALLOC_ARENA_MAX` in
/// the environment says otherwise (glibc reads that itself).
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The `blocking` thread pool (zbus runs a connection's close on it) keeps
/// every thread it ever started, each waking twice a second for good: at
/// most one (unless `BLOCKING_MAX_THREADS` says otherwise). Its tasks are
/// short (a socket's close, a peer's credentials). Call before threads start.
pub fn limit_blocking_pool() {
    if std::env::var_os("BLOCKING_MAX_THREADS").is_none() {
        // Before any other thread exists: nothing reads the environment
        // concurrently.
        std::env::set_var("BLOCKING_MAX_THREADS", "1");
    }
}

/// A mapping of `/proc/self/smaps` that [`release`] may unmap: one of the
/// binary's own (`inode`), not writable, and with no private copy of any
/// page, resident or swapped out (relocated read-only data is such a copy:
/// dropping it would lose the relocations).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn droppable(smaps: &str, inode: u64) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The binary's read-only mapping being read, and whether a private page
    // of it was seen so far.
    let mut current: Option<((usize, usize), bool)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            let perms = fields.next().unwrap_or("");
            let ino = fields.nth(2).and_then(|i| i.parse::<u64>().ok());
            let range = usize::from_str_radix(start, 16)
                .ok()
                .zip(usize::from_str_radix(end, 16).ok());
            current = range
                .filter(|_| ino == Some(inode) && perms.starts_with("r-"))
                .map(|r| (r, false));
        } else if let Some((_, private)) = current.as_mut() {
            let some = fields.next() != Some("0");
            match first {
                "Anonymous:" => *private |= some,
                // The last of the two: the mapping is known.
                "Swap:" => {
                    if let Some((range, private)) = current.take() {
                        if !private && !some {
                            found.push(range);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::MetadataExt;

    pub(super) fn release() -> u64 {
        let before = rss_kb();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
        for &(start, end) in binary() {
            // SAFETY: the range is a read-only mapping of the binary with
            // no private pages (see `droppable`): MADV_DONTNEED only unmaps
            // pages that fault back in, unchanged, from the file when used
            // again.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
        before.saturating_sub(rss_kb())
    }

    /// The binary's droppable mappings, found once (they never change: the
    /// tray gives memory back after each redraw, and reading the smaps of
    /// ~40 threads each time would cost more than what it saves).
    fn binary() -> &'static [(usize, usize)] {
        static FOUND: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
        FOUND.get_or_init(|| {
            let inode = std::fs::metadata("/proc/self/exe").map(|m| m.ino());
            let smaps = std::fs::read_to_string("/proc/self/smaps");
            match (inode, smaps) {
                (Ok(inode), Ok(smaps)) => super::droppable(&smaps, inode),
                _ => Vec::new(),
            }
        })
    }

    /// The resident set, in kB.
    pub(super) fn rss_kb() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = (statm.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c3a00000-55d0c3ee2000 r--p 00000000 fe:00 10855808                   /usr/bin/cloudnap
Rss:                2468 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c3ee2000-55d0c4d01000 r-xp 004e1000 fe:00 10855808                   /usr/bin/cloudnap
Rss:               12408 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c4d01000-55d0c4db2000 r--p 012ff000 fe:00 10855808                   /usr/bin/cloudnap
Rss:                 708 kB
Anonymous:           708 kB
Swap:                  0 kB
55d0c4db2000-55d0c4df8000 rw-p 013af000 fe:00 10855808                   /usr/bin/cloudnap
Rss:                 280 kB
Anonymous:           280 kB
Swap:                  0 kB
55d0c4df8000-55d0c4e00000 r--p 013f5000 fe:00 10855808                   /usr/bin/cloudnap
Rss:                   0 kB
Anonymous:             0 kB
Swap:                 32 kB
7f6114507000-7f611452d000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1228 kB
Anonymous:             0 kB
Swap:                  0 kB
7f610c000000-7f610c123000 rw-p 00000000 00:00 0
Rss:                1144 kB
Anonymous:          1144 kB
Swap:                  0 kB
";

    #[test]
    fn only_the_binarys_read_only_unmodified_mappings_are_dropped() {
        assert_eq!(
            droppable(SMAPS, 10855808),
            vec![
                (0x55d0c3a00000, 0x55d0c3ee2000),
                (0x55d0c3ee2000, 0x55d0c4d01000)
            ]
        );
        assert!(droppable(SMAPS, 1).is_empty());
        assert!(droppable("garbage\n-\nAnonymous: x\nSwap: 0", 0).is_empty());
    }

    /// In this very process: its code is found in the real smaps, and
    /// runs again once released.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_binarys_code_is_found_and_runs_again_once_released() {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata("/proc/self/exe").unwrap().ino();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let code = droppable as fn(&str, u64) -> Vec<(usize, usize)> as usize;
        let found = droppable(&smaps, inode);
        assert!(
            found
                .iter()
                .any(|(start, end)| (*start..*end).contains(&code)),
            "{found:x?} holds {code:x}"
        );
        release();
        assert_eq!(droppable(&smaps, inode), found);
    }
}
