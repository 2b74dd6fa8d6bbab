//! TradingView authentication. TradingView sends no custom headers, so a
//! source proves itself with a per-source token, given either as the
//! `passphrase` field of a JSON body or as a `token` query parameter, and
//! optionally with the sender's address (TradingView publishes four).
//!
//! The token must never travel further than this module: it is redacted from
//! the body bytes (which are published raw) and removed from the parsed JSON.

use std::net::IpAddr;

use bytes::Bytes;
use ipnet::IpNet;
use serde_json::Value;
use time::OffsetDateTime;

use crate::sources::TokenDigest;

/// What replaces the token's bytes in a published body.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// The JSON field that carries the token.
pub const PASSPHRASE_FIELD: &str = "passphrase";

/// Why a TradingView request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Mismatch,
    /// The passphrase matched only after JSON unescaping, so its bytes could
    /// not be redacted from the raw body.
    Escaped,
}

/// `true` when `ip` is inside one of `allowed`.
pub fn sender_allowed(ip: IpAddr, allowed: &[IpNet]) -> bool {
    // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    allowed.iter().any(|net| net.contains(&ip))
}

/// The result of checking a TradingView body and query token.
pub struct Verified {
    /// The body with every occurrence of the token replaced by `[REDACTED]`.
    pub body: Bytes,
    /// The body parsed as JSON (passphrase removed), when it is JSON.
    pub json: Option<Value>,
}

/// Verifies the token(s) presented and strips them.
///
/// Every token presented must match: a JSON body's `passphrase` and the
/// `token` query parameter, whichever are there; at least one must be.
/// `expected`: the source's live tokens (any one verifies; compared in
/// constant time on digests, `TokenDigest::matches`).
pub fn verify(
    body: Bytes,
    query_token: Option<&str>,
    expected: &[TokenDigest],
    now: OffsetDateTime,
) -> Result<Verified, TokenError> {
    // TradingView labels anything that is not exactly valid JSON as
    // text/plain; the body's content decides, not its header.
    let json = parse_object(&body);
    let passphrases: Vec<String> = match &json {
        Some(v) => v
            .get(PASSPHRASE_FIELD)
            .map(|p| p.as_str().unwrap_or_default().to_owned())
            .into_iter()
            .collect(),
        // A template that is almost JSON (an unquoted placeholder, a trailing
        // comma) still carries its passphrase: authenticate it, so the sender
        // gets 422 with the parse error rather than a misleading 401.
        None => scan_passphrases(&body),
    };
    if passphrases.is_empty() && query_token.is_none() {
        return Err(TokenError::Missing);
    }
    for presented in passphrases.iter().map(String::as_str).chain(query_token) {
        if !expected.iter().any(|t| t.matches(presented, now)) {
            return Err(TokenError::Mismatch);
        }
    }
    // The gateway keeps only digests: what is redacted is each token as
    // presented (every one matched a live token). A passphrase's bytes must
    // be found in the body, or it was escaped and cannot be redacted.
    let mut clean: Option<Bytes> = None;
    let mut distinct: Vec<&str> = passphrases.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    for token in distinct {
        match redact(clean.as_ref().unwrap_or(&body), token.as_bytes()) {
            Some(redacted) => clean = Some(redacted),
            None => return Err(TokenError::Escaped),
        }
    }
    if let Some(token) = query_token {
        if let Some(redacted) = redact(clean.as_ref().unwrap_or(&body), token.as_bytes()) {
            clean = Some(redacted);
        }
    }
    let (body, json) = match clean {
        // Re-read the redacted body, so the token cannot survive anywhere in
        // the parsed value either.
        Some(clean) => {
            let json = parse_object(&clean);
            (clean, json)
        }
        None => (body, json),
    };
    let json = json.map(|mut v| {
        if let Some(map) = v.as_object_mut() {
            map.shift_remove(PASSPHRASE_FIELD);
        }
        v
    });
    Ok(Verified { body, json })
}

/// Parses `body` as a JSON value if it is one (whitespace around it, and a
/// leading UTF-8 byte-order mark as some Windows tools write, allowed).
pub fn parse_object(body: &[u8]) -> Option<Value> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    serde_json::from_slice::<Value>(body).ok()
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Every `"passphrase": "<value>"` in a body that does not parse as JSON.
/// Only values without escapes are taken: their bytes are what gets redacted
/// (an escaped one is left out and the request fails as `Missing`, or
/// `Mismatch` beside another token, never verified unredacted).
fn scan_passphrases(body: &[u8]) -> Vec<String> {
    let key = format!("\"{PASSPHRASE_FIELD}\"");
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&key) {
        rest = &rest[at + key.len()..];
        let Some(after_colon) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(value) = after_colon.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find(['"', '\\']) {
            if value.as_bytes()[end] == b'"' {
                found.push(value[..end].to_owned());
            }
        }
    }
    found
}

