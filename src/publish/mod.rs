//! The publisher stage: puts messages into JetStream and says when they are
//! acknowledged. This is where the gateway fails closed.
//!
//! Two limits, which the seed's single 1000-message buffer merged:
//! - **in flight** (`nats.max_in_flight_messages`, 8192, shared by every
//!   worker): messages published and awaiting their ack while NATS is
//!   healthy. A bar-close burst of thousands of alerts lives here; the bound
//!   is memory's, and reaching it is 503 `overloaded` at once.
//! - **waiting** (`nats.buffer_capacity`, 1000): messages that wait for NATS
//!   to come back — a request arriving while this worker's connection is
//!   down, or a delivery whose publish or ack failed and must be retried.
//!   A new request that finds no waiting place gets 503 `buffer_full` at
//!   once; a delivery that finds none gives up at once (its request 503).
//!   So while NATS is unreachable at most `buffer_capacity` messages wait,
//!   each for at most the message window (30 s).
//!
//! A background delivery publishes a request's messages with their
//! `Nats-Msg-Id` and awaits the acks, re-publishing what was not
//! acknowledged (JetStream drops the duplicates) until the message window
//! runs out; then it gives up and the request fails. It never reports
//! success for a message JetStream has not acknowledged.
//!
//! The request itself waits only its source's cap (TradingView: < 3 s) and
//! answers 503 when that passes; its messages may still land inside their
//! window, which the idempotency key makes harmless for the retry.

mod batch;
pub mod connection;
mod resume;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use async_nats::jetstream::{
    self,
    context::{PublishError, PublishErrorKind},
    message::PublishMessage,
};
use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::NatsSettings;
use crate::error::{Code, GatewayError};
use crate::lanes::{LaneSettings, Priority};
pub use crate::records::Outbound;
use crate::stage::{guarded, Traced};
use crate::telemetry::{metrics, PublishMetrics, PublishStatus};
use connection::NatsHealth;
use tracing::Instrument;

/// First pause between re-publish attempts; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);
/// How often a delivery checks for a connection while NATS is down.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

/// Message in: messages to store, in order, all or nothing.
#[derive(Message)]
#[rtype(result = "Result<PublishTicket, GatewayError>")]
pub struct Publish {
    pub messages: Vec<Outbound>,
    /// The first `claims` messages are claims (`claims/batch.rs`): when
    /// there are any, every message goes in one atomic batch.
    pub claims: usize,
    /// The source's lane: how much of the buffer it may fill.
    pub priority: Priority,
    /// When these messages continue the signal of a gateway that crashed
    /// while publishing it: when that gateway claimed the key (Unix ms).
    /// The messages already in the stream are then not published again
    /// (`resume.rs`).
    pub resumed_from_ms: Option<u64>,
}

/// Message out: resolves once every message is acknowledged, or fails
/// when the window runs out.
pub struct PublishTicket(pub oneshot::Receiver<Result<(), Undelivered>>);

/// Why messages were not stored.
#[derive(Debug, Clone)]
pub enum Undelivered {
    /// The window ran out before JetStream acknowledged every message.
    WindowExpired(String),
    /// A message is larger than the server's `max_payload`; retrying cannot help.
    TooLarge(String),
    /// Claim `index` of the batch is held by another request, whose claim
    /// message is `stored`; nothing of this batch was stored.
    Claimed { index: usize, stored: Bytes },
}

/// A bounded pool of message places, shared by every worker and split by
/// priority lane (a lower lane leaves the last places to higher ones).
struct Pool {
    places: Arc<Semaphore>,
    capacity: usize,
    gauge: fn() -> &'static prometheus::IntGauge,
}

impl Pool {
    fn new(capacity: usize, gauge: fn() -> &'static prometheus::IntGauge) -> Self {
        Pool {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
            gauge,
        }
    }

