//! [`TikvStore`]: the cluster backend, on the raw key-value API of TiKV
//! (tikv-client 0.4).
//!
//! # Raw API, not transactions
//!
//! The raw API writes each key with one Raft proposal per region and no
//! timestamp, lock or second phase; Posbon needs no multi-key isolation
//! (events are immutable, each id has one writer, readers tolerate a
//! concurrent write). Transactions would cost a PD timestamp and two
//! round trips (prewrite, commit) per batch, plus lock resolution after a
//! crashed writer, for a guarantee only [`EventStore::put_batch`]'s
//! atomicity would use. The key layout is the embedded backend's, so data
//! can move between them with [`crate::copy`].
//!
//! What the raw API does not give, and how the backend makes up for it:
//!
//! * **Atomic batches.** A raw batch put is atomic per request, and the
//!   client splits a batch by region and into 16 KiB requests, so a failure
//!   can leave part of a batch written. The backend writes a batch in two
//!   phases: every key outside the event-id index first, then the index
//!   (`i`) keys. [`EventStoreExt::put_events`](crate::EventStoreExt::put_events)
//!   treats an id whose index entry exists as stored, so a failed batch
//!   leaves at most records without an index entry, which the retry (the
//!   redelivered batch, with the same keys) overwrites and completes; a
//!   stored index entry always points at written records. A batch that fails
//!   and is never retried with the same events can leave such records
//!   behind (visible to cell and time scans, not to the id index).
//!   Invalid input is rejected before anything is written, as by every
//!   backend.
//! * **Scans past the last region.** tikv-client 0.4's `scan` starts over
//!   from the beginning of the key space when it reaches the last region
//!   (empty end key) without filling its limit, and reads only the first
//!   region when the end is unbounded. The backend never sends a bounded
//!   `scan`. It reads one region at a time with an *unbounded* key-only scan
//!   from the cursor (which the client confines to the cursor's region),
//!   keeps the keys below the range's end and fetches their values with one
//!   batch get. When a region runs out, the next key is found with a
//!   key-only `batch_scan` of one key per region (correct across regions,
//!   the client cuts ranges at region boundaries); the first keys of the
//!   later regions it returns are kept, per range end, as hints for later
//!   pages, and each hint is checked by probing only the gap before it, so a
//!   long scan probes the whole range once and then about one region per
//!   region boundary. Memory per page is bounded by the page (and one key
//!   per region of the range for the hints), however large the range.
//! * **Retries.** The client retries region errors itself (about 1.5 s of
//!   backoff). On top, every operation has a deadline per attempt and is
//!   retried with doubling backoff on retryable failures (timeouts,
//!   unreachable stores, region errors the client gave up on); every
//!   operation is idempotent, so a retry is safe.
//! * **Response size.** A batch get that TiKV or the client refuses as too
//!   large (above `max_response_bytes`, 64 MiB by default) is split in
//!   halves until it fits. Each refusal costs the client's own retries of a
//!   failed call (about 1.5 s), so keep `scan_batch` × the largest values
//!   well below the limit; with event records of about 1 KB the default
//!   reads of 1024 keys take about 1 MB.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use posbon_telemetry::{CounterVec, HistogramVec, Metrics};
use tikv_client::{Config, RawClient};

use crate::config::TikvConfig;
use crate::error::{Result, StoreError, StoreErrorKind};
use crate::keys::{EVENT_ID, successor};
use crate::store::{EventStore, KvPair, Swap, check_entry, check_key, normalize_batch};

/// Ranges asked for in one batch scan call.
const RANGES_PER_BATCH_SCAN: usize = 256;
/// Batch scan calls in flight at once.
const BATCH_SCANS_IN_FLIGHT: usize = 4;
/// The largest per-range limit of a batch scan (TiKV's).
const MAX_BATCH_SCAN_LIMIT: usize = 10_240;

/// Range ends whose region hints are kept.
const HINT_RANGES: usize = 16;

/// A range end and the first keys of regions in that range, from probes.
type RangeHints = (Vec<u8>, BTreeSet<Vec<u8>>);

/// The TiKV backend; see the [module docs](self) for how it uses the raw API.
#[derive(Clone)]
pub struct TikvStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: RawClient,
    /// The same connection in TiKV's atomic mode, for compare-and-swap.
    atomic: RawClient,
    config: TikvConfig,
    metrics: Option<StoreMetrics>,
    /// Per range end: first keys of regions after a cursor, from earlier
    /// probes (most recent last).
    hints: Mutex<Vec<RangeHints>>,
}

