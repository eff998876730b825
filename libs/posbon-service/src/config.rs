//! Layered configuration: embedded defaults, then a TOML file, then
//! `POSBON__`-prefixed environment variables (`POSBON__INGEST__LISTEN` sets
//! `ingest.listen`). Unknown keys are rejected: the target types use
//! `#[serde(deny_unknown_fields)]`, so a typo fails at start-up instead of being
//! ignored.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
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
    let mut figment = Figment::new().merge(Toml::string(defaults));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Missing(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed("POSBON__").split("__"));
    figment
        .extract()
        .map_err(|e| ConfigError::Invalid(e.to_string().to_lowercase()))
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
}
