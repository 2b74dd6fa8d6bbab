//! The live source table, and changing it without a restart. Sources come
//! from two places: the configuration (read again on SIGHUP: the
//! `--config` file and the environment) and, when enabled, the source
//! registry in JetStream key-value (`registry.rs`, watched). Either change
//! swaps in a new table — keys, tokens, allowlists, rates — atomically:
//! each source's settings, its rate bucket and its metric handles are one
//! entry of one table, stored with one swap, so no request sees a source
//! without its bucket or half of a change. Requests already in flight
//! finish with the entry they started with. A name in both places is the
//! configuration's.
//!
//! The HTTPS certificate and key are read again too (a renewed certificate
//! takes effect for new connections). Only sources and the certificate are
//! reloaded; any other setting needs a restart. A
//! configuration that does not load is refused with an error in the log, and
//! the table in force stays.

pub mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{ConfigError, Settings};
use crate::ids::SourceId;
use crate::ratelimit::SourceBucket;
use crate::sources::{SourceConfig, SourceMap};
use crate::telemetry::SourceMetrics;
use crate::tls::CertStore;

/// One source as it is served: its settings, its rate bucket and its
/// metric handles.
#[derive(Clone)]
pub struct SourceEntry {
    pub config: Arc<SourceConfig>,
    pub bucket: Arc<SourceBucket>,
    pub metrics: Arc<SourceMetrics>,
}

/// Every source in force.
pub type SourceTable = HashMap<SourceId, SourceEntry>;

/// The source table in force, swapped as a whole on reload.
pub type LiveSources = Arc<ArcSwap<SourceTable>>;

/// Where the live table's sources come from, and the one way to change it.
pub struct Tables {
    live: LiveSources,
    /// The two parts the table is made of; held while a new table is made
    /// and stored, so two changes (a reload and a registry update) cannot
    /// lose one another.
    parts: Mutex<Parts>,
}

struct Parts {
    /// The configuration's allowed sources.
    file: Arc<SourceMap>,
    /// The registry's enabled sources that build.
    registry: SourceMap,
}

impl Tables {
    /// The table of the start-up settings (no registry source yet).
    pub fn new(file: Arc<SourceMap>) -> Arc<Tables> {
        let parts = Parts {
            file,
            registry: SourceMap::new(),
        };
        let table = compose(&parts, &SourceTable::new());
        Arc::new(Tables {
            live: Arc::new(ArcSwap::from_pointee(table)),
            parts: Mutex::new(parts),
        })
    }

    /// The table requests read.
    pub fn live(&self) -> LiveSources {
        self.live.clone()
    }

    /// Swaps in the configuration's sources (a reload).
    pub fn set_file(&self, file: Arc<SourceMap>) {
        self.change(|parts| parts.file = file);
    }

    /// Applies a change to the registry's sources.
    pub fn change_registry(&self, change: impl FnOnce(&mut SourceMap)) {
        self.change(|parts| change(&mut parts.registry));
    }

    fn change(&self, change: impl FnOnce(&mut Parts)) {
        // A poisoned lock means a panic while composing; the parts are
        // still whole (each change is applied before composing).
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut parts);
        let table = compose(&parts, &self.live.load());
        self.live.store(Arc::new(table));
    }
}

/// The table for `parts`. An entry whose settings are the same `Arc` as in
/// `previous` is kept as it is; a source whose rate did not change keeps
/// its bucket (and the budget it has used).
fn compose(parts: &Parts, previous: &SourceTable) -> SourceTable {
    let from_registry = parts
        .registry
        .iter()
        .filter(|(id, _)| !parts.file.contains_key(*id))
        .map(|entry| (entry, true));
    parts
        .file
        .iter()
        .map(|entry| (entry, false))
        .chain(from_registry)
        .map(|((id, config), registry)| {
            let before = previous.get(id);
            if let Some(kept) = before.filter(|e| Arc::ptr_eq(&e.config, config)) {
                return (id.clone(), kept.clone());
            }
            let metrics = if registry {
                SourceMetrics::registry(config.priority)
            } else {
                Arc::new(SourceMetrics::new(
                    id.as_str(),
                    config.priority.as_str(),
                    config.keys.iter().map(|k| k.id.as_str()),
                ))
            };
            let entry = SourceEntry {
                config: config.clone(),
                bucket: SourceBucket::for_source(config, before.map(|e| &e.bucket)),
                metrics,
            };
            (id.clone(), entry)
        })
        .collect()
}

