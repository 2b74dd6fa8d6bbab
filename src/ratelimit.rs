//! The rate limiter stage: one token bucket per source (`governor`'s GCRA,
//! lock-free, shared by every worker so a source's budget is global to the
//! process). It only ever sees authenticated requests, so a forger cannot
//! spend a real source's budget.

use std::num::NonZeroU32;
use std::sync::Arc;

use actix::prelude::*;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Bucket};

use crate::auth::Authenticated;
use crate::error::GatewayError;
use crate::sources::SourceConfig;
use crate::stage::{guarded, Traced};

/// One source's token bucket. It lives in the source's entry of the live
/// source table (`reload::SourceEntry`), so a request always finds the
/// bucket of the settings it was served with; a reload that leaves the
/// source's rate unchanged hands the bucket (and the budget it has used) on.
pub struct SourceBucket {
    rate: (u32, u32),
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for SourceBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceBucket")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl SourceBucket {
    /// `source`'s bucket: `previous` if its rate is the same, else a full
    /// new one.
    pub fn for_source(source: &SourceConfig, previous: Option<&Arc<SourceBucket>>) -> Arc<Self> {
        let rate = (source.rate_limit_rps, source.rate_limit_burst);
        if let Some(kept) = previous.filter(|b| b.rate == rate) {
            return kept.clone();
        }
        let rps = NonZeroU32::new(rate.0).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.1).unwrap_or(NonZeroU32::MIN);
        Arc::new(SourceBucket {
            rate,
            limiter: Bucket::direct(Quota::per_second(rps).allow_burst(burst)),
        })
    }

    fn check(&self) -> Result<(), GatewayError> {
        self.limiter
            .check()
            .map_err(|not_until| GatewayError::RateLimited {
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            })
    }
}

/// Message in: an authenticated request asking to go on, with its source's
/// bucket.
#[derive(Message)]
#[rtype(result = "Result<Admitted, GatewayError>")]
pub struct Admit(pub Authenticated, pub Arc<SourceBucket>);

/// Message out: a request within its source's rate. Only the rate limiter
/// makes one (the field is private).
pub struct Admitted(Authenticated);

impl Admitted {
    pub fn into_inner(self) -> Authenticated {
        self.0
    }
}

/// One rate limiter per HTTP worker; the buckets are shared, each in its
/// source's entry of the live table.
pub struct RateLimiter;

crate::stage::stage_actor!(RateLimiter);

impl Handler<Traced<Admit>> for RateLimiter {
    type Result = Result<Admitted, GatewayError>;

    fn handle(&mut self, msg: Traced<Admit>, ctx: &mut Context<Self>) -> Self::Result {
        let Traced(msg, span) = msg;
        let _in = span.entered();
        guarded(ctx, "rate_limiter", move || {
            msg.1.check()?;
            Ok(Admitted(msg.0))
        })
    }
}
