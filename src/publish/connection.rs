//! NATS connections, the stream, and the gateway's view of NATS health.
//!
//! Every HTTP worker has its own connection (made on its own thread, so a
//! publish never hops threads); one more connection, the control
//! connection, creates and checks the stream and probes JetStream every
//! `probe_interval_ms`. `/readyz` is ready only while every connection is
//! up, the stream is there, and JetStream answers.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, ServerAddr};
use serde::Serialize;

use crate::claims::jetstream::{ensure_bucket, BucketSpec};
use crate::config::NatsSettings;
use crate::telemetry::metrics;

/// Reconnect quickly: NATS is normally local or in the same network, and
/// every second without a connection is a second of 503s.
fn reconnect_delay(attempts: usize) -> Duration {
    Duration::from_millis((attempts as u64 * 100).min(1000))
}

/// Checks that `url` is a NATS address list before anything connects.
pub fn validate_url(url: &str) -> Result<(), String> {
    url.split(',')
        .try_for_each(|u| ServerAddr::from_str(u.trim()).map(|_| ()))
        .map_err(|e| format!("nats.url (NATS_URL): '{url}' is not a NATS URL: {e}"))
}

/// Opens a connection that keeps retrying in the background; it returns
/// at once, even while NATS is down.
pub async fn connect(settings: &NatsSettings, name: &str) -> Result<Client, String> {
    let addrs: Vec<ServerAddr> = settings
        .url
        .split(',')
        .map(|u| ServerAddr::from_str(u.trim()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let conn_name = name.to_owned();
    ConnectOptions::new()
        .name(name)
        .ping_interval(Duration::from_secs(settings.ping_interval_sec))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .reconnect_delay_callback(reconnect_delay)
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let conn = conn_name.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(conn, "NATS connected"),
                    async_nats::Event::Disconnected => tracing::warn!(conn, "NATS disconnected"),
                    other => tracing::info!(conn, event = %other, "NATS event"),
                }
            }
        })
        .connect(addrs)
        .await
        .map_err(|e| e.to_string())
}

/// [`connect`] for a synchronous caller (an HTTP worker's factory). With
/// `retry_on_initial_connect` the connect future only sets up the client
/// and spawns its I/O task on the current runtime; it never waits on the
/// network, so one poll completes it.
pub fn connect_now(settings: &NatsSettings, name: &str) -> Result<Client, String> {
    use futures_util::FutureExt;
    connect(settings, name)
        .now_or_never()
        .unwrap_or_else(|| Err("NATS client setup did not complete at once".into()))
}

/// A JetStream context whose publishes and API calls time out after `timeout`.
pub fn jetstream(client: Client, settings: &NatsSettings) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(settings.ack_timeout_ms))
        .max_ack_inflight(settings.buffer_capacity * 2)
        .build(client)
}

/// The stream the gateway creates when it is missing.
fn stream_config(settings: &NatsSettings) -> stream::Config {
    stream::Config {
        name: settings.stream.clone(),
        subjects: vec!["signals.>".into()],
        storage: stream::StorageType::File,
        num_replicas: settings.stream_replicas,
        duplicate_window: Duration::from_secs(settings.duplicate_window_sec),
        ..Default::default()
    }
}

/// Shared state of NATS as the gateway sees it.
pub struct NatsHealth {
    clients: Mutex<Vec<Client>>,
    stream_ready: AtomicBool,
    /// The key-value buckets exist (or the memory backend needs none).
    buckets_ready: AtomicBool,
    probe_ok: AtomicBool,
    /// Set when a publish ack times out: a paused or partitioned server
    /// is otherwise only noticed after missed pings.
    ack_stalled: AtomicBool,
    last_problem: Mutex<Option<String>>,
}

/// What `/healthz` and `/readyz` report.
#[derive(Serialize)]
pub struct HealthReport {
    pub nats: &'static str,
    pub stream: &'static str,
    pub ready: bool,
    pub problem: Option<String>,
}

impl NatsHealth {
    pub fn new() -> Arc<Self> {
        Arc::new(NatsHealth {
            clients: Mutex::new(Vec::new()),
            stream_ready: AtomicBool::new(false),
            buckets_ready: AtomicBool::new(false),
            probe_ok: AtomicBool::new(false),
            ack_stalled: AtomicBool::new(false),
            last_problem: Mutex::new(None),
        })
    }

