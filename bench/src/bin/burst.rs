//! The bar-close burst client (issue 17): N TradingView-style alerts spread
//! evenly over W seconds, every alert on a fresh TCP connection (no
//! keep-alive, `Connection: close`), each with TradingView's 3 s client
//! timeout counted from the moment it was due, over plain HTTP or TLS (with
//! or without session resumption).
//!
//! `burst --target NAME --url http://127.0.0.1:PORT/webhooks/tradingview?token=T
//!        --count N --window SECS [--timeout-ms 3000] [--ca FILE] [--resume] [--resend]
//!        [--tag STR] [--content-type application/json] [--watch NAME=PID[,PID]]`
//!
//! `https://` URLs need `--ca` (the PEM CA that signed the server's
//! certificate). `--resume` keeps rustls' client session cache (TLS 1.3
//! tickets), primed by a few sequential handshakes before the burst;
//! without it every handshake is a full one.
//!
//! Alert i is due at `start + i * W / N`; its latency runs from the due time
//! to the last byte of the answer, so the client's own lag is charged to it.
//! Bodies are unique per alert (a `note` with the tag and index), so nothing
//! is a duplicate. One JSON line on stdout: answers per status and error
//! code, timeouts by phase (connect, handshake, answer), connection errors,
//! 2xx latency percentiles, connect and handshake times, resumed
//! handshakes, CPU seconds of the watched processes and of this client
//! during the burst (/proc/PID/stat), the client's send lag. A summary on
//! stderr.
//!
//! `--resend` also does what TradingView does with an answer of 500-599
//! other than 504: send the identical body again 5 s later, up to 3 times
//! (a timeout is not re-sent). The line then also says how many alerts were
//! delivered in the end (a 2xx, or a 409 `duplicate`: an earlier send of the
//! same body is stored), how many only on a re-send, the delivery latency
//! from the first due time, and how many were never delivered. The burst's
//! own figures above stay those of the first sends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use at_gateway_bench::cpu_seconds;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{client::Resumption, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Target {
    host_port: String,
    host: String,
    path: String,
    tls: Option<TlsConnector>,
}

#[derive(Default)]
struct Record {
    /// Seconds from due to connected, to handshake done, to answer complete.
    connect: Option<f64>,
    handshake: Option<f64>,
    done: Option<f64>,
    lag: f64,
    resumed: bool,
    /// "202", "503 buffer_full", "timeout connect", "error connect", ...
    outcome: String,
    /// Sends made (1 + TradingView-style re-sends), the last one's outcome,
    /// and seconds from the first due time to delivery, if delivered.
    sends: u32,
    last: String,
    delivered: Option<f64>,
}

/// TradingView re-sends an alert answered 500-599, except 504, after 5 s, up
/// to three times, with the identical body.
const RESEND_AFTER: Duration = Duration::from_secs(5);
const RESENDS: u32 = 3;

fn resent(outcome: &str) -> bool {
    let status = outcome
        .split(' ')
        .next()
        .and_then(|s| s.parse::<u16>().ok());
    status.is_some_and(|s| (500..=599).contains(&s) && s != 504)
}

/// A 2xx, or a 409 `duplicate`: the signal is stored (by this send or an
/// earlier one whose answer was lost to the sender).
fn delivered(outcome: &str) -> bool {
    outcome.starts_with('2') || outcome == "409 duplicate"
}

fn usage() -> ! {
    eprintln!(
        "usage: burst --target NAME --url http[s]://HOST:PORT/PATH --count N --window SECS \
         [--timeout-ms MS] [--ca FILE] [--resume] [--resend] [--tag STR] [--content-type T] \
         [--watch NAME=PID[,PID...]]"
    );
    std::process::exit(2)
}

fn cpu_group(pids: &[String]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(p)).sum()
}

/// The `"code":"..."` of an error body, if any.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"code\"")? + 6..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Writes the request, reads one whole answer (head + Content-Length body, or
/// to EOF); returns the status and the body.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    s.write_all(request).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify, after a full answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad status line"))?;
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let body = &buf[end + 4..];
            if length.is_some_and(|l| body.len() >= l) || n == 0 {
                return Ok((status, body.to_vec()));
            }
        } else if n == 0 {
            return Err(std::io::Error::other("closed before an answer"));
        }
    }
}

async fn attempt(
    target: &Target,
    request: &[u8],
    due: Instant,
    rec: &mut Record,
) -> Result<(u16, Vec<u8>), &'static str> {
    let tcp = TcpStream::connect(&target.host_port)
        .await
        .map_err(|_| "error connect")?;
    rec.connect = Some(due.elapsed().as_secs_f64());
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        None => exchange(tcp, request).await.map_err(|_| "error answer"),
        Some(connector) => {
            let name = ServerName::try_from(target.host.clone()).map_err(|_| "error name")?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|_| "error handshake")?;
            rec.handshake = Some(due.elapsed().as_secs_f64());
            rec.resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            exchange(tls, request).await.map_err(|_| "error answer")
        }
    }
}

