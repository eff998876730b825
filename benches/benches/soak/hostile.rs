//! The hostile client: oversized bodies, half-sent headers, a costly query,
//! a feed replay from 0 and an oversized WebSocket frame, and the answers
//! it got.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use posbon_service::client::{Endpoint, EventSource, post_json, request};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The hostile client's answers: case → status → count (and the slowest).
pub(super) type Answers = Arc<Mutex<BTreeMap<String, (u64, f64)>>>;

fn answer(answers: &Answers, case: &str, outcome: String, started: Instant) {
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let mut answers = answers.lock().expect("lock");
    let entry = answers.entry(format!("{case}: {outcome}")).or_default();
    entry.0 += 1;
    entry.1 = entry.1.max(ms);
}

pub(super) async fn hostile(
    port: u16,
    token: String,
    producer: String,
    answers: Answers,
    stop: Arc<AtomicBool>,
) {
    let to = Endpoint::local(port).with_token(Some(token.clone()));
    let as_producer = Endpoint::local(port).with_token(Some(producer));
    let zeros = format!("[{}]", vec!["0"; 40_000].join(","));
    // 400 connections that send half a header and wait.
    let mut half = Vec::new();
    let opened = Instant::now();
    for _ in 0..400 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = c
                .write_all(b"GET /v1/escalations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
                .await;
            half.push(c);
        }
    }
    let half_task = {
        let answers = answers.clone();
        tokio::spawn(async move {
            let mut closed = 0;
            for mut c in half {
                let mut buf = [0u8; 256];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(60), c.read(&mut buf)).await
                {
                    closed += 1;
                }
            }
            answer(
                &answers,
                "400 half-sent headers",
                format!("{closed} closed by the server"),
                opened,
            );
        })
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let r = request(
            as_producer.clone(),
            "POST",
            "/v1/events",
            Some("application/json"),
            zeros.as_bytes(),
        )
        .await;
        answer(
            &answers,
            "40,000-item array",
            r.map_or_else(|e| e.to_string(), |r| r.status.to_string()),
            started,
        );

        let started = Instant::now();
        let r = post_json(to.clone(), "/v1/sql", &json!({"query": "SELECT h3_cell_to_children(h3_latlng_to_cell(41.3 + value * 0.001, 69.2, 5), 11) FROM generate_series(1, 100000)"})).await;
        answer(
            &answers,
            "H3 query of gigabytes",
            r.map_or_else(|e| e.to_string(), |r| r.status.to_string()),
            started,
        );

        let started = Instant::now();
        let chain = format!("SELECT {}1", "ARRAY[".repeat(30));
        let r = post_json(to.clone(), "/v1/sql", &json!({ "query": chain })).await;
        answer(
            &answers,
            "SQL of 2^30 parse steps",
            r.map_or_else(|e| e.to_string(), |r| r.status.to_string()),
            started,
        );

        let started = Instant::now();
        let feed = EventSource::open(to.clone(), "/v1/feed?since=0").await;
        answer(
            &answers,
            "feed replay from 0",
            feed.map_or_else(|e| e.to_string(), |_| "200".to_owned()),
            started,
        );

        let started = Instant::now();
        answer(
            &answers,
            "8 KiB WebSocket frame",
            big_frame(port, &token).await,
            started,
        );

        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let _ = half_task.await;
}

async fn big_frame(port: u16, token: &str) -> String {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://127.0.0.1:{port}/v1/feed/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(req).await else {
        return "not connected".to_owned();
    };
    let big = "x".repeat(8192);
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Text(big.into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = socket.next().await {
            if m.is_err() || matches!(m, Ok(tokio_tungstenite::tungstenite::Message::Close(_))) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if closed {
        "closed".to_owned()
    } else {
        "still open".to_owned()
    }
}
