//! Where the project's files are, for tests and tools run from anywhere in the workspace:
//! its root (`deploy/`, `dist/`) and the binaries cargo built beside the running one.

use std::path::PathBuf;

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

/// The binary `name` built by the same cargo invocation as the running test or tool
/// (`target/<profile>/<name>`; a test runs from `target/<profile>/deps/`).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dir = exe.parent().expect("the binary's directory");
    let profile = if dir.ends_with("deps") { dir.parent().expect("target/<profile>") } else { dir };
    profile.join(name)
}
