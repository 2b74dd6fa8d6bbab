//! The source registry: sources kept in a JetStream key-value bucket that
//! every gateway replica watches. Real gateway processes on a real
//! nats-server; records are written to the bucket as `at-gateway sources`
//! writes them, and the answers and the stream say what each replica serves.

use crate::common;

use std::time::{Duration, Instant};

use at_gateway::claims::jetstream::{ensure_bucket, BucketSpec};
use at_gateway::sources::registry::{
    RegistryKey, SealedSecret, SourceRecord, StoredToken, DEFAULT_BUCKET,
};
use at_gateway::sources::TokenDigest;
use common::*;
use secrecy::SecretString;
use serde_json::{json, Value};

/// base64 of `registry-key-for-tests-only-0123` (tests/known-secrets.txt).
const REGISTRY_KEY: &str = "cmVnaXN0cnkta2V5LWZvci10ZXN0cy1vbmx5LTAxMjM=";
/// Tokens and a secret of registry sources (tests/known-secrets.txt).
const TOKEN_1: &str = "tv-registry-token-1-Xq7Pm2Lw9";
const TOKEN_2: &str = "tv-registry-token-2-Bn4Rk8Ys3";
const BOT_SECRET: &str = "registry-bot-secret-Vd5Hq1Zt6Mw";
/// Long enough for any replica to apply a change; a change usually takes
/// well under a second (BENCHMARKS.md measures it).
const WITHIN: Duration = Duration::from_secs(15);

fn registry_options() -> AppOptions {
    AppOptions {
        env: vec![
            ("SOURCE_REGISTRY", "true".into()),
            ("SOURCE_REGISTRY_KEY", REGISTRY_KEY.into()),
        ],
        ..Default::default()
    }
}

fn key() -> RegistryKey {
    RegistryKey::from_base64(&SecretString::from(REGISTRY_KEY)).unwrap()
}

/// Writes `record` under `name`, as `at-gateway sources` does.
async fn put(nats: &NatsServer, name: &str, record: &SourceRecord) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let spec = BucketSpec {
        name: DEFAULT_BUCKET.into(),
        max_age: Duration::ZERO,
        replicas: 1,
    };
    ensure_bucket(&js, &spec).await.unwrap();
    let kv = js.get_key_value(DEFAULT_BUCKET).await.unwrap();
    kv.put(name, serde_json::to_vec(record).unwrap().into())
        .await
        .unwrap();
}

fn tradingview(tokens: Vec<StoredToken>) -> SourceRecord {
    SourceRecord {
        settings: json!({"kind": "tradingview"}).as_object().cloned().unwrap(),
        tokens,
        ..Default::default()
    }
}

fn token(token: &str, not_after: Option<&str>) -> StoredToken {
    StoredToken {
        sha256: TokenDigest::of(token, None).to_hex(),
        not_after: not_after.map(String::from),
    }
}

/// A TradingView alert for `source` with `token`; `n` makes each body its
/// own signal (identical bodies within a minute are one re-sent alert).
async fn alert(gw: &impl Gateway, source: &str, token: &str, n: u32) -> u16 {
    let body = format!(
        r#"{{"passphrase":"{token}","ticker":"BTCUSDT","action":"buy","quantity":"{n}","price":"64000.5"}}"#
    );
    gw.client()
        .post(format!("{}/webhooks/tradingview/{source}", gw.base()))
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("alert sent")
        .status()
        .as_u16()
}

