//! `docs/configuration.md`, generated from clap's own definition of the settings, so the
//! reference cannot drift from the code: the test fails when the committed page differs
//! from what the definition makes, and `make config-docs` (which sets
//! `WSTIME_WRITE_CONFIG_DOCS=1`) writes it anew.

use std::path::PathBuf;

use clap::CommandFactory as _;

use super::Config;

/// The reference page for every setting `command` defines.
fn markdown(command: &clap::Command) -> String {
    let mut page = String::from(
        "<!-- generated from the server's settings by `make config-docs`; edit the doc comments \
         in server/src/config/, not this file -->\n\
         # Configuration\n\n\
         Every setting is a flag and an environment variable; a bad value stops the server \
         with a one-line message naming it. `wstime-server --help` says the same.\n\n\
         | Variable | Flag | Default | Meaning |\n|---|---|---|---|\n",
    );
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let flag = arg.get_long().map_or(String::new(), |long| format!("`--{long}`"));
        let default = match arg.get_default_values() {
            [] => "unset".to_owned(),
            [empty] if empty.is_empty() => "unset".to_owned(),
            values => {
                let values: Vec<_> = values.iter().map(|v| v.to_string_lossy()).collect();
                format!("`{}`", values.join(","))
            }
        };
        let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string);
        let help = help.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        let env = env.to_string_lossy();
        page.push_str(&format!(
            "| `{env}` | {flag} | {default} | {} |\n",
            help.replace('|', "\\|")
        ));
    }
    page.push_str(
        "\nThe forms `REDIS_URL` takes, and the log filter `RUST_LOG`, are described in \
         [deploying.md](deploying.md).\n",
    );
    page
}

#[test]
fn the_committed_reference_is_what_the_settings_make() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let made = markdown(&Config::command());
    if std::env::var_os("WSTIME_WRITE_CONFIG_DOCS").is_some() {
        std::fs::write(&path, &made).expect("write docs/configuration.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == made, "docs/configuration.md is stale: run `make config-docs`");
}

#[test]
fn settings_are_rows_with_their_flag_and_default() {
    let page = markdown(&Config::command());
    for expected in ["| `PORT` | `--port` | `8080` |", "| `TLS_KEY` | `--tls-key` | unset |"] {
        assert!(page.contains(expected), "{expected} in\n{page}");
    }
}
