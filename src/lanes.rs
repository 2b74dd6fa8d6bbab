//! Priority lanes: under saturation, low-priority sources are refused first
//! so that high-priority ones keep being served.
//!
//! Two shared resources are split by priority, both the same way: the
//! requests in flight (`lanes.max_in_flight`, counted from the moment a
//! request's source is known until it is answered) and the publisher's
//! places (`nats.max_in_flight_messages` and `nats.buffer_capacity`). A low-priority request may take one only
//! while use is below `low_percent` of the total, a normal one below
//! `normal_percent`, a high one up to the total; so the last places are kept
//! for higher lanes. Refused: 503 `overloaded` (in flight) or `buffer_full`
//! (buffer) with `Retry-After`, safe to retry, and counted in
//! `gateway_requests_shed_total{source,priority}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Deserialize;

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

/// The in-flight counter shared by every worker.
pub struct Lanes {
    in_flight: AtomicUsize,
    settings: LaneSettings,
}

impl Lanes {
    pub fn new(settings: LaneSettings) -> Arc<Self> {
        Arc::new(Lanes {
            in_flight: AtomicUsize::new(0),
            settings,
        })
    }

    /// Admits a request of `priority`, or refuses it when its lane's share
    /// of the in-flight places is used up.
    pub fn enter(self: &Arc<Self>, priority: Priority) -> Option<InFlight> {
        let limit = self.settings.limit(self.settings.max_in_flight, priority);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(InFlight(self.clone()))
    }
}

/// A request's place in flight; released when it is answered.
pub struct InFlight(Arc<Lanes>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: LaneSettings = LaneSettings {
        max_in_flight: 10,
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

    #[test]
    fn a_lane_always_has_one_place() {
        assert_eq!(SETTINGS.limit(1, Priority::Low), 1);
        assert_eq!(SETTINGS.limit(1000, Priority::Normal), 800);
    }
}
