//! Counting without locks and without one cache line that every core fights
//! over: a histogram of durations and a counter, each split into
//! [`STRIPES`] cache-line-aligned stripes. A thread always writes its own
//! stripe (chosen once per thread), a scrape sums them. Observing is two
//! relaxed `fetch_add`s on a line that, with a stripe per runtime worker,
//! no other core writes. prometheus-client's own `Histogram` takes a mutex
//! per observation; this one is encoded with prometheus-client's encoder
//! all the same (`MetricEncoder::encode_histogram`).
//!
//! A scrape reads the buckets one by one while calls keep landing, so it may
//! see a call in one bucket and not yet in the sum; the count is the sum of
//! the buckets it read, so `_count` and `le="+Inf"` always agree.

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds in seconds, as the OpenTelemetry MCP conventions advise.
pub const BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Stripes per series: the runtime has a worker per core, and cores are few.
pub const STRIPES: usize = 4;

/// This thread's stripe, handed out round-robin on first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|s| *s)
}

/// One stripe: per-bucket counts (the last one past 300 s) and the sum in
/// nanoseconds, on its own cache lines.
#[repr(align(64))]
struct Stripe {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Stripe {
    fn default() -> Self {
        Stripe {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

#[derive(Default)]
pub struct Hist {
    stripes: [Stripe; STRIPES],
}

impl Hist {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        let s = &self.stripes[stripe()];
        s.counts[i].fetch_add(1, Ordering::Relaxed);
        s.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn bucket(&self, i: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.counts[i].load(Ordering::Relaxed))
            .sum()
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        (0..=BUCKETS.len()).map(|i| self.bucket(i)).sum()
    }

    pub fn encode(&self, mut enc: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(BUCKETS.len() + 1);
        let mut count = 0;
        for i in 0..=BUCKETS.len() {
            let n = self.bucket(i);
            count += n;
            buckets.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum_ns: u64 = self
            .stripes
            .iter()
            .map(|s| s.sum_ns.load(Ordering::Relaxed))
            .sum();
        enc.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)
    }
}

#[repr(align(64))]
#[derive(Default)]
struct Cell(AtomicU64);

/// A counter split the same way.
#[derive(Default)]
pub struct Counter {
    cells: [Cell; STRIPES],
}

impl Counter {
    pub fn inc(&self) {
        self.cells[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_overflow_goes_to_inf() {
        let h = Hist::default();
        h.observe(Duration::from_millis(10));
        h.observe(Duration::from_millis(11));
        h.observe(Duration::from_secs(1000));
        assert_eq!(h.count(), 3);
        assert_eq!(h.bucket(0), 1);
        assert_eq!(h.bucket(1), 1);
        assert_eq!(h.bucket(BUCKETS.len()), 1);
    }

    #[test]
    fn stripes_add_up_across_threads() {
        let h = std::sync::Arc::new(Hist::default());
        let c = std::sync::Arc::new(Counter::default());
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (h, c) = (h.clone(), c.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        h.observe(Duration::from_millis(1));
                        c.inc();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 6000);
        assert_eq!(c.get(), 6000);
    }
}
