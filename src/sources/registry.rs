//! The source registry: sources kept in a JetStream key-value bucket that
//! every replica watches (`reload/registry.rs`), so a platform can give
//! thousands of traders a webhook of their own without files or restarts.
//! `at-gateway sources …` writes it; NATS credentials are the access control.
//!
//! One key per source (its name), one JSON [`SourceRecord`] per key, so a
//! change to a source is one atomic write and a replica applies it whole.
//! A record holds the source's settings as a `[sources.<name>]` section
//! would write them (so they are checked by the same code, `build.rs`),
//! and never a secret in clear:
//! - TradingView tokens as SHA-256 digests ([`TokenDigest`]);
//! - HMAC secrets sealed with ChaCha20-Poly1305 under the registry key
//!   (`SOURCE_REGISTRY_KEY`, 32 random bytes, base64), with the source name
//!   and key id as associated data, so a sealed secret cannot be moved to
//!   another source or key.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::build::{RawKey, SourceDefaults, SourceSection};
use super::{build_source, SourceConfig, TokenDigest};
use crate::ids::SourceId;

/// The bucket's name unless configured (`registry.bucket`).
pub const DEFAULT_BUCKET: &str = "at-gateway-sources";

/// Settings a record may not carry: they would be secrets in clear.
const CLEAR_SECRETS: &[&str] = &["secret", "secrets", "token", "passphrase"];

/// The key that seals the registry's HMAC secrets.
#[derive(Clone)]
pub struct RegistryKey(Key);

impl std::fmt::Debug for RegistryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryKey(..)")
    }
}

impl RegistryKey {
    /// `text`: the base64 of 32 bytes (whitespace around it ignored).
    pub fn from_base64(text: &SecretString) -> Result<RegistryKey, String> {
        let bytes = STANDARD
            .decode(text.expose_secret().trim())
            .map_err(|_| "the registry key is not base64".to_string())?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the registry key must be 32 bytes (base64 of 32 random bytes)")?;
        Ok(RegistryKey(bytes.into()))
    }

    /// A new random key and its base64 text.
    pub fn generate() -> (RegistryKey, SecretString) {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let text = SecretString::from(STANDARD.encode(key));
        (RegistryKey(key), text)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0)
    }

    /// `secret` sealed for `source`'s key `key_id`: base64 of nonce and
    /// ciphertext.
    pub fn seal(&self, source: &str, key_id: &str, secret: &SecretString) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(source, key_id);
        let payload = Payload {
            msg: secret.expose_secret().as_bytes(),
            aad: &aad,
        };
        // Encryption fails only past 2^38 bytes of input.
        let sealed = self.cipher().encrypt(&nonce, payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// The secret sealed by [`RegistryKey::seal`] for the same source and key.
    pub fn open(&self, source: &str, key_id: &str, sealed: &str) -> Result<SecretString, String> {
        let fail = || format!("secret '{key_id}' does not open with the registry key");
        let bytes = STANDARD.decode(sealed).map_err(|_| fail())?;
        if bytes.len() < 12 {
            return Err(fail());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let aad = associated_data(source, key_id);
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        let clear = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| fail())?;
        String::from_utf8(clear)
            .map(SecretString::from)
            .map_err(|_| fail())
    }
}

fn associated_data(source: &str, key_id: &str) -> Vec<u8> {
    format!("at-gateway-source\n{source}\n{key_id}").into_bytes()
}

/// A new random token or secret: 32 bytes, base64url without padding (43
/// characters a TradingView token and a URL both accept).
pub fn random_token() -> SecretString {
    let bytes = ChaCha20Poly1305::generate_key(&mut OsRng);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new random Standard Webhooks secret: `whsec_` and the standard base64
/// of 32 random bytes (what a `scheme = "standard-webhooks"` source needs).
pub fn random_whsec_secret() -> SecretString {
    let bytes = ChaCha20Poly1305::generate_key(&mut OsRng);
    SecretString::from(format!("{}{}", super::WHSEC_PREFIX, STANDARD.encode(bytes)))
}

/// One source as the registry stores it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// The settings of a `[sources.<name>]` section (kind, scheme, rates,
    /// format, mapping, priority, …), without secrets or tokens.
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// TradingView sources: the digests of the live tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<StoredToken>,
    /// Custom sources: the sealed HMAC secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SealedSecret>,
    /// A disabled source is not served (403), but kept for `enable`.
    #[serde(default)]
    pub disabled: bool,
    /// When `at-gateway sources` last wrote it (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
}

/// A TradingView token's digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// RFC 3339; after it the token verifies nothing (end of a rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// An HMAC secret sealed with the registry key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub id: String,
    pub sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

