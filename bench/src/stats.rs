//! Percentiles over samples.

use serde::{Deserialize, Serialize};

/// p50, p99 and max of a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (nearest-rank percentiles); all zero when empty.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Self {
            count: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }

    /// The worse of two summaries, figure by figure, counting the samples of both: the
    /// percentiles of separate sets of samples cannot be merged exactly, so where several
    /// generators measured, the worst one's figures are reported.
    pub fn worst(&self, other: &Self) -> Self {
        Self {
            count: self.count + other.count,
            p50: self.p50.max(other.p50),
            p99: self.p99.max(other.p99),
            max: self.max.max(other.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let summary = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (summary.count, summary.p50, summary.p99, summary.max),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(Summary::of(vec![7.0]).p99, 7.0);
        assert_eq!(Summary::of(Vec::new()), Summary::default());
    }

    #[test]
    fn the_worst_of_two_takes_each_figure_from_the_worse_and_counts_both() {
        let a = Summary { count: 10, p50: 1.0, p99: 9.0, max: 20.0 };
        let b = Summary { count: 5, p50: 2.0, p99: 4.0, max: 30.0 };
        assert_eq!(a.worst(&b), Summary { count: 15, p50: 2.0, p99: 9.0, max: 30.0 });
        assert_eq!(Summary::default().worst(&a), a);
    }
}
