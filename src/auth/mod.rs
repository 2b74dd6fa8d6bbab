//! The authenticator stage: proves who sent a request.
//!
//! Custom sources: HMAC signature, timestamp window, (source, nonce) replay
//! (`body-hmac`: signature and timestamp only, see `body.rs`).
//! TradingView sources: sender address allowlist, then the token.
//! Its output, [`Authenticated`], can only be made here, so later stages
//! cannot receive an unchecked request. It never rate-limits or publishes.

pub mod body;
pub mod failures;
pub mod replay;
pub mod signature;
pub mod standard;
pub mod tradingview;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{Code, GatewayError};
use crate::idempotency::MAX_KEY_LEN;
use crate::ids::is_token;
use crate::sources::{CustomScheme, SourceConfig, SourceKind, TimestampFormat};
use crate::stage::{guarded, Traced};
use crate::telemetry::{metrics, SourceMetrics};
use crate::tls::ConnectionTls;
use actix_web::http::StatusCode;
use failures::FailureLimiter;
pub use replay::NonceClaim;
use replay::ReplayStore;
use tracing::Instrument;

/// Longest nonce accepted (visible ASCII).
pub const MAX_NONCE_LEN: usize = 128;

/// The credentials a request carries, as received.
#[derive(Default)]
pub struct Credentials {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    /// Standard Webhooks headers.
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
    /// `body-hmac` sources: the headers the source names.
    pub body_hmac: Option<body::Presented>,
    /// TradingView: the `token` query parameter. Never logged.
    pub query_token: Option<String>,
    /// The connection's TLS state (`None`: plain HTTP).
    pub tls: Option<ConnectionTls>,
}

/// Message in: a request to authenticate.
#[derive(Message)]
#[rtype(result = "Result<Authenticated, GatewayError>")]
pub struct Authenticate {
    pub source: Arc<SourceConfig>,
    /// The source's metric handles (which key verified).
    pub metrics: Arc<SourceMetrics>,
    pub credentials: Credentials,
    pub client_ip: IpAddr,
    pub body: Bytes,
}

/// How a request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    HmacSha256,
    StandardWebhooks,
    BodyHmac,
    TradingviewToken,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::BodyHmac => "body-hmac",
            Scheme::TradingviewToken => "tradingview-token",
        }
    }
}

/// Message out: a request whose sender is proven. Only this module can
/// make one (its fields are private); the pipeline takes it apart with
/// [`Authenticated::into_parts`] once the rate limiter has admitted it.
pub struct Authenticated {
    source: Arc<SourceConfig>,
    proven: Proven,
}

/// What a proven request carries on through the pipeline.
pub struct Proven {
    pub scheme: Scheme,
    /// Which key verified (custom sources), for logs and rotation metrics.
    pub key_id: Option<String>,
    /// The body to publish: as received, with any token redacted.
    pub body: Bytes,
    /// The body parsed as JSON, if the stage already had to parse it.
    pub json: Option<Value>,
    /// The claimed nonce (custom sources); commit once stored.
    pub nonce: Option<NonceClaim>,
    /// The sender's own message id (Standard Webhooks' `webhook-id`, a
    /// `body-hmac` source's id header), the default idempotency key.
    pub sender_id: Option<String>,
}

impl Authenticated {
    /// The source the sender proved itself as.
    pub fn source(&self) -> &Arc<SourceConfig> {
        &self.source
    }

    /// What the request carries on.
    pub fn into_parts(self) -> Proven {
        self.proven
    }
}

/// One authenticator per HTTP worker; its replay store reaches the shared
/// nonce claims through this worker's own NATS connection.
pub struct Authenticator {
    replay: Arc<ReplayStore>,
    failures: Arc<FailureLimiter>,
    window: Duration,
}

impl Authenticator {
    pub fn new(replay: Arc<ReplayStore>, failures: Arc<FailureLimiter>, window: Duration) -> Self {
        Authenticator {
            replay,
            failures,
            window,
        }
    }
}

crate::stage::stage_actor!(Authenticator);

impl Handler<Traced<Authenticate>> for Authenticator {
    type Result = ResponseFuture<Result<Authenticated, GatewayError>>;

