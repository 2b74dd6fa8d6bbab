//! Claims in JetStream key-value buckets: shared by every gateway replica on
//! the same NATS and surviving restarts. The default backend.
//!
//! - Claiming is `create` (a publish that expects no previous revision):
//!   atomic, so of two replicas exactly one wins. Never get-then-put: the
//!   key-value store does not promise read-your-writes.
//! - A claim is written as *pending* with a lease (the message window plus a
//!   margin). A holder that crashed leaves a pending entry behind; once its
//!   lease has run out the next request takes it over with a revision-checked
//!   `update` and continues the holder's signal. What the holder stored is
//!   read back from the stream first (`publish/resume.rs`), so a takeover
//!   after JetStream's duplicate window does not store it twice either. A
//!   body-hash key's intent is not continued once its horizon has passed:
//!   the same body is then a new signal.
//! - Commit and release are revision-checked too, so they never touch a
//!   claim that was taken over.
//! - Entries expire with the bucket's `max_age` (one per bucket: twice the
//!   replay window for nonces, the idempotency TTL for keys; per-message
//!   TTLs, nats-server 2.11+, are not used yet); a done entry may count for
//!   less (a body-hash key's re-send horizon, [`Expires`]), after which it
//!   is claimed again. `history = 1`: only the latest state is kept.
//! - A moka cache of *done* keys read from the bucket sits in front, so
//!   further repeats of a key are answered without a round trip; it never
//!   replaces the bucket.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use moka::sync::Cache;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{now_ms, Attempt, ClaimStore, Expires, StoreError, Token};

/// How often a request waiting on another's pending claim looks again.
const POLL: Duration = Duration::from_millis(25);

/// What a bucket entry holds.
#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Entry<V> {
    /// `owner` tells this attempt's entry from a later one, so an attempt
    /// whose outcome was uncertain (timed out) can remove its own entry.
    /// `intent`: what the holder means to commit, so that a request taking
    /// the claim over after the holder crashed continues with it (the same
    /// event id for a signal that may already be in the stream).
    Pending {
        lease_until_ms: u64,
        owner: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        intent: Option<V>,
    },
    Done {
        value: V,
    },
}

/// How long the clean-up of an uncertain claim keeps looking for it.
const CLEANUP_FOR: Duration = Duration::from_secs(10);

/// A bucket to create at start-up.
#[derive(Clone, Debug)]
pub struct BucketSpec {
    pub name: String,
    pub max_age: Duration,
    pub replicas: usize,
}

/// Creates `spec`'s bucket, or brings an existing one's `max_age` in line.
///
/// The bucket's stream is made directly, with the configuration async-nats'
/// `create_key_value` would use (written when that call could not read
/// nats-server 2.9's account info; it works on the pinned 2.15.1, so this
/// could become `create_key_value` again).
pub async fn ensure_bucket(js: &jetstream::Context, spec: &BucketSpec) -> Result<(), String> {
    let config = stream::Config {
        name: format!("KV_{}", spec.name),
        subjects: vec![format!("$KV.{}.>", spec.name)],
        max_messages_per_subject: 1,
        max_age: spec.max_age,
        storage: stream::StorageType::File,
        num_replicas: spec.replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| format!("bucket {}: {e}", spec.name))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("bucket {}: {e}", spec.name))?;
    if info.config.max_age != spec.max_age {
        let mut config = info.config.clone();
        config.max_age = spec.max_age;
        js.update_stream(config)
            .await
            .map_err(|e| format!("bucket {}: cannot update max_age: {e}", spec.name))?;
        tracing::info!(bucket = %spec.name, max_age = ?spec.max_age, "bucket max_age updated");
    }
    Ok(())
}

/// Claims kept in one JetStream key-value bucket, through one worker's
/// connection.
pub struct KvStore<V> {
    js: jetstream::Context,
    /// `js`'s client, kept: `Context::client()` clones it on every call.
    client: async_nats::Client,
    bucket: String,
    handle: OnceCell<kv::Store>,
    lease: Duration,
    done: Arc<Cache<String, V>>,
    _values: PhantomData<fn() -> V>,
}

/// The front cache of done keys, shared by every worker's [`KvStore`] of
/// one bucket.
pub fn done_cache<V: Clone + Send + Sync + 'static>(
    ttl: Duration,
    capacity: u64,
) -> Arc<Cache<String, V>> {
    Arc::new(
        Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .build(),
    )
}

