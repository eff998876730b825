//! One authenticated connection: the caller, their scoped engine with the
//! PostgreSQL catalog added, and their run-time parameters.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::error::{ErrorInfo, PgWireError};
use posbon_auth::{Auth, Caller};
use posbon_sql::caller::{access_of, record_query};
use posbon_sql::datafusion::arrow::datatypes::{DataType, SchemaRef};
use posbon_sql::datafusion::common::ParamValues;
use posbon_sql::datafusion::sql::sqlparser::ast::Statement;
use posbon_sql::{CATALOG, QueryOutput, SqlEngine, SqlError, SqlErrorKind};

use crate::settings::{Settings, current_setting_udf, version_udf};
use crate::statement::{Command, classify};

/// A connection after it logged in.
pub(crate) struct Session {
    /// Who.
    pub(crate) caller: Caller,
    /// When they logged in (a user removed since ends the connection).
    pub(crate) since: DateTime<Utc>,
    /// Their engine: only their tables, rows and columns, plus `pg_catalog`
    /// and `information_schema` describing just those.
    pub(crate) engine: SqlEngine,
    /// Their run-time parameters.
    pub(crate) settings: Arc<Settings>,
    parser: Arc<PostgresCompatibilityParser>,
}

/// The longest statement text taken (PostgreSQL takes up to 1 GB; a
/// query here is a few KB; `POST /v1/sql` takes 2 MB bodies).
pub(crate) const MAX_QUERY_BYTES: usize = 1 << 20;

/// The recursion limit of the PostgreSQL compatibility parser (sqlparser's
/// default, which that parser keeps).
const PARSER_RECURSION_LIMIT: usize = 50;

/// The most parameters a statement may have (PostgreSQL's limit).
pub(crate) const MAX_PARAMS: usize = 65_535;

/// A query's audit line when it does not finish (a cancel request, or the
/// client went away): written when the query's future is dropped.
struct Unfinished {
    auth: Arc<Auth>,
    caller: Caller,
    sql: String,
    started: Instant,
    finished: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (auth, caller, sql) = (
            Arc::clone(&self.auth),
            self.caller.clone(),
            std::mem::take(&mut self.sql),
        );
        let elapsed = self.started.elapsed();
        tokio::spawn(async move {
            let stopped = Err(SqlError::new(
                SqlErrorKind::Timeout,
                "stopped: cancelled by the client, or the connection ended",
            ));
            record_query(&auth, &caller, "pg", &sql, &stopped, elapsed).await;
        });
    }
}

/// A parsed statement, kept between Parse and Execute.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The statement as the engine reads it (client catalog queries
    /// rewritten to ones DataFusion plans).
    pub(crate) sql: String,
    /// What it asks for.
    pub(crate) command: Command,
    /// The types of `$1`, `$2`, … as planned (`None`: not inferred).
    pub(crate) params: Vec<Option<DataType>>,
    /// The columns a query returns (`None` for session statements).
    pub(crate) schema: Option<SchemaRef>,
}

