//! `at-gateway check-config`: the effective settings written back as the
//! TOML a user would write, with the keys and sections of
//! `config/default.toml` and the `[sources.<name>]` sections of README.md.
//! Durations are in the unit their key names (`_sec`, `_ms`), enum values
//! are spelled as the config file spells them, and every secret (HMAC
//! secrets, tokens) is printed as [`REDACTED`], never its value.
//!
//! [`Settings`] keeps what took effect, so that is what is printed: the
//! top-level `rate_limit_rps` and `rate_limit_burst`, `api_key_hmac_secret`
//! and `tradingview_token` are defaults for sources and show up as each
//! source's own values; a source configured but not allowed is not shown.
//! With the real secrets put back, the text loads as a `--config` file to
//! the same settings (tests/it/cli.rs proves the round trip).
//!
//! Each struct is taken apart field by field, so a setting added to one of
//! them does not compile until it is printed here (or skipped on purpose).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use ipnet::IpNet;
use time::format_description::well_known::Rfc3339;
use toml::Value;

use crate::config::{
    AuthFailureSettings, EventFormat, HttpSettings, NatsSettings, NormalizedSchema,
    RegistrySettings, Settings, StoreBackend, StoreSettings, SubjectFormats, TlsSettings,
};
use crate::lanes::LaneSettings;
use crate::sources::{
    BodyHmacHeaders, ClientCertRule, CustomScheme, FormatChoice, HmacKey, MappingSettings,
    SourceConfig,
};

/// What every secret is printed as. Not a valid secret or token (too short,
/// and `[` is not allowed in a token), so a printout loaded as it is gets
/// refused instead of running with a placeholder.
pub const REDACTED: &str = "[redacted]";

const HEADER: &str = "\
# The effective settings (config/default.toml, the --config file, the
# environment) as a config file would write them. Every secret is redacted:
# each \"[redacted]\" stands for one. The top-level source defaults
# (rate_limit_rps, rate_limit_burst, api_key_hmac_secret, tradingview_token)
# are shown as each source's own values.
";

/// The effective settings as a TOML document, secrets redacted.
pub fn effective_toml(settings: &Settings) -> String {
    let Settings {
        service_name,
        env,
        log_level,
        http_addr,
        replay_window,
        idempotency_ttl,
        trusted_proxies,
        auth_failures,
        http,
        nats,
        stores,
        tls,
        lanes,
        sources,
        registry,
        // Where the settings came from, not a setting.
        config_file: _,
        // Printed as each source's own values.
        source_defaults: _,
    } = settings;
    let mut sources: Vec<&SourceConfig> = sources.values().map(|s| &**s).collect();
    sources.sort_by(|a, b| a.id.cmp(&b.id));

    let mut doc = Doc(HEADER.to_owned());
    doc.set("service_name", service_name.as_str());
    doc.set("env", env.as_str());
    doc.set("log_level", log_level.as_str());
    doc.set("http_addr", http_addr.to_string());
    let names: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    doc.set("allowed_sources", names);
    doc.set("replay_window_sec", secs(*replay_window));
    doc.set("idempotency_ttl_sec", secs(*idempotency_ttl));
    doc.set("trusted_proxies", nets(trusted_proxies));
    auth_failures_table(&mut doc, auth_failures);
    http_table(&mut doc, http);
    nats_table(&mut doc, nats);
    lanes_table(&mut doc, lanes);
    tls_table(&mut doc, tls.as_ref());
    stores_table(&mut doc, stores);
    registry_table(&mut doc, registry.as_ref());
    for source in sources {
        source_table(&mut doc, source);
    }
    doc.0
}

fn registry_table(doc: &mut Doc, r: Option<&RegistrySettings>) {
    doc.table(&["registry"]);
    let Some(RegistrySettings {
        bucket,
        key: _,
        public_url,
    }) = r
    else {
        doc.set("enabled", false);
        return;
    };
    doc.set("enabled", true);
    doc.set("bucket", bucket.as_str());
    // The key (SOURCE_REGISTRY_KEY or key_file) is a secret.
    doc.set("key", REDACTED);
    doc.set("public_url", public_url.as_str());
}

fn auth_failures_table(doc: &mut Doc, a: &AuthFailureSettings) {
    let AuthFailureSettings {
        per_minute,
        burst,
        tracked_addresses,
    } = a;
    doc.table(&["auth_failures"]);
    doc.set("per_minute", *per_minute);
    doc.set("burst", *burst);
    doc.set("tracked_addresses", int(*tracked_addresses));
}

