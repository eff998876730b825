//! Posbon event store: the [`EventStore`] trait, the key layout, and the
//! embedded and in-memory backends.
//!
//! [`EventStore`] is a small async trait over an ordered key-value store of
//! byte strings: an atomic, durable batch put, a point get, a paged range
//! scan and a range delete. Backends implement only that; everything about
//! events is built on top in [`EventStoreExt`], the same for every backend:
//! idempotent event writes with duplicate detection, scans of an H3 cell of
//! any resolution at or coarser than the storage resolution, of a time
//! window, of a mahalla, and paging streams with bounded memory. A
//! [`Store`] (`Arc<dyn EventStore>`) is the handle services share;
//! [`conformance`] is the suite every backend passes.
//!
//! Backends:
//!
//! * [`EmbeddedStore`]: the default, one machine; fjall (an LSM-tree with a
//!   write-ahead journal) in a directory, fsynced per batch. Chosen over
//!   redb 4.6 by the `store` benchmark: about 5 times the durable write
//!   throughput, 1.5 times faster cell scans, and half the disk space.
//! * [`MemoryStore`]: a `BTreeMap`, for tests and single-process runs.
//! * [`TikvStore`]: a TiKV cluster through the raw key-value API of
//!   tikv-client, the same key layout; how it makes up for what the raw API
//!   lacks (atomic batches, scans past the last region) is in its docs.
//!
//! [`StoreConfig`] (the `[store]` section of every service) picks the
//! backend and [`open_store`] opens it; [`copy()`] moves every key from one
//! store to another.
//!
//! # Key layout
//!
//! Every key starts with a one-byte prefix; numbers are big-endian so byte
//! order is numeric order.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `e` | `e` · cell (u64) · time (8 B) · event id | event record |
//! | `t` | `t` · time (8 B) · event id | event record (a second copy) |
//! | `i` | `i` · event id | the event's `e` key |
//! | `c` | `c` · name | checkpoint, format owned by its writer |
//! | `x` | `x` · `e` · id, `x` · `s` · source | escalation records, source precision ([`escalations`]) |
//! | `r` | `r` · kind · `0x00` · key · head / parts of a generation, `r` · kind · `0x01` · key | documents (reports, day segments, checkpoints) in parts, their listing ([`documents`]) |
//! | `u` | `u` · `t` · token id, `u` · `u` · user, `u` · `s` · session hash, `u` · `l` · link hash | identities (`posbon-auth`) |
//! | `a` | `a` · `r` · sequence (u64), `a` · `h` | audit records, hash-chained, and the chain's head (`posbon-auth`) |
//!
//! * **cell**: the event's H3 index at the storage resolution (`cell` of the
//!   [`EnrichedEvent`](posbon_model::EnrichedEvent), resolution 10 by default).
//! * **time**: `occurred_at` as microseconds since the Unix epoch (UTC), an
//!   `i64` with its sign bit flipped, big-endian: byte order is time order,
//!   before 1970 included. The producer's offset is kept in the record.
//! * **event id**: the id's bytes (visible ASCII, 1..=128 bytes). It is the
//!   last field, so it needs no terminator, and the keys of an event never
//!   change: rewriting an event is idempotent.
//!
//! What this buys:
//!
//! * All events of one storage cell in a time window are one range
//!   ([`keys::cell_time_range`]). The children of an H3 cell at a fixed finer
//!   resolution are exactly the valid indexes between two bounds
//!   ([`posbon_geo::children_range`]), so all events of any coarser cell are
//!   one range too ([`keys::cell_span_range`]); inside it,
//!   [`EventStoreExt::events_in_cell_stream`] skips from cell to cell and
//!   reads only each cell's window.
//!   A scan reads about one chunk per storage cell with data when the cells
//!   are dense (one storage cell's window per read is the floor for this
//!   layout); 354 reads for the 343 res-10 cells of a busy res-7 cell.
//! * All events of a time window are one range of `t` keys
//!   ([`keys::time_range`]).
//! * The `i` index finds an event by id and makes
//!   [`EventStoreExt::put_events`] skip an id it has already stored (a
//!   redelivery, or a producer resending an id with changed content after the
//!   broker's duplicate window): the first version wins.
//!
//! The `t` copy holds the whole record rather than a pointer to the `e` key:
//! a time-window read is then one sequential range scan instead of one
//! random point read per event, and the copy cannot dangle. Its cost was
//! measured with the `store` benchmark: writing batches of 1000 events took
//! the same time with the copy as with a pointer (within noise, about 14 ms
//! per batch on fjall), and the store took about 1.6 KB per event on disk
//! instead of about 1 KB (with JSON records, before the compact form).
//!
//! # Event records
//!
//! A record is a version byte followed by the event:
//! [`codec::EVENT_COMPACT_V2`], the compact binary form of the
//! [`EnrichedEvent`](posbon_model::EnrichedEvent) that is written now
//! ([`posbon_model::compact`]), or [`codec::EVENT_JSON_V1`], its JSON, which
//! earlier releases wrote and every reader still accepts ([`codec`]).
//!
//! # Example
//!
//! ```
//! use posbon_store::{EventStore, EventStoreExt, MemoryStore, Store};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store: Store = Arc::new(MemoryStore::new());
//! store.put_batch(vec![(b"c-demo".to_vec(), b"42".to_vec())]).await?;
//! assert_eq!(store.get(b"c-demo").await?, Some(b"42".to_vec()));
//! store.put_checkpoint("indexer", b"seq=7".to_vec()).await?;
//! assert_eq!(store.checkpoint("indexer").await?, Some(b"seq=7".to_vec()));
//! # Ok::<(), posbon_store::StoreError>(())
//! # }).unwrap();
//! ```

pub mod codec;
mod config;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod copy;
pub mod documents;
mod embedded;
mod error;
pub mod escalations;
mod ext;
pub mod keys;
pub mod leases;
mod memory;
pub mod pseudonyms;
pub mod registry;
pub mod retention;
mod store;
mod tikv;

pub use config::{
    DEFAULT_STORE_PATH, StoreConfig, TikvConfig, TikvTlsConfig, open_store, open_store_with_metrics,
};
pub use copy::{CopyOptions, CopyProgress, CopySummary, copy, copy_with};
pub use documents::{DocumentStoreExt, MAX_DOCUMENT_NAME_BYTES, MAX_PART_BYTES};
pub use embedded::{EmbeddedStore, INLINE_RECORDS};
pub use error::{Result, StoreError, StoreErrorKind};
pub use escalations::{
    EscalationIndex, EscalationPage, EscalationStoreExt, EscalationSwap, SourcePrecision,
    StoredEscalation,
};
pub use ext::{
    BatchIds, CheckedEvents, DEFAULT_PAGE, EventStoreExt, PreparedEvents, PutSummary, stable_hash,
};
pub use keys::checkpoint_key;
pub use leases::{HeldLease, Lease, LeaseStoreExt, Take};
pub use memory::MemoryStore;
pub use registry::{RegistryRecord, RegistryStoreExt};
pub use store::{
    EventStore, KvPair, MAX_KEY_BYTES, MAX_VALUE_BYTES, Store, Swap, check_entry, check_key,
    normalize_batch,
};
pub use tikv::TikvStore;
