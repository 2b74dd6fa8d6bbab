//! Typed settings, layered from `config/default.toml`, an optional file given
//! with `--config FILE`, and the seed's environment variables (last wins).
//!
//! Every secret is a [`SecretString`] from the moment it is read, so no
//! `Debug` output or log line can print it. A bad setting stops start-up with
//! a message naming the setting (and the environment variable, if it came
//! from one).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use crate::ids::SourceId;
use crate::lanes::{LaneSettings, Priority};
use crate::sources::registry::RegistryKey;
use crate::sources::{
    build_source, parse_nets, SourceConfig, SourceDefaults, SourceMap, SourceSection,
};

/// The defaults, compiled in so the binary runs from anywhere; the same text
/// is `config/default.toml` in the repository.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The seed's environment variables (and the few this gateway adds), with
/// the setting each one overrides.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("SERVICE_NAME", "service_name"),
    ("ENV", "env"),
    ("LOG_LEVEL", "log_level"),
    ("HTTP_ADDR", "http_addr"),
    ("HTTP_WORKERS", "http.workers"),
    ("NATS_URL", "nats.url"),
    ("NATS_STREAM", "nats.stream"),
    ("NATS_DURABLE", "nats.durable"),
    ("NATS_STREAM_REPLICAS", "nats.stream_replicas"),
    ("API_KEY_HMAC_SECRET", "api_key_hmac_secret"),
    ("TRADINGVIEW_TOKEN", "tradingview_token"),
    ("IDEMPOTENCY_TTL_SEC", "idempotency_ttl_sec"),
    ("RATE_LIMIT_RPS", "rate_limit_rps"),
    ("RATE_LIMIT_BURST", "rate_limit_burst"),
    ("REPLAY_WINDOW_SEC", "replay_window_sec"),
    ("ALLOWED_SOURCES", "allowed_sources"),
    ("TRUSTED_PROXIES", "trusted_proxies"),
    ("STORE_BACKEND", "stores.backend"),
    ("TLS_ADDR", "tls.addr"),
    ("TLS_CERT_FILE", "tls.cert_file"),
    ("TLS_KEY_FILE", "tls.key_file"),
    ("TLS_CLIENT_CA_FILE", "tls.client_ca_file"),
    ("SOURCE_REGISTRY", "registry.enabled"),
    ("SOURCE_REGISTRY_BUCKET", "registry.bucket"),
    ("SOURCE_REGISTRY_KEY", "registry.key"),
    ("SOURCE_REGISTRY_KEY_FILE", "registry.key_file"),
    ("PUBLIC_URL", "registry.public_url"),
];

/// A configuration problem, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The problems found so far; reported all at once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// The value, or `None` with the error noted.
    fn check<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|e| self.0.push(e.0)).ok()
    }

    fn into_result(self) -> Result<(), ConfigError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ConfigError(self.0.into_iter().next().unwrap_or_default())),
            n => Err(ConfigError(format!(
                "{n} problems:\n  - {}",
                self.0.join("\n  - ")
            ))),
        }
    }
}

/// Settings as read from the layered sources, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    service_name: String,
    env: String,
    log_level: String,
    http_addr: String,
    #[serde(deserialize_with = "comma_list")]
    allowed_sources: Vec<String>,
    replay_window_sec: u64,
    idempotency_ttl_sec: u64,
    rate_limit_rps: u32,
    rate_limit_burst: u32,
    #[serde(deserialize_with = "comma_list")]
    trusted_proxies: Vec<String>,
    auth_failures: AuthFailureSettings,
    api_key_hmac_secret: Option<SecretString>,
    tradingview_token: Option<SecretString>,
    http: HttpSettings,
    nats: NatsSettings,
    stores: StoreSettings,
    tls: RawTls,
    lanes: LaneSettings,
    registry: RawRegistry,
    #[serde(default)]
    sources: BTreeMap<String, SourceSection>,
}

/// `[registry]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    enabled: bool,
    bucket: String,
    /// `SOURCE_REGISTRY_KEY` only: never in a file.
    #[serde(default)]
    key: Option<SecretString>,
    key_file: String,
    public_url: String,
}

/// The source registry (`sources/registry.rs`), when enabled.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub bucket: String,
    /// Opens the sealed HMAC secrets.
    pub key: Arc<RegistryKey>,
    /// The gateway's public base URL, for the webhook URLs `sources add` prints.
    pub public_url: String,
}

