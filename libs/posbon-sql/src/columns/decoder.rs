//! The [`Decoder`]: turns pages of stored records, of either version, into
//! record batches of the projected columns, taking what it can from the key.

use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::{Offset, TimeZone};
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use posbon_model::{EventKind, compact};
use serde::de::DeserializeSeed;

use super::compact_v2::COMPACT_V2;
use super::json_v1::{JSON_V1, RecSeed};
use super::record::{Attrs, Need, Rec};
use super::{Builder, Col, TIME_ZONE, TableDef};
use crate::error::SqlError;

/// The kind of a stored record from its first bytes, without decoding it;
/// `None` when the record does not start the usual way.
fn peek_kind(record: &[u8]) -> Option<EventKind> {
    const HEAD: &[u8] = br#"{"event":{"kind":""#;
    if let Some(rest) = record.strip_prefix(&[COMPACT_V2]) {
        return compact::peek_kind(rest);
    }
    let json = record.strip_prefix(&[JSON_V1])?;
    let rest = json.strip_prefix(HEAD)?;
    let end = rest.iter().position(|&b| b == b'"')?;
    EventKind::from_wire(std::str::from_utf8(&rest[..end]).ok()?)
}

/// Turns pages of stored records into record batches of the projected
/// columns of one table.
#[derive(Debug)]
pub(crate) struct Decoder {
    cols: Vec<Col>,
    schema: SchemaRef,
    kind: Option<EventKind>,
    needs_record: bool,
    /// The record fields the columns need.
    need: Need,
    /// Whether records come with `e` keys (cell in the key) or `t` keys.
    cell_keys: bool,
    /// The UTC hour and the time zone's offset in it, seconds.
    offset_cache: (i64, i32),
    /// When set, only rows whose cell is in one of these ranges (sorted by
    /// start) are kept.
    cell_filter: Option<Arc<Vec<RangeInclusive<u64>>>>,
}

/// A decoded key: what every row has without its record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyParts<'a> {
    pub(crate) micros: i64,
    pub(crate) cell: Option<u64>,
    pub(crate) id: &'a [u8],
}

impl Decoder {
    /// A decoder of `table`'s columns at `projection` (indexes into its
    /// columns; all when `None`), for records read with `e` keys when
    /// `cell_keys`, else `t` keys.
    pub(crate) fn new(table: &TableDef, projection: &[usize], cell_keys: bool) -> Self {
        let cols: Vec<Col> = projection.iter().map(|&i| table.cols[i].0).collect();
        let full = table.schema();
        let schema = Arc::new(full.project(projection).unwrap_or_else(|_| Schema::empty()));
        let needs_record = cols.iter().any(|c| !c.in_key(cell_keys));
        let mut need = cols.iter().fold(0, |n, &c| n | Need::of(c, cell_keys));
        if table.kind.is_some() {
            // To recognise other kinds when the first bytes do not tell.
            need |= Need::KIND;
        }
        Self {
            cols,
            schema,
            kind: table.kind,
            needs_record,
            need: Need(need),
            cell_keys,
            offset_cache: (i64::MIN, 0),
            cell_filter: None,
        }
    }

    /// Keeps only rows whose cell falls in one of `ranges` (sorted by start).
    pub(crate) fn keep_cells(&mut self, ranges: Arc<Vec<RangeInclusive<u64>>>) {
        if !self.cell_keys {
            self.needs_record = true;
            self.need.0 |= Need::CELL;
        }
        self.cell_filter = Some(ranges);
    }

    fn cell_kept(&self, cell: u64) -> bool {
        let Some(ranges) = &self.cell_filter else {
            return true;
        };
        let i = ranges.partition_point(|r| *r.start() <= cell);
        i > 0 && ranges[i - 1].contains(&cell)
    }

