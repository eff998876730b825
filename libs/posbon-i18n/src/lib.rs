//! Posbon in Uzbek (Latin script), Russian and English.
//!
//! * **Catalogs**: one TOML file per language in `catalogs/`, embedded in
//!   the binary, `[section]` tables of `key = "text with {placeholders}"`.
//!   Every language has every key with the same placeholders (the
//!   `catalogs_agree` test fails otherwise); a key missing at run time reads
//!   as `⟦section.key⟧`, never as an empty string.
//! * **Choosing the language** ([`Lang::negotiate`]): an explicit
//!   `?lang=uz|ru|en` wins (anything else is an error that says so), then
//!   the first supported language of `Accept-Language` by its weights, then
//!   English.
//! * **Local conventions** ([`Lang::number`], [`Lang::decimal`],
//!   [`Lang::date`]): digit grouping and decimal comma for Uzbek and
//!   Russian, month names, Tashkent's calendar date as given.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::LazyLock;

use chrono::{Datelike as _, NaiveDate};

/// A language Posbon speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Uzbek, Latin script.
    Uz,
    /// Russian.
    Ru,
}

const SOURCES: [(Lang, &str); 3] = [
    (Lang::En, include_str!("../catalogs/en.toml")),
    (Lang::Uz, include_str!("../catalogs/uz.toml")),
    (Lang::Ru, include_str!("../catalogs/ru.toml")),
];

/// Every catalog, flattened to `section.key` → text.
static CATALOGS: LazyLock<HashMap<Lang, HashMap<String, String>>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(lang, text)| (*lang, flatten(text).unwrap_or_default()))
        .collect()
});

/// Reads a catalog into `section.key` → text, or says what is wrong.
fn flatten(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    let mut out = HashMap::new();
    for (section, value) in table {
        let toml::Value::Table(entries) = value else {
            return Err(format!("{section}: expected a [section] of messages"));
        };
        for (key, value) in entries {
            let toml::Value::String(text) = value else {
                return Err(format!("{section}.{key}: expected a string"));
            };
            out.insert(format!("{section}.{key}"), text);
        }
    }
    Ok(out)
}

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Uz, Lang::Ru];

    /// `en`, `uz` or `ru`: the `?lang=` value and the HTML `lang`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Uz => "uz",
            Lang::Ru => "ru",
        }
    }

    /// The language of a `?lang=` value or a language tag (`ru-RU`,
    /// `uz-Latn-UZ`, `en-GB`), if Posbon speaks it.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary.trim()))
    }

    /// The language of a request: `query` (`?lang=`) when given, else the
    /// best supported language of `accept_language`, else English. An
    /// unsupported `query` is an error that names the choices.
    pub fn negotiate(query: Option<&str>, accept_language: Option<&str>) -> Result<Lang, String> {
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            return match Lang::ALL.into_iter().find(|l| l.code() == q) {
                Some(lang) => Ok(lang),
                None => Err(format!("lang {q:?}: use uz, ru or en")),
            };
        }
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::from_tag(tag)
                && weight > 0.0
                && best.is_none_or(|(w, _)| weight > w)
            {
                best = Some((weight, lang));
            }
        }
        Ok(best.map_or(Lang::En, |(_, lang)| lang))
    }

    /// The message `key` (`section.key`).
    pub fn t(self, key: &str) -> String {
        CATALOGS
            .get(&self)
            .and_then(|c| c.get(key))
            .cloned()
            .unwrap_or_else(|| format!("⟦{key}⟧"))
    }

    /// The message `key` with its `{name}` placeholders filled in.
    pub fn f(self, key: &str, args: &[(&str, &dyn Display)]) -> String {
        let mut text = self.t(key);
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), &value.to_string());
        }
        text
    }

    fn group_separator(self) -> &'static str {
        match self {
            Lang::En => ",",
            // A narrow no-break space, as both conventions write it.
            Lang::Uz | Lang::Ru => "\u{202f}",
        }
    }

    fn decimal_separator(self) -> char {
        match self {
            Lang::En => '.',
            Lang::Uz | Lang::Ru => ',',
        }
    }

    /// An integer with digit grouping: `12,345`, `12 345`.
    pub fn number(self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + 8);
        if n < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(self.group_separator());
            }
            out.push(c);
        }
        out
    }

    /// A decimal with `digits` places and the local decimal separator;
    /// `signed` writes `+` before positive values (z scores).
    pub fn decimal(self, v: f64, digits: usize, signed: bool) -> String {
        let text = if signed {
            format!("{v:+.digits$}")
        } else {
            format!("{v:.digits$}")
        };
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i.to_owned(), Some(f.to_owned())),
            None => (text, None),
        };
        let (sign, int) = match int.strip_prefix(['+', '-']) {
            Some(rest) => (int[..1].to_owned(), rest.to_owned()),
            None => (String::new(), int),
        };
        let grouped = int.parse::<i64>().map_or(int.clone(), |n| self.number(n));
        match frac {
            Some(f) => format!("{sign}{grouped}{}{f}", self.decimal_separator()),
            None => format!("{sign}{grouped}"),
        }
    }

    /// A share in percent with one decimal: `12.3%`, `12,3 %`.
    pub fn percent(self, share: f64) -> String {
        let value = self.decimal(share * 100.0, 1, false);
        match self {
            Lang::En => format!("{value}%"),
            Lang::Uz | Lang::Ru => format!("{value}\u{a0}%"),
        }
    }

    /// A calendar date: `5 December 2026`, `5-dekabr, 2026-yil`,
    /// `5 декабря 2026 г.`.
    pub fn date(self, d: NaiveDate) -> String {
        let month = d.month0() as usize;
        match self {
            Lang::En => format!("{} {} {}", d.day(), EN_MONTHS[month], d.year()),
            Lang::Uz => format!("{}-{}, {}-yil", d.day(), UZ_MONTHS[month], d.year()),
            Lang::Ru => format!("{} {} {}\u{a0}г.", d.day(), RU_MONTHS[month], d.year()),
        }
    }
}

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const UZ_MONTHS: [&str; 12] = [
    "yanvar", "fevral", "mart", "aprel", "may", "iyun", "iyul", "avgust", "sentabr", "oktabr",
    "noyabr", "dekabr",
];
const RU_MONTHS: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];

