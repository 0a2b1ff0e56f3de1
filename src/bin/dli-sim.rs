//! `dli-sim`: the DLI simulator on its own, for scripts (soak, benchmarks) and exploration.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use dli_graphql::sim::{SimAccessKey, SimAuth, SimIamUser, SimOptions, Simulator};

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
    /// Enhanced connections per project.
    #[arg(long, default_value_t = 12)]
    enhanced_connections: usize,
    /// Delay added to every list call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Fraction (0.0-1.0) of list calls that get a random fault (500, 429, 2 s delay, malformed body).
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// An access key pair whose signatures the gateway accepts, as AK:SK (repeatable).
    #[arg(long, value_parser = parse_access_key)]
    access_key: Vec<SimAccessKey>,
    /// An IAM user that may obtain tokens, as DOMAIN/USER:PASSWORD (repeatable).
    #[arg(long, value_parser = parse_iam_user)]
    iam_user: Vec<SimIamUser>,
    /// Accept only tokens IAM issued, not any non-empty token.
    #[arg(long)]
    strict_tokens: bool,
}

fn parse_access_key(s: &str) -> Result<SimAccessKey, String> {
    let (ak, sk) = s.split_once(':').ok_or("expected AK:SK")?;
    Ok(SimAccessKey { access_key: ak.into(), secret_key: sk.into(), security_token: None })
}

fn parse_iam_user(s: &str) -> Result<SimIamUser, String> {
    let (who, password) = s.split_once(':').ok_or("expected DOMAIN/USER:PASSWORD")?;
    let (domain, name) = who.split_once('/').ok_or("expected DOMAIN/USER:PASSWORD")?;
    Ok(SimIamUser { domain: domain.into(), name: name.into(), password: password.into() })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let opts = SimOptions {
        connections_per_project: args.connections.max(1),
        enhanced_per_project: args.enhanced_connections,
        base_delay: Duration::from_millis(args.delay_ms),
        fault_rate: args.fault_rate.clamp(0.0, 1.0),
        auth: SimAuth {
            access_keys: args.access_key,
            iam_users: args.iam_user,
            strict_tokens: args.strict_tokens,
            ..SimAuth::default()
        },
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
