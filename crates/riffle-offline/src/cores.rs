//! How offline work is spread over the machine's cores: how many threads a build uses, and
//! runs of work done each on a thread of its own with their results kept in the order of the
//! runs, so whatever reads them afterwards (lateness, bad rows, the spine's rows) sees the
//! order one thread would have produced.

use std::ops::Range;

/// The threads a build uses: one per core.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `work(run)` for every run, each on a thread of its own (the last on the caller's), the
/// results in the order of `runs`. A panic on a thread is the caller's.
pub fn in_order<R: Send, T: Send>(runs: Vec<R>, work: impl Fn(R) -> T + Sync) -> Vec<T> {
    if runs.len() <= 1 {
        return runs.into_iter().map(work).collect();
    }
    let work = &work;
    std::thread::scope(|scope| {
        let mut runs = runs;
        let Some(last) = runs.pop() else {
            return Vec::new();
        };
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| scope.spawn(move || work(run)))
            .collect();
        let last = work(last);
        let mut out: Vec<T> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        out.push(last);
        out
    })
}

/// `0..len` cut into up to `n` contiguous runs of about equal length.
pub fn runs(len: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.clamp(1, len.max(1));
    (0..n).map(|i| len * i / n..len * (i + 1) / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_of_the_runs() {
        for len in [0, 1, 5, 1000] {
            for n in 1..5 {
                let cut = runs(len, n);
                let seen: Vec<usize> = in_order(cut, |r| r.collect::<Vec<_>>())
                    .into_iter()
                    .flatten()
                    .collect();
                assert_eq!(seen, (0..len).collect::<Vec<_>>());
            }
        }
    }
}
