//! The `dli-graphql` binary: parse the configuration, start logging, serve until a signal.

use clap::Parser;
use dli_graphql::{
    app::{self, App},
    config::{Cli, Command},
    graphql,
    http::health,
    observability::telemetry,
};

// mimalloc instead of glibc malloc: allocation is a large share of a request's instructions
// (the GraphQL value tree, the parsed upstream strings); see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(Command::Healthcheck) = cli.command {
        return match health::check(cli.config.listen).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dli-graphql healthcheck: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let telemetry = match telemetry::init(&cli.config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dli-graphql: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let app = match App::build(&cli.config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("dli-graphql: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!("GraphQL at http://{}/graphql (GraphiQL in a browser)", app.local_addr());
    let served = app.serve(app::shutdown_signal()).await;
    // Exports the spans still buffered; blocking is fine, the server has stopped.
    tokio::task::block_in_place(|| telemetry.shutdown());
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dli-graphql: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
