//! `at-gateway sources …` against a real nats-server: what `add` and
//! `rotate` store is a token's digest or a sealed secret, never the
//! credential they print once; what they print works as printed (the
//! TradingView alert message and the custom source's signed example are
//! accepted by a gateway and normalize); an existing name or a bad setting
//! writes nothing; `list` and `show` print no credential; every failure
//! says what is wrong.
//!
//! The gateway in these tests has the registry enabled and serves what
//! `sources add` wrote, so the URL, the credential and the message are
//! checked exactly as a trader would use them.

use crate::common;

use std::process::Command;

use async_nats::jetstream;
use common::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;

use at_gateway::ids::SourceId;
use at_gateway::sources::registry::{parse_time, RegistryKey, SourceRecord};
use at_gateway::sources::{SourceDefaults, TokenDigest};

/// The registry key these tests configure (listed in tests/known-secrets.txt).
const REGISTRY_KEY: &str = "rOIuwnpMF+itRHpHSfuIoxxUpP3JaJATN8tDZuVGDMc=";
const BUCKET: &str = "at-gateway-sources";
const PUBLIC_URL: &str = "https://gw.example.test";

/// A gateway with the registry enabled, once it serves what the registry
/// holds (its first read of the bucket is done).
async fn registry_gateway(nats: NatsServer) -> TestApp {
    let app = spawn_app_with_nats(
        nats,
        AppOptions {
            env: vec![
                ("SOURCE_REGISTRY", "true".into()),
                ("SOURCE_REGISTRY_KEY", REGISTRY_KEY.into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.healthz().await.1["registry"]["state"] != "ok" {
        assert!(
            std::time::Instant::now() < deadline,
            "the registry was never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app
}

/// The binary with the registry enabled on `nats_url`.
fn sources(nats_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_at-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRADINGVIEW_TOKEN", TV_TOKEN)
        .env("API_KEY_HMAC_SECRET", HMAC_SECRET)
        .env("ALLOWED_SOURCES", "tradingview,alpha")
        .env("NATS_URL", nats_url)
        .env("SOURCE_REGISTRY", "true")
        .env("SOURCE_REGISTRY_KEY", REGISTRY_KEY)
        .env("PUBLIC_URL", PUBLIC_URL)
        .arg("sources");
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command, args: &[&str]) -> Run {
    let out = cmd.args(args).output().expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    record_artifact("sources-cli", &format!("{stdout}\n{stderr}"));
    Run {
        code: out.status.code(),
        stdout,
        stderr,
    }
}

/// `run`, which must succeed.
fn ok(cmd: &mut Command, args: &[&str]) -> String {
    let r = run(cmd, args);
    assert_eq!(r.code, Some(0), "{args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// The value of the `Label:  value` line `add`/`rotate` print.
fn field(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label} line in:\n{stdout}"))
}

/// The raw value the registry holds for `name`.
async fn stored(nats_url: &str, name: &str) -> Option<Vec<u8>> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let kv = jetstream::new(client).get_key_value(BUCKET).await.ok()?;
    kv.get(name).await.unwrap().map(|b| b.to_vec())
}

async fn record(nats_url: &str, name: &str) -> SourceRecord {
    let raw = stored(nats_url, name).await.expect("record stored");
    serde_json::from_slice(&raw).unwrap()
}

fn key() -> RegistryKey {
    RegistryKey::from_base64(&SecretString::from(REGISTRY_KEY)).unwrap()
}

fn defaults() -> SourceDefaults {
    SourceDefaults::default()
}

/// The alert message as TradingView sends it once a strategy fills in the
/// placeholders.
fn filled(message: &str, action: &str, contracts: &str, position_after: &str) -> String {
    let text = message
        .replace("{{ticker}}", "BTCUSDT")
        .replace("{{exchange}}", "BINANCE")
        .replace("{{strategy.order.action}}", action)
        .replace("{{strategy.order.contracts}}", contracts)
        .replace("{{strategy.position_size}}", position_after)
        .replace("{{close}}", "65000.5")
        .replace("{{interval}}", "15")
        .replace("{{timenow}}", "2026-12-07T20:00:00Z");
    assert!(!text.contains("{{"), "a placeholder is not filled: {text}");
    text
}

#[actix_rt::test]
async fn a_tradingview_source_is_stored_as_a_digest_and_its_alert_message_works_as_printed() {
    let nats = NatsServer::start();
    let out = ok(
        &mut sources(&nats.url()),
        &[
            "add",
            "trader-42",
            "--kind",
            "tradingview",
            "--priority",
            "high",
        ],
    );
    let url = field(&out, "Webhook URL:");
    assert_eq!(url, format!("{PUBLIC_URL}/webhooks/tradingview/trader-42"));
    let token = field(&out, "Token:");
    assert_eq!(token.len(), 43, "32 random bytes, base64url");

    // Only the digest is stored.
    let raw = String::from_utf8(stored(&nats.url(), "trader-42").await.unwrap()).unwrap();
    assert!(!raw.contains(&token), "the token is stored in clear: {raw}");
    assert!(
        raw.contains(&TokenDigest::of(&token, None).to_hex()),
        "{raw}"
    );
    let rec: SourceRecord = serde_json::from_str(&raw).unwrap();
    assert_eq!(rec.settings["priority"], "high");
    assert!(!rec.disabled);
    let id = SourceId::parse("trader-42").unwrap();
    let source = rec.build(&id, Some(&key()), &defaults()).unwrap();
    assert!(source.tokens[0].matches(&token, OffsetDateTime::now_utc()));

    // The alert message: everything after its heading, JSON, with the token.
    let message = &out[out.find("\n{\n").expect("a JSON alert message") + 1..];
    let doc: Value = serde_json::from_str(message).unwrap();
    assert_eq!(doc["passphrase"], token.as_str());

    // Pasted into TradingView and sent to the printed URL's path, to a
    // gateway that serves the registry.
    let app = registry_gateway(nats).await;
    let path = url.strip_prefix(PUBLIC_URL).unwrap();
    for (action, contracts, after) in [("buy", "0.5", "0.5"), ("sell", "0.5", "0")] {
        let body = filled(message, action, contracts, after);
        let resp = app.post_tradingview(path, "text/plain", &body).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    }
    let signals = app.messages_on("signals.normalized").await;
    let buy = &signals[0].json;
    assert_eq!(buy["source"], "trader-42");
    assert_eq!(buy["action"], "buy");
    assert_eq!(buy["instrument"]["symbol"], "BTCUSDT");
    assert_eq!(buy["instrument"]["exchange"], "BINANCE");
    assert_eq!(buy["size"]["value"], "0.5");
    assert_eq!(buy["size"]["unit"], "contracts");
    assert_eq!(buy["price"], "65000.5");
    assert_eq!(
        signals[1].json["action"], "close_long",
        "a sell to flat closes the long"
    );
    for m in app.stream_messages().await {
        assert!(!String::from_utf8_lossy(&m.raw).contains(&token));
    }
}

/// The `-H` headers and the body of the printed curl command.
fn curl_parts(out: &str) -> (String, Vec<(String, String)>, String) {
    let mut url = String::new();
    let mut headers = Vec::new();
    let mut body = String::new();
    for line in out.lines().map(str::trim) {
        let line = line.trim_end_matches(" \\");
        if let Some(rest) = line.strip_prefix("curl -sS -X POST '") {
            url = rest.trim_end_matches('\'').to_owned();
        } else if let Some(h) = line.strip_prefix("-H '") {
            let (n, v) = h.trim_end_matches('\'').split_once(": ").unwrap();
            headers.push((n.to_owned(), v.to_owned()));
        } else if let Some(b) = line.strip_prefix("--data-binary '") {
            body = b.trim_end_matches('\'').to_owned();
        }
    }
    assert!(
        !url.is_empty() && !body.is_empty(),
        "no curl command in:\n{out}"
    );
    (url, headers, body)
}

#[actix_rt::test]
async fn a_custom_source_is_stored_sealed_and_its_signed_example_is_accepted_as_printed() {
    let nats = NatsServer::start();
    let out = ok(
        &mut sources(&nats.url()),
        &["add", "bot-7", "--kind", "custom", "--rate-limit-rps", "20"],
    );
    assert_eq!(
        field(&out, "Webhook URL:"),
        format!("{PUBLIC_URL}/webhooks/bot-7")
    );
    let secret = field(&out, "Secret:");
    let key_id = field(&out, "Key id:");

    let raw = String::from_utf8(stored(&nats.url(), "bot-7").await.unwrap()).unwrap();
    assert!(
        !raw.contains(&secret),
        "the secret is stored in clear: {raw}"
    );
    let rec: SourceRecord = serde_json::from_str(&raw).unwrap();
    assert_eq!(rec.settings["rate_limit_rps"], 20);
    assert_eq!(rec.secrets.len(), 1);
    assert_eq!(rec.secrets[0].id, key_id);
    let opened = key()
        .open("bot-7", &key_id, &rec.secrets[0].sealed)
        .unwrap();
    assert_eq!(opened.expose_secret(), secret);

    // The example verifies with the stored key...
    let (url, headers, body) = curl_parts(&out);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let id = SourceId::parse("bot-7").unwrap();
    let source = rec.build(&id, Some(&key()), &defaults()).unwrap();
    let sig = at_gateway::auth::signature::parse_header(&header("X-Signature")).unwrap();
    let used = at_gateway::auth::signature::verify(
        &source.keys,
        &header("X-Timestamp"),
        &header("X-Nonce"),
        body.as_bytes(),
        &sig,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(used, key_id);

    // ...and a gateway serving the registry accepts it as printed.
    let app = registry_gateway(nats).await;
    let mut req = app
        .http
        .post(app.url(url.strip_prefix(PUBLIC_URL).unwrap()));
    for (n, v) in &headers {
        req = req.header(n, v);
    }
    let resp = req.body(body).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let signal = &app.messages_on("signals.normalized").await[0].json;
    assert_eq!(signal["source"], "bot-7");
    assert_eq!(signal["action"], "buy");
}

#[actix_rt::test]
async fn a_standard_webhooks_source_gets_a_whsec_secret() {
    let nats = NatsServer::start();
    let out = ok(
        &mut sources(&nats.url()),
        &[
            "add",
            "bot-sw",
            "--kind",
            "custom",
            "--scheme",
            "standard-webhooks",
            "--json",
        ],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    let secret = doc["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(doc["example"]["headers"]["webhook-signature"]
        .as_str()
        .unwrap()
        .starts_with("v1,"));
    let rec = record(&nats.url(), "bot-sw").await;
    let id = SourceId::parse("bot-sw").unwrap();
    let source = rec.build(&id, Some(&key()), &defaults()).unwrap();
    assert_eq!(source.keys[0].secret.expose_secret(), secret);
}

#[actix_rt::test]
async fn a_body_hmac_source_takes_the_header_names_its_sender_already_uses() {
    let nats = NatsServer::start();
    let out = ok(
        &mut sources(&nats.url()),
        &[
            "add",
            "gh-bot",
            "--kind",
            "custom",
            "--scheme",
            "body-hmac",
            "--signature-header",
            "X-Hub-Signature-256",
            "--id-header",
            "X-GitHub-Delivery",
            "--timestamp-header",
            "",
            "--json",
        ],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    let secret = doc["secret"].as_str().unwrap().to_string();
    let example: Vec<&String> = doc["example"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        example,
        ["Content-Type", "X-Hub-Signature-256", "X-GitHub-Delivery"],
        "the example signs with the sender's headers, no timestamp"
    );
    let rec = record(&nats.url(), "gh-bot").await;
    assert_eq!(rec.settings["signature_header"], "X-Hub-Signature-256");
    assert_eq!(rec.settings["timestamp_header"], "");

    // A sender signing as GitHub does, written here from its documentation
    // rather than with the gateway's code: HMAC-SHA256 of the body, in hex.
    use hmac::{Hmac, Mac};
    let body = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"1"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let app = registry_gateway(nats).await;
    let deliver = || {
        app.http
            .post(app.url("/webhooks/gh-bot"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .header("X-Hub-Signature-256", &signature)
            .body(body)
    };
    let (status, first) = answer(deliver()).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = answer(deliver()).await;
    assert_eq!((status, again["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}

#[actix_rt::test]
async fn an_existing_name_or_a_bad_setting_writes_nothing() {
    let nats = NatsServer::start();
    ok(
        &mut sources(&nats.url()),
        &["add", "trader-1", "--kind", "tradingview"],
    );
    let before = stored(&nats.url(), "trader-1").await.unwrap();

    let again = run(
        &mut sources(&nats.url()),
        &["add", "trader-1", "--kind", "custom"],
    );
    assert_ne!(again.code, Some(0));
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(!again.stdout.contains("Token:") && !again.stdout.contains("Secret:"));
    assert_eq!(stored(&nats.url(), "trader-1").await.unwrap(), before);

    // A setting the gateway would refuse: nothing stored, the setting named.
    for (name, flag, value, named) in [
        ("trader-2", "--priority", "urgent", "urgent"),
        ("trader-3", "--allowed-ip", "not-a-network", "allowed_ips"),
        // Header names are for body-hmac sources only: elsewhere they
        // would silently do nothing.
        (
            "trader-4",
            "--signature-header",
            "X-Sig",
            "signature_header",
        ),
    ] {
        let bad = run(
            &mut sources(&nats.url()),
            &["add", name, "--kind", "tradingview", flag, value],
        );
        assert_eq!(bad.code, Some(2));
        assert!(bad.stderr.contains(named), "{}", bad.stderr);
        assert!(bad.stderr.contains("nothing was written"), "{}", bad.stderr);
        assert!(bad.stdout.is_empty(), "{}", bad.stdout);
        assert!(stored(&nats.url(), name).await.is_none());
    }
}

#[actix_rt::test]
async fn rotate_adds_a_credential_and_keeps_the_old_one_until_the_overlap_ends() {
    let nats = NatsServer::start();
    let url = nats.url();
    let out = ok(
        &mut sources(&url),
        &["add", "trader-5", "--kind", "tradingview"],
    );
    let old_token = field(&out, "Token:");
    let out = ok(
        &mut sources(&url),
        &["rotate", "trader-5", "--overlap-sec", "3600"],
    );
    let new_token = field(&out, "Token:");
    assert_ne!(old_token, new_token);
    let rec = record(&url, "trader-5").await;
    assert_eq!(rec.tokens.len(), 2);
    assert_eq!(
        rec.tokens[0].sha256,
        TokenDigest::of(&old_token, None).to_hex()
    );
    let until = parse_time(rec.tokens[0].not_after.as_deref().unwrap()).unwrap();
    assert!(
        until > OffsetDateTime::now_utc(),
        "the old token still works"
    );
    assert_eq!(
        rec.tokens[1].sha256,
        TokenDigest::of(&new_token, None).to_hex()
    );
    assert_eq!(rec.tokens[1].not_after, None);
    let raw = String::from_utf8(stored(&url, "trader-5").await.unwrap()).unwrap();
    assert!(!raw.contains(&new_token) && !raw.contains(&old_token));

    let out = ok(&mut sources(&url), &["add", "bot-5", "--kind", "custom"]);
    let old_id = field(&out, "Key id:");
    let out = ok(&mut sources(&url), &["rotate", "bot-5"]);
    let new_id = field(&out, "Key id:");
    let new_secret = field(&out, "Secret:");
    assert_ne!(old_id, new_id);
    let rec = record(&url, "bot-5").await;
    assert_eq!(rec.secrets.len(), 2);
    assert_eq!(rec.secrets[0].id, old_id);
    assert!(rec.secrets[0].not_after.is_some());
    assert_eq!(rec.secrets[1].id, new_id);
    let opened = key()
        .open("bot-5", &new_id, &rec.secrets[1].sealed)
        .unwrap();
    assert_eq!(opened.expose_secret(), new_secret);

    // Without overlap the old key ends now; the next rotation drops it.
    ok(
        &mut sources(&url),
        &["rotate", "bot-5", "--overlap-sec", "0"],
    );
    ok(
        &mut sources(&url),
        &["rotate", "bot-5", "--overlap-sec", "0"],
    );
    let ids: Vec<String> = record(&url, "bot-5")
        .await
        .secrets
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!ids.contains(&old_id) && !ids.contains(&new_id), "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[actix_rt::test]
async fn disable_and_enable_flip_the_record_and_list_and_show_print_no_credential() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut printed = Vec::new();
    let out = ok(
        &mut sources(&url),
        &["add", "trader-9", "--kind", "tradingview"],
    );
    printed.push(field(&out, "Token:"));
    let out = ok(&mut sources(&url), &["rotate", "trader-9"]);
    printed.push(field(&out, "Token:"));
    let out = ok(
        &mut sources(&url),
        &["add", "bot-9", "--kind", "custom", "--json"],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    printed.push(doc["secret"].as_str().unwrap().to_owned());

    let out = ok(&mut sources(&url), &["disable", "trader-9"]);
    assert!(out.contains("disabled"), "{out}");
    assert!(record(&url, "trader-9").await.disabled);
    let out = ok(&mut sources(&url), &["disable", "trader-9"]);
    assert!(out.contains("already disabled"), "{out}");

    let list = ok(&mut sources(&url), &["list"]);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line("trader-9")[1..5],
        ["tradingview", "-", "disabled", "2"]
    );
    assert_eq!(
        line("bot-9")[1..5],
        ["custom", "hmac-sha256", "enabled", "1"]
    );

    ok(&mut sources(&url), &["enable", "trader-9"]);
    assert!(!record(&url, "trader-9").await.disabled);
    let json_list = ok(&mut sources(&url), &["list", "--json"]);
    let rows: Vec<Value> = json_list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["name"], "trader-9");
    assert_eq!(rows[1]["state"], "enabled");

    let show_tv = ok(&mut sources(&url), &["show", "trader-9"]);
    assert!(show_tv.contains("#1  until "), "{show_tv}");
    assert!(show_tv.contains("#2  no expiry"), "{show_tv}");
    let show_bot = ok(&mut sources(&url), &["show", "bot-9", "--json"]);
    let doc: Value = serde_json::from_str(&show_bot).unwrap();
    assert_eq!(doc["keys"][0]["live"], true);

    // No credential, no digest, no sealed secret in what list and show print.
    let tv = record(&url, "trader-9").await;
    let bot = record(&url, "bot-9").await;
    let mut hidden = printed.clone();
    hidden.extend(tv.tokens.iter().map(|t| t.sha256.clone()));
    hidden.extend(bot.secrets.iter().map(|s| s.sealed.clone()));
    for output in [&list, &json_list, &show_tv, &show_bot] {
        for h in &hidden {
            assert!(!output.contains(h.as_str()), "{output}");
        }
    }
}

#[actix_rt::test]
async fn every_failure_says_what_is_wrong() {
    let nats = NatsServer::start();
    let url = nats.url();

    // The registry is not enabled.
    let r = run(
        sources(&url).env_remove("SOURCE_REGISTRY"),
        &["add", "trader-1", "--kind", "tradingview"],
    );
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("SOURCE_REGISTRY"), "{}", r.stderr);

    // new-key needs neither the registry nor NATS, and prints only the key.
    let r = run(
        sources("nats://127.0.0.1:1").env_remove("SOURCE_REGISTRY"),
        &["new-key"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let text = SecretString::from(r.stdout.trim_end_matches('\n').to_owned());
    assert!(RegistryKey::from_base64(&text).is_ok(), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1);

    // A name missing, not a name, not in the registry.
    let r = run(&mut sources(&url), &["add", "--kind", "custom"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("<NAME>"), "{}", r.stderr);
    let r = run(&mut sources(&url), &["add", "a/b", "--kind", "custom"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("not a source name"), "{}", r.stderr);
    for cmd in ["show", "rotate", "disable"] {
        let r = run(&mut sources(&url), &[cmd, "nobody"]);
        assert_eq!(r.code, Some(2), "{cmd}");
        assert!(
            r.stderr.contains("no source \"nobody\""),
            "{cmd}: {}",
            r.stderr
        );
    }

    // NATS unreachable: the address is named (its credentials are not).
    let r = run(&mut sources("nats://ops:hunter2@127.0.0.1:1"), &["list"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("127.0.0.1:1") && r.stderr.contains("unreachable"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);

    // Another registry key does not open the sealed secrets.
    ok(&mut sources(&url), &["add", "bot-1", "--kind", "custom"]);
    let (_, other) = RegistryKey::generate();
    let r = run(
        sources(&url).env("SOURCE_REGISTRY_KEY", other.expose_secret()),
        &["rotate", "bot-1"],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("does not open with the registry key"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(record(&url, "bot-1").await.secrets.len(), 1);
}

/// Runs the same command in `n` processes at once; their outputs.
fn at_once(nats_url: &str, n: usize, args: &[&str]) -> Vec<Run> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            sources(nats_url)
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("binary runs")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            record_artifact("sources-cli", &format!("{stdout}\n{stderr}"));
            Run {
                code: out.status.code(),
                stdout,
                stderr,
            }
        })
        .collect()
}

#[actix_rt::test]
async fn concurrent_operators_never_lose_a_write() {
    let nats = NatsServer::start();
    let url = nats.url();

    // Of operators adding one name at once, exactly one wins.
    let adds = at_once(&url, 4, &["add", "trader-c", "--kind", "tradingview"]);
    let winners: Vec<&Run> = adds.iter().filter(|r| r.code == Some(0)).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        adds.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
    for r in adds.iter().filter(|r| r.code != Some(0)) {
        assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    }
    let first = field(&winners[0].stdout, "Token:");
    let rec = record(&url, "trader-c").await;
    assert_eq!(rec.tokens.len(), 1);
    assert_eq!(rec.tokens[0].sha256, TokenDigest::of(&first, None).to_hex());

    // Rotations at once: every printed token is stored.
    let rotations = at_once(&url, 4, &["rotate", "trader-c"]);
    let rec = record(&url, "trader-c").await;
    assert_eq!(rec.tokens.len(), 5);
    for r in &rotations {
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let digest = TokenDigest::of(&field(&r.stdout, "Token:"), None).to_hex();
        assert!(
            rec.tokens.iter().any(|t| t.sha256 == digest),
            "a rotation was lost"
        );
    }
}
