//! Columnar day segments: the events of one local (Asia/Tashkent) day, for
//! each event table, stored column by column as Arrow IPC, so that a query
//! over whole days reads only the columns it projects, already decoded,
//! instead of decoding every stored JSON record of those days.
//!
//! A segment is derived data: the rows are always the events in the store.
//! It records the store's [write-marks digest](posbon_store::EventStoreExt::write_marks_digest)
//! of its day when it was built, and a scan uses it only while the digest
//! is unchanged; an event written later for that day (a late event, a
//! replay) changes the digest, and the scan reads the day's records again
//! until the segment is rebuilt. A segment is therefore never stale, only
//! unused.
//!
//! Layout, as [documents](posbon_store::DocumentStoreExt) (stored in
//! parts, so a column may be larger than one value):
//!
//! | kind | key | document |
//! |---|---|---|
//! | `segment.<table>` | `YYYY-MM-DD` | the manifest (JSON): format, digest, window, rows, rows per chunk, columns |
//! | `segment.<table>.<column>` | `YYYY-MM-DD.<digest>` | the column: an Arrow IPC stream, one batch per chunk of [`CHUNK_ROWS`] rows, LZ4 |
//!
//! Columns are written first, then the manifest that names their digest,
//! then the columns of the version it replaces are removed. A reader that
//! finds a column missing (replaced while it read) reads the day's records
//! instead. [`build_day`] makes or refreshes the segments of a day; the
//! reporter runs it for each day it reports on and for the recent days.

use std::io::Cursor;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use futures::TryStreamExt;
use posbon_store::keys::decode_event_time_key;
use posbon_store::{DocumentStoreExt, EventStoreExt, Store};
use serde::{Deserialize, Serialize};

use crate::columns::{Decoder, KeyParts, TableDef, local_day_start};
use crate::error::SqlError;
use crate::scan::PAGE;

/// Version of the segment format; a segment of another version is not used.
pub const FORMAT: u32 = 1;
/// Rows per chunk (one IPC batch of each column, one record batch read).
pub const CHUNK_ROWS: usize = 8192;

/// The manifest of one table's segment of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: u32,
    /// The write-marks digest of the day when the segment was built, hex.
    pub(crate) digest: String,
    /// The day: `occurred_at` in `[from, to)`, microseconds.
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) rows: u64,
    /// Rows of each chunk.
    pub(crate) chunks: Vec<u32>,
    /// The column names, in table order.
    pub(crate) columns: Vec<String>,
}

/// A segment a scan reads in place of a day's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentPart {
    pub(crate) date: NaiveDate,
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) digest: String,
    pub(crate) rows: u64,
    pub(crate) chunks: Arc<Vec<u32>>,
}

/// What [`build_day`] did for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBuild {
    /// The local date.
    pub date: NaiveDate,
    /// False when every table's segment was already current.
    pub built: bool,
    /// Events of the day (rows of the `events` segment).
    pub rows: u64,
    /// Bytes of the column documents written.
    pub bytes: u64,
}

/// The `[from, to)` window of a local date, microseconds.
pub(crate) fn day_window(date: NaiveDate) -> Result<(i64, i64), SqlError> {
    let next = date
        .succ_opt()
        .ok_or_else(|| SqlError::invalid(format!("no day after {date}")))?;
    match (local_day_start(date), local_day_start(next)) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(SqlError::invalid(format!("{date} is out of range"))),
    }
}

/// The store's write-marks digest of a local day, hex: it changes whenever
/// an event of that day is written (a late event, a replay, a backfill), so
/// anything derived from the day's events and recorded with its digest can
/// tell whether it is current.
pub async fn day_digest(store: &Store, date: NaiveDate) -> Result<String, SqlError> {
    let (from, to) = day_window(date)?;
    Ok(hex(store.write_marks_digest(from, to).await?))
}

fn manifest_kind(table: &str) -> String {
    format!("segment.{table}")
}

fn column_kind(table: &str, column: &str) -> String {
    format!("segment.{table}.{column}")
}

fn column_key(date: NaiveDate, digest: &str) -> String {
    format!("{date}.{digest}")
}

fn hex(digest: u64) -> String {
    format!("{digest:016x}")
}

