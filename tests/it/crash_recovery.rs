//! A gateway that crashes (SIGKILL) while publishing leaves a pending claim
//! in the idempotency bucket and, often, the signal's messages in the
//! stream. The caller retries; once the claim's lease has run out a gateway
//! takes the claim over. Its copies of the messages are dropped by JetStream
//! as duplicates (same `Nats-Msg-Id`), so its answer must name the event id
//! that is in the stream, and a message the crashed gateway did not get to
//! must carry that same id. (Found by reliability campaign 4,
//! `reliability/faults/gateway-crash.sh`: before the fix the retry answered
//! 202 with a fresh event id that is nowhere in the stream.)

use crate::common;

use std::time::Duration;

use at_gateway::claims::now_ms;
use at_gateway::idempotency::{self, Record};
use at_gateway::ids::{EventId, SourceId};
use common::*;
use sha2::{Digest, Sha256};

const BODY: &str = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5"}"#;

/// What a gateway killed between publishing `signals.raw` and
/// `signals.normalized` leaves behind: its raw message in the stream, and
/// its pending claim (lease already over, as after the lease's wait).
async fn leave_crash_behind(nats_url: &str, key: &str, event_id: EventId) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("alpha:h:{key}:raw").as_str());
    headers.insert("X-Event-Id", event_id.to_string().as_str());
    let raw = serde_json::json!({"schema": "signal.raw.v1", "event_id": event_id.to_string(),
        "source": "alpha", "body": BODY});
    js.publish_with_headers("signals.raw", headers, raw.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let source = SourceId::parse("alpha").unwrap();
    let intent = Record {
        event_id,
        body_hash: idempotency::body_hash(&source, BODY.as_bytes()),
        until_ms: None,
    };
    leave_pending_claim(&js, &format!("alpha:h:{key}"), &intent).await;
}

/// The pending claim a crashed gateway leaves on idempotency key `key`,
/// meaning to commit `intent`, with its lease already over.
async fn leave_pending_claim(js: &async_nats::jetstream::Context, key: &str, intent: &Record) {
    let entry = serde_json::json!({"state": "pending", "lease_until_ms": now_ms() - 1000,
        "owner": 7, "intent": intent});
    let kv = js.get_key_value("at-gateway-idempotency").await.unwrap();
    let bucket_key = hex::encode(Sha256::digest(key.as_bytes()));
    kv.put(bucket_key, entry.to_string().into()).await.unwrap();
}

/// The caller's retry of `BODY` under `key`: fresh nonce and signature.
async fn retry(gw: &GatewayProcess, key: &str) -> (u16, serde_json::Value) {
    gw.signed(&sign(BODY)).idempotency_key(key).answer().await
}

#[actix_rt::test]
async fn a_retry_after_a_gateway_crash_continues_the_stored_signal_under_its_event_id() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let crashed = EventId(uuid::Uuid::now_v7());
    leave_crash_behind(&nats.url(), "crash-1", crashed).await;

    // The caller's retry: same key and body.
    let (status, answer) = retry(&gw, "crash-1").await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["event_id"],
        crashed.to_string(),
        "the answer names the signal that is in the stream: {answer}\n{}",
        gw.logs()
    );

    let stored = read_stream(&nats.url()).await;
    let raws: Vec<_> = stored
        .iter()
        .filter(|m| m.subject == "signals.raw")
        .collect();
    let normalized: Vec<_> = stored
        .iter()
        .filter(|m| m.subject == "signals.normalized")
        .collect();
    assert_eq!(raws.len(), 1, "the raw message is not stored twice");
    assert_eq!(normalized.len(), 1);
    assert_eq!(
        normalized[0].json["event_id"],
        crashed.to_string(),
        "the message the crashed gateway did not publish carries its event id"
    );
    assert_eq!(
        normalized[0].header("Nats-Msg-Id"),
        Some("alpha:h:crash-1:normalized")
    );

    // And a further retry is a plain duplicate of that same signal.
    let (status, answer) = retry(&gw, "crash-1").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "duplicate");
    assert_eq!(answer["event_id"], crashed.to_string());
}

/// Past JetStream's duplicate window the stream no longer drops a
/// re-published copy, and a sender may retry hours later: the take-over
/// reads the stream and publishes only what the crashed gateway did not
/// store. (Before, the raw message was stored a second time.)
#[actix_rt::test]
async fn a_retry_after_the_duplicate_window_does_not_store_the_crashed_signal_twice() {
    let nats = NatsServer::start();
    let options =
        AppOptions::with_config("[nats]\nmessage_window_sec = 1\nduplicate_window_sec = 1\n");
    let gw = GatewayProcess::start(&nats.url(), &options).await;
    let crashed = EventId(uuid::Uuid::now_v7());
    leave_crash_behind(&nats.url(), "crash-2", crashed).await;
    // The stream forgets the raw message's Nats-Msg-Id once its 1 s window
    // has passed (nats-server purges on a timer of that window).
    tokio::time::sleep(Duration::from_millis(3000)).await;

    let (status, answer) = retry(&gw, "crash-2").await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["event_id"], crashed.to_string(), "{answer}");

    let stored = read_stream(&nats.url()).await;
    let count = |subject: &str| stored.iter().filter(|m| m.subject == subject).count();
    assert_eq!(
        count("signals.raw"),
        1,
        "the raw message the crashed gateway stored is not stored again\n{}",
        gw.logs()
    );
    assert_eq!(
        count("signals.normalized"),
        1,
        "the missing message is published"
    );
    let normalized = stored
        .iter()
        .find(|m| m.subject == "signals.normalized")
        .unwrap();
    assert_eq!(normalized.json["event_id"], crashed.to_string());
}

/// A body-hash key (no id of the sender's) counts only for the source's
/// `content_dedupe_sec`: once that has passed, the same body is a new
/// signal. A crashed gateway's pending claim on it is then taken over as a
/// fresh claim, not continued under the crashed signal's event id.
#[actix_rt::test]
async fn a_crashed_claim_on_a_body_hash_past_its_horizon_starts_a_new_signal() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &AppOptions::default()).await;
    let source = SourceId::parse("alpha").unwrap();
    let body_hash = idempotency::body_hash(&source, BODY.as_bytes());
    let crashed = EventId(uuid::Uuid::now_v7());
    let intent = Record {
        event_id: crashed,
        body_hash,
        until_ms: Some(now_ms() - 1000),
    };
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let key = format!("alpha:b:{}", hex::encode(body_hash));
    leave_pending_claim(&js, &key, &intent).await;

    let (status, answer) = gw.signed(&sign(BODY)).answer().await;
    assert_eq!(status, 202, "{answer}");
    assert_ne!(
        answer["event_id"],
        crashed.to_string(),
        "a body past its horizon is a new signal, under a new event id\n{}",
        gw.logs()
    );
    let stored = read_stream(&nats.url()).await;
    assert!(stored
        .iter()
        .all(|m| m.json["event_id"] == answer["event_id"]));
}
