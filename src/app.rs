//! Building and running the gateway: one `Application::build(settings)`
//! used by `main` and by every integration test.
//!
//! Shared, thread-safe state (replay and idempotency stores, rate buckets,
//! the publish buffer, NATS health) is made once. Each HTTP worker then
//! starts its own set of stage actors on its own thread, with its own NATS
//! connection, so one request never hops between threads (a cross-thread
//! actor message costs ~100 µs on these machines, a same-thread one < 1 µs).

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Supervisor};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::auth::failures::FailureLimiter;
use crate::auth::replay::ReplayStore;
use crate::auth::Authenticator;
use crate::claims::jetstream::{self as kv_claims, BucketSpec, KvStore};
use crate::claims::memory::MemoryStore;
use crate::claims::{ClaimStore, Claims};
use crate::config::{Settings, StoreBackend};
use crate::idempotency::{IdempotencyStore, Record};
use crate::ingress::drain::{self, Draining, Shutdown};
use crate::ingress::{self, WorkerState};
use crate::lanes::Lanes;
use crate::normalize::Normalizer;
use crate::pipeline::{Reception, Stages};
use crate::publish::connection::{self, NatsHealth};
use crate::publish::{Buffer, Publisher};
use crate::ratelimit::RateLimiter;
use crate::reload::registry::RegistryStatus;
use crate::reload::{self, LiveSources, Reloader, Tables};
use crate::tls;

/// Where claims are kept, as shared by every worker.
#[derive(Clone)]
enum SharedStores {
    /// One in-memory store of each kind for the whole process.
    Memory {
        replay: Arc<MemoryStore<()>>,
        idempotency: Arc<MemoryStore<Record>>,
    },
    /// Key-value buckets, reached through each worker's own connection;
    /// only the local caches of done keys are shared.
    Jetstream {
        replay_done: Arc<moka::sync::Cache<String, ()>>,
        idempotency_done: Arc<moka::sync::Cache<String, Record>>,
    },
    /// Claims written in each signal's atomic batch: nothing to share.
    Stream,
}

/// A claim on a bucket is held at most for the message window; the margin
/// covers the time between claiming and publishing.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// State shared by every worker.
#[derive(Clone)]
struct Shared {
    settings: Arc<Settings>,
    stores: SharedStores,
    sources: LiveSources,
    auth_failures: Arc<FailureLimiter>,
    buffer: Arc<Buffer>,
    lanes: Arc<Lanes>,
    health: Arc<NatsHealth>,
    registry: Option<Arc<RegistryStatus>>,
    draining: Arc<Draining>,
}

impl Shared {
    /// Starts one worker's stage actors, each under a supervisor that
    /// restarts it after a panic. Runs on the worker's own thread, and so
    /// does the worker's NATS connection made here.
    fn start_stages(&self, worker: usize) -> WorkerState {
        let s = &self.settings;
        let name = format!("{}-worker-{worker}", s.service_name);
        let client = connection::connect_now(&s.nats, &name)
            .unwrap_or_else(|e| panic!("cannot set up the NATS client for worker {worker}: {e}"));
        self.health.register(client.clone());
        let js = connection::jetstream(client, &s.nats);
        let (replay, idempotency) = self.claims_for(&js);
        let replay = Arc::new(replay);
        let auth_failures = self.auth_failures.clone();
        let window = s.replay_window;
        let nats = s.nats.clone();
        let buffer = self.buffer.clone();
        let health = self.health.clone();
        let stages = Stages {
            authenticator: Supervisor::start(move |_| {
                Authenticator::new(replay, auth_failures, window)
            }),
            rate_limiter: Supervisor::start(|_| RateLimiter),
            normalizer: Supervisor::start(|_| Normalizer),
            publisher: Supervisor::start(move |_| Publisher::new(nats, js, buffer, health)),
        };
        let reception =
            Reception::new(stages, Arc::new(idempotency), Arc::new(s.nats.clone())).start();
        WorkerState {
            settings: self.settings.clone(),
            sources: self.sources.clone(),
            reception,
            health: self.health.clone(),
            lanes: self.lanes.clone(),
            registry: self.registry.clone(),
            draining: self.draining.clone(),
        }
    }

