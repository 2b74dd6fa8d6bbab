//! `stores.backend = "stream"`: the nonce and idempotency claims are
//! messages of the signals' own stream, written in one atomic batch with
//! `signals.raw` and `signals.normalized` (claims/batch.rs). Real gateways,
//! a real nats-server (one node, and a three-node R3 cluster), and what
//! landed in JetStream read back.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;

const STREAM_CLAIMS: &str = "[stores]\nbackend = \"stream\"\n";

fn body(i: usize) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{i}"}}"#)
}

fn options(extra: &str) -> AppOptions {
    AppOptions::with_config(format!("{STREAM_CLAIMS}{extra}"))
}

/// Sends again while the answer is 503 (a retry, as API_SPEC tells callers
/// to do), for up to 20 s; the first other answer.
async fn first_answer_not_503<F, Fut>(send: F) -> (u16, serde_json::Value)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, resp) = json_body(send().await).await;
        if status != 503 {
            return (status, resp);
        }
        assert!(Instant::now() < deadline, "still 503 after 20 s: {resp}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn on<'a>(stored: &'a [Stored], prefix: &str) -> Vec<&'a Stored> {
    stored
        .iter()
        .filter(|m| m.subject.starts_with(prefix))
        .collect()
}

#[actix_rt::test]
async fn claims_land_in_the_signals_batch_and_refuse_a_replay_and_a_duplicate() {
    let app = spawn_app(options("")).await;
    let key = "order-1";
    let signed = sign(&body(1));
    let (status, first) = app.signed(&signed).idempotency_key(key).answer().await;
    assert_eq!(status, 202, "{first}");

    let stored = app.stream_messages().await;
    let subjects: Vec<&str> = stored.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(
        subjects[0].starts_with("at-gateway.claims.nonce.alpha."),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("at-gateway.claims.key.alpha."),
        "{subjects:?}"
    );
    assert_eq!(&subjects[2..], ["signals.raw", "signals.normalized"]);
    for claim in &stored[..2] {
        assert_eq!(claim.json["event_id"], first["event_id"]);
        assert!(claim.header("Nats-TTL").is_some_and(|t| t.ends_with('s')));
    }
    // The nonce counts for twice the replay window, the key for the TTL.
    assert_eq!(stored[0].header("Nats-TTL"), Some("600s"));
    assert_eq!(stored[1].header("Nats-TTL"), Some("86400s"));
    assert_eq!(stored[2].json["event_id"], first["event_id"]);

    // The same request again: its nonce is claimed.
    let (status, resp) = app.signed(&signed).idempotency_key(key).answer().await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (409, Some("replay")),
        "{resp}"
    );
    // A fresh nonce, the same key: a duplicate naming the stored signal.
    let (status, dup) = app
        .signed(&sign(&body(1)))
        .idempotency_key(key)
        .answer()
        .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("duplicate")),
        "{dup}"
    );
    assert_eq!(dup["event_id"], first["event_id"]);
    assert_eq!(dup["payload_mismatch"], false);
    let (status, dup) = app
        .signed(&sign(&body(2)))
        .idempotency_key(key)
        .answer()
        .await;
    assert_eq!(
        (status, dup["payload_mismatch"].as_bool()),
        (409, Some(true)),
        "{dup}"
    );

    let stored = app.stream_messages().await;
    assert_eq!(stored.len(), 4, "a refused batch stores nothing");
    assert_eq!(on(&stored, "signals.").len(), 2);
}

#[actix_rt::test]
async fn a_batch_that_failed_stored_nothing_so_its_retry_is_accepted() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &options("")).await;
    let key = "order-2";
    let signed = sign(&body(1));
    nats.kill();
    let (status, resp) = gw.signed(&signed).idempotency_key(key).answer().await;
    assert_eq!(status, 503, "{resp}");
    // The delivery gives up after the message window (4 s in the tests):
    // wait it out, so nothing of this request can land later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    nats.restart();
    let (status, accepted) =
        first_answer_not_503(|| gw.signed(&signed).idempotency_key(key).send()).await;
    assert_eq!(status, 202, "the retry is never a 409: {accepted}");
    let stored = read_stream(&nats.url()).await;
    assert_eq!(on(&stored, "signals.raw").len(), 1);
    assert_eq!(on(&stored, "at-gateway.claims.").len(), 2);
    assert_eq!(
        on(&stored, "signals.raw")[0].json["event_id"],
        accepted["event_id"]
    );
}

#[actix_rt::test]
async fn two_replicas_racing_on_one_request_store_it_once() {
    let nats = NatsServer::start();
    let a = GatewayProcess::start(&nats.url(), &options("")).await;
    let b = GatewayProcess::start(&nats.url(), &options("")).await;
    let signed: Vec<Signed> = (0..20).map(|i| sign(&body(i))).collect();
    let races = signed.iter().map(|s| async {
        let (ra, rb) = futures_util::join!(a.send_signed("alpha", s), b.send_signed("alpha", s));
        let (ra, rb) = (json_body(ra).await, json_body(rb).await);
        let mut answers = [(ra.0, ra.1["code"].clone()), (rb.0, rb.1["code"].clone())];
        answers.sort_by_key(|(status, _)| *status);
        answers
    });
    for [(won, _), (lost, code)] in join_all(races).await {
        assert_eq!((won, lost), (202, 409), "exactly one replica accepts");
        assert_eq!(code, "replay");
    }
    let stored = read_stream(&nats.url()).await;
    assert_eq!(on(&stored, "signals.raw").len(), 20);
    assert_eq!(on(&stored, "signals.normalized").len(), 20);
}

