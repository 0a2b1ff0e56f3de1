//! `dli-sim`: the DLI simulator on its own, for scripts (soak, benchmarks) and exploration.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use dli_graphql::sim::{SimOptions, Simulator};

/// Runs the simulated DLI datasource-connection API.
#[derive(Parser)]
#[command(name = "dli-sim", version)]
struct Args {
    /// Address to listen on (loopback only is recommended).
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: SocketAddr,
    /// Connections per project (the first is the seed sample).
    #[arg(long, default_value_t = 12)]
    connections: usize,
    /// Delay added to every list call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let opts = SimOptions {
        connections_per_project: args.connections.max(1),
        base_delay: Duration::from_millis(args.delay_ms),
        ..SimOptions::default()
    };
    let sim = match Simulator::start(args.listen, opts).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("dli-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!("dli-sim: serving simulated DLI at {}", sim.url());
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
