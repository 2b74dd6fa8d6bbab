//! At-most-once claims on a key: the mechanism under both the nonce replay
//! store (`auth/replay.rs`) and the idempotency store (`idempotency.rs`).
//!
//! A key is *pending* while the request that claimed it is being published,
//! *done* once its signal is in JetStream, and released again if the request
//! fails, so a failed request never poisons its retry. A second request for
//! a pending key waits for the first one's outcome instead of publishing a
//! second copy.
//!
//! Where the claims live is a [`ClaimStore`], chosen by configuration:
//! - [`memory::MemoryStore`]: this process only, lost on restart;
//! - [`jetstream::KvStore`]: JetStream key-value buckets, shared by every
//!   gateway replica and surviving restarts (the default).
//!
//! [`Claims`] is the front end every caller uses: it runs the claim loop
//! and hands out a [`ClaimGuard`] that commits or, when dropped, releases.
//!
//! With `stores.backend = "stream"` there is no store to hold a claim in:
//! it is a message of the signal's own atomic batch ([`batch`]), stored
//! with the signal or not at all. [`Claim`] is what a request holds either way.

pub mod batch;
pub mod jetstream;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

/// How long a successful request keeps trying to mark its claims done. Less
/// than the shortest lease (the message window + 5 s), so a commit never
/// lands on a claim somebody has since taken over (the revision check would
/// refuse it anyway).
pub const COMMIT_RETRY_FOR: Duration = Duration::from_secs(20);

/// A done value that may stop counting before the store's own TTL: the
/// idempotency record of a body-hash key lasts only the source's
/// `content_dedupe_sec` (two identical alerts on two bars are two signals),
/// while the bucket keeps keys for the full idempotency TTL. An expired
/// done key is free again, claimed like a released one.
pub trait Expires {
    fn expired(&self, _now_ms: u64) -> bool {
        false
    }
}

impl Expires for () {}
impl Expires for u32 {}

/// Milliseconds since the Unix epoch, the clock of [`Expires`] and leases.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Identifies one claim of a key (a memory slot id or a KV revision), so a
/// late commit or release never touches somebody else's later claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(pub u64);

/// The answer of one claim attempt.
pub enum Attempt<V> {
    /// The key is ours.
    Won(Token),
    /// The key is ours, taken over from a holder that crashed before it
    /// finished; `V` is what that holder meant to commit (its signal may
    /// already be stored, so the taker continues with the same value).
    Resumed(Token, V),
    /// The key is done with this value.
    Taken(V),
    /// Another request holds a live claim; wait for it to change.
    Pending,
    /// The store is at capacity (memory only); fail closed.
    Full,
}

/// The store could not be reached or answered nonsense; fail closed (503).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Where claims are kept. Every method is atomic on its key.
pub trait ClaimStore<V>: Send + Sync + 'static {
    /// Claims `key` if it is free (or its holder's lease ran out).
    /// `intent`: the value this claim means to commit, kept with a pending
    /// claim where the store outlives the process, so that whoever takes
    /// the claim over after a crash gets it back ([`Attempt::Resumed`]).
    fn attempt<'a>(
        &'a self,
        key: &'a str,
        intent: Option<&'a V>,
    ) -> BoxFuture<'a, Result<Attempt<V>, StoreError>>;
    /// Marks our claim done; later attempts get [`Attempt::Taken`].
    fn commit<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        value: V,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Frees our claim, if it is still ours.
    fn release<'a>(&'a self, key: &'a str, token: Token) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Resolves when a pending key may have changed (or after a short poll).
    fn changed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
}

/// Why a claim was not granted.
pub enum Refused<V> {
    /// The key is done: the caller answers 409.
    Taken(V),
    /// Fail closed: the caller answers 503.
    Unavailable(StoreError),
}

/// The front end of one store.
pub struct Claims<V> {
    store: Arc<dyn ClaimStore<V>>,
}

impl<V> Clone for Claims<V> {
    fn clone(&self) -> Self {
        Claims {
            store: self.store.clone(),
        }
    }
}

impl<V: Send + Sync + 'static> Claims<V> {
    pub fn new(store: Arc<dyn ClaimStore<V>>) -> Self {
        Claims { store }
    }

    /// Claims `key`, waiting while another request holds it. The caller
    /// bounds the wait (the request's deadline).
    pub async fn claim(&self, key: &str) -> Result<ClaimGuard<V>, Refused<V>> {
        self.claim_intending(key, None).await
    }

    /// [`Claims::claim`], recording what this claim means to commit (see
    /// [`ClaimStore::attempt`]); [`ClaimGuard::resumed`] tells whether the
    /// claim continues a crashed holder's.
    pub async fn claim_intending(
        &self,
        key: &str,
        intent: Option<&V>,
    ) -> Result<ClaimGuard<V>, Refused<V>> {
        loop {
            let (token, resumed) = match self.store.attempt(key, intent).await {
                Ok(Attempt::Won(token)) => (token, None),
                Ok(Attempt::Resumed(token, v)) => (token, Some(v)),
                Ok(Attempt::Taken(v)) => return Err(Refused::Taken(v)),
                Ok(Attempt::Pending) => {
                    self.store.changed(key).await;
                    continue;
                }
                Ok(Attempt::Full) => {
                    return Err(Refused::Unavailable(StoreError("store is full".into())))
                }
                Err(e) => return Err(Refused::Unavailable(e)),
            };
            return Ok(ClaimGuard {
                store: self.store.clone(),
                key: key.to_owned(),
                token: Some(token),
                resumed,
            });
        }
    }
}

