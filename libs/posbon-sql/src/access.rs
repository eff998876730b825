//! Per-caller access: the rows a caller's scope allows and the sensitive
//! columns it may not read, enforced inside the engine so that no query
//! text can get around them.
//!
//! [`SqlEngine::for_access`](crate::SqlEngine::for_access) gives an engine
//! whose every table is a wrapper around the full engine's table. The
//! wrapper's scan reads the table with the scope as an extra filter (the
//! event tables turn `mahalla_id IN (…)` into the storage cells that cover
//! those mahallas, so a scoped scan reads only its share of the store),
//! keeps only the rows of the scope, and replaces every sensitive column by
//! a NULL of its type. It is one opaque plan node (`ScopedExec`): the
//! optimizer cannot push anything through it or read statistics or
//! metrics from below it, so neither `EXPLAIN ANALYZE` nor a pushed filter
//! sees a row before the scope is applied. A filter on a masked column is
//! never offered to the table below: DataFusion applies it above the
//! wrapper, to the NULLs, so `WHERE victim_minor` matches nothing and the
//! masked values cannot be probed. The masked columns are nullable in the
//! wrapper's schema, so no optimizer rule assumes they hold values.
//!
//! A caller is *national* when [`SqlAccess::mahallas`],
//! [`SqlAccess::districts`] and [`SqlAccess::regions`] are all `None`;
//! otherwise it is limited to part of the country, and a set that is
//! `None` counts as empty. Which rows a limited caller sees:
//!
//! | table | rows a limited caller sees | masked unless `sensitive` |
//! |---|---|---|
//! | `events` | `mahalla_id` in `mahallas` (never an unassigned event, whose `mahalla_id` is NULL) | `attributes` |
//! | `incidents` | `mahalla_id` in `mahallas` | `victim_minor`, `victim_youth`, `victim_woman`, `offender_minor`, `offender_youth`, `domestic`, `description`, `attributes` |
//! | `camera_alerts` | `mahalla_id` in `mahallas` | `snapshot_uri`, `attributes` |
//! | `fraud_flags` | `mahalla_id` in `mahallas` | `account_ref`, `attributes` |
//! | `mahallas` | `mahalla_id` in `mahallas` | none (`inspector` is the official's name, kept) |
//! | `escalations` | `mahalla_id` in `mahallas` | none: the table has no free text (the records' history notes are not a column) |
//! | `mahalla_days` | `mahalla_id` in `mahallas` (never the unassigned row) | the focus-group counts `victim_minor`, `victim_youth`, `victim_woman`, `offender_minor`, `offender_youth`, `domestic`, `offender_youth_drugs` |
//! | `daily_reports`, `daily_report_categories`, `daily_report_hot_cells`, `daily_report_difficult`, `daily_report_repeat_cells` | by `scope`/`scope_id`: a `mahalla` row of `mahallas`; a `district` row of `districts` whose every mahalla (in the registry) is in `mahallas`; a `region` row likewise; never `nation` nor `unassigned` | none |
//! | `daily_report_focus_groups` | as the other report tables | every figure (`offences`, baselines, z scores): only `date`, `scope`, `scope_id` and `focus_group` stay ([`StoredTable::is_sensitive_column`]) |
//! | another table ([`SqlAccess::extra_tables`], or one given to [`SqlEngine::with_table`](crate::SqlEngine::with_table)) | by the first it has of `scope` with `scope_id` (as above), `mahalla_id`, `district_id` (in `districts`), `region_id` (in `regions`); **refused** when it has none of them | any column named as above, or `victim_*` / `offender_*` |
//!
//! A refused table still appears in `information_schema`, but a query that
//! reads it fails with a [`SqlErrorKind::Forbidden`] error: `table audit is
//! not available to a caller limited to part of the country`. None of the
//! built-in tables is refused: each has a geographic key.
//!
//! Why the report tables show a district or region only when the scope
//! covers all of it: its figures are sums over every mahalla of it, so a
//! caller with part of a district would otherwise read totals of mahallas
//! outside its scope. The nation row and the unassigned events' row are
//! outside every limited scope for the same reason.
//!
//! What is not hidden: the tables' names and columns (`information_schema`,
//! `DESCRIBE`), and how long a query takes.
//!
//! One file (840 lines) because the guarantee above rests on `RowScope`, `ScopedTable::scan`
//! and `ScopedExec` agreeing on which columns are read, which filters go below and what the
//! plan shows; kept together it can be reviewed at once, and `ScopedExec` stays private.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::cast::as_boolean_array;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Cast, Expr, TableProviderFilterPushDown, TableType, lit};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream, displayable,
};
use futures::StreamExt;
use posbon_geo::Registry;

