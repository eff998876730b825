//! Configuration of the ingest service (`[ingest]` in the TOML file,
//! `POSBON__INGEST__*` in the environment).

use posbon_model::Span;
use std::path::PathBuf;

use serde::Deserialize;

/// Defaults embedded in the binary; a file and the environment override them.
pub const DEFAULTS: &str = include_str!("default.toml");

/// The whole configuration file of `posbon-ingest`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The ingest service.
    pub ingest: IngestConfig,
    /// The store that holds identities (producers' tokens): the cluster's
    /// TiKV, which every service shares.
    pub store: posbon_store::StoreConfig,
    /// Identities and the HTTP guard.
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS: credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
}

/// How ingest runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the HTTP server (`POST /v1/events`, `/healthz`, `/readyz`, `/metrics`).
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs; several for a cluster.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Required by the service binaries: every service of a deployment loads the same file (`posbon_service::registry`); the library entry points take a loaded registry.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// Largest single event in bytes.
    pub max_event_bytes: usize,
    /// Largest HTTP body (one event or a batch) in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Most events in one batch (a JSON array or NDJSON body, over HTTP or
    /// NATS); a larger batch is refused whole (HTTP 413, `batch_too_large`).
    #[serde(default = "default_max_batch_items")]
    pub max_batch_items: usize,
    /// How far in the future `occurred_at` may be (clock skew; `5m`).
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub max_future: Span,
    /// File whose first line is the key of the keyed hash that pseudonymises
    /// fraud account references (at least 32 characters; `posbon standalone`
    /// generates `<data>/pseudonym.key`). Keep it secret and stable: the same
    /// account must hash the same way every day.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
    /// The key itself, for a secret supplied through the environment
    /// (`POSBON__INGEST__PSEUDONYM_KEY`); never put it in a file that is
    /// shared. There is no default: ingest refuses to start without a key.
    #[serde(default)]
    pub pseudonym_key: Option<String>,
    /// Messages fetched from INGEST per batch.
    pub fetch_batch: usize,
    /// Bytes (subjects, headers, payloads) fetched from INGEST per batch, at
    /// most: with [`IngestConfig::fetch_batch`], this bounds what a batch
    /// holds in memory whatever the messages' sizes (a message larger than
    /// the bound still comes, alone).
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: usize,
    /// How long JetStream waits for an ack before redelivering an INGEST message.
    pub ack_wait: Span,
    /// How events are encoded on EVENTS: `compact` (binary, a third of the
    /// bytes, cheap to encode and decode) or `json` (for consumers of your own
    /// that read JSON). Posbon's consumers read both.
    #[serde(default)]
    pub events_encoding: posbon_model::EventEncoding,
}

fn default_max_batch_items() -> usize {
    posbon_model::DEFAULT_MAX_BATCH_ITEMS
}

/// 16 MiB: about 40,000 typical events, or 16 of the largest messages
/// nats-server accepts by default.
fn default_fetch_max_bytes() -> usize {
    16 << 20
}

/// Shortest pseudonym key accepted, in characters.
pub const MIN_PSEUDONYM_KEY_CHARS: usize = 32;

/// The key an earlier release shipped as a default: anyone with the
/// repository has it, so it is refused.
const SHIPPED_KEY: &str = "change-me: posbon pseudonym key";