/// What a request holds for one key until its signal is stored.
pub enum Claim<V: Send + 'static> {
    /// Held in a [`ClaimStore`]: committed once the signal is stored,
    /// released when dropped before.
    Held(ClaimGuard<V>),
    /// Held nowhere yet: written in the signal's atomic batch.
    InBatch(batch::BatchClaim),
    /// Nothing to hold (a body-hash key whose source counts identical
    /// bodies as one signal for 0 s).
    Nothing,
}

impl<V: Send + 'static> Claim<V> {
    /// See [`ClaimGuard::resumed`]; a batch claim never resumes anything.
    pub fn resumed(&self) -> Option<&V> {
        match self {
            Claim::Held(guard) => guard.resumed(),
            _ => None,
        }
    }

    /// The claim to write in the signal's batch, if that is where it goes.
    pub fn in_batch(&self) -> Option<&batch::BatchClaim> {
        match self {
            Claim::InBatch(claim) => Some(claim),
            _ => None,
        }
    }

    /// Marks a held claim done (see [`ClaimGuard::commit`]); a batch claim
    /// was stored with the signal, so there is nothing left to do.
    pub async fn commit(self, value: V)
    where
        V: Clone,
    {
        if let Claim::Held(guard) = self {
            guard.commit(value).await;
        }
    }
}

/// Ownership of a claimed key. Dropping it without [`ClaimGuard::commit`]
/// releases the key, so the request's retry can claim it again.
pub struct ClaimGuard<V: Send + 'static> {
    store: Arc<dyn ClaimStore<V>>,
    key: String,
    token: Option<Token>,
    resumed: Option<V>,
}

impl<V: Send + 'static> ClaimGuard<V> {
    /// What the crashed holder this claim was taken over from meant to
    /// commit; `None` for a fresh claim.
    pub fn resumed(&self) -> Option<&V> {
        self.resumed.as_ref()
    }

    /// Marks the key done with `value`, retrying a failed write (a NATS
    /// hiccup, a leader election) for up to [`COMMIT_RETRY_FOR`]: a claim
    /// left pending would make a repeat after its lease a second signal
    /// once JetStream's duplicate window has passed. What still fails is
    /// logged; the lease then runs out and a retry takes the claim over
    /// under the same event id (see [`Attempt::Resumed`]).
    pub async fn commit(mut self, value: V)
    where
        V: Clone,
    {
        let Some(token) = self.token.take() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + COMMIT_RETRY_FOR;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.commit(&self.key, token, value.clone()).await {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() + backoff >= deadline => {
                    tracing::warn!(error = %e, "could not mark a claim done; it stays pending until its lease runs out");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "marking a claim done failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

impl<V: Send + 'static> Drop for ClaimGuard<V> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let store = self.store.clone();
        let key = std::mem::take(&mut self.key);
        // Releasing may need I/O; it runs on its own. Outside a runtime (at
        // exit) there is nothing to do: a lease runs out by itself.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.release(&key, token).await {
                    tracing::warn!(error = %e, "could not release a claim; it expires with its lease");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::memory::MemoryStore;
    use super::*;

    /// A memory store whose first `failures` commits fail, as a KV write
    /// during a NATS leader election does.
    struct FlakyCommits {
        inner: Arc<MemoryStore<u32>>,
        failures: AtomicU32,
    }

    impl ClaimStore<u32> for FlakyCommits {
        fn attempt<'a>(
            &'a self,
            key: &'a str,
            intent: Option<&'a u32>,
        ) -> BoxFuture<'a, Result<Attempt<u32>, StoreError>> {
            self.inner.attempt(key, intent)
        }
        fn commit<'a>(
            &'a self,
            key: &'a str,
            token: Token,
            value: u32,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Box::pin(async { Err(StoreError("no responders".into())) });
            }
            self.inner.commit(key, token, value)
        }
        fn release<'a>(
            &'a self,
            key: &'a str,
            token: Token,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.release(key, token)
        }
        fn changed<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
            self.inner.changed(key)
        }
    }

    #[tokio::test]
    async fn a_commit_that_fails_for_a_moment_is_retried_until_done() {
        let store = Arc::new(FlakyCommits {
            inner: MemoryStore::new(Duration::from_secs(60), 10),
            failures: AtomicU32::new(3),
        });
        let claims = Claims::new(store.clone() as Arc<dyn ClaimStore<u32>>);
        claims.claim("k").await.ok().unwrap().commit(7).await;
        assert_eq!(store.failures.load(Ordering::SeqCst), 0);
        let again = tokio::time::timeout(Duration::from_secs(2), claims.claim("k"))
            .await
            .expect("the key is done, not left pending");
        assert!(matches!(again.err(), Some(Refused::Taken(7))));
    }
}