/// Bucket keys allow only `[-/_=.a-zA-Z0-9]`; ours hold anything a sender
/// chose, so the bucket key is a digest of it.
fn bucket_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("key-value store: {what}: {e}"))
}

impl<V> KvStore<V>
where
    V: Clone + Expires + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub fn new(
        js: jetstream::Context,
        bucket: String,
        lease: Duration,
        done: Arc<Cache<String, V>>,
    ) -> Arc<Self> {
        Arc::new(KvStore {
            client: js.client(),
            js,
            bucket,
            handle: OnceCell::new(),
            lease,
            done,
            _values: PhantomData,
        })
    }

    /// The bucket handle, looked up once (it may not exist yet at start-up).
    async fn kv(&self) -> Result<&kv::Store, StoreError> {
        self.handle
            .get_or_try_init(|| async {
                self.js
                    .get_key_value(&self.bucket)
                    .await
                    .map_err(|e| unavailable(&self.bucket, e))
            })
            .await
    }

    fn pending(&self, owner: u64, intent: Option<&V>) -> Bytes {
        let entry: Entry<V> = Entry::Pending {
            lease_until_ms: now_ms() + self.lease.as_millis() as u64,
            owner,
            intent: intent.cloned(),
        };
        Bytes::from(serde_json::to_vec(&entry).unwrap_or_default())
    }

    /// Fails fast while this worker's connection is down: a write queued in
    /// a disconnected client would land later, after its request failed.
    fn check_connected(&self) -> Result<(), StoreError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(StoreError("key-value store: NATS disconnected".into())),
        }
    }

    async fn attempt_inner(&self, key: &str, intent: Option<&V>) -> Result<Attempt<V>, StoreError> {
        if let Some(v) = self.done.get(key) {
            if !v.expired(now_ms()) {
                return Ok(Attempt::Taken(v));
            }
            self.done.invalidate(key);
        }
        self.check_connected()?;
        let kv = self.kv().await?;
        let k = bucket_key(key);
        let owner = rand_owner();
        let err = match kv.create(&k, self.pending(owner, intent)).await {
            Ok(revision) => return Ok(Attempt::Won(Token(revision))),
            Err(e) => e,
        };
        if err.kind() != CreateErrorKind::AlreadyExists {
            // The create may still land (a paused server answers late):
            // remove it if it does, so it cannot block this request's retry.
            let (kv, bucket) = (kv.clone(), self.bucket.clone());
            tokio::spawn(remove_if_owned(kv, bucket, k, owner));
            return Err(unavailable("claim", err));
        }
        let Some(entry) = kv.entry(&k).await.map_err(|e| unavailable("read", e))? else {
            return Ok(Attempt::Pending); // vanished in between: look again
        };
        if entry.operation != Operation::Put {
            return Ok(Attempt::Pending); // deleted in between: look again
        }
        let state: Entry<V> = serde_json::from_slice(&entry.value)
            .map_err(|e| unavailable("entry is not ours", e))?;
        match state {
            // Done, but only for a horizon that has passed: free again, and
            // taken like an abandoned claim (revision-checked).
            Entry::Done { value } if value.expired(now_ms()) => {
                match kv
                    .update(&k, self.pending(owner, intent), entry.revision)
                    .await
                {
                    Ok(revision) => Ok(Attempt::Won(Token(revision))),
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                        Ok(Attempt::Pending)
                    }
                    Err(e) => Err(unavailable("claim an expired key", e)),
                }
            }
            Entry::Done { value } => {
                self.done.insert(key.to_owned(), value.clone());
                Ok(Attempt::Taken(value))
            }
            Entry::Pending { lease_until_ms, .. } if lease_until_ms > now_ms() => {
                Ok(Attempt::Pending)
            }
            // The holder's lease ran out (it crashed): take the claim over,
            // and continue with what it meant to commit: its messages may
            // already be in the stream under that value's event id.
            Entry::Pending {
                intent: previous, ..
            } => {
                // A body-hash key's intent counts only for its horizon: past
                // it the same body is a new signal, not the crashed one.
                let previous = previous.filter(|v| !v.expired(now_ms()));
                let carried = previous.as_ref().or(intent);
                match kv
                    .update(&k, self.pending(owner, carried), entry.revision)
                    .await
                {
                    Ok(revision) => {
                        tracing::warn!(bucket = %self.bucket, "took over an abandoned claim");
                        Ok(match previous {
                            Some(v) => Attempt::Resumed(Token(revision), v),
                            None => Attempt::Won(Token(revision)),
                        })
                    }
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                        Ok(Attempt::Pending)
                    }
                    Err(e) => Err(unavailable("take over", e)),
                }
            }
        }
    }
}

