//! Standard Webhooks (standardwebhooks.com), the second custom-source
//! scheme, so any Standard Webhooks sender works unchanged:
//!
//! ```text
//! webhook-id:        msg_p5jXN8AQM9LWM0D4loKWxJek
//! webhook-timestamp: 1614265330
//! webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)> [v1,<…> …]
//! ```
//!
//! The key is the base64 part of a `whsec_…` secret. The signature header
//! may list several signatures (space-separated); any valid `v1` one passes,
//! other versions are ignored. Comparison is constant-time.

use base64::Engine;
use hmac::Mac;
use time::OffsetDateTime;

use super::signature::{dotted_mac, find_key, HmacSha256, SignatureError};
use crate::sources::HmacKey;

/// Most signatures read from one header (a sender lists one per live key).
const MAX_SIGNATURES: usize = 16;

/// Why a Standard Webhooks signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StandardError {
    /// No entry of the header is a well-formed `v1,<base64 of 32 bytes>`
    /// signature made by a key of the source.
    Mismatch,
    /// Only an expired key produced it.
    Expired(String),
}

/// The HMAC key of a `whsec_…` secret (the source model decodes it; the
/// configuration checks it with the same function at start-up).
pub use crate::sources::whsec_key_bytes as key_bytes;

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    dotted_mac(key, id, timestamp, body)
}

/// The signatures of a `webhook-signature` header that could be valid.
fn v1_signatures(header: &str) -> Vec<Vec<u8>> {
    header
        .split_ascii_whitespace()
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter(|sig| sig.len() == 32)
        .collect()
}

/// Returns the id of the first key live at `now` that made one of the
/// header's signatures.
pub fn verify<'k>(
    keys: &'k [HmacKey],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: OffsetDateTime,
) -> Result<&'k str, StandardError> {
    let signatures = v1_signatures(header);
    let made_it = |secret: &[u8]| {
        // The secret is the text of a `whsec_…` key; its HMAC key is what
        // that text decodes to.
        let Some(k) = std::str::from_utf8(secret).ok().and_then(key_bytes) else {
            return false;
        };
        signatures
            .iter()
            .any(|sig| mac(&k, id, timestamp, body).verify_slice(sig).is_ok())
    };
    find_key(keys, now, made_it).map_err(|e| match e {
        SignatureError::Expired(key) => StandardError::Expired(key),
        SignatureError::Mismatch | SignatureError::Malformed => StandardError::Mismatch,
    })
}

/// The `webhook-signature` value a sender would send (tests, docs).
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = key_bytes(secret)?;
    let sig = mac(&key, id, timestamp, body).finalize().into_bytes();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    /// The known-answer vector of the reference libraries' own tests.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn keys() -> Vec<HmacKey> {
        vec![HmacKey {
            id: "k1".into(),
            secret: SecretString::from(SECRET),
            not_after: None,
        }]
    }

    fn check(header: &str) -> Result<(), StandardError> {
        verify(&keys(), ID, TS, BODY, header, OffsetDateTime::now_utc()).map(|_| ())
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIG);
        assert_eq!(check(SIG), Ok(()));
    }

    #[test]
    fn any_one_valid_signature_of_several_passes() {
        let bad = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        assert_eq!(check(&format!("{bad} {SIG}")), Ok(()));
        assert_eq!(check(&format!("v2,abc {SIG} v1,zzz")), Ok(()));
        assert_eq!(check(bad), Err(StandardError::Mismatch));
    }

    #[test]
    fn malformed_signatures_never_pass() {
        for header in [
            "v1,",
            "v1",
            "",
            " ",
            &SIG[..SIG.len() - 4],      // truncated
            &SIG.replace("v1,", "v2,"), // another version
            &SIG.replace("v1,", ""),    // no version
        ] {
            assert_eq!(check(header), Err(StandardError::Mismatch), "{header:?}");
        }
    }

    #[test]
    fn any_change_to_id_timestamp_or_body_fails() {
        let now = OffsetDateTime::now_utc();
        assert!(verify(&keys(), "msg_other", TS, BODY, SIG, now).is_err());
        assert!(verify(&keys(), ID, "1614265331", BODY, SIG, now).is_err());
        assert!(verify(&keys(), ID, TS, br#"{"test": 2432232315}"#, SIG, now).is_err());
    }

    #[test]
    fn secrets_decode_with_or_without_prefix_and_padding() {
        assert_eq!(
            key_bytes(SECRET),
            key_bytes("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        );
        assert_eq!(key_bytes("whsec_AAAA").unwrap(), vec![0, 0, 0]);
        assert_eq!(key_bytes("whsec_AA=="), key_bytes("whsec_AA"));
        assert!(key_bytes("whsec_").is_none());
        assert!(key_bytes("whsec_***").is_none());
    }
}
