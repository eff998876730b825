//! Property tests: key encodings preserve order, and scans equal a
//! brute-force filter over everything inserted.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use posbon_geo::{CellIndex, LatLng, Resolution};
use posbon_model::EnrichedEvent;
use posbon_store::keys::{self, event_cell_key, event_time_key};
use posbon_store::{EmbeddedStore, EventStore, EventStoreExt, MemoryStore, conformance};
use proptest::prelude::*;

fn id() -> impl Strategy<Value = String> {
    "[!-~]{1,12}"
}

proptest! {
    #[test]
    fn cell_keys_compare_like_tuples(
        a in (0u64..1 << 60, any::<i64>(), id()),
        b in (0u64..1 << 60, any::<i64>(), id()),
    ) {
        let ka = event_cell_key(a.0, a.1, &a.2);
        let kb = event_cell_key(b.0, b.1, &b.2);
        let ta = (a.0, a.1, a.2.as_bytes());
        let tb = (b.0, b.1, b.2.as_bytes());
        prop_assert_eq!(ka.cmp(&kb), ta.cmp(&tb));
        let decoded = keys::decode_event_cell_key(&ka).expect("cell key");
        prop_assert_eq!((decoded.cell, decoded.micros, decoded.id), ta);
    }

    #[test]
    fn time_keys_compare_like_tuples(
        a in (any::<i64>(), id()),
        b in (any::<i64>(), id()),
    ) {
        let ka = event_time_key(a.0, &a.1);
        let kb = event_time_key(b.0, &b.1);
        prop_assert_eq!(ka.cmp(&kb), (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
        let decoded = keys::decode_event_time_key(&ka).expect("time key");
        prop_assert_eq!((decoded.micros, decoded.id), (a.0, a.1.as_bytes()));
    }

    #[test]
    fn time_encoding_is_monotone(a in any::<i64>(), b in any::<i64>()) {
        prop_assert_eq!(keys::encode_time(a).cmp(&keys::encode_time(b)), a.cmp(&b));
        prop_assert_eq!(keys::decode_time(keys::encode_time(a)), a);
    }
}

const SPAN_MICROS: i64 = 5 * 24 * 3600 * 1_000_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
        .single()
        .expect("valid time")
}

/// Events at random points of a box in Tashkent (0.003 to 0.1 degrees, so
/// that storage cells hold from one to dozens of events) over five days.
fn events() -> impl Strategy<Value = Vec<EnrichedEvent>> {
    let scale = prop_oneof![Just(0.003), Just(0.02), Just(0.1)];
    let points = prop::collection::vec((0.0..1.0f64, 0.0..1.0f64, 0..SPAN_MICROS), 1..150);
    (scale, points).prop_map(|(scale, points)| {
        points
            .into_iter()
            .enumerate()
            .map(|(i, (dlat, dlng, t))| {
                let cell = LatLng::new(41.26 + scale * dlat, 69.20 + scale * dlng)
                    .expect("valid")
                    .to_cell(Resolution::Ten);
                let at = t0() + Duration::microseconds(t);
                conformance::enriched_in_cell(&format!("p-{i}"), at, cell, None)
            })
            .collect()
    })
}

/// A query: the ancestor at resolution 5..=10 of one event's cell, and a
/// window (possibly empty or reversed).
fn query() -> impl Strategy<Value = (prop::sample::Index, u8, i64, i64, usize)> {
    (
        any::<prop::sample::Index>(),
        5u8..=10,
        -SPAN_MICROS / 10..SPAN_MICROS,
        0..SPAN_MICROS,
        1usize..=20,
    )
}

async fn check_scans(
    store: &dyn EventStore,
    events: &[EnrichedEvent],
    (pick, res, from, len, page): (prop::sample::Index, u8, i64, i64, usize),
) -> Result<(), TestCaseError> {
    store.put_events(events).await.expect("put");
    let base = CellIndex::try_from(pick.get(events).cell.get()).expect("valid cell");
    let res = Resolution::try_from(res).expect("valid resolution");
    let query = base.parent(res).expect("coarser");
    let from = t0() + Duration::microseconds(from);
    let to = from + Duration::microseconds(len - SPAN_MICROS / 20);
    let in_window =
        |e: &&EnrichedEvent| e.event.occurred_at() >= from && e.event.occurred_at() < to;

    let mut expected: Vec<EnrichedEvent> = events
        .iter()
        .filter(|e| {
            let cell = CellIndex::try_from(e.cell.get()).expect("valid cell");
            cell.parent(res) == Some(query)
        })
        .filter(in_window)
        .cloned()
        .collect();
    expected.sort_by_key(|e| {
        event_cell_key(
            e.cell.get(),
            keys::micros(&e.event.occurred_at()),
            e.event.id(),
        )
    });
    let got: Vec<EnrichedEvent> = store
        .events_in_cell_stream(query, Resolution::Ten, from, to, page)
        .try_collect()
        .await
        .expect("scan");
    prop_assert_eq!(got, expected);

    let mut expected: Vec<EnrichedEvent> = events.iter().filter(in_window).cloned().collect();
    expected.sort_by_key(|e| event_time_key(keys::micros(&e.event.occurred_at()), e.event.id()));
    let got: Vec<EnrichedEvent> = store
        .events_in_time_stream(from, to, page)
        .try_collect()
        .await
        .expect("scan");
    prop_assert_eq!(got, expected);
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #[test]
    fn memory_scans_equal_brute_force(events in events(), query in query()) {
        runtime().block_on(check_scans(&MemoryStore::new(), &events, query))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn embedded_scans_equal_brute_force(events in events(), query in query()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        runtime().block_on(check_scans(&store, &events, query))?;
    }
}
