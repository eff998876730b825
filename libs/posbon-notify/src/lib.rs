//! Notifications out: an escalation that opens, or climbs one tier because
//! nobody acknowledged it, pages the receivers its routes name.
//!
//! * **Receivers** ([`ReceiverConfig`]): a webhook (Alertmanager-compatible
//!   JSON signed with `X-Posbon-Signature: sha256=<hex HMAC-SHA256 of the
//!   body>`), Telegram's Bot API, e-mail over SMTP, and an SMS gateway over
//!   HTTP. `@inspector` as a recipient is the mahalla's `inspector_contact`
//!   from the registry.
//! * **Routes** ([`RouteConfig`]): matchers on region, district, mahalla,
//!   rule, lowest level and tier. Every matching route pages its receivers;
//!   a route without matchers takes every escalation. The tier matcher is how
//!   the re-notification chain pages the district and then the city.
//! * **Delivery** ([`Notifier::deliver`]): attempts with exponential backoff;
//!   an answer that cannot change (a 4xx, a missing contact) stops at once.
//!   The caller records each outcome in the escalation's history, which also
//!   deduplicates: a page already recorded for a receiver is not sent again.
//! * **Silences** are the caller's: a silenced escalation is recorded and
//!   shown, only not paged ([`Notifier::count_silenced`]).
//!
//! Metrics: `posbon_notifications_total{receiver,type,outcome}` (`delivered`,
//! `failed`, `silenced`), `posbon_notification_attempts_total{receiver,type,result}`
//! and `posbon_notification_seconds{type}` (from the first attempt to the
//! outcome).

pub mod config;
mod message;
pub mod send;

use posbon_model::Span;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use posbon_model::{Escalation, NotifyTier};
use posbon_telemetry::{CounterVec, HistogramVec, Metrics};

pub use config::{INSPECTOR, NotifyConfig, ReceiverConfig, RetryConfig, RouteConfig, SmtpTls};
pub use message::Page;
pub use send::{
    IDEMPOTENCY_HEADER, MIN_WEBHOOK_KEY, SIGNATURE_HEADER, SendError, TIMESTAMP_HEADER, signature,
};

use send::Transport;

/// The outcome of paging one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the receiver.
    Delivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// Not delivered: retries ran out or the answer could not change.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        reason: String,
    },
}

impl Outcome {
    /// A line for the escalation's history.
    pub fn note(&self, kind: &str) -> String {
        match self {
            Self::Delivered { attempts: 1 } => format!("delivered ({kind})"),
            Self::Delivered { attempts } => {
                format!("delivered ({kind}) after {attempts} attempts")
            }
            Self::Failed { attempts, reason } => {
                format!("not delivered ({kind}) after {attempts} attempts: {reason}")
            }
        }
    }
}

struct Receiver {
    name: String,
    kind: &'static str,
    transport: Transport,
    /// Pages sent to this receiver at once.
    permits: tokio::sync::Semaphore,
}

/// Pages one receiver gets at once: a gateway is not flooded by a burst.
pub const PAGES_PER_RECEIVER: usize = 4;

