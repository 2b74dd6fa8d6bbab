//! The source-registry instrument (issue 16), driven by `bench/registry.sh`:
//!
//! - `fill`: writes N custom sources (`{prefix}0` … `{prefix}N-1`) into the
//!   registry bucket, each with the same secret sealed for it, as
//!   `at-gateway sources add` would store them; prints how long it took.
//! - `propagate`: R rounds of "add a TradingView source, then disable it",
//!   each timed from the write's acknowledgement until every gateway given
//!   answers its alerts accordingly (202, then 403); prints one JSON line
//!   per round.
//! - `lookup`: the cost of the gateway's source lookup (one `SourceId` parse
//!   and one hash-map get in the live table, as `ingress` does per request)
//!   in a table of 1 and of N sources.
//!
//! Usage: `registry fill --nats URL --key B64 --count N --secret S [--prefix src]`
//!        `registry propagate --nats URL --gateways URL1,URL2 --rounds R`
//!        `registry lookup --count N`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use at_gateway::claims::jetstream::{ensure_bucket, BucketSpec};
use at_gateway::ids::SourceId;
use at_gateway::sources::registry::{
    now_text, random_token, RegistryKey, SealedSecret, SourceRecord, StoredToken, DEFAULT_BUCKET,
};
use at_gateway::sources::{SourceDefaults, TokenDigest};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

fn usage() -> ! {
    eprintln!(
        "usage: registry fill --nats URL --key B64 --count N --secret S [--prefix P]\n\
         \x20      registry propagate --nats URL --gateways URL1,URL2 --rounds R\n\
         \x20      registry lookup --count N"
    );
    std::process::exit(2)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn required(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| usage())
}

fn number(args: &[String], name: &str) -> usize {
    required(args, name).parse().unwrap_or_else(|_| usage())
}

async fn bucket(nats: &str) -> async_nats::jetstream::kv::Store {
    let client = async_nats::connect(nats).await.expect("NATS reachable");
    let js = async_nats::jetstream::new(client);
    let spec = BucketSpec {
        name: DEFAULT_BUCKET.into(),
        max_age: Duration::ZERO,
        replicas: 1,
    };
    ensure_bucket(&js, &spec).await.expect("registry bucket");
    js.get_key_value(DEFAULT_BUCKET)
        .await
        .expect("registry bucket")
}

fn settings(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap_or_default()
}

async fn fill(args: &[String]) {
    let key = RegistryKey::from_base64(&SecretString::from(required(args, "--key")))
        .unwrap_or_else(|e| panic!("--key: {e}"));
    let secret = SecretString::from(required(args, "--secret"));
    let count = number(args, "--count");
    let prefix = arg(args, "--prefix").unwrap_or_else(|| "src".into());
    let kv = bucket(&required(args, "--nats")).await;
    let started = Instant::now();
    // Puts in flight in windows, so the run is bounded by NATS, not by
    // round trips one after another.
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    for window in names.chunks(256) {
        let puts = window.iter().map(|name| {
            let record = SourceRecord {
                settings: settings(json!({"kind": "custom"})),
                secrets: vec![SealedSecret {
                    id: "k1".into(),
                    sealed: key.seal(name, "k1", &secret),
                    not_after: None,
                }],
                updated_at: now_text(),
                ..Default::default()
            };
            let kv = kv.clone();
            let value = serde_json::to_vec(&record).expect("a record serializes");
            async move { kv.put(name, value.into()).await }
        });
        for put in futures_util::future::join_all(puts).await {
            put.expect("registry put");
        }
    }
    println!(
        "{}",
        json!({"filled": count, "seconds": started.elapsed().as_secs_f64()})
    );
}

