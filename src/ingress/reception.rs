//! The reception stage: takes a received webhook through the other stages
//! and decides its answer.
//!
//! ```text
//! authenticator → rate limiter → idempotency → normalizer → publisher → answer
//! ```
//!
//! Once the publisher has the messages, the request's nonce and
//! idempotency key belong to the delivery: they are committed when
//! JetStream acknowledges and released if the delivery fails, whether or
//! not the request is still waiting. So a 503 whose signal never landed
//! leaves nothing behind that could make its retry a 409.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::{Authenticate, Authenticated, Authenticator, Credentials};
use crate::claims::batch::BatchClaim;
use crate::config::{NatsSettings, NormalizedSchema};
use crate::error::{Code, GatewayError};
use crate::idempotency::{self, IdempotencyKey, IdempotencyStore, Record};
use crate::ids::{CorrId, EventId};
use crate::normalize::signal::{DeadLetter, RawEnvelope, DLQ_SCHEMA, RAW_SCHEMA};
use crate::normalize::{fields::rfc3339, Meta, Normalize, Normalizer};
use crate::publish::envelope::{self, Role};
use crate::publish::{Outbound, Publish, Publisher, Undelivered};
use crate::ratelimit::{Admit, Admitted, RateLimiter, SourceBucket};
use crate::sources::SourceConfig;
use crate::stage::{self, Traced, MAILBOX_CAPACITY};
use crate::telemetry::SourceMetrics;
use tracing::Instrument;

pub use crate::publish::envelope::{HEADER_CORR_ID, HEADER_EVENT_ID, HEADER_SCHEMA, HEADER_SOURCE};

/// Message in: a webhook whose body has been read.
#[derive(Message)]
#[rtype(result = "Result<Accepted, GatewayError>")]
pub struct Receive {
    pub source: Arc<SourceConfig>,
    /// The source's rate bucket, from the same table entry as `source`.
    pub bucket: Arc<SourceBucket>,
    /// The source's metric handles, from the same entry.
    pub metrics: Arc<SourceMetrics>,
    pub corr_id: CorrId,
    pub credentials: Credentials,
    pub client_ip: IpAddr,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// When the request arrived; its acknowledgement cap counts from here.
    pub started: Instant,
}

/// Message out: the signal is in JetStream.
#[derive(Debug)]
pub struct Accepted {
    pub event_id: EventId,
    pub instrument: String,
    /// The key that verified the request (custom sources), for the log.
    pub key_id: Option<String>,
}

/// The addresses of this worker's stage actors.
#[derive(Clone)]
pub struct Stages {
    pub authenticator: Addr<Authenticator>,
    pub rate_limiter: Addr<RateLimiter>,
    pub normalizer: Addr<Normalizer>,
    pub publisher: Addr<Publisher>,
}

/// One reception per HTTP worker.
pub struct Reception {
    stages: Stages,
    idempotency: Arc<IdempotencyStore>,
    nats: Arc<NatsSettings>,
}

impl Reception {
    pub fn new(
        stages: Stages,
        idempotency: Arc<IdempotencyStore>,
        nats: Arc<NatsSettings>,
    ) -> Self {
        Reception {
            stages,
            idempotency,
            nats,
        }
    }
}

impl Actor for Reception {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Reception {}

impl Handler<Traced<Receive>> for Reception {
    // A ResponseFuture runs beside the actor, so many requests are in
    // flight at once; the mailbox only holds requests not yet started.
    type Result = ResponseFuture<Result<Accepted, GatewayError>>;

