//! The event store on its two hot paths: durable batched writes of enriched
//! events (batches of 1000, one fsync each, duplicate check included) and
//! the scan of one res-7 cell over one day, on a store preloaded with a week
//! of events.
//!
//! Backends: the embedded store (fjall), an equivalent redb backend defined
//! here only for the engine comparison, and the in-memory store. The write
//! group also measures fjall without the full-record time copy (`t` keys
//! pointing at the primary key instead), the cost that layout choice saves.
//!
//! Run: `cargo bench -p posbon-benches --bench store`. Events are realistic
//! records of the three kinds at random points around Tashkent (41.3N
//! 69.25E, clustered like a city), H3 res 10.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use h3o::{CellIndex, LatLng, Resolution};
use posbon_model::{CellId, EnrichedEvent, Event};
use posbon_store::codec::{decode_event, encode_event};
use posbon_store::keys::{event_cell_key, event_id_key, event_time_key, micros};
use posbon_store::{
    EmbeddedStore, EventStore, EventStoreExt, KvPair, MemoryStore, Result, StoreError,
    StoreErrorKind, Swap, check_entry, check_key, normalize_batch,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Events preloaded before the scans: a week of a busy city.
const PRELOAD: usize = 200_000;
const DAYS: i64 = 7;
const BATCH: usize = 1000;
/// Centre of the event cloud (central Tashkent).
const CENTRE: (f64, f64) = (41.31, 69.25);
/// Standard deviation of the cloud, in degrees (about 4 km).
const SPREAD: f64 = 0.04;

const INCIDENT: &str = r#"{"kind":"incident","id":"x","occurred_at":"2026-10-14T21:40:00+05:00","location":{"lat":41.2856,"lng":69.2034,"accuracy_m":25},"source":"iiv-102-dispatch","attributes":{"district_name":"Chilonzor","report_channel":"102"},"category":"robbery","severity":4,"flags":{"victim_woman":true,"offender_youth":true},"status":"confirmed","description":"Sumka tortib olingan, Chilonzor 9-kvartal, bekat yonida."}"#;
const CAMERA_ALERT: &str = r#"{"kind":"camera_alert","id":"x","occurred_at":"2026-10-15T06:32:05+05:00","location":{"lat":41.3662,"lng":69.2881,"accuracy_m":5},"source":"safe-city-va","attributes":{"zone":"bozor-kirish"},"camera_id":"tsh-yunusobod-0412","detection":"drug_handoff","confidence":0.87,"model":"va-detector/3.4.1","snapshot_uri":"s3://safe-city-snapshots/2026/10/15/tsh-yunusobod-0412/013205.jpg"}"#;
const FRAUD_FLAG: &str = r#"{"kind":"fraud_flag","id":"x","occurred_at":"2026-10-16T10:05:12.250+05:00","location":{"lat":41.3275,"lng":69.2817,"accuracy_m":1500.5},"source":"bank-x-antifraud","attributes":{"merchant":"online-shop-uz","mcc":"5732"},"scheme":"scam_call","channel":"phone_call","amount_uzs":12500000.5,"payment_system":"humo","account_ref":"hmac1:5e0c2a7d9b1f4e3a8c6d2b0f9e7a5c3d","detector_score":0.93}"#;

/// A deterministic generator of enriched events.
struct Events {
    state: u64,
    next_id: u64,
    templates: Vec<Event>,
    start: DateTime<Utc>,
}

impl Events {
    fn new(seed: u64) -> Self {
        let templates = [INCIDENT, CAMERA_ALERT, FRAUD_FLAG]
            .iter()
            .map(|json| serde_json::from_str(json).expect("template parses"))
            .collect();
        Self {
            state: seed,
            next_id: 0,
            templates,
            start: start(),
        }
    }

    /// Uniform in [0, 1) (splitmix64).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, deviation 1 (sum of four uniforms).
    fn normal(&mut self) -> f64 {
        let sum: f64 = (0..4).map(|_| self.uniform()).sum();
        (sum - 2.0) * 3f64.sqrt()
    }

    fn next(&mut self) -> EnrichedEvent {
        let n = self.next_id;
        self.next_id += 1;
        let lat = CENTRE.0 + SPREAD * self.normal();
        let lng = CENTRE.1 + SPREAD * 1.3 * self.normal();
        let offset = (self.uniform() * (DAYS * 86_400_000_000) as f64) as i64;
        let at = self.start + chrono::Duration::microseconds(offset);
        let tashkent = FixedOffset::east_opt(5 * 3600).expect("offset");
        let kind = match n % 10 {
            0..=5 => 0,
            6 | 7 => 1,
            _ => 2,
        };
        let mut event = self.templates[kind].clone();
        let header = event.header_mut();
        header.id = format!("{}-{n:09}", ["iiv-tsh", "cam-tsh", "bank-af"][kind]);
        header.occurred_at = at.with_timezone(&tashkent);
        header.location.lat = lat;
        header.location.lng = lng;
        let cell = LatLng::new(lat, lng)
            .expect("valid point")
            .to_cell(Resolution::Ten);
        let mahalla = (u64::from(cell) >> 20) % 600;
        EnrichedEvent {
            event,
            cell: CellId::new(u64::from(cell)).expect("h3 index"),
            mahalla_id: Some(format!("chilonzor-{mahalla:03}")),
            district_id: Some("chilonzor".to_owned()),
            region_id: Some("tashkent".to_owned()),
            ingested_at: at + chrono::Duration::seconds(3),
        }
    }

    fn batch(&mut self) -> Vec<EnrichedEvent> {
        (0..BATCH).map(|_| self.next()).collect()
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("time")
}

/// The res-7 cell and day the scan reads: the busiest cell, an ordinary day.
fn scan_target() -> (CellIndex, DateTime<Utc>, DateTime<Utc>) {
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(Resolution::Seven);
    let from = start() + chrono::Duration::days(3);
    (cell, from, from + chrono::Duration::days(1))
}

// ---------------------------------------------------------------------------
// redb, for the engine comparison only: the same contract as EmbeddedStore
// (one write transaction per batch, committed with the default immediate
// durability; blocking calls on tokio's blocking pool).

const TABLE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("posbon");

struct RedbStore {
    db: Arc<redb::Database>,
}

fn redb_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::with_source(StoreErrorKind::Io, "redb failed", e)
}

impl RedbStore {
    fn open(path: &Path) -> Result<Self> {
        let db = redb::Database::create(path).map_err(redb_error)?;
        let tx = db.begin_write().map_err(redb_error)?;
        tx.open_table(TABLE).map_err(redb_error)?;
        tx.commit().map_err(redb_error)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(redb_error)?
    }
}

#[async_trait]
impl EventStore for RedbStore {
    fn name(&self) -> &str {
        "redb"
    }

    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()> {
        let entries = normalize_batch(entries)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(redb_error)?;
            {
                let mut table = tx.open_table(TABLE).map_err(redb_error)?;
                for (k, v) in &entries {
                    table
                        .insert(k.as_slice(), v.as_slice())
                        .map_err(redb_error)?;
                }
            }
            tx.commit().map_err(redb_error)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap> {
        check_entry(key, &new)?;
        let (key, expected) = (key.to_vec(), expected.map(<[u8]>::to_vec));
        self.blocking(move |db| {
            // One write transaction at a time: the read and the write are one.
            let tx = db.begin_write().map_err(redb_error)?;
            let current = {
                let mut table = tx.open_table(TABLE).map_err(redb_error)?;
                let current = table
                    .get(key.as_slice())
                    .map_err(redb_error)?
                    .map(|v| v.value().to_vec());
                if current == expected {
                    table
                        .insert(key.as_slice(), new.as_slice())
                        .map_err(redb_error)?;
                }
                current
            };
            if current != expected {
                return Ok(Swap::Conflict(current));
            }
            tx.commit().map_err(redb_error)?;
            Ok(Swap::Done)
        })
        .await
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let key = key.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(redb_error)?;
            let table = tx.open_table(TABLE).map_err(redb_error)?;
            let value = table.get(key.as_slice()).map_err(redb_error)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(redb_error)?;
            let table = tx.open_table(TABLE).map_err(redb_error)?;
            keys.iter()
                .map(|k| {
                    let value = table.get(k.as_slice()).map_err(redb_error)?;
                    Ok(value.map(|v| v.value().to_vec()))
                })
                .collect()
        })
        .await
    }

    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let (start, end) = (start.to_vec(), end.to_vec());
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(redb_error)?;
            let table = tx.open_table(TABLE).map_err(redb_error)?;
            let mut out = Vec::new();
            for item in table
                .range(start.as_slice()..end.as_slice())
                .map_err(redb_error)?
                .take(limit)
            {
                let (k, v) = item.map_err(redb_error)?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let (start, end) = (start.to_vec(), end.to_vec());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(redb_error)?;
            {
                let mut table = tx.open_table(TABLE).map_err(redb_error)?;
                table
                    .retain_in(start.as_slice()..end.as_slice(), |_, _| false)
                    .map_err(redb_error)?;
            }
            tx.commit().map_err(redb_error)
        })
        .await
    }
}

