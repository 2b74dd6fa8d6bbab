//! HTTP: routes, the checks made before a body is read, and the answers.
//!
//! `POST /webhooks/{source}` and `POST /webhooks/tradingview/{source}` hand
//! the request to this worker's [`Reception`] (`pipeline/`); `/healthz`,
//! `/readyz` and `/metrics` are answered here. Every answer carries
//! `X-Correlation-Id`; every error is JSON. Query strings (which may hold a
//! TradingView token) and bodies are never logged.

pub mod arrival;
pub mod drain;
pub mod request;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tracing::Instrument;

use crate::auth::Credentials;
use crate::config::Settings;
use crate::error::{Code, GatewayError};
use crate::ids::{CorrId, SourceId};
use crate::pipeline::{Accepted, Receive, Reception};
use crate::publish::connection::NatsHealth;
use crate::reload::{LiveSources, SourceEntry};
use crate::sources::{SourceConfig, SourceKind};
use crate::telemetry::{metrics, render_metrics, SourceMetrics, UNKNOWN_SOURCE};

/// What every HTTP handler of one worker can reach.
pub struct WorkerState {
    pub settings: Arc<Settings>,
    /// The allowed sources in force (reloaded on SIGHUP).
    pub sources: LiveSources,
    pub reception: Addr<Reception>,
    pub health: Arc<NatsHealth>,
    /// Requests in flight, by priority lane (shared by every worker).
    pub lanes: Arc<crate::lanes::Lanes>,
    /// The source registry's state, when it is enabled.
    pub registry: Option<Arc<crate::reload::registry::RegistryStatus>>,
    /// Set on SIGTERM/SIGINT while the gateway drains (`drain.rs`).
    pub draining: Arc<drain::Draining>,
}

/// The paths [`webhook`] serves under the `/webhooks` scope, POST only
/// (any other method: 405); the OpenAPI test reads them from here.
pub const WEBHOOK_ROUTES: [&str; 2] = ["/webhooks/{source}", "/webhooks/tradingview/{source}"];

/// Registers every route. Every handler either reads the body or hands it
/// to [`request::hold_unfinished`], so a body nobody reads cannot keep its
/// connection open after the answer.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // `/webhooks/…` is matched by a static prefix and split by hand
    // (`webhook_path`): a `{source}` pattern is a regex match per request.
    cfg.service(web::scope("/webhooks").default_service(web::to(webhook)))
        // HEAD too: load balancers and uptime checkers often probe with it
        // (actix-http sends the headers of the GET answer without its body).
        .service(
            web::resource("/healthz")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz))
                .default_service(refuse_other_methods("GET, HEAD")),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(readyz))
                .route(web::head().to(readyz))
                .default_service(refuse_other_methods("GET, HEAD")),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(metrics_text))
                .default_service(refuse_other_methods("GET")),
        )
        .default_service(web::to(not_found));
}

/// `POST /webhooks/{source}`: the source's kind decides how it authenticates
/// (`/webhooks/tradingview` is the source named `tradingview`).
/// `POST /webhooks/tradingview/{source}`: a second (third, …) TradingView
/// source. Any other path under `/webhooks` is 404, any other method 405.
async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let Some((source, required_kind)) = webhook_path(req.match_info().unprocessed()) else {
        return not_found(req, payload).await;
    };
    if req.method() != actix_web::http::Method::POST {
        return method_not_allowed(&req, payload, "POST");
    }
    let source = source.to_owned();
    handle(req, source, required_kind, payload, state).await
}

/// The source named by the path after `/webhooks`, and the kind its route
/// requires: `/{source}` (any kind) or `/tradingview/{source}` (TradingView).
/// A segment is one or more characters other than `/`, as in a `{source}`
/// route pattern.
fn webhook_path(tail: &str) -> Option<(&str, Option<SourceKind>)> {
    let rest = tail.strip_prefix('/')?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some((rest, None)),
        Some(("tradingview", source)) if !source.is_empty() && !source.contains('/') => {
            Some((source, Some(SourceKind::Tradingview)))
        }
        _ => None,
    }
}

