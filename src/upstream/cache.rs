//! A small TTL cache bounded by an estimate of the bytes it holds.
//!
//! Every entry lives exactly `ttl` from its insertion, so insertion order is also expiry
//! order: one FIFO queue serves both expiry and eviction (the entries closest to expiry go
//! first when the byte budget is exceeded). No background task: expired entries are dropped
//! when they are read or when an insert walks the queue.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::Duration,
};

use parking_lot::Mutex;

use tokio::time::Instant;

use super::model::{ConnectionDto, ListResponse};

/// A map whose entries expire `ttl` after insertion, holding at most `max_bytes` (as weighed
/// by the caller) at any time.
pub struct TtlCache<K, V> {
    ttl: Duration,
    max_bytes: usize,
    state: Mutex<State<K, V>>,
}

struct Entry<V> {
    value: V,
    expires: Instant,
    bytes: usize,
    generation: u64,
}

struct State<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Keys in insertion (= expiry) order, with the generation they were inserted under; a
    /// key re-inserted later leaves a stale record here, skipped when it reaches the front.
    order: VecDeque<(K, u64)>,
    bytes: usize,
    next_generation: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_bytes,
            state: Mutex::new(State {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                next_generation: 0,
            }),
        }
    }

    /// The live value for `key`, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        let mut state = self.state.lock();
        match state.map.get(key) {
            Some(e) if e.expires > now => Some(e.value.clone()),
            Some(_) => {
                if let Some(e) = state.map.remove(key) {
                    state.bytes -= e.bytes;
                }
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` for the TTL, weighing `bytes`. A value bigger than the whole
    /// budget is not stored; older entries are evicted until the new one fits.
    pub fn insert(&self, key: K, value: V, bytes: usize) {
        if bytes > self.max_bytes || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(old) = state.map.remove(&key) {
            state.bytes -= old.bytes;
        }
        // Drop expired entries, then the oldest live ones while the new value does not fit.
        while let Some((front, generation)) = state.order.front() {
            let live = match state.map.get(front) {
                Some(e) if e.generation == *generation => Some(e.expires > now),
                _ => None,
            };
            match live {
                // A stale record of a key that was re-inserted or already removed.
                None => {}
                Some(true) if state.bytes + bytes <= self.max_bytes => break,
                Some(_) => {
                    if let Some(e) = state.map.remove(front) {
                        state.bytes -= e.bytes;
                    }
                }
            }
            state.order.pop_front();
        }
        let generation = state.next_generation;
        state.next_generation += 1;
        state.order.push_back((key.clone(), generation));
        state.map.insert(key, Entry { value, expires: now + self.ttl, bytes, generation });
        state.bytes += bytes;
    }

    /// Live and not yet dropped entries.
    pub fn len(&self) -> usize {
        self.state.lock().map.len()
    }

    /// The summed weight of the stored entries.
    #[cfg(test)]
    pub fn weight(&self) -> usize {
        self.state.lock().bytes
    }
}

/// An estimate of the heap a parsed list holds: struct sizes plus string and vector
/// capacities. Used as the cache weight, so `--cache-max-bytes` bounds real memory roughly.
pub fn list_weight(list: &ListResponse) -> usize {
    fn string(s: &Option<String>) -> usize {
        s.as_ref().map_or(0, String::capacity)
    }
    fn connection(c: &ConnectionDto) -> usize {
        let queues = c.queue_list.as_ref().map_or(0, |q| {
            q.capacity() * std::mem::size_of::<Option<String>>() + q.iter().map(string).sum::<usize>()
        });
        let infos = c.available_queue_info.as_ref().map_or(0, |q| {
            q.capacity() * std::mem::size_of::<super::model::QueueInfo>()
                + q.iter().map(|i| string(&i.name)).sum::<usize>()
        });
        string(&c.connection_id)
            + string(&c.name)
            + string(&c.destination)
            + string(&c.state)
            + string(&c.connection_url)
            + string(&c.cluster_name)
            + string(&c.service)
            + queues
            + infos
    }
    let connections = list.connections.as_ref().map_or(0, |cs| {
        cs.capacity() * std::mem::size_of::<ConnectionDto>() + cs.iter().map(connection).sum::<usize>()
    });
    std::mem::size_of::<ListResponse>() + string(&list.message) + connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_live_exactly_the_ttl() {
        let cache = TtlCache::new(Duration::from_secs(10), 1_000);
        cache.insert("a", 1, 10);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&"a"), None);
        assert_eq!((cache.len(), cache.weight()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_budget_evicts_the_oldest_first() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        cache.insert("a", 1, 40);
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.insert("b", 2, 40);
        cache.insert("c", 3, 40);
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.get(&"b"), Some(2));
        assert_eq!(cache.get(&"c"), Some(3));
        assert_eq!(cache.weight(), 80);
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_bigger_than_the_budget_is_not_stored() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        cache.insert("a", 1, 50);
        cache.insert("huge", 2, 101);
        assert_eq!(cache.get(&"huge"), None);
        assert_eq!(cache.get(&"a"), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn reinserting_a_key_replaces_it_and_restarts_its_ttl() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        cache.insert("a", 1, 30);
        tokio::time::advance(Duration::from_secs(6)).await;
        cache.insert("a", 2, 50);
        assert_eq!(cache.weight(), 50);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(cache.get(&"a"), Some(2));
        // The stale queue record of the first insert must not evict the second.
        cache.insert("b", 3, 50);
        assert_eq!(cache.get(&"a"), Some(2));
        assert_eq!(cache.weight(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_dropped_by_later_inserts() {
        let cache = TtlCache::new(Duration::from_secs(1), 1_000);
        for i in 0..10 {
            cache.insert(i, i, 10);
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.insert(99, 99, 10);
        assert_eq!((cache.len(), cache.weight()), (1, 10));
    }

    #[test]
    fn weight_counts_the_entries_and_their_strings() {
        let one: ListResponse = serde_json::from_str(r#"{"connections":[{"name":"a"}]}"#).expect("parses");
        let long = "x".repeat(1000);
        let with_long: ListResponse =
            serde_json::from_str(&format!(r#"{{"connections":[{{"name":"a","destination":"{long}"}}]}}"#))
                .expect("parses");
        assert!(
            list_weight(&one) >= std::mem::size_of::<ListResponse>() + std::mem::size_of::<ConnectionDto>()
        );
        assert!(list_weight(&with_long) >= list_weight(&one) + 1000);
        let many: ListResponse = serde_json::from_str(&format!(
            r#"{{"connections":[{}]}}"#,
            vec![r#"{"name":"a"}"#; 100].join(",")
        ))
        .expect("parses");
        assert!(list_weight(&many) >= 100 * std::mem::size_of::<ConnectionDto>());
    }
}
