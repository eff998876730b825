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

/// True when `s` has the exact shape of a pseudonym: `hmac1:` and 32
/// lowercase hex digits ([`pseudonymise_account_ref`]), or `hmac2:<key
/// id>:` and 32 lowercase hex digits ([`PseudonymKeys::pseudonymise`]).
///
/// Note that a producer can send a raw reference of this shape; the ingest
/// boundary should pseudonymise every fraud flag exactly once and rely on
/// this only when re-processing stored records.
pub fn is_pseudonymised(s: &str) -> bool {
    if let Some(h) = s.strip_prefix(PSEUDONYM_PREFIX) {
        return is_hex32(h);
    }
    s.strip_prefix(NAMED_PSEUDONYM_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(id, h)| valid_key_id(id) && is_hex32(h))
}

/// Prefix of a pseudonym that names its key: `hmac2:<key id>:` and 32
/// lowercase hex digits.
pub const NAMED_PSEUDONYM_PREFIX: &str = "hmac2:";

/// Longest key id.
pub(crate) const MAX_KEY_ID: usize = 16;

/// One pseudonym key: an id (named by the pseudonyms it makes) and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudonymKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The pseudonym keys, oldest first; the newest is the one in use.
///
/// Rotation without losing joins: the pseudonym under the keys
/// `k1, …, kn` is made by chaining, `p1 = HMAC(k1, reference)` and
/// `pi = HMAC(ki, "hmac2:<k(i-1)>:" + p(i-1))`, named by the newest key. So a
/// pseudonym already stored under an older key is lifted to the newest with
/// the newer keys alone ([`PseudonymKeys::lift`]), without the reference it
/// came from, and equals what the newest keys make of that reference: after
/// `posbon store rekey-pseudonyms`, old and new flags of one account join
/// again. A leaked old key no longer reveals anything the newer one hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKeys {
    keys: Vec<PseudonymKey>,
}

impl std::fmt::Debug for PseudonymKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

fn hmac_hex(secret: &[u8], data: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(data.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..PSEUDONYM_HEX_DIGITS / 2])
}

fn named(id: &str, hex: &str) -> String {
    format!("{NAMED_PSEUDONYM_PREFIX}{id}:{hex}")
}

impl PseudonymKeys {
    /// One key (`id`, `secret`).
    pub fn single(id: &str, secret: &[u8]) -> Result<Self, String> {
        Self::new(vec![(id.to_owned(), secret.to_vec())])
    }

    /// Keys oldest first, `(id, secret)`; ids distinct, 1 to 16 of
    /// `[a-z0-9-]`; secrets not empty.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("no pseudonym key".to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        for (id, secret) in &keys {
            if !valid_key_id(id) {
                return Err(format!(
                    "pseudonym key id {id:?}: use 1 to {MAX_KEY_ID} of a-z, 0-9 and -"
                ));
            }
            if secret.is_empty() {
                return Err(format!("pseudonym key {id}: the secret is empty"));
            }
            if !seen.insert(id.clone()) {
                return Err(format!("pseudonym key id {id} appears twice"));
            }
        }
        Ok(Self {
            keys: keys
                .into_iter()
                .map(|(id, secret)| PseudonymKey { id, secret })
                .collect(),
        })
    }

    /// A key file: one key per line, `<id> <secret>` (a line with the secret
    /// alone is key `k1`), **newest first**; blank lines and lines starting
    /// with `#` are skipped. `min_secret` is the shortest secret accepted.
    pub fn parse(text: &str, min_secret: usize) -> Result<Self, String> {
        let mut newest_first = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, secret) = match line.split_once(char::is_whitespace) {
                Some((id, secret)) => (id.to_owned(), secret.trim()),
                None => ("k1".to_owned(), line),
            };
            if secret.chars().count() < min_secret {
                return Err(format!(
                    "pseudonym key {id}: shorter than {min_secret} characters"
                ));
            }
            newest_first.push((id, secret.as_bytes().to_vec()));
        }
        newest_first.reverse();
        Self::new(newest_first)
    }

    /// The id of the key in use.
    pub fn current_id(&self) -> &str {
        &self.keys[self.keys.len() - 1].id
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The pseudonym of `account_ref` under every key, named by the newest:
    /// `hmac2:<id>:` and 32 lowercase hex digits.
    pub fn pseudonymise(&self, account_ref: &str) -> String {
        let first = &self.keys[0];
        let mut p = named(&first.id, &hmac_hex(&first.secret, account_ref));
        for key in &self.keys[1..] {
            p = named(&key.id, &hmac_hex(&key.secret, &p));
        }
        p
    }

    /// A stored pseudonym as the newest key would make it: one named by an
    /// older key of these is carried up the chain; an `hmac1:` pseudonym
    /// (no name) counts as the oldest key's. `None` for a pseudonym of a key
    /// that is not here, or a value that is not a pseudonym.
    pub fn lift(&self, pseudonym: &str) -> Option<String> {
        let (mut at, mut p) = if let Some(hex) = pseudonym.strip_prefix(PSEUDONYM_PREFIX) {
            if !is_hex32(hex) {
                return None;
            }
            (0, named(&self.keys[0].id, hex))
        } else {
            let rest = pseudonym.strip_prefix(NAMED_PSEUDONYM_PREFIX)?;
            let (id, hex) = rest.split_once(':')?;
            if !is_hex32(hex) {
                return None;
            }
            (
                self.keys.iter().position(|k| k.id == id)?,
                pseudonym.to_owned(),
            )
        };
        while at + 1 < self.keys.len() {
            at += 1;
            let key = &self.keys[at];
            p = named(&key.id, &hmac_hex(&key.secret, &p));
        }
        Some(p)
    }
}

fn is_hex32(h: &str) -> bool {
    h.len() == PSEUDONYM_HEX_DIGITS
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
