//! The compiled configuration ([`Ctx`]) and the helpers every part of the
//! engine scores and reports with: [`z_score`] and [`to_utc`].

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use posbon_geo::Registry;

use crate::baseline::{HOUR_MS, Kernel, Prior};
use crate::config::{ConfigError, Measure, RiskConfig};
use crate::rules::{Hit, Rule};
use crate::weights::HarmWeights;

/// The compiled configuration.
#[derive(Debug)]
pub(super) struct Ctx {
    pub(super) config: RiskConfig,
    pub(super) weights: HarmWeights,
    pub(super) rules: Vec<Rule>,
    pub(super) registry: Arc<Registry>,
    /// 1/τ in 1/ms.
    pub(super) inv_tau: f64,
    pub(super) kernel: Kernel,
    pub(super) window_days: i64,
    pub(super) prior: Prior,
    pub(super) cell_prior_per_hour: f64,
    pub(super) min_baseline_h: f64,
    pub(super) evidence_ms: i64,
    pub(super) dwell_ms: i64,
    pub(super) offset_ms: i64,
    pub(super) cap: usize,
}

impl Ctx {
    /// `hit` as the window of `rule` keeps it: its id stays in the shared
    /// chunks (see [`crate::ids`]) when the window is no longer than the
    /// evidence window, and gets an allocation of its own when it is
    /// longer, so that a sparse rule with a long window does not hold whole
    /// chunks of other events' ids for days.
    pub(super) fn kept_for(&self, rule: &Rule, hit: &Hit) -> Hit {
        let mut kept = hit.clone();
        if rule.window > self.evidence_ms {
            kept.id = kept.id.detached();
        }
        kept
    }

    pub(super) fn new(config: RiskConfig, registry: Arc<Registry>) -> Result<Self, ConfigError> {
        config.validate()?;
        let tau_ms = config.half_life.millis() as f64 / std::f64::consts::LN_2;
        let prior = Prior {
            harm_per_hour: config.prior.harm_per_day / 24.0,
            hours: config.prior.days * 24.0,
            dispersion: config.prior.dispersion,
            shrinkage: config.profile_shrinkage,
        };
        Ok(Self {
            weights: HarmWeights::new(&config.weights),
            rules: config.rules.iter().map(Rule::new).collect(),
            registry,
            inv_tau: 1.0 / tau_ms,
            kernel: Kernel::new(tau_ms / HOUR_MS as f64),
            window_days: config.baseline_window.millis() / crate::baseline::DAY_MS,
            prior,
            cell_prior_per_hour: config.prior.cell_harm_per_day / 24.0,
            min_baseline_h: config.min_baseline.hours_f64(),
            evidence_ms: config.evidence_window.millis(),
            dwell_ms: config.levels.min_dwell.millis(),
            offset_ms: i64::from(config.utc_offset_minutes) * 60_000,
            cap: config.max_recent_events,
            config,
        })
    }

    /// Local time (ms) of a UTC time, for days and hours of the day.
    #[inline]
    pub(super) fn local(&self, t: i64) -> i64 {
        t + self.offset_ms
    }

    pub(super) fn tau_h(&self) -> f64 {
        1.0 / (self.inv_tau * HOUR_MS as f64)
    }

    pub(super) fn rule_prior(&self, rule: &Rule) -> Prior {
        Prior {
            harm_per_hour: rule.prior_per_hour,
            hours: self.prior.hours,
            dispersion: match rule.measure {
                Measure::Count => 1.0,
                Measure::Harm => self.prior.dispersion,
            },
            shrinkage: self.prior.shrinkage,
        }
    }
}

/// The count-aware score: observed and expected in units that behave like a
/// Poisson count, through the variance-stabilising square root
/// 2(√observed − √expected), scaled down for the uncertainty of the baseline
/// (`effective` events behind it) and for overdispersion `k` (the variance of
/// a count of mean E is taken as E + E²/k).
#[inline]
pub(crate) fn z_score(observed: f64, expected: f64, effective: f64, k: f64) -> f64 {
    let raw = 2.0 * (observed.max(0.0).sqrt() - expected.max(0.0).sqrt());
    raw / (1.0 + expected * (1.0 / effective + 1.0 / k)).sqrt()
}

/// A time in ms since the epoch as a UTC time.
pub(super) fn to_utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}
