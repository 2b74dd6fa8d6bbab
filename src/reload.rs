//! Reloading sources without a restart: on SIGHUP the gateway reads its
//! configuration again (the `--config` file and the environment) and swaps
//! in the new source table — keys, tokens, allowlists, rates — atomically.
//! Requests already in flight finish with the table they started with.
//!
//! The HTTPS certificate and key are read again too (a renewed certificate
//! takes effect for new connections). Only sources and the certificate are
//! reloaded; any other setting needs a restart. A
//! configuration that does not load is refused with an error in the log, and
//! the table in force stays.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ConfigError, Settings, SourceMap};
use crate::ratelimit::{Buckets, LiveBuckets};
use crate::tls::CertStore;

/// The source table in force, swapped as a whole on reload.
pub type LiveSources = Arc<ArcSwap<SourceMap>>;

#[derive(Clone)]
pub struct Reloader {
    config_file: Option<PathBuf>,
    sources: LiveSources,
    buckets: LiveBuckets,
    certs: Option<Arc<CertStore>>,
}

impl Reloader {
    pub fn new(
        config_file: Option<PathBuf>,
        sources: LiveSources,
        buckets: LiveBuckets,
        certs: Option<Arc<CertStore>>,
    ) -> Self {
        Reloader {
            config_file,
            sources,
            buckets,
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
        let buckets = self.buckets.load().rebuilt(settings.sources.values());
        self.sources.store(settings.sources.clone());
        self.buckets.store(buckets);
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
pub fn live(settings: &Settings) -> (LiveSources, LiveBuckets) {
    (
        Arc::new(ArcSwap::new(settings.sources.clone())),
        Arc::new(ArcSwap::new(Buckets::new(settings.sources.values()))),
    )
}
