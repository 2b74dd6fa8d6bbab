//! The example downstream agent (examples/agent.rs) against real signals:
//! it acts on each `event_id` once, acknowledges what it handled, and a
//! second run finds nothing left.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

/// Builds the example (nextest builds tests, not examples) and returns it.
fn agent_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "agent", "--manifest-path"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    PathBuf::from(env!("CARGO_BIN_EXE_at-gateway"))
        .parent()
        .unwrap()
        .join("examples/agent")
}

fn run_agent(agent: &PathBuf, nats_url: &str, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(agent)
        .args(["--nats", nats_url, "--durable", "agent-test"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_rt::test]
async fn the_agent_acts_once_per_event_id_and_acknowledges_what_it_handled() {
    let agent = agent_binary();
    let app = spawn_app(AppOptions::default()).await;
    let mut ids = Vec::new();
    for body in [
        r#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5"}"#,
        r#"{"symbol":"ETHUSDT","action":"sell","quantity":"2"}"#,
    ] {
        let (status, answer) = json_body(app.post_custom(body).await).await;
        assert_eq!(status, 202);
        ids.push(answer["event_id"].as_str().unwrap().to_string());
    }
    // What an at-least-once redelivery looks like to the agent: the same
    // signal, same event_id, delivered again.
    let first = app.messages_on("signals.normalized").await.remove(0);
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .publish("signals.normalized", first.raw.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let lines = run_agent(
        &agent,
        &app.nats.url(),
        &["--count", "3", "--idle-exit", "5"],
    );
    let seen: Vec<(&str, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["event_id"].as_str().unwrap(),
                l["acted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (ids[0].as_str(), true),
            (ids[1].as_str(), true),
            (ids[0].as_str(), false)
        ]
    );
    assert_eq!(lines[0]["symbol"], "BTCUSDT");
    assert_eq!(lines[0]["size"], "0.5");
    assert_eq!(lines[0]["unit"], "units");

    // Everything was acknowledged: a restarted agent has nothing to do.
    assert!(run_agent(&agent, &app.nats.url(), &["--idle-exit", "1"]).is_empty());
}
