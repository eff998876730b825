//! Retention on every backend (memory, embedded, TiKV through the in-repo
//! test server): what is older than its kind's retention goes with all its
//! keys, nothing younger is touched, a dry run deletes nothing, the write
//! marks of the hours touched change, open escalations stay.

use chrono::{DateTime, TimeDelta, Utc};
use posbon_geo::{LatLng, Resolution};
use posbon_model::{
    EnrichedEvent, Escalation, EscalationRecord, EscalationStatus, Limits, RiskLevel, parse_event,
};
use posbon_store::retention::{RetentionConfig, prune};
use posbon_store::{
    EmbeddedStore, EscalationIndex, EscalationStoreExt as _, EventStore, EventStoreExt as _,
    MemoryStore, TikvConfig, TikvStore,
};
use posbon_tikv_testserver::TestServer;
use serde_json::Value;

fn event(kind_example: &str, id: &str, at: DateTime<Utc>) -> EnrichedEvent {
    let mut v: Value = serde_json::from_str(kind_example).expect("example");
    v["id"] = Value::from(id);
    v["occurred_at"] = Value::from(at.to_rfc3339());
    if v["account_ref"].is_string() {
        v["account_ref"] = Value::from(posbon_model::pseudonymise_account_ref(b"k", "card"));
    }
    let parsed = parse_event(
        serde_json::to_vec(&v).expect("json").as_slice(),
        &Limits::default(),
        at + TimeDelta::days(1),
    )
    .expect("valid");
    let cell = LatLng::new(41.31, 69.25)
        .expect("valid")
        .to_cell(Resolution::Ten);
    EnrichedEvent {
        event: parsed,
        cell: posbon_model::CellId::new(u64::from(cell)).expect("cell"),
        mahalla_id: None,
        district_id: None,
        region_id: None,
        ingested_at: at,
    }
}

const INCIDENT: &str = include_str!("../../../schemas/examples/valid/incident_robbery.json");
const CAMERA: &str = include_str!("../../../schemas/examples/valid/camera_alert_drug_handoff.json");
const FRAUD: &str = include_str!("../../../schemas/examples/valid/fraud_flag_scam_call.json");

fn escalation(id: &str, closed: Option<DateTime<Utc>>, now: DateTime<Utc>) -> EscalationRecord {
    let opened = closed.unwrap_or(now) - TimeDelta::days(1);
    let escalation = Escalation {
        id: id.to_owned(),
        mahalla_id: "m1".into(),
        district_id: "d1".into(),
        region_id: "r1".into(),
        level: RiskLevel::High,
        previous_level: RiskLevel::Normal,
        score: 4.2,
        rule: "intensity".into(),
        measure: None,
        counts: Default::default(),
        hot_cells: vec![],
        evidence: vec![],
        window_start: opened,
        window_end: opened,
        opened_at: opened,
        status: EscalationStatus::Open,
    };
    let mut record = EscalationRecord::opened(escalation, 1, opened);
    if let Some(at) = closed {
        record.escalation.status = EscalationStatus::Resolved;
        record.closed_at = Some(at);
        record.updated_at = at;
    }
    record
}

