//! Custom sources: HMAC signatures, the timestamp window, nonce replay, and
//! what lands in JetStream for an accepted signal.

use crate::common;

use common::*;
use serde_json::Value;

const BODY: &str = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5","price":64000.10}"#;

#[actix_rt::test]
async fn signed_request_is_accepted_and_lands_on_raw_and_normalized() {
    let app = spawn_app(AppOptions::default()).await;
    let resp = app
        .signed(&sign(BODY))
        .header("X-Correlation-Id", "corr-123")
        .send()
        .await;
    assert_eq!(resp.headers()["x-correlation-id"], "corr-123");
    let (status, body) = json_body(resp).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["corr_id"], "corr-123");
    let event_id = body["event_id"].as_str().unwrap().to_string();

    let msgs = app.stream_messages().await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let (raw, norm) = (&msgs[0], &msgs[1]);
    assert_eq!(raw.subject, "signals.raw");
    assert_eq!(norm.subject, "signals.normalized");
    assert_valid("signal.raw.v1.json", &raw.json);
    assert_valid("signal.normalized.v2.json", &norm.json);
    assert_eq!(
        raw.json["body"], BODY,
        "raw body is published byte for byte"
    );
    assert_eq!(raw.json["key_id"], "default");
    assert_eq!(norm.json["event_id"], event_id.as_str());
    assert_eq!(norm.json["corr_id"], "corr-123");
    assert_eq!(norm.json["price"], "64000.10");
    assert_eq!(
        norm.json["size"],
        serde_json::json!({"value": "0.5", "unit": "units", "currency": null})
    );
    for m in [raw, norm] {
        assert_eq!(m.header("X-Event-Id"), Some(event_id.as_str()));
        assert_eq!(m.header("X-Source"), Some("alpha"));
        assert_eq!(m.header("X-Correlation-Id"), Some("corr-123"));
        assert!(m.header("Nats-Msg-Id").unwrap().starts_with("alpha:"));
    }
    assert_eq!(raw.header("X-Schema-Version"), Some("signal.raw.v1"));
    assert_eq!(
        norm.header("X-Schema-Version"),
        Some("signal.normalized.v2")
    );
}

#[actix_rt::test]
async fn wrong_missing_or_malformed_signature_is_401() {
    let app = spawn_app(AppOptions::default()).await;
    let good = sign(BODY);

    let wrong_secret = sign_with("another-secret-0123456789", now_secs(), "n-1", BODY);
    let (status, body) = json_body(app.send_signed("alpha", &wrong_secret).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_signature"))
    );

    let mut tampered = good.clone();
    tampered.body = BODY.replace("0.5", "5");
    assert_eq!(app.send_signed("alpha", &tampered).await.status(), 401);

    let mut malformed = good.clone();
    malformed.signature = "sha256=nothex".into();
    assert_eq!(app.send_signed("alpha", &malformed).await.status(), 401);

    let (status, body) = app.signed(&good).without("X-Signature").answer().await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_signature"))
    );
    assert!(body["corr_id"].is_string() && body["message"].is_string());

    assert!(
        app.stream_messages().await.is_empty(),
        "nothing unauthenticated is published"
    );
}

#[actix_rt::test]
async fn timestamp_outside_the_replay_window_is_401() {
    let app = spawn_app(AppOptions {
        env: vec![("REPLAY_WINDOW_SEC", "60".into())],
        ..Default::default()
    })
    .await;
    for ts in [now_secs() - 120, now_secs() + 120] {
        let s = sign_with(HMAC_SECRET, ts, &format!("n-{ts}"), BODY);
        let (status, body) = json_body(app.send_signed("alpha", &s).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("stale_timestamp")),
            "{body}"
        );
    }
    // Milliseconds (JavaScript's Date.now()) are named as the mistake.
    let s = sign_with(HMAC_SECRET, now_secs() * 1000, "n-millis", BODY);
    let (status, body) = json_body(app.send_signed("alpha", &s).await).await;
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("milliseconds"),
        "{body}"
    );
    let s = sign_with(HMAC_SECRET, now_secs() - 30, "n-inside", BODY);
    assert_eq!(app.send_signed("alpha", &s).await.status(), 202);
}

