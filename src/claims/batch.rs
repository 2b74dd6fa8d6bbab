//! Claims as messages of the signals' own stream, written in the same
//! atomic batch as `signals.raw` and `signals.normalized` (nats-server
//! 2.12+, ADR-50; `stores.backend = "stream"`).
//!
//! A claim is a message on its own subject under [`SUBJECTS`] with
//! `Nats-Expected-Last-Subject-Sequence: 0` and a `Nats-TTL`. The batch is
//! stored all or none, so there is no pending state, lease, take-over,
//! commit or release: a batch that fails stored nothing (its retry finds the
//! subject empty), and a batch whose claim subject already holds a message
//! is refused whole. One read of that subject's last message then gives the
//! holder's record: our own (an earlier attempt of this request landed, so
//! it is stored) or another request's (409 replay or duplicate).
//!
//! Claim subjects stay outside `signals.>`, so agents and `at-gateway tail`
//! never see them. Each claim expires by its own TTL (nonces: twice the
//! replay window; keys: the idempotency TTL, or a body hash's
//! `content_dedupe_sec`); the stream's `max_age` must not be shorter
//! (`publish/connection.rs` checks it).

use std::time::Duration;

use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::ids::SourceId;

/// The claim subjects' common prefix.
pub const PREFIX: &str = "at-gateway.claims";
/// The stream subject pattern that covers every claim.
pub const SUBJECTS: &str = "at-gateway.claims.>";

/// One claim to write in a signal's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchClaim {
    pub subject: String,
    /// How long the claim counts (whole seconds, at least one: `Nats-TTL`).
    pub ttl: Duration,
}

impl BatchClaim {
    /// `kind`: `nonce` or `key`. The subject names the source (dots become
    /// underscores: a subject token has none) for an operator's eye, and
    /// the SHA-256 of the whole key, which is what makes it unique.
    pub fn new(kind: &str, source: &SourceId, key: &str, ttl: Duration) -> BatchClaim {
        let digest = Sha256::digest(key.as_bytes());
        BatchClaim {
            subject: format!(
                "{PREFIX}.{kind}.{}.{}",
                source.as_str().replace('.', "_"),
                hex::encode(digest)
            ),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }

    /// The claim message's headers: it is stored only while its subject
    /// holds none, and counts for its TTL. The message itself (with the
    /// record a later request refused by it is told) is built with the
    /// other records of the batch (`records::claim`).
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        // Rounded up: a claim must never count for less than asked.
        let secs = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        headers.insert(
            async_nats::header::NATS_MESSAGE_TTL,
            format!("{secs}s").as_str(),
        );
        headers
    }
}

/// The message a claim subject holds, if any.
pub async fn holder(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<Bytes>, String> {
    let stream = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| e.to_string())?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(Some(message.payload)),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_subjects_are_outside_signals_and_one_per_key() {
        let source = SourceId::parse("desk.alpha").unwrap();
        let a = BatchClaim::new("key", &source, "desk.alpha:h:K1", Duration::from_secs(60));
        let b = BatchClaim::new("key", &source, "desk.alpha:h:K2", Duration::from_secs(60));
        assert!(a.subject.starts_with("at-gateway.claims.key.desk_alpha."));
        assert_eq!(a.subject.split('.').count(), 5, "{}", a.subject);
        assert_ne!(a.subject, b.subject);
        assert!(crate::publish::connection::subject_matches(
            SUBJECTS, &a.subject
        ));
        assert!(!crate::publish::connection::subject_matches(
            "signals.>",
            &a.subject
        ));
    }

    #[test]
    fn a_claim_expects_an_empty_subject_and_counts_at_least_its_ttl() {
        let source = SourceId::parse("alpha").unwrap();
        let claim = BatchClaim::new(
            "nonce",
            &source,
            "alpha\nn1",
            Duration::from_millis(600_500),
        );
        let headers = claim.headers();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(
            header("Nats-Expected-Last-Subject-Sequence").as_deref(),
            Some("0")
        );
        assert_eq!(header("Nats-TTL").as_deref(), Some("601s"));
        let short = BatchClaim::new("key", &source, "k", Duration::ZERO);
        assert_eq!(short.ttl, Duration::from_secs(1));
    }
}
