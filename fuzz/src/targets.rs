//! The bodies of the fuzz targets, shared by the `cargo fuzz` binaries in
//! `fuzz/fuzz_targets/` and by the main crate's `tests/it/fuzz_regressions.rs`
//! (which includes this file with `#[path]` and feeds it every input in
//! `fuzz/seeds/` and `fuzz/regressions/`). Each body panics when an
//! invariant breaks; a panic inside the gateway's own code is a finding.
//!
//! Only the gateway's public API and its own dependencies are used here, so
//! the file compiles in both crates.

use at_gateway::auth::{signature, standard};
use at_gateway::config::NormalizedSchema;
use at_gateway::normalize::{self, plaintext};
use at_gateway::records::{DeadLetter, Meta, RawEnvelope};
use at_gateway::sources::{HmacKey, SourceKind};
use secrecy::SecretString;
use serde_json::Value;
use time::OffsetDateTime;

/// Fake keys: not secrets, only test vectors.
const HMAC_SECRET: &str = "fuzz-only-hmac-secret-0123456789";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn keys(secret: &str) -> Vec<HmacKey> {
    vec![
        HmacKey {
            id: "old".into(),
            secret: SecretString::from(secret.to_owned()),
            // Expired: named in the error, never verifies.
            not_after: Some(OffsetDateTime::UNIX_EPOCH),
        },
        HmacKey {
            id: "live".into(),
            secret: SecretString::from(secret.to_owned()),
            not_after: None,
        },
    ]
}

/// Splits the input at the first two `\n` into (header, second, rest), so a
/// fuzzer can steer the header, a timestamp/nonce and the body separately.
fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let a = parts.next().unwrap_or_default();
    let b = parts.next().unwrap_or_default();
    let c = parts.next().unwrap_or_default();
    (a, b, c)
}

/// `X-Signature` (src/auth/signature.rs) and `webhook-signature`
/// (src/auth/standard.rs): parsing any header never panics, a parsed
/// header round-trips, and what `sign` makes always verifies with the live
/// key, over any timestamp, nonce and body.
pub fn signature_header(data: &[u8]) {
    let (header, middle, body) = split3(data);
    let header = String::from_utf8_lossy(header);
    let middle = String::from_utf8_lossy(middle);
    let now = OffsetDateTime::now_utc();
    let hmac_keys = keys(HMAC_SECRET);
    let std_keys = keys(WHSEC);

    // X-Signature: arbitrary header.
    match signature::parse_header(&header) {
        Ok(mac) => {
            let canonical = format!("sha256={}", hex::encode(mac));
            assert_eq!(
                canonical.to_ascii_lowercase(),
                header.trim().to_ascii_lowercase(),
                "a parsed X-Signature must be sha256=<64 hex>"
            );
            // A random MAC verifies with no key (2^-256), and the expired
            // key is never accepted.
            if let Ok(id) = signature::verify(&hmac_keys, &middle, &middle, body, &mac, now) {
                assert_eq!(id, "live");
            }
        }
        Err(e) => assert_eq!(e, signature::SignatureError::Malformed),
    }
    // X-Signature: what a correct sender makes verifies, in either hex case.
    let signed = signature::sign(HMAC_SECRET.as_bytes(), &header, &middle, body);
    for variant in [
        signed.clone(),
        signed
            .to_ascii_uppercase()
            .replacen("SHA256=", "sha256=", 1),
    ] {
        let mac = signature::parse_header(&variant).expect("a signed header parses");
        assert_eq!(
            signature::verify(&hmac_keys, &header, &middle, body, &mac, now),
            Ok("live")
        );
        // A different body never verifies.
        let mut other = body.to_vec();
        other.push(b'x');
        assert!(signature::verify(&hmac_keys, &header, &middle, &other, &mac, now).is_err());
    }

    // webhook-signature: arbitrary header; the only possible answers.
    match standard::verify(&std_keys, &middle, &middle, body, &header, now) {
        Ok(id) => assert_eq!(id, "live"),
        Err(standard::StandardError::Mismatch) => {}
        Err(standard::StandardError::Expired(id)) => assert_eq!(id, "old"),
    }
    // Any string as a secret: key_bytes never panics.
    let _ = standard::key_bytes(&header);
    // What a correct sender makes verifies, also among other entries.
    let signed = standard::sign(WHSEC, &middle, &header, body).expect("the whsec secret is valid");
    let listed = format!("v2,abc {header} {signed}");
    let listed = if listed.split_ascii_whitespace().count() <= 16 {
        listed
    } else {
        signed.clone()
    };
    assert_eq!(
        standard::verify(&std_keys, &middle, &header, body, &listed, now),
        Ok("live"),
        "header {listed:?}"
    );
}

