//! Filter pushdown and the scan of the event store.
//!
//! The filters DataFusion offers an event table are read for what narrows
//! the keys to read:
//!
//! * **time**: `occurred_at` compared with a timestamp (`<`, `<=`, `=`,
//!   `>=`, `>`, `BETWEEN`), and `local_date` compared with a date (a local
//!   day is the range of instants between two local midnights);
//! * **cells**: `cell = x`, `cell IN (...)` (an `IN` list is what
//!   `array_has(h3_grid_disk(x, k), cell)` becomes once the grid disk is
//!   folded into a constant), `h3_cell_to_parent(cell, r) = x` or `IN (...)`
//!   (a coarser cell: all its storage cells are one key range), and
//!   `mahalla_id = 'm'` or `IN (...)` (the storage cells that cover the
//!   mahalla in the registry).
//!
//! Every such filter is pushed down as *inexact*: the scan reads a superset
//! of the matching rows and DataFusion applies the filter again, so a
//! filter the scan uses only partly can never lose or add a row.
//!
//! The scan then takes one of two paths. With cell predicates it reads, for
//! each cell, the `e` keys of its storage cells in the time window
//! ([`posbon_store::EventStoreExt::cell_record_pages`], which skips from
//! storage cell to storage cell). Without them, or when the cells are too
//! coarse to be worth visiting one by one while a time window is given, it
//! reads the `t` keys of the window, split into equal time slices, one per
//! partition. On the time path, every whole local day of the window that
//! has a current columnar segment ([`crate::segments`]) is read from the
//! segment instead (only the projected columns, already decoded), and only
//! the rest of the window from the records. `EXPLAIN` shows the path and
//! the ranges, segments as `s[date rows]`.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;
use posbon_geo::{CellIndex, Registry, Resolution, children_range};
use posbon_store::keys::{decode_event_cell_key, decode_event_time_key, time_range};
use posbon_store::{EventStoreExt, Store};

use crate::columns::{Decoder, KeyParts, TIME_ZONE, TableDef, days_to_date, local_day_start};
use crate::error::SqlError;
use crate::segments::{SegmentPart, current_segment, day_window};

/// Records read per store call.
pub(crate) const PAGE: usize = 4096;

/// Above this many storage cells, cell predicates are not visited one by
/// one when a time window narrows the scan too: reading the window and
/// keeping the rows of those cells is cheaper.
pub(crate) const MAX_CELL_PATH_CELLS: u64 = 20_000;

/// What the filters of a query say about the keys to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFilter {
    /// `occurred_at` in `[from, to)`, microseconds.
    pub(crate) from: i64,
    /// End of the window (exclusive).
    pub(crate) to: i64,
    /// Cells whose storage cells hold every matching row; `None` when no
    /// cell predicate was found. Sorted, no cell inside another.
    pub(crate) cells: Option<Vec<CellIndex>>,
    /// Where the cells come from, for `EXPLAIN`.
    pub(crate) cells_from: &'static str,
}

impl Default for KeyFilter {
    fn default() -> Self {
        Self {
            from: i64::MIN,
            to: i64::MAX,
            cells: None,
            cells_from: "",
        }
    }
}

/// The filters of an event table that narrow its keys, and how.
pub(crate) fn usable(expr: &Expr) -> bool {
    time_bounds(expr).is_some() || cell_predicate(expr, None, Resolution::Fifteen).is_some()
}

/// Reads `filters` (ANDed) into a [`KeyFilter`].
pub(crate) fn key_filter(filters: &[Expr], registry: &Registry) -> KeyFilter {
    let storage = registry.resolution();
    let mut out = KeyFilter::default();
    let mut best: Option<(u64, Vec<CellIndex>, &'static str)> = None;
    let mut conjuncts = Vec::new();
    for f in filters {
        split_and(f, &mut conjuncts);
    }
    for expr in conjuncts {
        if let Some((from, to)) = time_bounds(expr) {
            out.from = out.from.max(from);
            out.to = out.to.min(to);
        }
        if let Some((cells, from)) = cell_predicate(expr, Some(registry), storage) {
            let cells = normalize(cells, storage);
            let cost = coverage(&cells, storage);
            if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
                best = Some((cost, cells, from));
            }
        }
    }
    if let Some((_, cells, from)) = best {
        out.cells = Some(cells);
        out.cells_from = from;
    }
    out
}

