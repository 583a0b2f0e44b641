//! wstime-chaos: runs the fault scenarios in the lab (as root) and writes the chaos report:
//! `report.md`, `results.json` and the charts (`make chaos`: `--out docs/chaos`).

use std::path::PathBuf;

use clap::Parser;
use wstime_chaos::{report, scenarios, Outcome, Size};

#[derive(Debug, Parser)]
#[command(name = "wstime-chaos", about)]
struct Args {
    /// Where to write report.md, results.json and the charts.
    #[arg(long)]
    out: PathBuf,
    /// Run at the tests' small size instead of the realistic one.
    #[arg(long)]
    small: bool,
    /// Run only the scenarios whose name contains this (all of them by default).
    #[arg(long)]
    only: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let size = if args.small { Size::Small } else { Size::Realistic };
    let mut outcomes = Vec::new();
    let chosen = scenarios::ALL
        .iter()
        .filter(|scenario| args.only.as_deref().is_none_or(|only| scenario.name.contains(only)));
    for scenario in chosen {
        eprintln!("wstime-chaos: {} ...", scenario.name);
        let outcome = (scenario.run)(size).unwrap_or_else(|error| Outcome {
            name: scenario.name.to_owned(),
            promise: "(the scenario did not run)".to_owned(),
            measured: format!("failed to run: {error:#}"),
            held: false,
            charts: Vec::new(),
        });
        let verdict = if outcome.held { "held" } else { "BROKEN" };
        eprintln!("wstime-chaos: {verdict}: {}", outcome.measured);
        outcomes.push(outcome);
    }
    report::write(&outcomes, &args.out, if args.small { "small" } else { "realistic" })?;
    eprintln!("wstime-chaos: wrote {}", args.out.join("report.md").display());
    if outcomes.iter().all(|outcome| outcome.held) {
        Ok(())
    } else {
        anyhow::bail!("some promises were broken: see {}", args.out.join("report.md").display())
    }
}
