//! Validation errors: every problem found in a document, each with its path.

use std::fmt;

use serde::{Deserialize, Serialize};

string_enum! {
    /// Stable, machine-readable code of a validation problem (snake_case on
    /// the wire and in metrics labels). New codes may be added; existing ones
    /// keep their meaning.
    ErrorCode, "error code" {
        /// The payload is not well-formed JSON.
        MalformedJson = "malformed_json",
        /// The payload is larger than [`crate::Limits::max_payload_bytes`].
        PayloadTooLarge = "payload_too_large",
        /// A required field is absent (or `null`).
        MissingField = "missing_field",
        /// A field that the contract does not define (put extras in `attributes`).
        UnknownField = "unknown_field",
        /// The same field appears twice in one object.
        DuplicateField = "duplicate_field",
        /// `kind` is not one of the event kinds.
        UnknownKind = "unknown_kind",
        /// An enumerated field (category, detection, ...) has a value outside its list.
        UnknownVariant = "unknown_variant",
        /// A field has the wrong JSON type.
        WrongType = "wrong_type",
        /// A number is outside its allowed range.
        OutOfRange = "out_of_range",
        /// A number is NaN or infinite, or overflows a 64-bit float (e.g. `1e400`).
        NotFinite = "not_finite",
        /// A string is longer than allowed.
        TooLong = "too_long",
        /// A string that must not be empty is empty.
        Empty = "empty",
        /// An object has more entries than allowed.
        TooManyEntries = "too_many_entries",
        /// A timestamp is not RFC 3339 with an offset.
        InvalidTimestamp = "invalid_timestamp",
        /// A timestamp is further in the future than allowed.
        InFuture = "in_future",
        /// A timestamp is before the earliest allowed instant.
        TooOld = "too_old",
        /// An id contains characters other than visible ASCII.
        InvalidId = "invalid_id",
        /// A field of another event kind (e.g. `camera_id` on an incident).
        FieldNotAllowedForKind = "field_not_allowed_for_kind",
        /// An event of another kind than the subject it arrived on names
        /// (a `fraud_flag` on `posbon.ingest.incident`).
        KindNotAllowedOnSubject = "kind_not_allowed_on_subject",
        /// A batch (JSON array or NDJSON) holds more items than
        /// [`crate::Limits::max_batch_items`]; none of it was taken.
        BatchTooLarge = "batch_too_large",
        /// Processing the message failed inside the service (a bug, not the
        /// producer's mistake): it is kept on the dead-letter queue instead
        /// of being offered again forever.
        ProcessingFailed = "processing_failed",
    }
}

/// One problem in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct FieldError {
    /// JSON path of the offending value, e.g. `location.lat` or
    /// `attributes.foo`; empty for the whole document. Keys that are not plain
    /// identifiers are written in brackets: `attributes["a b"]`.
    pub path: String,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation, lowercase, without the path.
    pub message: String,
}

impl FieldError {
    /// A new error.
    pub fn new(path: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a document (never empty when returned as an error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// An empty list.
    pub const fn new() -> Self {
        Self { errors: Vec::new() }
    }

    /// A list of one error.
    pub fn single(path: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError::new(path, code, message)],
        }
    }

    /// Adds an error.
    pub fn push(&mut self, path: impl Into<String>, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, code, message));
    }

    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.errors.iter()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// True when some error has this code.
    pub fn has_code(&self, code: ErrorCode) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// True when some error is about exactly this path.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    /// The first error with this path, if any.
    pub fn get(&self, path: &str) -> Option<&FieldError> {
        self.errors.iter().find(|e| e.path == path)
    }

    /// The distinct codes, in order of first appearance.
    pub fn codes(&self) -> Vec<ErrorCode> {
        let mut out = Vec::new();
        for e in &self.errors {
            if !out.contains(&e.code) {
                out.push(e.code);
            }
        }
        out
    }

    /// Consumes the list.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.errors
    }

    /// `Ok(ok)` when empty, otherwise `Err(self)`.
    pub fn into_result<T>(self, ok: T) -> Result<T, Self> {
        if self.errors.is_empty() {
            Ok(ok)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for ValidationErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self { errors: vec![e] }
    }
}
