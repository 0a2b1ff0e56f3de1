//! Configuration: one `Config`, every flag with an environment fallback. `--help` is the
//! reference.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use secrecy::SecretString;

/// Command line of the `dli-graphql` binary.
#[derive(Debug, Parser)]
#[command(
    name = "dli-graphql",
    version,
    about = "GraphQL facade over Huawei Cloud DLI's datasource-connection API",
    long_about = "GraphQL facade over Huawei Cloud DLI's datasource-connection API.\n\n\
                  Run with --demo to explore simulated data in GraphiQL at http://127.0.0.1:8080/graphql."
)]
pub struct Cli {
    /// What to do; serves GraphQL when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the served GraphQL SDL (the content of schema.graphql) and exit.
    Schema,
    /// GET /healthz on the --listen address (over loopback when that is a wildcard address); exit 0
    /// when healthy, 1 otherwise. For container health checks: needs no shell or curl.
    Healthcheck,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Server settings: the option groups below, flattened into one command line. Each default
/// is stated once, on its flag; `Default` for a group comes from those same declarations.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (use 0.0.0.0:8080 in a container).
    #[arg(long, env = "DLI_GRAPHQL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Start a built-in DLI simulator and serve its data (with a demo token), for trying things out.
    #[arg(long)]
    pub demo: bool,

    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish before the process exits.
    #[arg(long, env = "DLI_GRAPHQL_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Allow cross-origin browser requests from this origin (repeatable; CORS is off without it).
    #[arg(long = "cors-origin", env = "DLI_GRAPHQL_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Never compress responses (e.g. behind a proxy that compresses); by default responses over
    /// 1 KiB are compressed for clients that accept gzip, br or zstd.
    #[arg(long, env = "DLI_GRAPHQL_NO_COMPRESSION")]
    pub no_compression: bool,

    /// Where DLI is and how long a call may take.
    #[command(flatten)]
    pub upstream: UpstreamOptions,

    /// The service's own credentials toward DLI.
    #[command(flatten)]
    pub credentials: CredentialOptions,

    /// Who may use the service's credentials, and which projects anyone may query.
    #[command(flatten)]
    pub access: AccessOptions,

    /// What the GraphQL schema serves: introspection, persisted queries, parsed documents.
    #[command(flatten)]
    pub graphql: GraphqlOptions,

    /// What one client request may cost.
    #[command(flatten)]
    pub limits: Limits,

    /// Pages of connections and the per-connection calls one operation may make.
    #[command(flatten)]
    pub detail: DetailOptions,

    /// Retries, concurrency cap and circuit breaker around upstream calls.
    #[command(flatten)]
    pub resilience: ResilienceOptions,

    /// How upstream answers are shared between requests.
    #[command(flatten)]
    pub share: ShareOptions,

    /// Sharing answers, in-flight calls and the DLI call budget between replicas, over Redis.
    #[command(flatten)]
    pub fleet: FleetOptions,
    /// Subscriptions: how often watched projects are polled, and the WebSocket and SSE limits.
    #[command(flatten)]
    pub subscriptions: SubscriptionOptions,

    /// Logs and span export.
    #[command(flatten)]
    pub telemetry: TelemetryOptions,

    /// Connections, timeouts, load shedding and per-caller rate limits at the socket.
    #[command(flatten)]
    pub front_door: FrontDoorOptions,

    /// Which GraphQL documents may run (operation safelisting).
    #[command(flatten)]
    pub trusted_documents: TrustedDocumentOptions,
}

/// Where DLI is and how long a call may take.
#[derive(Debug, Clone, Args)]
pub struct UpstreamOptions {
    /// Base URL of the DLI endpoint, e.g. `https://dli.cn-north-4.myhuaweicloud.com`. Wins over --region.
    #[arg(long, env = "DLI_ENDPOINT")]
    pub endpoint: Option<Url>,

    /// Huawei Cloud region (e.g. cn-north-4); the endpoint becomes `https://dli.{region}.myhuaweicloud.com`.
    #[arg(long, env = "DLI_REGION")]
    pub region: Option<String>,

    /// Deadline for one upstream call (e.g. 10s, 1500ms).
    #[arg(long = "upstream-timeout", env = "DLI_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Largest upstream response body accepted, in bytes.
    #[arg(id = "upstream_max_body", long = "upstream-max-body", env = "DLI_UPSTREAM_MAX_BODY", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

/// The service's own credentials toward DLI (at most one mode).
#[derive(Debug, Clone, Args)]
pub struct CredentialOptions {
    /// The service's own IAM token, sent when a caller sends no X-Auth-Token. Prefer the env var or a file.
    #[arg(long, env = "DLI_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<SecretString>,

