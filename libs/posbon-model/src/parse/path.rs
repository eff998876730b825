//! JSON paths in error reports: building them, taking their last segment, and
//! asking whether errors were already reported at or below one.

use crate::error::ValidationErrors;

/// Appends `key` to `parent` as `parent.key`, or `parent["key"]` when the key
/// is not a plain identifier.
pub(crate) fn join_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => {
            let quoted = serde_json::to_string(key).unwrap_or_default();
            format!("{parent}[{quoted}]")
        }
    }
}

pub(super) fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

impl ValidationErrors {
    /// True when some error is about `path` or a path below it.
    pub(crate) fn has_path_prefix(&self, path: &str) -> bool {
        self.iter().any(|e| {
            e.path == path
                || (e.path.starts_with(path)
                    && matches!(e.path.as_bytes().get(path.len()), Some(b'.' | b'[')))
        })
    }
}