/// TradingView plain text (src/normalize/plaintext.rs): never panics, and
/// whatever it reads is an object of non-empty-keyed string values.
pub fn plaintext(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(map) = plaintext::parse(text) {
        for (k, v) in &map {
            assert!(!k.is_empty(), "empty key from {text:?}");
            assert!(v.is_string(), "non-string value {v:?} from {text:?}");
        }
    }
}

/// The normalizer (src/normalize/) and the records built from its answer
/// (src/records/, the builders the live path uses): any body, read as the
/// pipeline reads it (JSON when it parses, text otherwise), for both source
/// kinds. Never panics; the raw envelope gives back the body's exact bytes;
/// a signal it builds has the documented invariants and serializes in both
/// schema versions; a refusal always says why and its dead letter
/// serializes.
pub fn normalize(data: &[u8]) {
    // The one body reader of the live path (a byte-order mark allowed).
    let json: Option<Value> = normalize::parse_json(data);
    for kind in [SourceKind::Custom, SourceKind::Tradingview] {
        let meta = Meta {
            event_id: "0193a6c2-7f0e-7b61-9d2c-5a4b3c2d1e0f".into(),
            corr_id: "fuzz".into(),
            source: "fuzz".into(),
            source_kind: kind,
            received_at: "2026-11-22T14:30:00.123Z".into(),
        };
        let raw = RawEnvelope::new(&meta, "hmac-sha256", None, "key".into(), None, data);
        assert_eq!(
            raw.body_bytes().expect("an envelope decodes its own body"),
            data,
            "the raw envelope must keep the body's exact bytes"
        );
        match normalize::normalize(&meta, data, json.clone()) {
            Ok(signal) => {
                for version in [NormalizedSchema::V1, NormalizedSchema::V2] {
                    signal.document(version).expect("a signal serializes");
                }
                let sym = &signal.instrument.symbol;
                assert!(
                    !sym.is_empty()
                        && sym.len() <= normalize::MAX_SYMBOL_LEN
                        && sym.bytes().all(|b| b.is_ascii_graphic()),
                    "symbol {sym:?}"
                );
                let doc = serde_json::to_value(&signal).expect("a signal serializes");
                for s in [
                    &doc["size"]["value"],
                    &doc["price"],
                    &doc["stop_loss"]["value"],
                    &doc["take_profit"]["value"],
                    &doc["leverage"],
                ]
                .into_iter()
                .filter_map(Value::as_str)
                {
                    {
                        assert!(
                            !s.starts_with('-') || s.trim_start_matches(['-', '0', '.']).is_empty(),
                            "{s:?} is negative"
                        );
                    }
                }
                if let Some(t) = doc["asserted_at"].as_str() {
                    assert!(
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339
                        )
                        .is_ok(),
                        "asserted_at {t:?} is not RFC 3339"
                    );
                }
            }
            Err(reasons) => {
                assert!(!reasons.is_empty(), "a refusal without a reason");
                let letter = DeadLetter::new(&meta, reasons, "signals.raw", "key:raw".into());
                serde_json::to_vec(&letter).expect("a dead letter serializes");
            }
        }
    }
}
