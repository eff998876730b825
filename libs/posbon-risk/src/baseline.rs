//! The trailing baseline: harm by hour of the day over the last `window` whole
//! days, as exact integer sums, with a factor for each day of the week.
//!
//! The expected rate at an hour is the mahalla's rate at that hour of the day
//! (shrunk towards its all-day mean when the hour has few events) times the
//! factor of that day of the week (shrunk towards 1 the same way): crime has
//! daily and weekly cycles, and comparing a Saturday night with a flat mean
//! would escalate every busy mahalla every weekend.
//!
//! Times here are *local* milliseconds (the engine adds the configured UTC
//! offset; Uzbekistan keeps +05:00 all year): days are `floor(t / 86 400 s)`
//! from local midnight, hours local hours. The baseline at day `d`
//! covers days `d−window ..= d−1`: the current day, which may hold the very
//! burst being judged, never counts towards its own baseline. Weights are
//! integers (1/256 steps), so sums are exact whatever the order events arrive
//! in, and removing a day that leaves the window is an exact subtraction.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::weights::WEIGHT_SCALE;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Day index of a (local) time in ms.
#[inline]
pub(crate) fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY_MS)
}

/// Hour index (hours since the epoch) of a (local) time in ms.
#[inline]
pub(crate) fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_MS)
}

/// Day of the week of a day index, Monday = 0 (1970-01-01 was a Thursday).
#[inline]
pub(crate) fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// One day of data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Day {
    pub(crate) day: i64,
    /// Events.
    pub(crate) count: u32,
    /// Σ w_q² / 256 (harm² × 256).
    pub(crate) sq: u64,
    /// Harm by hour of the day, 1/256 steps. Inline rather than boxed: an
    /// event adds to its day's counts and its hour in one place in memory.
    pub(crate) harm: [u32; 24],
}

/// Harm by hour of the day over a trailing window of whole days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// The aggregates cover days `cur_day − window ..= cur_day − 1`.
    pub(crate) cur_day: i64,
    /// Σ harm by hour of day over the window, 1/256 steps. Boxed: only late
    /// events, the daily advance and the rates read it, and inline it would
    /// push the fields every event touches apart.
    pub(crate) harm: Box<[u64; 24]>,
    /// Events in the window.
    pub(crate) count: u64,
    /// Σ w_q²/256 over the window.
    pub(crate) sq: u64,
    /// Days with data, ascending: the window and the current day.
    pub(crate) days: VecDeque<Day>,
    /// Bumped whenever the aggregates change (for caches).
    #[serde(skip)]
    pub(crate) version: u64,
}

/// What a baseline says, ready for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rates {
    /// Expected harm per hour at each hour of the day.
    pub(crate) per_hour: [f64; 24],
    /// Factor of each day of the week (Monday = 0), about 1 on average.
    pub(crate) per_weekday: [f64; 7],
    /// Dispersion φ = Σw² / Σw (harm per effective count).
    pub(crate) phi: f64,
    /// Mean harm weight of an event (the prior counts as events of weight 1).
    pub(crate) mean_weight: f64,
    /// Effective number of events behind the estimate (prior included).
    pub(crate) effective: f64,
    /// Hours of observation in the window.
    pub(crate) exposure_hours: f64,
}

/// Prior and shrinkage for [`Baseline::rates`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prior {
    /// Harm per hour of a mahalla with no history.
    pub(crate) harm_per_hour: f64,
    /// Weight of the prior, hours.
    pub(crate) hours: f64,
    /// Dispersion of the prior.
    pub(crate) dispersion: f64,
    /// Pseudo-count pulling each hour towards the all-day mean.
    pub(crate) shrinkage: f64,
}

impl Baseline {
    pub(crate) fn new(cur_day: i64) -> Self {
        Self {
            cur_day,
            harm: Box::new([0; 24]),
            count: 0,
            sq: 0,
            days: VecDeque::new(),
            version: 0,
        }
    }

