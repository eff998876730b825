//! Parsing SQL within a budget of steps (`posbon_sql::parse_statement`)
//! against DataFusion's own parse of the same text, on the daily report's
//! SQL files (`services/posbon-reporter/sql/`), and the time to refuse a
//! chain the parser would take 2^30 steps over.
//!
//! Prints, for each report file, its bytes and the parser steps it takes
//! (`posbon_sql::check_parse_cost`), then criterion's
//! figures: `plain/<file>` (DataFusion's parser, generic dialect),
//! `bounded/<file>` (the engine's parse) and `refuse/*`.
//!
//! Run: `cargo bench -p posbon-benches --bench sql_parse`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use posbon_reporter::reporter::SQL_FILES;
use posbon_sql::datafusion::config::Dialect;
use posbon_sql::datafusion::sql::parser::DFParserBuilder;
use posbon_sql::datafusion::sql::sqlparser::dialect::GenericDialect;

/// DataFusion's recursion limit, which the engine keeps.
const RECURSION_LIMIT: usize = 50;

/// The engine's default time limit of a query.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn plain(sql: &str) -> usize {
    DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .expect("the report's SQL parses")
        .len()
}

fn bench_parse(c: &mut Criterion) {
    println!(
        "{:<24} {:>7} {:>9} {:>9}",
        "file", "bytes", "steps", "per byte"
    );
    for (file, sql) in SQL_FILES {
        let steps =
            posbon_sql::check_parse_cost(sql, RECURSION_LIMIT, TIME_LIMIT).expect("within budget");
        println!(
            "{file:<24} {:>7} {steps:>9} {:>9.2}",
            sql.len(),
            steps as f64 / sql.len() as f64
        );
    }
    let mut group = c.benchmark_group("sql_parse");
    for (file, sql) in SQL_FILES {
        group.bench_function(format!("plain/{file}"), |b| {
            b.iter(|| plain(black_box(sql)))
        });
        group.bench_function(format!("bounded/{file}"), |b| {
            b.iter(|| {
                posbon_sql::parse_statement(
                    black_box(sql),
                    &Dialect::Generic,
                    RECURSION_LIMIT,
                    TIME_LIMIT,
                )
                .expect("the report's SQL parses")
            })
        });
    }
    for (name, chain) in [
        ("array-chain-30", format!("SELECT {}1", "ARRAY[".repeat(30))),
        ("not-chain-30", format!("SELECT {}", "x-not-b.".repeat(30))),
    ] {
        group.bench_function(format!("refuse/{name}"), |b| {
            b.iter(|| {
                posbon_sql::parse_statement(
                    black_box(&chain),
                    &Dialect::Generic,
                    RECURSION_LIMIT,
                    TIME_LIMIT,
                )
                .expect_err("too costly")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
