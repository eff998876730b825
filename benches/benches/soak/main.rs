//! Load and soak test: `posbon standalone` (the release binary, on the
//! embedded store, with a real nats-server) under the load of a busy day
//! and a hostile client at once, for a bounded time.
//!
//! ```sh
//! cargo build --release -p posbon
//! eval "$(scripts/install-test-deps.sh)"
//! cargo bench -p posbon-benches --bench soak     # 10 minutes
//! POSBON_SOAK_SECS=120 cargo bench -p posbon-benches --bench soak
//! ```
//!
//! Load, on loopback only:
//! - `POSBON_SOAK_SUBSCRIBERS` (1,000) live-feed clients, half SSE and half
//!   WebSocket, spread over 40 identities;
//! - `POSBON_SOAK_RATE` (10,000) simulated events per second, half over
//!   HTTP (`POST /v1/events`, NDJSON) and half over NATS
//!   (`posbon.ingest.<kind>`), with the simulator's patterns so that
//!   escalations open;
//! - 4 analysts running SQL in a loop;
//! - one hostile client repeating: a 40,000-item array, 400 half-sent
//!   headers, an H3 query that would allocate gigabytes, a query that would
//!   take 2^30 parse steps, a feed replay from 0, an 8 KiB WebSocket frame.
//!
//! It prints events accepted vs stored, escalations opened vs delivered to
//! every subscriber, feed delivery latency (from the escalation's arrival on
//! NATS to each subscriber), SQL latency, the server's resident memory over
//! time and the hostile client's answers, and exits non-zero when an event
//! or an escalation was lost.
//!
//! The parts: `server` starts `posbon standalone` and asks it for tokens
//! and its stored count; `feed` holds the live-feed subscribers;
//! `produce` the event load; `analyst` the SQL loop; `hostile` the
//! hostile client. `main` here starts them, samples the server's memory and
//! prints the results.

mod analyst;
mod feed;
mod hostile;
mod produce;
mod server;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;

