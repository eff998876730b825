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
//!
//! The parts: `pushdown` reads the filters into a key filter, `plan` turns
//! it into the parts of a scan and is the `ExecutionPlan` DataFusion runs,
//! `execution` is the stream of one partition that reads the store.

mod execution;
mod plan;
mod pushdown;

pub(crate) use execution::PAGE;
pub(crate) use plan::{ScanPlan, StoreScanExec};
pub(crate) use pushdown::{key_filter, usable};
