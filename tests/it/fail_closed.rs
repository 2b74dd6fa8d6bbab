//! Fail-closed: while NATS is unreachable nothing is acknowledged, every
//! webhook gets 503 + Retry-After, and the gateway recovers by itself.
//! A 2xx always means the signal is in JetStream.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;

fn body(i: usize) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{i}"}}"#)
}

#[actix_rt::test]
async fn nats_down_means_503_and_unready_then_202_again_without_a_restart() {
    let app = spawn_app(AppOptions::default()).await;
    assert_eq!(app.post_custom(&body(1)).await.status(), 202);

    app.nats.kill();
    app.wait_ready(false).await;
    let (_, health) = app.healthz().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["nats"], "disconnected");
    let resp = app.post_custom(&body(2)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (_, err) = json_body(resp).await;
    let code = err["code"].as_str().unwrap();
    assert!(
        ["nats_unavailable", "publish_timeout", "store_unavailable"].contains(&code),
        "{err}"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains("gateway_nats_connected 0"), "{metrics}");

    app.nats.restart();
    app.wait_ready(true).await;
    let (_, health) = app.healthz().await;
    assert_eq!(health["nats"], "connected");
    assert_eq!(app.post_custom(&body(3)).await.status(), 202);
}

#[actix_rt::test]
async fn the_gateway_starts_and_serves_health_while_nats_is_down() {
    let nats = NatsServer::start();
    nats.kill();
    let app = spawn_app_with_nats(
        nats,
        AppOptions {
            wait_ready: false,
            // A 1 s message window: the refused signal is dropped before NATS returns.
            config: "[nats]\nmessage_window_sec = 1\n".into(),
            ..Default::default()
        },
    )
    .await;
    let (status, health) = app.healthz().await;
    assert_eq!(status, 200);
    assert_eq!(health["nats"], "disconnected");
    assert_eq!(app.readyz().await, 503);
    assert_eq!(app.post_custom(&body(1)).await.status(), 503);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    app.nats.restart();
    app.wait_ready(true).await;
    assert_eq!(app.post_custom(&body(2)).await.status(), 202);
    assert_eq!(
        app.messages_on("signals.raw").await.len(),
        1,
        "the 503 was never stored"
    );
}

#[actix_rt::test]
async fn a_503_whose_signal_never_landed_does_not_poison_its_retry() {
    let app = spawn_app(AppOptions::default()).await;
    let signed = sign(&body(1));
    app.nats.kill();
    assert_eq!(app.send_signed("alpha", &signed).await.status(), 503);
    // Let the message window (4 s in tests) run out: the delivery gives up
    // and releases the nonce and the idempotency key.
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.nats.restart();
    app.wait_ready(true).await;
    let (status, resp) = json_body(app.send_signed("alpha", &signed).await).await;
    assert_eq!(
        status, 202,
        "same nonce, same body, after a failure: {resp}"
    );
    assert_eq!(app.messages_on("signals.raw").await.len(), 1);
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}

/// The publisher's own buffering is tested with the memory store: with the
/// key-value store (the default) a request arriving while NATS is down
/// already stops at its claim (503 `store_unavailable`).
fn memory_store(config: &str) -> AppOptions {
    AppOptions {
        env: vec![("STORE_BACKEND", "memory".into())],
        ..AppOptions::with_config(config)
    }
}

/// One request that waits for NATS and, 300 ms into its wait, a second:
/// both answers and how long the second took.
async fn a_second_request_while_the_first_waits(
    app: &TestApp,
) -> (reqwest::Response, reqwest::Response, Duration) {
    let first_body = body(1);
    let first = app.post_custom(&first_body);
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let resp = app.post_custom(&body(2)).await;
        (resp, started.elapsed())
    };
    let (first, (second, waited)) = futures_util::join!(first, second);
    (first, second, waited)
}

