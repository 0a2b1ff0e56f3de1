//! Configuration: one `Config`, every flag with an environment fallback. `--help` is the
//! reference.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

use crate::upstream::ShareOptions;

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
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Server settings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (use 0.0.0.0:8080 in a container).
    #[arg(long, env = "DLI_GRAPHQL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Base URL of the DLI endpoint, e.g. https://dli.cn-north-4.myhuaweicloud.com. Wins over --region.
    #[arg(long, env = "DLI_ENDPOINT")]
    pub endpoint: Option<Url>,

    /// Huawei Cloud region (e.g. cn-north-4); the endpoint becomes https://dli.{region}.myhuaweicloud.com.
    #[arg(long, env = "DLI_REGION")]
    pub region: Option<String>,

    /// Deadline for one upstream call (e.g. 10s, 1500ms).
    #[arg(long, env = "DLI_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Largest upstream response body accepted, in bytes.
    #[arg(long, env = "DLI_UPSTREAM_MAX_BODY", default_value_t = 32 * 1024 * 1024)]
    pub upstream_max_body: usize,

    /// Turn off introspection and field suggestions (for production; GraphiQL needs introspection).
    #[arg(long, env = "DLI_GRAPHQL_DISABLE_INTROSPECTION")]
    pub disable_introspection: bool,

    /// Log format.
    #[arg(long, env = "DLI_GRAPHQL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Start a built-in DLI simulator and serve its data (with a demo token), for trying things out.
    #[arg(long)]
    pub demo: bool,

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

    /// Never compress responses (e.g. behind a proxy that compresses); by default responses over
    /// 1 KiB are compressed for clients that accept gzip, br or zstd.
    #[arg(long, env = "DLI_GRAPHQL_NO_COMPRESSION")]
    pub no_compression: bool,
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
}

impl Config {
    /// A configuration from command-line style arguments (environment fallbacks apply).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(std::iter::once("dli-graphql".into()).chain(args.into_iter().map(Into::into)))
            .map(|c| c.config)
    }

    /// How upstream answers are shared between requests (`--no-coalesce`, `--cache-*`).
    pub fn share_options(&self) -> ShareOptions {
        ShareOptions {
            coalesce: !self.no_coalesce,
            cache_ttl: self.cache_ttl.filter(|t| !t.is_zero()),
            cache_max_bytes: self.cache_max_bytes,
        }
    }

    /// The upstream base URL from `--endpoint` or `--region`.
    pub fn upstream_base(&self) -> Result<Url, ConfigError> {
        if let Some(url) = &self.endpoint {
            let ok = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.username().is_empty()
                && url.password().is_none();
            return if ok { Ok(url.clone()) } else { Err(ConfigError::BadEndpoint) };
        }
        if let Some(region) = &self.region {
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
    fn sharing_defaults_to_coalescing_without_a_cache() {
        let c = Config::from_args::<_, &str>([]).expect("parses");
        let o = c.share_options();
        assert!(o.coalesce);
        assert_eq!(o.cache_ttl, None);
        let c = Config::from_args(["--no-coalesce", "--cache-ttl", "5s", "--cache-max-bytes", "1000"])
            .expect("parses");
        let o = c.share_options();
        assert!(!o.coalesce);
        assert_eq!((o.cache_ttl, o.cache_max_bytes), (Some(Duration::from_secs(5)), 1000));
        let off = Config::from_args(["--cache-ttl", "0s"]).expect("parses");
        assert_eq!(off.share_options().cache_ttl, None);
    }

    #[test]
    fn parses_durations() {
        let c = Config::from_args(["--upstream-timeout", "1500ms"]).expect("parses");
        assert_eq!(c.upstream_timeout, Duration::from_millis(1500));
    }
}
