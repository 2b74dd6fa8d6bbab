//! The integration tests, one crate (one binary to build and link): each
//! module drives the real HTTP server, most against a nats-server of
//! their own (`common`). nextest runs every test in its own process.

mod common;

mod body_hmac;
mod cli;
mod cloudevents;
mod crash_recovery;
mod custom_webhooks;
mod example_agent;
mod fail_closed;
mod fuzz_regressions;
mod hostile_clients;
mod idempotency;
mod layers;
mod limits;
mod nats_client_requests;
mod nats_server_check;
mod normalization;
mod observability;
mod openapi;
mod ops_cli;
mod priority_lanes;
mod registry;
mod replicas;
mod rotation;
mod shutdown;
mod sources_cli;
mod standard_webhooks;
mod stream_claims;
mod templates;
mod tls;
mod tradingview;
