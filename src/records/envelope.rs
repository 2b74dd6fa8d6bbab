//! How a message to publish is built: the gateway's headers, the
//! `Nats-Msg-Id`, and the event format chosen for its subject — the plain
//! JSON document (default), or a CloudEvent in structured or binary mode
//! per the CloudEvents NATS protocol binding.
//!
//! CloudEvents attributes: `id` is the `event_id` (suffixed `.raw` / `.dlq`
//! on those subjects, since a CloudEvents consumer treats equal
//! source + id as one event, and the raw and normalized copies share their
//! `event_id`), `source` is `/at-gateway/sources/{source}`, `type` is
//! `dev.at-gateway.` + the schema name, `time` is `received_at`,
//! `dataschema` the schema's `$id`, and the extension `corrid` the
//! correlation id.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{Meta, Outbound};
use crate::config::{EventFormat, NatsSettings};

/// Headers on every published message (besides `Nats-Msg-Id`).
pub const HEADER_SOURCE: &str = "X-Source";
pub const HEADER_CORR_ID: &str = "X-Correlation-Id";
pub const HEADER_EVENT_ID: &str = "X-Event-Id";
pub const HEADER_SCHEMA: &str = "X-Schema-Version";

/// Content type of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// The three subjects, each with its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Raw,
    Normalized,
    Dlq,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Raw => "raw",
            Role::Normalized => "normalized",
            Role::Dlq => "dlq",
        }
    }

    fn subject(self, nats: &NatsSettings) -> &str {
        match self {
            Role::Raw => &nats.subject_raw,
            Role::Normalized => &nats.subject_normalized,
            Role::Dlq => &nats.subject_dlq,
        }
    }

    fn format(self, nats: &NatsSettings) -> EventFormat {
        match self {
            Role::Raw => nats.formats.raw,
            Role::Normalized => nats.formats.normalized,
            Role::Dlq => nats.formats.dlq,
        }
    }
}

/// Builds the message of `role` for a signal: `document` is its JSON, of
/// schema `schema`; `msg_id` its `Nats-Msg-Id`.
pub fn outbound(
    nats: &NatsSettings,
    role: Role,
    msg_id: String,
    meta: &Meta,
    schema: &str,
    document: Vec<u8>,
) -> serde_json::Result<Outbound> {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_SOURCE, meta.source.as_str());
    headers.insert(HEADER_CORR_ID, meta.corr_id.as_str());
    headers.insert(HEADER_EVENT_ID, meta.event_id.as_str());
    headers.insert(HEADER_SCHEMA, schema);
    let payload = match role.format(nats) {
        EventFormat::Plain => document,
        EventFormat::CloudEventsBinary => {
            let attrs = Attributes::of(role, meta, schema);
            headers.insert("ce-specversion", attrs.specversion);
            headers.insert("ce-id", attrs.id.as_str());
            headers.insert("ce-source", attrs.source.as_str());
            headers.insert("ce-type", attrs.ty.as_str());
            headers.insert("ce-time", attrs.time);
            headers.insert("ce-dataschema", attrs.dataschema.as_str());
            headers.insert("ce-corrid", attrs.corrid);
            headers.insert("content-type", attrs.datacontenttype);
            document
        }
        EventFormat::CloudEventsStructured => {
            headers.insert("content-type", CLOUDEVENTS_JSON);
            structured(Attributes::of(role, meta, schema), &document)?
        }
    };
    Ok(Outbound {
        subject: role.subject(nats).to_owned(),
        msg_id,
        headers,
        payload: Bytes::from(payload),
    })
}

/// The CloudEvents context attributes of one message.
#[derive(Serialize)]
struct Attributes<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    ty: String,
    time: &'a str,
    datacontenttype: &'static str,
    dataschema: String,
    corrid: &'a str,
}

impl<'a> Attributes<'a> {
    fn of(role: Role, meta: &'a Meta, schema: &str) -> Self {
        let id = match role {
            Role::Normalized => meta.event_id.clone(),
            _ => format!("{}.{}", meta.event_id, role.as_str()),
        };
        Attributes {
            specversion: "1.0",
            id,
            source: format!("/at-gateway/sources/{}", meta.source),
            ty: format!("dev.at-gateway.{schema}"),
            time: &meta.received_at,
            datacontenttype: "application/json",
            dataschema: format!("https://at-gateway.dev/schemas/{schema}.json"),
            corrid: &meta.corr_id,
        }
    }
}

/// The structured-mode event: attributes and the document as `data`,
/// embedded as it is (not re-parsed, so decimals keep their digits).
fn structured(attrs: Attributes<'_>, document: &[u8]) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(flatten)]
        attrs: Attributes<'a>,
        data: &'a RawValue,
    }
    let data: &RawValue = serde_json::from_slice(document)?;
    serde_json::to_vec(&Event { attrs, data })
}