async fn check(store: &dyn EventStore) {
    let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("now")
        .with_timezone(&Utc);
    let days = |d: i64| now - TimeDelta::days(d);
    let old = vec![
        event(INCIDENT, "inc-old", days(2000)),
        event(CAMERA, "cam-old", days(100)),
        event(FRAUD, "fraud-old", days(400)),
    ];
    let young = vec![
        event(INCIDENT, "inc-young", days(100)),
        event(INCIDENT, "inc-edge", days(1824)),
        event(CAMERA, "cam-young", days(80)),
        event(FRAUD, "fraud-young", days(300)),
    ];
    store.put_events(&old).await.expect("put");
    store.put_events(&young).await.expect("put");
    store
        .put_escalation(&escalation("esc-old", Some(days(800)), now))
        .await
        .expect("esc");
    store
        .put_escalation(&escalation("esc-closed-recently", Some(days(10)), now))
        .await
        .expect("esc");
    store
        .put_escalation(&escalation("esc-open-for-ages", None, now))
        .await
        .expect("esc");
    let config = RetentionConfig::default();
    let span = (i64::MIN / 2, i64::MAX / 2);
    let marks_before = store
        .write_marks_digest(span.0, span.1)
        .await
        .expect("digest");

    let dry = prune(store, &config, now, true, false).await.expect("dry");
    assert!(dry.dry_run);
    assert_eq!(dry.events.values().sum::<u64>(), 3, "{dry:?}");
    assert_eq!(dry.escalations, 1);
    assert_eq!(
        store.count_events().await.expect("count"),
        7,
        "a dry run deletes nothing"
    );
    assert_eq!(store.escalations().await.expect("all").len(), 3);

    let report = prune(store, &config, now, false, false)
        .await
        .expect("prune");
    assert_eq!(report.events["incident"], 1);
    assert_eq!(report.events["camera_alert"], 1);
    assert_eq!(report.events["fraud_flag"], 1);
    assert_eq!(report.escalations, 1);
    for e in &old {
        assert!(
            store.get_event(e.event.id()).await.expect("get").is_none(),
            "{} is gone",
            e.event.id()
        );
    }
    for e in &young {
        assert_eq!(
            store.get_event(e.event.id()).await.expect("get").as_ref(),
            Some(e),
            "{} is untouched",
            e.event.id()
        );
    }
    let everything = store.events_in_time(days(10_000), now).await.expect("scan");
    assert_eq!(
        everything.len(),
        4,
        "no key of a deleted event is left in time order"
    );
    let in_cell = store
        .events_in_cell(
            posbon_geo::CellIndex::try_from(young[0].cell.get()).expect("cell"),
            Resolution::Ten,
            days(10_000),
            now,
        )
        .await
        .expect("cell");
    assert_eq!(in_cell.len(), 4, "nor by cell");
    let ids: Vec<String> = store
        .escalations()
        .await
        .expect("all")
        .into_iter()
        .map(|r| r.escalation.id)
        .collect();
    assert_eq!(ids, ["esc-closed-recently", "esc-open-for-ages"]);
    let listed = store
        .escalations_page(EscalationIndex::All, None, 10)
        .await
        .expect("index");
    assert_eq!(
        listed.records.len(),
        2,
        "the expired escalation left the index with its record"
    );
    assert_ne!(
        store
            .write_marks_digest(span.0, span.1)
            .await
            .expect("digest"),
        marks_before,
        "what was computed from the deleted events is computed again"
    );

    // The next run starts where this one stopped, and finds nothing new.
    let again = prune(store, &config, now + TimeDelta::hours(1), false, false)
        .await
        .expect("again");
    assert_eq!(again.events.values().sum::<u64>(), 0);
    assert_eq!(store.count_events().await.expect("count"), 4);

    // Kept forever: 0 days.
    let forever = RetentionConfig {
        incident_days: 0,
        camera_alert_days: 0,
        fraud_flag_days: 0,
        escalation_days: 0,
        audit_days: 0,
        enabled: true,
    };
    let none = prune(store, &forever, now + TimeDelta::days(5000), false, true)
        .await
        .expect("forever");
    assert_eq!(none.events.values().sum::<u64>(), 0);
    assert_eq!(store.count_events().await.expect("count"), 4);
}

#[tokio::test]
async fn retention_on_the_memory_store() {
    check(&MemoryStore::new()).await;
}

/// Lists read escalations through the indexes: newest opening first, a
/// page at a time, the open ones alone through their own index; closing an
/// escalation takes it out of the open index; records written before the
/// indexes existed get them once.
async fn check_indexes(store: &dyn EventStore) {
    let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("now")
        .with_timezone(&Utc);
    let at = |hours: i64| now - TimeDelta::hours(hours);
    // e-0 is the newest; e-1 and e-3 are closed.
    let mut records = Vec::new();
    for i in 0..5i64 {
        let mut r = escalation(&format!("e-{i}"), None, at(i));
        if i % 2 == 1 {
            r.escalation.status = EscalationStatus::Resolved;
            r.closed_at = Some(now);
        }
        records.push(r);
    }
    for r in &records {
        store.put_escalation(r).await.expect("put");
    }
    let ids = |page: &posbon_store::EscalationPage| -> Vec<String> {
        page.records
            .iter()
            .map(|(_, r)| r.escalation.id.clone())
            .collect()
    };
    let first = store
        .escalations_page(EscalationIndex::All, None, 2)
        .await
        .expect("page");
    assert_eq!(ids(&first), ["e-0", "e-1"]);
    let second = store
        .escalations_page(EscalationIndex::All, first.next.as_deref(), 2)
        .await
        .expect("page");
    assert_eq!(ids(&second), ["e-2", "e-3"]);
    // Continuing after one record of a page.
    let after_e2 = second.records[0].0.clone();
    let rest = store
        .escalations_page(EscalationIndex::All, Some(&after_e2), 10)
        .await
        .expect("page");
    assert_eq!(ids(&rest), ["e-3", "e-4"]);
    assert!(rest.next.is_none());
    // Opened before e-2: e-3 and e-4.
    let before = EscalationIndex::All.position_before(records[2].escalation.opened_at);
    let older = store
        .escalations_page(EscalationIndex::All, Some(&before), 10)
        .await
        .expect("page");
    assert_eq!(ids(&older), ["e-3", "e-4"]);

    let open: Vec<String> = store
        .open_escalations()
        .await
        .expect("open")
        .into_iter()
        .map(|r| r.escalation.id)
        .collect();
    assert_eq!(open, ["e-0", "e-2", "e-4"]);
    let mut closing = records[2].clone();
    closing.escalation.status = EscalationStatus::FalseAlarm;
    closing.closed_at = Some(now);
    store.put_escalation(&closing).await.expect("close");
    let open = store
        .escalations_page(EscalationIndex::Open, None, 10)
        .await
        .expect("open");
    assert_eq!(ids(&open), ["e-0", "e-4"]);

    // A store from before the indexes: the records without their entries.
    let (start, end) = posbon_store::keys::prefix_range(b"xt");
    store.delete_range(&start, &end).await.expect("drop");
    let (start, end) = posbon_store::keys::prefix_range(b"xo");
    store.delete_range(&start, &end).await.expect("drop");
    store.delete_keys(vec![b"xi".to_vec()]).await.expect("drop");
    let empty = store
        .escalations_page(EscalationIndex::All, None, 10)
        .await
        .expect("page");
    assert!(empty.records.is_empty());
    assert_eq!(store.ensure_escalation_indexes().await.expect("index"), 5);
    assert_eq!(store.ensure_escalation_indexes().await.expect("once"), 0);
    let all = store
        .escalations_page(EscalationIndex::All, None, 10)
        .await
        .expect("page");
    assert_eq!(ids(&all), ["e-0", "e-1", "e-2", "e-3", "e-4"]);
    let open = store
        .escalations_page(EscalationIndex::Open, None, 10)
        .await
        .expect("open");
    assert_eq!(ids(&open), ["e-0", "e-4"]);
}

