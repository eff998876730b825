//! The mahalla registry of a service, and the check that every service of a
//! deployment loaded the same one.
//!
//! Ingest tags events with mahalla ids, the escalator scores them, the API
//! and the reporter show them: two services with different registry files
//! would disagree on mahallas without an error. So a production service
//! must be given a registry file ([`require`]), and on start it joins the
//! deployment ([`join`]): the first one records the digest of its file in
//! the store ([`posbon_store::RegistryStoreExt`]), each later one refuses to
//! start when its digest differs. `/readyz` shows the digest and turns
//! unready when the store's record changes under a running service
//! ([`readiness`]). To change the registry of a deployment, stop its
//! services, run `posbon mahallas adopt FILE --store …` ([`adopt`]) and
//! start them with the new file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use posbon_geo::{Registry, RegistryOptions};
use posbon_store::{EventStore, RegistryRecord, RegistryStoreExt as _};

use crate::health::{Readiness, ReadinessCheck};

/// Loads the registry file a service is configured with; a service without
/// one does not start (`section` names the setting: `[ingest] registry`).
pub fn require(path: Option<&Path>, section: &str) -> anyhow::Result<Registry> {
    let path = path.ok_or_else(|| {
        anyhow::anyhow!(
            "[{section}] registry is required: the mahalla registry GeoJSON that every service of \
             the deployment loads (`posbon simulate city --out tashkent.geojson` writes the \
             demo's; `posbon mahallas load FILE --check` validates one)"
        )
    })?;
    let registry = Registry::from_path(path, &RegistryOptions::default())
        .with_context(|| format!("cannot load the mahalla registry {}", path.display()))?;
    tracing::info!(
        path = %path.display(),
        mahallas = registry.mahallas().len(),
        digest = registry.digest(),
        "mahalla registry loaded"
    );
    Ok(registry)
}

fn record_of(registry: &Registry, by: &str) -> RegistryRecord {
    RegistryRecord {
        digest: registry.digest().to_owned(),
        mahallas: registry.mahallas().len(),
        recorded_at: Utc::now(),
        recorded_by: by.to_owned(),
    }
}

/// Joins the deployment: records `registry` when the store has no registry
/// yet, accepts it when the store's is the same, and refuses (with both
/// digests and what to do) when it differs. `service` is who records it.
pub async fn join(
    store: &dyn EventStore,
    registry: &Registry,
    service: &str,
) -> anyhow::Result<()> {
    match store.registry_record().await? {
        None => {
            store
                .put_registry_record(&record_of(registry, service))
                .await?;
            tracing::info!(
                digest = registry.digest(),
                "the deployment's mahalla registry recorded"
            );
            Ok(())
        }
        Some(recorded) if recorded.digest == registry.digest() => Ok(()),
        Some(recorded) => anyhow::bail!(
            "this mahalla registry ({}, {} mahallas) is not the deployment's: the store records \
             {} ({} mahallas, recorded by {} at {}). Start every service with the same registry \
             file; to change it for all of them, stop them and run `posbon mahallas adopt FILE \
             --store …`",
            registry.digest(),
            registry.mahallas().len(),
            recorded.digest,
            recorded.mahallas,
            recorded.recorded_by,
            recorded.recorded_at.to_rfc3339(),
        ),
    }
}

/// Records `registry` as the deployment's, replacing any: `posbon mahallas
/// adopt`, and `posbon standalone`, whose one process is the whole
/// deployment.
pub async fn adopt(store: &dyn EventStore, registry: &Registry, by: &str) -> anyhow::Result<()> {
    store.put_registry_record(&record_of(registry, by)).await?;
    Ok(())
}

/// The `/readyz` check `registry`: ready while the store records this
/// service's registry, showing its digest and size.
pub fn readiness(store: posbon_store::Store, registry: &Registry) -> Arc<dyn ReadinessCheck> {
    Arc::new(RegistryCheck {
        store,
        digest: registry.digest().to_owned(),
        mahallas: registry.mahallas().len(),
    })
}

struct RegistryCheck {
    store: posbon_store::Store,
    digest: String,
    mahallas: usize,
}

#[async_trait::async_trait]
impl ReadinessCheck for RegistryCheck {
    async fn check(&self) -> Readiness {
        let found = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.store.registry_record(),
        )
        .await;
        let detail = match found {
            Err(_) => Some("the store did not answer within 2 s".to_owned()),
            Ok(Err(e)) => Some(format!("cannot read the registry record: {e}")),
            Ok(Ok(None)) => Some("the store records no registry".to_owned()),
            Ok(Ok(Some(r))) if r.digest != self.digest => Some(format!(
                "the deployment's registry is now {} (recorded by {}): restart with that file",
                r.digest, r.recorded_by
            )),
            Ok(Ok(Some(_))) => None,
        };
        Readiness {
            name: "registry".to_owned(),
            ready: detail.is_none(),
            detail,
            value: Some(format!("{} ({} mahallas)", self.digest, self.mahallas)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_sim::{CityOptions, city_registry};

    fn registry(mahallas: usize) -> Registry {
        city_registry(&CityOptions {
            mahallas,
            ..CityOptions::default()
        })
        .expect("city")
        .registry()
        .expect("registry")
    }

    #[tokio::test]
    async fn services_join_with_one_registry_and_refuse_another() {
        let store: posbon_store::Store = Arc::new(posbon_store::MemoryStore::new());
        let a = registry(40);
        let b = registry(41);
        assert!(a.digest().starts_with("sha256:") && a.digest().len() == 7 + 64);
        assert_ne!(a.digest(), b.digest());
        assert_eq!(
            registry(40).digest(),
            a.digest(),
            "the same file, the same digest"
        );

        join(&*store, &a, "posbon-ingest").await.expect("first");
        join(&*store, &a, "posbon-api").await.expect("same");
        let err = join(&*store, &b, "posbon-escalator")
            .await
            .expect_err("another");
        let text = format!("{err:#}");
        assert!(
            text.contains(a.digest()) && text.contains(b.digest()),
            "{text}"
        );
        assert!(text.contains("posbon mahallas adopt"), "{text}");

        let check = readiness(store.clone(), &a);
        let ready = check.check().await;
        assert!(ready.ready, "{ready:?}");
        assert_eq!(ready.value, Some(format!("{} (40 mahallas)", a.digest())));
        adopt(&*store, &b, "posbon mahallas adopt")
            .await
            .expect("adopt");
        let stale = check.check().await;
        assert!(!stale.ready);
        assert!(stale.detail.is_some_and(|d| d.contains(b.digest())));
        join(&*store, &b, "posbon-escalator")
            .await
            .expect("adopted");
    }

    #[test]
    fn a_service_needs_a_registry_file() {
        let err = require(None, "ingest").expect_err("none");
        assert!(
            err.to_string().contains("[ingest] registry is required"),
            "{err}"
        );
        let err = require(Some(Path::new("/nonexistent.geojson")), "ingest").expect_err("missing");
        assert!(
            format!("{err:#}").contains("/nonexistent.geojson"),
            "{err:#}"
        );
    }
}