#[actix_rt::test]
async fn replayed_nonce_is_rejected_with_409() {
    let app = spawn_app(AppOptions::default()).await;
    let s = sign(BODY);
    assert_eq!(app.send_signed("alpha", &s).await.status(), 202);
    let (status, body) = json_body(app.send_signed("alpha", &s).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("replay")),
        "{body}"
    );

    // The same nonce with another body (and a valid signature for it) is a replay too.
    let other = sign_with(
        HMAC_SECRET,
        now_secs(),
        &s.nonce,
        r#"{"symbol":"ETHUSDT","action":"sell"}"#,
    );
    let (status, body) = json_body(app.send_signed("alpha", &other).await).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("replay")));

    // The same nonce for another source is that source's own business.
    let beta = sign_with(HMAC_SECRET, now_secs(), &s.nonce, BODY);
    assert_eq!(app.send_signed("beta", &beta).await.status(), 202);

    assert_eq!(app.messages_on("signals.raw").await.len(), 2);
}

#[actix_rt::test]
async fn several_live_secrets_each_verify_and_the_key_id_is_recorded() {
    let app = spawn_app(AppOptions::with_config(
        r#"
[sources.alpha]
secrets = [ { id = "2026-10", secret = "old-secret-0123456789abcdef" },
            { id = "2026-11", secret = "new-secret-0123456789abcdef" } ]
"#,
    ))
    .await;
    for (secret, id) in [
        ("old-secret-0123456789abcdef", "2026-10"),
        ("new-secret-0123456789abcdef", "2026-11"),
    ] {
        let body = BODY.replace("0.5", if id == "2026-10" { "0.6" } else { "0.7" });
        let s = sign_with(secret, now_secs(), &format!("n-{id}"), &body);
        assert_eq!(app.send_signed("alpha", &s).await.status(), 202);
        let raws = app.messages_on("signals.raw").await;
        assert_eq!(raws.last().unwrap().json["key_id"], id);
    }
    // The global secret no longer works for a source with its own keys.
    let s = sign_with(
        HMAC_SECRET,
        now_secs(),
        "n-global",
        &BODY.replace("0.5", "0.8"),
    );
    assert_eq!(app.send_signed("alpha", &s).await.status(), 401);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_auth_key_used_total{key_id="2026-11",source="alpha"} 1"#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn canonical_payloads_pass_through() {
    let app = spawn_app(AppOptions::default()).await;
    let body = r#"{"instrument":{"symbol":"ETH-USD","exchange":"COINBASE"},"action":"sell",
        "quantity":"1.25","price":"3000.5","order_type":"limit","asserted_at":"2026-11-22T10:00:00Z",
        "strategy":{"name":"mean-revert"},"extra":{"desk":"A"}}"#;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let norm = &app.messages_on("signals.normalized").await[0];
    assert_valid("signal.normalized.v2.json", &norm.json);
    assert_eq!(norm.json["format"], "canonical");
    assert_eq!(norm.json["instrument"]["exchange"], "COINBASE");
    assert_eq!(norm.json["order_type"], "limit");
    assert_eq!(norm.json["strategy"]["name"], "mean-revert");
    assert_eq!(norm.json["extra"]["desk"], "A");
    assert_eq!(norm.json["asserted_at"], "2026-11-22T10:00:00Z");
    assert_eq!(norm.json["price"], Value::String("3000.5".into()));
}

#[actix_rt::test]
async fn a_custom_source_with_allowed_ips_refuses_other_senders_with_403() {
    // The test client is 127.0.0.1.
    let elsewhere = "[sources.alpha]\nallowed_ips = [\"203.0.113.0/24\"]\n";
    let app = spawn_app(AppOptions::with_config(elsewhere)).await;
    let (status, body) = json_body(app.signed(&sign(BODY)).send().await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("sender_not_allowed")),
        "{body}"
    );
    assert!(app.stream_messages().await.is_empty(), "nothing stored");

    let here = "[sources.alpha]\nallowed_ips = [\"203.0.113.0/24\", \"127.0.0.1\"]\n";
    let app = spawn_app(AppOptions::with_config(here)).await;
    assert_eq!(app.signed(&sign(BODY)).send().await.status(), 202);
}
