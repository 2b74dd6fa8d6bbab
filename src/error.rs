//! The one error type of the gateway and its HTTP form.
//!
//! Every error has one stable machine [`Code`], and every code one status
//! (the table in `codes!`); the body is always JSON `{"code","message","corr_id"}` (plus a few documented
//! extras). Internal details go to the log, never to the caller, and no
//! variant carries a secret.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use crate::ids::{CorrId, EventId};

/// Seconds a caller is told to wait after a 503.
pub const RETRY_AFTER_UNAVAILABLE_SEC: u64 = 1;

/// Defines [`Code`] from one table: each machine code, its name in the
/// error body and `openapi.yaml`, and its HTTP status.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $status:ident;)*) => {
        /// Every machine code the gateway answers with: the closed list, each
        /// with the status it is always answered with. `openapi.yaml`
        /// documents each one (`tests/it/openapi.rs` checks [`Code::ALL`]
        /// against it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The `code` of the error body, as `openapi.yaml` names it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    /// The body could not be read off the connection.
    BodyError => "body_error", BAD_REQUEST;
    /// The TradingView passphrase in the body uses JSON escape sequences,
    /// which would let the redacted bytes differ from the token.
    EscapedToken => "escaped_token", BAD_REQUEST;
    InvalidIdempotencyKey => "invalid_idempotency_key", BAD_REQUEST;
    MissingSignature => "missing_signature", UNAUTHORIZED;
    InvalidSignature => "invalid_signature", UNAUTHORIZED;
    InvalidTimestamp => "invalid_timestamp", UNAUTHORIZED;
    StaleTimestamp => "stale_timestamp", UNAUTHORIZED;
    InvalidNonce => "invalid_nonce", UNAUTHORIZED;
    KeyExpired => "key_expired", UNAUTHORIZED;
    MissingToken => "missing_token", UNAUTHORIZED;
    InvalidToken => "invalid_token", UNAUTHORIZED;
    ClientCertificateRequired => "client_certificate_required", UNAUTHORIZED;
    ClientCertificateMismatch => "client_certificate_mismatch", UNAUTHORIZED;
    SourceNotAllowed => "source_not_allowed", FORBIDDEN;
    SenderNotAllowed => "sender_not_allowed", FORBIDDEN;
    NotFound => "not_found", NOT_FOUND;
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED;
    BodyTimeout => "body_timeout", REQUEST_TIMEOUT;
    Replay => "replay", CONFLICT;
    Duplicate => "duplicate", CONFLICT;
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE;
    TooLargeForStream => "too_large_for_stream", PAYLOAD_TOO_LARGE;
    UnsupportedContentEncoding => "unsupported_content_encoding", UNSUPPORTED_MEDIA_TYPE;
    UnsupportedContentType => "unsupported_content_type", UNSUPPORTED_MEDIA_TYPE;
    ValidationFailed => "validation_failed", UNPROCESSABLE_ENTITY;
    RateLimited => "rate_limited", TOO_MANY_REQUESTS;
    TooManyAuthFailures => "too_many_auth_failures", TOO_MANY_REQUESTS;
    /// No waiting place while NATS is not storing (the outage buffer).
    BufferFull => "buffer_full", SERVICE_UNAVAILABLE;
    /// Refused under saturation, or waited too long to be read.
    Overloaded => "overloaded", SERVICE_UNAVAILABLE;
    PublishTimeout => "publish_timeout", SERVICE_UNAVAILABLE;
    NatsUnavailable => "nats_unavailable", SERVICE_UNAVAILABLE;
    StoreUnavailable => "store_unavailable", SERVICE_UNAVAILABLE;
    StageUnavailable => "stage_unavailable", SERVICE_UNAVAILABLE;
    Misconfigured => "misconfigured", SERVICE_UNAVAILABLE;
    Internal => "internal", SERVICE_UNAVAILABLE;
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Code {
    /// A refusal that sheds load (counted in `gateway_requests_shed_total`).
    pub fn is_shed(self) -> bool {
        matches!(self, Code::BufferFull | Code::Overloaded)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// A refusal its code says everything about; `message` is for the
    /// caller. Never with a code one of the variants below owns.
    #[error("{message}")]
    Refused { code: Code, message: String },
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
}

impl GatewayError {
    /// A [`GatewayError::Refused`].
    pub fn refused(code: Code, message: impl Into<String>) -> Self {
        GatewayError::Refused {
            code,
            message: message.into(),
        }
    }

    /// A stage actor did not answer (mailbox full, timed out, or restarting).
    pub fn stage_unavailable(stage: &'static str) -> Self {
        Self::refused(
            Code::StageUnavailable,
            format!("the {stage} stage is overloaded or restarting; retry shortly"),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The stable machine code of the error body.
    pub fn code(&self) -> Code {
        match self {
            GatewayError::Refused { code, .. } => *code,
            GatewayError::NotFound => Code::NotFound,
            GatewayError::MethodNotAllowed { .. } => Code::MethodNotAllowed,
            GatewayError::BodyTimeout(_) => Code::BodyTimeout,
            GatewayError::Replay => Code::Replay,
            GatewayError::Duplicate { .. } => Code::Duplicate,
            GatewayError::PayloadTooLarge { .. } => Code::PayloadTooLarge,
            GatewayError::TooLargeForStream => Code::TooLargeForStream,
            GatewayError::Unprocessable { .. } => Code::ValidationFailed,
            GatewayError::RateLimited { .. } => Code::RateLimited,
            GatewayError::AuthThrottled { .. } => Code::TooManyAuthFailures,
        }
    }

    /// The HTTP answer: status, JSON body, `Retry-After` where it applies.
    pub fn to_response(&self, corr_id: &CorrId) -> HttpResponse {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code().as_str()));
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
            e if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
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

    /// The body `to_response` renders, as JSON.
    async fn body_of(resp: HttpResponse) -> Value {
        let bytes = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_rt::test]
    async fn every_error_has_a_json_body_with_code_message_and_corr_id() {
        let corr = CorrId::from_header(Some("c-1"));
        let mut errors: Vec<GatewayError> = Code::ALL
            .iter()
            .map(|c| GatewayError::refused(*c, "why"))
            .collect();
        errors.push(GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500),
        });
        for e in errors {
            let (code, message) = (e.code(), e.to_string());
            let resp = e.to_response(&corr);
            assert_eq!(resp.headers().get("X-Correlation-Id").unwrap(), "c-1");
            let body = body_of(resp).await;
            assert_eq!(body["code"], code.as_str(), "{body}");
            assert_eq!(body["message"], message.as_str(), "{body}");
            assert_eq!(body["corr_id"], "c-1", "{body}");
        }
        let resp = GatewayError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .to_response(&corr);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "2");
    }

    #[test]
    fn codes_have_unique_names_and_every_503_says_when_to_retry() {
        let names: std::collections::HashSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        let corr = CorrId::from_header(Some("c-1"));
        for code in Code::ALL {
            let resp = GatewayError::refused(*code, "m").to_response(&corr);
            assert_eq!(resp.status(), code.status(), "{code}");
            if code.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert!(resp.headers().contains_key("Retry-After"), "{code}");
            }
        }
    }
}
