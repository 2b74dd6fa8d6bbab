//! Ops and developer subcommands of the one binary, beside `serve`:
//! `check-config` (the effective settings as TOML, secrets redacted), `sign`
//! (make a signed request for a custom source), `tail` (follow a subject
//! with a durable consumer), `dlq` (list and replay dead letters) and
//! `sources` (the source registry). Each reads the same layered
//! configuration as the gateway.

use std::time::{Duration, Instant};

use async_nats::jetstream::{kv, Context};

use crate::claims::jetstream::{ensure_bucket, BucketSpec};
use crate::config::Settings;
use crate::publish::connection;

pub mod check_config;
pub mod dlq;
pub mod sign;
pub mod sources;
pub mod tail;

/// An ops command's failure, printed on stderr; the exit code tells a usage
/// or configuration problem (2) from a runtime one (1).
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub usage: bool,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            usage: true,
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            usage: false,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Quotes `s` for a POSIX shell (single quotes; a `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A JetStream context for an ops command, once NATS is connected. The
/// gateway's connections retry in the background forever; a command run by
/// hand should instead say at once which address it could not reach.
pub async fn jetstream_context(settings: &Settings, name: &str) -> Result<Context, CliError> {
    let nats = &settings.nats;
    let client = connection::connect(nats, name)
        .await
        .map_err(CliError::runtime)?;
    let wait = Duration::from_millis(nats.connect_timeout_ms).max(Duration::from_secs(1));
    let start = Instant::now();
    while client.connection_state() != async_nats::connection::State::Connected {
        if start.elapsed() > wait {
            return Err(CliError::runtime(format!(
                "NATS at {} is unreachable (no connection within {} ms; nats.url / NATS_URL)",
                connection::redact_url(&nats.url),
                wait.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(connection::jetstream(client, nats))
}

/// A key-value bucket the ops commands keep (no expiry: what they record
/// stays until deleted), created on first use.
pub async fn kv_bucket(
    js: &Context,
    settings: &Settings,
    name: &str,
) -> Result<kv::Store, CliError> {
    let spec = BucketSpec {
        name: name.to_owned(),
        max_age: Duration::ZERO,
        replicas: settings.nats.stream_replicas,
    };
    ensure_bucket(js, &spec).await.map_err(CliError::runtime)?;
    js.get_key_value(name)
        .await
        .map_err(|e| CliError::runtime(format!("bucket {name}: {e}")))
}
