//! Validation of a [`RiskConfig`]: ranges, orderings and consistency, with
//! errors that name the bad key.

use posbon_model::{EventKind, RiskLevel};

use super::{ConfigError, MAX_WEIGHT, RiskConfig, RuleConfig, RuleGroup, SCORE_RULE};
use posbon_model::Span;

fn check_weight(key: String, w: f64) -> Result<(), ConfigError> {
    if !(w.is_finite() && (0.0..=MAX_WEIGHT).contains(&w)) {
        return Err(ConfigError::new(
            key,
            format!("{w} is not a weight in 0..={MAX_WEIGHT}"),
        ));
    }
    Ok(())
}

fn check_positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(ConfigError::new(
            key,
            format!("{v} must be a positive number"),
        ));
    }
    Ok(())
}

fn check_span(key: &str, span: Span, min: Span, max: Span) -> Result<(), ConfigError> {
    if span < min || span > max {
        return Err(ConfigError::new(
            key,
            format!("{span} must be within {min}..={max}"),
        ));
    }
    Ok(())
}

/// True for a name made of `[A-Za-z0-9._-]`, 1..=64 bytes.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl RiskConfig {
    /// Checks every value; the error names the first bad key (dotted path
    /// under `[risk]`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_weights()?;
        check_span(
            "half_life",
            self.half_life,
            Span::from_minutes(1),
            Span::from_days(30),
        )?;
        check_span(
            "baseline_window",
            self.baseline_window,
            Span::from_days(1),
            Span::from_days(366),
        )?;
        if self.baseline_window.millis() % Span::from_days(1).millis() != 0 {
            return Err(ConfigError::new(
                "baseline_window",
                format!("{} must be a whole number of days", self.baseline_window),
            ));
        }
        let local = posbon_model::local_offset_minutes();
        if self.utc_offset_minutes != local {
            return Err(ConfigError::new(
                "utc_offset_minutes",
                format!(
                    "{} is not the local time zone's offset, {local} ({}): SQL, the \
                     reports and the page count days in that zone, so the risk \
                     engine must too",
                    self.utc_offset_minutes,
                    posbon_model::LOCAL_TIME_ZONE.name()
                ),
            ));
        }
        check_span(
            "min_baseline",
            self.min_baseline,
            Span::from_millis(1),
            self.baseline_window,
        )?;
        check_positive("prior.harm_per_day", self.prior.harm_per_day)?;
        check_positive("prior.days", self.prior.days)?;
        check_positive("prior.dispersion", self.prior.dispersion)?;
        check_positive("prior.cell_harm_per_day", self.prior.cell_harm_per_day)?;
        check_positive("profile_shrinkage", self.profile_shrinkage)?;
        check_positive("overdispersion", self.overdispersion)?;
        self.validate_levels()?;
        check_span(
            "evidence_window",
            self.evidence_window,
            Span::from_minutes(1),
            self.baseline_window,
        )?;
        if self.max_evidence == 0 || self.max_evidence > 1000 {
            return Err(ConfigError::new(
                "max_evidence",
                format!("{} must be within 1..=1000", self.max_evidence),
            ));
        }
        if self.max_recent_events < self.max_evidence {
            return Err(ConfigError::new(
                "max_recent_events",
                format!(
                    "{} must be at least max_evidence ({})",
                    self.max_recent_events, self.max_evidence
                ),
            ));
        }
        if !self.hot_cells.min_z.is_finite() {
            return Err(ConfigError::new("hot_cells.min_z", "must be a number"));
        }
        if self.hot_cells.max_cells > 100 {
            return Err(ConfigError::new(
                "hot_cells.max_cells",
                format!("{} must be at most 100", self.hot_cells.max_cells),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate(&format!("rules[{i}]"), self.baseline_window)?;
            if rule.name == SCORE_RULE {
                return Err(ConfigError::new(
                    format!("rules[{i}].name"),
                    format!("{SCORE_RULE:?} is reserved for escalations raised by the score"),
                ));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::new(
                    format!("rules[{i}].name"),
                    format!("{:?} is used by an earlier rule", rule.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_weights(&self) -> Result<(), ConfigError> {
        for (category, row) in &self.weights.incident.0 {
            for (s, w) in row.iter().enumerate() {
                check_weight(format!("weights.incident.{category}[{s}]"), *w)?;
            }
        }
        for (detection, w) in &self.weights.camera.detection.0 {
            check_weight(format!("weights.camera.detection.{detection}"), *w)?;
        }
        let bands = &self.weights.camera.confidence_bands;
        for (i, b) in bands.iter().enumerate() {
            let key = format!("weights.camera.confidence_bands[{i}]");
            if !(b.min.is_finite() && (0.0..=1.0).contains(&b.min)) {
                return Err(ConfigError::new(
                    format!("{key}.min"),
                    format!("{} is not a confidence in 0..=1", b.min),
                ));
            }
            if i > 0 && b.min <= bands[i - 1].min {
                return Err(ConfigError::new(
                    format!("{key}.min"),
                    format!(
                        "{} must be above the previous band's {}",
                        b.min,
                        bands[i - 1].min
                    ),
                ));
            }
            check_weight(format!("{key}.factor"), b.factor)?;
        }
        for (scheme, w) in &self.weights.fraud.scheme.0 {
            check_weight(format!("weights.fraud.scheme.{scheme}"), *w)?;
        }
        let bands = &self.weights.fraud.amount_bands;
        if bands.first().map(|b| b.min_uzs) != Some(0.0) {
            return Err(ConfigError::new(
                "weights.fraud.amount_bands",
                "the first band must start at min_uzs = 0 so that every amount has one",
            ));
        }
        for (i, b) in bands.iter().enumerate() {
            let key = format!("weights.fraud.amount_bands[{i}]");
            if !(b.min_uzs.is_finite() && b.min_uzs >= 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.min_uzs"),
                    format!("{} is not an amount >= 0", b.min_uzs),
                ));
            }
            if i > 0 && b.min_uzs <= bands[i - 1].min_uzs {
                return Err(ConfigError::new(
                    format!("{key}.min_uzs"),
                    format!(
                        "{} must be above the previous band's {}",
                        b.min_uzs,
                        bands[i - 1].min_uzs
                    ),
                ));
            }
            check_weight(format!("{key}.factor"), b.factor)?;
        }
        // Products must stay within range too.
        let max_band = self
            .weights
            .camera
            .confidence_bands
            .iter()
            .map(|b| b.factor)
            .fold(0.0, f64::max);
        for (detection, w) in &self.weights.camera.detection.0 {
            if w * max_band > MAX_WEIGHT {
                return Err(ConfigError::new(
                    format!("weights.camera.detection.{detection}"),
                    format!("{w} times the largest band factor {max_band} exceeds {MAX_WEIGHT}"),
                ));
            }
        }
        let max_band = bands.iter().map(|b| b.factor).fold(0.0, f64::max);
        for (scheme, w) in &self.weights.fraud.scheme.0 {
            if w * max_band > MAX_WEIGHT {
                return Err(ConfigError::new(
                    format!("weights.fraud.scheme.{scheme}"),
                    format!("{w} times the largest band factor {max_band} exceeds {MAX_WEIGHT}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_levels(&self) -> Result<(), ConfigError> {
        let levels = &self.levels;
        let named = [
            ("elevated", &levels.elevated),
            ("high", &levels.high),
            ("critical", &levels.critical),
        ];
        for (i, (name, t)) in named.iter().enumerate() {
            for (field, v) in [
                ("entry", t.entry),
                ("exit", t.exit),
                ("min_events", t.min_events),
            ] {
                if !v.is_finite() {
                    return Err(ConfigError::new(
                        format!("levels.{name}.{field}"),
                        format!("{v} is not a number"),
                    ));
                }
            }
            if t.min_events < 0.0 {
                return Err(ConfigError::new(
                    format!("levels.{name}.min_events"),
                    format!("{} must be >= 0", t.min_events),
                ));
            }
            if t.entry <= 0.0 {
                return Err(ConfigError::new(
                    format!("levels.{name}.entry"),
                    format!("{} must be positive", t.entry),
                ));
            }
            if t.exit >= t.entry {
                return Err(ConfigError::new(
                    format!("levels.{name}.exit"),
                    format!("{} must be below levels.{name}.entry ({})", t.exit, t.entry),
                ));
            }
            if i > 0 {
                let (prev_name, prev) = named[i - 1];
                if t.entry <= prev.entry {
                    return Err(ConfigError::new(
                        format!("levels.{name}.entry"),
                        format!(
                            "{} must be above levels.{prev_name}.entry ({})",
                            t.entry, prev.entry
                        ),
                    ));
                }
                if t.exit < prev.exit {
                    return Err(ConfigError::new(
                        format!("levels.{name}.exit"),
                        format!(
                            "{} must not be below levels.{prev_name}.exit ({})",
                            t.exit, prev.exit
                        ),
                    ));
                }
            }
        }
        check_span(
            "levels.min_dwell",
            levels.min_dwell,
            Span::from_millis(0),
            Span::from_days(30),
        )
    }
}

impl RuleConfig {
    fn validate(&self, key: &str, baseline_window: Span) -> Result<(), ConfigError> {
        let at = |field: &str| format!("{key}.{field}");
        if !is_token(&self.name) {
            return Err(ConfigError::new(
                at("name"),
                format!(
                    "{:?} must be 1..=64 characters of [A-Za-z0-9._-]",
                    self.name
                ),
            ));
        }
        if self.kinds.is_empty() {
            return Err(ConfigError::new(
                at("kinds"),
                "must name at least one event kind",
            ));
        }
        let needs = |field: &str, kind: EventKind, used: bool| {
            if used && !self.kinds.contains(&kind) {
                Err(ConfigError::new(
                    at(field),
                    format!("filters {kind} events, which are not in kinds"),
                ))
            } else {
                Ok(())
            }
        };
        needs(
            "categories",
            EventKind::Incident,
            !self.categories.is_empty(),
        )?;
        needs(
            "min_severity",
            EventKind::Incident,
            self.min_severity.is_some(),
        )?;
        needs(
            "detections",
            EventKind::CameraAlert,
            !self.detections.is_empty(),
        )?;
        needs(
            "min_confidence",
            EventKind::CameraAlert,
            self.min_confidence.is_some(),
        )?;
        needs("schemes", EventKind::FraudFlag, !self.schemes.is_empty())?;
        needs(
            "min_amount_uzs",
            EventKind::FraudFlag,
            self.min_amount_uzs.is_some(),
        )?;
        if let Some(s) = self.min_severity
            && !(1..=5).contains(&s)
        {
            return Err(ConfigError::new(
                at("min_severity"),
                format!("{s} is not within 1..=5"),
            ));
        }
        if let Some(c) = self.min_confidence
            && !(c.is_finite() && (0.0..=1.0).contains(&c))
        {
            return Err(ConfigError::new(
                at("min_confidence"),
                format!("{c} is not within 0..=1"),
            ));
        }
        if let Some(a) = self.min_amount_uzs
            && !(a.is_finite() && a >= 0.0)
        {
            return Err(ConfigError::new(
                at("min_amount_uzs"),
                format!("{a} must be >= 0"),
            ));
        }
        check_span(
            &at("window"),
            self.window,
            Span::from_minutes(1),
            Span::from_days(7),
        )?;
        if self.window > baseline_window {
            return Err(ConfigError::new(
                at("window"),
                format!(
                    "{} must not exceed baseline_window ({baseline_window})",
                    self.window
                ),
            ));
        }
        if self.group == RuleGroup::Cell && !(0..=5).contains(&self.disk) {
            return Err(ConfigError::new(
                at("disk"),
                format!("{} must be within 0..=5", self.disk),
            ));
        }
        check_positive(&at("threshold"), self.threshold)?;
        if let Some(z) = self.min_z
            && !(z.is_finite() && z > 0.0)
        {
            return Err(ConfigError::new(
                at("min_z"),
                format!("{z} must be a positive number"),
            ));
        }
        check_positive(&at("prior_per_day"), self.prior_per_day)?;
        check_span(
            &at("cooldown"),
            self.cooldown,
            Span::from_millis(0),
            Span::from_days(7),
        )?;
        if let Some(idle) = self.max_idle {
            check_span(&at("max_idle"), idle, Span::from_minutes(1), self.window)?;
        }
        if self.level == RiskLevel::Normal {
            return Err(ConfigError::new(
                at("level"),
                "must be elevated, high or critical (a rule raises the level)",
            ));
        }
        Ok(())
    }
}
