//! Latency distributions as the tables give them: the kernel's log2 histograms (`syscalls`,
//! `block_io_stats`) or every latency one by one (`sql`, `rpc`, `http`), with the same
//! questions asked of both: how many, which quantile, how spread.

use tracers::histogram::{HIST_SLOTS, slot_lower_bound_ns};

#[derive(Clone, Debug)]
pub enum Latencies {
    /// Counts per log2 slot (see `tracers::histogram`).
    Histogram(Vec<u64>),
    /// Every latency in nanoseconds, sorted.
    Sorted(Vec<i64>),
}

/// The bounds `[lo, hi)` in ns of a histogram slot; the last slot is open-ended, taken as
/// twice its lower bound.
fn slot_bounds(slot: usize) -> (f64, f64) {
    let lo = slot_lower_bound_ns(slot) as f64;
    let hi = if slot + 1 < HIST_SLOTS {
        slot_lower_bound_ns(slot + 1) as f64
    } else {
        2.0 * lo
    };
    (lo, hi)
}

/// The `q` quantile (0..=1) of a log2 histogram, interpolated linearly inside its slot (a slot
/// spans a factor of two, so that is the resolution of the answer). None when empty.
pub fn histogram_quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0.0;
    let mut last = 0;
    for (slot, &count) in counts.iter().enumerate().take(HIST_SLOTS) {
        if count == 0 {
            continue;
        }
        last = slot;
        let count = count as f64;
        if below + count >= rank {
            let (lo, hi) = slot_bounds(slot);
            return Some(lo + (hi - lo) * ((rank - below) / count));
        }
        below += count;
    }
    Some(slot_bounds(last).1)
}

/// Element-wise sum of histograms (slots beyond the first's length are kept).
pub fn add_histogram(into: &mut Vec<u64>, other: &[u64]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (sum, &count) in into.iter_mut().zip(other) {
        *sum += count;
    }
}

impl Latencies {
    /// Adds another run's latencies of the same kind.
    pub fn merge(&mut self, other: &Latencies) {
        match (self, other) {
            (Latencies::Histogram(counts), Latencies::Histogram(more)) => {
                add_histogram(counts, more);
            }
            (Latencies::Sorted(values), Latencies::Sorted(more)) => {
                values.extend_from_slice(more);
                values.sort_unstable();
            }
            (this, other) => {
                unreachable!("a dimension has one kind of latencies: {this:?}, {other:?}")
            }
        }
    }

    pub fn count(&self) -> u64 {
        match self {
            Latencies::Histogram(counts) => counts.iter().sum(),
            Latencies::Sorted(values) => values.len() as u64,
        }
    }

    /// The `q` quantile in ns (exact values interpolate between neighbours); None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match self {
            Latencies::Histogram(counts) => histogram_quantile(counts, q),
            Latencies::Sorted(values) => {
                if values.is_empty() {
                    return None;
                }
                let position = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
                let (below, above) = (position.floor() as usize, position.ceil() as usize);
                let fraction = position - below as f64;
                Some(values[below] as f64 * (1.0 - fraction) + values[above] as f64 * fraction)
            }
        }
    }

    /// Σ latency² in ns²: how much a sum of these latencies varies (a histogram assumes
    /// latencies spread evenly inside each slot).
    pub fn sum_of_squares(&self) -> f64 {
        match self {
            Latencies::Histogram(counts) => counts
                .iter()
                .enumerate()
                .map(|(slot, &count)| {
                    let (lo, hi) = slot_bounds(slot);
                    count as f64 * (hi * hi + hi * lo + lo * lo) / 3.0
                })
                .sum(),
            Latencies::Sorted(values) => values.iter().map(|&v| (v as f64) * (v as f64)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_interpolate_inside_the_slot() {
        let mut counts = vec![0; HIST_SLOTS];
        // 100 latencies in [1024, 2048) ns (slot 11), 100 in [8192, 16384) (slot 14).
        counts[11] = 100;
        counts[14] = 100;
        assert_eq!(histogram_quantile(&counts, 0.0), Some(1024.0));
        assert_eq!(histogram_quantile(&counts, 0.25), Some(1536.0));
        assert_eq!(histogram_quantile(&counts, 0.5), Some(2048.0));
        assert_eq!(histogram_quantile(&counts, 0.75), Some(12288.0));
        assert_eq!(histogram_quantile(&counts, 1.0), Some(16384.0));
        assert_eq!(histogram_quantile(&[0; HIST_SLOTS], 0.5), None);
        let h = Latencies::Histogram(counts);
        assert_eq!(h.count(), 200);
        // Uniform in [1024, 2048): E[x²] = (hi² + hi·lo + lo²) / 3.
        let expected = 100.0 * (2048.0f64.powi(2) + 2048.0 * 1024.0 + 1024.0f64.powi(2)) / 3.0
            + 100.0 * (16384.0f64.powi(2) + 16384.0 * 8192.0 + 8192.0f64.powi(2)) / 3.0;
        assert!((h.sum_of_squares() - expected).abs() < 1.0);
    }

    #[test]
    fn exact_quantiles_interpolate_between_neighbours() {
        let l = Latencies::Sorted(vec![10, 20, 30, 40, 50]);
        assert_eq!(l.quantile(0.5), Some(30.0));
        assert_eq!(l.quantile(0.9), Some(46.0));
        assert_eq!(l.quantile(1.0), Some(50.0));
        assert_eq!(Latencies::Sorted(vec![]).quantile(0.5), None);
        assert_eq!(l.sum_of_squares(), 5500.0);
    }

    #[test]
    fn runs_merge_into_one_distribution() {
        let mut l = Latencies::Sorted(vec![10, 30]);
        l.merge(&Latencies::Sorted(vec![20]));
        assert_eq!(l.quantile(0.5), Some(20.0));
        let mut h = Latencies::Histogram(vec![0, 1]);
        h.merge(&Latencies::Histogram(vec![1, 1, 1]));
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn histograms_add_slot_by_slot() {
        let mut sum = vec![1, 2];
        add_histogram(&mut sum, &[1, 1, 5]);
        assert_eq!(sum, [2, 3, 5]);
    }
}
