//! The run-time parameters a connection shows (`SHOW`, `current_setting`)
//! and the few a client may change (`SET`): those drivers and tools set to
//! describe themselves or the format they read. Everything else is fixed,
//! and a `SET` that would change it is refused with the reason: the server
//! is read-only, sends text in UTF-8 and times in UTC.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use posbon_sql::datafusion::arrow::array::{Array, ArrayRef, StringArray};
use posbon_sql::datafusion::arrow::datatypes::DataType;
use posbon_sql::datafusion::common::cast::as_string_array;
use posbon_sql::datafusion::error::DataFusionError;
use posbon_sql::datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The PostgreSQL version the server reports: clients switch features on
/// it, and Posbon speaks the protocol of this version.
pub(crate) const SERVER_VERSION: &str = "16.6";
/// [`SERVER_VERSION`] as `server_version_num`.
pub(crate) const SERVER_VERSION_NUM: &str = "160006";

/// Why a `SET` was refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The SQLSTATE.
    pub(crate) code: &'static str,
    /// The message.
    pub(crate) message: String,
}

/// One connection's parameters.
#[derive(Debug)]
pub(crate) struct Settings {
    values: Mutex<BTreeMap<String, String>>,
    /// The server's time limit of a query.
    limit: Duration,
}

impl Settings {
    /// The parameters of a new connection, with the client's startup
    /// parameters that it may set (`application_name`, ...).
    pub(crate) fn new(
        limit: Duration,
        startup: &std::collections::HashMap<String, String>,
    ) -> Arc<Self> {
        let mut values = BTreeMap::new();
        for (name, value) in [
            ("server_version", SERVER_VERSION.to_owned()),
            ("server_version_num", SERVER_VERSION_NUM.to_owned()),
            ("server_encoding", "UTF8".to_owned()),
            ("client_encoding", "UTF8".to_owned()),
            ("datestyle", "ISO, YMD".to_owned()),
            ("intervalstyle", "postgres".to_owned()),
            ("timezone", "UTC".to_owned()),
            ("standard_conforming_strings", "on".to_owned()),
            ("integer_datetimes", "on".to_owned()),
            ("is_superuser", "off".to_owned()),
            ("default_transaction_read_only", "on".to_owned()),
            ("transaction_read_only", "on".to_owned()),
            ("transaction_isolation", "read committed".to_owned()),
            ("default_transaction_isolation", "read committed".to_owned()),
            ("max_identifier_length", "63".to_owned()),
            ("search_path", "public".to_owned()),
            ("application_name", String::new()),
            ("extra_float_digits", "1".to_owned()),
            ("statement_timeout", "0".to_owned()),
            ("lc_messages", "C".to_owned()),
            ("lc_monetary", "C".to_owned()),
            ("lc_numeric", "C".to_owned()),
            ("lc_time", "C".to_owned()),
            ("in_hot_standby", "off".to_owned()),
        ] {
            values.insert(name.to_owned(), value);
        }
        let settings = Self {
            values: Mutex::new(values),
            limit,
        };
        for (name, value) in startup {
            // Startup parameters a client may not set are ignored, as
            // PostgreSQL ignores those it reports anyway.
            let _ = settings.set(name, value);
        }
        Arc::new(settings)
    }

    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `name` (case-insensitive), if it is a parameter.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.values().get(&name.to_ascii_lowercase()).cloned()
    }

    /// Sets `name` to `value`, or says why not.
    pub(crate) fn set(&self, name: &str, value: &str) -> Result<(), Refusal> {
        let name = name.to_ascii_lowercase();
        let value = value.trim();
        let Some(current) = self.get(&name) else {
            return Err(Refusal {
                code: "42704",
                message: format!("unrecognized configuration parameter \"{name}\""),
            });
        };
        let accepted = match name.as_str() {
            "application_name" => Some(value.chars().take(63).collect()),
            "extra_float_digits" => value
                .parse::<i32>()
                .ok()
                .filter(|d| (-15..=3).contains(d))
                .map(|d| d.to_string()),
            "statement_timeout" => parse_duration(value).map(|d| {
                if d.is_zero() {
                    "0".to_owned()
                } else {
                    format!("{}ms", d.as_millis())
                }
            }),
            "client_encoding" => matches!(
                value.to_ascii_uppercase().replace(['-', '_'], "").as_str(),
                "UTF8" | "UNICODE"
            )
            .then(|| "UTF8".to_owned()),
            "datestyle" => value
                .to_ascii_uppercase()
                .starts_with("ISO")
                .then(|| "ISO, YMD".to_owned()),
            "timezone" => matches!(
                value.to_ascii_uppercase().as_str(),
                "UTC" | "ETC/UTC" | "GMT" | "ETC/GMT" | "Z" | "UCT" | "ZULU" | "+00" | "00:00"
            )
            .then(|| "UTC".to_owned()),
            "search_path" => value
                .split(',')
                .map(|p| p.trim().trim_matches('"').to_ascii_lowercase())
                .all(|p| matches!(p.as_str(), "public" | "$user" | "pg_catalog" | ""))
                .then(|| "public".to_owned()),
            "intervalstyle" => value
                .eq_ignore_ascii_case("postgres")
                .then(|| "postgres".to_owned()),
            _ => (value == current).then(|| current.clone()),
        };
        match accepted {
            Some(v) => {
                self.values().insert(name, v);
                Ok(())
            }
            None => Err(Refusal {
                code: if matches!(name.as_str(), "extra_float_digits" | "statement_timeout") {
                    "22023"
                } else {
                    "0A000"
                },
                message: format!(
                    "parameter \"{name}\" cannot be set to {value:?} here: {}",
                    why_fixed(&name)
                ),
            }),
        }
    }

    /// Sets `name` back to its value at connection start.
    pub(crate) fn reset(&self, name: &str) -> Result<(), Refusal> {
        let default = Settings::new(self.limit, &Default::default());
        match default.get(name) {
            Some(v) => {
                self.values().insert(name.to_ascii_lowercase(), v);
                Ok(())
            }
            None => Err(Refusal {
                code: "42704",
                message: format!("unrecognized configuration parameter \"{name}\""),
            }),
        }
    }

    /// The time limit of the next statement: the server's, or the
    /// connection's `statement_timeout` when that is shorter.
    pub(crate) fn statement_timeout(&self) -> Duration {
        let own = self
            .get("statement_timeout")
            .and_then(|v| parse_duration(&v))
            .filter(|d| !d.is_zero());
        own.map_or(self.limit, |d| d.min(self.limit))
    }
}