    /// Takes `n` places if the lane's share allows. (The check and the take
    /// are two steps, so concurrent takers may pass a share by a few places;
    /// the total never.)
    fn take(&self, n: usize, priority: Priority, lanes: &LaneSettings) -> Option<Places> {
        let in_use = self.capacity - self.places.available_permits();
        if in_use + n > lanes.limit(self.capacity, priority) {
            return None;
        }
        let permit = self.places.clone().try_acquire_many_owned(n as u32).ok()?;
        (self.gauge)().add(n as i64);
        Some(Places {
            _permit: permit,
            n,
            gauge: self.gauge,
        })
    }
}

/// The publisher's two limits (see the module's head).
pub struct Buffer {
    in_flight: Pool,
    waiting: Pool,
    lanes: LaneSettings,
}

impl Buffer {
    /// `waiting`: `nats.buffer_capacity`; `in_flight`:
    /// `nats.max_in_flight_messages`.
    pub fn new(waiting: usize, in_flight: usize, lanes: LaneSettings) -> Arc<Self> {
        metrics().buffer_capacity.set(waiting as i64);
        Arc::new(Buffer {
            in_flight: Pool::new(in_flight, || &metrics().in_flight_messages),
            waiting: Pool::new(waiting, || &metrics().buffer_depth),
            lanes,
        })
    }

    fn in_flight(&self, n: usize, priority: Priority) -> Option<Places> {
        self.in_flight.take(n, priority, &self.lanes)
    }

    fn waiting(&self, n: usize, priority: Priority) -> Option<Places> {
        self.waiting.take(n, priority, &self.lanes)
    }
}

/// Places held in a pool; freed on drop.
struct Places {
    _permit: OwnedSemaphorePermit,
    n: usize,
    gauge: fn() -> &'static prometheus::IntGauge,
}

impl Drop for Places {
    fn drop(&mut self) {
        (self.gauge)().sub(self.n as i64);
    }
}

fn buffer_full() -> GatewayError {
    GatewayError::refused(
        Code::BufferFull,
        "the publish buffer is full while NATS is slow or unreachable; retry shortly",
    )
}

/// One publisher per HTTP worker, publishing through that worker's own
/// NATS connection (made on the worker's thread, see `app.rs`).
pub struct Publisher {
    settings: NatsSettings,
    /// `settings.stream`, shared with each delivery without a copy.
    stream: Arc<str>,
    js: jetstream::Context,
    buffer: Arc<Buffer>,
    health: Arc<NatsHealth>,
    /// Publish counters of the subjects written to.
    metrics: Arc<PublishMetrics>,
}

impl Publisher {
    pub fn new(
        settings: NatsSettings,
        js: jetstream::Context,
        buffer: Arc<Buffer>,
        health: Arc<NatsHealth>,
    ) -> Self {
        let subjects = [
            settings.subject_raw.as_str(),
            &settings.subject_normalized,
            &settings.subject_dlq,
            crate::claims::batch::PREFIX,
        ];
        Publisher {
            metrics: Arc::new(PublishMetrics::new(subjects)),
            stream: settings.stream.as_str().into(),
            settings,
            js,
            buffer,
            health,
        }
    }
}

crate::stage::stage_actor!(Publisher);

impl Handler<Traced<Publish>> for Publisher {
    type Result = Result<PublishTicket, GatewayError>;

