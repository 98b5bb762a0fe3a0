//! When a change between two runs is more than run-to-run noise.
//!
//! Two tests, both one-sided at a significance level shared by every comparison of the diff
//! (Bonferroni: with 1 % for the whole diff and 500 comparisons, each is held to 0.002 %):
//!
//! - **Time per second** (a function's self time, a syscall's or a query's total time): the
//!   events are taken as a compound Poisson process, so a run's total time per second has
//!   variance Σ latency² / seconds². A rise counts when it is beyond the threshold and beyond
//!   `z` standard deviations of the difference. For a sampled profile (each sample the same
//!   weight) this is the Poisson test on sample counts: a function new in the second run needs
//!   about z² samples to count.
//! - **Percentiles**: distribution-free confidence bounds from order statistics: the p quantile
//!   of n values lies between the quantiles at p ± z·√(p(1−p)/n). A rise counts when the second
//!   run's lower bound is above the first run's upper bound and the point estimate rose beyond
//!   the threshold. A bound beyond 0..1 means too few values to say (p99 needs ~z²·100 calls).

use crate::analysis::latency::Latencies;

/// One side of a comparison: a total (time, or a count with each event weighing 1) over a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Total {
    pub sum: f64,
    /// Σ weight²: the variance of `sum` under the compound Poisson model.
    pub sum_of_squares: f64,
    pub seconds: f64,
}

impl Total {
    pub fn per_second(&self) -> f64 {
        self.sum / self.seconds
    }

    fn variance_per_second(&self) -> f64 {
        self.sum_of_squares / (self.seconds * self.seconds)
    }
}

