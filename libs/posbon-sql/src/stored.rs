//! Tables stored by the reporter and read back as SQL tables: the daily
//! report (`daily_reports`, `daily_report_categories`,
//! `daily_report_hot_cells`, `daily_report_focus_groups`,
//! `daily_report_difficult`, `daily_report_repeat_cells`) and the
//! per-mahalla figures of each day
//! (`mahalla_days`) that the report's baselines are computed from.
//!
//! Each table is stored one document per local date
//! ([`posbon_store::DocumentStoreExt`], key `YYYY-MM-DD`) as an Arrow IPC
//! stream of rows with the table's schema, so the rows read back are
//! exactly the rows the report's SQL produced. A filter on `date` selects
//! which documents are read.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use posbon_store::{DocumentStoreExt, Store};

use crate::columns::{date_to_days, days_to_date};
use crate::error::SqlError;

/// One of the stored tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredTable {
    /// `daily_reports`: one row per scope (nation, region, district,
    /// mahalla, and the unassigned events) and day.
    DailyReports,
    /// `daily_report_categories`: events and harm per scope, kind and
    /// category.
    DailyReportCategories,
    /// `daily_report_hot_cells`: the hottest cells of each scope.
    DailyReportHotCells,
    /// `daily_report_focus_groups`: offences per scope and focus group of
    /// prevention (minors, youth, women, domestic, youth drug offences),
    /// with their change scores. Sensitive: see [`StoredTable::is_sensitive_column`].
    DailyReportFocusGroups,
    /// `daily_report_difficult`: the mahallas the report's rule calls
    /// difficult on the day, and those it called difficult the day before,
    /// with their inspector (one `mahalla` row each).
    DailyReportDifficult,
    /// `daily_report_repeat_cells`: the top repeat locations of each scope
    /// over the last 14 days.
    DailyReportRepeatCells,
    /// `mahalla_days`: per mahalla and day, the counts the baselines use.
    MahallaDays,
}

impl StoredTable {
    /// Every stored table.
    pub const ALL: [StoredTable; 7] = [
        StoredTable::DailyReports,
        StoredTable::DailyReportCategories,
        StoredTable::DailyReportHotCells,
        StoredTable::DailyReportFocusGroups,
        StoredTable::DailyReportDifficult,
        StoredTable::DailyReportRepeatCells,
        StoredTable::MahallaDays,
    ];