/// `[tls]` as written: empty strings mean "not set".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    addr: String,
    cert_file: String,
    key_file: String,
    client_ca_file: String,
}

/// The HTTPS listener, served beside the plain HTTP one.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub addr: SocketAddr,
    /// PEM certificate chain and private key; read again on SIGHUP.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// PEM CA certificates client certificates must chain to. Set: clients
    /// may present a certificate (sources with `client_cert` require one).
    pub client_ca_file: Option<PathBuf>,
}

/// HTTP server limits. Each bound says what happens when it is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// HTTP worker threads; 0 = one per core. Each worker owns a full set of
    /// stage actors and its own NATS connection.
    pub workers: usize,
    /// Raw body bytes as received; more → 413 without reading further.
    pub max_body_bytes: usize,
    /// Time to receive the request head; slower → connection closed (408).
    pub client_request_timeout_ms: u64,
    /// Time to receive the whole body; slower → 408 (actix-web has no
    /// body-read timeout of its own).
    pub body_read_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this long.
    pub keep_alive_sec: u64,
    /// On SIGTERM or SIGINT, the gateway first drains this long: it keeps
    /// serving, closes each connection after its next answer and reports
    /// not ready (`ingress/drain.rs`).
    pub drain_ms: u64,
    /// After the drain, in-flight requests get this long to finish.
    pub shutdown_timeout_sec: u64,
    /// Concurrent connections per worker; more wait in the accept backlog.
    pub max_connections_per_worker: usize,
}

/// The per-address limit on failed authentications.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFailureSettings {
    /// Failures an address may make per minute once its burst is spent.
    pub per_minute: u32,
    /// Failures an address may make at once; the next one blocks it (429)
    /// until the bucket refills.
    pub burst: u32,
    /// Addresses tracked at most (bounded memory).
    pub tracked_addresses: u64,
}

/// NATS / JetStream settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    pub url: String,
    pub stream: String,
    /// Durable consumer name for tools that read the stream (`tail`, agents).
    pub durable: String,
    pub subject_raw: String,
    pub subject_normalized: String,
    pub subject_dlq: String,
    /// Stream replicas when the gateway creates the stream (1 on one node, 3
    /// on a cluster).
    pub stream_replicas: usize,
    /// JetStream de-duplication window for `Nats-Msg-Id`; must cover the
    /// message window so a retried publish is never stored twice.
    pub duplicate_window_sec: u64,
    /// Client ping interval: a silently dead connection is noticed after
    /// about two missed pings (async-nats' default of 60 s means minutes).
    pub ping_interval_sec: u64,
    pub connect_timeout_ms: u64,
    /// One publish attempt waits this long for its JetStream ack; a timeout
    /// marks NATS unavailable until a health probe succeeds again.
    pub ack_timeout_ms: u64,
    /// Messages (not requests) that may wait for NATS while it is
    /// unreachable or failing (the seed's 1000): full → 503 `buffer_full`
    /// at once, and a delivery that finds no place gives up at once.
    pub buffer_capacity: usize,
    /// Messages awaiting their ack while NATS is healthy (a bar-close
    /// burst), bounded for memory; full → 503 `overloaded` at once.
    #[serde(default = "default_max_in_flight_messages")]
    pub max_in_flight_messages: usize,
    /// How long a buffered message keeps trying to reach JetStream; after
    /// that it is dropped and its request fails (it is never acked later).
    pub message_window_sec: u64,
    /// Default cap on how long a request waits for its acks before it
    /// answers 503 (its message may still land inside its window).
    pub request_ack_wait_ms: u64,
    /// Readiness probe period.
    pub probe_interval_ms: u64,
    /// Event format per subject: plain JSON or CloudEvents.
    #[serde(default)]
    pub formats: SubjectFormats,
    /// Which version of the normalized schema `signals.normalized` carries.
    #[serde(default)]
    pub normalized_schema: NormalizedSchema,
}

/// How messages of one subject are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum EventFormat {
    /// The JSON document alone (the schemas in `schemas/`).
    #[default]
    #[serde(rename = "plain")]
    Plain,
    /// A CloudEvents JSON document whose `data` is the document.
    #[serde(rename = "cloudevents-structured")]
    CloudEventsStructured,
    /// The document as payload, CloudEvents attributes in `ce-` headers.
    #[serde(rename = "cloudevents-binary")]
    CloudEventsBinary,
}

