//! Duplicate detection: one accepted signal per idempotency key.
//!
//! The key is the `Idempotency-Key` header, else the sender's message id
//! (Standard Webhooks' `webhook-id`), else the payload's own id field (the
//! normalizer says which field, by format), else SHA-256 of source + body;
//! it is namespaced by source, and the same key (plus a per-subject
//! suffix) becomes JetStream's `Nats-Msg-Id`, so the stream de-duplicates a
//! retried publish too.
//!
//! Keys the sender chose live for the full TTL. The body hash exists only
//! to catch re-sends of one request (TradingView re-sends a 5xx answer up
//! to three times, 5 s apart), so it is done only for the source's
//! `content_dedupe_sec`: two identical alerts on two bars are two signals.
//! Its `Nats-Msg-Id` carries the event id, so the stream's duplicate window
//! cannot swallow the second of two identical alerts either.
//!
//! A key is held while its publish is pending and forgotten if the request
//! fails, so a failed request never makes its retry answer 409; a retry that
//! arrives while the publish is pending waits for its outcome instead of
//! publishing a second copy. Where keys are kept (JetStream key-value,
//! shared by replicas, or this process's memory) is the [`Claims`] store
//! given at start-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::claims::batch::BatchClaim;
use crate::claims::{now_ms, Claim, Claims, Expires, Refused};
use crate::error::{Code, GatewayError};
use crate::ids::{is_token, EventId, SourceId};

/// Longest `Idempotency-Key` (or payload id) accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What a done key remembers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub event_id: EventId,
    #[serde(with = "hex::serde")]
    pub body_hash: [u8; 32],
    /// A body-hash key counts only until then (Unix ms); sender-chosen keys
    /// have none and last the full TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl Expires for Record {
    fn expired(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|until| until <= now_ms)
    }
}

impl Record {
    /// The record a request commits for `key`, stamped now.
    pub fn new(event_id: EventId, body_hash: [u8; 32], key: &IdempotencyKey) -> Record {
        Record {
            event_id,
            body_hash,
            until_ms: key
                .horizon
                .map(|h| now_ms().saturating_add(h.as_millis() as u64)),
        }
    }
}

/// A key held by a request until its signal is stored.
pub type KeyClaim = Claim<Record>;

/// Where an idempotency key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    Header,
    /// The sender's message id (`webhook-id`).
    SenderId,
    Payload,
    BodyHash,
}

/// A source-namespaced idempotency key.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub value: String,
    pub origin: KeyOrigin,
    /// How long a done key counts when shorter than the TTL (body hashes).
    pub horizon: Option<Duration>,
}

impl IdempotencyKey {
    /// The `Nats-Msg-Id` for this key's signal `event_id` on one subject
    /// role (`raw`, …). A body-hash key names the event too: the same body
    /// may be two signals a minute apart, inside the stream's duplicate
    /// window, and must not be dropped there as a re-publish.
    pub fn msg_id(&self, event_id: &EventId, role: &str) -> String {
        match self.origin {
            KeyOrigin::BodyHash => format!("{}:{event_id}:{role}", self.value),
            _ => format!("{}:{role}", self.value),
        }
    }
}

