//! The event tests of the suite: event writes and reads, cell, time and
//! mahalla scans, duplicates, old records, write marks and checkpoints, with
//! their fixtures.

use chrono::Duration;
use futures::TryStreamExt;
use posbon_geo::{CellIndex, LatLng, Registry, RegistryOptions, Resolution, grid_disk};
use posbon_model::EnrichedEvent;

use super::fixtures::{CENTRE, enriched_in_cell, t0};
use super::{STORAGE, clear};
use crate::error::StoreErrorKind;
use crate::ext::EventStoreExt;
use crate::keys::{self, EVENT_BY_CELL, EVENT_BY_TIME, EVENT_ID, prefix_range};
use crate::store::EventStore;

/// Checks that two event lists are equal, naming ids on failure (events
/// print long).
#[track_caller]
fn assert_events(got: &[EnrichedEvent], expected: &[EnrichedEvent], what: &str) {
    let ids = |events: &[EnrichedEvent]| -> Vec<String> {
        events.iter().map(|e| e.event.id().to_owned()).collect()
    };
    assert_eq!(ids(got), ids(expected), "{what}");
    assert!(got == expected, "{what}: same ids, different records");
}

/// Key-order sort of events: (storage cell, time, id).
fn by_cell_key(events: &mut [EnrichedEvent]) {
    events.sort_by_key(|e| {
        keys::event_cell_key(
            e.cell.get(),
            keys::micros(&e.event.occurred_at()),
            e.event.id(),
        )
    });
}

/// Key-order sort of events: (time, id).
fn by_time_key(events: &mut [EnrichedEvent]) {
    events
        .sort_by_key(|e| keys::event_time_key(keys::micros(&e.event.occurred_at()), e.event.id()));
}

async fn clear_events(store: &dyn EventStore) {
    for prefix in [EVENT_BY_CELL, EVENT_BY_TIME, EVENT_ID, keys::WRITE_MARK] {
        clear(store, &[prefix]).await;
    }
}

/// `put_events` then `get_event`: the record comes back equal, offset kept.
pub async fn test_event_put_get(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let event = enriched_in_cell("iiv-2026-000123", t0(), cell, Some("chilonzor-001"));
    let summary = store
        .put_events(std::slice::from_ref(&event))
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (1, 0), "{name}");
    let got = store
        .get_event("iiv-2026-000123")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got, event, "{name}: record round trip");
    assert_eq!(got.event.occurred_at().offset().local_minus_utc(), 5 * 3600);
    assert_eq!(store.get_event("missing").await.expect("get"), None);
    assert_eq!(store.get_event("bad id").await.expect("get"), None);
    assert_eq!(store.count_events().await.expect("count"), 1, "{name}");
    let error = store
        .put_events(&[enriched_in_cell("bad id", t0(), cell, None)])
        .await
        .expect_err("invalid id");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    clear_events(store).await;
}

/// Events spread over the res-10 children of one res-7 cell and its
/// neighbours, over three days, some at the window edges.
fn cell_fixture() -> (CellIndex, Vec<EnrichedEvent>) {
    let parent = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(Resolution::Seven);
    let children: Vec<CellIndex> = parent.children(STORAGE).collect();
    let neighbours: Vec<CellIndex> = grid_disk(parent, 1)
        .into_iter()
        .filter(|&n| n != parent)
        .filter_map(|n| n.children(STORAGE).next())
        .collect();
    let mut cells: Vec<CellIndex> = children.iter().step_by(23).copied().collect();
    // Several cells under one res-9 parent.
    cells.extend(children.iter().take(3).copied());
    cells.extend(neighbours);
    let mut events = Vec::new();
    let edges = [
        Duration::zero(),
        Duration::microseconds(-1),
        Duration::microseconds(1),
        Duration::hours(24) - Duration::microseconds(1),
        Duration::hours(24),
        Duration::hours(-5),
        Duration::hours(30),
        Duration::hours(7),
    ];
    for (i, cell) in cells.iter().enumerate() {
        for (j, edge) in edges.iter().enumerate() {
            if (i + j) % 3 == 0 {
                continue;
            }
            let id = format!("ev-{i:03}-{j}");
            events.push(enriched_in_cell(&id, t0() + *edge, *cell, None));
        }
    }
    // Two events at the same time and cell: ordered by id.
    events.push(enriched_in_cell("same-b", t0(), children[0], None));
    events.push(enriched_in_cell("same-a", t0(), children[0], None));
    (parent, events)
}

