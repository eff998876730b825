//! Layered configuration: embedded defaults, then a TOML file, then
//! `POSBON__`-prefixed environment variables (`POSBON__INGEST__LISTEN` sets
//! `ingest.listen`). Unknown keys are rejected: the target types use
//! `#[serde(deny_unknown_fields)]`, so a typo fails at start-up instead of being
//! ignored.
//!
//! Durations are written with their unit (`timeout = "30s"`, see
//! [`posbon_model::Span`]). The integer keys of earlier releases
//! (`timeout_secs = 30`, `fetch_wait_ms = 200`, `session_hours = 12`) are still
//! read, from the file and from the environment: each is turned into its new
//! key, and the service logs a deprecation warning naming both
//! ([`take_config_warnings`]). Writing the old and the new key together is an
//! error.

use std::path::Path;
use std::sync::Mutex;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Why configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file named on the command line does not exist.
    #[error("config file {0} does not exist")]
    Missing(String),
    /// A value is missing, of the wrong type, or unknown.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from `defaults` (TOML text embedded in the binary), then `file`,
/// then the environment (`POSBON__SECTION__KEY=value`).
pub fn load_config<T: DeserializeOwned>(
    defaults: &str,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    let mut figment = Figment::new().merge(Migrated(Toml::string(defaults)));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        figment = figment.merge(Migrated(Toml::file(path)));
    }
    figment = figment.merge(Migrated(Env::prefixed("POSBON__").split("__")));
    figment
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string().to_lowercase()))
}

/// The unit suffixes of earlier releases' integer duration keys, and the unit
/// each number was in.
const LEGACY_DURATION_SUFFIXES: [(&str, &str); 3] =
    [("_secs", "s"), ("_ms", "ms"), ("_hours", "h")];

/// Deprecation warnings of the configurations loaded so far, waiting for
/// telemetry to log them.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The deprecation warnings of the configurations loaded since the last call
/// (an old key that was read and what to write instead). [`crate::run_service`]
/// logs them once telemetry is up.
pub fn take_config_warnings() -> Vec<String> {
    std::mem::take(&mut *WARNINGS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A provider whose old integer duration keys are read as their new keys.
struct Migrated<P>(P);

impl<P: Provider> Provider for Migrated<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.0.data()?;
        let metadata = self.0.metadata();
        let source = match &metadata.source {
            Some(source) => source.to_string(),
            None => metadata.name.to_string(),
        };
        let mut warnings = Vec::new();
        for dict in data.values_mut() {
            migrate_durations(dict, "", &mut warnings).map_err(figment::Error::from)?;
        }
        if !warnings.is_empty() {
            WARNINGS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(warnings.into_iter().map(|w| format!("{w} ({source})")));
        }
        Ok(data)
    }

    fn profile(&self) -> Option<Profile> {
        self.0.profile()
    }
}

