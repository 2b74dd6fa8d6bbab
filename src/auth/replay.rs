//! The nonce replay store: each (source, nonce) pair is accepted once.
//!
//! A nonce is remembered for twice the replay window: a request may carry a
//! timestamp up to one window in the future, and must stay refused until
//! that timestamp has also fallen one window into the past. Where nonces are
//! kept (JetStream key-value, shared by replicas, or this process's memory)
//! is the [`Claims`] store given at start-up; with the stream backend a
//! nonce is a claim message in its signal's own batch (`claims/batch.rs`).

use std::time::Duration;

use crate::claims::batch::BatchClaim;
use crate::claims::{Claim, Claims, Refused};
use crate::error::{Code, GatewayError};
use crate::ids::SourceId;

/// A nonce held by a request until its signal is stored (commit) or the
/// request fails (drop: the nonce is free again for the retry).
pub type NonceClaim = Claim<()>;

pub enum ReplayStore {
    /// Claimed in a store before the signal is published.
    Claims(Claims<()>),
    /// Claimed in the signal's batch, for this long (2 × the replay window).
    InBatch(Duration),
}

impl ReplayStore {
    pub fn new(claims: Claims<()>) -> Self {
        ReplayStore::Claims(claims)
    }

    /// Claims (source, nonce). If another request with the same nonce is
    /// still being published, waits for its outcome: stored → 409 `replay`,
    /// failed → this request may have the nonce.
    pub async fn claim(&self, source: &SourceId, nonce: &str) -> Result<NonceClaim, GatewayError> {
        let key = format!("{source}\n{nonce}");
        let claims = match self {
            ReplayStore::Claims(claims) => claims,
            ReplayStore::InBatch(ttl) => {
                return Ok(Claim::InBatch(BatchClaim::new("nonce", source, &key, *ttl)))
            }
        };
        match claims.claim(&key).await {
            Ok(guard) => Ok(Claim::Held(guard)),
            Err(Refused::Taken(())) => Err(GatewayError::Replay),
            Err(Refused::Unavailable(e)) => {
                tracing::warn!(error = %e, "replay store unavailable");
                Err(GatewayError::refused(
                    Code::StoreUnavailable,
                    "the replay store is unavailable; retry shortly",
                ))
            }
        }
    }
}