fn http_table(doc: &mut Doc, h: &HttpSettings) {
    let HttpSettings {
        workers,
        max_body_bytes,
        client_request_timeout_ms,
        body_read_timeout_ms,
        keep_alive_sec,
        drain_ms,
        shutdown_timeout_sec,
        max_connections_per_worker,
    } = h;
    doc.table(&["http"]);
    doc.set("workers", int(*workers));
    doc.set("max_body_bytes", int(*max_body_bytes));
    doc.set("client_request_timeout_ms", int(*client_request_timeout_ms));
    doc.set("body_read_timeout_ms", int(*body_read_timeout_ms));
    doc.set("keep_alive_sec", int(*keep_alive_sec));
    doc.set("drain_ms", int(*drain_ms));
    doc.set("shutdown_timeout_sec", int(*shutdown_timeout_sec));
    doc.set(
        "max_connections_per_worker",
        int(*max_connections_per_worker),
    );
}

fn nats_table(doc: &mut Doc, n: &NatsSettings) {
    let NatsSettings {
        url,
        stream,
        durable,
        subject_raw,
        subject_normalized,
        subject_dlq,
        stream_replicas,
        duplicate_window_sec,
        ping_interval_sec,
        connect_timeout_ms,
        ack_timeout_ms,
        buffer_capacity,
        max_in_flight_messages,
        message_window_sec,
        request_ack_wait_ms,
        probe_interval_ms,
        formats,
        normalized_schema,
    } = n;
    doc.table(&["nats"]);
    doc.set("url", url.as_str());
    doc.set("stream", stream.as_str());
    doc.set("durable", durable.as_str());
    doc.set("subject_raw", subject_raw.as_str());
    doc.set("subject_normalized", subject_normalized.as_str());
    doc.set("subject_dlq", subject_dlq.as_str());
    doc.set("stream_replicas", int(*stream_replicas));
    doc.set("duplicate_window_sec", int(*duplicate_window_sec));
    doc.set("ping_interval_sec", int(*ping_interval_sec));
    doc.set("connect_timeout_ms", int(*connect_timeout_ms));
    doc.set("ack_timeout_ms", int(*ack_timeout_ms));
    doc.set("buffer_capacity", int(*buffer_capacity));
    doc.set("max_in_flight_messages", int(*max_in_flight_messages));
    doc.set("message_window_sec", int(*message_window_sec));
    doc.set("request_ack_wait_ms", int(*request_ack_wait_ms));
    doc.set("probe_interval_ms", int(*probe_interval_ms));
    doc.set("normalized_schema", schema_name(*normalized_schema));

    let SubjectFormats {
        raw,
        normalized,
        dlq,
    } = formats;
    doc.table(&["nats", "formats"]);
    doc.set("raw", event_format_name(*raw));
    doc.set("normalized", event_format_name(*normalized));
    doc.set("dlq", event_format_name(*dlq));
}

fn lanes_table(doc: &mut Doc, l: &LaneSettings) {
    let LaneSettings {
        max_in_flight,
        max_working,
        max_body_bytes_in_flight,
        low_percent,
        normal_percent,
    } = l;
    doc.table(&["lanes"]);
    doc.set("max_in_flight", int(*max_in_flight));
    doc.set("max_working", int(*max_working));
    doc.set("max_body_bytes_in_flight", int(*max_body_bytes_in_flight));
    doc.set("low_percent", *low_percent);
    doc.set("normal_percent", *normal_percent);
}

