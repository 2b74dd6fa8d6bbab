//! Ops and developer subcommands of the one binary, beside `serve`:
//! `check-config` (the effective settings as TOML, secrets redacted), `sign`
//! (make a signed request for a custom source), `tail` (follow a subject
//! with a durable consumer) and `dlq` (list and replay dead letters).
//! Each reads the same layered configuration as the gateway.

pub mod check_config;
pub mod dlq;
pub mod sign;
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
