//! Identifiers that travel through the pipeline, parsed and checked once at
//! the boundary so that inner stages never see an unchecked value.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

/// A configured signal source, e.g. `tradingview` or `alpha-bot`.
///
/// Sources name metric labels, log fields and NATS message headers, so their
/// alphabet is restricted: 1–64 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(Arc<str>);

impl SourceId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        ok.then(|| SourceId(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceId({})", self.0)
    }
}

/// Correlation id of one request: taken from `X-Correlation-Id` /
/// `X-Request-Id` when the caller sends a sane one, generated otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrId(Arc<str>);

impl CorrId {
    pub const MAX_LEN: usize = 128;

    /// Accepts a caller-supplied id only if it is short, visible ASCII
    /// (it is echoed in headers and logs).
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v) if is_token(v, Self::MAX_LEN) => CorrId(Arc::from(v)),
            _ => Self::generate(),
        }
    }

    pub fn generate() -> Self {
        CorrId(Arc::from(Uuid::now_v7().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Id of one accepted signal; UUIDv7, so ids sort by time of receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    pub fn generate() -> Self {
        EventId(Uuid::now_v7())
    }

    /// When the id was made (Unix ms): a UUIDv7 carries it.
    pub fn unix_ms(&self) -> Option<u64> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        Some(secs * 1000 + u64::from(nanos) / 1_000_000)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `true` when `v` is 1..=max visible ASCII characters (no spaces or controls).
pub fn is_token(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_restricted() {
        assert!(SourceId::parse("alpha-bot_1.v2").is_some());
        assert!(SourceId::parse("").is_none());
        assert!(SourceId::parse("a b").is_none());
        assert!(SourceId::parse("a/b").is_none());
        assert!(SourceId::parse(&"x".repeat(65)).is_none());
    }

    #[test]
    fn corr_id_rejects_unsafe_header_values() {
        assert_eq!(CorrId::from_header(Some("abc-123")).as_str(), "abc-123");
        assert_ne!(CorrId::from_header(Some("bad value")).as_str(), "bad value");
        assert_ne!(
            CorrId::from_header(Some(&"x".repeat(200))).as_str().len(),
            200
        );
    }
}
