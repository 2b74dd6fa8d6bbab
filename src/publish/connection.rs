//! NATS connections, the stream, and the gateway's view of NATS health.
//!
//! Every HTTP worker has its own connection (made on its own thread, so a
//! publish never hops threads); one more connection, the control
//! connection, creates and checks the stream and probes JetStream every
//! `probe_interval_ms`. `/readyz` is ready only while every connection is
//! up, the stream is there, and JetStream answers.
//!
//! A server or stream that cannot give the guarantees the gateway is
//! configured for (a nats-server older than [`MIN_SERVER_VERSION`], a stream
//! that misses our subjects, keeps fewer replicas than configured, is not on
//! file storage, or de-duplicates over less than the message window) is not
//! a NATS outage to wait out: the monitor reports it as [`Probe::Unsuitable`]
//! and the gateway stops with that one message ([`Application::run_until_stopped`]
//! returns it; the binary exits non-zero).
//!
//! [`Application::run_until_stopped`]: crate::Application::run_until_stopped

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
        // The client's own bound on un-acked publishes must not throttle
        // below the publisher's in-flight limit (a burst lives there).
        .max_ack_inflight(
            settings
                .max_in_flight_messages
                .max(settings.buffer_capacity)
                * 2,
        )
        .build(client)
}

/// What the configuration needs of JetStream besides the signals' stream.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    /// Key-value buckets to create and check (jetstream claim backend).
    pub buckets: Vec<BucketSpec>,
    /// Stream claim backend: claims are messages of the stream, in atomic
    /// batches, the longest-lived counting this long (`claims/batch.rs`).
    pub claims_ttl: Option<Duration>,
}

/// The oldest nats-server with atomic batch publish (ADR-50).
pub const MIN_BATCH_SERVER_VERSION: (u64, u64, u64) = (2, 12, 0);

/// The stream the gateway creates when it is missing.
fn stream_config(settings: &NatsSettings, needs: &Needs) -> stream::Config {
    let mut subjects = vec!["signals.>".to_string()];
    if needs.claims_ttl.is_some() {
        subjects.push(crate::claims::batch::SUBJECTS.into());
    }
    stream::Config {
        name: settings.stream.clone(),
        subjects,
        storage: stream::StorageType::File,
        num_replicas: settings.stream_replicas,
        duplicate_window: Duration::from_secs(settings.duplicate_window_sec),
        allow_atomic_publish: needs.claims_ttl.is_some(),
        allow_message_ttl: needs.claims_ttl.is_some(),
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

    /// The stream answers and acks arrive (atomics only, for the hot path;
    /// the connection is checked by the caller).
    pub fn storing(&self) -> bool {
        self.stream_ready.load(Ordering::Acquire)
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
///
/// A server or stream that contradicts the configuration ends the loop: the
/// gateway is marked unready and the reason goes to `unsuitable`, on which
/// the application stops.
pub async fn monitor(
    health: Arc<NatsHealth>,
    client: Client,
    settings: NatsSettings,
    max_body_bytes: usize,
    needs: Needs,
    unsuitable: tokio::sync::oneshot::Sender<String>,
) {
    let js = jetstream(client.clone(), &settings);
    let period = Duration::from_millis(settings.probe_interval_ms.max(50));
    loop {
        let probe = async {
            check_server(&client, &settings, &needs)?;
            ensure_stream(&js, &settings, &needs).await?;
            for bucket in &needs.buckets {
                ensure_bucket(&js, bucket)
                    .await
                    .map_err(Probe::Unavailable)?;
            }
            health.buckets_ready.store(true, Ordering::Release);
            Ok::<(), Probe>(())
        };
        let outcome = tokio::time::timeout(period.max(Duration::from_secs(1)), probe)
            .await
            .unwrap_or_else(|_| {
                Err(Probe::Unavailable(
                    "JetStream did not answer the probe in time".into(),
                ))
            });
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
            Err(Probe::Unavailable(problem)) => {
                if health.probe_ok.swap(false, Ordering::AcqRel) {
                    tracing::warn!(%problem, "JetStream unavailable");
                }
                health.set_problem(Some(problem));
            }
            Err(Probe::Unsuitable(problem)) => {
                health.probe_ok.store(false, Ordering::Release);
                health.stream_ready.store(false, Ordering::Release);
                health.set_problem(Some(problem.clone()));
                health.refresh_gauges();
                let _ = unsuitable.send(problem);
                return;
            }
        }
        health.refresh_gauges();
        tokio::time::sleep(period).await;
    }
}

/// What one probe found wrong.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// NATS or JetStream cannot be reached or did not answer: wait, retry.
    Unavailable(String),
    /// The server or the stream cannot give the guarantees the gateway is
    /// configured for; waiting will not change that. The message names what
    /// to fix.
    Unsuitable(String),
}

/// The oldest nats-server the gateway runs on. 2.9 and older cannot fsync
/// before the ack (`sync_interval` is 2.10's), and 2.10.20–2.10.22 could
/// lose a whole stream after a plain process crash (fixed in 2.10.23; see
/// RELIABILITY.md). The project develops, tests and measures on 2.15
/// (scripts/ensure-nats.sh).
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 10, 23);

