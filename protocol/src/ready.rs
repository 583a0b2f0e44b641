//! The ready file (`READY_FILE`): how a supervisor (the cluster tool, a test harness, a
//! script) learns that an instance is listening, on which port and under which name, without
//! reading its logs. Written once the port is bound, replaced atomically, so a reader never
//! sees half.

use std::{io, path::Path};

use serde::{Deserialize, Serialize};

/// What the ready file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The port the instance listens on (the system's choice when asked for port 0).
    pub port: u16,
    /// The instance's name, as it appears in ticks.
    pub name: String,
    /// The instance's process id.
    pub pid: u32,
}

impl Ready {
    /// Writes `self` to `path` as JSON: to a temporary file beside it, then renamed.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, json)?;
        std::fs::rename(&partial, path)
    }

    /// Reads a ready file; `Ok(None)` while there is none yet.
    pub fn read(path: &Path) -> io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(json) => serde_json::from_slice(&json).map(Some).map_err(io::Error::other),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_file_reads_back_and_is_absent_until_written() {
        let dir = std::env::temp_dir().join(format!("wstime-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.json");
        assert_eq!(Ready::read(&path).unwrap(), None);
        let ready = Ready { port: 8080, name: "slimy-cardinal".into(), pid: 42 };
        ready.write(&path).unwrap();
        assert_eq!(Ready::read(&path).unwrap(), Some(ready));
        assert!(!path.with_extension("partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
