//! [`SqlEngine`]: a DataFusion session over the store with Posbon's tables
//! and functions, that runs read-only queries within limits.

use posbon_model::Span;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use posbon_geo::Registry;
use posbon_store::Store;
use serde::Deserialize;

use crate::access::{AccessPolicy, SqlAccess};
use crate::audit::{AUDIT_TABLE, AuditTable};
use crate::columns::TableDef;
use crate::coop::YieldBetweenBatches;
use crate::error::SqlError;
use crate::parse::{check_dotted_names, parse_statement};
use crate::stored::{StoredTable, StoredTableProvider};
use crate::tables::{EscalationsTable, EventTable, mahallas_table};

/// Limits of one query, and the resources a session may use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlLimits {
    /// Longest a query may run, planning included.
    pub timeout: Span,
    /// Most rows a result holds; a longer result is cut and marked
    /// truncated.
    pub max_rows: usize,
    /// Most bytes (Arrow memory) a result holds; a larger result is cut
    /// and marked truncated, like one over `max_rows`.
    pub max_result_bytes: usize,
    /// Memory a query's operators (hash tables, sorts) may hold, in bytes.
    pub max_memory_bytes: usize,
    /// Partitions a query runs in parallel (0: one per CPU).
    pub partitions: usize,
    /// Queries that run at once on one engine (the callers' scoped engines
    /// share it); more wait their turn.
    pub max_concurrent: usize,
    /// Queries that may wait for a turn; one more is refused at once
    /// ([`crate::SqlErrorKind::Busy`], HTTP 503 with `Retry-After`). The
    /// wait counts toward the query's time limit.
    pub max_queued: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            timeout: Span::from_secs(30),
            max_rows: 100_000,
            max_result_bytes: 256 << 20,
            max_memory_bytes: 2 << 30,
            partitions: 0,
            max_concurrent: 4,
            max_queued: 32,
        }
    }
}

impl SqlLimits {
    /// The time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout.to_std()
    }
}

/// The catalog (database) the tables are in: `posbon.public.events` is
/// `events`; the PostgreSQL front end's database name.
pub const CATALOG: &str = "posbon";

/// The result of a query.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows, in batches.
    pub batches: Vec<RecordBatch>,
    /// Number of rows in `batches`.
    pub rows: usize,
    /// True when the result had more than the row limit and was cut.
    pub truncated: bool,
    /// Time from the query text to the last row.
    pub elapsed: Duration,
}

/// The names of the tables every engine shows to every caller. An engine
/// also has `audit` (the audit log, [`crate::audit`]), which an engine made
/// by [`SqlEngine::for_access`] shows only to a caller whose
/// [`SqlAccess::extra_tables`] names it (administrators).
pub const TABLES: [&str; 13] = [
    "events",
    "incidents",
    "camera_alerts",
    "fraud_flags",
    "mahallas",
    "escalations",
    "daily_reports",
    "daily_report_categories",
    "daily_report_hot_cells",
    "daily_report_focus_groups",
    "daily_report_difficult",
    "daily_report_repeat_cells",
    "mahalla_days",
];

/// Runs read-only SQL over the store: the event tables (`events`,
/// `incidents`, `camera_alerts`, `fraud_flags`), `mahallas`, `escalations`,
/// the stored daily report tables and `mahalla_days`, with the H3 functions
/// and `mahalla_of`; and `audit`, the audit log, which only an engine for a
/// caller granted it shows ([`SqlEngine::for_access`], [`crate::audit`]).
///
/// Every query is checked to be read-only (no DDL, DML, `COPY` or session
/// statements; no table reads files), runs within [`SqlLimits::timeout`]
/// and returns at most [`SqlLimits::max_rows`] rows. Cheap to share behind
/// an `Arc`; queries run concurrently.
#[derive(Clone)]
pub struct SqlEngine {
    ctx: SessionContext,
    limits: SqlLimits,
    /// Posbon's functions, to register again in derived engines.
    udfs: Vec<ScalarUDF>,
    /// The registry, for the coverage of a caller's scope.
    registry: Arc<Registry>,
    /// The access policies this engine's tables are wrapped in (empty: the
    /// full engine), applied in order to a table added by
    /// [`SqlEngine::with_table`].
    policies: Vec<Arc<AccessPolicy>>,
    /// Turns to run, shared with the engines derived from this one.
    admission: Arc<Admission>,
}

