//! Handles of the per-request metrics, kept where the hot path reaches
//! them: a source's in its entry of the live source table, a subject's in
//! its publisher. Each is looked up in its vector once, on first use, and
//! then kept, so serving a request hashes no label strings, and a label set
//! shows in `/metrics` only once something was counted under it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use prometheus::{Histogram, IntCounter};

use super::{metrics, REGISTRY_SOURCE, UNKNOWN_SOURCE};
use crate::lanes::Priority;

/// The statuses a webhook is answered with; any other is looked up each time.
const STATUSES: [u16; 14] = [
    202, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 503,
];

/// One source's handles: answers, latency, shed requests, keys used.
pub struct SourceMetrics {
    source: String,
    priority: &'static str,
    received: [OnceLock<IntCounter>; STATUSES.len()],
    duration: OnceLock<Histogram>,
    shed: OnceLock<IntCounter>,
    /// Per HMAC key id of the source.
    key_used: Vec<(String, OnceLock<IntCounter>)>,
    /// Shared by many sources (the registry's): every key counts under
    /// one `key_id` label, `*`, so key ids cannot grow the series either.
    any_key: bool,
}

impl SourceMetrics {
    pub fn new<'a>(
        source: &str,
        priority: &'static str,
        key_ids: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        SourceMetrics {
            source: source.to_string(),
            priority,
            received: Default::default(),
            duration: OnceLock::new(),
            shed: OnceLock::new(),
            key_used: key_ids
                .into_iter()
                .map(|id| (id.to_string(), OnceLock::new()))
                .collect(),
            any_key: false,
        }
    }

    /// Handles shared by every source of the registry in one priority lane.
    pub fn registry(priority: Priority) -> Arc<SourceMetrics> {
        static SHARED: OnceLock<[Arc<SourceMetrics>; 3]> = OnceLock::new();
        let lanes = [Priority::High, Priority::Normal, Priority::Low];
        let shared = SHARED.get_or_init(|| {
            lanes.map(|p| {
                let mut m = SourceMetrics::new(REGISTRY_SOURCE, p.as_str(), ["*"]);
                m.any_key = true;
                Arc::new(m)
            })
        });
        let i = lanes.iter().position(|p| *p == priority).unwrap_or(1);
        shared[i].clone()
    }

    /// Requests for a source that is not allowed, all under one label.
    pub fn unknown() -> &'static SourceMetrics {
        static UNKNOWN: OnceLock<SourceMetrics> = OnceLock::new();
        UNKNOWN.get_or_init(|| SourceMetrics::new(UNKNOWN_SOURCE, "", []))
    }

    /// Counts an answer and its latency.
    pub fn answered(&self, status: StatusCode, latency: Duration) {
        let m = metrics();
        let label = || [self.source.as_str(), status.as_str()];
        match STATUSES.iter().position(|&s| s == status.as_u16()) {
            Some(i) => self.received[i]
                .get_or_init(|| m.webhooks_received.with_label_values(&label()))
                .inc(),
            None => m.webhooks_received.with_label_values(&label()).inc(),
        }
        self.duration
            .get_or_init(|| m.webhook_duration.with_label_values(&[&self.source]))
            .observe(latency.as_secs_f64());
    }

    /// Counts a request refused to keep room for higher lanes.
    pub fn shed(&self) {
        self.shed
            .get_or_init(|| {
                metrics()
                    .requests_shed
                    .with_label_values(&[&self.source, self.priority])
            })
            .inc();
    }

    /// Counts a verification by `key_id`.
    pub fn key_used(&self, key_id: &str) {
        let key_id = if self.any_key { "*" } else { key_id };
        let m = metrics();
        match self.key_used.iter().find(|(id, _)| id == key_id) {
            Some((_, c)) => c
                .get_or_init(|| m.auth_key_used.with_label_values(&[&self.source, key_id]))
                .inc(),
            None => m
                .auth_key_used
                .with_label_values(&[&self.source, key_id])
                .inc(),
        }
    }
}