    fn handle(&mut self, msg: Traced<Publish>, ctx: &mut Context<Self>) -> Self::Result {
        let Traced(msg, span) = msg;
        let _in = span.entered();
        let js = self.js.clone();
        let stream = self.stream.clone();
        let buffer = self.buffer.clone();
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        let window = Duration::from_secs(self.settings.message_window_sec);
        let ack_timeout = Duration::from_millis(self.settings.ack_timeout_ms);
        guarded(ctx, "publisher", move || {
            let n = msg.messages.len();
            let in_flight = buffer.in_flight(n, msg.priority).ok_or_else(|| {
                GatewayError::refused(
                    Code::Overloaded,
                    "the gateway has as many messages in flight as it may hold; retry shortly",
                )
            })?;
            // Arriving while this worker's connection is down or NATS is not
            // storing (acks timing out, stream missing), the messages wait
            // for NATS from the start: they need waiting places now.
            let waiting = if connected(&js) && health.storing() {
                None
            } else {
                Some(buffer.waiting(n, msg.priority).ok_or_else(buffer_full)?)
            };
            let (tx, rx) = oneshot::channel();
            let deadline = Instant::now() + window;
            let delivery = Delivery {
                js,
                stream,
                buffer,
                health,
                metrics,
                priority: msg.priority,
                deadline,
                ack_timeout,
                waiting,
            };
            let delivered = async move {
                let messages = match msg.resumed_from_ms {
                    None => Ok(msg.messages),
                    Some(claimed_ms) => {
                        let (js, stream) = (&delivery.js, &delivery.stream);
                        resume::unstored(js, stream, msg.messages, claimed_ms, window)
                            .await
                            .map_err(Undelivered::WindowExpired)
                    }
                };
                let outcome = match messages {
                    Ok(messages) => deliver(delivery, &messages, msg.claims).await,
                    Err(e) => Err(e),
                };
                drop(in_flight);
                let _ = tx.send(outcome);
            };
            actix_rt::spawn(delivered.instrument(tracing::Span::current()));
            Ok(PublishTicket(rx))
        })
    }
}

fn connected(js: &jetstream::Context) -> bool {
    js.client().connection_state() == async_nats::connection::State::Connected
}

/// One request's messages on their way to JetStream.
struct Delivery {
    js: jetstream::Context,
    /// The stream, where a refused batch's claims are looked up.
    stream: Arc<str>,
    buffer: Arc<Buffer>,
    health: Arc<NatsHealth>,
    metrics: Arc<PublishMetrics>,
    priority: Priority,
    deadline: Instant,
    ack_timeout: Duration,
    /// Waiting places, taken once the messages must wait for NATS.
    waiting: Option<Places>,
}

impl Delivery {
    fn count(&self, subject: &str, status: PublishStatus) {
        self.metrics.count(subject, status);
    }

    fn observe(&self, subject: &str, sent: Instant) {
        self.metrics.observe(subject, sent.elapsed());
    }

    /// Takes waiting places for `n` messages before waiting for NATS, or
    /// says why the delivery must give up now.
    fn wait_for_nats(&mut self, n: usize, last_error: &str) -> Result<(), Undelivered> {
        if self.waiting.is_none() {
            self.waiting = Some(self.buffer.waiting(n, self.priority).ok_or_else(|| {
                Undelivered::WindowExpired(format!(
                    "{last_error}; the publish buffer is full, so the message cannot wait for NATS"
                ))
            })?);
        }
        Ok(())
    }
}