/// Why a parameter keeps its value.
fn why_fixed(name: &str) -> &'static str {
    match name {
        "timezone" => "times are sent in UTC (timestamptz carries the offset)",
        "client_encoding" => "text is sent in UTF8",
        "datestyle" => "dates are sent in ISO",
        "search_path" => "the tables are in schema public",
        "transaction_read_only" | "default_transaction_read_only" => "this server is read-only",
        "extra_float_digits" => "it takes an integer from -15 to 3",
        "statement_timeout" => "it takes a duration such as 500, '500ms', '30s' or '1min'",
        _ => "the server fixes it",
    }
}

/// A PostgreSQL duration setting: milliseconds without a unit, or with
/// `us`, `ms`, `s`, `min`, `h`, `d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().trim_matches('\'').trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => number,
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return None,
    };
    (0.0..1e12)
        .contains(&ms)
        .then(|| Duration::from_micros((ms * 1000.0) as u64))
}

/// `current_setting(name)`: the connection's value of a parameter, an
/// error naming it when there is none.
pub(crate) fn current_setting_udf(settings: Arc<Settings>) -> ScalarUDF {
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let rows = args.iter().fold(1, |n, a| match a {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => n,
            });
            let names = args
                .first()
                .ok_or_else(|| DataFusionError::Plan("current_setting takes a name".into()))?
                .to_array(rows)?;
            let names = as_string_array(&names)?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let Some(name) = name else {
                    out.push(None);
                    continue;
                };
                match settings.get(name) {
                    Some(v) => out.push(Some(v)),
                    None => {
                        return Err(DataFusionError::Plan(format!(
                            "unrecognized configuration parameter \"{name}\""
                        )));
                    }
                }
            }
            Ok(ColumnarValue::Array(
                Arc::new(StringArray::from(out)) as ArrayRef
            ))
        }),
    )
}

/// `version()`: what PostgreSQL's says, naming Posbon.
pub(crate) fn version_udf() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {SERVER_VERSION} (Posbon {}, read-only SQL over Apache DataFusion)",
        env!("CARGO_PKG_VERSION")
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                posbon_sql::datafusion::common::ScalarValue::Utf8(Some(text.clone())),
            ))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<Settings> {
        Settings::new(Duration::from_secs(30), &Default::default())
    }

    #[test]
    fn cosmetic_parameters_are_set_and_the_rest_refused_with_a_reason() {
        let s = settings();
        s.set("application_name", "grafana")
            .expect("application_name");
        assert_eq!(s.get("APPLICATION_NAME").as_deref(), Some("grafana"));
        s.set("TimeZone", "Etc/UTC").expect("UTC");
        let refused = s.set("timezone", "Asia/Tashkent").expect_err("not UTC");
        assert_eq!(refused.code, "0A000");
        assert!(refused.message.contains("UTC"), "{}", refused.message);
        let refused = s
            .set("transaction_read_only", "off")
            .expect_err("read-only");
        assert!(refused.message.contains("read-only"), "{}", refused.message);
        assert_eq!(s.set("work_mem", "1GB").expect_err("unknown").code, "42704");
        s.set("search_path", "\"$user\", public")
            .expect("search_path");
        assert!(s.set("search_path", "secret").is_err());
    }

    #[test]
    fn statement_timeout_only_shortens_the_servers_limit() {
        let s = settings();
        assert_eq!(s.statement_timeout(), Duration::from_secs(30));
        s.set("statement_timeout", "250").expect("ms");
        assert_eq!(s.statement_timeout(), Duration::from_millis(250));
        s.set("statement_timeout", "'2min'").expect("min");
        assert_eq!(s.statement_timeout(), Duration::from_secs(30));
        s.set("statement_timeout", "0").expect("zero");
        assert_eq!(s.statement_timeout(), Duration::from_secs(30));
        assert!(s.set("statement_timeout", "soon").is_err());
        s.reset("statement_timeout").expect("reset");
        assert_eq!(s.get("statement_timeout").as_deref(), Some("0"));
    }
}