// ---------------------------------------------------------------------------

/// fjall with `t` keys that point at the primary key: the batch
/// `put_events` would write without the time copy (no duplicate check, all
/// events new).
fn batch_without_time_copy(events: &[EnrichedEvent]) -> Vec<KvPair> {
    let mut batch = Vec::with_capacity(3 * events.len());
    for e in events {
        let id = e.event.id();
        let at = micros(&e.event.occurred_at());
        let primary = event_cell_key(e.cell.get(), at, id);
        batch.push((event_time_key(at, id), primary.clone()));
        batch.push((event_id_key(id), primary.clone()));
        batch.push((primary, encode_event(e)));
    }
    batch
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// Counts the scan calls and records read of a cell scan.
struct Counting {
    inner: Arc<dyn EventStore>,
    scans: AtomicUsize,
    records: AtomicUsize,
}

#[async_trait]
impl EventStore for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn put_batch(&self, entries: Vec<KvPair>) -> Result<()> {
        self.inner.put_batch(entries).await
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<Swap> {
        self.inner.compare_and_swap(key, expected, new).await
    }

    async fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        let page = self.inner.scan(start, end, limit).await?;
        self.scans.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(page.len(), Ordering::Relaxed);
        Ok(page)
    }

    async fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        self.inner.delete_range(start, end).await
    }
}