    /// This worker's view of the claim stores.
    fn claims_for(&self, js: &async_nats::jetstream::Context) -> (ReplayStore, IdempotencyStore) {
        let s = &self.settings;
        let (replay, idempotency) = match &self.stores {
            SharedStores::Stream => {
                return (
                    ReplayStore::InBatch(nonce_ttl(s)),
                    IdempotencyStore::InBatch(s.idempotency_ttl),
                )
            }
            SharedStores::Memory {
                replay,
                idempotency,
            } => (
                Claims::new(replay.clone() as Arc<dyn ClaimStore<()>>),
                Claims::new(idempotency.clone() as Arc<dyn ClaimStore<Record>>),
            ),
            SharedStores::Jetstream {
                replay_done,
                idempotency_done,
            } => {
                let lease = Duration::from_secs(s.nats.message_window_sec) + LEASE_MARGIN;
                let replay: Arc<dyn ClaimStore<()>> = KvStore::new(
                    js.clone(),
                    s.stores.replay_bucket.clone(),
                    lease,
                    replay_done.clone(),
                );
                let idempotency: Arc<dyn ClaimStore<Record>> = KvStore::new(
                    js.clone(),
                    s.stores.idempotency_bucket.clone(),
                    lease,
                    idempotency_done.clone(),
                );
                (Claims::new(replay), Claims::new(idempotency))
            }
        };
        (ReplayStore::new(replay), IdempotencyStore::new(idempotency))
    }
}

/// The JetStream backend's local caches of done keys only save a bucket
/// read for a repeat that comes soon (a caller's retry); the buckets are the
/// authority and keep every key for its full TTL. Cached for the full TTL
/// (24 h for idempotency keys, up to 2 000 000 entries) they held ~0.8 KiB
/// per accepted signal: ~1 GiB a day at 20 signals/s (soak, campaign 8).
const DONE_CACHE_TTL: Duration = Duration::from_secs(600);
const DONE_CACHE_CAPACITY: u64 = 100_000;

/// Nonces are remembered for twice the replay window (see `auth/replay.rs`).
fn nonce_ttl(settings: &Settings) -> Duration {
    settings.replay_window * 2
}

fn shared_stores(settings: &Settings) -> SharedStores {
    let st = &settings.stores;
    match st.backend {
        StoreBackend::Memory => SharedStores::Memory {
            replay: MemoryStore::new(nonce_ttl(settings), st.replay_capacity),
            idempotency: MemoryStore::new(settings.idempotency_ttl, st.idempotency_capacity),
        },
        StoreBackend::Jetstream => SharedStores::Jetstream {
            replay_done: kv_claims::done_cache(
                nonce_ttl(settings).min(DONE_CACHE_TTL),
                st.replay_capacity.min(DONE_CACHE_CAPACITY),
            ),
            idempotency_done: kv_claims::done_cache(
                settings.idempotency_ttl.min(DONE_CACHE_TTL),
                st.idempotency_capacity.min(DONE_CACHE_CAPACITY),
            ),
        },
        StoreBackend::Stream => SharedStores::Stream,
    }
}

/// What the monitor creates and checks besides the stream: the buckets of
/// the jetstream backend, or the stream backend's claims in the stream.
fn needs(settings: &Settings) -> connection::Needs {
    let claims_ttl = (settings.stores.backend == StoreBackend::Stream)
        .then(|| settings.idempotency_ttl.max(nonce_ttl(settings)));
    connection::Needs {
        buckets: bucket_specs(settings),
        claims_ttl,
    }
}