use analyst::analyst;
use feed::{Arrivals, Seen, sse_subscriber, ws_subscriber};
use hostile::{Answers, hostile};
use produce::{Produced, produce};
use server::{rss_mib, start_server, stored_events, token};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = env_or("POSBON_SOAK_SECS", 600);
    let subscribers = usize::try_from(env_or("POSBON_SOAK_SUBSCRIBERS", 1000)).unwrap_or(1000);
    let rate = env_or("POSBON_SOAK_RATE", 10_000);
    let nats_server = posbon_testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let server = start_server(dir.path(), &nats_server.url()).await;
    let pid = server.child.id();
    let port = server.port;
    println!(
        "soak: {seconds} s, {subscribers} feed subscribers, {rate} events/s, 4 analysts, 1 hostile client; posbon standalone pid {pid} on 127.0.0.1:{port}"
    );

    let producer = token(&server, "soak-producer", "producer").await;
    let analyst_token = token(&server, "soak-analyst", "analyst").await;
    let mut feed_tokens = Vec::new();
    for i in 0..40 {
        feed_tokens.push(token(&server, &format!("soak-desk-{i}"), "operator").await);
    }
    let hostile_token = token(&server, "soak-hostile", "supervisor").await;

    // The reference: when each escalation reached NATS.
    let nats = async_nats::connect(nats_server.url()).await.expect("nats");
    let arrivals: Arrivals = Arc::default();
    {
        let mut alerts = nats.subscribe("posbon.alerts.>").await.expect("subscribe");
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(m) = alerts.next().await {
                let updated = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Posbon-Alert-Type"))
                    .is_some_and(|v| v.as_str() == "updated");
                if updated {
                    continue;
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&m.payload)
                    && let Some(id) = v["id"].as_str()
                {
                    arrivals
                        .lock()
                        .expect("lock")
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
            }
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen {
        opened: vec![HashSet::new(); subscribers],
        ..Seen::default()
    }));
    let mut subs = Vec::new();
    for slot in 0..subscribers {
        let token = feed_tokens[slot % feed_tokens.len()].clone();
        let (seen, arrivals, stop) = (seen.clone(), arrivals.clone(), stop_subscribers.clone());
        subs.push(if slot % 2 == 0 {
            tokio::spawn(sse_subscriber(port, token, slot, seen, arrivals, stop))
        } else {
            tokio::spawn(ws_subscriber(port, token, slot, seen, arrivals, stop))
        });
        if slot % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subscribed_at = Instant::now();
    let connected = subscribers as u64 - seen.lock().expect("lock").failures;
    println!("subscribers connected: {connected} of {subscribers}");

    let produced = Arc::new(Produced::default());
    let producer_task = tokio::spawn(produce(
        port,
        producer.clone(),
        nats.clone(),
        rate,
        seconds,
        produced.clone(),
        stop.clone(),
    ));
    let sql_latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sql_busy = Arc::new(AtomicU64::new(0));
    let mut analysts = Vec::new();
    for _ in 0..4 {
        analysts.push(tokio::spawn(analyst(
            port,
            analyst_token.clone(),
            sql_latencies.clone(),
            sql_busy.clone(),
            stop.clone(),
        )));
    }
    let answers: Answers = Arc::default();
    let hostile_task = tokio::spawn(hostile(
        port,
        hostile_token,
        producer.clone(),
        answers.clone(),
        stop.clone(),
    ));

    let started = Instant::now();
    let mut memory: Vec<(f64, f64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = started.elapsed().as_secs_f64();
        let rss = rss_mib(pid);
        memory.push((t, rss));
        let p = &produced;
        println!(
            "t={t:>5.0} s  rss {rss:>7.1} MiB  http accepted {}  nats published {}  escalations {}",
            p.http_accepted.load(Ordering::Relaxed),
            p.nats_published.load(Ordering::Relaxed),
            arrivals.lock().expect("lock").len()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer_task.await;
    for a in analysts {
        let _ = a.await;
    }
    // Let in-flight HTTP batches finish, then wait for the store to catch up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = produced.http_accepted.load(Ordering::Relaxed)
        + produced.nats_published.load(Ordering::Relaxed);
    let unknown = produced.http_unknown.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = stored_events(port, &analyst_token).await;
        if stored >= accepted + unknown {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Escalations opened while everyone listened, delivered to each.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_subscribers.store(true, Ordering::Relaxed);
    for s in subs {
        let _ = s.await;
    }
    let _ = hostile_task.await;
    let opened: HashSet<String> = {
        let arrivals = arrivals.lock().expect("lock");
        arrivals
            .iter()
            .filter(|(_, at)| **at >= subscribed_at)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let seen = seen.lock().expect("lock");
    let connected_slots: Vec<&HashSet<String>> = seen.opened.iter().collect();
    let fewest = connected_slots
        .iter()
        .map(|s| s.intersection(&opened).count())
        .min()
        .unwrap_or(0);
    let mut latencies = seen.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let mut sql = sql_latencies.lock().expect("lock").clone();
    sql.sort_by(f64::total_cmp);

    println!();
    println!("== soak results ({seconds} s)");
    let lost = stored < accepted || stored > accepted + unknown;
    println!(
        "events accepted {accepted} (http {}, nats {}), refused {} (http) + {} (nats), no answer {unknown} (gave up waiting: may or may not be stored), stored {stored}: {}",
        produced.http_accepted.load(Ordering::Relaxed),
        produced.nats_published.load(Ordering::Relaxed),
        produced.http_refused.load(Ordering::Relaxed),
        produced.nats_failed.load(Ordering::Relaxed),
        if stored == accepted {
            "equal"
        } else if !lost {
            "every accepted event stored (and some of those without an answer)"
        } else {
            "LOST OR EXTRA EVENTS"
        }
    );
    println!(
        "escalations opened {} ; delivered to every one of {} subscribers: at least {} each: {} ; subscriber failures {}",
        opened.len(),
        subscribers,
        fewest,
        if fewest == opened.len() {
            "all"
        } else {
            "SOME MISSING"
        },
        seen.failures
    );
    println!(
        "feed delivery latency (NATS arrival -> subscriber): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} deliveries",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "sql latency: p50 {:.1} ms, p99 {:.1} ms over {} queries; {} refused as busy",
        percentile(&sql, 0.5),
        percentile(&sql, 0.99),
        sql.len(),
        sql_busy.load(Ordering::Relaxed)
    );
    let at = |frac: f64| {
        memory
            .get(((memory.len() as f64 - 1.0) * frac).round() as usize)
            .map_or(f64::NAN, |m| m.1)
    };
    let last_half: Vec<f64> = memory[memory.len() / 2..].iter().map(|m| m.1).collect();
    let (lo, hi) = last_half
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    println!(
        "resident memory: start {:.1} MiB, middle {:.1} MiB, end {:.1} MiB; last half {:.1}..{:.1} MiB ({:+.1}%)",
        at(0.0),
        at(0.5),
        at(1.0),
        lo,
        hi,
        (hi - lo) / lo * 100.0
    );
    println!("hostile client:");
    for (case, (count, slowest)) in answers.lock().expect("lock").iter() {
        println!("  {case} x{count} (slowest {slowest:.0} ms)");
    }
    if lost || fewest != opened.len() {
        std::process::exit(1);
    }
}