use crate::error::{SqlError, SqlErrorKind};
use crate::stored::StoredTable;

/// What one caller may read through SQL.
#[derive(Debug, Clone, Default)]
pub struct SqlAccess {
    /// `None`: every row (when `districts` and `regions` are `None` too).
    /// `Some(set)`: only the rows of these mahallas (ids of the registry),
    /// or for tables keyed coarser, of the districts and regions below.
    pub mahallas: Option<Arc<HashSet<String>>>,
    /// The districts fully or partly covered by the scope (derived by the
    /// caller from the registry, see [`SqlAccess::for_mahallas`]): used for
    /// tables that only carry `district_id`. The report tables show a
    /// district's row only when the scope covers every mahalla of it.
    pub districts: Option<Arc<HashSet<String>>>,
    /// The regions fully or partly covered by the scope, as `districts`.
    pub regions: Option<Arc<HashSet<String>>>,
    /// Whether the sensitive columns may be read; when false they read as
    /// NULL.
    pub sensitive: bool,
    /// Tables this caller may read beyond [`TABLES`](crate::TABLES) (e.g.
    /// `audit` for administrators), when the engine has them.
    pub extra_tables: HashSet<String>,
}

impl SqlAccess {
    /// Every row; the sensitive columns when `sensitive`.
    pub fn national(sensitive: bool) -> Self {
        Self {
            sensitive,
            ..Self::default()
        }
    }

    /// The rows of `mahallas`, with the districts and regions that hold at
    /// least one of them (ids the registry does not know are kept in
    /// `mahallas` and add no district or region).
    pub fn for_mahallas<I, S>(registry: &Registry, mahallas: I, sensitive: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mahallas: HashSet<String> = mahallas.into_iter().map(Into::into).collect();
        let mut districts = HashSet::new();
        let mut regions = HashSet::new();
        for id in &mahallas {
            if let Some((_, m)) = registry.mahalla_by_id(id) {
                districts.insert(m.district_id.clone());
                regions.insert(m.region_id.clone());
            }
        }
        Self {
            mahallas: Some(Arc::new(mahallas)),
            districts: Some(Arc::new(districts)),
            regions: Some(Arc::new(regions)),
            sensitive,
            extra_tables: HashSet::new(),
        }
    }

    /// True when the caller may read every row.
    pub fn is_national(&self) -> bool {
        self.mahallas.is_none() && self.districts.is_none() && self.regions.is_none()
    }
}

/// True for the columns a caller without [`SqlAccess::sensitive`] reads as
/// NULL, in any table ([`posbon_auth::is_sensitive_field`]).
pub fn is_sensitive_column(name: &str) -> bool {
    posbon_auth::is_sensitive_field(name)
}

/// A caller's access, resolved against the registry: sorted id lists for
/// the filters, and the districts and regions the scope covers fully.
pub(crate) struct AccessPolicy {
    /// `None`: national.
    scope: Option<Scope>,
    sensitive: bool,
}

