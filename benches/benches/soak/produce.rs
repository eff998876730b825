//! The event load: simulated events in real time, half over HTTP and half
//! over NATS, and what the system said it took.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use posbon_service::client::{Endpoint, request};
use serde_json::Value;

/// Events sent and how many the system said it took.
#[derive(Default)]
pub(super) struct Produced {
    pub(super) http_accepted: AtomicU64,
    pub(super) http_refused: AtomicU64,
    /// Batches whose answer never came (the client gave up): the server may
    /// or may not have taken them.
    pub(super) http_unknown: AtomicU64,
    pub(super) nats_published: AtomicU64,
    pub(super) nats_failed: AtomicU64,
}

fn kind_of(line: &str) -> &'static str {
    if line.contains("\"kind\":\"camera_alert\"") {
        "camera_alert"
    } else if line.contains("\"kind\":\"fraud_flag\"") {
        "fraud_flag"
    } else {
        "incident"
    }
}

/// Generates simulated events in real time at `rate` per second until
/// `stop`: even lines over HTTP, odd lines over NATS, flushed every 100 ms.
pub(super) async fn produce(
    port: u16,
    producer: String,
    nats: async_nats::Client,
    rate: u64,
    seconds: u64,
    produced: Arc<Produced>,
    stop: Arc<AtomicBool>,
) {
    let city = posbon_sim::city_registry(&posbon_sim::CityOptions::default()).expect("city");
    let sim = Arc::new(posbon_sim::SimRegistry::from_generated(&city).expect("sim"));
    let start = chrono::Utc::now().with_timezone(&posbon_sim::tashkent_offset());
    // The simulator makes at most 10 million events an hour per stream:
    // several streams (other seeds, so other ids) make the rate.
    let per_hour = rate as f64 * 3600.0;
    let count = (per_hour / 9e6).ceil().max(1.0) as u64;
    let mut streams: Vec<(posbon_sim::EventStream, Option<posbon_sim::SimItem>)> = (0..count)
        .map(|k| {
            let options = posbon_sim::EventOptions {
                seed: 7 + k,
                rate_per_hour: per_hour / count as f64,
                duration: chrono::TimeDelta::seconds(i64::try_from(seconds).unwrap_or(600) + 60),
                start,
                bad_fraction: 0.0,
                situations: Default::default(),
            };
            let mut stream = posbon_sim::EventStream::new(sim.clone(), &options).expect("stream");
            let first = stream.next();
            (stream, first)
        })
        .collect();
    let js = async_nats::jetstream::new(nats);
    let to = Endpoint::local(port).with_token(Some(producer));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = chrono::Utc::now();
        let mut http = String::new();
        let mut by_kind: BTreeMap<&'static str, String> = BTreeMap::new();
        for (stream, next) in &mut streams {
            while let Some(item) = next.take() {
                if item.at > now {
                    *next = Some(item);
                    break;
                }
                if n.is_multiple_of(2) {
                    http.push_str(&item.line);
                    http.push('\n');
                } else {
                    let body = by_kind.entry(kind_of(&item.line)).or_default();
                    body.push_str(&item.line);
                    body.push('\n');
                }
                n += 1;
                *next = stream.next();
            }
        }
        // HTTP in batches of at most 5,000 lines, in the background.
        let lines: Vec<&str> = http.lines().collect();
        for chunk in lines.chunks(5000) {
            let body = chunk.join("\n");
            let to = to.clone();
            let produced = produced.clone();
            tokio::spawn(async move {
                match request(
                    to,
                    "POST",
                    "/v1/events",
                    Some("application/x-ndjson"),
                    body.as_bytes(),
                )
                .await
                {
                    Ok(r) if r.status == 200 => {
                        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                        let accepted = v["accepted"].as_u64().unwrap_or(0)
                            + v["duplicates"].as_u64().unwrap_or(0);
                        produced
                            .http_accepted
                            .fetch_add(accepted, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!(
                            "events refused: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        );
                        produced
                            .http_refused
                            .fetch_add(chunk_len(&body), Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("events not sent: {e}");
                        produced
                            .http_refused
                            .fetch_add(chunk_len(&body), Ordering::Relaxed);
                    }
                }
            });
        }
        for (kind, body) in by_kind {
            let lines = chunk_len(&body);
            match js
                .publish(format!("posbon.ingest.{kind}"), Bytes::from(body))
                .await
            {
                Ok(ack) => match ack.await {
                    Ok(_) => produced.nats_published.fetch_add(lines, Ordering::Relaxed),
                    Err(e) => {
                        // No ack in time: the stream may or may not hold it;
                        // a refusal (INGEST full) is counted as refused.
                        if e.to_string().contains("maximum") {
                            produced.nats_failed.fetch_add(lines, Ordering::Relaxed)
                        } else {
                            produced.http_unknown.fetch_add(lines, Ordering::Relaxed)
                        }
                    }
                },
                Err(_) => produced.nats_failed.fetch_add(lines, Ordering::Relaxed),
            };
        }
    }
}

fn chunk_len(body: &str) -> u64 {
    body.lines().filter(|l| !l.trim().is_empty()).count() as u64
}
