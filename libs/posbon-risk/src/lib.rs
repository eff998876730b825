//! Posbon risk model: harm weights, decayed intensity, baselines, levels with hysteresis, pattern rules, hot cells. Pure and deterministic.
