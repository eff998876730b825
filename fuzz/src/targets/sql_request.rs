//! The `sql_request` target: the body of `POST /v1/sql` and its SQL text,
//! parsed the way the engine parses it.

use std::sync::LazyLock;

use posbon_sql::datafusion::execution::SessionState;
use posbon_sql::datafusion::prelude::SessionContext;
use posbon_sql::datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use super::Sig;
use crate::Features;

/// Largest input [`sql_request`] reads. DataFusion's parser bounds its own
/// recursion (`datafusion.sql_parser.recursion_limit`, 50), so nesting
/// cannot overflow the stack; the size bound keeps one input fast.
pub const SQL_MAX_BYTES: usize = 64 << 10;

/// The session whose parser settings (dialect, recursion limit) the SQL
/// engine uses: DataFusion's defaults, which `posbon-sql` does not change.
static SQL_SESSION: LazyLock<SessionState> = LazyLock::new(|| SessionContext::new().state());

/// Fuzz target: the body of `POST /v1/sql` ([`posbon_sql::http::SqlRequest`])
/// and its query, parsed (never planned or run) the way the engine parses
/// it, inputs up to [`SQL_MAX_BYTES`]. Input that is not a JSON body but is
/// UTF-8 is parsed as SQL directly, so that mutations reach the parser.
///
/// A statement that parses is printed and the text parsed again (it must
/// not panic; sqlparser does not promise the same tree). Queries the engine
/// refuses before parsing, for a dotted name of more than
/// [`posbon_sql::MAX_NAME_PARTS`] parts ([`posbon_sql::check_dotted_names`]),
/// are left out.
pub fn sql_request(data: &[u8]) {
    sql_request_features(data);
}

pub(crate) fn sql_request_features(data: &[u8]) -> Features {
    if data.len() > SQL_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("sql_request");
    let query = match serde_json::from_slice::<posbon_sql::http::SqlRequest>(data) {
        Ok(request) => {
            sig.add("body");
            request.query
        }
        Err(_) => match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return sig.finish(),
        },
    };
    if posbon_sql::check_dotted_names(&query).is_err() {
        sig.add("skipped");
        return sig.finish();
    }
    // The audit trail keeps the first 4,000 characters.
    let audited: String = query.chars().take(4000).collect();
    assert!(audited.len() <= query.len());
    let first_line = query.lines().next().unwrap_or_default();
    let _ = posbon_sql::http::Format::negotiate(None, Some(first_line));
    let _ = posbon_sql::http::Format::negotiate(Some(first_line), None);

    match parse_sql(&query) {
        Ok(printed) => {
            // The kind of statement (its first keyword), and every keyword
            // it uses, each a feature.
            sig.add(printed.split_whitespace().next().unwrap_or_default());
            for word in printed.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if ALL_KEYWORDS.binary_search(&word).is_ok() {
                    sig.feature(word);
                }
            }
            match parse_sql(&printed) {
                Ok(_) => sig.add("reparsed"),
                Err(e) => sql_error_shape(&mut sig, &e),
            }
        }
        Err(e) => sql_error_shape(&mut sig, &e),
    }
    sig.finish()
}

/// Parses one SQL statement the way the SQL engine does
/// ([`posbon_sql::parse_statement`]: DataFusion's parser, its default
/// dialect and recursion limit, which `posbon-sql` does not change, within
/// the engine's budget of parse steps), without the guard of
/// [`sql_request`]: the statement as sqlparser prints it, or the error.
pub fn parse_sql(query: &str) -> Result<String, String> {
    let parser = &SQL_SESSION.config().options().sql_parser;
    posbon_sql::parse_statement(
        query,
        &parser.dialect,
        parser.recursion_limit.get(),
        posbon_sql::SqlLimits::default().timeout(),
    )
    .map(|statement| statement.to_string())
    .map_err(|e| e.to_string())
}

/// What a parser error expected, without what it found (the input's words).
fn sql_error_shape(sig: &mut Sig, message: &str) {
    sig.text(message.split("found").next().unwrap_or(message));
}
