//! Stopping without cutting off a request a client has already written.
//!
//! actix-web's own graceful stop closes every idle kept-alive connection at
//! once. A client that wrote a request on such a connection an instant
//! before, not yet read by the worker, sees its connection closed with no
//! answer. So a SIGTERM (or SIGINT) first *drains*: for `http.drain_ms` the
//! gateway goes on serving, answers every request with `Connection: close`
//! (each kept-alive client moves to a new connection after its next answer)
//! and reports not ready on `/readyz` (load balancers stop sending). Only then
//! does it stop accepting, finish what is in flight (at most
//! `http.shutdown_timeout_sec`) and exit. A second signal ends the drain
//! early; SIGQUIT stops at once, cutting what is in flight.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;

/// Whether the gateway is draining; shared by every worker.
#[derive(Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Middleware for every route: while draining, the answer closes its
/// connection.
pub fn close_while_draining<S>(
    draining: &Arc<Draining>,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let draining = draining.clone();
    let answer = srv.call(req);
    async move {
        let mut res = answer.await?;
        // Read when the answer is ready: a request that began before the
        // drain still closes its connection.
        if draining.is_draining() {
            res.response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        Ok(res)
    }
}

/// How the gateway stops: drain for `drain`, then actix-web's graceful stop.
#[derive(Clone)]
pub struct Shutdown {
    pub(crate) draining: Arc<Draining>,
    pub(crate) server: actix_web::dev::ServerHandle,
    pub(crate) drain: Duration,
}

impl Shutdown {
    /// Drains, then stops gracefully; returns when the server has stopped.
    /// `early` ends the drain before its time (a second signal).
    pub async fn drain_then_stop(&self, early: impl Future<Output = ()>) {
        self.draining.begin();
        tracing::info!(
            drain_ms = self.drain.as_millis() as u64,
            "draining: answering with Connection: close and not ready, then stopping"
        );
        tokio::select! {
            () = tokio::time::sleep(self.drain) => {}
            () = early => tracing::info!("second signal: ending the drain early"),
        }
        tracing::info!("stopping: no new connections; finishing requests in flight");
        self.server.stop(true).await;
    }

    /// Stops at once, cutting what is in flight.
    pub async fn stop_now(&self) {
        self.server.stop(false).await;
    }
}

/// Runs for the life of the process (`main` spawns it): SIGTERM or SIGINT
/// drains then stops, and a second signal of any of the three ends the
/// drain early; SIGQUIT first stops at once. Once the drain is over the stop
/// needs no signal: it is bounded by `http.shutdown_timeout_sec`.
pub async fn on_signals(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (term, int, quit) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    );
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (term, int, quit) else {
        tracing::error!("cannot watch SIGTERM/SIGINT/SIGQUIT: they stop the process unanswered");
        return;
    };
    let graceful = tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => true,
        _ = quit.recv() => false,
    };
    if !graceful {
        tracing::info!("SIGQUIT: stopping now; requests in flight are cut");
        return shutdown.stop_now().await;
    }
    let again = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = quit.recv() => {}
        }
    };
    shutdown.drain_then_stop(again).await;
}
