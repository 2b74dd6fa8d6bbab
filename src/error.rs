//! The one error type of the gateway and its HTTP form.
//!
//! Every variant maps to one status code and one stable machine `code`; the
//! body is always JSON `{"code","message","corr_id"}` (plus a few documented
//! extras). Internal details go to the log, never to the caller, and no
//! variant carries a secret.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use crate::ids::{CorrId, EventId};

/// Seconds a caller is told to wait after a 503.
pub const RETRY_AFTER_UNAVAILABLE_SEC: u64 = 1;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// 400: the request is malformed (a header that cannot be parsed).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: the request does not prove who sent it.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: the source or sender is not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("no such endpoint")]
    NotFound,
    /// 405, with `Allow` naming the methods the path serves (RFC 9110).
    #[error("method not allowed; this path serves {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// 408: the body did not arrive in time.
    #[error("request body not received within {0:?}")]
    BodyTimeout(Duration),
    /// 409 `replay`: this (source, nonce) was already accepted.
    #[error("this nonce was already used by an accepted request")]
    Replay,
    /// 409 `duplicate`: this idempotency key was already accepted.
    #[error("a signal with this idempotency key was already accepted")]
    Duplicate {
        event_id: EventId,
        payload_mismatch: bool,
    },
    /// 413: the body is larger than the limit.
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 413: within the body limit, but the message is larger than the NATS
    /// server accepts (`max_payload`): an operator must raise it.
    #[error("the signal is larger than the NATS server's max_payload accepts; the operator must raise it")]
    TooLargeForStream,
    /// 415: compressed bodies, or a content type the gateway does not read.
    #[error("{message}")]
    UnsupportedMedia { code: &'static str, message: String },
    /// 422: authentic, but does not normalize; the raw event was published.
    #[error("payload does not normalize")]
    Unprocessable {
        reasons: Vec<String>,
        event_id: EventId,
    },
    /// 429: over the source's rate.
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    /// 429: this address failed authentication too often; refused before
    /// any signature work.
    #[error("too many failed authentications from this address")]
    AuthThrottled { retry_after: Duration },
    /// 503: not stored; safe to retry with the same idempotency key.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
}

impl GatewayError {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        GatewayError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        GatewayError::Unavailable {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        GatewayError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A stage actor did not answer (mailbox full, timed out, or restarting).
    pub fn stage_unavailable(stage: &'static str) -> Self {
        Self::unavailable(
            "stage_unavailable",
            format!("the {stage} stage is overloaded or restarting; retry shortly"),
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden { .. } => StatusCode::FORBIDDEN,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::Replay | GatewayError::Duplicate { .. } => StatusCode::CONFLICT,
            GatewayError::PayloadTooLarge { .. } | GatewayError::TooLargeForStream => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            GatewayError::UnsupportedMedia { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::RateLimited { .. } | GatewayError::AuthThrottled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable machine code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadRequest { code, .. }
            | GatewayError::Unauthorized { code, .. }
            | GatewayError::Forbidden { code, .. }
            | GatewayError::UnsupportedMedia { code, .. }
            | GatewayError::Unavailable { code, .. } => code,
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BodyTimeout(_) => "body_timeout",
            GatewayError::Replay => "replay",
            GatewayError::Duplicate { .. } => "duplicate",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::TooLargeForStream => "too_large_for_stream",
            GatewayError::Unprocessable { .. } => "validation_failed",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::AuthThrottled { .. } => "too_many_auth_failures",
        }
    }

    /// The HTTP answer: status, JSON body, `Retry-After` where it applies.
    pub fn to_response(&self, corr_id: &CorrId) -> HttpResponse {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code()));
        body.insert("message".into(), json!(self.to_string()));
        body.insert("corr_id".into(), json!(corr_id.as_str()));
        match self {
            GatewayError::Duplicate {
                event_id,
                payload_mismatch,
            } => {
                body.insert("event_id".into(), json!(event_id.to_string()));
                body.insert("payload_mismatch".into(), json!(payload_mismatch));
            }
            GatewayError::Unprocessable { reasons, event_id } => {
                body.insert("event_id".into(), json!(event_id.to_string()));
                body.insert("reasons".into(), json!(reasons));
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status());
        response.insert_header(("X-Correlation-Id", corr_id.as_str()));
        match self {
            GatewayError::RateLimited { retry_after }
            | GatewayError::AuthThrottled { retry_after } => {
                // Round up: telling a caller to come back before its token is
                // ready only earns it a second 429.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header(("Retry-After", secs.max(1).to_string()));
            }
            GatewayError::Unavailable { .. } => {
                response.insert_header(("Retry-After", RETRY_AFTER_UNAVAILABLE_SEC.to_string()));
            }
            GatewayError::MethodNotAllowed { allow } => {
                response.insert_header(("Allow", *allow));
            }
            _ => {}
        }
        response.json(Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_json_body_with_code_message_and_corr_id() {
        let corr = CorrId::from_header(Some("c-1"));
        let resp = GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .to_response(&corr);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "2");
    }
}
