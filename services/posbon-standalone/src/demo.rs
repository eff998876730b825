//! The demo's event stream: the simulator's events, published to
//! `posbon.ingest.<kind>` as a producer would, in accelerated time.
//!
//! The stream starts `history_days + 1` days before now. The history is
//! published as fast as ingest takes it, so the escalator has baselines; the
//! last day is replayed in `day_minutes` of wall time, ending at the present;
//! after that the stream follows real time. Event times are therefore never in
//! the future.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use posbon_bus::subjects::ingest_subject;
use posbon_bus::{Bus, Headers, OutgoingMessage};
use posbon_sim::{EventOptions, EventStream, SimBody, SimRegistry};
use tokio_util::sync::CancellationToken;

use crate::DemoConfig;

/// Events per published message (a JSON array, like a batching producer).
const PER_MESSAGE: usize = 200;

/// Publishes the demo stream until `shutdown`.
/// `history_loaded` is sent when the history has been published (before the
/// live day starts).
pub(crate) async fn run(
    config: &DemoConfig,
    bus: Arc<dyn Bus>,
    history_loaded: tokio::sync::oneshot::Sender<()>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut history_loaded = Some(history_loaded);
    anyhow::ensure!(
        config.day_minutes > 0.0 && config.day_minutes.is_finite(),
        "demo.day_minutes: must be a positive number"
    );
    let city = posbon_sim::city_registry(&posbon_sim::CityOptions::default())?;
    let sim = Arc::new(SimRegistry::from_generated(&city)?);
    let now = Utc::now();
    let live_start = now - TimeDelta::days(1);
    let start = live_start - TimeDelta::days(i64::from(config.history_days));
    let options = EventOptions {
        seed: config.seed,
        rate_per_hour: config.rate_per_hour,
        // History, the live day, then a year in real time.
        duration: TimeDelta::days(i64::from(config.history_days) + 1 + 365),
        start: start.fixed_offset(),
        bad_fraction: 0.0,
        situations: Default::default(),
    };
    let stream = EventStream::new(sim, &options)?;
    let speed = 1440.0 / config.day_minutes;
    let wall_start = tokio::time::Instant::now();
    let subject = ingest_subject("demo")?;
    let mut batch: Vec<String> = Vec::with_capacity(PER_MESSAGE);
    let mut history_done = false;
    let mut published = 0u64;
    for item in stream {
        if shutdown.is_cancelled() {
            break;
        }
        if !matches!(item.body, SimBody::Valid { .. }) {
            continue;
        }
        let at = item.at.with_timezone(&Utc);
        if at >= live_start {
            if !history_done {
                history_done = true;
                flush(&*bus, &subject, &mut batch).await?;
                tracing::info!(
                    events = published,
                    "demo history loaded; the live day begins"
                );
                if let Some(tx) = history_loaded.take() {
                    let _ = tx.send(());
                }
            }
            // When this event is due on the wall clock.
            let due = if at <= now {
                let offset = (at - live_start).num_milliseconds() as f64 / speed;
                wall_start + Duration::from_millis(offset.max(0.0) as u64)
            } else {
                let lag = Duration::from_secs_f64(config.day_minutes * 60.0);
                wall_start + lag + (at - now).to_std().unwrap_or_default()
            };
            if due > tokio::time::Instant::now() {
                flush(&*bus, &subject, &mut batch).await?;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(due) => {}
                }
            }
        }
        batch.push(item.line);
        published += 1;
        if batch.len() >= PER_MESSAGE {
            flush(&*bus, &subject, &mut batch).await?;
        }
    }
    flush(&*bus, &subject, &mut batch).await?;
    Ok(())
}

async fn flush(bus: &dyn Bus, subject: &str, batch: &mut Vec<String>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut body = String::with_capacity(batch.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push('[');
    body.push_str(&batch.join(","));
    body.push(']');
    batch.clear();
    let message = OutgoingMessage::new(subject, Headers::new(), Bytes::from(body));
    for result in bus.publish_many(vec![message]).await {
        result?;
    }
    Ok(())
}

/// The demo's operator: the user the printed login link opens the page as.
pub const DEMO_OPERATOR: &str = "demo-operator";

/// The demo operator's role: supervisor, so that the page shows every view
/// (the map and feed with the escalation actions, the daily report, SQL).
pub(crate) const DEMO_ROLE: posbon_auth::Role = posbon_auth::Role::Supervisor;

/// How to open the demo's page.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    /// The user.
    pub user: String,
    /// A one-time login code (`/login?code=`).
    pub code: String,
    /// The file with the user's password (mode 0600).
    pub password_file: std::path::PathBuf,
}

/// Makes sure the demo operator exists with `DEMO_ROLE` (national scope, a
/// generated password kept in `<data>/demo-operator.password`, mode 0600;
/// one left with another role by an older demo is made again) and makes a
/// one-time login link for it.
pub async fn demo_login(
    auth: &posbon_auth::Auth,
    data: &std::path::Path,
) -> anyhow::Result<DemoLogin> {
    let password_file = data.join(format!("{DEMO_OPERATOR}.password"));
    let existing = auth.identities().user(DEMO_OPERATOR).await?;
    if existing
        .as_ref()
        .is_some_and(|u| u.role != DEMO_ROLE || !u.scope.is_empty())
    {
        auth.identities().remove_user(DEMO_OPERATOR).await?;
    }
    if auth.identities().user(DEMO_OPERATOR).await?.is_none() {
        let password = posbon_auth::secret::random_hex(12);
        if password_file.exists() {
            std::fs::remove_file(&password_file)?;
        }
        posbon_auth::secret::write_secret_file(&password_file, &password)?;
        auth.identities()
            .add_user(DEMO_OPERATOR, DEMO_ROLE, Vec::new(), &password)
            .await?;
    }
    let code = auth
        .identities()
        .create_login_link(DEMO_OPERATOR, posbon_auth::http::DEMO_LINK_TTL)
        .await?;
    Ok(DemoLogin {
        user: DEMO_OPERATOR.to_owned(),
        code,
        password_file,
    })
}