impl std::fmt::Debug for TikvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TikvStore")
            .field("pd_endpoints", &self.inner.config.pd_endpoints)
            .finish_non_exhaustive()
    }
}

/// Latency and error metrics of the backend.
#[derive(Clone)]
struct StoreMetrics {
    seconds: HistogramVec,
    errors: CounterVec,
    retries: CounterVec,
}

impl StoreMetrics {
    fn new(metrics: &Metrics) -> Result<Self> {
        let failed = |e: posbon_telemetry::TelemetryError| {
            StoreError::with_source(
                StoreErrorKind::InvalidRequest,
                "cannot register store metrics",
                e,
            )
        };
        Ok(Self {
            seconds: metrics
                .histogram_vec(
                    "posbon_store_operation_seconds",
                    "duration of store operations, retries included",
                    posbon_telemetry::DEFAULT_LATENCY_BUCKETS,
                    &["backend", "op"],
                )
                .map_err(failed)?,
            errors: metrics
                .counter_vec(
                    "posbon_store_errors_total",
                    "store operations that failed, by error kind",
                    &["backend", "op", "kind"],
                )
                .map_err(failed)?,
            retries: metrics
                .counter_vec(
                    "posbon_store_retries_total",
                    "store operation attempts retried after a retryable failure",
                    &["backend", "op"],
                )
                .map_err(failed)?,
        })
    }
}

