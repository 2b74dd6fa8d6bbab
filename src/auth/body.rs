//! The `body-hmac` scheme, for senders that already sign their own way and
//! cannot be changed: an HMAC-SHA256 of the body alone, in a header the
//! source names.
//!
//! ```text
//! X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, body)>   (the seed's publisher, ADR-002)
//! X-Webhook-Id:        <uuid>
//! X-Webhook-Timestamp: 2026-12-07T19:33:20.123456+00:00
//!
//! X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>   (GitHub-style)
//! X-GitHub-Delivery:   <uuid>
//! ```
//!
//! The signature is checked exactly as `X-Signature` is (`signature.rs`:
//! the same `sha256=<hex>` parsing, constant-time comparison, key
//! rotation). What this scheme cannot do is stop replays: neither the id
//! nor the timestamp is signed, so they are read here only to tell honest
//! re-sends apart (the id) and refuse stale copies of stored requests (the
//! timestamp). No nonce is claimed. SECURITY.md says what that means.

use hmac::Mac;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::signature::{body_mac, find_key, parse_header, SignatureError};
use crate::sources::{HmacKey, TimestampFormat};

/// The values of a `body-hmac` source's configured headers, as received
/// (`None`: absent, or the source names no such header).
#[derive(Debug, Default)]
pub struct Presented {
    pub signature: Option<String>,
    pub id: Option<String>,
    pub timestamp: Option<String>,
}

/// Returns the id of the first key live at `now` whose HMAC of `body` is
/// the `sha256=<hex>` in `header`.
pub fn verify<'k>(
    keys: &'k [HmacKey],
    body: &[u8],
    header: &str,
    now: OffsetDateTime,
) -> Result<&'k str, SignatureError> {
    let signature = parse_header(header)?;
    find_key(keys, now, |secret| {
        body_mac(secret, body).verify_slice(&signature).is_ok()
    })
}

/// The signature header value a sender would send (tests, docs).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mac = body_mac(secret, body).finalize().into_bytes();
    format!("sha256={}", hex::encode(mac))
}

/// A timestamp in the source's format, as Unix seconds (what the window
/// check compares); `None` when it is not in that format.
pub fn unix_seconds(value: &str, format: TimestampFormat) -> Option<i64> {
    let value = value.trim();
    match format {
        TimestampFormat::Rfc3339 => OffsetDateTime::parse(value, &Rfc3339)
            .ok()
            .map(OffsetDateTime::unix_timestamp),
        TimestampFormat::Unix => value.parse().ok(),
        TimestampFormat::UnixMs => value.parse::<i64>().ok().map(|ms| ms.div_euclid(1000)),
    }
}

/// What a sender is told its timestamp must look like.
pub fn format_hint(format: TimestampFormat) -> &'static str {
    match format {
        TimestampFormat::Rfc3339 => {
            "an RFC 3339 / ISO 8601 time with an offset, like 2026-12-07T19:33:20Z"
        }
        TimestampFormat::Unix => "Unix seconds",
        TimestampFormat::UnixMs => "Unix milliseconds",
    }
}

#[cfg(test)]
mod tests {
    use super::super::signature::test_key as key;
    use super::*;

    /// GitHub's documented example ("Validating webhook deliveries"):
    /// secret "It's a Secret to Everybody", payload "Hello, World!".
    #[test]
    fn githubs_known_answer() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn the_body_alone_is_signed_in_either_hex_case_and_any_change_fails() {
        let now = OffsetDateTime::now_utc();
        let keys = [key("k1", "body-secret-0123456789")];
        let header = sign(b"body-secret-0123456789", b"{\"a\":1}");
        assert_eq!(verify(&keys, b"{\"a\":1}", &header, now), Ok("k1"));
        let upper = format!("sha256={}", header["sha256=".len()..].to_uppercase());
        assert_eq!(verify(&keys, b"{\"a\":1}", &upper, now), Ok("k1"));
        assert_eq!(
            verify(&keys, b"{\"a\":2}", &header, now),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "sha256=", "sha1=abcd", &header["sha256=".len()..]] {
            assert_eq!(
                verify(&keys, b"{\"a\":1}", bad, now),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_expired_key_is_named_not_accepted() {
        let now = OffsetDateTime::now_utc();
        let mut old = key("old", "old-body-secret-0123");
        old.not_after = Some(now - time::Duration::seconds(1));
        let keys = [old, key("new", "new-body-secret-0123")];
        let by_old = sign(b"old-body-secret-0123", b"x");
        assert_eq!(
            verify(&keys, b"x", &by_old, now),
            Err(SignatureError::Expired("old".into()))
        );
        let by_new = sign(b"new-body-secret-0123", b"x");
        assert_eq!(verify(&keys, b"x", &by_new, now), Ok("new"));
    }

    #[test]
    fn timestamps_in_each_format() {
        let at = 1_796_672_000; // 2026-12-07T19:33:20Z
        for iso in [
            "2026-12-07T19:33:20Z",
            "2026-12-07T19:33:20.123456+00:00",
            "2026-12-07T20:33:20+01:00",
            " 2026-12-07t19:33:20.5z ",
            "2026-12-07 19:33:20Z", // RFC 3339 allows a space for the T
        ] {
            assert_eq!(
                unix_seconds(iso, TimestampFormat::Rfc3339),
                Some(at),
                "{iso}"
            );
        }
        for not_iso in [
            "2026-12-07T19:33:20", // no offset: which zone?
            "20261207T193320Z",    // ISO 8601 basic format
            "1796672000",
            "",
        ] {
            assert_eq!(
                unix_seconds(not_iso, TimestampFormat::Rfc3339),
                None,
                "{not_iso}"
            );
        }
        assert_eq!(unix_seconds("1796672000", TimestampFormat::Unix), Some(at));
        assert_eq!(unix_seconds("1796672000.5", TimestampFormat::Unix), None);
        assert_eq!(
            unix_seconds("1796672000999", TimestampFormat::UnixMs),
            Some(at)
        );
        assert_eq!(
            unix_seconds("2026-12-07T19:33:20Z", TimestampFormat::UnixMs),
            None
        );
    }
}
