//! The NATS client must not keep requests whose reply never comes.
//!
//! async-nats 0.51 kept the reply sender of every request until its reply
//! arrived (nats-io/nats.rs#1617). When nats-server stalls, the replies to
//! the requests (publishes, key-value claims) sent before the client
//! reconnects are lost, so each stall leaked memory for the life of the
//! gateway (issue 4, campaign 8). `vendor/async-nats` carries the fix until
//! upstream releases one; this test fails on a client without it.
//!
//! A reply that never comes is made deterministic here: a subscriber that
//! reads every request and never answers.

use crate::common;

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

use common::NatsServer;

/// Requests that time out, in all.
const REQUESTS: usize = 100_000;
/// In flight at once.
const CONCURRENT: usize = 1_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

async fn unanswered_requests(client: &async_nats::Client, n: usize) {
    let mut sent = 0;
    let mut in_flight = FuturesUnordered::new();
    while sent < n || !in_flight.is_empty() {
        while sent < n && in_flight.len() < CONCURRENT {
            let client = client.clone();
            in_flight.push(async move {
                let reply = tokio::time::timeout(
                    Duration::from_millis(20),
                    client.request("silent.service", "ping".into()),
                )
                .await;
                assert!(reply.is_err(), "nobody answers, so every request times out");
            });
            sent += 1;
        }
        in_flight.next().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_reply_never_comes_are_not_kept() {
    let nats = NatsServer::start();
    // The silent service: a second connection that reads and drops.
    let service = async_nats::connect(nats.url()).await.expect("connect");
    let mut requests = service
        .subscribe("silent.service")
        .await
        .expect("subscribe");
    service.flush().await.expect("flush");
    let drain = tokio::spawn(async move { while requests.next().await.is_some() {} });

    let client = async_nats::connect(nats.url()).await.expect("connect");
    // Warm up: allocator arenas, the client's buffers, the runtime.
    unanswered_requests(&client, 2 * CONCURRENT).await;
    let before = rss_kib();
    unanswered_requests(&client, REQUESTS).await;
    // The client still works.
    client.flush().await.expect("flush after the requests");
    let grown_kib = rss_kib().saturating_sub(before);
    eprintln!("{REQUESTS} timed-out requests: the process grew by {grown_kib} KiB");

    // Kept, each of them costs ~300 B (a token string, a oneshot channel and
    // a map slot): ~30 MiB for 100 000. Swept, the map never holds much
    // more than the requests in flight.
    assert!(
        grown_kib < 8 * 1024,
        "{REQUESTS} timed-out requests grew the process by {grown_kib} KiB: \
         the client keeps requests whose reply never came"
    );
    drain.abort();
}
