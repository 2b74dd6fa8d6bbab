//! Slow and hostile clients on raw sockets: a bad connection is answered
//! (408/413/403) and then closed, even while the client keeps sending.
//! Found by reliability/faults/hostile-clients.sh: a chunked body that never
//! ends used to be drained after the answer for as long as the client kept
//! sending, holding the connection (and a worker's reading) forever.

use crate::common;

use std::time::Duration;

use common::{spawn_app, status_of, AppOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: the gateway should close within the body timeout plus its
/// one-second linger; a connection still open after this was never closed.
const GIVE_UP: Duration = Duration::from_secs(15);

/// On a gateway with a 0.5 s body read timeout: sends `head`, then keeps
/// sending `chunk` every `every` until the gateway closes the connection
/// or `GIVE_UP` passes. The status the gateway answered and whether it
/// closed the connection.
async fn answer_to_an_endless_body(head: &str, chunk: &[u8], every: Duration) -> (u16, bool) {
    let app = spawn_app(AppOptions::with_config(
        "[http]\nbody_read_timeout_ms = 500\n",
    ))
    .await;
    let mut conn = app.connect().await;
    conn.write_all(head.as_bytes()).await.unwrap();
    send_until_closed(conn, chunk, every).await
}

fn chunked_head(source: &str) -> String {
    format!(
        "POST /webhooks/{source} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
}

/// Keeps sending `chunk` every `every` until the gateway closes the
/// connection or `GIVE_UP` passes. Returns the status the gateway answered
/// and whether it closed the connection.
async fn send_until_closed(mut conn: TcpStream, chunk: &[u8], every: Duration) -> (u16, bool) {
    let (mut rd, mut wr) = conn.split();
    let mut answer = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let writing = async {
        loop {
            if wr.write_all(chunk).await.is_err() {
                // Write failed: the gateway reset the connection; let the
                // reader see the end too.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(every).await;
        }
    };
    let closed = tokio::time::timeout(GIVE_UP, async {
        tokio::select! {
            _ = reading => {},
            _ = writing => {},
        }
    })
    .await
    .is_ok();
    let status = status_of(&String::from_utf8_lossy(&answer)).unwrap_or(0);
    (status, closed)
}

#[actix_rt::test]
async fn an_endless_slow_chunked_body_is_408_and_its_connection_closed() {
    let (status, closed) = answer_to_an_endless_body(
        &chunked_head("alpha"),
        b"5\r\nxxxxx\r\n",
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(status, 408);
    assert!(closed, "the connection stayed open after the 408");
}

#[actix_rt::test]
async fn an_endless_chunked_body_over_the_limit_is_413_and_its_connection_closed() {
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let (status, closed) =
        answer_to_an_endless_body(&chunked_head("alpha"), &chunk, Duration::from_millis(1)).await;
    assert_eq!(status, 413);
    assert!(closed, "the connection stayed open after the 413");
}

#[actix_rt::test]
async fn an_endless_chunked_body_to_a_forbidden_source_is_403_and_closed() {
    let (status, closed) = answer_to_an_endless_body(
        &chunked_head("mallory"),
        b"5\r\nxxxxx\r\n",
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(status, 403);
    assert!(closed, "the connection stayed open after the 403");
}

#[actix_rt::test]
async fn a_body_slower_than_the_read_timeout_is_408_and_its_connection_closed() {
    let head = "POST /webhooks/alpha HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    let (status, closed) = answer_to_an_endless_body(head, b"x", Duration::from_millis(100)).await;
    assert_eq!(status, 408);
    assert!(closed, "the connection stayed open after the 408");
}
