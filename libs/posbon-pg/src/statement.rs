//! What a client's statement asks for: a query for the SQL engine, or one of
//! the session statements drivers send around queries (transactions, `SET`,
//! `SHOW`), which this front end answers itself. Anything else goes to the
//! engine, which refuses every statement that is not a read.

use posbon_sql::datafusion::sql::sqlparser::ast::{
    Expr, Set, Statement, TransactionAccessMode, TransactionMode, Value,
};

/// The kind of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// A query (or anything else) for the engine.
    Query,
    /// `BEGIN`, `START TRANSACTION` (read-only: every statement is a read).
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK`, `ABORT`.
    Rollback,
    /// `SET name = value`.
    Set {
        /// The parameter.
        name: String,
        /// Its new value, as text.
        value: String,
    },
    /// `RESET name`, `SET name TO DEFAULT`.
    Reset {
        /// The parameter.
        name: String,
    },
    /// `SHOW name`.
    Show {
        /// The parameter.
        name: String,
    },
    /// `SET TRANSACTION ...` that keeps the transaction read-only.
    SetTransaction,
    /// `SET TRANSACTION READ WRITE`, refused.
    ReadWrite,
    /// `DISCARD ALL` and the like: nothing to discard.
    Discard,
}

impl Command {
    /// The command tag a session statement completes with.
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            Command::Query => "SELECT",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Rollback => "ROLLBACK",
            Command::Set { .. } | Command::SetTransaction | Command::ReadWrite => "SET",
            Command::Reset { .. } => "RESET",
            Command::Show { .. } => "SHOW",
            Command::Discard => "DISCARD ALL",
        }
    }
}

/// What `statement` asks for.
pub(crate) fn classify(statement: &Statement) -> Command {
    match statement {
        Statement::StartTransaction { modes, .. } => {
            if read_write(modes) {
                Command::ReadWrite
            } else {
                Command::Begin
            }
        }
        Statement::Commit { .. } => Command::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => Command::Rollback,
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) => {
            let name = variable.to_string().to_ascii_lowercase();
            match values.as_slice() {
                [Expr::Identifier(id)] if id.value.eq_ignore_ascii_case("default") => {
                    Command::Reset { name }
                }
                values => Command::Set {
                    name,
                    value: values.iter().map(expr_text).collect::<Vec<_>>().join(", "),
                },
            }
        }
        Statement::Set(Set::SetTimeZone { value, .. }) => Command::Set {
            name: "timezone".into(),
            value: expr_text(value),
        },
        Statement::Set(Set::SetNames { charset_name, .. }) => Command::Set {
            name: "client_encoding".into(),
            value: charset_name.value.clone(),
        },
        Statement::Set(Set::SetTransaction { modes, .. }) => {
            if read_write(modes) {
                Command::ReadWrite
            } else {
                Command::SetTransaction
            }
        }
        Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            let name = match words.join(" ").as_str() {
                "transaction isolation level" => "transaction_isolation".to_owned(),
                "time zone" => "timezone".to_owned(),
                other => other.replace(' ', "_"),
            };
            Command::Show { name }
        }
        Statement::Discard { .. } => Command::Discard,
        _ => reset_of(statement).unwrap_or(Command::Query),
    }
}

/// `RESET name` (sqlparser reads it as its own statement).
fn reset_of(statement: &Statement) -> Option<Command> {
    let text = statement.to_string();
    let rest = text.strip_prefix("RESET ")?;
    Some(Command::Reset {
        name: rest.trim().to_ascii_lowercase(),
    })
}

fn read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

/// A `SET` value as text: a string without its quotes, anything else as
/// written.
fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn command(sql: &str) -> Command {
        let statements = PostgresCompatibilityParser::new()
            .parse(sql)
            .expect("parses");
        classify(&statements[0])
    }

    #[test]
    fn session_statements_are_told_from_queries() {
        assert_eq!(command("BEGIN"), Command::Begin);
        assert_eq!(command("START TRANSACTION READ ONLY"), Command::Begin);
        assert_eq!(command("BEGIN READ WRITE"), Command::ReadWrite);
        assert_eq!(command("COMMIT"), Command::Commit);
        assert_eq!(command("END"), Command::Commit);
        assert_eq!(command("ROLLBACK"), Command::Rollback);
        assert_eq!(
            command("SET application_name = 'psql'"),
            Command::Set {
                name: "application_name".into(),
                value: "psql".into()
            }
        );
        assert_eq!(
            command("SET statement_timeout TO 500"),
            Command::Set {
                name: "statement_timeout".into(),
                value: "500".into()
            }
        );
        assert_eq!(
            command("SET TIME ZONE 'UTC'"),
            Command::Set {
                name: "timezone".into(),
                value: "UTC".into()
            }
        );
        assert_eq!(
            command("SET search_path TO DEFAULT"),
            Command::Reset {
                name: "search_path".into()
            }
        );
        assert_eq!(
            command("SHOW TRANSACTION ISOLATION LEVEL"),
            Command::Show {
                name: "transaction_isolation".into()
            }
        );
        assert_eq!(command("SET TRANSACTION READ WRITE"), Command::ReadWrite);
        assert_eq!(command("DISCARD ALL"), Command::Discard);
        assert_eq!(command("SELECT 1"), Command::Query);
        assert_eq!(command("CREATE TABLE x (a INT)"), Command::Query);
    }
}
