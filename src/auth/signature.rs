//! The custom-source signing scheme:
//! `X-Signature: sha256=<hex HMAC-SHA256(secret, X-Timestamp "." X-Nonce "." body)>`.
//!
//! Verification is constant-time (`Mac::verify_slice`); every live key of
//! the source is tried, and the id of the one that matched is reported.

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::sources::HmacKey;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why a signature header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Not of the form `sha256=<64 hex digits>`.
    Malformed,
    /// Well-formed, but no key produced it.
    Mismatch,
    /// Only an expired key produced it (the sender missed a rotation).
    Expired(String),
}

/// Parses `sha256=<hex>` into the 32 MAC bytes.
pub fn parse_header(value: &str) -> Result<[u8; 32], SignatureError> {
    let hex_part = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

/// An HMAC-SHA256 keyed with `key`.
fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

/// HMAC-SHA256 over `first "." second "." body`: the shape both signing
/// schemes share (timestamp.nonce.body here, id.timestamp.body in Standard
/// Webhooks).
pub(crate) fn dotted_mac(key: &[u8], first: &str, second: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(key);
    mac.update(first.as_bytes());
    mac.update(b".");
    mac.update(second.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// HMAC-SHA256 over the body alone (`body-hmac`, `auth/body.rs`).
pub(crate) fn body_mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(key);
    mac.update(body);
    mac
}

fn mac_for(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> HmacSha256 {
    dotted_mac(secret, timestamp, nonce, body)
}

/// Returns the id of the first key live at `now` whose MAC matches
/// `signature`. An expired key never verifies; it is only named in the error.
pub fn verify<'k>(
    keys: &'k [HmacKey],
    timestamp: &str,
    nonce: &str,
    body: &[u8],
    signature: &[u8; 32],
    now: OffsetDateTime,
) -> Result<&'k str, SignatureError> {
    find_key(keys, now, |secret| {
        mac_for(secret, timestamp, nonce, body)
            .verify_slice(signature)
            .is_ok()
    })
}

/// The id of the first key live at `now` whose secret `made_it` accepts
/// (each scheme's constant-time MAC check); every scheme rotates keys the
/// same way. An expired key never verifies: when only one matches, the
/// error names it, so a sender that missed a rotation is told so.
pub(crate) fn find_key(
    keys: &[HmacKey],
    now: OffsetDateTime,
    made_it: impl Fn(&[u8]) -> bool,
) -> Result<&str, SignatureError> {
    let matches = |key: &&HmacKey| made_it(key.secret.expose_secret().as_bytes());
    if let Some(key) = keys.iter().filter(|k| k.live_at(now)).find(matches) {
        return Ok(key.id.as_str());
    }
    match keys.iter().filter(|k| !k.live_at(now)).find(matches) {
        Some(expired) => Err(SignatureError::Expired(expired.id.clone())),
        None => Err(SignatureError::Mismatch),
    }
}

/// Computes the header value a sender would send (used by tests, the
/// benchmark's load generator and the docs' worked example).
pub fn sign(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    let mac = mac_for(secret, timestamp, nonce, body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A key without an end, for the schemes' unit tests.
#[cfg(test)]
pub(crate) fn test_key(id: &str, secret: &str) -> HmacKey {
    HmacKey {
        id: id.into(),
        secret: secrecy::SecretString::from(secret),
        not_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::test_key as key;
    use super::*;

    /// The worked example in API_SPEC.md; a sender in any language can check
    /// its implementation against these exact values.
    #[test]
    fn worked_example_from_api_spec() {
        let header = sign(
            b"example-secret-do-not-use",
            "1767225600",
            "4f9c2a7e-0b1d-4c55-9a61-2d8e3f0a7b19",
            br#"{"symbol":"BTCUSDT","action":"buy","quantity":"0.5"}"#,
        );
        assert_eq!(
            header,
            "sha256=d21ba72dbd5576e8680653c863d88507cf7291802290c245a43584475a2957ef"
        );
    }

    #[test]
    fn any_live_key_verifies_and_is_named() {
        let now = OffsetDateTime::now_utc();
        let keys = [
            key("old", "old-secret-0123456789"),
            key("new", "new-secret-0123456789"),
        ];
        let sig = parse_header(&sign(b"new-secret-0123456789", "1", "n", b"{}")).unwrap();
        assert_eq!(verify(&keys, "1", "n", b"{}", &sig, now), Ok("new"));
        assert_eq!(
            verify(&keys, "2", "n", b"{}", &sig, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_expired_key_no_longer_verifies() {
        let now = OffsetDateTime::now_utc();
        let mut old = key("old", "old-secret-0123456789");
        old.not_after = Some(now + time::Duration::seconds(10));
        let keys = [old, key("new", "new-secret-0123456789")];
        let sig = parse_header(&sign(b"old-secret-0123456789", "1", "n", b"{}")).unwrap();
        assert_eq!(verify(&keys, "1", "n", b"{}", &sig, now), Ok("old"));
        let later = now + time::Duration::seconds(11);
        assert_eq!(
            verify(&keys, "1", "n", b"{}", &sig, later),
            Err(SignatureError::Expired("old".into()))
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "sha256=",
            "sha1=abcd",
            "sha256=zz",
            &format!("sha256={}", "a".repeat(63)),
        ] {
            assert_eq!(parse_header(bad), Err(SignatureError::Malformed), "{bad}");
        }
    }
}
