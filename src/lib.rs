//! at-gateway: the trusted ingress for trading signals.
//!
//! Webhooks in (TradingView alerts, HMAC-signed custom sources), canonical
//! signals out on NATS JetStream, and a 2xx only for what JetStream has
//! acknowledged. `ARCHITECTURE.md` walks one request through the stages:
//!
//! - [`ingress`]: HTTP routes and the reception stage;
//! - [`auth`]: the authenticator stage (signatures, tokens, replay);
//! - [`ratelimit`]: the per-source rate limiter stage;
//! - [`idempotency`]: duplicate detection;
//! - [`normalize`]: the normalizer stage and the canonical signal;
//! - [`publish`]: the publisher stage, JetStream and NATS health.

pub mod app;
pub mod auth;
pub mod claims;
pub mod cli;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod ingress;
pub mod lanes;
pub mod normalize;
pub mod pipeline;
pub mod publish;
pub mod ratelimit;
pub mod records;
pub mod reload;
pub mod sources;
pub mod stage;
pub mod telemetry;
pub mod tls;

pub use app::Application;
pub use config::Settings;
