//! Where and when a run happened, and with which browser, for the report's headings.

use std::process::Command;

/// The machine: its cores, kernel and CPU model.
pub fn description() -> String {
    format!(
        "{} cores, {}, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        command_output("uname", &["-sr"]),
        command_output("sh", &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).trim()
    )
}

/// The browser the page row runs: what `chromium --version` says.
pub fn browser() -> String {
    command_output(crate::browser::CHROMIUM, &["--version"])
}

/// The time now, in UTC to the minute.
pub fn date() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// What `program` printed, trimmed; empty when it could not run, since a report without
/// its heading's details is still a report.
fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
