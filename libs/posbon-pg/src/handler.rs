//! The protocol handlers: log-in, simple and extended queries, cancel
//! requests.

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use chrono::Utc;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use posbon_auth::{AuditEntry, Auth, Permission, Refused};
use posbon_sql::datafusion::arrow::datatypes::DataType;
use posbon_sql::datafusion::common::ParamValues;
use posbon_sql::{CATALOG, QueryOutput, SqlEngine};
use serde_json::json;

use crate::session::{Prepared, Session, show_schema, sql_error, user_error};
use crate::settings::SERVER_VERSION;
use crate::statement::Command;

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) engine: Arc<SqlEngine>,
    pub(crate) auth: Arc<Auth>,
    /// Refuse a log-in over a connection without TLS.
    pub(crate) require_tls: bool,
    pub(crate) connections: Arc<ConnectionManager>,
    pub(crate) keys: RandomPidSecretKeyGenerator,
}

/// The handlers of one server (one value for all its connections: what is
/// a connection's own lives in its session extensions).
pub(crate) struct Handlers {
    pub(crate) shared: Arc<Shared>,
    query: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            query: Arc::new(Queries {
                shared: Arc::clone(&shared),
                parser: Arc::new(Parser {
                    auth: Arc::clone(&shared.auth),
                }),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(Arc::clone(&shared.connections))),
            shared,
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.query)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.query)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Startup {
            shared: Arc::clone(&self.shared),
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), error = %error, "postgresql error sent");
    }
}

fn fatal(code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message.into(),
    )))
}

/// Log-in: a cleartext password (TLS protects it when configured), which is
/// an API token (any user name) or the named user's password.
struct Startup {
    shared: Arc<Shared>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.shared.require_tls && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server takes connections over TLS only: connect with sslmode=require",
                    ));
                }
                let login = LoginInfo::from_client_info(client);
                if let Some(db) = login.database().filter(|d| *d != CATALOG) {
                    return Err(fatal(
                        "3D000",
                        &format!("database \"{db}\" does not exist: the database is \"{CATALOG}\""),
                    ));
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let peer = client.socket_addr();
                let auth = &self.shared.auth;
                let caller = match auth
                    .caller_of_password(&user, &password.password, Some(peer.ip()), Utc::now())
                    .await
                {
                    Ok(caller) => caller,
                    Err(refused) => {
                        auth.audit()
                            .record(AuditEntry {
                                actor: "anonymous".into(),
                                role: None,
                                action: "pg_login",
                                target: None,
                                outcome: "refused",
                                detail: json!({
                                    // A token typed as the user name is not kept.
                                    "user": if user.starts_with(posbon_auth::identities::TOKEN_PREFIX) { "(a token)" } else { user.as_str() },
                                    "peer": peer.to_string(),
                                    "reason": refused.to_string(),
                                }),
                            })
                            .await;
                        let code = match refused {
                            Refused::Invalid(_) | Refused::Expired => "28P01",
                            Refused::Throttled(_) => "53400",
                            Refused::Unavailable(_) => "58000",
                            Refused::Claims(_) | Refused::Scope(_) => "28000",
                        };
                        return Err(fatal(code, &refused.to_string()));
                    }
                };
                if !caller.may(Permission::ReadSql) {
                    auth.audit()
                        .record(caller.audit(
                            "pg_login",
                            None,
                            "refused",
                            json!({"peer": peer.to_string(), "reason": "no read_sql"}),
                        ))
                        .await;
                    return Err(fatal(
                        "42501",
                        &format!("role {} may not query SQL (it needs read_sql)", caller.role),
                    ));
                }
                let startup = client.metadata().clone();
                let session = Session::open(&self.shared.engine, caller, &startup)
                    .await
                    .map_err(|e| sql_error(&e))?;
                auth.audit()
                    .record(session.caller.audit(
                        "pg_login",
                        None,
                        "ok",
                        json!({"peer": peer.to_string(), "application": startup.get("application_name")}),
                    ))
                    .await;
                tracing::info!(actor = %session.caller.actor(), %peer, "postgresql connection logged in");
                let (pid, secret) = self.shared.keys.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                let (handle, guard) = self.shared.connections.register(pid, secret);
                client.session_extensions().insert(handle);
                client.session_extensions().insert(guard);
                client.session_extensions().insert(session);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = SERVER_VERSION.to_owned();
                parameters.is_superuser = false;
                parameters.default_transaction_read_only = true;
                parameters.time_zone = "UTC".to_owned();
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn session_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Session>()
        .ok_or_else(|| fatal("28000", "not logged in"))
}

