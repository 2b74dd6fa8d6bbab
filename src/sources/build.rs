//! Building a source from its configuration section: defaults filled in,
//! keys and tokens checked, every bad value named by its setting.

use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::IpAddr;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;

/// What a source takes from the gateway-wide settings when its own section
/// does not say.
#[derive(Debug)]
pub struct SourceDefaults {
    /// `API_KEY_HMAC_SECRET`: the key of every custom source without one.
    pub hmac_secret: Option<SecretString>,
    /// `TRADINGVIEW_TOKEN`: the token of the source named `tradingview`.
    pub tradingview_token: Option<SecretString>,
    pub rate_limit_rps: u32,
    pub rate_limit_burst: u32,
    pub replay_window_sec: u64,
    pub idempotency_ttl_sec: u64,
    /// A custom source's acknowledgement cap (`nats.request_ack_wait_ms`).
    pub ack_wait_ms: u64,
}

/// `config/default.toml`'s values, without default secrets (a test in
/// `config.rs` keeps the two the same).
impl Default for SourceDefaults {
    fn default() -> Self {
        SourceDefaults {
            hmac_secret: None,
            tradingview_token: None,
            rate_limit_rps: 50,
            rate_limit_burst: 100,
            replay_window_sec: 300,
            idempotency_ttl_sec: 86_400,
            ack_wait_ms: 5000,
        }
    }
}

/// One `[sources.<name>]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub(super) kind: Option<SourceKind>,
    /// Custom sources: the signing scheme.
    pub(super) scheme: Option<CustomScheme>,
    /// Standard Webhooks: how far `webhook-timestamp` may be from now.
    pub(super) tolerance_sec: Option<u64>,
    /// Custom sources: one secret, or several (`secrets`) during a rotation.
    pub(super) secret: Option<SecretString>,
    #[serde(default)]
    pub(super) secrets: Vec<RawKey>,
    /// TradingView sources: the token (alias `passphrase`).
    #[serde(alias = "passphrase")]
    pub(super) token: Option<SecretString>,
    pub(super) rate_limit_rps: Option<u32>,
    pub(super) rate_limit_burst: Option<u32>,
    /// Sender addresses or networks allowed for this source (CIDR).
    pub(super) allowed_ips: Option<Vec<String>>,
    /// Cap on how long a request of this source waits for its acks.
    pub(super) ack_wait_ms: Option<u64>,
    /// A client certificate required over HTTPS, beside the token or
    /// signature (TradingView presents CN "TradingView Webhooks").
    pub(super) client_cert: Option<ClientCertRule>,
    /// Lane under saturation: high, normal (default) or low.
    pub(super) priority: Option<Priority>,
    /// Which adapter reads the payloads; `auto` picks by content.
    pub(super) format: Option<FormatChoice>,
    /// A vendor format that is not built in, mapped field by field.
    pub(super) mapping: Option<MappingSettings>,
    /// More body field names redacted as credentials, beside the defaults.
    #[serde(default)]
    pub(super) redact_fields: Vec<String>,
    /// How long a re-sent identical body (no id of its own) answers 409.
    pub(super) content_dedupe_sec: Option<u64>,
    /// `body-hmac` only: the headers its sender already uses
    /// (`body_hmac_headers`); `""` for the id or timestamp: none.
    pub(super) signature_header: Option<String>,
    pub(super) id_header: Option<String>,
    pub(super) timestamp_header: Option<String>,
    /// `body-hmac` only: `rfc3339` (default), `unix` or `unix_ms`.
    pub(super) timestamp_format: Option<String>,
    /// Registry sources: the TradingView tokens' digests (a file names its
    /// token in clear, which is hashed as it is read).
    #[serde(skip)]
    pub(super) token_digests: Vec<TokenDigest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) id: String,
    pub(super) secret: SecretString,
    /// RFC 3339; after it the key no longer verifies (end of a rotation).
    pub(super) not_after: Option<String>,
}