/// The `{placeholders}` of a message, sorted.
fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.sort();
    out
}

/// Checks that every catalog parses and has the keys and placeholders of
/// every other; the problems found, one per line.
pub fn check_catalogs() -> Vec<String> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (lang, text) in SOURCES {
        match flatten(text) {
            Ok(c) => parsed.push((lang, c)),
            Err(e) => problems.push(format!("catalogs/{}.toml: {e}", lang.code())),
        }
    }
    for (a, ca) in &parsed {
        for (b, cb) in &parsed {
            if a == b {
                continue;
            }
            let mut keys: Vec<&String> = ca.keys().collect();
            keys.sort();
            for key in keys {
                match cb.get(key) {
                    None => problems.push(format!(
                        "catalogs/{}.toml misses {key} (in {}.toml)",
                        b.code(),
                        a.code()
                    )),
                    Some(text) if placeholders(text) != placeholders(&ca[key]) => {
                        problems.push(format!(
                            "catalogs/{}.toml: {key} has placeholders {:?}, {}.toml has {:?}",
                            b.code(),
                            placeholders(text),
                            a.code(),
                            placeholders(&ca[key])
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_agree() {
        let problems = check_catalogs();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_missing_key_is_seen() {
        assert_eq!(Lang::Ru.t("report.no_such_key"), "⟦report.no_such_key⟧");
        assert_eq!(
            placeholders("{a} and {b}, {a}"),
            ["a", "a", "b"].map(String::from)
        );
    }

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate(Some("ru"), Some("uz")), Ok(Lang::Ru));
        assert!(
            Lang::negotiate(Some("de"), None)
                .expect_err("unsupported")
                .contains("uz, ru or en")
        );
        assert_eq!(
            Lang::negotiate(None, Some("de-DE,ru;q=0.8,uz-Latn-UZ;q=0.9")),
            Ok(Lang::Uz)
        );
        assert_eq!(Lang::negotiate(None, Some("ru-RU")), Ok(Lang::Ru));
        assert_eq!(Lang::negotiate(None, Some("fr, de;q=0.5")), Ok(Lang::En));
        assert_eq!(Lang::negotiate(None, None), Ok(Lang::En));
        assert_eq!(Lang::negotiate(None, Some("ru;q=0")), Ok(Lang::En));
    }

    #[test]
    fn local_conventions() {
        assert_eq!(Lang::En.number(1_234_567), "1,234,567");
        assert_eq!(Lang::Ru.number(-1234), "-1\u{202f}234");
        assert_eq!(Lang::Uz.number(999), "999");
        assert_eq!(Lang::En.decimal(1234.5, 2, false), "1,234.50");
        assert_eq!(Lang::Ru.decimal(1.234, 2, true), "+1,23");
        assert_eq!(Lang::Uz.decimal(-0.5, 1, true), "-0,5");
        assert_eq!(Lang::Ru.percent(0.123), "12,3\u{a0}%");
        assert_eq!(Lang::En.percent(0.123), "12.3%");
        let d = NaiveDate::from_ymd_opt(2026, 12, 5).expect("date");
        assert_eq!(Lang::En.date(d), "5 December 2026");
        assert_eq!(Lang::Uz.date(d), "5-dekabr, 2026-yil");
        assert_eq!(Lang::Ru.date(d), "5 декабря 2026\u{a0}г.");
        assert_eq!(
            Lang::En.f("report.heading", &[("title", &"Chilonzor")]),
            "Daily situation report: Chilonzor"
        );
        assert_eq!(
            Lang::Ru.f("report.n_of_m", &[("n", &3), ("m", &Lang::Ru.number(1200))]),
            "3 из 1\u{202f}200"
        );
    }
}