    /// Moves the window so that `day` is the current day.
    pub(crate) fn advance(&mut self, day: i64, window: i64) {
        if day <= self.cur_day {
            return;
        }
        let (old_lo, old_hi) = (self.cur_day - window, self.cur_day - 1);
        let (new_lo, new_hi) = (day - window, day - 1);
        let mut changed = false;
        for d in &self.days {
            let was = (old_lo..=old_hi).contains(&d.day);
            let is = (new_lo..=new_hi).contains(&d.day);
            if was != is {
                changed = true;
                for (acc, h) in self.harm.iter_mut().zip(d.harm.iter()) {
                    if is {
                        *acc += u64::from(*h);
                    } else {
                        *acc -= u64::from(*h);
                    }
                }
                if is {
                    self.count += u64::from(d.count);
                    self.sq += d.sq;
                } else {
                    self.count -= u64::from(d.count);
                    self.sq -= d.sq;
                }
            }
        }
        while self.days.front().is_some_and(|d| d.day < new_lo) {
            self.days.pop_front();
        }
        self.cur_day = day;
        if changed {
            self.version += 1;
        }
    }

    /// Adds an event of weight `w_q` (1/256 steps) at `t` (ms). Events older
    /// than the window are ignored; call [`Baseline::advance`] first.
    pub(crate) fn add(&mut self, t: i64, w_q: u32, window: i64) {
        let day = day_of(t);
        if day < self.cur_day - window {
            return;
        }
        let hour = hour_of(t).rem_euclid(24) as usize;
        let sq = (u64::from(w_q) * u64::from(w_q)) >> 8;
        // Nearly every event falls on the latest day: check it before
        // searching (each probe of the search is a cache miss on a large
        // registry).
        let last = self.days.len().wrapping_sub(1);
        let found = match self.days.back() {
            Some(d) if d.day == day => Ok(last),
            Some(d) if d.day < day => Err(self.days.len()),
            _ => self.days.binary_search_by_key(&day, |d| d.day),
        };
        let i = match found {
            Ok(i) => i,
            Err(i) => {
                self.days.insert(
                    i,
                    Day {
                        day,
                        count: 0,
                        sq: 0,
                        harm: [0; 24],
                    },
                );
                i
            }
        };
        let d = &mut self.days[i];
        d.count = d.count.saturating_add(1);
        d.sq += sq;
        d.harm[hour] = d.harm[hour].saturating_add(w_q);
        if day < self.cur_day {
            self.harm[hour] += u64::from(w_q);
            self.count += 1;
            self.sq += sq;
            self.version += 1;
        }
    }

    /// Hours of observation at each hour of the day within the window, for a
    /// subject observed since `since` (ms).
    fn exposure(&self, since: i64, window: i64) -> [f64; 24] {
        let since_hour = hour_of(since);
        let lo = self.cur_day - window;
        let hi = self.cur_day - 1;
        let mut out = [0.0; 24];
        for (h, e) in out.iter_mut().enumerate() {
            // Day d counts for hour h when d*24 + h >= since_hour.
            let first = (since_hour - h as i64 + 23).div_euclid(24);
            let from = lo.max(first);
            if hi >= from {
                *e = (hi - from + 1) as f64;
            }
        }
        out
    }

    /// Expected harm per hour at each hour of the day, with its dispersion and
    /// weight, for a subject observed since `since`.
    pub(crate) fn rates(&self, since: i64, window: i64, prior: &Prior) -> Rates {
        let exposure = self.exposure(since, window);
        let t_hours: f64 = exposure.iter().sum();
        let h_total = self.harm.iter().sum::<u64>() as f64 / WEIGHT_SCALE;
        let prior_h = prior.harm_per_hour * prior.hours;
        let mean = (h_total + prior_h) / (t_hours + prior.hours);
        let per_event = if self.count > 0 {
            h_total / self.count as f64
        } else {
            0.0
        };
        let mut per_hour = [mean; 24];
        for (h, r) in per_hour.iter_mut().enumerate() {
            let e = exposure[h];
            if e > 0.0 && per_event > 0.0 {
                let harm = self.harm[h] as f64 / WEIGHT_SCALE;
                let n = harm / per_event;
                *r = (n * (harm / e) + prior.shrinkage * mean) / (n + prior.shrinkage);
            }
        }
        // Day-of-week factors: each weekday's rate against the mean rate,
        // shrunk towards 1 by its effective number of events.
        let since_hour = hour_of(since);
        let mut wd_harm = [0.0f64; 7];
        let mut wd_hours = [0.0f64; 7];
        for d in self
            .days
            .iter()
            .filter(|d| d.day >= self.cur_day - window && d.day < self.cur_day)
        {
            // Summed as integers (exact, and vectorised; a sum of f64 is a
            // chain of dependent adds), converted once.
            wd_harm[weekday(d.day)] +=
                d.harm.iter().map(|&h| u64::from(h)).sum::<u64>() as f64 / WEIGHT_SCALE;
        }
        for day in (self.cur_day - window)..self.cur_day {
            let observed = (day * 24 + 24 - since_hour.max(day * 24)).clamp(0, 24);
            wd_hours[weekday(day)] += observed as f64;
        }
        let mut per_weekday = [1.0; 7];
        let data_rate = if t_hours > 0.0 {
            h_total / t_hours
        } else {
            0.0
        };
        if data_rate > 0.0 && per_event > 0.0 {
            for ((f, harm), hours) in per_weekday.iter_mut().zip(wd_harm).zip(wd_hours) {
                if hours > 0.0 {
                    let n = harm / per_event;
                    let ratio = harm / hours / data_rate;
                    *f = (n * ratio + prior.shrinkage) / (n + prior.shrinkage);
                }
            }
        }
        let sq = self.sq as f64 / WEIGHT_SCALE;
        let phi = (sq + prior.dispersion * prior_h) / (h_total + prior_h);
        Rates {
            per_hour,
            per_weekday,
            phi,
            mean_weight: (h_total + prior_h) / (self.count as f64 + prior_h),
            effective: (h_total + prior_h) / phi,
            exposure_hours: t_hours,
        }
    }
}