/// Builds and validates one allowed source from its section (empty when the
/// source has none) and the gateway-wide defaults; the error names the
/// setting at fault.
pub fn build_source(
    id: SourceId,
    file: SourceSection,
    defaults: &SourceDefaults,
) -> Result<SourceConfig, String> {
    let name = id.as_str().to_owned();
    let kind = file.kind.unwrap_or(if name == "tradingview" {
        SourceKind::Tradingview
    } else {
        SourceKind::Custom
    });
    let body_hmac = body_hmac_headers(&name, kind, file.scheme.unwrap_or_default(), &file)?;
    let mut keys = Vec::new();
    let mut tokens = Vec::new();
    match kind {
        SourceKind::Custom => {
            if let Some(secret) = file.secret {
                keys.push(HmacKey {
                    id: "default".into(),
                    secret,
                    not_after: None,
                });
            }
            for (i, key) in file.secrets.into_iter().enumerate() {
                let not_after = match &key.not_after {
                    None => None,
                    Some(text) => Some(OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                        format!(
                            "sources.{name}.secrets[{i}].not_after: '{text}' is not an RFC 3339 time \
                             like 2026-12-01T00:00:00Z"
                        )
                    })?),
                };
                if keys.iter().any(|k| k.id == key.id) {
                    return Err(format!(
                        "sources.{name}.secrets[{i}].id: '{}' is used twice",
                        key.id
                    ));
                }
                keys.push(HmacKey {
                    id: key.id,
                    secret: key.secret,
                    not_after,
                });
            }
            if keys.is_empty() {
                if let Some(secret) = &defaults.hmac_secret {
                    keys.push(HmacKey {
                        id: "default".into(),
                        secret: secret.clone(),
                        not_after: None,
                    });
                }
            }
            if keys.is_empty() {
                return Err(format!(
                    "sources.{name}: a custom source needs a secret \
                     (sources.{name}.secret, or API_KEY_HMAC_SECRET for all custom sources)"
                ));
            }
            if file.scheme == Some(CustomScheme::StandardWebhooks) {
                for key in &keys {
                    let decoded = super::whsec_key_bytes(key.secret.expose_secret());
                    if decoded.is_none_or(|k| k.len() < 16) {
                        return Err(format!(
                            "sources.{name}: secret '{}' must be a Standard Webhooks secret, \
                             whsec_ followed by base64 of at least 16 bytes",
                            key.id
                        ));
                    }
                }
            }
            for key in &keys {
                if key.secret.expose_secret().len() < 16 {
                    return Err(format!(
                        "sources.{name}: secret '{}' is shorter than 16 bytes",
                        key.id
                    ));
                }
            }
        }
        SourceKind::Tradingview if file.token.is_none() && !file.token_digests.is_empty() => {
            // A registry source: its tokens were stored as digests.
            tokens = file.token_digests;
        }
        SourceKind::Tradingview => {
            let t = file
                .token
                .or_else(|| {
                    (name == "tradingview")
                        .then(|| defaults.tradingview_token.clone())
                        .flatten()
                })
                .ok_or_else(|| {
                    format!(
                        "sources.{name}: a TradingView source needs a token \
                         (sources.{name}.token, or TRADINGVIEW_TOKEN for the source 'tradingview')"
                    )
                })?;
            validate_token(&name, t.expose_secret())?;
            tokens.push(TokenDigest::of(t.expose_secret(), None));
        }
    }
    let ack_wait = Duration::from_millis(file.ack_wait_ms.unwrap_or(match kind {
        SourceKind::Tradingview => 2500,
        SourceKind::Custom => defaults.ack_wait_ms,
    }));
    if kind == SourceKind::Tradingview && ack_wait >= TRADINGVIEW_MAX_ACK_WAIT {
        return Err(format!(
            "sources.{name}.ack_wait_ms: {} ms is too long; TradingView gives up after 3 s, \
             so keep it below {} ms",
            ack_wait.as_millis(),
            TRADINGVIEW_MAX_ACK_WAIT.as_millis()
        ));
    }
    let allowed_ips = match file.allowed_ips {
        Some(list) => Some(parse_nets(&format!("sources.{name}.allowed_ips"), &list)?),
        None => None,
    };
    let rate_limit_rps = file.rate_limit_rps.unwrap_or(defaults.rate_limit_rps);
    if rate_limit_rps == 0 {
        return Err(format!(
            "sources.{name}.rate_limit_rps: must be greater than 0"
        ));
    }
    let scheme = file.scheme.unwrap_or_default();
    let replay_window = Duration::from_secs(defaults.replay_window_sec);
    let tolerance = match scheme {
        CustomScheme::StandardWebhooks => file
            .tolerance_sec
            .map(Duration::from_secs)
            .unwrap_or(STANDARD_WEBHOOKS_TOLERANCE),
        // No nonce is remembered for body-hmac, but one rule for every
        // scheme is easier to reason about than a wider window for the
        // weakest one.
        CustomScheme::BodyHmac => file
            .tolerance_sec
            .map(Duration::from_secs)
            .unwrap_or(replay_window),
        CustomScheme::HmacSha256 => replay_window,
    };
    // Nonces are remembered for twice the replay window; a wider tolerance
    // would let a nonce be forgotten while its timestamp is still accepted.
    if tolerance > replay_window {
        return Err(format!(
            "sources.{name}.tolerance_sec: {} s is more than replay_window_sec ({} s)",
            tolerance.as_secs(),
            replay_window.as_secs()
        ));
    }
    let content_dedupe = Duration::from_secs(
        file.content_dedupe_sec
            .unwrap_or(DEFAULT_CONTENT_DEDUPE_SEC.min(defaults.idempotency_ttl_sec)),
    );
    if content_dedupe.as_secs() > defaults.idempotency_ttl_sec {
        return Err(format!(
            "sources.{name}.content_dedupe_sec: {} s is more than idempotency_ttl_sec ({} s)",
            content_dedupe.as_secs(),
            defaults.idempotency_ttl_sec
        ));
    }
    let format = file.format.unwrap_or_default();
    if let Some(m) = &file.mapping {
        validate_mapping(&name, m)?;
        if format != FormatChoice::Auto {
            return Err(format!(
                "sources.{name}: set either format or mapping, not both"
            ));
        }
    }
    let redact_fields = file
        .redact_fields
        .iter()
        .map(|f| {
            f.chars()
                .filter(|c| !matches!(c, ' ' | '-' | '_'))
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    Ok(SourceConfig {
        id,
        kind,
        format,
        mapping: file.mapping,
        redact_fields,
        content_dedupe,
        scheme,
        body_hmac,
        tolerance,
        keys,
        tokens,
        rate_limit_rps,
        rate_limit_burst: file
            .rate_limit_burst
            .unwrap_or(defaults.rate_limit_burst)
            .max(1),
        allowed_ips,
        ack_wait,
        client_cert: file.client_cert,
        priority: file.priority.unwrap_or_default(),
    })
}

/// The header settings of a `body-hmac` source, checked: each a valid
/// HTTP header name, no two the same, the format one of the three; and
/// refused on any other scheme, where they would silently do nothing.
fn body_hmac_headers(
    name: &str,
    kind: SourceKind,
    scheme: CustomScheme,
    file: &SourceSection,
) -> Result<Option<BodyHmacHeaders>, String> {
    let settings = [
        ("signature_header", &file.signature_header),
        ("id_header", &file.id_header),
        ("timestamp_header", &file.timestamp_header),
        ("timestamp_format", &file.timestamp_format),
    ];
    if kind != SourceKind::Custom || scheme != CustomScheme::BodyHmac {
        return match settings.iter().find(|(_, v)| v.is_some()) {
            Some((key, _)) => Err(format!(
                "sources.{name}.{key}: only a custom source with scheme = \"body-hmac\" \
                 takes it"
            )),
            None => Ok(None),
        };
    }
    let header = |key: &str, value: &Option<String>, default: &str, optional: bool| {
        let value = value.as_deref().unwrap_or(default);
        if value.is_empty() && optional {
            return Ok(None);
        }
        if !is_header_name(value) {
            return Err(format!(
                "sources.{name}.{key}: '{value}' is not an HTTP header name \
                 (letters, digits and !#$%&'*+-.^_`|~){}",
                if optional { "; \"\" for none" } else { "" }
            ));
        }
        Ok(Some(value.to_owned()))
    };
    let signature = header(
        "signature_header",
        &file.signature_header,
        DEFAULT_SIGNATURE_HEADER,
        false,
    )?
    .unwrap_or_default();
    let id = header("id_header", &file.id_header, DEFAULT_ID_HEADER, true)?;
    let timestamp = header(
        "timestamp_header",
        &file.timestamp_header,
        DEFAULT_TIMESTAMP_HEADER,
        true,
    )?;
    // Header names are case-insensitive: X-Id and x-id are one header.
    let named = [Some(&signature), id.as_ref(), timestamp.as_ref()];
    for (i, (key, _)) in settings.iter().enumerate().take(3) {
        let Some(this) = named[i] else { continue };
        if named[..i]
            .iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(this))
        {
            return Err(format!(
                "sources.{name}.{key}: '{this}' is already another of this source's headers"
            ));
        }
    }
    let timestamp_format = match file.timestamp_format.as_deref() {
        None => TimestampFormat::default(),
        Some(_) if timestamp.is_none() => {
            return Err(format!(
                "sources.{name}.timestamp_format: there is no timestamp header \
                 (timestamp_header = \"\")"
            ))
        }
        Some(text) => TimestampFormat::parse(text).ok_or_else(|| {
            format!(
                "sources.{name}.timestamp_format: '{text}' is not one of rfc3339 \
                 (ISO 8601 with an offset, e.g. 2026-12-07T19:33:20Z), unix (seconds), unix_ms"
            )
        })?,
    };
    Ok(Some(BodyHmacHeaders {
        signature,
        id,
        timestamp,
        timestamp_format,
    }))
}

