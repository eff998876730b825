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

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// One catalog file: its language, its name (`report`, `page`, `cli`)
/// and its text.
struct Source {
    lang: Lang,
    file: &'static str,
    text: &'static str,
}

macro_rules! sources {
    ($($file:literal),*) => {
        [$(
            Source { lang: Lang::En, file: $file, text: include_str!(concat!("../catalogs/en/", $file, ".toml")) },
            Source { lang: Lang::Uz, file: $file, text: include_str!(concat!("../catalogs/uz/", $file, ".toml")) },
            Source { lang: Lang::Ru, file: $file, text: include_str!(concat!("../catalogs/ru/", $file, ".toml")) },
        )*]
    };
}

/// Every catalog file: the printable report, the page, the CLI.
const SOURCES: [Source; 9] = sources!("report", "page", "cli");

/// A language's messages: `section.key` → text, and the file of each.
#[derive(Default)]
struct Catalog {
    messages: HashMap<String, String>,
    files: HashMap<String, &'static str>,
}

/// Every catalog, flattened to `section.key` → text.
static CATALOGS: LazyLock<HashMap<Lang, Catalog>> = LazyLock::new(|| {
    let mut out: HashMap<Lang, Catalog> = HashMap::new();
    for source in &SOURCES {
        let catalog = out.entry(source.lang).or_default();
        for (key, text) in flatten(source.text).unwrap_or_default() {
            catalog.files.insert(key.clone(), source.file);
            catalog.messages.insert(key, text);
        }
    }
    out
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

    /// The language's own name: `English`, `Oʻzbekcha`, `Русский`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Uz => "Oʻzbekcha",
            Lang::Ru => "Русский",
        }
    }

    /// The language of a command-line user: `POSBON_LANG`, else the first
    /// of `LC_ALL`, `LC_MESSAGES` and `LANG` that is set (`ru_RU.UTF-8`,
    /// `uz_UZ`), else English. `C` and `POSIX` are English.
    pub fn from_env() -> Lang {
        Lang::from_env_with(|name| std::env::var(name).ok())
    }

    /// The command-line user's language ([`Lang::from_env`]), read once.
    pub fn user() -> Lang {
        static USER: LazyLock<Lang> = LazyLock::new(Lang::from_env);
        *USER
    }

    /// [`Lang::from_env`] over any source of variables (for tests).
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Lang {
        ["POSBON_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| var(name).filter(|v| !v.trim().is_empty()))
            .map(|v| Lang::from_tag(&v).unwrap_or_default())
            .next()
            .unwrap_or_default()
    }

    /// The CLDR plural category of `n` in this language: `one`, `few`,
    /// `many` or `other` (Russian counts 1, 21 as `one`; 2–4, 22 as `few`;
    /// 5–20, 25 as `many`; fractions as `other`).
    pub fn plural(self, n: f64) -> &'static str {
        let whole = n.fract() == 0.0 && n.is_finite();
        match self {
            Lang::En | Lang::Uz => {
                if n == 1.0 {
                    "one"
                } else {
                    "other"
                }
            }
            Lang::Ru if !whole => "other",
            Lang::Ru => {
                let i = n.abs() as u64;
                match (i % 10, i % 100) {
                    (1, r) if r != 11 => "one",
                    (2..=4, r) if !(12..=14).contains(&r) => "few",
                    _ => "many",
                }
            }
        }
    }

    /// The plural categories a `{n, plural, ...}` message must cover.
    fn plural_categories(self) -> &'static [&'static str] {
        match self {
            Lang::En | Lang::Uz => &["one", "other"],
            Lang::Ru => &["one", "few", "many", "other"],
        }
    }

    /// The message `key` (`section.key`), placeholders left as written.
    pub fn t(self, key: &str) -> String {
        CATALOGS
            .get(&self)
            .and_then(|c| c.messages.get(key))
            .cloned()
            .unwrap_or_else(|| format!("⟦{key}⟧"))
    }

    /// The message `key` with its placeholders filled in: `{name}` takes
    /// the argument's text, `{n, plural, one {# day} other {# days}}` the
    /// arm of `n`'s plural category, `#` standing for `n` in local digits.
    pub fn f(self, key: &str, args: &[(&str, &dyn Display)]) -> String {
        self.render(&self.t(key), args)
    }

    /// Every message of one catalog file (`page`), `section.key` → text:
    /// what the page downloads.
    pub fn messages_of(self, file: &str) -> BTreeMap<String, String> {
        let Some(catalog) = CATALOGS.get(&self) else {
            return BTreeMap::new();
        };
        catalog
            .messages
            .iter()
            .filter(|(key, _)| catalog.files.get(*key) == Some(&file))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn render(self, text: &str, args: &[(&str, &dyn Display)]) -> String {
        let mut out = String::with_capacity(text.len());
        for part in parse(text) {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Arg(name) => match args.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(&v.to_string()),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                },
                Part::Plural(name, arms) => {
                    let value = args
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_string());
                    let n = value.as_deref().and_then(|v| v.parse::<f64>().ok());
                    let category = n.map_or("other", |n| self.plural(n));
                    let arm = arms
                        .iter()
                        .find(|(c, _)| *c == category)
                        .or_else(|| arms.iter().find(|(c, _)| *c == "other"))
                        .map_or("", |(_, arm)| arm);
                    let shown = match (n, value.as_deref()) {
                        (Some(n), _) if n.fract() == 0.0 && n.abs() < 9e15 => self.number(n as i64),
                        (_, Some(v)) => v.to_owned(),
                        _ => String::new(),
                    };
                    out.push_str(&self.render(&arm.replace('#', &shown), args));
                }
            }
        }
        out
    }

    /// The digit group separator: `,` in English, a narrow no-break space
    /// in Uzbek and Russian.
    pub fn group_separator(self) -> &'static str {
        match self {
            Lang::En => ",",
            // A narrow no-break space, as both conventions write it.
            Lang::Uz | Lang::Ru => "\u{202f}",
        }
    }

    /// The decimal separator: `.` in English, `,` in Uzbek and Russian.
    pub fn decimal_separator(self) -> char {
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
        format!("{value}{}", self.percent_sign())
    }

    /// What follows a percentage: `%`, or a no-break space and `%`.
    pub fn percent_sign(self) -> &'static str {
        match self {
            Lang::En => "%",
            Lang::Uz | Lang::Ru => "\u{a0}%",
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

/// A piece of a message.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    /// Text as written.
    Text(&'a str),
    /// `{name}`.
    Arg(&'a str),
    /// `{name, plural, category {arm} ...}`.
    Plural(&'a str, Vec<(&'a str, &'a str)>),
}

/// The pieces of a message; text that is not a well-formed placeholder is
/// kept as text (the catalog check reports it).
fn parse(text: &str) -> Vec<Part<'_>> {
    parse_checked(text).unwrap_or_else(|_| vec![Part::Text(text)])
}

/// The index of the `}` that closes the `{` at `open`.
fn closing(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The pieces of a message, or what is malformed in it.
fn parse_checked(text: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find(['{', '}']) {
        let open = rest + found;
        if text[open..].starts_with('}') {
            return Err(format!("a }} without its {{ at byte {open}"));
        }
        let close =
            closing(text, open).ok_or_else(|| format!("the {{ at byte {open} is never closed"))?;
        if open > rest {
            parts.push(Part::Text(&text[rest..open]));
        }
        let inner = &text[open + 1..close];
        match inner.split_once(',') {
            None if is_name(inner.trim()) => parts.push(Part::Arg(inner.trim())),
            None => return Err(format!("{{{inner}}} is not a placeholder name")),
            Some((name, kind)) => {
                let name = name.trim();
                let arms_text = kind
                    .trim_start()
                    .strip_prefix("plural")
                    .and_then(|k| k.trim_start().strip_prefix(','))
                    .ok_or_else(|| format!("{{{name}, ...}}: only plural is known"))?;
                if !is_name(name) {
                    return Err(format!("{name:?} is not a placeholder name"));
                }
                let mut arms = Vec::new();
                let mut at = 0;
                while let Some(brace) = arms_text[at..].find('{') {
                    let category = arms_text[at..at + brace].trim();
                    let end = closing(arms_text, at + brace)
                        .ok_or_else(|| format!("{name}: an arm is never closed"))?;
                    if !matches!(category, "zero" | "one" | "two" | "few" | "many" | "other") {
                        return Err(format!("{name}: {category:?} is not a plural category"));
                    }
                    arms.push((category, &arms_text[at + brace + 1..end]));
                    at = end + 1;
                }
                if !arms_text[at..].trim().is_empty() {
                    return Err(format!(
                        "{name}: {:?} after the last arm",
                        arms_text[at..].trim()
                    ));
                }
                for (_, arm) in &arms {
                    parse_checked(arm)?;
                }
                parts.push(Part::Plural(name, arms));
            }
        }
        rest = close + 1;
    }
    if rest < text.len() {
        parts.push(Part::Text(&text[rest..]));
    }
    Ok(parts)
}

/// The placeholder names of a message (plural ones and those inside arms).
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in parse(text) {
        match part {
            Part::Text(_) => {}
            Part::Arg(name) => {
                out.insert(name.to_owned());
            }
            Part::Plural(name, arms) => {
                out.insert(name.to_owned());
                for (_, arm) in arms {
                    out.extend(placeholders(arm));
                }
            }
        }
    }
    out
}

/// What is wrong with one message in one language: malformed braces, or a
/// plural that misses a category the language needs.
fn message_problems(lang: Lang, text: &str) -> Option<String> {
    let parts = match parse_checked(text) {
        Ok(parts) => parts,
        Err(e) => return Some(e),
    };
    for part in parts {
        if let Part::Plural(name, arms) = part {
            let missing: Vec<&str> = lang
                .plural_categories()
                .iter()
                .copied()
                .filter(|c| !arms.iter().any(|(a, _)| a == c))
                .collect();
            if !missing.is_empty() {
                return Some(format!("{{{name}, plural}} misses {}", missing.join(", ")));
            }
        }
    }
    None
}

/// A language's messages for the check: key → (file, text).
type Entries = BTreeMap<String, (&'static str, String)>;

/// Checks that every catalog parses, has the keys and placeholders of every
/// other, keeps each key in the same file, and writes well-formed
/// placeholders and plurals; the problems found, one per line.
pub fn check_catalogs() -> Vec<String> {
    let mut problems = Vec::new();
    let mut parsed: Vec<(Lang, Entries)> = Vec::new();
    for source in &SOURCES {
        let path = format!("catalogs/{}/{}.toml", source.lang.code(), source.file);
        let entries = match flatten(source.text) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{path}: {e}"));
                continue;
            }
        };
        let at = match parsed.iter().position(|(l, _)| *l == source.lang) {
            Some(at) => at,
            None => {
                parsed.push((source.lang, BTreeMap::new()));
                parsed.len() - 1
            }
        };
        for (key, text) in entries {
            if let Some(problem) = message_problems(source.lang, &text) {
                problems.push(format!("{path}: {key}: {problem}"));
            }
            if let Some((other, _)) = parsed[at].1.get(&key) {
                problems.push(format!(
                    "{path}: {key} is also in catalogs/{}/{other}.toml",
                    source.lang.code()
                ));
            }
            parsed[at].1.insert(key, (source.file, text));
        }
    }
    for (a, ca) in &parsed {
        for (b, cb) in &parsed {
            if a == b {
                continue;
            }
            for (key, (file, text_a)) in ca {
                let path = format!("catalogs/{}/{file}.toml", b.code());
                match cb.get(key) {
                    None => problems.push(format!(
                        "{path} misses {key} (in catalogs/{}/{file}.toml)",
                        a.code()
                    )),
                    Some((other, _)) if other != file => problems.push(format!(
                        "catalogs/{}/{other}.toml has {key}, catalogs/{}/{file}.toml too",
                        b.code(),
                        a.code()
                    )),
                    Some((_, text)) if placeholders(text) != placeholders(text_a) => {
                        problems.push(format!(
                            "{path}: {key} has placeholders {:?}, {} has {:?}",
                            placeholders(text),
                            a.code(),
                            placeholders(text_a)
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
            placeholders("{a} and {n, plural, one {# {b}} other {# {b}s}}, {a}"),
            ["a", "b", "n"].map(String::from).into()
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

    #[test]
    fn plurals() {
        let days = "{n, plural, one {# day} other {# days}} in {place}";
        let ru = "{n, plural, one {# день} few {# дня} many {# дней} other {# дня}}";
        let place: &dyn Display = &"Chilonzor";
        let with = |lang: Lang, text: &str, n: f64| {
            lang.render(text, &[("n", &n as &dyn Display), ("place", place)])
        };
        assert_eq!(with(Lang::En, days, 1.0), "1 day in Chilonzor");
        assert_eq!(with(Lang::En, days, 1200.0), "1,200 days in Chilonzor");
        assert_eq!(with(Lang::Ru, ru, 1.0), "1 день");
        assert_eq!(with(Lang::Ru, ru, 21.0), "21 день");
        assert_eq!(with(Lang::Ru, ru, 3.0), "3 дня");
        assert_eq!(with(Lang::Ru, ru, 12.0), "12 дней");
        assert_eq!(with(Lang::Ru, ru, 25.0), "25 дней");
        assert_eq!(with(Lang::Ru, ru, 111.0), "111 дней");
        assert_eq!(with(Lang::Ru, ru, 1.5), "1.5 дня");
        assert_eq!(message_problems(Lang::Ru, ru), None);
        assert_eq!(
            message_problems(Lang::Ru, days).as_deref(),
            Some("{n, plural} misses few, many")
        );
        assert!(message_problems(Lang::En, "{n, plural, one {x} other {y}").is_some());
        assert!(message_problems(Lang::En, "{n, select, a {x}}").is_some());
        assert!(message_problems(Lang::En, "a } b").is_some());
        assert!(message_problems(Lang::En, "{not a name}").is_some());
        assert_eq!(
            message_problems(Lang::En, "{n, plural, one {x} other {y}}"),
            None
        );
    }

    #[test]
    fn language_of_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Lang::from_env_with(move |name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(env(&[]), Lang::En);
        assert_eq!(env(&[("LANG", "ru_RU.UTF-8")]), Lang::Ru);
        assert_eq!(env(&[("LANG", "ru_RU.UTF-8"), ("LC_ALL", "C")]), Lang::En);
        assert_eq!(env(&[("LANG", "C"), ("POSBON_LANG", "uz")]), Lang::Uz);
        assert_eq!(
            env(&[("LC_MESSAGES", "uz_UZ@latin"), ("LANG", "en_US")]),
            Lang::Uz
        );
    }

    #[test]
    fn the_page_downloads_its_own_file() {
        for lang in Lang::ALL {
            let page = lang.messages_of("page");
            assert!(!page.is_empty(), "{lang:?}");
            assert!(page.keys().all(|k| !k.starts_with("report.")), "{lang:?}");
        }
        assert!(Lang::En.messages_of("nothing").is_empty());
    }
}