/// The ids of a limited scope, each list sorted.
#[derive(Debug)]
struct Scope {
    mahallas: Arc<[String]>,
    districts: Arc<[String]>,
    regions: Arc<[String]>,
    /// Districts of `districts` with every mahalla in `mahallas`.
    full_districts: Arc<[String]>,
    /// Regions of `regions` with every mahalla in `mahallas`.
    full_regions: Arc<[String]>,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AccessPolicy");
        match &self.scope {
            None => d.field("scope", &"national"),
            Some(s) => d
                .field("mahallas", &s.mahallas.len())
                .field("districts", &s.districts.len())
                .field("regions", &s.regions.len()),
        };
        d.field("sensitive", &self.sensitive).finish()
    }
}

fn sorted(set: Option<&Arc<HashSet<String>>>) -> Arc<[String]> {
    let mut v: Vec<String> = set.map(|s| s.iter().cloned().collect()).unwrap_or_default();
    v.sort_unstable();
    v.into()
}

impl AccessPolicy {
    pub(crate) fn new(access: &SqlAccess, registry: &Registry) -> Self {
        if access.is_national() {
            return Self {
                scope: None,
                sensitive: access.sensitive,
            };
        }
        let mahallas = sorted(access.mahallas.as_ref());
        let districts = sorted(access.districts.as_ref());
        let regions = sorted(access.regions.as_ref());
        // Mahallas per district and region: in the registry, and in scope.
        let in_scope: HashSet<&str> = mahallas.iter().map(String::as_str).collect();
        let mut per_district: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut per_region: HashMap<&str, (usize, usize)> = HashMap::new();
        for m in registry.mahallas() {
            let inside = usize::from(in_scope.contains(m.id.as_str()));
            let d = per_district.entry(m.district_id.as_str()).or_default();
            d.0 += 1;
            d.1 += inside;
            let r = per_region.entry(m.region_id.as_str()).or_default();
            r.0 += 1;
            r.1 += inside;
        }
        let full = |ids: &[String], counts: &HashMap<&str, (usize, usize)>| -> Arc<[String]> {
            ids.iter()
                .filter(|id| {
                    counts
                        .get(id.as_str())
                        .is_some_and(|&(all, inside)| all > 0 && inside == all)
                })
                .cloned()
                .collect()
        };
        let full_districts = full(&districts, &per_district);
        let full_regions = full(&regions, &per_region);
        Self {
            scope: Some(Scope {
                mahallas,
                districts,
                regions,
                full_districts,
                full_regions,
            }),
            sensitive: access.sensitive,
        }
    }

    /// `table` as this caller sees it: itself when the caller may read all
    /// of it, else wrapped.
    pub(crate) fn wrap(&self, name: &str, table: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        let schema = table.schema();
        let masked: Vec<bool> = schema
            .fields()
            .iter()
            .map(|f| {
                !self.sensitive
                    && (is_sensitive_column(f.name())
                        || StoredTable::of_name(name)
                            .is_some_and(|t| t.is_sensitive_column(f.name())))
            })
            .collect();
        let rows = match &self.scope {
            None => RowScope::All,
            Some(scope) => RowScope::of(&schema, scope),
        };
        if matches!(rows, RowScope::All) && !masked.contains(&true) {
            return table;
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&masked)
            .map(|(f, &m)| {
                let f = f.as_ref().clone();
                if m { f.with_nullable(true) } else { f }
            })
            .collect();
        let outer = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Arc::new(ScopedTable {
            name: name.to_owned(),
            inner: table,
            schema: outer,
            masked,
            rows,
        })
    }
}

/// Which rows of a table a caller sees.
#[derive(Debug, Clone)]
enum RowScope {
    /// Every row.
    All,
    /// Rows whose `column` (as text) is one of `ids` (sorted).
    Key {
        column: String,
        what: &'static str,
        ids: Arc<[String]>,
    },
    /// Report rows by `scope` and `scope_id`.
    Report {
        mahallas: Arc<[String]>,
        districts: Arc<[String]>,
        regions: Arc<[String]>,
    },
    /// No row: the table has nothing to scope it by.
    Refused,
}

