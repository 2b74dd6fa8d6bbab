//! The ops subcommands against a real gateway and nats-server: `sign`
//! output is accepted as printed (headers and the curl command), `tail`
//! reads through a durable consumer that resumes, and `dlq replay`
//! publishes a dead letter once, however often it is run.

use crate::common;

use std::process::{Command, Output};

use async_nats::HeaderMap;
use common::*;
use serde_json::{json, Value};

/// The binary with the test suite's sources and secrets.
fn gateway(nats_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_at-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRADINGVIEW_TOKEN", TV_TOKEN)
        .env("API_KEY_HMAC_SECRET", HMAC_SECRET)
        .env("ALLOWED_SOURCES", "tradingview,alpha,beta")
        .env("NATS_URL", nats_url);
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    record_artifact("cli", &format!("{stdout}\n{stderr}"));
    (out, stdout, stderr)
}

/// The `Name: value` lines `sign` prints before the curl command.
fn printed_headers(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("header line");
            (n.to_string(), v.to_string())
        })
        .collect()
}

/// Sends a body file with the headers `sign` printed.
async fn send_printed(
    app: &TestApp,
    path: &str,
    headers: &[(String, String)],
    body_file: &std::path::Path,
) -> reqwest::Response {
    let mut req = app.http.post(app.url(path));
    for (n, v) in headers {
        req = req.header(n, v);
    }
    req.body(std::fs::read(body_file).unwrap())
        .send()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn signed_output_is_accepted_as_printed_and_holds_no_secret() {
    let app = spawn_app(AppOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(
        &body_file,
        "{\"symbol\":\"ETHUSDT\",\"action\":\"sell\",\"quantity\":\"2\"}\n",
    )
    .unwrap();

    // The headers, sent by another client.
    let (out, stdout, stderr) = run(gateway(&app.nats.url())
        .args([
            "sign",
            "alpha",
            "--url",
            &app.base,
            "--idempotency-key",
            "sign-test-1",
        ])
        .arg("--body-file")
        .arg(&body_file));
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(HMAC_SECRET));
    let headers = printed_headers(&stdout);
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "X-Timestamp",
            "X-Nonce",
            "X-Signature",
            "Idempotency-Key"
        ]
    );
    let resp = send_printed(&app, "/webhooks/alpha", &headers, &body_file).await;
    assert_eq!(resp.status(), 202);

    // The curl command, run as printed (stdin body this time).
    let body = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5","note":"it's"}"#;
    let mut sign = gateway(&app.nats.url());
    sign.args(["sign", "alpha", "--url", &app.base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = sign.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let curl = stdout[stdout.find("curl ").expect("a curl command")..].trim_end();
    let (out, answer, stderr) = run(Command::new("sh")
        .arg("-c")
        .arg(format!("{curl} -w ' %{{http_code}}'")));
    assert!(out.status.success(), "{curl}\n{stderr}");
    assert!(answer.ends_with(" 202"), "{answer}");

    let normalized = app.messages_on("signals.normalized").await;
    let symbols: Vec<&str> = normalized
        .iter()
        .map(|m| m.json["instrument"]["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["ETHUSDT", "BTCUSDT"]);
}

#[actix_rt::test]
async fn sign_speaks_standard_webhooks_and_refuses_what_it_cannot_sign() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let config = format!(
        "[sources.beta]\nkind = \"custom\"\nscheme = \"standard-webhooks\"\nsecrets = [{{ id = \"k1\", secret = \"{secret}\" }}]\n"
    );
    let app = spawn_app(AppOptions::with_config(config.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("sources.toml");
    std::fs::write(&config_file, &config).unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, r#"{"symbol":"SOLUSDT","action":"buy"}"#).unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = gateway(&app.nats.url());
        cmd.arg("--config").arg(&config_file).args(args);
        cmd
    };

    let (out, stdout, stderr) = run(with_config(&["sign", "beta", "--url", &app.base])
        .arg("--body-file")
        .arg(&body_file));
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(secret));
    let headers = printed_headers(&stdout);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "webhook-signature" && v.starts_with("v1,")));
    let resp = send_printed(&app, "/webhooks/beta", &headers, &body_file).await;
    assert_eq!(resp.status(), 202);

    for (args, expected) in [
        (vec!["sign", "tradingview"], "token"),
        (vec!["sign", "gamma"], "not configured"),
        (vec!["sign", "beta", "--key-id", "k9"], "no key"),
    ] {
        let (out, _, stderr) = run(with_config(&args).arg("--body-file").arg(&body_file));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[actix_rt::test]
async fn tail_prints_through_a_durable_consumer_that_resumes() {
    let app = spawn_app(AppOptions::default()).await;
    let mut event_ids = Vec::new();
    for symbol in ["AAAUSDT", "BBBUSDT", "CCCUSDT"] {
        let resp = app
            .post_custom(&format!(r#"{{"symbol":"{symbol}","action":"buy"}}"#))
            .await;
        let (status, body) = json_body(resp).await;
        assert_eq!(status, 202);
        event_ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    let tail = |count: &str| {
        let (out, stdout, stderr) = run(gateway(&app.nats.url()).args([
            "tail",
            "--from",
            "all",
            "--json",
            "--durable",
            "ops-test",
            "--count",
            count,
        ]));
        assert!(out.status.success(), "{stderr}");
        stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(tail("2"), event_ids[..2]);
    // Same durable: it resumes after what it acknowledged.
    assert_eq!(tail("1"), event_ids[2..]);

    // A durable that follows another subject is not silently repurposed.
    let (out, _, stderr) = run(gateway(&app.nats.url()).args([
        "tail",
        "--durable",
        "ops-test",
        "--subject",
        "signals.raw",
        "--count",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("already follows"), "{stderr}");
}

/// Publishes a raw event and its dead letter, as a gateway whose normalizer
/// refused the body would have.
async fn publish_dead_letter(nats_url: &str, key: &str, body: &str) -> String {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let event_id = uuid::Uuid::now_v7().to_string();
    let received_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let raw = json!({
        "schema": "signal.raw.v1", "event_id": event_id, "corr_id": "corr-dlq",
        "source": "alpha", "source_kind": "custom", "received_at": received_at,
        "auth_scheme": "hmac-sha256", "key_id": "default", "idempotency_key": key,
        "content_type": "application/json", "body_encoding": "utf8", "body": body,
    });
    let dead = json!({
        "schema": "signal.dlq.v1", "event_id": event_id, "corr_id": "corr-dlq",
        "source": "alpha", "received_at": received_at,
        "reasons": ["an older normalizer's reason"],
        "raw_subject": "signals.raw", "raw_msg_id": format!("alpha:{key}:raw"),
    });
    for (subject, role, value) in [("signals.raw", "raw", raw), ("signals.dlq", "dlq", dead)] {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("alpha:{key}:{role}").as_str());
        js.publish_with_headers(subject, headers, serde_json::to_vec(&value).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    event_id
}

#[actix_rt::test]
async fn dlq_replay_publishes_a_fixed_dead_letter_exactly_once() {
    let app = spawn_app(AppOptions::default()).await;
    // A dead letter the current normalizer still refuses, from real traffic.
    let resp = app
        .post_custom(r#"{"symbol":"BTCUSDT","action":"hodl"}"#)
        .await;
    assert_eq!(resp.status(), 422);
    // And one it now accepts.
    let fixed = publish_dead_letter(
        &app.nats.url(),
        "dlq-fixed",
        r#"{"symbol":"XRPUSDT","action":"sell","quantity":"10"}"#,
    )
    .await;

    let (out, stdout, stderr) = run(gateway(&app.nats.url()).args(["dlq", "list", "--json"]));
    assert!(out.status.success(), "{stderr}");
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert!(
        records[0]["reasons"][0].as_str().unwrap().contains("hodl"),
        "{stdout}"
    );
    assert_eq!(records[1]["event_id"], fixed.as_str());

    let (out, stdout, stderr) =
        run(gateway(&app.nats.url()).args(["dlq", "replay", "--all", "--dry-run"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("still does not normalize"), "{stdout}");
    assert!(app.messages_on("signals.normalized").await.is_empty());

    for _ in 0..2 {
        let (out, stdout, stderr) = run(gateway(&app.nats.url()).args(["dlq", "replay", "--all"]));
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("still does not normalize"), "{stdout}");
    }
    let normalized = app.messages_on("signals.normalized").await;
    assert_eq!(normalized.len(), 1, "replayed once, however often run");
    let signal = &normalized[0];
    assert_eq!(signal.json["event_id"], fixed.as_str());
    assert_eq!(signal.json["instrument"]["symbol"], "XRPUSDT");
    assert_eq!(
        signal.header("Nats-Msg-Id"),
        Some("alpha:dlq-fixed:normalized")
    );
    assert_valid("signal.normalized.v2.json", &signal.json);

    let seq = records[1]["seq"].as_u64().unwrap().to_string();
    let (_, stdout, _) = run(gateway(&app.nats.url()).args(["dlq", "replay", &seq]));
    assert!(stdout.contains("already replayed"), "{stdout}");
    let (out, _, stderr) = run(gateway(&app.nats.url()).args(["dlq", "replay", "999999"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("999999"), "{stderr}");
}
