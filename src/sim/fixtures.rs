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
/// state), filled and empty optional strings, both queue-list shapes, and integer and float
/// `process` values.
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
