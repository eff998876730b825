//! Reading SQL text within bounds: the guards that run before the parser,
//! and the parse itself within a budget of steps.
//!
//! sqlparser 0.62 (DataFusion 55's) backtracks: at some positions it tries
//! one reading of the tokens and, when that fails, reads them again another
//! way. A chain of N such positions that fails costs about 2^N steps, so a
//! query of a few hundred bytes (`SELECT ARRAY[ARRAY[ARRAY[...` unclosed,
//! `SELECT x-not-b.x-not-b....`, `a. b. b. b. ...`) would hold a core for
//! hours, and parsing never yields, so no time limit can stop it. Two
//! bounds, each linear in the text:
//! - [`check_dotted_names`] refuses a dotted name of more than
//!   [`MAX_NAME_PARTS`] parts before parsing, naming where;
//! - every parse runs through [`dialect::Bounded`], which counts the
//!   parser's expression steps and ends the parse once a text has taken
//!   [`parse_budget`] of them: [`parse_statement`] for the engine,
//!   [`check_parse_cost`] before the PostgreSQL front end's own parser.

mod dialect;

use datafusion::config::Dialect as DialectName;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::{PostgreSqlDialect, dialect_from_str};
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::SqlError;
use dialect::Bounded;

/// Expression steps any text may take, however short.
pub const PARSE_STEPS_BASE: u64 = 10_000;

/// Expression steps a text may take per byte, beyond [`PARSE_STEPS_BASE`].
pub const PARSE_STEPS_PER_BYTE: u64 = 4;

/// The expression steps a parse of `sql` may take:
/// [`PARSE_STEPS_BASE`] plus [`PARSE_STEPS_PER_BYTE`] for each byte.
pub fn parse_budget(sql: &str) -> u64 {
    PARSE_STEPS_BASE.saturating_add(PARSE_STEPS_PER_BYTE.saturating_mul(sql.len() as u64))
}

/// Parses `sql`, one statement, as DataFusion would with this dialect and
/// recursion limit, within [`parse_budget`] steps.
pub fn parse_statement(
    sql: &str,
    dialect: &DialectName,
    recursion_limit: usize,
) -> Result<Statement, SqlError> {
    let inner = dialect_from_str(dialect)
        .ok_or_else(|| SqlError::internal(format!("no SQL dialect named {dialect}")))?;
    let bounded = Bounded::new(inner, parse_budget(sql));
    let parsed = DFParserBuilder::new(sql)
        .with_dialect(&bounded)
        .with_recursion_limit(recursion_limit)
        .build()
        .and_then(|mut parser| parser.parse_statements());
    // Whatever the parse ended with, a spent budget is the answer: past it
    // every step failed, and sqlparser may have reported that as another
    // error on the way out.
    if bounded.exhausted() {
        return Err(too_costly(sql));
    }
    let mut statements = parsed.map_err(SqlError::from)?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => Ok(statement),
        (Some(_), false) => Err(SqlError::invalid(format!(
            "{} statements: one query is taken at a time",
            statements.len() + 1
        ))),
        (None, _) => Err(SqlError::invalid("the query is empty")),
    }
}

/// The parser steps `sql` takes as PostgreSQL, or a refusal if that is
/// more than [`parse_budget`]; a text that is not valid SQL passes, for the
/// parser that follows to explain. For a front end whose own parser cannot
/// be given a dialect (the PostgreSQL compatibility parser): its parse of
/// the same text takes the same steps.
pub fn check_parse_cost(sql: &str, recursion_limit: usize) -> Result<u64, SqlError> {
    let bounded = Bounded::new(Box::new(PostgreSqlDialect {}), parse_budget(sql));
    let parsed = Parser::new(&bounded)
        .with_recursion_limit(recursion_limit)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements());
    drop(parsed);
    if bounded.exhausted() {
        return Err(too_costly(sql));
    }
    Ok(bounded.steps())
}

/// The refusal of a text that ran out of parse steps.
fn too_costly(sql: &str) -> SqlError {
    SqlError::invalid(format!(
        "the query is too costly to parse: its {} bytes took more than {} parser steps \
         ({PARSE_STEPS_BASE} plus {PARSE_STEPS_PER_BYTE} a byte). The parser tries some words \
         (ARRAY, CASE, CAST, NOT, INTERVAL, ...) two ways, so each one nested in another doubles \
         the work: nest fewer of them, or close what is open",
        sql.len(),
        parse_budget(sql)
    ))
}

/// The most parts a dotted name may have (`schema.table.column` is 3).
pub const MAX_NAME_PARTS: usize = 8;