/// Replaces every occurrence of `needle` in `haystack`; `None` if there is none.
pub fn redact(haystack: &[u8], needle: &[u8]) -> Option<Bytes> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    let mut found = false;
    while let Some(pos) = find(rest, needle) {
        found = true;
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(REDACTED);
        rest = &rest[pos + needle.len()..];
    }
    if !found {
        return None;
    }
    out.extend_from_slice(rest);
    Some(Bytes::from(out))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Vec<TokenDigest> {
        vec![TokenDigest::of("tv-token-0123456789", None)]
    }

    fn verify(
        body: Bytes,
        query: Option<&str>,
        expected: &[TokenDigest],
    ) -> Result<Verified, TokenError> {
        super::verify(body, query, expected, OffsetDateTime::now_utc())
    }

    #[test]
    fn passphrase_in_json_is_verified_and_stripped() {
        let body = Bytes::from_static(
            br#"{"passphrase":"tv-token-0123456789","ticker":"BTCUSDT","action":"buy"}
"#,
        );
        let v = verify(body, None, &secret()).unwrap();
        assert!(!String::from_utf8_lossy(&v.body).contains("tv-token"));
        let json = v.json.unwrap();
        assert!(json.get("passphrase").is_none());
        assert_eq!(json["ticker"], "BTCUSDT");
    }

    #[test]
    fn query_token_with_plain_text_body() {
        let body = Bytes::from_static(b"buy BTCUSDT 1 token=tv-token-0123456789");
        let v = verify(body, Some("tv-token-0123456789"), &secret()).unwrap();
        assert_eq!(&v.body[..], b"buy BTCUSDT 1 token=[REDACTED]");
        assert!(v.json.is_none());
    }

    #[test]
    fn wrong_or_missing_tokens_are_refused() {
        let body = Bytes::from_static(br#"{"passphrase":"nope","ticker":"X"}"#);
        assert_eq!(
            verify(body.clone(), None, &secret()).err(),
            Some(TokenError::Mismatch)
        );
        assert_eq!(
            verify(body, Some("tv-token-0123456789"), &secret()).err(),
            Some(TokenError::Mismatch),
            "a wrong passphrase fails even beside a right query token"
        );
        assert_eq!(
            verify(Bytes::from_static(b"buy X 1"), None, &secret()).err(),
            Some(TokenError::Missing)
        );
    }

    #[test]
    fn an_escaped_passphrase_is_refused_because_it_cannot_be_redacted() {
        let body = Bytes::from_static(br#"{"passphrase":"tv-token-\u0030123456789"}"#);
        assert_eq!(
            verify(body, None, &secret()).err(),
            Some(TokenError::Escaped)
        );
    }

    #[test]
    fn the_passphrase_of_almost_json_is_verified_and_redacted() {
        // An unquoted placeholder and a trailing comma: not JSON, but the
        // token is there and must authenticate, then vanish from the body.
        let body = Bytes::from_static(
            br#"{"passphrase" : "tv-token-0123456789","qty":{{strategy.order.contracts}},}"#,
        );
        let v = verify(body, None, &secret()).unwrap();
        assert!(v.json.is_none());
        assert_eq!(
            &v.body[..],
            br#"{"passphrase" : "[REDACTED]","qty":{{strategy.order.contracts}},}"#
        );
        let forged = Bytes::from_static(br#"{"passphrase":"guess","qty":{{x}}}"#);
        assert_eq!(
            verify(forged, None, &secret()).err(),
            Some(TokenError::Mismatch)
        );
        let two =
            Bytes::from_static(br#"{"passphrase":"tv-token-0123456789","passphrase":"guess",}"#);
        assert_eq!(
            verify(two, None, &secret()).err(),
            Some(TokenError::Mismatch),
            "every passphrase presented must match"
        );
    }

    #[test]
    fn a_json_body_after_a_byte_order_mark_is_json() {
        let body = Bytes::from_static(
            b"\xEF\xBB\xBF{\"passphrase\":\"tv-token-0123456789\",\"ticker\":\"X\"}",
        );
        let v = verify(body, None, &secret()).unwrap();
        assert_eq!(v.json.unwrap()["ticker"], "X");
    }

    #[test]
    fn ipv4_mapped_senders_match_ipv4_networks() {
        let nets: Vec<IpNet> = vec!["52.89.214.238/32".parse().unwrap()];
        assert!(sender_allowed("52.89.214.238".parse().unwrap(), &nets));
        assert!(sender_allowed(
            "::ffff:52.89.214.238".parse().unwrap(),
            &nets
        ));
        assert!(!sender_allowed("52.89.214.239".parse().unwrap(), &nets));
    }
}