    /// File holding the service's IAM token (mounted secrets); re-read whenever it changes.
    #[arg(long, env = "DLI_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Access key (AK): the service signs its requests (SDK-HMAC-SHA256).
    #[arg(long, env = "DLI_ACCESS_KEY", hide_env_values = true)]
    pub access_key: Option<SecretString>,

    /// Secret key (SK) of the access key.
    #[arg(long, env = "DLI_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,

    /// Security token of temporary AK/SK credentials (sent and signed as X-Security-Token).
    #[arg(long, env = "DLI_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<SecretString>,

    /// IAM user: the service exchanges its password for project-scoped tokens.
    #[arg(long, env = "DLI_IAM_USER")]
    pub iam_user: Option<String>,

    /// Password of the IAM user.
    #[arg(long, env = "DLI_IAM_PASSWORD", hide_env_values = true)]
    pub iam_password: Option<SecretString>,

    /// Account (domain) name of the IAM user.
    #[arg(long, env = "DLI_IAM_DOMAIN")]
    pub iam_domain: Option<String>,

    /// IAM base URL [default: `https://iam.{region}.myhuaweicloud.com`].
    #[arg(long, env = "DLI_IAM_ENDPOINT")]
    pub iam_endpoint: Option<Url>,
}

/// Who may use the service's credentials, and which projects anyone may query.
#[derive(Debug, Clone, Args)]
pub struct AccessOptions {
    /// API keys (comma-separated) callers send as `Authorization: Bearer <key>` when the service uses its own credentials.
    #[arg(long, env = "DLI_GRAPHQL_API_KEYS", hide_env_values = true, value_delimiter = ',')]
    pub api_keys: Vec<SecretString>,

    /// File of API keys, one per line (blank lines and # comments ignored); re-read whenever it changes.
    #[arg(long, env = "DLI_GRAPHQL_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// Serve callers without an API key although the service uses its own credentials.
    #[arg(long, env = "DLI_GRAPHQL_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    /// Only these project ids (comma-separated) may be queried; others are FORBIDDEN.
    #[arg(long, env = "DLI_ALLOWED_PROJECTS", value_delimiter = ',')]
    pub allowed_projects: Vec<String>,
}

/// What the GraphQL schema serves.
#[derive(Debug, Clone, Args)]
pub struct GraphqlOptions {
    /// Turn off introspection and field suggestions (for production; GraphiQL needs introspection).
    #[arg(long, env = "DLI_GRAPHQL_DISABLE_INTROSPECTION")]
    pub disable_introspection: bool,

    /// Entries kept by the automatic persisted queries (APQ) cache, least recently used
    /// dropped first; 0 turns APQ off.
    #[arg(long, env = "DLI_GRAPHQL_APQ_CACHE_SIZE", default_value_t = 1000)]
    pub apq_cache_size: usize,

    /// Parsed GraphQL documents kept for reuse, by exact text (up to 8 KiB each), least
    /// recently used dropped first; 0 parses every request. Every limit is still checked.
    #[arg(long, env = "DLI_GRAPHQL_DOCUMENT_CACHE_SIZE", default_value_t = 512)]
    pub document_cache_size: usize,

    /// Run every operation through async-graphql: no planned executor for connection lists
    /// (docs/performance.md). Answers are the same byte for byte; only the cost differs.
    #[arg(long, env = "DLI_GRAPHQL_NO_PLANNED_EXECUTOR")]
    pub no_planned_executor: bool,

    /// Run async-graphql too for every request the planned executor answers and compare the
    /// bytes; a difference is answered 500 INTERNAL_SERVER_ERROR and counted. For tests and
    /// canaries: it doubles the cost of those requests.
    #[arg(long, env = "DLI_GRAPHQL_VERIFY_PLANS")]
    pub verify_plans: bool,
}

/// Every request limit, each set by the flag of the same name. HTTP-level limits (body size,
/// body read time, batch size) are enforced by `http`, document limits by the schema
/// extension in `graphql::extensions::limits`. Every rejection is a `LIMIT_EXCEEDED` error
/// naming the flag (`extensions.limit`) and its value (`extensions.max`).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Limits {
    /// Largest request body, in bytes; larger requests get HTTP 413.
    #[arg(long, env = "DLI_GRAPHQL_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_parser = positive)]
    pub max_body_bytes: usize,