/// Event format per subject (`[nats.formats]`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectFormats {
    #[serde(default)]
    pub raw: EventFormat,
    #[serde(default)]
    pub normalized: EventFormat,
    #[serde(default)]
    pub dlq: EventFormat,
}

/// The schema version of `signals.normalized` (API_SPEC.md, "Versioning").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizedSchema {
    /// `signal.normalized.v1`, for agents not yet reading v2: sizes that are
    /// not a count of the instrument are null in `quantity`.
    V1,
    /// `signal.normalized.v2`: every size with its unit.
    #[default]
    V2,
}

/// Where nonces and idempotency keys are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// JetStream key-value buckets: shared by every replica, survive restarts.
    Jetstream,
    /// Claims are messages of the signals' stream, written in the signal's
    /// own atomic batch (nats-server 2.12+; `claims/batch.rs`): shared and
    /// durable like the buckets, one round trip per signal. For replicated
    /// streams; on one file-backed node the buckets are faster (BENCHMARKS.md).
    Stream,
    /// This process's memory: lost on restart, not shared.
    Memory,
}

/// The replay and idempotency stores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// Key-value buckets (jetstream backend), created at start-up.
    pub replay_bucket: String,
    pub idempotency_bucket: String,
    /// Marks of replayed dead letters (`at-gateway dlq replay`), kept until
    /// deleted so a record is never replayed twice.
    pub dlq_replay_bucket: String,
    /// Memory backend: entries at which a store refuses new claims with 503
    /// rather than evicting a live entry (an evicted nonce could be
    /// replayed). Jetstream backend: size of the local cache of done keys.
    pub replay_capacity: u64,
    pub idempotency_capacity: u64,
}

/// The validated settings the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service_name: String,
    pub env: String,
    pub log_level: String,
    pub http_addr: SocketAddr,
    pub replay_window: Duration,
    pub idempotency_ttl: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub auth_failures: AuthFailureSettings,
    pub http: HttpSettings,
    pub nats: NatsSettings,
    pub stores: StoreSettings,
    /// The HTTPS listener, if `tls.addr` is set.
    pub tls: Option<TlsSettings>,
    pub lanes: LaneSettings,
    /// Allowed sources only: a source that is configured but not in
    /// `ALLOWED_SOURCES` is not here, so it gets 403 like any other. This is
    /// the table at start-up; the live one is reloaded on SIGHUP (`reload.rs`).
    pub sources: Arc<SourceMap>,
    /// The `--config` file, read again on reload.
    pub config_file: Option<PathBuf>,
    /// The source registry, if `registry.enabled`.
    pub registry: Option<RegistrySettings>,
    /// What a source takes from the gateway-wide settings; registry sources
    /// are built with it as they arrive.
    pub source_defaults: Arc<SourceDefaults>,
}

impl Settings {
    /// Loads defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// Like [`Settings::load`], with the environment given as a function
    /// (tests pass a map instead of mutating the process environment).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(bad(format!("--config {}: no such file", path.display())));
            }
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let mut from_env = HashMap::new();
        for (var, key) in ENV_OVERRIDES {
            if let Some(value) = env(var) {
                builder = builder
                    .set_override(*key, value)
                    .map_err(|e| bad(format!("{var}: {e}")))?;
                from_env.insert(*key, *var);
            }
        }
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| {
                let text = e.to_string();
                // Point at the environment variable when the bad value came from one.
                match from_env.iter().find(|(key, _)| text.contains(*key)) {
                    Some((_, var)) => bad(format!("{text} (set by {var})")),
                    None => bad(text),
                }
            })?;
        let mut settings = validate(raw)?;
        settings.config_file = file.map(Path::to_path_buf);
        Ok(settings)
    }

    /// The source named `id`, if it is allowed.
    pub fn source(&self, id: &str) -> Option<&Arc<SourceConfig>> {
        SourceId::parse(id).and_then(|id| self.sources.get(&id))
    }
}

