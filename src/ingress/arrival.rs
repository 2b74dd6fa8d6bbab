//! When a request really arrived, and whether it can still be answered in
//! time.
//!
//! TradingView opens a connection per alert and cancels it 3 s after it
//! sent; under a bar-close burst the time an alert spends waiting to be
//! accepted and read counts against those 3 s, yet the handler only sees it
//! once its headers are in. So the first request on a TradingView
//! connection counts from when the connection was accepted (after the TLS
//! handshake on HTTPS), and a request that has already spent too much of
//! its source's acknowledgement cap waiting is shed at once (503
//! `overloaded`, which TradingView re-sends 5 s later, after the burst)
//! instead of doing work it would finish after TradingView gave up. Lower
//! lanes are shed sooner. Custom sources keep counting from the handler:
//! their clients may open connections ahead of use. Only a connection's
//! first request, of any route, counts from the accept: on a kept-alive
//! connection (a client that probed `/healthz` first, or sent an earlier
//! alert) the accept says nothing about when a later request arrived.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::{Extensions, Service, ServiceRequest, ServiceResponse};
use actix_web::{HttpMessage, HttpRequest};

use crate::lanes::Priority;
use crate::sources::{SourceConfig, SourceKind};

/// Stored on each connection when it is accepted.
pub struct ConnectedAt {
    at: Instant,
    /// Set by the connection's first request, which alone counts from `at`.
    first_taken: AtomicBool,
}

/// Stored on a connection's first request, whatever its route, by
/// [`mark_first`]: when its connection was accepted.
#[derive(Clone, Copy)]
struct FirstOnConnection(Instant);

/// Middleware for every route: the first request a connection carries
/// takes its accept time; later ones find none and count from the handler.
pub fn mark_first<S>(req: ServiceRequest, srv: &S) -> S::Future
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let first = req
        .conn_data::<ConnectedAt>()
        .filter(|c| !c.first_taken.swap(true, Ordering::Relaxed))
        .map(|c| FirstOnConnection(c.at));
    if let Some(first) = first {
        req.extensions_mut().insert(first);
    }
    srv.call(req)
}

/// The server's `on_connect` hook: the arrival time, and TLS facts.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    ext.insert(ConnectedAt {
        at: Instant::now(),
        first_taken: AtomicBool::new(false),
    });
    crate::tls::on_connect(conn, ext);
}

/// When `req` arrived for `source`: its connection's accept time for the
/// first request of a TradingView connection, else `handled` (when the
/// handler began).
pub fn arrived(req: &HttpRequest, source: &SourceConfig, handled: Instant) -> Instant {
    if source.kind != SourceKind::Tradingview {
        return handled;
    }
    match req.extensions().get::<FirstOnConnection>() {
        Some(first) => first.0.min(handled),
        None => handled,
    }
}

/// The share of its acknowledgement cap a request may have spent waiting
/// before the handler and still be served: half its lane's share of the
/// gateway's capacity (`lanes.*_percent`), so with TradingView's 2.5 s cap
/// a low request is shed after 0.6 s of waiting, normal after 1 s, high
/// after 1.25 s; what is left of the cap is for the work itself.
pub fn too_late(
    waited: Duration,
    cap: Duration,
    priority: Priority,
    lanes: &crate::lanes::LaneSettings,
) -> bool {
    waited > wait_budget(cap, priority, lanes)
}

/// The latest a request that arrived at `started` may get its turn: while
/// it could still be answered within its lane's share of its cap (`cap` x
/// `lanes.*_percent`) with the recent work time (`work`) to go, and never
/// sooner than its [`wait_budget`]. The share's margin below the cap (for
/// the normal lane, 20 % of TradingView's 2.5 s) absorbs work that takes
/// longer than lately; twice the work time, tried first, shed bursts the
/// gateway then answered with a second to spare (BENCHMARKS.md, "Bursts").
pub fn turn_deadline(
    started: Instant,
    cap: Duration,
    priority: Priority,
    lanes: &crate::lanes::LaneSettings,
    work: Duration,
) -> Instant {
    let horizon = lane_share(cap, priority, lanes).saturating_sub(work);
    started + horizon.max(wait_budget(cap, priority, lanes))
}

/// A lane's share (`lanes.*_percent`) of the acknowledgement cap `cap`.
fn lane_share(cap: Duration, priority: Priority, lanes: &crate::lanes::LaneSettings) -> Duration {
    let share = lanes.limit(1000, priority) as u32; // per mille of the cap
    cap * share / 1000
}

/// How long a request of `priority` may wait, before its work begins
/// (to be read, then for its turn), out of its acknowledgement cap `cap`.
pub fn wait_budget(
    cap: Duration,
    priority: Priority,
    lanes: &crate::lanes::LaneSettings,
) -> Duration {
    lane_share(cap, priority, lanes) / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::LaneSettings;

    #[test]
    fn a_turn_is_waited_for_while_the_work_still_fits_in_the_lane_share() {
        let lanes = LaneSettings {
            max_in_flight: 10,
            max_working: 10,
            max_body_bytes_in_flight: 1000,
            low_percent: 50,
            normal_percent: 80,
        };
        let (t0, cap, ms) = (
            Instant::now(),
            Duration::from_millis(2500),
            Duration::from_millis,
        );
        // Normal lane: 80 % of 2.5 s, less 300 ms of work.
        let deadline = turn_deadline(t0, cap, Priority::Normal, &lanes, ms(300));
        assert_eq!(deadline - t0, ms(1700));
        // Slow work: never sooner than the waiting budget (1 s).
        let deadline = turn_deadline(t0, cap, Priority::Normal, &lanes, ms(2000));
        assert_eq!(deadline - t0, ms(1000));
    }

    #[test]
    fn lower_lanes_are_shed_sooner() {
        let lanes = LaneSettings {
            max_in_flight: 10,
            max_working: 10,
            max_body_bytes_in_flight: 1000,
            low_percent: 50,
            normal_percent: 80,
        };
        let cap = Duration::from_millis(2500);
        let ms = Duration::from_millis;
        assert!(!too_late(ms(600), cap, Priority::Low, &lanes));
        assert!(too_late(ms(700), cap, Priority::Low, &lanes));
        assert!(!too_late(ms(900), cap, Priority::Normal, &lanes));
        assert!(too_late(ms(1100), cap, Priority::Normal, &lanes));
        assert!(!too_late(ms(1200), cap, Priority::High, &lanes));
        assert!(too_late(ms(1300), cap, Priority::High, &lanes));
    }
}