fn rand_owner() -> u64 {
    // Unique enough to tell two attempts apart: v4-random bits.
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Looks for an uncertain pending entry of `owner` and deletes it.
async fn remove_if_owned(kv: kv::Store, bucket: String, k: String, owner: u64) {
    let deadline = tokio::time::Instant::now() + CLEANUP_FOR;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(found) = kv.entry(&k).await else {
            continue; // still unreachable: look again
        };
        if let Some(entry) = found.filter(|e| e.operation == Operation::Put) {
            let ours = matches!(
                serde_json::from_slice::<Entry<serde_json::Value>>(&entry.value),
                Ok(Entry::Pending { owner: o, .. }) if o == owner
            );
            if ours
                && kv
                    .delete_expect_revision(&k, Some(entry.revision))
                    .await
                    .is_ok()
            {
                tracing::info!(%bucket, "removed a claim whose request had already failed");
            }
        }
        return;
    }
}

impl<V> ClaimStore<V> for KvStore<V>
where
    V: Clone + Expires + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn attempt<'a>(
        &'a self,
        key: &'a str,
        intent: Option<&'a V>,
    ) -> BoxFuture<'a, Result<Attempt<V>, StoreError>> {
        self.attempt_inner(key, intent).boxed()
    }

    fn commit<'a>(
        &'a self,
        key: &'a str,
        token: Token,
        value: V,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            self.check_connected()?;
            let kv = self.kv().await?;
            let entry = Entry::Done {
                value: value.clone(),
            };
            let bytes = serde_json::to_vec(&entry).map_err(|e| unavailable("encode", e))?;
            let k = bucket_key(key);
            match kv.update(&k, Bytes::from(bytes), token.0).await {
                Ok(_) => {}
                // A retried commit whose first write landed but whose answer
                // was lost: done already is success.
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    let stored = kv.entry(&k).await.map_err(|e| unavailable("commit", e))?;
                    let ours = serde_json::to_value(&value).ok();
                    let done = stored.is_some_and(|entry| {
                        matches!(
                            serde_json::from_slice::<Entry<serde_json::Value>>(&entry.value),
                            Ok(Entry::Done { value }) if Some(&value) == ours.as_ref()
                        )
                    });
                    if !done {
                        return Err(unavailable("commit", e));
                    }
                }
                Err(e) => return Err(unavailable("commit", e)),
            }
            // Not put in the cache of done keys here: repeats are rare, and
            // an insert on every request costs more than the bucket read a
            // repeat pays once (the read fills the cache).
            Ok(())
        }
        .boxed()
    }

    fn release<'a>(&'a self, key: &'a str, token: Token) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            self.check_connected()?;
            let kv = self.kv().await?;
            kv.delete_expect_revision(bucket_key(key), Some(token.0))
                .await
                .map_err(|e| unavailable("release", e))
        }
        .boxed()
    }

    fn changed<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, ()> {
        tokio::time::sleep(POLL).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_are_valid_whatever_the_claim_key() {
        let k = bucket_key("alpha\n{weird nonce: ü}");
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn pending_entries_keep_the_intent_and_read_older_ones_without_it() {
        let pending: Entry<u32> = Entry::Pending {
            lease_until_ms: 1,
            owner: 2,
            intent: Some(3),
        };
        let text = serde_json::to_string(&pending).unwrap();
        let back: Entry<u32> = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back,
            Entry::Pending {
                intent: Some(3),
                ..
            }
        ));
        // Written by a gateway from before the intent was kept.
        let old = r#"{"state":"pending","lease_until_ms":1,"owner":2}"#;
        let back: Entry<u32> = serde_json::from_str(old).unwrap();
        assert!(matches!(back, Entry::Pending { intent: None, .. }));
    }

    #[test]
    fn entries_round_trip() {
        let done: Entry<u32> = Entry::Done { value: 3 };
        let text = serde_json::to_string(&done).unwrap();
        assert_eq!(text, r#"{"state":"done","value":3}"#);
        let back: Entry<u32> = serde_json::from_str(&text).unwrap();
        assert!(matches!(back, Entry::Done { value: 3 }));
    }
}
