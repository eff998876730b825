//! The decayed intensity λ(t) = Σ wᵢ·e^(−(t−tᵢ)/τ), kept as a sum anchored at a
//! reference time so that adding an event of any time is O(1) and exact.
//!
//! With an anchor `a`, the state is `S = Σ wᵢ·e^((tᵢ−a)/τ)` and
//! `λ(t) = S·e^(−(t−a)/τ)`. Adding an event at `tᵢ` adds `wᵢ·e^((tᵢ−a)/τ)`
//! whatever the events before it, so a late event is applied exactly as if it
//! had come in order; only floating-point rounding depends on the order (the
//! property tests check agreement to 1e-9, relative). When new events are
//! far ahead of the anchor the sum is rebased (multiplied by `e^(−Δ/τ)`) before
//! `e^((tᵢ−a)/τ)` could overflow. Two more sums ride along: every weight 1 (the
//! decayed number of events) and Σ wᵢ²·e^(−2(t−tᵢ)/τ), from which the Kish
//! effective number of events λ²/Σwᵢ²e^(−2(t−tᵢ)/τ) tells a cluster of events
//! from one heavy incident.

use serde::{Deserialize, Serialize};

/// Rebase once the newest event is this many time constants past the anchor
/// (e^64 ≈ 6e27, far from overflow).
const REBASE: f64 = 64.0;

/// A decayed harm sum and a decayed event count, anchored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Decayed {
    /// Reference time, milliseconds since the Unix epoch.
    pub(crate) anchor: i64,
    /// Σ wᵢ·e^((tᵢ−anchor)/τ).
    pub(crate) harm: f64,
    /// Σ e^((tᵢ−anchor)/τ).
    pub(crate) count: f64,
    /// Σ wᵢ²·e^(2(tᵢ−anchor)/τ).
    pub(crate) sq: f64,
}

/// A [`Decayed`] read at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DecayedAt {
    /// λ(t).
    pub(crate) harm: f64,
    /// Decayed number of events.
    pub(crate) count: f64,
    /// Kish effective number of events, λ² / Σ wᵢ²e^(−2(t−tᵢ)/τ).
    pub(crate) effective: f64,
}

impl Decayed {
    /// Adds an event of weight `w` at `t` (ms); `inv_tau` is 1/τ in 1/ms.
    #[inline]
    pub(crate) fn add(&mut self, t: i64, w: f64, inv_tau: f64) {
        if self.count == 0.0 {
            self.anchor = t;
        }
        let mut x = (t - self.anchor) as f64 * inv_tau;
        if x > REBASE {
            let f = (-x).exp();
            self.harm *= f;
            self.count *= f;
            self.sq *= f * f;
            self.anchor = t;
            x = 0.0;
        }
        let e = x.exp();
        self.harm += w * e;
        self.count += e;
        self.sq += w * w * e * e;
    }

    /// λ(t) and the decayed number of events at `t`.
    #[inline]
    pub(crate) fn at(&self, t: i64, inv_tau: f64) -> (f64, f64) {
        if self.count == 0.0 {
            return (0.0, 0.0);
        }
        let f = (-((t - self.anchor) as f64 * inv_tau)).exp();
        (self.harm * f, self.count * f)
    }

    /// Everything at `t`.
    #[inline]
    pub(crate) fn read(&self, t: i64, inv_tau: f64) -> DecayedAt {
        if self.count == 0.0 {
            return DecayedAt::default();
        }
        let f = (-((t - self.anchor) as f64 * inv_tau)).exp();
        let harm = self.harm * f;
        let sq = self.sq * f * f;
        DecayedAt {
            harm,
            count: self.count * f,
            effective: if sq > 0.0 { harm * harm / sq } else { 0.0 },
        }
    }

    /// True when nothing is left that matters at `t` (decayed count below 1e-9).
    pub(crate) fn is_negligible(&self, t: i64, inv_tau: f64) -> bool {
        self.at(t, inv_tau).1 < 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn matches_the_direct_sum_in_any_order_and_across_rebases() {
        let tau = 2.0 * HOUR as f64;
        let inv = 1.0 / tau;
        let events: Vec<(i64, f64)> = (0..200)
            .map(|i| ((i * 7919 % 1000) as i64 * HOUR / 3, 1.0 + (i % 5) as f64))
            .collect();
        let t = 400 * HOUR;
        let direct: f64 = events
            .iter()
            .map(|&(ti, w)| w * (-((t - ti) as f64) / tau).exp())
            .sum();
        let mut forward = Decayed::default();
        for &(ti, w) in &events {
            forward.add(ti, w, inv);
        }
        let mut backward = Decayed::default();
        for &(ti, w) in events.iter().rev() {
            backward.add(ti, w, inv);
        }
        let (a, _) = forward.at(t, inv);
        let (b, _) = backward.at(t, inv);
        assert!((a - direct).abs() <= 1e-9 * direct, "{a} vs {direct}");
        assert!((b - direct).abs() <= 1e-9 * direct, "{b} vs {direct}");
    }

    #[test]
    fn halves_every_half_life() {
        let half_life = 3 * HOUR;
        let inv = std::f64::consts::LN_2 / half_life as f64;
        let mut d = Decayed::default();
        d.add(0, 4.0, inv);
        let (h, c) = d.at(half_life, inv);
        assert!(
            (h - 2.0).abs() < 1e-12 && (c - 0.5).abs() < 1e-12,
            "{h} {c}"
        );
        assert!(d.is_negligible(200 * half_life, inv));
    }

    #[test]
    fn effective_count_tells_a_cluster_from_one_heavy_event() {
        let inv = 1.0 / HOUR as f64;
        let mut heavy = Decayed::default();
        heavy.add(0, 16.0, inv);
        for k in 1..=3 {
            heavy.add(k * 1000, 1.0, inv);
        }
        let r = heavy.read(4000, inv);
        assert!(r.effective < 1.5, "{}", r.effective);
        let mut cluster = Decayed::default();
        for k in 0..5 {
            cluster.add(k * 1000, 2.0, inv);
        }
        let r = cluster.read(5000, inv);
        assert!((r.effective - 5.0).abs() < 0.01, "{}", r.effective);
        assert!((r.harm - 10.0).abs() < 0.01);
    }
}
