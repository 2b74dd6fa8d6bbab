//! The registry's bucket as the `sources` commands read and write it:
//! one JSON record per source name, every change a compare-and-set on the
//! revision read, so operators working at once never lose a write.

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::{check, enabled};
use crate::cli::CliError;
use crate::config::{RegistrySettings, Settings};
use crate::ids::SourceId;
use crate::sources::registry::{now_text, SourceRecord};
use crate::sources::SourceConfig;

/// How often a change is read and tried again when another operator wrote
/// the same source in between.
const CAS_ATTEMPTS: usize = 5;

pub(super) fn encode(record: &SourceRecord) -> Result<Bytes, CliError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| CliError::runtime(format!("cannot encode the record: {e}")))
}

/// The registry's bucket, open.
pub(super) struct Registry<'s> {
    pub(super) store: kv::Store,
    pub(super) settings: &'s Settings,
    pub(super) config: &'s RegistrySettings,
}

impl<'s> Registry<'s> {
    pub(super) async fn open(settings: &'s Settings) -> Result<Registry<'s>, CliError> {
        let config = enabled(settings)?;
        let js = crate::cli::jetstream_context(settings, "at-gateway-sources").await?;
        let store = crate::cli::kv_bucket(&js, settings, &config.bucket).await?;
        Ok(Registry {
            store,
            settings,
            config,
        })
    }

    pub(super) fn failed(&self, what: &str, e: impl std::fmt::Display) -> CliError {
        CliError::runtime(format!(
            "registry bucket {}: {what}: {e}",
            self.config.bucket
        ))
    }

    /// The source's record and the revision it was read at.
    pub(super) async fn read(&self, id: &SourceId) -> Result<(SourceRecord, u64), CliError> {
        let name = id.as_str();
        let entry = self
            .store
            .entry(name)
            .await
            .map_err(|e| self.failed(&format!("cannot read {name}"), e))?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(|| {
                CliError::usage(format!(
                    "no source {name:?} in the registry (bucket {}; see `at-gateway sources list`)",
                    self.config.bucket
                ))
            })?;
        let record = serde_json::from_slice(&entry.value).map_err(|e| {
            CliError::runtime(format!(
                "the registry's record of {name} does not parse: {e}"
            ))
        })?;
        Ok((record, entry.revision))
    }

    /// The stored record checked as the gateway serves it; a sealed secret
    /// that does not open says which key is wrong.
    pub(super) fn check_stored(
        &self,
        id: &SourceId,
        record: &SourceRecord,
    ) -> Result<SourceConfig, CliError> {
        for sealed in &record.secrets {
            if self
                .config
                .key
                .open(id.as_str(), &sealed.id, &sealed.sealed)
                .is_err()
            {
                return Err(CliError::runtime(format!(
                    "source {id}: secret '{}' does not open with the registry key; \
                     SOURCE_REGISTRY_KEY (or SOURCE_REGISTRY_KEY_FILE) must be the key the \
                     registry was written with",
                    sealed.id
                )));
            }
        }
        check(self.settings, id, record).map_err(|e| {
            CliError::runtime(format!("the registry's record of {id} is not valid: {e}"))
        })
    }

    /// Applies `edit` to the source's record (given the source as stored)
    /// and writes it if nobody wrote it since it was read; otherwise reads
    /// it again and starts over, so no operator's change is lost. Returns
    /// the source as written and what `edit` returned the last time.
    pub(super) async fn change<T>(
        &self,
        id: &SourceId,
        mut edit: impl FnMut(&mut SourceRecord, &SourceConfig) -> Result<T, CliError>,
    ) -> Result<(SourceConfig, T), CliError> {
        let name = id.as_str();
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) = self.read(id).await?;
            let current = self.check_stored(id, &record)?;
            let outcome = edit(&mut record, &current)?;
            record.updated_at = now_text();
            let source = check(self.settings, id, &record)
                .map_err(|e| CliError::usage(format!("{e}; nothing was written")))?;
            match self.store.update(name, encode(&record)?, revision).await {
                Ok(_) => return Ok((source, outcome)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(self.failed(&format!("cannot write {name}"), e)),
            }
        }
        Err(CliError::runtime(format!(
            "source {name} was changed by someone else {CAS_ATTEMPTS} times while this \
             command ran; nothing was written by it: run it again"
        )))
    }
}
