//! The audit log: every login, identity change, lifecycle action, SQL query
//! and report read, appended to the store with the hash of the record
//! before it.
//!
//! | key | value |
//! |---|---|
//! | `a` · `r` · sequence (u64, big-endian) | [`AuditRecord`] |
//! | `a` · `h` | [`AuditHead`]: the last sequence and its hash |
//!
//! A record's `hash` is the SHA-256 of the hash before it and the record's
//! JSON without its `hash`; the first record chains to 64 zeros. A record
//! and the new head are written in one atomic batch. [`AuditLog::verify`]
//! recomputes the chain: a changed record breaks its own hash, a removed one
//! breaks the sequence or the next `prev`, and a removed tail no longer
//! matches the head.
//!
//! Appends are serialised by a lock inside the process, and each reads the
//! head from the store, so processes that append one after the other (the
//! API and the reporter of a split deployment) keep one chain. Two appends
//! at the same instant from two processes can still write the same
//! sequence: the store has no compare-and-swap yet, and `verify` then
//! reports the fork. Running several API replicas needs it (the cluster
//! work).

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use posbon_store::codec::{decode_json, encode_json};
use posbon_store::keys::{AUDIT, prefix_range};
use posbon_store::{EventStoreExt as _, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::secret::sha256_hex;

const RECORD: u8 = b'r';
const HEAD: u8 = b'h';
/// Where the kept part of a pruned log starts: the first sequence kept and
/// the hash of the record before it (what that record's `prev` must be).
const ANCHOR: u8 = b'g';
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn record_key(seq: u64) -> Vec<u8> {
    let mut key = vec![AUDIT, RECORD];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who: a user's name, `token:<name>` for an API token, or the name
    /// tried in a failed login.
    pub actor: String,
    /// Their role, when known.
    pub role: Option<String>,
    /// What: `login`, `login_failed`, `logout`, `token_create`, `token_revoke`,
    /// `user_add`, `user_remove`, `escalation_action`, `sql`, `report_read`,
    /// `report_generate`.
    pub action: String,
    /// On what (an escalation id, a token id, a report date and scope).
    pub target: Option<String>,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    /// Details (SQL text, rows, milliseconds, the refusal's reason).
    pub detail: serde_json::Value,
    /// Hash of the record before.
    pub prev: String,
    /// Hash of this record.
    #[serde(default)]
    pub hash: String,
}

impl AuditRecord {
    fn compute_hash(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.hash = String::new();
        let json = serde_json::to_vec(&unsigned).unwrap_or_default();
        let mut input = self.prev.as_bytes().to_vec();
        input.extend_from_slice(&json);
        sha256_hex(&input)
    }
}

/// What a new audit record says (the log adds sequence, time and hashes).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who.
    pub actor: String,
    /// Their role.
    pub role: Option<String>,
    /// What.
    pub action: &'static str,
    /// On what.
    pub target: Option<String>,
    /// `ok`, `refused` or `failed`.
    pub outcome: &'static str,
    /// Details.
    pub detail: serde_json::Value,
}

/// The last record's sequence and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Sequence of the last record (0: none).
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Records read.
    pub records: u64,
    /// Whether the chain is whole.
    pub ok: bool,
    /// The first problem found.
    pub problem: Option<String>,
}