/// No HTTPS listener is written as the defaults write it: empty strings.
fn tls_table(doc: &mut Doc, tls: Option<&TlsSettings>) {
    let (addr, cert_file, key_file, client_ca_file) = match tls {
        None => Default::default(),
        Some(TlsSettings {
            addr,
            cert_file,
            key_file,
            client_ca_file,
        }) => (
            addr.to_string(),
            cert_file.to_string_lossy().into_owned(),
            key_file.to_string_lossy().into_owned(),
            client_ca_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    };
    doc.table(&["tls"]);
    doc.set("addr", addr);
    doc.set("cert_file", cert_file);
    doc.set("key_file", key_file);
    doc.set("client_ca_file", client_ca_file);
}

fn stores_table(doc: &mut Doc, s: &StoreSettings) {
    let StoreSettings {
        backend,
        replay_bucket,
        idempotency_bucket,
        dlq_replay_bucket,
        replay_capacity,
        idempotency_capacity,
    } = s;
    doc.table(&["stores"]);
    doc.set("backend", backend_name(*backend));
    doc.set("replay_bucket", replay_bucket.as_str());
    doc.set("idempotency_bucket", idempotency_bucket.as_str());
    doc.set("dlq_replay_bucket", dlq_replay_bucket.as_str());
    doc.set("replay_capacity", int(*replay_capacity));
    doc.set("idempotency_capacity", int(*idempotency_capacity));
}

fn source_table(doc: &mut Doc, s: &SourceConfig) {
    let SourceConfig {
        id,
        kind,
        scheme,
        body_hmac,
        tolerance,
        keys,
        tokens,
        rate_limit_rps,
        rate_limit_burst,
        allowed_ips,
        ack_wait,
        client_cert,
        priority,
        format,
        mapping,
        redact_fields,
        content_dedupe,
    } = s;
    doc.table(&["sources", id.as_str()]);
    doc.set("kind", kind.as_str());
    if !keys.is_empty() {
        doc.set("scheme", scheme_name(*scheme));
        // The tolerance of an hmac-sha256 source is the replay window.
        if *scheme != CustomScheme::HmacSha256 {
            doc.set("tolerance_sec", secs(*tolerance));
        }
        if let Some(headers) = body_hmac {
            body_hmac_settings(doc, headers);
        }
        doc.set_inline("secrets", inline_list(keys.iter().map(key_entry)));
    }
    // A file names one token; more (a rotation) come only from the registry.
    if !tokens.is_empty() {
        doc.set("token", REDACTED);
    }
    doc.set("rate_limit_rps", *rate_limit_rps);
    doc.set("rate_limit_burst", *rate_limit_burst);
    if let Some(ips) = allowed_ips {
        doc.set("allowed_ips", nets(ips));
    }
    doc.set("ack_wait_ms", millis(*ack_wait));
    if let Some(ClientCertRule {
        common_name,
        organization,
    }) = client_cert
    {
        let rule = inline([
            ("common_name", Some(Value::from(common_name.as_str()))),
            ("organization", organization.as_deref().map(Value::from)),
        ]);
        doc.set_inline("client_cert", rule);
    }
    doc.set("priority", priority.as_str());
    doc.set("format", format_name(*format));
    // Kept squashed (lower case, no `_`, `-` or spaces), which matches the
    // same fields when read again.
    doc.set("redact_fields", redact_fields.clone());
    doc.set("content_dedupe_sec", secs(*content_dedupe));
    if let Some(m) = mapping {
        mapping_table(doc, id.as_str(), m);
    }
}

/// A `body-hmac` source's headers; `""` for none, as it is written.
fn body_hmac_settings(doc: &mut Doc, headers: &BodyHmacHeaders) {
    let BodyHmacHeaders {
        signature,
        id,
        timestamp,
        timestamp_format,
    } = headers;
    doc.set("signature_header", signature.as_str());
    doc.set("id_header", id.as_deref().unwrap_or_default());
    doc.set("timestamp_header", timestamp.as_deref().unwrap_or_default());
    if timestamp.is_some() {
        doc.set("timestamp_format", timestamp_format.as_str());
    }
}

/// `{ id = ..., secret = "[redacted]", not_after = ... }`.
fn key_entry(key: &HmacKey) -> String {
    let HmacKey {
        id,
        secret: _,
        not_after,
    } = key;
    let not_after = not_after.map(|t| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string()));
    inline([
        ("id", Some(Value::from(id.as_str()))),
        ("secret", Some(Value::from(REDACTED))),
        ("not_after", not_after.map(Value::from)),
    ])
}

fn mapping_table(doc: &mut Doc, source: &str, m: &MappingSettings) {
    let MappingSettings {
        symbol,
        action,
        exchange,
        action_values,
        size,
        size_unit,
        size_unit_from,
        size_unit_values,
        currency,
        price,
        order_type,
        stop_loss,
        stop_loss_unit,
        take_profit,
        take_profit_unit,
        leverage,
        id,
        time,
    } = m;
    let values = |map: &BTreeMap<String, String>| {
        inline(
            map.iter()
                .map(|(k, v)| (k.as_str(), Some(Value::from(v.as_str())))),
        )
    };
    doc.table(&["sources", source, "mapping"]);
    doc.set("symbol", symbol.as_str());
    doc.set("action", action.as_str());
    doc.set_opt("exchange", exchange);
    if !action_values.is_empty() {
        doc.set_inline("action_values", values(action_values));
    }
    doc.set_opt("size", size);
    doc.set_opt("size_unit", size_unit);
    doc.set_opt("size_unit_from", size_unit_from);
    if !size_unit_values.is_empty() {
        doc.set_inline("size_unit_values", values(size_unit_values));
    }
    doc.set_opt("currency", currency);
    doc.set_opt("price", price);
    doc.set_opt("order_type", order_type);
    doc.set_opt("stop_loss", stop_loss);
    doc.set_opt("stop_loss_unit", stop_loss_unit);
    doc.set_opt("take_profit", take_profit);
    doc.set_opt("take_profit_unit", take_profit_unit);
    doc.set_opt("leverage", leverage);
    doc.set_opt("id", id);
    doc.set_opt("time", time);
}