/// Refuses a dotted name of more than [`MAX_NAME_PARTS`] parts before the
/// parser sees it: the parser (sqlparser 0.62) takes time exponential in the
/// parts of a chain like `a. b. b. b. …`, so 200 of them in a 700-byte query
/// would hold a core far beyond the query's time limit (parsing never
/// yields). Counted on the tokens, in one pass: a run of periods with at
/// most one token between each two.
pub fn check_dotted_names(sql: &str) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect, PostgreSqlDialect};
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    // Read as each dialect a parser here uses (the engine's generic one, the
    // PostgreSQL front end's): they end comments differently (`\r`).
    let dialects: [&dyn Dialect; 2] = [&GenericDialect {}, &PostgreSqlDialect {}];
    for dialect in dialects {
        // A text the tokenizer refuses is left for the parser to explain.
        let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() else {
            continue;
        };
        let (mut parts, mut since_period) = (1usize, usize::MAX);
        for t in tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        {
            if t.token == Token::Period {
                parts = if since_period <= 1 { parts + 1 } else { 2 };
                since_period = 0;
                if parts > MAX_NAME_PARTS {
                    return Err(SqlError::invalid(format!(
                        "a dotted name of more than {MAX_NAME_PARTS} parts at line {}, column {}: \
                         names here have at most 3 (schema.table.column)",
                        t.span.start.line, t.span.start.column
                    )));
                }
            } else {
                since_period = since_period.saturating_add(1);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain hidden from the generic reading by a comment that only
    /// PostgreSQL's ends (at `\r`) is refused too.
    #[test]
    fn a_chain_after_a_carriage_return_comment_is_refused() {
        let sql = format!("SELECT 1 --\r, a. {}", "b. ".repeat(40));
        assert!(check_dotted_names(&sql).is_err());
    }

    /// A long dotted chain is refused at once, naming where; ordinary
    /// names, decimals and a short chain pass.
    #[test]
    fn long_dotted_names_are_refused_before_parsing() {
        let chain = format!(
            "SELECT count(*) FROM events a, events b WHERE a.{} b.lat > 1",
            "b. ".repeat(200)
        );
        let started = std::time::Instant::now();
        let e = check_dotted_names(&chain).expect_err("a 200-part name");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            e.to_string()
                .contains("dotted name of more than 8 parts at line 1, column"),
            "{e}"
        );
        for ok in [
            "SELECT e.lat, 1.5, posbon.public.events.id FROM posbon.public.events e",
            "SELECT a.b.c.d.e.f.g.h FROM t",
            "SELECT '.......................' AS dots, 1.2 + 3.4",
        ] {
            assert!(check_dotted_names(ok).is_ok(), "{ok}");
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use datafusion::config::Dialect as DialectName;
    use std::time::{Duration, Instant};

    const DIALECTS: [DialectName; 2] = [DialectName::Generic, DialectName::PostgreSQL];

    /// Queries as analysts, reports, psql and Grafana write them.
    const ORDINARY: &[&str] = &[
        "SELECT count(*) FROM events",
        "SELECT mahalla_id, kind, count(*) AS n FROM events \
         WHERE occurred_at >= now() - INTERVAL '7 days' AND NOT (kind = 'fraud_flag') \
         GROUP BY 1, 2 HAVING count(*) > 3 ORDER BY n DESC LIMIT 20",
        "SELECT CASE WHEN severity >= 4 THEN 'high' WHEN severity >= 2 THEN 'medium' \
         ELSE 'low' END AS band, CAST(lat AS DOUBLE) + 0.5, date_trunc('day', occurred_at) \
         FROM events e JOIN mahallas m ON e.mahalla_id = m.id WHERE m.district = 'Chilonzor'",
        "WITH daily AS (SELECT date_trunc('day', occurred_at) AS day, count(*) AS n \
         FROM events GROUP BY 1) SELECT day, n, avg(n) OVER (ORDER BY day ROWS BETWEEN 6 \
         PRECEDING AND CURRENT ROW) FROM daily WHERE EXISTS (SELECT 1 FROM escalations)",
        "SELECT ARRAY[ARRAY[1, 2], ARRAY[3, 4]], h3_grid_disk(h3_cell, 1), \
         unnest(ARRAY['a', 'b']), EXTRACT(HOUR FROM occurred_at), \
         SUBSTRING(kind FROM 1 FOR 3), TRIM(BOTH ' ' FROM kind), POSITION('a' IN kind) \
         FROM events WHERE kind IN ('theft', 'assault', 'fraud_flag') \
         AND occurred_at BETWEEN TIMESTAMP '2026-01-01 00:00:00' AND CURRENT_TIMESTAMP",
        "SELECT n.nspname AS \"Schema\", c.relname AS \"Name\", \
         CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END AS \"Type\", \
         pg_catalog.pg_get_userbyid(c.relowner) AS \"Owner\" FROM pg_catalog.pg_class c \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r','p','v','m','S','f','') AND n.nspname <> 'pg_catalog' \
         AND n.nspname !~ '^pg_toast' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2",
        "SELECT date_bin(INTERVAL '1 hour', occurred_at) AS time, count(*) FROM events \
         WHERE occurred_at BETWEEN '2026-12-01T00:00:00Z' AND '2026-12-02T00:00:00Z' \
         GROUP BY 1 ORDER BY 1",
        "SELECT NOT NOT TRUE, - - 1, date, interval, user FROM t WHERE NOT a AND NOT b OR NOT c",
    ];

    fn parse_steps(sql: &str, dialect: &DialectName) -> (Result<Statement, String>, u64) {
        let bounded = Bounded::new(dialect_from_str(dialect).expect("dialect"), u64::MAX);
        let parsed = DFParserBuilder::new(sql)
            .with_dialect(&bounded)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map(|mut s| s.pop_front().expect("a statement"))
            .map_err(|e| e.to_string());
        (parsed, bounded.steps())
    }

    /// The bounded dialect reads every ordinary query exactly as the
    /// dialect it wraps does, in a small part of its budget.
    #[test]
    fn ordinary_queries_parse_as_the_wrapped_dialect_reads_them() {
        let mut most = 0.0f64;
        for dialect in &DIALECTS {
            for sql in ORDINARY {
                let plain = DFParserBuilder::new(*sql)
                    .with_dialect(dialect_from_str(dialect).expect("dialect").as_ref())
                    .build()
                    .and_then(|mut p| p.parse_statements())
                    .map(|mut s| s.pop_front().expect("a statement"))
                    .map_err(|e| e.to_string());
                let (bounded, steps) = parse_steps(sql, dialect);
                assert_eq!(plain, bounded, "{dialect}: {sql}");
                let share = steps as f64 / parse_budget(sql) as f64;
                assert!(share < 0.05, "{dialect}: {steps} steps for {sql}");
                most = most.max(steps as f64 / sql.len() as f64);
            }
        }
        println!("most steps per byte of an ordinary query: {most:.3}");
    }

    /// A long ordinary query (a 20,000-item IN list, 160 KB) takes steps
    /// in proportion to its length, within the budget.
    #[test]
    fn a_long_query_is_within_its_budget() {
        let list: Vec<String> = (0..20_000).map(|i| format!("'e{i:05}'")).collect();
        let sql = format!("SELECT * FROM events WHERE id IN ({})", list.join(", "));
        for dialect in &DIALECTS {
            let (parsed, steps) = parse_steps(&sql, dialect);
            assert!(parsed.is_ok(), "{parsed:?}");
            assert!(steps < parse_budget(&sql) / 10, "{steps} steps");
            assert!(parse_statement(&sql, dialect, 50).is_ok());
        }
    }

    /// The shapes the fuzzer found (`fuzz/regressions/sql_request/`), and an
    /// unclosed `CAST(` chain of the same kind, each about 2^30 steps
    /// unbounded, are refused after the budget, at once, by the engine's
    /// parse and by the check before the PostgreSQL front end's.
    #[test]
    fn chains_that_would_take_exponential_steps_are_refused() {
        let chains = [
            format!("SELECT {}1", "ARRAY[".repeat(30)),
            format!("SELECT {}", "x-not-b.".repeat(30)),
            format!("SELECT {}1", "CAST(".repeat(30)),
        ];
        for sql in &chains {
            let started = Instant::now();
            for dialect in &DIALECTS {
                let e = parse_statement(sql, dialect, 50).expect_err(sql);
                assert!(
                    e.to_string().contains("too costly to parse"),
                    "{dialect}: {e} for {sql}"
                );
            }
            let e = check_parse_cost(sql, 50).expect_err(sql);
            assert!(e.to_string().contains("more than 10"), "{e}");
            // Three parses of at most the budget each: milliseconds; the
            // bound is for a loaded debug build.
            assert!(started.elapsed() < Duration::from_secs(5), "{sql}");
        }
    }

    /// What is not costly is left to the parser: a syntax error is the
    /// parser's, one statement is taken, and the check before the
    /// PostgreSQL front end passes text it cannot read.
    #[test]
    fn other_parse_errors_are_the_parsers() {
        let e = parse_statement("SELEC 1", &DialectName::Generic, 50).expect_err("typo");
        assert!(e.to_string().contains("syntax error"), "{e}");
        let e = parse_statement("SELECT 1; SELECT 2", &DialectName::Generic, 50)
            .expect_err("two statements");
        assert!(e.to_string().contains("2 statements"), "{e}");
        assert!(check_parse_cost("SELEC 1", 50).is_ok());
        assert!(check_parse_cost("SELECT a + b", 50).expect("cheap") >= 2);
        // Nested deeper than the recursion limit: the parser's own error.
        let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
        let e = parse_statement(&deep, &DialectName::Generic, 50).expect_err("deep");
        assert!(!e.to_string().contains("too costly"), "{e}");
    }
}