/// The audit log of one store.
pub struct AuditLog {
    store: Store,
    /// Serialises appends in this process; holds the last head written.
    head: Mutex<Option<AuditHead>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// The log in `store` (read lazily).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            head: Mutex::new(None),
        }
    }

    async fn read_head(&self) -> Result<AuditHead, StoreError> {
        match self.store.get(&[AUDIT, HEAD]).await? {
            Some(bytes) => decode_json("audit head", &bytes),
            None => Ok(AuditHead {
                seq: 0,
                hash: GENESIS.to_owned(),
            }),
        }
    }

    /// Appends a record; returns it.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let mut head = self.head.lock().await;
        // Read from the store each time, so that processes appending one
        // after the other keep one chain (appends at the same instant from
        // two processes are not serialised: see the module docs).
        let current = self.read_head().await?;
        let mut record = AuditRecord {
            seq: current.seq + 1,
            at: Utc::now(),
            actor: entry.actor,
            role: entry.role,
            action: entry.action.to_owned(),
            target: entry.target,
            outcome: entry.outcome.to_owned(),
            detail: entry.detail,
            prev: current.hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let next = AuditHead {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        self.store
            .put_batch(vec![
                (
                    record_key(record.seq),
                    encode_json("audit record", &record)?,
                ),
                (vec![AUDIT, HEAD], encode_json("audit head", &next)?),
            ])
            .await?;
        *head = Some(next);
        Ok(record)
    }

    /// Appends a record, logging (not returning) a failure: for callers whose
    /// answer must not depend on the audit store.
    pub async fn record(&self, entry: AuditEntry) {
        let action = entry.action;
        if let Err(e) = self.append(entry).await {
            tracing::error!(error = %e, action, "cannot write the audit record");
        }
    }

    /// Up to `limit` records after sequence `after`, oldest first.
    pub async fn list(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let start = record_key(after.saturating_add(1));
        let (_, end) = prefix_range(&[AUDIT, RECORD]);
        let pairs = self.store.scan(&start, &end, limit).await?;
        pairs
            .iter()
            .map(|(_, v)| decode_json("audit record", v))
            .collect()
    }

    async fn read_anchor(&self) -> Result<AuditHead, StoreError> {
        match self.store.get(&[AUDIT, ANCHOR]).await? {
            Some(bytes) => decode_json("audit anchor", &bytes),
            None => Ok(AuditHead {
                seq: 1,
                hash: GENESIS.to_owned(),
            }),
        }
    }

    /// Deletes the records written before `cutoff` (retention), oldest
    /// first, and moves the anchor to the first one kept, so that
    /// [`AuditLog::verify`] checks the kept part from there. The newest
    /// record is always kept. Returns how many went.
    pub async fn prune_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let _head = self.head.lock().await;
        let head = self.read_head().await?;
        let anchor = self.read_anchor().await?;
        let start = record_key(anchor.seq);
        let (_, end) = prefix_range(&[AUDIT, RECORD]);
        let mut pairs = self.store.scan_stream(start, end, 1024);
        let mut expired: Vec<Vec<u8>> = Vec::new();
        let mut next = anchor;
        while let Some((key, value)) = pairs.try_next().await? {
            let record: AuditRecord = decode_json("audit record", &value)?;
            if record.at >= cutoff || record.seq >= head.seq {
                break;
            }
            expired.push(key);
            next = AuditHead {
                seq: record.seq + 1,
                hash: record.hash,
            };
        }
        drop(pairs);
        if expired.is_empty() {
            return Ok(0);
        }
        // The anchor first: a crash in between leaves records before the
        // anchor, which verify skips, never an anchor past missing records.
        self.store
            .put_batch(vec![(
                vec![AUDIT, ANCHOR],
                encode_json("audit anchor", &next)?,
            )])
            .await?;
        let n = expired.len() as u64;
        self.store.delete_keys(expired).await?;
        Ok(n)
    }

    /// Recomputes the chain, from the first record kept (the anchor, after
    /// retention) to the head.
    pub async fn verify(&self) -> Result<AuditVerification, StoreError> {
        let head = self.read_head().await?;
        let anchor = self.read_anchor().await?;
        let start = record_key(anchor.seq);
        let (_, end) = prefix_range(&[AUDIT, RECORD]);
        let mut pairs = self.store.scan_stream(start, end, 1024);
        let mut expected_seq = anchor.seq;
        let mut prev = anchor.hash;
        let mut records = 0u64;
        let fail = |records, problem: String| AuditVerification {
            records,
            ok: false,
            problem: Some(problem),
        };
        while let Some((key, value)) = pairs.try_next().await? {
            records += 1;
            let record: AuditRecord = match decode_json("audit record", &value) {
                Ok(r) => r,
                Err(e) => return Ok(fail(records, format!("record {key:?} is unreadable: {e}"))),
            };
            if key != record_key(record.seq) {
                return Ok(fail(
                    records,
                    format!(
                        "record {} is stored under another sequence's key",
                        record.seq
                    ),
                ));
            }
            if record.seq != expected_seq {
                return Ok(fail(
                    records,
                    format!(
                        "record {expected_seq} is missing (the next one is {})",
                        record.seq
                    ),
                ));
            }
            if record.prev != prev {
                return Ok(fail(
                    records,
                    format!("record {} does not follow the record before it", record.seq),
                ));
            }
            if record.compute_hash() != record.hash {
                return Ok(fail(
                    records,
                    format!("record {} was changed after it was written", record.seq),
                ));
            }
            prev = record.hash;
            expected_seq += 1;
        }
        let last = expected_seq - 1;
        if last != head.seq || prev != head.hash {
            return Ok(fail(
                records,
                format!(
                    "the log ends at record {last} but its head says {}: records were removed from the end",
                    head.seq
                ),
            ));
        }
        Ok(AuditVerification {
            records,
            ok: true,
            problem: None,
        })
    }
}