/// Routes and receivers, ready to page.
pub struct Notifier {
    receivers: Vec<Receiver>,
    routes: Vec<RouteConfig>,
    retry: RetryConfig,
    page_url: Option<String>,
    client: reqwest::Client,
    outcomes: CounterVec,
    attempts: CounterVec,
    seconds: HistogramVec,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "receivers",
                &self
                    .receivers
                    .iter()
                    .map(|r| (&r.name, r.kind))
                    .collect::<Vec<_>>(),
            )
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Checks `config`, reads its secrets and builds the receivers.
    pub fn new(config: &NotifyConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        config.validate()?;
        let timeout = config.retry.timeout.to_std();
        let ca_pem = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("notify.ca_file: cannot read {}: {e}", path.display())
            })?),
            None => None,
        };
        let receivers = config
            .receivers
            .iter()
            .map(|r| {
                Ok(Receiver {
                    name: r.name().to_owned(),
                    kind: r.kind(),
                    transport: Transport::new(r, timeout, ca_pem.as_deref())?,
                    permits: tokio::sync::Semaphore::new(PAGES_PER_RECEIVER),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client = reqwest_client(config, timeout)?;
        Ok(Self {
            receivers,
            routes: config.routes.clone(),
            retry: config.retry,
            page_url: config.page_url.clone(),
            client,
            outcomes: metrics.counter_vec(
                "posbon_notifications_total",
                "Pages of escalations to receivers, by outcome (delivered, failed, silenced)",
                &["receiver", "type", "outcome"],
            )?,
            attempts: metrics.counter_vec(
                "posbon_notification_attempts_total",
                "Attempts at delivering a page, by result (ok, error)",
                &["receiver", "type", "result"],
            )?,
            seconds: metrics.histogram_vec(
                "posbon_notification_seconds",
                "Time from the first attempt at a page to its outcome",
                &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
                &["type"],
            )?,
        })
    }

    /// Whether nothing is configured to be paged.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The time limit of one attempt at `receiver`: the configured timeout
    /// for each request it makes, and one more for connecting.
    fn attempt_limit(&self, receiver: &Receiver) -> Duration {
        self.retry.timeout.to_std() * (receiver.transport.requests_per_attempt() + 1)
    }

    /// The longest one [`Notifier::deliver`] can take once it holds its
    /// receiver: every attempt using its whole limit, with every backoff
    /// between.
    pub fn worst_case(&self) -> Duration {
        self.receivers
            .iter()
            .map(|receiver| {
                let mut total = Duration::ZERO;
                for attempt in 0..self.retry.attempts {
                    total += self.attempt_limit(receiver);
                    if attempt + 1 < self.retry.attempts {
                        total += self.backoff(attempt);
                    }
                }
                total
            })
            .max()
            .unwrap_or_default()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ms = self
            .retry
            .initial_backoff
            .millis()
            .saturating_mul(1i64 << attempt.min(20))
            .min(self.retry.max_backoff.millis());
        Span::from_millis(ms).to_std()
    }

    /// The receivers that `escalation` at tier `tier` pages, each once, in
    /// the order of the configuration.
    pub fn receivers_for(&self, escalation: &Escalation, tier: NotifyTier) -> Vec<&str> {
        let named: BTreeSet<&str> = self
            .routes
            .iter()
            .filter(|route| route.matches(escalation, tier))
            .flat_map(|route| route.receivers.iter().map(String::as_str))
            .collect();
        self.receivers
            .iter()
            .map(|r| r.name.as_str())
            .filter(|name| named.contains(name))
            .collect()
    }

    /// The type of receiver `name` (`webhook`, ...), `None` when unknown.
    pub fn kind_of(&self, name: &str) -> Option<&'static str> {
        self.receivers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.kind)
    }

    /// Counts a page that a silence held back.
    pub fn count_silenced(&self, receiver: &str) {
        let kind = self.kind_of(receiver).unwrap_or("unknown");
        self.outcomes
            .with_labels(&[receiver, kind, "silenced"])
            .inc();
    }

    /// Pages receiver `name` with `page`, retrying with backoff.
    pub async fn deliver(&self, name: &str, page: &Page) -> Outcome {
        let Some(receiver) = self.receivers.iter().find(|r| r.name == name) else {
            return Outcome::Failed {
                attempts: 0,
                reason: format!("no receiver is named {name:?}"),
            };
        };
        let Ok(_permit) = receiver.permits.acquire().await else {
            return Outcome::Failed {
                attempts: 0,
                reason: "the notifier is shutting down".to_owned(),
            };
        };
        let started = Instant::now();
        let mut done = BTreeSet::new();
        let mut attempts = 0;
        let limit = self.attempt_limit(receiver);
        let outcome = loop {
            attempts += 1;
            let tried = tokio::time::timeout(
                limit,
                receiver.transport.send(
                    &self.client,
                    name,
                    page,
                    self.page_url.as_deref(),
                    &mut done,
                ),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SendError::retry(format!(
                    "no answer within {} ms",
                    limit.as_millis()
                )))
            });
            match tried {
                Ok(()) => {
                    self.attempts
                        .with_labels(&[name, receiver.kind, "ok"])
                        .inc();
                    break Outcome::Delivered { attempts };
                }
                Err(err) => {
                    self.attempts
                        .with_labels(&[name, receiver.kind, "error"])
                        .inc();
                    if !err.retry || attempts >= self.retry.attempts {
                        break Outcome::Failed {
                            attempts,
                            reason: err.message,
                        };
                    }
                    // A receiver that says when to come back is not asked
                    // sooner; one that asks for longer than the longest
                    // backoff is given up on (the dead letter keeps it).
                    let backoff = self.backoff(attempts - 1);
                    let max = self.retry.max_backoff.to_std();
                    let wait = match err.retry_after {
                        Some(asked) if asked > max => {
                            break Outcome::Failed {
                                attempts,
                                reason: format!(
                                    "{}; it asked to be retried after {} s, longer than \
                                     [notify.retry] max_backoff allows",
                                    err.message,
                                    asked.as_secs()
                                ),
                            };
                        }
                        Some(asked) => asked.max(backoff),
                        None => backoff,
                    };
                    tracing::debug!(
                        receiver = name,
                        page = %page.key(),
                        attempt = attempts,
                        error = %err.message,
                        "paging failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        };
        self.seconds
            .with_labels(&[receiver.kind])
            .observe_duration(started.elapsed());
        let label = match &outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Failed { .. } => "failed",
        };
        self.outcomes
            .with_labels(&[name, receiver.kind, label])
            .inc();
        outcome
    }
}

fn reqwest_client(config: &NotifyConfig, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let tls = posbon_auth::tls::client_config(config.ca_file.as_deref())
        .map_err(|e| anyhow::anyhow!("notify: {e}"))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        .no_proxy()
        // A receiver's redirect must not carry a signed page elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("notify: cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_model::{EscalationStatus, RiskLevel};

    fn escalation(district: &str, level: RiskLevel) -> Escalation {
        let t = chrono::Utc::now();
        Escalation {
            id: Escalation::deterministic_id("m1", "intensity", 1),
            mahalla_id: "m1".into(),
            district_id: district.into(),
            region_id: "r1".into(),
            level,
            previous_level: RiskLevel::Normal,
            score: 3.0,
            rule: "intensity".into(),
            measure: None,
            counts: Default::default(),
            hot_cells: vec![],
            evidence: vec![],
            window_start: t,
            window_end: t,
            opened_at: t,
            status: EscalationStatus::Open,
        }
    }

    #[test]
    fn routes_pick_receivers_by_matchers_and_tier() {
        let config: NotifyConfig = toml::from_str(
            r#"
            [[receivers]]
            name = "ops"
            type = "webhook"
            url = "http://127.0.0.1:9/hook"
            secret = "0123456789abcdef0123456789abcdef"
            [[receivers]]
            name = "district"
            type = "sms"
            url = "http://127.0.0.1:9/sms"
            to = ["+998900000000"]
            [[receivers]]
            name = "all"
            type = "webhook"
            url = "http://127.0.0.1:9/all"
            secret = "0123456789abcdef0123456789abcdef"
            [[routes]]
            receivers = ["ops"]
            district = ["chilonzor"]
            min_level = "high"
            [[routes]]
            receivers = ["district", "ops"]
            tier = ["district"]
            [[routes]]
            receivers = ["all"]
            "#,
        )
        .expect("toml");
        let n = Notifier::new(&config, &Metrics::new()).expect("notifier");
        let first = NotifyTier::MahallaInspector;
        assert_eq!(
            n.receivers_for(&escalation("chilonzor", RiskLevel::High), first),
            ["ops", "all"]
        );
        assert_eq!(
            n.receivers_for(&escalation("chilonzor", RiskLevel::Elevated), first),
            ["all"]
        );
        assert_eq!(
            n.receivers_for(&escalation("yunusobod", RiskLevel::Critical), first),
            ["all"]
        );
        assert_eq!(
            n.receivers_for(
                &escalation("yunusobod", RiskLevel::Elevated),
                NotifyTier::District
            ),
            ["ops", "district", "all"],
            "each receiver once, in the order of the configuration"
        );
        assert!(n.worst_case() > Duration::from_secs(60));
    }
}