    /// Longest a client may take to send its request body (e.g. 10s); slower ones get HTTP 408.
    #[arg(long, env = "DLI_GRAPHQL_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// Most operations in one batched HTTP request.
    #[arg(long, env = "DLI_GRAPHQL_MAX_BATCH", default_value_t = 16, value_parser = positive)]
    pub max_batch: usize,

    /// Longest query document, in bytes (the standard introspection query is about 2 KiB).
    #[arg(long, env = "DLI_GRAPHQL_MAX_QUERY_LENGTH", default_value_t = 64 * 1024, value_parser = positive)]
    pub max_query_length: usize,

    /// Most lexical tokens in a query document, counted before parsing (Apollo Router's
    /// parser default; introspection needs about 300).
    #[arg(long, env = "DLI_GRAPHQL_MAX_TOKENS", default_value_t = 15_000, value_parser = positive)]
    pub max_tokens: usize,

    /// Deepest field nesting of a query (the standard introspection query needs 15).
    #[arg(long, env = "DLI_GRAPHQL_MAX_DEPTH", default_value_t = 20, value_parser = positive)]
    pub max_depth: usize,

    /// Highest query complexity (one point per selected field, fragments expanded; the
    /// standard introspection query selects about 230 fields).
    #[arg(long, env = "DLI_GRAPHQL_MAX_COMPLEXITY", default_value_t = 1_000, value_parser = positive)]
    pub max_complexity: usize,

    /// Most upstream-causing fields (`connections`, pages, stats, details, `_entities`; aliases included) per operation.
    #[arg(long, env = "DLI_GRAPHQL_MAX_UPSTREAM_FIELDS", default_value_t = 50, value_parser = positive)]
    pub max_upstream_fields: usize,

    /// Most distinct project ids one operation may name.
    #[arg(long, env = "DLI_GRAPHQL_MAX_PROJECTS", default_value_t = 50, value_parser = positive)]
    pub max_projects: usize,
}

/// Pages of connections, and the per-connection upstream calls (classic and enhanced show,
/// privileges) one operation may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct DetailOptions {
    /// Most per-connection upstream calls (show, enhanced show, privileges) one operation may
    /// make; fields past it fail with LIMIT_EXCEEDED while the rest keeps its data.
    #[arg(long, env = "DLI_GRAPHQL_MAX_DETAIL_CALLS", default_value_t = 100, value_parser = positive)]
    pub max_detail_calls: usize,

    /// Largest `first`/`last` of a page of connections (classic or enhanced).
    #[arg(long, env = "DLI_GRAPHQL_MAX_PAGE_SIZE", default_value_t = 500, value_parser = positive)]
    pub max_page_size: usize,
}

/// Retries, concurrency cap and circuit breaker around every upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ResilienceOptions {
    /// Attempts per upstream list call (1 = no retries); retries only on connect errors, 502, 503, 504, 429.
    #[arg(long = "upstream-max-attempts", env = "DLI_UPSTREAM_MAX_ATTEMPTS", default_value_t = 3, value_parser = positive)]
    pub max_attempts: usize,

    /// Base of the exponential retry backoff (full jitter: a random wait up to base * 2^retry).
    #[arg(long = "upstream-retry-base", env = "DLI_UPSTREAM_RETRY_BASE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub retry_base: Duration,

    /// Longest wait a 429's Retry-After may ask for and still be retried; longer waits fail at once.
    #[arg(long = "upstream-retry-after-cap", env = "DLI_UPSTREAM_RETRY_AFTER_CAP", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_after_cap: Duration,

    /// Most upstream requests in flight at once; more wait (within their deadline).
    #[arg(long = "upstream-concurrency", env = "DLI_UPSTREAM_CONCURRENCY", default_value_t = 64, value_parser = positive)]
    pub max_concurrency: usize,

    /// Consecutive upstream failures (connect errors, timeouts, 5xx) that open the circuit breaker.
    #[arg(long, env = "DLI_BREAKER_THRESHOLD", default_value_t = 5, value_parser = positive)]
    pub breaker_threshold: usize,

    /// How long an open circuit fails calls fast before letting one probe through.
    #[arg(long, env = "DLI_BREAKER_COOLDOWN", default_value = "10s", value_parser = humantime::parse_duration)]
    pub breaker_cooldown: Duration,

    /// Most calls toward DLI per credential identity, written like `20/s` or `600/min`; shared
    /// by every replica when --redis-url is set. Calls over it wait within --upstream-timeout,
    /// then fail as RATE_LIMITED. Unlimited when unset.
    #[arg(long = "upstream-rate", env = "DLI_UPSTREAM_RATE", value_parser = parse_rate)]
    pub rate: Option<Rate>,

    /// Calls that may go out at once before --upstream-rate spaces them [default: one second's rate].
    #[arg(long = "upstream-burst", env = "DLI_UPSTREAM_BURST", value_parser = positive_u32)]
    pub burst: Option<u32>,
}