    /// The schema of the batches.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The local date of an instant, as days since 1970-01-01.
    fn local_date(&mut self, micros: i64) -> i32 {
        let hour = micros.div_euclid(3_600_000_000);
        if self.offset_cache.0 != hour {
            let offset = chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| {
                    TIME_ZONE
                        .offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc()
                })
                .unwrap_or(0);
            self.offset_cache = (hour, offset);
        }
        let local = micros + i64::from(self.offset_cache.1) * 1_000_000;
        local.div_euclid(86_400_000_000) as i32
    }

    /// Decodes the rows of `records` whose key passes `keep` into one batch.
    /// `key` extracts the key parts of each entry.
    pub(crate) fn decode<'a, I>(
        &mut self,
        records: I,
        capacity: usize,
    ) -> Result<RecordBatch, SqlError>
    where
        I: Iterator<Item = (KeyParts<'a>, &'a [u8])>,
    {
        let mut builders: Vec<Builder> = self
            .cols
            .iter()
            .map(|&c| Builder::new(c, capacity))
            .collect();
        let mut rows = 0usize;
        for (key, record) in records {
            if let (Some(kind), Some(found)) = (self.kind, peek_kind(record))
                && found != kind
            {
                continue;
            }
            let peeked = self.kind.and_then(|_| peek_kind(record));
            let rec = if self.needs_record || (self.kind.is_some() && peeked.is_none()) {
                let rec = match record.split_first() {
                    Some((&COMPACT_V2, rest)) => {
                        let view = compact::view(rest).map_err(|e| {
                            SqlError::internal(format!("cannot decode a stored event record: {e}"))
                        })?;
                        Rec::of_compact(&view)
                    }
                    Some((&JSON_V1, json)) => {
                        let mut de = serde_json::Deserializer::from_slice(json);
                        RecSeed(self.need).deserialize(&mut de).map_err(|e| {
                            SqlError::internal(format!("cannot decode a stored event record: {e}"))
                        })?
                    }
                    _ => return Err(SqlError::internal("unknown event record version")),
                };
                if let Some(kind) = self.kind
                    && rec.event.kind.as_ref().is_none_or(|k| k.0 != kind.as_str())
                {
                    continue;
                }
                Some(rec)
            } else {
                None
            };
            if self.cell_filter.is_some() {
                let cell = match (key.cell, &rec) {
                    (Some(cell), _) => cell,
                    (None, Some(rec)) => rec.cell.ok_or_else(no_cell)?,
                    (None, None) => return Err(SqlError::internal("cell filter without the cell")),
                };
                if !self.cell_kept(cell) {
                    continue;
                }
            }
            rows += 1;
            for (i, builder) in builders.iter_mut().enumerate() {
                let col = self.cols[i];
                self.append(builder, col, &key, rec.as_ref())?;
            }
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(Builder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema(), columns, &options)
            .map_err(|e| SqlError::internal(format!("cannot build a record batch: {e}")))
    }

    fn append(
        &mut self,
        b: &mut Builder,
        col: Col,
        key: &KeyParts<'_>,
        rec: Option<&Rec<'_>>,
    ) -> Result<(), SqlError> {
        let missing = || SqlError::internal(format!("column {} needs the record", col.name()));
        match col {
            Col::Id => b.str(Some(
                std::str::from_utf8(key.id)
                    .map_err(|_| SqlError::internal("event id is not utf-8"))?,
            )),
            Col::OccurredAt => {
                if let Builder::Ts(t) = b {
                    t.append_value(key.micros);
                }
            }
            Col::LocalDate => {
                let day = self.local_date(key.micros);
                if let Builder::Date(d) = b {
                    d.append_value(day);
                }
            }
            Col::Cell if self.cell_keys => {
                if let (Builder::U64(u), Some(cell)) = (&mut *b, key.cell) {
                    u.append_value(cell);
                }
            }
            _ => {
                let rec = rec.ok_or_else(missing)?;
                append_from_record(b, col, rec)?;
            }
        }
        Ok(())
    }
}

