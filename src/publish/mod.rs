//! The publisher stage: puts messages into JetStream and says when they are
//! acknowledged. This is where the gateway fails closed.
//!
//! A request's messages take places in a bounded buffer (all workers share
//! `nats.buffer_capacity` places; none free → 503 at once). A background
//! delivery then publishes them with their `Nats-Msg-Id` and awaits the
//! acks, re-publishing what was not acknowledged (JetStream drops the
//! duplicates) while NATS is unreachable, until the message window (30 s)
//! runs out; then it gives up and the request fails. It never reports
//! success for a message JetStream has not acknowledged.
//!
//! The request itself waits only its source's cap (TradingView: < 3 s) and
//! answers 503 when that passes; its messages may still land inside their
//! window, which the idempotency key makes harmless for the retry.

pub mod connection;
pub mod envelope;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::NatsSettings;
use crate::error::GatewayError;
use crate::lanes::{LaneSettings, Priority};
use crate::stage::{guarded, MAILBOX_CAPACITY};
use crate::telemetry::metrics;
use connection::NatsHealth;

/// First pause between re-publish attempts; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);
/// How often a delivery checks for a connection while NATS is down.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

/// One message to store.
#[derive(Clone)]
pub struct Outbound {
    pub subject: String,
    pub msg_id: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Message in: messages to store, in order, all or nothing.
#[derive(Message)]
#[rtype(result = "Result<PublishTicket, GatewayError>")]
pub struct Publish {
    pub messages: Vec<Outbound>,
    /// The source's lane: how much of the buffer it may fill.
    pub priority: Priority,
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
}

/// The shared buffer: one place per message awaiting an ack.
pub struct Buffer {
    places: Arc<Semaphore>,
    capacity: usize,
    lanes: LaneSettings,
}

impl Buffer {
    pub fn new(capacity: usize, lanes: LaneSettings) -> Arc<Self> {
        metrics().buffer_capacity.set(capacity as i64);
        Arc::new(Buffer {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
            lanes,
        })
    }

