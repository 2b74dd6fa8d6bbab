//! One atomic batch (nats-server 2.12+, ADR-50): a request's claims and its
//! signal messages, stored all or none (`claims/batch.rs` says why).
//!
//! Every message but the last is published without a reply subject (the
//! server stages it); the last carries `Nats-Batch-Commit: 1` and gets the
//! one ack, or the error that refused the whole batch. An attempt that
//! failed stored nothing, so the retry sends the batch again, whole, under
//! a new batch id.

use std::time::Instant;

use async_nats::header::{NATS_BATCH_COMMIT, NATS_BATCH_ID, NATS_BATCH_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::ErrorCode;

use super::{note_failure, too_large, Delivery, Outbound, Undelivered};
use crate::claims::batch::{holder, PREFIX};
use crate::telemetry::PublishStatus;

/// One attempt at the whole batch; the first `claims` messages are claims.
/// Answers no pending messages once the batch is stored, all of them when
/// it must be sent again.
pub(super) async fn attempt(
    delivery: &Delivery,
    messages: &[Outbound],
    claims: usize,
    last_error: &mut String,
) -> Result<Vec<usize>, Undelivered> {
    let all = || (0..messages.len()).collect::<Vec<_>>();
    let label = |i: usize| label(messages, claims, i);
    let js = &delivery.js;
    let batch_id = uuid::Uuid::new_v4().to_string();
    let last = messages.len() - 1;
    let sent = Instant::now();
    let mut ack = None;
    for (i, m) in messages.iter().enumerate() {
        let mut headers = m.headers.clone();
        headers.insert(NATS_BATCH_ID, batch_id.as_str());
        headers.insert(NATS_BATCH_SEQUENCE, (i + 1).to_string().as_str());
        if !m.msg_id.is_empty() {
            headers.insert(NATS_MESSAGE_ID, m.msg_id.as_str());
        }
        if i < last {
            let staged = js
                .client()
                .publish_with_headers(m.subject.clone(), headers, m.payload.clone())
                .await;
            if let Err(e) = staged {
                if e.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded {
                    return Err(too_large(delivery, &m.subject, &e));
                }
                *last_error = e.to_string();
                delivery.count(label(i), PublishStatus::Error);
                return Ok(all());
            }
            continue;
        }
        headers.insert(NATS_BATCH_COMMIT, "1");
        let commit = PublishMessage::build()
            .payload(m.payload.clone())
            .headers(headers);
        match js.send_publish(m.subject.clone(), commit).await {
            Ok(future) => ack = Some(future),
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return Err(too_large(delivery, &m.subject, &e));
            }
            Err(e) => {
                *last_error = e.to_string();
                delivery.count(label(i), PublishStatus::Error);
                return Ok(all());
            }
        }
    }
    let Some(ack) = ack else {
        return Ok(all());
    };
    let refused = match super::await_ack(delivery, ack).await {
        Ok(_) => return Ok(stored(delivery, messages, claims, sent)),
        Err(e) => e,
    };
    match refused.kind() {
        // A claim subject already holds a message: whose?
        PublishErrorKind::WrongLastSequence => match holders(delivery, messages, claims).await {
            Ok(Holders::Ours) => Ok(stored(delivery, messages, claims, sent)),
            Ok(Holders::Other(index, stored)) => {
                delivery.count(label(index), PublishStatus::Claimed);
                Err(Undelivered::Claimed { index, stored })
            }
            Ok(Holders::None) => {
                *last_error = "a claim changed while its batch was checked".into();
                Ok(all())
            }
            Err(e) => {
                *last_error =
                    format!("a batch was refused by a claim, which could not be read: {e}");
                Ok(all())
            }
        },
        // Our signal's `Nats-Msg-Id` is stored already: an earlier attempt
        // of this request landed (its ack was lost).
        _ if error_code(&refused) == Some(ErrorCode::ATOMIC_PUBLISH_CONTAINS_DUPLICATE_MESSAGE) => {
            Ok(stored(delivery, messages, claims, sent))
        }
        _ => {
            note_failure(delivery, label(last), &refused);
            *last_error = refused.to_string();
            Ok(all())
        }
    }
}

/// The metric label of message `i`: a claim subject per key would make a
/// label per key, so every claim counts as [`PREFIX`].
fn label(messages: &[Outbound], claims: usize, i: usize) -> &str {
    if i < claims {
        PREFIX
    } else {
        &messages[i].subject
    }
}

/// Counts a stored batch; nothing is pending any more.
fn stored(delivery: &Delivery, messages: &[Outbound], claims: usize, sent: Instant) -> Vec<usize> {
    for i in 0..messages.len() {
        delivery.count(label(messages, claims, i), PublishStatus::Ok);
    }
    delivery.observe(&messages[messages.len() - 1].subject, sent);
    Vec::new()
}

/// Who holds the claims of a batch that a claim refused.
enum Holders {
    /// Every held claim carries this batch's own record: an earlier attempt
    /// of this request was stored.
    Ours,
    /// Claim `index` belongs to another request, whose claim message this is.
    Other(usize, bytes::Bytes),
    /// None is held any more (expired in between): send again.
    None,
}

async fn holders(
    delivery: &Delivery,
    messages: &[Outbound],
    claims: usize,
) -> Result<Holders, String> {
    let mut ours = false;
    for (i, claim) in messages[..claims].iter().enumerate() {
        match holder(&delivery.js, &delivery.stream, &claim.subject).await? {
            Some(stored) if stored == claim.payload => ours = true,
            Some(stored) => return Ok(Holders::Other(i, stored)),
            None => {}
        }
    }
    Ok(if ours { Holders::Ours } else { Holders::None })
}

/// The JetStream error code behind a refused publish, if the server sent one.
fn error_code(e: &PublishError) -> Option<ErrorCode> {
    std::error::Error::source(e)?
        .downcast_ref::<async_nats::jetstream::Error>()
        .map(|e| e.error_code())
}