impl SourceRecord {
    /// The source to serve, checked like a configured one. `key` opens the
    /// sealed secrets.
    pub fn build(
        &self,
        id: &SourceId,
        key: Option<&RegistryKey>,
        defaults: &SourceDefaults,
    ) -> Result<SourceConfig, String> {
        let name = id.as_str();
        if let Some(field) = CLEAR_SECRETS
            .iter()
            .find(|f| self.settings.contains_key(**f))
        {
            return Err(format!(
                "registry source {name}: settings may not hold '{field}' (secrets are sealed, tokens hashed)"
            ));
        }
        let mut section: SourceSection =
            serde_json::from_value(Value::Object(self.settings.clone()))
                .map_err(|e| format!("registry source {name}: {e}"))?;
        for sealed in &self.secrets {
            let key = key.ok_or_else(|| {
                format!("registry source {name}: its secrets need the registry key (SOURCE_REGISTRY_KEY)")
            })?;
            section.secrets.push(RawKey {
                id: sealed.id.clone(),
                secret: key
                    .open(name, &sealed.id, &sealed.sealed)
                    .map_err(|e| format!("registry source {name}: {e}"))?,
                not_after: sealed.not_after.clone(),
            });
        }
        for (i, token) in self.tokens.iter().enumerate() {
            let not_after = token.not_after.as_deref().map(parse_time).transpose()?;
            let digest = TokenDigest::from_hex(&token.sha256, not_after).ok_or_else(|| {
                format!("registry source {name}: tokens[{i}] is not a SHA-256 digest")
            })?;
            section.token_digests.push(digest);
        }
        build_source(id.clone(), section, defaults)
    }
}

/// An RFC 3339 time as records write them.
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| format!("'{text}' is not an RFC 3339 time"))
}

/// `t` as records write times: RFC 3339, whole seconds.
pub fn time_text(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Now, as records write times.
pub fn now_text() -> String {
    time_text(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;

    fn defaults() -> SourceDefaults {
        SourceDefaults::default()
    }

    fn settings(json: Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_source_and_key() {
        let (key, _) = RegistryKey::generate();
        let secret = SecretString::from("registry-test-secret-0123456789");
        let sealed = key.seal("alpha", "k1", &secret);
        assert!(!sealed.contains("registry-test-secret"));
        let opened = key.open("alpha", "k1", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), secret.expose_secret());
        assert!(
            key.open("beta", "k1", &sealed).is_err(),
            "moved to another source"
        );
        assert!(
            key.open("alpha", "k2", &sealed).is_err(),
            "moved to another key"
        );
        let (other, _) = RegistryKey::generate();
        assert!(
            other.open("alpha", "k1", &sealed).is_err(),
            "another registry key"
        );
    }

    #[test]
    fn a_key_is_32_bytes_of_base64() {
        let (_, text) = RegistryKey::generate();
        assert!(RegistryKey::from_base64(&text).is_ok());
        assert!(RegistryKey::from_base64(&SecretString::from("c2hvcnQ=")).is_err());
        assert!(RegistryKey::from_base64(&SecretString::from("not base64!")).is_err());
    }

    #[test]
    fn a_tradingview_record_builds_with_its_token_digests() {
        let id = SourceId::parse("trader-1").unwrap();
        let token = random_token();
        let record = SourceRecord {
            settings: settings(serde_json::json!({"kind": "tradingview", "priority": "high"})),
            tokens: vec![StoredToken {
                sha256: TokenDigest::of(token.expose_secret(), None).to_hex(),
                not_after: None,
            }],
            ..Default::default()
        };
        let source = record.build(&id, None, &defaults()).unwrap();
        assert_eq!(source.kind, SourceKind::Tradingview);
        let now = OffsetDateTime::now_utc();
        assert!(source.tokens[0].matches(token.expose_secret(), now));
        assert!(!source.tokens[0].matches("another-token-0123456789", now));
    }

    #[test]
    fn a_custom_record_opens_its_secrets_with_the_key() {
        let id = SourceId::parse("bot-1").unwrap();
        let (key, _) = RegistryKey::generate();
        let secret = SecretString::from("registry-test-secret-0123456789");
        let record = SourceRecord {
            settings: settings(serde_json::json!({"kind": "custom"})),
            secrets: vec![SealedSecret {
                id: "k1".into(),
                sealed: key.seal("bot-1", "k1", &secret),
                not_after: None,
            }],
            ..Default::default()
        };
        let source = record.build(&id, Some(&key), &defaults()).unwrap();
        assert_eq!(
            source.keys[0].secret.expose_secret(),
            secret.expose_secret()
        );
        let err = record.build(&id, None, &defaults()).unwrap_err();
        assert!(err.contains("SOURCE_REGISTRY_KEY"), "{err}");
    }

    #[test]
    fn settings_with_a_secret_in_clear_are_refused() {
        let id = SourceId::parse("tv").unwrap();
        let record = SourceRecord {
            settings: settings(serde_json::json!({"kind": "tradingview", "token": "x"})),
            ..Default::default()
        };
        let err = record.build(&id, None, &defaults()).unwrap_err();
        assert!(err.contains("'token'"), "{err}");
        let record = SourceRecord {
            settings: settings(serde_json::json!({"kind": "tradingview", "color": "red"})),
            ..Default::default()
        };
        assert!(
            record.build(&id, None, &defaults()).is_err(),
            "unknown setting"
        );
    }
}
