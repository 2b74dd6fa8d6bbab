//! What every stage actor shares: how it is called on the hot path and how
//! it survives a panic.
//!
//! Calls use `send` with a timeout, never `do_send` (which ignores the
//! mailbox bound): a full mailbox makes `send` wait, and the timeout turns
//! that wait into a 503 instead of an unbounded queue. A handler that panics
//! answers its request with 503, stops the actor, and its `Supervisor`
//! restarts it; queued messages are then served by the restarted actor.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use crate::error::GatewayError;

/// How long a request waits for a stage to take and answer its message.
/// Stages answer in microseconds; reaching this means the mailbox is full
/// or the actor is restarting, and the request gets 503.
pub const STAGE_TIMEOUT: Duration = Duration::from_millis(500);

/// Mailbox capacity of each per-worker stage actor. Requests beyond it wait
/// (up to `STAGE_TIMEOUT`) for room, then get 503.
pub const MAILBOX_CAPACITY: usize = 4096;

/// Sends `msg` to a stage and maps every mailbox failure to 503.
pub async fn call<A, M, T>(addr: &Addr<A>, msg: M, stage: &'static str) -> Result<T, GatewayError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<T, GatewayError>> + Send + 'static,
    T: Send + 'static,
{
    call_within(addr, msg, stage, STAGE_TIMEOUT).await
}

/// [`call`] with its own bound, for a stage whose answer takes longer
/// (reception waits for JetStream).
pub async fn call_within<A, M, T>(
    addr: &Addr<A>,
    msg: M,
    stage: &'static str,
    bound: Duration,
) -> Result<T, GatewayError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<T, GatewayError>> + Send + 'static,
    T: Send + 'static,
{
    match addr.send(msg).timeout(bound).await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(stage, error = %e, "stage did not answer");
            Err(GatewayError::stage_unavailable(stage))
        }
    }
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

    impl Handler<Work> for Fragile {
        type Result = Result<u32, GatewayError>;
        fn handle(&mut self, msg: Work, ctx: &mut Context<Self>) -> Self::Result {
            guarded(ctx, "fragile", || {
                if msg.0 {
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
