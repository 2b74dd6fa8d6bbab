//! Claims in this process's memory: a moka cache shared by every HTTP
//! worker. Fast, but a restart forgets every claim and another replica
//! never sees them; chosen with `stores.backend = "memory"`.
//!
//! It must never evict a live entry (an evicted nonce could be replayed),
//! so it refuses new claims at `capacity` and moka's own bound sits above it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::watch;

use super::{now_ms, Attempt, ClaimStore, Expires, StoreError, Token};

/// Where a claimed key stands.
#[derive(Clone, Debug)]
enum SlotState<V> {
    Pending,
    Done(V),
    Released,
}

#[derive(Clone)]
struct Slot<V> {
    id: u64,
    state: Arc<watch::Sender<SlotState<V>>>,
}

/// Pending entries live at least this long, whatever the TTL: a claim is
/// resolved by its publish's window (30 s by default) at the latest.
const MIN_PENDING_TTL: Duration = Duration::from_secs(120);

struct SlotExpiry {
    ttl: Duration,
}

impl<V: Clone + Send + Sync> Expiry<Arc<str>, Slot<V>> for SlotExpiry {
    fn expire_after_create(&self, _: &Arc<str>, slot: &Slot<V>, _: Instant) -> Option<Duration> {
        Some(match *slot.state.borrow() {
            SlotState::Pending => self.ttl.max(MIN_PENDING_TTL),
            _ => self.ttl,
        })
    }

    /// A commit re-inserts the slot: the TTL runs from the commit.
    fn expire_after_update(
        &self,
        _: &Arc<str>,
        _: &Slot<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl)
    }
}

/// In-memory claims with values of type `V` once done.
pub struct MemoryStore<V: Clone + Send + Sync + 'static> {
    cache: Cache<Arc<str>, Slot<V>>,
    capacity: u64,
    next_id: AtomicU64,
}

impl<V: Clone + Expires + Send + Sync + 'static> MemoryStore<V> {
    /// `ttl`: how long a done key is remembered. `capacity`: entries at
    /// which new claims are refused.
    pub fn new(ttl: Duration, capacity: u64) -> Arc<Self> {
        let cache = Cache::builder()
            // Hard memory bound above the soft one; reaching it would evict,
            // which the soft bound exists to prevent.
            .max_capacity(capacity.saturating_mul(2))
            .expire_after(SlotExpiry { ttl })
            .build();
        Arc::new(MemoryStore {
            cache,
            capacity,
            next_id: AtomicU64::new(1),
        })
    }

    fn attempt_now(&self, key: &str) -> Attempt<V> {
        let key: Arc<str> = Arc::from(key);
        loop {
            if self.cache.entry_count() >= self.capacity && !self.cache.contains_key(&key) {
                return Attempt::Full;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let entry = self.cache.entry(key.clone()).or_insert_with(|| Slot {
                id,
                state: Arc::new(watch::Sender::new(SlotState::Pending)),
            });
            if entry.is_fresh() {
                return Attempt::Won(Token(id));
            }
            let slot = entry.into_value();
            let state = slot.state.borrow().clone();
            match state {
                SlotState::Done(v) if v.expired(now_ms()) => self.remove_if(&key, slot.id),
                SlotState::Done(v) => return Attempt::Taken(v),
                SlotState::Pending => return Attempt::Pending,
                // Released but not yet removed: clear it and claim again.
                SlotState::Released => self.remove_if(&key, slot.id),
            }
        }
    }

    fn remove_if(&self, key: &Arc<str>, id: u64) {
        self.cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().id == id => Op::Remove,
                _ => Op::Nop,
            });
    }

    fn slot(&self, key: &str, token: Token) -> Option<Slot<V>> {
        self.cache.get(key).filter(|s| s.id == token.0)
    }

    /// Approximate number of entries (for tests).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V: Clone + Expires + Send + Sync + 'static> ClaimStore<V> for MemoryStore<V> {
    /// A memory claim dies with its holder's process, so nothing is ever
    /// taken over and the intent is not kept.
    fn attempt<'a>(
        &'a self,
        key: &'a str,
        _intent: Option<&'a V>,
    ) -> BoxFuture<'a, Result<Attempt<V>, StoreError>> {
        let attempt = self.attempt_now(key);
        async move { Ok(attempt) }.boxed()
    }

    fn commit<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        value: V,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(slot) = self.slot(key, token) {
            slot.state.send_replace(SlotState::Done(value));
            // Re-insert so the TTL counts from now (see `SlotExpiry`).
            self.cache
                .entry(Arc::from(key))
                .and_compute_with(|current| match current {
                    Some(entry) if entry.value().id == token.0 => Op::Put(slot),
                    _ => Op::Nop,
                });
        }
        async { Ok(()) }.boxed()
    }

    fn release<'a>(&'a self, key: &'a str, token: Token) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(slot) = self.slot(key, token) {
            slot.state.send_replace(SlotState::Released);
            self.remove_if(&Arc::from(key), token.0);
        }
        async { Ok(()) }.boxed()
    }

    fn changed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        let slot = self.cache.get(key);
        async move {
            let Some(slot) = slot else { return };
            let mut rx = slot.state.subscribe();
            if matches!(*rx.borrow_and_update(), SlotState::Pending) {
                let _ = rx.changed().await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Claims, Refused};
    use super::*;

    fn claims(capacity: u64) -> (Arc<MemoryStore<u32>>, Claims<u32>) {
        let store = MemoryStore::new(Duration::from_secs(60), capacity);
        (store.clone(), Claims::new(store))
    }

    #[tokio::test]
    async fn exactly_one_of_two_claims_wins_and_the_other_sees_its_outcome() {
        let (_, claims) = claims(10);
        let first = claims.claim("k").await.ok().unwrap();
        let second = tokio::spawn({
            let claims = claims.clone();
            async move { claims.claim("k").await.err() }
        });
        tokio::task::yield_now().await;
        first.commit(7).await;
        assert!(matches!(second.await.unwrap(), Some(Refused::Taken(7))));
    }

    #[tokio::test]
    async fn a_dropped_claim_is_free_again() {
        let (_, claims) = claims(10);
        let g = claims.claim("k").await.ok().unwrap();
        let waiter = tokio::spawn({
            let claims = claims.clone();
            async move { claims.claim("k").await.is_ok() }
        });
        drop(g);
        assert!(waiter.await.unwrap(), "the waiter claims the released key");
    }

    #[tokio::test]
    async fn a_full_store_refuses_instead_of_evicting() {
        let (store, claims) = claims(2);
        for k in ["a", "b"] {
            claims.claim(k).await.ok().unwrap().commit(1).await;
        }
        store.cache.run_pending_tasks();
        assert!(matches!(
            claims.claim("c").await,
            Err(Refused::Unavailable(_))
        ));
        assert!(matches!(claims.claim("a").await, Err(Refused::Taken(1))));
    }
}