/// Sends one alert for `source` to every gateway; their statuses. Each
/// gateway gets a body of its own: the replicas share their idempotency
/// claims, so one body sent to both is one signal and the second answer
/// would be 409.
async fn alerts(
    http: &reqwest::Client,
    gateways: &[String],
    source: &str,
    token: &str,
    n: usize,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (i, gw) in gateways.iter().enumerate() {
        let body = format!(
            r#"{{"passphrase":"{token}","ticker":"BTCUSDT","action":"buy","quantity":"{n}","replica":"{i}"}}"#
        );
        let status = http
            .post(format!("{gw}/webhooks/tradingview/{source}"))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        statuses.push(status);
    }
    statuses
}

/// From now until every gateway answers `want`; polls every 5 ms, gives up
/// after 30 s.
async fn until_all(
    http: &reqwest::Client,
    gateways: &[String],
    source: &str,
    token: &str,
    want: u16,
    n: &mut usize,
) -> Result<Duration, Vec<u16>> {
    let start = Instant::now();
    let mut done = vec![false; gateways.len()];
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        *n += 1;
        last = alerts(http, gateways, source, token, *n).await;
        for (i, status) in last.iter().enumerate() {
            done[i] |= *status == want;
        }
        if done.iter().all(|d| *d) {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // What each gateway answered last, to tell why.
    Err(last)
}

async fn propagate(args: &[String]) {
    let kv = bucket(&required(args, "--nats")).await;
    let gateways: Vec<String> = required(args, "--gateways")
        .split(',')
        .map(String::from)
        .collect();
    let rounds = number(args, "--rounds");
    let http = reqwest::Client::new();
    let mut n = 0;
    for round in 0..rounds {
        let name = format!("probe-{round}-{}", std::process::id());
        let token = random_token();
        let mut record = SourceRecord {
            settings: settings(json!({"kind": "tradingview"})),
            tokens: vec![StoredToken {
                sha256: TokenDigest::of(token.expose_secret(), None).to_hex(),
                not_after: None,
            }],
            updated_at: now_text(),
            ..Default::default()
        };
        kv.put(&name, serde_json::to_vec(&record).expect("json").into())
            .await
            .expect("registry put");
        let added = until_all(&http, &gateways, &name, token.expose_secret(), 202, &mut n).await;
        record.disabled = true;
        kv.put(&name, serde_json::to_vec(&record).expect("json").into())
            .await
            .expect("registry put");
        let disabled = until_all(&http, &gateways, &name, token.expose_secret(), 403, &mut n).await;
        let ms = |r: &Result<Duration, Vec<u16>>| r.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0);
        println!(
            "{}",
            json!({
                "round": round,
                "added_ms": ms(&added),
                "disabled_ms": ms(&disabled),
                "added_last": added.err(),
                "disabled_last": disabled.err(),
            })
        );
    }
}

fn lookup(args: &[String]) {
    let count = number(args, "--count");
    let defaults = SourceDefaults::default();
    let record = SourceRecord {
        settings: settings(json!({"kind": "tradingview"})),
        tokens: vec![StoredToken {
            sha256: TokenDigest::of("bench-only-token-0123456789", None).to_hex(),
            not_after: None,
        }],
        ..Default::default()
    };
    for n in [1, count] {
        let table: HashMap<SourceId, Arc<_>> = (0..n)
            .map(|i| {
                let id = SourceId::parse(&format!("src{i}")).expect("a valid name");
                let source = record.build(&id, None, &defaults).expect("a valid record");
                (id, Arc::new(source))
            })
            .collect();
        let names: Vec<String> = (0..n.max(1000)).map(|i| format!("src{}", i % n)).collect();
        let iterations = 2_000_000;
        let started = Instant::now();
        for i in 0..iterations {
            let name = &names[i % names.len()];
            let found = SourceId::parse(name).and_then(|id| table.get(&id).cloned());
            black_box(found);
        }
        let ns = started.elapsed().as_nanos() as f64 / iterations as f64;
        println!("{}", json!({"sources": n, "lookup_ns": ns}));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fill") => fill(&args).await,
        Some("propagate") => propagate(&args).await,
        Some("lookup") => lookup(&args),
        _ => usage(),
    }
}
