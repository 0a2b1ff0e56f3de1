//! Wiring: `Config` in, a bound server out; served by [`crate::http::serve`].

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    graphql::trusted_documents::TrustedDocuments,
    graphql::{self, SchemaOptions, Watcher},
    http::{
        self, AppState, Services,
        access::AccessPolicy,
        admission::{LoadShed, RateLimits},
        serve::{self, ServeOptions},
    },
    observability::metrics::Metrics,
    sim::{SimOptions, Simulator},
    upstream::{Client, Credential, FleetStore, SharedClient, auth::service},
};

/// The token the demo sends to its simulator when the caller sends none.
pub const DEMO_TOKEN: &str = "demo-token";
/// How often the demo's simulated connections change.
const DEMO_STEP: Duration = Duration::from_secs(5);

/// A bound, ready-to-serve application.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    serve_options: ServeOptions,
    metrics: Metrics,
    // Keeps the demo simulator running as long as the app.
    _sim: Option<Simulator>,
}

impl App {
    /// Builds the client, schema and router from `config` and binds the listen address.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let configured_credential = service::service_credential(config)?;
        let (base, sim, service_credential) = if config.demo {
            let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default())
                .await
                .context("starting the demo simulator")?;
            tracing::warn!(
                simulator = %sim.url(),
                "DEMO MODE: serving SIMULATED DLI data from a built-in simulator, not Huawei Cloud"
            );
            // Connections change by themselves, so subscriptions show events within a minute.
            sim.animate(DEMO_STEP);
            let url = reqwest::Url::parse(&sim.url()).context("simulator URL")?;
            (url, Some(sim), Credential::token(DEMO_TOKEN))
        } else {
            (config.upstream_base()?, None, configured_credential)
        };
        let access = AccessPolicy::new(&config.access, config.demo, service_credential.is_some())?;
        let metrics = Metrics::new();
        let fleet = FleetStore::new(&config.fleet, metrics.clone()).context("the --redis-url")?;
        if let Some(store) = &fleet {
            // Not fatal either way: without an answer the fallback is on and a probe retries.
            store.check().await;
        }
        let client = Client::new(base, &config.upstream)
            .context("building the HTTP client")?
            .with_metrics(metrics.clone())
            .with_resilience(config.resilience, fleet.clone());
        let trusted_documents = TrustedDocuments::open(&config.trusted_documents, Some(metrics.clone()))
            .context("--trusted-documents")?;
        let schema = graphql::build(&SchemaOptions {
            graphql: config.graphql.clone(),
            limits: config.limits.clone(),
            detail: config.detail,
            metrics: Some(metrics.clone()),
            trusted_documents: trusted_documents.clone(),
        });
        let shared = SharedClient::new(client.clone(), &config.share, fleet.clone(), config.upstream.timeout);
        let watcher = Watcher::new(shared.clone(), &config.subscriptions, metrics.clone());
        let mut router = http::router(AppState::new(Services {
            schema,
            client,
            shared,
            fleet,
            compression: !config.no_compression,
            service_credential,
            access: Arc::new(access),
            metrics: metrics.clone(),
            limits: Arc::new(config.limits.clone()),
            executions: config.share.coalesce().then(Arc::default),
            watcher,
            subscriptions: config.subscriptions,
            slots: http::streams::StreamSlots::new(config.subscriptions.max_streams),
            shed: Arc::new(LoadShed::new(&config.front_door, metrics.clone())),
            rate_limits: RateLimits::new(&config.front_door, metrics.clone()).map(Arc::new),
            // The trusted-documents list decides per request (and reloads), so every request
            // of a listed-documents server goes through its check in async-graphql.
            planner: (!config.graphql.no_planned_executor && trusted_documents.is_none()).then(|| {
                Arc::new(graphql::plan::Planner::new(
                    config.graphql.document_cache_size,
                    config.limits.max_projects,
                ))
            }),
            verify_plans: config.graphql.verify_plans,
            trusted_documents: trusted_documents.is_some(),
        }));
        let origins = config.cors_origins()?;
        if !origins.is_empty() {
            router = router.layer(http::cors_layer(origins));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let max_connections = match config.front_door.max_connections {
            Some(n) => n,
            None => {
                let (n, fd_limit) = serve::default_max_connections(config.resilience.max_concurrency);
                tracing::info!(
                    max_connections = n,
                    fd_limit = fd_limit.map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
                    "client connection cap derived from the file-descriptor limit (--max-connections)"
                );
                n
            }
        };
        let serve_options = ServeOptions {
            header_read_timeout: config.front_door.header_read_timeout,
            idle_timeout: config.front_door.idle_timeout,
            max_connections,
            shutdown_timeout: config.shutdown_timeout,
        };
        Ok(Self { listener, router, addr, serve_options, metrics, _sim: sim })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for up to
    /// `--shutdown-timeout`; connections still open after that are dropped. Either way the
    /// result is `Ok` once the server has stopped.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // Folds histogram samples into buckets between scrapes; ends with the server.
        let metrics = self.metrics.clone();
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        });
        let served =
            serve::serve(self.listener, self.router, self.serve_options, self.metrics.clone(), shutdown)
                .await;
        upkeep.abort();
        served
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
