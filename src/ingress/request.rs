//! Checks made before and while the body is read: content encoding and
//! type, size, read time, and who the client is. Nothing here
//! authenticates; it only refuses what no stage should ever see.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use ipnet::IpNet;

use crate::error::{Code, GatewayError};
use crate::lanes::BodyRoom;

/// Most bytes reserved for a body before any of it has arrived.
const INITIAL_BODY_CAPACITY: usize = 16 * 1024;

/// Refuses compressed bodies and content types the gateway does not read.
///
/// Signatures cover the bytes as sent, and decompressing would open a
/// decompression-bomb hole, so any `Content-Encoding` but `identity` is a
/// 415 (actix-web's own decompression is compiled out).
pub fn check_content_headers(req: &HttpRequest) -> Result<(), GatewayError> {
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING) {
        let identity = enc
            .to_str()
            .map(|v| v.trim().eq_ignore_ascii_case("identity"))
            .unwrap_or(false);
        if !identity {
            return Err(GatewayError::Refused {
                code: Code::UnsupportedContentEncoding,
                message: "compressed bodies are not accepted; send the body uncompressed".into(),
            });
        }
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let readable = essence == "application/json"
            || essence == "text/plain"
            || (essence.starts_with("application/") && essence.ends_with("+json"));
        if !readable {
            return Err(GatewayError::Refused {
                code: Code::UnsupportedContentType,
                message: "Content-Type must be application/json or text/plain".into(),
            });
        }
    }
    Ok(())
}

fn announced_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the body, refusing more than `limit` bytes as received (413, read
/// no further) and bodies slower than `timeout` (408). Each chunk takes its
/// bytes of `room` as it arrives (none left: 503 `overloaded`).
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    timeout: Duration,
    room: &mut BodyRoom,
) -> Result<Bytes, GatewayError> {
    let too_large = || GatewayError::PayloadTooLarge { limit };
    let announced = announced_length(req);
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        // Grow with what actually arrives: a Content-Length is only a claim,
        // and reserving it up front would let idle connections pin memory.
        let reserve = announced.unwrap_or(0).min(INITIAL_BODY_CAPACITY as u64) as usize;
        let mut body = BytesMut::with_capacity(reserve);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                GatewayError::refused(Code::BodyError, format!("could not read the body: {e}"))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            if !room.grow(chunk.len()) {
                return Err(GatewayError::refused(
                    Code::Overloaded,
                    "the gateway holds as many request bodies as its memory bound allows; \
                     retry shortly",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| GatewayError::BodyTimeout(timeout))?
}

/// How long an unfinished body is held after its request failed; longer
/// than the linger (`client_disconnect_timeout`, 1 s) after which actix-web
/// closes the connection, so the task normally ends when the connection does.
const HOLD_UNFINISHED: Duration = Duration::from_secs(3);

/// Keeps a request's body alive until the answer has gone out, so the
/// connection is closed after it instead of drained.
///
/// actix-http decides what to do with an unfinished body when it sends the
/// answer. A body still held by the application: `Connection: close`, a
/// short linger, then the connection is closed. A body already dropped and
/// sent chunked: it is drained to its last chunk first, and a chunked body
/// that never ends (a hostile client, after its 408/413/403) would hold the
/// connection and keep a worker reading for as long as the client sends.
/// Content-Length bodies are closed either way; holding them changes nothing.
pub fn hold_unfinished(req: &HttpRequest, mut payload: web::Payload) {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
        return;
    }
    actix_rt::spawn(async move {
        // Discards what is still buffered; ends when the connection closes.
        let drain = async { while let Some(Ok(_)) = payload.next().await {} };
        let _ = tokio::time::timeout(HOLD_UNFINISHED, drain).await;
    });
}

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not one.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a: SocketAddr| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// A header as text, if present and valid.
pub fn header_text(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// The `token` query parameter (TradingView plain-text alerts).
pub fn query_token(req: &HttpRequest) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenQuery {
        token: Option<String>,
    }
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let req = TestRequest::default()
            .peer_addr("10.1.1.1:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "6.6.6.6, 52.89.214.238, 10.2.2.2"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted),
            "52.89.214.238".parse::<IpAddr>().unwrap()
        );

        let req = TestRequest::default()
            .peer_addr("8.8.8.8:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "52.89.214.238"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn content_headers() {
        let ok = TestRequest::default()
            .insert_header(("Content-Type", "text/plain; charset=utf-8"))
            .to_http_request();
        assert!(check_content_headers(&ok).is_ok());
        let gz = TestRequest::default()
            .insert_header(("Content-Encoding", "gzip"))
            .to_http_request();
        assert_eq!(check_content_headers(&gz).unwrap_err().status(), 415);
        let form = TestRequest::default()
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .to_http_request();
        assert_eq!(check_content_headers(&form).unwrap_err().status(), 415);
    }
}
