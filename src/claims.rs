//! At-most-once claims on a key, shared by every HTTP worker: the mechanism
//! under both the nonce replay store (`auth/replay.rs`) and the idempotency
//! store (`idempotency.rs`).
//!
//! A key is `Pending` while the request that claimed it is being published,
//! `Done` once its signal is in JetStream, and removed again if the request
//! fails, so a failed request never poisons its retry. A second request for
//! a pending key waits for the first one's outcome instead of publishing a
//! second copy.
//!
//! Entries live in a moka cache (lock-free reads, sharded writes). It must
//! never evict a live entry (an evicted nonce could be replayed), so the
//! table refuses new claims at `capacity` and moka's own bound sits above it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::watch;

/// Where a claimed key stands.
#[derive(Clone, Debug)]
enum SlotState<V> {
    Pending,
    Done(V),
    Released,
}

#[derive(Clone)]
struct Slot<V> {
    /// Tells one claim of a key from a later claim of the same key.
    id: u64,
    state: watch::Receiver<SlotState<V>>,
}

/// Pending entries live at least this long, whatever the table's TTL: a
/// claim is resolved by its publish's window (30 s by default) at the latest.
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

/// A table of claims with values of type `V` once done.
pub struct ClaimTable<V: Clone + Send + Sync + 'static> {
    cache: Cache<Arc<str>, Slot<V>>,
    capacity: u64,
    next_id: AtomicU64,
}

/// The answer to [`ClaimTable::claim`].
pub enum Claim<V: Clone + Send + Sync + 'static> {
    /// The key is ours; commit the guard on success, drop it on failure.
    Won(ClaimGuard<V>),
    /// The key was already done with this value.
    Taken(V),
    /// Another request holds the key; wait for its outcome.
    Pending(ClaimWaiter<V>),
    /// The table is at capacity; fail closed (503).
    Full,
}

impl<V: Clone + Send + Sync + 'static> ClaimTable<V> {
    /// `ttl`: how long a done key is remembered. `capacity`: entries at which
    /// new claims are refused.
    pub fn new(ttl: Duration, capacity: u64) -> Arc<Self> {
        let cache = Cache::builder()
            // Hard memory bound above the soft one; reaching it would evict,
            // which the soft bound below exists to prevent.
            .max_capacity(capacity.saturating_mul(2))
            .expire_after(SlotExpiry { ttl })
            .build();
        Arc::new(ClaimTable {
            cache,
            capacity,
            next_id: AtomicU64::new(1),
        })
    }

    /// Tries to claim `key`. Atomic: of two concurrent claims exactly one wins.
    pub fn claim(self: &Arc<Self>, key: &str) -> Claim<V> {
        let key: Arc<str> = Arc::from(key);
        loop {
            if self.cache.entry_count() >= self.capacity && !self.cache.contains_key(&key) {
                return Claim::Full;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = watch::channel(SlotState::Pending);
            let entry = self
                .cache
                .entry(key.clone())
                .or_insert_with(|| Slot { id, state: rx });
            if entry.is_fresh() {
                return Claim::Won(ClaimGuard {
                    table: self.clone(),
                    key,
                    id,
                    tx: Some(tx),
                });
            }
            let slot = entry.into_value();
            let state = slot.state.borrow().clone();
            match state {
                SlotState::Done(v) => return Claim::Taken(v),
                SlotState::Pending => return Claim::Pending(ClaimWaiter { state: slot.state }),
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

    /// Approximate number of entries (for metrics and tests).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ownership of a claimed key. Dropping it without [`ClaimGuard::commit`]
/// releases the key, so the request's retry can claim it again.
pub struct ClaimGuard<V: Clone + Send + Sync + 'static> {
    table: Arc<ClaimTable<V>>,
    key: Arc<str>,
    id: u64,
    tx: Option<watch::Sender<SlotState<V>>>,
}

impl<V: Clone + Send + Sync + 'static> ClaimGuard<V> {
    /// Marks the key done with `value`; later claims get [`Claim::Taken`].
    pub fn commit(mut self, value: V) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(SlotState::Done(value));
            // Re-insert so the TTL counts from now (see `SlotExpiry`).
            let slot = Slot {
                id: self.id,
                state: tx.subscribe(),
            };
            self.table
                .cache
                .entry(self.key.clone())
                .and_compute_with(|current| match current {
                    Some(entry) if entry.value().id == slot.id => Op::Put(slot),
                    _ => Op::Nop,
                });
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Drop for ClaimGuard<V> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(SlotState::Released);
            self.table.remove_if(&self.key, self.id);
        }
    }
}

/// A handle on somebody else's pending claim.
pub struct ClaimWaiter<V> {
    state: watch::Receiver<SlotState<V>>,
}

impl<V: Clone + Send + Sync + 'static> ClaimWaiter<V> {
    /// The value the holder committed, or `None` if it released the key
    /// (the caller may then claim it itself).
    pub async fn outcome(mut self) -> Option<V> {
        loop {
            let state = self.state.borrow_and_update().clone();
            match state {
                SlotState::Done(v) => return Some(v),
                SlotState::Released => return None,
                SlotState::Pending => {
                    if self.state.changed().await.is_err() {
                        // Sender gone without a verdict: treat as released.
                        return match self.state.borrow().clone() {
                            SlotState::Done(v) => Some(v),
                            _ => None,
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_two_claims_wins() {
        let t = ClaimTable::<u32>::new(Duration::from_secs(60), 10);
        let a = t.claim("k");
        let b = t.claim("k");
        assert!(matches!(a, Claim::Won(_)));
        assert!(matches!(b, Claim::Pending(_)));
    }

    #[test]
    fn a_committed_key_is_taken_and_a_dropped_one_is_free_again() {
        let t = ClaimTable::<u32>::new(Duration::from_secs(60), 10);
        let Claim::Won(g) = t.claim("k") else {
            panic!("first claim must win")
        };
        g.commit(7);
        assert!(matches!(t.claim("k"), Claim::Taken(7)));

        let Claim::Won(g) = t.claim("other") else {
            panic!("first claim must win")
        };
        drop(g);
        assert!(matches!(t.claim("other"), Claim::Won(_)));
    }

    #[tokio::test]
    async fn a_waiter_sees_the_holders_outcome() {
        let t = ClaimTable::<u32>::new(Duration::from_secs(60), 10);
        let Claim::Won(g) = t.claim("k") else {
            panic!()
        };
        let Claim::Pending(w) = t.claim("k") else {
            panic!()
        };
        let waiting = tokio::spawn(w.outcome());
        g.commit(3);
        assert_eq!(waiting.await.unwrap(), Some(3));

        let Claim::Won(g) = t.claim("j") else {
            panic!()
        };
        let Claim::Pending(w) = t.claim("j") else {
            panic!()
        };
        drop(g);
        assert_eq!(w.outcome().await, None);
    }

    #[test]
    fn a_full_table_refuses_instead_of_evicting() {
        let t = ClaimTable::<u32>::new(Duration::from_secs(60), 2);
        for k in ["a", "b"] {
            let Claim::Won(g) = t.claim(k) else { panic!() };
            g.commit(1);
        }
        t.cache.run_pending_tasks();
        assert!(matches!(t.claim("c"), Claim::Full));
        assert!(matches!(t.claim("a"), Claim::Taken(1)));
    }
}
