//! Keyed pseudonymisation of account and card references.
//!
//! Fraud flags carry an `account_ref` (card number, account number, wallet
//! id). Before an event is stored it is replaced by a keyed HMAC-SHA256
//! pseudonym: the same reference always maps to the same pseudonym under one
//! key (so repeat victims and mule accounts can still be linked), but without
//! the key the original cannot be recovered or confirmed by brute force over
//! the small space of card numbers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of a pseudonym (`1` is the scheme version).
pub const PSEUDONYM_PREFIX: &str = "hmac1:";

/// Number of hex digits kept from the HMAC (128 bits).
pub const PSEUDONYM_HEX_DIGITS: usize = 32;

/// Keyed pseudonym of an account reference: `"hmac1:"` followed by the first
/// 32 lowercase hex digits of HMAC-SHA256(key, account_ref).
///
/// The key must be secret and stable (rotating it breaks linking across the
/// rotation). Always hashes; use [`is_pseudonymised`] (or
/// [`crate::FraudFlag::pseudonymise`]) to avoid hashing twice.
pub fn pseudonymise_account_ref(key: &[u8], account_ref: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(account_ref.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX_DIGITS);
    out.push_str(PSEUDONYM_PREFIX);
    out.push_str(&hex::encode(&digest[..PSEUDONYM_HEX_DIGITS / 2]));
    out
}

/// True when `s` has the exact shape of a pseudonym produced by
/// [`pseudonymise_account_ref`]: `hmac1:` and 32 lowercase hex digits.
///
/// Note that a producer can send a raw reference of this shape; the ingest
/// boundary should pseudonymise every fraud flag exactly once and rely on
/// this only when re-processing stored records.
pub fn is_pseudonymised(s: &str) -> bool {
    s.strip_prefix(PSEUDONYM_PREFIX).is_some_and(|h| {
        h.len() == PSEUDONYM_HEX_DIGITS
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