/// An HTTP field name (RFC 9110 `token`): what a sender can put in a header.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Canonical actions a mapping may map to.
const MAPPING_ACTIONS: &[&str] = &[
    "buy",
    "sell",
    "close",
    "close_long",
    "close_short",
    "cancel",
];

const SIZE_UNITS: &[&str] = &[
    "units",
    "contracts",
    "lots",
    "quote",
    "margin",
    "percent_of_equity",
    "percent_of_balance",
    "percent_of_position",
    "percent_of_allocation",
    "risk_percent",
    "risk_quote",
    "risk",
];

const LEVEL_UNITS: &[&str] = &["price", "percent", "pips", "points", "quote"];

fn validate_mapping(name: &str, m: &MappingSettings) -> Result<(), String> {
    let at = |field: &str| format!("sources.{name}.mapping.{field}");
    let pointers = [
        ("symbol", Some(&m.symbol)),
        ("action", Some(&m.action)),
        ("exchange", m.exchange.as_ref()),
        ("size", m.size.as_ref()),
        ("size_unit_from", m.size_unit_from.as_ref()),
        ("currency", m.currency.as_ref()),
        ("price", m.price.as_ref()),
        ("order_type", m.order_type.as_ref()),
        ("stop_loss", m.stop_loss.as_ref()),
        ("take_profit", m.take_profit.as_ref()),
        ("leverage", m.leverage.as_ref()),
        ("id", m.id.as_ref()),
        ("time", m.time.as_ref()),
    ];
    for (field, pointer) in pointers {
        if let Some(p) = pointer {
            if !p.starts_with('/') {
                return Err(format!(
                    "{}: '{p}' must be a JSON pointer such as /order/symbol",
                    at(field)
                ));
            }
        }
    }
    for (vendor, action) in &m.action_values {
        if !MAPPING_ACTIONS.contains(&action.as_str()) {
            return Err(format!(
                "{}: '{vendor}' maps to '{action}', which is not one of {}",
                at("action_values"),
                MAPPING_ACTIONS.join(", ")
            ));
        }
    }
    let units = m.size_unit.iter().chain(m.size_unit_values.values());
    for unit in units {
        if !SIZE_UNITS.contains(&unit.as_str()) {
            return Err(format!(
                "{}: '{unit}' is not one of {}",
                at("size_unit"),
                SIZE_UNITS.join(", ")
            ));
        }
    }
    if m.size.is_some() && m.size_unit.is_none() && m.size_unit_from.is_none() {
        return Err(format!(
            "{}: a mapped size needs its unit (size_unit, or size_unit_from with size_unit_values)",
            at("size")
        ));
    }
    if m.size_unit.is_some() && m.size_unit_from.is_some() {
        return Err(format!(
            "{}: set size_unit or size_unit_from, not both",
            at("size_unit")
        ));
    }
    for (field, unit) in [
        ("stop_loss_unit", &m.stop_loss_unit),
        ("take_profit_unit", &m.take_profit_unit),
    ] {
        if let Some(u) = unit {
            if !LEVEL_UNITS.contains(&u.as_str()) {
                return Err(format!(
                    "{}: '{u}' is not one of {}",
                    at(field),
                    LEVEL_UNITS.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Tokens travel in URLs and inside JSON strings; restricting them to URL-safe
/// characters guarantees their bytes appear verbatim in the body, so they can
/// be redacted before anything is published.
fn validate_token(source: &str, token: &str) -> Result<(), String> {
    let charset_ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if token.len() < 16 || token.len() > 256 || !charset_ok {
        return Err(format!(
            "sources.{source}.token: must be 16-256 characters of A-Z a-z 0-9 - _ . ~"
        ));
    }
    Ok(())
}

pub fn parse_nets(name: &str, items: &[String]) -> Result<Vec<IpNet>, String> {
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{name}: '{s}' is not an IP address or CIDR network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> SourceDefaults {
        SourceDefaults::default()
    }

    /// Builds source `sender` from a TOML section body.
    fn build(section: &str) -> Result<SourceConfig, String> {
        let file: SourceSection = toml::from_str(section).map_err(|e| e.to_string())?;
        let id = SourceId::parse("sender").ok_or("source id")?;
        build_source(id, file, &defaults())
    }

    const SECRET: &str = "secret = \"body-secret-0123456789\"\n";

    #[test]
    fn body_hmac_defaults_are_the_seed_publishers_headers() {
        let s = build(&format!("scheme = \"body-hmac\"\n{SECRET}")).unwrap();
        assert_eq!(s.scheme, CustomScheme::BodyHmac);
        assert_eq!(
            s.body_hmac,
            Some(BodyHmacHeaders {
                signature: "X-Webhook-Signature".into(),
                id: Some("X-Webhook-Id".into()),
                timestamp: Some("X-Webhook-Timestamp".into()),
                timestamp_format: TimestampFormat::Rfc3339,
            })
        );
        assert_eq!(s.tolerance, Duration::from_secs(300), "the replay window");
    }

    #[test]
    fn a_github_style_sender_names_its_headers_and_has_no_timestamp() {
        let s = build(&format!(
            "scheme = \"body-hmac\"\n{SECRET}signature_header = \"X-Hub-Signature-256\"\n\
             id_header = \"X-GitHub-Delivery\"\ntimestamp_header = \"\"\n"
        ))
        .unwrap();
        let h = s.body_hmac.unwrap();
        assert_eq!(h.signature, "X-Hub-Signature-256");
        assert_eq!(h.id.as_deref(), Some("X-GitHub-Delivery"));
        assert_eq!(h.timestamp, None);
    }

    #[test]
    fn body_hmac_formats_and_tolerance() {
        for (name, format) in [
            ("unix", TimestampFormat::Unix),
            ("unix_ms", TimestampFormat::UnixMs),
        ] {
            let s = build(&format!(
                "scheme = \"body-hmac\"\n{SECRET}timestamp_format = \"{name}\"\ntolerance_sec = 60\n"
            ))
            .unwrap();
            assert_eq!(s.body_hmac.unwrap().timestamp_format, format);
            assert_eq!(s.tolerance, Duration::from_secs(60));
        }
        let err = build(&format!(
            "scheme = \"body-hmac\"\n{SECRET}tolerance_sec = 301\n"
        ));
        assert!(err.unwrap_err().contains("tolerance_sec"));
    }

    #[test]
    fn bad_body_hmac_settings_name_the_setting() {
        for (extra, setting) in [
            ("signature_header = \"\"", "sources.sender.signature_header"),
            (
                "signature_header = \"X Sig\"",
                "sources.sender.signature_header",
            ),
            ("id_header = \"X-Id:\"", "sources.sender.id_header"),
            (
                "timestamp_header = \"Zeit\u{e9}\"",
                "sources.sender.timestamp_header",
            ),
            (
                "timestamp_format = \"iso\"",
                "sources.sender.timestamp_format",
            ),
            (
                "timestamp_format = \"unix\"\ntimestamp_header = \"\"",
                "sources.sender.timestamp_format",
            ),
            (
                "id_header = \"X-Webhook-Signature\"",
                "sources.sender.id_header",
            ),
            (
                "timestamp_header = \"x-webhook-id\"",
                "sources.sender.timestamp_header",
            ),
        ] {
            let err = build(&format!("scheme = \"body-hmac\"\n{SECRET}{extra}\n")).unwrap_err();
            assert!(err.starts_with(setting), "{extra}: {err}");
        }
        let short = build("scheme = \"body-hmac\"\nsecret = \"short\"\n").unwrap_err();
        assert!(short.contains("shorter than 16 bytes"), "{short}");
    }

    #[test]
    fn body_hmac_settings_belong_to_body_hmac_sources_only() {
        for scheme in [
            "",
            "scheme = \"hmac-sha256\"\n",
            "scheme = \"standard-webhooks\"\n",
        ] {
            let err = build(&format!(
                "{scheme}secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
                 signature_header = \"X-Hub-Signature-256\"\n"
            ))
            .unwrap_err();
            assert!(err.contains("sources.sender.signature_header"), "{err}");
            assert!(err.contains("body-hmac"), "{err}");
        }
        let plain = build(SECRET).unwrap();
        assert_eq!(
            (plain.scheme, plain.body_hmac),
            (CustomScheme::HmacSha256, None)
        );
        let tv = build(
            "kind = \"tradingview\"\ntoken = \"tv-token-0123456789\"\ntimestamp_format = \"unix\"\n",
        );
        assert!(tv.unwrap_err().contains("timestamp_format"));
    }
}
