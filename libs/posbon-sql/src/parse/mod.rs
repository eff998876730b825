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
//!   parser's calls into its dialect and ends the parse once it has taken
//!   [`parse_budget`] of them, or at the query's time limit:
//!   [`parse_statement`] for the engine, [`check_parse_cost`] before the
//!   PostgreSQL front end's own parser.

mod dialect;

use datafusion::config::Dialect as DialectName;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, dialect_from_str};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::time::{Duration, Instant};

use crate::error::SqlError;
use dialect::{Bounded, Stop, within_budget};

/// Parser steps any text may take, however short: room for the nesting
/// the PostgreSQL dialect reads twice (each function argument is tried as
/// `name => value` first), about 12 calls deep.
pub const PARSE_STEPS_BASE: u64 = 1_000_000;

/// Parser steps a text may take per token, beyond [`PARSE_STEPS_BASE`].
pub const PARSE_STEPS_PER_TOKEN: u64 = 200;

/// The parser steps a text of `tokens` tokens (whitespace and comments
/// not counted) may take: [`PARSE_STEPS_BASE`] plus
/// [`PARSE_STEPS_PER_TOKEN`] for each.
pub fn parse_budget(tokens: usize) -> u64 {
    PARSE_STEPS_BASE.saturating_add(PARSE_STEPS_PER_TOKEN.saturating_mul(tokens as u64))
}

/// `sql`'s tokens as `dialect` reads them, and how many are not whitespace.
fn tokenize(sql: &str, dialect: &dyn Dialect) -> Result<(Vec<TokenWithSpan>, usize), SqlError> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::invalid(format!("syntax error: {e}")))?;
    let counted = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .count();
    Ok((tokens, counted))
}

/// Parses `sql`, one statement, as DataFusion would with this dialect and
/// recursion limit, within [`parse_budget`] steps and `time_limit`.
pub fn parse_statement(
    sql: &str,
    dialect: &DialectName,
    recursion_limit: usize,
    time_limit: Duration,
) -> Result<Statement, SqlError> {
    let deadline = Instant::now() + time_limit;
    let inner = dialect_from_str(dialect)
        .ok_or_else(|| SqlError::internal(format!("no SQL dialect named {dialect}")))?;
    let (tokens, counted) = tokenize(sql, inner.as_ref())?;
    // DataFusion's own parser reads `EXPLAIN EXPLAIN ...` by recursing
    // without sqlparser's recursion limit or its dialect: thousands of them
    // would overflow the stack, which ends the process.
    let explains = tokens
        .iter()
        .filter(|t| matches!(&t.token, Token::Word(w) if w.keyword == Keyword::EXPLAIN))
        .count();
    if explains > 1 {
        return Err(SqlError::invalid(format!(
            "EXPLAIN appears {explains} times: a query may be explained once"
        )));
    }
    let bounded = Bounded::new(inner, parse_budget(counted), deadline);
    let parsed = within_budget(&bounded, |dialect| {
        DFParserBuilder::new(tokens)
            .with_dialect(dialect)
            .with_recursion_limit(recursion_limit)
            .build()
            .and_then(|mut parser| parser.parse_statements())
    })
    .map_err(|stop| stopped(stop, counted, time_limit))?;
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
/// more than [`parse_budget`], takes longer than `time_limit`, or if a
/// statement of it does not parse. For the PostgreSQL compatibility
/// parser, which cannot be given a dialect, to run only on text whose
/// every statement was read here: its tokens are read as it reads them
/// (`ABORT` as `ROLLBACK`), each statement on its own. (It also swaps
/// known clients' catalog queries for fixed ones before parsing; those
/// are read here as the client wrote them, and must parse as written.)
pub fn check_parse_cost(
    sql: &str,
    recursion_limit: usize,
    time_limit: Duration,
) -> Result<u64, SqlError> {
    let deadline = Instant::now() + time_limit;
    let (tokens, counted) = tokenize(sql, &PostgreSqlDialect {})?;
    let mut statements = vec![Vec::new()];
    for t in tokens {
        match t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => statements.push(Vec::new()),
            Token::Word(ref w) if w.keyword == Keyword::ABORT => {
                let rollback = Token::make_keyword("ROLLBACK");
                statements
                    .last_mut()
                    .expect("one")
                    .push(TokenWithSpan::wrap(rollback));
            }
            _ => statements.last_mut().expect("one").push(t),
        }
    }
    let bounded = Bounded::new(
        Box::new(PostgreSqlDialect {}),
        parse_budget(counted),
        deadline,
    );
    within_budget(&bounded, |dialect| {
        for tokens in statements.into_iter().filter(|s| !s.is_empty()) {
            let mut parser = Parser::new(dialect)
                .with_recursion_limit(recursion_limit)
                .with_tokens_with_locations(tokens);
            parser.parse_statement()?;
            // What follows a statement, before the next `;`, is an error
            // too (the parser that follows would say so).
            if parser.peek_token_ref().token != Token::EOF {
                return parser.expected("end of statement", parser.peek_token());
            }
        }
        Ok(())
    })
    .map_err(|stop| stopped(stop, counted, time_limit))?
    .map_err(|e: datafusion::sql::sqlparser::parser::ParserError| {
        SqlError::invalid(format!("syntax error: {e}"))
    })?;
    Ok(bounded.steps())
}