/// Appends a value that comes from the record.
fn append_from_record(b: &mut Builder, col: Col, rec: &Rec<'_>) -> Result<(), SqlError> {
    let ev = &rec.event;
    let missing = |what: &str| SqlError::internal(format!("a stored event record has no {what}"));
    match col {
        Col::Kind => b.str(Some(&ev.kind.as_ref().ok_or_else(|| missing("kind"))?.0)),
        Col::IngestedAt => {
            let micros = rec.ingested_at.ok_or_else(|| missing("ingested_at"))?;
            if let Builder::Ts(ts) = b {
                ts.append_value(micros);
            }
        }
        Col::Lat | Col::Lng => {
            let loc = ev.location.as_ref().ok_or_else(|| missing("location"))?;
            b.f64(Some(if col == Col::Lat { loc.lat } else { loc.lng }));
        }
        Col::AccuracyM => b.f64(ev.location.as_ref().and_then(|l| l.accuracy_m)),
        Col::Cell => {
            let cell = rec.cell.ok_or_else(no_cell)?;
            if let Builder::U64(u) = b {
                u.append_value(cell);
            }
        }
        Col::MahallaId => b.str(rec.mahalla_id.as_ref().map(|v| v.0.as_ref())),
        Col::DistrictId => b.str(rec.district_id.as_ref().map(|v| v.0.as_ref())),
        Col::RegionId => b.str(rec.region_id.as_ref().map(|v| v.0.as_ref())),
        Col::Source => b.str(Some(
            &ev.source.as_ref().ok_or_else(|| missing("source"))?.0,
        )),
        Col::AnyCategory => b.str(ev.any_category()),
        Col::Severity => {
            if let Builder::U8(u) = b {
                u.append_option(ev.severity);
            }
        }
        Col::Confidence => b.f64(ev.confidence),
        Col::AmountUzs => b.f64(ev.amount_uzs),
        Col::Attributes => match ev.attributes {
            Some(Attrs::Json(raw)) => b.str(Some(raw.get())),
            Some(Attrs::Compact(attrs)) => {
                let map: std::collections::BTreeMap<&str, &str> = attrs.iter().collect();
                let text = serde_json::to_string(&map)
                    .map_err(|e| SqlError::internal(format!("cannot write attributes: {e}")))?;
                b.str(Some(&text));
            }
            None => b.str(None),
        },
        Col::IncidentCategory => b.str(ev.category.as_ref().map(|v| v.0.as_ref())),
        Col::Status => b.str(Some(
            ev.status.as_ref().map_or("reported", |v| v.0.as_ref()),
        )),
        Col::VictimMinor => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_minor)),
        Col::VictimYouth => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_youth)),
        Col::VictimWoman => b.bool(ev.flags.as_ref().is_some_and(|f| f.victim_woman)),
        Col::OffenderMinor => b.bool(ev.flags.as_ref().is_some_and(|f| f.offender_minor)),
        Col::OffenderYouth => b.bool(ev.flags.as_ref().is_some_and(|f| f.offender_youth)),
        Col::Domestic => b.bool(ev.flags.as_ref().is_some_and(|f| f.domestic)),
        Col::Description => b.str(ev.description.as_ref().map(|v| v.0.as_ref())),
        Col::CameraId => b.str(ev.camera_id.as_ref().map(|v| v.0.as_ref())),
        Col::Detection => b.str(ev.detection.as_ref().map(|v| v.0.as_ref())),
        Col::Model => b.str(ev.model.as_ref().map(|v| v.0.as_ref())),
        Col::SnapshotUri => b.str(ev.snapshot_uri.as_ref().map(|v| v.0.as_ref())),
        Col::Scheme => b.str(ev.scheme.as_ref().map(|v| v.0.as_ref())),
        Col::Channel => b.str(ev.channel.as_ref().map(|v| v.0.as_ref())),
        Col::PaymentSystem => b.str(ev.payment_system.as_ref().map(|v| v.0.as_ref())),
        Col::AccountRef => b.str(ev.account_ref.as_ref().map(|v| v.0.as_ref())),
        Col::DetectorScore => b.f64(ev.detector_score),
        Col::Id | Col::OccurredAt | Col::LocalDate => {}
    }
    Ok(())
}

/// The error of a record read without its cell.
fn no_cell() -> SqlError {
    SqlError::internal("a stored event record has no cell")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_recognised_from_the_first_bytes() {
        let rec = b"\x01{\"event\":{\"kind\":\"camera_alert\",\"id\":\"x\"}}";
        assert_eq!(peek_kind(rec), Some(EventKind::CameraAlert));
        assert_eq!(peek_kind(b"\x01{\"cell\":1}"), None);
        assert_eq!(peek_kind(b"\x03{\"event\":{\"kind\":\"incident\""), None);
        assert_eq!(peek_kind(b"\x02\x02"), Some(EventKind::FraudFlag));
        assert_eq!(peek_kind(b"\x02\x09"), None);
    }
}
