//! The `dli-graphql` binary: parse the configuration, start logging, serve until a signal.

use clap::Parser;
use dli_graphql::{
    app::{self, App},
    config::{Cli, Command},
    graphql, telemetry,
};

// mimalloc instead of glibc malloc: allocation is a large share of a request's instructions
// (the GraphQL value tree, the parsed upstream strings); see README "Performance".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return std::process::ExitCode::SUCCESS;
    }
    telemetry::init(cli.config.log_format);
    let app = match App::build(&cli.config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("dli-graphql: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!("GraphQL at http://{}/graphql (GraphiQL in a browser)", app.local_addr());
    match app.serve(app::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dli-graphql: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
