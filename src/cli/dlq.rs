//! `at-gateway dlq list` and `dlq replay`: dead letters are authentic
//! payloads that did not normalize (answered 422). Each record on
//! `signals.dlq` names its raw event on `signals.raw`; after a fix to the
//! normalizer or the configuration, `replay` runs the raw body through
//! normalization again and publishes the signal on `signals.normalized`
//! with the raw event's `event_id`, `corr_id` and `Nats-Msg-Id` role.
//!
//! Replays are idempotent: a record replayed once is marked in a key-value
//! bucket (`stores.dlq_replay_bucket`, no expiry), created on first use.
//! The mark is taken (`create`, atomic) before publishing and completed
//! after the ack; an interrupted replay leaves it pending, and the next run
//! publishes again under the same `Nats-Msg-Id`, which JetStream drops
//! inside its duplicate window. Downstream, `event_id` is the dedup key.

use std::io::Write;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, kv, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::CliError;
use crate::config::Settings;
use crate::normalize;
use crate::normalize::signal::NormalizedSignal;
use crate::records::{self, DeadLetter, Meta, RawEnvelope, Role};

/// A record of `signals.dlq` and where it sits in the stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// What became of one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Published { seq: u64 },
    AlreadyReplayed,
    StillInvalid(Vec<String>),
    RawMissing,
}

async fn context(settings: &Settings) -> Result<Context, CliError> {
    super::jetstream_context(settings, "at-gateway-dlq").await
}

/// Every dead-letter record the stream holds, oldest first.
pub async fn list(settings: &Settings) -> Result<Vec<DeadRecord>, CliError> {
    let js = context(settings).await?;
    read_subject(
        &js,
        settings,
        &settings.nats.subject_dlq,
        DeliverPolicy::All,
        |_| true,
    )
    .await?
    .into_iter()
    .map(|(seq, _, payload)| {
        let letter = serde_json::from_slice(&payload)
            .map_err(|e| CliError::runtime(format!("dead letter #{seq} does not parse: {e}")))?;
        Ok(DeadRecord { seq, letter })
    })
    .collect()
}

pub fn print_list(records: &[DeadRecord], json: bool, out: &mut impl Write) -> std::io::Result<()> {
    for r in records {
        if json {
            writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())?;
        } else {
            writeln!(
                out,
                "#{} {} source={} event_id={}",
                r.seq, r.letter.received_at, r.letter.source, r.letter.event_id
            )?;
            for reason in &r.letter.reasons {
                writeln!(out, "    {reason}")?;
            }
        }
    }
    if !json {
        writeln!(out, "{} dead letter(s)", records.len())?;
    }
    Ok(())
}

/// Replays the records with the given stream sequences (all when empty).
pub async fn replay(
    settings: &Settings,
    only: &[u64],
    dry_run: bool,
    out: &mut impl Write,
) -> Result<Vec<(u64, Outcome)>, CliError> {
    let records = list(settings).await?;
    let missing: Vec<u64> = only
        .iter()
        .copied()
        .filter(|s| !records.iter().any(|r| r.seq == *s))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::usage(format!(
            "no dead letter at sequence(s) {missing:?} (see `at-gateway dlq list`)"
        )));
    }
    let js = context(settings).await?;
    let marks = if dry_run {
        None
    } else {
        Some(marks_bucket(&js, settings).await?)
    };
    let mut outcomes = Vec::new();
    for record in records
        .iter()
        .filter(|r| only.is_empty() || only.contains(&r.seq))
    {
        let outcome = replay_one(&js, settings, record, marks.as_ref()).await?;
        let line = match &outcome {
            Outcome::Published { seq } if dry_run => {
                let _ = seq;
                "normalizes now; would publish".to_string()
            }
            Outcome::Published { seq } => format!(
                "published as #{seq} on {}",
                settings.nats.subject_normalized
            ),
            Outcome::AlreadyReplayed => "already replayed".to_string(),
            Outcome::StillInvalid(reasons) => {
                format!("still does not normalize: {}", reasons.join("; "))
            }
            Outcome::RawMissing => {
                format!(
                    "raw event {} is no longer in the stream",
                    record.letter.raw_msg_id
                )
            }
        };
        let mode = if dry_run { "dry run: " } else { "" };
        writeln!(
            out,
            "#{} event_id={}: {mode}{line}",
            record.seq, record.letter.event_id
        )
        .map_err(|e| CliError::runtime(format!("cannot write: {e}")))?;
        outcomes.push((record.seq, outcome));
    }
    Ok(outcomes)
}

/// Kept until deleted: a replay is never repeated.
async fn marks_bucket(js: &Context, settings: &Settings) -> Result<kv::Store, CliError> {
    super::kv_bucket(js, settings, &settings.stores.dlq_replay_bucket).await
}