/// Cell scans at resolutions 10, 9 and 7 equal a brute-force filter, in key
/// order, with small and large pages.
pub async fn test_event_cell_scans(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let (parent, events) = cell_fixture();
    for chunk in events.chunks(50) {
        store.put_events(chunk).await.expect("put");
    }
    let from = t0();
    let to = t0() + Duration::hours(24);
    let first = events[0].cell;
    let first = CellIndex::try_from(first.get()).expect("valid cell");
    let queries = [
        first,
        first.parent(Resolution::Nine).expect("res 9"),
        parent,
        parent.parent(Resolution::Five).expect("res 5"),
    ];
    for query in queries {
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| {
                let cell = CellIndex::try_from(e.cell.get()).expect("valid cell");
                let t = e.event.occurred_at();
                cell.parent(query.resolution()) == Some(query) && t >= from && t < to
            })
            .cloned()
            .collect();
        by_cell_key(&mut expected);
        assert!(!expected.is_empty(), "fixture covers {query}");
        let got = store
            .events_in_cell(query, STORAGE, from, to)
            .await
            .expect("scan");
        assert_events(&got, &expected, &format!("{name}: cell {query}"));
        for page in [1, 3, 1000] {
            let got: Vec<EnrichedEvent> = store
                .events_in_cell_stream(query, STORAGE, from, to, page)
                .try_collect()
                .await
                .expect("scan");
            assert_events(
                &got,
                &expected,
                &format!("{name}: cell {query} page {page}"),
            );
        }
    }
    // An empty window, and a cell finer than the storage resolution.
    let none = store
        .events_in_cell(parent, STORAGE, to, from)
        .await
        .expect("empty window");
    assert!(none.is_empty(), "{name}: from > to");
    let fine = first.children(Resolution::Eleven).next().expect("child");
    let error = store
        .events_in_cell(fine, STORAGE, from, to)
        .await
        .expect_err("finer than storage");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest, "{name}");
    clear_events(store).await;
}

/// Time windows are `[from, to)` at microsecond precision, in time order.
pub async fn test_event_time_windows(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let (_, events) = cell_fixture();
    store.put_events(&events).await.expect("put");
    let windows = [
        (t0(), t0() + Duration::hours(24)),
        (t0() + Duration::microseconds(1), t0() + Duration::hours(24)),
        (t0() - Duration::days(10), t0() + Duration::days(10)),
        (t0(), t0()),
        (t0() + Duration::hours(1), t0()),
    ];
    for (from, to) in windows {
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| e.event.occurred_at() >= from && e.event.occurred_at() < to)
            .cloned()
            .collect();
        by_time_key(&mut expected);
        let got = store.events_in_time(from, to).await.expect("scan");
        assert_events(&got, &expected, &format!("{name}: window {from}..{to}"));
        let paged: Vec<EnrichedEvent> = store
            .events_in_time_stream(from, to, 4)
            .try_collect()
            .await
            .expect("scan");
        assert_events(
            &paged,
            &expected,
            &format!("{name}: window {from}..{to} page 4"),
        );
    }
    let at_t0 = store
        .events_in_time(t0(), t0() + Duration::microseconds(1))
        .await
        .expect("scan");
    assert!(!at_t0.is_empty(), "{name}: from is inclusive");
    assert!(
        at_t0.iter().all(|e| e.event.occurred_at() == t0()),
        "{name}"
    );
    clear_events(store).await;
}

/// Duplicate ids are counted and not stored twice; the first version wins.
pub async fn test_event_duplicates(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let other = cell.grid_disk::<Vec<_>>(2)[5];
    let a = enriched_in_cell("dup-a", t0(), cell, None);
    let b = enriched_in_cell("dup-b", t0(), cell, None);
    // Same id, other content, time and cell: a producer resending.
    let a_changed = enriched_in_cell("dup-a", t0() + Duration::hours(1), other, Some("m-1"));
    let summary = store
        .put_events(&[a.clone(), b.clone(), a_changed.clone()])
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (2, 1), "{name}");
    // Redelivery of the whole batch, plus one new event.
    let c = enriched_in_cell("dup-c", t0(), cell, None);
    let summary = store
        .put_events(&[a.clone(), a_changed, b, c])
        .await
        .expect("put");
    assert_eq!((summary.written, summary.duplicates), (1, 3), "{name}");
    assert_eq!(store.count_events().await.expect("count"), 3, "{name}");
    for prefix in [EVENT_BY_CELL, EVENT_BY_TIME] {
        let (start, end) = prefix_range(&[prefix]);
        let n = store.scan(&start, &end, 100).await.expect("scan").len();
        assert_eq!(n, 3, "{name}: one {} key per event", prefix as char);
    }
    assert_eq!(
        store.get_event("dup-a").await.expect("get"),
        Some(a),
        "{name}: first version wins"
    );
    let summary = store.put_events(&[]).await.expect("empty");
    assert_eq!(summary, crate::PutSummary::default());
    clear_events(store).await;
}