/// Expected value at `t` of a decayed sum driven by hourly rates.
///
/// With rate `r(s)` (harm per hour, periodic over the day) and time constant τ
/// (hours), E[λ(t)] = ∫₀^∞ r(t−s)·e^(−s/τ) ds: the current hour (the `f` hours
/// of it that have passed) plus every earlier hour, summed in closed form over
/// the day's period.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    /// τ in hours.
    tau_h: f64,
    /// τ(1−a)/(1−a²⁴)·a^(j−1) for j = 1..=24, with a = e^(−1/τ).
    weights: [f64; 24],
}

impl Kernel {
    pub(crate) fn new(tau_h: f64) -> Self {
        let a = (-1.0 / tau_h).exp();
        let norm = tau_h * (1.0 - a) / (1.0 - a.powi(24));
        let mut weights = [0.0; 24];
        let mut p = 1.0;
        for w in &mut weights {
            *w = norm * p;
            p *= a;
        }
        Self { tau_h, weights }
    }

    /// The part of E[λ] from hours before the current one, as seen at the
    /// start of the current hour `hour` (hour index since the epoch). The
    /// closed form repeats the last 24 hours' rates into the past.
    pub(crate) fn past(&self, rates: &Rates, hour: i64) -> f64 {
        let mut sum = 0.0;
        for (j, w) in self.weights.iter().enumerate() {
            sum += rates.at_hour(hour - 1 - j as i64) * w;
        }
        sum
    }

    /// E[λ(t)] from the current hour's rate, the past part, and the fraction
    /// of the current hour elapsed (hours, 0..1).
    #[inline]
    pub(crate) fn expected(&self, current_rate: f64, past: f64, elapsed_h: f64) -> f64 {
        let d = (-elapsed_h / self.tau_h).exp();
        current_rate * self.tau_h * (1.0 - d) + past * d
    }
}

impl Rates {
    /// Expected rate (per hour) during the hour with this index.
    #[inline]
    pub(crate) fn at_hour(&self, hour: i64) -> f64 {
        self.per_hour[hour.rem_euclid(24) as usize] * self.per_weekday[weekday(hour.div_euclid(24))]
    }
}

