//! The steps of one request, in order. Each is a function named after what
//! it does; [`prepare`] reads like the path of a request (ARCHITECTURE.md,
//! "One request") and hands the messages to the publisher.

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::{Receive, Stages};
use crate::auth::{Authenticate, Authenticated, NonceClaim, Proven};
use crate::claims::batch::BatchClaim;
use crate::config::NatsSettings;
use crate::error::{Code, GatewayError};
use crate::idempotency::{self, IdempotencyKey, IdempotencyStore, KeyClaim, Record};
use crate::ids::EventId;
use crate::normalize::signal::NormalizedSignal;
use crate::normalize::{Normalize, Normalized};
use crate::publish::{Outbound, Publish, PublishTicket, Undelivered};
use crate::ratelimit::{Admit, SourceBucket};
use crate::records::{self, DeadLetter, Meta, RawEnvelope, Role, DLQ_SCHEMA, RAW_SCHEMA};
use crate::sources::SourceConfig;
use crate::stage;

/// A request whose messages are with the publisher.
pub(super) struct Prepared {
    /// Resolves once every message is acknowledged, or with why not.
    pub delivery: tokio::sync::oneshot::Receiver<Result<(), Undelivered>>,
    pub event_id: EventId,
    pub instrument: String,
    pub key_id: Option<String>,
    /// Reasons it did not normalize (raw and DLQ were published instead).
    pub rejected: Option<Vec<String>>,
    /// What each claim in the batch stands for, in batch order.
    claim_roles: Vec<ClaimRole>,
    body_hash: [u8; 32],
}

/// Runs a request from its authentication to the publisher's hands.
pub(super) async fn prepare(
    stages: &Stages,
    idempotency: &IdempotencyStore,
    nats: &NatsSettings,
    msg: Receive,
) -> Result<Prepared, GatewayError> {
    let Receive {
        source,
        bucket,
        metrics,
        corr_id,
        credentials,
        client_ip,
        idempotency_key,
        content_type,
        body,
        started: _,
    } = msg;
    let request = Authenticate {
        source: source.clone(),
        metrics,
        credentials,
        client_ip,
        body,
    };
    let authenticated = authenticate(stages, request).await?;
    let proven = admit(stages, authenticated, bucket).await?;
    let normalized = normalize(stages, &source, &proven).await?;
    let body_hash = idempotency::body_hash(&source.id, &normalized.body);
    let key = idempotency::derive_key(
        &source.id,
        idempotency_key.as_deref(),
        proven.sender_id.as_deref(),
        normalized.payload_id.as_deref(),
        &body_hash,
        source.content_dedupe,
    )?;
    let (key_claim, event_id) = claim_key(idempotency, &source, &key, &body_hash).await?;
    let meta = Meta::received_now(event_id, &corr_id, &source);
    let signal = Signal::records(
        nats,
        &meta,
        &proven,
        &key,
        event_id,
        normalized,
        content_type,
    )?;
    let record = Record::new(event_id, body_hash, &key);
    let (messages, claims, claim_roles) =
        with_claims(signal.messages, proven.nonce.as_ref(), &key_claim, &record)?;
    // A claim taken over from a crashed gateway: its messages may be in the
    // stream already, longer ago than JetStream's duplicate window.
    let resumed_from_ms = key_claim.resumed().and_then(|r| r.event_id.unix_ms());
    let ticket = publish(stages, &source, messages, claims, resumed_from_ms).await?;
    let delivery = settle(ticket, event_id, proven.nonce, key_claim, record);
    Ok(Prepared {
        delivery,
        event_id,
        instrument: signal.instrument,
        key_id: proven.key_id,
        rejected: signal.rejected,
        claim_roles,
        body_hash,
    })
}

/// Step 1: the sender proves who it is (401/403), and its nonce is claimed
/// (409 replay).
async fn authenticate(
    stages: &Stages,
    request: Authenticate,
) -> Result<Authenticated, GatewayError> {
    stage::call_within(
        &stages.authenticator,
        request,
        "authenticator",
        stage::STAGE_TIMEOUT,
    )
    .await
}

