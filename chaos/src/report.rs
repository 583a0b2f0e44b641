//! The chaos report from any list of outcomes: `results.json` (one object per scenario:
//! name, promise, measured, held), the charts as SVG, drawn as the bench report draws its
//! own, and `report.md`, each promise with the figure measured beside it.

use std::{fmt::Write as _, path::Path};

use plotters::style::{RGBColor, BLUE, GREEN, RED};
use wstime_bench::report::charts::line_chart;

use crate::Outcome;

/// The lines' colours, in order: the measured series first, then the fault's marks.
const COLORS: [RGBColor; 3] = [BLUE, RED, GREEN];

/// Writes `results.json`, the charts and `report.md` for `outcomes` into `dir`; `size`
/// says what the run was (for the report's heading).
pub fn write(outcomes: &[Outcome], dir: &Path, size: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(outcomes)? + "\n")?;
    for chart in outcomes.iter().flat_map(|outcome| &outcome.charts) {
        let series: Vec<_> = chart
            .lines
            .iter()
            .zip(COLORS.iter().cycle())
            .map(|((label, points), color)| (label.clone(), *color, points.clone()))
            .collect();
        let path = dir.join(format!("{}.svg", chart.file));
        line_chart(&path, &chart.title, &chart.x_label, &chart.y_label, &series)?;
    }
    std::fs::write(dir.join("report.md"), render(outcomes, size))?;
    Ok(())
}

/// The Markdown report.
pub fn render(outcomes: &[Outcome], size: &str) -> String {
    let mut md = String::new();
    let held = outcomes.iter().filter(|outcome| outcome.held).count();
    let _ = writeln!(md, "# Chaos report\n");
    let _ = writeln!(
        md,
        "Written by `make chaos` ({size} size): every scenario in a fresh lab of network \
         namespaces, its fault made with nftables or tc. What the lab is and how to run it: \
         [docs/chaos.md](../chaos.md). {held} of {} promises held.\n",
        outcomes.len()
    );
    let _ = writeln!(md, "| Scenario | Held | Measured |\n|---|---|---|");
    for outcome in outcomes {
        let mark = if outcome.held { "yes" } else { "**no**" };
        let _ = writeln!(md, "| {} | {mark} | {} |", outcome.name, cell(&outcome.measured));
    }
    for outcome in outcomes {
        let _ = writeln!(md, "\n## {}\n", outcome.name);
        let _ = writeln!(md, "**Promise.** {}\n", outcome.promise);
        let held = if outcome.held { "held" } else { "**broken**" };
        let _ = writeln!(md, "**Measured** ({held}). {}\n", outcome.measured);
        for chart in &outcome.charts {
            let _ = writeln!(md, "![{}]({}.svg)\n", chart.title, chart.file);
        }
    }
    md
}

/// `text` fit for a table cell: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "/").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_json_is_a_list_of_name_promise_measured_held() {
        let outcome = Outcome {
            name: "a cut".into(),
            promise: "ticks go on".into(),
            measured: "they did".into(),
            held: true,
            charts: vec![crate::Chart {
                file: "a-cut".into(),
                title: "Ticks".into(),
                x_label: "s".into(),
                y_label: "ticks".into(),
                lines: vec![("ticks".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        write(std::slice::from_ref(&outcome), dir.path(), "small").unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "a cut", "promise": "ticks go on", "measured": "they did", "held": true}
            ])
        );
        assert!(dir.path().join("a-cut.svg").is_file());
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("| a cut | yes | they did |"), "{md}");
        assert!(md.contains("![Ticks](a-cut.svg)"), "{md}");
    }
}