impl ResilienceOptions {
    /// The call budget per credential identity, when one is set: (rate, burst).
    pub fn budget(&self) -> Option<(Rate, u32)> {
        let rate = self.rate?;
        Some((rate, self.burst.unwrap_or_else(|| rate.per_second_ceil())))
    }
}

/// A number of calls per period, e.g. `20/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per `per`.
    pub calls: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// The time between two calls at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.calls.max(1)
    }

    /// Calls per second, rounded up, at least 1 (the default burst).
    fn per_second_ceil(&self) -> u32 {
        let per_s = f64::from(self.calls) / self.per.as_secs_f64();
        (per_s.ceil() as u32).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.calls, humantime::format_duration(self.per))
    }
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    const HELP: &str = "expected calls per period, like 20/s, 600/min or 1000/h";
    let (n, unit) = s.trim().split_once('/').ok_or(HELP)?;
    let calls = n.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or(HELP)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(HELP.to_owned()),
    };
    Ok(Rate { calls, per })
}

/// A count that must be at least 1, as `u32`.
fn positive_u32(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_owned()),
    }
}

/// Sharing answers, in-flight calls and the DLI call budget between replicas, over Redis.
/// Off by default: everything stays in-process.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FleetOptions {
    /// Redis (`redis://` or `rediss://` URL) shared by the replicas: one DLI call per project
    /// and credential for the whole fleet, the --cache-ttl cache and --upstream-rate budget
    /// shared. When Redis is unreachable or slow, each replica falls back to in-process sharing.
    #[arg(long, env = "DLI_GRAPHQL_REDIS_URL", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: Option<RedisUrl>,

    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, env = "DLI_GRAPHQL_REDIS_PREFIX", default_value = "dli-graphql:")]
    pub redis_prefix: String,

    /// Longest wait for one Redis command; slower means Redis counts as down (fallback).
    #[arg(long, env = "DLI_GRAPHQL_REDIS_TIMEOUT", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,
}

/// A Redis URL; its `Debug` hides a password it may carry.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub Url);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("REDACTED"));
        }
        write!(f, "RedisUrl({shown})")
    }
}

fn parse_redis_url(s: &str) -> Result<RedisUrl, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host().is_none() {
        return Err("must be a redis:// or rediss:// URL with a host".to_owned());
    }
    Ok(RedisUrl(url))
}

/// How upstream answers are shared between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ShareOptions {
    /// Send every fetch upstream on its own, instead of letting concurrent fetches of the same
    /// project with the same credentials share one call.
    #[arg(long, env = "DLI_GRAPHQL_NO_COALESCE")]
    pub no_coalesce: bool,

    /// Keep successful upstream answers this long (e.g. 5s) per credential and project, and serve
    /// them without calling DLI; answers can be this stale. Off when unset or 0.
    #[arg(long, env = "DLI_GRAPHQL_CACHE_TTL", value_parser = humantime::parse_duration)]
    pub cache_ttl: Option<Duration>,

    /// Upper bound of the cache's estimated memory, in bytes.
    #[arg(long, env = "DLI_GRAPHQL_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: usize,
}

impl ShareOptions {
    /// Whether concurrent fetches of one project and credential share a call.
    pub fn coalesce(&self) -> bool {
        !self.no_coalesce
    }

    /// The cache's time to live; `None` when the cache is off.
    pub fn ttl(&self) -> Option<Duration> {
        self.cache_ttl.filter(|t| !t.is_zero())
    }
}

