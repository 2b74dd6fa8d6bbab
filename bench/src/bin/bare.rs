//! The baseline: a bare actix-web server that reads the body of
//! `POST /webhooks/{source}` and answers 202 `{"status":"accepted"}`.
//! No auth, no JSON parsing, no NATS: whatever the gateway costs on top of
//! this is the gateway's own work.
//!
//! Usage: `bare --addr 127.0.0.1:PORT` (or env `BARE_ADDR`).

use actix_web::{web, App, HttpResponse, HttpServer};

/// Same worker count as the gateway on the 2-core bench machine.
const WORKERS: usize = 2;

async fn accept(body: web::Bytes) -> HttpResponse {
    // Taking the body as an extractor makes actix read all of it first,
    // as the gateway does.
    drop(body);
    HttpResponse::Accepted()
        .content_type("application/json")
        .body(r#"{"status":"accepted"}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--addr", Some(value)) => addr = value,
            _ => {
                eprintln!("usage: bare [--addr HOST:PORT]   (or env BARE_ADDR)");
                std::process::exit(2);
            }
        }
    }
    HttpServer::new(|| App::new().route("/webhooks/{source}", web::post().to(accept)))
        .workers(WORKERS)
        .bind(&addr)?
        .run()
        .await
}