/// `"2.15.1"`, `"v2.10.0-RC.3"`, `"2.11.0-beta"` → `(major, minor, patch)`.
pub fn parse_server_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    match parts.next() {
        None => Some((major, minor, patch)),
        Some(_) => None,
    }
}

/// Refuses a server whose version is older than [`MIN_SERVER_VERSION`] or
/// cannot be read. `url` only names the server in the message.
pub fn check_server_version(version: &str, url: &str) -> Result<(), String> {
    check_server_version_for(version, url, MIN_SERVER_VERSION, "")
}

/// [`check_server_version`] against `min`; `why` says what needs it.
fn check_server_version_for(
    version: &str,
    url: &str,
    min: (u64, u64, u64),
    why: &str,
) -> Result<(), String> {
    let (a, b, c) = min;
    let upgrade = format!(
        "the gateway needs nats-server {a}.{b}.{c} or newer{why} (the project runs 2.15; \
         scripts/ensure-nats.sh installs it): upgrade the server at {url}"
    );
    match parse_server_version(version) {
        Some(v) if v >= min => Ok(()),
        Some(_) => Err(format!("nats-server {version} is too old: {upgrade}")),
        None => Err(format!(
            "nats-server reports version '{version}', which is not a version: {upgrade}"
        )),
    }
}

/// The version check against the server the client is connected to (every
/// probe: a reconnect may reach another server). Before the first
/// connection the client knows no version yet: that is an outage.
fn check_server(client: &Client, settings: &NatsSettings, needs: &Needs) -> Result<(), Probe> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err(Probe::Unavailable("NATS not connected".into()));
    }
    let version = client.server_info().version;
    let url = redact_url(&settings.url);
    check_server_version(&version, &url).map_err(Probe::Unsuitable)?;
    if needs.claims_ttl.is_some() {
        check_server_version_for(
            &version,
            &url,
            MIN_BATCH_SERVER_VERSION,
            " for stores.backend = \"stream\" (atomic batch publish)",
        )
        .map_err(Probe::Unsuitable)?;
    }
    Ok(())
}

/// `nats://user:pass@host` → `nats://***@host`, for messages.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &u[..scheme + 3], &u[at..])
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
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

/// Creates the stream if it is missing and checks it if it is there
/// ([`check_stream`]).
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &NatsSettings,
    needs: &Needs,
) -> Result<(), Probe> {
    let unavailable = |e: String| Probe::Unavailable(format!("stream {}: {e}", settings.stream));
    let mut stream = js
        .get_or_create_stream(stream_config(settings, needs))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let info = stream
        .info()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    check_stream(&info.config, settings, needs).map_err(Probe::Unsuitable)
}