#[derive(Clone)]
pub struct Reloader {
    config_file: Option<PathBuf>,
    tables: Arc<Tables>,
    certs: Option<Arc<CertStore>>,
}

impl Reloader {
    pub fn new(
        config_file: Option<PathBuf>,
        tables: Arc<Tables>,
        certs: Option<Arc<CertStore>>,
    ) -> Self {
        Reloader {
            config_file,
            tables,
            certs,
        }
    }

    /// Loads the configuration again and swaps in its sources, and the
    /// HTTPS certificate. Either is refused whole if it does not load.
    pub fn reload(&self) -> Result<(), ConfigError> {
        if let Some(certs) = &self.certs {
            match certs.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload refused; the current one stays")
                }
            }
        }
        let settings = Settings::load(self.config_file.as_deref())?;
        self.tables.set_file(settings.sources.clone());
        let mut summary: Vec<String> = settings
            .sources
            .values()
            .map(|s| {
                let keys: Vec<&str> = s.keys.iter().map(|k| k.id.as_str()).collect();
                format!("{}({})", s.id, keys.join(","))
            })
            .collect();
        summary.sort();
        tracing::info!(sources = %summary.join(" "), "configuration reloaded");
        Ok(())
    }

    /// Reloads on every SIGHUP, for as long as the process runs.
    pub async fn on_sighup(self) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload needs a restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            if let Err(e) = self.reload() {
                tracing::error!(error = %e, "reload refused; the current configuration stays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rps: &str) -> Settings {
        let env = [
            ("TRADINGVIEW_TOKEN", "tv-token-0123456789"),
            ("API_KEY_HMAC_SECRET", "custom-secret-0123456789"),
            ("ALLOWED_SOURCES", "tradingview,alpha"),
            ("RATE_LIMIT_RPS", rps),
        ];
        Settings::load_with_env(None, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn a_reloaded_entry_keeps_its_bucket_only_while_its_rate_stays() {
        let tables = Tables::new(settings("10").sources);
        let before = tables.live().load_full();
        tables.set_file(settings("10").sources);
        let same = tables.live().load_full();
        tables.set_file(settings("11").sources);
        let changed = tables.live().load_full();
        let alpha = SourceId::parse("alpha").unwrap();
        assert!(Arc::ptr_eq(&before[&alpha].bucket, &same[&alpha].bucket));
        assert!(!Arc::ptr_eq(&same[&alpha].bucket, &changed[&alpha].bucket));
        // Every entry carries the settings it was built from.
        assert_eq!(changed[&alpha].config.rate_limit_rps, 11);
        assert_eq!(changed.len(), 2);
    }

    #[test]
    fn registry_sources_join_the_table_and_a_configured_name_wins() {
        let file = settings("10").sources;
        let tables = Tables::new(file.clone());
        let alpha = SourceId::parse("alpha").unwrap();
        let trader = SourceId::parse("trader-1").unwrap();
        let tv = file[&SourceId::parse("tradingview").unwrap()].clone();
        tables.change_registry(|r| {
            r.insert(trader.clone(), tv.clone());
            r.insert(alpha.clone(), tv.clone());
        });
        let table = tables.live().load_full();
        assert_eq!(table.len(), 3);
        assert!(
            Arc::ptr_eq(&table[&alpha].config, &file[&alpha]),
            "the file's alpha"
        );
        assert!(Arc::ptr_eq(&table[&trader].config, &tv));
        // Registry sources count under one metric label.
        assert!(Arc::ptr_eq(
            &table[&trader].metrics,
            &SourceMetrics::registry(tv.priority)
        ));
        // An unchanged entry is kept as it is; a removed one is gone.
        tables.change_registry(|r| {
            r.remove(&alpha);
        });
        let after = tables.live().load_full();
        assert!(Arc::ptr_eq(&after[&trader].bucket, &table[&trader].bucket));
        tables.change_registry(|r| {
            r.remove(&trader);
        });
        assert!(!tables.live().load().contains_key(&trader));
    }
}