/// Subscriptions (`connectionEvents`): the shared pollers and the streaming transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct SubscriptionOptions {
    /// How often each watched project is polled upstream (one poller per credential and
    /// project, shared by all its subscribers), with up to 10% jitter; at least 1s.
    #[arg(long, env = "DLI_GRAPHQL_WATCH_INTERVAL", default_value = "5s", value_parser = at_least_one_second)]
    pub watch_interval: Duration,

    /// How long a WebSocket client may take to send `connection_init` before it is closed
    /// with 4408.
    #[arg(long, env = "DLI_GRAPHQL_WS_INIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ws_init_timeout: Duration,

    /// How often the server pings each WebSocket (protocol ping frames); a client that has
    /// not answered the previous ping by the next one is closed.
    #[arg(long, env = "DLI_GRAPHQL_WS_PING_INTERVAL", default_value = "15s", value_parser = at_least_one_second)]
    pub ws_ping_interval: Duration,

    /// How often an SSE or multipart stream gets a keep-alive when nothing else was sent.
    #[arg(long, env = "DLI_GRAPHQL_STREAM_KEEP_ALIVE", default_value = "15s", value_parser = at_least_one_second)]
    pub stream_keep_alive: Duration,

    /// Most streaming connections (WebSockets, SSE and multipart streams) open at once;
    /// more are refused with HTTP 503.
    #[arg(long, env = "DLI_GRAPHQL_MAX_STREAMS", default_value_t = 1000, value_parser = positive)]
    pub max_streams: usize,

    /// Most subscriptions running at once on one WebSocket.
    #[arg(long, env = "DLI_GRAPHQL_MAX_SUBSCRIPTIONS_PER_SOCKET", default_value_t = 16, value_parser = positive)]
    pub max_subscriptions_per_socket: usize,

    /// Most distinct projects watched at once by this process (each costs one upstream
    /// poll per interval and credential).
    #[arg(long, env = "DLI_GRAPHQL_MAX_WATCHED_PROJECTS", default_value_t = 100, value_parser = positive)]
    pub max_watched_projects: usize,
}

/// Logs and span export.
#[derive(Debug, Clone, Args)]
pub struct TelemetryOptions {
    /// Log format.
    #[arg(long, env = "DLI_GRAPHQL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Export spans over OTLP/HTTP (protobuf) to this collector base URL, e.g. http://127.0.0.1:4318
    /// (spans go to {url}/v1/traces). W3C trace context is then sent to DLI too.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<Url>,
}

/// What the server accepts at the socket, before any GraphQL runs (docs/limits-and-resilience.md,
/// "The front door").
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FrontDoorOptions {
    /// A client that has not sent a request's complete headers this long after connecting (or
    /// after its first bytes of a later request) is disconnected, one that sends nothing too.
    #[arg(long, env = "DLI_GRAPHQL_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// A keep-alive connection with no request in flight and no traffic this long is closed.
    #[arg(long, env = "DLI_GRAPHQL_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once; further ones are closed at once. Default: the
    /// process's file-descriptor limit (RLIMIT_NOFILE, soft) less room for upstream
    /// connections, Redis and files, logged at start.
    #[arg(long, env = "DLI_GRAPHQL_MAX_CONNECTIONS", value_parser = positive)]
    pub max_connections: Option<usize>,

    /// Most GraphQL requests executing at once; the rest wait up to --queue-timeout for a slot,
    /// then get HTTP 503 (OVERLOADED) with Retry-After. /healthz, /readyz and /metrics are never shed.
    #[arg(long, env = "DLI_GRAPHQL_MAX_CONCURRENT_REQUESTS", default_value_t = 512, value_parser = positive)]
    pub max_concurrent_requests: usize,

    /// How long a GraphQL request may wait for an execution slot before it is shed.
    #[arg(long, env = "DLI_GRAPHQL_QUEUE_TIMEOUT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,

    /// Requests each caller may make (e.g. 5/s, 300/min), per API key, or per client IP when it
    /// sends none; over it, HTTP 429 (RATE_LIMITED) with Retry-After. Off when unset.
    #[arg(long, env = "DLI_GRAPHQL_CLIENT_RATE", value_parser = parse_rate)]
    pub client_rate: Option<Rate>,

    /// Requests a caller may make at once above its rate [default: one second's worth of
    /// --client-rate, at least 1].
    #[arg(long, env = "DLI_GRAPHQL_CLIENT_BURST", value_parser = positive_u32)]
    pub client_burst: Option<u32>,

    /// Proxies (comma-separated CIDRs or addresses) whose X-Forwarded-For is believed when
    /// telling client IPs apart; from anyone else the header is ignored.
    #[arg(long, env = "DLI_GRAPHQL_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl FrontDoorOptions {
    /// The per-caller rate and burst, when `--client-rate` is set.
    pub fn client_limit(&self) -> Option<(Rate, u32)> {
        let rate = self.client_rate?;
        Some((rate, self.client_burst.unwrap_or_else(|| rate.per_second_ceil())))
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "expected a CIDR like 10.0.0.0/8 or an IP address".to_owned())
}

