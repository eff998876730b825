//! [`CellId`]: an H3 cell index, carried as a hex string on the wire.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regular expression (JSON Schema dialect) of a [`CellId`] on the wire.
pub const CELL_PATTERN: &str = "^[0-9a-f]{15}$";

/// An H3 cell index (at the storage resolution).
///
/// In Rust a `u64`; on the wire the 15-hex-digit lowercase H3 string such as
/// `"8a2a1072b59ffff"`, because JSON numbers above 2^53 lose precision in
/// JavaScript consumers. Every valid H3 cell index is below 2^60 and so fits in
/// 15 hex digits; this type does not otherwise check H3 validity (that is the
/// geography crate's job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId(u64);

/// Error of [`CellId::from_str`] and [`CellId::try_from`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cell id {0:?}: expected 15 lowercase hex digits, e.g. 8a2a1072b59ffff")]
pub struct InvalidCellId(pub String);

impl CellId {
    /// Largest raw value that fits in 15 hex digits.
    pub const MAX_RAW: u64 = (1 << 60) - 1;

    /// Wraps a raw H3 index; `None` when it does not fit in 15 hex digits
    /// (no valid H3 cell index does).
    pub const fn new(raw: u64) -> Option<Self> {
        if raw <= Self::MAX_RAW {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The raw H3 index.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for CellId {
    type Error = InvalidCellId;

    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        Self::new(raw).ok_or_else(|| InvalidCellId(format!("{raw:x}")))
    }
}

impl From<CellId> for u64 {
    fn from(c: CellId) -> Self {
        c.0
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:015x}", self.0)
    }
}

impl FromStr for CellId {
    type Err = InvalidCellId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == 15
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(InvalidCellId(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(CellId)
            .map_err(|_| InvalidCellId(s.to_owned()))
    }
}

impl Serialize for CellId {
    /// What `Display` writes, without going through `core::fmt` (every
    /// event is serialised with its cell on its way to the bus).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // 15 digits: `new` keeps the value within MAX_RAW.
        let mut buf = [0u8; 15];
        let mut v = self.0;
        for b in buf.iter_mut().rev() {
            *b = HEX[(v & 0xf) as usize];
            v >>= 4;
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => serializer.serialize_str(s),
            Err(_) => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for CellId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CellId {
    fn schema_name() -> Cow<'static, str> {
        "CellId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "H3 cell index as 15 lowercase hex digits, e.g. 8a2a1072b59ffff",
            "type": "string",
            "pattern": CELL_PATTERN,
        })
    }
}
