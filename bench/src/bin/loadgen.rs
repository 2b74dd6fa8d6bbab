//! Closed-loop HTTP load generator for `POST /webhooks/{source}`.
//!
//! Every request is signed before the measurement starts (unique nonce and
//! idempotency key each), so signing is not measured. N connections each
//! send their next request when the previous answer has arrived. Requests
//! are counted by start time: those started during the warm-up are sent but
//! not counted; those started within `--duration` after it are. Prints one
//! JSON line on stdout and a summary on stderr.
//!
//! Design choices, to keep the generator from being the bottleneck on a
//! 2-core machine shared with the server under test:
//! - a current-thread tokio runtime: at most one core, no cross-thread wake-ups;
//! - one raw `hyper::client::conn::http1` connection per task rather than
//!   hyper-util's pooled client: a closed-loop task needs exactly one
//!   keep-alive connection, so a pool would only add a lookup and a lock per
//!   request, and the connection count would no longer be exact.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use at_gateway::auth::signature::sign;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole request: send, answer head and body. Above the gateway's own 5 s
/// ack wait, so a slow JetStream shows up as 503s rather than as timeouts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests signed per second of warm-up + duration: above what either
/// target reaches on the 2-core bench machine (bare ≈ 40k/s). Capped by
/// --requests-max; if the pool runs out the run stops early and says so.
const EXPECTED_MAX_RPS: f64 = 60_000.0;
/// Timestamps are taken once, before the run; the gateway accepts them for
/// 300 s, so a run (signing included) must stay well inside that.
const MAX_RUN_SECS: f64 = 240.0;
/// Linux reports /proc CPU times in USER_HZ ticks, 100 per second.
const USER_HZ: f64 = 100.0;

struct Opts {
    url: hyper::Uri,
    secret: String,
    target: String,
    connections: usize,
    duration: f64,
    warmup: f64,
    requests_max: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen --url http://127.0.0.1:PORT/webhooks/SOURCE --secret S [--target NAME]\n\
         \x20              [--connections 64] [--duration 10] [--warmup 2] [--requests-max 1000000]"
    );
    std::process::exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {value:?}")))
}

fn parse_opts() -> Opts {
    let (mut url, mut secret, mut target) = (None, None, "target".to_owned());
    let (mut connections, mut duration, mut warmup, mut requests_max) = (64, 10.0, 2.0, 1_000_000);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--url" => url = Some(parse(&flag, &value)),
            "--secret" => secret = Some(value),
            "--target" => target = value,
            "--connections" => connections = parse(&flag, &value),
            "--duration" => duration = parse(&flag, &value),
            "--warmup" => warmup = parse(&flag, &value),
            "--requests-max" => requests_max = parse(&flag, &value),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let opts = Opts {
        url: url.unwrap_or_else(|| usage("--url is required")),
        secret: secret.unwrap_or_else(|| usage("--secret is required")),
        target,
        connections,
        duration,
        warmup,
        requests_max,
    };
    if opts.url.scheme_str() != Some("http") || opts.url.authority().is_none() {
        usage("--url must be http://HOST:PORT/PATH");
    }
    if opts.connections == 0
        || opts.requests_max == 0
        || opts.duration.is_nan()
        || opts.duration <= 0.0
    {
        usage("--connections, --duration and --requests-max must be positive");
    }
    if opts.warmup.is_nan() || opts.warmup < 0.0 || opts.warmup + opts.duration > MAX_RUN_SECS {
        usage(&format!(
            "--warmup must be >= 0 and warm-up + duration at most {MAX_RUN_SECS} s"
        ));
    }
    opts
}

/// One pre-signed request; `Bytes` so that using it costs no copy.
struct Signed {
    nonce: Bytes,
    signature: Bytes,
    body: Bytes,
}