impl IngestConfig {
    /// The pseudonym keys, from `pseudonym_key_file` (one key per line,
    /// `<id> <secret>`, newest first; a line with the secret alone is key
    /// `k1`) or `pseudonym_key` (one key, `k1`), exactly one. The error names
    /// the setting, never a key.
    pub fn pseudonym_key(&self) -> anyhow::Result<posbon_model::PseudonymKeys> {
        let text = match (&self.pseudonym_key_file, &self.pseudonym_key) {
            (Some(file), None) => std::fs::read_to_string(file).map_err(|e| {
                anyhow::anyhow!("ingest.pseudonym_key_file {}: {e}", file.display())
            })?,
            (None, Some(key)) => key.trim().to_owned(),
            (Some(_), Some(_)) => anyhow::bail!(
                "ingest.pseudonym_key and ingest.pseudonym_key_file are both set: give one"
            ),
            (None, None) => anyhow::bail!(
                "no pseudonym key: ingest refuses to start without the secret that \
                 pseudonymises fraud account references. Set ingest.pseudonym_key_file to a \
                 file (mode 0600) whose first line is at least {MIN_PSEUDONYM_KEY_CHARS} random \
                 characters (`openssl rand -hex 32`), or POSBON__INGEST__PSEUDONYM_KEY"
            ),
        };
        anyhow::ensure!(
            !text.contains(SHIPPED_KEY),
            "the pseudonym key is the default an earlier release shipped, which anyone can \
             read: generate your own (`openssl rand -hex 32`)"
        );
        let keys = match &self.pseudonym_key_file {
            Some(file) => posbon_model::PseudonymKeys::parse(&text, MIN_PSEUDONYM_KEY_CHARS)
                .map_err(|e| format!("ingest.pseudonym_key_file {}: {e}", file.display())),
            // One key, whatever characters it holds.
            None if text.chars().count() < MIN_PSEUDONYM_KEY_CHARS => Err(format!(
                "ingest.pseudonym_key: shorter than {MIN_PSEUDONYM_KEY_CHARS} characters"
            )),
            None => posbon_model::PseudonymKeys::single("k1", text.as_bytes())
                .map_err(|e| format!("ingest.pseudonym_key: {e}")),
        };
        keys.map_err(|e| anyhow::anyhow!("{e}: generate a key with `openssl rand -hex 32`"))
    }
}

/// Writes a new random pseudonym key (32 bytes, hex) to `path` with mode
/// 0600 when no file is there; returns whether it did. `posbon standalone`
/// and `posbon demo` call it for `<data>/pseudonym.key` on their first start.
pub fn generate_pseudonym_key_file(path: &std::path::Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    posbon_auth::secret::write_secret_file(
        path,
        &format!(
            "# fraud pseudonym keys, newest first: <id> <secret>. Keep and back up.\nk1 {}",
            posbon_auth::secret::random_hex(32)
        ),
    )
    .map_err(|e| anyhow::anyhow!("cannot write the pseudonym key {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IngestConfig {
        let mut c: FileConfig = crate::serve::load_config(None).expect("defaults load");
        c.ingest.pseudonym_key = None;
        c.ingest.pseudonym_key_file = None;
        c.ingest
    }

    #[test]
    fn no_pseudonym_key_ships_and_weak_ones_are_refused() {
        let mut c = config();
        let e = c.pseudonym_key().expect_err("no default").to_string();
        assert!(
            e.contains("ingest.pseudonym_key_file") && e.contains("POSBON__INGEST__PSEUDONYM_KEY"),
            "{e}"
        );
        c.pseudonym_key = Some(SHIPPED_KEY.into());
        let e = c.pseudonym_key().expect_err("shipped").to_string();
        assert!(e.contains("earlier release shipped"), "{e}");
        c.pseudonym_key = Some("short".into());
        let e = c.pseudonym_key().expect_err("short").to_string();
        assert!(e.contains("shorter than 32"), "{e}");
        assert!(!e.contains("short\""), "the key is never in the error: {e}");
        c.pseudonym_key = Some("a-key-given-in-the-environment-of-32-chars".into());
        assert_eq!(c.pseudonym_key().expect("env key").current_id(), "k1");

        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("pseudonym.key");
        assert!(generate_pseudonym_key_file(&file).expect("generated"));
        assert!(
            !generate_pseudonym_key_file(&file).expect("kept"),
            "never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        c.pseudonym_key_file = Some(file.clone());
        let e = c.pseudonym_key().expect_err("both").to_string();
        assert!(e.contains("both set"), "{e}");
        c.pseudonym_key = None;
        let keys = c.pseudonym_key().expect("from the file");
        assert_eq!(keys.current_id(), "k1");
        // A new key rolled in on top: it is the one in use.
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, format!("k2 {}\n{text}", "b".repeat(64))).expect("write");
        let keys = c.pseudonym_key().expect("two keys");
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["k1", "k2"]);
        c.pseudonym_key_file = Some(dir.path().join("missing.key"));
        let e = c.pseudonym_key().expect_err("missing").to_string();
        assert!(e.contains("missing.key"), "{e}");
    }
}