/// Refuses a plan whose select list holds a constant list (folded at
/// planning, e.g. `h3_grid_disk(<constant cell>, 500)`) so long that
/// repeating it on every row of a batch would pass the H3 functions' cell
/// limit per batch ([`crate::h3::MAX_CELLS_PER_BATCH`]): DataFusion repeats
/// a constant for every row, outside any memory accounting.
fn check_constant_lists(plan: &Arc<dyn ExecutionPlan>, batch_size: usize) -> Result<(), SqlError> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_expr::expressions::Literal;
    use datafusion::physical_plan::projection::ProjectionExec;
    let mut refused = None;
    let mut check = |plan: &Arc<dyn ExecutionPlan>| {
        if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
            // Rows per batch: fewer when the input is known to be small
            // (`SELECT h3_grid_disk(...)` without a FROM is one row).
            let rows = datafusion::physical_plan::StatisticsContext::default()
                .compute(
                    projection.input().as_ref(),
                    &datafusion::physical_plan::StatisticsArgs::new(),
                )
                .ok()
                .and_then(|s| s.num_rows.get_value().copied())
                .map_or(batch_size, |n| n.min(batch_size))
                .max(1);
            let most = crate::h3::MAX_CELLS_PER_BATCH / rows;
            let mut longest = 0usize;
            for e in projection.expr() {
                let _ = e.expr.apply(|node| {
                    if let Some(literal) = node.downcast_ref::<Literal>() {
                        let len = match literal.value() {
                            ScalarValue::List(a) => a.values().len(),
                            ScalarValue::LargeList(a) => a.values().len(),
                            ScalarValue::FixedSizeList(a) => a.values().len(),
                            _ => 0,
                        };
                        longest = longest.max(len);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
            if longest > most {
                refused = Some((longest, most));
            }
        }
        Ok::<_, datafusion::error::DataFusionError>(TreeNodeRecursion::Continue)
    };
    plan.apply(&mut check)?;
    if let Some((longest, most)) = refused {
        return Err(SqlError::invalid(format!(
            "the select list holds a constant list of {longest} values, which would be repeated \
             on every row (at most {most} values then); select it once, without a FROM, or \
             compute it per row"
        )));
    }
    Ok(())
}

/// The runtime every query runs on, apart from the services' own: one
/// thread per CPU, so that queries (DataFusion's operators are CPU-bound
/// and yield only between batches) never hold up ingest, the feed or the
/// API's other requests, and a query past its time limit is answered at
/// once whatever it is doing.
fn sql_pool() -> &'static tokio::runtime::Handle {
    static POOL: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("posbon-sql")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the SQL thread pool: {e}"))
    })
    .handle()
}

/// The concurrency limit and the queue in front of it.
#[derive(Debug)]
struct Admission {
    turns: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    max_concurrent: usize,
    max_queued: usize,
}