/// The stream's settings must not contradict the configuration: it covers
/// our subjects, keeps at least `stream_replicas` copies on file storage,
/// and de-duplicates over at least the message window; for claims in the
/// stream it also takes atomic batches and per-message TTLs, covers the
/// claim subjects, and keeps messages at least as long as a claim counts.
/// The message names the stream, the setting, and both values.
pub fn check_stream(
    config: &stream::Config,
    settings: &NatsSettings,
    needs: &Needs,
) -> Result<(), String> {
    let name = &settings.stream;
    let fix = "fix the stream's settings (nats stream edit) or the gateway's configuration";
    for subject in [
        &settings.subject_raw,
        &settings.subject_normalized,
        &settings.subject_dlq,
    ] {
        if !config.subjects.iter().any(|p| subject_matches(p, subject)) {
            return Err(format!(
                "stream {name} exists but does not cover subject {subject} (its subjects: {:?}); {fix}",
                config.subjects
            ));
        }
    }
    if config.num_replicas.max(1) < settings.stream_replicas {
        return Err(format!(
            "stream {name} keeps {} replica(s), fewer than nats.stream_replicas = {}; {fix}",
            config.num_replicas.max(1),
            settings.stream_replicas
        ));
    }
    if config.storage != stream::StorageType::File {
        return Err(format!(
            "stream {name} uses {:?} storage: an acknowledged signal would not survive a \
             nats-server restart; it must be File storage ({fix})",
            config.storage
        ));
    }
    if config.duplicate_window < Duration::from_secs(settings.message_window_sec) {
        return Err(format!(
            "stream {name} de-duplicates over {:?}, less than the {} s message window; \
             a retried publish could be stored twice; {fix}",
            config.duplicate_window, settings.message_window_sec
        ));
    }
    if let Some(ttl) = needs.claims_ttl {
        let claim_subject = format!("{}.key.x.y", crate::claims::batch::PREFIX);
        let covers_claims = config
            .subjects
            .iter()
            .any(|p| subject_matches(p, &claim_subject));
        if !config.allow_atomic_publish || !config.allow_message_ttl || !covers_claims {
            return Err(format!(
                "stream {name} does not take the claims of stores.backend = \"stream\", \
                 which writes them in atomic batches with per-message TTLs on {}: it needs \
                 allow_atomic (now {}), allow_msg_ttl (now {}) and that subject (its subjects: \
                 {:?}); {fix}",
                crate::claims::batch::SUBJECTS,
                config.allow_atomic_publish,
                config.allow_message_ttl,
                config.subjects
            ));
        }
        let evicts = config.max_messages > 0 || config.max_bytes > 0;
        if evicts && config.discard == stream::DiscardPolicy::Old {
            return Err(format!(
                "stream {name} discards its oldest messages at a limit (max_msgs {}, max_bytes {}): \
                 claims would go with them before their TTL, and a repeat would be stored again; \
                 bound it by max_age, or use discard new; {fix}",
                config.max_messages, config.max_bytes
            ));
        }
        if !config.max_age.is_zero() && config.max_age < ttl {
            return Err(format!(
                "stream {name} keeps messages for {:?}, less than a claim counts ({ttl:?}); \
                 a repeat after that would be stored again; {fix}",
                config.max_age
            ));
        }
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
    fn server_versions() {
        assert_eq!(parse_server_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("v2.10.0-RC.3"), Some((2, 10, 0)));
        assert_eq!(parse_server_version("2.11.0-beta+build"), Some((2, 11, 0)));
        assert_eq!(parse_server_version("2.12"), Some((2, 12, 0)));
        assert_eq!(parse_server_version(""), None);
        assert_eq!(parse_server_version("2.x.1"), None);
        assert_eq!(parse_server_version("2.10.1.4"), None);
        for ok in [
            "2.15.1",
            "2.10.23",
            "2.10.29",
            "2.11.0-RC.1",
            "2.12.1",
            "3.0.0",
            "v2.15.1",
        ] {
            assert_eq!(check_server_version(ok, "nats://h:4222"), Ok(()), "{ok}");
        }
        for old in ["2.9.10", "2.9.25", "2.10.0", "2.10.22", "2.2.0", "1.4.1"] {
            let err = check_server_version(old, "nats://h:4222").unwrap_err();
            assert!(
                err.contains(&format!("nats-server {old} is too old")),
                "{err}"
            );
            assert!(
                err.contains("2.10.23 or newer") && err.contains("nats://h:4222"),
                "{err}"
            );
        }
        let err = check_server_version("", "nats://h:4222").unwrap_err();
        assert!(err.contains("not a version"), "{err}");
        assert_eq!(
            redact_url("nats://u:p@h:1,nats://h2:2"),
            "nats://***@h:1,nats://h2:2"
        );
    }

    fn settings() -> NatsSettings {
        crate::Settings::load_with_env(None, |k| {
            (k == "TRADINGVIEW_TOKEN").then(|| "tv-token-0123456789".to_string())
        })
        .unwrap()
        .nats
    }

    #[test]
    fn the_stream_we_create_passes_our_own_check() {
        let settings = settings();
        let none = Needs::default();
        assert_eq!(
            check_stream(&stream_config(&settings, &none), &settings, &none),
            Ok(())
        );
    }

    #[test]
    fn a_stream_that_contradicts_the_configuration_is_refused() {
        let settings = settings();
        let none = Needs::default();
        let check = |edit: &dyn Fn(&mut stream::Config)| {
            let mut config = stream_config(&settings, &none);
            edit(&mut config);
            check_stream(&config, &settings, &none).unwrap_err()
        };
        let err = check(&|c| c.subjects = vec!["orders.>".into()]);
        assert!(err.contains("does not cover subject signals.raw"), "{err}");
        let err = check(&|c| c.storage = stream::StorageType::Memory);
        assert!(
            err.contains("Memory storage") && err.contains("File"),
            "{err}"
        );
        let err = check(&|c| c.duplicate_window = Duration::from_secs(1));
        assert!(err.contains("de-duplicates over 1s"), "{err}");
        let mut r3 = settings.clone();
        r3.stream_replicas = 3;
        let err = check_stream(&stream_config(&settings, &none), &r3, &none).unwrap_err();
        assert!(
            err.contains("keeps 1 replica(s), fewer than nats.stream_replicas = 3"),
            "{err}"
        );
        let mut more = stream_config(&settings, &none);
        more.num_replicas = 3;
        assert_eq!(
            check_stream(&more, &settings, &none),
            Ok(()),
            "more replicas are fine"
        );
    }

    #[test]
    fn claims_in_the_stream_need_batches_ttls_their_subjects_and_a_long_enough_max_age() {
        let settings = settings();
        let day = Duration::from_secs(86_400);
        let needs = Needs {
            buckets: Vec::new(),
            claims_ttl: Some(day),
        };
        let ours = stream_config(&settings, &needs);
        assert_eq!(check_stream(&ours, &settings, &needs), Ok(()));
        let check = |edit: &dyn Fn(&mut stream::Config)| {
            let mut config = ours.clone();
            edit(&mut config);
            check_stream(&config, &settings, &needs).unwrap_err()
        };
        let err = check(&|c| c.allow_atomic_publish = false);
        assert!(err.contains("allow_atomic (now false)"), "{err}");
        let err = check(&|c| c.allow_message_ttl = false);
        assert!(err.contains("allow_msg_ttl (now false)"), "{err}");
        let err = check(&|c| c.subjects = vec!["signals.>".into()]);
        assert!(
            err.contains("on at-gateway.claims.>") && err.contains(r#"subjects: ["signals.>"]"#),
            "{err}"
        );
        let err = check(&|c| c.max_age = Duration::from_secs(3600));
        assert!(err.contains("less than a claim counts"), "{err}");
        let err = check(&|c| c.max_bytes = 1 << 30);
        assert!(err.contains("discards its oldest messages"), "{err}");
        let mut bounded = ours.clone();
        bounded.max_bytes = 1 << 30;
        bounded.discard = stream::DiscardPolicy::New;
        assert_eq!(check_stream(&bounded, &settings, &needs), Ok(()));
        let mut unlimited = ours.clone();
        (unlimited.max_messages, unlimited.max_bytes) = (-1, -1);
        assert_eq!(check_stream(&unlimited, &settings, &needs), Ok(()));
        let mut longer = ours.clone();
        longer.max_age = day * 7;
        assert_eq!(check_stream(&longer, &settings, &needs), Ok(()));
        let old = check_server_version_for("2.11.9", "nats://h:4222", MIN_BATCH_SERVER_VERSION, "");
        assert!(old.unwrap_err().contains("2.12.0 or newer"));
    }

    #[test]
    fn urls_are_checked_up_front() {
        assert!(validate_url("nats://127.0.0.1:4222").is_ok());
        assert!(validate_url("nats://a:4222,nats://b:4222").is_ok());
        assert!(validate_url("http://[::1").is_err());
    }
}
