//! HTTP load generator for `POST /webhooks/{source}`.
//!
//! Every request is signed before the measurement starts (unique nonce and
//! idempotency key each), so signing is not measured. Requests are counted
//! by their start time: those started during the warm-up are sent but not
//! counted; those started within `--duration` after it are. Prints one JSON
//! line on stdout and a summary on stderr.
//!
//! Two ways to offer load:
//! - closed loop (default): N keep-alive connections, each sends its next
//!   request when the previous answer has arrived — the maximum throughput;
//! - open loop (`--rate R`): request i is due at `start + i / R` whatever
//!   happened before; the first free connection takes the next due request,
//!   and its latency is measured from the time it was due, not from when it
//!   could be sent, so a server that stalls is charged for every request it
//!   held up (no coordinated omission). How late the generator itself sent
//!   requests is reported apart (`send_lag_*`).
//!
//! Other options: `--sources N` spreads the load over N sources (the URL
//! holds `{i}`, replaced by 0..N-1, request k goes to source k mod N);
//! `--body-size B` pads each body to exactly B bytes (the padding is one
//! shared buffer sent as its own body chunk, so a 1 MiB run does not hold a
//! copy per request); `--count N` sends exactly N requests (no warm-up) and
//! stops; `--watch NAME=PID[,PID...]` reports those processes' CPU time per
//! accepted request during the measured window (utime + stime from
//! /proc/PID/stat, summed over the PIDs) and their peak and current RSS
//! (VmHWM, VmRSS) at the end.
//!
//! Design choices, to keep the generator from being the bottleneck on a
//! 2-core machine shared with the server under test:
//! - a current-thread tokio runtime: at most one core, no cross-thread wake-ups;
//! - one raw `hyper::client::conn::http1` connection per task rather than
//!   hyper-util's pooled client: a task needs exactly one keep-alive
//!   connection, so a pool would only add a lookup and a lock per request,
//!   and the connection count would no longer be exact.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use at_gateway::auth::signature::sign;
use at_gateway_bench::cpu_seconds;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole request: send, answer head and body. Above the gateway's own 5 s
/// ack wait, so a slow JetStream shows up as 503s rather than as timeouts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Closed loop: requests signed per second of warm-up + duration, unless
/// `--expected-rps` says otherwise: above what any target reaches on the
/// 2-core bench machine (bare: 58-128k/s). Capped by --requests-max; if the
/// pool runs out the run stops early and says so.
const EXPECTED_MAX_RPS: f64 = 160_000.0;
/// Timestamps are taken once, before the run; the gateway accepts them for
/// 300 s, so a run (signing included) must stay well inside that.
const MAX_RUN_SECS: f64 = 240.0;

struct Opts {
    /// With `{i}` where the source index goes when `sources > 1`.
    url: String,
    authority: String,
    secret: String,
    target: String,
    connections: usize,
    duration: f64,
    warmup: f64,
    requests_max: usize,
    /// Requests per second offered; `None`: closed loop.
    rate: Option<f64>,
    sources: usize,
    body_size: usize,
    expected_rps: f64,
    /// `--count`: exactly this many requests, the pool's end is the run's end.
    count: bool,
    watch: Vec<(String, Vec<u32>)>,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen --url http://127.0.0.1:PORT/webhooks/SOURCE --secret S [--target NAME]\n\
         \x20              [--connections 64] [--duration 10] [--warmup 2] [--requests-max 2000000]\n\
         \x20              [--rate REQ_PER_SEC (open loop)] [--count N (exactly N requests)]\n\
         \x20              [--sources N (URL with {{i}})] [--body-size BYTES] [--expected-rps R]\n\
         \x20              [--watch NAME=PID[,PID...]]..."
    );
    std::process::exit(2)
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {value:?}")))
}