impl Admission {
    fn new(limits: &SqlLimits) -> Self {
        let max_concurrent = limits.max_concurrent.max(1);
        Self {
            turns: Arc::new(tokio::sync::Semaphore::new(max_concurrent)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_concurrent,
            max_queued: limits.max_queued,
        }
    }

    /// A turn, waiting at most `within`; refused at once when the queue is full.
    async fn turn(&self, within: Duration) -> Result<tokio::sync::OwnedSemaphorePermit, SqlError> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = Arc::clone(&self.turns).try_acquire_owned() {
            return Ok(permit);
        }
        let busy = || {
            SqlError::new(
                crate::SqlErrorKind::Busy,
                format!(
                    "the server is running {} queries and {} more are waiting \
                     (sql max_concurrent, max_queued): try again shortly",
                    self.max_concurrent, self.max_queued
                ),
            )
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let waited = tokio::time::timeout(within, Arc::clone(&self.turns).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("limits", &self.limits)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl SqlEngine {
    /// An engine over `store`, with `registry` for `mahallas`, `mahalla_of`
    /// and the storage resolution.
    pub fn new(store: Store, registry: Arc<Registry>, limits: SqlLimits) -> Result<Self, SqlError> {
        let partitions = if limits.partitions == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            limits.partitions
        };
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, "public")
            .with_target_partitions(partitions)
            .with_batch_size(8192)
            .with_information_schema(true);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.max_memory_bytes.max(1 << 20), 1.0)
            // No spill files: a query never writes to disk.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let ctx = session(config, runtime);
        for def in TableDef::event_tables() {
            let name = def.name;
            ctx.register_table(
                name,
                Arc::new(EventTable::new(def, store.clone(), Arc::clone(&registry))),
            )?;
        }
        ctx.register_table("mahallas", Arc::new(mahallas_table(&registry)?))?;
        ctx.register_table(
            "escalations",
            Arc::new(EscalationsTable::new(store.clone())),
        )?;
        for table in StoredTable::ALL {
            ctx.register_table(
                table.name(),
                Arc::new(StoredTableProvider::new(table, store.clone())),
            )?;
        }
        // Not one of TABLES: only a caller granted it reads it.
        ctx.register_table(AUDIT_TABLE, Arc::new(AuditTable::new(store.clone())))?;
        let udfs = crate::h3::functions(Arc::clone(&registry));
        for udf in &udfs {
            ctx.register_udf(udf.clone());
        }
        Ok(Self {
            ctx,
            admission: Arc::new(Admission::new(&limits)),
            limits,
            udfs,
            registry,
            policies: Vec::new(),
        })
    }

    /// An engine with the same tables, functions and limits, except that
    /// `name` is `table` (e.g. `events` held in memory, so that several
    /// queries over one day read the store once). The engine it comes from
    /// is unchanged. On an engine made by [`SqlEngine::for_access`], `table`
    /// is wrapped for that caller like every other table.
    pub async fn with_table(
        &self,
        name: &str,
        table: Arc<dyn TableProvider>,
    ) -> Result<Self, SqlError> {
        let mut table = table;
        for policy in &self.policies {
            table = policy.wrap(name, table);
        }
        let ctx = session(self.ctx.copied_config(), self.ctx.runtime_env());
        // Every table of this engine (`audit` included when it has it),
        // then `table`.
        for t in self.table_names() {
            if t != name {
                ctx.register_table(t.as_str(), self.ctx.table_provider(t.as_str()).await?)?;
            }
        }
        ctx.register_table(name, table)?;
        for udf in &self.udfs {
            ctx.register_udf(udf.clone());
        }
        Ok(Self {
            ctx,
            limits: self.limits.clone(),
            udfs: self.udfs.clone(),
            registry: Arc::clone(&self.registry),
            policies: self.policies.clone(),
            admission: Arc::clone(&self.admission),
        })
    }

    /// An engine for one caller: the same limits and functions, with every
    /// table wrapped so that its queries read only the rows of `access`'s
    /// scope and, unless `access.sensitive`, read the sensitive columns as
    /// NULL ([`crate::access`] says table by table what that means). The
    /// tables are [`TABLES`] and those of `access.extra_tables` this engine
    /// has; no other table is visible. The engine it comes from is
    /// unchanged, and its [`SqlEngine::context`] still reads everything.
    ///
    /// An access with every row and the sensitive columns gives this
    /// engine's tables themselves, unwrapped.
    pub async fn for_access(&self, access: &SqlAccess) -> Result<Self, SqlError> {
        let policy = Arc::new(AccessPolicy::new(access, &self.registry));
        let ctx = session(self.ctx.copied_config(), self.ctx.runtime_env());
        let mut names: Vec<&str> = TABLES.to_vec();
        let mut extra: Vec<&str> = access
            .extra_tables
            .iter()
            .map(String::as_str)
            .filter(|t| !TABLES.contains(t))
            .collect();
        extra.sort_unstable();
        names.extend(extra);
        for name in names {
            if !self.ctx.table_exist(name)? {
                continue;
            }
            let provider = self.ctx.table_provider(name).await?;
            ctx.register_table(name, policy.wrap(name, provider))?;
        }
        for udf in &self.udfs {
            ctx.register_udf(udf.clone());
        }
        let mut policies = self.policies.clone();
        policies.push(policy);
        Ok(Self {
            ctx,
            limits: self.limits.clone(),
            udfs: self.udfs.clone(),
            registry: Arc::clone(&self.registry),
            policies,
            admission: Arc::clone(&self.admission),
        })
    }

    /// The names of the tables this engine has, sorted: on an engine made
    /// by [`SqlEngine::for_access`], those its caller may query.
    pub fn table_names(&self) -> Vec<String> {
        let state = self.ctx.state();
        let catalog = &state.config_options().catalog;
        let mut names = self
            .ctx
            .catalog(&catalog.default_catalog)
            .and_then(|c| c.schema(&catalog.default_schema))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// The limits queries run with.
    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// The DataFusion session, for callers that build plans themselves.
    /// Queries run through it are not checked or limited. On an engine made
    /// by [`SqlEngine::for_access`] its tables are that caller's (scoped
    /// and masked); internal callers that need every row use the engine
    /// they derived it from.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one read-only statement (a query, or `EXPLAIN` of one).
    pub async fn query(&self, sql: &str) -> Result<QueryOutput, SqlError> {
        self.query_with_params(sql, Vec::new()).await
    }

    /// Runs one read-only statement with named parameters: `$day` in the
    /// text takes the value given for `day`.
    pub async fn query_with_params(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
    ) -> Result<QueryOutput, SqlError> {
        let values = if params.is_empty() {
            ParamValues::List(Vec::new())
        } else {
            ParamValues::from(params)
        };
        self.query_with_values(sql, values).await
    }

    /// Runs one read-only statement with parameter values: positional
    /// (`$1`, `$2`, … take the list in order, as PostgreSQL clients send
    /// them) or named.
    ///
    /// The query stops when its time limit passes or when the returned
    /// future is dropped (a client that went away, a cancel request): it
    /// runs on the SQL pool and is aborted at its next yield point either
    /// way, releasing its turn.
    pub async fn query_with_values(
        &self,
        sql: &str,
        params: ParamValues,
    ) -> Result<QueryOutput, SqlError> {
        let engine = self.clone();
        let sql = sql.to_owned();
        self.bounded(move |started| async move {
            engine
                .run(&sql, params, engine.limits.max_rows, started)
                .await
        })
        .await
    }

    /// Runs `work` the way a query runs: after waiting for a turn
    /// (admission), on the SQL pool, within the time limit, aborted when
    /// the returned future is dropped. For work of a caller's that may take
    /// long before any query runs: the PostgreSQL front end parses and plans
    /// a client's statement through it. `work` gets the instant the wait
    /// began.
    pub async fn bounded<T, F, W>(&self, work: W) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, SqlError>> + Send + 'static,
        W: FnOnce(Instant) -> F + Send + 'static,
    {
        let limit = self.limits.timeout();
        let started = Instant::now();
        let turn = self.admission.turn(limit).await?;
        // The work runs on the SQL pool, holding its turn until it really
        // ends: a caller whose time ran out is answered at once, and the
        // work stops at its next yield point without a new one taking its
        // turn meanwhile.
        let task = sql_pool().spawn(async move {
            let _turn = turn;
            work(started).await
        });
        let _abort = AbortOnDrop(task.abort_handle());
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SqlError::internal(format!("the query failed: {e}"))),
            Err(_) => Err(SqlError::timeout(limit)),
        }
    }

