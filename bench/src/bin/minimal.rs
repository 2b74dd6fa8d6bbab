//! The minimal same-work program: what the gateway's happy path has to do,
//! and nothing else, written as directly as possible.
//!
//! `POST /webhooks/{source}`: source allow-list, timestamp window, HMAC-SHA256
//! check of `X-Signature` (constant time, the gateway's scheme), nonce insert
//! into an in-memory set, JSON parse, then two JetStream publishes
//! (`<prefix>.raw`: the body; `<prefix>.normalized`: a small JSON document
//! built from it), both in flight at once with their `Nats-Msg-Id`, and both
//! acknowledgements awaited before the 202. No actors, no metrics, no logs,
//! no idempotency store, no rate limiter, no retries.
//!
//! Same actix-web build and worker count as the gateway, one NATS connection
//! per HTTP worker (made on the worker's thread, as the gateway does), and
//! every request is its own task on its worker, so many publishes are in
//! flight. It publishes into a stream of its own (`bench-minimal`, subjects
//! `minimal.>`), file storage and a 120 s duplicate window like the
//! gateway's `trading-events`.
//!
//! With `--tradingview-token T` (bench/burst.sh), also
//! `POST /webhooks/tradingview?token=T`, TradingView's way (no headers): the
//! token compared in constant time, the body parsed as above, its SHA-256 the
//! idempotency key (the gateway's key for a body without an id), and the
//! same two publishes. Without the flag that path is the generic one.
//!
//! Usage: `minimal --addr 127.0.0.1:PORT --nats nats://127.0.0.1:4222
//!         --secret S [--sources alpha,beta] [--tradingview-token T]
//!         [--replicas N]` (N: the stream's replicas on a cluster, 1 by default)

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Same worker count as the gateway on the 2-core bench machine.
const WORKERS: usize = 2;
/// The gateway's defaults: replay window, ack timeout, publish buffer.
const REPLAY_WINDOW_SECS: u64 = 300;
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_ACK_INFLIGHT: usize = 2000;
const MAX_BODY: usize = 1 << 20;
const STREAM: &str = "bench-minimal";
const SUBJECT_RAW: &str = "minimal.raw";
const SUBJECT_NORMALIZED: &str = "minimal.normalized";

/// Nonces seen, in two generations: a nonce is remembered for at least one
/// and at most two `2 x replay window` periods, then the old generation is
/// dropped whole. Shared by the workers behind one mutex (held for one hash
/// insert).
struct Nonces {
    current: HashSet<Box<str>>,
    previous: HashSet<Box<str>>,
    rotated: Instant,
}

impl Nonces {
    /// False if the nonce was seen.
    fn insert(&mut self, key: String) -> bool {
        if self.rotated.elapsed() >= Duration::from_secs(2 * REPLAY_WINDOW_SECS) {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = Instant::now();
        }
        if self.previous.contains(key.as_str()) {
            return false;
        }
        self.current.insert(key.into_boxed_str())
    }
}

struct Shared {
    secret: Vec<u8>,
    sources: HashSet<String>,
    nonces: Mutex<Nonces>,
    tradingview_token: Option<String>,
}

