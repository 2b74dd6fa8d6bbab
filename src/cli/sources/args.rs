//! The `sources` subcommands as the command line gives them, and the
//! record settings `add`'s flags stand for.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use super::DEFAULT_OVERLAP_SEC;
use crate::sources::SourceKind;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new registry key for SOURCE_REGISTRY_KEY (base64 of 32
    /// random bytes) and nothing else.
    NewKey,
    /// Add a source to the registry and print, once, its webhook URL and its
    /// token (TradingView) or secret (custom).
    Add(Box<AddArgs>),
    /// Give a source a new token or secret; the old ones keep working for
    /// --overlap-sec, expired ones are dropped. Prints the new one, once.
    Rotate {
        name: String,
        /// How long the previous tokens or secrets keep working.
        #[arg(long, default_value_t = DEFAULT_OVERLAP_SEC)]
        overlap_sec: u64,
        /// One JSON object (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a source (403); it stays in the registry for `enable`.
    Disable { name: String },
    /// Serve a disabled source again.
    Enable { name: String },
    /// One line per source: name, kind, scheme, state, live tokens or keys,
    /// last change. No credential.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// A source's settings and its tokens' and keys' ids and expiries. No
    /// credential, no digest.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// `sources add`: the source's settings, as a `[sources.<name>]` section
/// would write them.
#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Custom sources: hmac-sha256 (default), standard-webhooks or
    /// body-hmac (a sender that signs the body alone, its own headers).
    #[arg(long)]
    pub scheme: Option<String>,
    /// body-hmac: the header carrying `sha256=<hex>` (default
    /// X-Webhook-Signature; GitHub: X-Hub-Signature-256).
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,
    /// body-hmac: the header with the delivery id, the idempotency key
    /// (default X-Webhook-Id; "" for none).
    #[arg(long, value_name = "NAME")]
    pub id_header: Option<String>,
    /// body-hmac: the header with the send time (default
    /// X-Webhook-Timestamp; "" for none).
    #[arg(long, value_name = "NAME")]
    pub timestamp_header: Option<String>,
    /// body-hmac: rfc3339 (default), unix or unix_ms.
    #[arg(long, value_name = "FORMAT")]
    pub timestamp_format: Option<String>,
    /// Lane under saturation: high, normal (default) or low.
    #[arg(long)]
    pub priority: Option<String>,
    #[arg(long)]
    pub rate_limit_rps: Option<u32>,
    #[arg(long)]
    pub rate_limit_burst: Option<u32>,
    /// The adapter that reads the payloads (default: auto, by content).
    #[arg(long)]
    pub format: Option<String>,
    /// A sender address or network allowed (repeat for more).
    #[arg(long = "allowed-ip", value_name = "CIDR")]
    pub allowed_ips: Vec<String>,
    #[arg(long)]
    pub ack_wait_ms: Option<u64>,
    #[arg(long)]
    pub content_dedupe_sec: Option<u64>,
    /// One JSON object (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Tradingview,
    Custom,
}

impl AddArgs {
    /// The record's settings: the keys of a `[sources.<name>]` section.
    pub(super) fn settings(&self) -> Map<String, Value> {
        let mut s = Map::new();
        let kind = match self.kind {
            Kind::Tradingview => SourceKind::Tradingview,
            Kind::Custom => SourceKind::Custom,
        };
        s.insert("kind".into(), kind.as_str().into());
        let mut text = |key: &str, v: &Option<String>| {
            if let Some(v) = v {
                s.insert(key.into(), v.as_str().into());
            }
        };
        text("scheme", &self.scheme);
        text("signature_header", &self.signature_header);
        text("id_header", &self.id_header);
        text("timestamp_header", &self.timestamp_header);
        text("timestamp_format", &self.timestamp_format);
        text("priority", &self.priority);
        text("format", &self.format);
        let numbers = [
            ("rate_limit_rps", self.rate_limit_rps.map(u64::from)),
            ("rate_limit_burst", self.rate_limit_burst.map(u64::from)),
            ("ack_wait_ms", self.ack_wait_ms),
            ("content_dedupe_sec", self.content_dedupe_sec),
        ];
        for (key, v) in numbers {
            if let Some(v) = v {
                s.insert(key.into(), v.into());
            }
        }
        if !self.allowed_ips.is_empty() {
            s.insert("allowed_ips".into(), self.allowed_ips.clone().into());
        }
        s
    }
}