/// Sends alerts until one is answered `want` (each a new signal), or fails
/// after [`WITHIN`]. Returns how long it took.
async fn until_answered(
    gw: &impl Gateway,
    source: &str,
    token: &str,
    want: u16,
    n: &mut u32,
) -> Duration {
    let start = Instant::now();
    loop {
        *n += 1;
        let got = alert(gw, source, token, *n).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < WITHIN,
            "{source} still answered {got}, not {want}, after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn registry_health(gw: &impl Gateway) -> Value {
    gw.healthz().await.1["registry"].clone()
}

async fn until_registry_state(gw: &impl Gateway, state: &str) {
    let start = Instant::now();
    while registry_health(gw).await["state"] != state {
        assert!(start.elapsed() < WITHIN, "registry never {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_source_added_rotated_and_disabled_in_the_registry_changes_every_replica() {
    let nats = NatsServer::start();
    let a = GatewayProcess::start(&nats.url(), &registry_options()).await;
    let b = GatewayProcess::start(&nats.url(), &registry_options()).await;
    for gw in [&a, &b] {
        until_registry_state(gw, "ok").await;
        assert_eq!(
            alert(gw, "trader-7", TOKEN_1, 0).await,
            403,
            "not there yet"
        );
    }
    let mut n = 0;

    put(&nats, "trader-7", &tradingview(vec![token(TOKEN_1, None)])).await;
    for gw in [&a, &b] {
        let took = until_answered(gw, "trader-7", TOKEN_1, 202, &mut n).await;
        eprintln!("added: in force after {took:?}");
    }
    let raws = read_stream(&nats.url()).await;
    let from_trader = raws
        .iter()
        .filter(|m| m.subject == "signals.raw" && m.header("X-Source") == Some("trader-7"))
        .count();
    assert!(from_trader >= 2, "both replicas stored its alerts");
    assert!(
        !raws
            .iter()
            .any(|m| String::from_utf8_lossy(&m.raw).contains(TOKEN_1)),
        "the token is redacted from what is published"
    );

    // Rotation: the old token ends, the new one verifies.
    let ended = "2020-01-01T00:00:00Z";
    let rotated = vec![token(TOKEN_1, Some(ended)), token(TOKEN_2, None)];
    put(&nats, "trader-7", &tradingview(rotated)).await;
    for gw in [&a, &b] {
        until_answered(gw, "trader-7", TOKEN_1, 401, &mut n).await;
        assert_eq!(alert(gw, "trader-7", TOKEN_2, 1000 + n).await, 202);
    }

    let mut disabled = tradingview(vec![token(TOKEN_2, None)]);
    disabled.disabled = true;
    put(&nats, "trader-7", &disabled).await;
    for gw in [&a, &b] {
        until_answered(gw, "trader-7", TOKEN_2, 403, &mut n).await;
        assert_eq!(registry_health(gw).await["sources"], 0);
    }
}

#[actix_rt::test]
async fn a_custom_registry_source_verifies_with_its_sealed_secret_and_a_bad_record_is_not_served() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &registry_options()).await;
    let sealed = key().seal("bot-1", "k1", &SecretString::from(BOT_SECRET));
    let record = SourceRecord {
        settings: json!({"kind": "custom", "priority": "high"})
            .as_object()
            .cloned()
            .unwrap(),
        secrets: vec![SealedSecret {
            id: "k1".into(),
            sealed: sealed.clone(),
            not_after: None,
        }],
        ..Default::default()
    };
    put(&nats, "bot-1", &record).await;
    // The same sealed secret under another name does not open (it is bound
    // to its source): that record is refused, not served.
    put(&nats, "bot-2", &record).await;
    let body = r#"{"symbol":"ETHUSDT","action":"sell","quantity":"2"}"#;
    let start = Instant::now();
    loop {
        let signed = sign_with(
            BOT_SECRET,
            now_secs(),
            &uuid::Uuid::now_v7().to_string(),
            body,
        );
        match gw.send_signed("bot-1", &signed).await.status().as_u16() {
            202 => break,
            403 => assert!(start.elapsed() < WITHIN, "bot-1 never served"),
            other => panic!("bot-1 answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = registry_health(&gw).await;
    assert_eq!(
        (health["sources"].as_u64(), health["invalid"].as_u64()),
        (Some(1), Some(1)),
        "{health}"
    );
    let signed = sign_with(
        BOT_SECRET,
        now_secs(),
        &uuid::Uuid::now_v7().to_string(),
        body,
    );
    assert_eq!(gw.send_signed("bot-2", &signed).await.status(), 403);
    assert!(gw.logs().contains("record refused"), "the log says why");
    assert!(!gw.logs().contains(BOT_SECRET));
}

#[actix_rt::test]
async fn a_replica_that_cannot_reach_the_registry_keeps_serving_its_last_good_table() {
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(&nats.url(), &registry_options()).await;
    put(&nats, "trader-9", &tradingview(vec![token(TOKEN_1, None)])).await;
    let mut n = 0;
    until_answered(&gw, "trader-9", TOKEN_1, 202, &mut n).await;

    nats.kill();
    until_registry_state(&gw, "stale").await;
    let metrics = gw.metrics().await;
    assert!(metrics.contains("gateway_registry_up 0"), "{metrics}");
    // Still a known source: NATS is down (503), not an unknown source (403).
    assert_eq!(alert(&gw, "trader-9", TOKEN_1, 500).await, 503);

    nats.restart();
    until_registry_state(&gw, "ok").await;
    until_answered(&gw, "trader-9", TOKEN_1, 202, &mut n).await;
    // The watch goes on after the outage: a change made now arrives.
    put(&nats, "trader-10", &tradingview(vec![token(TOKEN_2, None)])).await;
    until_answered(&gw, "trader-10", TOKEN_2, 202, &mut n).await;
}