    fn handle(&mut self, msg: Traced<Authenticate>, ctx: &mut Context<Self>) -> Self::Result {
        let Traced(msg, span) = msg;
        let _in = span.clone().entered();
        let window = self.window;
        let failures = self.failures.clone();
        let ip = msg.client_ip;
        // A source's own allowlisted senders are never blocked (see failures.rs).
        let exempt = msg
            .source
            .allowed_ips
            .as_ref()
            .is_some_and(|nets| tradingview::sender_allowed(ip, nets));
        // The CPU part (MAC, token) runs here, guarded; the nonce claim may
        // have to wait for another request's outcome, so it runs as a future.
        let checked = guarded(ctx, "authenticator", move || {
            if let Some(retry_after) = failures.blocked(ip).filter(|_| !exempt) {
                return Err(GatewayError::AuthThrottled { retry_after });
            }
            let verified = verify(msg, window);
            let unauthorized = |e: &GatewayError| e.status() == StatusCode::UNAUTHORIZED;
            if !exempt && verified.as_ref().is_err_and(unauthorized) {
                failures.record_failure(ip);
            }
            verified
        });
        let replay = self.replay.clone();
        Box::pin(
            async move {
                let (mut auth, nonce) = checked?;
                if let Some(nonce) = nonce {
                    auth.proven.nonce = Some(replay.claim(&auth.source.id, &nonce).await?);
                }
                Ok(auth)
            }
            .instrument(span),
        )
    }
}

/// Checks the credentials; returns the authenticated request and, for
/// custom sources, the nonce still to be claimed.
fn verify(
    msg: Authenticate,
    window: Duration,
) -> Result<(Authenticated, Option<String>), GatewayError> {
    let source = msg.source;
    let counted = msg.metrics;
    // Where a request comes from is checked first, for every kind of source.
    let result = check_sender(&source, msg.client_ip)
        .and_then(|()| check_client_cert(&source, msg.credentials.tls.as_ref()))
        .and_then(|()| match (source.kind, source.scheme) {
            (SourceKind::Custom, CustomScheme::HmacSha256) => {
                verify_custom(&source, msg.credentials, msg.body, window)
            }
            (SourceKind::Custom, CustomScheme::StandardWebhooks) => {
                verify_standard(&source, msg.credentials, msg.body)
            }
            (SourceKind::Custom, CustomScheme::BodyHmac) => {
                verify_body_hmac(&source, msg.credentials, msg.body)
            }
            (SourceKind::Tradingview, _) => verify_tradingview(&source, msg.credentials, msg.body),
        });
    match result {
        Ok((scheme, key_id, body, json, id)) => {
            if let Some(key) = &key_id {
                counted.key_used(key);
            }
            // What the request's id is: a nonce to claim, the default
            // idempotency key, or both. A body-hmac id is not signed, so it
            // can be no nonce: anyone could send the same body with another.
            let (nonce, sender_id) = match scheme {
                Scheme::HmacSha256 => (id, None),
                Scheme::StandardWebhooks => (id.clone(), id),
                Scheme::BodyHmac => (None, id),
                Scheme::TradingviewToken => (None, None),
            };
            Ok((
                Authenticated {
                    source,
                    proven: Proven {
                        scheme,
                        key_id,
                        body,
                        json,
                        sender_id,
                        nonce: None,
                    },
                },
                nonce,
            ))
        }
        Err(e) => {
            metrics()
                .auth_failures
                .with_label_values(&[source.id.as_str(), e.code().as_str()])
                .inc();
            Err(e)
        }
    }
}

/// The scheme, the key that verified, the body, its JSON if parsed, and
/// the request's id (X-Nonce, `webhook-id`, a body-hmac id header).
type Verified = (Scheme, Option<String>, Bytes, Option<Value>, Option<String>);

/// A source with `client_cert` takes requests only over HTTPS with a client
/// certificate (verified against `tls.client_ca_file` in the handshake)
/// whose subject matches: a second factor beside its token or signature.
fn check_client_cert(
    source: &SourceConfig,
    tls: Option<&ConnectionTls>,
) -> Result<(), GatewayError> {
    let Some(rule) = &source.client_cert else {
        return Ok(());
    };
    match tls.and_then(|t| t.client.as_ref()) {
        Some(subject) if subject.satisfies(rule) => Ok(()),
        Some(subject) => {
            tracing::warn!(source = %source.id, common_name = ?subject.common_name,
                organization = ?subject.organization, "client certificate subject does not match");
            Err(GatewayError::refused(
                Code::ClientCertificateMismatch,
                "the client certificate's subject is not the one this source requires",
            ))
        }
        None => Err(GatewayError::refused(
            Code::ClientCertificateRequired,
            "this source requires HTTPS with a client certificate",
        )),
    }
}

