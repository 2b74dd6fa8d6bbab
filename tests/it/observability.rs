//! What ops see: health, readiness, metrics by the seed's names, JSON logs
//! with the documented fields — and no secret in any of it, nor in the
//! error bodies or the stream. One test per binary: it owns the process's
//! log subscriber.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn metrics_logs_and_errors_carry_what_ops_need_and_no_secret() {
    let logs = Capture::default();
    let writer = logs.clone();
    assert!(at_gateway::telemetry::init_logging("info", move || writer.clone()));

    let app = spawn_app(AppOptions::default()).await;
    let mut bodies = Vec::new();
    let mut keep = |v: Value| bodies.push(v.to_string());

    // Every kind of traffic: accepted, refused, forged, malformed, rate limited, NATS down.
    let ok = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"1"}"#;
    let (s, b) = app
        .signed(&sign(ok))
        .header("X-Correlation-Id", "obs-1")
        .answer()
        .await;
    assert_eq!(s, 202);
    keep(b);
    let tv = format!(r#"{{"passphrase":"{TV_TOKEN}","ticker":"ETHUSDT","action":"sell"}}"#);
    let (s, b) = json_body(
        app.post_tradingview("/webhooks/tradingview", "application/json", &tv)
            .await,
    )
    .await;
    assert_eq!(s, 202);
    keep(b);
    let query = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let (s, b) = json_body(
        app.post_tradingview(&query, "text/plain", &format!("nonsense {TV_TOKEN}"))
            .await,
    )
    .await;
    assert_eq!(s, 422);
    keep(b);
    let wrong = format!("/webhooks/tradingview?token={TV_TOKEN}x");
    let (s, b) = json_body(app.post_tradingview(&wrong, "text/plain", "buy X 1").await).await;
    assert_eq!(s, 401);
    keep(b);
    let forged = sign_with("forged-secret-0123456789", now_secs(), "n", ok);
    let (s, b) = json_body(app.send_signed("alpha", &forged).await).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (401, Some("invalid_signature")),
        "{b}"
    );
    keep(b);
    let (s, b) = json_body(app.send_signed("nobody", &sign(ok)).await).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (403, Some("source_not_allowed")),
        "{b}"
    );
    keep(b);
    app.nats.kill();
    let (s, b) = json_body(app.post_custom(r#"{"symbol":"X","action":"buy"}"#).await).await;
    assert_eq!(s, 503);
    keep(b);
    app.nats.restart();
    app.wait_ready(true).await;

    // Health and metrics.
    let (_, health) = app.healthz().await;
    assert_eq!(health["nats"], "connected");
    assert_eq!(health["buffer"]["capacity"], 1000);
    // The refused request's message may still be draining from the buffer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app
        .metrics()
        .await
        .contains("gateway_publish_buffer_depth 0")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the buffer never drained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = app.metrics().await;
    for name in [
        r#"gateway_webhooks_received_total{source="alpha",status="202"} 1"#,
        r#"gateway_webhooks_received_total{source="tradingview",status="422"} 1"#,
        r#"gateway_webhooks_received_total{source="unknown",status="403"} 1"#,
        r#"gateway_webhook_duration_seconds_bucket{source="alpha""#,
        r#"gateway_nats_publish_total{status="ok",subject="signals.raw"}"#,
        r#"gateway_nats_publish_total{status="ok",subject="signals.normalized"}"#,
        r#"gateway_validation_errors_total{type="validation_failed"} 1"#,
        r#"gateway_auth_failures_total{reason="invalid_signature",source="alpha"} 1"#,
        "gateway_publish_buffer_depth 0",
        "gateway_publish_buffer_capacity 1000",
        "gateway_nats_connected 1",
        "gateway_nats_ready 1",
        "gateway_nats_publish_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    // JSON logs with the documented fields.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let accepted = lines
        .iter()
        .find(|l| l["corr_id"] == "obs-1")
        .expect("a log line for the accepted request");
    for field in [
        "source",
        "instrument",
        "latency_ms",
        "validation_status",
        "status",
        "event_id",
    ] {
        assert!(
            !accepted[field].is_null(),
            "log line lacks {field}: {accepted}"
        );
    }
    assert_eq!(accepted["instrument"], "BTCUSDT");
    assert_eq!(accepted["validation_status"], "ok");
    assert_eq!(accepted["level"], "INFO");

    // No secret anywhere.
    let stream: Vec<String> = app
        .stream_messages()
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
        .collect();
    for (place, haystack) in [
        ("logs", text.clone()),
        ("metrics", metrics),
        ("error bodies", bodies.join("\n")),
        ("stream", stream.join("\n")),
    ] {
        for secret in [TV_TOKEN, HMAC_SECRET] {
            assert!(!haystack.contains(secret), "{secret} found in {place}");
        }
    }
}

/// A line a stage logs while serving a request (here the authenticator's
/// warning about an expired key) carries the request's corr_id and source
/// in its `span`, like the request's own access line.
#[actix_rt::test]
async fn lines_logged_inside_a_stage_name_the_request() {
    const EXPIRED: &str = "expired-secret-Qm3Vx8Rt1Lp6";
    let nats = NatsServer::start();
    let gw = GatewayProcess::start(
        &nats.url(),
        &AppOptions::with_config(format!(
            "[sources.alpha]\nsecrets = [{{ id = \"old\", secret = \"{EXPIRED}\", \
                 not_after = \"2020-01-01T00:00:00Z\" }}]\n"
        )),
    )
    .await;
    let body = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"1"}"#;
    let s = sign_with(EXPIRED, now_secs(), "n-expired", body);
    let resp = gw
        .signed(&s)
        .header("X-Correlation-Id", "corr-stage-line-1")
        .send()
        .await;
    assert_eq!(resp.status(), 401);
    let logs = gw.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stage_line = lines
        .iter()
        .find(|l| l["message"] == "signature made with an expired key")
        .unwrap_or_else(|| panic!("no expired-key line:\n{logs}"));
    assert_eq!(stage_line["target"], "at_gateway::auth", "{stage_line}");
    assert_eq!(
        stage_line["span"]["corr_id"], "corr-stage-line-1",
        "{stage_line}"
    );
    assert_eq!(stage_line["span"]["source"], "alpha", "{stage_line}");
    // The access line of the same request, in the same span.
    let access = lines
        .iter()
        .find(|l| l["corr_id"] == "corr-stage-line-1" && l["status"] == 401)
        .unwrap_or_else(|| panic!("no access line:\n{logs}"));
    assert_eq!(access["span"]["corr_id"], "corr-stage-line-1", "{access}");
}