/// Renames, throughout `dict`, each `<name>_secs` / `_ms` / `_hours` key
/// holding a whole number to `<name>` holding that duration with its unit.
/// `prefix` is the dotted path of `dict`, for the messages.
fn migrate_durations(
    dict: &mut Dict,
    prefix: &str,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let keys: Vec<String> = dict.keys().cloned().collect();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(Value::Dict(_, inner)) = dict.get_mut(&key) {
            migrate_durations(inner, &path, warnings)?;
            continue;
        }
        let Some((name, unit)) = LEGACY_DURATION_SUFFIXES
            .iter()
            .find_map(|(suffix, unit)| Some((key.strip_suffix(suffix)?, *unit)))
        else {
            continue;
        };
        let Some(value) = dict.get(&key) else {
            continue;
        };
        // TOML gives signed integers, the environment unsigned ones.
        let number = match value {
            Value::String(_, text) => text.trim().parse::<i128>().ok(),
            other => other
                .to_i128()
                .or_else(|| other.to_u128().and_then(|n| i128::try_from(n).ok())),
        };
        let Some(number) = number else { continue };
        let name = name.to_owned();
        let new_path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if dict.contains_key(&name) {
            return Err(format!(
                "{path} and {new_path} are the same setting: keep only {new_path}"
            ));
        }
        let tag = value.tag();
        let text = format!("{number}{unit}");
        warnings.push(format!(
            "configuration key {path} is deprecated: write {new_path} = \"{text}\""
        ));
        dict.remove(&key);
        dict.insert(name, Value::String(tag, text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        listen: String,
        batch: u32,
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_fail() {
        let dir = std::env::temp_dir().join(format!("posbon-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "batch = 7\n").expect("write");
        let conf: Conf =
            load_config("listen = \"127.0.0.1:1\"\nbatch = 1\n", Some(&file)).expect("loads");
        assert_eq!(
            conf,
            Conf {
                listen: "127.0.0.1:1".into(),
                batch: 7
            }
        );
        std::fs::write(&file, "batch = 7\nbatchh = 8\n").expect("write");
        let err = load_config::<Conf>("listen = \"x\"\nbatch = 1\n", Some(&file))
            .expect_err("unknown key");
        assert!(err.to_string().contains("batchh"), "{err}");
        let err = load_config::<Conf>("listen = \"x\"\nbatch = 1\n", Some(&dir.join("nope.toml")))
            .expect_err("missing file");
        assert!(err.to_string().contains("does not exist"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Timed {
        timeout: posbon_model::Span,
        #[serde(with = "posbon_model::span::zero_allowed")]
        leeway: posbon_model::Span,
        inner: Inner,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        wait: posbon_model::Span,
        session: posbon_model::Span,
    }

    const TIMED: &str =
        "timeout = \"30s\"\nleeway = \"0s\"\n[inner]\nwait = \"1s\"\nsession = \"12h\"\n";

    #[test]
    fn old_integer_duration_keys_are_read_as_their_new_keys_with_a_warning() {
        use posbon_model::Span;
        let dir = std::env::temp_dir().join(format!("posbon-config-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "timeout_secs = 45\nleeway_secs = 0\n[inner]\nwait_ms = 250\nsession_hours = 8\n",
        )
        .expect("write");
        take_config_warnings();
        let conf: Timed = load_config(TIMED, Some(&file)).expect("old keys load");
        assert_eq!(
            conf,
            Timed {
                timeout: Span::from_secs(45),
                leeway: Span::ZERO,
                inner: Inner {
                    wait: Span::from_millis(250),
                    session: Span::from_hours(8),
                },
            }
        );
        let warnings = take_config_warnings();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings.iter().any(|w| w
                .contains("inner.wait_ms is deprecated: write inner.wait = \"250ms\"")
                && w.contains("c.toml")),
            "{warnings:?}"
        );

        // Old and new together is refused, naming both.
        std::fs::write(&file, "timeout_secs = 45\ntimeout = \"1m\"\n").expect("write");
        let err = load_config::<Timed>(TIMED, Some(&file)).expect_err("both");
        assert!(
            err.to_string().contains("timeout_secs and timeout"),
            "{err}"
        );

        // A bare number under a new key is refused with a hint.
        std::fs::write(&file, "timeout = 45\n").expect("write");
        let err = load_config::<Timed>(TIMED, Some(&file)).expect_err("no unit");
        assert!(err.to_string().contains("needs a unit"), "{err}");
        assert!(err.to_string().contains("timeout"), "{err}");

        // The environment's numbers are unsigned; they are read too.
        let mut env = Dict::new();
        env.insert("wait_ms".into(), Value::from(250u8));
        env.insert("session_hours".into(), Value::from("8"));
        let mut notes = Vec::new();
        migrate_durations(&mut env, "inner", &mut notes).expect("migrates");
        assert_eq!(env.get("wait").and_then(Value::as_str), Some("250ms"));
        assert_eq!(env.get("session").and_then(Value::as_str), Some("8h"));
        assert_eq!(notes.len(), 2, "{notes:?}");

        // Zero only where the setting allows it.
        std::fs::write(&file, "timeout = \"0s\"\n").expect("write");
        let err = load_config::<Timed>(TIMED, Some(&file)).expect_err("zero");
        assert!(err.to_string().contains("above zero"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
