//! CloudEvents output, chosen per subject: what lands in JetStream is read
//! back by the CloudEvents SDK for Python (its HTTP binding's header
//! mapping is the NATS binding's: `ce-` headers in binary mode,
//! `content-type: application/cloudevents+json` in structured mode).

use crate::common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// The event the SDK reads from a message's headers and payload: its
/// attributes and `data`, as JSON.
fn sdk_read(message: &Stored) -> Value {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import json, sys
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
headers = json.loads(sys.argv[1])
event = from_http(HTTPMessage(headers=headers, body=sys.stdin.buffer.read()), JSONFormat())
attrs = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in event.get_attributes().items()}
print(json.dumps({"attributes": attrs, "data": event.get_data()}))
"#;
    let headers = serde_json::to_string(&message.headers).unwrap();
    let mut child = Command::new(&python)
        .args(["-c", script, &headers])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}; run the suite with scripts/test.sh"));
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&message.raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the CloudEvents SDK is needed (scripts/test.sh installs it) and must read the message: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[actix_rt::test]
async fn each_subject_is_published_in_its_configured_event_format() {
    let app = spawn_app(AppOptions::with_config(
        "[nats.formats]\nnormalized = \"cloudevents-structured\"\nraw = \"cloudevents-binary\"\n",
    ))
    .await;
    let body = r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.50000000000000000001","price":"64000.5"}"#;
    let (status, answer) = json_body(app.post_custom(body).await).await;
    assert_eq!(status, 202);
    let event_id = answer["event_id"].as_str().unwrap();

    let normalized = &app.messages_on("signals.normalized").await[0];
    assert_eq!(
        normalized.header("content-type"),
        Some("application/cloudevents+json")
    );
    let event = sdk_read(normalized);
    let attrs = &event["attributes"];
    assert_eq!(attrs["specversion"], "1.0");
    assert_eq!(attrs["id"], event_id);
    assert_eq!(attrs["source"], "/at-gateway/sources/alpha");
    assert_eq!(attrs["type"], "dev.at-gateway.signal.normalized.v2");
    assert_eq!(attrs["datacontenttype"], "application/json");
    assert_eq!(attrs["corrid"], answer["corr_id"]);
    let data = &event["data"];
    assert_valid("signal.normalized.v2.json", data);
    assert_eq!(data["event_id"], event_id);
    assert_eq!(
        attrs["time"].as_str().unwrap()[..19],
        data["received_at"].as_str().unwrap()[..19]
    );
    // The document is embedded as published, digits and all.
    let text = String::from_utf8_lossy(&normalized.raw);
    assert!(
        text.contains(r#""size":{"value":"0.50000000000000000001""#),
        "{text}"
    );

    let raw = &app.messages_on("signals.raw").await[0];
    assert_eq!(raw.header("ce-specversion"), Some("1.0"));
    let event = sdk_read(raw);
    assert_eq!(event["attributes"]["id"], format!("{event_id}.raw"));
    assert_eq!(event["attributes"]["type"], "dev.at-gateway.signal.raw.v1");
    assert_valid("signal.raw.v1.json", &event["data"]);
    assert_eq!(event["data"]["body"], body);
    // Plain subjects stay plain, and dedup is unchanged.
    assert_eq!(
        raw.header("Nats-Msg-Id").map(|id| id.ends_with(":raw")),
        Some(true)
    );
}
