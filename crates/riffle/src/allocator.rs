//! The process's allocator (mimalloc) and the one setting ingest changes on it.
//!
//! mimalloc returns freed memory to the OS about a second after it is freed (its
//! `purge_delay`). Ingest frees and re-allocates megabytes every flush (the rows and states
//! of thousands of entities, the Redis pipeline buffer), and with transparent huge pages
//! each re-touched page came back as a 2 MiB fault zeroed by the kernel: 25-30% of a
//! backfill's CPU (`perf`, 300k events into Redis), 2,574 faults and 0.38 s of system time
//! against 1.1 s of user time. Ingest therefore keeps freed memory for re-use
//! ([`retain_freed_memory`]): ~580 faults and 0.1 s of system time for the same run. Its
//! resident size stays at its high-water mark (there, 290 MB rather than 300 MB peak), which
//! the bounded flush backlog keeps flat. `serve` keeps the default, so a burst's memory goes
//! back to the OS.
//!
//! Written against `libmimalloc-sys` directly: the `mimalloc` crate exposes no options.
#![allow(unsafe_code)]

/// mimalloc v3's `mi_option_purge_delay` (`libmimalloc-sys` names no constant for it): its
/// position in `mi_option_t`. The test below pins it by its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc as the global allocator: allocation was about a third of ingest's CPU profile
/// (per-event values, per-flush rows and snapshots) and shows on the serve path too.
pub type Allocator = mimalloc::MiMalloc;

/// Never return freed memory to the OS (see the module docs); call once, early.
pub fn retain_freed_memory() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table (an atomic
    // store); any value is valid for `purge_delay` and -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_whose_default_is_1000_ms() {
        // Neighbouring options default to 1 (14, deprecated eager-commit delay) and 0 (16,
        // NUMA nodes), and no other option defaults to 1000 ms.
        // SAFETY: reads an integer from mimalloc's option table.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            value, 1000,
            "mimalloc's option #15 is not purge_delay (default 1000 ms)"
        );
    }
}