    /// The physical plan of a query with its parameters, as `EXPLAIN`
    /// would show it (for tests and diagnostics).
    pub async fn physical_plan(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
    ) -> Result<Arc<dyn ExecutionPlan>, SqlError> {
        let df = self.dataframe(sql, ParamValues::from(params)).await?;
        Ok(df.create_physical_plan().await?)
    }

    /// The logical plan of `sql`, a read-only query: refused if a dotted
    /// name is too long ([`check_dotted_names`]), parsed as the session's
    /// dialect within its budget of steps and the time limit
    /// ([`parse_statement`]), and
    /// refused if it would change anything (DDL, DML, `SET`).
    pub async fn logical_plan(&self, sql: &str) -> Result<LogicalPlan, SqlError> {
        check_dotted_names(sql)?;
        let state = self.ctx.state();
        let parser = &state.config().options().sql_parser;
        let statement = parse_statement(
            sql,
            &parser.dialect,
            parser.recursion_limit.get(),
            self.limits.timeout(),
        )?;
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        Ok(plan)
    }

    async fn dataframe(
        &self,
        sql: &str,
        params: ParamValues,
    ) -> Result<datafusion::dataframe::DataFrame, SqlError> {
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Err(SqlError::invalid("the query is empty"));
        }
        let plan = self.logical_plan(sql).await?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        let empty = match &params {
            ParamValues::List(list) => list.is_empty(),
            ParamValues::Map(map) => map.is_empty(),
        };
        Ok(if empty {
            df
        } else {
            df.with_param_values(params)?
        })
    }

    async fn run(
        &self,
        sql: &str,
        params: ParamValues,
        max_rows: usize,
        started: Instant,
    ) -> Result<QueryOutput, SqlError> {
        let df = self.dataframe(sql, params).await?;
        let task = std::sync::Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        check_constant_lists(&plan, self.ctx.copied_config().batch_size())?;
        let mut stream = datafusion::physical_plan::execute_stream(plan, task)?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut bytes = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let size = batch.get_array_memory_size();
            if bytes.saturating_add(size) > self.limits.max_result_bytes && batch.num_rows() > 0 {
                // Keep the rows that fit, at this batch's average row size.
                let per_row = size.div_ceil(batch.num_rows()).max(1);
                let keep = ((self.limits.max_result_bytes.saturating_sub(bytes)) / per_row)
                    .min(max_rows - rows);
                if keep > 0 {
                    batches.push(batch.slice(0, keep));
                }
                rows += keep;
                truncated = true;
                break;
            }
            bytes += size;
            if rows + batch.num_rows() > max_rows {
                let keep = max_rows - rows;
                if keep > 0 {
                    batches.push(batch.slice(0, keep));
                }
                rows = max_rows;
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        Ok(QueryOutput {
            schema,
            batches,
            rows,
            truncated,
            elapsed: started.elapsed(),
        })
    }
}

