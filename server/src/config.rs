//! Configuration: every setting is a flag and an environment variable, with its default here
//! and nowhere else.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use clap::{error::ErrorKind, Parser};

/// How one wstime-server instance runs. The environment variable names are part of the
/// contract: deploy files, tests and users set them.
#[derive(Debug, Clone, Parser)]
#[command(name = "wstime-server", version, about)]
pub struct Config {
    /// TCP port for the page, the WebSocket endpoint and the health check (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Directory of the built page (trunk's output), served at `/`.
    #[arg(long, env = "STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Name shown in every tick; a random adjective-animal pair when unset.
    #[arg(long, env = "SERVER_NAME", value_parser = parse_server_name)]
    pub server_name: Option<String>,
}

impl Config {
    /// Parses flags and environment. On `--help`/`--version` it prints and returns success;
    /// on a bad value it prints one line naming the setting and returns failure, so a typo in
    /// a unit file is a clear message in the journal rather than a usage dump.
    pub fn from_env_and_args() -> Result<Self, ExitCode> {
        Self::try_parse().map_err(|error| match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = error.print();
                ExitCode::SUCCESS
            }
            _ => {
                let rendered = error.to_string();
                let first_line = rendered.lines().next().unwrap_or("invalid configuration");
                eprintln!("{first_line} (see --help)");
                ExitCode::from(2)
            }
        })
    }
}

/// A server name is shown to users and written in logs: it must be visible and one line.
fn parse_server_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the server name must not be empty (unset SERVER_NAME for a random one)".into());
    }
    if name.chars().any(char::is_control) || name.len() > 64 {
        return Err("the server name must be one line of at most 64 bytes".into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let config = Config::try_parse_from(["wstime-server"]).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.bind.to_string(), "0.0.0.0");
        assert_eq!(config.static_dir, PathBuf::from("dist"));
    }

    #[test]
    fn server_names_are_one_visible_line() {
        assert_eq!(parse_server_name(" blue-whale ").unwrap(), "blue-whale");
        assert!(parse_server_name("  ").is_err());
        assert!(parse_server_name("a\nb").is_err());
    }
}