/// Step 2: the source's rate (429); only proven senders spend it.
async fn admit(
    stages: &Stages,
    authenticated: Authenticated,
    bucket: Arc<SourceBucket>,
) -> Result<Proven, GatewayError> {
    let admit = Admit(authenticated, bucket);
    let admitted = stage::call(&stages.rate_limiter, admit, "rate_limiter").await?;
    Ok(admitted.into_inner().into_parts())
}

/// Step 3: the payload read into a signal draft, credentials redacted.
/// Before the key is derived: the format says which payload field (if any)
/// identifies one signal, and the body hashed and published is the
/// redacted one.
async fn normalize(
    stages: &Stages,
    source: &Arc<SourceConfig>,
    proven: &Proven,
) -> Result<Normalized, GatewayError> {
    // The body is parsed once: the authenticator already did for TradingView.
    let json = proven
        .json
        .clone()
        .or_else(|| crate::normalize::parse_json(&proven.body));
    let request = Normalize {
        source: source.clone(),
        body: proven.body.clone(),
        json,
    };
    stage::call(&stages.normalizer, request, "normalizer").await
}

/// Step 4: the idempotency key claimed (409 duplicate), and the event id
/// the signal is published under.
async fn claim_key(
    idempotency: &IdempotencyStore,
    source: &SourceConfig,
    key: &IdempotencyKey,
    body_hash: &[u8; 32],
) -> Result<(KeyClaim, EventId), GatewayError> {
    let fresh = EventId::generate();
    let claim = idempotency.claim(&source.id, key, body_hash, fresh).await?;
    // A claim taken over from a gateway that crashed mid-publish continues
    // with its event id: its messages may already be in the stream, where
    // JetStream drops our copies as duplicates, so the answer must name the
    // stored signal, and a message it did not get to must carry the same id.
    let event_id = match claim.resumed() {
        Some(previous) => {
            tracing::warn!(event_id = %previous.event_id,
                "continuing a signal whose gateway crashed while publishing it");
            previous.event_id
        }
        None => fresh,
    };
    Ok((claim, event_id))
}

/// Step 5: the records of one signal: raw and normalized, or raw and a
/// dead letter with the reasons it did not normalize.
struct Signal {
    messages: Vec<Outbound>,
    instrument: String,
    rejected: Option<Vec<String>>,
}

impl Signal {
    fn records(
        nats: &NatsSettings,
        meta: &Meta,
        proven: &Proven,
        key: &IdempotencyKey,
        event_id: EventId,
        normalized: Normalized,
        content_type: Option<String>,
    ) -> Result<Signal, GatewayError> {
        let (body, normalized) = normalized.stamp(meta);
        let msg_id = |role: Role| key.msg_id(&event_id, role.as_str());
        let raw = RawEnvelope::new(
            meta,
            proven.scheme.as_str(),
            proven.key_id.clone(),
            key.value.clone(),
            content_type,
            &body,
        );
        let raw = records::message(nats, Role::Raw, msg_id(Role::Raw), meta, RAW_SCHEMA, &raw);
        match normalized {
            Ok(signal) => Ok(Signal {
                instrument: signal.instrument.symbol.clone(),
                messages: vec![
                    raw.map_err(unencodable)?,
                    normalized_message(nats, meta, msg_id(Role::Normalized), &signal)?,
                ],
                rejected: None,
            }),
            Err(reasons) => {
                let letter =
                    DeadLetter::new(meta, reasons.clone(), &nats.subject_raw, msg_id(Role::Raw));
                let dead = records::message(
                    nats,
                    Role::Dlq,
                    msg_id(Role::Dlq),
                    meta,
                    DLQ_SCHEMA,
                    &letter,
                );
                Ok(Signal {
                    instrument: String::new(),
                    messages: vec![raw.map_err(unencodable)?, dead.map_err(unencodable)?],
                    rejected: Some(reasons),
                })
            }
        }
    }
}

/// The `signals.normalized` message of `signal`, in the schema version the
/// stream carries.
fn normalized_message(
    nats: &NatsSettings,
    meta: &Meta,
    msg_id: String,
    signal: &NormalizedSignal,
) -> Result<Outbound, GatewayError> {
    let (schema, document) = signal
        .document(nats.normalized_schema)
        .map_err(unencodable)?;
    records::document(nats, Role::Normalized, msg_id, meta, schema, document).map_err(unencodable)
}

