//! What a scenario returns: the promise it checked, the figure measured beside it and whether
//! it held, plus the series its charts draw; and the two sizes scenarios run at.

use serde::Serialize;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// For `make test`: tens of clients and short faults, each scenario well under a minute.
    Small,
    /// For `make chaos`: thousands of clients where the scenario is about load, and faults as
    /// long as the promise is stated for.
    Realistic,
}

impl Size {
    /// Picks `small` or `realistic`.
    pub fn pick<T>(self, small: T, realistic: T) -> T {
        match self {
            Self::Small => small,
            Self::Realistic => realistic,
        }
    }
}

/// One scenario's result: one object of `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// What wstime promises under the fault, with its bounds.
    pub promise: String,
    /// What was measured, in the promise's terms.
    pub measured: String,
    /// Whether every part of the promise held.
    pub held: bool,
    /// Charts for the report; not in `results.json`.
    #[serde(skip)]
    pub charts: Vec<Chart>,
}

/// A line chart's data: drawn by [`crate::report`] into `<file>.svg`.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The SVG's file name, without `.svg`.
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Each line's label and points.
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// One part of a promise checked: what was expected, what was seen, whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    pub seen: String,
    pub held: bool,
}

impl Check {
    /// `seen`, holding if `held`.
    pub fn new(held: bool, seen: impl Into<String>) -> Self {
        Self { seen: seen.into(), held }
    }
}

impl Outcome {
    /// An outcome whose measured figure is each check's, joined, and which holds if all do.
    pub fn from_checks(name: &str, promise: &str, checks: &[Check], charts: Vec<Chart>) -> Self {
        let measured = checks
            .iter()
            .map(|check| {
                if check.held {
                    check.seen.clone()
                } else {
                    format!("**{}** (broken)", check.seen)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            name: name.to_owned(),
            promise: promise.to_owned(),
            measured,
            held: checks.iter().all(|check| check.held),
            charts,
        }
    }
}
