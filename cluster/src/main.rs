//! The `wstime-cluster` command: start real instances on loopback and either keep them
//! running (`up`) or run a command against them and stop them (`exec`).

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use wstime_cluster::{control, Cluster, ClusterSpec, InstanceSpec};

#[derive(Debug, Parser)]
#[command(name = "wstime-cluster", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster, run COMMAND with WSTIME_CONTROL_URL set, stop the cluster, and exit
    /// with COMMAND's status.
    Exec {
        #[command(flatten)]
        options: Options,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Start a cluster and keep it running until Ctrl-C (or SIGTERM).
    Up {
        #[command(flatten)]
        options: Options,
    },
}

#[derive(Debug, Args)]
struct Options {
    /// How many wstime-server instances to start.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// The wstime-server binary.
    #[arg(long, default_value = "target/release/wstime-server")]
    server_bin: PathBuf,
    /// The built page, passed to every instance as STATIC_DIR.
    #[arg(long, default_value = "dist")]
    static_dir: PathBuf,
    /// Start a redis-server and share sessions through it.
    #[arg(long)]
    redis: bool,
    /// Port of the control API on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Print every instance's log, prefixed with its label.
    #[arg(long)]
    echo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    actix_web::rt::System::new().block_on(async move {
        match run(cli.command).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("wstime-cluster: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let (options, child) = match command {
        Command::Exec { options, command } => (options, Some(command)),
        Command::Up { options } => (options, None),
    };
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: options.server_bin.clone(),
            static_dir: options.static_dir.clone(),
            env: Vec::new(),
            echo: options.echo,
        },
        instances: options.instances,
        redis: options.redis,
    };
    let cluster = Arc::new(Mutex::new(actix_web::web::block(move || Cluster::start(spec)).await??));
    let listener = std::net::TcpListener::bind(("127.0.0.1", options.control_port))
        .context("cannot bind the control API's port")?;
    let control_url = format!("http://{}", listener.local_addr()?);
    let server = control::serve(Arc::clone(&cluster), listener)?;
    let server_handle = server.handle();
    actix_web::rt::spawn(server);
    {
        let mut cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(port) = cluster.redis_port() {
            eprintln!("wstime-cluster: redis-server at 127.0.0.1:{port}");
        }
        for instance in cluster.instances() {
            eprintln!(
                "wstime-cluster: instance {} ({}) at http://127.0.0.1:{}/",
                instance.index,
                instance.name.unwrap_or_default(),
                instance.port
            );
        }
    }
    eprintln!("wstime-cluster: control API at {control_url}");

    let code = match child {
        Some(command) => {
            let status = tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .env("WSTIME_CONTROL_URL", &control_url)
                .status()
                .await
                .with_context(|| format!("cannot run {:?}", command[0]))?;
            ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
        }
        None => {
            eprintln!("wstime-cluster: running; press Ctrl-C to stop everything");
            tokio::signal::ctrl_c().await?;
            ExitCode::SUCCESS
        }
    };
    server_handle.stop(false).await;
    // Dropping the cluster kills every process it started.
    drop(cluster);
    Ok(code)
}