impl RowScope {
    /// The scope of a table with `schema` for a limited caller.
    fn of(schema: &Schema, scope: &Scope) -> Self {
        let has = |name: &str| schema.field_with_name(name).is_ok();
        let key = |column: &str, what: &'static str, ids: &Arc<[String]>| RowScope::Key {
            column: column.to_owned(),
            what,
            ids: Arc::clone(ids),
        };
        // `scope` first: a report row's figures are the whole scope's,
        // whatever mahalla it also names (a repeat cell of the nation's top
        // list names its mahalla, and its rank is the nation's).
        if has("scope") && has("scope_id") {
            RowScope::Report {
                mahallas: Arc::clone(&scope.mahallas),
                districts: Arc::clone(&scope.full_districts),
                regions: Arc::clone(&scope.full_regions),
            }
        } else if has("mahalla_id") {
            key("mahalla_id", "mahallas", &scope.mahallas)
        } else if has("district_id") {
            key("district_id", "districts", &scope.districts)
        } else if has("region_id") {
            key("region_id", "regions", &scope.regions)
        } else {
            RowScope::Refused
        }
    }

    /// The columns the filter reads.
    fn columns(&self) -> Vec<&str> {
        match self {
            RowScope::All | RowScope::Refused => Vec::new(),
            RowScope::Key { column, .. } => vec![column.as_str()],
            RowScope::Report { .. } => vec!["scope", "scope_id"],
        }
    }

    /// The filter for the table below, to narrow what it reads (only when
    /// the column is text, which is what the event tables understand).
    fn pushdown(&self, schema: &Schema) -> Option<Expr> {
        let RowScope::Key { column, ids, .. } = self else {
            return None;
        };
        let field = schema.field_with_name(column).ok()?;
        (field.data_type() == &DataType::Utf8).then(|| in_list(text_column(column, schema), ids))
    }

    /// The predicate rows must pass, over a schema holding its columns.
    fn predicate(&self, schema: &Schema) -> Option<Expr> {
        match self {
            RowScope::All | RowScope::Refused => None,
            RowScope::Key { column, ids, .. } => Some(if ids.is_empty() {
                lit(false)
            } else {
                in_list(text_column(column, schema), ids)
            }),
            RowScope::Report {
                mahallas,
                districts,
                regions,
            } => {
                let scope = text_column("scope", schema);
                let scope_id = text_column("scope_id", schema);
                let parts = [
                    ("mahalla", mahallas),
                    ("district", districts),
                    ("region", regions),
                ]
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(kind, ids)| {
                    scope
                        .clone()
                        .eq(lit(kind))
                        .and(in_list(scope_id.clone(), ids))
                });
                Some(parts.reduce(Expr::or).unwrap_or_else(|| lit(false)))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            RowScope::All => "all".to_owned(),
            RowScope::Refused => "refused".to_owned(),
            RowScope::Key { column, what, ids } => format!("{column} in {} {what}", ids.len()),
            RowScope::Report {
                mahallas,
                districts,
                regions,
            } => format!(
                "scope in {} mahallas, {} districts, {} regions",
                mahallas.len(),
                districts.len(),
                regions.len()
            ),
        }
    }
}

/// A column as text (cast when it is stored otherwise).
fn text_column(name: &str, schema: &Schema) -> Expr {
    let column = Expr::Column(Column::new_unqualified(name));
    match schema.field_with_name(name).map(|f| f.data_type()) {
        Ok(DataType::Utf8) => column,
        _ => Expr::Cast(Cast::new(Box::new(column), DataType::Utf8)),
    }
}

fn in_list(expr: Expr, ids: &[String]) -> Expr {
    Expr::InList(InList::new(
        Box::new(expr),
        ids.iter().map(|id| lit(id.as_str())).collect(),
        false,
    ))
}

/// A table as one caller sees it.
struct ScopedTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    /// The inner schema with the masked columns nullable.
    schema: SchemaRef,
    /// Per column: read as NULL.
    masked: Vec<bool>,
    rows: RowScope,
}