fn column_names(table: &TableDef) -> Vec<String> {
    table
        .cols
        .iter()
        .map(|(c, _)| c.name().to_owned())
        .collect()
}

/// The stored manifest of `table` for `date`, if any.
async fn manifest(
    store: &Store,
    table: &str,
    date: NaiveDate,
) -> Result<Option<Manifest>, SqlError> {
    let Some(bytes) = store
        .get_document(&manifest_kind(table), &date.to_string())
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        SqlError::internal(format!(
            "the segment manifest of {table} on {date} is corrupt: {e}"
        ))
    })
}

impl Manifest {
    /// True when the segment holds `table`'s columns as the store has them
    /// now (`digest`).
    fn current(&self, table: &TableDef, digest: &str) -> bool {
        self.format == FORMAT && self.digest == digest && self.columns == column_names(table)
    }
}

/// The segment of `table` for `date`, when one is stored and current.
pub(crate) async fn current_segment(
    store: &Store,
    table: &TableDef,
    date: NaiveDate,
) -> Result<Option<SegmentPart>, SqlError> {
    let Some(m) = manifest(store, table.name, date).await? else {
        return Ok(None);
    };
    let (from, to) = day_window(date)?;
    let digest = day_digest(store, date).await?;
    if !m.current(table, &digest) || (m.from, m.to) != (from, to) {
        return Ok(None);
    }
    Ok(Some(SegmentPart {
        date,
        from,
        to,
        digest: m.digest,
        rows: m.rows,
        chunks: Arc::new(m.chunks),
    }))
}

/// Makes the segments of every event table for `date` from the events
/// stored now, unless they are current already. Reads the day's records
/// once and holds the decoded day in memory while it writes.
pub async fn build_day(store: &Store, date: NaiveDate) -> Result<DayBuild, SqlError> {
    let (from, to) = day_window(date)?;
    let digest = day_digest(store, date).await?;
    let tables = TableDef::event_tables();
    let mut old = Vec::with_capacity(tables.len());
    for def in &tables {
        old.push(manifest(store, def.name, date).await?);
    }
    if tables
        .iter()
        .zip(&old)
        .all(|(def, m)| m.as_ref().is_some_and(|m| m.current(def, &digest)))
    {
        let rows = old[0].as_ref().map_or(0, |m| m.rows);
        return Ok(DayBuild {
            date,
            built: false,
            rows,
            bytes: 0,
        });
    }
    let mut decoders: Vec<Decoder> = tables
        .iter()
        .map(|def| Decoder::new(def, &(0..def.cols.len()).collect::<Vec<_>>(), false))
        .collect();
    let mut decoded: Vec<Vec<RecordBatch>> = vec![Vec::new(); tables.len()];
    {
        let mut pages = store.time_record_pages(from, to, PAGE);
        while let Some(page) = pages.try_next().await? {
            for (decoder, out) in decoders.iter_mut().zip(&mut decoded) {
                let rows = page.iter().filter_map(|(key, value)| {
                    decode_event_time_key(key).map(|k| {
                        let parts = KeyParts {
                            micros: k.micros,
                            cell: None,
                            id: k.id,
                        };
                        (parts, value.as_slice())
                    })
                });
                let batch = decoder.decode(rows, page.len())?;
                if batch.num_rows() > 0 {
                    out.push(batch);
                }
            }
        }
    }
    let mut summary = DayBuild {
        date,
        built: true,
        rows: 0,
        bytes: 0,
    };
    for ((def, decoder), (batches, old)) in tables
        .iter()
        .zip(&decoders)
        .zip(decoded.into_iter().zip(old))
    {
        let schema = decoder.schema();
        let all = concat_batches(&schema, &batches).map_err(arrow_error)?;
        drop(batches);
        let n = all.num_rows();
        let chunks: Vec<RecordBatch> = (0..n)
            .step_by(CHUNK_ROWS)
            .map(|start| all.slice(start, CHUNK_ROWS.min(n - start)))
            .collect();
        let key = column_key(date, &digest);
        if !chunks.is_empty() {
            for (i, field) in schema.fields().iter().enumerate() {
                let bytes = encode_column(field, chunks.iter().map(|c| c.column(i)))?;
                summary.bytes += bytes.len() as u64;
                store
                    .put_document(&column_kind(def.name, field.name()), &key, &bytes)
                    .await?;
            }
        }
        let manifest = Manifest {
            format: FORMAT,
            digest: digest.clone(),
            from,
            to,
            rows: n as u64,
            chunks: chunks.iter().map(|c| c.num_rows() as u32).collect(),
            columns: column_names(def),
        };
        if def.kind.is_none() {
            summary.rows = manifest.rows;
        }
        let json = serde_json::to_vec(&manifest)
            .map_err(|e| SqlError::internal(format!("cannot encode a segment manifest: {e}")))?;
        store
            .put_document(&manifest_kind(def.name), &date.to_string(), &json)
            .await?;
        if let Some(old) = old
            && old.digest != digest
        {
            let old_key = column_key(date, &old.digest);
            for column in &old.columns {
                store
                    .delete_document(&column_kind(def.name, column), &old_key)
                    .await?;
            }
        }
    }
    Ok(summary)
}

