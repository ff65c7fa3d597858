//! The process's allocator (mimalloc) and the memory settings ingest changes.
//!
//! mimalloc returns freed memory to the OS about a second after it is freed (its
//! `purge_delay`), and asks the kernel for transparent huge pages. Ingest frees and
//! re-allocates megabytes every flush (the rows and states of thousands of entities, the
//! Redis pipeline buffer) while its window state grows, and each page it touched anew came
//! back as a 2 MiB fault zeroed (and, with the kernel's `defrag=madvise`, compacted) in the
//! fault path. Replaying 300k events into Redis: 25-30% of the CPU profile, 2,574 faults,
//! 0.38 s of system time against 1.1 s of user time; 1M events: 1.3 s of system time.
//! Ingest therefore keeps freed memory for re-use and uses 4 KiB pages
//! ([`tune_for_ingest`]): system time 0.1 s and 0.3-0.36 s for those runs, wall time 0.9x.
//! Its resident size stays at its high-water mark, which the bounded flush backlog keeps
//! flat. `serve` keeps the defaults, so a burst's memory goes back to the OS.
//!
//! Written against `libmimalloc-sys` directly (the `mimalloc` crate exposes no options) and
//! `libc::prctl` (no crate in use wraps it).
#![allow(unsafe_code)]

/// mimalloc v3's `mi_option_purge_delay` (`libmimalloc-sys` names no constant for it): its
/// position in `mi_option_t`. The test below pins it by its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc as the global allocator: allocation was about a third of ingest's CPU profile
/// (per-event values, per-flush rows and snapshots) and shows on the serve path too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Never return freed memory to the OS, and no transparent huge pages for this process (see
/// the module docs); call once, early.
pub fn tune_for_ingest() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table (an atomic
    // store); any value is valid for `purge_delay` and -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument (the others must be 0) and only
    // sets a flag on this process's memory map. Should it fail (a kernel without it), the
    // process runs with huge pages, only slower, so the result is ignored.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_whose_default_is_1000_ms() {
        // Its neighbours default to 1 (14, deprecated eager-commit delay) and 0 (16, NUMA
        // nodes): an enum shifted by one either way would not read 1000.
        // SAFETY: reads an integer from mimalloc's option table.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            value, 1000,
            "mimalloc's option #15 is not purge_delay (default 1000 ms)"
        );
    }
}