/// Publishes `messages` in order until each is acknowledged or `deadline`
/// passes. Re-publishing is safe: each message keeps its `Nats-Msg-Id`.
/// Before waiting for NATS (connection down, or a retry after a failure)
/// the messages take waiting places (see the module's head). With
/// `claims`, the messages go as one atomic batch (`batch.rs`), re-sent whole.
async fn deliver(
    mut delivery: Delivery,
    messages: &[Outbound],
    claims: usize,
) -> Result<(), Undelivered> {
    let js = delivery.js.clone();
    let deadline = delivery.deadline;
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::from("NATS unreachable");
    loop {
        // While this worker's connection is down, wait for it instead of
        // queueing more copies into the client.
        if !connected(&js) {
            delivery.wait_for_nats(pending.len(), &last_error)?;
        }
        while !connected(&js) {
            if Instant::now() + RECONNECT_POLL >= deadline {
                return Err(Undelivered::WindowExpired(last_error));
            }
            tokio::time::sleep(RECONNECT_POLL).await;
        }
        pending = if claims > 0 {
            batch::attempt(&delivery, messages, claims, &mut last_error).await?
        } else {
            each(&delivery, messages, &pending, &mut last_error).await?
        };
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() + backoff >= deadline {
            return Err(Undelivered::WindowExpired(last_error));
        }
        delivery.wait_for_nats(pending.len(), &last_error)?;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One attempt at the `pending` messages, each published on its own;
/// answers those still not acknowledged, in their original order.
async fn each(
    delivery: &Delivery,
    messages: &[Outbound],
    pending: &[usize],
    last_error: &mut String,
) -> Result<Vec<usize>, Undelivered> {
    let (js, deadline) = (&delivery.js, delivery.deadline);
    let mut in_flight = Vec::with_capacity(pending.len());
    let mut failed = Vec::new();
    for &i in pending {
        let m = &messages[i];
        let publish = PublishMessage::build()
            .payload(m.payload.clone())
            .headers(m.headers.clone())
            .message_id(&m.msg_id);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, js.send_publish(m.subject.clone(), publish)).await {
            Ok(Ok(ack)) => in_flight.push((i, ack, Instant::now())),
            Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                return Err(too_large(delivery, &m.subject, &e));
            }
            Ok(Err(e)) => {
                *last_error = e.to_string();
                delivery.count(&m.subject, PublishStatus::Error);
                failed.push(i);
            }
            Err(_) => {
                delivery.count(&m.subject, PublishStatus::Timeout);
                failed.push(i);
            }
        }
    }
    for (i, ack, sent) in in_flight {
        let subject = &messages[i].subject;
        match await_ack(delivery, ack).await {
            Ok(ack) => {
                let status = if ack.duplicate {
                    PublishStatus::Duplicate
                } else {
                    PublishStatus::Ok
                };
                delivery.count(subject, status);
                delivery.observe(subject, sent);
            }
            Err(e) => {
                note_failure(delivery, subject, &e);
                *last_error = e.to_string();
                failed.push(i);
            }
        }
    }
    failed.sort_unstable(); // keep the original order on re-publish
    Ok(failed)
}

/// Awaits one ack within the delivery's window. The ack future times out
/// by itself after `ack_timeout` (the context's timeout, see
/// `connection::jetstream`); a timer of our own is only needed when the
/// window ends sooner.
async fn await_ack(
    delivery: &Delivery,
    ack: jetstream::context::PublishAckFuture,
) -> Result<jetstream::publish::PublishAck, PublishError> {
    let remaining = delivery.deadline.saturating_duration_since(Instant::now());
    let acked = if remaining >= delivery.ack_timeout {
        ack.await
    } else {
        tokio::time::timeout(remaining, ack.into_future())
            .await
            .unwrap_or_else(|_| Err(PublishError::new(PublishErrorKind::TimedOut)))
    };
    if acked.is_ok() {
        delivery.health.ack_ok();
    }
    acked
}

/// Counts a failed ack and tells the health state what it means.
fn note_failure(delivery: &Delivery, subject: &str, e: &PublishError) {
    match e.kind() {
        PublishErrorKind::TimedOut => {
            delivery.health.ack_timed_out();
            delivery.count(subject, PublishStatus::Timeout);
        }
        // "No responders": the stream is gone or its leader is being
        // elected (NATS restart) — temporary.
        PublishErrorKind::StreamNotFound => {
            delivery.health.stream_missing();
            delivery.count(subject, PublishStatus::NoStream);
        }
        _ => delivery.count(subject, PublishStatus::Error),
    }
}

fn too_large(delivery: &Delivery, subject: &str, e: &dyn std::fmt::Display) -> Undelivered {
    delivery.count(subject, PublishStatus::TooLarge);
    tracing::error!(%subject, error = %e,
        "message exceeds the NATS server's max_payload; raise it (see README)");
    Undelivered::TooLarge(e.to_string())
}
