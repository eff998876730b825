//! The one rule for a place id (a mahalla's, a district's, a region's),
//! wherever one comes from: the registry file, a caller's scope (API
//! request, identity-provider claim), a report's scope, a feed's filter.
//!
//! An id that passes is safe as it is in every place Posbon puts one: a NATS
//! subject token, a store key, a SQL literal, a log field.

/// Longest id accepted for a mahalla, district or region.
pub const MAX_ID_LEN: usize = 64;

/// Checks that `id` is a place id: 1..=64 bytes of lowercase ASCII letters,
/// digits, `_` and `-`, starting with a letter or digit (so that no id can be
/// the bus's `_unassigned`). The error completes a sentence that names the
/// id's field: "properties.district {error}".
pub fn check_place_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} bytes long, more than {MAX_ID_LEN}",
            id.len()
        ));
    }
    let first_ok = id.as_bytes()[0].is_ascii_lowercase() || id.as_bytes()[0].is_ascii_digit();
    let all_ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !first_ok || !all_ok {
        return Err(format!(
            "{id:?} may only hold lowercase ascii letters, digits, '_' and '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_ids() {
        for good in ["tashkent", "yunusobod-7", "m_001", "1abc"] {
            assert_eq!(check_place_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "_unassigned",
            "-x",
            "Tashkent",
            "a.b",
            "a*",
            ">",
            "a b",
            "mahalla\n",
            "ё",
        ] {
            assert!(check_place_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_place_id(&"a".repeat(64)).is_ok());
        assert!(
            check_place_id(&"a".repeat(65))
                .unwrap_err()
                .contains("more than 64")
        );
    }
}