/// Simple and extended queries.
struct Queries {
    shared: Arc<Shared>,
    parser: Arc<Parser>,
}

impl Queries {
    /// Runs one statement of `session`.
    async fn run<C>(
        &self,
        client: &mut C,
        session: &Session,
        prepared: &Prepared,
        params: ParamValues,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let tag = Tag::new(prepared.command.tag());
        match &prepared.command {
            Command::Query => {
                let output = session
                    .query(&self.shared.auth, &prepared.sql, params)
                    .await?;
                if output.truncated {
                    let notice = ErrorInfo::new(
                        "NOTICE".into(),
                        "01000".into(),
                        format!(
                            "the result was cut at {} rows (the server's row or size limit)",
                            output.rows
                        ),
                    );
                    client
                        .send(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                            notice,
                        )))
                        .await?;
                }
                Ok(Response::Query(encode(output, format)?))
            }
            Command::Begin => Ok(Response::TransactionStart(tag)),
            Command::Commit | Command::Rollback => Ok(Response::TransactionEnd(tag)),
            Command::Set { name, value } => match session.settings.set(name, value) {
                Ok(()) => Ok(Response::Execution(tag)),
                Err(refused) => Err(user_error(refused.code, &refused.message)),
            },
            Command::Reset { name } => match session.settings.reset(name) {
                Ok(()) => Ok(Response::Execution(tag)),
                Err(refused) => Err(user_error(refused.code, &refused.message)),
            },
            Command::Show { name } => {
                let value = session.settings.get(name).ok_or_else(|| {
                    user_error(
                        "42704",
                        &format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                let fields = Arc::new(fields_of(&show_schema(&prepared.command), format)?);
                let mut row = DataRowEncoder::new(Arc::clone(&fields));
                row.encode_field(&value)?;
                let rows = vec![Ok(row.take_row())];
                Ok(Response::Query(QueryResponse::new(
                    fields,
                    stream::iter(rows),
                )))
            }
            Command::SetTransaction | Command::Discard => Ok(Response::Execution(tag)),
            Command::ReadWrite => Err(user_error(
                "25006",
                "cannot start a read-write transaction: this server is read-only",
            )),
        }
    }
}

fn fields_of(
    schema: &posbon_sql::datafusion::arrow::datatypes::Schema,
    format: &Format,
) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, None)
}

/// A query's rows as the client asked for them (text or binary per column).
fn encode(output: QueryOutput, format: &Format) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields_of(&output.schema, format)?);
    let mut rows = Vec::with_capacity(output.rows);
    for batch in output.batches {
        rows.extend(encode_recordbatch(Arc::clone(&fields), batch));
    }
    let mut response = QueryResponse::new(fields, stream::iter(rows));
    response.set_command_tag("SELECT");
    Ok(response)
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        session.check_credential(&self.shared.auth).await?;
        let statements = session.parse(query).await?;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in &statements {
            let prepared = Prepared {
                sql: statement.to_string(),
                command: crate::statement::classify(statement),
                params: Vec::new(),
                schema: None,
            };
            match self
                .run(
                    client,
                    &session,
                    &prepared,
                    ParamValues::List(Vec::new()),
                    &Format::UnifiedText,
                )
                .await
            {
                Ok(response) => responses.push(response),
                Err(PgWireError::UserError(info)) if statements.len() > 1 => {
                    // The statements after a failed one are not run.
                    responses.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(responses)
    }
}

/// Parses statements for the extended protocol.
struct Parser {
    auth: Arc<Auth>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client)?;
        session.check_credential(&self.auth).await?;
        let statements = session.parse(sql).await?;
        match statements.as_slice() {
            [] => Ok(None),
            [statement] => Ok(Some(session.prepare(statement).await?)),
            _ => Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )),
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        stmt.params
            .iter()
            .map(|t| match t {
                Some(t) => into_pg_type(t),
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.schema {
            Some(schema) => fields_of(schema, column_format.unwrap_or(&Format::UnifiedText)),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let server = self.parser.get_parameter_types(&target.statement)?;
        let params = (0..server.len().max(target.parameter_types.len()))
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| server.get(i).cloned())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        let fields = self.parser.get_result_schema(&target.statement, None)?;
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.parser.get_result_schema(
            &target.statement.statement,
            Some(&target.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let session = session_of(client)?;
        let inferred: Vec<Option<&DataType>> = prepared.params.iter().map(Option::as_ref).collect();
        let params = if portal.parameters.is_empty() {
            ParamValues::List(Vec::new())
        } else {
            deserialize_parameters(portal, &inferred)?
        };
        self.run(
            client,
            &session,
            prepared,
            params,
            &portal.result_column_format,
        )
        .await
    }
}
