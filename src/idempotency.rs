//! Duplicate detection: one accepted signal per idempotency key.
//!
//! The key is the `Idempotency-Key` header, else the sender's message id
//! (Standard Webhooks' `webhook-id`), else the payload's own id field, else
//! SHA-256 of source + body; it is namespaced by source, and the same
//! key (plus a per-subject suffix) becomes JetStream's `Nats-Msg-Id`, so the
//! stream de-duplicates a retried publish too.
//!
//! A key is held while its publish is pending and forgotten if the request
//! fails, so a failed request never makes its retry answer 409; a retry that
//! arrives while the publish is pending waits for its outcome instead of
//! publishing a second copy. Where keys are kept (JetStream key-value,
//! shared by replicas, or this process's memory) is the [`Claims`] store
//! given at start-up.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::claims::{ClaimGuard, Claims, Refused};
use crate::config::SourceKind;
use crate::error::GatewayError;
use crate::ids::{is_token, EventId, SourceId};

/// Longest `Idempotency-Key` (or payload id) accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Payload fields taken as the sender's own id, first present wins. A
/// TradingView `id` is usually `{{strategy.order.id}}`, which repeats across
/// alerts ("Long"), so TradingView sources do not use it.
const CUSTOM_ID_FIELDS: &[&str] = &["idempotency_key", "event_id", "id"];
const TRADINGVIEW_ID_FIELDS: &[&str] = &["idempotency_key", "event_id"];

/// What a done key remembers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub event_id: EventId,
    #[serde(with = "hex::serde")]
    pub body_hash: [u8; 32],
}

/// A key held by a request until its signal is stored.
pub type KeyClaim = ClaimGuard<Record>;

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
}

impl IdempotencyKey {
    /// The `Nats-Msg-Id` for this key on one subject role (`raw`, …).
    pub fn msg_id(&self, role: &str) -> String {
        format!("{}:{role}", self.value)
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

/// Picks the key for a request.
pub fn derive_key(
    source: &SourceId,
    kind: SourceKind,
    header: Option<&str>,
    sender_id: Option<&str>,
    json: Option<&Value>,
    body_hash: &[u8; 32],
) -> Result<IdempotencyKey, GatewayError> {
    if let Some(h) = header {
        if !is_token(h, MAX_KEY_LEN) {
            return Err(GatewayError::bad_request(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        return Ok(IdempotencyKey {
            value: format!("{source}:h:{h}"),
            origin: KeyOrigin::Header,
        });
    }
    if let Some(id) = sender_id {
        return Ok(IdempotencyKey {
            value: format!("{source}:w:{id}"),
            origin: KeyOrigin::SenderId,
        });
    }
    let fields = match kind {
        SourceKind::Custom => CUSTOM_ID_FIELDS,
        SourceKind::Tradingview => TRADINGVIEW_ID_FIELDS,
    };
    if let Some(id) = json.and_then(|v| payload_id(v, fields)) {
        return Ok(IdempotencyKey {
            value: format!("{source}:p:{id}"),
            origin: KeyOrigin::Payload,
        });
    }
    Ok(IdempotencyKey {
        value: format!("{source}:b:{}", hex::encode(body_hash)),
        origin: KeyOrigin::BodyHash,
    })
}

/// The payload's own id: a string or integer, sane, and not an unreplaced
/// `{{placeholder}}` (which would make every alert a duplicate of the first).
fn payload_id(v: &Value, fields: &[&str]) -> Option<String> {
    let obj = v.as_object()?;
    fields.iter().find_map(|f| {
        let id = match obj.get(*f)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (is_token(&id, MAX_KEY_LEN) && !id.contains("{{")).then_some(id)
    })
}

/// The store of idempotency keys.
pub struct IdempotencyStore {
    claims: Claims<Record>,
}

impl IdempotencyStore {
    pub fn new(claims: Claims<Record>) -> Self {
        IdempotencyStore { claims }
    }

    /// Claims `key` for a signal with `event_id`, or answers 409
    /// `duplicate` with the original event id. When the claim is taken over
    /// from a gateway that crashed while publishing, [`ClaimGuard::resumed`]
    /// holds that gateway's record: the signal must go on under its event id.
    ///
    /// [`ClaimGuard::resumed`]: crate::claims::ClaimGuard::resumed
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        body_hash: &[u8; 32],
        event_id: EventId,
    ) -> Result<KeyClaim, GatewayError> {
        let intent = Record {
            event_id,
            body_hash: *body_hash,
        };
        match self.claims.claim_intending(&key.value, Some(&intent)).await {
            Ok(guard) => Ok(guard),
            Err(Refused::Taken(rec)) => Err(GatewayError::Duplicate {
                event_id: rec.event_id,
                payload_mismatch: rec.body_hash != *body_hash,
            }),
            Err(Refused::Unavailable(e)) => {
                tracing::warn!(error = %e, "idempotency store unavailable");
                Err(GatewayError::unavailable(
                    "store_unavailable",
                    "the idempotency store is unavailable; retry shortly",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> SourceId {
        SourceId::parse("alpha").unwrap()
    }

    #[test]
    fn header_beats_payload_id_beats_body_hash() {
        let h = body_hash(&src(), b"{}");
        let body = json!({"id": "abc"});
        let k = derive_key(
            &src(),
            SourceKind::Custom,
            Some("K1"),
            None,
            Some(&body),
            &h,
        )
        .unwrap();
        assert_eq!(k.value, "alpha:h:K1");
        let k = derive_key(&src(), SourceKind::Custom, None, None, Some(&body), &h).unwrap();
        assert_eq!(k.value, "alpha:p:abc");
        let k = derive_key(&src(), SourceKind::Tradingview, None, None, Some(&body), &h).unwrap();
        assert_eq!(k.origin, KeyOrigin::BodyHash);
    }

    #[test]
    fn placeholder_ids_and_bad_headers_are_not_keys() {
        let h = body_hash(&src(), b"{}");
        let body = json!({"id": "{{strategy.order.id}}"});
        let k = derive_key(&src(), SourceKind::Custom, None, None, Some(&body), &h).unwrap();
        assert_eq!(k.origin, KeyOrigin::BodyHash);
        assert!(derive_key(&src(), SourceKind::Custom, Some("a b"), None, None, &h).is_err());
    }
}