/// Expected harm (or count) over the window `(t − len, t]` from hourly rates.
pub(crate) fn expected_in_window(rates: &Rates, t: i64, len: i64) -> f64 {
    let start = t - len;
    let mut sum = 0.0;
    let mut h = hour_of(start);
    loop {
        let h_start = h * HOUR_MS;
        let h_end = h_start + HOUR_MS;
        let lo = h_start.max(start);
        let hi = h_end.min(t);
        if hi > lo {
            sum += rates.at_hour(h) * (hi - lo) as f64 / HOUR_MS as f64;
        }
        if h_end >= t {
            break;
        }
        h += 1;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 28;

    fn prior() -> Prior {
        Prior {
            harm_per_hour: 1.0 / 24.0,
            hours: 48.0,
            dispersion: 2.0,
            shrinkage: 10.0,
        }
    }

    #[test]
    fn window_moves_exactly_and_in_any_order() {
        let events: Vec<(i64, u32)> = (0..500)
            .map(|i| (i * 7_777_777 % (40 * DAY_MS), 100 + (i % 7) as u32 * 50))
            .collect();
        let mut a = Baseline::new(0);
        for &(t, w) in &events {
            a.advance(day_of(t), W);
            a.add(t, w, W);
        }
        let mut b = Baseline::new(0);
        b.advance(day_of(40 * DAY_MS - 1), W);
        for &(t, w) in events.iter().rev() {
            b.add(t, w, W);
        }
        a.advance(day_of(40 * DAY_MS - 1), W);
        assert_eq!(a.harm, b.harm);
        assert_eq!(a.count, b.count);
        assert_eq!(a.sq, b.sq);
        // The aggregates equal a direct sum over the window.
        let cur = day_of(40 * DAY_MS - 1);
        let mut harm = [0u64; 24];
        let mut count = 0;
        for &(t, w) in &events {
            let d = day_of(t);
            if d >= cur - W && d < cur {
                harm[hour_of(t).rem_euclid(24) as usize] += u64::from(w);
                count += 1;
            }
        }
        assert_eq!(*a.harm, harm);
        assert_eq!(a.count, count);
        // Far ahead, everything has left.
        a.advance(cur + 100, W);
        assert_eq!(*a.harm, [0; 24]);
        assert_eq!((a.count, a.sq), (0, 0));
        assert!(a.days.is_empty());
    }

    #[test]
    fn rates_follow_the_data_and_start_from_the_prior() {
        let fresh = Baseline::new(10);
        let r = fresh.rates(10 * DAY_MS, W, &prior());
        assert!(r.per_hour.iter().all(|&x| (x - 1.0 / 24.0).abs() < 1e-12));
        assert_eq!(r.exposure_hours, 0.0);
        // 28 days with 10 events of weight 1 at 09:00 each day.
        let mut b = Baseline::new(0);
        for d in 0..28 {
            for k in 0..10 {
                b.add(d * DAY_MS + 9 * HOUR_MS + k * 1000, 256, W);
            }
        }
        b.advance(28, W);
        let r = b.rates(0, W, &prior());
        assert_eq!(r.exposure_hours, 28.0 * 24.0);
        assert!(r.per_hour[9] > 8.0, "{:?}", r.per_hour);
        assert!(r.per_hour[3] < 0.5, "{:?}", r.per_hour);
        assert!((r.phi - 1.0).abs() < 0.1, "{}", r.phi);
    }

    #[test]
    fn weekday_factors_follow_a_weekly_cycle() {
        // 28 days, 20 events a day, twice as many on Saturdays.
        let mut b = Baseline::new(0);
        for d in 0..28 {
            let n = if weekday(d) == 5 { 40 } else { 20 };
            for k in 0..n {
                b.add(d * DAY_MS + (k % 24) * HOUR_MS, 256, W);
            }
        }
        b.advance(28, W);
        let r = b.rates(0, W, &prior());
        let sat = r.per_weekday[5];
        let mon = r.per_weekday[0];
        assert!(sat > 1.6 && sat < 1.8, "{:?}", r.per_weekday);
        assert!(mon > 0.85 && mon < 0.95, "{:?}", r.per_weekday);
    }

    #[test]
    fn kernel_matches_numeric_integration() {
        let tau_h = 4.3;
        let kernel = Kernel::new(tau_h);
        let rates = Rates {
            per_hour: std::array::from_fn(|h| 1.0 + (h as f64 / 3.0).sin().abs() * 5.0),
            per_weekday: [1.0; 7],
            phi: 1.0,
            mean_weight: 1.0,
            effective: 1.0,
            exposure_hours: 1.0,
        };
        let hour = 1000 * 24 + 7;
        let elapsed = 0.4;
        let past = kernel.past(&rates, hour);
        let got = kernel.expected(rates.at_hour(hour), past, elapsed);
        // Numeric: integrate r(t - s) e^{-s/tau} over s in steps of 1/1000 h.
        let mut want = 0.0;
        let step = 0.001;
        let mut s = step / 2.0;
        while s < 40.0 * tau_h {
            let at = 7.0 + elapsed - s;
            let hod = at.floor().rem_euclid(24.0) as usize;
            want += rates.per_hour[hod] * (-s / tau_h).exp() * step;
            s += step;
        }
        assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
        // A window of whole hours sums their rates.
        let t = hour * HOUR_MS;
        let w = expected_in_window(&rates, t, 3 * HOUR_MS);
        let p = &rates.per_hour;
        assert!((w - (p[4] + p[5] + p[6])).abs() < 1e-12);
    }
}
