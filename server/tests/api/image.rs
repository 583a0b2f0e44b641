//! The container image (`deploy/Containerfile`), built by podman around the server this test
//! run built, and checked as a runtime would see it: its settings, its files, and the
//! server started from those files alone.
//!
//! Where these tests were written, podman builds images but cannot run them (crun's
//! `setrlimit` and cgroups are refused: docs/deploying.md#container-image). So the run is
//! the nearest thing to `podman run`, everywhere: the image's exported filesystem as the
//! root directory, its user, entrypoint and environment, in PID and mount namespaces of
//! its own, the server as PID 1 (`unshare`, which needs root, as `make test` has). What it
//! cannot show is the runtime's own part: the network namespace, cgroups, rlimits.
//!
//! Needs `make image-base` (the unpacked Debian files, `target/image/debian.tar`) and the
//! built page (`dist/`); `make test` makes both first.

use std::{
    collections::BTreeSet,
    io::Read as _,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use wstime_cluster::{free_port, http::request, paths::workspace, Supervised};

use crate::helpers::{within, Client, NETWORK_TIMEOUT};

/// The longest a podman command may take: building copies the debug server (about 180 MB)
/// into a layer, on a machine that may be running other builds.
const PODMAN_TIMEOUT_SECS: &str = "300";

/// Runs podman with `args`, bounded by `PODMAN_TIMEOUT_SECS`.
fn podman_output(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg(PODMAN_TIMEOUT_SECS)
        .arg("podman")
        .args(args)
        .output()
        .expect("run podman (make packages installs it)")
}

/// Runs podman with `args`, failing the test unless it succeeds, and returns its output.
fn podman(args: &[&str]) -> String {
    let output = podman_output(args);
    assert!(
        output.status.success(),
        "podman {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("podman writes UTF-8")
}

/// An image built for this test, removed (with the layers only it uses) when dropped.
struct TestImage {
    tag: String,
}

impl TestImage {
    /// Builds `deploy/Containerfile` in `context`, without podman's layer cache: a cached
    /// layer per step would keep each run's server (180 MB) after the image is removed.
    fn build(context: &Path) -> Self {
        let tag = format!("localhost/wstime-test:{}", std::process::id());
        let containerfile = workspace().join("deploy/Containerfile");
        let containerfile = containerfile.to_str().expect("a UTF-8 path");
        let context = context.to_str().expect("a UTF-8 path");
        podman(&[
            "build",
            "--layers=false",
            "--quiet",
            "--file",
            containerfile,
            "--tag",
            &tag,
            context,
        ]);
        Self { tag }
    }

    /// `podman image inspect`'s `Config`: what a runtime reads to start it.
    fn config(&self) -> serde_json::Value {
        let inspected: serde_json::Value =
            serde_json::from_str(&podman(&["image", "inspect", &self.tag])).expect("JSON");
        inspected[0]["Config"].clone()
    }

    /// Unpacks the image's filesystem into `root`, as a runtime would see it: through a
    /// container created from the image (never started), exported.
    fn export_to(&self, root: &Path) {
        let container = podman(&["create", &self.tag]).trim().to_owned();
        let archive = root.with_extension("tar");
        let exported =
            podman_output(&["export", "--output", archive.to_str().expect("UTF-8"), &container]);
        podman(&["rm", &container]);
        let stderr = String::from_utf8_lossy(&exported.stderr);
        assert!(exported.status.success(), "podman export failed: {stderr}");
        std::fs::create_dir_all(root).unwrap();
        let status = Command::new("tar")
            .arg("--extract")
            .arg("--file")
            .arg(&archive)
            .arg("--directory")
            .arg(root)
            .status()
            .expect("run tar");
        assert!(status.success(), "tar could not unpack the image");
        std::fs::remove_file(&archive).unwrap();
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "--force", &self.tag]).output();
    }
}

/// Puts `from` at `to`, as a hard link where it can (the debug server is large).
fn place(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("a parent")).unwrap();
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// Copies the directory `from` to `to`.
fn place_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        match entry.file_type().unwrap().is_dir() {
            true => place_dir(&entry.path(), &to.join(entry.file_name())),
            false => place(&entry.path(), &to.join(entry.file_name())),
        }
    }
}

/// Whether the files `a` and `b` hold the same bytes. (Compared, not hashed: sha2 is
/// unoptimised in a test build, and took seconds over the debug server.)
fn same_file(a: &Path, b: &Path) -> bool {
    let read =
        |path: &Path| std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read(a) == read(b)
}

/// Every path under `dir`, depth first.
fn walk(dir: &Path, paths: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        paths.push(path.clone());
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, paths);
        }
    }
}

/// The process `parent` forked (unshare's one child: the server).
fn only_child(parent: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .expect("the children of unshare");
    let children: Vec<u32> = children.split_whitespace().map(|pid| pid.parse().unwrap()).collect();
    assert_eq!(children.len(), 1, "unshare's children: {children:?}");
    children[0]
}