/// What happens to a document that is not in the trusted list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustedDocumentsMode {
    /// Refuse it with PERSISTED_QUERY_NOT_IN_LIST; nothing executes.
    Enforce,
    /// Serve it, log it and count it (to build the list).
    Log,
}

/// Which GraphQL documents may run.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TrustedDocumentOptions {
    /// Manifest of the documents clients may run (Apollo's persisted-query-manifest JSON);
    /// re-read whenever it changes. Off when unset: any document runs.
    #[arg(long, env = "DLI_GRAPHQL_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,

    /// `enforce`: documents not in the manifest are refused; `log`: served, logged and counted.
    #[arg(long, env = "DLI_GRAPHQL_TRUSTED_DOCUMENTS_MODE", value_enum, default_value_t = TrustedDocumentsMode::Enforce)]
    pub trusted_documents_mode: TrustedDocumentsMode,

    /// Let introspection queries that are not in the manifest run in `enforce` mode too (e.g.
    /// for GraphiQL); in `log` mode they always run.
    #[arg(long, env = "DLI_GRAPHQL_TRUSTED_DOCUMENTS_ALLOW_INTROSPECTION")]
    pub trusted_documents_allow_introspection: bool,
}

/// `Default` from the flags' own declarations, so no default is written twice.
macro_rules! defaults_from_flags {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                parse_group::<$t>(std::iter::empty::<&str>())
                    .unwrap_or_else(|e| unreachable!("the declared defaults of {} parse: {e}", stringify!($t)))
            }
        }
    )*};
}
defaults_from_flags!(
    UpstreamOptions,
    CredentialOptions,
    AccessOptions,
    GraphqlOptions,
    Limits,
    DetailOptions,
    ResilienceOptions,
    ShareOptions,
    FleetOptions,
    SubscriptionOptions,
    TelemetryOptions,
    FrontDoorOptions,
    TrustedDocumentOptions
);

/// Parses one option group from command-line style arguments, ignoring the environment.
fn parse_group<T: Args + clap::FromArgMatches>(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<T, clap::Error> {
    let cmd = without_env(T::augment_args(clap::Command::new("dli-graphql").no_binary_name(true)));
    let matches = cmd.try_get_matches_from(args)?;
    T::from_arg_matches(&matches)
}

/// The same command with every environment fallback removed: configurations built in code
/// (tests, tools) are not changed by a `DLI_*` variable the developer happened to export.
fn without_env(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| a.env(None));
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    names.into_iter().fold(cmd, |cmd, n| cmd.mut_subcommand(n, without_env))
}

/// A count that must be at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_owned()),
    }
}

/// A duration of at least one second.
fn at_least_one_second(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("must be at least 1s".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_otlp_endpoint(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.query().is_some() {
        return Err("must be an http:// or https:// URL without a query".to_owned());
    }
    Ok(url)
}

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither an endpoint, a region nor `--demo`.
    #[error(
        "no upstream configured: set --endpoint (DLI_ENDPOINT) or --region (DLI_REGION), or run with --demo"
    )]
    NoUpstream,
    /// The region is not a plain region name.
    #[error("--region must look like cn-north-4 (letters, digits and '-')")]
    BadRegion,
    /// The endpoint is not an http(s) base URL.
    #[error("--endpoint must be an http:// or https:// URL without query or credentials")]
    BadEndpoint,
    /// A CORS origin is not `scheme://host[:port]`.
    #[error(
        "--cors-origin must be an origin like https://app.example.com (scheme, host, optional port; no path)"
    )]
    BadCorsOrigin,
}

