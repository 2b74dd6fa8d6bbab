//! The pipeline: one request's path through the stages, from a webhook
//! whose body has been read to its answer. `ingress/` hands it a
//! [`Receive`] and answers with what comes back; the steps themselves are
//! in `steps.rs`, in the order a request takes them:
//!
//! ```text
//! authenticate → admit → normalize → claim the key → records → publish → settle
//! ```
//!
//! Once the publisher has the messages, the request's nonce and
//! idempotency key belong to the delivery: they are committed when
//! JetStream acknowledges and released if the delivery fails, whether or
//! not the request is still waiting. So a 503 whose signal never landed
//! leaves nothing behind that could make its retry a 409.

mod steps;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tracing::Instrument;

use crate::auth::{Authenticator, Credentials};
use crate::config::NatsSettings;
use crate::error::{Code, GatewayError};
use crate::idempotency::IdempotencyStore;
use crate::ids::{CorrId, EventId};
use crate::normalize::Normalizer;
use crate::publish::{Publisher, Undelivered};
use crate::ratelimit::{RateLimiter, SourceBucket};
use crate::sources::SourceConfig;
use crate::stage::Traced;
use crate::telemetry::SourceMetrics;

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

/// The reception stage, one per HTTP worker: runs the pipeline for each
/// request it receives and decides the answer.
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

crate::stage::stage_actor!(Reception);

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
            // One timer bounds the whole request. Until the publisher has the
            // messages, dropping the future (on timeout) releases the nonce and
            // the key: nothing was published. After that, the claims follow the
            // delivery (see `steps::settle`), whether or not the request still waits.
            let answered = tokio::time::timeout_at(deadline, async {
                let mut prepared = steps::prepare(&stages, &idempotency, &nats, msg).await?;
                let delivered = (&mut prepared.delivery).await;
                Ok::<_, GatewayError>((prepared, delivered))
            });
            let (prepared, delivered) = answered.await.map_err(|_| timed_out())??;
            answer(prepared, delivered)
        };
        Box::pin(served.instrument(span))
    }
}

fn timed_out() -> GatewayError {
    GatewayError::refused(
        Code::PublishTimeout,
        "JetStream did not acknowledge in time; retry with the same idempotency key \
         (the signal may still be stored, and a retry will not duplicate it)",
    )
}

/// The answer to a request whose delivery has ended.
fn answer(
    prepared: steps::Prepared,
    delivered: Result<Result<(), Undelivered>, tokio::sync::oneshot::error::RecvError>,
) -> Result<Accepted, GatewayError> {
    match delivered {
        Ok(Ok(())) => match prepared.rejected {
            None => Ok(Accepted {
                event_id: prepared.event_id,
                instrument: prepared.instrument,
                key_id: prepared.key_id,
            }),
            Some(reasons) => Err(GatewayError::Unprocessable {
                reasons,
                event_id: prepared.event_id,
            }),
        },
        Ok(Err(Undelivered::Claimed { index, stored })) => Err(prepared.claimed(index, &stored)),
        Ok(Err(Undelivered::TooLarge(_))) => Err(GatewayError::TooLargeForStream),
        Err(_) | Ok(Err(_)) => Err(GatewayError::refused(
            Code::NatsUnavailable,
            "NATS JetStream is unavailable; the signal was not stored, retry later",
        )),
    }
}
