//! TradingView: tokens in the body or the URL, bodies read by content,
//! sender allowlists behind trusted proxies, and re-sent alerts.

use crate::common;

use common::*;

fn template(token: &str) -> String {
    // The widely copied strategy template, filled in as TradingView sends it.
    format!(
        r#"{{"passphrase":"{token}","time":"2026-11-22T14:30:00Z","exchange":"BINANCE","ticker":"BTCUSDT","interval":"15",
"bar":{{"time":"2026-11-22T14:15:00Z","open":64000.5,"high":64100,"low":63900.25,"close":64050.75,"volume":12.5}},
"strategy":{{"position_size":0.30000000000000004,"order_action":"buy","order_contracts":0.1,"order_price":64050.75,
"order_id":"Long","market_position":"long","market_position_size":0.3,"prev_market_position":"flat",
"prev_market_position_size":0}}}}"#
    )
}

#[actix_rt::test]
async fn json_alert_with_passphrase_is_accepted_and_the_token_never_published() {
    let app = spawn_app(AppOptions::default()).await;
    let resp = app
        .post_tradingview(
            "/webhooks/tradingview",
            "application/json",
            &template(TV_TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let msgs = app.stream_messages().await;
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        let text = String::from_utf8_lossy(&m.raw);
        assert!(
            !text.contains(TV_TOKEN),
            "token leaked into {}: {text}",
            m.subject
        );
    }
    let raw = &msgs[0].json;
    assert_valid("signal.raw.v1.json", raw);
    assert!(raw["body"]
        .as_str()
        .unwrap()
        .contains(r#""passphrase":"[REDACTED]""#));
    let norm = &msgs[1].json;
    assert_valid("signal.normalized.v2.json", norm);
    assert_eq!(norm["format"], "tradingview_json");
    assert_eq!(norm["action"], "buy");
    assert_eq!(norm["size"]["value"], "0.1");
    assert_eq!(norm["size"]["unit"], "contracts");
    assert_eq!(norm["price"], "64050.75");
    assert_eq!(norm["interval"], "15");
    assert_eq!(norm["asserted_at"], "2026-11-22T14:30:00Z");
    assert_eq!(norm["strategy"]["position_size"], "0.30000000000000004");
    assert_eq!(norm["strategy"]["market_position"], "long");
    assert_eq!(norm["strategy"]["prev_market_position"], "flat");
    assert_eq!(norm["instrument"]["exchange"], "BINANCE");
    assert!(norm["extra"].get("passphrase").is_none());
    assert_eq!(norm["extra"]["bar"]["volume"].to_string(), "12.5");
}

#[actix_rt::test]
async fn json_labelled_text_plain_with_a_trailing_newline_is_still_json() {
    let app = spawn_app(AppOptions::default()).await;
    let body = format!("{}\n", template(TV_TOKEN));
    let resp = app
        .post_tradingview("/webhooks/tradingview", "text/plain; charset=utf-8", &body)
        .await;
    assert_eq!(resp.status(), 202);
    let norm = &app.messages_on("signals.normalized").await[0];
    assert_eq!(norm.json["format"], "tradingview_json");
}

#[actix_rt::test]
async fn plain_text_alert_with_token_in_the_url() {
    let app = spawn_app(AppOptions::default()).await;
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let resp = app
        .post_tradingview(&path, "text/plain", "sell NYSE:BRK.B 10 @ 412.35")
        .await;
    assert_eq!(resp.status(), 202);
    let norm = &app.messages_on("signals.normalized").await[0];
    assert_valid("signal.normalized.v2.json", &norm.json);
    assert_eq!(norm.json["format"], "tradingview_text");
    assert_eq!(norm.json["action"], "sell");
    assert_eq!(norm.json["instrument"]["symbol"], "BRK.B");
    assert_eq!(norm.json["instrument"]["exchange"], "NYSE");
    assert_eq!(norm.json["price"], "412.35");

    let resp = app
        .post_tradingview(
            &path,
            "text/plain",
            "Strat (9, 21): order buy @ 2 filled on ES1!. New strategy position is 2",
        )
        .await;
    assert_eq!(resp.status(), 202);
    let norm = &app.messages_on("signals.normalized").await[1];
    assert_eq!(norm.json["size"]["value"], "2");
    assert_eq!(norm.json["instrument"]["symbol"], "ES1!");
    assert_eq!(norm.json["strategy"]["name"], "Strat (9, 21)");
}

#[actix_rt::test]
async fn wrong_or_missing_token_is_401() {
    let app = spawn_app(AppOptions::default()).await;
    let resp = app
        .post_tradingview(
            "/webhooks/tradingview",
            "application/json",
            &template("not-the-token-at-all"),
        )
        .await;
    let (status, body) = json_body(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );
    assert!(
        !body.to_string().contains("not-the-token"),
        "no token echoed"
    );

    let resp = app
        .post_tradingview(
            "/webhooks/tradingview?token=wrong-token-123456",
            "text/plain",
            "buy BTCUSDT 1",
        )
        .await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .post_tradingview("/webhooks/tradingview", "text/plain", "buy BTCUSDT 1")
        .await;
    let (status, body) = json_body(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_token"))
    );
    assert!(app.stream_messages().await.is_empty());
}

#[actix_rt::test]
async fn a_resent_alert_answers_409_and_is_not_a_second_signal() {
    let app = spawn_app(AppOptions::default()).await;
    let body = template(TV_TOKEN);
    let first = app
        .post_tradingview("/webhooks/tradingview", "application/json", &body)
        .await;
    let (status, first) = json_body(first).await;
    assert_eq!(status, 202);
    for _ in 0..3 {
        let again = app
            .post_tradingview("/webhooks/tradingview", "application/json", &body)
            .await;
        let (status, again) = json_body(again).await;
        assert_eq!(status, 409);
        assert_eq!(again["code"], "duplicate");
        assert_eq!(again["event_id"], first["event_id"]);
        assert_eq!(again["payload_mismatch"], false);
    }
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}

#[actix_rt::test]
async fn unparseable_text_is_422_with_raw_published_and_token_redacted() {
    let app = spawn_app(AppOptions::default()).await;
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let text = format!("Price crossed the 200 EMA, token {TV_TOKEN}");
    let resp = app.post_tradingview(&path, "text/plain", &text).await;
    let (status, body) = json_body(resp).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert!(body["reasons"][0]
        .as_str()
        .unwrap()
        .contains("not a recognised form"));
    assert!(body["event_id"].is_string() && body["corr_id"].is_string());

    let msgs = app.stream_messages().await;
    assert_eq!(
        msgs.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
        ["signals.raw", "signals.dlq"]
    );
    assert_eq!(
        msgs[0].json["body"],
        "Price crossed the 200 EMA, token [REDACTED]"
    );
    assert_valid("signal.dlq.v1.json", &msgs[1].json);
    assert_eq!(msgs[1].json["event_id"], body["event_id"]);
    for m in &msgs {
        assert!(!String::from_utf8_lossy(&m.raw).contains(TV_TOKEN));
    }
}

#[actix_rt::test]
async fn an_almost_json_alert_is_authenticated_by_its_passphrase_and_answered_422() {
    // An indicator alert that used a strategy placeholder TradingView left
    // unfilled: the text is not JSON, so TradingView labels it text/plain.
    let app = spawn_app(AppOptions::default()).await;
    let text = format!(
        r#"{{"passphrase": "{TV_TOKEN}", "ticker": "BTCUSDT", "action": "buy", "qty": {{{{strategy.order.contracts}}}}}}"#
    );
    let resp = app
        .post_tradingview("/webhooks/tradingview", "text/plain; charset=utf-8", &text)
        .await;
    let (status, body) = json_body(resp).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("{{strategy.order.contracts}}"),
        "{body}"
    );

    let msgs = app.stream_messages().await;
    assert_eq!(
        msgs.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
        ["signals.raw", "signals.dlq"]
    );
    assert!(msgs[0].json["body"]
        .as_str()
        .unwrap()
        .starts_with(r#"{"passphrase": "[REDACTED]", "ticker""#));
    for m in &msgs {
        assert!(!String::from_utf8_lossy(&m.raw).contains(TV_TOKEN));
    }

    // The same broken text with a guessed passphrase is a forgery: 401.
    let forged = text.replace(TV_TOKEN, "guessed-token-0000");
    let resp = app
        .post_tradingview("/webhooks/tradingview", "text/plain", &forged)
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(app.stream_messages().await.len(), 2);
}

#[actix_rt::test]
async fn second_tradingview_source_has_its_own_token() {
    let app = spawn_app(AppOptions {
        env: vec![("ALLOWED_SOURCES", "tradingview,alpha,tv-swing".into())],
        config: r#"
[sources.tv-swing]
kind = "tradingview"
token = "swing-token-Hq2Wd8Rk5Lp3"
"#
        .into(),
        ..Default::default()
    })
    .await;
    let body = template("swing-token-Hq2Wd8Rk5Lp3");
    let resp = app
        .post_tradingview("/webhooks/tradingview/tv-swing", "application/json", &body)
        .await;
    assert_eq!(resp.status(), 202);
    let resp = app
        .post_tradingview(
            "/webhooks/tradingview/tv-swing",
            "application/json",
            &template(TV_TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 401, "another source's token does not work");
    // A custom source is not reachable through the TradingView route.
    let resp = app
        .post_tradingview("/webhooks/tradingview/alpha", "application/json", &body)
        .await;
    assert_eq!(resp.status(), 403);
    let norm = &app.messages_on("signals.normalized").await[0];
    assert_eq!(norm.json["source"], "tv-swing");
}

/// `body` to `/webhooks/tradingview` as forwarded for `xff`.
async fn forwarded_for(app: &TestApp, xff: &str, body: String) -> reqwest::Response {
    app.http
        .post(app.url("/webhooks/tradingview"))
        .header("X-Forwarded-For", xff)
        .body(body)
        .send()
        .await
        .expect("request sent")
}

#[actix_rt::test]
async fn sender_allowlist_honours_forwarded_for_only_from_trusted_proxies() {
    let config = r#"
[sources.tradingview]
allowed_ips = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]
"#;
    // The test client is 127.0.0.1: not TradingView.
    let app = spawn_app(AppOptions::with_config(config)).await;
    let resp = forwarded_for(&app, "52.89.214.238", template(TV_TOKEN)).await;
    let (status, body) = json_body(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("sender_not_allowed")),
        "untrusted peer's X-Forwarded-For is ignored"
    );

    // Behind a trusted proxy (loopback here) the forwarded address counts.
    let app = spawn_app(AppOptions {
        config: config.into(),
        env: vec![("TRUSTED_PROXIES", "127.0.0.1/32".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(
        forwarded_for(&app, "52.89.214.238", template(TV_TOKEN))
            .await
            .status(),
        202
    );
    let other = template(TV_TOKEN).replace("BTCUSDT", "ETHUSDT");
    assert_eq!(forwarded_for(&app, "6.6.6.6", other).await.status(), 403);
}
