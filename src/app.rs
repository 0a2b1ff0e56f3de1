//! Wiring: `Config` in, a bound server out.

use std::{future::Future, net::SocketAddr};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    graphql::{self, DocumentCache, SchemaOptions},
    http::{self, AppState},
    sim::{SimOptions, Simulator},
    upstream::{Client, ClientOptions, Credential, SharedClient},
};

/// The token the demo sends to its simulator when the caller sends none.
pub const DEMO_TOKEN: &str = "demo-token";

/// A bound, ready-to-serve application.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    // Keeps the demo simulator running as long as the app.
    _sim: Option<Simulator>,
}

impl App {
    /// Builds the client, schema and router from `config` and binds the listen address.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let (base, sim, service_credential) = if config.demo {
            let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default())
                .await
                .context("starting the demo simulator")?;
            tracing::warn!(
                simulator = %sim.url(),
                "DEMO MODE: serving SIMULATED DLI data from a built-in simulator, not Huawei Cloud"
            );
            let url = reqwest::Url::parse(&sim.url()).context("simulator URL")?;
            (url, Some(sim), Credential::token(DEMO_TOKEN))
        } else {
            (config.upstream_base()?, None, None)
        };
        let client = Client::new(
            base,
            ClientOptions { timeout: config.upstream_timeout, max_body_bytes: config.upstream_max_body },
        )
        .context("building the HTTP client")?;
        let schema = graphql::build(&SchemaOptions { introspection: !config.disable_introspection });
        let shared = SharedClient::new(client.clone(), &config.share_options());
        let router = http::router(AppState {
            schema,
            client,
            shared,
            documents: DocumentCache::default(),
            compression: !config.no_compression,
            service_credential,
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, router, addr, _sim: sim })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