fn validate(mut raw: RawSettings) -> Result<Settings, ConfigError> {
    // Every problem is collected, so one run of check-config names them all.
    let mut problems = Problems::default();
    let http_addr: Option<SocketAddr> = problems.check(raw.http_addr.parse().map_err(|_| {
        bad(format!(
            "http_addr (HTTP_ADDR): '{}' is not an address like 0.0.0.0:8001",
            raw.http_addr
        ))
    }));
    let level_ok = tracing_subscriber::EnvFilter::try_new(&raw.log_level).is_ok();
    if !level_ok {
        problems.push(format!(
            "log_level (LOG_LEVEL): '{}' is not a level or filter (try info, debug, warn)",
            raw.log_level
        ));
    }
    problems.check(positive(
        "replay_window_sec (REPLAY_WINDOW_SEC)",
        raw.replay_window_sec,
    ));
    problems.check(positive(
        "idempotency_ttl_sec (IDEMPOTENCY_TTL_SEC)",
        raw.idempotency_ttl_sec,
    ));
    problems.check(positive(
        "rate_limit_rps (RATE_LIMIT_RPS)",
        raw.rate_limit_rps.into(),
    ));
    problems.check(positive(
        "http.max_body_bytes",
        raw.http.max_body_bytes as u64,
    ));
    problems.check(positive(
        "auth_failures.per_minute",
        raw.auth_failures.per_minute.into(),
    ));
    problems.check(positive(
        "auth_failures.burst",
        raw.auth_failures.burst.into(),
    ));
    problems.check(positive(
        "auth_failures.tracked_addresses",
        raw.auth_failures.tracked_addresses,
    ));
    problems.check(positive(
        "nats.buffer_capacity",
        raw.nats.buffer_capacity as u64,
    ));
    problems.check(positive(
        "nats.max_in_flight_messages",
        raw.nats.max_in_flight_messages as u64,
    ));
    problems.check(positive(
        "lanes.max_in_flight",
        raw.lanes.max_in_flight as u64,
    ));
    problems.check(positive("lanes.max_working", raw.lanes.max_working as u64));
    // The smallest lane share must hold one body of the largest size.
    let low_room = raw
        .lanes
        .limit(raw.lanes.max_body_bytes_in_flight, Priority::Low);
    if low_room < raw.http.max_body_bytes {
        problems.push(format!(
            "lanes.max_body_bytes_in_flight ({}): its low-priority share ({low_room}) is less \
             than http.max_body_bytes ({}), so a body of the largest size could never be taken in",
            raw.lanes.max_body_bytes_in_flight, raw.http.max_body_bytes
        ));
    }
    let lanes = &raw.lanes;
    if !(1..=100).contains(&lanes.low_percent)
        || !(lanes.low_percent..=100).contains(&lanes.normal_percent)
    {
        problems.push(
            "lanes.low_percent and lanes.normal_percent: need 1 <= low_percent <= normal_percent <= 100",
        );
    }
    problems.check(positive(
        "nats.message_window_sec",
        raw.nats.message_window_sec,
    ));
    problems.check(positive("nats.ack_timeout_ms", raw.nats.ack_timeout_ms));
    problems.check(positive(
        "nats.request_ack_wait_ms",
        raw.nats.request_ack_wait_ms,
    ));
    problems.check(positive(
        "nats.ping_interval_sec",
        raw.nats.ping_interval_sec,
    ));
    problems.check(positive(
        "stores.replay_capacity",
        raw.stores.replay_capacity,
    ));
    problems.check(positive(
        "stores.idempotency_capacity",
        raw.stores.idempotency_capacity,
    ));
    if raw.nats.duplicate_window_sec < raw.nats.message_window_sec {
        problems.push(format!(
            "nats.duplicate_window_sec ({}) must be at least nats.message_window_sec ({}): \
             otherwise a retried publish could be stored twice",
            raw.nats.duplicate_window_sec, raw.nats.message_window_sec
        ));
    }
    for (name, subject) in [
        ("nats.subject_raw", &raw.nats.subject_raw),
        ("nats.subject_normalized", &raw.nats.subject_normalized),
        ("nats.subject_dlq", &raw.nats.subject_dlq),
    ] {
        if !subject.starts_with("signals.") || subject.contains(['*', '>', ' ']) {
            problems.push(format!(
                "{name}: '{subject}' must be a literal subject under signals. (the stream covers signals.>)"
            ));
        }
    }
    let trusted_proxies = problems
        .check(
            parse_nets("trusted_proxies (TRUSTED_PROXIES)", &raw.trusted_proxies)
                .map_err(ConfigError),
        )
        .unwrap_or_default();

    let mut raw_sources = std::mem::take(&mut raw.sources);
    let defaults = SourceDefaults {
        hmac_secret: raw.api_key_hmac_secret.clone(),
        tradingview_token: raw.tradingview_token.clone(),
        rate_limit_rps: raw.rate_limit_rps,
        rate_limit_burst: raw.rate_limit_burst,
        replay_window_sec: raw.replay_window_sec,
        idempotency_ttl_sec: raw.idempotency_ttl_sec,
        ack_wait_ms: raw.nats.request_ack_wait_ms,
    };
    let mut sources = HashMap::new();
    for name in &raw.allowed_sources {
        let Some(id) = SourceId::parse(name) else {
            problems.push(format!(
                "allowed_sources (ALLOWED_SOURCES): '{name}' is not a valid source name \
                 (1-64 characters of A-Z a-z 0-9 _ . -)"
            ));
            continue;
        };
        let file = raw_sources.remove(name).unwrap_or_default();
        let source = build_source(id.clone(), file, &defaults).map_err(ConfigError);
        if let Some(source) = problems.check(source) {
            sources.insert(id, Arc::new(source));
        }
    }
    for name in raw_sources.keys() {
        tracing::warn!(source = %name, "source is configured but not in ALLOWED_SOURCES; it will get 403");
    }
    let tls = problems.check(tls_settings(&raw.tls)).flatten();
    let registry = problems.check(registry_settings(&raw.registry)).flatten();
    let verifies_clients = tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    if let Some(source) = sources.values().find(|s| s.client_cert.is_some()) {
        if !verifies_clients {
            problems.push(format!(
                "sources.{}.client_cert needs tls.addr and tls.client_ca_file \
                 (TLS_ADDR, TLS_CLIENT_CA_FILE) to verify client certificates",
                source.id
            ));
        }
    }
    problems.into_result()?;
    // Set whenever no problem was found (a bad one is a problem above).
    let http_addr = http_addr.ok_or_else(|| bad("http_addr (HTTP_ADDR)"))?;
    Ok(Settings {
        service_name: raw.service_name,
        env: raw.env,
        log_level: raw.log_level,
        http_addr,
        replay_window: Duration::from_secs(raw.replay_window_sec),
        idempotency_ttl: Duration::from_secs(raw.idempotency_ttl_sec),
        trusted_proxies,
        auth_failures: raw.auth_failures,
        http: raw.http,
        nats: raw.nats,
        stores: raw.stores,
        tls,
        lanes: raw.lanes,
        sources: Arc::new(sources),
        config_file: None,
        registry,
        source_defaults: Arc::new(defaults),
    })
}