fn answer(status: actix_web::http::StatusCode, code: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(format!(r#"{{"status":"error","code":"{code}"}}"#))
}

async fn webhook(
    req: HttpRequest,
    source: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
    js: web::Data<jetstream::Context>,
) -> HttpResponse {
    use actix_web::http::StatusCode as S;
    let source = source.into_inner();
    if !shared.sources.contains(&source) {
        return answer(S::FORBIDDEN, "source_not_allowed");
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(nonce), Some(signature)) = (
        header("x-timestamp"),
        header("x-nonce"),
        header("x-signature"),
    ) else {
        return answer(S::UNAUTHORIZED, "missing_signature");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match timestamp.parse::<u64>() {
        Ok(ts) if ts.abs_diff(now) <= REPLAY_WINDOW_SECS => {}
        _ => return answer(S::UNAUTHORIZED, "stale_timestamp"),
    }
    let mut mac_bytes = [0u8; 32];
    let well_formed = signature
        .strip_prefix("sha256=")
        .is_some_and(|h| hex::decode_to_slice(h, &mut mac_bytes).is_ok());
    if !well_formed {
        return answer(S::UNAUTHORIZED, "bad_signature");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&shared.secret).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(&body);
    if mac.verify_slice(&mac_bytes).is_err() {
        return answer(S::UNAUTHORIZED, "bad_signature");
    }
    let fresh = shared
        .nonces
        .lock()
        .expect("nonce lock")
        .insert(format!("{source}\n{nonce}"));
    if !fresh {
        return answer(S::CONFLICT, "replay");
    }
    publish_signal(&js, &source, timestamp, nonce, body).await
}

/// `POST /webhooks/tradingview?token=T`: TradingView sends no headers.
async fn tradingview(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
    js: web::Data<jetstream::Context>,
) -> HttpResponse {
    use actix_web::http::StatusCode as S;
    let token = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or("");
    let expected = shared.tradingview_token.as_deref().unwrap_or("");
    if expected.is_empty() || !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        return answer(S::UNAUTHORIZED, "bad_token");
    }
    let key = hex::encode(Sha256::digest(&body));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    publish_signal(&js, "tradingview", &now, &key, body).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// JSON parse, the normalized document, both publishes in flight, both acks.
async fn publish_signal(
    js: &jetstream::Context,
    source: &str,
    timestamp: &str,
    nonce: &str,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode as S;
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(doc)) => serde_json::Value::Object(doc),
        _ => return answer(S::UNPROCESSABLE_ENTITY, "invalid_json"),
    };
    let (Some(symbol), Some(action)) = (doc["symbol"].as_str(), doc["action"].as_str()) else {
        return answer(S::UNPROCESSABLE_ENTITY, "invalid_signal");
    };
    let key = doc["idempotency_key"].as_str().unwrap_or(nonce);
    let normalized = serde_json::json!({
        "source": source,
        "symbol": symbol,
        "action": action,
        "quantity": doc["quantity"],
        "price": doc["price"],
        "idempotency_key": key,
        "timestamp": timestamp,
    });
    let normalized = serde_json::to_vec(&normalized).expect("serializable");
    let id = format!("{source}:{key}");

    // Both messages in flight at once, then both acknowledgements awaited.
    let raw = js
        .send_publish(
            SUBJECT_RAW,
            PublishMessage::build()
                .payload(body)
                .message_id(format!("{id}:raw")),
        )
        .await;
    let norm = js
        .send_publish(
            SUBJECT_NORMALIZED,
            PublishMessage::build()
                .payload(normalized.into())
                .message_id(format!("{id}:normalized")),
        )
        .await;
    let acked = match (raw, norm) {
        (Ok(a), Ok(b)) => {
            let (a, b) = tokio::join!(a.into_future(), b.into_future());
            a.is_ok() && b.is_ok()
        }
        _ => false,
    };
    if !acked {
        return answer(S::SERVICE_UNAVAILABLE, "nats_unavailable");
    }
    HttpResponse::Accepted()
        .content_type("application/json")
        .body(r#"{"status":"accepted"}"#)
}

fn usage() -> ! {
    eprintln!(
        "usage: minimal --addr HOST:PORT --nats nats://HOST:PORT --secret S [--sources a,b,...] \
         [--tradingview-token T] [--replicas N]"
    );
    std::process::exit(2)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let (mut addr, mut nats, mut secret, mut sources) = (None, None, None, "alpha".to_owned());
    let mut tradingview_token = None;
    let mut replicas = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(value) = args.next() else { usage() };
        match arg.as_str() {
            "--addr" => addr = Some(value),
            "--nats" => nats = Some(value),
            "--secret" => secret = Some(value),
            "--sources" => sources = value,
            "--tradingview-token" => tradingview_token = Some(value),
            "--replicas" => replicas = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let (Some(addr), Some(nats), Some(secret)) = (addr, nats, secret) else {
        usage()
    };

    // The stream, once, before serving.
    let servers: Vec<async_nats::ServerAddr> = nats
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| std::io::Error::other(format!("NATS {nats}: {e}")))?;
    let control = async_nats::connect(servers.clone())
        .await
        .map_err(|e| std::io::Error::other(format!("NATS {nats}: {e}")))?;
    jetstream::new(control.clone())
        .get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec!["minimal.>".into()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| std::io::Error::other(format!("stream {STREAM}: {e}")))?;

    let shared = Arc::new(Shared {
        secret: secret.into_bytes(),
        sources: sources.split(',').map(|s| s.trim().to_owned()).collect(),
        nonces: Mutex::new(Nonces {
            current: HashSet::new(),
            previous: HashSet::new(),
            rotated: Instant::now(),
        }),
        tradingview_token,
    });
    let tv_route = shared.tradingview_token.is_some();
    HttpServer::new(move || {
        let servers = servers.clone();
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            // One connection per worker, made on the worker's own thread so
            // its I/O task runs there too.
            .data_factory(move || {
                let servers = servers.clone();
                async move {
                    let client = async_nats::connect(servers).await?;
                    Ok::<_, async_nats::ConnectError>(
                        jetstream::ContextBuilder::new()
                            .timeout(ACK_TIMEOUT)
                            .max_ack_inflight(MAX_ACK_INFLIGHT)
                            .build(client),
                    )
                }
            })
            // Registered first, so it wins over the generic route.
            .configure(|cfg| {
                if tv_route {
                    cfg.route("/webhooks/tradingview", web::post().to(tradingview));
                }
            })
            .route("/webhooks/{source}", web::post().to(webhook))
    })
    .workers(WORKERS)
    .bind(&addr)?
    .run()
    .await
}
