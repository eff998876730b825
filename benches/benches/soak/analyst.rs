//! An analyst: SQL queries in a loop, their latencies and how many were
//! refused as busy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use posbon_service::client::{Endpoint, post_json};
use serde_json::json;

pub(super) async fn analyst(
    port: u16,
    token: String,
    latencies: Arc<Mutex<Vec<f64>>>,
    busy: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token));
    let queries = [
        "SELECT mahalla_id, count(*) AS n FROM events WHERE occurred_at > now() - INTERVAL '10 minutes' GROUP BY mahalla_id ORDER BY n DESC LIMIT 10",
        "SELECT category, count(*) FROM incidents WHERE occurred_at > now() - INTERVAL '1 hour' GROUP BY category",
        "SELECT count(*) FROM events",
    ];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match post_json(
            to.clone(),
            "/v1/sql",
            &json!({"query": queries[i % queries.len()]}),
        )
        .await
        {
            Ok(r) if r.status == 200 => latencies
                .lock()
                .expect("lock")
                .push(started.elapsed().as_secs_f64() * 1e3),
            Ok(r) if r.status == 503 => {
                busy.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => eprintln!("sql: {} {}", r.status, String::from_utf8_lossy(&r.body)),
            Err(e) => eprintln!("sql: {e}"),
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
