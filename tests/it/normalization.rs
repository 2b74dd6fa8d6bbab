//! Normalization as seen from outside: exact decimals, unreplaced
//! placeholders, and what a payload that does not normalize produces.

use crate::common;

use common::*;

#[actix_rt::test]
async fn numbers_arrive_exactly_as_written() {
    let app = spawn_app(AppOptions::default()).await;
    let body = r#"{"symbol":"BTCUSDT","action":"short","qty":0.30000000000000004,"price":250000000,"sl":"0.1","tp":1e3,"position_size":-0.50}"#;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let n = &app.messages_on("signals.normalized").await[0].json;
    assert_valid("signal.normalized.v2.json", n);
    assert_eq!(n["action"], "sell");
    assert_eq!(n["size"]["value"], "0.30000000000000004");
    assert_eq!(n["size"]["unit"], "units");
    assert_eq!(n["price"], "250000000");
    assert_eq!(
        n["stop_loss"],
        serde_json::json!({"value": "0.1", "unit": "price"})
    );
    assert_eq!(
        n["take_profit"],
        serde_json::json!({"value": "1000", "unit": "price"})
    );
    assert_eq!(n["strategy"]["position_size"], "-0.50");
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
    let (status, resp) = app
        .signed(&sign(body))
        .header("X-Correlation-Id", "c-422")
        .answer()
        .await;
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

#[actix_rt::test]
async fn a_percent_size_keeps_its_unit_and_v1_never_shows_it_as_a_quantity() {
    let body = r#"{"ticker":"SPY","action":"buy","quantityType":"percent_of_equity","quantity":5}"#;
    // v2, the default: the size says what it counts.
    let app = spawn_app(AppOptions::default()).await;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let n = &app.messages_on("signals.normalized").await[0].json;
    assert_valid("signal.normalized.v2.json", n);
    assert_eq!(
        n["size"],
        serde_json::json!({"value": "5", "unit": "percent_of_equity", "currency": null})
    );
    assert!(n.get("quantity").is_none());

    // v1, for agents not yet on v2: no quantity, the size kept beside it.
    let app = spawn_app(AppOptions::with_config(
        "[nats]\nnormalized_schema = \"v1\"\n",
    ))
    .await;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let m = &app.messages_on("signals.normalized").await[0];
    assert_valid("signal.normalized.v1.json", &m.json);
    assert_eq!(m.header("X-Schema-Version"), Some("signal.normalized.v1"));
    assert_eq!(m.json["quantity"], serde_json::Value::Null);
    assert_eq!(m.json["extra"]["size"]["unit"], "percent_of_equity");
    // A count of units is a v1 quantity as before.
    let units = r#"{"ticker":"SPY","action":"buy","quantity":"7"}"#;
    assert_eq!(app.post_custom(units).await.status(), 202);
    let m = &app.messages_on("signals.normalized").await[1];
    assert_eq!(m.json["quantity"], "7");
}

#[actix_rt::test]
async fn a_size_qualified_in_a_way_the_generic_reader_cannot_interpret_is_422() {
    let app = spawn_app(AppOptions::default()).await;
    let (status, resp) = json_body(
        app.post_custom(r#"{"symbol":"BTCUSDT","action":"buy","qty":"10","qty_type":"percent"}"#)
            .await,
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    assert!(
        resp["reasons"][0].as_str().unwrap().contains("qty_type"),
        "{resp}"
    );
    assert!(app.messages_on("signals.normalized").await.is_empty());
}

#[actix_rt::test]
async fn credentials_inside_bodies_reach_no_subject() {
    let app = spawn_app(AppOptions::with_config(
        "[sources.alpha]\nredact_fields = [\"desk_pin\"]\n",
    ))
    .await;
    let secrets = [
        "cc-secret-Xq8Lm2Vb7Zt4",
        "exch-key-Kd82Lw0PqZr5",
        "exch-sec-Hy4Wp9Ds2Mf7",
        "pin-48213977",
    ];
    let ok = format!(
        r#"{{"ticker":"BTCUSDT","action":"buy","qty":"1","api_key":"{}","nested":{{"apiSecret":"{}"}},"desk_pin":"{}"}}"#,
        secrets[1], secrets[2], secrets[3]
    );
    let refused = format!(
        r#"{{"secret":"{}","bot_uuid":"b-1","action":"disable","tv_instrument":"BTCUSDT"}}"#,
        secrets[0]
    );
    assert_eq!(app.post_custom(&ok).await.status(), 202);
    assert_eq!(app.post_custom(&refused).await.status(), 422);
    let stream = app.stream_messages().await;
    let subjects: Vec<&str> = stream.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "signals.raw",
            "signals.normalized",
            "signals.raw",
            "signals.dlq"
        ]
    );
    for m in &stream {
        let text = String::from_utf8_lossy(&m.raw);
        for s in secrets {
            assert!(!text.contains(s), "{s} on {}: {text}", m.subject);
        }
    }
    // Redacted in the raw body where they stood, gone from `extra`.
    let raw = stream[0].json["body"].as_str().unwrap();
    assert!(raw.contains(r#""api_key":"[REDACTED]""#), "{raw}");
    let extra = &stream[1].json["extra"];
    assert!(
        extra.get("api_key").is_none() && extra.get("desk_pin").is_none(),
        "{extra}"
    );
    assert!(extra["nested"].get("apiSecret").is_none(), "{extra}");
}

#[actix_rt::test]
async fn a_vendor_format_mapped_in_configuration_normalizes_without_code() {
    let config = r#"
[sources.alpha.mapping]
symbol = "/instrument/ticker"
exchange = "/instrument/venue"
action = "/signal/direction"
action_values = { LONG_ENTRY = "buy", LONG_EXIT = "close_long", SHORT_ENTRY = "sell", SHORT_EXIT = "close_short" }
size = "/sizing/value"
size_unit_from = "/sizing/kind"
size_unit_values = { pct_equity = "percent_of_equity", coins = "units" }
stop_loss = "/risk/stop_pct"
stop_loss_unit = "percent"
id = "/meta/uid"
"#;
    let app = spawn_app(AppOptions::with_config(config)).await;
    let body = r#"{"meta":{"uid":"v-1"},"instrument":{"ticker":"ETHUSDT","venue":"KRAKEN"},
        "signal":{"direction":"LONG_EXIT","note":"tp hit"},"sizing":{"kind":"pct_equity","value":"2.5"},
        "risk":{"stop_pct":"1.5"}}"#;
    assert_eq!(app.post_custom(body).await.status(), 202);
    let n = &app.messages_on("signals.normalized").await[0].json;
    assert_valid("signal.normalized.v2.json", n);
    assert_eq!(n["format"], "mapping");
    assert_eq!(n["instrument"]["symbol"], "ETHUSDT");
    assert_eq!(n["instrument"]["exchange"], "KRAKEN");
    assert_eq!(n["action"], "close_long");
    assert_eq!(n["size"]["value"], "2.5");
    assert_eq!(n["size"]["unit"], "percent_of_equity");
    assert_eq!(
        n["stop_loss"],
        serde_json::json!({"value": "1.5", "unit": "percent"})
    );
    assert_eq!(n["extra"]["signal"]["note"], "tp hit");
    // The mapped id is the idempotency key: the same id again is a duplicate.
    let (status, dup) = json_body(app.post_custom(&body.replace("2.5", "3")).await).await;
    assert_eq!(
        (status, dup["payload_mismatch"].as_bool()),
        (409, Some(true))
    );
    // A vendor action the mapping does not list is refused, never guessed.
    let other = body.replace("LONG_EXIT", "FLIP").replace("v-1", "v-2");
    let (status, resp) = json_body(app.post_custom(&other).await).await;
    assert_eq!(status, 422);
    assert!(
        resp["reasons"][0].as_str().unwrap().contains("FLIP"),
        "{resp}"
    );
}

#[actix_rt::test]
async fn a_forced_format_reads_only_that_format() {
    let app = spawn_app(AppOptions::with_config(
        "[sources.alpha]\nformat = \"okx\"\n",
    ))
    .await;
    let okx = r#"{"action":"EXIT_SHORT","instrument":"ETH-USDT-SWAP","investmentType":"percentage_position","amount":"50"}"#;
    assert_eq!(app.post_custom(okx).await.status(), 202);
    let n = &app.messages_on("signals.normalized").await[0].json;
    assert_eq!(n["format"], "okx_signal_bot");
    assert_eq!(n["action"], "close_short");
    assert_eq!(n["size"]["unit"], "percent_of_position");
    assert_eq!(n["instrument"]["base"], "ETH");
    // A generic template is not read as something else on this source.
    let (status, resp) = json_body(
        app.post_custom(r#"{"symbol":"BTCUSDT","side":"buy"}"#)
            .await,
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    assert!(resp["reasons"].to_string().contains("OKX"), "{resp}");
}