/// SHA-256 of source + body (the body as published: tokens redacted).
pub fn body_hash(source: &SourceId, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(source.as_str().as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().into()
}

/// Picks the key for a request: the header, the sender's message id, the
/// payload's own id (as the normalizer read it), else the body hash, which
/// counts for `content_dedupe` only.
pub fn derive_key(
    source: &SourceId,
    header: Option<&str>,
    sender_id: Option<&str>,
    payload_id: Option<&str>,
    body_hash: &[u8; 32],
    content_dedupe: Duration,
) -> Result<IdempotencyKey, GatewayError> {
    if let Some(h) = header {
        if !is_token(h, MAX_KEY_LEN) {
            return Err(GatewayError::refused(
                Code::InvalidIdempotencyKey,
                format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        return Ok(IdempotencyKey {
            value: format!("{source}:h:{h}"),
            origin: KeyOrigin::Header,
            horizon: None,
        });
    }
    if let Some(id) = sender_id {
        return Ok(IdempotencyKey {
            value: format!("{source}:w:{id}"),
            origin: KeyOrigin::SenderId,
            horizon: None,
        });
    }
    if let Some(id) = payload_id.filter(|id| is_token(id, MAX_KEY_LEN) && !id.contains("{{")) {
        return Ok(IdempotencyKey {
            value: format!("{source}:p:{id}"),
            origin: KeyOrigin::Payload,
            horizon: None,
        });
    }
    Ok(IdempotencyKey {
        value: format!("{source}:b:{}", hex::encode(body_hash)),
        origin: KeyOrigin::BodyHash,
        horizon: Some(content_dedupe),
    })
}

/// The store of idempotency keys.
pub enum IdempotencyStore {
    /// Claimed in a store before the signal is published.
    Claims(Claims<Record>),
    /// Claimed in the signal's batch (`claims/batch.rs`); a sender-chosen
    /// key counts for this long (the idempotency TTL).
    InBatch(Duration),
}

impl IdempotencyStore {
    pub fn new(claims: Claims<Record>) -> Self {
        IdempotencyStore::Claims(claims)
    }

    /// Claims `key` for a signal with `event_id`, or answers 409
    /// `duplicate` with the original event id. When the claim is taken over
    /// from a gateway that crashed while publishing, [`Claim::resumed`]
    /// holds that gateway's record: the signal must go on under its event id.
    /// In batch mode the claim is only named here; the batch decides.
    pub async fn claim(
        &self,
        source: &SourceId,
        key: &IdempotencyKey,
        body_hash: &[u8; 32],
        event_id: EventId,
    ) -> Result<KeyClaim, GatewayError> {
        let claims = match self {
            IdempotencyStore::Claims(claims) => claims,
            IdempotencyStore::InBatch(ttl) => {
                return Ok(match key.horizon.unwrap_or(*ttl) {
                    counts if counts.is_zero() => Claim::Nothing,
                    counts => Claim::InBatch(BatchClaim::new("key", source, &key.value, counts)),
                })
            }
        };
        let intent = Record::new(event_id, *body_hash, key);
        match claims.claim_intending(&key.value, Some(&intent)).await {
            Ok(guard) => Ok(Claim::Held(guard)),
            Err(Refused::Taken(rec)) => Err(GatewayError::Duplicate {
                event_id: rec.event_id,
                payload_mismatch: rec.body_hash != *body_hash,
            }),
            Err(Refused::Unavailable(e)) => {
                tracing::warn!(error = %e, "idempotency store unavailable");
                Err(GatewayError::refused(
                    Code::StoreUnavailable,
                    "the idempotency store is unavailable; retry shortly",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SourceId {
        SourceId::parse("alpha").unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn header_beats_payload_id_beats_body_hash() {
        let h = body_hash(&src(), b"{}");
        let k = derive_key(&src(), Some("K1"), None, Some("abc"), &h, MINUTE).unwrap();
        assert_eq!(k.value, "alpha:h:K1");
        assert_eq!(k.horizon, None);
        let k = derive_key(&src(), None, None, Some("abc"), &h, MINUTE).unwrap();
        assert_eq!(k.value, "alpha:p:abc");
        let k = derive_key(&src(), None, None, None, &h, MINUTE).unwrap();
        assert_eq!(k.origin, KeyOrigin::BodyHash);
        assert_eq!(k.horizon, Some(MINUTE));
    }

    #[test]
    fn placeholder_ids_and_bad_headers_are_not_keys() {
        let h = body_hash(&src(), b"{}");
        let k = derive_key(
            &src(),
            None,
            None,
            Some("{{strategy.order.id}}"),
            &h,
            MINUTE,
        )
        .unwrap();
        assert_eq!(k.origin, KeyOrigin::BodyHash);
        assert!(derive_key(&src(), Some("a b"), None, None, &h, MINUTE).is_err());
    }

    #[test]
    fn a_body_hash_record_expires_and_its_msg_ids_name_the_event() {
        let h = body_hash(&src(), b"buy BTCUSDT 1");
        let key = derive_key(&src(), None, None, None, &h, MINUTE).unwrap();
        let e = EventId::generate();
        let rec = Record::new(e, h, &key);
        assert!(!rec.expired(now_ms()));
        assert!(rec.expired(now_ms() + 61_000));
        assert!(key.msg_id(&e, "raw").contains(&e.to_string()));
        let chosen = derive_key(&src(), Some("K"), None, None, &h, MINUTE).unwrap();
        assert!(!Record::new(e, h, &chosen).expired(u64::MAX));
        assert_eq!(chosen.msg_id(&e, "raw"), "alpha:h:K:raw");
    }
}