    /// Registers a connection whose state counts toward `connected`.
    pub fn register(&self, client: Client) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.push(client);
        }
    }

    pub fn clients(&self) -> Vec<Client> {
        self.clients.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every registered connection is up.
    pub fn connected(&self) -> bool {
        let clients = self.clients();
        !clients.is_empty()
            && clients
                .iter()
                .all(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Signals can be stored right now.
    pub fn ready(&self) -> bool {
        self.connected()
            && self.stream_ready.load(Ordering::Acquire)
            && self.buckets_ready.load(Ordering::Acquire)
            && self.probe_ok.load(Ordering::Acquire)
            && !self.ack_stalled.load(Ordering::Acquire)
    }

    pub fn ack_ok(&self) {
        self.ack_stalled.store(false, Ordering::Release);
    }

    pub fn ack_timed_out(&self) {
        if !self.ack_stalled.swap(true, Ordering::AcqRel) {
            tracing::warn!("JetStream acknowledgement timed out; marking NATS unavailable");
            self.refresh_gauges();
        }
    }

    /// A publish found no stream: the probe re-creates it.
    pub fn stream_missing(&self) {
        self.stream_ready.store(false, Ordering::Release);
    }

    fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.last_problem.lock() {
            *p = problem;
        }
    }

    pub fn report(&self) -> HealthReport {
        let connected = self.connected();
        HealthReport {
            nats: if connected {
                "connected"
            } else {
                "disconnected"
            },
            stream: if self.stream_ready.load(Ordering::Acquire) {
                "ready"
            } else {
                "unavailable"
            },
            ready: self.ready(),
            problem: self.last_problem.lock().ok().and_then(|p| p.clone()),
        }
    }

    /// Brings the NATS gauges up to date (also called at every scrape, so
    /// `/metrics` never lags the probe).
    pub fn refresh_gauges(&self) {
        metrics().nats_connected.set(i64::from(self.connected()));
        metrics().nats_ready.set(i64::from(self.ready()));
    }
}

/// Runs forever: ensures the stream exists and probes JetStream, keeping
/// `health` current. Recovery after a NATS restart needs nothing else.
pub async fn monitor(
    health: Arc<NatsHealth>,
    client: Client,
    settings: NatsSettings,
    max_body_bytes: usize,
    buckets: Vec<BucketSpec>,
) {
    let js = jetstream(client.clone(), &settings);
    let period = Duration::from_millis(settings.probe_interval_ms.max(50));
    loop {
        let probe = async {
            ensure_stream(&js, &settings).await?;
            for bucket in &buckets {
                ensure_bucket(&js, bucket).await?;
            }
            health.buckets_ready.store(true, Ordering::Release);
            Ok::<(), String>(())
        };
        let outcome = tokio::time::timeout(period.max(Duration::from_secs(1)), probe)
            .await
            .unwrap_or_else(|_| Err("JetStream did not answer the probe in time".into()));
        match outcome {
            Ok(()) => {
                if !health.probe_ok.swap(true, Ordering::AcqRel) {
                    tracing::info!(stream = %settings.stream, "JetStream stream ready");
                    warn_on_small_max_payload(&client, max_body_bytes);
                }
                health.stream_ready.store(true, Ordering::Release);
                health.ack_stalled.store(false, Ordering::Release);
                health.set_problem(None);
            }
            Err(problem) => {
                if health.probe_ok.swap(false, Ordering::AcqRel) {
                    tracing::warn!(%problem, "JetStream unavailable");
                }
                health.set_problem(Some(problem));
            }
        }
        health.refresh_gauges();
        tokio::time::sleep(period).await;
    }
}

/// A body at the HTTP limit, inside its JSON envelope (escaping can double
/// it), must fit in one NATS message; otherwise such requests get 413
/// `too_large_for_stream`. Say so once, when NATS is reached.
fn warn_on_small_max_payload(client: &Client, max_body_bytes: usize) {
    let max_payload = client.server_info().max_payload;
    let needed = max_body_bytes * 2 + 64 * 1024;
    if max_payload > 0 && max_payload < needed {
        tracing::warn!(
            max_payload,
            needed,
            "NATS max_payload is smaller than the largest accepted signal needs; \
             set max_payload: 8MB in nats-server.conf"
        );
    }
}

/// Creates the stream if it is missing and checks it if it is there: it
/// must cover our subjects and de-duplicate over at least the message window.
pub async fn ensure_stream(js: &jetstream::Context, settings: &NatsSettings) -> Result<(), String> {
    let mut stream = js
        .get_or_create_stream(stream_config(settings))
        .await
        .map_err(|e| format!("stream {}: {e}", settings.stream))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("stream {}: {e}", settings.stream))?;
    let config = &info.config;
    for subject in [
        &settings.subject_raw,
        &settings.subject_normalized,
        &settings.subject_dlq,
    ] {
        if !config.subjects.iter().any(|p| subject_matches(p, subject)) {
            return Err(format!(
                "stream {} exists but does not cover subject {subject} (its subjects: {:?})",
                settings.stream, config.subjects
            ));
        }
    }
    if config.duplicate_window < Duration::from_secs(settings.message_window_sec) {
        return Err(format!(
            "stream {} de-duplicates over {:?}, less than the {} s message window; \
             a retried publish could be stored twice",
            settings.stream, config.duplicate_window, settings.message_window_sec
        ));
    }
    Ok(())
}

/// NATS subject matching: `*` is one token, `>` the rest.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(subject_matches("signals.>", "signals.raw"));
        assert!(subject_matches("signals.*", "signals.raw"));
        assert!(subject_matches("signals.raw", "signals.raw"));
        assert!(!subject_matches("signals.*", "signals.raw.x"));
        assert!(!subject_matches("orders.>", "signals.raw"));
        assert!(!subject_matches("signals.>", "signals"));
    }

    #[test]
    fn urls_are_checked_up_front() {
        assert!(validate_url("nats://127.0.0.1:4222").is_ok());
        assert!(validate_url("nats://a:4222,nats://b:4222").is_ok());
        assert!(validate_url("http://[::1").is_err());
    }
}
