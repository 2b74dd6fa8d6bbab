//! `at-gateway sources …`: the operator's side of the source registry
//! (`sources/registry.rs`), for platforms that give each trader a webhook of
//! their own. `add` makes a source and hands its token or secret over once;
//! `rotate` gives it a new one while the old keeps working for an overlap;
//! `disable`/`enable` stop and resume serving it; `list` and `show` read the
//! registry without ever printing a credential. NATS credentials are the
//! access control: whoever may write the bucket may run these.
//!
//! Every record is checked with [`SourceRecord::build`], the code the
//! gateway serves it with, before it is written, so a record the gateway
//! would refuse is never stored. Writes are atomic: `add` uses the bucket's
//! `create` (of two operators adding one name, one wins) and every change a
//! compare-and-set on the revision it read, so concurrent operators never
//! lose each other's writes.

mod args;
mod handover;
mod store;
mod view;

use std::io::Write;
use std::time::Duration;

use async_nats::jetstream::kv;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;

use super::CliError;
use crate::config::{RegistrySettings, Settings};
use crate::ids::SourceId;
use crate::sources::registry::{
    now_text, parse_time, random_token, random_whsec_secret, time_text, RegistryKey, SealedSecret,
    SourceRecord, StoredToken,
};
use crate::sources::{SourceConfig, SourceKind, TokenDigest};

pub use args::{AddArgs, Command, Kind};
pub use handover::alert_message;
use store::{encode, Registry};

/// How long the old token or secret keeps working after `rotate` unless
/// `--overlap-sec` says otherwise: a day for the trader to update the alert.
pub const DEFAULT_OVERLAP_SEC: u64 = 86_400;

/// Runs one `sources` subcommand, writing what it shows to `out`.
pub async fn run(
    settings: &Settings,
    command: Command,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        Command::NewKey => new_key(out),
        Command::Add(args) => add(settings, &args, out).await,
        Command::Rotate {
            name,
            overlap_sec,
            json,
        } => rotate(settings, &name, overlap_sec, json, out).await,
        Command::Disable { name } => set_disabled(settings, &name, true, out).await,
        Command::Enable { name } => set_disabled(settings, &name, false, out).await,
        Command::List { json } => {
            let registry = Registry::open(settings).await?;
            view::list(&registry, json, out).await
        }
        Command::Show { name, json } => {
            let id = source_name(&name)?;
            let registry = Registry::open(settings).await?;
            view::show(&registry, &id, json, out).await
        }
    }
}

/// `sources new-key`: needs neither NATS nor an enabled registry, so it
/// can make the key that enables it.
pub fn new_key(out: &mut impl Write) -> Result<(), CliError> {
    let (_, text) = RegistryKey::generate();
    writeln!(out, "{}", text.expose_secret()).map_err(write_error)
}

async fn add(settings: &Settings, args: &AddArgs, out: &mut impl Write) -> Result<(), CliError> {
    // Everything that needs no NATS is checked first.
    let config = enabled(settings)?;
    let id = source_name(&args.name)?;
    let name = id.as_str();
    if settings.source(name).is_some() {
        return Err(CliError::usage(format!(
            "source {name:?} is configured in the configuration ([sources.{name}] or \
             ALLOWED_SOURCES); a registry source needs a name of its own"
        )));
    }
    if args.kind == Kind::Tradingview && args.scheme.is_some() {
        return Err(CliError::usage(
            "--scheme is for custom sources: a TradingView source authenticates with its token",
        ));
    }
    if args.kind == Kind::Custom && name == "tradingview" {
        return Err(CliError::usage(
            "the name 'tradingview' is the TradingView route (/webhooks/tradingview): \
             a custom source needs another name",
        ));
    }
    let mut record = SourceRecord {
        settings: args.settings(),
        updated_at: now_text(),
        ..Default::default()
    };
    let credential = new_credential(
        &id,
        &mut record,
        &config.key,
        OffsetDateTime::now_utc(),
        &[],
    );
    let source = check(settings, &id, &record)
        .map_err(|e| CliError::usage(format!("{e}; nothing was written")))?;

    let registry = Registry::open(settings).await?;
    match registry.store.create(name, encode(&record)?).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            return Err(CliError::usage(format!(
                "source {name:?} already exists in the registry; nothing was changed \
                 (`at-gateway sources rotate {name}` gives it a new credential)"
            )))
        }
        Err(e) => return Err(registry.failed(&format!("cannot add {name}"), e)),
    }
    let kind = match source.kind {
        SourceKind::Tradingview => "TradingView",
        SourceKind::Custom => "Custom",
    };
    let handover = handover::Handover {
        source: &source,
        url: webhook_url(config, &source),
        credential,
        headline: format!("{kind} source {name} added to the registry."),
        previous_until: None,
    };
    handover.print(args.json, out)
}