impl Config {
    /// A configuration from command-line style arguments alone: environment variables are
    /// ignored, so what a test or tool builds in code is exactly what it gets.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let matches = without_env(Cli::command()).try_get_matches_from(
            std::iter::once("dli-graphql".into()).chain(args.into_iter().map(Into::into)),
        )?;
        Cli::from_arg_matches(&matches).map(|c| c.config)
    }

    /// The origins allowed by CORS, or an error naming the first unusable one.
    pub fn cors_origins(&self) -> Result<Vec<http::HeaderValue>, ConfigError> {
        self.cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| {
                let ok = Url::parse(o).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
                }) && !o.ends_with('/');
                if ok {
                    http::HeaderValue::from_str(o).map_err(|_| ConfigError::BadCorsOrigin)
                } else {
                    Err(ConfigError::BadCorsOrigin)
                }
            })
            .collect()
    }

    /// The upstream base URL from `--endpoint` or `--region`.
    pub fn upstream_base(&self) -> Result<Url, ConfigError> {
        if let Some(url) = &self.upstream.endpoint {
            let ok = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.username().is_empty()
                && url.password().is_none();
            return if ok { Ok(url.clone()) } else { Err(ConfigError::BadEndpoint) };
        }
        if let Some(region) = &self.upstream.region {
            let ok = !region.is_empty()
                && region.len() <= 32
                && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(ConfigError::BadRegion);
            }
            // The EU sovereign region has its own domain.
            let domain = if region == "eu-west-101" { "myhuaweicloud.eu" } else { "myhuaweicloud.com" };
            return Url::parse(&format!("https://dli.{region}.{domain}")).map_err(|_| ConfigError::BadRegion);
        }
        Err(ConfigError::NoUpstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_gives_the_public_endpoint() {
        let c = Config::from_args(["--region", "cn-north-4"]).expect("parses");
        assert_eq!(c.upstream_base().expect("ok").as_str(), "https://dli.cn-north-4.myhuaweicloud.com/");
        let eu = Config::from_args(["--region", "eu-west-101"]).expect("parses");
        assert_eq!(eu.upstream_base().expect("ok").as_str(), "https://dli.eu-west-101.myhuaweicloud.eu/");
    }

    #[test]
    fn endpoint_wins_and_is_checked() {
        let c = Config::from_args(["--endpoint", "http://127.0.0.1:9100", "--region", "x"]).expect("parses");
        assert_eq!(c.upstream_base().expect("ok").as_str(), "http://127.0.0.1:9100/");
        let bad = Config::from_args(["--endpoint", "ftp://x"]).expect("parses");
        assert!(matches!(bad.upstream_base(), Err(ConfigError::BadEndpoint)));
        let evil = Config::from_args(["--region", "x.evil.com/"]).expect("parses");
        assert!(matches!(evil.upstream_base(), Err(ConfigError::BadRegion)));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Config::from_args([
            "--auth-token=v4lue-token",
            "--access-key=v4lue-ak",
            "--secret-key=v4lue-sk",
            "--security-token=v4lue-st",
            "--iam-password=v4lue-pw",
            "--api-keys=v4lue-k1,v4lue-k2",
        ])
        .expect("parses");
        assert_eq!(c.access.api_keys.len(), 2);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("v4lue"), "{dbg}");
    }

    #[test]
    fn otlp_endpoint_must_be_http() {
        let c = Config::from_args(["--otlp-endpoint", "http://127.0.0.1:4318"]).expect("parses");
        assert_eq!(
            c.telemetry.otlp_endpoint.map(|u| u.to_string()).as_deref(),
            Some("http://127.0.0.1:4318/")
        );
        assert!(Config::from_args(["--otlp-endpoint", "file:///tmp/x"]).is_err());
        assert!(Config::from_args(["--otlp-endpoint", "collector:4318"]).is_err());
    }

    #[test]
    fn sharing_defaults_to_coalescing_without_a_cache() {
        let c = Config::from_args::<_, &str>([]).expect("parses");
        let o = c.share;
        assert!(o.coalesce());
        assert_eq!(o.ttl(), None);
        let c = Config::from_args(["--no-coalesce", "--cache-ttl", "5s", "--cache-max-bytes", "1000"])
            .expect("parses");
        let o = c.share;
        assert!(!o.coalesce());
        assert_eq!((o.ttl(), o.cache_max_bytes), (Some(Duration::from_secs(5)), 1000));
        let off = Config::from_args(["--cache-ttl", "0s"]).expect("parses");
        assert_eq!(off.share.ttl(), None);
    }

    #[test]
    fn client_rates_parse_with_their_default_burst() {
        let c = Config::from_args(["--client-rate", "5/s", "--trusted-proxies", "10.0.0.0/8, 127.0.0.1"])
            .expect("parses");
        let (rate, burst) = c.front_door.client_limit().expect("set");
        assert_eq!((rate.calls, rate.per, burst), (5, Duration::from_secs(1), 5));
        assert_eq!(c.front_door.trusted_proxies.len(), 2);
        let limit =
            |r: &str| Config::from_args(["--client-rate", r]).expect("parses").front_door.client_limit();
        assert_eq!(limit("30/min").map(|l| l.1), Some(1));
        assert_eq!(limit("7200/h").map(|l| l.1), Some(2));
        let c = Config::from_args(["--client-rate", "1/min", "--client-burst", "3"]).expect("parses");
        assert_eq!(c.front_door.client_limit().map(|l| l.1), Some(3));
        assert!(Config::from_args(["--trusted-proxies", "not-an-ip"]).is_err());
        assert_eq!(FrontDoorOptions::default().client_rate, None);
    }

    #[test]
    fn rates_and_redis_urls_parse_and_default_off() {
        let c = Config::from_args::<_, &str>([]).expect("parses");
        assert_eq!(c.resilience.budget(), None);
        assert_eq!(c.fleet.redis_url, None);
        assert_eq!(c.fleet.redis_prefix, "dli-graphql:");
        assert_eq!(c.fleet.redis_timeout, Duration::from_millis(50));
        let c = Config::from_args(["--upstream-rate", "20/s", "--redis-url", "redis://:pw@127.0.0.1:6390/2"])
            .expect("parses");
        let (rate, burst) = c.resilience.budget().expect("a budget");
        assert_eq!((rate.calls, rate.per, burst), (20, Duration::from_secs(1), 20));
        assert_eq!(rate.interval(), Duration::from_millis(50));
        assert!(!format!("{c:?}").contains(":pw@"));
        let c = Config::from_args(["--upstream-rate", "90/min", "--upstream-burst", "4"]).expect("parses");
        assert_eq!(
            c.resilience.budget().map(|(r, b)| (r.interval(), b)),
            Some((Duration::from_secs(60) / 90, 4))
        );
        assert_eq!(
            Config::from_args(["--upstream-rate", "30/min"])
                .expect("parses")
                .resilience
                .budget()
                .map(|b| b.1),
            Some(1)
        );
        for bad in ["20", "0/s", "x/s", "20/day"] {
            assert!(Config::from_args(["--upstream-rate", bad]).is_err(), "{bad}");
        }
        assert!(Config::from_args(["--redis-url", "http://127.0.0.1:6379"]).is_err());
        assert!(Config::from_args(["--redis-url", "rediss://cache.internal:6380"]).is_ok());
    }

    #[test]
    fn watch_interval_is_at_least_one_second() {
        let c = Config::from_args::<_, &str>([]).expect("parses");
        assert_eq!(c.subscriptions.watch_interval, Duration::from_secs(5));
        assert_eq!(c.subscriptions, SubscriptionOptions::default());
        assert!(Config::from_args(["--watch-interval", "1s"]).is_ok());
        assert!(Config::from_args(["--watch-interval", "999ms"]).is_err());
    }

    #[test]
    fn parses_durations() {
        let c = Config::from_args(["--upstream-timeout", "1500ms"]).expect("parses");
        assert_eq!(c.upstream.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn group_defaults_are_the_flags_defaults() {
        let c = Config::from_args::<_, &str>([]).expect("parses");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.resilience, ResilienceOptions::default());
        assert_eq!(c.share, ShareOptions::default());
        assert_eq!(c.fleet, FleetOptions::default());
        assert_eq!(c.detail, DetailOptions::default());
        assert_eq!((c.detail.max_detail_calls, c.detail.max_page_size), (100, 500));
        assert_eq!(Limits::default().max_body_bytes, 1024 * 1024);
        assert_eq!(ResilienceOptions::default().max_attempts, 3);
    }

    #[test]
    fn configurations_built_in_code_ignore_the_environment() {
        // Every flag of the CLI has its environment fallback removed for `from_args`.
        use clap::CommandFactory as _;
        let cmd = without_env(Cli::command());
        assert!(cmd.get_arguments().all(|a| a.get_env().is_none()));
        assert!(Cli::command().get_arguments().any(|a| a.get_env().is_some()));
    }
}