// The config file's spelling of each enum value (its serde renames; the
// unit tests below read each one back through serde).

fn format_name(f: FormatChoice) -> &'static str {
    match f {
        FormatChoice::Auto => "auto",
        FormatChoice::Canonical => "canonical",
        FormatChoice::Template => "template",
        FormatChoice::ThreeCommas => "3commas",
        FormatChoice::TradersPost => "traderspost",
        FormatChoice::PineConnector => "pineconnector",
        FormatChoice::Alertatron => "alertatron",
        FormatChoice::WunderTrading => "wundertrading",
        FormatChoice::Okx => "okx",
        FormatChoice::AutoView => "autoview",
        FormatChoice::ExchangeBot => "exchange-bot",
        FormatChoice::PickMyTrade => "pickmytrade",
        FormatChoice::Finandy => "finandy",
        FormatChoice::OctoBot => "octobot",
        FormatChoice::TradingConnector => "tradingconnector",
        FormatChoice::MetaApi => "metaapi",
    }
}

pub(crate) fn scheme_name(s: CustomScheme) -> &'static str {
    match s {
        CustomScheme::HmacSha256 => "hmac-sha256",
        CustomScheme::StandardWebhooks => "standard-webhooks",
        CustomScheme::BodyHmac => "body-hmac",
    }
}

fn backend_name(b: StoreBackend) -> &'static str {
    match b {
        StoreBackend::Jetstream => "jetstream",
        StoreBackend::Stream => "stream",
        StoreBackend::Memory => "memory",
    }
}

fn schema_name(s: NormalizedSchema) -> &'static str {
    match s {
        NormalizedSchema::V1 => "v1",
        NormalizedSchema::V2 => "v2",
    }
}

fn event_format_name(f: EventFormat) -> &'static str {
    match f {
        EventFormat::Plain => "plain",
        EventFormat::CloudEventsStructured => "cloudevents-structured",
        EventFormat::CloudEventsBinary => "cloudevents-binary",
    }
}

/// A TOML document written line by line, in the order of
/// `config/default.toml`. Values are rendered by the `toml` crate (quoting,
/// escapes); only the layout is ours, so tables such as a key's entry stay
/// inline as the README writes them.
struct Doc(String);

impl Doc {
    fn table(&mut self, path: &[&str]) {
        let path: Vec<String> = path.iter().map(|k| key(k)).collect();
        let _ = write!(self.0, "\n[{}]\n", path.join("."));
    }

    fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.set_inline(name, value.into().to_string());
    }

    fn set_opt(&mut self, name: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.set(name, v.as_str());
        }
    }

    /// `name = rendered`, `rendered` being valid TOML already.
    fn set_inline(&mut self, name: &str, rendered: String) {
        let _ = writeln!(self.0, "{} = {rendered}", key(name));
    }
}

/// A key, bare when it can be (`alpha-bot`), quoted otherwise (`"vendor.x"`).
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if bare {
        name.to_owned()
    } else {
        Value::from(name).to_string()
    }
}

/// An inline table with its keys in the order given; `None` values left out.
fn inline<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<Value>)>) -> String {
    let items: Vec<String> = pairs
        .into_iter()
        .filter_map(|(k, v)| Some(format!("{} = {}", key(k), v?)))
        .collect();
    if items.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// An array of rendered items: on one line if there is one, else one a line.
fn inline_list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        0 => "[]".to_owned(),
        1 => format!("[{}]", items[0]),
        _ => format!("[\n  {},\n]", items.join(",\n  ")),
    }
}

/// An integer; one beyond TOML's (i64) range stays exact as a string, which
/// the loader reads as a number too.
fn int<N: TryInto<i64> + ToString + Copy>(n: N) -> Value {
    n.try_into()
        .map(Value::Integer)
        .unwrap_or_else(|_| Value::String(n.to_string()))
}

fn secs(d: Duration) -> Value {
    int(d.as_secs())
}

fn millis(d: Duration) -> Value {
    int(d.as_millis())
}