/// Records of the first version (the event as JSON, which earlier releases
/// wrote) are read next to compact ones: by id, in cell and time scans, and
/// as duplicates of a rewrite. Here the JSON is pretty-printed, which the
/// first version allowed.
pub async fn test_json_records(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let a = enriched_in_cell("json-a", t0(), cell, Some("m-1"));
    let b = enriched_in_cell("json-b", t0() + Duration::minutes(3), cell, None);
    store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put a");
    let at = crate::keys::micros(&b.event.occurred_at());
    let mut record = vec![crate::codec::EVENT_JSON_V1];
    serde_json::to_writer_pretty(&mut record, &b).expect("json");
    let cell_key = crate::keys::event_cell_key(b.cell.get(), at, "json-b");
    store
        .put_batch(vec![
            (crate::keys::event_time_key(at, "json-b"), record.clone()),
            (cell_key.clone(), record),
            (crate::keys::event_id_key("json-b"), cell_key),
        ])
        .await
        .expect("put a json record");
    let got = store
        .get_event("json-b")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got, b, "{name}: the JSON record decodes to the event");
    let (start, end) = prefix_range(&[EVENT_BY_TIME]);
    let records = store.scan(&start, &end, 10).await.expect("scan");
    let versions: Vec<u8> = records.iter().map(|(_, v)| v[0]).collect();
    assert_eq!(
        versions,
        [crate::codec::EVENT_COMPACT_V2, crate::codec::EVENT_JSON_V1],
        "{name}"
    );
    let window = store
        .events_in_time(t0(), t0() + Duration::hours(1))
        .await
        .expect("window");
    assert_eq!(window, vec![a.clone(), b.clone()], "{name}");
    let in_cell: Vec<EnrichedEvent> = store
        .events_in_cell_stream(cell, STORAGE, t0(), t0() + Duration::hours(1), 10)
        .try_collect()
        .await
        .expect("cell");
    assert_eq!(in_cell, vec![a.clone(), b.clone()], "{name}");
    let summary = store.put_events(&[a, b]).await.expect("rewrite");
    assert_eq!((summary.written, summary.duplicates), (0, 2), "{name}");
    clear_events(store).await;
}

/// The write-marks digest of a window changes exactly when events of the
/// hours it overlaps are written: not for other hours, not for a rewrite
/// that stores nothing.
pub async fn test_write_marks(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let cell = LatLng::new(CENTRE.0, CENTRE.1)
        .expect("valid")
        .to_cell(STORAGE);
    let day = |d: i64| {
        let from = keys::micros(&(t0() + Duration::days(d)));
        (from, from + 24 * keys::HOUR_MICROS)
    };
    let digest = |(from, to): (i64, i64)| async move {
        store
            .write_marks_digest(from, to)
            .await
            .expect("write marks")
    };
    let empty = digest(day(0)).await;
    assert_eq!(digest(day(0)).await, empty, "{name}: stable");
    let a = enriched_in_cell("mark-a", t0() + Duration::hours(3), cell, None);
    store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put");
    let first = digest(day(0)).await;
    assert_ne!(first, empty, "{name}: a write in the window");
    assert_eq!(digest(day(1)).await, empty, "{name}: not the next day");
    assert_eq!(digest(day(-1)).await, empty, "{name}: not the day before");
    // The same event again stores nothing and leaves the marks.
    let summary = store
        .put_events(std::slice::from_ref(&a))
        .await
        .expect("put");
    assert_eq!(summary.written, 0, "{name}");
    assert_eq!(digest(day(0)).await, first, "{name}: a rewrite is no write");
    // Another event in the same hour, and one a day later.
    let b = enriched_in_cell("mark-b", t0() + Duration::minutes(200), cell, None);
    let c = enriched_in_cell("mark-c", t0() + Duration::hours(25), cell, None);
    store.put_events(&[b, c]).await.expect("put");
    let second = digest(day(0)).await;
    assert_ne!(second, first, "{name}: a second write in the same hour");
    assert_ne!(digest(day(1)).await, empty, "{name}: the next day now");
    // The last hour of the day and the first of the next are different marks.
    let d = enriched_in_cell("mark-d", t0() + Duration::hours(24), cell, None);
    store.put_events(&[d]).await.expect("put");
    assert_eq!(digest(day(0)).await, second, "{name}: day 0 unchanged");
    clear_events(store).await;
}

