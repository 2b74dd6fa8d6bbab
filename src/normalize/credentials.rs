//! Credentials found inside bodies never reach the stream.
//!
//! Many alert formats carry a trader's secrets in the message itself
//! (3Commas `secret` and `email_token`, OKX `signalToken`, PickMyTrade
//! `token`, exchange `api_key`/`api_secret`, PineConnector's licence id).
//! Every consumer of `signals.>` would hold them, so before anything is
//! published they are replaced by `[REDACTED]` in the raw body and dropped
//! from the normalized signal's `extra`.
//!
//! A field is a credential when its name, squashed (lower case, without
//! `_`, `-` and spaces), contains one of [`DEFAULT_MARKERS`] or equals one
//! of the source's own `redact_fields`. Over-redacting a harmless field
//! costs a reviewer a value; under-redacting leaks an account.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::fields::squash;

/// What replaces a credential's value.
pub const REDACTED: &str = "[REDACTED]";

/// Squashed name fragments that mark a credential field.
pub const DEFAULT_MARKERS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passphrase",
    "apikey",
    "privatekey",
    "licenseid",
    "licenceid",
    "credential",
];

/// Which field names are credentials for one source.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    /// The source's own additions (`redact_fields`), squashed.
    pub extra_names: &'a [String],
}

impl Policy<'_> {
    /// `true` when a field called `name` holds a credential.
    pub fn is_credential(&self, name: &str) -> bool {
        let key = squash(name);
        DEFAULT_MARKERS.iter().any(|m| key.contains(m)) || self.extra_names.contains(&key)
    }
}

/// Replaces, anywhere inside `v`, the value of every credential field by
/// [`REDACTED`], and returns the secret texts it found (to redact from the
/// raw body).
pub fn scrub_json(v: &mut Value, policy: Policy<'_>) -> Vec<String> {
    let mut found = Vec::new();
    scrub_value(v, policy, &mut found);
    found
}

fn scrub_value(v: &mut Value, policy: Policy<'_>, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if policy.is_credential(k) {
                    collect(item, found);
                    *item = Value::String(REDACTED.into());
                } else {
                    scrub_value(item, policy, found);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub_value(i, policy, found)),
        _ => {}
    }
}

/// Every scalar inside a credential's value, as text.
fn collect(v: &Value, found: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.is_empty() && s != REDACTED => found.push(s.clone()),
        Value::Number(n) => found.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| collect(i, found)),
        Value::Object(map) => map.values().for_each(|i| collect(i, found)),
        _ => {}
    }
}

/// Drops credential fields (already `[REDACTED]`) from a map kept as the
/// signal's `extra`, at any depth.
pub fn drop_from(map: &mut Map<String, Value>, policy: Policy<'_>) {
    map.retain(|k, _| !policy.is_credential(k));
    for item in map.values_mut() {
        drop_nested(item, policy);
    }
}

fn drop_nested(v: &mut Value, policy: Policy<'_>) {
    match v {
        Value::Object(map) => drop_from(map, policy),
        Value::Array(items) => items.iter_mut().for_each(|i| drop_nested(i, policy)),
        _ => {}
    }
}

/// The secrets in `key=value` text (`token=abc`, `TOKEN = abc`), where a
/// value runs to the next space, comma, semicolon, `&`, `)` or line end.
pub fn scan_text(text: &str, policy: Policy<'_>) -> Vec<String> {
    let mut found = Vec::new();
    let is_sep =
        |c: char| c.is_whitespace() || matches!(c, ',' | ';' | '&' | '(' | ')' | '{' | '}');
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let before = rest[..eq].trim_end_matches([' ', '\t']);
        let key_start = before.rfind(is_sep).map(|i| i + 1).unwrap_or(0);
        let key = &before[key_start..];
        let after = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let end = after.find(is_sep).unwrap_or(after.len());
        let value = &after[..end];
        if !key.is_empty() && !value.is_empty() && policy.is_credential(key) {
            found.push(value.to_owned());
        }
        rest = &rest[eq + 1..];
    }
    found
}

