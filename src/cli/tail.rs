//! `at-gateway tail`: follows a subject of the stream through a durable
//! pull consumer (named by `NATS_DURABLE`) and prints each message, for ops.
//! Being durable, a second run resumes after the last message it printed;
//! each printed message is acknowledged.

use std::io::Write;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt;

use super::CliError;
use crate::config::Settings;

/// Most messages pulled at once while following.
const FOLLOW_BATCH: usize = 100;
/// How long one pull waits on the server for messages before asking again.
const FETCH_EXPIRES: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a new durable consumer starts; an existing one resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// Only messages published from now on.
    New,
    /// The last message, then new ones.
    Last,
    /// Everything the stream still holds.
    All,
}

pub struct TailRequest {
    /// Default: the normalized subject.
    pub subject: Option<String>,
    /// Default: `NATS_DURABLE`.
    pub durable: Option<String>,
    pub from: From,
    /// Stop after this many messages (default: follow until interrupted).
    pub count: Option<u64>,
    /// One compact JSON line per message (payload only), for `jq`.
    pub json: bool,
}

pub async fn tail(
    settings: &Settings,
    req: &TailRequest,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let nats = &settings.nats;
    let subject = req
        .subject
        .clone()
        .unwrap_or_else(|| nats.subject_normalized.clone());
    let durable = req.durable.clone().unwrap_or_else(|| nats.durable.clone());
    let js = super::jetstream_context(settings, "at-gateway-tail").await?;
    let stream = js
        .get_stream(&nats.stream)
        .await
        .map_err(|e| CliError::runtime(format!("stream {}: {e}", nats.stream)))?;
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        filter_subject: subject.clone(),
        deliver_policy: match req.from {
            From::New => DeliverPolicy::New,
            From::Last => DeliverPolicy::Last,
            From::All => DeliverPolicy::All,
        },
        ack_policy: AckPolicy::Explicit,
        description: Some("at-gateway tail".into()),
        ..Default::default()
    };
    let mut consumer = stream
        .get_or_create_consumer::<pull::Config>(&durable, config)
        .await
        .map_err(|e| CliError::runtime(format!("consumer {durable}: {e}")))?;
    let following = consumer
        .info()
        .await
        .map_err(|e| CliError::runtime(format!("consumer {durable}: {e}")))?
        .config
        .filter_subject
        .clone();
    if following != subject {
        return Err(CliError::usage(format!(
            "durable consumer {durable:?} already follows {following:?}; \
             name another with --durable to tail {subject:?}"
        )));
    }

    // Pull in batches no larger than what is still wanted, so a run with
    // --count leaves no message delivered-but-unacknowledged behind (it
    // would hold up the next run until its ack wait ran out).
    let mut printed = 0u64;
    while req.count.is_none_or(|n| printed < n) {
        let wanted = req.count.map_or(FOLLOW_BATCH, |n| {
            (n - printed).min(FOLLOW_BATCH as u64) as usize
        });
        let mut batch = consumer
            .fetch()
            .max_messages(wanted)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .map_err(|e| CliError::runtime(format!("consumer {durable}: {e}")))?;
        while let Some(next) = batch.next().await {
            let message =
                next.map_err(|e| CliError::runtime(format!("consumer {durable}: {e}")))?;
            print_message(&message, req.json, out)
                .map_err(|e| CliError::runtime(format!("cannot write: {e}")))?;
            // Confirmed by the server, so a run that stops right after
            // printing does not see the message again next time.
            message
                .double_ack()
                .await
                .map_err(|e| CliError::runtime(format!("cannot acknowledge: {e}")))?;
            printed += 1;
        }
    }
    Ok(())
}

fn print_message(
    message: &async_nats::jetstream::Message,
    json: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let payload = &message.payload;
    if json {
        // A payload that is not JSON (it never is on the gateway's own
        // subjects) is printed as a JSON string, so every line parses.
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(v) => writeln!(out, "{v}")?,
            Err(_) => writeln!(
                out,
                "{}",
                serde_json::Value::from(String::from_utf8_lossy(payload))
            )?,
        }
        return out.flush();
    }
    let (seq, published) = match message.info() {
        Ok(info) => (info.stream_sequence, info.published.to_string()),
        Err(_) => (0, String::new()),
    };
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    writeln!(
        out,
        "--- #{seq} {} {published} source={} event_id={}",
        message.subject,
        header(crate::records::HEADER_SOURCE),
        header(crate::records::HEADER_EVENT_ID),
    )?;
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )?,
        Err(_) => writeln!(out, "{}", String::from_utf8_lossy(payload))?,
    }
    out.flush()
}