#[actix_rt::test]
async fn a_retry_after_a_late_landing_is_409_and_never_a_second_copy() {
    let app = spawn_app(memory_store("")).await;
    let signed = sign(&body(1));
    let tv = format!(r#"{{"passphrase":"{TV_TOKEN}","ticker":"ETHUSDT","action":"sell"}}"#);
    app.nats.kill();
    let (custom, tradingview) = futures_util::join!(
        app.send_signed("alpha", &signed),
        app.post_tradingview("/webhooks/tradingview", "application/json", &tv)
    );
    assert_eq!(custom.status(), 503);
    assert_eq!(tradingview.status(), 503);
    // NATS is back inside the messages' window: they land after their 503.
    app.nats.restart();
    app.wait_ready(true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.messages_on("signals.raw").await.len() < 2 {
        assert!(Instant::now() < deadline, "buffered messages never landed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, resp) = json_body(app.send_signed("alpha", &signed).await).await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["code"], "replay");
    // TradingView re-sends the identical body.
    let (status, resp) = json_body(
        app.post_tradingview("/webhooks/tradingview", "application/json", &tv)
            .await,
    )
    .await;
    assert_eq!((status, resp["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(app.messages_on("signals.raw").await.len(), 2);
    assert_eq!(app.messages_on("signals.normalized").await.len(), 2);
}

#[actix_rt::test]
async fn a_full_buffer_answers_503_at_once() {
    // Room for one request's two messages.
    let app = spawn_app(memory_store("[nats]\nbuffer_capacity = 2\n")).await;
    app.nats.kill();
    app.wait_ready(false).await;
    let (first, second, waited) = a_second_request_while_the_first_waits(&app).await;
    assert_eq!(first.status(), 503);
    let (status, err) = json_body(second).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("buffer_full")));
    assert!(
        waited < Duration::from_millis(1000),
        "answered at once, not after the ack wait: {waited:?}"
    );
}

#[actix_rt::test]
async fn a_silent_nats_is_noticed_by_ack_timeouts_and_answers_503_within_the_cap() {
    let app = spawn_app(AppOptions::default()).await;
    assert_eq!(app.post_custom(&body(1)).await.status(), 202);
    app.nats.pause();
    let started = Instant::now();
    let resp = app.post_custom(&body(2)).await;
    let waited = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert!(
        waited < Duration::from_millis(2500),
        "503 within the 1.5 s test cap, took {waited:?}"
    );
    app.wait_ready(false).await;
    app.nats.resume();
    app.wait_ready(true).await;
    assert_eq!(app.post_custom(&body(3)).await.status(), 202);
}

#[actix_rt::test]
async fn no_2xx_is_ever_missing_from_the_stream_across_a_nats_crash() {
    let app = spawn_app(AppOptions::default()).await;
    let app = &app;
    let send = |round: usize| async move { json_body(app.post_custom(&body(round)).await).await };
    let mut accepted = Vec::new();
    let mut keep = |status: u16, resp: &serde_json::Value| {
        assert!(status == 202 || status == 503, "{status} {resp}");
        if status == 202 {
            accepted.push(resp["event_id"].as_str().unwrap().to_string());
        }
        status
    };
    // Before: all served.
    for (status, resp) in join_all((0..20).map(send)).await {
        assert_eq!(keep(status, &resp), 202, "{resp}");
    }
    // During: NATS is SIGKILLed while these are in flight, so some may
    // have been stored and answered, others not.
    let in_flight = join_all((20..60).map(send));
    let crash = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.nats.kill();
    };
    for (status, resp) in futures_util::join!(in_flight, crash).0 {
        keep(status, &resp);
    }
    // After the restart: all served again.
    app.nats.restart();
    app.wait_ready(true).await;
    for (status, resp) in join_all((60..80).map(send)).await {
        assert_eq!(keep(status, &resp), 202, "{resp}");
    }
    let stored: Vec<String> = app
        .messages_on("signals.normalized")
        .await
        .iter()
        .map(|m| m.json["event_id"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates in the stream");
    for id in &accepted {
        assert!(
            unique.contains(id),
            "202 for {id} but it is not in the stream"
        );
    }
}

#[actix_rt::test]
async fn a_retry_while_the_first_publish_is_pending_joins_it_instead_of_publishing_again() {
    let app = spawn_app(memory_store("[nats]\nrequest_ack_wait_ms = 6000\n")).await;
    let keyed = || app.signed(&sign(&body(1))).idempotency_key("join-1");
    app.nats.kill();
    let first = keyed().send();
    let retry = async {
        // Arrives while the first is still waiting for NATS.
        tokio::time::sleep(Duration::from_millis(300)).await;
        keyed().send().await
    };
    let heal = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        app.nats.restart();
    };
    let (first, retry, ()) = futures_util::join!(first, retry, heal);
    let (status, first) = json_body(first).await;
    assert_eq!(status, 202, "{first}");
    let (status, retry) = json_body(retry).await;
    assert_eq!(status, 409, "the retry joined the pending publish: {retry}");
    assert_eq!(retry["code"], "duplicate");
    assert_eq!(retry["event_id"], first["event_id"]);
    assert_eq!(app.messages_on("signals.raw").await.len(), 1);
}

#[actix_rt::test]
async fn a_burst_while_nats_is_healthy_is_not_limited_by_the_outage_buffer() {
    // Room for two messages to wait for NATS, i.e. one request: the seed's
    // buffer doubled as the in-flight limit, and a burst of 40 requests
    // (80 messages in flight at once) got 503 buffer_full.
    let app = spawn_app(memory_store("[nats]\nbuffer_capacity = 2\n")).await;
    let burst: Vec<_> = (0..40)
        .map(|i| app.signed(&sign(&body(1000 + i))).try_send())
        .collect();
    let answers = futures_util::future::join_all(burst).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.expect("answered").status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(app.messages_on("signals.normalized").await.len(), 40);
}

#[actix_rt::test]
async fn the_in_flight_limit_answers_503_overloaded_at_once() {
    // One request's two messages in flight at a time.
    let app = spawn_app(memory_store("[nats]\nmax_in_flight_messages = 2\n")).await;
    app.nats.pause();
    let (first, second, waited) = a_second_request_while_the_first_waits(&app).await;
    app.nats.resume();
    assert_eq!(first.status(), 503);
    let (status, err) = json_body(second).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("overloaded")));
    assert!(waited < Duration::from_millis(1000), "at once: {waited:?}");
}
