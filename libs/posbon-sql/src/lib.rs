//! Posbon SQL: DataFusion table providers over the event store, the H3
//! functions analysts know from DuckDB, and the read-only query engine
//! behind `POST /v1/sql`, `posbon sql` and the daily report.
//!
//! Tables (reference: `schemas/sql-tables.md`):
//!
//! * `events` (every kind, common columns plus `category`, `severity`,
//!   `confidence`, `amount_uzs`), `incidents`, `camera_alerts`,
//!   `fraud_flags`: the stored events, read from any
//!   [`EventStore`](posbon_store::EventStore) backend. Timestamps are
//!   `TIMESTAMPTZ` (UTC), `local_date` is the Asia/Tashkent date, enums are
//!   dictionary-encoded strings, cells are `UBIGINT`.
//! * `mahallas`: the registry.
//! * `escalations`: the escalation records.
//! * `daily_reports`, `daily_report_categories`, `daily_report_hot_cells`,
//!   `mahalla_days`: what the reporter stored ([`stored`]).
//! * `audit`: the audit log ([`audit`]), not one of [`TABLES`]: only an
//!   engine for a caller granted it ([`SqlAccess::extra_tables`], given to
//!   administrators by [`caller::access_of`]) shows it, and only to a national
//!   caller.
//!
//! Filters on `occurred_at`, `local_date`, `cell` (a list of cells, a parent
//! cell at a coarser resolution through `h3_cell_to_parent`, a grid disk)
//! and `mahalla_id` become key ranges of the store, only the projected
//! columns are decoded, and scans stream a page at a time; `EXPLAIN` shows
//! the ranges ([`scan`]). Whole local days with a current columnar segment
//! ([`segments`]) are read from it instead of from the event records.
//!
//! [`SqlEngine::for_access`] gives an engine for one caller ([`SqlAccess`]):
//! only the rows of its part of the country, and the sensitive columns as
//! NULL unless it may read them ([`access`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use posbon_sql::{SqlEngine, SqlLimits, output};
//! # async fn demo(store: posbon_store::Store, registry: Arc<posbon_geo::Registry>, auth: Arc<posbon_auth::Auth>) -> Result<(), posbon_sql::SqlError> {
//! let engine = SqlEngine::new(store, registry, SqlLimits::default())?;
//! let out = engine
//!     .query("SELECT mahalla_id, count(*) AS n FROM incidents \
//!             WHERE local_date = DATE '2026-05-01' GROUP BY mahalla_id ORDER BY n DESC LIMIT 5")
//!     .await?;
//! println!("{}", output::to_text_table(&out)?);
//! // POST /v1/sql, for callers with read_sql, rows limited to their scope
//! let app = posbon_sql::http::router(Arc::new(engine), Arc::clone(&auth)).into_router(auth);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

/// The methods every Posbon execution plan writes the same way: a leaf to
/// DataFusion (no children to walk or replace, no expressions of its own)
/// named `$name`, with its `properties` field. Used inside `impl
/// ExecutionPlan for ...` by [`scan::StoreScanExec`] and the scoped scan of
/// [`access`].
macro_rules! leaf_plan_methods {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
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
    };
}

pub mod access;
pub mod audit;
pub mod caller;
mod columns;
mod coop;
mod engine;
mod error;
pub mod h3;
pub mod http;
pub mod output;
mod parse;
pub mod scan;
pub mod segments;
pub mod stored;
mod tables;

pub use access::SqlAccess;
pub use audit::AUDIT_TABLE;
pub use columns::{TIME_ZONE, enum_type, timestamp_type};
pub use engine::{CATALOG, QueryOutput, SqlEngine, SqlLimits, TABLES};
pub use error::{SqlError, SqlErrorKind};
pub use parse::{
    MAX_NAME_PARTS, PARSE_STEPS_BASE, PARSE_STEPS_PER_TOKEN, check_dotted_names, check_parse_cost,
    parse_budget, parse_statement,
};
pub use stored::StoredTable;

/// Re-exported so callers build parameters and read results with the same
/// version of DataFusion and Arrow.
pub use datafusion;
