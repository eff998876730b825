//! Shards held through leases in the store ([`posbon_store::leases`]), so that
//! escalator instances can be added, removed or lost without a restart or a
//! change of configuration.
//!
//! Every instance, each tick (a third of `lease_ttl`):
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
//! a tick; one of an instance that died is taken within `lease_ttl` plus
//! a tick of its last renewal.
//!
//! A shard runs only while its lease is surely this instance's: a watchdog
//! per shard stops it (writing nothing more) a tick before its last renewal
//! expires, counted from when that renewal was sent, whatever the loop is
//! doing; every lease call is given up after a tick. Leases are held by the
//! process (`<instance>#<random>`): a second live process under the same
//! `instance` name is refused, and a restarted one waits for its previous
//! run's leases to expire. Clocks of the instances must agree within well
//! under a tick.
//!
//! With `shard_index` set, an instance runs that shard only, under its lease
//! all the same (so two instances never run one shard); such instances do
//! not count as members, so do not mix them with leased ones.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use posbon_store::{HeldLease, LeaseStoreExt as _, Take};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::consume::{Shared, consume_shard};
use crate::shard::Shard;

/// Lease name prefix of shards.
pub const SHARD_LEASE_PREFIX: &str = "escalator/shard/";
/// Lease name prefix of instances alive.
pub(crate) const MEMBER_LEASE_PREFIX: &str = "escalator/member/";

