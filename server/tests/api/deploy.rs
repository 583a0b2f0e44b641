//! The files in deploy/ are checked by the tools that will run them. (HAProxy's runs in
//! front of real instances in the browser test and `make cluster`.)

use std::{path::PathBuf, process::Command};

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

#[test]
fn the_nginx_example_is_valid_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("nginx.conf");
    let example = deploy("nginx.conf").canonicalize().expect("deploy/nginx.conf");
    std::fs::write(
        &wrapper,
        format!("events {{}}\nhttp {{\n    include {};\n}}\n", example.display()),
    )
    .unwrap();
    let output = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&wrapper)
        .args(["-g", "pid nginx.pid; error_log stderr;"])
        .output()
        .expect("run nginx (make packages installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("test is successful"), "{stderr}");
}

#[test]
fn the_haproxy_config_is_valid_haproxy() {
    let output = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(deploy("haproxy.cfg"))
        .env("WSTIME_LB_BIND", "127.0.0.1:1")
        .env("WSTIME_STATS_BIND", "127.0.0.1:2")
        .env("WSTIME_NODE1", "127.0.0.1:3")
        .env("WSTIME_AGENT1", "4")
        .output()
        .expect("run haproxy (make packages installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_systemd_unit_sets_only_settings_the_server_knows() {
    let unit = std::fs::read_to_string(deploy("wstime@.service")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_wstime-server")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let names: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .filter_map(|assignment| assignment.split_once('=').map(|(name, _)| name))
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        assert!(help.contains(&format!("[env: {name}=")), "{name} is not a wstime-server setting");
    }
    assert!(unit.contains("KillSignal=SIGTERM"), "SIGTERM starts the drain");
}