impl fmt::Debug for ScopedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedTable")
            .field("table", &self.name)
            .field("rows", &self.rows.describe())
            .field("masked", &self.masked_names())
            .finish_non_exhaustive()
    }
}

impl ScopedTable {
    fn masked_names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .zip(&self.masked)
            .filter(|(_, m)| **m)
            .map(|(f, _)| f.name().as_str())
            .collect()
    }

    /// True when `expr` reads a masked column.
    fn reads_masked(&self, expr: &Expr) -> bool {
        expr.column_refs().iter().any(|c| {
            self.schema
                .index_of(&c.name)
                .map_or(true, |i| self.masked.get(i).copied().unwrap_or(true))
        })
    }

    fn refused(&self) -> DataFusionError {
        DataFusionError::External(Box::new(SqlError::new(
            SqlErrorKind::Forbidden,
            format!(
                "table {} is not available to a caller limited to part of the country",
                self.name
            ),
        )))
    }
}

#[async_trait]
impl TableProvider for ScopedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let mut out = vec![TableProviderFilterPushDown::Unsupported; filters.len()];
        if matches!(self.rows, RowScope::Refused) {
            return Ok(out);
        }
        // Filters on masked columns stay above the wrapper, where those
        // columns are NULL; the rest are offered to the table below, but
        // never as exact: its rows are filtered again above.
        let (at, offered): (Vec<usize>, Vec<&Expr>) = filters
            .iter()
            .enumerate()
            .filter(|(_, f)| !self.reads_masked(f))
            .map(|(i, f)| (i, *f))
            .unzip();
        if offered.is_empty() {
            return Ok(out);
        }
        let answers = self.inner.supports_filters_pushdown(&offered)?;
        for (i, answer) in at.into_iter().zip(answers) {
            out[i] = match answer {
                TableProviderFilterPushDown::Unsupported => {
                    TableProviderFilterPushDown::Unsupported
                }
                _ => TableProviderFilterPushDown::Inexact,
            };
        }
        Ok(out)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if matches!(self.rows, RowScope::Refused) {
            return Err(self.refused());
        }
        let inner_schema = self.inner.schema();
        let wanted: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        // The columns read from the table below: the unmasked columns asked
        // for, then those the scope filter needs.
        let mut read: Vec<usize> = Vec::with_capacity(wanted.len() + 2);
        for &i in &wanted {
            if !self.masked.get(i).copied().unwrap_or(true) && !read.contains(&i) {
                read.push(i);
            }
        }
        for name in self.rows.columns() {
            let i = inner_schema.index_of(name)?;
            if !read.contains(&i) {
                read.push(i);
            }
        }
        let mut offered: Vec<Expr> = filters
            .iter()
            .filter(|f| !self.reads_masked(f))
            .cloned()
            .collect();
        offered.extend(self.rows.pushdown(&inner_schema));
        let scoped = !matches!(self.rows, RowScope::All);
        let input = self
            .inner
            .scan(
                state,
                Some(&read),
                &offered,
                if scoped { None } else { limit },
            )
            .await?;
        let input_schema = input.schema();
        let predicate = match self.rows.predicate(&input_schema) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(Arc::clone(&input_schema))?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };
        let mut outputs = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let field = self.schema.field(i);
            outputs.push(if self.masked.get(i).copied().unwrap_or(true) {
                Output::Null(field.data_type().clone())
            } else {
                let at = read.iter().position(|&r| r == i).ok_or_else(|| {
                    DataFusionError::Internal(format!("column {} not read", field.name()))
                })?;
                Output::Column(at)
            });
        }
        let schema = Arc::new(self.schema.project(&wanted)?);
        Ok(Arc::new(ScopedExec::new(
            self.name.clone(),
            self.rows.describe(),
            self.masked_names().join(", "),
            input,
            predicate,
            outputs,
            schema,
        )))
    }
}

/// A column of the wrapper's output.
#[derive(Debug, Clone)]
enum Output {
    /// The input column at this position.
    Column(usize),
    /// NULLs of this type.
    Null(DataType),
}

