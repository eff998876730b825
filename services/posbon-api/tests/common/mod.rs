//! What the API's test files share: the simulated city, its escalations,
//! the configuration, and publishing an opening on ALERTS.

use posbon_model::Span;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use posbon_api::ApiConfig;
use posbon_bus::subjects::{Place, alert_subject};
use posbon_bus::{Bus, Headers};
use posbon_geo::Registry;
use posbon_model::{Escalation, EscalationStatus, RiskLevel};

/// The API's settings for tests: re-notification after
/// `renotify_after_secs`, checked every second.
pub(crate) fn config(renotify_after_secs: i64) -> ApiConfig {
    ApiConfig {
        listen: "127.0.0.1:0".into(),
        http: Default::default(),
        nats_urls: vec![],
        registry: None,
        renotify_after: Span::from_secs(renotify_after_secs),
        renotify_check: Span::from_secs(1),
        feed_keepalive: Span::from_secs(15),
        max_list: 1000,
        max_feed_clients: 2048,
        max_feed_clients_per_caller: 32,
        max_feed_replay: 10_000,
    }
}

/// The simulated Tashkent registry, loaded once.
pub(crate) fn registry() -> Arc<Registry> {
    static REGISTRY: std::sync::OnceLock<Arc<Registry>> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| Arc::new(posbon_sim::load_registry(None).expect("city registry")))
        .clone()
}

/// The `episode`-th intensity escalation of mahalla `mahalla_n`, opened on
/// 2026-11-28 `episode` minutes after 09:00 UTC.
pub(crate) fn escalation(
    mahalla_n: usize,
    episode: u64,
    level: RiskLevel,
    evidence: Vec<String>,
) -> Escalation {
    let reg = registry();
    let m = &reg.mahallas()[mahalla_n];
    let t = Utc
        .with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("time")
        + chrono::TimeDelta::minutes(episode as i64);
    Escalation {
        id: Escalation::deterministic_id(&m.id, "intensity", episode),
        mahalla_id: m.id.clone(),
        district_id: m.district_id.clone(),
        region_id: m.region_id.clone(),
        level,
        previous_level: RiskLevel::Normal,
        score: 5.0,
        rule: "intensity".into(),
        measure: None,
        counts: Default::default(),
        hot_cells: vec![],
        evidence,
        window_start: t,
        window_end: t,
        opened_at: t,
        status: EscalationStatus::Open,
    }
}

/// Publishes the opening of `e` on ALERTS; its sequence.
pub(crate) async fn publish_escalation(bus: &dyn Bus, e: &Escalation) -> u64 {
    let subject =
        alert_subject(Place::new(&e.region_id, &e.district_id, &e.mahalla_id)).expect("subject");
    bus.publish(
        &subject,
        Headers::new().with_msg_id(&e.id),
        Bytes::from(serde_json::to_vec(e).expect("json")),
    )
    .await
    .expect("publish")
    .sequence
}