/// The refusal of a parse that [`Bounded`] stopped.
fn stopped(stop: Stop, tokens: usize, time_limit: Duration) -> SqlError {
    match stop {
        Stop::Budget => too_costly(tokens),
        Stop::Time => SqlError::timeout(time_limit),
    }
}

/// The refusal of a text of `tokens` tokens that ran out of parse steps.
fn too_costly(tokens: usize) -> SqlError {
    SqlError::invalid(format!(
        "the query is too costly to parse: its {tokens} tokens took more than {} parser steps \
         ({PARSE_STEPS_BASE} plus {PARSE_STEPS_PER_TOKEN} a token). The parser tries some words \
         (ARRAY, CASE, CAST, NOT, INTERVAL, ...) and brackets two ways, so each one nested in \
         another doubles the work: nest fewer of them, or close what is open",
        parse_budget(tokens)
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

    /// The time limit of the tests' parses: far beyond any of them.
    const LIMIT: Duration = Duration::from_secs(60);

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
        "SELECT * FROM (SELECT * FROM (SELECT a FROM t) x JOIN (SELECT a FROM u) y USING (a)) z",
    ];

    /// `sql` parsed with `dialect`, unbounded: the statement (or error),
    /// the steps taken and the tokens counted.
    fn parse_steps(sql: &str, dialect: &DialectName) -> (Result<Statement, String>, u64, usize) {
        let inner = dialect_from_str(dialect).expect("dialect");
        let (tokens, counted) = tokenize(sql, inner.as_ref()).expect("tokens");
        let bounded = Bounded::new(inner, u64::MAX, Instant::now() + LIMIT);
        let parsed = DFParserBuilder::new(tokens)
            .with_dialect(&bounded)
            .build()
            .and_then(|mut p| p.parse_statements())
            .map(|mut s| s.pop_front().expect("a statement"))
            .map_err(|e| e.to_string());
        (parsed, bounded.steps(), counted)
    }

    /// The bounded dialect reads every ordinary query exactly as the
    /// dialect it wraps does, at a small part of the steps a token may take.
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
                let (bounded, steps, tokens) = parse_steps(sql, dialect);
                assert_eq!(plain, bounded, "{dialect}: {sql}");
                let per_token = steps as f64 / tokens as f64;
                assert!(
                    per_token * 4.0 < PARSE_STEPS_PER_TOKEN as f64,
                    "{dialect}: {per_token:.1} steps a token for {sql}"
                );
                most = most.max(per_token);
            }
        }
        println!("most steps per token of an ordinary query: {most:.1}");
    }

    /// A long ordinary query (a 20,000-item IN list, 160 KB) takes steps
    /// in proportion to its length, within the budget; so do function
    /// calls nested 10 deep, which the PostgreSQL dialect reads twice at
    /// each level.
    #[test]
    fn long_and_nested_ordinary_queries_are_within_their_budget() {
        let list: Vec<String> = (0..20_000).map(|i| format!("'e{i:05}'")).collect();
        let long = format!("SELECT * FROM events WHERE id IN ({})", list.join(", "));
        let nested = format!(
            "SELECT {}kind{} FROM events",
            "replace(".repeat(10),
            ", 'a', 'b')".repeat(10)
        );
        for sql in [&long, &nested] {
            for dialect in &DIALECTS {
                let (parsed, steps, tokens) = parse_steps(sql, dialect);
                assert!(parsed.is_ok(), "{parsed:?}");
                assert!(
                    steps < parse_budget(tokens) / 2,
                    "{dialect}: {steps} steps of {}",
                    parse_budget(tokens)
                );
                assert!(parse_statement(sql, dialect, 50, LIMIT).is_ok());
            }
            assert!(check_parse_cost(sql, 50, LIMIT).is_ok());
        }
    }

    /// The shapes the fuzzer found (`fuzz/regressions/sql_request/`), an
    /// unclosed `CAST(` chain of the same kind, and subqueries in brackets
    /// that the parser tries as a derived table and again as a join (no
    /// expression on the way), each about 2^30 steps unbounded (2^14 times
    /// a long list for the last), are refused after the budget by the
    /// engine's parse and by the check before the PostgreSQL front end's,
    /// also when an `ABORT` that only that parser reads comes first.
    #[test]
    fn chains_that_would_take_exponential_steps_are_refused() {
        let tables = vec!["t"; 20_000].join(",");
        let chains = [
            format!("SELECT {}1", "ARRAY[".repeat(30)),
            format!("SELECT {}", "x-not-b.".repeat(30)),
            format!("SELECT {}1", "CAST(".repeat(30)),
            format!("SELECT FROM {}{tables}", "((SELECT FROM ".repeat(14)),
        ];
        for sql in &chains {
            let started = Instant::now();
            for dialect in &DIALECTS {
                let e = parse_statement(sql, dialect, 50, LIMIT).expect_err(sql);
                assert!(
                    e.to_string().contains("too costly to parse"),
                    "{dialect}: {e} for {}",
                    &sql[..80]
                );
            }
            for text in [sql.clone(), format!("ABORT; {sql}")] {
                let e = check_parse_cost(&text, 50, LIMIT).expect_err(sql);
                assert!(e.to_string().contains("too costly to parse"), "{e}");
            }
            println!("refused 4 times in {:?}", started.elapsed());
            // Four parses of at most the budget each; the bound is for a
            // loaded debug build.
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{}",
                &sql[..80]
            );
        }
    }

    /// What is not costly is left to the parser: a syntax error is the
    /// parser's, one statement is taken, and the check before the
    /// PostgreSQL front end passes text it cannot read and counts steps.
    #[test]
    fn other_parse_errors_are_the_parsers() {
        let e = parse_statement("SELEC 1", &DialectName::Generic, 50, LIMIT).expect_err("typo");
        assert!(e.to_string().contains("syntax error"), "{e}");
        let e = parse_statement("SELECT 1; SELECT 2", &DialectName::Generic, 50, LIMIT)
            .expect_err("two statements");
        assert!(e.to_string().contains("2 statements"), "{e}");
        let e = check_parse_cost("SELEC 1", 50, LIMIT).expect_err("typo");
        assert!(e.to_string().contains("syntax error"), "{e}");
        let e = check_parse_cost("SELECT 1 2; SELECT 2", 50, LIMIT).expect_err("trailing");
        assert!(e.to_string().contains("end of statement"), "{e}");
        assert!(check_parse_cost("ABORT; SELECT 1;", 50, LIMIT).is_ok());
        assert!(check_parse_cost("SELECT a + b", 50, LIMIT).expect("cheap") >= 2);
        // Nested deeper than the recursion limit: the parser's own error.
        let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
        let e = parse_statement(&deep, &DialectName::Generic, 50, LIMIT).expect_err("deep");
        assert!(!e.to_string().contains("too costly"), "{e}");
    }

    /// Work the steps do not follow (a long list the parser reads without
    /// asking its dialect, looked at again on every backtrack) ends at the
    /// time limit; `EXPLAIN EXPLAIN ...`, which DataFusion's parser reads
    /// by recursing without any limit, is refused before parsing; and a
    /// text the PostgreSQL front end's parser would swap parts of (across
    /// a `;`) is refused by the check unless each statement parses.
    #[test]
    fn the_time_limit_explain_and_unparsed_statements_are_bounded() {
        let tables = vec!["t"; 200_000].join(",");
        let chain = format!("SELECT FROM {}{tables}", "((SELECT FROM ".repeat(14));
        let started = Instant::now();
        let e = parse_statement(&chain, &DialectName::Generic, 50, Duration::from_millis(50))
            .expect_err("stopped");
        assert_eq!(e.kind(), crate::SqlErrorKind::Timeout, "{e}");
        let e = check_parse_cost(&chain, 50, Duration::from_millis(50)).expect_err("stopped");
        assert_eq!(e.kind(), crate::SqlErrorKind::Timeout, "{e}");
        println!("stopped twice at 50 ms in {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(5));

        let explains = format!("{}SELECT 1", "EXPLAIN ".repeat(10_000));
        let e = parse_statement(&explains, &DialectName::Generic, 50, LIMIT).expect_err("refused");
        assert!(e.to_string().contains("EXPLAIN appears 10000 times"), "{e}");
        assert!(parse_statement("EXPLAIN SELECT 1", &DialectName::Generic, 50, LIMIT).is_ok());

        let swapped = format!(
            "select ; c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,\
             pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_class c \
             WHERE c.relnamespace='public' AND {}1",
            "ARRAY[".repeat(30)
        );
        let e = check_parse_cost(&swapped, 50, LIMIT).expect_err("refused");
        assert!(e.to_string().contains("syntax error"), "{e}");
    }

    /// A panic in the parser that is not the budget's goes on unwinding.
    #[test]
    fn another_panic_is_not_taken_for_the_budget() {
        let bounded = Bounded::new(Box::new(PostgreSqlDialect {}), 10, Instant::now() + LIMIT);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            within_budget(&bounded, |_| -> u8 { panic!("a bug") })
        }));
        assert!(caught.is_err());
    }
}
