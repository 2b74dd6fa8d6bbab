//! What every stage actor shares: how it is called on the hot path and how
//! it survives a panic.
//!
//! Calls use `send`, never `do_send` (which ignores the mailbox bound): a
//! full mailbox makes `send` wait. How that wait is bounded depends on the
//! stage:
//! - A stage that answers synchronously (rate limiter, normalizer,
//!   publisher) is called with [`call`], without a timer of its own: it runs
//!   on the request's worker thread and answers as soon as it is polled, and
//!   the request's one deadline (reception's ack cap, counted from arrival)
//!   turns a wait for mailbox room into a 503. A timer per hop cost a
//!   timer-wheel registration each, for a wait that is never long.
//! - A stage that waits on NATS (the authenticator claims the nonce in a
//!   JetStream bucket) is called with [`call_within`] and [`STAGE_TIMEOUT`],
//!   so that while NATS stalls a request gets its 503 in half a second
//!   instead of at its ack cap.
//!
//! A handler that panics answers its request with 503, stops the actor, and
//! its `Supervisor` restarts it; queued messages are then served by the
//! restarted actor.
//!
//! Every call carries the caller's tracing span ([`Traced`]): the request's
//! span, opened by ingress with its `corr_id` and source, so a line a stage
//! logs while serving a request says which request it was.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use crate::error::GatewayError;

/// How long a request waits for a stage that waits on NATS (the
/// authenticator's nonce claim). Reaching it means NATS is stalled (or the
/// mailbox full), and the request gets 503 `stage_unavailable`.
pub const STAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// Mailbox capacity of each per-worker stage actor. Requests beyond it wait
/// for room, within their bound.
pub const MAILBOX_CAPACITY: usize = 4096;

/// Makes a type a stage actor: its mailbox holds [`MAILBOX_CAPACITY`]
/// messages (a full mailbox makes `send` wait, within the request's bound)
/// and a `Supervisor` restarts it after a panic. Every stage is set up so,
/// with this one line beside its type.
macro_rules! stage_actor {
    ($actor:ty) => {
        impl ::actix::Actor for $actor {
            type Context = ::actix::Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                ctx.set_mailbox_capacity($crate::stage::MAILBOX_CAPACITY);
            }
        }

        impl ::actix::Supervised for $actor {}
    };
}
pub(crate) use stage_actor;

/// A stage message with the span of the request it serves. The handler
/// enters the span (and instruments any future it returns or spawns with it).
pub struct Traced<M>(pub M, pub tracing::Span);

impl<M: Message> Message for Traced<M> {
    type Result = M::Result;
}

/// Sends `msg` to a stage that answers synchronously and maps every mailbox
/// failure (the actor stopped and is being restarted) to 503. The caller's
/// deadline bounds the wait.
pub async fn call<A, M, T>(addr: &Addr<A>, msg: M, stage: &'static str) -> Result<T, GatewayError>
where
    A: Actor + Handler<Traced<M>>,
    A::Context: ToEnvelope<A, Traced<M>>,
    M: Message<Result = Result<T, GatewayError>> + Send + 'static,
    T: Send + 'static,
{
    answer(
        addr.send(Traced(msg, tracing::Span::current())).await,
        stage,
    )
}

/// [`call`] with its own bound, for a stage whose answer waits on NATS.
pub async fn call_within<A, M, T>(
    addr: &Addr<A>,
    msg: M,
    stage: &'static str,
    bound: Duration,
) -> Result<T, GatewayError>
where
    A: Actor + Handler<Traced<M>>,
    A::Context: ToEnvelope<A, Traced<M>>,
    M: Message<Result = Result<T, GatewayError>> + Send + 'static,
    T: Send + 'static,
{
    let msg = Traced(msg, tracing::Span::current());
    answer(addr.send(msg).timeout(bound).await, stage)
}

fn answer<T>(
    sent: Result<Result<T, GatewayError>, MailboxError>,
    stage: &'static str,
) -> Result<T, GatewayError> {
    sent.unwrap_or_else(|e| {
        tracing::warn!(stage, error = %e, "stage did not answer");
        Err(GatewayError::stage_unavailable(stage))
    })
}

/// Runs a handler body; a panic becomes a 503 for this request and a
/// restart of the actor (by its supervisor).
pub fn guarded<A, T>(
    ctx: &mut Context<A>,
    stage: &'static str,
    body: impl FnOnce() -> Result<T, GatewayError>,
) -> Result<T, GatewayError>
where
    A: Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(stage, panic = %what, "stage panicked; restarting it");
            crate::telemetry::metrics()
                .stage_restarts
                .with_label_values(&[stage])
                .inc();
            ctx.stop();
            Err(GatewayError::stage_unavailable(stage))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that panics on demand, to prove the mechanism.
    struct Fragile;
    impl Actor for Fragile {
        type Context = Context<Self>;
    }
    impl Supervised for Fragile {}

    #[derive(Message)]
    #[rtype(result = "Result<u32, GatewayError>")]
    struct Work(bool);

    impl Handler<Traced<Work>> for Fragile {
        type Result = Result<u32, GatewayError>;
        fn handle(&mut self, msg: Traced<Work>, ctx: &mut Context<Self>) -> Self::Result {
            let Traced(Work(panics), _span) = msg;
            guarded(ctx, "fragile", || {
                if panics {
                    panic!("boom");
                }
                Ok(1)
            })
        }
    }

    #[actix_rt::test]
    async fn a_panicking_stage_answers_503_and_is_restarted() {
        let addr = Supervisor::start(|_| Fragile);
        let err = call(&addr, Work(true), "fragile").await.unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(call(&addr, Work(false), "fragile").await.unwrap(), 1);
    }
}
