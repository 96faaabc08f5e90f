//! The one in-process cache: entries kept for a time to live, at most a number of them (past
//! it, the stale go, then all: a full clear is cheap and rare), dropped on demand. Every cache
//! of core (API keys, CSC sessions and credentials, OCSP responses, compiled profile patterns,
//! CA certificates read back) is one of these; what may be served from it, and when it is
//! dropped, each user says.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries of `V` by `K`, each valid for `ttl` after it was put.
#[derive(Debug)]
pub struct Cache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    /// A cache of at most `max` entries living `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self { ttl, max, entries: Mutex::new(HashMap::new()) }
    }

    /// The live entry of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get_if(key, |_| true)
    }

    /// The live entry of `key`, when `fits` accepts it.
    pub fn get_if<Q>(&self, key: &Q, fits: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let map = self.entries.lock().ok()?;
        let (v, at) = map.get(key)?;
        (at.elapsed() < self.ttl && fits(v)).then(|| v.clone())
    }

    /// Keeps `value` under `key` from now.
    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= self.max {
                let ttl = self.ttl;
                map.retain(|_, (_, at)| at.elapsed() < ttl);
                if map.len() >= self.max {
                    map.clear();
                }
            }
            map.insert(key, (value, Instant::now()));
        }
    }

    /// Drops the entry of `key`.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(key);
        }
    }

    /// Drops every entry `drop` picks.
    pub fn forget_where(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        if let Ok(mut map) = self.entries.lock() {
            map.retain(|k, (v, _)| !drop(k, v));
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_their_ttl_within_the_bound_and_go_on_demand() {
        let c = Cache::new(Duration::from_secs(60), 2);
        c.put("a", 1);
        c.put("b", 2);
        assert_eq!((c.get(&"a"), c.get_if(&"b", |v| *v > 5)), (Some(1), None));
        c.put("c", 3); // over the bound: nothing stale, so everything goes first
        assert_eq!((c.get(&"a"), c.get(&"c")), (None, Some(3)));
        c.forget_where(|k, _| *k == "c");
        assert_eq!(c.get(&"c"), None);
        let off = Cache::new(Duration::ZERO, 2);
        off.put("a", 1);
        assert_eq!(off.get(&"a"), None);
    }
}
