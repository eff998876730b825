//! The live-feed subscribers, over SSE and WebSocket, and what they saw:
//! the escalations opened, and how long each took from NATS to them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use posbon_service::client::{Endpoint, EventSource};
use serde_json::Value;

pub(super) type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// What the subscribers saw: per subscriber, the opened escalations and
/// their delivery latencies.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) opened: Vec<HashSet<String>>,
    pub(super) latencies_ms: Vec<f64>,
    pub(super) failures: u64,
}

fn record_item(
    seen: &Mutex<Seen>,
    slot: usize,
    arrivals: &Arrivals,
    kind: &str,
    data: &Value,
    at: Instant,
) {
    if kind != "opened" {
        return;
    }
    let Some(id) = data["id"].as_str() else {
        return;
    };
    let reference = arrivals.lock().expect("lock").get(id).copied();
    let mut seen = seen.lock().expect("lock");
    if seen.opened[slot].insert(id.to_owned()) {
        let latency =
            reference.map_or(0.0, |r| at.saturating_duration_since(r).as_secs_f64() * 1e3);
        seen.latencies_ms.push(latency);
    }
}

pub(super) async fn sse_subscriber(
    port: u16,
    token: String,
    slot: usize,
    seen: Arc<Mutex<Seen>>,
    arrivals: Arrivals,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token));
    let mut source = match EventSource::open(to, "/v1/feed").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sse subscriber {slot}: {e}");
            seen.lock().expect("lock").failures += 1;
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let event = match tokio::time::timeout(Duration::from_millis(500), source.next()).await {
            Err(_) => continue,
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                eprintln!("sse subscriber {slot}: {e}");
                seen.lock().expect("lock").failures += 1;
                return;
            }
        };
        let at = Instant::now();
        if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
            record_item(&seen, slot, &arrivals, &event.event, &data, at);
        }
    }
}

pub(super) async fn ws_subscriber(
    port: u16,
    token: String,
    slot: usize,
    seen: Arc<Mutex<Seen>>,
    arrivals: Arrivals,
    stop: Arc<AtomicBool>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://127.0.0.1:{port}/v1/feed/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ws subscriber {slot}: {e}");
            seen.lock().expect("lock").failures += 1;
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let message = match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                if !stop.load(Ordering::Relaxed) {
                    seen.lock().expect("lock").failures += 1;
                }
                return;
            }
        };
        let at = Instant::now();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            record_item(&seen, slot, &arrivals, &kind, &v["data"], at);
        }
    }
    let _ = socket.close(None).await;
}
