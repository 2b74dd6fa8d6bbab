//! The source model: who may send signals, how each proves it, and how its
//! payloads are read. Built from the `[sources.<name>]` sections of the
//! configuration (`build.rs`) and served from the live source table
//! (`reload.rs`).
//!
//! This module sits at the bottom of the dependency order with `ids` and
//! `lanes`: configuration depends on it, it depends on no stage.

mod build;
pub mod registry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::ids::SourceId;
use crate::lanes::Priority;

pub use build::{build_source, parse_nets, SourceDefaults, SourceSection};

/// The prefix of a Standard Webhooks secret.
pub const WHSEC_PREFIX: &str = "whsec_";

/// TradingView cancels a webhook after about 3 s; a TradingView source must
/// answer before that, so its acknowledgement cap must stay below this.
pub const TRADINGVIEW_MAX_ACK_WAIT: Duration = Duration::from_millis(2900);

/// The client certificate a source requires: verified against
/// `tls.client_ca_file`, with this subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertRule {
    pub common_name: String,
    pub organization: Option<String>,
}

/// Which adapter reads a source's payloads (`sources.<name>.format`).
/// `auto` (the default) picks by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum FormatChoice {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// The normalized schema's own field names.
    #[serde(rename = "canonical")]
    Canonical,
    /// Generic JSON alert templates and plain text (TradingView's own).
    #[serde(rename = "template")]
    Template,
    #[serde(rename = "3commas")]
    ThreeCommas,
    #[serde(rename = "traderspost")]
    TradersPost,
    #[serde(rename = "pineconnector")]
    PineConnector,
    #[serde(rename = "alertatron")]
    Alertatron,
    #[serde(rename = "wundertrading")]
    WunderTrading,
    #[serde(rename = "okx")]
    Okx,
    #[serde(rename = "autoview")]
    AutoView,
    #[serde(rename = "exchange-bot", alias = "binance", alias = "bybit")]
    ExchangeBot,
    #[serde(rename = "pickmytrade")]
    PickMyTrade,
    #[serde(rename = "finandy")]
    Finandy,
    #[serde(rename = "octobot")]
    OctoBot,
    #[serde(rename = "tradingconnector")]
    TradingConnector,
    #[serde(rename = "metaapi")]
    MetaApi,
}

/// A per-source mapping of a vendor's JSON onto the canonical signal
/// (`[sources.<name>.mapping]`): each field is a JSON pointer (RFC 6901)
/// into the body. Applied by `normalize/mapping.rs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    pub symbol: String,
    pub action: String,
    pub exchange: Option<String>,
    /// Vendor action values to canonical actions (`buy`, `sell`, `close`,
    /// `close_long`, `close_short`, `cancel`); a value not listed is 422.
    #[serde(default)]
    pub action_values: BTreeMap<String, String>,
    pub size: Option<String>,
    /// The size's unit when it is fixed for the source.
    pub size_unit: Option<String>,
    /// Or a pointer to the vendor's unit field, with `size_unit_values`
    /// mapping its values to units.
    pub size_unit_from: Option<String>,
    #[serde(default)]
    pub size_unit_values: BTreeMap<String, String>,
    pub currency: Option<String>,
    pub price: Option<String>,
    pub order_type: Option<String>,
    pub stop_loss: Option<String>,
    /// `price` (default), `percent`, `pips`, `points` or `quote`.
    pub stop_loss_unit: Option<String>,
    pub take_profit: Option<String>,
    pub take_profit_unit: Option<String>,
    pub leverage: Option<String>,
    /// A pointer to the sender's own id, used as the idempotency key.
    pub id: Option<String>,
    pub time: Option<String>,
}

/// How a source proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `X-Signature: sha256=<hex>` over `timestamp.nonce.body`.
    Custom,
    /// A per-source token in the URL or the JSON `passphrase` field.
    Tradingview,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Custom => "custom",
            SourceKind::Tradingview => "tradingview",
        }
    }
}

/// How a custom source signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum CustomScheme {
    /// `X-Signature: sha256=<hex>` over `X-Timestamp.X-Nonce.body`.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature: v1,<base64>`, `whsec_` secrets.
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks,
    /// Senders that already sign their own way and cannot change: an HMAC
    /// of the body alone in a header of the source's choice
    /// (`X-Webhook-Signature: sha256=<hex>`, GitHub's
    /// `X-Hub-Signature-256`), with an unsigned id and timestamp beside it.
    /// Opt-in per source; weaker against replay (see [`BodyHmacHeaders`]).
    #[serde(rename = "body-hmac")]
    BodyHmac,
}

/// Where a `body-hmac` source's sender puts its signature, delivery id and
/// timestamp. Neither the id nor the timestamp is covered by the signature,
/// so they only tell honest re-sends apart (the id is the default
/// idempotency key) and stop naive replays of stored requests (the
/// timestamp); an attacker who captured a request can re-send its body
/// with a new id and a fresh timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyHmacHeaders {
    /// The header holding `sha256=<64 hex digits>` (names as configured;
    /// HTTP compares them case-insensitively).
    pub signature: String,
    /// The header of the sender's delivery id; `None`: none.
    pub id: Option<String>,
    /// The header of the send time; `None`: not checked.
    pub timestamp: Option<String>,
    pub timestamp_format: TimestampFormat,
}

