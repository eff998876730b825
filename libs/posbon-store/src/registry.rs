//! Which mahalla registry the services of one deployment share, under the
//! `g` prefix of the key layout: one key, `g`, whose value is a
//! [`RegistryRecord`] (version byte 1, then JSON).
//!
//! Every service that tags or reads events by mahalla loads the registry
//! from a file; if two of them loaded different files they would disagree on
//! mahalla ids without an error. The first service to start records the
//! digest of its file; the others compare theirs with it
//! (`posbon_service::registry`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::EventStore;
use crate::codec::{decode_json, encode_json};
use crate::error::Result;
use crate::keys::REGISTRY;

/// The registry a deployment's services share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// `sha256:<hex>` of its GeoJSON (`posbon_geo::Registry::digest`).
    pub digest: String,
    /// How many mahallas it has.
    pub mahallas: usize,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Who recorded it: the service, or `posbon mahallas adopt`.
    pub recorded_by: String,
}

/// Reading and writing the shared registry's record.
#[async_trait]
pub trait RegistryStoreExt: EventStore {
    /// The recorded registry, if any service recorded one.
    async fn registry_record(&self) -> Result<Option<RegistryRecord>> {
        match self.get(&[REGISTRY]).await? {
            Some(bytes) => decode_json("registry record", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records `record` as the shared registry, durably (replacing any).
    async fn put_registry_record(&self, record: &RegistryRecord) -> Result<()> {
        self.put_batch(vec![(
            vec![REGISTRY],
            encode_json("registry record", record)?,
        )])
        .await
    }
}

impl<S: EventStore + ?Sized> RegistryStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn the_record_round_trips() {
        let store = MemoryStore::new();
        assert_eq!(store.registry_record().await.expect("read"), None);
        let record = RegistryRecord {
            digest: "sha256:00ff".into(),
            mahallas: 600,
            recorded_at: Utc::now(),
            recorded_by: "posbon-ingest".into(),
        };
        store.put_registry_record(&record).await.expect("write");
        assert_eq!(store.registry_record().await.expect("read"), Some(record));
    }
}