/// The scan of a [`ScopedTable`]: the table's own scan, its rows outside
/// the scope dropped and its masked columns NULL. A leaf to the optimizer
/// (the scan below is not one of its children), without statistics and
/// with only its own output rows as metrics, so that nothing about the rows
/// before the scope is applied shows or is used.
struct ScopedExec {
    table: String,
    rows: String,
    masked: String,
    input: Arc<dyn ExecutionPlan>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    outputs: Arc<[Output]>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for ScopedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedExec")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .field("masked", &self.masked)
            .finish_non_exhaustive()
    }
}

impl ScopedExec {
    fn new(
        table: String,
        rows: String,
        masked: String,
        input: Arc<dyn ExecutionPlan>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        outputs: Vec<Output>,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Self {
            table,
            rows,
            masked,
            input,
            predicate,
            outputs: outputs.into(),
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for ScopedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::TreeRender => {
                write!(f, "table={}\nrows={}", self.table, self.rows)
            }
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "ScopedExec: table={}, rows={}, masked=[{}], scan={}",
                self.table,
                self.rows,
                self.masked,
                displayable(self.input.as_ref())
                    .one_line()
                    .to_string()
                    .trim_end()
            ),
        }
    }
}

impl ExecutionPlan for ScopedExec {
    leaf_plan_methods!("ScopedExec");

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let predicate = self.predicate.clone();
        let outputs = Arc::clone(&self.outputs);
        let schema = Arc::clone(&self.schema);
        let out_schema = Arc::clone(&schema);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let stream = input.map(move |batch| {
            let out = apply(&batch?, predicate.as_deref(), &outputs, &out_schema)?;
            output_rows.add(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The rows of `batch` that pass `predicate`, as the `outputs` columns.
fn apply(
    batch: &RecordBatch,
    predicate: Option<&dyn PhysicalExpr>,
    outputs: &[Output],
    schema: &SchemaRef,
) -> DfResult<RecordBatch> {
    let kept;
    let batch = match predicate {
        Some(predicate) => {
            let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
            kept = filter_record_batch(batch, as_boolean_array(&mask)?)?;
            &kept
        }
        None => batch,
    };
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = outputs
        .iter()
        .map(|o| match o {
            Output::Column(i) => Arc::clone(batch.column(*i)),
            Output::Null(t) => new_null_array(t, rows),
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_columns_are_named() {
        for name in [
            "description",
            "attributes",
            "snapshot_uri",
            "account_ref",
            "victim_minor",
            "victim_youth",
            "victim_woman",
            "offender_minor",
            "offender_youth",
            "domestic",
        ] {
            assert!(is_sensitive_column(name), "{name}");
        }
        for name in [
            "mahalla_id",
            "category",
            "lat",
            "inspector",
            "counts",
            "rule",
        ] {
            assert!(!is_sensitive_column(name), "{name}");
        }
    }

    #[test]
    fn a_table_is_scoped_by_its_finest_key() {
        let scope = Scope {
            mahallas: vec!["m1".to_owned()].into(),
            districts: vec!["d1".to_owned()].into(),
            regions: vec!["r1".to_owned()].into(),
            full_districts: Vec::new().into(),
            full_regions: Vec::new().into(),
        };
        let schema = |names: &[&str]| {
            Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(*n, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            )
        };
        let of = |names: &[&str]| RowScope::of(&schema(names), &scope).describe();
        assert_eq!(
            of(&["id", "mahalla_id", "district_id"]),
            "mahalla_id in 1 mahallas"
        );
        assert_eq!(
            of(&["scope", "scope_id", "district_id", "region_id"]),
            "scope in 1 mahallas, 0 districts, 0 regions"
        );
        assert_eq!(
            of(&["district_id", "region_id"]),
            "district_id in 1 districts"
        );
        assert_eq!(of(&["region_id"]), "region_id in 1 regions");
        assert_eq!(of(&["who", "what"]), "refused");
    }
}