#[tokio::test]
async fn escalation_indexes_on_the_memory_store() {
    check_indexes(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_indexes_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("dir");
    check_indexes(&EmbeddedStore::open(dir.path()).expect("open")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_indexes_on_tikv() {
    let server = TestServer::with_splits(vec![b"xo".to_vec(), b"xt".to_vec()])
        .await
        .expect("test server");
    let store = TikvStore::connect(&TikvConfig::new([server.pd_endpoint()]), None)
        .await
        .expect("connect");
    check_indexes(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("dir");
    check(&EmbeddedStore::open(dir.path()).expect("open")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_tikv() {
    let server = TestServer::with_splits(vec![b"e".to_vec(), b"i".to_vec(), b"t".to_vec()])
        .await
        .expect("test server");
    let store = TikvStore::connect(&TikvConfig::new([server.pd_endpoint()]), None)
        .await
        .expect("connect");
    check(&store).await;
}

/// A new pseudonym key rolled in: the stored flags are lifted to it and join
/// the new ones again; a dry run writes nothing; a flag of a key not in the
/// ring is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_pseudonyms_are_lifted_to_a_new_key() {
    use posbon_model::{Event, PseudonymKeys};
    use posbon_store::pseudonyms::rekey_pseudonyms;
    let dir = tempfile::tempdir().expect("dir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let old_keys = PseudonymKeys::single("k1", b"the-first-key-of-32-characters!!").expect("k1");
    let new_keys = PseudonymKeys::parse(
        "k2 the-second-key-of-32-characters!\nk1 the-first-key-of-32-characters!!\n",
        32,
    )
    .expect("ring");
    let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .expect("now")
        .with_timezone(&Utc);
    let flag = |id: &str, keys: &PseudonymKeys, card: &str| {
        let mut e = event(FRAUD, id, now - TimeDelta::days(3));
        if let Event::FraudFlag(f) = &mut e.event {
            f.replace_account_ref(keys.pseudonymise(card));
        }
        e
    };
    let mut foreign = flag("f-foreign", &old_keys, "x");
    if let Event::FraudFlag(f) = &mut foreign.event {
        f.replace_account_ref("hmac2:k7:0123456789abcdef0123456789abcdef".into());
    }
    store
        .put_events(&[
            flag("f-old", &old_keys, "8600 0000 0000 0001"),
            flag("f-new", &new_keys, "8600 0000 0000 0001"),
            foreign,
        ])
        .await
        .expect("put");
    let account = |e: Option<EnrichedEvent>| match e.expect("stored").event {
        Event::FraudFlag(f) => f.account_ref,
        _ => panic!("not a flag"),
    };
    let dry = rekey_pseudonyms(&store, &new_keys, true)
        .await
        .expect("dry");
    assert_eq!((dry.flags, dry.lifted, dry.unknown_key), (3, 1, 1));
    assert_ne!(
        account(store.get_event("f-old").await.expect("get")),
        account(store.get_event("f-new").await.expect("get"))
    );
    let done = rekey_pseudonyms(&store, &new_keys, false)
        .await
        .expect("rekey");
    assert_eq!(done.lifted, 1);
    let old = account(store.get_event("f-old").await.expect("get"));
    assert!(old.starts_with("hmac2:k2:"), "{old}");
    assert_eq!(
        old,
        account(store.get_event("f-new").await.expect("get")),
        "they join"
    );
    let by_time = store
        .events_in_time(now - TimeDelta::days(10), now)
        .await
        .expect("scan");
    let in_time_order = by_time
        .into_iter()
        .find(|e| e.event.id() == "f-old")
        .expect("f-old in time order");
    assert_eq!(
        account(Some(in_time_order)),
        old,
        "both copies are rewritten"
    );
    let again = rekey_pseudonyms(&store, &new_keys, false)
        .await
        .expect("again");
    assert_eq!(again.lifted, 0, "idempotent");
}
