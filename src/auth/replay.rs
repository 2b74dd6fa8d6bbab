//! The nonce replay store: each (source, nonce) pair is accepted once.
//!
//! A nonce is remembered for twice the replay window: a request may carry a
//! timestamp up to one window in the future, and must stay refused until
//! that timestamp has also fallen one window into the past.
//!
//! In memory for now (one process); the store is shared by every worker.

use std::sync::Arc;
use std::time::Duration;

use crate::claims::{Claim, ClaimGuard, ClaimTable};
use crate::error::GatewayError;
use crate::ids::SourceId;

/// A nonce held by a request until its signal is stored (commit) or the
/// request fails (drop: the nonce is free again for the retry).
pub type NonceClaim = ClaimGuard<()>;

pub struct ReplayStore {
    table: Arc<ClaimTable<()>>,
}

impl ReplayStore {
    pub fn new(window: Duration, capacity: u64) -> Arc<Self> {
        Arc::new(ReplayStore {
            table: ClaimTable::new(window * 2, capacity),
        })
    }

    /// Claims (source, nonce). If another request with the same nonce is
    /// still being published, waits for its outcome: stored → 409 `replay`,
    /// failed → this request may have the nonce.
    pub async fn claim(&self, source: &SourceId, nonce: &str) -> Result<NonceClaim, GatewayError> {
        let key = format!("{source}\n{nonce}");
        loop {
            match self.table.claim(&key) {
                Claim::Won(guard) => return Ok(guard),
                Claim::Taken(()) => return Err(GatewayError::Replay),
                Claim::Pending(waiter) => {
                    if waiter.outcome().await.is_some() {
                        return Err(GatewayError::Replay);
                    }
                }
                Claim::Full => {
                    return Err(GatewayError::unavailable(
                        "replay_store_full",
                        "the replay store is full; retry shortly",
                    ))
                }
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}
