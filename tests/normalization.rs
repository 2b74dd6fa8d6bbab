//! Normalization as seen from outside: exact decimals, unreplaced
//! placeholders, and what a payload that does not normalize produces.

mod common;

use common::*;

#[actix_rt::test]
async fn numbers_arrive_exactly_as_written() {
    let app = spawn_app(AppOptions::default()).await;
    let body = r#"{"symbol":"BTCUSDT","action":"long","qty":0.30000000000000004,"price":250000000,"sl":"0.1","tp":1e3,"position_size":-0.10}"#;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let n = &app.messages_on("signals.normalized").await[0].json;
    assert_valid("signal.normalized.v1.json", n);
    assert_eq!(n["action"], "buy");
    assert_eq!(n["quantity"], "0.30000000000000004");
    assert_eq!(n["price"], "250000000");
    assert_eq!(n["stop_loss"], "0.1");
    assert_eq!(n["take_profit"], "1000");
    assert_eq!(n["strategy"]["position_size"], "-0.10");
    // And the raw body keeps the number text untouched.
    let raw = &app.messages_on("signals.raw").await[0].json;
    assert!(raw["body"]
        .as_str()
        .unwrap()
        .contains("0.30000000000000004"));
}

#[actix_rt::test]
async fn an_unreplaced_placeholder_is_422_never_a_zero() {
    let app = spawn_app(AppOptions::default()).await;
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    for body in [
        r#"{"ticker":"BTCUSDT","action":"buy","qty":"{{strategy.order.contracts}}"}"#,
        r#"{"ticker":"BTCUSDT","action":"buy","qty":{{strategy.order.contracts}}}"#,
        "buy BTCUSDT {{strategy.order.contracts}}",
    ] {
        let (status, resp) = json_body(app.post_tradingview(&path, "text/plain", body).await).await;
        assert_eq!(status, 422, "{body}: {resp}");
        let reasons = resp["reasons"].to_string();
        assert!(
            reasons.contains("{{strategy.order.contracts}}"),
            "{reasons}"
        );
    }
    assert!(app.messages_on("signals.normalized").await.is_empty());
    assert_eq!(app.messages_on("signals.dlq").await.len(), 3);
}

#[actix_rt::test]
async fn authentic_payload_that_does_not_normalize_goes_to_raw_and_dlq_with_422() {
    let app = spawn_app(AppOptions::default()).await;
    let body = r#"{"symbol":"BTCUSDT","action":"hodl","qty":"lots"}"#;
    let resp = app
        .send_signed_with("alpha", &sign(body), &[("X-Correlation-Id", "c-422")])
        .await;
    let (status, resp) = json_body(resp).await;
    assert_eq!(status, 422);
    assert_eq!(resp["code"], "validation_failed");
    assert_eq!(resp["corr_id"], "c-422");
    let reasons: Vec<&str> = resp["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("hodl")));
    assert!(reasons.iter().any(|r| r.contains("lots")));

    let msgs = app.stream_messages().await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].subject, "signals.raw");
    assert_eq!(msgs[0].json["body"], body);
    assert_eq!(msgs[1].subject, "signals.dlq");
    assert_valid("signal.dlq.v1.json", &msgs[1].json);
    assert_eq!(
        msgs[1].json["raw_msg_id"],
        msgs[0].header("Nats-Msg-Id").unwrap()
    );
    assert_eq!(msgs[1].json["event_id"], resp["event_id"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_validation_errors_total{type="validation_failed"}"#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn invalid_json_from_a_custom_source_is_422_with_the_parse_error() {
    let app = spawn_app(AppOptions::default()).await;
    let (status, resp) = json_body(
        app.post_custom(r#"{"symbol": "BTCUSDT", "action": }"#)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        resp["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("body is not valid JSON"),
        "{resp}"
    );
}
