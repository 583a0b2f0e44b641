//! Node.js for the benchmark's Node parts (the post's server and the independent client):
//! finding it, installing a package's locked dependencies, and the parts ready to run.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

use crate::{clients::Client, servers::Server};

/// A Node.js found on this machine.
#[derive(Debug, Clone)]
pub struct Node {
    /// The `node` binary, as an absolute path: the servers run with a cleared environment.
    pub binary: PathBuf,
    /// What `node --version` says (`v20.20.2`), for the report.
    pub version: String,
}

impl Node {
    /// `program` if it is a path, else the first `program` on `PATH`; `None` when there is
    /// none or it does not run.
    pub fn find(program: &str) -> Option<Self> {
        let binary = if program.contains('/') {
            PathBuf::from(program)
        } else {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())?
        };
        let output = Command::new(&binary).arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        output.status.success().then_some(Self { binary, version })
    }

    /// Installs the dependencies `dir/package-lock.json` pins, with `npm ci` (the `npm`
    /// beside this `node` if there is one), unless they are installed already: npm writes
    /// `node_modules/.package-lock.json` last, so one newer than the lock file means the
    /// lock file has not changed since.
    pub fn install(&self, dir: &Path) -> anyhow::Result<()> {
        let lock = dir.join("package-lock.json");
        let installed = dir.join("node_modules/.package-lock.json");
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let lock_modified =
            modified(&lock).with_context(|| format!("{} is missing", lock.display()))?;
        if modified(&installed).is_some_and(|at| at >= lock_modified) {
            return Ok(());
        }
        let npm = self.binary.with_file_name("npm");
        let npm = if npm.is_file() { npm } else { PathBuf::from("npm") };
        let status = Command::new(&npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .with_context(|| format!("run {} ci in {}", npm.display(), dir.display()))?;
        if !status.success() {
            bail!("npm ci in {} failed ({status})", dir.display());
        }
        Ok(())
    }
}

/// The Node parts of the benchmark, when this machine has Node.
pub struct NodeParts {
    /// What `node --version` says, for the report.
    pub version: String,
    /// The post's server.
    pub peer: Server,
    /// The independent client.
    pub client: Client,
}

impl NodeParts {
    /// Finds `node` (see [`Node::find`]) and installs the post's server in `peer_dir` and the
    /// independent client in `client_dir`; `None`, having said so, when there is no Node.
    pub fn install(node: &str, peer_dir: &Path, client_dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(found) = Node::find(node) else {
            eprintln!(
                "wstime-bench: no Node.js ({node:?} not found): measuring wstime alone, without \
                 the post's server and the independent client"
            );
            return Ok(None);
        };
        found.install(peer_dir)?;
        found.install(client_dir)?;
        let absolute = |dir: &Path| std::path::absolute(dir).context("the current directory");
        Ok(Some(Self {
            peer: Server::Node { binary: found.binary.clone(), dir: absolute(peer_dir)? },
            client: Client::NodeWs {
                binary: found.binary.clone(),
                script: absolute(client_dir)?.join("client.js"),
            },
            version: found.version,
        }))
    }
}
