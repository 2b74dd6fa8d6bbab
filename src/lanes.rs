//! Priority lanes: under saturation, low-priority sources are refused first
//! so that high-priority ones keep being served.
//!
//! Three shared resources are split by priority, all the same way: the
//! requests in flight (`lanes.max_in_flight`, counted from the moment a
//! request's source is known until it is answered), the bytes their bodies
//! may hold meanwhile (`lanes.max_body_bytes_in_flight`: what bounds the
//! memory of a burst, since a request waiting for its turn holds its body)
//! and the publisher's places (`nats.max_in_flight_messages` and
//! `nats.buffer_capacity`). A low-priority request may take one only
//! while use is below `low_percent` of the total, a normal one below
//! `normal_percent`, a high one up to the total; so the last places are kept
//! for higher lanes. Refused: 503 `overloaded` (in flight) or `buffer_full`
//! (buffer) with `Retry-After`, safe to retry, and counted in
//! `gateway_requests_shed_total{source,priority}`.
//!
//! Of the requests in flight, at most `lanes.max_working` are worked on at
//! once (authenticated, claimed, normalized, published); the others wait
//! their turn in arrival order, each only while it could still be answered
//! within its lane's share of its cap given how long work takes now
//! (`ingress::arrival::turn_deadline`), then 503 `overloaded`. Without turns a
//! burst larger than NATS can store in time makes every request late
//! together: on the 2-core bench host, 3000 TradingView alerts in one second
//! had 25 answered 202, the other 2975 ran into their 2.5 s cap, while the
//! same burst, served in order, fits (bench/burst.sh, BENCHMARKS.md).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};

/// A source's lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// `[lanes]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSettings {
    /// Requests in flight at once, all lanes together, per process.
    pub max_in_flight: usize,
    /// Of those, requests worked on at once; the rest wait their turn.
    pub max_working: usize,
    /// Room for the bodies of the requests in flight, in bytes, taken as
    /// the bytes arrive (an announced length is only a claim).
    pub max_body_bytes_in_flight: usize,
    /// Share of each resource low- and normal-priority sources may use.
    pub low_percent: u8,
    pub normal_percent: u8,
}

impl LaneSettings {
    /// How much of `total` a lane may have in use.
    pub fn limit(&self, total: usize, priority: Priority) -> usize {
        let percent = match priority {
            Priority::High => return total,
            Priority::Normal => self.normal_percent,
            Priority::Low => self.low_percent,
        };
        // At least one place, so a lane is never shut completely.
        (total * usize::from(percent) / 100).max(1)
    }
}

/// The in-flight counter and the turns, shared by every worker.
pub struct Lanes {
    in_flight: AtomicUsize,
    body_bytes: AtomicUsize,
    /// Fair: waiters get their turn in the order they asked for it.
    turns: Semaphore,
    /// How long a turn's work took lately, in microseconds (a moving
    /// average, each new one weighing 1/8).
    work_us: AtomicU64,
    settings: LaneSettings,
}

impl Lanes {
    pub fn new(settings: LaneSettings) -> Arc<Self> {
        Arc::new(Lanes {
            in_flight: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
            turns: Semaphore::new(settings.max_working.max(1)),
            work_us: AtomicU64::new(0),
            settings,
        })
    }

    /// How long a turn's work takes lately.
    pub fn work_estimate(&self) -> Duration {
        Duration::from_micros(self.work_us.load(Ordering::Relaxed))
    }

    /// Records how long one turn's work took.
    pub fn record_work(&self, took: Duration) {
        let took = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.work_us.load(Ordering::Relaxed);
        // Racing updates may lose one sample; the average does not care.
        let new = old - old / 8 + took / 8;
        self.work_us.store(new, Ordering::Relaxed);
    }

