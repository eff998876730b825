//! The `config_toml` target: a configuration file, read the way the
//! services read theirs.

use super::Sig;
use crate::Features;

/// Largest input [`config_toml`] reads.
pub const CONFIG_MAX_BYTES: usize = 64 << 10;

/// Fuzz target: a configuration file, read the way the services read theirs
/// ([`posbon_service::load_config`], through figment's TOML) into
/// [`posbon_ingest::FileConfig`] and [`posbon_api::serve::FileConfig`], and
/// as a plain [`toml::Value`] with the workspace's `toml`; inputs up to
/// [`CONFIG_MAX_BYTES`] of UTF-8.
///
/// A document that `toml` reads is written out and must read back the same.
/// (`POSBON__` environment variables, if any are set, are merged too.)
pub fn config_toml(data: &[u8]) {
    config_toml_features(data);
}

pub(crate) fn config_toml_features(data: &[u8]) -> Features {
    if data.len() > CONFIG_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("config_toml");
    let Ok(text) = std::str::from_utf8(data) else {
        return sig.finish();
    };
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => {
            sig.add(&table.len().min(8));
            let written = toml::to_string(&table).expect("a table writes out");
            let back: toml::Table = toml::from_str(&written)
                .unwrap_or_else(|e| panic!("written toml does not read back: {e}\n{written}"));
            assert!(
                same_toml(&toml::Value::Table(back), &toml::Value::Table(table)),
                "toml changes through a write and a read:\n{written}"
            );
        }
        Err(e) => sig.text(e.message()),
    }
    match posbon_service::load_config::<posbon_ingest::FileConfig>(text, None) {
        Ok(config) => {
            sig.add("ingest");
            sig.add(config.ingest.events_encoding.content_type());
        }
        Err(e) => figment_error_shape(&mut sig, &e.to_string()),
    }
    match posbon_service::load_config::<posbon_api::serve::FileConfig>(text, None) {
        Ok(config) => {
            sig.add("api");
            sig.add(&config.api.validate().is_ok());
            let _ = config.api.feed_keepalive();
        }
        Err(e) => figment_error_shape(&mut sig, &e.to_string()),
    }
    sig.finish()
}

/// A figment error's first line, and its last one: a TOML syntax error
/// quotes the input between them.
fn figment_error_shape(sig: &mut Sig, message: &str) {
    sig.text(message);
    sig.text(message.lines().last().unwrap_or_default());
}

/// Equality of TOML values where NaN equals NaN.
fn same_toml(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_toml(x, y))
        }
        (V::Table(x), V::Table(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_toml(v, w)))
        }
        _ => a == b,
    }
}
