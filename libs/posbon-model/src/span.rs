//! [`Span`]: a length of time written like `500ms`, `90m`, `6h`, `28d` or
//! `1d12h`, the one way Posbon reads a duration from people: every service's
//! configuration (timeouts, intervals, windows), the risk configuration, the
//! simulator's stream length, a silence's `--for`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A length of time with millisecond resolution.
///
/// Written in configuration as a number followed by a unit, possibly several:
/// `500ms`, `45s`, `90m`, `6h`, `28d`, `2w`, `1d12h`. Serialised back in the
/// same form with the largest units that fit (`36h` becomes `1d12h`).
///
/// Parsing ([`FromStr`], [`Deserialize`]) accepts only lengths above zero; a
/// setting where zero means something (no leeway, check every time) reads
/// through [`zero_allowed`] instead, so `0s` is refused everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

/// Error of [`Span::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number with a unit (ms, s, m, h, d, w) above zero, e.g. 500ms, 45s, 90m, 6h, 28d or 1d12h"
)]
pub struct InvalidSpan(pub String);

impl Span {
    /// No time at all; only settings read through [`zero_allowed`] hold it.
    pub const ZERO: Span = Span(0);

    /// `n` milliseconds.
    pub const fn from_millis(n: i64) -> Self {
        Self(n)
    }

    /// `n` seconds.
    pub const fn from_secs(n: i64) -> Self {
        Self(n * SECOND_MS)
    }

    /// `n` minutes.
    pub const fn from_minutes(n: i64) -> Self {
        Self(n * MINUTE_MS)
    }

    /// `n` hours.
    pub const fn from_hours(n: i64) -> Self {
        Self(n * HOUR_MS)
    }

    /// `n` days.
    pub const fn from_days(n: i64) -> Self {
        Self(n * DAY_MS)
    }

    /// Length in milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Length in hours, fractional.
    pub fn hours_f64(self) -> f64 {
        self.0 as f64 / HOUR_MS as f64
    }

    /// Length in whole seconds, rounded down.
    pub const fn secs(self) -> i64 {
        self.0 / SECOND_MS
    }

    /// Whether this is [`Span::ZERO`].
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// As a chrono duration.
    pub fn to_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::milliseconds(self.0)
    }

    /// As a standard-library duration, for timers and timeouts.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    /// Parses like [`FromStr`], but also takes a zero length (`0s`).
    pub fn parse_allowing_zero(text: &str) -> Result<Self, InvalidSpan> {
        parse(text, true)
    }
}

impl From<Span> for std::time::Duration {
    fn from(span: Span) -> Self {
        span.to_std()
    }
}

impl FromStr for Span {
    type Err = InvalidSpan;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text, false)
    }
}

/// `text` as a span; a zero total only when `zero_ok`.
fn parse(text: &str, zero_ok: bool) -> Result<Span, InvalidSpan> {
    let err = || InvalidSpan(text.to_owned());
    let s = text.trim();
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut units = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => SECOND_MS,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => MINUTE_MS,
            'h' => HOUR_MS,
            'd' => DAY_MS,
            'w' => 7 * DAY_MS,
            _ => return Err(err()),
        };
        let n: i64 = digits.parse().map_err(|_| err())?;
        digits.clear();
        units += 1;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
    }
    if !digits.is_empty() || units == 0 || total < 0 || (total == 0 && !zero_ok) {
        return Err(err());
    }
    Ok(Span(total))
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        if rest < 0 {
            return write!(f, "{rest}ms");
        }
        for (unit, name) in [
            (DAY_MS, "d"),
            (HOUR_MS, "h"),
            (MINUTE_MS, "m"),
            (SECOND_MS, "s"),
            (1, "ms"),
        ] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SpanVisitor { zero_ok: false })
    }
}

/// Reads a span from text; a bare number is refused with a hint, since its
/// unit would be a guess.
struct SpanVisitor {
    zero_ok: bool,
}

impl serde::de::Visitor<'_> for SpanVisitor {
    type Value = Span;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"500ms\", \"45s\", \"6h\" or \"1d12h\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Span, E> {
        parse(text, self.zero_ok).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Span, E> {
        Err(E::custom(format!(
            "a duration needs a unit: write e.g. \"{n}s\" or \"{n}ms\", not {n}"
        )))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Span, E> {
        Err(E::custom(format!(
            "a duration needs a unit: write e.g. \"{n}s\" or \"{n}ms\", not {n}"
        )))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Span, E> {
        Err(E::custom(format!(
            "a duration needs a unit: write e.g. \"{n}s\", not {n}"
        )))
    }
}

/// `#[serde(with = "posbon_model::span::zero_allowed")]`: a [`Span`] setting
/// where zero means something (`leeway = "0s"`: none; `tls_reload = "0s"`:
/// check every time).
pub mod zero_allowed {
    use super::{Span, SpanVisitor};
    use serde::{Deserializer, Serialize, Serializer};

    /// Writes the span as [`Span`] does.
    pub fn serialize<S: Serializer>(span: &Span, serializer: S) -> Result<S::Ok, S::Error> {
        span.serialize(serializer)
    }

    /// Reads a span of zero or more.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        deserializer.deserialize_any(SpanVisitor { zero_ok: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms, shown) in [
            ("45s", 45_000, "45s"),
            ("90m", 5_400_000, "1h30m"),
            ("6h", 21_600_000, "6h"),
            ("28d", 28 * DAY_MS, "28d"),
            ("2w", 14 * DAY_MS, "14d"),
            ("1d12h", 36 * HOUR_MS, "1d12h"),
            ("36h", 36 * HOUR_MS, "1d12h"),
            ("1500ms", 1500, "1s500ms"),
        ] {
            let span: Span = text.parse().expect(text);
            assert_eq!(span.millis(), ms, "{text}");
            assert_eq!(span.to_string(), shown, "{text}");
            assert_eq!(shown.parse::<Span>().expect(shown), span);
        }
        for bad in [
            "",
            "6",
            "h",
            "0h",
            "6x",
            "-6h",
            "6h3",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
    }
}