    /// Takes `n` places if the lane's share allows: a lower lane leaves the
    /// last places to higher ones. (The check and the take are two steps, so
    /// concurrent takers may pass a share by a few places; the total never.)
    fn take(&self, n: usize, priority: Priority) -> Option<BufferPlaces> {
        let in_use = self.capacity - self.places.available_permits();
        if in_use + n > self.lanes.limit(self.capacity, priority) {
            return None;
        }
        let permit = self.places.clone().try_acquire_many_owned(n as u32).ok()?;
        metrics().buffer_depth.add(n as i64);
        Some(BufferPlaces { _permit: permit, n })
    }
}

/// Places held in the buffer; freed on drop.
struct BufferPlaces {
    _permit: OwnedSemaphorePermit,
    n: usize,
}

impl Drop for BufferPlaces {
    fn drop(&mut self) {
        metrics().buffer_depth.sub(self.n as i64);
    }
}

/// One publisher per HTTP worker, publishing through that worker's own
/// NATS connection (made on the worker's thread, see `app.rs`).
pub struct Publisher {
    settings: NatsSettings,
    js: jetstream::Context,
    buffer: Arc<Buffer>,
    health: Arc<NatsHealth>,
}

impl Publisher {
    pub fn new(
        settings: NatsSettings,
        js: jetstream::Context,
        buffer: Arc<Buffer>,
        health: Arc<NatsHealth>,
    ) -> Self {
        Publisher {
            settings,
            js,
            buffer,
            health,
        }
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for Publisher {}

impl Handler<Publish> for Publisher {
    type Result = Result<PublishTicket, GatewayError>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        let js = self.js.clone();
        let buffer = self.buffer.clone();
        let health = self.health.clone();
        let window = Duration::from_secs(self.settings.message_window_sec);
        let ack_timeout = Duration::from_millis(self.settings.ack_timeout_ms);
        guarded(ctx, "publisher", move || {
            let places = buffer
                .take(msg.messages.len(), msg.priority)
                .ok_or_else(|| {
                    GatewayError::unavailable(
                    "buffer_full",
                    "the publish buffer is full while NATS is slow or unreachable; retry shortly",
                )
                })?;
            let (tx, rx) = oneshot::channel();
            let deadline = Instant::now() + window;
            actix_rt::spawn(async move {
                let outcome = deliver(&js, &msg.messages, deadline, ack_timeout, &health).await;
                drop(places);
                let _ = tx.send(outcome);
            });
            Ok(PublishTicket(rx))
        })
    }
}

/// Publishes `messages` in order until each is acknowledged or `deadline`
/// passes. Re-publishing is safe: each message keeps its `Nats-Msg-Id`.
async fn deliver(
    js: &jetstream::Context,
    messages: &[Outbound],
    deadline: Instant,
    ack_timeout: Duration,
    health: &NatsHealth,
) -> Result<(), Undelivered> {
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::from("NATS unreachable");
    loop {
        // While this worker's connection is down, wait for it instead of
        // queueing more copies into the client.
        while js.client().connection_state() != async_nats::connection::State::Connected {
            if Instant::now() + RECONNECT_POLL >= deadline {
                return Err(Undelivered::WindowExpired(last_error));
            }
            tokio::time::sleep(RECONNECT_POLL).await;
        }
        let mut in_flight = Vec::with_capacity(pending.len());
        let mut failed = Vec::new();
        for &i in &pending {
            let m = &messages[i];
            let publish = PublishMessage::build()
                .payload(m.payload.clone())
                .headers(m.headers.clone())
                .message_id(&m.msg_id);
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, js.send_publish(m.subject.clone(), publish)).await
            {
                Ok(Ok(ack)) => in_flight.push((i, ack, Instant::now())),
                Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    count(&m.subject, "too_large");
                    tracing::error!(subject = %m.subject, error = %e,
                        "message exceeds the NATS server's max_payload; raise it (see README)");
                    return Err(Undelivered::TooLarge(e.to_string()));
                }
                Ok(Err(e)) => {
                    last_error = e.to_string();
                    count(&m.subject, "error");
                    failed.push(i);
                }
                Err(_) => {
                    count(&m.subject, "timeout");
                    failed.push(i);
                }
            }
        }
        for (i, ack, sent) in in_flight {
            let subject = &messages[i].subject;
            // The ack future times out by itself after `ack_timeout` (the
            // context's timeout, see `connection::jetstream`); a timer of our
            // own is only needed when the window ends sooner.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let acked = if remaining >= ack_timeout {
                Ok(ack.await)
            } else {
                tokio::time::timeout(remaining, ack.into_future()).await
            };
            match acked {
                Ok(Ok(ack)) => {
                    health.ack_ok();
                    count(subject, if ack.duplicate { "duplicate" } else { "ok" });
                    metrics()
                        .nats_publish_duration
                        .with_label_values(&[subject])
                        .observe(sent.elapsed().as_secs_f64());
                }
                Ok(Err(e)) => {
                    last_error = e.to_string();
                    match e.kind() {
                        PublishErrorKind::TimedOut => {
                            health.ack_timed_out();
                            count(subject, "timeout");
                        }
                        // "No responders": the stream is gone or its leader is
                        // being elected (NATS restart) — temporary.
                        PublishErrorKind::StreamNotFound => {
                            health.stream_missing();
                            count(subject, "no_stream");
                        }
                        _ => count(subject, "error"),
                    }
                    failed.push(i);
                }
                Err(_) => {
                    last_error = "acknowledgement timed out".into();
                    health.ack_timed_out();
                    count(subject, "timeout");
                    failed.push(i);
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_unstable(); // keep the original order on re-publish
        pending = failed;
        if Instant::now() + backoff >= deadline {
            return Err(Undelivered::WindowExpired(last_error));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn count(subject: &str, status: &str) {
    metrics()
        .nats_publish
        .with_label_values(&[subject, status])
        .inc();
}
