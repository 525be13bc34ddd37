//! A bounded cache of authenticated reviews, keyed by the SHA-256 of the token (the token itself
//! is never kept). Only successful reviews are cached; every entry expires, at the latest shortly
//! before its token does. When full, the entry closest to expiry makes room.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::review::UserInfo;

/// The cache key of a token.
pub type Key = [u8; 32];

/// The key of `token`.
pub fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// A short, non-reversible label of a token for logs: the first 8 hex digits of its SHA-256.
pub fn fingerprint(key: &Key) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Instant, Arc<UserInfo>)>,
    by_expiry: BTreeSet<(Instant, Key)>,
}

/// The cache.
#[derive(Debug)]
pub struct ReviewCache {
    capacity: usize,
    inner: RwLock<Inner>,
}

impl ReviewCache {
    /// An empty cache holding at most `capacity` entries. A capacity of 0 is no cache: nothing
    /// is kept, nothing is found (`--cache-size 0`).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: RwLock::default(),
        }
    }

    /// The user cached for `key`, if its entry has not expired at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<UserInfo>> {
        if self.capacity == 0 {
            return None;
        }
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match inner.entries.get(key) {
            Some((expires, user)) if *expires > now => Some(user.clone()),
            _ => None,
        }
    }

    /// Caches `user` for `key` until `expires`. Expired entries are dropped first; if the cache
    /// is still full, the entry that expires soonest goes.
    pub fn insert(&self, key: Key, user: Arc<UserInfo>, expires: Instant, now: Instant) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if let Some((old, _)) = inner.entries.remove(&key) {
            inner.by_expiry.remove(&(old, key));
        }
        while let Some(&(at, k)) = inner.by_expiry.first() {
            if at > now && inner.entries.len() < self.capacity {
                break;
            }
            inner.by_expiry.pop_first();
            inner.entries.remove(&k);
        }
        inner.entries.insert(key, (expires, user));
        inner.by_expiry.insert((expires, key));
    }

    /// The number of entries (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn user(name: &str) -> Arc<UserInfo> {
        Arc::new(UserInfo {
            username: name.into(),
            uid: name.into(),
            groups: vec![],
            extra: BTreeMap::new(),
        })
    }

    #[test]
    fn entries_are_found_until_they_expire() {
        let cache = ReviewCache::new(10);
        let now = Instant::now();
        let k = key("token-a");
        cache.insert(k, user("a"), now + Duration::from_secs(5), now);
        assert_eq!(cache.get(&k, now).unwrap().username, "a");
        assert!(cache.get(&key("token-b"), now).is_none());
        assert!(cache.get(&k, now + Duration::from_secs(5)).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_soonest_to_expire() {
        let cache = ReviewCache::new(2);
        let now = Instant::now();
        let s = Duration::from_secs;
        cache.insert(key("a"), user("a"), now + s(1), now);
        cache.insert(key("b"), user("b"), now + s(100), now);
        // At now+2, "a" has expired: it goes, "b" stays.
        cache.insert(key("c"), user("c"), now + s(50), now + s(2));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("b"), now + s(2)).is_some());
        // Nothing expired: "c" (expiring first) makes room for "d".
        cache.insert(key("d"), user("d"), now + s(200), now + s(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("c"), now + s(3)).is_none());
        assert!(cache.get(&key("b"), now + s(3)).is_some());
        assert!(cache.get(&key("d"), now + s(3)).is_some());
    }

    #[test]
    fn reinserting_replaces() {
        let cache = ReviewCache::new(2);
        let now = Instant::now();
        let s = Duration::from_secs;
        cache.insert(key("a"), user("a"), now + s(1), now);
        cache.insert(key("a"), user("a2"), now + s(10), now);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&key("a"), now + s(5)).unwrap().username, "a2");
    }

    #[test]
    fn a_cache_of_size_zero_keeps_and_finds_nothing() {
        let off = ReviewCache::new(0);
        let now = Instant::now();
        for token in ["a", "b", "a"] {
            off.insert(key(token), user(token), now + Duration::from_secs(10), now);
            assert!(off.get(&key(token), now).is_none());
        }
        assert!(off.is_empty());
    }

    #[test]
    fn keys_and_fingerprints_are_the_tokens_sha256() {
        // SHA-256("abc") is the FIPS 180-2 test vector ba7816bf…
        assert_eq!(fingerprint(&key("abc")), "ba7816bf");
        assert_eq!(key("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_ne!(key("a"), key("b"));
    }
}