fn split_and<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            split_and(left, out);
            split_and(right, out);
        }
        other => out.push(other),
    }
}

/// The column name of a plain column reference.
fn column(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// A timestamp literal in microseconds.
fn micros(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
        _ => None,
    }
}

/// A date literal in days since 1970-01-01.
fn days(v: &ScalarValue) -> Option<i32> {
    match v {
        ScalarValue::Date32(Some(d)) => Some(*d),
        ScalarValue::Date64(Some(ms)) => i32::try_from(ms.div_euclid(86_400_000)).ok(),
        _ => None,
    }
}

/// `col op lit` with the column on the left (operands swapped if needed).
fn comparison(expr: &Expr) -> Option<(&str, Operator, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let swap = |op: Operator| match op {
        Operator::Lt => Some(Operator::Gt),
        Operator::LtEq => Some(Operator::GtEq),
        Operator::Gt => Some(Operator::Lt),
        Operator::GtEq => Some(Operator::LtEq),
        Operator::Eq => Some(Operator::Eq),
        _ => None,
    };
    if let (Some(c), Some(v)) = (column(left), literal(right)) {
        swap(*op)?; // only comparisons
        return Some((c, *op, v));
    }
    if let (Some(v), Some(c)) = (literal(left), column(right)) {
        return Some((c, swap(*op)?, v));
    }
    None
}

/// The `[from, to)` window (microseconds) a time predicate allows.
fn time_bounds(expr: &Expr) -> Option<(i64, i64)> {
    if let Expr::Between(Between {
        expr,
        negated: false,
        low,
        high,
    }) = expr
    {
        let name = column(expr)?;
        let (low, high) = (literal(low)?, literal(high)?);
        return match name {
            "occurred_at" => Some((micros(low)?, micros(high)?.checked_add(1)?)),
            "local_date" => Some((
                day_start(days(low)?)?,
                day_start(days(high)?.checked_add(1)?)?,
            )),
            _ => None,
        };
    }
    let (name, op, v) = comparison(expr)?;
    let (lo, hi) = match name {
        "occurred_at" => {
            let t = micros(v)?;
            (t, t.checked_add(1)?)
        }
        "local_date" => {
            let d = days(v)?;
            (day_start(d)?, day_start(d.checked_add(1)?)?)
        }
        _ => return None,
    };
    Some(match op {
        Operator::Eq => (lo, hi),
        Operator::Gt => (hi, i64::MAX),
        Operator::GtEq => (lo, i64::MAX),
        Operator::Lt => (i64::MIN, lo),
        Operator::LtEq => (i64::MIN, hi),
        _ => return None,
    })
}

/// The first instant of a local day.
fn day_start(days: i32) -> Option<i64> {
    local_day_start(days_to_date(days)?)
}

/// A cell literal.
fn cell_value(v: &ScalarValue) -> Option<u64> {
    match v {
        ScalarValue::UInt64(Some(c)) => Some(*c),
        ScalarValue::Int64(Some(c)) => u64::try_from(*c).ok(),
        _ => None,
    }
}