    /// The SQL name.
    pub const fn name(self) -> &'static str {
        match self {
            StoredTable::DailyReports => "daily_reports",
            StoredTable::DailyReportCategories => "daily_report_categories",
            StoredTable::DailyReportHotCells => "daily_report_hot_cells",
            StoredTable::DailyReportFocusGroups => "daily_report_focus_groups",
            StoredTable::DailyReportDifficult => "daily_report_difficult",
            StoredTable::DailyReportRepeatCells => "daily_report_repeat_cells",
            StoredTable::MahallaDays => "mahalla_days",
        }
    }

    /// Whether a column of the table is sensitive beyond its name
    /// ([`crate::is_sensitive_column`] applies to every table): every figure
    /// of `daily_report_focus_groups` (a small count there can identify a
    /// victim); the date, scope and group stay readable.
    pub fn is_sensitive_column(self, column: &str) -> bool {
        matches!(self, StoredTable::DailyReportFocusGroups)
            && !matches!(column, "date" | "scope" | "scope_id" | "focus_group")
    }

    /// The stored table of a SQL name.
    pub fn of_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The document kind in the store.
    pub const fn kind(self) -> &'static str {
        self.name()
    }

    /// The schema every stored document of the table has.
    pub fn schema(self) -> SchemaRef {
        let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
        let i = DataType::Int64;
        let d = DataType::Float64;
        let s = DataType::Utf8;
        let scope = || {
            vec![
                f("date", DataType::Date32, false),
                f("scope", s.clone(), false),
                f("scope_id", s.clone(), false),
            ]
        };
        let fields = match self {
            StoredTable::DailyReports => {
                let mut v = scope();
                v.extend([
                    f("name", s.clone(), false),
                    f("region_id", s.clone(), true),
                    f("district_id", s.clone(), true),
                    f("mahallas", i.clone(), false),
                    f("crime_free_mahallas", i.clone(), false),
                    f("events", i.clone(), false),
                    f("incidents", i.clone(), false),
                    f("camera_alerts", i.clone(), false),
                    f("fraud_flags", i.clone(), false),
                    f("offences", i.clone(), false),
                    f("cyber", i.clone(), false),
                    f("cyber_share", d.clone(), true),
                    f("harm", i.clone(), false),
                    f("baseline7", d.clone(), true),
                    f("baseline7_days", i.clone(), true),
                    f("z7", d.clone(), true),
                    f("baseline28", d.clone(), true),
                    f("baseline28_days", i.clone(), true),
                    f("z28", d.clone(), true),
                    f("dispersion", d.clone(), true),
                    f("camera_alerts_baseline7", d.clone(), true),
                    f("camera_alerts_z7", d.clone(), true),
                    f("escalations_opened", i.clone(), false),
                    f("escalations_closed", i.clone(), false),
                    f("crime_free_days", i.clone(), true),
                    f("crime_free_days_before", i.clone(), true),
                    f("last_offence", DataType::Date32, true),
                    f("records_since", DataType::Date32, true),
                    f("crime_free_30d", i.clone(), true),
                    f("crime_free_90d", i.clone(), true),
                    f("crime_free_180d", i.clone(), true),
                    f("difficult_mahallas", i.clone(), true),
                    f("newly_difficult", i.clone(), true),
                    f("recovered_mahallas", i.clone(), true),
                    f("place_offences", i.clone(), true),
                    f("repeat_cells", i.clone(), true),
                    f("repeat_offences", i.clone(), true),
                    f("near_repeat_offences", i.clone(), true),
                    f("near_repeat_share", d.clone(), true),
                    f("near_repeat_pairs", i.clone(), true),
                    f("near_repeat_expected", d.clone(), true),
                    f("near_repeat_ratio", d.clone(), true),
                    f("near_repeat_excess", d.clone(), true),
                ]);
                v
            }
            StoredTable::DailyReportFocusGroups => {
                let mut v = scope();
                v.extend([
                    f("focus_group", s.clone(), false),
                    f("offences", i.clone(), false),
                    f("baseline7", d.clone(), true),
                    f("baseline7_days", i.clone(), false),
                    f("z7", d.clone(), true),
                    f("baseline28", d.clone(), true),
                    f("baseline28_days", i.clone(), false),
                    f("z28", d.clone(), true),
                ]);
                v
            }
            StoredTable::DailyReportDifficult => {
                let mut v = scope();
                v.extend([
                    f("name", s.clone(), false),
                    f("region_id", s.clone(), false),
                    f("district_id", s.clone(), false),
                    f("inspector", s.clone(), true),
                    f("status", s.clone(), false),
                    f("newly", DataType::Boolean, false),
                    f("difficult_since", DataType::Date32, true),
                    f("difficult_days", i.clone(), false),
                    f("escalation_days", i.clone(), false),
                    f("score_days", i.clone(), false),
                    f("days_scored", i.clone(), false),
                    f("offences_7d", i.clone(), false),
                    f("offences_prev_7d", i.clone(), false),
                    f("trend", s.clone(), false),
                    f("open_escalations", i.clone(), false),
                    f("open_level", s.clone(), true),
                ]);
                v
            }
            StoredTable::DailyReportRepeatCells => {
                let mut v = scope();
                v.extend([
                    f("rank", i.clone(), false),
                    f("cell", DataType::UInt64, false),
                    f("category", s.clone(), false),
                    f("mahalla_id", s.clone(), false),
                    f("offences", i.clone(), false),
                    f("first_offence", crate::columns::timestamp_type(), false),
                    f("last_offence", crate::columns::timestamp_type(), false),
                ]);
                v
            }
            StoredTable::DailyReportCategories => {
                let mut v = scope();
                v.extend([
                    f("kind", s.clone(), false),
                    f("category", s.clone(), false),
                    f("events", i.clone(), false),
                    f("harm", i.clone(), false),
                ]);
                v
            }
            StoredTable::DailyReportHotCells => {
                let mut v = scope();
                v.extend([
                    f("rank", i.clone(), false),
                    f("cell", DataType::UInt64, false),
                    f("events", i.clone(), false),
                    f("harm", i.clone(), false),
                ]);
                v
            }
            StoredTable::MahallaDays => vec![
                f("date", DataType::Date32, false),
                f("mahalla_id", s.clone(), true),
                f("district_id", s.clone(), true),
                f("region_id", s.clone(), true),
                f("events", i.clone(), false),
                f("incidents", i.clone(), false),
                f("camera_alerts", i.clone(), false),
                f("fraud_flags", i.clone(), false),
                f("offences", i.clone(), false),
                f("cyber", i.clone(), false),
                f("harm", i.clone(), false),
                f("victim_minor", i.clone(), true),
                f("victim_youth", i.clone(), true),
                f("victim_woman", i.clone(), true),
                f("offender_minor", i.clone(), true),
                f("offender_youth", i.clone(), true),
                f("domestic", i.clone(), true),
                f("offender_youth_drugs", i.clone(), true),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// Brings `batches` to the table's schema: the same column names in the
/// same order, each cast to the stored type. A column that is missing,
/// extra or out of order, a cast that fails, or a NULL in a column that
/// may not hold one, is an error naming the column.
pub fn conform(table: StoredTable, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, SqlError> {
    let schema = table.schema();
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let got: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let want: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if got != want {
            return Err(SqlError::invalid(format!(
                "{}: the query gives columns [{}], the table has [{}]",
                table.name(),
                got.join(", "),
                want.join(", ")
            )));
        }
        let mut columns = Vec::with_capacity(want.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let column = cast(column, field.data_type()).map_err(|e| {
                SqlError::invalid(format!("{}.{}: {e}", table.name(), field.name()))
            })?;
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(SqlError::invalid(format!(
                    "{}.{}: {} NULL values in a column that holds none",
                    table.name(),
                    field.name(),
                    column.null_count()
                )));
            }
            columns.push(column);
        }
        out.push(
            RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| SqlError::internal(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Stores the rows of `table` for `date` (replacing what was stored).
pub async fn put_table(
    store: &Store,
    table: StoredTable,
    date: NaiveDate,
    batches: &[RecordBatch],
) -> Result<(), SqlError> {
    let batches = conform(table, batches)?;
    let mut bytes = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut bytes, &table.schema())
            .map_err(|e| SqlError::internal(e.to_string()))?;
        for batch in &batches {
            writer
                .write(batch)
                .map_err(|e| SqlError::internal(e.to_string()))?;
        }
        writer
            .finish()
            .map_err(|e| SqlError::internal(e.to_string()))?;
    }
    store
        .put_document(table.kind(), &date.to_string(), &bytes)
        .await?;
    Ok(())
}

/// The rows of `table` stored for `date`, `None` when nothing is stored.
pub async fn get_table(
    store: &Store,
    table: StoredTable,
    date: NaiveDate,
) -> Result<Option<Vec<RecordBatch>>, SqlError> {
    let Some(bytes) = store.get_document(table.kind(), &date.to_string()).await? else {
        return Ok(None);
    };
    decode(table, &bytes).map(Some)
}

/// The dates stored for `table` in `[from, to)`.
pub async fn stored_dates(
    store: &Store,
    table: StoredTable,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<NaiveDate>, SqlError> {
    let from = from.map(|d| d.to_string()).unwrap_or_default();
    let to = to.map(|d| d.to_string()).unwrap_or_default();
    let keys = store.document_keys(table.kind(), &from, &to).await?;
    keys.iter()
        .map(|k| {
            k.parse::<NaiveDate>().map_err(|_| {
                SqlError::internal(format!("{}: stored key {k:?} is not a date", table.name()))
            })
        })
        .collect()
}

fn decode(table: StoredTable, bytes: &[u8]) -> Result<Vec<RecordBatch>, SqlError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| SqlError::internal(format!("{}: {e}", table.name())))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SqlError::internal(format!("{}: {e}", table.name())))?;
    let batches = batches
        .iter()
        .map(|b| upgrade(table, b))
        .collect::<Result<Vec<_>, _>>()?;
    conform(table, &batches)
}

/// A document stored before the table gained columns, in the table's
/// columns: a nullable column it lacks reads as NULL (for `daily_reports`,
/// the coverage and dispersion of reports made before they were recorded).
/// A column of the stored document that the table no longer has, or a
/// missing column that may not be NULL, is left for [`conform`] to name.
fn upgrade(table: StoredTable, batch: &RecordBatch) -> Result<RecordBatch, SqlError> {
    let schema = table.schema();
    let have = batch.schema_ref();
    if have.fields().len() >= schema.fields().len() {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match batch.column_by_name(field.name()) {
            Some(column) => {
                fields.push(Field::new(
                    field.name(),
                    column.data_type().clone(),
                    field.is_nullable(),
                ));
                columns.push(Arc::clone(column));
            }
            None if field.is_nullable() => {
                fields.push(field.as_ref().clone());
                columns.push(datafusion::arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                ));
            }
            None => return Ok(batch.clone()),
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SqlError::internal(format!("{}: {e}", table.name())))
}

/// A stored table as a SQL table.
pub(crate) struct StoredTableProvider {
    table: StoredTable,
    store: Store,
    schema: SchemaRef,
}

impl std::fmt::Debug for StoredTableProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTableProvider")
            .field("table", &self.table)
            .field("store", &self.store.name())
            .finish()
    }
}