/// The one-sided z for a significance level `alpha` (the upper-tail normal quantile), by
/// Abramowitz & Stegun 26.2.23 (absolute error below 4.5e-4).
pub fn z_for(alpha: f64) -> f64 {
    let p = alpha.clamp(1e-300, 0.5);
    let t = (-2.0 * p.ln()).sqrt();
    t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

/// `after` is above `before` per second by more than `threshold` (0.2 = 20 %) and by more than
/// `z` standard deviations.
pub fn rose(before: Total, after: Total, threshold: f64, z: f64) -> bool {
    let (a, b) = (before.per_second(), after.per_second());
    let sd = (before.variance_per_second() + after.variance_per_second()).sqrt();
    b > a * (1.0 + threshold) && b - a > z * sd
}

/// A share of trials: `part` of `trials` (misses of the keys read).
#[derive(Clone, Copy, Debug)]
pub struct Share {
    pub part: f64,
    pub trials: f64,
}

impl Share {
    pub fn ratio(self) -> f64 {
        self.part / self.trials
    }
}

/// The share `after` is above `before` by more than `threshold` (relative; from nothing, any
/// rise) and by more than `z` standard errors of the two-proportion test.
pub fn share_rose(before: Share, after: Share, threshold: f64, z: f64) -> bool {
    if before.trials <= 0.0 || after.trials <= 0.0 {
        return false;
    }
    let (a, b) = (before.ratio(), after.ratio());
    let pooled = (before.part + after.part) / (before.trials + after.trials);
    let se = (pooled * (1.0 - pooled) * (1.0 / before.trials + 1.0 / after.trials)).sqrt();
    b > a * (1.0 + threshold) && b - a > z * se
}

/// The `q` quantile of `after` is above that of `before` beyond `threshold` and beyond the
/// order-statistics confidence bounds of both.
pub fn quantile_rose(
    before: &Latencies,
    after: &Latencies,
    q: f64,
    threshold: f64,
    z: f64,
) -> bool {
    let spread = |n: u64| z * (q * (1.0 - q) / n as f64).sqrt();
    let (na, nb) = (before.count(), after.count());
    if na == 0 || nb == 0 {
        return false;
    }
    let (upper_q, lower_q) = (q + spread(na), q - spread(nb));
    if upper_q > 1.0 || lower_q < 0.0 {
        return false;
    }
    let (Some(a), Some(b), Some(a_upper), Some(b_lower)) = (
        before.quantile(q),
        after.quantile(q),
        before.quantile(upper_q),
        after.quantile(lower_q),
    ) else {
        return false;
    };
    b > a * (1.0 + threshold) && b_lower > a_upper
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: f64, seconds: f64) -> Total {
        // A sampled profile: every sample weighs 10 ms.
        Total {
            sum: n * 1e7,
            sum_of_squares: n * 1e14,
            seconds,
        }
    }

    #[test]
    fn z_matches_the_normal_table() {
        assert!((z_for(0.001) - 3.090).abs() < 1e-3);
        assert!((z_for(0.025) - 1.960).abs() < 1e-3);
        assert!((z_for(0.5)).abs() < 1e-3);
    }

    #[test]
    fn sampled_profiles_need_enough_samples() {
        let z = z_for(0.001);
        // 100 → 140 samples in runs of equal length: +40 %, 2.6 sd: noise.
        assert!(!rose(samples(100.0, 10.0), samples(140.0, 10.0), 0.2, z));
        // 1000 → 1400: the same +40 % is now 8 sd.
        assert!(rose(samples(1000.0, 10.0), samples(1400.0, 10.0), 0.2, z));
        // 8 % more, however certain, is under the threshold.
        assert!(!rose(samples(1e6, 10.0), samples(1.08e6, 10.0), 0.1, z));
        // New: 9 samples are not enough, 10 are (√10 > 3.09).
        assert!(!rose(samples(0.0, 10.0), samples(9.0, 10.0), 0.2, z));
        assert!(rose(samples(0.0, 10.0), samples(10.0, 10.0), 0.2, z));
        // Per second: the same count in a run twice as long is half the rate.
        assert!(!rose(samples(1000.0, 10.0), samples(1400.0, 20.0), 0.2, z));
        assert!(rose(samples(1400.0, 20.0), samples(1000.0, 10.0), 0.2, z));
    }

    #[test]
    fn a_miss_ratio_must_rise_beyond_chance() {
        let z = z_for(0.001);
        let share = |part, trials| Share { part, trials };
        // 0 of 200 missed, then 100 of 200: certain.
        assert!(share_rose(share(0.0, 200.0), share(100.0, 200.0), 0.2, z));
        assert!(!share_rose(share(100.0, 200.0), share(0.0, 200.0), 0.2, z));
        // 1 of 8, then 3 of 8: too few reads to tell.
        assert!(!share_rose(share(1.0, 8.0), share(3.0, 8.0), 0.2, z));
        // 10 % then 11 % of a million: certain, but under the threshold.
        assert!(!share_rose(share(1e5, 1e6), share(1.1e5, 1e6), 0.2, z));
        // Nothing read on one side: nothing to compare.
        assert!(!share_rose(share(0.0, 0.0), share(5.0, 5.0), 0.2, z));
    }

    #[test]
    fn percentiles_need_enough_calls_and_a_clear_shift() {
        let z = z_for(0.001);
        let spread = |n: i64, base: i64| Latencies::Sorted((0..n).map(|i| base + i).collect());
        // 10000 calls each, all 2x slower: p50 and p99 rose.
        let (a, b) = (
            spread(10_000, 10_000),
            Latencies::Sorted((0..10_000).map(|i| 2 * (10_000 + i)).collect()),
        );
        assert!(quantile_rose(&a, &b, 0.5, 0.2, z));
        assert!(quantile_rose(&a, &b, 0.99, 0.2, z));
        assert!(!quantile_rose(&b, &a, 0.5, 0.2, z));
        // 500 calls cannot bound a p99 at this z.
        let (a, b) = (
            spread(500, 10_000),
            Latencies::Sorted((0..500).map(|i| 3 * (10_000 + i)).collect()),
        );
        assert!(!quantile_rose(&a, &b, 0.99, 0.2, z));
        assert!(quantile_rose(&a, &b, 0.5, 0.2, z));
        // Identical distributions never count.
        let a = spread(100_000, 1000);
        assert!(!quantile_rose(&a, &a.clone(), 0.5, 0.0, z));
        assert!(!quantile_rose(&a, &a.clone(), 0.99, 0.0, z));
    }
}
