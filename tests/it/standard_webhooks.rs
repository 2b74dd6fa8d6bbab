//! Standard Webhooks senders work unchanged: requests signed by the
//! reference `standardwebhooks` library (PyPI, installed by
//! scripts/test.sh) are accepted; the reference vectors and edge cases are
//! unit tests in src/auth/standard.rs.

use crate::common;

use std::process::Command;

use common::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER: &str = "whsec_Zm9yZ2VyLWtleS0wMTIzNDU2Nzg5YWI=";

/// Headers made by the reference library for (secret, id, timestamp, body).
fn reference_sign(secret: &str, id: &str, ts: u64, body: &str) -> String {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import sys, datetime
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, body = sys.argv[1:5]
when = datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc)
print(Webhook(secret).sign(msg_id, when, body))
"#;
    let out = Command::new(&python)
        .args(["-c", script, secret, id, &ts.to_string(), body])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}; run the suite with scripts/test.sh"));
    assert!(
        out.status.success(),
        "the reference library is needed (scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn options() -> AppOptions {
    AppOptions {
        env: vec![("ALLOWED_SOURCES", "svix-like".into())],
        config: format!(
            "[sources.svix-like]\nscheme = \"standard-webhooks\"\nsecrets = [ {{ id = \"k1\", secret = \"{SECRET}\" }} ]\n"
        ),
        ..Default::default()
    }
}

/// The three headers of a Standard Webhooks request.
fn webhook_headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]
}

async fn send(app: &TestApp, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .post(app.url("/webhooks/svix-like"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    json_body(req.send().await.unwrap()).await
}

#[actix_rt::test]
async fn requests_signed_by_the_reference_library_are_accepted_once() {
    let app = spawn_app(options()).await;
    let body = r#"{"symbol":"ETHUSDT","action":"sell","quantity":"1.5"}"#;
    let ts = now_secs();
    let sig = reference_sign(SECRET, "msg_2a9Kx7", ts, body);
    let ts = ts.to_string();
    let headers = webhook_headers("msg_2a9Kx7", &ts, &sig);
    let (status, resp) = send(&app, &headers, body).await;
    assert_eq!(status, 202, "{resp}");

    // A sender's retry re-uses webhook-id: never a second signal.
    let (status, resp) = send(&app, &headers, body).await;
    assert_eq!((status, resp["code"].as_str()), (409, Some("replay")));

    let raws = app.messages_on("signals.raw").await;
    assert_eq!(raws.len(), 1);
    assert_eq!(raws[0].json["auth_scheme"], "standard-webhooks");
    assert_eq!(raws[0].json["key_id"], "k1");
    assert_eq!(
        raws[0].header("Nats-Msg-Id"),
        Some("svix-like:w:msg_2a9Kx7:raw")
    );
    assert_valid("signal.raw.v1.json", &raws[0].json);
    let norm = &app.messages_on("signals.normalized").await[0];
    assert_eq!(norm.json["size"]["value"], "1.5");
}

#[actix_rt::test]
async fn several_signatures_one_valid_passes_and_forgeries_fail() {
    let app = spawn_app(options()).await;
    let body = r#"{"symbol":"BTCUSDT","action":"buy"}"#;
    let ts = now_secs();
    let good = reference_sign(SECRET, "msg_1", ts, body);
    let forged = reference_sign(OTHER, "msg_1", ts, body);
    let ts = ts.to_string();
    let headers = |sig| webhook_headers("msg_1", &ts, sig);
    let truncated = &good[..good.len() - 5];
    for sig in [forged.as_str(), "v1,", truncated] {
        let (status, resp) = send(&app, &headers(sig), body).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (401, Some("invalid_signature")),
            "{sig}"
        );
    }
    let both = format!("{forged} {good}");
    assert_eq!(send(&app, &headers(&both), body).await.0, 202);
}

#[actix_rt::test]
async fn each_missing_header_and_timestamps_outside_the_tolerance_are_401() {
    let app = spawn_app(options()).await;
    let body = r#"{"symbol":"BTCUSDT","action":"buy"}"#;
    let now = now_secs();
    let sig = reference_sign(SECRET, "msg_h", now, body);
    let ts = now.to_string();
    let all = webhook_headers("msg_h", &ts, &sig);
    for (missing, code) in [
        ("webhook-id", "invalid_nonce"),
        ("webhook-timestamp", "invalid_timestamp"),
        ("webhook-signature", "missing_signature"),
    ] {
        let headers: Vec<(&str, &str)> =
            all.iter().copied().filter(|(k, _)| *k != missing).collect();
        let (status, resp) = send(&app, &headers, body).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (401, Some(code)),
            "without {missing}"
        );
    }
    // Tolerance 300 s: one second inside passes, one second outside fails.
    // Signing runs the reference library (a process start), so the clock may
    // tick between reading it and the gateway's check: a case whose second
    // changed on the way is sent again.
    for (offset, expected) in [(-299i64, 202u16), (299, 202), (-301, 401), (301, 401)] {
        let (status, resp) = loop {
            let now = now_secs();
            let when = (now as i64 + offset) as u64;
            let id = format!("msg_t{offset}_{now}");
            let sig = reference_sign(SECRET, &id, when, body);
            let when = when.to_string();
            let answer = send(&app, &webhook_headers(&id, &when, &sig), body).await;
            if now_secs() == now {
                break answer;
            }
        };
        assert_eq!(status, expected, "offset {offset}: {resp}");
        if expected == 401 {
            assert_eq!(resp["code"], "stale_timestamp");
        }
    }
}