async fn rotate(
    settings: &Settings,
    name: &str,
    overlap_sec: u64,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let config = enabled(settings)?;
    let id = source_name(name)?;
    let registry = Registry::open(settings).await?;
    let (source, (credential, until)) = registry
        .change(&id, |record, current| {
            let now = OffsetDateTime::now_utc();
            let until = now + Duration::from_secs(overlap_sec);
            let until_text = time_text(until);
            // Expired entries go; live ones end at `until` at the latest.
            let cap = |not_after: &mut Option<String>| {
                let earlier = not_after
                    .as_deref()
                    .and_then(|t| parse_time(t).ok())
                    .is_some_and(|t| t < until);
                if !earlier {
                    *not_after = Some(until_text.clone());
                }
            };
            let taken: Vec<String> = record.secrets.iter().map(|s| s.id.clone()).collect();
            match current.kind {
                SourceKind::Tradingview => {
                    record.tokens.retain(|t| live(&t.not_after, now));
                    record.tokens.iter_mut().for_each(|t| cap(&mut t.not_after));
                }
                SourceKind::Custom => {
                    record.secrets.retain(|s| live(&s.not_after, now));
                    record
                        .secrets
                        .iter_mut()
                        .for_each(|s| cap(&mut s.not_after));
                }
            }
            let credential = new_credential(&id, record, &config.key, now, &taken);
            Ok((credential, until_text.clone()))
        })
        .await?;
    let what = match source.kind {
        SourceKind::Tradingview => "token",
        SourceKind::Custom => "secret",
    };
    let handover = handover::Handover {
        source: &source,
        url: webhook_url(config, &source),
        credential,
        headline: format!(
            "New {what} for {name}; the previous {what}s keep working until {until}."
        ),
        previous_until: Some(until),
    };
    handover.print(json, out)
}

async fn set_disabled(
    settings: &Settings,
    name: &str,
    disabled: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    enabled(settings)?;
    let id = source_name(name)?;
    let registry = Registry::open(settings).await?;
    let state = if disabled { "disabled" } else { "enabled" };
    let (record, _) = registry.read(&id).await?;
    if record.disabled == disabled {
        return writeln!(out, "source {name} is already {state}; nothing was changed")
            .map_err(write_error);
    }
    registry
        .change(&id, |record, _| {
            record.disabled = disabled;
            Ok(())
        })
        .await?;
    let effect = if disabled {
        "its requests are refused (403) until `at-gateway sources enable`"
    } else {
        "it is served again"
    };
    writeln!(out, "source {name} {state}: {effect}").map_err(write_error)
}

/// A new token (TradingView) or sealed secret (custom) added to `record`,
/// and the credential in clear, to hand over once. `taken`: the key ids the
/// record had before expired ones were dropped.
fn new_credential(
    id: &SourceId,
    record: &mut SourceRecord,
    key: &RegistryKey,
    now: OffsetDateTime,
    taken: &[String],
) -> handover::Credential {
    let kind = record.settings.get("kind").and_then(Value::as_str);
    if kind == Some(SourceKind::Tradingview.as_str()) {
        let token = random_token();
        record.tokens.push(StoredToken {
            sha256: TokenDigest::of(token.expose_secret(), None).to_hex(),
            not_after: None,
        });
        return handover::Credential::Token(token);
    }
    let scheme = record.settings.get("scheme").and_then(Value::as_str);
    let secret: SecretString = if scheme == Some("standard-webhooks") {
        random_whsec_secret()
    } else {
        random_token()
    };
    let key_id = new_key_id(taken, now);
    record.secrets.push(SealedSecret {
        id: key_id.clone(),
        sealed: key.seal(id.as_str(), &key_id, &secret),
        not_after: None,
    });
    handover::Credential::Secret { key_id, secret }
}