    fn handle(&mut self, msg: Traced<Receive>, _: &mut Context<Self>) -> Self::Result {
        let Traced(msg, span) = msg;
        let stages = self.stages.clone();
        let idempotency = self.idempotency.clone();
        let nats = self.nats.clone();
        let served = async move {
            let deadline = tokio::time::Instant::from_std(msg.started + msg.source.ack_wait);
            let timed_out = || {
                GatewayError::refused(
                    Code::PublishTimeout,
                    "JetStream did not acknowledge in time; retry with the same idempotency key \
                     (the signal may still be stored, and a retry will not duplicate it)",
                )
            };
            // One timer bounds the whole request. Until the publisher has the
            // messages, dropping the future (on timeout) releases the nonce and
            // the key: nothing was published. After that, the claims follow the
            // delivery (see `prepare`), whether or not the request still waits.
            let answered = tokio::time::timeout_at(deadline, async {
                let mut prepared = prepare(&stages, &idempotency, &nats, msg).await?;
                let delivered = (&mut prepared.delivery).await;
                Ok::<_, GatewayError>((prepared, delivered))
            });
            let (prepared, delivered) = answered.await.map_err(|_| timed_out())??;
            if let Ok(Err(Undelivered::Claimed { index, stored })) = &delivered {
                return Err(prepared.claimed(*index, stored));
            }
            let Prepared {
                event_id,
                instrument,
                key_id,
                rejected,
                ..
            } = prepared;
            match delivered {
                Ok(Ok(())) => match rejected {
                    None => Ok(Accepted {
                        event_id,
                        instrument,
                        key_id,
                    }),
                    Some(reasons) => Err(GatewayError::Unprocessable { reasons, event_id }),
                },
                Ok(Err(Undelivered::TooLarge(_))) => Err(GatewayError::TooLargeForStream),
                Err(_) | Ok(Err(_)) => Err(GatewayError::refused(
                    Code::NatsUnavailable,
                    "NATS JetStream is unavailable; the signal was not stored, retry later",
                )),
            }
        };
        Box::pin(served.instrument(span))
    }
}

/// A request whose messages are with the publisher.
struct Prepared {
    /// Resolves once every message is acknowledged, or with why not.
    delivery: tokio::sync::oneshot::Receiver<Result<(), Undelivered>>,
    event_id: EventId,
    instrument: String,
    key_id: Option<String>,
    /// Reasons it did not normalize (raw and DLQ were published instead).
    rejected: Option<Vec<String>>,
    /// What each claim in the batch stands for, in batch order.
    claim_roles: Vec<ClaimRole>,
    body_hash: [u8; 32],
}

async fn prepare(
    stages: &Stages,
    idempotency: &IdempotencyStore,
    nats: &NatsSettings,
    msg: Receive,
) -> Result<Prepared, GatewayError> {
    let source = msg.source.clone();
    let auth = stage::call_within(
        &stages.authenticator,
        Authenticate {
            source: source.clone(),
            metrics: msg.metrics,
            credentials: msg.credentials,
            client_ip: msg.client_ip,
            body: msg.body,
        },
        "authenticator",
        stage::STAGE_TIMEOUT,
    )
    .await?;
    let Admitted(mut auth) = stage::call(
        &stages.rate_limiter,
        Admit(auth, msg.bucket),
        "rate_limiter",
    )
    .await?;

    // The body is parsed once: the authenticator already did for TradingView.
    let json = auth
        .json
        .take()
        .or_else(|| crate::normalize::parse_json(&auth.body));
    // Normalized before the key is derived: the format says which payload
    // field (if any) identifies one signal, and the body hashed and
    // published is the one with credentials redacted.
    let normalized = stage::call(
        &stages.normalizer,
        Normalize {
            source: source.clone(),
            body: auth.body.clone(),
            json,
        },
        "normalizer",
    )
    .await?;
    let body_hash = idempotency::body_hash(&source.id, &normalized.body);
    let key = idempotency::derive_key(
        &source.id,
        msg.idempotency_key.as_deref(),
        auth.sender_id.as_deref(),
        normalized.payload_id.as_deref(),
        &body_hash,
        source.content_dedupe,
    )?;
    let fresh_event_id = EventId::generate();
    let key_claim = idempotency
        .claim(&source.id, &key, &body_hash, fresh_event_id)
        .await?;
    // A claim taken over from a gateway that crashed mid-publish continues
    // with its event id: its messages may already be in the stream, where
    // JetStream drops our copies as duplicates, so the answer must name the
    // stored signal, and a message it did not get to must carry the same id.
    let event_id = match key_claim.resumed() {
        Some(previous) => {
            tracing::warn!(event_id = %previous.event_id,
                "continuing a signal whose gateway crashed while publishing it");
            previous.event_id
        }
        None => fresh_event_id,
    };
    let meta = Meta {
        event_id: event_id.to_string(),
        corr_id: msg.corr_id.to_string(),
        source: source.id.to_string(),
        source_kind: source.kind,
        received_at: rfc3339(OffsetDateTime::now_utc()),
    };
    let (body, normalized) = normalized.stamp(&meta);

    let raw = raw_envelope(&meta, &auth, body, &key, msg.content_type);
    let (messages, instrument, rejected) = match normalized {
        Ok(signal) => {
            let instrument = signal.instrument.symbol.clone();
            let normalized = match nats.normalized_schema {
                NormalizedSchema::V2 => outbound(
                    nats,
                    Role::Normalized,
                    &key,
                    event_id,
                    &meta,
                    signal.schema,
                    &signal,
                )?,
                NormalizedSchema::V1 => {
                    let v1 = signal.to_v1();
                    outbound(
                        nats,
                        Role::Normalized,
                        &key,
                        event_id,
                        &meta,
                        v1.schema,
                        &v1,
                    )?
                }
            };
            let messages = vec![
                outbound(nats, Role::Raw, &key, event_id, &meta, RAW_SCHEMA, &raw)?,
                normalized,
            ];
            (messages, instrument, None)
        }
        Err(reasons) => {
            let dead = DeadLetter {
                schema: DLQ_SCHEMA.into(),
                event_id: meta.event_id.clone(),
                corr_id: meta.corr_id.clone(),
                source: meta.source.clone(),
                received_at: meta.received_at.clone(),
                reasons: reasons.clone(),
                raw_subject: nats.subject_raw.clone(),
                raw_msg_id: key.msg_id(&event_id, "raw"),
            };
            let messages = vec![
                outbound(nats, Role::Raw, &key, event_id, &meta, RAW_SCHEMA, &raw)?,
                outbound(nats, Role::Dlq, &key, event_id, &meta, DLQ_SCHEMA, &dead)?,
            ];
            (messages, String::new(), Some(reasons))
        }
    };

    // With the stream backend the claims are messages of the same batch.
    let nonce = auth.nonce.take();
    let record = Record::new(event_id, body_hash, &key);
    let in_batch: Vec<(ClaimRole, &BatchClaim)> = [
        nonce
            .as_ref()
            .and_then(|n| n.in_batch())
            .map(|c| (ClaimRole::Nonce, c)),
        key_claim.in_batch().map(|c| (ClaimRole::Key, c)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let claim_roles = in_batch.iter().map(|(role, _)| *role).collect();
    let claims = in_batch.len();
    let messages = if in_batch.is_empty() {
        messages
    } else {
        let stored = Bytes::from(serde_json::to_vec(&record).map_err(|e| {
            tracing::error!(error = %e, "cannot serialize a claim record");
            GatewayError::refused(Code::Internal, "could not encode the message")
        })?);
        in_batch
            .iter()
            .map(|(_, claim)| claim.message(stored.clone()))
            .chain(messages)
            .collect()
    };
    let publish = Publish {
        messages,
        claims,
        priority: source.priority,
    };
    let ticket = stage::call(&stages.publisher, publish, "publisher").await?;

    // The claims now follow the delivery, not this request.
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
            futures_util::join!(key_claim.commit(record), nonce_done);
        } else {
            tracing::warn!(event_id = %event_id, "signal not stored within its window; nonce and key released");
        }
        let _ = tx.send(outcome);
    };
    actix_rt::spawn(settled.instrument(tracing::Span::current()));
    Ok(Prepared {
        delivery: rx,
        event_id,
        instrument,
        key_id: auth.key_id.clone(),
        rejected,
        claim_roles,
        body_hash,
    })
}

/// What a claim written in a signal's batch stands for.
#[derive(Clone, Copy)]
enum ClaimRole {
    Nonce,
    Key,
}

impl Prepared {
    /// The answer to a batch refused because its claim `index` is held by
    /// another request, whose claim record is `stored`.
    fn claimed(&self, index: usize, stored: &[u8]) -> GatewayError {
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

/// `body`: as the normalizer left it, credentials redacted.
fn raw_envelope(
    meta: &Meta,
    auth: &Authenticated,
    body: Bytes,
    key: &IdempotencyKey,
    content_type: Option<String>,
) -> RawEnvelope {
    let (body_encoding, body) = match std::str::from_utf8(&body) {
        Ok(text) => ("utf8", text.to_owned()),
        Err(_) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(&body),
        ),
    };
    RawEnvelope {
        schema: RAW_SCHEMA,
        event_id: meta.event_id.clone(),
        corr_id: meta.corr_id.clone(),
        source: meta.source.clone(),
        source_kind: meta.source_kind.as_str(),
        received_at: meta.received_at.clone(),
        auth_scheme: auth.scheme.as_str(),
        key_id: auth.key_id.clone(),
        idempotency_key: key.value.clone(),
        content_type,
        body_encoding,
        body,
    }
}

fn outbound<T: Serialize>(
    nats: &NatsSettings,
    role: Role,
    key: &IdempotencyKey,
    event_id: EventId,
    meta: &Meta,
    schema: &str,
    value: &T,
) -> Result<Outbound, GatewayError> {
    serde_json::to_vec(value)
        .and_then(|document| {
            envelope::outbound(
                nats,
                role,
                key.msg_id(&event_id, role.as_str()),
                meta,
                schema,
                document,
            )
        })
        .map_err(|e| {
            tracing::error!(error = %e, "cannot serialize a message");
            GatewayError::refused(Code::Internal, "could not encode the message")
        })
}