/// A session of this engine: DataFusion's defaults, then
/// [`YieldBetweenBatches`], so that a query can be stopped between batches.
fn session(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(YieldBetweenBatches))
        .build();
    SessionContext::new_with_state(state)
}

/// Aborts a spawned query when the future waiting for it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    /// One turn and one place in the queue: a second query waits (and is
    /// refused as busy when its time runs out), a third is refused at once,
    /// and a freed turn goes to the next query.
    #[tokio::test]
    async fn turns_are_limited_and_the_queue_is_bounded() {
        let admission = Admission::new(&SqlLimits {
            max_concurrent: 1,
            max_queued: 1,
            ..SqlLimits::default()
        });
        let first = admission
            .turn(Duration::from_secs(1))
            .await
            .expect("a turn");
        let waiting = admission.turn(Duration::from_millis(300));
        let refused = async {
            // The second query is in the queue by now.
            tokio::time::sleep(Duration::from_millis(50)).await;
            admission.turn(Duration::from_secs(1)).await
        };
        let (waited, refused) = tokio::join!(waiting, refused);
        let e = refused.expect_err("the queue is full");
        assert_eq!(e.kind(), crate::SqlErrorKind::Busy);
        assert!(e.message().contains("max_queued"), "{e}");
        assert_eq!(
            waited.expect_err("no turn within its time").kind(),
            crate::SqlErrorKind::Busy
        );
        drop(first);
        assert!(admission.turn(Duration::from_millis(10)).await.is_ok());
    }
}