/// The projected columns (`schema`) of a segment, as record batches of one
/// chunk each; `None` when a column is gone (the segment was replaced while
/// the scan ran), so the caller reads the day's records instead.
pub(crate) async fn load(
    store: &Store,
    table: &str,
    part: &SegmentPart,
    schema: &SchemaRef,
) -> Result<Option<Vec<RecordBatch>>, SqlError> {
    let key = column_key(part.date, &part.digest);
    let mut columns: Vec<Vec<ArrayRef>> = Vec::with_capacity(schema.fields().len());
    if part.rows > 0 {
        for field in schema.fields() {
            let Some(bytes) = store
                .get_document(&column_kind(table, field.name()), &key)
                .await?
            else {
                return Ok(None);
            };
            let arrays = decode_column(&bytes, field)?;
            if arrays.len() != part.chunks.len() {
                return Err(SqlError::internal(format!(
                    "segment {table}.{} of {} has {} chunks, its manifest {}",
                    field.name(),
                    part.date,
                    arrays.len(),
                    part.chunks.len()
                )));
            }
            columns.push(arrays);
        }
    }
    let mut out = Vec::with_capacity(part.chunks.len());
    for (i, &rows) in part.chunks.iter().enumerate() {
        let arrays: Vec<ArrayRef> = columns.iter().map(|c| Arc::clone(&c[i])).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows as usize));
        out.push(
            RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
                .map_err(arrow_error)?,
        );
    }
    Ok(Some(out))
}

fn arrow_error(e: datafusion::arrow::error::ArrowError) -> SqlError {
    SqlError::internal(format!("segment: {e}"))
}

/// One column as an IPC stream, a batch per chunk, LZ4-compressed.
fn encode_column<'a>(
    field: &Field,
    chunks: impl Iterator<Item = &'a ArrayRef>,
) -> Result<Vec<u8>, SqlError> {
    let schema = Arc::new(Schema::new(vec![field.clone()]));
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(arrow_error)?;
    let mut bytes = Vec::new();
    {
        let mut writer = StreamWriter::try_new_with_options(&mut bytes, &schema, options)
            .map_err(arrow_error)?;
        for array in chunks {
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::clone(array)])
                .map_err(arrow_error)?;
            writer.write(&batch).map_err(arrow_error)?;
        }
        writer.finish().map_err(arrow_error)?;
    }
    Ok(bytes)
}

/// The chunks of a column written by [`encode_column`], checked against
/// the field the scan expects.
fn decode_column(bytes: &[u8], field: &Field) -> Result<Vec<ArrayRef>, SqlError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(arrow_error)?;
    let stored = reader.schema();
    let ok = stored.fields().len() == 1
        && stored.field(0).name() == field.name()
        && stored.field(0).data_type() == field.data_type();
    if !ok {
        return Err(SqlError::internal(format!(
            "segment column {} is stored as {:?}, expected {}",
            field.name(),
            stored.fields(),
            field.data_type()
        )));
    }
    reader
        .map(|batch| batch.map(|b| Arc::clone(b.column(0))).map_err(arrow_error))
        .collect()
}
