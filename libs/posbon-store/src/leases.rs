//! Leases: a named thing (an escalator shard) held by one holder at a time,
//! for a while, through [`EventStore::compare_and_swap`].
//!
//! A lease is `l` · name → JSON [`Lease`] (holder, expiry, epoch). A holder
//! takes a lease that is free, expired or its own, renews it before it
//! expires, and releases it when it stops. Every change is a swap from the
//! value it read, so two holders never both believe they hold a lease: the
//! slower one's swap fails. A holder that cannot renew in time (a pause, a
//! partition) must stop using the thing when its lease expires by its own
//! clock; [`Lease::epoch`] grows with every change of holder, so writes of a
//! stale holder can be recognised where that matters. Clocks of the holders
//! are assumed to agree within a small fraction of the lease's time to live.

use async_trait::async_trait;
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use crate::codec::{decode_json, encode_json};
use crate::error::Result;
use crate::keys::{LEASE, prefix_range};
use crate::store::Swap;
use crate::{DEFAULT_PAGE, EventStore, EventStoreExt};

/// Who holds a lease, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The holder's name (an instance of a service).
    pub holder: String,
    /// When the lease ends unless renewed, in milliseconds since 1970.
    pub expires_at_ms: i64,
    /// Grows by one whenever the lease passes to another holder.
    pub epoch: u64,
}

impl Lease {
    /// Whether the lease is held at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }
}

/// A lease as its holder last wrote it: what renewing and releasing swap from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The lease's name.
    pub name: String,
    /// The lease.
    pub lease: Lease,
    bytes: Vec<u8>,
}

/// What [`LeaseStoreExt::take_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// Taken (or renewed, when it was the holder's already).
    Taken(HeldLease),
    /// Held by someone else, live.
    HeldBy(Lease),
}

fn lease_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(LEASE);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Leases on any [`EventStore`].
#[async_trait]
pub trait LeaseStoreExt: EventStore {
    /// The lease `name`, if it was ever taken.
    async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        self.get(&lease_key(name))
            .await?
            .map(|bytes| decode_json("lease", &bytes))
            .transpose()
    }

    /// Every lease whose name starts with `prefix`, by name.
    async fn leases(&self, prefix: &str) -> Result<Vec<(String, Lease)>> {
        let (start, end) = prefix_range(&lease_key(prefix));
        self.scan_stream(start, end, DEFAULT_PAGE)
            .and_then(|(key, value)| async move {
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                Ok((name, decode_json("lease", &value)?))
            })
            .try_collect()
            .await
    }

    /// Takes lease `name` for `holder` until `now_ms + ttl_ms` when it is
    /// free, expired or `holder`'s already.
    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64, now_ms: i64) -> Result<Take> {
        let key = lease_key(name);
        let mut current = self.get(&key).await?;
        loop {
            let previous: Option<Lease> = current
                .as_deref()
                .map(|bytes| decode_json("lease", bytes))
                .transpose()?;
            let epoch = match &previous {
                Some(p) if p.holder == holder => p.epoch,
                Some(p) if p.is_live(now_ms) => return Ok(Take::HeldBy(p.clone())),
                Some(p) => p.epoch + 1,
                None => 1,
            };
            let lease = Lease {
                holder: holder.to_owned(),
                expires_at_ms: now_ms.saturating_add(ttl_ms),
                epoch,
            };
            let bytes = encode_json("lease", &lease)?;
            match self
                .compare_and_swap(&key, current.as_deref(), bytes.clone())
                .await?
            {
                Swap::Done => {
                    return Ok(Take::Taken(HeldLease {
                        name: name.to_owned(),
                        lease,
                        bytes,
                    }));
                }
                Swap::Conflict(now) => current = now,
            }
        }
    }

    /// Renews `held` until `now_ms + ttl_ms`; `None` when it is not held any
    /// more (someone took it after it expired).
    async fn renew_lease(
        &self,
        held: &HeldLease,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<HeldLease>> {
        let lease = Lease {
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            ..held.lease.clone()
        };
        let bytes = encode_json("lease", &lease)?;
        match self
            .compare_and_swap(&lease_key(&held.name), Some(&held.bytes), bytes.clone())
            .await?
        {
            Swap::Done => Ok(Some(HeldLease {
                name: held.name.clone(),
                lease,
                bytes,
            })),
            // Exactly what this renewal writes (its expiry in milliseconds):
            // an earlier attempt of it, whose answer was lost, did.
            Swap::Conflict(Some(now)) if now == bytes => Ok(Some(HeldLease {
                name: held.name.clone(),
                lease,
                bytes,
            })),
            Swap::Conflict(_) => Ok(None),
        }
    }

    /// Gives `held` up at once, so that another holder may take it without
    /// waiting for it to expire. A lease already lost is left alone.
    async fn release_lease(&self, held: &HeldLease) -> Result<()> {
        let lease = Lease {
            expires_at_ms: 0,
            ..held.lease.clone()
        };
        self.compare_and_swap(
            &lease_key(&held.name),
            Some(&held.bytes),
            encode_json("lease", &lease)?,
        )
        .await?;
        Ok(())
    }
}

impl<S: EventStore + ?Sized> LeaseStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn taken(take: Take) -> HeldLease {
        match take {
            Take::Taken(held) => held,
            Take::HeldBy(other) => panic!("held by {other:?}"),
        }
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_expiry_or_release() {
        let store = MemoryStore::new();
        let a = taken(store.take_lease("s/0", "a", 1000, 0).await.expect("take"));
        assert_eq!(a.lease.epoch, 1);
        // Live: b cannot take it; a takes it again (a renewal).
        assert_eq!(
            store.take_lease("s/0", "b", 1000, 500).await.expect("take"),
            Take::HeldBy(a.lease.clone())
        );
        let a = taken(
            store
                .take_lease("s/0", "a", 1000, 600)
                .await
                .expect("again"),
        );
        assert_eq!((a.lease.epoch, a.lease.expires_at_ms), (1, 1600));
        let a = store
            .renew_lease(&a, 1000, 1000)
            .await
            .expect("renew")
            .expect("held");
        assert_eq!(a.lease.expires_at_ms, 2000);
        // Expired: b takes it with the next epoch, and a's renewal fails.
        let b = taken(
            store
                .take_lease("s/0", "b", 1000, 2001)
                .await
                .expect("take"),
        );
        assert_eq!(b.lease.epoch, 2);
        assert_eq!(
            store.renew_lease(&a, 1000, 2002).await.expect("renew"),
            None
        );
        // a's release of what it lost changes nothing.
        store.release_lease(&a).await.expect("release");
        assert_eq!(
            store.lease("s/0").await.expect("get"),
            Some(b.lease.clone())
        );
        // b releases: a takes it at once.
        store.release_lease(&b).await.expect("release");
        let a = taken(
            store
                .take_lease("s/0", "a", 1000, 2003)
                .await
                .expect("take"),
        );
        assert_eq!(a.lease.epoch, 3);
        let all = store.leases("s/").await.expect("all");
        assert_eq!(all, vec![("s/0".to_owned(), a.lease)]);
    }

    #[tokio::test]
    async fn concurrent_takers_get_one_lease() {
        let store = MemoryStore::new();
        let holders: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
        let takes =
            futures::future::join_all(holders.iter().map(|h| store.take_lease("one", h, 1000, 0)))
                .await;
        let winners = takes
            .into_iter()
            .filter(|t| matches!(t, Ok(Take::Taken(_))))
            .count();
        assert_eq!(winners, 1);
    }
}
