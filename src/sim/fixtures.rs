//! Deterministic, realistic connection data for any project id.

use serde_json::{Value, json};

/// The connection from the seed document's sample, served first in every project.
pub fn seed_connection() -> Value {
    json!({
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
        "create_time": 1_549_092_947_256_i64
    })
}

const SERVICES: [&str; 8] =
    ["CloudTable", "DWS", "RDS", "CSS", "CloudTable.OpenTSDB", "MRS.OpenTSDB", "RDS", "CloudTable.OPENTSDB"];

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` connections for `project` (`n >= 1`; the first is the seed sample). Same input,
/// same output. Indexes 1.. cycle through every state (one `RUNNING`, which is not in the
/// documented enum), every service spelling (from index 16 on, independently of the
/// state), filled and empty optional strings, both queue-list shapes (`queue_list`, or
/// `available_queue_info`, sometimes empty; most items have neither, as in the SDK's list
/// model, so their peering comes from the show endpoint), and integer and float `process`
/// values.
pub fn connections(project: &str, n: usize) -> Vec<Value> {
    let mut rng = fnv1a(project);
    let mut out = Vec::with_capacity(n.max(1));
    out.push(seed_connection());
    for i in 1..n {
        let r = splitmix(&mut rng);
        let state = match i % 8 {
            1 | 2 | 4 | 7 => "ACTIVE",
            3 => "CREATING",
            5 => "FAILED",
            6 if i == 6 => "RUNNING",
            _ => "DELETED",
        };
        // The first 16 cycle through every spelling in step with the states; later ones (long
        // lists) pick theirs independently, so state and service filters combine as in real data.
        let service = if i < 16 {
            SERVICES[i % SERVICES.len()]
        } else {
            SERVICES[((r >> 40) % SERVICES.len() as u64) as usize]
        };
        let host = format!("{}-{:04x}", service.to_ascii_lowercase().replace('.', "-"), r & 0xffff);
        let destination = match service {
            "DWS" => format!("{host}.dws.myhuaweicloud.com:8000"),
            "RDS" => format!("{host}.rds.myhuaweicloud.com:3306"),
            "CSS" => format!("{host}.css.myhuaweicloud.com:9200"),
            _ => format!("{host}-zk1.mycloudtable.com:2181,{host}-zk2.mycloudtable.com:2181"),
        };
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) & 0xffff,
            r & 0xfff,
            (r >> 12) & 0xfff,
            splitmix(&mut rng) & 0xffff_ffff_ffff
        );
        let process: Value = match state {
            "ACTIVE" | "DELETED" => json!(1),
            "CREATING" => json!(((r % 9) + 1) as f64 / 10.0),
            _ => json!(0.0),
        };
        let queue = format!("queue_{}", i % 3 + 1);
        let mut c = json!({
            "is_success": true,
            "message": "",
            "connection_id": id,
            "destination": destination,
            "state": state,
            "process": process,
            "name": format!("{}_conn_{i}", service.split('.').next().unwrap_or("conn").to_ascii_lowercase()),
            "connection_url": if i % 2 == 0 { format!("{host}.internal:{}", 8000 + i) } else { String::new() },
            "service": service,
            "create_time": 1_549_092_947_256_i64 + (i as i64) * 86_400_000 + (r % 86_400_000) as i64,
        });
        // Vary the optional parts the way the documented versions of the API do.
        match i % 4 {
            0 => c["cluster_name"] = json!(queue),
            1 => {
                c["cluster_name"] = json!("");
                c["queue_list"] = json!([queue, "queue_shared"]);
            }
            // An empty array is an answer too: no queue is bound.
            2 if i % 8 == 6 => c["available_queue_info"] = json!([]),
            2 => {
                c["available_queue_info"] = json!([{
                    "peer_id": format!("peer-{:x}", r & 0xffff),
                    "status": "ACTIVE",
                    "name": queue,
                    "err_msg": "",
                    "update_time": 1_549_092_947_256_i64 + (i as i64) * 3_600_000
                }]);
            }
            _ => c["cluster_name"] = json!(queue),
        }
        out.push(c);
    }
    out
}

/// The per-queue peering entries the show endpoint returns for a list item: its own
/// `available_queue_info` when it has one, else one entry per bound queue (from `queue_list`
/// and `cluster_name`). Entries alternate between the documented `peer_id` key and the SDK's
/// `uuid` key, and a `FAILED` connection's entries carry an error message.
pub fn queue_info_of(c: &Value) -> Value {
    if let Some(info) = c.get("available_queue_info") {
        return info.clone();
    }
    let mut names: Vec<String> = c["queue_list"]
        .as_array()
        .map(|q| q.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if let Some(cluster) = c["cluster_name"].as_str().filter(|s| !s.is_empty())
        && !names.iter().any(|n| n == cluster)
    {
        names.push(cluster.to_owned());
    }
    let failed = c["state"].as_str() == Some("FAILED");
    let id = c["connection_id"].as_str().unwrap_or("");
    let created = c["create_time"].as_i64().unwrap_or(0);
    Value::Array(
        names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let peer = format!("peer-{}-{k}", id.get(..8).unwrap_or(id));
                let mut q = json!({
                    "status": if failed { "FAILED" } else { "ACTIVE" },
                    "name": name,
                    "err_msg": if failed { "peering rejected: the destination VPC has a conflicting route" } else { "" },
                    "update_time": created + 60_000 * (k as i64 + 1),
                });
                // The docs name the peering id `peer_id`, the SDK `uuid`.
                q[if k % 2 == 0 { "peer_id" } else { "uuid" }] = json!(peer);
                q
            })
            .collect(),
    )
}

/// The body of `GET .../datasource-connection/{connection_id}` for a list item: the item's
/// fields at top level, always with `available_queue_info`.
pub fn show_body(c: &Value) -> Vec<u8> {
    let mut body = c.clone();
    body["available_queue_info"] = queue_info_of(c);
    body["is_success"] = json!(true);
    body["message"] = json!("");
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One enhanced connection with the tags the simulator filters on (DLI does not return them).
#[derive(Debug, Clone)]
pub struct Enhanced {
    /// The item as the list returns it (with `isPrivis`).
    pub item: Value,
    /// `key=value` tags.
    pub tags: Vec<(String, String)>,
}

/// `n` enhanced connections of `project`, in creation order (DLI orders them so). Same
/// input, same output. Every fifth is `DELETED`; queues and elastic resource pools cycle
/// through `CREATING`, `ACTIVE` and `FAILED` peerings; tags alternate `env=prod`/`env=dev`
/// and `team=a`/`team=b`/`team=c`.
pub fn enhanced_connections(project: &str, n: usize) -> Vec<Enhanced> {
    let mut rng = fnv1a(project) ^ 0x5eed_e4a7;
    (0..n)
        .map(|i| {
            let r = splitmix(&mut rng);
            let id = format!(
                "{:08x}-{:04x}-4{:03x}-b{:03x}-{:012x}",
                (r >> 32) as u32,
                (r >> 16) & 0xffff,
                r & 0xfff,
                (r >> 12) & 0xfff,
                splitmix(&mut rng) & 0xffff_ffff_ffff
            );
            let created = 1_600_000_000_000_i64 + (i as i64) * 86_400_000 + (r % 86_400_000) as i64;
            let peering = |k: usize, name: String| {
                let status = ["ACTIVE", "CREATING", "FAILED"][(i + k) % 3];
                json!({
                    "peer_id": format!("peer-{:04x}-{k}", (r >> 8) & 0xffff),
                    "status": status,
                    "name": name,
                    "err_msg": if status == "FAILED" { "the peering connection was rejected by the destination VPC" } else { "" },
                    "update_time": created + 3_600_000 * (k as i64 + 1),
                })
            };
            let queues: Vec<Value> = (0..i % 3).map(|k| peering(k, format!("queue_{}", (i + k) % 4 + 1))).collect();
            let pools: Vec<Value> =
                if i % 2 == 0 { vec![peering(5, format!("pool_{}", i % 2 + 1))] } else { Vec::new() };
            let item = json!({
                "id": id,
                "name": format!("enhanced_conn_{i}"),
                "status": if i % 5 == 4 { "DELETED" } else { "ACTIVE" },
                "available_queue_info": queues,
                "elastic_resource_pools": pools,
                "dest_vpc_id": format!("vpc-{:08x}", (r >> 24) as u32),
                "dest_network_id": format!("subnet-{:08x}", r as u32),
                "create_time": created,
                "hosts": (0..i % 3).map(|k| json!({ "name": format!("host-{i}-{k}"), "ip": format!("192.168.{}.{}", i % 256, k + 10) })).collect::<Vec<_>>(),
                "isPrivis": i % 4 != 1,
                "ipv6_enable": i % 6 == 3,
            });
            let tags = vec![
                ("env".to_owned(), if i % 2 == 0 { "prod" } else { "dev" }.to_owned()),
                ("team".to_owned(), ["a", "b", "c"][i % 3].to_owned()),
            ];
            Enhanced { item, tags }
        })
        .collect()
}

/// The body of the enhanced show endpoint: the item's fields at top level, without the
/// list-only `isPrivis`.
pub fn enhanced_show_body(e: &Enhanced) -> Vec<u8> {
    let mut body = e.item.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("isPrivis");
    }
    body["is_success"] = json!(true);
    body["message"] = json!("");
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The body of `GET .../enhanced-connections/{id}/privileges`: the projects the connection
/// is shared with (none for some, one or two for others).
pub fn privileges_body(project: &str, e: &Enhanced, index: usize) -> Vec<u8> {
    let id = e.item["id"].as_str().unwrap_or("");
    let privileges: Vec<Value> = (0..index % 3)
        .map(|k| {
            json!({
                "object": format!("edsconnections.{id}"),
                "applicant_project_id": format!("{:032x}", fnv1a(&format!("{project}/{k}"))),
                "privileges": if k == 0 { json!(["BIND_QUEUE"]) } else { json!(["BIND_QUEUE", "UNBIND_QUEUE"]) },
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "is_success": true,
        "message": "",
        "connection_id": id,
        "privileges": privileges,
    }))
    .unwrap_or_default()
}

/// The whole list response body for `project`.
pub fn list_body(project: &str, n: usize) -> Vec<u8> {
    list_body_of(connections(project, n))
}

/// The whole list response body with exactly these connections.
pub fn list_body_of(connections: Vec<Value>) -> Vec<u8> {
    let count = connections.len();
    serde_json::to_vec(&json!({
        "is_success": true,
        "message": "",
        "count": count,
        "connections": connections,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = connections("p1", 12);
        assert_eq!(a, connections("p1", 12));
        assert_ne!(a[1], connections("p2", 12)[1]);
        assert_eq!(a[0], seed_connection());
        let states: Vec<&str> = a.iter().filter_map(|c| c["state"].as_str()).collect();
        for s in ["ACTIVE", "CREATING", "FAILED", "DELETED", "RUNNING"] {
            assert!(states.contains(&s), "{s} missing from {states:?}");
        }
    }
}
