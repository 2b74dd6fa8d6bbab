//! Real alert templates of the automation platforms traders use, taken from
//! each platform's documentation (`tests/fixtures/templates/<platform>/`,
//! each file citing its page), sent as TradingView sends them to the real
//! server, and read back from JetStream: every field of the normalized
//! signal exactly as the platform's documentation means it, every refusal
//! a 422 with its reason and a dead letter, and no credential anywhere in
//! the stream.

use crate::common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

/// One template: what TradingView sends, and what it must become.
struct Fixture {
    name: String,
    body: String,
    expect: Value,
    secrets: Vec<String>,
}

fn fixtures() -> Vec<Fixture> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    dirs.sort_by_key(|d| d.path());
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        files.sort_by_key(|f| f.path());
        for file in files {
            let path = file.path();
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                doc["doc"].as_str().is_some_and(|d| !d.is_empty()),
                "{} cites no documentation",
                path.display()
            );
            let mut body = doc["body"].as_str().unwrap().to_owned();
            let mut secrets: Vec<String> = doc["secrets"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            // A template's `passphrase` is the TradingView source's token: the
            // trader puts theirs there.
            if let Some(Value::String(p)) = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("passphrase").cloned())
            {
                body = body.replace(&format!("\"{p}\""), &format!("\"{TV_TOKEN}\""));
                secrets.retain(|s| *s != p);
                secrets.push(TV_TOKEN.into());
            }
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            out.push(Fixture {
                name,
                body,
                expect: doc["expect"].clone(),
                secrets,
            });
        }
    }
    assert!(out.len() >= 40, "fixtures missing: {}", out.len());
    out
}

/// `expected` (a fixture's signal) against the published one, field by
/// field; what differs, one line each.
fn check_signal(expected: &Value, got: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut same = |path: &str, want: &Value, have: &Value| {
        if want != have {
            problems.push(format!("{path}: expected {want}, got {have}"));
        }
    };
    let inst = &expected["instrument"];
    for key in ["symbol", "exchange", "base", "quote"] {
        same(
            &format!("instrument.{key}"),
            inst.get(key).unwrap_or(&Value::Null),
            &got["instrument"][key],
        );
    }
    same("action", &expected["action"], &got["action"]);
    let size = match &expected["size"] {
        Value::Null => Value::Null,
        s => json!({"value": s["value"], "unit": s["unit"],
                    "currency": s.get("currency").cloned().unwrap_or(Value::Null)}),
    };
    same("size", &size, &got["size"]);
    for key in [
        "order_type",
        "price",
        "stop_loss",
        "take_profit",
        "leverage",
    ] {
        same(key, expected.get(key).unwrap_or(&Value::Null), &got[key]);
    }
    problems
}

fn is_json(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok()
}

#[actix_rt::test]
async fn every_platform_template_normalizes_as_its_documentation_means_it() {
    let app = spawn_app(AppOptions::default()).await;
    let fixtures = fixtures();
    let path = format!("/webhooks/tradingview?token={TV_TOKEN}");
    let mut accepted = Vec::new();
    let mut failures = Vec::new();
    for f in &fixtures {
        // TradingView labels anything that is not exactly JSON text/plain.
        let content_type = if is_json(&f.body) {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let (status, resp) =
            json_body(app.post_tradingview(&path, content_type, &f.body).await).await;
        let want = f.expect["status"].as_u64().unwrap() as u16;
        if status != want {
            failures.push(format!("{}: expected {want}, got {status}: {resp}", f.name));
            continue;
        }
        if status == 422 {
            let reasons = resp["reasons"].as_array().cloned().unwrap_or_default();
            if reasons.is_empty()
                || !reasons
                    .iter()
                    .all(|r| r.as_str().is_some_and(|r| r.len() > 10))
            {
                failures.push(format!("{}: a refusal must say why: {resp}", f.name));
            }
        } else {
            accepted.push((f, resp["event_id"].as_str().unwrap().to_owned()));
        }
    }

    let stream = app.stream_messages().await;
    for (f, event_id) in &accepted {
        let signal = stream
            .iter()
            .find(|m| m.subject == "signals.normalized" && m.json["event_id"] == event_id.as_str())
            .unwrap_or_else(|| panic!("{}: no normalized signal {event_id}", f.name));
        assert_valid("signal.normalized.v2.json", &signal.json);
        for p in check_signal(&f.expect["signal"], &signal.json) {
            failures.push(format!("{}: {p}", f.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} templates:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
    let refused = fixtures.len() - accepted.len();
    assert_eq!(
        stream.iter().filter(|m| m.subject == "signals.dlq").count(),
        refused,
        "one dead letter per refusal"
    );
    assert_eq!(
        stream.iter().filter(|m| m.subject == "signals.raw").count(),
        fixtures.len(),
        "every authentic request is on signals.raw"
    );

    // No credential of any template anywhere in what was published.
    for m in &stream {
        record_artifact("stream", &String::from_utf8_lossy(&m.raw));
        let text = String::from_utf8_lossy(&m.raw);
        for f in &fixtures {
            for s in &f.secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{}: credential {s:?} published on {}: {text}",
                    f.name,
                    m.subject
                );
            }
        }
    }
}
