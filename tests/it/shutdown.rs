//! Stopping (SIGTERM/SIGINT): the gateway drains, then stops; no request a
//! client has written before the stop began goes unanswered.

use crate::common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn body(i: usize) -> String {
    format!(r#"{{"symbol":"BTCUSDT","action":"buy","quantity":"{i}"}}"#)
}

#[actix_rt::test]
async fn graceful_shutdown_answers_every_in_flight_request() {
    let app = spawn_app(AppOptions::with_config("[http]\ndrain_ms = 100\n")).await;
    app.nats.kill();
    app.wait_ready(false).await;
    let sends = join_all((0..5).map(|i| app.signed(&sign(&body(i))).try_send()));
    let stop_and_heal = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stop = app.drain_then_stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.await;
    };
    let (results, ()) = futures_util::join!(sends, stop_and_heal);
    for r in results {
        let status = r.expect("every in-flight request gets an answer").status();
        assert!(status == 202 || status == 503, "{status}");
    }
    app.nats.restart();
}

#[actix_rt::test]
async fn a_request_on_an_idle_kept_alive_connection_as_the_stop_begins_is_answered() {
    // actix-web's own graceful stop closes idle kept-alive connections at
    // once: a request its client wrote an instant before, not yet read,
    // went unanswered. The drain serves it, and closes the connection
    // after the answer.
    let app = spawn_app(AppOptions::with_config("[http]\ndrain_ms = 1000\n")).await;
    let addr = app.addr();
    let mut conn = app.connect().await;
    let probe = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.write_all(probe.as_bytes()).await.unwrap();
    let (status, head) = read_answer(&mut conn).await;
    assert_eq!(status, 200);
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    let during_the_drain = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, ready) = answer(app.http.get(app.url("/readyz"))).await;
        assert_eq!(status, 503, "not ready while draining: {ready}");
        assert!(
            ready["problem"].as_str().unwrap().contains("draining"),
            "{ready}"
        );
        conn.write_all(raw_alert(&addr, "buy BTCUSDT 1").as_bytes())
            .await
            .unwrap();
        let (status, head) = read_answer(&mut conn).await;
        assert_eq!(status, 202, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let mut rest = Vec::new();
        let closed = conn.read_to_end(&mut rest).await;
        assert!(closed.is_ok() && rest.is_empty(), "closed after the answer");
    };
    futures_util::join!(app.drain_then_stop(), during_the_drain);
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
}
