//! The rate limiter stage: one token bucket per source (`governor`'s GCRA,
//! lock-free, shared by every worker so a source's budget is global to the
//! process). It only ever sees authenticated requests, so a forger cannot
//! spend a real source's budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Bucket};

use crate::auth::Authenticated;
use crate::config::SourceConfig;
use crate::error::GatewayError;
use crate::ids::SourceId;
use crate::stage::{guarded, MAILBOX_CAPACITY};

/// Every source's bucket, built once from the settings.
pub struct Buckets {
    by_source: HashMap<SourceId, DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl Buckets {
    pub fn new<'a>(sources: impl IntoIterator<Item = &'a Arc<SourceConfig>>) -> Arc<Self> {
        let by_source = sources
            .into_iter()
            .map(|s| {
                let rps = NonZeroU32::new(s.rate_limit_rps).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(s.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
                (
                    s.id.clone(),
                    Bucket::direct(Quota::per_second(rps).allow_burst(burst)),
                )
            })
            .collect();
        Arc::new(Buckets {
            by_source,
            clock: DefaultClock::default(),
        })
    }

    fn check(&self, source: &SourceId) -> Result<(), GatewayError> {
        let Some(bucket) = self.by_source.get(source) else {
            // Every allowed source has a bucket; anything else never got here.
            return Err(GatewayError::Forbidden {
                code: "source_not_allowed",
                message: "source is not allowed".into(),
            });
        };
        bucket
            .check()
            .map_err(|not_until| GatewayError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }
}

/// Message in: an authenticated request asking to go on.
#[derive(Message)]
#[rtype(result = "Result<Admitted, GatewayError>")]
pub struct Admit(pub Authenticated);

/// Message out: a request within its source's rate.
pub struct Admitted(pub Authenticated);

/// One rate limiter per HTTP worker; the buckets are shared.
pub struct RateLimiter {
    buckets: Arc<Buckets>,
}

impl RateLimiter {
    pub fn new(buckets: Arc<Buckets>) -> Self {
        RateLimiter { buckets }
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for RateLimiter {}

impl Handler<Admit> for RateLimiter {
    type Result = Result<Admitted, GatewayError>;

    fn handle(&mut self, msg: Admit, ctx: &mut Context<Self>) -> Self::Result {
        let buckets = self.buckets.clone();
        guarded(ctx, "rate_limiter", move || {
            buckets.check(&msg.0.source.id)?;
            Ok(Admitted(msg.0))
        })
    }
}