/// Addresses and networks; a single address without its `/32` or `/128`.
fn nets(list: &[IpNet]) -> Value {
    let items: Vec<String> = list
        .iter()
        .map(|net| {
            if net.prefix_len() == net.max_prefix_len() {
                net.addr().to_string()
            } else {
                net.to_string()
            }
        })
        .collect();
    Value::from(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, StrDeserializer};
    use serde::de::IntoDeserializer;
    use serde::Deserialize;

    /// `name` read back through the config's own serde attributes.
    fn parse<'de, T: Deserialize<'de>>(name: &'de str) -> T {
        let d: StrDeserializer<'de, Error> = name.into_deserializer();
        T::deserialize(d).unwrap_or_else(|e| panic!("'{name}' is not accepted: {e}"))
    }

    #[test]
    fn enum_values_are_spelled_as_the_config_file_spells_them() {
        use FormatChoice::*;
        for f in [
            Auto,
            Canonical,
            Template,
            ThreeCommas,
            TradersPost,
            PineConnector,
            Alertatron,
            WunderTrading,
            Okx,
            AutoView,
            ExchangeBot,
            PickMyTrade,
            Finandy,
            OctoBot,
            TradingConnector,
            MetaApi,
        ] {
            assert_eq!(parse::<FormatChoice>(format_name(f)), f);
        }
        for s in [
            CustomScheme::HmacSha256,
            CustomScheme::StandardWebhooks,
            CustomScheme::BodyHmac,
        ] {
            assert_eq!(parse::<CustomScheme>(scheme_name(s)), s);
        }
        for b in [
            StoreBackend::Jetstream,
            StoreBackend::Stream,
            StoreBackend::Memory,
        ] {
            assert_eq!(parse::<StoreBackend>(backend_name(b)), b);
        }
        for s in [NormalizedSchema::V1, NormalizedSchema::V2] {
            assert_eq!(parse::<NormalizedSchema>(schema_name(s)), s);
        }
        for f in [
            EventFormat::Plain,
            EventFormat::CloudEventsStructured,
            EventFormat::CloudEventsBinary,
        ] {
            assert_eq!(parse::<EventFormat>(event_format_name(f)), f);
        }
        use crate::lanes::Priority;
        use crate::sources::SourceKind;
        for k in [SourceKind::Custom, SourceKind::Tradingview] {
            assert_eq!(parse::<SourceKind>(k.as_str()), k);
        }
        for p in [Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(parse::<Priority>(p.as_str()), p);
        }
    }

    #[test]
    fn keys_are_quoted_only_when_they_must_be() {
        assert_eq!(key("alpha-bot_2"), "alpha-bot_2");
        let quoted = key("vendor.x");
        let doc: toml::Table = toml::from_str(&format!("[sources.{quoted}]\na = 1")).unwrap();
        assert!(doc["sources"].get("vendor.x").is_some(), "{quoted}");
    }

    #[test]
    fn numbers_and_addresses_keep_their_value() {
        assert_eq!(int(300u64), Value::Integer(300));
        assert_eq!(int(u64::MAX), Value::String(u64::MAX.to_string()));
        assert_eq!(millis(Duration::from_millis(2500)), Value::Integer(2500));
        let list: Vec<IpNet> = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            nets(&list).to_string(),
            r#"["10.0.0.0/8", "192.0.2.7", "2001:db8::1"]"#
        );
    }

    #[test]
    fn the_defaults_print_as_toml_without_their_secrets() {
        let env = |name: &str| match name {
            "TRADINGVIEW_TOKEN" => Some("tv-token-SEKRIT-0123456789".to_owned()),
            "API_KEY_HMAC_SECRET" => Some("hmac-SEKRIT-0123456789".to_owned()),
            "ALLOWED_SOURCES" => Some("tradingview,alpha".to_owned()),
            _ => None,
        };
        let settings = Settings::load_with_env(None, env).unwrap();
        let text = effective_toml(&settings);
        assert!(!text.contains("SEKRIT"), "{text}");
        let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(doc["replay_window_sec"].as_integer(), Some(300));
        assert_eq!(doc["nats"]["formats"]["raw"].as_str(), Some("plain"));
        let alpha = &doc["sources"]["alpha"];
        assert_eq!(alpha["kind"].as_str(), Some("custom"));
        assert_eq!(alpha["secrets"][0]["id"].as_str(), Some("default"));
        assert_eq!(alpha["secrets"][0]["secret"].as_str(), Some(REDACTED));
        let tv = &doc["sources"]["tradingview"];
        assert_eq!(tv["token"].as_str(), Some(REDACTED));
        assert_eq!(tv["ack_wait_ms"].as_integer(), Some(2500));
    }
}