impl StoredTableProvider {
    pub(crate) fn new(table: StoredTable, store: Store) -> Self {
        Self {
            table,
            store,
            schema: table.schema(),
        }
    }
}

/// The `[from, to)` dates a filter on `date` allows.
fn date_bounds(expr: &Expr) -> Option<(Option<i32>, Option<i32>)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (op, v) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) if c.name == "date" => (*op, v),
        (Expr::Literal(v, _), Expr::Column(c)) if c.name == "date" => (
            match op {
                Operator::Lt => Operator::Gt,
                Operator::LtEq => Operator::GtEq,
                Operator::Gt => Operator::Lt,
                Operator::GtEq => Operator::LtEq,
                other => *other,
            },
            v,
        ),
        _ => return None,
    };
    let ScalarValue::Date32(Some(d)) = v else {
        return None;
    };
    let d = *d;
    Some(match op {
        Operator::Eq => (Some(d), d.checked_add(1)),
        Operator::Gt => (d.checked_add(1), None),
        Operator::GtEq => (Some(d), None),
        Operator::Lt => (None, Some(d)),
        Operator::LtEq => (None, d.checked_add(1)),
        _ => return None,
    })
}

#[async_trait]
impl TableProvider for StoredTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if date_bounds(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (mut from, mut to) = (i32::MIN, i32::MAX);
        for (lo, hi) in filters.iter().filter_map(date_bounds) {
            if let Some(lo) = lo {
                from = from.max(lo);
            }
            if let Some(hi) = hi {
                to = to.min(hi);
            }
        }
        let mut batches = Vec::new();
        if from < to {
            let dates = stored_dates(
                &self.store,
                self.table,
                (from > i32::MIN).then(|| days_to_date(from)).flatten(),
                (to < i32::MAX).then(|| days_to_date(to)).flatten(),
            )
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
            for date in dates {
                let days = date_to_days(date);
                if days < from || days >= to {
                    continue;
                }
                if let Some(found) = get_table(&self.store, self.table, date)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                {
                    batches.extend(found);
                }
            }
        }
        let mem = MemTable::try_new(Arc::clone(&self.schema), vec![batches])?;
        mem.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Array, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    };

    use super::*;

    /// A `daily_reports` document of the schema before coverage and
    /// dispersion were recorded reads back with those columns NULL.
    #[test]
    fn an_older_document_reads_with_its_new_columns_null() {
        let table = StoredTable::DailyReports;
        let schema = table.schema();
        let added = [
            "baseline7_days",
            "baseline28_days",
            "dispersion",
            "camera_alerts_baseline7",
            "camera_alerts_z7",
        ];
        let old_fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| !added.contains(&f.name().as_str()))
            .map(|f| f.as_ref().clone())
            .collect();
        let columns = old_fields
            .iter()
            .map(|f| -> datafusion::arrow::array::ArrayRef {
                match f.data_type() {
                    DataType::Float64 => Arc::new(Float64Array::from(vec![1.5])),
                    DataType::Int64 => Arc::new(Int64Array::from(vec![3])),
                    DataType::Date32 => Arc::new(Date32Array::from(vec![20_000])),
                    _ => Arc::new(StringArray::from(vec!["x"])),
                }
            })
            .collect();
        let old = RecordBatch::try_new(Arc::new(Schema::new(old_fields)), columns).expect("batch");
        let mut bytes = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut bytes, old.schema_ref()).expect("writer");
            w.write(&old).expect("write");
            w.finish().expect("finish");
        }
        let read = decode(table, &bytes).expect("an older document reads");
        assert_eq!(read.len(), 1);
        let batch = &read[0];
        assert_eq!(batch.schema(), schema);
        let z7 = batch.column_by_name("z7").expect("z7");
        assert_eq!(z7.null_count(), 0, "kept");
        for name in added {
            let c = batch.column_by_name(name).expect(name);
            assert_eq!(c.null_count(), 1, "{name}");
        }
        // A document with a column the table does not have is refused,
        // naming it.
        let mut bytes = Vec::new();
        {
            let extra = Schema::new(vec![Field::new("colour", DataType::Utf8, false)]);
            let batch = RecordBatch::try_new(
                Arc::new(extra),
                vec![Arc::new(StringArray::from(vec!["red"]))],
            )
            .expect("batch");
            let mut w = StreamWriter::try_new(&mut bytes, batch.schema_ref()).expect("writer");
            w.write(&batch).expect("write");
            w.finish().expect("finish");
        }
        let e = decode(table, &bytes).expect_err("not a daily_reports document");
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