fn registry_settings(raw: &RawRegistry) -> Result<Option<RegistrySettings>, ConfigError> {
    if !raw.enabled {
        return Ok(None);
    }
    let key_text = match (&raw.key, raw.key_file.trim()) {
        (Some(key), _) => key.clone(),
        (None, "") => {
            return Err(bad(
                "registry.enabled needs its key: SOURCE_REGISTRY_KEY (base64 of 32 random bytes; \
                 `at-gateway sources new-key` makes one) or registry.key_file (SOURCE_REGISTRY_KEY_FILE)",
            ))
        }
        (None, path) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|e| bad(format!("registry.key_file (SOURCE_REGISTRY_KEY_FILE) {path}: {e}")))?,
    };
    let key = RegistryKey::from_base64(&key_text)
        .map_err(|e| bad(format!("registry key (SOURCE_REGISTRY_KEY): {e}")))?;
    if raw.bucket.is_empty()
        || raw
            .bucket
            .contains(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(bad(format!(
            "registry.bucket (SOURCE_REGISTRY_BUCKET): '{}' must be letters, digits, - and _",
            raw.bucket
        )));
    }
    Ok(Some(RegistrySettings {
        bucket: raw.bucket.clone(),
        key: Arc::new(key),
        public_url: raw.public_url.trim_end_matches('/').to_owned(),
    }))
}

fn tls_settings(raw: &RawTls) -> Result<Option<TlsSettings>, ConfigError> {
    let path = |s: &str| (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()));
    if raw.addr.trim().is_empty() {
        if [&raw.cert_file, &raw.key_file, &raw.client_ca_file]
            .iter()
            .any(|f| !f.trim().is_empty())
        {
            return Err(bad(
                "tls.addr (TLS_ADDR) is required when TLS files are set",
            ));
        }
        return Ok(None);
    }
    let addr = raw.addr.trim().parse().map_err(|e| {
        bad(format!(
            "tls.addr (TLS_ADDR): '{}' is not an address:port ({e})",
            raw.addr
        ))
    })?;
    let cert_file = path(&raw.cert_file)
        .ok_or_else(|| bad("tls.cert_file (TLS_CERT_FILE) is required with tls.addr"))?;
    let key_file = path(&raw.key_file)
        .ok_or_else(|| bad("tls.key_file (TLS_KEY_FILE) is required with tls.addr"))?;
    Ok(Some(TlsSettings {
        addr,
        cert_file,
        key_file,
        client_ca_file: path(&raw.client_ca_file),
    }))
}

