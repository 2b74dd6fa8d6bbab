//! Watching the source registry (`sources/registry.rs`): every replica
//! follows the bucket and applies each change to the live table as it
//! arrives, so a source added, rotated or disabled with `at-gateway
//! sources` is in force everywhere within about a second, with no restart.
//!
//! A record is one key-value entry, so a change arrives whole; the changes
//! that arrive together are applied in one swap of the table. A record
//! that does not build (a bad setting, a secret the key does not open) is
//! not served and is logged; a disabled one is not served (403).
//!
//! While the bucket cannot be reached (NATS down, the bucket missing) the
//! last good table stays in force, and `/healthz` and
//! `gateway_registry_up` say so. On every (re)start of the watch the whole
//! bucket is read again and replaces the registry's part of the table, so a
//! source removed meanwhile does not linger.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation, Store};
use futures_util::{FutureExt, StreamExt};

use super::Tables;
use crate::claims::jetstream::{ensure_bucket, BucketSpec};
use crate::config::{NatsSettings, RegistrySettings};
use crate::ids::SourceId;
use crate::sources::registry::SourceRecord;
use crate::sources::{SourceConfig, SourceDefaults, SourceMap};
use crate::telemetry::metrics;

/// Changes applied in one swap at most; more wait for the next one.
const MAX_BATCH: usize = 4096;
/// Between two attempts to (re)start the watch.
const RETRY: Duration = Duration::from_secs(1);
/// How often the state gauges are refreshed while nothing changes.
const TICK: Duration = Duration::from_secs(1);

/// What `/healthz` and the metrics say of the registry.
#[derive(Default)]
pub struct RegistryStatus {
    /// The watch delivered everything the bucket held, and is running.
    synced: AtomicBool,
    /// The watcher's connection, to tell a stalled watch from a quiet one.
    client: OnceLock<async_nats::Client>,
    sources: AtomicUsize,
    invalid: AtomicUsize,
}

impl RegistryStatus {
    /// `ok` (watched, in sync), `stale` (the last good table is served), or
    /// `syncing` (the first read of the bucket has not finished).
    pub fn state(&self) -> &'static str {
        let connected = self
            .client
            .get()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected);
        match (self.synced.load(Ordering::Acquire), connected) {
            (true, true) => "ok",
            (true, false) => "stale",
            (false, _) if self.sources.load(Ordering::Acquire) > 0 => "stale",
            (false, _) => "syncing",
        }
    }

    /// Sources served from the registry.
    pub fn sources(&self) -> usize {
        self.sources.load(Ordering::Acquire)
    }

    /// Records that do not build.
    pub fn invalid(&self) -> usize {
        self.invalid.load(Ordering::Acquire)
    }

    /// Sets the registry gauges from the state now (also done at every
    /// scrape, so `/metrics` never lags behind `/healthz`).
    pub fn publish_gauges(&self) {
        let m = metrics();
        m.registry_up.set(i64::from(self.state() == "ok"));
        m.registry_sources.set(self.sources() as i64);
        m.registry_invalid.set(self.invalid() as i64);
    }
}

/// The records the watch refused (what it serves is the registry's part of
/// the live table itself).
struct Followed {
    invalid: HashSet<SourceId>,
}

/// A source the watch changed: what to serve under its name now (`None`:
/// nothing, it was removed, disabled or refused).
type Change = (SourceId, Option<Arc<SourceConfig>>);