/// The value of `field` in `/proc/<pid>/status` (`Uid`, `NSpid`), split at whitespace.
fn proc_status(pid: u32, field: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[actix_web::test]
async fn the_image_runs_the_built_server_as_its_user_from_its_own_files() {
    let root_user = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
    assert!(root_user, "this test runs the image's files with unshare --root, as root");
    let base = workspace().join("target/image/debian.tar");
    assert!(base.exists(), "{} is missing: run `make image-base`", base.display());
    let dist = workspace().join("dist");
    let page = dist.join("index.html");
    assert!(page.exists(), "{} is missing: run `trunk build --release`", dist.display());
    let server = PathBuf::from(env!("CARGO_BIN_EXE_wstime-server"));

    // The build context `make image` sends (the repository's root, through .dockerignore),
    // with this run's server where the release build would be.
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("context");
    place(&server, &context.join("target/release/wstime-server"));
    place(&base, &context.join("target/image/debian.tar"));
    place_dir(&dist, &context.join("dist"));
    let image = TestImage::build(&context);

    // What a runtime reads from the image, and the Kubernetes manifests rely on.
    let config = image.config();
    assert_eq!(config["User"], "10001:10001", "{config:#}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/wstime-server"]));
    let ports: BTreeSet<&str> =
        config["ExposedPorts"].as_object().expect("ports").keys().map(String::as_str).collect();
    assert_eq!(ports, BTreeSet::from(["8080/tcp", "9081/tcp"]));
    assert_eq!(config["StopSignal"], "SIGTERM", "the signal that starts the drain");
    let env: Vec<(String, String)> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .map(|pair| pair.as_str().expect("a string").split_once('=').expect("NAME=value"))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let setting = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(setting("STATIC_DIR"), Some("/usr/local/share/wstime/dist"));
    assert_eq!(setting("AGENT_PORT"), Some("9081"));

    // Its files: the server this run built, the page, and nothing to log in with.
    let root = work.path().join("root");
    image.export_to(&root);
    let image_server = root.join("usr/local/bin/wstime-server");
    assert!(same_file(&image_server, &server), "the image's server is not {}", server.display());
    let image_page = root.join("usr/local/share/wstime/dist/index.html");
    assert!(same_file(&image_page, &page), "the image's page is not {}", page.display());
    for shell_dir in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        assert!(!root.join(shell_dir).exists(), "the image has /{shell_dir}");
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|line| line.starts_with("wstime:x:10001:10001:")), "{passwd}");
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    for path in &paths {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{} is not root's", path.display());
        let writable = !meta.is_symlink() && meta.permissions().mode() & 0o022 != 0;
        assert!(!writable, "{} is writable by others than root", path.display());
    }

    // The server from those files alone: the image's filesystem as its root (with the
    // mount points a runtime adds), the image's user, entrypoint and environment, and
    // only loopback ports of the test's choosing instead of 8080 and 9081.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("proc")).unwrap();
    let (uid, gid) = config["User"].as_str().unwrap().split_once(':').unwrap();
    let entrypoint: Vec<&str> =
        config["Entrypoint"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let (port, agent_port) = (free_port().unwrap(), free_port().unwrap());
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--pid", "--fork", "--mount-proc=/proc"])
        .arg(format!("--root={}", root.display()))
        .args(["--setuid", uid, "--setgid", gid])
        .args(&entrypoint)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("AGENT_PORT", agent_port.to_string())
        .env("DRAIN_GRACE_SECS", "0")
        .env("DRAIN_WINDOW_SECS", "1");
    let mut container = Supervised::spawn("image", &mut command, false).expect("run unshare");
    container.wait_for_line("Server listening", NETWORK_TIMEOUT).expect("the server listens");
    let pid = only_child(container.pid());
    assert_eq!(proc_status(pid, "Uid"), [uid, uid, uid, uid], "it runs as the image's user");
    assert_eq!(proc_status(pid, "NSpid").last().map(String::as_str), Some("1"), "PID 1");

    let got = request("GET", port, "/", "text/html", NETWORK_TIMEOUT).expect("GET /");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, std::fs::read_to_string(&page).unwrap(), "the page from STATIC_DIR");
    let got = request("GET", port, "/healthcheck", "text/plain", NETWORK_TIMEOUT).unwrap();
    assert_eq!((got.status, got.body.trim()), (200, "ok"));
    let mut agent = std::net::TcpStream::connect(("127.0.0.1", agent_port)).expect("the agent");
    agent.set_read_timeout(Some(NETWORK_TIMEOUT)).unwrap();
    let mut answer = String::new();
    agent.read_to_string(&mut answer).expect("the agent's answer");
    assert!(answer.starts_with("up ready"), "{answer:?}");
    let url = format!("ws://127.0.0.1:{port}/?id=image-test");
    let (socket, _) = within("the handshake", tokio_tungstenite::connect_async(url))
        .await
        .expect("a WebSocket to the image's server");
    let mut client = Client { socket };
    client.next_tick().await;

    // The stop signal reaches the server as PID 1, which drains: 1012 to the client, exit 0.
    let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    assert!(status.success());
    assert_eq!(client.expect_close().await, Some(1012), "closed by the drain");
    let exit = container.wait_exit(Duration::from_secs(20)).expect("the server stops");
    assert_eq!(exit.code(), Some(0), "{}", container.lines().join("\n"));
}

/// The build context is the repository's root cut down by `.dockerignore`: everything the
/// Containerfile takes from it must be let through.
#[test]
fn the_build_context_lets_through_what_the_containerfile_copies() {
    let containerfile = std::fs::read_to_string(workspace().join("deploy/Containerfile")).unwrap();
    let ignore = std::fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    let let_through: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|line| line.strip_prefix('!'))
        .map(|path| path.trim_end_matches('/'))
        .collect();
    let taken: BTreeSet<&str> = containerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") || line.starts_with("ADD "))
        .filter(|line| !line.contains("--from="))
        .map(|line| line.split_whitespace().nth(1).expect("a source").trim_end_matches('/'))
        .collect();
    assert_eq!(taken.len(), 3, "{taken:?}");
    assert_eq!(taken, let_through, "deploy/Containerfile takes these from the context");
}
