//! The conformance suite: what every [`EventStore`] backend must do.
//!
//! Run it against a new, empty, throwaway store: the tests write keys under
//! `z/<test>/` and at the extremes of the key space, and the event tests
//! clear the `e`, `t` and `i` prefixes. A failure panics with a message that
//! names the backend, like an `assert!` in a test.
//!
//! ```
//! use posbon_store::{MemoryStore, conformance};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! conformance::run_all(&MemoryStore::new()).await;
//! # });
//! ```

use posbon_geo::Resolution;

use crate::keys::prefix_range;
use crate::store::EventStore;

mod events;
mod fixtures;
mod kv;

pub use events::{
    test_checkpoints, test_event_cell_scans, test_event_duplicates, test_event_put_get,
    test_event_time_windows, test_events_of_mahalla, test_json_records, test_write_marks,
};
pub use fixtures::{enriched_in_cell, incident, scattered_events};
pub use kv::{
    test_batch_atomicity, test_batch_last_wins, test_binary_keys, test_compare_and_swap,
    test_delete_range, test_empty_ranges, test_get_many, test_invalid_requests, test_large_values,
    test_overwrite, test_put_get, test_scan_order, test_scan_pagination, test_scan_ranges,
};

/// The storage resolution the event tests use.
pub const STORAGE: Resolution = Resolution::Ten;

/// Runs every test of the suite, in order.
pub async fn run_all(store: &dyn EventStore) {
    test_put_get(store).await;
    test_overwrite(store).await;
    test_batch_last_wins(store).await;
    test_batch_atomicity(store).await;
    test_compare_and_swap(store).await;
    test_invalid_requests(store).await;
    test_get_many(store).await;
    test_scan_order(store).await;
    test_scan_pagination(store).await;
    test_scan_ranges(store).await;
    test_empty_ranges(store).await;
    test_delete_range(store).await;
    test_binary_keys(store).await;
    test_large_values(store).await;
    test_event_put_get(store).await;
    test_event_cell_scans(store).await;
    test_event_time_windows(store).await;
    test_event_duplicates(store).await;
    test_json_records(store).await;
    test_write_marks(store).await;
    test_events_of_mahalla(store).await;
    test_checkpoints(store).await;
}

/// Removes every entry under `prefix`.
async fn clear(store: &dyn EventStore, prefix: &[u8]) {
    let (start, end) = prefix_range(prefix);
    store
        .delete_range(&start, &end)
        .await
        .expect("delete range");
}