/// Follows the registry for as long as the process runs.
pub async fn watch(
    tables: Arc<Tables>,
    status: Arc<RegistryStatus>,
    registry: RegistrySettings,
    nats: NatsSettings,
    defaults: Arc<SourceDefaults>,
    name: String,
) {
    let client = loop {
        match crate::publish::connection::connect(&nats, &name).await {
            Ok(client) => break client,
            Err(e) => {
                tracing::warn!(error = %e, "source registry: cannot connect to NATS yet");
                status.publish_gauges();
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let _ = status.client.set(client.clone());
    let js = crate::publish::connection::jetstream(client, &nats);
    let spec = BucketSpec {
        name: registry.bucket.clone(),
        max_age: Duration::ZERO,
        replicas: nats.stream_replicas,
    };
    loop {
        let follow = async {
            ensure_bucket(&js, &spec).await?;
            let store = js
                .get_key_value(&spec.name)
                .await
                .map_err(|e| format!("bucket {}: {e}", spec.name))?;
            follow(&store, &tables, &status, &registry, &defaults).await
        };
        if let Err(e) = follow.await {
            tracing::warn!(error = %e, bucket = %spec.name,
                "source registry unreachable; the last good table stays in force");
        }
        status.synced.store(false, Ordering::Release);
        status.publish_gauges();
        tokio::time::sleep(RETRY).await;
    }
}

/// Reads the whole bucket, swaps it in, then applies each change until the
/// watch fails.
async fn follow(
    store: &Store,
    tables: &Tables,
    status: &RegistryStatus,
    registry: &RegistrySettings,
    defaults: &SourceDefaults,
) -> Result<(), String> {
    let held = store
        .status()
        .await
        .map_err(|e| format!("bucket status: {e}"))?
        .values();
    let mut watch = store
        .watch_with_history(">")
        .await
        .map_err(|e| format!("watch: {e}"))?;
    let mut followed = Followed {
        invalid: HashSet::new(),
    };
    // The first read: every current record, swapped in whole.
    let mut fresh = SourceMap::new();
    let mut synced = held == 0;
    while !synced {
        let Some(entry) = watch.next().await else {
            return Err("the watch ended during the first read".into());
        };
        let entry = entry.map_err(|e| format!("watch: {e}"))?;
        synced = entry.seen_current;
        if let Some(change) = followed.apply(&entry, registry, defaults) {
            put(&mut fresh, change);
        }
    }
    let served = fresh.len();
    tables.change_registry(|r| *r = fresh);
    status.synced.store(true, Ordering::Release);
    followed.count(status, served);
    tracing::info!(
        sources = served,
        invalid = followed.invalid.len(),
        "source registry read"
    );
    let mut tick = tokio::time::interval(TICK);
    loop {
        let first = tokio::select! {
            next = watch.next() => next,
            _ = tick.tick() => {
                status.publish_gauges();
                continue;
            }
        };
        let Some(first) = first else {
            return Err("the watch ended".into());
        };
        let mut batch = vec![first.map_err(|e| format!("watch: {e}"))?];
        // Whatever else has arrived goes in the same swap.
        while batch.len() < MAX_BATCH {
            match watch.next().now_or_never() {
                Some(Some(Ok(entry))) => batch.push(entry),
                Some(Some(Err(e))) => return Err(format!("watch: {e}")),
                Some(None) | None => break,
            }
        }
        let changes: Vec<Change> = batch
            .iter()
            .filter_map(|entry| followed.apply(entry, registry, defaults))
            .collect();
        let mut served = 0;
        tables.change_registry(|r| {
            changes.into_iter().for_each(|change| put(r, change));
            served = r.len();
        });
        followed.count(status, served);
    }
}

impl Followed {
    /// What one entry changes.
    fn apply(
        &mut self,
        entry: &Entry,
        registry: &RegistrySettings,
        defaults: &SourceDefaults,
    ) -> Option<Change> {
        let Some(id) = SourceId::parse(&entry.key) else {
            tracing::error!(key = %entry.key, "source registry: a key that is not a source name");
            return None;
        };
        self.invalid.remove(&id);
        let built = match entry.operation {
            Operation::Delete | Operation::Purge => None,
            Operation::Put => match serde_json::from_slice::<SourceRecord>(&entry.value)
                .map_err(|e| format!("registry source {id}: {e}"))
                .and_then(|record| {
                    (!record.disabled)
                        .then(|| record.build(&id, Some(&registry.key), defaults))
                        .transpose()
                }) {
                Ok(source) => source,
                Err(e) => {
                    tracing::error!(source = %id, error = %e,
                        "source registry: record refused; the source is not served");
                    self.invalid.insert(id.clone());
                    None
                }
            },
        };
        Some((id, built.map(Arc::new)))
    }

    fn count(&self, status: &RegistryStatus, served: usize) {
        status.sources.store(served, Ordering::Release);
        status.invalid.store(self.invalid.len(), Ordering::Release);
        status.publish_gauges();
    }
}

/// Serves a change in `sources`.
fn put(sources: &mut SourceMap, (id, source): Change) {
    match source {
        Some(source) => sources.insert(id, source),
        None => sources.remove(&id),
    };
}