/// The cells a cell predicate allows, or `None` when `expr` is not one. With
/// no registry, only says whether it is one (mahalla predicates included).
fn cell_predicate(
    expr: &Expr,
    registry: Option<&Registry>,
    storage: Resolution,
) -> Option<(Vec<CellIndex>, &'static str)> {
    // The cells a value stands for: a stored cell equals `x` only when `x`
    // is a valid cell at the storage resolution.
    let exact = |raw: u64| {
        CellIndex::try_from(raw)
            .ok()
            .filter(|c| c.resolution() == storage)
    };
    let parent_of = |raw: u64, res: Resolution| {
        CellIndex::try_from(raw)
            .ok()
            .filter(|c| c.resolution() == res && res <= storage)
    };
    let (target, values): (&Expr, Vec<&ScalarValue>) = match expr {
        // `a OR b`, as DataFusion writes a short IN list: the cells of both.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (mut cells, from) = cell_predicate(left, registry, storage)?;
            let (more, _) = cell_predicate(right, registry, storage)?;
            cells.extend(more);
            return Some((cells, from));
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (literal(left), literal(right)) {
            (None, Some(v)) => (left.as_ref(), vec![v]),
            (Some(v), None) => (right.as_ref(), vec![v]),
            _ => return None,
        },
        Expr::InList(list) if !list.negated => {
            let values: Option<Vec<&ScalarValue>> = list.list.iter().map(literal).collect();
            (list.expr.as_ref(), values?)
        }
        Expr::ScalarFunction(f) if f.func.name() == "array_has" && f.args.len() == 2 => {
            let ScalarValue::List(list) = literal(&f.args[0])? else {
                return None;
            };
            let values = ScalarValue::convert_array_to_scalar_vec(list.as_ref()).ok()?;
            let values: Vec<ScalarValue> = values.into_iter().flatten().flatten().collect();
            let cells: Vec<CellIndex> = values
                .iter()
                .filter_map(cell_value)
                .filter_map(exact)
                .collect();
            column(&f.args[1]).filter(|c| *c == "cell")?;
            return Some((cells, "cell list"));
        }
        _ => return None,
    };
    if values.iter().any(|v| v.is_null()) {
        return None;
    }
    match target {
        Expr::Column(c) if c.name == "cell" => {
            let raws: Option<Vec<u64>> = values.iter().map(|v| cell_value(v)).collect();
            Some((raws?.into_iter().filter_map(exact).collect(), "cell"))
        }
        Expr::Column(c) if c.name == "mahalla_id" => {
            let ids: Option<Vec<&str>> = values
                .iter()
                .map(|v| match v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            let ids = ids?;
            let Some(registry) = registry else {
                return Some((Vec::new(), "mahalla"));
            };
            let mut cells = Vec::new();
            for id in ids {
                // A mahalla the registry does not know may still have
                // events (stored under an older registry): no pushdown.
                let (idx, _) = registry.mahalla_by_id(id)?;
                cells.extend(registry.mahalla_cells(idx, storage));
            }
            Some((cells, "mahalla cover"))
        }
        Expr::ScalarFunction(f)
            if f.func.name() == "h3_cell_to_parent"
                && f.args.len() == 2
                && column(&f.args[0]) == Some("cell") =>
        {
            let res = match literal(&f.args[1])? {
                ScalarValue::Int64(Some(r)) => u8::try_from(*r).ok(),
                ScalarValue::Int32(Some(r)) => u8::try_from(*r).ok(),
                _ => None,
            };
            let Some(res) = res.and_then(|r| Resolution::try_from(r).ok()) else {
                // An invalid resolution gives NULL: nothing matches.
                return Some((Vec::new(), "parent cell"));
            };
            let raws: Option<Vec<u64>> = values.iter().map(|v| cell_value(v)).collect();
            Some((
                raws?
                    .into_iter()
                    .filter_map(|r| parent_of(r, res))
                    .collect(),
                "parent cell",
            ))
        }
        _ => None,
    }
}

/// Sorted cells with duplicates and cells inside others removed.
fn normalize(mut cells: Vec<CellIndex>, storage: Resolution) -> Vec<CellIndex> {
    cells.retain(|c| c.resolution() <= storage);
    cells.sort_unstable_by_key(|c| (c.resolution(), u64::from(*c)));
    cells.dedup();
    let mut kept: BTreeSet<CellIndex> = BTreeSet::new();
    for cell in cells {
        let covered = (0..u8::from(cell.resolution())).any(|r| {
            Resolution::try_from(r)
                .ok()
                .and_then(|r| cell.parent(r))
                .is_some_and(|p| kept.contains(&p))
        });
        if !covered {
            kept.insert(cell);
        }
    }
    let mut out: Vec<CellIndex> = kept.into_iter().collect();
    out.sort_unstable_by_key(|c| u64::from(*c));
    out
}

/// The number of storage cells under `cells`.
fn coverage(cells: &[CellIndex], storage: Resolution) -> u64 {
    cells
        .iter()
        .map(|c| c.children_count(storage))
        .fold(0u64, u64::saturating_add)
}

/// How one partition reads the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// The `t` keys of `[from, to)`.
    Time { from: i64, to: i64 },
    /// The `e` keys of these cells in `[from, to)`.
    Cells {
        cells: Vec<CellIndex>,
        from: i64,
        to: i64,
    },
    /// The columnar segment of one local day.
    Segment(SegmentPart),
}