fn parse_opts() -> Opts {
    let (mut url, mut secret, mut target) = (None::<String>, None, "target".to_owned());
    let (mut connections, mut duration, mut warmup, mut requests_max) =
        (64, 10.0_f64, 2.0_f64, 2_000_000);
    let (mut rate, mut count, mut sources, mut body_size, mut expected_rps) =
        (None, None::<usize>, 1, 0, EXPECTED_MAX_RPS);
    let mut watch = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--url" => url = Some(value),
            "--secret" => secret = Some(value),
            "--target" => target = value,
            "--connections" => connections = parse(&flag, &value),
            "--duration" => duration = parse(&flag, &value),
            "--warmup" => warmup = parse(&flag, &value),
            "--requests-max" => requests_max = parse(&flag, &value),
            "--rate" => rate = Some(parse::<f64>(&flag, &value)),
            "--count" => count = Some(parse(&flag, &value)),
            "--sources" => sources = parse(&flag, &value),
            "--body-size" => body_size = parse(&flag, &value),
            "--expected-rps" => expected_rps = parse(&flag, &value),
            "--watch" => {
                let (name, pids) = value
                    .split_once('=')
                    .unwrap_or_else(|| usage("--watch takes NAME=PID[,PID...]"));
                let pids = pids
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| parse::<u32>(&flag, p))
                    .collect();
                watch.push((name.to_owned(), pids));
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| usage("--url must be http://HOST:PORT/PATH"))
        .to_owned();
    if sources == 0 || (sources > 1 && !url.contains("{i}")) {
        usage("--sources N needs N >= 1, and a URL with {i} when N > 1");
    }
    if let Some(n) = count {
        // Exactly n requests: no warm-up; the window ends with the last answer.
        requests_max = n;
        warmup = 0.0;
        duration = MAX_RUN_SECS;
    }
    if rate.is_some_and(|r: f64| r.is_nan() || r <= 0.0) {
        usage("--rate must be positive");
    }
    if connections == 0 || requests_max == 0 || duration.is_nan() || duration <= 0.0 {
        usage("--connections, --duration and --requests-max must be positive");
    }
    if warmup.is_nan() || warmup < 0.0 || warmup + duration > MAX_RUN_SECS {
        usage(&format!(
            "--warmup must be >= 0 and warm-up + duration at most {MAX_RUN_SECS} s"
        ));
    }
    Opts {
        url,
        authority,
        secret: secret.unwrap_or_else(|| usage("--secret is required")),
        target,
        connections,
        duration,
        warmup,
        requests_max,
        rate,
        sources,
        body_size,
        expected_rps,
        count: count.is_some(),
        watch,
    }
}

/// A request body in two chunks: the padding shared by every request (with
/// the opening brace) and the request's own fields.
struct TwoPart {
    head: Option<Bytes>,
    tail: Option<Bytes>,
    len: u64,
}

impl Body for TwoPart {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.head.take().or_else(|| this.tail.take());
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// One pre-signed request; `Bytes` so that using it costs no copy.
struct Signed {
    nonce: Bytes,
    signature: Bytes,
    tail: Bytes,
}

/// The shared start of every body: `{` plus, when padding, a `note` field
/// (kept by the gateway under `extra`) long enough for `body_size`.
fn body_head(body_size: usize, tail_len: usize) -> Bytes {
    const NOTE: &str = r#""note":"","#;
    let natural = 1 + tail_len;
    if body_size <= natural {
        return Bytes::from_static(b"{");
    }
    let pad = body_size.saturating_sub(natural + NOTE.len());
    let mut head = String::with_capacity(body_size);
    head.push_str("{\"note\":\"");
    head.extend(std::iter::repeat_n('x', pad));
    head.push_str("\",");
    Bytes::from(head)
}

fn presign(opts: &Opts, count: usize, timestamp: &str) -> (Bytes, Vec<Signed>) {
    // The run id keeps nonces and idempotency keys unique across runs
    // against the same gateway, not only within one run; the fixed-width
    // index keeps every body the same length.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let tail = |i: usize| {
        let nonce = format!("{run:x}-{i:09}");
        let tail = format!(
            r#""symbol":"BTCUSDT","action":"buy","quantity":"0.01","price":"64000.5","idempotency_key":"bench-{nonce}"}}"#
        );
        (nonce, tail)
    };
    let head = body_head(opts.body_size, tail(0).1.len());
    let mut body = Vec::with_capacity(head.len() + 256);
    let pool = (0..count)
        .map(|i| {
            let (nonce, tail) = tail(i);
            body.clear();
            body.extend_from_slice(&head);
            body.extend_from_slice(tail.as_bytes());
            let signature = sign(opts.secret.as_bytes(), timestamp, &nonce, &body);
            Signed {
                nonce: nonce.into(),
                signature: signature.into(),
                tail: tail.into(),
            }
        })
        .collect();
    (head, pool)
}