/// How a `body-hmac` sender writes its timestamp
/// (`sources.<name>.timestamp_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampFormat {
    /// RFC 3339, the ISO 8601 profile senders use:
    /// `2026-12-07T19:33:20Z`, `2026-12-07T19:33:20.123456+00:00`.
    #[default]
    Rfc3339,
    /// Unix seconds.
    Unix,
    /// Unix milliseconds (JavaScript's `Date.now()`).
    UnixMs,
}

impl TimestampFormat {
    pub const ALL: [TimestampFormat; 3] = [
        TimestampFormat::Rfc3339,
        TimestampFormat::Unix,
        TimestampFormat::UnixMs,
    ];

    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampFormat::Rfc3339 => "rfc3339",
            TimestampFormat::Unix => "unix",
            TimestampFormat::UnixMs => "unix_ms",
        }
    }

    pub fn parse(name: &str) -> Option<TimestampFormat> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// The seed publisher's (ADR-002) header names: the `body-hmac` defaults.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
pub const DEFAULT_ID_HEADER: &str = "X-Webhook-Id";
pub const DEFAULT_TIMESTAMP_HEADER: &str = "X-Webhook-Timestamp";

/// Standard Webhooks' default timestamp tolerance.
pub const STANDARD_WEBHOOKS_TOLERANCE: Duration = Duration::from_secs(300);

/// One HMAC key of a custom source.
#[derive(Debug, Clone)]
pub struct HmacKey {
    pub id: String,
    pub secret: SecretString,
    /// After this instant the key is expired and verifies nothing.
    pub not_after: Option<OffsetDateTime>,
}

impl HmacKey {
    pub fn live_at(&self, now: OffsetDateTime) -> bool {
        self.not_after.is_none_or(|t| now < t)
    }
}

/// A source, validated and ready to serve.
#[derive(Debug)]
pub struct SourceConfig {
    pub id: SourceId,
    pub kind: SourceKind,
    /// Custom sources: how requests are signed.
    pub scheme: CustomScheme,
    /// `body-hmac` sources (and only they): where the sender's headers are.
    pub body_hmac: Option<BodyHmacHeaders>,
    /// How far a signed timestamp may be from the gateway clock.
    pub tolerance: Duration,
    /// Custom sources: every live key (any one verifies).
    pub keys: Vec<HmacKey>,
    /// TradingView sources: the live tokens, as digests (any one verifies;
    /// more than one during a rotation).
    pub tokens: Vec<TokenDigest>,
    pub rate_limit_rps: u32,
    pub rate_limit_burst: u32,
    pub allowed_ips: Option<Vec<IpNet>>,
    pub ack_wait: Duration,
    /// Requests must arrive over HTTPS with this client certificate.
    pub client_cert: Option<ClientCertRule>,
    pub priority: Priority,
    /// Which adapter reads the payloads (`Auto`: by content).
    pub format: FormatChoice,
    pub mapping: Option<MappingSettings>,
    /// The source's own credential field names, squashed (lower case, no
    /// `_`, `-` or spaces), redacted beside the built-in ones.
    pub redact_fields: Vec<String>,
    /// How long a body without an id of its own is remembered to refuse a
    /// re-send of the same request (409); keys the sender chose keep the
    /// full idempotency TTL.
    pub content_dedupe: Duration,
}

/// Every allowed source by name.
pub type SourceMap = HashMap<SourceId, Arc<SourceConfig>>;

/// The default for `content_dedupe_sec`: TradingView re-sends a request
/// answered 5xx up to three times, 5 s apart, after a 3 s timeout, so a
/// minute covers every re-send of one alert while two alerts of the same
/// text on two bars (a minute apart or more) stay two signals.
pub const DEFAULT_CONTENT_DEDUPE_SEC: u64 = 60;

/// A TradingView token as the gateway keeps it: its SHA-256, never the
/// token itself (a registry stores only this; a file's token is hashed as
/// it is read). A token is at least 16 characters chosen by the operator or
/// 32 random bytes made by `at-gateway sources`, so a plain digest is as
/// strong as a slow hash would be.
#[derive(Clone)]
pub struct TokenDigest {
    digest: [u8; 32],
    /// After this instant the token verifies nothing (end of a rotation).
    pub not_after: Option<OffsetDateTime>,
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenDigest")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl TokenDigest {
    /// The digest of `token`, valid until `not_after`.
    pub fn of(token: &str, not_after: Option<OffsetDateTime>) -> TokenDigest {
        TokenDigest {
            digest: Sha256::digest(token.as_bytes()).into(),
            not_after,
        }
    }

    /// A digest as stored: 64 hex digits.
    pub fn from_hex(hex_digest: &str, not_after: Option<OffsetDateTime>) -> Option<TokenDigest> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).ok()?;
        Some(TokenDigest { digest, not_after })
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Whether `presented` is this token, compared in constant time (on
    /// digests, so the length does not leak either) and still live at `now`.
    pub fn matches(&self, presented: &str, now: OffsetDateTime) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let equal: bool = presented.ct_eq(&self.digest).into();
        equal && self.not_after.is_none_or(|t| now < t)
    }
}

/// The HMAC key of a Standard Webhooks `whsec_…` secret (the prefix is
/// optional, padding too, as in the reference libraries).
pub fn whsec_key_bytes(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(WHSEC_PREFIX).unwrap_or(secret);
    let b64 = b64.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64)
        .ok()
        .filter(|k| !k.is_empty())
}
