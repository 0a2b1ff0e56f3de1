//! Logging and trace export. Filter with `RUST_LOG` (default `info`).
//!
//! Logs go to stderr as text or JSON; every line carries the spans it happened in, so the
//! `request` span's `request_id` is on every line of that request. With an OTLP endpoint
//! the same spans are also exported over OTLP/HTTP (protobuf) by a batch processor.

use std::{io, sync::Arc, time::Duration};

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use reqwest::Url;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt::MakeWriter, layer::SubscriberExt as _};

use crate::config::LogFormat;
pub use crate::config::TelemetryOptions;

/// The service name spans are exported under (`OTEL_SERVICE_NAME` wins).
pub const SERVICE_NAME: &str = "dli-graphql";

/// Keeps span export running; [`Telemetry::shutdown`] flushes what is buffered.
#[derive(Debug, Default)]
#[must_use = "dropping it stops nothing, but shutdown() flushes buffered spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every finished span now (blocks until the collector answered or timed out).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            eprintln!("dli-graphql: flushing spans failed: {e}");
        }
    }

    /// Flushes and stops span export.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("dli-graphql: stopping span export failed: {e}");
        }
    }
}

/// Installs the global subscriber (logs to stderr, spans to OTLP when configured).
pub fn init(opts: &TelemetryOptions) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let (subscriber, telemetry) = subscriber(opts, filter, io::stderr, ansi)?;
    // Fails only when a subscriber is already set (e.g. twice in one process): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(telemetry)
}

/// The subscriber [`init`] installs, writing log lines to `writer` (with terminal colours
/// when `ansi`); tests install it as a scoped default to read what one server logs and
/// exports.
pub fn subscriber<W>(
    opts: &TelemetryOptions,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> anyhow::Result<(impl Subscriber + Send + Sync + 'static, Telemetry)>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match opts.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => {
            fmt.json().flatten_event(true).with_current_span(true).with_span_list(true).boxed()
        }
    };
    let (otel, telemetry) = match &opts.otlp_endpoint {
        Some(endpoint) => {
            let provider = tracer_provider(endpoint)?;
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME));
            (Some(layer), Telemetry { provider: Some(provider) })
        }
        None => (None, Telemetry::default()),
    };
    let subscriber = Registry::default().with(fmt).with(otel).with(filter);
    Ok((subscriber, telemetry))
}

fn tracer_provider(endpoint: &Url) -> anyhow::Result<SdkTracerProvider> {
    let traces = endpoint.join("v1/traces").context("OTLP endpoint")?;
    let traces = if endpoint.path().ends_with('/') {
        traces
    } else {
        // `join` would drop the last path segment of e.g. `http://host:4318/otlp`.
        Url::parse(&format!("{}/v1/traces", endpoint.as_str())).context("OTLP endpoint")?
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient::new().context("starting the OTLP client")?)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces.as_str())
        .with_timeout(Duration::from_secs(10))
        .build()
        .context("building the OTLP span exporter")?;
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SERVICE_NAME.to_owned());
    let resource = Resource::builder().with_service_name(service_name).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The OTLP exporter's HTTP client: the service's own reqwest (rustls) on a small
/// runtime of its own.
///
/// The SDK's batch processor exports from a plain thread and blocks on the export, so the
/// client cannot depend on the application's runtime (a flush called from that runtime
/// would wait on itself). A dedicated current-thread runtime avoids that, and avoids a
/// second reqwest major version that the exporter's built-in client would bring.
#[derive(Debug, Clone)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl ExportClient {
    fn new() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("otlp-export".into()).spawn(move || {
            // Runs until the exporter (and with it the sender) is dropped.
            let _ = runtime.block_on(stopped);
        })?;
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(io::Error::other)?;
        Ok(Self { http, runtime: handle, _stop: Arc::new(stop) })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let task = self.runtime.spawn(async move {
            let resp = http.execute(request).await?;
            let mut out = http::Response::builder().status(resp.status());
            if let Some(headers) = out.headers_mut() {
                *headers = resp.headers().clone();
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        });
        task.await?
    }
}
