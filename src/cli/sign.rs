//! `at-gateway sign SOURCE`: signs a body for a custom source with the
//! source's own configured key and prints the headers and a ready `curl`
//! command. The secret stays in the configuration; only the signature is
//! printed.

use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::ExposeSecret;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{shell_quote, CliError};
use crate::auth::{body, signature, standard};
use crate::config::Settings;
use crate::sources::{CustomScheme, HmacKey, SourceConfig, SourceKind, TimestampFormat};

/// What to sign and for where.
pub struct SignRequest {
    pub source: String,
    pub body: Vec<u8>,
    /// A file holding the body: the curl command then reads it with `@FILE`
    /// (byte-exact, whatever the body holds).
    pub body_file: Option<String>,
    /// Base URL of the gateway; default: derived from `HTTP_ADDR`.
    pub url: Option<String>,
    /// Sign with this key id instead of the newest live one.
    pub key_id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The signed request: headers in order, and the `curl` command.
pub struct Signed {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub curl: String,
}

pub fn sign(settings: &Settings, req: &SignRequest) -> Result<Signed, CliError> {
    let source = settings.source(&req.source).ok_or_else(|| {
        CliError::usage(format!(
            "source {:?} is not configured (ALLOWED_SOURCES / [sources.*])",
            req.source
        ))
    })?;
    if source.kind == SourceKind::Tradingview {
        return Err(CliError::usage(format!(
            "source {:?} is a TradingView source: it authenticates with its token \
             (`passphrase` field or `?token=`), not a signature",
            req.source
        )));
    }
    let key = pick_key(&source.keys, req.key_id.as_deref(), &req.source)?;
    let mut headers = signature_headers(source, key, &req.body)?;
    if let Some(k) = &req.idempotency_key {
        headers.push(("Idempotency-Key".into(), k.clone()));
    }

    let base = req
        .url
        .clone()
        .unwrap_or_else(|| default_base_url(settings));
    let url = format!("{}/webhooks/{}", base.trim_end_matches('/'), req.source);
    let curl = curl_command(&url, &headers, &req.body, req.body_file.as_deref())?;
    Ok(Signed { url, headers, curl })
}

/// `Content-Type` and the headers that sign `body` for `source` with `key`,
/// stamped now: one definition of each scheme's headers for `sign` and the
/// example `sources add` and `sources rotate` print with a new secret.
pub(crate) fn signature_headers(
    source: &SourceConfig,
    key: &HmacKey,
    body: &[u8],
) -> Result<Vec<(String, String)>, CliError> {
    let secret = key.secret.expose_secret();
    let timestamp = unix_now().to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let mut headers = vec![("Content-Type".to_string(), content_type(body).into())];
    match source.scheme {
        CustomScheme::HmacSha256 => {
            let sig = signature::sign(secret.as_bytes(), &timestamp, &id, body);
            headers.push(("X-Timestamp".into(), timestamp));
            headers.push(("X-Nonce".into(), id));
            headers.push(("X-Signature".into(), sig));
        }
        CustomScheme::StandardWebhooks => {
            let msg_id = format!("msg_{}", id.replace('-', ""));
            let sig = standard::sign(secret, &msg_id, &timestamp, body).ok_or_else(|| {
                CliError::usage(format!(
                    "key {:?} of source {:?} is not a valid whsec_ secret",
                    key.id,
                    source.id.as_str()
                ))
            })?;
            headers.push(("webhook-id".into(), msg_id));
            headers.push(("webhook-timestamp".into(), timestamp));
            headers.push(("webhook-signature".into(), sig));
        }
        // The headers the source names, as its sender would send them.
        CustomScheme::BodyHmac => {
            if let Some(h) = &source.body_hmac {
                headers.push((h.signature.clone(), body::sign(secret.as_bytes(), body)));
                if let Some(name) = &h.id {
                    headers.push((name.clone(), id));
                }
                if let Some(name) = &h.timestamp {
                    headers.push((name.clone(), body_timestamp(h.timestamp_format)));
                }
            }
        }
    }
    Ok(headers)
}

/// The named key, else the live key that expires last (a key without
/// `not_after` outlives all), so a rotation's new key is preferred.
fn pick_key<'k>(
    keys: &'k [HmacKey],
    wanted: Option<&str>,
    source: &str,
) -> Result<&'k HmacKey, CliError> {
    let now = OffsetDateTime::now_utc();
    if let Some(id) = wanted {
        let key = keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CliError::usage(format!("source {source:?} has no key {id:?}")))?;
        if !key.live_at(now) {
            return Err(CliError::usage(format!(
                "key {id:?} of source {source:?} has expired"
            )));
        }
        return Ok(key);
    }
    keys.iter()
        .filter(|k| k.live_at(now))
        .max_by_key(|k| {
            k.not_after.unwrap_or(OffsetDateTime::new_utc(
                time::Date::MAX,
                time::Time::MIDNIGHT,
            ))
        })
        .ok_or_else(|| CliError::usage(format!("source {source:?} has no live key")))
}

fn content_type(body: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        "application/json"
    } else {
        "text/plain"
    }
}

fn default_base_url(settings: &Settings) -> String {
    let addr = settings.http_addr;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("http://[{host}]:{}", addr.port())
    } else {
        format!("http://{host}:{}", addr.port())
    }
}

/// A `curl` command sending `body` with `headers`; with `body_file`, curl
/// reads the body from that file (byte-exact, whatever it holds).
pub(crate) fn curl_command(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    body_file: Option<&str>,
) -> Result<String, CliError> {
    let mut cmd = format!("curl -sS -X POST {}", shell_quote(url));
    for (name, value) in headers {
        cmd.push_str(&format!(
            " \\\n  -H {}",
            shell_quote(&format!("{name}: {value}"))
        ));
    }
    let data = match body_file {
        Some(path) => format!("@{path}"),
        None => {
            let text = std::str::from_utf8(body).map_err(|_| {
                CliError::usage("the body is not UTF-8 text: pass it with --body-file")
            })?;
            // curl reads a leading '@' as a file name.
            if text.starts_with('@') {
                return Err(CliError::usage(
                    "the body starts with '@': pass it with --body-file",
                ));
            }
            text.to_string()
        }
    };
    cmd.push_str(&format!(" \\\n  --data-binary {}", shell_quote(&data)));
    Ok(cmd)
}

/// Now, in a `body-hmac` source's timestamp format.
fn body_timestamp(format: TimestampFormat) -> String {
    let now = OffsetDateTime::now_utc();
    match format {
        // A UTC time of this era always formats.
        TimestampFormat::Rfc3339 => now.format(&Rfc3339).unwrap_or_default(),
        TimestampFormat::Unix => now.unix_timestamp().to_string(),
        TimestampFormat::UnixMs => (now.unix_timestamp_nanos() / 1_000_000).to_string(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
