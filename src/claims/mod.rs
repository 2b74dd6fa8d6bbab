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

pub mod jetstream;
pub mod memory;

use std::sync::Arc;

use futures_util::future::BoxFuture;

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

    /// Marks the key done with `value`. A failure is logged: the claim then
    /// stays pending until its lease runs out, and a retry after that is
    /// caught by JetStream's `Nats-Msg-Id` de-duplication.
    pub async fn commit(mut self, value: V) {
        if let Some(token) = self.token.take() {
            if let Err(e) = self.store.commit(&self.key, token, value).await {
                tracing::warn!(error = %e, "could not mark a claim done");
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
