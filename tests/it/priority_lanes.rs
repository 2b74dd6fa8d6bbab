//! Priority lanes under load: while a low-priority source saturates the
//! gateway, a high-priority source keeps being served and the low one is
//! refused first (503 `overloaded` / `buffer_full`, safe to retry).

use crate::common;

use std::cell::Cell;
use std::time::Duration;

use common::*;
use futures_util::future::join_all;

const LANES: &str = r#"
[sources.alpha]
priority = "high"
[sources.beta]
priority = "low"
"#;

fn options(extra: &str) -> AppOptions {
    AppOptions {
        env: vec![
            ("RATE_LIMIT_RPS", "1000000".into()),
            ("RATE_LIMIT_BURST", "1000000".into()),
        ],
        config: format!("{LANES}{extra}"),
        ..Default::default()
    }
}

fn body(symbol: &str, n: usize) -> String {
    format!(r#"{{"symbol":"{symbol}","action":"buy","quantity":"1","id":"{symbol}-{n}"}}"#)
}

#[actix_rt::test]
async fn a_saturating_low_priority_source_is_shed_while_the_high_one_is_served() {
    // 8 places in flight: the low lane may hold 4, so 4 stay for high.
    let app = spawn_app(options("[lanes]\nmax_in_flight = 8\nlow_percent = 50\n")).await;
    // The low senders run until the high one has sent all its requests.
    let high_done = Cell::new(false);
    let low_sent = Cell::new(0usize);
    let low_ok = Cell::new(0usize);
    let low_shed = Cell::new(0usize);

    // 32 closed-loop low-priority senders.
    let low = join_all((0..32).map(|worker| {
        let app = &app;
        let (sent, ok, shed, done) = (&low_sent, &low_ok, &low_shed, &high_done);
        async move {
            let mut n = 0;
            while !done.get() {
                n += 1;
                let resp = app
                    .send_signed("beta", &sign(&body(&format!("LOW{worker}"), n)))
                    .await;
                sent.set(sent.get() + 1);
                match resp.status().as_u16() {
                    202 => ok.set(ok.get() + 1),
                    503 => {
                        let (_, err) = json_body(resp).await;
                        assert_eq!(err["code"], "overloaded", "{err}");
                        shed.set(shed.get() + 1);
                    }
                    other => panic!("low lane answered {other}"),
                }
            }
        }
    }));
    // One high-priority sender alongside, at its own pace.
    let high = async {
        // Let the low senders fill their lane first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut statuses = Vec::new();
        for n in 0..40 {
            let resp = app.send_signed("alpha", &sign(&body("HIGH", n))).await;
            statuses.push(resp.status().as_u16());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        high_done.set(true);
        statuses
    };
    let (_, high_statuses) = futures_util::join!(low, high);

    assert!(
        high_statuses.iter().all(|s| *s == 202),
        "the high lane was refused: {high_statuses:?}"
    );
    assert!(
        low_shed.get() > 0,
        "the low lane was never shed ({} sent)",
        low_sent.get()
    );
    assert!(low_ok.get() > 0, "the low lane was shut completely");
    let metrics = app.metrics().await;
    let shed_line = format!(
        r#"gateway_requests_shed_total{{priority="low",source="beta"}} {}"#,
        low_shed.get()
    );
    assert!(metrics.contains(&shed_line), "{shed_line} not in metrics");
    assert!(!metrics.contains(r#"gateway_requests_shed_total{priority="high""#));

    // Everything answered 202 is in the stream.
    let stored = app.messages_on("signals.normalized").await.len();
    assert_eq!(stored, low_ok.get() + high_statuses.len());
}

#[actix_rt::test]
async fn the_publish_buffer_keeps_room_for_the_high_lane() {
    // 8 buffer places, 2 messages per request: low may fill 4 places. The
    // memory stores let requests reach the buffer while NATS is paused (with
    // key-value stores they stop earlier, at the claims).
    let mut opts = options("[nats]\nbuffer_capacity = 8\n");
    opts.env.push(("STORE_BACKEND", "memory".into()));
    let app = spawn_app(opts).await;
    app.nats.pause();
    // Once acks time out NATS is not storing: new messages wait for it.
    app.wait_ready(false).await;
    let app = &app;
    let low_waiting = join_all(
        (0..2).map(|n| async move { app.send_signed("beta", &sign(&body("LOW", n))).await }),
    );
    let shed_and_high = async {
        // Let the two low requests take their places.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, err) = json_body(app.send_signed("beta", &sign(&body("LOW", 9))).await).await;
        assert_eq!((status, err["code"].as_str()), (503, Some("buffer_full")));
        let high_request = sign(&body("HIGH", 1));
        let high = app.send_signed("alpha", &high_request);
        let resume = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.nats.resume();
        };
        futures_util::join!(high, resume).0
    };
    let (low, high) = futures_util::join!(low_waiting, shed_and_high);
    assert_eq!(high.status(), 202, "the high lane found a buffer place");
    for resp in low {
        // The paused low requests either made it or timed out safely.
        assert!([202, 503].contains(&resp.status().as_u16()));
    }
}

/// A raw HTTP/1.1 request on a connection opened `wait` before it is sent,
/// as an alert that waited in the accept queue of a burst; its status.
async fn tradingview_after(app: &TestApp, wait: Duration, body: &str) -> u16 {
    use tokio::io::AsyncWriteExt;
    let mut conn = app.connect().await;
    tokio::time::sleep(wait).await;
    conn.write_all(raw_alert(&app.addr(), body).as_bytes())
        .await
        .unwrap();
    read_response(&mut conn).await
}

#[actix_rt::test]
async fn a_tradingview_alert_that_waited_too_long_to_be_read_is_shed_at_once() {
    let app = spawn_app(AppOptions::default()).await;
    // Read at once: served.
    assert_eq!(
        tradingview_after(&app, Duration::ZERO, "buy BTCUSDT 1").await,
        202
    );
    // Its connection accepted 1.2 s before the request could be read: a
    // normal-lane TradingView request (2.5 s cap) is past its 1 s budget for
    // waiting, and is answered 503 at once instead of after TradingView's
    // 3 s; TradingView re-sends it 5 s later.
    assert_eq!(
        tradingview_after(&app, Duration::from_millis(1200), "buy BTCUSDT 2").await,
        503
    );
    assert_eq!(app.messages_on("signals.normalized").await.len(), 1);
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"gateway_requests_shed_total{priority="normal",source="tradingview"} 1"#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn only_a_connections_first_request_counts_from_its_accept() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(AppOptions::default()).await;
    let addr = app.addr();
    // A client that probes health first, then sends alerts on the same
    // kept-alive connection, each after a pause longer than the normal
    // lane's 1 s budget for waiting: none of them waited to be read.
    let mut conn = app.connect().await;
    let probe = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    conn.write_all(probe.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut conn).await, 200);
    for n in 1..=2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        conn.write_all(raw_alert(&addr, &format!("buy BTCUSDT {n}")).as_bytes())
            .await
            .unwrap();
        assert_eq!(read_response(&mut conn).await, 202, "alert {n}");
    }
    assert_eq!(app.messages_on("signals.normalized").await.len(), 2);
}

#[actix_rt::test]
async fn beyond_the_working_limit_a_request_waits_its_turn_while_it_could_still_be_answered() {
    // One request worked on at a time. The memory stores let the first
    // reach the publisher, where it holds its turn while NATS is paused
    // (at least its 1 s ack timeout).
    let mut opts = options("[lanes]\nmax_working = 1\n");
    opts.config = opts.config.replace(
        "priority = \"low\"",
        "priority = \"low\"\nack_wait_ms = 1000",
    );
    opts.env.push(("STORE_BACKEND", "memory".into()));
    let app = spawn_app(opts).await;
    app.nats.pause();
    let app = &app;
    let holder = async {
        let resp = app.send_signed("alpha", &sign(&body("HOLD", 1))).await;
        resp.status().as_u16()
    };
    let waiter = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Low lane, 1 s cap: it may wait for its turn while it could still
        // be answered within 50 % of it, 0.5 s (no work measured yet).
        json_body(app.send_signed("beta", &sign(&body("WAIT", 1))).await).await
    };
    let (held, (status, err)) = futures_util::join!(holder, waiter);
    assert_eq!(
        (status, err["code"].as_str()),
        (503, Some("overloaded")),
        "{err}"
    );
    assert!([202, 503].contains(&held), "the holder: {held}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"gateway_requests_shed_total{priority="low",source="beta"} 1"#),
        "{metrics}"
    );
    // The turn comes back: with NATS storing again the next one is served.
    app.nats.resume();
    app.wait_ready(true).await;
    let resp = app.send_signed("beta", &sign(&body("AFTER", 1))).await;
    assert_eq!(resp.status(), 202);
}

