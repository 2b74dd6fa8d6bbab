//! The rate limiter stage: one token bucket per source (`governor`'s GCRA,
//! lock-free, shared by every worker so a source's budget is global to the
//! process). It only ever sees authenticated requests, so a forger cannot
//! spend a real source's budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Bucket};

use crate::auth::Authenticated;
use crate::config::SourceConfig;
use crate::error::GatewayError;
use crate::ids::SourceId;
use crate::stage::{guarded, MAILBOX_CAPACITY};

/// Every source's bucket. Rebuilt when sources are reloaded; a source whose
/// rate did not change keeps its bucket (and the budget it has used).
pub struct Buckets {
    by_source: HashMap<SourceId, SourceBucket>,
    clock: DefaultClock,
}

struct SourceBucket {
    rate: (u32, u32),
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// The buckets in force, swapped as a whole on reload.
pub type LiveBuckets = Arc<ArcSwap<Buckets>>;

impl Buckets {
    pub fn new<'a>(sources: impl IntoIterator<Item = &'a Arc<SourceConfig>>) -> Arc<Self> {
        Self::build(None, sources)
    }

    /// The buckets for `sources`, reusing this table's unchanged ones.
    pub fn rebuilt<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a Arc<SourceConfig>>,
    ) -> Arc<Self> {
        Self::build(Some(self), sources)
    }

    fn build<'a>(
        previous: Option<&Buckets>,
        sources: impl IntoIterator<Item = &'a Arc<SourceConfig>>,
    ) -> Arc<Self> {
        let by_source = sources
            .into_iter()
            .map(|s| {
                let rate = (s.rate_limit_rps, s.rate_limit_burst);
                let kept = previous
                    .and_then(|p| p.by_source.get(&s.id))
                    .filter(|b| b.rate == rate)
                    .map(|b| b.limiter.clone());
                let limiter = kept.unwrap_or_else(|| {
                    let rps = NonZeroU32::new(rate.0).unwrap_or(NonZeroU32::MIN);
                    let burst = NonZeroU32::new(rate.1).unwrap_or(NonZeroU32::MIN);
                    Arc::new(Bucket::direct(Quota::per_second(rps).allow_burst(burst)))
                });
                (s.id.clone(), SourceBucket { rate, limiter })
            })
            .collect();
        Arc::new(Buckets {
            by_source,
            clock: DefaultClock::default(),
        })
    }

    fn check(&self, source: &SourceId) -> Result<(), GatewayError> {
        let Some(bucket) = self.by_source.get(source).map(|b| &b.limiter) else {
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
    buckets: LiveBuckets,
}

impl RateLimiter {
    pub fn new(buckets: LiveBuckets) -> Self {
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
        let buckets = self.buckets.load_full();
        guarded(ctx, "rate_limiter", move || {
            buckets.check(&msg.0.source.id)?;
            Ok(Admitted(msg.0))
        })
    }
}