/// Two square mahallas side by side in Tashkent, and a third one apart.
const MAHALLAS: &str = r#"{"type": "FeatureCollection", "features": [
 {"type": "Feature", "properties": {"id": "m-west", "name": "West", "district": "chilonzor", "region": "tashkent"},
  "geometry": {"type": "Polygon", "coordinates": [[[69.200, 41.280], [69.210, 41.280], [69.210, 41.290], [69.200, 41.290], [69.200, 41.280]]]}},
 {"type": "Feature", "properties": {"id": "m-east", "name": "East", "district": "chilonzor", "region": "tashkent"},
  "geometry": {"type": "Polygon", "coordinates": [[[69.210, 41.280], [69.220, 41.280], [69.220, 41.290], [69.210, 41.290], [69.210, 41.280]]]}}
]}"#;

/// A mahalla's events: its covering cells, filtered by `mahalla_id`, equal a
/// brute-force filter, including events in cells shared with its neighbour.
pub async fn test_events_of_mahalla(store: &dyn EventStore) {
    let name = store.name();
    clear_events(store).await;
    let registry =
        Registry::from_geojson(MAHALLAS.as_bytes(), &RegistryOptions::default()).expect("registry");
    let mut events = Vec::new();
    // A grid of points across both squares and a margin outside them.
    for i in 0..40 {
        for j in 0..20 {
            let lat = 41.2785 + f64::from(j) * 0.0007;
            let lng = 69.1985 + f64::from(i) * 0.00058;
            let found = registry.locate(lat, lng).expect("valid point");
            let id = format!("m-{i:02}-{j:02}");
            let at = t0() + Duration::minutes(i64::from(i * 20 + j) * 7);
            let mahalla = found.mahalla.map(|m| registry.mahalla(m).id.as_str());
            let mut event = enriched_in_cell(&id, at, found.cell, mahalla);
            event.event.header_mut().location = posbon_model::Location::new(lat, lng);
            events.push(event);
        }
    }
    store.put_events(&events).await.expect("put");
    let (from, to) = (t0() + Duration::hours(3), t0() + Duration::hours(60));
    for (idx, mahalla) in registry.mahallas().iter().enumerate() {
        let idx = posbon_geo::MahallaIdx(idx as u32);
        let mut expected: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| e.mahalla_id.as_deref() == Some(mahalla.id.as_str()))
            .filter(|e| e.event.occurred_at() >= from && e.event.occurred_at() < to)
            .cloned()
            .collect();
        by_cell_key(&mut expected);
        assert!(expected.len() > 10, "fixture has events in {}", mahalla.id);
        let got = store
            .events_of_mahalla(&registry, idx, from, to)
            .await
            .expect("scan");
        assert_events(&got, &expected, &format!("{name}: mahalla {}", mahalla.id));
    }
    clear_events(store).await;
}

/// Checkpoints are stored under `c` · name and can be replaced.
pub async fn test_checkpoints(store: &dyn EventStore) {
    let name = store.name();
    assert_eq!(store.checkpoint("conformance").await.expect("get"), None);
    store
        .put_checkpoint("conformance", b"1".to_vec())
        .await
        .expect("put");
    store
        .put_checkpoint("conformance", b"2".to_vec())
        .await
        .expect("put");
    assert_eq!(
        store.checkpoint("conformance").await.expect("get"),
        Some(b"2".to_vec()),
        "{name}"
    );
    assert_eq!(
        store
            .get(&crate::checkpoint_key("conformance"))
            .await
            .expect("get"),
        Some(b"2".to_vec()),
        "{name}: raw key"
    );
    clear(store, &crate::checkpoint_key("conformance")).await;
}
