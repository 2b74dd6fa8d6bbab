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
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

use crate::auth::replay::ReplayStore;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::idempotency::IdempotencyStore;
use crate::ingress::reception::{Reception, Stages};
use crate::ingress::{self, WorkerState};
use crate::normalize::Normalizer;
use crate::publish::connection::{self, NatsHealth};
use crate::publish::{Buffer, Publisher};
use crate::ratelimit::{Buckets, RateLimiter};

/// State shared by every worker.
#[derive(Clone)]
struct Shared {
    settings: Arc<Settings>,
    replay: Arc<ReplayStore>,
    idempotency: Arc<IdempotencyStore>,
    buckets: Arc<Buckets>,
    buffer: Arc<Buffer>,
    health: Arc<NatsHealth>,
}

impl Shared {
    /// Starts one worker's stage actors, each under a supervisor that
    /// restarts it after a panic. Runs on the worker's own thread.
    fn start_stages(&self, worker: usize) -> WorkerState {
        let s = &self.settings;
        let replay = self.replay.clone();
        let window = s.replay_window;
        let buckets = self.buckets.clone();
        let nats = s.nats.clone();
        let name = format!("{}-worker-{worker}", s.service_name);
        let buffer = self.buffer.clone();
        let health = self.health.clone();
        let stages = Stages {
            authenticator: Supervisor::start(move |_| Authenticator::new(replay, window)),
            rate_limiter: Supervisor::start(move |_| RateLimiter::new(buckets)),
            normalizer: Supervisor::start(|_| Normalizer),
            publisher: Supervisor::start(move |_| Publisher::new(nats, name, buffer, health)),
        };
        let reception =
            Reception::new(stages, self.idempotency.clone(), Arc::new(s.nats.clone())).start();
        WorkerState {
            settings: self.settings.clone(),
            reception,
            health: self.health.clone(),
        }
    }
}

/// A built gateway, listening, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    health: Arc<NatsHealth>,
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
        let shared = Shared {
            replay: ReplayStore::new(settings.replay_window, settings.stores.replay_capacity),
            idempotency: IdempotencyStore::new(
                settings.idempotency_ttl,
                settings.stores.idempotency_capacity,
            ),
            buckets: Buckets::new(settings.sources.values()),
            buffer: Buffer::new(settings.nats.buffer_capacity),
            health: health.clone(),
            settings: settings.clone(),
        };

        // The control connection creates/checks the stream and probes JetStream.
        let control_name = format!("{}-control", settings.service_name);
        let control = connection::connect(&settings.nats, &control_name)
            .await
            .map_err(|e| anyhow::anyhow!("NATS connection: {e}"))?;
        health.register(control.clone());
        actix_rt::spawn(connection::monitor(
            health.clone(),
            control,
            settings.nats.clone(),
            settings.http.max_body_bytes,
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
            App::new()
                .app_data(web::Data::new(state))
                // Explicit, though webhooks read the body themselves with the
                // same limit: actix-web's default is 256 KiB.
                .app_data(web::PayloadConfig::new(max_body))
                .configure(ingress::routes)
        })
        .workers(workers)
        .client_request_timeout(Duration::from_millis(http.client_request_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(Duration::from_secs(http.keep_alive_sec))
        .shutdown_timeout(http.shutdown_timeout_sec)
        .max_connections(http.max_connections_per_worker)
        .listen(listener)?
        .run();
        tracing::info!(
            port,
            workers,
            env = %settings.env,
            sources = settings.sources.len(),
            nats = %redact_url(&settings.nats.url),
            "at-gateway listening"
        );
        Ok(Application {
            port,
            server,
            health,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (`graceful`: finish in-flight requests first).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn health(&self) -> Arc<NatsHealth> {
        self.health.clone()
    }

    /// Serves until SIGTERM/SIGINT (or a stop through [`Application::handle`]):
    /// then stops accepting, lets in-flight requests finish, and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
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