fn verify_custom(
    source: &SourceConfig,
    creds: Credentials,
    body: Bytes,
    window: Duration,
) -> Result<Verified, GatewayError> {
    let header = creds.signature.ok_or_else(|| {
        GatewayError::refused(Code::MissingSignature, "X-Signature header is required")
    })?;
    let timestamp = creds.timestamp.ok_or_else(|| {
        GatewayError::refused(Code::InvalidTimestamp, "X-Timestamp header is required")
    })?;
    let nonce = creds
        .nonce
        .filter(|n| is_token(n, MAX_NONCE_LEN))
        .ok_or_else(|| {
            GatewayError::refused(
                Code::InvalidNonce,
                format!("X-Nonce header is required: 1-{MAX_NONCE_LEN} visible ASCII characters"),
            )
        })?;
    check_timestamp(&timestamp, window, "X-Timestamp")?;
    let signature = signature::parse_header(&header).map_err(|_| {
        GatewayError::refused(
            Code::InvalidSignature,
            "X-Signature must be sha256=<64 hex digits>",
        )
    })?;
    let now = time::OffsetDateTime::now_utc();
    let key_id = signature::verify(&source.keys, &timestamp, &nonce, &body, &signature, now)
        .map_err(|e| match e {
            signature::SignatureError::Expired(id) => expired_key(source, &id),
            _ => GatewayError::refused(
                Code::InvalidSignature,
                "signature does not match X-Timestamp.X-Nonce.body for any key of this source",
            ),
        })?
        .to_owned();
    Ok((Scheme::HmacSha256, Some(key_id), body, None, Some(nonce)))
}

fn verify_standard(
    source: &SourceConfig,
    creds: Credentials,
    body: Bytes,
) -> Result<Verified, GatewayError> {
    let header = creds.webhook_signature.ok_or_else(|| {
        GatewayError::refused(
            Code::MissingSignature,
            "webhook-signature header is required",
        )
    })?;
    let timestamp = creds.webhook_timestamp.ok_or_else(|| {
        GatewayError::refused(
            Code::InvalidTimestamp,
            "webhook-timestamp header is required",
        )
    })?;
    let id = creds
        .webhook_id
        .filter(|n| is_token(n, MAX_NONCE_LEN))
        .ok_or_else(|| {
            GatewayError::refused(
                Code::InvalidNonce,
                format!(
                    "webhook-id header is required: 1-{MAX_NONCE_LEN} visible ASCII characters"
                ),
            )
        })?;
    check_timestamp(&timestamp, source.tolerance, "webhook-timestamp")?;
    let now = time::OffsetDateTime::now_utc();
    let key_id = standard::verify(&source.keys, &id, &timestamp, &body, &header, now)
        .map_err(|e| match e {
            standard::StandardError::Expired(key) => expired_key(source, &key),
            standard::StandardError::Mismatch => GatewayError::refused(
                Code::InvalidSignature,
                "no v1 signature in webhook-signature matches id.timestamp.body for a key of this source",
            ),
        })?
        .to_owned();
    Ok((Scheme::StandardWebhooks, Some(key_id), body, None, Some(id)))
}