async fn one(
    target: Arc<Target>,
    request: Vec<u8>,
    due: Instant,
    timeout: Duration,
    resend: bool,
) -> Record {
    tokio::time::sleep_until(due.into()).await;
    let mut rec = Record {
        lag: due.elapsed().as_secs_f64(),
        ..Default::default()
    };
    rec.outcome = send(&target, &request, due, timeout, &mut rec).await;
    rec.sends = 1;
    rec.last = rec.outcome.clone();
    while resend && resent(&rec.last) && rec.sends <= RESENDS {
        tokio::time::sleep(RESEND_AFTER).await;
        let again = Instant::now();
        rec.last = send(&target, &request, again, timeout, &mut Record::default()).await;
        rec.sends += 1;
    }
    if delivered(&rec.last) {
        rec.delivered = Some(due.elapsed().as_secs_f64());
    }
    rec
}

/// One send with the client timeout counted from `due`: its outcome.
async fn send(
    target: &Target,
    request: &[u8],
    due: Instant,
    timeout: Duration,
    rec: &mut Record,
) -> String {
    let result =
        tokio::time::timeout_at((due + timeout).into(), attempt(target, request, due, rec)).await;
    match result {
        Ok(Ok((status, body))) => {
            rec.done = Some(due.elapsed().as_secs_f64());
            match (status, error_code(&body)) {
                (200..=299, _) | (_, None) => status.to_string(),
                (_, Some(code)) => format!("{status} {code}"),
            }
        }
        Ok(Err(what)) => what.to_owned(),
        Err(_) if rec.connect.is_none() => "timeout connect".into(),
        Err(_) if target.tls.is_some() && rec.handshake.is_none() => "timeout handshake".into(),
        Err(_) => "timeout answer".into(),
    }
}

fn pct(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn ms(v: Option<f64>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, |s| {
        serde_json::json!((s * 1e4).round() / 10.0)
    })
}