struct Backend {
    name: &'static str,
    store: Arc<dyn EventStore>,
    path: Option<std::path::PathBuf>,
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // On the target dir's disk, not a tmpfs: fsync must cost what it costs.
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).expect("bench dir");
    let dir = tempfile::tempdir_in(&root).expect("temp dir");
    let fjall_dir = dir.path().join("fjall");
    let redb_file = dir.path().join("redb.redb");
    let backends = vec![
        Backend {
            name: "embedded_fjall",
            store: Arc::new(EmbeddedStore::open(&fjall_dir).expect("open fjall")),
            path: Some(fjall_dir.clone()),
        },
        Backend {
            name: "redb",
            store: Arc::new(RedbStore::open(&redb_file).expect("open redb")),
            path: Some(redb_file.clone()),
        },
        Backend {
            name: "memory",
            store: Arc::new(MemoryStore::new()),
            path: None,
        },
    ];

    // Preload the same week into every backend, timing it.
    let mut generator = Events::new(7);
    let preload: Vec<Vec<EnrichedEvent>> =
        (0..PRELOAD / BATCH).map(|_| generator.batch()).collect();
    let codec_started = Instant::now();
    let records: Vec<Vec<u8>> = preload
        .iter()
        .take(20)
        .flatten()
        .map(encode_event)
        .collect();
    let encode = codec_started.elapsed() / records.len() as u32;
    let codec_started = Instant::now();
    for record in &records {
        std::hint::black_box(decode_event(record).expect("decodes"));
    }
    let decode = codec_started.elapsed() / records.len() as u32;
    let record_bytes = records.iter().map(Vec::len).sum::<usize>() / records.len();
    println!(
        "record codec (version byte + compact form): encode {encode:.2?}, decode {decode:.2?} per event"
    );
    let (cell, from, to) = scan_target();
    let in_scan = preload
        .iter()
        .flatten()
        .filter(|e| {
            let c = CellIndex::try_from(e.cell.get()).expect("cell");
            let t = e.event.occurred_at();
            c.parent(Resolution::Seven) == Some(cell) && t >= from && t < to
        })
        .count();
    println!(
        "dataset: {PRELOAD} events over {DAYS} days, mean record {record_bytes} bytes; scan: res-7 cell {cell}, {from}..{to}: {in_scan} events"
    );
    for backend in &backends {
        let t = Instant::now();
        for batch in &preload {
            let summary = rt
                .block_on(backend.store.put_events(batch))
                .expect("preload");
            assert_eq!(summary.written, BATCH);
        }
        let elapsed = t.elapsed();
        let disk = backend.path.as_deref().map(dir_size).unwrap_or(0);
        println!(
            "{}: preload {PRELOAD} events in {:.2?} = {:.0} events/s (durable batches of {BATCH}); {:.0} MB on disk = {:.0} bytes/event",
            backend.name,
            elapsed,
            PRELOAD as f64 / elapsed.as_secs_f64(),
            disk as f64 / 1e6,
            disk as f64 / PRELOAD as f64
        );
        let found = rt
            .block_on(
                backend
                    .store
                    .events_in_cell(cell, Resolution::Ten, from, to),
            )
            .expect("scan");
        assert_eq!(found.len(), in_scan, "{}", backend.name);
        let counting = Counting {
            inner: Arc::clone(&backend.store),
            scans: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
        };
        let t = Instant::now();
        let found = rt
            .block_on(counting.events_in_cell(cell, Resolution::Ten, from, to))
            .expect("scan");
        println!(
            "{}: one res-7 day scan = {} scan calls reading {} records for {} events, {:.2?} cold",
            backend.name,
            counting.scans.load(Ordering::Relaxed),
            counting.records.load(Ordering::Relaxed),
            found.len(),
            t.elapsed()
        );
    }

    let mut group = c.benchmark_group("store_scan_res7_day");
    group.throughput(Throughput::Elements(in_scan as u64));
    group.sample_size(20);
    for backend in &backends {
        group.bench_function(backend.name, |b| {
            b.iter(|| {
                let found = rt
                    .block_on(
                        backend
                            .store
                            .events_in_cell(cell, Resolution::Ten, from, to),
                    )
                    .expect("scan");
                assert_eq!(found.len(), in_scan);
                found
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store_write_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    for backend in &backends {
        group.bench_function(backend.name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch = generator.batch();
                    let t = Instant::now();
                    let summary = rt.block_on(backend.store.put_events(&batch)).expect("put");
                    total += t.elapsed();
                    assert_eq!(summary.written, BATCH);
                }
                total
            })
        });
    }
    let fjall = &backends[0].store;
    group.bench_function("embedded_fjall_time_key_as_pointer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let events = generator.batch();
                let t = Instant::now();
                let ids: Vec<Vec<u8>> = events.iter().map(|e| event_id_key(e.event.id())).collect();
                let existing = rt.block_on(fjall.get_many(ids)).expect("get");
                assert!(existing.iter().all(Option::is_none));
                let batch = batch_without_time_copy(&events);
                rt.block_on(fjall.put_batch(batch)).expect("put");
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
    for backend in &backends {
        if let Some(path) = &backend.path {
            println!(
                "{}: {:.0} MB on disk after the write benchmarks",
                backend.name,
                dir_size(path) as f64 / 1e6
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
