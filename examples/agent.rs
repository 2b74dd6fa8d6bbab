//! A downstream trading agent: consumes `signals.normalized` through a
//! durable pull consumer, acknowledges each signal explicitly once it has
//! acted on it, and stays idempotent by `event_id`.
//!
//! JetStream delivers at least once: a signal whose ack was lost (the agent
//! crashed after acting, the ack timed out) comes again. The agent keeps
//! the `event_id` of every signal it acted on in a key-value bucket (it
//! survives restarts and is shared by agent processes on one durable); a
//! redelivered signal found there is acknowledged without acting again.
//! The one gap, a crash after acting and before recording, is closed where
//! the action happens: the order carries the `event_id` as its client
//! order id, which an exchange refuses to execute twice.
//!
//! ```text
//! cargo run --example agent -- --nats nats://127.0.0.1:4222
//! cargo run --example agent -- --nats URL --durable my-agent --count 10 --idle-exit 5
//! ```
//!
//! Prints one JSON line per delivery: `{"event_id", "symbol", "action",
//! "size", "unit", "acted"}` (`acted: false` for a redelivered duplicate).
//!
//! It reads both schema versions, as an agent must while a deployment
//! moves from `signal.normalized.v1` to v2 (API_SPEC.md, "Versioning"): v2
//! says every size's unit; a v1 `quantity` is always a count of units.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, kv};
use futures_util::StreamExt;
use serde::Deserialize;

/// The part of a normalized signal this agent reads, v1 or v2.
#[derive(Deserialize)]
struct Signal {
    event_id: String,
    instrument: Instrument,
    action: String,
    /// v2: the size with its unit.
    #[serde(default)]
    size: Option<Size>,
    /// v1: a count of units, or null when the size was in another unit
    /// (then v1 keeps it under `extra.size`).
    #[serde(default)]
    quantity: Option<String>,
}

#[derive(Deserialize)]
struct Size {
    value: String,
    unit: String,
}

impl Signal {
    /// The size and its unit, whichever version the signal is.
    fn size(&self) -> (Option<&str>, &str) {
        match (&self.size, &self.quantity) {
            (Some(s), _) => (Some(s.value.as_str()), s.unit.as_str()),
            (None, Some(q)) => (Some(q.as_str()), "units"),
            (None, None) => (None, "-"),
        }
    }
}

#[derive(Deserialize)]
struct Instrument {
    symbol: String,
}

struct Args {
    nats: String,
    stream: String,
    durable: String,
    bucket: String,
    count: Option<u64>,
    idle_exit: Option<Duration>,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        nats: "nats://127.0.0.1:4222".into(),
        stream: "trading-events".into(),
        durable: "example-agent".into(),
        bucket: "example-agent-done".into(),
        count: None,
        idle_exit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--nats" => args.nats = value()?,
            "--stream" => args.stream = value()?,
            "--durable" => args.durable = value()?,
            "--bucket" => args.bucket = value()?,
            "--count" => args.count = Some(value()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--idle-exit" => {
                let secs: u64 = value()?.parse().map_err(|e| format!("--idle-exit: {e}"))?;
                args.idle_exit = Some(Duration::from_secs(secs));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = args()?;
    let client = async_nats::connect(&args.nats).await?;
    let js = jetstream::new(client);

    // Signals already acted on; keep them at least as long as the stream
    // keeps messages that could be redelivered.
    let done = done_bucket(&js, &args.bucket).await?;

    let stream = js.get_stream(&args.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: "signals.normalized".into(),
                ack_policy: AckPolicy::Explicit,
                // A signal not acknowledged within this is delivered again.
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;

    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let want = args.count.map_or(100, |n| (n - seen).min(100) as usize);
        let mut batch = consumer
            .fetch()
            .max_messages(want)
            .expires(args.idle_exit.unwrap_or(Duration::from_secs(30)))
            .messages()
            .await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message?;
            got += 1;
            seen += 1;
            let signal: Signal = match serde_json::from_slice(&message.payload) {
                Ok(s) => s,
                Err(e) => {
                    // Not a signal this agent understands: terminate it so it
                    // is not redelivered forever, and say so.
                    eprintln!("agent: undecodable message: {e}");
                    message.ack_with(jetstream::AckKind::Term).await?;
                    continue;
                }
            };
            let acted = if done.get(&signal.event_id).await?.is_some() {
                false // a redelivery of a signal already acted on
            } else {
                act_on(&signal);
                done.put(&signal.event_id, "done".into()).await?;
                true
            };
            println!(
                "{}",
                serde_json::json!({
                    "event_id": signal.event_id,
                    "symbol": signal.instrument.symbol,
                    "action": signal.action,
                    "size": signal.size().0,
                    "unit": signal.size().1,
                    "acted": acted,
                })
            );
            // Acknowledge only after acting, and wait for the server to
            // confirm, so a crash before this line means a redelivery (which
            // the claim above turns into a no-op), never a lost signal.
            message.double_ack().await?;
        }
        if got == 0 && args.idle_exit.is_some() {
            break; // nothing arrived within --idle-exit
        }
    }
    Ok(())
}

/// The bucket of acted-on event ids. Its stream is made directly, as
/// `create_key_value` would make it (written for nats-server 2.9, whose
/// account info that call could not read; kept so the agent also runs
/// against an old server).
async fn done_bucket(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<kv::Store, Box<dyn std::error::Error + Send + Sync>> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(bucket).await?)
}

/// Where a real agent would place or adjust an order, with the signal's
/// `event_id` as the client order id.
fn act_on(signal: &Signal) {
    eprintln!(
        "agent: {} {} {} {} (client order id {})",
        signal.action,
        signal.size().0.unwrap_or("-"),
        signal.size().1,
        signal.instrument.symbol,
        signal.event_id
    );
}
