//! Lifting stored pseudonyms to the newest pseudonym key, after a new key
//! was rolled in (`posbon store rekey-pseudonyms`): every stored fraud flag
//! whose `account_ref` names an older key of the ring is rewritten with
//! [`PseudonymKeys::lift`], which needs only the newer keys, so old and new
//! flags of one account join again. Idempotent; run it after ingest took
//! the new key, and again once the INGEST backlog is drained.

use posbon_model::{Event, PseudonymKeys};

use crate::codec::{decode_event, encode_event};
use crate::error::Result;
use crate::keys::{
    EVENT_BY_TIME, decode_event_time_key, event_cell_key, hour_of, prefix_range, write_mark_key,
};
use futures::TryStreamExt as _;

use crate::{DEFAULT_PAGE, EventStore, EventStoreExt as _};

/// What [`rekey_pseudonyms`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// Fraud flags read.
    pub flags: u64,
    /// Flags rewritten (or, dry, to rewrite) under the newest key.
    pub lifted: u64,
    /// Flags whose pseudonym names a key that is not in the ring (left alone).
    pub unknown_key: u64,
    /// Nothing was written.
    pub dry_run: bool,
}

/// Rewrites every stored fraud flag whose pseudonym names an older key of
/// `keys` under the newest one (both of its records, `e` and `t`), and
/// renews the write marks of the hours touched.
pub async fn rekey_pseudonyms(
    store: &dyn EventStore,
    keys: &PseudonymKeys,
    dry_run: bool,
) -> Result<RekeyReport> {
    let mut report = RekeyReport {
        dry_run,
        ..RekeyReport::default()
    };
    let (start, end) = prefix_range(&[EVENT_BY_TIME]);
    let token = crate::ext::write_token();
    let mut pages = store.scan_pages(start, end, DEFAULT_PAGE);
    while let Some(page) = pages.try_next().await? {
        let mut batch = Vec::new();
        let mut hours = std::collections::BTreeSet::new();
        for (key, value) in &page {
            let Some(time) = decode_event_time_key(key) else {
                continue;
            };
            let mut event = decode_event(value)?;
            let Event::FraudFlag(flag) = &mut event.event else {
                continue;
            };
            report.flags += 1;
            match keys.lift(&flag.account_ref) {
                Some(lifted) if lifted != flag.account_ref => {
                    flag.replace_account_ref(lifted);
                    report.lifted += 1;
                    let record = encode_event(&event);
                    let id = event.event.id();
                    batch.push((
                        event_cell_key(event.cell.get(), time.micros, id),
                        record.clone(),
                    ));
                    batch.push((key.clone(), record));
                    hours.insert(hour_of(time.micros));
                }
                Some(_) => {}
                None => report.unknown_key += 1,
            }
        }
        if !dry_run && !batch.is_empty() {
            batch.extend(
                hours
                    .into_iter()
                    .map(|h| (write_mark_key(h), token.clone())),
            );
            store.put_batch(batch).await?;
        }
    }
    Ok(report)
}
