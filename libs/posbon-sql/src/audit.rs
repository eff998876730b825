//! The `audit` table: the audit log ([`posbon_auth::AuditLog`]), one row
//! per record, for administrators.
//!
//! It is registered in every engine but is not one of [`TABLES`]: an engine
//! made by [`SqlEngine::for_access`] has it only when the caller's
//! [`SqlAccess::extra_tables`] names it, which
//! [`caller::access_of`](crate::caller::access_of) does for callers with the
//! `admin` permission. Without it a query naming `audit` fails like one
//! naming any unknown table. The table has no geographic column, so a
//! caller limited to part of the country is refused it even when granted
//! ([`crate::access`]).
//!
//! The records are read when the query runs, a page at a time, oldest
//! first: a query sees every record written before it started. A filter
//! `seq > n`, `seq >= n` or `seq = n` starts the reading there, and
//! `seq < n`, `seq <= n` or `seq = n` stops it there; every other filter is
//! applied to the rows read. The rows come in `seq` order, so
//! `ORDER BY seq` needs no sort.
//!
//! [`TABLES`]: crate::TABLES
//! [`SqlEngine::for_access`]: crate::SqlEngine::for_access
//! [`SqlAccess::extra_tables`]: crate::SqlAccess::extra_tables

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use posbon_auth::{AuditLog, AuditRecord};
use posbon_store::Store;

use crate::columns::timestamp_type;
use crate::error::SqlError;

/// The SQL name of the audit table.
pub const AUDIT_TABLE: &str = "audit";

/// Records read from the store at a time (one batch each).
const PAGE: usize = 4096;

/// The schema of `audit`.
pub(crate) fn audit_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::UInt64, false),
        Field::new("at", timestamp_type(), false),
        Field::new("actor", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, true),
        Field::new("action", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("prev", DataType::Utf8, false),
        Field::new("hash", DataType::Utf8, false),
    ]))
}

/// The rows of `audit` from the records.
fn audit_batch(schema: &SchemaRef, records: &[AuditRecord]) -> DfResult<RecordBatch> {
    let n = records.len();
    let s = |bytes: usize| StringBuilder::with_capacity(n, n * bytes);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut actor, mut role, mut action, mut target, mut outcome) =
        (s(16), s(8), s(16), s(16), s(8));
    let (mut detail, mut prev, mut hash) = (s(64), s(64), s(64));
    for r in records {
        seq.append_value(r.seq);
        at.append_value(r.at.timestamp_micros());
        actor.append_value(&r.actor);
        role.append_option(r.role.as_deref());
        action.append_value(&r.action);
        target.append_option(r.target.as_deref());
        outcome.append_value(&r.outcome);
        detail.append_value(r.detail.to_string());
        prev.append_value(&r.prev);
        hash.append_value(&r.hash);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(seq.finish()),
        Arc::new(at.finish()),
        Arc::new(actor.finish()),
        Arc::new(role.finish()),
        Arc::new(action.finish()),
        Arc::new(target.finish()),
        Arc::new(outcome.finish()),
        Arc::new(detail.finish()),
        Arc::new(prev.finish()),
        Arc::new(hash.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The sequences a query reads: `from..=to` (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeqRange {
    from: u64,
    to: u64,
}

impl SeqRange {
    /// The range the filters allow (those that bound `seq`; the others
    /// leave it whole).
    fn of(filters: &[Expr]) -> Self {
        let (mut from, mut to) = (0i128, i128::from(u64::MAX));
        for (lo, hi) in filters.iter().filter_map(seq_bounds) {
            if let Some(lo) = lo {
                from = from.max(lo);
            }
            if let Some(hi) = hi {
                to = to.min(hi);
            }
        }
        if from > to {
            // Nothing: an empty range.
            return SeqRange { from: 1, to: 0 };
        }
        let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        SeqRange {
            from: clamp(from),
            to: clamp(to),
        }
    }

    fn is_empty(self) -> bool {
        self.from > self.to
    }
}

impl fmt::Display for SeqRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.from, self.to) {
            _ if self.is_empty() => f.write_str("none"),
            (0, u64::MAX) => f.write_str("all"),
            (from, u64::MAX) => write!(f, "{from}.."),
            (from, to) => write!(f, "{from}..={to}"),
        }
    }
}

/// An integer literal's value.
fn integer(value: &ScalarValue) -> Option<i128> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => i128::from(*v),
        ScalarValue::Int16(Some(v)) => i128::from(*v),
        ScalarValue::Int32(Some(v)) => i128::from(*v),
        ScalarValue::Int64(Some(v)) => i128::from(*v),
        ScalarValue::UInt8(Some(v)) => i128::from(*v),
        ScalarValue::UInt16(Some(v)) => i128::from(*v),
        ScalarValue::UInt32(Some(v)) => i128::from(*v),
        ScalarValue::UInt64(Some(v)) => i128::from(*v),
        _ => return None,
    })
}

/// True for `seq`, or `seq` cast to a 64-bit integer (the coercion of a
/// comparison with a signed literal), which keeps every sequence a log can
/// hold and its order.
fn is_seq(expr: &Expr) -> bool {
    let wide = |t: &DataType| matches!(t, DataType::Int64 | DataType::UInt64);
    match expr {
        Expr::Column(c) => c.name == "seq",
        Expr::Cast(cast) => wide(cast.field.data_type()) && is_seq(&cast.expr),
        Expr::TryCast(cast) => wide(cast.field.data_type()) && is_seq(&cast.expr),
        _ => false,
    }
}