#[actix_rt::test]
async fn an_identical_alert_counts_once_only_for_its_content_dedupe_window() {
    let config = "[sources.tradingview]\ncontent_dedupe_sec = 1\n";
    let app = spawn_app(options(config)).await;
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let send = || app.post_tradingview(&path, "text/plain", "buy BTCUSDT 1");
    assert_eq!(send().await.status(), 202);
    let (status, dup) = json_body(send().await).await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("duplicate")),
        "{dup}"
    );
    // The key claim's TTL is the window (1 s); the server drops it within
    // about a second more, and the same body is a new signal again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, resp) = json_body(send().await).await;
        if status == 202 {
            break;
        }
        assert_eq!(resp["code"], "duplicate", "{resp}");
        assert!(Instant::now() < deadline, "the claim never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(app.messages_on("signals.normalized").await.len(), 2);
}

#[actix_rt::test]
async fn an_existing_stream_without_atomic_batches_is_refused_at_start_up() {
    let nats = NatsServer::start();
    // The stream a jetstream-backend gateway made: no batches, no TTLs.
    let plain = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    drop(plain);
    let (status, output) =
        GatewayProcess::start_expecting_exit(&nats.url(), &options(""), Duration::from_secs(20))
            .await;
    assert!(!status.success(), "{output}");
    for needed in [
        "stream trading-events does not take the claims of stores.backend = \\\"stream\\\"",
        "allow_atomic (now false)",
        "allow_msg_ttl (now false)",
        "at-gateway.claims.>",
    ] {
        assert!(output.contains(needed), "{needed:?} not in: {output}");
    }
}

#[actix_rt::test]
async fn on_a_three_node_r3_cluster_a_signal_and_its_claims_are_stored_once() {
    let cluster = NatsServer::start_cluster(3);
    let urls = cluster
        .iter()
        .map(|n| n.url())
        .collect::<Vec<_>>()
        .join(",");
    let gw = GatewayProcess::start(&urls, &options("[nats]\nstream_replicas = 3\n")).await;
    let key = "order-r3";
    let signed = sign(&body(3));
    let (status, first) = gw.signed(&signed).idempotency_key(key).answer().await;
    assert_eq!(status, 202, "{first}");
    let (status, dup) = gw
        .signed(&sign(&body(3)))
        .idempotency_key(key)
        .answer()
        .await;
    assert_eq!(
        (status, dup["event_id"].clone()),
        (409, first["event_id"].clone()),
        "{dup}"
    );

    // Every node has the stream with three replicas; read it back from each.
    for node in &cluster {
        let stored = read_stream(&node.url()).await;
        assert_eq!(stored.len(), 4, "node {}", node.url());
        assert_eq!(
            on(&stored, "signals.normalized")[0].json["event_id"],
            first["event_id"]
        );
    }
}

#[actix_rt::test]
async fn a_signal_larger_than_the_servers_max_payload_is_413_at_once_with_either_store() {
    let big = format!(
        r#"{{"symbol":"BTCUSDT","action":"buy","note":"{}"}}"#,
        "x".repeat(100_000)
    );
    for backend in ["jetstream", "stream"] {
        let nats = NatsServer::start_with("max_payload: 65536\n");
        let opts = AppOptions::with_config(format!("[stores]\nbackend = \"{backend}\"\n"));
        let app = spawn_app_with_nats(nats, opts).await;
        let started = Instant::now();
        let (status, resp) = json_body(app.post_custom(&big).await).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (413, Some("too_large_for_stream")),
            "{backend}: {resp}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{backend}: not at once"
        );
        assert!(app.messages_on("signals.raw").await.is_empty(), "{backend}");
        // A signal that fits is still stored.
        assert_eq!(app.post_custom(&body(1)).await.status(), 202, "{backend}");
    }
}

#[actix_rt::test]
async fn a_retry_after_an_uncertain_batch_is_stored_once_and_named_by_its_event_id() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &options("")).await;
    let key = "order-uncertain";
    nats.pause(); // connected, nothing answers: the batch's outcome is unknown
    let (status, resp) = gw
        .signed(&sign(&body(1)))
        .idempotency_key(key)
        .answer()
        .await;
    assert_eq!(status, 503, "{resp}");
    nats.resume();
    // The first batch may land now (its delivery keeps trying within the
    // message window): the retry, under a fresh nonce, is then a duplicate
    // naming the stored signal; otherwise it stores the signal itself.
    let answer =
        first_answer_not_503(|| gw.signed(&sign(&body(1))).idempotency_key(key).send()).await;
    let stored = read_stream(&nats.url()).await;
    let raws = on(&stored, "signals.raw");
    assert_eq!(raws.len(), 1, "stored once");
    let (status, resp) = answer;
    assert!(status == 202 || status == 409, "{status}: {resp}");
    if status == 409 {
        assert_eq!(resp["code"], "duplicate", "{resp}");
        assert_eq!(resp["payload_mismatch"], false);
    }
    assert_eq!(resp["event_id"], raws[0].json["event_id"], "{resp}");
}