/// A shard this instance runs.
struct Running {
    shard: Shard,
    lease: HeldLease,
    /// Stops it gracefully (checkpoint first).
    shutdown: CancellationToken,
    /// Stops it at once: the lease is (or may be) someone else's.
    lost: CancellationToken,
    /// Until when (ms since 1970) it may run: the expiry of its last
    /// renewal, counted from when that renewal was sent, less a tick. Its
    /// watchdog stops it (as lost) when that passes, whatever this loop is
    /// doing (a slow store call, a checkpoint being awaited).
    valid_until: Arc<AtomicI64>,
    /// Aborted when dropped: a shard never outlives the instance that holds
    /// its lease (nor the task running this loop).
    task: AbortOnDropHandle<anyhow::Result<()>>,
    _watchdog: AbortOnDropHandle<()>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Cancels `lost` when `valid_until` passes.
async fn watchdog(valid_until: Arc<AtomicI64>, lost: CancellationToken) {
    loop {
        let left = valid_until.load(Ordering::Relaxed) - now_ms();
        if left <= 0 {
            lost.cancel();
            return;
        }
        let wait = Duration::from_millis(u64::try_from(left).unwrap_or(0).min(250));
        tokio::select! {
            () = lost.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// `call`, given up after `limit` (a store that does not answer must not
/// hold the loop past the leases' margin).
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = posbon_store::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Runs the shards this instance takes until `shutdown`, then checkpoints
/// them and releases their leases.
pub(crate) async fn run(shared: Shared, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = &shared.config;
    let wanted = config.shards()?;
    let fixed = config.shard_index.is_some();
    let instance = config.instance_name();
    // Leases are held by this process: a second process under the same
    // instance name is refused rather than running the same shards. One
    // process alone opens an embedded store (and a memory store lives in
    // one): there a restart takes its leases back at once.
    let store = &shared.store;
    let holder = if matches!(store.name(), "embedded" | "memory") {
        instance.clone()
    } else {
        format!("{instance}#{}", posbon_auth::secret::random_hex(6))
    };
    let ttl_ms = config.lease_ttl.millis();
    let tick_ms = (ttl_ms / 3).max(100);
    let tick = Duration::from_millis(u64::try_from(tick_ms).unwrap_or(1000));
    let member = format!("{MEMBER_LEASE_PREFIX}{instance}");
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut membership: Option<HeldLease> = None;
    let mut member_wait: Option<Instant> = None;
    // Shards that stopped with an error: not taken again before then.
    let mut backoff: HashMap<u32, Instant> = HashMap::new();
    shared.m.shard_count.set(i64::from(config.shard_count));
    tracing::info!(
        instance = %instance,
        shards = wanted.len(),
        shard_count = config.shard_count,
        lease_ttl = %config.lease_ttl,
        "escalator taking shards through leases"
    );
    let mut failure: Option<anyhow::Error> = None;
    loop {
        // 1. Membership and renewals.
        let mut member_ok = fixed;
        if !fixed {
            match bounded(tick, store.take_lease(&member, &holder, ttl_ms, now_ms())).await {
                Ok(Take::Taken(held)) => {
                    membership = Some(held);
                    member_wait = None;
                    member_ok = true;
                }
                Ok(Take::HeldBy(other)) => {
                    // A previous run of this instance (killed) holds it until
                    // it expires; another live process renews it for ever.
                    let since = *member_wait.get_or_insert_with(Instant::now);
                    if since.elapsed()
                        > Duration::from_millis(u64::try_from(2 * ttl_ms).unwrap_or(0))
                    {
                        failure = Some(anyhow::anyhow!(
                            "escalator.instance {instance:?} is in use by another live process ({}): give each instance its own name",
                            other.holder
                        ));
                        break;
                    }
                    tracing::warn!(instance = %instance, held_by = %other.holder, "instance name still held (a previous run?): waiting for it to expire");
                }
                Err(err) => tracing::warn!(error = %err, "renewing membership failed"),
            }
        }
        let renewals = futures::future::join_all(running.values().map(|r| {
            let sent = now_ms();
            async move {
                (
                    sent,
                    bounded(tick, store.renew_lease(&r.lease, ttl_ms, sent)).await,
                )
            }
        }))
        .await;
        let mut lost = Vec::new();
        for ((index, r), (sent, renewed)) in running.iter_mut().zip(renewals) {
            match renewed {
                Ok(Some(held)) => {
                    r.lease = held;
                    r.valid_until
                        .store(sent + ttl_ms - tick_ms, Ordering::Relaxed);
                }
                Ok(None) => lost.push(*index),
                // The watchdog stops it if this goes on past its margin.
                Err(err) => {
                    tracing::warn!(shard = %r.shard.name(), error = %err, "renewing a shard lease failed")
                }
            }
        }
        for (index, r) in &running {
            if r.lost.is_cancelled() && !lost.contains(index) {
                lost.push(*index);
            }
        }
        for index in lost {
            if let Some(r) = running.remove(&index) {
                tracing::warn!(shard = %r.shard.name(), "shard lease lost (or not renewed in time): stopped at once");
                r.lost.cancel();
                shared.m.handovers.inc();
                let _ = r.task.await;
            }
        }
        // Shards that stopped by themselves (an error): give them back, and
        // leave them a while.
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
                backoff.insert(index, Instant::now() + 5 * tick);
                if let Err(err) = bounded(tick, store.release_lease(&r.lease)).await {
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
        } else if !member_ok {
            running.len()
        } else {
            let now = now_ms();
            match bounded(tick, store.leases(MEMBER_LEASE_PREFIX)).await {
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
                Ok(Ok(())) if !r.lost.is_cancelled() => {
                    if let Err(err) = bounded(tick, store.release_lease(&r.lease)).await {
                        tracing::warn!(shard = %r.shard.name(), error = %err, "releasing a shard lease failed");
                    }
                }
                // Not checkpointed (or stopped as lost): let the lease run out.
                Ok(_) => {}
                Err(err) => {
                    tracing::error!(shard = %r.shard.name(), error = %err, "shard task failed")
                }
            }
        }
        // Start from another shard on each instance, so that instances
        // starting together take different ones.
        let offset =
            usize::try_from(crate::shard::stable_index(&instance, wanted.len())).unwrap_or(0);
        backoff.retain(|_, until| *until > Instant::now());
        for i in 0..wanted.len() {
            if running.len() >= share || (!fixed && !member_ok) {
                break;
            }
            let shard = wanted[(offset + i) % wanted.len()];
            if running.contains_key(&shard.index) || backoff.contains_key(&shard.index) {
                continue;
            }
            let name = format!("{SHARD_LEASE_PREFIX}{}", shard.name());
            let sent = now_ms();
            match bounded(tick, store.take_lease(&name, &holder, ttl_ms, sent)).await {
                Ok(Take::Taken(lease)) => {
                    tracing::info!(shard = %shard.name(), epoch = lease.lease.epoch, "shard taken");
                    let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
                    let valid_until = Arc::new(AtomicI64::new(sent + ttl_ms - tick_ms));
                    let task = AbortOnDropHandle::new(tokio::spawn({
                        let (shared, stop, lost) = (shared.clone(), stop.clone(), lost.clone());
                        async move { consume_shard(&shared, shard, stop, lost).await }
                    }));
                    let watch = AbortOnDropHandle::new(tokio::spawn(watchdog(
                        valid_until.clone(),
                        lost.clone(),
                    )));
                    running.insert(
                        shard.index,
                        Running {
                            shard,
                            lease,
                            shutdown: stop,
                            lost,
                            valid_until,
                            task,
                            _watchdog: watch,
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
            Ok(Ok(())) if !r.lost.is_cancelled() => {
                if let Err(err) = bounded(tick, store.release_lease(&r.lease)).await {
                    tracing::warn!(shard = %r.shard.name(), error = %err, "releasing a shard lease failed");
                }
            }
            Ok(Ok(())) => {}
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
        && let Err(err) = bounded(tick, store.release_lease(&held)).await
    {
        tracing::warn!(error = %err, "releasing membership failed");
    }
    failure.map_or(Ok(()), Err)
}
