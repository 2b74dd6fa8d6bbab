//! A signal continued after its gateway crashed while publishing it (a
//! claim taken over, `claims/jetstream.rs`). Re-publishing its messages is
//! safe only while JetStream's duplicate window still holds the originals'
//! `Nats-Msg-Id`s, and the sender's retry may come hours later. So the
//! stream is read first, from when the crashed gateway claimed the key to
//! the end of its message window (it could not have stored anything later),
//! and only the messages not found there are published.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, consumer::DeliverPolicy};
use futures_util::StreamExt;
use time::OffsetDateTime;

use crate::records::Outbound;

/// Slack on both ends of the search: the claim's clock and the server's.
const CLOCK_SLACK: Duration = Duration::from_secs(5);
/// Longest wait for the next message of the search.
const NEXT_WITHIN: Duration = Duration::from_secs(2);

/// `messages` without those already in `stream`. `claimed_ms`: when the
/// crashed holder claimed the key (Unix ms); `window`: how long it could
/// have gone on publishing after that.
pub async fn unstored(
    js: &jetstream::Context,
    stream: &str,
    messages: Vec<Outbound>,
    claimed_ms: u64,
    window: Duration,
) -> Result<Vec<Outbound>, String> {
    let wanted: HashSet<&str> = messages
        .iter()
        .map(|m| m.msg_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(messages);
    }
    let start_ms = claimed_ms.saturating_sub(CLOCK_SLACK.as_millis() as u64);
    let end_ms = claimed_ms + (window + CLOCK_SLACK).as_millis() as u64;
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_ms) * 1_000_000)
        .map_err(|e| format!("claim time: {e}"))?;
    let mut subjects: Vec<String> = messages.iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    subjects.dedup();

    let failed = |what: &str, e: &dyn std::fmt::Display| {
        format!("looking for a crashed gateway's messages: {what}: {e}")
    };
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| failed("stream", &e))?;
    let search = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects: subjects,
            deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| failed("consumer", &e))?;
    let mut found: HashSet<String> = HashSet::new();
    if search.cached_info().num_pending > 0 {
        let mut stored = search.messages().await.map_err(|e| failed("read", &e))?;
        loop {
            let message = match tokio::time::timeout(NEXT_WITHIN, stored.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Err(failed("read", &e)),
                Ok(None) => break,
                Err(_) => return Err(failed("read", &"no message within 2 s")),
            };
            let info = message.info().map_err(|e| failed("message", &e))?;
            if info.published.unix_timestamp_nanos() / 1_000_000 > i128::from(end_ms) {
                break;
            }
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str());
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                found.insert(id.to_owned());
            }
            if found.len() == wanted.len() || info.pending == 0 {
                break;
            }
        }
    }
    if !found.is_empty() {
        tracing::warn!(
            found = found.len(),
            of = wanted.len(),
            "a crashed gateway had stored part of this signal; publishing only the rest"
        );
    }
    Ok(messages
        .into_iter()
        .filter(|m| m.msg_id.is_empty() || !found.contains(&m.msg_id))
        .collect())
}
