//! A process's resident memory and CPU time, read from `/proc`.

use anyhow::Context as _;

/// Resident set size in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// CPU time used so far, split into user and kernel time, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    pub user_us: u64,
    pub kernel_us: u64,
}

/// CPU time of `pid` (fields 14 and 15 of `/proc/<pid>/stat`, all threads).
pub fn cpu_time(pid: u32) -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; the fields after it are fixed.
    let after_name = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let per_tick_us = 1_000_000 / clock_ticks_per_second();
    Ok(CpuTime { user_us: ticks(11)? * per_tick_us, kernel_us: ticks(12)? * per_tick_us })
}

/// CPU time the hypervisor has given to others while this machine wanted it, all CPUs
/// together, in microseconds (`steal` in `/proc/stat`). On a shared virtual machine it is
/// what makes one run slower than the next: the server is not running, yet the clock is.
pub fn stolen_us() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let all_cpus = stat.lines().find(|line| line.starts_with("cpu ")).context("no cpu line")?;
    // cpu user nice system idle iowait irq softirq steal ...
    let steal: u64 = all_cpus.split_whitespace().nth(8).context("no steal field")?.parse()?;
    Ok(steal * (1_000_000 / clock_ticks_per_second()))
}

/// Time during which at least one runnable task on this machine waited for a CPU, in
/// microseconds (the `some` line of `/proc/pressure/cpu`); `None` on a kernel without
/// pressure stall information. Steal only counts what the hypervisor takes; this also counts
/// the machine's own other processes (someone's compile) taking the cores from the server or
/// from the clients, whose ticks then wait in socket buffers, unread.
pub fn cpu_pressure_us() -> Option<u64> {
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = pressure.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace().find_map(|field| field.strip_prefix("total="))?.parse().ok()
}

/// The kernel's clock tick (USER_HZ): 100 on every Linux this runs on.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {}
        assert!(cpu_time(pid).unwrap().user_us > 0);
        assert!(stolen_us().is_ok());
        if std::path::Path::new("/proc/pressure/cpu").exists() {
            assert!(cpu_pressure_us().is_some());
        }
    }
}
