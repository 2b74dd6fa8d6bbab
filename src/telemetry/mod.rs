//! JSON logs (tracing) and Prometheus metrics.
//!
//! The hot path counts through handles resolved once per label set
//! (`handles.rs`: a source's in its table entry, a subject's in its
//! publisher), so serving a request hashes no label strings. Label values come only from configuration (allowed
//! sources, key ids, subjects) or fixed lists, never from a request, so a
//! caller cannot grow the registry without bound.

mod handles;

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub use handles::{PublishMetrics, PublishStatus, SourceMetrics};

/// Source label used for every source that is not allowed.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// Source label shared by every source of the registry: a platform's
/// thousands of sources would be thousands of series per metric, more than
/// a Prometheus server can afford; their logs name each one.
pub const REGISTRY_SOURCE: &str = "registry";

/// Latency buckets in seconds, dense around the millisecond scale the
/// gateway works at and up to TradingView's 3 s deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub struct Metrics {
    pub registry: Registry,
    /// `gateway_webhooks_received_total{source,status}`.
    pub webhooks_received: IntCounterVec,
    /// `gateway_webhook_duration_seconds{source}`.
    pub webhook_duration: HistogramVec,
    /// `gateway_nats_publish_total{subject,status}`: ok, duplicate, error,
    /// timeout, no_stream, too_large, claimed (a batch refused by another
    /// request's claim). Every claim subject counts as `at-gateway.claims`.
    pub nats_publish: IntCounterVec,
    /// `gateway_nats_publish_duration_seconds{subject}`: send to ack.
    pub nats_publish_duration: HistogramVec,
    /// `gateway_validation_errors_total{type}`.
    pub validation_errors: IntCounterVec,
    /// Messages waiting for a JetStream ack.
    pub buffer_depth: IntGauge,
    pub buffer_capacity: IntGauge,
    /// Messages published and awaiting their ack, healthy or not.
    pub in_flight_messages: IntGauge,
    /// 1 while every NATS connection is up, else 0.
    pub nats_connected: IntGauge,
    /// 1 while the gateway can store signals (connected, stream present,
    /// acks arriving), else 0; this is what `/readyz` answers.
    pub nats_ready: IntGauge,
    /// `gateway_auth_failures_total{source,reason}`.
    pub auth_failures: IntCounterVec,
    /// `gateway_auth_key_used_total{source,key_id}`: which key verified.
    pub auth_key_used: IntCounterVec,
    /// `gateway_stage_restarts_total{stage}`: panics caught in a stage.
    pub stage_restarts: IntCounterVec,
    /// `gateway_requests_shed_total{source,priority}`: refused under
    /// saturation to keep room for higher-priority lanes.
    pub requests_shed: IntCounterVec,
    /// 1 while the source registry is watched and in sync, else 0 (the
    /// last good table is served meanwhile).
    pub registry_up: IntGauge,
    /// Sources served from the registry.
    pub registry_sources: IntGauge,
    /// Registry records that do not build (not served; the log says why).
    pub registry_invalid: IntGauge,
}

fn build() -> Metrics {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels)
            .expect("metric definitions are static and valid");
        registry
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    };
    let webhooks_received = counter(
        "gateway_webhooks_received_total",
        "Webhook requests answered, by source and HTTP status",
        &["source", "status"],
    );
    let nats_publish = counter(
        "gateway_nats_publish_total",
        "JetStream publish attempts, by subject and outcome",
        &["subject", "status"],
    );
    let validation_errors = counter(
        "gateway_validation_errors_total",
        "Requests refused by validation, by type",
        &["type"],
    );
    let auth_failures = counter(
        "gateway_auth_failures_total",
        "Authentication failures, by source and reason",
        &["source", "reason"],
    );
    let auth_key_used = counter(
        "gateway_auth_key_used_total",
        "Successful HMAC verifications, by source and key id",
        &["source", "key_id"],
    );
    let stage_restarts = counter(
        "gateway_stage_restarts_total",
        "Stage actors restarted after a panic",
        &["stage"],
    );
    let requests_shed = counter(
        "gateway_requests_shed_total",
        "Requests refused under saturation (overloaded, buffer_full), by source and lane",
        &["source", "priority"],
    );
    let histogram = |name: &str, help: &str, labels: &[&str]| {
        let h = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )
        .expect("metric definitions are static and valid");
        registry
            .register(Box::new(h.clone()))
            .expect("metric names are unique");
        h
    };
    let webhook_duration = histogram(
        "gateway_webhook_duration_seconds",
        "Time from request to answer, by source",
        &["source"],
    );
    let nats_publish_duration = histogram(
        "gateway_nats_publish_duration_seconds",
        "Time from publish to JetStream ack, by subject",
        &["subject"],
    );
    let gauge = |name: &str, help: &str| {
        let g = IntGauge::new(name, help).expect("metric definitions are static and valid");
        registry
            .register(Box::new(g.clone()))
            .expect("metric names are unique");
        g
    };
    Metrics {
        webhooks_received,
        webhook_duration,
        nats_publish,
        nats_publish_duration,
        validation_errors,
        buffer_depth: gauge(
            "gateway_publish_buffer_depth",
            "Messages waiting for NATS to come back (unreachable, or a publish failed)",
        ),
        buffer_capacity: gauge(
            "gateway_publish_buffer_capacity",
            "Most messages that may wait for NATS to come back",
        ),
        in_flight_messages: gauge(
            "gateway_publish_in_flight_messages",
            "Messages published and awaiting their JetStream acknowledgement",
        ),
        nats_connected: gauge(
            "gateway_nats_connected",
            "1 while every NATS connection is up",
        ),
        nats_ready: gauge(
            "gateway_nats_ready",
            "1 while signals can be stored in JetStream",
        ),
        auth_failures,
        auth_key_used,
        stage_restarts,
        requests_shed,
        registry_up: gauge(
            "gateway_registry_up",
            "1 while the source registry is watched and in sync; 0: the last good table is served",
        ),
        registry_sources: gauge(
            "gateway_registry_sources",
            "Sources served from the source registry",
        ),
        registry_invalid: gauge(
            "gateway_registry_invalid_records",
            "Source registry records that do not build and are not served",
        ),
        registry,
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(build)
}

/// The Prometheus text exposition of every metric.
pub fn render_metrics() -> String {
    let mut out = Vec::new();
    let encoder = TextEncoder::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = encoder.encode(&metrics().registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Installs the JSON log subscriber, writing to `writer`. `level` is a
/// level (`info`) or a filter (`at_gateway=debug,info`). Returns `false`
/// if a subscriber was already installed (tests build several apps).
pub fn init_logging<W>(level: &str, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init()
        .is_ok();
    if installed {
        // Panics are logged as JSON like everything else (and still printed
        // to stderr by the default hook, for whoever reads that).
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!(panic = %info, "panic");
            default_hook(info);
        }));
    }
    installed
}