/// Replaces `part` wherever it occurs inside the strings of `v` (a secret
/// that is only part of a value, like the bot id at the end of a
/// WunderTrading code).
pub fn scrub_parts(v: &mut Value, parts: &[String]) {
    match v {
        Value::String(s) => {
            for p in parts.iter().filter(|p| !p.is_empty()) {
                if s.contains(p.as_str()) {
                    *s = s.replace(p.as_str(), REDACTED);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub_parts(i, parts)),
        Value::Object(map) => map.values_mut().for_each(|i| scrub_parts(i, parts)),
        _ => {}
    }
}

/// The body as it may be published: every secret's bytes replaced.
///
/// For JSON, each whole-value secret's JSON string form and each `parts`
/// secret's text is replaced, and the result must parse to exactly
/// `scrubbed` (the body with credentials redacted); where byte replacement
/// cannot give that (an escaped or numeric secret, or a secret text that
/// also appears elsewhere), the scrubbed document is published
/// re-serialized instead, so a secret can never survive.
pub fn redact_body(
    body: &Bytes,
    secrets: &[String],
    parts: &[String],
    scrubbed: Option<&Value>,
) -> Bytes {
    if secrets.is_empty() && parts.is_empty() {
        return body.clone();
    }
    match scrubbed {
        Some(doc) => {
            let mut out = body.to_vec();
            for s in secrets {
                let quoted = serde_json::to_string(s).unwrap_or_default();
                let with = serde_json::to_string(REDACTED).unwrap_or_default();
                out = replace_all(&out, quoted.as_bytes(), with.as_bytes());
            }
            for p in parts {
                out = replace_all(&out, p.as_bytes(), REDACTED.as_bytes());
            }
            let faithful = super::parse_json(&out).is_some_and(|v| &v == doc)
                && !secrets
                    .iter()
                    .chain(parts)
                    .any(|s| contains(&out, s.as_bytes()));
            if faithful {
                Bytes::from(out)
            } else {
                Bytes::from(serde_json::to_vec(doc).unwrap_or_default())
            }
        }
        None => {
            let mut out = body.to_vec();
            for s in secrets.iter().chain(parts) {
                out = replace_all(&out, s.as_bytes(), REDACTED.as_bytes());
            }
            Bytes::from(out)
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NONE: Policy<'static> = Policy { extra_names: &[] };

    #[test]
    fn credential_names_are_matched_squashed() {
        for name in [
            "secret",
            "email_token",
            "signalToken",
            "api_key",
            "API-SECRET",
            "passphrase",
            "licenseID",
        ] {
            assert!(NONE.is_credential(name), "{name}");
        }
        for name in ["ticker", "action", "amount", "bot_id", "key_id_hint"] {
            assert!(!NONE.is_credential(name), "{name}");
        }
        let extra = ["pin".to_string()];
        assert!(Policy {
            extra_names: &extra
        }
        .is_credential("PIN"));
    }

    #[test]
    fn json_secrets_are_redacted_in_place_keeping_the_bytes() {
        let body = Bytes::from_static(
            br#"{"secret": "s3cr3t-abc", "pair":"USDT_BTC", "nested":{"api_key":"AK-1"}, "n": 1.50}"#,
        );
        let mut doc: Value = serde_json::from_slice(&body).unwrap();
        let found = scrub_json(&mut doc, NONE);
        assert_eq!(found, ["s3cr3t-abc", "AK-1"]);
        let out = redact_body(&body, &found, &[], Some(&doc));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"secret": "[REDACTED]", "pair":"USDT_BTC", "nested":{"api_key":"[REDACTED]"}, "n": 1.50}"#
        );
    }

    #[test]
    fn a_secret_that_bytes_cannot_remove_falls_back_to_the_scrubbed_document() {
        // Escaped in the body: the plain text does not occur there.
        let body = Bytes::from_static(br#"{"token":"a\u0062c-123456","ticker":"X"}"#);
        let mut doc: Value = serde_json::from_slice(&body).unwrap();
        let found = scrub_json(&mut doc, NONE);
        let out = redact_body(&body, &found, &[], Some(&doc));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            !text.contains("abc-123456") && !text.contains("a\\u0062c"),
            "{text}"
        );
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), doc);
    }

    #[test]
    fn text_secrets_are_found_in_key_value_pairs() {
        let text = "SIGNAL=BUY\nTOKEN = tok-99\nsymbol=BTCUSDT, api_key=k1;x=1";
        assert_eq!(scan_text(text, NONE), ["tok-99", "k1"]);
        let out = redact_body(&Bytes::from(text), &scan_text(text, NONE), &[], None);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "SIGNAL=BUY\nTOKEN = [REDACTED]\nsymbol=BTCUSDT, api_key=[REDACTED];x=1"
        );
    }

    #[test]
    fn extra_keeps_no_credential() {
        let mut m =
            json!({"a": 1, "secret": "[REDACTED]", "o": {"signalToken": "[REDACTED]", "b": 2}})
                .as_object()
                .unwrap()
                .clone();
        drop_from(&mut m, NONE);
        assert_eq!(Value::Object(m), json!({"a": 1, "o": {"b": 2}}));
    }
}