/// The plan of a scan: its partitions, and the cells rows must fall in when
/// the time path reads a window wider than the cells.
#[derive(Debug, Clone)]
pub(crate) struct ScanPlan {
    /// The parts in key order; partition `p` of `partitions` reads the
    /// parts whose position is `p` modulo `partitions`.
    pub(crate) parts: Vec<Part>,
    pub(crate) partitions: usize,
    /// For the time path with cell predicates: the storage-cell ranges rows
    /// must fall in.
    pub(crate) cell_filter: Option<Arc<Vec<RangeInclusive<u64>>>>,
    pub(crate) filter: KeyFilter,
    pub(crate) storage: Resolution,
}

impl ScanPlan {
    /// Plans the scan of `table` for `filter` over `store` in up to
    /// `partitions` partitions.
    pub(crate) async fn new(
        store: &Store,
        table: &TableDef,
        filter: KeyFilter,
        storage: Resolution,
        partitions: usize,
    ) -> Result<Self, SqlError> {
        let mut plan = Self::parts(store, table, filter, storage, partitions.max(1)).await?;
        plan.partitions = plan.parts.len().clamp(1, partitions.max(1));
        Ok(plan)
    }

    async fn parts(
        store: &Store,
        table: &TableDef,
        filter: KeyFilter,
        storage: Resolution,
        partitions: usize,
    ) -> Result<Self, SqlError> {
        let (from, to) = (filter.from, filter.to);
        let mut plan = Self {
            parts: Vec::new(),
            partitions: 1,
            cell_filter: None,
            filter,
            storage,
        };
        if from >= to {
            return Ok(plan);
        }
        let bounded = from > i64::MIN || to < i64::MAX;
        if let Some(cells) = &plan.filter.cells {
            if cells.is_empty() {
                return Ok(plan);
            }
            if !bounded || coverage(cells, storage) <= MAX_CELL_PATH_CELLS {
                let per = cells.len().div_ceil(partitions);
                plan.parts = cells
                    .chunks(per)
                    .map(|chunk| Part::Cells {
                        cells: chunk.to_vec(),
                        from,
                        to,
                    })
                    .collect();
                return Ok(plan);
            }
            let mut ranges: Vec<RangeInclusive<u64>> = cells
                .iter()
                .filter_map(|c| children_range(*c, storage))
                .collect();
            ranges.sort_unstable_by_key(|r| *r.start());
            plan.cell_filter = Some(Arc::new(ranges));
        }
        let Some((first, last)) = data_bounds(store, from, to).await? else {
            return Ok(plan);
        };
        let (start, end) = (first, last.saturating_add(1));
        // Whole local days of the window with a current segment, in order;
        // the records of the rest, split into time slices.
        let mut at = start;
        for segment in segments_in(store, table, from, to, start, end).await? {
            slices(&mut plan.parts, at, segment.from, partitions);
            at = segment.to;
            plan.parts.push(Part::Segment(segment));
        }
        slices(&mut plan.parts, at, end, partitions);
        Ok(plan)
    }
}

/// `[from, to)` as up to `n` equal time slices (none when empty).
fn slices(parts: &mut Vec<Part>, from: i64, to: i64, n: usize) {
    if from >= to {
        return;
    }
    let span = to - from;
    let n = i64::try_from(n).unwrap_or(1).clamp(1, span);
    let step = (span + n - 1) / n;
    let mut at = from;
    while at < to {
        let next = at.saturating_add(step).min(to);
        parts.push(Part::Time { from: at, to: next });
        at = next;
    }
}

