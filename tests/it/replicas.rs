//! Replay and duplicate protection across restarts and replicas: real
//! gateway processes on one real nats-server, claims in JetStream
//! key-value buckets.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;

fn body(i: usize) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{i}"}}"#)
}

#[actix_rt::test]
async fn a_request_accepted_before_a_restart_is_refused_after_it() {
    let nats = NatsServer::start();
    let mut gw = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let signed = sign(&body(1));
    assert_eq!(gw.send_signed("alpha", &signed).await.status(), 202);

    gw.restart().await; // SIGKILL, then a new process
    let (status, resp) = json_body(gw.send_signed("alpha", &signed).await).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (409, Some("replay")),
        "{resp}"
    );
    // The same body under a new nonce is a duplicate, not a second signal.
    let (status, resp) = json_body(gw.send_signed("alpha", &sign(&body(1))).await).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (409, Some("duplicate")),
        "{resp}"
    );
    assert_eq!(
        read_stream(&nats.url()).await.len(),
        2,
        "one raw, one normalized"
    );
}

#[actix_rt::test]
async fn two_replicas_accept_the_same_signed_request_exactly_once() {
    let nats = NatsServer::start();
    let a = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let b = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let signed: Vec<Signed> = (0..20).map(|i| sign(&body(i))).collect();
    let races = signed.iter().map(|s| async {
        let (ra, rb) = futures_util::join!(a.send_signed("alpha", s), b.send_signed("alpha", s));
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort_unstable();
        statuses
    });
    for statuses in join_all(races).await {
        assert_eq!(statuses, [202, 409], "exactly one replica accepts");
    }
    let stored = read_stream(&nats.url()).await;
    let raws = stored.iter().filter(|m| m.subject == "signals.raw").count();
    assert_eq!(raws, 20, "exactly one message per request in the stream");
}

#[actix_rt::test]
async fn an_unreachable_store_fails_closed_and_does_not_poison_the_retry() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let signed = sign(&body(1));
    nats.pause(); // connected, but nothing answers: the claim times out
    let started = Instant::now();
    let (status, resp) = json_body(gw.send_signed("alpha", &signed).await).await;
    assert_eq!(status, 503, "{resp}");
    assert!(started.elapsed() < Duration::from_secs(3));
    nats.resume();
    // The claim written while paused may land now; it must not make the
    // retry a 409 (nor a long wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, resp) = json_body(gw.send_signed("alpha", &signed).await).await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503, "the retry is never a 409: {resp}");
        assert!(
            Instant::now() < deadline,
            "the retry never succeeded: {resp}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let raws = read_stream(&nats.url())
        .await
        .into_iter()
        .filter(|m| m.subject == "signals.raw")
        .count();
    assert_eq!(raws, 1);
}
