//! The plan of a scan: the parts it reads (time slices, cells, columnar
//! segments) and [`StoreScanExec`], the `ExecutionPlan` DataFusion runs.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use posbon_geo::{CellIndex, Resolution, children_range};
use posbon_store::Store;
use posbon_store::keys::{decode_event_time_key, time_range};

use super::pushdown::{KeyFilter, coverage};
use crate::columns::{Decoder, TIME_ZONE, TableDef};
use crate::error::SqlError;
use crate::segments::{SegmentPart, current_segment, day_window};

/// Above this many storage cells, cell predicates are not visited one by
/// one when a time window narrows the scan too: reading the window and
/// keeping the rows of those cells is cheaper.
pub(crate) const MAX_CELL_PATH_CELLS: u64 = 20_000;

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
    pub(super) table: Arc<TableDef>,
    pub(super) store: Store,
    pub(super) plan: ScanPlan,
    pub(super) projection: Vec<usize>,
    pub(super) schema: SchemaRef,
    pub(super) limit: Option<usize>,
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
    leaf_plan_methods!("StoreScanExec");

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.execute_partition(partition)
    }
}