async fn replay_one(
    js: &Context,
    settings: &Settings,
    record: &DeadRecord,
    marks: Option<&kv::Store>,
) -> Result<Outcome, CliError> {
    let Some(raw) = find_raw(js, settings, record).await? else {
        return Ok(Outcome::RawMissing);
    };
    let meta = raw.meta();
    let signal = match renormalize(settings, &raw, &meta) {
        Ok(signal) => signal,
        Err(reasons) => return Ok(Outcome::StillInvalid(reasons)),
    };
    let Some(marks) = marks else {
        return Ok(Outcome::Published { seq: 0 });
    };
    let key = record.letter.event_id.as_str();
    if let Err(e) = marks.create(key, Bytes::from_static(b"pending")).await {
        if e.kind() != kv::CreateErrorKind::AlreadyExists {
            return Err(CliError::runtime(format!("replay mark {key}: {e}")));
        }
        let current = marks
            .get(key)
            .await
            .map_err(|e| CliError::runtime(format!("replay mark {key}: {e}")))?;
        if current.as_deref() != Some(b"pending".as_slice()) {
            return Ok(Outcome::AlreadyReplayed);
        }
        // Pending: an earlier run stopped between mark and ack; publish
        // again under the same Nats-Msg-Id.
    }
    let message = signal
        .document(settings.nats.normalized_schema)
        .and_then(|(schema, document)| {
            records::document(
                &settings.nats,
                Role::Normalized,
                normalized_msg_id(&record.letter.raw_msg_id),
                &meta,
                schema,
                document,
            )
        })
        .map_err(|e| CliError::runtime(format!("cannot encode the signal: {e}")))?;
    let publish = jetstream::message::PublishMessage::build()
        .payload(message.payload)
        .headers(message.headers)
        .message_id(&message.msg_id);
    let ack = js
        .send_publish(message.subject, publish)
        .await
        .map_err(|e| CliError::runtime(format!("publish: {e}")))?
        .await
        .map_err(|e| CliError::runtime(format!("publish not acknowledged: {e}")))?;
    marks
        .put(key, Bytes::from(format!("done:{}", ack.sequence)))
        .await
        .map_err(|e| CliError::runtime(format!("replay mark {key}: {e}")))?;
    Ok(Outcome::Published { seq: ack.sequence })
}

/// The `Nats-Msg-Id` the normalized signal would have had: the raw event's,
/// with the `normalized` role in place of `raw`.
fn normalized_msg_id(raw_msg_id: &str) -> String {
    let key = raw_msg_id.strip_suffix(":raw").unwrap_or(raw_msg_id);
    format!("{key}:normalized")
}

/// The raw event's body read again, as the live path reads it, with the
/// source's settings of today (its format, mapping and credential names).
fn renormalize(
    settings: &Settings,
    raw: &RawEnvelope,
    meta: &Meta,
) -> Result<NormalizedSignal, Vec<String>> {
    let body = raw.body_bytes().map_err(|e| vec![e])?;
    let json = normalize::parse_json(&body);
    let opts = match settings.source(&raw.source) {
        Some(source) => normalize::Options::of(source),
        None => normalize::Options::defaults(meta.source_kind),
    };
    normalize::read(opts, &body, json).stamp(meta).1
}

/// The raw event of a dead letter. Both were published by one request, so
/// the search starts a little before the record's `received_at` and stops
/// once past the publisher's message window.
async fn find_raw(
    js: &Context,
    settings: &Settings,
    record: &DeadRecord,
) -> Result<Option<RawEnvelope>, CliError> {
    let received = OffsetDateTime::parse(&record.letter.received_at, &Rfc3339).map_err(|e| {
        CliError::runtime(format!("dead letter #{}: bad received_at: {e}", record.seq))
    })?;
    let start = received - Duration::from_secs(5);
    let until = received + Duration::from_secs(settings.nats.message_window_sec + 5);
    let found = read_subject(
        js,
        settings,
        &record.letter.raw_subject,
        DeliverPolicy::ByStartTime { start_time: start },
        |m| {
            let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id"));
            let past = m.info().map(|i| i.published > until).unwrap_or(false);
            !past && id.map(|v| v.as_str()) != Some(record.letter.raw_msg_id.as_str())
        },
    )
    .await?;
    let Some((_, _, payload)) = found
        .into_iter()
        .find(|(_, id, _)| id == &record.letter.raw_msg_id)
    else {
        return Ok(None);
    };
    serde_json::from_slice(&payload).map(Some).map_err(|e| {
        CliError::runtime(format!(
            "raw event {} does not parse: {e}",
            record.letter.raw_msg_id
        ))
    })
}

/// Reads `subject` from `deliver` through an ephemeral consumer, up to what
/// the stream holds now, while `go_on` says so. Returns (sequence,
/// Nats-Msg-Id, payload) of each message read.
async fn read_subject(
    js: &Context,
    settings: &Settings,
    subject: &str,
    deliver: DeliverPolicy,
    mut go_on: impl FnMut(&jetstream::Message) -> bool,
) -> Result<Vec<(u64, String, Bytes)>, CliError> {
    let fail = |e: String| CliError::runtime(format!("reading {subject}: {e}"));
    let stream = js
        .get_stream(&settings.nats.stream)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut consumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            deliver_policy: deliver,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut pending = consumer
        .info()
        .await
        .map_err(|e| fail(e.to_string()))?
        .num_pending;
    let mut read = Vec::new();
    if pending == 0 {
        return Ok(read);
    }
    let mut messages = consumer.messages().await.map_err(|e| fail(e.to_string()))?;
    while pending > 0 {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| fail("no message within 10 s".into()))?;
        let Some(message) = next else { break };
        let message = message.map_err(|e| fail(e.to_string()))?;
        let info = message.info().map_err(|e| fail(e.to_string()))?;
        pending = info.pending;
        let seq = info.stream_sequence;
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let more = go_on(&message);
        read.push((seq, id, message.payload.clone()));
        if !more {
            break;
        }
    }
    Ok(read)
}
