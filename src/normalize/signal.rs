//! The two message formats the gateway publishes, mirrored by the JSON
//! Schemas in `schemas/` (tests validate every published message against
//! them). Prices and quantities are decimal strings, never floats.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `schema` value of a normalized signal; bump with the schema file.
pub const NORMALIZED_SCHEMA: &str = "signal.normalized.v1";
/// `schema` value of a raw envelope.
pub const RAW_SCHEMA: &str = "signal.raw.v1";
/// `schema` value of a dead-letter record.
pub const DLQ_SCHEMA: &str = "signal.dlq.v1";

/// What the signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Buy,
    Sell,
    /// Close the whole position, whichever side.
    Close,
    CloseLong,
    CloseShort,
    /// Cancel open orders.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketPosition {
    Long,
    Short,
    Flat,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instrument {
    pub symbol: String,
    pub exchange: Option<String>,
}

/// TradingView strategy context, when the alert came from a strategy.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Strategy {
    pub name: Option<String>,
    pub order_id: Option<String>,
    pub comment: Option<String>,
    pub position_size: Option<String>,
    pub market_position: Option<MarketPosition>,
    pub prev_market_position: Option<MarketPosition>,
}

impl Strategy {
    pub fn is_empty(&self) -> bool {
        *self == Strategy::default()
    }
}

/// The canonical signal published on `signals.normalized`.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedSignal {
    pub schema: &'static str,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: &'static str,
    /// Which adapter read the payload.
    pub format: &'static str,
    pub received_at: String,
    /// When the sender says the signal happened (its `time` field).
    pub asserted_at: Option<String>,
    pub instrument: Instrument,
    pub action: Action,
    pub quantity: Option<String>,
    pub price: Option<String>,
    pub order_type: Option<OrderType>,
    pub stop_loss: Option<String>,
    pub take_profit: Option<String>,
    pub strategy: Option<Strategy>,
    pub interval: Option<String>,
    /// Every input field the normalizer did not map, kept as sent.
    pub extra: Map<String, Value>,
}

/// The envelope published on `signals.raw`: the body exactly as received
/// (tokens redacted), with who sent it and when.
#[derive(Debug, Clone, Serialize)]
pub struct RawEnvelope {
    pub schema: &'static str,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: &'static str,
    pub received_at: String,
    pub auth_scheme: &'static str,
    pub key_id: Option<String>,
    pub idempotency_key: String,
    pub content_type: Option<String>,
    /// `utf8` when the body is text, else `base64`.
    pub body_encoding: &'static str,
    pub body: String,
}

/// The record published on `signals.dlq` for a payload that did not
/// normalize (read back by `at-gateway dlq`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema: Cow<'static, str>,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub received_at: String,
    pub reasons: Vec<String>,
    /// Subject and `Nats-Msg-Id` of the raw event, to find and replay it.
    pub raw_subject: String,
    pub raw_msg_id: String,
}