async fn handle(
    req: HttpRequest,
    source_name: String,
    required_kind: Option<SourceKind>,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    let handled = Instant::now();
    let corr_id = CorrId::from_header(
        req.headers()
            .get("x-correlation-id")
            .or_else(|| req.headers().get("x-request-id"))
            .and_then(|v| v.to_str().ok()),
    );
    // Every line logged while serving the request, in any stage, carries
    // its corr_id and (once known to be allowed) its source.
    let span = tracing::info_span!("request", corr_id = %corr_id, source = tracing::field::Empty);
    let served = serve(
        req,
        source_name,
        required_kind,
        payload,
        state,
        corr_id,
        handled,
    );
    served.instrument(span).await
}

async fn serve(
    req: HttpRequest,
    source_name: String,
    required_kind: Option<SourceKind>,
    payload: web::Payload,
    state: web::Data<WorkerState>,
    corr_id: CorrId,
    handled: Instant,
) -> HttpResponse {
    // The allowlist comes first: an unknown source costs nothing more.
    let known = SourceId::parse(&source_name).and_then(|id| state.sources.load().get(&id).cloned());
    let entry = match known {
        Some(s) if required_kind.is_none_or(|k| k == s.config.kind) => s,
        found => {
            let message = if found.is_some() {
                format!("source '{source_name}' is not a TradingView source")
            } else {
                "source is not allowed".to_string()
            };
            let err = GatewayError::Refused {
                code: Code::SourceNotAllowed,
                message,
            };
            request::hold_unfinished(&req, payload);
            return finish(None, SourceMetrics::unknown(), &corr_id, handled, Err(err));
        }
    };
    let (source, counted) = (&entry.config, &*entry.metrics);
    tracing::Span::current().record("source", source.id.as_str());
    let started = arrival::arrived(&req, source, handled);
    if arrival::too_late(
        handled - started,
        source.ack_wait,
        source.priority,
        &state.settings.lanes,
    ) {
        let why = "the request waited too long to be read to be answered in time; retry shortly";
        request::hold_unfinished(&req, payload);
        return shed(source, counted, &corr_id, started, why);
    }
    // Under saturation lower lanes are refused before any work.
    let Some(_in_flight) = state.lanes.enter(source.priority) else {
        let why =
            "the gateway is saturated and serves higher-priority sources first; retry shortly";
        request::hold_unfinished(&req, payload);
        return shed(source, counted, &corr_id, started, why);
    };
    let mut payload = payload;
    let outcome = receive(&req, &mut payload, &state, &entry, &corr_id, started).await;
    if let Err(e) = &outcome {
        if e.code().is_shed() {
            counted.shed();
        }
        // The body may be unread (415, 413, 408): see `hold_unfinished`.
        request::hold_unfinished(&req, payload);
    }
    finish(Some(source), counted, &corr_id, started, outcome)
}

/// Answers 503 `overloaded` to a request refused before any work, to keep
/// its lane's answers in time or room for higher lanes.
fn shed(
    source: &Arc<SourceConfig>,
    counted: &SourceMetrics,
    corr_id: &CorrId,
    started: Instant,
    why: &'static str,
) -> HttpResponse {
    counted.shed();
    let err = GatewayError::refused(Code::Overloaded, why);
    finish(Some(source), counted, corr_id, started, Err(err))
}