impl TikvStore {
    /// Connects to the cluster whose PD answers at `config.pd_endpoints`.
    ///
    /// Fails with [`StoreErrorKind::InvalidRequest`] when the settings are
    /// wrong (naming the setting), and with [`StoreErrorKind::Unavailable`]
    /// naming the endpoints when PD does not answer within
    /// `connect_timeout` or no TiKV store serves the key space.
    pub async fn connect(config: &TikvConfig, metrics: Option<&Metrics>) -> Result<Self> {
        config.validate()?;
        let metrics = metrics.map(StoreMetrics::new).transpose()?;
        let mut client_config = Config::default()
            .with_timeout(config.request_timeout())
            .with_grpc_max_decoding_message_size(config.max_response_bytes);
        if let Some(tls) = &config.tls {
            client_config =
                client_config.with_security(&tls.ca_path, &tls.cert_path, &tls.key_path);
        }
        let endpoints = config.pd_endpoints.join(", ");
        let unreachable = |detail: String| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("cannot reach the tikv cluster through pd at {endpoints}: {detail}"),
            )
        };
        let client = tokio::time::timeout(
            config.connect_timeout(),
            RawClient::new_with_config(config.pd_endpoints.clone(), client_config),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {}", config.connect_timeout)))?
        .map_err(|e| unreachable(e.to_string()))?;
        let store = Self {
            inner: Arc::new(Inner {
                atomic: client.with_atomic_for_cas(),
                client,
                config: config.clone(),
                metrics,
                hints: Mutex::new(Vec::new()),
            }),
        };
        // PD answered; make sure a TiKV store serves reads too.
        tokio::time::timeout(
            config.connect_timeout(),
            store.inner.client.get(b"c".to_vec()),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "pd answered but no tikv store served a read within {} ms",
                config.connect_timeout
            ))
        })?
        .map_err(|e| unreachable(format!("pd answered but a tikv read failed: {e}")))?;
        Ok(store)
    }

    /// The settings this store was connected with.
    pub fn config(&self) -> &TikvConfig {
        &self.inner.config
    }

    /// Runs one operation of the client: a deadline per attempt, retries with
    /// backoff on retryable failures, metrics.
    async fn call<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, tikv_client::Error>>,
    {
        self.call_with(op, self.inner.config.retries, attempt).await
    }

    /// [`call`](Self::call) with at most `max_retries` retries.
    async fn call_with<T, F, Fut>(
        &self,
        op: &'static str,
        max_retries: u32,
        attempt: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<T, tikv_client::Error>>,
    {
        let config = &self.inner.config;
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let result = match tokio::time::timeout(config.operation_timeout(), attempt()).await {
                Ok(result) => result.map_err(|e| client_error(op, e)),
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!("tikv {op} took longer than {} ms", config.operation_timeout),
                )),
            };
            match result {
                Ok(value) => {
                    if let Some(m) = &self.inner.metrics {
                        m.seconds
                            .with_labels(&["tikv", op])
                            .observe_duration(started.elapsed());
                    }
                    return Ok(value);
                }
                Err(e) if e.is_retryable() && retries < max_retries => {
                    retries += 1;
                    if let Some(m) = &self.inner.metrics {
                        m.retries.with_labels(&["tikv", op]).inc();
                    }
                    tracing::debug!(op, retries, error = %e, "tikv operation failed, retrying");
                    tokio::time::sleep(config.backoff(retries)).await;
                }
                Err(e) => {
                    if let Some(m) = &self.inner.metrics {
                        m.errors.with_labels(&["tikv", op, e.kind().as_str()]).inc();
                        m.seconds
                            .with_labels(&["tikv", op])
                            .observe_duration(started.elapsed());
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Writes sorted, distinct pairs in calls of at most `max_batch_bytes`.
    async fn put_chunks(&self, entries: Vec<KvPair>) -> Result<()> {
        let limit = self.inner.config.max_batch_bytes;
        let mut chunk: Vec<KvPair> = Vec::new();
        let mut bytes = 0;
        let mut rest = entries.into_iter().peekable();
        while let Some((key, value)) = rest.next() {
            bytes += key.len() + value.len();
            chunk.push((key, value));
            let full = rest
                .peek()
                .is_some_and(|(k, v)| bytes + k.len() + v.len() > limit);
            if full || rest.peek().is_none() {
                let batch = std::mem::take(&mut chunk);
                bytes = 0;
                self.call("put_batch", || self.inner.client.batch_put(batch.clone()))
                    .await?;
            }
        }
        Ok(())
    }

    /// The stored pairs of `keys` (sorted, distinct), in key order; keys
    /// that do not exist are left out. A request refused as too large is
    /// split in halves.
    async fn values_of(&self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut pending = vec![keys];
        while let Some(keys) = pending.pop() {
            if keys.is_empty() {
                continue;
            }
            let got = self
                .call("get", || self.inner.client.batch_get(keys.clone()))
                .await;
            match got {
                Ok(pairs) => out.extend(pairs.into_iter().map(|p| {
                    let (key, value): (tikv_client::Key, Vec<u8>) = p.into();
                    (Vec::from(key), value)
                })),
                Err(e) if keys.len() > 1 && is_too_large(&e) => {
                    let mut upper = keys;
                    let lower = upper.drain(..upper.len() / 2).collect();
                    // Popped in key order: lower half first.
                    pending.push(upper);
                    pending.push(lower);
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// One batch scan of [`EventStore::scan_ranges`]: the entries of each
    /// range of `group`, exact up to `limit`.
    async fn batch_scan_group(
        &self,
        group: &[(Vec<u8>, Vec<u8>)],
        limit: usize,
    ) -> Result<Vec<Vec<KvPair>>> {
        let each = u32::try_from(limit.min(MAX_BATCH_SCAN_LIMIT)).unwrap_or(u32::MAX);
        let asked: Vec<std::ops::Range<Vec<u8>>> = group
            .iter()
            .filter(|(start, end)| start < end)
            .map(|(start, end)| start.clone()..end.clone())
            .collect();
        let found = if asked.is_empty() {
            Vec::new()
        } else {
            self.call("batch_scan", || {
                self.inner.client.batch_scan(asked.clone(), each)
            })
            .await?
        };
        let mut lists: Vec<Vec<KvPair>> = vec![Vec::new(); group.len()];
        for pair in found {
            let (key, value): (tikv_client::Key, Vec<u8>) = pair.into();
            let key = Vec::from(key);
            let i = group.partition_point(|(start, _)| start.as_slice() <= key.as_slice());
            if let Some(i) = i.checked_sub(1)
                && key < group[i].1
            {
                lists[i].push((key, value));
            }
        }
        for (list, (start, end)) in lists.iter_mut().zip(group) {
            if list.len() >= each as usize {
                *list = self.scan(start, end, limit).await?;
            } else {
                list.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        Ok(lists)
    }

    /// Up to `limit` keys from `cursor` to the end of the region that holds
    /// it: an unbounded scan, which the client keeps to that one region.
    async fn region_keys(&self, cursor: &[u8], limit: u32) -> Result<Vec<Vec<u8>>> {
        let keys = self
            .call("scan", || {
                self.inner.client.scan_keys(cursor.to_vec().., limit)
            })
            .await?;
        Ok(keys.into_iter().map(Vec::from).collect())
    }

    /// The smallest key in `[from, end)`, or `None`: probes the gap before
    /// the next hint (or the whole rest of the range) with one key per
    /// region, and remembers the first keys of later regions it finds. A
    /// hint is used up when taken, so a stale one (a key deleted since) costs
    /// one probe, never a loop.
    async fn next_key(&self, from: &[u8], end: &[u8]) -> Result<Option<Vec<u8>>> {
        let hint = self.take_hint(from, end);
        let probe_end = hint.clone().unwrap_or_else(|| end.to_vec());
        if from >= probe_end.as_slice() {
            return Ok(hint);
        }
        let found = self
            .call("scan", || {
                self.inner
                    .client
                    .batch_scan_keys(vec![from.to_vec()..probe_end.clone()], 1)
            })
            .await?;
        let mut found: Vec<Vec<u8>> = found
            .into_iter()
            .map(Vec::from)
            .filter(|k| k.as_slice() >= from && k.as_slice() < probe_end.as_slice())
            .collect();
        found.sort();
        if found.is_empty() {
            return Ok(hint);
        }
        let first = found.remove(0);
        // The hint is still the first key after the gap's regions.
        found.extend(hint);
        self.remember(end, found);
        Ok(Some(first))
    }

    /// Removes and returns the first remembered region key at or after
    /// `from` for range end `end`.
    fn take_hint(&self, from: &[u8], end: &[u8]) -> Option<Vec<u8>> {
        let mut hints = self.inner.hints.lock().unwrap_or_else(|p| p.into_inner());
        let (_, keys) = hints.iter_mut().find(|(e, _)| e.as_slice() == end)?;
        let first = keys.range(from.to_vec()..).next().cloned()?;
        keys.remove(&first);
        Some(first)
    }

    fn remember(&self, end: &[u8], keys: Vec<Vec<u8>>) {
        if keys.is_empty() {
            return;
        }
        let mut hints = self.inner.hints.lock().unwrap_or_else(|p| p.into_inner());
        let at = hints.iter().position(|(e, _)| e.as_slice() == end);
        let mut entry = match at {
            Some(at) => hints.remove(at),
            None => (end.to_vec(), BTreeSet::new()),
        };
        entry.1.extend(keys);
        hints.push(entry);
        if hints.len() > HINT_RANGES {
            hints.remove(0);
        }
    }
}

#[async_trait]
impl EventStore for TikvStore {
    fn name(&self) -> &str {
        "tikv"
    }

    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()> {
        let entries = normalize_batch(entries)?;
        // Records first, then the id index that makes them count as stored.
        let (index, records): (Vec<KvPair>, Vec<KvPair>) = entries
            .into_iter()
            .partition(|(key, _)| key.first() == Some(&EVENT_ID));
        self.put_chunks(records).await?;
        self.put_chunks(index).await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap> {
        check_entry(key, &new)?;
        // Not retried here: an attempt whose answer was lost may have
        // written, and a retry would then report its own write as a
        // conflict (a counter would count twice). The caller reads again.
        let (previous, done) = self
            .call_with("compare_and_swap", 0, || {
                self.inner.atomic.compare_and_swap(
                    key.to_vec(),
                    expected.map(<[u8]>::to_vec),
                    new.clone(),
                )
            })
            .await?;
        Ok(if done {
            Swap::Done
        } else {
            Swap::Conflict(previous)
        })
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        self.call("get", || self.inner.client.get(key.to_vec()))
            .await
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        for key in &keys {
            check_key(key)?;
        }
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        let batch = self.inner.config.scan_batch as usize;
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(keys.len());
        for chunk in distinct.chunks(batch) {
            found.extend(self.values_of(chunk.to_vec()).await?);
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let batch = self.inner.config.scan_batch as usize;
        let mut out: Vec<KvPair> = Vec::with_capacity(limit.min(batch));
        let mut cursor = start.to_vec();
        while out.len() < limit {
            let want = (limit - out.len()).min(batch);
            let keys = self.region_keys(&cursor, want as u32).await?;
            let region_done = keys.len() < want;
            let found_none = keys.is_empty();
            let after = keys.last().map(|k| successor(k));
            let in_range: Vec<Vec<u8>> = keys
                .into_iter()
                .take_while(|k| k.as_slice() < end)
                .collect();
            let past_end = after.is_some() && in_range.last().map(|k| successor(k)) != after;
            out.extend(self.values_of(in_range).await?);
            if past_end {
                break;
            }
            let next = after.unwrap_or_else(|| cursor.clone());
            if !region_done {
                cursor = next;
                continue;
            }
            // This region is exhausted: find the next key of the range.
            match self.next_key(&next, end).await? {
                Some(key) if key == cursor && found_none => {
                    // A key the probe sees and the region scan does not:
                    // stop rather than spin.
                    return Err(StoreError::new(
                        StoreErrorKind::Unavailable,
                        format!("tikv scan made no progress at key {key:?}"),
                    ));
                }
                Some(key) => cursor = key,
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Many ranges per request: TiKV's batch scan, which the client splits
    /// by region (one request per region, for all the ranges in it), up to
    /// [`RANGES_PER_BATCH_SCAN`] ranges a call and [`BATCH_SCANS_IN_FLIGHT`]
    /// calls at once. A range that came back with `limit` entries or more
    /// (its pieces in two regions each get the limit) is read again with
    /// [`scan`](EventStore::scan), which pages it exactly.
    async fn scan_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        limit: usize,
    ) -> Result<Vec<Vec<KvPair>>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        if limit == 0 {
            return Ok(vec![Vec::new(); ranges.len()]);
        }
        let mut calls = Vec::with_capacity(ranges.len().div_ceil(RANGES_PER_BATCH_SCAN));
        for group in ranges.chunks(RANGES_PER_BATCH_SCAN) {
            calls.push(self.batch_scan_group(group, limit));
        }
        let lists: Vec<Vec<Vec<KvPair>>> = futures::stream::iter(calls)
            .buffered(BATCH_SCANS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    fn batches_ranges(&self) -> bool {
        true
    }

    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        self.call("delete_range", || {
            self.inner.client.delete_range(start.to_vec()..end.to_vec())
        })
        .await
    }
}

/// True for a batch get refused because its answer would be too large
/// (the client's decode limit, or TiKV's send limit).
fn is_too_large(e: &StoreError) -> bool {
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tikv_client::Error>());
    match source {
        Some(tikv_client::Error::GrpcAPI(status)) => {
            let code = i32::from(status.code());
            code == grpc_code::RESOURCE_EXHAUSTED
                || code == grpc_code::OUT_OF_RANGE
                || status.message().contains("too large")
        }
        _ => false,
    }
}

/// Maps a client error to a store error kind, with the client's message.
fn client_error(op: &str, e: tikv_client::Error) -> StoreError {
    use tikv_client::Error as E;
    let kind = match &e {
        E::GrpcAPI(status) => match i32::from(status.code()) {
            grpc_code::DEADLINE_EXCEEDED => StoreErrorKind::Timeout,
            // Bad requests, and answers too large to take (batch gets split
            // and try again; see `values_of`).
            grpc_code::INVALID_ARGUMENT
            | grpc_code::RESOURCE_EXHAUSTED
            | grpc_code::OUT_OF_RANGE => StoreErrorKind::InvalidRequest,
            grpc_code::UNIMPLEMENTED
            | grpc_code::PERMISSION_DENIED
            | grpc_code::UNAUTHENTICATED => StoreErrorKind::Fatal,
            _ => StoreErrorKind::Unavailable,
        },
        E::Io(_) => StoreErrorKind::Io,
        E::MaxScanLimitExceeded { .. } => StoreErrorKind::InvalidRequest,
        E::UnsupportedMode | E::ColumnFamilyError(_) | E::KeyspaceNotFound(_) => {
            StoreErrorKind::Fatal
        }
        // Transport failures, region errors the client gave up on, a store
        // refusing a write (KvError), missing leaders: the cluster is
        // moving or unreachable; worth another attempt.
        _ => StoreErrorKind::Unavailable,
    };
    let message = match &e {
        E::GrpcAPI(status) => format!(
            "tikv {op} failed: grpc status {:?}: {}",
            status.code(),
            status.message()
        ),
        other => format!("tikv {op} failed: {other}"),
    };
    StoreError::with_source(kind, message, e)
}

/// gRPC status codes, compared by number (the client's tonic is not the
/// workspace's).
mod grpc_code {
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const OUT_OF_RANGE: i32 = 11;
    pub(super) const UNIMPLEMENTED: i32 = 12;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}
