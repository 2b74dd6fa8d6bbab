//! At start-up the gateway reads the server's version and the stream's
//! settings, and refuses, with one message naming what to fix, a server or
//! a stream that cannot give the guarantees it is configured for: a
//! nats-server older than 2.10, a stream that misses our subjects, keeps
//! fewer replicas than configured, or is not on file storage. The binary
//! exits non-zero; it never serves 503s forever on a server it cannot use.

use crate::common;

use std::time::Duration;

use async_nats::jetstream::stream;
use at_gateway::Application;
use common::*;

/// Enough for the monitor's first probe (every 100 ms in the tests) and a
/// debug binary's start.
const WITHIN: Duration = Duration::from_secs(15);

/// Exactly one line of the binary's standard error says why, and the
/// process exits non-zero.
fn assert_refused(status: std::process::ExitStatus, output: &str, expected: &[&str]) {
    assert!(!status.success(), "exit {status}:\n{output}");
    let line = output
        .lines()
        .find(|l| l.starts_with("at-gateway: "))
        .unwrap_or_else(|| panic!("no 'at-gateway: ' error line:\n{output}"));
    for part in expected {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    assert_eq!(
        output
            .lines()
            .filter(|l| l.starts_with("at-gateway: "))
            .count(),
        1,
        "{output}"
    );
}

/// Starts the binary against `nats_url` and expects it to refuse, as
/// [`assert_refused`] says.
async fn assert_refused_at_start_up(nats_url: &str, opts: &AppOptions, expected: &[&str]) {
    let (status, output) = GatewayProcess::start_expecting_exit(nats_url, opts, WITHIN).await;
    assert_refused(status, &output, expected);
}

async fn create_stream(nats: &NatsServer, config: stream::Config) {
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(config).await.unwrap();
}

/// Our stream as the gateway would create it, but for what a test changes.
fn signals_stream() -> stream::Config {
    stream::Config {
        name: STREAM.into(),
        subjects: vec!["signals.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

#[actix_rt::test]
async fn a_server_older_than_2_10_is_refused_at_start_up() {
    let old = FakeNatsServer::start("2.9.10");
    assert_refused_at_start_up(
        &old.url(),
        &AppOptions::default(),
        &[
            "nats-server 2.9.10 is too old",
            "2.10.23 or newer",
            "scripts/ensure-nats.sh",
            &old.url(),
        ],
    )
    .await;
}

#[actix_rt::test]
async fn the_pinned_server_is_accepted() {
    // The same check, on the server the suite runs: the gateway becomes
    // ready (GatewayProcess::start waits for /readyz) and keeps running.
    let nats = NatsServer::start();
    let gateway = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.readyz().await, 200, "{}", gateway.logs());
}

#[actix_rt::test]
async fn a_memory_stream_is_refused_at_start_up() {
    let nats = NatsServer::start();
    create_stream(
        &nats,
        stream::Config {
            storage: stream::StorageType::Memory,
            ..signals_stream()
        },
    )
    .await;
    assert_refused_at_start_up(
        &nats.url(),
        &AppOptions::default(),
        &["stream trading-events uses Memory storage", "File storage"],
    )
    .await;
}

#[actix_rt::test]
async fn a_stream_with_fewer_replicas_than_configured_is_refused_at_start_up() {
    let nats = NatsServer::start();
    create_stream(&nats, signals_stream()).await;
    assert_refused_at_start_up(
        &nats.url(),
        &AppOptions::with_config("[nats]\nstream_replicas = 3\n"),
        &["stream trading-events keeps 1 replica(s), fewer than nats.stream_replicas = 3"],
    )
    .await;
}

/// In-process too: `run_until_stopped` returns the reason, and until then
/// the gateway is unready and answers 503 (fail closed, never a 2xx).
#[actix_rt::test]
async fn an_existing_stream_that_does_not_cover_our_subjects_stops_the_gateway() {
    let nats = NatsServer::start();
    create_stream(
        &nats,
        stream::Config {
            subjects: vec!["orders.>".into()],
            ..signals_stream()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(&nats.url(), &AppOptions::default(), dir.path());
    let app = Application::build(settings).await.expect("gateway builds");
    let health = app.health();
    let result = tokio::time::timeout(WITHIN, app.run_until_stopped())
        .await
        .expect("the gateway stopped by itself");
    let err = result
        .expect_err("an unsuitable stream is an error")
        .to_string();
    assert!(
        err.contains("stream trading-events exists but does not cover subject signals.raw"),
        "{err}"
    );
    let report = health.report();
    assert!(!report.ready);
    assert_eq!(report.problem.as_deref(), Some(err.as_str()));
}
