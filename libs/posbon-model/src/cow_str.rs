//! [`CowStr`]: a string deserialised in place where the input allows it, the
//! one borrowed-string type of the event parser, the SQL record decoders and
//! ingest's first look at an item.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A string borrowed from the input when it has no escapes, owned otherwise
/// (`"a\"b"` cannot be borrowed; `"ab"` is).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'a> CowStr<'a> {
    /// `text`, borrowed.
    pub const fn borrowed(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, copied only if it was borrowed.
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let plain: CowStr<'_> = serde_json::from_str(r#""incident""#).expect("plain");
        assert!(matches!(plain.0, Cow::Borrowed("incident")));
        let escaped: CowStr<'_> = serde_json::from_str(r#""inci\u0064ent""#).expect("escaped");
        assert!(matches!(&escaped.0, Cow::Owned(s) if s == "incident"));
        assert_eq!(escaped.as_str(), "incident");
        assert!(serde_json::from_str::<CowStr<'_>>("7").is_err());
    }
}