async fn receive(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &WorkerState,
    entry: &SourceEntry,
    corr_id: &CorrId,
    started: Instant,
) -> Result<Accepted, GatewayError> {
    let http = &state.settings.http;
    request::check_content_headers(req)?;
    // Held until the request is answered, like its body.
    let mut room = state.lanes.body_room(entry.config.priority);
    let body = request::read_body(
        req,
        payload,
        http.max_body_bytes,
        std::time::Duration::from_millis(http.body_read_timeout_ms),
        &mut room,
    )
    .await?;
    let msg = Receive {
        source: entry.config.clone(),
        bucket: entry.bucket.clone(),
        metrics: entry.metrics.clone(),
        corr_id: corr_id.clone(),
        credentials: Credentials {
            signature: request::header_text(req, "x-signature"),
            timestamp: request::header_text(req, "x-timestamp"),
            nonce: request::header_text(req, "x-nonce"),
            webhook_id: request::header_text(req, "webhook-id"),
            webhook_timestamp: request::header_text(req, "webhook-timestamp"),
            webhook_signature: request::header_text(req, "webhook-signature"),
            body_hmac: entry.config.body_hmac.as_ref().map(|h| {
                let named = |name: Option<&str>| name.and_then(|n| request::header_text(req, n));
                crate::auth::body::Presented {
                    signature: named(Some(&h.signature)),
                    id: named(h.id.as_deref()),
                    timestamp: named(h.timestamp.as_deref()),
                }
            }),
            query_token: request::query_token(req),
            tls: req.conn_data::<crate::tls::ConnectionTls>().cloned(),
        },
        client_ip: request::client_ip(req, &state.settings.trusted_proxies),
        idempotency_key: request::header_text(req, "idempotency-key"),
        content_type: request::header_text(req, "content-type"),
        body,
        started,
    };
    // Worked on in arrival order, a bounded number at once: the ones that
    // would only make everyone late wait, and are shed once they could no
    // longer be answered in time, early enough for the sender to retry.
    let until = arrival::turn_deadline(
        started,
        entry.config.ack_wait,
        entry.config.priority,
        &state.settings.lanes,
        state.lanes.work_estimate(),
    );
    let Some(_turn) = state.lanes.turn(until).await else {
        return Err(GatewayError::refused(
            Code::Overloaded,
            "the gateway is working on as many signals as it can answer in time; retry shortly",
        ));
    };
    let began = Instant::now();
    // Reception enforces the source's acknowledgement cap, counted from
    // `started`, around everything it does: the request's one deadline.
    let answer = crate::stage::call(&state.reception, msg, "reception").await;
    state.lanes.record_work(began.elapsed());
    answer
}

/// Answers, counts and logs one webhook.
fn finish(
    source: Option<&Arc<SourceConfig>>,
    counted: &SourceMetrics,
    corr_id: &CorrId,
    started: Instant,
    outcome: Result<Accepted, GatewayError>,
) -> HttpResponse {
    let source_label = source.map(|s| s.id.as_str()).unwrap_or(UNKNOWN_SOURCE);
    let latency = started.elapsed();
    let (response, status, instrument, validation_status, code) = match &outcome {
        Ok(accepted) => {
            let response = HttpResponse::Accepted()
                .insert_header(("X-Correlation-Id", corr_id.as_str()))
                .json(json!({
                    "status": "accepted",
                    "event_id": accepted.event_id.to_string(),
                    "corr_id": corr_id.as_str(),
                }));
            (
                response,
                StatusCode::ACCEPTED,
                accepted.instrument.as_str(),
                "ok",
                "accepted",
            )
        }
        Err(e) => {
            let validation = match e {
                GatewayError::Unprocessable { .. } => "invalid",
                GatewayError::PayloadTooLarge { .. } | GatewayError::BodyTimeout(_) => "rejected",
                e if [StatusCode::BAD_REQUEST, StatusCode::UNSUPPORTED_MEDIA_TYPE]
                    .contains(&e.status()) =>
                {
                    "rejected"
                }
                _ => "not_validated",
            };
            if validation != "not_validated" {
                metrics()
                    .validation_errors
                    .with_label_values(&[e.code().as_str()])
                    .inc();
            }
            (
                e.to_response(corr_id),
                e.status(),
                "",
                validation,
                e.code().as_str(),
            )
        }
    };
    counted.answered(status, latency);
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let event_id = outcome.as_ref().ok().map(|a| a.event_id.to_string());
    let key_id = outcome.as_ref().ok().and_then(|a| a.key_id.clone());
    if status.is_server_error() {
        tracing::warn!(corr_id = %corr_id, source = source_label, instrument, latency_ms,
            validation_status, status = status.as_u16(), code, message = %outcome.as_ref().err().map(|e| e.to_string()).unwrap_or_default(), "webhook");
    } else {
        tracing::info!(corr_id = %corr_id, source = source_label, instrument, latency_ms,
            validation_status, status = status.as_u16(), code, event_id, key_id, "webhook");
    }
    response
}

