//! Serde DTOs for the DLI list response, tolerant by design.
//!
//! Every field is optional (the official SDKs model them all as nullable), unknown fields
//! are ignored, and numbers may come as integers, floats or numeric strings. A body that is
//! not a JSON object with a `connections` array is rejected by the client as
//! `BAD_UPSTREAM_RESPONSE`; anything looser is accepted. `Serialize` writes the parsed
//! answer back as the same JSON shape (normalised numbers), which is how replicas hand
//! answers to each other over Redis.

use serde::{Deserialize, Deserializer, Serialize};

/// The envelope of `GET /v2.0/{project_id}/datasource-connection`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListResponse {
    /// `true` when the request succeeded; a `false` on a 2xx is a failure.
    #[serde(default)]
    pub is_success: Option<bool>,
    /// System message, often empty.
    #[serde(default)]
    pub message: Option<String>,
    /// The connections; `None` when the key is missing or null.
    #[serde(default)]
    pub connections: Option<Vec<ConnectionDto>>,
    /// Number of connections (newer API versions only).
    #[serde(default, deserialize_with = "lenient_i64")]
    pub count: Option<i64>,
}

/// One classic datasource connection as the upstream sends it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConnectionDto {
    /// UUID of the connection.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// User-chosen name.
    #[serde(default)]
    pub name: Option<String>,
    /// Address given at creation.
    #[serde(default)]
    pub destination: Option<String>,
    /// `CREATING`, `ACTIVE`, `FAILED`, `DELETED`, or anything else the API invents.
    #[serde(default)]
    pub state: Option<String>,
    /// Creation progress, a fraction 0.0–1.0.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub process: Option<f64>,
    /// URL for cross-source tables; often `""`.
    #[serde(default)]
    pub connection_url: Option<String>,
    /// Queue (cluster) name; empty in SQL-queue mode.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// Peer service: `CloudTable`, `DWS`, `RDS`, `CSS`, ... (casing varies).
    #[serde(default)]
    pub service: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub create_time: Option<i64>,
    /// Bound queue names (SDK list model).
    #[serde(default)]
    pub queue_list: Option<Vec<Option<String>>>,
    /// Per-queue peering info (documented list model).
    #[serde(default)]
    pub available_queue_info: Option<Vec<QueueInfo>>,
}

/// One entry of `available_queue_info`; only the name is used.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct QueueInfo {
    /// Queue name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A JSON number or numeric string, as the upstream is not consistent about either.
///
/// A visitor rather than an untagged enum: serde buffers every untagged value before trying
/// its variants, which made number fields the costliest part of parsing a large list.
enum Num {
    I(i64),
    F(f64),
    Text(Option<f64>, Option<i64>),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NumVisitor;
        impl serde::de::Visitor<'_> for NumVisitor {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::I(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(i64::try_from(v).map_or(Num::F(v as f64), Num::I))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                let v = v.trim();
                Ok(Num::Text(v.parse::<f64>().ok().filter(|f| f.is_finite()), v.parse::<i64>().ok()))
            }
        }
        d.deserialize_any(NumVisitor)
    }
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Num>::deserialize(d)? {
        None => None,
        Some(Num::I(i)) => Some(i as f64),
        Some(Num::F(f)) => Some(f),
        Some(Num::Text(f, _)) => f,
    })
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Num>::deserialize(d)? {
        None => None,
        Some(Num::I(i)) => Some(i),
        // Truncation is intended: sub-millisecond digits carry no meaning here.
        Some(Num::F(f)) if f.is_finite() => Some(f as i64),
        Some(Num::F(_)) => None,
        Some(Num::Text(_, i)) => i,
    })
}

impl ConnectionDto {
    /// Queue names from `queue_list`, then `available_queue_info`, without duplicates.
    pub fn queues(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let listed = self.queue_list.iter().flatten().flatten().map(String::as_str);
        let infos = self.available_queue_info.iter().flatten().filter_map(|q| q.name.as_deref());
        for name in listed.chain(infos) {
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed document's sample, with its missing `]` restored.
    pub const SEED: &str = r#"{
        "is_success": true,
        "message": "",
        "connections": [
            {
                "is_success": true,
                "message": "",
                "connection_id": "75419c22-7a31-42e4-a3f3-102f6e6895c9",
                "destination": "cloudtable-c172-zk3-WBFt4fr2.mycloudtable.com:2181,cloudtable-c172-zk2-LHZEWNau.mycloudtable.com:2181,cloudtable-c172-zk1-cvwY6lMh.mycloudtable.com:2181",
                "state": "DELETED",
                "process": 0,
                "name": "test",
                "connection_url": "",
                "cluster_name": "",
                "service": "CloudTable",
                "create_time": 1549092947256
            }
        ]
    }"#;

    #[test]
    fn parses_the_seed_sample() {
        let r: ListResponse = serde_json::from_str(SEED).expect("seed parses");
        let c = &r.connections.expect("connections")[0];
        assert_eq!(c.connection_id.as_deref(), Some("75419c22-7a31-42e4-a3f3-102f6e6895c9"));
        assert_eq!(c.process, Some(0.0));
        assert_eq!(c.create_time, Some(1_549_092_947_256));
        assert_eq!(c.state.as_deref(), Some("DELETED"));
    }

    #[test]
    fn tolerates_missing_null_unknown_and_odd_numbers() {
        let body = r#"{"count": "2", "extra": {"x": 1}, "connections": [
            {"process": 0.5, "create_time": 1.5e12, "state": null, "queue_list": ["q1", null, "q1"],
             "available_queue_info": [{"name": "q2", "peer_id": "p"}, {}], "new_field": [1]},
            {"process": "1", "create_time": "1549092947256"}
        ]}"#;
        let r: ListResponse = serde_json::from_str(body).expect("lenient parse");
        assert_eq!(r.count, Some(2));
        let cs = r.connections.expect("connections");
        assert_eq!(cs[0].process, Some(0.5));
        assert_eq!(cs[0].create_time, Some(1_500_000_000_000));
        assert_eq!(cs[0].queues(), vec!["q1", "q2"]);
        assert_eq!(cs[1].process, Some(1.0));
        assert_eq!(cs[1].create_time, Some(1_549_092_947_256));
        assert!(cs[1].queues().is_empty());
    }

    #[test]
    fn a_parsed_answer_serializes_to_json_that_parses_back_the_same() {
        let r: ListResponse = serde_json::from_str(SEED).expect("seed parses");
        let json = serde_json::to_vec(&r).expect("serializes");
        let back: ListResponse = serde_json::from_slice(&json).expect("parses back");
        assert_eq!(format!("{back:?}"), format!("{r:?}"));
    }

    #[test]
    fn rejects_wrong_types() {
        assert!(serde_json::from_str::<ListResponse>(r#"{"connections": [{"name": 5}]}"#).is_err());
        assert!(serde_json::from_str::<ListResponse>(r#"{"connections": {}}"#).is_err());
        assert!(serde_json::from_str::<ListResponse>("\"text\"").is_err());
    }
}