/// The inclusive bounds a filter puts on `seq`: `(from, to)`, `None` for
/// no bound on that side; `None` when the filter is not of that form.
fn seq_bounds(filter: &Expr) -> Option<(Option<i128>, Option<i128>)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    let (op, value) = match (left.as_ref(), right.as_ref()) {
        (column, Expr::Literal(value, _)) if is_seq(column) => (*op, integer(value)?),
        (Expr::Literal(value, _), column) if is_seq(column) => (op.swap()?, integer(value)?),
        _ => return None,
    };
    Some(match op {
        Operator::Gt => (Some(value + 1), None),
        Operator::GtEq => (Some(value), None),
        Operator::Eq => (Some(value), Some(value)),
        Operator::Lt => (None, Some(value - 1)),
        Operator::LtEq => (None, Some(value)),
        _ => return None,
    })
}

/// `audit`: the audit log, read when a query scans it.
pub(crate) struct AuditTable {
    log: Arc<AuditLog>,
    schema: SchemaRef,
}

impl fmt::Debug for AuditTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditTable")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl AuditTable {
    /// The audit log of `store`.
    pub(crate) fn new(store: Store) -> Self {
        Self {
            log: Arc::new(AuditLog::new(store)),
            schema: audit_schema(),
        }
    }
}

#[async_trait]
impl TableProvider for AuditTable {
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
                if seq_bounds(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let range = SeqRange::of(filters);
        let partition = Arc::new(AuditPartition {
            log: Arc::clone(&self.log),
            schema: Arc::clone(&self.schema),
            range,
            // A limit comes only when no filter is left to apply above.
            page: limit.map_or(PAGE, |l| l.clamp(1, PAGE)),
        });
        // The rows come oldest first: ordered by `seq` when it is read.
        let seq_at = match projection {
            Some(p) => p.iter().position(|&i| i == 0),
            None => Some(0),
        };
        let ordering = seq_at.and_then(|at| {
            LexOrdering::new([PhysicalSortExpr::new_default(Arc::new(
                PhysicalColumn::new("seq", at),
            ))])
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![partition],
            projection,
            ordering,
            false,
            limit,
        )?))
    }
}

/// The one partition of an `audit` scan: the records of `range`, a page at
/// a time.
struct AuditPartition {
    log: Arc<AuditLog>,
    schema: SchemaRef,
    range: SeqRange,
    /// Records to ask for at a time: [`PAGE`], or the scan's row limit when
    /// smaller.
    page: usize,
}

impl fmt::Debug for AuditPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditPartition")
            .field("seq", &self.range.to_string())
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

/// Where an `audit` scan is.
struct Cursor {
    log: Arc<AuditLog>,
    schema: SchemaRef,
    /// The last sequence read (the next page starts after it).
    after: u64,
    /// The last sequence to read.
    to: u64,
    /// Records to ask for at a time.
    page: usize,
    done: bool,
}

impl Cursor {
    /// The next page, `None` at the end.
    async fn next(mut self) -> DfResult<Option<(RecordBatch, Self)>> {
        if self.done {
            return Ok(None);
        }
        // No more than the range still holds.
        let left = usize::try_from(self.to - self.after).unwrap_or(usize::MAX);
        let mut records = self
            .log
            .list(self.after, self.page.min(left))
            .await
            .map_err(|e| DataFusionError::External(Box::new(SqlError::from(e))))?;
        let read = records.len();
        records.retain(|r| r.seq <= self.to);
        let Some(last) = records.last() else {
            return Ok(None);
        };
        self.after = last.seq;
        // Past the range, or at its end: no page after this one.
        self.done = records.len() < read || self.after >= self.to;
        let batch = audit_batch(&self.schema, &records)?;
        Ok(Some((batch, self)))
    }
}

impl PartitionStream for AuditPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let after = self.range.from.saturating_sub(1);
        let cursor = Cursor {
            log: Arc::clone(&self.log),
            schema: Arc::clone(&self.schema),
            after,
            to: self.range.to,
            page: self.page,
            done: self.range.is_empty() || after >= self.range.to,
        };
        let stream = futures::stream::try_unfold(cursor, Cursor::next);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{Cast, col, lit};

    fn range(filters: &[Expr]) -> String {
        SeqRange::of(filters).to_string()
    }

    #[test]
    fn seq_filters_bound_the_reading() {
        assert_eq!(range(&[]), "all");
        assert_eq!(range(&[col("seq").gt(lit(2u64))]), "3..");
        assert_eq!(range(&[col("seq").gt_eq(lit(2i64))]), "2..");
        assert_eq!(range(&[lit(5i64).lt(col("seq"))]), "6..");
        assert_eq!(range(&[col("seq").eq(lit(7i32))]), "7..=7");
        assert_eq!(
            range(&[col("seq").gt(lit(2u64)), col("seq").lt_eq(lit(9u64))]),
            "3..=9"
        );
        assert_eq!(range(&[col("seq").lt(lit(10i64))]), "0..=9");
        assert_eq!(range(&[col("seq").gt(lit(-4i64))]), "all");
        assert_eq!(range(&[col("seq").lt(lit(0i64))]), "none");
        assert_eq!(
            range(&[col("seq").gt(lit(5u64)), col("seq").lt(lit(3u64))]),
            "none"
        );
        let cast = Expr::Cast(Cast::new(Box::new(col("seq")), DataType::Int64));
        assert_eq!(range(&[cast.gt(lit(3i64))]), "4..");
        // Not bounds on `seq`: left to the rows.
        let text = Expr::Cast(Cast::new(Box::new(col("seq")), DataType::Utf8));
        assert_eq!(range(&[text.gt(lit("3"))]), "all");
        assert_eq!(range(&[col("actor").gt(lit(3i64))]), "all");
        assert_eq!(range(&[col("seq").not_eq(lit(3i64))]), "all");
        assert!(seq_bounds(&col("seq").not_eq(lit(3i64))).is_none());
    }
}
