//! One signal per idempotency key: header, payload id, or body hash, and the
//! same key as JetStream's Nats-Msg-Id.

use crate::common;

use common::*;

const BODY: &str = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"1"}"#;

#[actix_rt::test]
async fn repeated_idempotency_key_is_409_with_the_original_event_id() {
    let app = spawn_app(AppOptions::default()).await;
    let keyed = |body: &str| app.signed(&sign(body)).idempotency_key("order-7781");
    let (status, first) = keyed(BODY).answer().await;
    assert_eq!(status, 202);

    // Same key, same body, fresh nonce: a duplicate, not a replay.
    let (status, dup) = keyed(BODY).answer().await;
    assert_eq!(status, 409);
    assert_eq!(dup["code"], "duplicate");
    assert_eq!(dup["event_id"], first["event_id"]);
    assert_eq!(dup["payload_mismatch"], false);

    // Same key, different body.
    let other = BODY.replace("\"1\"", "\"2\"");
    let (status, dup) = keyed(&other).answer().await;
    assert_eq!(status, 409);
    assert_eq!(dup["payload_mismatch"], true);
    assert_eq!(dup["event_id"], first["event_id"]);

    let msgs = app.stream_messages().await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0].header("Nats-Msg-Id"),
        Some("alpha:h:order-7781:raw")
    );
    assert_eq!(
        msgs[1].header("Nats-Msg-Id"),
        Some("alpha:h:order-7781:normalized")
    );
    assert_eq!(msgs[0].json["idempotency_key"], "alpha:h:order-7781");
}

#[actix_rt::test]
async fn the_payloads_own_id_is_the_key_when_there_is_no_header() {
    let app = spawn_app(AppOptions::default()).await;
    let a = r#"{"id":"sig-42","symbol":"BTCUSDT","action":"buy"}"#;
    let b = r#"{"id":"sig-42","symbol":"BTCUSDT","action":"buy","note":"resent"}"#;
    assert_eq!(app.post_custom(a).await.status(), 202);
    let (status, dup) = json_body(app.post_custom(b).await).await;
    assert_eq!(
        (status, dup["payload_mismatch"].as_bool()),
        (409, Some(true))
    );
    let raw = &app.messages_on("signals.raw").await[0];
    assert_eq!(raw.header("Nats-Msg-Id"), Some("alpha:p:sig-42:raw"));
}

#[actix_rt::test]
async fn without_any_id_the_body_hash_is_the_key() {
    let app = spawn_app(AppOptions::default()).await;
    assert_eq!(app.post_custom(BODY).await.status(), 202);
    let (status, dup) = json_body(app.post_custom(BODY).await).await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(
        app.post_custom(&BODY.replace("buy", "sell")).await.status(),
        202
    );
    let ids: Vec<String> = app
        .messages_on("signals.raw")
        .await
        .iter()
        .map(|m| m.header("Nats-Msg-Id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    // A body-hash key's message ids name the event too: the same body may
    // be a new signal once the re-send horizon has passed.
    assert!(ids.iter().all(|id| {
        let parts: Vec<&str> = id.split(':').collect();
        matches!(parts.as_slice(), ["alpha", "b", hash, event, "raw"]
            if hash.len() == 64 && uuid::Uuid::parse_str(event).is_ok())
    }));
    // Another source with the same body is not a duplicate.
    assert_eq!(app.send_signed("beta", &sign(BODY)).await.status(), 202);
}

#[actix_rt::test]
async fn malformed_idempotency_key_is_400_and_releases_the_nonce() {
    let app = spawn_app(AppOptions::default()).await;
    let s = sign(BODY);
    let bad = "x".repeat(300);
    let (status, body) = app.signed(&s).idempotency_key(&bad).answer().await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    assert_eq!(
        app.send_signed("alpha", &s).await.status(),
        202,
        "the failed request did not use up its nonce"
    );
}

#[actix_rt::test]
async fn an_identical_body_after_the_re_send_horizon_is_a_new_signal() {
    let app = spawn_app(AppOptions::with_config(
        "[sources.alpha]\ncontent_dedupe_sec = 1\n",
    ))
    .await;
    let first = json_body(app.post_custom(BODY).await).await;
    assert_eq!(first.0, 202);
    // A re-send inside the horizon is the same request: 409, same event.
    let (status, dup) = json_body(app.post_custom(BODY).await).await;
    assert_eq!((status, &dup["event_id"]), (409, &first.1["event_id"]));
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    // Past it, the same alert on a new bar is a new signal, stored as one
    // (not dropped by JetStream's duplicate window).
    let second = json_body(app.post_custom(BODY).await).await;
    assert_eq!(second.0, 202, "{}", second.1);
    assert_ne!(second.1["event_id"], first.1["event_id"]);
    let normalized = app.messages_on("signals.normalized").await;
    assert_eq!(normalized.len(), 2);
    // A key the sender chose keeps the full TTL.
    let keyed = || app.signed(&sign(BODY)).idempotency_key("order-77");
    assert_eq!(keyed().send().await.status(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(keyed().send().await.status(), 409);
}

#[actix_rt::test]
async fn tradingview_identical_alerts_are_one_signal_within_a_minute_by_default() {
    let app = spawn_app(AppOptions::default()).await;
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let alert = "buy BTCUSDT 1";
    assert_eq!(
        app.post_tradingview(&path, "text/plain", alert)
            .await
            .status(),
        202
    );
    // TradingView re-sends a 5xx answer 5 s later with the identical body.
    assert_eq!(
        app.post_tradingview(&path, "text/plain", alert)
            .await
            .status(),
        409
    );
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}