/// The current segments of `table` for the local days that lie wholly in
/// the window `[from, to)` and overlap the data, `[start, end)`.
async fn segments_in(
    store: &Store,
    table: &TableDef,
    from: i64,
    to: i64,
    start: i64,
    end: i64,
) -> Result<Vec<SegmentPart>, SqlError> {
    let mut out = Vec::new();
    let Some(first) = DateTime::from_timestamp_micros(from.max(start)) else {
        return Ok(out);
    };
    let mut date = first.with_timezone(&TIME_ZONE).date_naive();
    while let Ok((day_from, day_to)) = day_window(date) {
        if day_from >= end || day_to > to {
            break;
        }
        if day_from >= from
            && let Some(segment) = current_segment(store, table, date).await?
        {
            out.push(segment);
        }
        let Some(next) = date.succ_opt() else {
            break;
        };
        date = next;
    }
    Ok(out)
}

/// The times of the first and the last stored event in `[from, to)`.
async fn data_bounds(store: &Store, from: i64, to: i64) -> Result<Option<(i64, i64)>, SqlError> {
    let first_at = |from: i64| {
        let store = store.clone();
        async move {
            let (start, end) = time_range(from, to);
            let found = store.scan(&start, &end, 1).await?;
            Ok::<_, SqlError>(
                found
                    .first()
                    .and_then(|(k, _)| decode_event_time_key(k))
                    .map(|k| k.micros),
            )
        }
    };
    let Some(first) = first_at(from).await? else {
        return Ok(None);
    };
    // The last event: the largest t with an event in [t, to).
    let (mut lo, mut hi) = (first, to);
    while i128::from(hi) - i128::from(lo) > 1 {
        let mid = ((i128::from(lo) + i128::from(hi)) / 2) as i64;
        if first_at(mid).await?.is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some((first, lo)))
}

/// Formats microseconds for `EXPLAIN`.
fn instant(micros: i64) -> String {
    match micros {
        i64::MIN => "-inf".into(),
        i64::MAX => "+inf".into(),
        m => DateTime::from_timestamp_micros(m).map_or_else(
            || m.to_string(),
            |t| t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        ),
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Time { from, to } => write!(f, "t[{}, {})", instant(*from), instant(*to)),
            Part::Cells { cells, from, to } => {
                write!(f, "e[")?;
                for (i, c) in cells.iter().take(4).enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{c}@{}", u8::from(c.resolution()))?;
                }
                if cells.len() > 4 {
                    write!(f, " +{} cells", cells.len() - 4)?;
                }
                write!(f, "; {}, {})", instant(*from), instant(*to))
            }
            Part::Segment(s) => write!(f, "s[{} {} rows]", s.date, s.rows),
        }
    }
}

/// The scan of an event table: one partition per [`Part`].
pub(crate) struct StoreScanExec {
    table: Arc<TableDef>,
    store: Store,
    plan: ScanPlan,
    projection: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for StoreScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreScanExec")
            .field("table", &self.table.name)
            .field("store", &self.store.name())
            .field("parts", &self.plan.parts)
            .finish_non_exhaustive()
    }
}

