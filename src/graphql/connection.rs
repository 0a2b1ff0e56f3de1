//! GraphQL types: thin views over the upstream DTOs (no copies of the strings).

use std::sync::Arc;

use async_graphql::{Enum, ID, InputValueError, InputValueResult, Object, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, TimeZone, Utc};

use crate::{
    project_id::ProjectId,
    upstream::{ConnectionDto, ListResponse},
};

/// Lifecycle state of a classic datasource connection.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Being created.
    Creating,
    /// Created; connectivity to the destination is normal.
    Active,
    /// Creation failed.
    Failed,
    /// Deleted (DLI keeps listing deleted connections).
    Deleted,
    /// A value the API sent that is not in the documented enum; see `rawState`.
    Unknown,
}

impl ConnectionState {
    /// Maps the upstream's string; unknown values become `UNKNOWN` instead of failing.
    pub fn from_raw(raw: &str) -> Self {
        let raw = raw.trim();
        [
            ("CREATING", Self::Creating),
            ("ACTIVE", Self::Active),
            ("FAILED", Self::Failed),
            ("DELETED", Self::Deleted),
        ]
        .into_iter()
        .find(|(name, _)| raw.eq_ignore_ascii_case(name))
        .map_or(Self::Unknown, |(_, s)| s)
    }
}

/// An instant in time, serialized as an RFC 3339 string in UTC with millisecond
/// precision, e.g. `2019-02-02T07:35:47.256Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

impl DateTime {
    /// From epoch milliseconds; out-of-range values give the epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    }
}

/// An instant in time: an RFC 3339 string in UTC with millisecond precision, e.g.
/// `2019-02-02T07:35:47.256Z`.
#[Scalar(name = "DateTime", specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Self(d.with_timezone(&Utc)))
                .map_err(|e| InputValueError::custom(e.to_string())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_rfc3339())
    }
}

impl DateTime {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as chrono's `to_rfc3339_opts(Millis, true)` writes it.
    ///
    /// Written digit by digit for years 0–9999 (every real creation time): chrono goes
    /// through `core::fmt`, which is measurably slower for long lists (docs/performance.md).
    pub fn to_rfc3339(&self) -> String {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return t.to_rfc3339_opts(SecondsFormat::Millis, true);
        }
        let millis = t.timestamp_subsec_millis().min(999);
        let mut out = [0u8; 24];
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year.unsigned_abs());
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 3, millis);
        for (i, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
            out[i] = sep;
        }
        out.iter().map(|&b| char::from(b)).collect()
    }
}

/// A classic datasource connection: a network link from DLI queues to a peer service
/// (CloudTable, DWS, RDS, CSS, ...).
#[derive(Clone)]
pub struct Connection {
    project: ProjectId,
    list: Arc<ListResponse>,
    index: usize,
}

impl Connection {
    /// The connection at `index` of `list` (an index from enumerating that list).
    pub(crate) fn new(project: ProjectId, list: Arc<ListResponse>, index: usize) -> Self {
        Self { project, list, index }
    }

    pub(crate) fn dto(&self) -> &ConnectionDto {
        // `index` comes from enumerating this same list; the fallback is never taken.
        static EMPTY: ConnectionDto = ConnectionDto {
            connection_id: None,
            name: None,
            destination: None,
            state: None,
            process: None,
            connection_url: None,
            cluster_name: None,
            service: None,
            create_time: None,
            queue_list: None,
            available_queue_info: None,
        };
        self.list.connections.as_deref().and_then(|c| c.get(self.index)).unwrap_or(&EMPTY)
    }

    /// The upstream `connection_id`.
    pub fn connection_id(&self) -> &str {
        self.dto().connection_id.as_deref().unwrap_or("")
    }

    /// The project this connection belongs to.
    pub fn project(&self) -> &ProjectId {
        &self.project
    }
}

pub(super) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A classic datasource connection: a network link from DLI queues to a peer service
/// (CloudTable, DWS, RDS, CSS, ...).
#[Object]
impl Connection {
    /// The DLI project the connection belongs to.
    async fn project_id(&self) -> ID {
        ID(self.project.as_str().to_owned())
    }

