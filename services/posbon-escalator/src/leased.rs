//! Shards held through leases in the store ([`posbon_store::leases`]), so that
//! escalator instances can be added, removed or lost without a restart or a
//! change of configuration.
//!
//! Every instance, each tick (a third of `lease_ttl_secs`):
//!
//! 1. renews its membership lease (`escalator/member/<instance>`) and the
//!    lease of every shard it runs (`escalator/shard/<i>-of-<n>`); a shard
//!    whose lease it lost (it expired and another instance took it) stops at
//!    once, writing nothing more;
//! 2. counts the members alive and takes its share, `ceil(shards / members)`:
//!    it gives up (checkpoint, then release) shards above its share, and
//!    takes shards that are free or expired up to it.
//!
//! A shard taken over starts from its last checkpoint, and its durable
//! consumer is restarted there ([`posbon_bus::ConsumerOptions::restart`]),
//! so nothing is skipped; what the previous holder applied after its last
//! checkpoint is applied again and produces the same escalations with the
//! same ids, which JetStream and the API drop as duplicates. A shard given up
//! on purpose is checkpointed before its lease is released and taken within
//! a tick; one of an instance that died is taken within `lease_ttl_secs` plus
//! a tick of its last renewal.
//!
//! With `shard_index` set, an instance runs that shard only, under its lease
//! all the same (so two instances never run one shard).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use posbon_store::{HeldLease, LeaseStoreExt as _, Take};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::consume::{Shared, consume_shard};
use crate::shard::Shard;

/// Lease name prefix of shards.
pub const SHARD_LEASE_PREFIX: &str = "escalator/shard/";
/// Lease name prefix of instances alive.
pub const MEMBER_LEASE_PREFIX: &str = "escalator/member/";