fn presign(opts: &Opts, count: usize, timestamp: &str) -> Vec<Signed> {
    // The run id keeps nonces and idempotency keys unique across runs
    // against the same gateway, not only within one run.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (0..count)
        .map(|i| {
            let nonce = format!("{run:x}-{i}");
            let body = format!(
                r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"0.01","price":"64000.5","idempotency_key":"bench-{nonce}"}}"#
            );
            let signature = sign(opts.secret.as_bytes(), timestamp, &nonce, body.as_bytes());
            Signed {
                nonce: nonce.into(),
                signature: signature.into(),
                body: body.into(),
            }
        })
        .collect()
}

/// What one connection saw, for requests started in the measured window.
struct Stats {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    exhausted: bool,
}

struct Shared {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
    timestamp: HeaderValue,
    pool: Vec<Signed>,
    next: AtomicUsize,
    measure_from: Instant,
    end: Instant,
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = timeout(
        CONNECT_TIMEOUT,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| "handshake timeout".to_owned())?
    .map_err(|e| format!("handshake: {e}"))?;
    // Drives the connection; ends when the sender is dropped or the peer closes.
    tokio::spawn(conn);
    Ok(sender)
}

fn build(shared: &Shared, signed: &Signed) -> Request<Full<Bytes>> {
    let header = |b: &Bytes| HeaderValue::from_maybe_shared(b.clone()).expect("ASCII header");
    Request::post(shared.path.as_str())
        .header(HOST, shared.host.clone())
        .header(CONTENT_TYPE, "application/json")
        .header("x-timestamp", shared.timestamp.clone())
        .header("x-nonce", header(&signed.nonce))
        .header("x-signature", header(&signed.signature))
        .body(Full::new(signed.body.clone()))
        .expect("valid request")
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<u16, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Read the whole answer, so the latency includes it and the connection
    // is free for the next request.
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

async fn run_connection(shared: Arc<Shared>) -> Stats {
    let mut stats = Stats {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        statuses: BTreeMap::new(),
        errors: 0,
        exhausted: false,
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut last_error = None;
    while Instant::now() < shared.end {
        // (Re)connect when there is no live connection, e.g. after the
        // server closed it; a failed connect counts as an error.
        let s = match sender.take().filter(|s| !s.is_closed()) {
            Some(s) => sender.insert(s),
            None => match connect(shared.addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    if Instant::now() >= shared.measure_from {
                        stats.errors += 1;
                    }
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(signed) = shared.pool.get(i) else {
            stats.exhausted = true;
            break;
        };
        let req = build(&shared, signed);
        let start = Instant::now();
        let result = timeout(REQUEST_TIMEOUT, send(s, req)).await;
        let measured = start >= shared.measure_from && start < shared.end;
        let error = match result {
            Ok(Ok(status)) => {
                if measured {
                    let us = start.elapsed().as_micros() as u64;
                    stats.hist.saturating_record(us.max(1));
                    *stats.statuses.entry(status).or_default() += 1;
                }
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => "request timeout".to_owned(),
        };
        if measured {
            stats.errors += 1;
        }
        last_error = Some(error);
        sender = None; // its state is unknown: use a fresh connection
    }
    if let Some(e) = last_error {
        eprintln!("loadgen: a connection saw errors, last: {e}");
    }
    stats
}

/// CPU time used by this process so far (all threads), from /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces;
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn ms(hist: &Histogram<u64>, q: f64) -> serde_json::Value {
    if hist.is_empty() {
        return serde_json::Value::Null;
    }
    // Recorded in microseconds, reported in milliseconds.
    serde_json::json!(hist.value_at_quantile(q) as f64 / 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = parse_opts();
    let addr = {
        let authority = opts.url.authority().expect("checked").as_str();
        let port = opts.url.port_u16().unwrap_or(80);
        let host = opts.url.host().expect("checked");
        match tokio::net::lookup_host((host, port))
            .await
            .map(|mut a| a.next())
        {
            Ok(Some(addr)) => addr,
            _ => usage(&format!("cannot resolve {authority}")),
        }
    };

    let wanted = ((opts.warmup + opts.duration) * EXPECTED_MAX_RPS).ceil() as usize;
    let count = wanted.min(opts.requests_max);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    let signing = Instant::now();
    let pool = presign(&opts, count, &timestamp);
    eprintln!(
        "loadgen: {}: signed {count} requests in {:.2} s; {} connections, {} s warm-up, {} s measured",
        opts.target,
        signing.elapsed().as_secs_f64(),
        opts.connections,
        opts.warmup,
        opts.duration
    );

    let now = Instant::now();
    let measure_from = now + Duration::from_secs_f64(opts.warmup);
    let end = measure_from + Duration::from_secs_f64(opts.duration);
    let shared = Arc::new(Shared {
        addr,
        host: HeaderValue::from_str(opts.url.authority().expect("checked").as_str())
            .expect("valid host"),
        path: opts
            .url
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        timestamp: HeaderValue::from_str(&timestamp).expect("digits"),
        pool,
        next: AtomicUsize::new(0),
        measure_from,
        end,
    });

    // Samples this process's CPU time at the window's edges; on one thread it
    // runs between requests, so it is late by at most one scheduling round.
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let (t0, c0) = (Instant::now(), cpu_seconds());
        tokio::time::sleep_until(end.into()).await;
        let (t1, c1) = (Instant::now(), cpu_seconds());
        Some((c1? - c0?) / (t1 - t0).as_secs_f64() * 100.0)
    });

    let tasks: Vec<_> = (0..opts.connections)
        .map(|_| tokio::spawn(run_connection(shared.clone())))
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut statuses = BTreeMap::<u16, u64>::new();
    let (mut errors, mut exhausted) = (0, false);
    for task in tasks {
        let stats = task.await.expect("connection task panicked");
        hist.add(&stats.hist).expect("same bounds");
        for (status, n) in stats.statuses {
            *statuses.entry(status).or_default() += n;
        }
        errors += stats.errors;
        exhausted |= stats.exhausted;
    }
    let finished = Instant::now();
    let cpu_pct = if exhausted {
        None // the sampler's window no longer matches the run
    } else {
        cpu.await.ok().flatten()
    };

    // If the pool ran out, the window ended when the last answer came back.
    let window = if exhausted {
        finished.saturating_duration_since(measure_from)
    } else {
        end - measure_from
    }
    .as_secs_f64();
    let accepted: u64 = statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let answered: u64 = statuses.values().sum();
    let per_sec = if window > 0.0 {
        accepted as f64 / window
    } else {
        0.0
    };
    let line = serde_json::json!({
        "target": opts.target,
        "connections": opts.connections,
        "window_s": (window * 1000.0).round() / 1000.0,
        "sent": answered + errors,
        "accepted": accepted,
        "accepted_per_sec": per_sec.round(),
        "p50_ms": ms(&hist, 0.50),
        "p99_ms": ms(&hist, 0.99),
        "p999_ms": ms(&hist, 0.999),
        "max_ms": ms(&hist, 1.0),
        "non_2xx": answered - accepted,
        "statuses": statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "errors": errors,
        "exhausted": exhausted,
        "loadgen_cpu_pct": cpu_pct.map(|c| (c * 10.0).round() / 10.0),
    });
    println!("{line}");

    if exhausted {
        eprintln!(
            "loadgen: WARNING: all {count} pre-signed requests used after {window:.2} s of the \
             {} s window; raise --requests-max or EXPECTED_MAX_RPS",
            opts.duration
        );
    }
    eprintln!(
        "loadgen: {}: {accepted} accepted in {window:.2} s = {per_sec:.0}/s; \
         p50 {} ms, p99 {} ms, p99.9 {} ms; statuses {statuses:?}; errors {errors}; \
         loadgen CPU {}",
        opts.target,
        ms(&hist, 0.50),
        ms(&hist, 0.99),
        ms(&hist, 0.999),
        cpu_pct.map_or("n/a".to_owned(), |c| format!("{c:.0}%")),
    );
}