/// What one connection saw, for requests started in the measured window.
struct Stats {
    hist: Histogram<u64>,
    /// Open loop: how late after its due time each request was sent.
    lag: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    exhausted: bool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

struct Shared {
    addr: SocketAddr,
    host: HeaderValue,
    paths: Vec<Uri>,
    timestamp: HeaderValue,
    head: Bytes,
    pool: Vec<Signed>,
    next: AtomicUsize,
    start: Instant,
    /// Open loop: time between due times.
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<TwoPart>, String> {
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

fn build(shared: &Shared, i: usize, signed: &Signed) -> Request<TwoPart> {
    let header = |b: &Bytes| HeaderValue::from_maybe_shared(b.clone()).expect("ASCII header");
    let len = (shared.head.len() + signed.tail.len()) as u64;
    Request::builder()
        .method(Method::POST)
        .uri(shared.paths[i % shared.paths.len()].clone())
        .header(HOST, shared.host.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, len)
        .header("x-timestamp", shared.timestamp.clone())
        .header("x-nonce", header(&signed.nonce))
        .header("x-signature", header(&signed.signature))
        .body(TwoPart {
            head: Some(shared.head.clone()),
            tail: Some(signed.tail.clone()),
            len,
        })
        .expect("valid request")
}

async fn send(sender: &mut SendRequest<TwoPart>, req: Request<TwoPart>) -> Result<u16, String> {
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
        hist: histogram(),
        lag: histogram(),
        statuses: BTreeMap::new(),
        errors: 0,
        exhausted: false,
    };
    let mut sender: Option<SendRequest<TwoPart>> = None;
    let mut last_error = None;
    // Open loop: a request taken whose connection failed is sent on the next one.
    let mut carried: Option<(usize, Instant)> = None;
    loop {
        // Next request: its index and the time it counts from (due time in
        // the open loop; set when sent in the closed loop).
        let (i, due) = match carried.take() {
            Some(c) => c,
            None => {
                if Instant::now() >= shared.end {
                    break;
                }
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                // Open loop: a request due after the window is not sent.
                let due = shared
                    .interval
                    .map(|step| shared.start + step.mul_f64(i as f64));
                if due.is_some_and(|due| due >= shared.end) {
                    break;
                }
                if i >= shared.pool.len() {
                    stats.exhausted = true;
                    break;
                }
                let due = match due {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                (i, due)
            }
        };
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
                    if shared.interval.is_some() && Instant::now() < shared.end {
                        carried = Some((i, due));
                    }
                    continue;
                }
            },
        };
        let req = build(&shared, i, &shared.pool[i]);
        let sent = Instant::now();
        let start = if shared.interval.is_some() { due } else { sent };
        let result = timeout(REQUEST_TIMEOUT, send(s, req)).await;
        let measured = start >= shared.measure_from && start < shared.end;
        let error = match result {
            Ok(Ok(status)) => {
                if measured {
                    let us = start.elapsed().as_micros() as u64;
                    stats.hist.saturating_record(us.max(1));
                    if shared.interval.is_some() {
                        let lag = sent.saturating_duration_since(due).as_micros() as u64;
                        stats.lag.saturating_record(lag.max(1));
                    }
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

/// A `kB` line of /proc/PID/status (VmHWM, VmRSS).
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds of this process and of every watched group, at one instant.
fn cpu_snapshot(watch: &[(String, Vec<u32>)]) -> (Instant, Option<f64>, Vec<Option<f64>>) {
    let groups = watch
        .iter()
        .map(|(_, pids)| pids.iter().map(|p| cpu_seconds(&p.to_string())).sum())
        .collect();
    (Instant::now(), cpu_seconds("self"), groups)
}

fn ms(hist: &Histogram<u64>, q: f64) -> serde_json::Value {
    if hist.is_empty() {
        return serde_json::Value::Null;
    }
    // Recorded in microseconds, reported in milliseconds.
    serde_json::json!(hist.value_at_quantile(q) as f64 / 1000.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let opts = parse_opts();
    let addr = match tokio::net::lookup_host(opts.authority.as_str())
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr,
        _ => usage(&format!("cannot resolve {}", opts.authority)),
    };
    let paths: Vec<Uri> = (0..opts.sources)
        .map(|i| {
            let url = opts.url.replace("{i}", &i.to_string());
            let path = &url["http://".len() + opts.authority.len()..];
            let path = if path.is_empty() { "/" } else { path };
            path.parse()
                .unwrap_or_else(|_| usage(&format!("bad URL path {path:?}")))
        })
        .collect();

    let run_secs = opts.warmup + opts.duration;
    let wanted = match opts.rate {
        Some(rate) => (run_secs * rate).ceil() as usize + 1,
        None => (run_secs * opts.expected_rps).ceil() as usize,
    };
    let count = wanted.min(opts.requests_max);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        .to_string();
    let signing = Instant::now();
    let (head, pool) = presign(&opts, count, &timestamp);
    let body_bytes = head.len() + pool.first().map_or(0, |s| s.tail.len());
    let mode = match opts.rate {
        Some(rate) => format!("open loop at {rate:.0}/s"),
        None => "closed loop".to_owned(),
    };
    eprintln!(
        "loadgen: {}: signed {count} requests of {body_bytes} B in {:.2} s; {mode}, {} connections, \
         {} source(s), {} s warm-up, {} s measured",
        opts.target,
        signing.elapsed().as_secs_f64(),
        opts.connections,
        opts.sources,
        opts.warmup,
        if opts.count {
            "until done".to_owned()
        } else {
            opts.duration.to_string()
        }
    );

    let now = Instant::now();
    let measure_from = now + Duration::from_secs_f64(opts.warmup);
    let end = measure_from + Duration::from_secs_f64(opts.duration);
    let shared = Arc::new(Shared {
        addr,
        host: HeaderValue::from_str(&opts.authority).expect("valid host"),
        paths,
        timestamp: HeaderValue::from_str(&timestamp).expect("digits"),
        head,
        pool,
        next: AtomicUsize::new(0),
        start: now,
        interval: opts.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        measure_from,
        end,
    });

    // CPU times at the start of the measured window (on this one thread it
    // runs between requests, so it is late by at most one scheduling round)
    // and once every request has been answered: the requests counted are
    // those started in the window, and their whole cost is inside.
    let watch = opts.watch.clone();
    let first = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        cpu_snapshot(&watch)
    });

    let tasks: Vec<_> = (0..opts.connections)
        .map(|_| tokio::spawn(run_connection(shared.clone())))
        .collect();
    let (mut hist, mut lag) = (histogram(), histogram());
    let mut statuses = BTreeMap::<u16, u64>::new();
    let (mut errors, mut exhausted) = (0, false);
    for task in tasks {
        let stats = task.await.expect("connection task panicked");
        hist.add(&stats.hist).expect("same bounds");
        lag.add(&stats.lag).expect("same bounds");
        for (status, n) in stats.statuses {
            *statuses.entry(status).or_default() += n;
        }
        errors += stats.errors;
        exhausted |= stats.exhausted;
    }
    let finished = Instant::now();
    let (t1, self1, groups1) = cpu_snapshot(&opts.watch);
    let (t0, self0, groups0) = first.await.expect("sampler");

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
    let cpu_wall = (t1 - t0).as_secs_f64();
    let per_req = |c0: Option<f64>, c1: Option<f64>| {
        let used = c1? - c0?;
        let us = (accepted > 0).then(|| round1(used * 1e6 / accepted as f64));
        Some((us, round1(used / cpu_wall * 100.0)))
    };
    let loadgen = per_req(self0, self1);
    let procs: serde_json::Map<String, serde_json::Value> = opts
        .watch
        .iter()
        .zip(groups0.iter().zip(&groups1))
        .map(|((name, pids), (c0, c1))| {
            let cpu = per_req(*c0, *c1);
            let kb = |key| pids.iter().map(|p| status_kb(*p, key)).sum::<Option<u64>>();
            (
                name.clone(),
                serde_json::json!({
                    "pids": pids,
                    "cpu_us_per_accepted": cpu.and_then(|c| c.0),
                    "cpu_pct": cpu.map(|c| c.1),
                    "vmhwm_kb": kb("VmHWM"),
                    "vmrss_kb": kb("VmRSS"),
                }),
            )
        })
        .collect();
    let line = serde_json::json!({
        "target": opts.target,
        "mode": if opts.rate.is_some() { "open" } else { "closed" },
        "rate": opts.rate,
        "connections": opts.connections,
        "sources": opts.sources,
        "body_bytes": body_bytes,
        "window_s": (window * 1000.0).round() / 1000.0,
        "sent": answered + errors,
        "accepted": accepted,
        "accepted_per_sec": per_sec.round(),
        "p50_ms": ms(&hist, 0.50),
        "p90_ms": ms(&hist, 0.90),
        "p99_ms": ms(&hist, 0.99),
        "p999_ms": ms(&hist, 0.999),
        "max_ms": ms(&hist, 1.0),
        "send_lag_p99_ms": ms(&lag, 0.99),
        "send_lag_max_ms": ms(&lag, 1.0),
        "non_2xx": answered - accepted,
        "statuses": statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "errors": errors,
        "exhausted": exhausted && !opts.count,
        "loadgen_cpu_pct": loadgen.map(|c| c.1),
        "loadgen_cpu_us_per_accepted": loadgen.and_then(|c| c.0),
        "procs": procs,
    });
    println!("{line}");

    if exhausted && !opts.count {
        eprintln!(
            "loadgen: WARNING: all {count} pre-signed requests used after {window:.2} s of the \
             {} s window; raise --requests-max or --expected-rps",
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
        loadgen.map_or("n/a".to_owned(), |c| format!("{:.0}%", c.1)),
    );
}
