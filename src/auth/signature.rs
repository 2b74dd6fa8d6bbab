//! The custom-source signing scheme:
//! `X-Signature: sha256=<hex HMAC-SHA256(secret, X-Timestamp "." X-Nonce "." body)>`.
//!
//! Verification is constant-time (`Mac::verify_slice`); every live key of
//! the source is tried, and the id of the one that matched is reported.

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::HmacKey;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Not of the form `sha256=<64 hex digits>`.
    Malformed,
    /// Well-formed, but no live key produced it.
    Mismatch,
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

fn mac_for(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Returns the id of the first key whose MAC matches `signature`.
pub fn verify<'k>(
    keys: &'k [HmacKey],
    timestamp: &str,
    nonce: &str,
    body: &[u8],
    signature: &[u8; 32],
) -> Result<&'k str, SignatureError> {
    keys.iter()
        .find(|key| {
            mac_for(
                key.secret.expose_secret().as_bytes(),
                timestamp,
                nonce,
                body,
            )
            .verify_slice(signature)
            .is_ok()
        })
        .map(|key| key.id.as_str())
        .ok_or(SignatureError::Mismatch)
}

/// Computes the header value a sender would send (used by tests, the
/// benchmark's load generator and the docs' worked example).
pub fn sign(secret: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    let mac = mac_for(secret, timestamp, nonce, body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn key(id: &str, secret: &str) -> HmacKey {
        HmacKey {
            id: id.into(),
            secret: SecretString::from(secret),
        }
    }

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
        let keys = [
            key("old", "old-secret-0123456789"),
            key("new", "new-secret-0123456789"),
        ];
        let sig = parse_header(&sign(b"new-secret-0123456789", "1", "n", b"{}")).unwrap();
        assert_eq!(verify(&keys, "1", "n", b"{}", &sig), Ok("new"));
        assert_eq!(
            verify(&keys, "2", "n", b"{}", &sig),
            Err(SignatureError::Mismatch)
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
