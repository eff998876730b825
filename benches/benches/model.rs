//! `parse_event` (parse + full validation) on typical ~400-byte events of each
//! kind, plus an invalid event that takes the error-reporting slow path.
//!
//! Run: `cargo bench -p posbon-benches --bench model`. Target: at least 500k
//! valid events/s on one core (aim: 1M).

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use posbon_model::{Limits, parse_event};

const INCIDENT: &str = r#"{"kind":"incident","id":"iiv-tsh-2026-0001842","occurred_at":"2026-10-14T21:40:00+05:00","location":{"lat":41.2856,"lng":69.2034,"accuracy_m":25},"source":"iiv-102-dispatch","attributes":{"district_name":"Chilonzor","report_channel":"102"},"category":"robbery","severity":4,"flags":{"victim_woman":true,"offender_youth":true},"status":"confirmed","description":"Sumka tortib olingan, Chilonzor 9-kvartal, bekat yonida."}"#;

const CAMERA_ALERT: &str = r#"{"kind":"camera_alert","id":"cam-tsh-yunusobod-0412-20261015T013205Z","occurred_at":"2026-10-15T06:32:05+05:00","location":{"lat":41.3662,"lng":69.2881,"accuracy_m":5},"source":"safe-city-va","attributes":{"zone":"bozor-kirish"},"camera_id":"tsh-yunusobod-0412","detection":"drug_handoff","confidence":0.87,"model":"va-detector/3.4.1","snapshot_uri":"s3://safe-city-snapshots/2026/10/15/tsh-yunusobod-0412/013205.jpg"}"#;

const FRAUD_FLAG: &str = r#"{"kind":"fraud_flag","id":"bank-af-7f3c9e21-5b0d-4c1e-9a77-1f2e3d4c5b6a","occurred_at":"2026-10-16T10:05:12.250+05:00","location":{"lat":41.3275,"lng":69.2817,"accuracy_m":1500.5},"source":"bank-x-antifraud","attributes":{"merchant":"online-shop-uz","mcc":"5732"},"scheme":"scam_call","channel":"phone_call","amount_uzs":12500000.5,"payment_system":"humo","account_ref":"9860 **** **** 4417","detector_score":0.93}"#;

/// Three problems: unknown field, out-of-range latitude, severity of the wrong type.
const INVALID: &str = r#"{"kind":"incident","id":"iiv-tsh-2026-0001843","occurred_at":"2026-10-14T21:40:00+05:00","location":{"lat":91.2856,"lng":69.2034},"source":"iiv-102-dispatch","lattitude":41.2,"category":"robbery","severity":"4","status":"confirmed","description":"Sumka tortib olingan, Chilonzor 9-kvartal, bekat yonida, kechqurun."}"#;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("valid")
        .to_utc()
}

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let now = now();
    let mut group = c.benchmark_group("parse_event");
    group.throughput(Throughput::Elements(1));
    for (name, doc, valid) in [
        ("incident", INCIDENT, true),
        ("camera_alert", CAMERA_ALERT, true),
        ("fraud_flag", FRAUD_FLAG, true),
        ("invalid_3_errors", INVALID, false),
    ] {
        let bytes = doc.as_bytes();
        let result = parse_event(bytes, &limits, now);
        assert_eq!(result.is_ok(), valid, "{name}: {result:?}");
        println!("payload {name}: {} bytes", bytes.len());
        group.bench_function(name, |b| {
            b.iter(|| parse_event(black_box(bytes), &limits, now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