impl StoreScanExec {
    pub(crate) fn new(
        table: Arc<TableDef>,
        store: Store,
        plan: ScanPlan,
        projection: Vec<usize>,
        limit: Option<usize>,
    ) -> Self {
        let schema = Decoder::new(&table, &projection, false).schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(plan.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            table,
            store,
            plan,
            projection,
            schema,
            limit,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for StoreScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segments = self
            .plan
            .parts
            .iter()
            .any(|p| matches!(p, Part::Segment(_)));
        let times = self
            .plan
            .parts
            .iter()
            .any(|p| matches!(p, Part::Time { .. }));
        let path = match self.plan.parts.first() {
            None => "empty",
            Some(Part::Cells { .. }) => "cells",
            _ if segments && !times => "segments",
            _ if segments => "segments+time",
            _ if self.plan.cell_filter.is_some() => "time+cell filter",
            _ => "time",
        };
        match t {
            DisplayFormatType::TreeRender => write!(f, "table={}\npath={path}", self.table.name),
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                let names: Vec<&str> = self
                    .projection
                    .iter()
                    .map(|&i| self.table.cols[i].0.name())
                    .collect();
                write!(
                    f,
                    "StoreScanExec: table={}, path={path}, window=[{}, {})",
                    self.table.name,
                    instant(self.plan.filter.from),
                    instant(self.plan.filter.to)
                )?;
                if let Some(cells) = &self.plan.filter.cells {
                    write!(
                        f,
                        ", cells={} from {}",
                        cells.len(),
                        self.plan.filter.cells_from
                    )?;
                }
                write!(f, ", ranges=[")?;
                for (i, p) in self.plan.parts.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{p}")?;
                }
                write!(f, "], projection=[{}]", names.join(", "))?;
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExecutionPlan for StoreScanExec {
    fn name(&self) -> &str {
        "StoreScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let n = self.plan.partitions;
        let parts: Vec<Part> = self
            .plan
            .parts
            .iter()
            .skip(partition)
            .step_by(n)
            .cloned()
            .collect();
        if parts.is_empty() {
            // An empty scan still has one partition, with no rows.
            return Ok(builder.build());
        }
        let tx = builder.tx();
        let store = self.store.clone();
        let table = Arc::clone(&self.table);
        let projection = self.projection.clone();
        let cell_filter = self.plan.cell_filter.clone();
        let storage = self.plan.storage;
        let schema = Arc::clone(&self.schema);
        let external = |e: SqlError| DataFusionError::External(Box::new(e));
        let mut left = self.limit.unwrap_or(usize::MAX);
        builder.spawn(async move {
            for part in parts {
                let part = match part {
                    Part::Segment(segment) => {
                        let loaded = crate::segments::load(&store, table.name, &segment, &schema)
                            .await
                            .map_err(external)?;
                        match loaded {
                            Some(batches) => {
                                for batch in batches {
                                    if !send(&tx, batch, &mut left).await {
                                        return Ok(());
                                    }
                                }
                                continue;
                            }
                            // Replaced while the query ran: read the day's
                            // records.
                            None => Part::Time {
                                from: segment.from,
                                to: segment.to,
                            },
                        }
                    }
                    other => other,
                };
                let cell_keys = matches!(part, Part::Cells { .. });
                let mut decoder = Decoder::new(&table, &projection, cell_keys);
                if let Some(ranges) = &cell_filter {
                    decoder.keep_cells(Arc::clone(ranges));
                }
                let mut pages = match &part {
                    Part::Time { from, to } => store.time_record_pages(*from, *to, PAGE),
                    Part::Cells { cells, from, to } => {
                        let (from, to) = (*from, *to);
                        let cells = cells.clone();
                        let store = &store;
                        futures::stream::iter(cells)
                            .map(move |cell| store.cell_record_pages(cell, storage, from, to, PAGE))
                            .flatten()
                            .boxed()
                    }
                    Part::Segment(_) => unreachable!("segments are read above"),
                };
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| DataFusionError::External(Box::new(e)))?;
                    let rows = page.iter().filter_map(|(key, value)| {
                        let parts = if cell_keys {
                            decode_event_cell_key(key).map(|k| KeyParts {
                                micros: k.micros,
                                cell: Some(k.cell),
                                id: k.id,
                            })
                        } else {
                            decode_event_time_key(key).map(|k| KeyParts {
                                micros: k.micros,
                                cell: None,
                                id: k.id,
                            })
                        };
                        parts.map(|p| (p, value.as_slice()))
                    });
                    let batch = decoder.decode(rows, page.len()).map_err(external)?;
                    if !send(&tx, batch, &mut left).await {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// Sends a batch (cut to the rows `left` under the limit); false when the
/// scan is done: the limit is reached or the consumer is gone.
async fn send(
    tx: &tokio::sync::mpsc::Sender<DfResult<datafusion::arrow::record_batch::RecordBatch>>,
    mut batch: datafusion::arrow::record_batch::RecordBatch,
    left: &mut usize,
) -> bool {
    if batch.num_rows() > *left {
        batch = batch.slice(0, *left);
    }
    *left -= batch.num_rows();
    if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
        // The consumer is gone (query finished or cancelled).
        return false;
    }
    *left > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::date_to_days;
    use datafusion::logical_expr::{col, lit};
    use posbon_geo::LatLng;

    #[test]
    fn time_predicates_become_windows() {
        let t = |s: &str| {
            ScalarValue::TimestampMicrosecond(
                Some(
                    DateTime::parse_from_rfc3339(s)
                        .expect("time")
                        .timestamp_micros(),
                ),
                Some("UTC".into()),
            )
        };
        let a = t("2026-05-01T00:00:00Z");
        let b = t("2026-05-02T00:00:00Z");
        let ma = micros(&a).expect("micros");
        let mb = micros(&b).expect("micros");
        let e = col("occurred_at")
            .gt_eq(lit(a.clone()))
            .and(col("occurred_at").lt(lit(b.clone())));
        let mut parts = Vec::new();
        split_and(&e, &mut parts);
        assert_eq!(parts.len(), 2);
        assert_eq!(time_bounds(parts[0]), Some((ma, i64::MAX)));
        assert_eq!(time_bounds(parts[1]), Some((i64::MIN, mb)));
        // Literal on the left.
        let e = lit(b.clone()).gt(col("occurred_at"));
        assert_eq!(time_bounds(&e), Some((i64::MIN, mb)));
        let e = col("occurred_at").between(lit(a), lit(b));
        assert_eq!(time_bounds(&e), Some((ma, mb + 1)));
        // A local day is the window between two local midnights.
        let day = NaiveDateLit::new(2026, 5, 1);
        let e = col("local_date").eq(lit(day.scalar()));
        let start = local_day_start(day.date).expect("start");
        assert_eq!(time_bounds(&e), Some((start, start + 86_400_000_000)));
        // Other columns and operators are not time predicates.
        assert_eq!(time_bounds(&col("lat").gt(lit(1.0))), None);
        assert_eq!(
            time_bounds(&col("occurred_at").not_eq(lit(t("2026-05-01T00:00:00Z")))),
            None
        );
    }

    struct NaiveDateLit {
        date: chrono::NaiveDate,
    }

    impl NaiveDateLit {
        fn new(y: i32, m: u32, d: u32) -> Self {
            Self {
                date: chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date"),
            }
        }
        fn scalar(&self) -> ScalarValue {
            ScalarValue::Date32(Some(date_to_days(self.date)))
        }
    }

    #[test]
    fn cells_are_normalised() {
        let storage = Resolution::Ten;
        let c10 = LatLng::new(41.31, 69.25).expect("ll").to_cell(storage);
        let p7 = c10.parent(Resolution::Seven).expect("parent");
        let other = LatLng::new(41.0, 69.0)
            .expect("ll")
            .to_cell(Resolution::Nine);
        let out = normalize(vec![c10, p7, other, p7], storage);
        let mut want = vec![p7, other];
        want.sort_unstable_by_key(|c| u64::from(*c));
        assert_eq!(out, want);
        assert_eq!(coverage(&out, storage), 343 + 7);
    }

    #[test]
    fn cell_predicates_name_their_cells() {
        let storage = Resolution::Ten;
        let c10 = LatLng::new(41.31, 69.25).expect("ll").to_cell(storage);
        let raw = u64::from(c10);
        let (cells, _) = cell_predicate(&col("cell").eq(lit(raw)), None, storage).expect("cell");
        assert_eq!(cells, vec![c10]);
        // A value that is not a storage cell matches no stored cell.
        let coarse = u64::from(c10.parent(Resolution::Seven).expect("parent"));
        let (cells, _) = cell_predicate(&col("cell").eq(lit(coarse)), None, storage).expect("cell");
        assert!(cells.is_empty());
        let e = col("cell").in_list(vec![lit(raw), lit(coarse)], false);
        assert_eq!(cell_predicate(&e, None, storage).expect("in").0, vec![c10]);
        assert!(
            cell_predicate(&col("cell").in_list(vec![lit(raw)], true), None, storage).is_none()
        );
        assert!(cell_predicate(&col("lat").eq(lit(1.0)), None, storage).is_none());
        // A short IN list arrives as ORs.
        let e = col("cell").eq(lit(raw)).or(col("cell").eq(lit(coarse)));
        assert_eq!(cell_predicate(&e, None, storage).expect("or").0, vec![c10]);
        let e = col("cell").eq(lit(raw)).or(col("lat").eq(lit(1.0)));
        assert!(cell_predicate(&e, None, storage).is_none());
    }
}