/// The buckets the monitor creates and checks (none for the memory backend).
fn bucket_specs(settings: &Settings) -> Vec<BucketSpec> {
    match settings.stores.backend {
        StoreBackend::Memory | StoreBackend::Stream => Vec::new(),
        StoreBackend::Jetstream => vec![
            BucketSpec {
                name: settings.stores.replay_bucket.clone(),
                max_age: nonce_ttl(settings),
                replicas: settings.nats.stream_replicas,
            },
            BucketSpec {
                name: settings.stores.idempotency_bucket.clone(),
                max_age: settings.idempotency_ttl,
                replicas: settings.nats.stream_replicas,
            },
        ],
    }
}

/// A built gateway, listening, not yet serving.
pub struct Application {
    port: u16,
    /// The HTTPS listener's port, when `tls.addr` is set.
    tls_port: Option<u16>,
    server: Server,
    shutdown: Shutdown,
    health: Arc<NatsHealth>,
    reloader: Reloader,
    /// Why the NATS server or stream cannot give the configured guarantees,
    /// when the monitor finds that (see [`connection::Probe::Unsuitable`]).
    unsuitable: tokio::sync::oneshot::Receiver<String>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), connects to NATS in the
    /// background, and prepares the HTTP workers. Must run inside an actix
    /// system. Fails only on a setting that cannot work (address in use, bad
    /// NATS URL); NATS being down is not a failure.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        connection::validate_url(&settings.nats.url).map_err(anyhow::Error::msg)?;
        let settings = Arc::new(settings);
        let health = NatsHealth::new();
        let tables = Tables::new(settings.sources.clone());
        let sources = tables.live();
        let tls = match &settings.tls {
            Some(t) => Some(tls::server_config(t).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let reloader = Reloader::new(
            settings.config_file.clone(),
            tables.clone(),
            tls.as_ref().map(|(_, certs)| certs.clone()),
        );
        actix_rt::spawn(reloader.clone().on_sighup());
        let registry = settings.registry.clone().map(|registry| {
            let status = Arc::new(RegistryStatus::default());
            actix_rt::spawn(reload::registry::watch(
                tables.clone(),
                status.clone(),
                registry,
                settings.nats.clone(),
                settings.source_defaults.clone(),
                format!("{}-registry", settings.service_name),
            ));
            status
        });
        let shared = Shared {
            stores: shared_stores(&settings),
            sources,
            auth_failures: FailureLimiter::new(
                settings.auth_failures.per_minute,
                settings.auth_failures.burst,
                settings.auth_failures.tracked_addresses,
            ),
            buffer: Buffer::new(
                settings.nats.buffer_capacity,
                settings.nats.max_in_flight_messages,
                settings.lanes,
            ),
            lanes: Lanes::new(settings.lanes),
            health: health.clone(),
            registry,
            draining: Arc::new(Draining::default()),
            settings: settings.clone(),
        };
        let draining = shared.draining.clone();

        // The control connection creates/checks the stream and probes JetStream.
        let control_name = format!("{}-control", settings.service_name);
        let control = connection::connect(&settings.nats, &control_name)
            .await
            .map_err(|e| anyhow::anyhow!("NATS connection: {e}"))?;
        health.register(control.clone());
        let (unsuitable_tx, unsuitable) = tokio::sync::oneshot::channel();
        actix_rt::spawn(connection::monitor(
            health.clone(),
            control,
            settings.nats.clone(),
            settings.http.max_body_bytes,
            needs(&settings),
            unsuitable_tx,
        ));

        let listener = TcpListener::bind(settings.http_addr)
            .map_err(|e| anyhow::anyhow!("http_addr (HTTP_ADDR) {}: {e}", settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let next_worker = Arc::new(AtomicUsize::new(0));
        let max_body = settings.http.max_body_bytes;
        let http = settings.http.clone();
        let server = HttpServer::new(move || {
            let worker = next_worker.fetch_add(1, Ordering::Relaxed);
            let state = shared.start_stages(worker);
            let draining = shared.draining.clone();
            App::new()
                .app_data(web::Data::new(state))
                // Explicit, though webhooks read the body themselves with the
                // same limit: actix-web's default is 256 KiB.
                .app_data(web::PayloadConfig::new(max_body))
                .wrap_fn(ingress::arrival::mark_first)
                .wrap_fn(move |req, srv| drain::close_while_draining(&draining, req, srv))
                .configure(ingress::routes)
        })
        .workers(workers)
        .client_request_timeout(Duration::from_millis(http.client_request_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(http.keep_alive_sec))
        .shutdown_timeout(http.shutdown_timeout_sec)
        // SIGTERM/SIGINT drain first (`main` runs `ingress::drain::on_signals`).
        .disable_signals()
        .max_connections(http.max_connections_per_worker)
        .on_connect(ingress::arrival::on_connect)
        .listen(listener)?;
        let (server, tls_port) = match (tls, &settings.tls) {
            (Some((config, _)), Some(t)) => {
                let listener = TcpListener::bind(t.addr)
                    .map_err(|e| anyhow::anyhow!("tls.addr (TLS_ADDR) {}: {e}", t.addr))?;
                let port = listener.local_addr()?.port();
                (server.listen_rustls_0_23(listener, config)?, Some(port))
            }
            _ => (server, None),
        };
        let server = server.run();
        let shutdown = Shutdown {
            draining,
            server: server.handle(),
            drain: Duration::from_millis(settings.http.drain_ms),
        };
        tracing::info!(
            port,
            tls_port,
            workers,
            env = %settings.env,
            sources = settings.sources.len(),
            nats = %redact_url(&settings.nats.url),
            "at-gateway listening"
        );
        if settings.stores.backend == StoreBackend::Stream && settings.nats.stream_replicas == 1 {
            // nats-server stages each atomic batch of a single-replica file
            // stream in a temporary file store (BENCHMARKS.md, "Claims in the batch").
            tracing::warn!(
                "stores.backend = \"stream\" on a single-replica stream: each signal's batch is \
                 staged on disk by nats-server, slower than the key-value claims \
                 (stores.backend = \"jetstream\") on one node; the batch is for R3 clusters"
            );
        }
        Ok(Application {
            port,
            tls_port,
            server,
            shutdown,
            health,
            reloader,
            unsuitable,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Stops the server the way SIGTERM does: drain, then stop gracefully.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn health(&self) -> Arc<NatsHealth> {
        self.health.clone()
    }

    /// What SIGHUP does: reload sources from the configuration.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until stopped through [`Application::shutdown`] (which `main`
    /// calls on SIGTERM/SIGINT, [`drain::on_signals`]), and returns once
    /// in-flight requests finished.
    /// Returns an error naming what to fix when the NATS server or the
    /// stream cannot give the guarantees the gateway is configured for (an
    /// old server, a stream whose settings contradict the configuration):
    /// the gateway refuses to run on it rather than serve 503s forever.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        let result = tokio::select! {
            result = &mut server => result,
            Ok(problem) = self.unsuitable => {
                // The server handles the stop command only while it is
                // polled: await both.
                let _ = futures_util::join!(handle.stop(false), server);
                Err(std::io::Error::other(problem))
            }
        };
        tracing::info!("at-gateway stopped");
        result
    }
}

/// `nats://user:pass@host` → `nats://***@host`, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jetstream_done_caches_stay_small_whatever_the_ttl_and_capacity() {
        let mut settings = Settings::load_with_env(None, |k| {
            (k == "TRADINGVIEW_TOKEN").then(|| "tv-token-0123456789".to_string())
        })
        .unwrap();
        settings.stores.backend = StoreBackend::Jetstream;
        settings.idempotency_ttl = Duration::from_secs(86_400);
        settings.stores.idempotency_capacity = 2_000_000;
        settings.stores.replay_capacity = 2_000_000;
        let SharedStores::Jetstream {
            replay_done,
            idempotency_done,
        } = shared_stores(&settings)
        else {
            panic!("jetstream backend");
        };
        for policy in [replay_done.policy(), idempotency_done.policy()] {
            assert_eq!(policy.max_capacity(), Some(DONE_CACHE_CAPACITY));
            assert!(policy.time_to_live().unwrap() <= DONE_CACHE_TTL);
        }
    }
}