    /// The connection's UUID (`connection_id`).
    #[graphql(name = "connectionId")]
    async fn gql_connection_id(&self) -> ID {
        ID(self.connection_id().to_owned())
    }

    /// The name given at creation.
    async fn name(&self) -> &str {
        self.dto().name.as_deref().unwrap_or("")
    }

    /// The state, mapped to the documented enum (`UNKNOWN` for anything else).
    async fn state(&self) -> ConnectionState {
        ConnectionState::from_raw(self.dto().state.as_deref().unwrap_or(""))
    }

    /// The state exactly as the upstream sent it (e.g. `RUNNING`, which the enum lacks).
    async fn raw_state(&self) -> &str {
        self.dto().state.as_deref().unwrap_or("")
    }

    /// The peer service as the upstream sent it: `CloudTable`, `CloudTable.OpenTSDB`,
    /// `MRS.OpenTSDB`, `DWS`, `RDS`, `CSS` (casing varies).
    async fn service(&self) -> &str {
        self.dto().service.as_deref().unwrap_or("")
    }

    /// The address given at creation, e.g. a comma-separated ZooKeeper `host:port` list.
    async fn destination(&self) -> &str {
        self.dto().destination.as_deref().unwrap_or("")
    }

    /// Creation progress as the upstream sends it: a fraction from 0.0 to 1.0.
    async fn process(&self) -> f64 {
        self.dto().process.unwrap_or(0.0)
    }

    /// The URL to use when creating cross-source tables; null when the upstream sends
    /// an empty string or omits it.
    async fn connection_url(&self) -> Option<&str> {
        non_empty(&self.dto().connection_url)
    }

    /// The queue (cluster) the connection was created for; null when empty or omitted
    /// (connections created in SQL-queue mode have none).
    async fn cluster_name(&self) -> Option<&str> {
        non_empty(&self.dto().cluster_name)
    }

    /// Names of the queues bound to the connection (from `queue_list` and
    /// `available_queue_info`); empty when the upstream sends neither.
    async fn queues(&self) -> Vec<&str> {
        self.dto().queues()
    }

    /// When the connection was created (the upstream's epoch milliseconds, as RFC 3339
    /// UTC); 1970-01-01T00:00:00.000Z when the upstream omits it.
    async fn create_time(&self) -> DateTime {
        DateTime::from_millis(self.dto().create_time.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_states_and_keeps_unknown() {
        assert_eq!(ConnectionState::from_raw("ACTIVE"), ConnectionState::Active);
        assert_eq!(ConnectionState::from_raw("deleted"), ConnectionState::Deleted);
        assert_eq!(ConnectionState::from_raw("RUNNING"), ConnectionState::Unknown);
        assert_eq!(ConnectionState::from_raw(""), ConnectionState::Unknown);
    }

    #[test]
    fn formats_like_chrono_across_the_range() {
        let chrono = |d: &DateTime| d.0.to_rfc3339_opts(SecondsFormat::Millis, true);
        // Epoch, the seed sample, leap day, end of year 9999, year 10000, negative years,
        // and a walk over 1970–2100 with odd steps.
        let mut samples = vec![
            0,
            1_549_092_947_256,
            951_782_400_999,
            253_402_300_799_999,
            253_402_300_800_000,
            -1,
            -62_167_219_200_000,
            -62_198_755_200_001,
        ];
        samples.extend((0..2000).map(|i| i * 2_071_000_123_457 % 4_102_444_800_000));
        for ms in samples {
            let d = DateTime::from_millis(ms);
            assert_eq!(d.to_rfc3339(), chrono(&d), "{ms}");
        }
    }

    #[test]
    fn formats_create_time_as_rfc3339_utc_millis() {
        let v = DateTime::from_millis(1_549_092_947_256).to_value();
        assert_eq!(v, Value::String("2019-02-02T07:35:47.256Z".into()));
        assert_eq!(
            DateTime::from_millis(i64::MAX).to_value(),
            Value::String("1970-01-01T00:00:00.000Z".into())
        );
    }
}