fn percentiles(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(f64::total_cmp);
    serde_json::json!({
        "n": v.len(),
        "p50_ms": ms(pct(&v, 0.50)),
        "p90_ms": ms(pct(&v, 0.90)),
        "p99_ms": ms(pct(&v, 0.99)),
        "max_ms": ms(v.last().copied()),
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut name, mut url, mut count, mut window) = (None, None, None, None);
    let (mut timeout_ms, mut ca, mut resume, mut tag) = (3000u64, None, false, String::from("b"));
    let mut resend = false;
    let mut content_type = String::from("application/json");
    let mut watch: Vec<(String, Vec<String>)> = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--resume" {
            resume = true;
            continue;
        }
        if arg == "--resend" {
            resend = true;
            continue;
        }
        let Some(value) = args.next() else { usage() };
        match arg.as_str() {
            "--target" => name = Some(value),
            "--url" => url = Some(value),
            "--count" => count = value.parse::<usize>().ok(),
            "--window" => window = value.parse::<f64>().ok(),
            "--timeout-ms" => timeout_ms = value.parse().unwrap_or_else(|_| usage()),
            "--ca" => ca = Some(value),
            "--tag" => tag = value,
            "--content-type" => content_type = value,
            "--watch" => {
                let Some((n, pids)) = value.split_once('=') else {
                    usage()
                };
                watch.push((n.to_owned(), pids.split(',').map(str::to_owned).collect()));
            }
            _ => usage(),
        }
    }
    let (Some(name), Some(url), Some(count), Some(window)) = (name, url, count, window) else {
        usage()
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        usage()
    };
    let (host_port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(h, _)| h)
        .to_owned();
    let connector = tls.then(|| {
        let ca = ca.as_deref().unwrap_or_else(|| usage());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("--ca: a PEM file") {
            roots
                .add(cert.expect("--ca: a PEM certificate"))
                .expect("CA");
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.resumption = if resume {
            Resumption::in_memory_sessions(4096)
        } else {
            Resumption::disabled()
        };
        TlsConnector::from(Arc::new(config))
    });
    let target = Arc::new(Target {
        host_port: host_port.to_owned(),
        host,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
        tls: connector,
    });
    let request = |i: usize| -> Vec<u8> {
        let body = format!(
            r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"1","price":"50000.5","note":"burst {tag} {i:07}"}}"#
        );
        format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            target.path,
            target.host_port,
            body.len()
        )
        .into_bytes()
    };
    let timeout = Duration::from_millis(timeout_ms);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (records, wall, cpu_before, cpu_after, client_cpu, primed) = rt.block_on(async {
        // Resumption: a few sequential handshakes first, so the cache holds
        // tickets when the burst starts (as a sender that talks to the
        // gateway all day would).
        let mut primed = 0;
        if resume && target.tls.is_some() {
            for k in 0..8 {
                let req = request(count + k);
                let mut rec = Record::default();
                if attempt(&target, &req, Instant::now(), &mut rec)
                    .await
                    .is_ok()
                {
                    primed += 1;
                }
            }
        }
        let requests: Vec<Vec<u8>> = (0..count).map(request).collect();
        let start = Instant::now() + Duration::from_millis(100);
        let step = Duration::from_secs_f64(window / count.max(1) as f64);
        let mut tasks = Vec::with_capacity(count);
        for (i, req) in requests.into_iter().enumerate() {
            let due = start + step * i as u32;
            tasks.push(tokio::spawn(one(target.clone(), req, due, timeout, resend)));
        }
        tokio::time::sleep_until(start.into()).await;
        let before: Vec<Option<f64>> = watch.iter().map(|(_, p)| cpu_group(p)).collect();
        let me_before = cpu_seconds("self");
        let mut records = Vec::with_capacity(count);
        for t in tasks {
            records.push(t.await.expect("task"));
        }
        let wall = start.elapsed().as_secs_f64();
        let after: Vec<Option<f64>> = watch.iter().map(|(_, p)| cpu_group(p)).collect();
        let me = cpu_seconds("self").zip(me_before).map(|(a, b)| a - b);
        (records, wall, before, after, me, primed)
    });

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *outcomes.entry(r.outcome.clone()).or_default() += 1;
    }
    let ok: Vec<f64> = records
        .iter()
        .filter(|r| r.outcome.starts_with('2'))
        .filter_map(|r| r.done)
        .collect();
    let ok_count = ok.len();
    let connect: Vec<f64> = records.iter().filter_map(|r| r.connect).collect();
    let handshake: Vec<f64> = records
        .iter()
        .filter_map(|r| Some(r.handshake? - r.connect?))
        .collect();
    let lag: Vec<f64> = records.iter().map(|r| r.lag).collect();
    let resumed = records.iter().filter(|r| r.resumed).count();
    let latency = percentiles(ok);
    let p99 = latency["p99_ms"].as_f64();
    let all_2xx = ok_count == count;
    let mut cpu = serde_json::Map::new();
    for (i, (n, _)) in watch.iter().enumerate() {
        let v = cpu_after[i]
            .zip(cpu_before[i])
            .map(|(a, b)| (a - b) * 1000.0);
        cpu.insert(format!("{n}_cpu_ms"), serde_json::json!(v.map(f64::round)));
        cpu.insert(
            format!("{n}_cpu_us_per_alert"),
            serde_json::json!(v.map(|v| (v * 1000.0 / count.max(1) as f64).round())),
        );
    }
    let resends = resend.then(|| {
        let after: Vec<&Record> = records.iter().filter(|r| r.sends > 1).collect();
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for r in &records {
            *last.entry(r.last.clone()).or_default() += 1;
        }
        serde_json::json!({
            "delivered": records.iter().filter(|r| r.delivered.is_some()).count(),
            "delivered_on_resend": after.iter().filter(|r| r.delivered.is_some()).count(),
            "resent": after.len(),
            "sends": records.iter().map(|r| r.sends as usize).sum::<usize>(),
            "last_outcomes": last,
            "delivery": percentiles(records.iter().filter_map(|r| r.delivered).collect()),
        })
    });
    let line = serde_json::json!({
        "target": name,
        "transport": if target.tls.is_none() { "http" } else if resume { "tls-resume" } else { "tls" },
        "count": count,
        "window_s": window,
        "timeout_ms": timeout_ms,
        "outcomes": outcomes,
        "ok": ok_count,
        "all_2xx": all_2xx,
        "pass": all_2xx && p99.is_some_and(|p| p <= 2000.0),
        "latency_2xx": latency,
        "connect": percentiles(connect),
        "handshake": percentiles(handshake),
        "resumed": resumed,
        "primed": primed,
        "send_lag": percentiles(lag),
        "cpu": cpu,
        "client_cpu_ms": client_cpu.map(|c| (c * 1000.0).round()),
        "wall_s": (wall * 1000.0).round() / 1000.0,
        "resend": resends,
    });
    println!("{line}");
    eprintln!(
        "burst: {name} {} n={count} in {window}s: {ok_count} 2xx, {:?}; 2xx p50/p99/max {}/{}/{} ms",
        line["transport"].as_str().unwrap_or(""),
        outcomes,
        latency["p50_ms"],
        latency["p99_ms"],
        latency["max_ms"]
    );
}
