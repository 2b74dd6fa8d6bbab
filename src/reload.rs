//! Reloading sources without a restart: on SIGHUP the gateway reads its
//! configuration again (the `--config` file and the environment) and swaps
//! in the new source table — keys, tokens, allowlists, rates — atomically:
//! each source's settings and its rate bucket are one entry of one table,
//! stored with one swap, so no request sees a source without its bucket.
//! Requests already in flight finish with the entry they started with.
//!
//! The HTTPS certificate and key are read again too (a renewed certificate
//! takes effect for new connections). Only sources and the certificate are
//! reloaded; any other setting needs a restart. A
//! configuration that does not load is refused with an error in the log, and
//! the table in force stays.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

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

/// The table for `sources`; a source whose rate did not change keeps its
/// bucket from `previous`.
pub fn table(sources: &SourceMap, previous: Option<&SourceTable>) -> SourceTable {
    sources
        .iter()
        .map(|(id, config)| {
            let kept = previous.and_then(|p| p.get(id)).map(|e| &e.bucket);
            let entry = SourceEntry {
                config: config.clone(),
                bucket: SourceBucket::for_source(config, kept),
                metrics: Arc::new(SourceMetrics::new(
                    id.as_str(),
                    config.priority.as_str(),
                    config.keys.iter().map(|k| k.id.as_str()),
                )),
            };
            (id.clone(), entry)
        })
        .collect()
}

#[derive(Clone)]
pub struct Reloader {
    config_file: Option<PathBuf>,
    sources: LiveSources,
    certs: Option<Arc<CertStore>>,
}

impl Reloader {
    pub fn new(
        config_file: Option<PathBuf>,
        sources: LiveSources,
        certs: Option<Arc<CertStore>>,
    ) -> Self {
        Reloader {
            config_file,
            sources,
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
        let table = table(&settings.sources, Some(&self.sources.load()));
        self.sources.store(Arc::new(table));
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

/// A fresh live table from the start-up settings.
pub fn live(settings: &Settings) -> LiveSources {
    Arc::new(ArcSwap::from_pointee(table(&settings.sources, None)))
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
        let before = table(&settings("10").sources, None);
        let same = table(&settings("10").sources, Some(&before));
        let changed = table(&settings("11").sources, Some(&same));
        let alpha = SourceId::parse("alpha").unwrap();
        assert!(Arc::ptr_eq(&before[&alpha].bucket, &same[&alpha].bucket));
        assert!(!Arc::ptr_eq(&same[&alpha].bucket, &changed[&alpha].bucket));
        // Every entry carries the settings it was built from.
        assert_eq!(changed[&alpha].config.rate_limit_rps, 11);
        assert_eq!(changed.len(), 2);
    }
}