    /// Waits for a turn to be worked on, until `until` at the latest;
    /// `None` once it has passed (the request is then shed).
    pub async fn turn(&self, until: std::time::Instant) -> Option<SemaphorePermit<'_>> {
        let until = tokio::time::Instant::from_std(until);
        match tokio::time::timeout_at(until, self.turns.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            // Timed out; (the semaphore is never closed).
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Admits a request of `priority`, or refuses it when its lane's share
    /// of the in-flight places is used up.
    pub fn enter(self: &Arc<Self>, priority: Priority) -> Option<InFlight> {
        let s = &self.settings;
        if !take(&self.in_flight, 1, s.limit(s.max_in_flight, priority)) {
            return None;
        }
        Some(InFlight(self.clone()))
    }

    /// Room for one request's body, empty until [`BodyRoom::grow`] takes it.
    pub fn body_room(self: &Arc<Self>, priority: Priority) -> BodyRoom {
        BodyRoom {
            lanes: self.clone(),
            priority,
            held: 0,
        }
    }
}

/// Adds `n` to `used` unless that would pass `limit`.
fn take(used: &AtomicUsize, n: usize, limit: usize) -> bool {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        (u + n <= limit).then_some(u + n)
    })
    .is_ok()
}

/// A request's place in flight; released when it is answered.
pub struct InFlight(Arc<Lanes>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bytes one request's body holds of `lanes.max_body_bytes_in_flight`;
/// given back when it is answered.
pub struct BodyRoom {
    lanes: Arc<Lanes>,
    priority: Priority,
    held: usize,
}

impl BodyRoom {
    /// Takes `n` more bytes, or refuses when the lane's share is used up.
    pub fn grow(&mut self, n: usize) -> bool {
        let s = &self.lanes.settings;
        let limit = s.limit(s.max_body_bytes_in_flight, self.priority);
        let taken = take(&self.lanes.body_bytes, n, limit);
        if taken {
            self.held += n;
        }
        taken
    }
}

impl Drop for BodyRoom {
    fn drop(&mut self) {
        self.lanes.body_bytes.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: LaneSettings = LaneSettings {
        max_in_flight: 10,
        max_working: 2,
        max_body_bytes_in_flight: 1000,
        low_percent: 50,
        normal_percent: 80,
    };

    #[test]
    fn lower_lanes_stop_first_and_places_come_back() {
        let lanes = Lanes::new(SETTINGS);
        let low: Vec<_> = (0..5).map_while(|_| lanes.enter(Priority::Low)).collect();
        assert_eq!(low.len(), 5);
        assert!(lanes.enter(Priority::Low).is_none());
        let normal: Vec<_> = (0..10)
            .map_while(|_| lanes.enter(Priority::Normal))
            .collect();
        assert_eq!(normal.len(), 3);
        let high: Vec<_> = (0..10).map_while(|_| lanes.enter(Priority::High)).collect();
        assert_eq!(high.len(), 2);
        drop(low);
        assert!(lanes.enter(Priority::Low).is_none(), "still 5 in flight");
        drop(normal);
        assert!(lanes.enter(Priority::Low).is_some());
    }

    #[tokio::test]
    async fn a_wait_for_a_turn_ends_with_a_released_turn_or_at_its_deadline() {
        let lanes = Lanes::new(SETTINGS);
        let now = std::time::Instant::now;
        let soon = || now() + std::time::Duration::from_millis(50);
        let first = lanes.turn(soon()).await.expect("a free turn");
        let _second = lanes.turn(soon()).await.expect("a free turn");
        // Both turns taken: the third waits, and gives up at its deadline.
        assert!(lanes.turn(soon()).await.is_none());
        // A waiter gets the turn released before its deadline.
        let waiting = lanes.turn(now() + std::time::Duration::from_secs(5));
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(first);
        };
        assert!(futures_util::join!(waiting, release).0.is_some());
    }

    #[test]
    fn bodies_take_room_by_lane_as_they_grow_and_give_it_back() {
        let lanes = Lanes::new(SETTINGS);
        // Low: half of the 1000 bytes.
        let mut low = lanes.body_room(Priority::Low);
        assert!(low.grow(300) && low.grow(100));
        let mut other = lanes.body_room(Priority::Low);
        assert!(!other.grow(101), "501 > 500");
        assert!(other.grow(100));
        // High may use all of it.
        let mut high = lanes.body_room(Priority::High);
        assert!(!high.grow(501));
        assert!(high.grow(500));
        drop((low, other, high));
        assert!(lanes.body_room(Priority::Low).grow(500));
    }

    #[test]
    fn a_lane_always_has_one_place() {
        assert_eq!(SETTINGS.limit(1, Priority::Low), 1);
        assert_eq!(SETTINGS.limit(1000, Priority::Normal), 800);
    }
}