#[actix_rt::test]
async fn bodies_in_flight_are_bounded_by_their_bytes_and_the_room_comes_back() {
    use tokio::io::AsyncWriteExt;
    // Room for 8192 bytes of bodies; TradingView is a normal source, which
    // may use 80 % of it (6553).
    let app = spawn_app(options(
        "[http]\nmax_body_bytes = 4096\n[lanes]\nmax_body_bytes_in_flight = 8192\n",
    ))
    .await;
    let addr = app.addr();
    // A request announcing 4000 bytes of which 3500 arrive: they are held
    // while the rest is awaited.
    let long_body = format!("buy BTCUSDT 1{}", " ".repeat(3987));
    let held = raw_alert(&addr, &long_body);
    let (head, rest) = held.split_at(held.len() - 500);
    let mut slow = app.connect().await;
    slow.write_all(head.as_bytes()).await.unwrap();
    // An announced length takes nothing until its bytes arrive: a
    // 4000-byte claim with nothing sent holds no room.
    let mut claim = app.connect().await;
    let claimed = format!(
        "POST /webhooks/tradingview?token={TV_TOKEN} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: text/plain\r\nContent-Length: 4000\r\n\r\n"
    );
    claim.write_all(claimed.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 3100 more bytes would pass the lane's 6553: refused.
    let big = raw_alert(&addr, &format!("buy BTCUSDT 2{}", " ".repeat(3087)));
    let mut conn = app.connect().await;
    conn.write_all(big.as_bytes()).await.unwrap();
    let (status, answer) = read_answer(&mut conn).await;
    assert_eq!(status, 503, "{answer}");
    // 300 still fit beside the 3500.
    let small = raw_alert(&addr, &format!("buy BTCUSDT 3{}", " ".repeat(287)));
    let mut conn = app.connect().await;
    conn.write_all(small.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut conn).await, 202);

    // The slow body completes and is answered; its room comes back.
    slow.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut slow).await, 202);
    let mut conn = app.connect().await;
    conn.write_all(big.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut conn).await, 202);
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"gateway_requests_shed_total{priority="normal",source="tradingview"} 1"#),
        "{metrics}"
    );
}