/// `body-hmac`: the body's signature in the source's header, the timestamp
/// (when the source names one) within its tolerance, and the sender's id
/// (when present) passed on as the default idempotency key, not a nonce.
fn verify_body_hmac(
    source: &SourceConfig,
    creds: Credentials,
    body: Bytes,
) -> Result<Verified, GatewayError> {
    let headers = source.body_hmac.as_ref().ok_or_else(|| {
        GatewayError::refused(Code::Misconfigured, "source has no body-hmac headers")
    })?;
    let presented = creds.body_hmac.unwrap_or_default();
    let header = presented.signature.ok_or_else(|| {
        GatewayError::refused(
            Code::MissingSignature,
            format!("{} header is required", headers.signature),
        )
    })?;
    if let Some(name) = &headers.timestamp {
        let value = presented.timestamp.ok_or_else(|| {
            GatewayError::refused(Code::InvalidTimestamp, format!("{name} header is required"))
        })?;
        let format = headers.timestamp_format;
        let ts = body::unix_seconds(&value, format).ok_or_else(|| {
            GatewayError::refused(
                Code::InvalidTimestamp,
                format!("{name} must be {}", body::format_hint(format)),
            )
        })?;
        check_window(ts, source.tolerance, name, format == TimestampFormat::Unix)?;
    }
    let now = time::OffsetDateTime::now_utc();
    let key_id = body::verify(&source.keys, &body, &header, now)
        .map_err(|e| match e {
            signature::SignatureError::Expired(id) => expired_key(source, &id),
            signature::SignatureError::Malformed => GatewayError::refused(
                Code::InvalidSignature,
                format!("{} must be sha256=<64 hex digits>", headers.signature),
            ),
            signature::SignatureError::Mismatch => GatewayError::refused(
                Code::InvalidSignature,
                "signature does not match the body for any key of this source",
            ),
        })?
        .to_owned();
    // Checked once the sender is proven: the id is an idempotency key, and
    // a malformed one is the sender's mistake (400), not a forgery.
    let id = match (&headers.id, presented.id) {
        (Some(name), Some(id)) if !is_token(&id, MAX_KEY_LEN) => {
            return Err(GatewayError::refused(
                Code::InvalidIdempotencyKey,
                format!("{name} must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            ))
        }
        (_, id) => id,
    };
    Ok((Scheme::BodyHmac, Some(key_id), body, None, id))
}

fn expired_key(source: &SourceConfig, id: &str) -> GatewayError {
    tracing::warn!(source = %source.id, key_id = %id, "signature made with an expired key");
    GatewayError::refused(
        Code::KeyExpired,
        format!("the key '{id}' that made this signature has expired; sign with the current key"),
    )
}

/// A signed timestamp: Unix seconds within `window` of the gateway clock.
fn check_timestamp(value: &str, window: Duration, header: &str) -> Result<(), GatewayError> {
    let ts: i64 = value.trim().parse().map_err(|_| {
        GatewayError::refused(
            Code::InvalidTimestamp,
            format!("{header} must be Unix seconds"),
        )
    })?;
    check_window(ts, window, header, true)
}

/// `ts` (Unix seconds) within `window` of the gateway clock, else 401
/// `stale_timestamp`; `sent_as_seconds`: the sender wrote Unix seconds, so
/// a value a thousand times too large is worth pointing out.
fn check_window(
    ts: i64,
    window: Duration,
    header: &str,
    sent_as_seconds: bool,
) -> Result<(), GatewayError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if ts.abs_diff(now) > window.as_secs() {
        // A value a thousand times too large is a sender's most common
        // mistake (JavaScript's Date.now()); say so instead of "clock skew".
        let hint = if sent_as_seconds && (ts / 1000).abs_diff(now) <= window.as_secs() {
            "; it looks like milliseconds: send Unix seconds"
        } else {
            ""
        };
        return Err(GatewayError::refused(
            Code::StaleTimestamp,
            format!(
                "{header} is more than {} s away from the gateway clock{hint}",
                window.as_secs()
            ),
        ));
    }
    Ok(())
}

/// A source with `allowed_ips` (TradingView's senders, a vendor's egress
/// addresses) takes requests from those addresses only (403).
fn check_sender(source: &SourceConfig, client_ip: IpAddr) -> Result<(), GatewayError> {
    match &source.allowed_ips {
        Some(allowed) if !tradingview::sender_allowed(client_ip, allowed) => {
            Err(GatewayError::Refused {
                code: Code::SenderNotAllowed,
                message: format!("sender address {client_ip} is not allowed for this source"),
            })
        }
        _ => Ok(()),
    }
}

fn verify_tradingview(
    source: &SourceConfig,
    creds: Credentials,
    body: Bytes,
) -> Result<Verified, GatewayError> {
    if source.tokens.is_empty() {
        return Err(GatewayError::refused(
            Code::Misconfigured,
            "source has no token configured",
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    let verified = tradingview::verify(body, creds.query_token.as_deref(), &source.tokens, now)
        .map_err(|e| match e {
            tradingview::TokenError::Missing => GatewayError::refused(
                Code::MissingToken,
                "a token is required: the JSON field \"passphrase\" or the query parameter token",
            ),
            tradingview::TokenError::Mismatch => {
                GatewayError::refused(Code::InvalidToken, "token does not match")
            }
            tradingview::TokenError::Escaped => GatewayError::refused(
                Code::EscapedToken,
                "the passphrase must be a plain JSON string without escape sequences",
            ),
        })?;
    Ok((
        Scheme::TradingviewToken,
        None,
        verified.body,
        verified.json,
        None,
    ))
}