fn default_max_in_flight_messages() -> usize {
    8192
}

fn positive(name: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(bad(format!("{name}: must be greater than 0")));
    }
    Ok(())
}

/// Accepts either a list or a comma-separated string (`ALLOWED_SOURCES=a,b`).
fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(v) => v,
        ListOrString::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_a_tradingview_token() {
        let err = Settings::load_with_env(None, env(&[])).unwrap_err();
        assert!(err.0.contains("TRADINGVIEW_TOKEN"), "{err}");
    }

    #[test]
    fn environment_overrides_defaults() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("TRADINGVIEW_TOKEN", "tv-token-0123456789"),
                ("API_KEY_HMAC_SECRET", "custom-secret-0123456789"),
                ("ALLOWED_SOURCES", "tradingview, alpha"),
                ("REPLAY_WINDOW_SEC", "60"),
                ("NATS_URL", "nats://10.1.2.3:4222"),
            ]),
        )
        .unwrap();
        assert_eq!(s.replay_window, Duration::from_secs(60));
        assert_eq!(s.nats.url, "nats://10.1.2.3:4222");
        assert_eq!(s.source("alpha").unwrap().kind, SourceKind::Custom);
        assert_eq!(
            s.source("tradingview").unwrap().kind,
            SourceKind::Tradingview
        );
        assert!(s.source("Alpha").is_none(), "allowlist is case-sensitive");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Settings::load_with_env(
            None,
            env(&[
                ("TRADINGVIEW_TOKEN", "tv-token-0123456789"),
                ("RATE_LIMIT_RPS", "lots"),
            ]),
        )
        .unwrap_err();
        assert!(err.0.contains("rate_limit_rps"), "{err}");
        assert!(err.0.contains("RATE_LIMIT_RPS"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("TRADINGVIEW_TOKEN", "tv-token-SEKRIT-0123456789"),
                ("API_KEY_HMAC_SECRET", "hmac-SEKRIT-0123456789"),
                ("ALLOWED_SOURCES", "tradingview,alpha"),
            ]),
        )
        .unwrap();
        // `check-config` prints TOML (`cli/check_config.rs`); a Debug dump
        // (a log line, a panic message) must not show a secret either.
        let text = format!("{s:#?}");
        assert!(!text.contains("SEKRIT"), "{text}");
        assert!(text.contains("alpha"));
    }

    #[test]
    fn source_defaults_default_is_config_default_toml() {
        let s = Settings::load_with_env(None, env(&[("TRADINGVIEW_TOKEN", "tv-token-0123456789")]))
            .unwrap();
        let (from_file, compiled) = (&*s.source_defaults, SourceDefaults::default());
        assert_eq!(
            (
                from_file.rate_limit_rps,
                from_file.rate_limit_burst,
                from_file.replay_window_sec,
                from_file.idempotency_ttl_sec,
                from_file.ack_wait_ms,
            ),
            (
                compiled.rate_limit_rps,
                compiled.rate_limit_burst,
                compiled.replay_window_sec,
                compiled.idempotency_ttl_sec,
                compiled.ack_wait_ms,
            )
        );
    }

    /// Why a configuration file holding `toml` is refused.
    fn refusal(toml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .0
    }

    #[test]
    fn tradingview_ack_wait_must_stay_below_three_seconds() {
        let err =
            refusal("[sources.tradingview]\nack_wait_ms = 3500\ntoken = \"tv-token-0123456789\"\n");
        assert!(err.contains("ack_wait_ms"), "{err}");
    }

    #[test]
    fn the_low_lane_share_of_body_room_must_hold_the_largest_body() {
        // 50 % of 1 MiB for the low lane: a 1 MiB body could never fit.
        let err = refusal(
            "[http]\nmax_body_bytes = 1048576\n[lanes]\nmax_body_bytes_in_flight = 1048576\n",
        );
        assert!(err.contains("lanes.max_body_bytes_in_flight"), "{err}");
    }
}