fn unencodable(e: serde_json::Error) -> GatewayError {
    tracing::error!(error = %e, "cannot serialize a message");
    GatewayError::refused(Code::Internal, "could not encode the message")
}

/// What a claim written in a signal's batch stands for.
#[derive(Clone, Copy)]
enum ClaimRole {
    Nonce,
    Key,
}

/// Step 6 (`stores.backend = "stream"`): the nonce and key claims become
/// the first messages of the signal's own batch. With any other store
/// they are held elsewhere and the messages go as they are.
fn with_claims(
    messages: Vec<Outbound>,
    nonce: Option<&NonceClaim>,
    key: &KeyClaim,
    record: &Record,
) -> Result<(Vec<Outbound>, usize, Vec<ClaimRole>), GatewayError> {
    let in_batch: Vec<(ClaimRole, &BatchClaim)> = [
        nonce
            .and_then(|n| n.in_batch())
            .map(|c| (ClaimRole::Nonce, c)),
        key.in_batch().map(|c| (ClaimRole::Key, c)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if in_batch.is_empty() {
        return Ok((messages, 0, Vec::new()));
    }
    let stored = Bytes::from(serde_json::to_vec(record).map_err(unencodable)?);
    let roles = in_batch.iter().map(|(role, _)| *role).collect();
    let claims = in_batch.len();
    let messages = in_batch
        .iter()
        .map(|(_, claim)| records::claim(claim, stored.clone()))
        .chain(messages)
        .collect();
    Ok((messages, claims, roles))
}

/// Step 7: the messages to the publisher, which takes their places in its
/// buffer (503 `overloaded` / `buffer_full`) and starts the delivery.
async fn publish(
    stages: &Stages,
    source: &SourceConfig,
    messages: Vec<Outbound>,
    claims: usize,
    resumed_from_ms: Option<u64>,
) -> Result<PublishTicket, GatewayError> {
    let publish = Publish {
        messages,
        claims,
        priority: source.priority,
        resumed_from_ms,
    };
    stage::call(&stages.publisher, publish, "publisher").await
}

/// Step 8: from here the claims follow the delivery, not the request: a
/// task commits them once JetStream has every message and releases them
/// if the delivery fails, whether or not the request still waits for the
/// outcome it is sent.
fn settle(
    ticket: PublishTicket,
    event_id: EventId,
    nonce: Option<NonceClaim>,
    key: KeyClaim,
    record: Record,
) -> tokio::sync::oneshot::Receiver<Result<(), Undelivered>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let settled = async move {
        let outcome = ticket
            .0
            .await
            .unwrap_or_else(|_| Err(Undelivered::WindowExpired("publisher stopped".into())));
        if outcome.is_ok() {
            // Both claims are marked done before the request is answered, so a
            // repeat that arrives right after the 202 sees `done`.
            let nonce_done = async {
                if let Some(nonce) = nonce {
                    nonce.commit(()).await;
                }
            };
            futures_util::join!(key.commit(record), nonce_done);
        } else {
            tracing::warn!(event_id = %event_id, "signal not stored within its window; nonce and key released");
        }
        let _ = tx.send(outcome);
    };
    actix_rt::spawn(settled.instrument(tracing::Span::current()));
    rx
}

impl Prepared {
    /// The answer to a batch refused because its claim `index` is held by
    /// another request, whose claim record is `stored`.
    pub(super) fn claimed(&self, index: usize, stored: &[u8]) -> GatewayError {
        let record = serde_json::from_slice::<Record>(stored);
        match (self.claim_roles.get(index), record) {
            (Some(ClaimRole::Nonce), _) => GatewayError::Replay,
            (Some(ClaimRole::Key), Ok(record)) => GatewayError::Duplicate {
                event_id: record.event_id,
                payload_mismatch: record.body_hash != self.body_hash,
            },
            _ => {
                tracing::error!(
                    index,
                    "a claim subject holds a message that is not a claim record"
                );
                GatewayError::refused(Code::Internal, "a claim could not be read")
            }
        }
    }
}
