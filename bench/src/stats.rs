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
}