async fn healthz(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    request::hold_unfinished(&req, payload);
    let report = state.health.report();
    let m = metrics();
    let mut body = json!({
        "status": "ok",
        "service": state.settings.service_name,
        "nats": report.nats,
        "stream": report.stream,
        "ready": report.ready,
        "buffer": {
            "depth": m.buffer_depth.get(),
            "capacity": m.buffer_capacity.get(),
        },
    });
    // `stale`: the registry cannot be read, its last good table is served.
    if let Some(registry) = &state.registry {
        body["registry"] = json!({
            "state": registry.state(),
            "sources": registry.sources(),
            "invalid": registry.invalid(),
        });
    }
    HttpResponse::Ok().json(body)
}

async fn readyz(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    request::hold_unfinished(&req, payload);
    let mut report = state.health.report();
    if state.draining.is_draining() {
        // Load balancers stop sending before the listener closes.
        report.ready = false;
        report.problem = Some("draining: the gateway is shutting down".into());
    }
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(report)
}

async fn metrics_text(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<WorkerState>,
) -> HttpResponse {
    request::hold_unfinished(&req, payload);
    state.health.refresh_gauges();
    if let Some(registry) = &state.registry {
        registry.publish_gauges();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render_metrics())
}

async fn not_found(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    request::hold_unfinished(&req, payload);
    GatewayError::NotFound.to_response(&CorrId::generate())
}

/// The answer to any other method on a path that serves `allow`: 405 with
/// `Allow`, JSON like every other error.
fn refuse_other_methods(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest, payload: web::Payload| async move {
        method_not_allowed(&req, payload, allow)
    })
}

/// 405 with `Allow`; the unread body is handed to [`request::hold_unfinished`].
fn method_not_allowed(
    req: &HttpRequest,
    payload: web::Payload,
    allow: &'static str,
) -> HttpResponse {
    request::hold_unfinished(req, payload);
    GatewayError::MethodNotAllowed { allow }.to_response(&CorrId::generate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_paths_split_like_the_route_patterns() {
        // Each documented route reaches `handle` with the right kind.
        let [custom, tradingview] = WEBHOOK_ROUTES.map(|r| {
            let path = r.replace("{source}", "desk-1");
            webhook_path(&path["/webhooks".len()..]).map(|(s, k)| (s.to_owned(), k))
        });
        assert_eq!(custom, Some(("desk-1".into(), None)));
        assert_eq!(
            tradingview,
            Some(("desk-1".into(), Some(SourceKind::Tradingview)))
        );
        assert_eq!(webhook_path("/alpha"), Some(("alpha", None)));
        assert_eq!(webhook_path("/tradingview"), Some(("tradingview", None)));
        assert_eq!(
            webhook_path("/tradingview/desk-2"),
            Some(("desk-2", Some(SourceKind::Tradingview)))
        );
        for unrouted in [
            "",
            "/",
            "/alpha/",
            "/alpha/beta",
            "/tradingview/",
            "/tradingview/desk/",
            "/tradingview/desk/x",
            "alpha",
        ] {
            assert_eq!(webhook_path(unrouted), None, "{unrouted:?}");
        }
    }
}
