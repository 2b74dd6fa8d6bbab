//! Records for the stream: every message the gateway writes, built here
//! and only here, by the live path (`pipeline/`), by `at-gateway dlq
//! replay` and by the fuzz targets, so a raw envelope, a dead letter or a
//! claim has one shape wherever it is made.
//!
//! What a record says is fixed by the JSON Schemas in `schemas/`; how it
//! travels (headers, `Nats-Msg-Id`, plain JSON or CloudEvents) by
//! `envelope.rs`. Nothing here talks to NATS.

mod envelope;

use std::borrow::Cow;

use async_nats::HeaderMap;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::claims::batch::BatchClaim;
use crate::config::NatsSettings;
use crate::ids::{CorrId, EventId};
use crate::sources::{SourceConfig, SourceKind};

pub use envelope::{
    Role, CLOUDEVENTS_JSON, HEADER_CORR_ID, HEADER_EVENT_ID, HEADER_SCHEMA, HEADER_SOURCE,
};

/// `schema` value of a raw envelope.
pub const RAW_SCHEMA: &str = "signal.raw.v1";
/// `schema` value of a dead-letter record.
pub const DLQ_SCHEMA: &str = "signal.dlq.v1";

/// One message to store.
#[derive(Clone)]
pub struct Outbound {
    pub subject: String,
    /// `Nats-Msg-Id`; empty for a claim (its subject is what makes it unique).
    pub msg_id: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Who and when, stamped on every record of one request.
#[derive(Clone, Debug)]
pub struct Meta {
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: SourceKind,
    pub received_at: String,
}

impl Meta {
    /// A request of `source` received now.
    pub fn received_now(event_id: EventId, corr_id: &CorrId, source: &SourceConfig) -> Meta {
        Meta {
            event_id: event_id.to_string(),
            corr_id: corr_id.to_string(),
            source: source.id.to_string(),
            source_kind: source.kind,
            received_at: rfc3339(OffsetDateTime::now_utc()),
        }
    }
}

/// RFC 3339 in UTC with millisecond precision, as every record writes times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The envelope published on `signals.raw`: the body exactly as received
/// (tokens and credentials redacted), with who sent it and when. Read back
/// (by `at-gateway dlq replay`) with the same type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawEnvelope {
    pub schema: Cow<'static, str>,
    pub event_id: String,
    pub corr_id: String,
    pub source: String,
    pub source_kind: Cow<'static, str>,
    pub received_at: String,
    pub auth_scheme: Cow<'static, str>,
    pub key_id: Option<String>,
    pub idempotency_key: String,
    pub content_type: Option<String>,
    /// `utf8` when the body is text, else `base64`.
    pub body_encoding: Cow<'static, str>,
    pub body: String,
}

impl RawEnvelope {
    /// `body`: as the normalizer left it, credentials redacted.
    pub fn new(
        meta: &Meta,
        auth_scheme: &'static str,
        key_id: Option<String>,
        idempotency_key: String,
        content_type: Option<String>,
        body: &[u8],
    ) -> RawEnvelope {
        let (body_encoding, body) = match std::str::from_utf8(body) {
            Ok(text) => ("utf8", text.to_owned()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(body),
            ),
        };
        RawEnvelope {
            schema: RAW_SCHEMA.into(),
            event_id: meta.event_id.clone(),
            corr_id: meta.corr_id.clone(),
            source: meta.source.clone(),
            source_kind: meta.source_kind.as_str().into(),
            received_at: meta.received_at.clone(),
            auth_scheme: auth_scheme.into(),
            key_id,
            idempotency_key,
            content_type,
            body_encoding: body_encoding.into(),
            body,
        }
    }

    /// Who and when, as the gateway stamped them on this envelope.
    pub fn meta(&self) -> Meta {
        let source_kind = match self.source_kind.as_ref() {
            "tradingview" => SourceKind::Tradingview,
            _ => SourceKind::Custom,
        };
        Meta {
            event_id: self.event_id.clone(),
            corr_id: self.corr_id.clone(),
            source: self.source.clone(),
            source_kind,
            received_at: self.received_at.clone(),
        }
    }

    /// The body's bytes, decoded from its encoding.
    pub fn body_bytes(&self) -> Result<Bytes, String> {
        match self.body_encoding.as_ref() {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(&self.body)
                .map(Bytes::from)
                .map_err(|e| format!("raw body is not valid base64: {e}")),
            _ => Ok(Bytes::from(self.body.clone().into_bytes())),
        }
    }
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

impl DeadLetter {
    pub fn new(meta: &Meta, reasons: Vec<String>, raw_subject: &str, raw_msg_id: String) -> Self {
        DeadLetter {
            schema: DLQ_SCHEMA.into(),
            event_id: meta.event_id.clone(),
            corr_id: meta.corr_id.clone(),
            source: meta.source.clone(),
            received_at: meta.received_at.clone(),
            reasons,
            raw_subject: raw_subject.to_owned(),
            raw_msg_id,
        }
    }
}

/// The message of `role` carrying `value` (of schema `schema`).
pub fn message<T: Serialize>(
    nats: &NatsSettings,
    role: Role,
    msg_id: String,
    meta: &Meta,
    schema: &str,
    value: &T,
) -> serde_json::Result<Outbound> {
    serde_json::to_vec(value)
        .and_then(|document| envelope::outbound(nats, role, msg_id, meta, schema, document))
}

/// The message of `role` for a document already serialized.
pub use envelope::outbound as document;

/// A claim of a signal's batch (`claims/batch.rs`), carrying `record`:
/// what a later request refused by it is told.
pub fn claim(claim: &BatchClaim, record: Bytes) -> Outbound {
    Outbound {
        subject: claim.subject.clone(),
        msg_id: String::new(),
        headers: claim.headers(),
        payload: record,
    }
}
