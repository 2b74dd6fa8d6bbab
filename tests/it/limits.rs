//! What is refused before or around authentication: the source allowlist,
//! body size, compression and content types, and the per-source rate.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::stream;

const BODY: &str = r#"{"symbol":"BTCUSDT","action":"buy"}"#;

/// `BODY` signed with a secret the gateway does not know, nonce `f{i}`.
fn forged(i: usize) -> Signed {
    sign_with(
        "forger-secret-0123456789",
        now_secs(),
        &format!("f{i}"),
        BODY,
    )
}

#[actix_rt::test]
async fn sources_outside_the_allowlist_get_403_before_any_work() {
    let app = spawn_app(AppOptions::default()).await;
    for source in ["gamma", "Alpha", "ALPHA", "alpha%20", "a.b"] {
        let (status, body) = app.signed(&sign(BODY)).source(source).answer().await;
        assert_eq!(status, 403, "{source}");
        assert_eq!(body["code"], "source_not_allowed");
    }
    // Not even the body is read: an oversized body still gets 403, not 413.
    let resp = app
        .http
        .post(app.url("/webhooks/gamma"))
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"gateway_webhooks_received_total{source="unknown",status="403"}"#));
    assert!(
        !metrics.contains("gamma"),
        "unknown sources never become metric labels"
    );
}

#[actix_rt::test]
async fn bodies_over_1_mib_are_413_announced_or_streamed() {
    let app = spawn_app(AppOptions::default()).await;
    let big = format!(
        r#"{{"symbol":"BTCUSDT","action":"buy","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let (status, body) = app.signed(&sign(&big)).answer().await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Chunked, no Content-Length: refused once the limit is crossed.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..40)
        .map(|_| Ok(Bytes::from(vec![b' '; 64 * 1024])))
        .collect();
    let resp = app
        .http
        .post(app.url("/webhooks/alpha"))
        .header("X-Timestamp", now_secs().to_string())
        .header("X-Nonce", "n")
        .header("X-Signature", "sha256=00")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    } // else: the server closed the connection while we were still sending — also a refusal

    // Exactly 1 MiB is fine.
    let pad = 1024 * 1024 - r#"{"symbol":"BTCUSDT","action":"buy","pad":""}"#.len();
    let exact = format!(
        r#"{{"symbol":"BTCUSDT","action":"buy","pad":"{}"}}"#,
        "x".repeat(pad)
    );
    assert_eq!(exact.len(), 1024 * 1024);
    assert_eq!(app.send_signed("alpha", &sign(&exact)).await.status(), 202);
}

#[actix_rt::test]
async fn compressed_or_unreadable_bodies_are_415() {
    let app = spawn_app(AppOptions::default()).await;
    let s = sign(BODY);
    for (header, value, code) in [
        ("Content-Encoding", "gzip", "unsupported_content_encoding"),
        ("Content-Encoding", "br", "unsupported_content_encoding"),
        (
            "Content-Type",
            "application/x-www-form-urlencoded",
            "unsupported_content_type",
        ),
    ] {
        let (status, body) = app.signed(&s).header(header, value).answer().await;
        assert_eq!(
            (status, body["code"].as_str()),
            (415, Some(code)),
            "{header}: {value}"
        );
    }
    // None of those used the nonce.
    assert_eq!(app.send_signed("alpha", &s).await.status(), 202);
}

#[actix_rt::test]
async fn over_the_rate_is_429_with_retry_after_and_forgeries_spend_nothing() {
    let app = spawn_app(AppOptions {
        env: vec![
            ("RATE_LIMIT_RPS", "1".into()),
            ("RATE_LIMIT_BURST", "3".into()),
        ],
        ..Default::default()
    })
    .await;
    // Forged requests first: they must not touch alpha's bucket.
    for i in 0..20 {
        assert_eq!(app.send_signed("alpha", &forged(i)).await.status(), 401);
    }
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let resp = app
            .post_custom(&BODY.replace("buy", &format!("buy\",\"n\":\"{i}")))
            .await;
        if resp.status() == 429 {
            retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let (_, body) = json_body(resp).await;
            assert_eq!(body["code"], "rate_limited");
        } else {
            statuses.push(resp.status().as_u16());
            continue;
        }
        statuses.push(429);
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    // Another source has its own bucket.
    assert_eq!(app.send_signed("beta", &sign(BODY)).await.status(), 202);
    // After the advertised wait, alpha is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        app.post_custom(r#"{"symbol":"X","action":"sell"}"#)
            .await
            .status(),
        202
    );
}

#[actix_rt::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app(AppOptions::default()).await;
    let (status, body) = answer(app.http.get(app.url("/nope"))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = answer(app.http.get(app.url("/webhooks/alpha"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Under `/webhooks`, only `/{source}` and `/tradingview/{source}` exist;
    // the rest is 404 whatever the method.
    for path in [
        "/webhooks",
        "/webhooks/",
        "/webhooks/alpha/",
        "/webhooks/alpha/extra",
        "/webhooks/tradingview/",
        "/webhooks/tradingview/desk/extra",
    ] {
        for post in [true, false] {
            let req = if post {
                app.http.post(app.url(path)).body(BODY)
            } else {
                app.http.get(app.url(path))
            };
            let (status, body) = answer(req).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("not_found")),
                "{path} (POST: {post})"
            );
        }
    }
    let resp = app
        .http
        .put(app.url("/webhooks/tradingview/desk"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let (status, body) = json_body(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[actix_rt::test]
async fn an_address_spraying_forgeries_gets_429_before_any_signature_work() {
    let app = spawn_app(AppOptions::with_config(
        "[auth_failures]\nper_minute = 60\nburst = 5\n",
    ))
    .await;
    // A burst of 5; the failure after it blocks the address.
    for i in 0..6 {
        assert_eq!(app.send_signed("alpha", &forged(i)).await.status(), 401);
    }
    let resp = app.send_signed("alpha", &forged(6)).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, body) = json_body(resp).await;
    assert_eq!(body["code"], "too_many_auth_failures");
    // The address is blocked, whatever it sends now.
    assert_eq!(app.post_custom(BODY).await.status(), 429);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"gateway_auth_failures_total{reason="invalid_signature",source="alpha"} 6"#
        ),
        "blocked requests are not even verified:\n{metrics}"
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.post_custom(BODY).await.status(), 202);
}

#[actix_rt::test]
async fn a_sources_allowlisted_senders_are_never_blocked() {
    // Every TradingView user shares TradingView's four addresses: one
    // misconfigured alert must not lock the others out.
    let app = spawn_app(AppOptions::with_config(
        "[auth_failures]\nburst = 2\n[sources.tradingview]\nallowed_ips = [\"127.0.0.1\"]\n",
    ))
    .await;
    for _ in 0..6 {
        let resp = app
            .post_tradingview(
                "/webhooks/tradingview?token=wrong-token-0123456789",
                "text/plain",
                "buy X 1",
            )
            .await;
        assert_eq!(resp.status(), 401);
    }
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    assert_eq!(
        app.post_tradingview(&path, "text/plain", "buy X 1")
            .await
            .status(),
        202
    );
}