/// A shard this instance runs.
struct Running {
    shard: Shard,
    lease: HeldLease,
    /// Stops it gracefully (checkpoint first).
    shutdown: CancellationToken,
    /// Stops it at once: the lease is someone else's.
    lost: CancellationToken,
    /// Aborted when dropped: a shard never outlives the instance that holds
    /// its lease (nor the task running this loop).
    task: AbortOnDropHandle<anyhow::Result<()>>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Runs the shards this instance takes until `shutdown`, then checkpoints
/// them and releases their leases.
pub(crate) async fn run(shared: Shared, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &shared.config;
    let wanted = config.shards()?;
    let fixed = config.shard_index.is_some();
    let instance = config.instance_name();
    let ttl_ms = i64::try_from(config.lease_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let tick = Duration::from_millis(u64::try_from(ttl_ms / 3).unwrap_or(1000).max(100));
    let member = format!("{MEMBER_LEASE_PREFIX}{instance}");
    let store = &shared.store;
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut membership: Option<HeldLease> = None;
    tracing::info!(
        instance = %instance,
        shards = wanted.len(),
        shard_count = config.shard_count,
        lease_ttl_secs = config.lease_ttl_secs,
        "escalator taking shards through leases"
    );
    let mut failure: Option<anyhow::Error> = None;
    loop {
        let now = now_ms();
        // 1. Membership and renewals.
        if !fixed {
            match store.take_lease(&member, &instance, ttl_ms, now).await {
                Ok(Take::Taken(held)) => membership = Some(held),
                Ok(Take::HeldBy(other)) => {
                    failure = Some(anyhow::anyhow!(
                        "escalator.instance {instance:?} is in use by another live instance (until {} ms): give each instance its own name",
                        other.expires_at_ms
                    ));
                    break;
                }
                Err(err) => tracing::warn!(error = %err, "renewing membership failed"),
            }
        }
        let mut lost = Vec::new();
        for (index, r) in &mut running {
            match store.renew_lease(&r.lease, ttl_ms, now).await {
                Ok(Some(held)) => r.lease = held,
                Ok(None) => lost.push(*index),
                Err(err) => {
                    tracing::warn!(shard = %r.shard.name(), error = %err, "renewing a shard lease failed");
                    // By our own clock the lease runs out before the next
                    // tick: stop before another instance may take it.
                    if r.lease.lease.expires_at_ms - now <= ttl_ms / 3 {
                        lost.push(*index);
                    }
                }
            }
        }
        for index in lost {
            if let Some(r) = running.remove(&index) {
                tracing::warn!(shard = %r.shard.name(), "shard lease lost: stopped at once");
                r.lost.cancel();
                shared.m.handovers.inc();
                let _ = r.task.await;
            }
        }
        // Shards that stopped by themselves (an error): give them back.
        let finished: Vec<u32> = running
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(i, _)| *i)
            .collect();
        for index in finished {
            if let Some(r) = running.remove(&index) {
                match r.task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::error!(shard = %r.shard.name(), error = %format!("{err:#}"), "shard stopped")
                    }
                    Err(err) => {
                        tracing::error!(shard = %r.shard.name(), error = %err, "shard task failed")
                    }
                }
                if let Err(err) = store.release_lease(&r.lease).await {
                    tracing::warn!(shard = %r.shard.name(), error = %err, "releasing a shard lease failed");
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        // 2. This instance's share.
        let share = if fixed {
            wanted.len()
        } else {
            match store.leases(MEMBER_LEASE_PREFIX).await {
                Ok(members) => {
                    let alive = members
                        .iter()
                        .filter(|(_, l)| l.is_live(now))
                        .count()
                        .max(1);
                    wanted.len().div_ceil(alive)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reading the members failed");
                    running.len()
                }
            }
        };
        while running.len() > share {
            let Some((_, r)) = running.pop_last() else {
                break;
            };
            tracing::info!(shard = %r.shard.name(), share, "giving a shard up to another instance");
            r.shutdown.cancel();
            match r.task.await {
                Ok(Ok(())) => {
                    if let Err(err) = store.release_lease(&r.lease).await {
                        tracing::warn!(shard = %r.shard.name(), error = %err, "releasing a shard lease failed");
                    }
                }
                // Not checkpointed: let the lease run out instead.
                Ok(Err(err)) => {
                    tracing::error!(shard = %r.shard.name(), error = %format!("{err:#}"), "shard stopped")
                }
                Err(err) => {
                    tracing::error!(shard = %r.shard.name(), error = %err, "shard task failed")
                }
            }
        }
        // Start from another shard on each instance, so that instances
        // starting together take different ones.
        let offset =
            usize::try_from(crate::shard::stable_index(&instance, wanted.len())).unwrap_or(0);
        for i in 0..wanted.len() {
            if running.len() >= share {
                break;
            }
            let shard = wanted[(offset + i) % wanted.len()];
            if running.contains_key(&shard.index) {
                continue;
            }
            let name = format!("{SHARD_LEASE_PREFIX}{}", shard.name());
            match store.take_lease(&name, &instance, ttl_ms, now_ms()).await {
                Ok(Take::Taken(lease)) => {
                    tracing::info!(shard = %shard.name(), epoch = lease.lease.epoch, "shard taken");
                    let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
                    let task = AbortOnDropHandle::new(tokio::spawn({
                        let (shared, stop, lost) = (shared.clone(), stop.clone(), lost.clone());
                        async move { consume_shard(&shared, shard, stop, lost).await }
                    }));
                    running.insert(
                        shard.index,
                        Running {
                            shard,
                            lease,
                            shutdown: stop,
                            lost,
                            task,
                        },
                    );
                }
                Ok(Take::HeldBy(_)) => {}
                Err(err) => {
                    tracing::warn!(shard = %shard.name(), error = %err, "taking a shard lease failed")
                }
            }
        }
        shared
            .m
            .shards_held
            .set(i64::try_from(running.len()).unwrap_or(i64::MAX));
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
    // Stopping: checkpoint every shard, then give the leases up.
    for r in running.values() {
        r.shutdown.cancel();
    }
    for (_, r) in running {
        match r.task.await {
            Ok(Ok(())) => {
                if let Err(err) = store.release_lease(&r.lease).await {
                    tracing::warn!(shard = %r.shard.name(), error = %err, "releasing a shard lease failed");
                }
            }
            Ok(Err(err)) => {
                failure.get_or_insert(err.context(format!("shard {}", r.shard.name())));
            }
            Err(err) => {
                failure.get_or_insert(anyhow::anyhow!(
                    "shard {} task failed: {err}",
                    r.shard.name()
                ));
            }
        }
    }
    shared.m.shards_held.set(0);
    if let Some(held) = membership
        && let Err(err) = store.release_lease(&held).await
    {
        tracing::warn!(error = %err, "releasing membership failed");
    }
    failure.map_or(Ok(()), Err)
}