/// How a publish attempt ended (`gateway_nats_publish_total{status}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishStatus {
    Ok,
    Duplicate,
    Error,
    Timeout,
    NoStream,
    TooLarge,
    /// A batch refused by another request's claim.
    Claimed,
}

impl PublishStatus {
    const ALL: [PublishStatus; 7] = [
        PublishStatus::Ok,
        PublishStatus::Duplicate,
        PublishStatus::Error,
        PublishStatus::Timeout,
        PublishStatus::NoStream,
        PublishStatus::TooLarge,
        PublishStatus::Claimed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PublishStatus::Ok => "ok",
            PublishStatus::Duplicate => "duplicate",
            PublishStatus::Error => "error",
            PublishStatus::Timeout => "timeout",
            PublishStatus::NoStream => "no_stream",
            PublishStatus::TooLarge => "too_large",
            PublishStatus::Claimed => "claimed",
        }
    }
}

struct SubjectMetrics {
    subject: String,
    counts: [OnceLock<IntCounter>; PublishStatus::ALL.len()],
    duration: OnceLock<Histogram>,
}

/// The publish handles of the subjects a publisher writes to.
pub struct PublishMetrics {
    subjects: Vec<SubjectMetrics>,
}

impl PublishMetrics {
    pub fn new<'a>(subjects: impl IntoIterator<Item = &'a str>) -> Self {
        PublishMetrics {
            subjects: subjects
                .into_iter()
                .map(|s| SubjectMetrics {
                    subject: s.to_string(),
                    counts: Default::default(),
                    duration: OnceLock::new(),
                })
                .collect(),
        }
    }

    fn of(&self, subject: &str) -> Option<&SubjectMetrics> {
        self.subjects.iter().find(|s| s.subject == subject)
    }

    /// Counts one attempt at `subject`.
    pub fn count(&self, subject: &str, status: PublishStatus) {
        let vec = &metrics().nats_publish;
        let labels = [subject, status.as_str()];
        match self.of(subject) {
            Some(s) => s.counts[status as usize]
                .get_or_init(|| vec.with_label_values(&labels))
                .inc(),
            None => vec.with_label_values(&labels).inc(),
        }
    }

    /// Records the time from sending to the ack at `subject`.
    pub fn observe(&self, subject: &str, elapsed: Duration) {
        let vec = &metrics().nats_publish_duration;
        let seconds = elapsed.as_secs_f64();
        match self.of(subject) {
            Some(s) => s
                .duration
                .get_or_init(|| vec.with_label_values(&[subject]))
                .observe(seconds),
            None => vec.with_label_values(&[subject]).observe(seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_count_into_the_registry() {
        let source = SourceMetrics::new("handles-test", "normal", ["k1"]);
        source.answered(StatusCode::ACCEPTED, Duration::from_millis(3));
        source.answered(StatusCode::ACCEPTED, Duration::from_millis(3));
        source.answered(StatusCode::IM_A_TEAPOT, Duration::from_millis(3));
        source.key_used("k1");
        source.key_used("k2");
        let m = metrics();
        let received = |s: &str| {
            m.webhooks_received
                .with_label_values(&["handles-test", s])
                .get()
        };
        assert_eq!(received("202"), 2);
        assert_eq!(received("418"), 1);
        assert_eq!(
            m.webhook_duration
                .with_label_values(&["handles-test"])
                .get_sample_count(),
            3
        );
        let used = |k: &str| {
            m.auth_key_used
                .with_label_values(&["handles-test", k])
                .get()
        };
        assert_eq!((used("k1"), used("k2")), (1, 1));

        let publish = PublishMetrics::new(["handles.test"]);
        publish.count("handles.test", PublishStatus::Claimed);
        publish.count("handles.other", PublishStatus::Ok);
        let counted = |s: &str, st: &str| m.nats_publish.with_label_values(&[s, st]).get();
        assert_eq!(counted("handles.test", "claimed"), 1);
        assert_eq!(counted("handles.other", "ok"), 1);
    }
}