/// The key id of a new secret: when it was made, to the second (suffixed
/// when that id is `taken`), so an id names one secret in logs and metrics
/// (`key_id`) and is not reused for another after the old one is dropped.
fn new_key_id(taken: &[String], now: OffsetDateTime) -> String {
    let at = time_text(now);
    let free = |id: &String| !taken.contains(id);
    std::iter::once(at.clone())
        .chain((2..).map(|n| format!("{at}-{n}")))
        .find(free)
        .unwrap_or(at)
}

/// Whether a token or key whose `not_after` is this still verifies at `now`.
fn live(not_after: &Option<String>, now: OffsetDateTime) -> bool {
    match not_after.as_deref().map(parse_time) {
        None => true,
        Some(Ok(t)) => now < t,
        // Kept: the gateway refuses the record with the reason.
        Some(Err(_)) => true,
    }
}

/// Where the source's sender posts (the source named `tradingview` has the
/// short TradingView route).
fn webhook_url(config: &RegistrySettings, source: &SourceConfig) -> String {
    let base = &config.public_url;
    let name = source.id.as_str();
    match source.kind {
        SourceKind::Tradingview if name == "tradingview" => format!("{base}/webhooks/tradingview"),
        SourceKind::Tradingview => format!("{base}/webhooks/tradingview/{name}"),
        SourceKind::Custom => format!("{base}/webhooks/{name}"),
    }
}

fn write_error(e: std::io::Error) -> CliError {
    CliError::runtime(format!("cannot write: {e}"))
}

/// The registry's settings, or why these commands cannot run.
fn enabled(settings: &Settings) -> Result<&RegistrySettings, CliError> {
    settings.registry.as_ref().ok_or_else(|| {
        CliError::usage(
            "the source registry is not enabled: set SOURCE_REGISTRY=true (registry.enabled) \
             and its key SOURCE_REGISTRY_KEY (`at-gateway sources new-key` makes one)",
        )
    })
}

/// A source name as the gateway's routes and the bucket's keys accept it.
fn source_name(name: &str) -> Result<SourceId, CliError> {
    let bad = || {
        CliError::usage(format!(
            "{name:?} is not a source name: up to {} characters of A-Z a-z 0-9 _ - . \
             (not starting or ending with '.')",
            SourceId::MAX_LEN
        ))
    };
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err(bad());
    }
    SourceId::parse(name).ok_or_else(bad)
}

/// The source `record` describes, checked as the gateway checks it.
fn check(
    settings: &Settings,
    id: &SourceId,
    record: &SourceRecord,
) -> Result<SourceConfig, String> {
    let key = settings.registry.as_ref().map(|r| &*r.key);
    record.build(id, key, &settings.source_defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_is_never_one_the_record_had() {
        let now = OffsetDateTime::now_utc();
        let first = new_key_id(&[], now);
        let second = new_key_id(std::slice::from_ref(&first), now);
        let third = new_key_id(&[first.clone(), second.clone()], now);
        assert_eq!(first, time_text(now));
        assert_ne!(first, second);
        assert!(third != first && third != second);
    }

    #[test]
    fn a_credential_lives_until_its_not_after() {
        let now = OffsetDateTime::now_utc();
        let at = |d: time::Duration| Some(time_text(now + d));
        assert!(live(&None, now));
        assert!(live(&at(time::Duration::hours(1)), now));
        assert!(!live(&at(-time::Duration::seconds(1)), now));
    }

    #[test]
    fn add_writes_the_settings_of_a_section() {
        let args = AddArgs {
            name: "t".into(),
            kind: Kind::Tradingview,
            scheme: None,
            signature_header: None,
            id_header: None,
            timestamp_header: None,
            timestamp_format: None,
            priority: Some("high".into()),
            rate_limit_rps: Some(5),
            rate_limit_burst: None,
            format: None,
            allowed_ips: vec!["52.89.214.238".into()],
            ack_wait_ms: None,
            content_dedupe_sec: Some(30),
            json: false,
        };
        assert_eq!(
            Value::Object(args.settings()),
            serde_json::json!({
                "kind": "tradingview",
                "priority": "high",
                "rate_limit_rps": 5,
                "content_dedupe_sec": 30,
                "allowed_ips": ["52.89.214.238"],
            })
        );
    }
}
