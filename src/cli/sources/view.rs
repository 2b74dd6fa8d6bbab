//! `sources list` and `sources show`: what the registry holds, for an
//! operator or a script, without a credential: tokens are counted and
//! numbered, keys named by id, never a digest or a sealed secret.

use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{live, write_error, Registry};
use crate::cli::CliError;
use crate::ids::SourceId;
use crate::sources::registry::SourceRecord;

/// One line of `sources list`.
#[derive(Serialize)]
struct Row {
    name: String,
    kind: String,
    /// Custom sources only.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
    /// `enabled`, `disabled`, or `invalid` (the gateway would not serve it).
    state: &'static str,
    /// Tokens or keys that verify now.
    live: usize,
    updated_at: String,
    /// Why an invalid record is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

pub(super) async fn list(
    registry: &Registry<'_>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for (name, record) in read_all(registry).await? {
        rows.push(match record {
            Ok(record) => row(registry, &name, &record, now),
            Err(problem) => Row {
                name,
                kind: "?".into(),
                scheme: None,
                state: "invalid",
                live: 0,
                updated_at: String::new(),
                problem: Some(problem),
            },
        });
    }
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    let mut text = String::new();
    if json {
        for r in &rows {
            text.push_str(&serde_json::to_string(r).unwrap_or_default());
            text.push('\n');
        }
    } else {
        text.push_str(&format!(
            "{:w$}  {:11}  {:17}  {:8}  {:>4}  UPDATED\n",
            "NAME", "KIND", "SCHEME", "STATE", "LIVE"
        ));
        for r in &rows {
            text.push_str(&format!(
                "{:w$}  {:11}  {:17}  {:8}  {:>4}  {}\n",
                r.name,
                r.kind,
                r.scheme.as_deref().unwrap_or("-"),
                r.state,
                r.live,
                r.updated_at
            ));
        }
        text.push_str(&format!("{} source(s)\n", rows.len()));
    }
    out.write_all(text.as_bytes()).map_err(write_error)
}

fn row(registry: &Registry<'_>, name: &str, record: &SourceRecord, now: OffsetDateTime) -> Row {
    let problem = SourceId::parse(name)
        .ok_or_else(|| "not a source name".to_string())
        .and_then(|id| registry.check_stored(&id, record).map_err(|e| e.message))
        .err();
    let (kind, scheme) = kind_and_scheme(name, &record.settings);
    Row {
        name: name.to_owned(),
        kind,
        scheme,
        state: match (&problem, record.disabled) {
            (Some(_), _) => "invalid",
            (None, true) => "disabled",
            (None, false) => "enabled",
        },
        live: record
            .tokens
            .iter()
            .map(|t| &t.not_after)
            .chain(record.secrets.iter().map(|s| &s.not_after))
            .filter(|n| live(n, now))
            .count(),
        updated_at: record.updated_at.clone(),
        problem,
    }
}

/// The kind and scheme as the gateway reads them, defaults included.
fn kind_and_scheme(name: &str, settings: &Map<String, Value>) -> (String, Option<String>) {
    let text = |key| settings.get(key).and_then(Value::as_str);
    let kind = text("kind").unwrap_or(if name == "tradingview" {
        "tradingview"
    } else {
        "custom"
    });
    let scheme = (kind == "custom").then(|| text("scheme").unwrap_or("hmac-sha256").to_owned());
    (kind.to_owned(), scheme)
}

/// A token or key as `show` describes it.
#[derive(Serialize)]
struct Credential {
    /// A key's id; tokens are numbered from 1 in the order they were made.
    id: String,
    not_after: Option<String>,
    live: bool,
}

pub(super) async fn show(
    registry: &Registry<'_>,
    id: &SourceId,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let (record, revision) = registry.read(id).await?;
    let now = OffsetDateTime::now_utc();
    let problem = registry.check_stored(id, &record).err().map(|e| e.message);
    let (kind, scheme) = kind_and_scheme(id.as_str(), &record.settings);
    let tokens: Vec<Credential> = record
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| Credential {
            id: format!("#{}", i + 1),
            not_after: t.not_after.clone(),
            live: live(&t.not_after, now),
        })
        .collect();
    let keys: Vec<Credential> = record
        .secrets
        .iter()
        .map(|s| Credential {
            id: s.id.clone(),
            not_after: s.not_after.clone(),
            live: live(&s.not_after, now),
        })
        .collect();
    let text = if json {
        let doc = serde_json::json!({
            "name": id.as_str(),
            "kind": kind,
            "scheme": scheme,
            "disabled": record.disabled,
            "updated_at": record.updated_at,
            "revision": revision,
            "settings": record.settings,
            "tokens": tokens,
            "keys": keys,
            "problem": problem,
        });
        format!("{doc}\n")
    } else {
        let mut t = format!("source      {id}\nkind        {kind}\n");
        if let Some(s) = &scheme {
            t.push_str(&format!("scheme      {s}\n"));
        }
        let state = if record.disabled {
            "disabled"
        } else {
            "enabled"
        };
        t.push_str(&format!(
            "state       {state}\nupdated_at  {}\nrevision    {revision}\n",
            record.updated_at
        ));
        if let Some(p) = &problem {
            t.push_str(&format!("INVALID     {p}\n"));
        }
        t.push_str("settings\n");
        for (key, value) in &record.settings {
            t.push_str(&format!("  {key} = {value}\n"));
        }
        for (title, list) in [("tokens", &tokens), ("keys", &keys)] {
            if list.is_empty() {
                continue;
            }
            t.push_str(&format!("{title}\n"));
            let w = list.iter().map(|c| c.id.len()).max().unwrap_or(0);
            for c in list {
                let until = match (&c.not_after, c.live) {
                    (None, _) => "no expiry".to_string(),
                    (Some(at), true) => format!("until {at}"),
                    (Some(at), false) => format!("expired {at}"),
                };
                t.push_str(&format!("  {:w$}  {until}\n", c.id));
            }
        }
        t
    };
    out.write_all(text.as_bytes()).map_err(write_error)
}

/// Every record of the bucket by name: the last value of each key, read
/// through one ordered consumer rather than a request per key (a platform
/// has thousands). A record that does not parse is kept with the reason.
async fn read_all(
    registry: &Registry<'_>,
) -> Result<Vec<(String, Result<SourceRecord, String>)>, CliError> {
    let store = &registry.store;
    let status = store
        .status()
        .await
        .map_err(|e| registry.failed("cannot read its state", e))?;
    let mut records = Vec::new();
    if status.values() == 0 {
        return Ok(records);
    }
    let mut watch = store
        .watch_with_history(">")
        .await
        .map_err(|e| registry.failed("cannot read it", e))?;
    loop {
        let entry = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .map_err(|_| registry.failed("cannot read it", "no record within 10 s"))?;
        let Some(entry) = entry else { break };
        let entry = entry.map_err(|e| registry.failed("cannot read it", e))?;
        if entry.operation == async_nats::jetstream::kv::Operation::Put {
            let record = serde_json::from_slice(&entry.value)
                .map_err(|e| format!("the record does not parse: {e}"));
            records.push((entry.key, record));
        }
        if entry.delta == 0 {
            break;
        }
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(records)
}