impl Session {
    /// The session of `caller` over `engine`.
    pub(crate) async fn open(
        engine: &SqlEngine,
        caller: Caller,
        startup: &std::collections::HashMap<String, String>,
    ) -> Result<Self, SqlError> {
        let engine = engine.for_access(&access_of(&caller)).await?;
        let ctx = engine.context();
        setup_pg_catalog(ctx, CATALOG, EmptyContextProvider)
            .map_err(|e| SqlError::internal(format!("pg_catalog: {e}")))?;
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            options.sql_parser.dialect = posbon_sql::datafusion::config::Dialect::PostgreSQL;
            // `::timestamptz` gives an instant in UTC, as the columns are.
            options.execution.time_zone = Some("UTC".to_owned());
        }
        crate::information_schema::install(&engine).await?;
        let settings = Settings::new(engine.limits().timeout(), startup);
        ctx.register_udf(current_setting_udf(Arc::clone(&settings)));
        ctx.register_udf(version_udf());
        Ok(Self {
            caller,
            since: Utc::now(),
            engine,
            settings,
            parser: Arc::new(PostgresCompatibilityParser::new()),
        })
    }

    /// Splits `sql` into statements, each rewritten where a client's catalog
    /// query needs it. Parsing runs like a query (a turn, the SQL pool, the
    /// time limit), after the checks that refuse texts too long or too
    /// slow to parse ([`posbon_sql::check_dotted_names`],
    /// [`posbon_sql::check_parse_cost`]).
    pub(crate) async fn parse(&self, sql: &str) -> Result<Vec<Statement>, PgWireError> {
        if sql.len() > MAX_QUERY_BYTES {
            return Err(user_error(
                "54000",
                &format!(
                    "the statement is {} bytes; at most {MAX_QUERY_BYTES} are taken",
                    sql.len()
                ),
            ));
        }
        posbon_sql::check_dotted_names(sql).map_err(|e| sql_error(&e))?;
        let parser = Arc::clone(&self.parser);
        let text = sql.to_owned();
        let limit = self.engine.limits().timeout();
        self.engine
            .bounded(move |_| async move {
                posbon_sql::check_parse_cost(&text, PARSER_RECURSION_LIMIT, limit)?;
                parser
                    .parse(&text)
                    .map_err(|e| SqlError::invalid(format!("syntax error: {e}")))
            })
            .await
            .map_err(|e| sql_error(&e))
    }

    /// Plans `statement` for the extended protocol: its parameter types and
    /// result columns, without running it (planning runs like a query).
    pub(crate) async fn prepare(&self, statement: &Statement) -> Result<Prepared, PgWireError> {
        let command = classify(statement);
        let sql = statement.to_string();
        if command != Command::Query {
            let schema = matches!(command, Command::Show { .. }).then(|| show_schema(&command));
            return Ok(Prepared {
                sql,
                command,
                params: Vec::new(),
                schema,
            });
        }
        let engine = self.engine.clone();
        let text = sql.clone();
        let (types, schema) = self
            .engine
            .bounded(move |_| async move {
                let plan = engine.logical_plan(&text).await?;
                let types = plan.get_parameter_types()?;
                Ok((types, Arc::clone(plan.schema().inner())))
            })
            .await
            .map_err(|e| sql_error(&e))?;
        let mut numbered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(name, t)| Some((name.strip_prefix('$')?.parse().ok()?, t)))
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        let count = numbered.last().map_or(0, |(n, _)| *n);
        if count > MAX_PARAMS {
            return Err(user_error(
                "54023",
                &format!("${count}: a statement takes at most {MAX_PARAMS} parameters"),
            ));
        }
        let mut params = vec![None; count];
        for (n, t) in numbered {
            if n >= 1 {
                params[n - 1] = t;
            }
        }
        Ok(Prepared {
            sql,
            command,
            params,
            schema: Some(schema),
        })
    }

    /// Whether the credential this connection logged in with still holds:
    /// checked before each statement is parsed and before it runs.
    pub(crate) async fn check_credential(&self, auth: &Auth) -> Result<(), PgWireError> {
        match auth.still_valid(&self.caller, self.since, Utc::now()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "the credential this connection logged in with is no longer valid (revoked, expired or removed): connect again".into(),
            )))),
            Err(e) => {
                tracing::error!(error = %e, "identity store failed");
                Err(user_error(
                    "58000",
                    "the identity store is not available; retry",
                ))
            }
        }
    }

    /// Runs a query with its parameters within the connection's time limit,
    /// recording it in the audit log like `POST /v1/sql`.
    pub(crate) async fn query(
        &self,
        auth: &Arc<Auth>,
        sql: &str,
        params: ParamValues,
    ) -> Result<QueryOutput, PgWireError> {
        self.check_credential(auth).await?;
        let started = Instant::now();
        let mut unfinished = Unfinished {
            auth: Arc::clone(auth),
            caller: self.caller.clone(),
            sql: sql.to_owned(),
            started,
            finished: false,
        };
        let limit = self.settings.statement_timeout();
        let result =
            match tokio::time::timeout(limit, self.engine.query_with_values(sql, params)).await {
                Ok(result) => result,
                Err(_) => Err(SqlError::timeout(limit)),
            };
        unfinished.finished = true;
        record_query(auth, &self.caller, "pg", sql, &result, started.elapsed()).await;
        result.map_err(|e| sql_error(&e))
    }
}

/// The one text column `SHOW name` returns.
pub(crate) fn show_schema(command: &Command) -> SchemaRef {
    use posbon_sql::datafusion::arrow::datatypes::{Field, Schema};
    let name = match command {
        Command::Show { name } => name.as_str(),
        _ => "setting",
    };
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]))
}

/// An error for the client with its SQLSTATE.
pub(crate) fn user_error(code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}

/// A query's error for the client: the same message as over HTTP, with the
/// SQLSTATE of its kind; an internal one is logged and not detailed.
pub(crate) fn sql_error(e: &SqlError) -> PgWireError {
    if e.kind() == SqlErrorKind::Internal {
        tracing::error!(error = %e, "sql query failed");
        return user_error(
            e.sqlstate(),
            "the query failed inside the server; the server log has the details",
        );
    }
    let message = if e.kind() == SqlErrorKind::Timeout {
        format!(
            "canceling statement due to statement timeout: {}",
            e.message()
        )
    } else {
        e.message().to_owned()
    };
    user_error(e.sqlstate(), &message)
}
