//! Golden SQL tests: each `tests/golden/<name>.sql` runs against the
//! simulated dataset and its result must equal `tests/golden/<name>.out`
//! (a text table and the row count, or `error: <kind>: <message>`).
//!
//! `POSBON_BLESS=1 cargo test -p posbon-sql --test golden` rewrites the
//! `.out` files from the current results; review the diff before
//! committing it.

mod common;

use std::path::PathBuf;

use posbon_sql::datafusion::arrow::record_batch::RecordBatch;
use posbon_sql::datafusion::arrow::util::pretty::pretty_format_batches;

fn dir() -> PathBuf {
    manifest_dir().join("tests/golden")
}

/// The result of a query as the `.out` file holds it.
async fn render(sql: &str) -> String {
    match common::engine().query(sql).await {
        Ok(out) => {
            let empty;
            let batches: &[RecordBatch] = if out.batches.is_empty() {
                empty = [RecordBatch::new_empty(out.schema.clone())];
                &empty
            } else {
                &out.batches
            };
            let table = pretty_format_batches(batches).expect("format");
            format!("{table}\n{} rows\n", out.rows)
        }
        Err(e) => format!("error: {}: {}\n", e.kind(), e.message()),
    }
}

async fn check(name: &str) {
    let sql_path = dir().join(format!("{name}.sql"));
    let out_path = dir().join(format!("{name}.out"));
    let sql = std::fs::read_to_string(&sql_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", sql_path.display()));
    let got = render(&sql).await;
    if std::env::var_os("POSBON_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&out_path, &got).expect("write the expected result");
        return;
    }
    let want = std::fs::read_to_string(&out_path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with POSBON_BLESS=1 to create it",
            out_path.display()
        )
    });
    assert!(
        got == want,
        "{name}: the result differs from {}\n--- expected\n{want}\n--- got\n{got}\n\
         (POSBON_BLESS=1 rewrites the expected result)",
        out_path.display()
    );
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                check(stringify!($name)).await;
            }
        )*
        /// Every test above.
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    busiest_mahallas,
    camera_drug_handoffs,
    cyber_share_by_district,
    events_by_day_and_kind,
    explain_time_window,
    fraud_by_scheme_and_channel,
    grid_disk_neighbourhood,
    h3_boundary,
    h3_functions,
    hottest_res8_cells,
    incidents_by_category,
    parent_cell_day,
    refused_copy,
    unassigned_events,
);

/// A `.sql` file without a test would be silently skipped: there is none.
#[test]
fn every_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .expect("golden dir")
        .filter_map(|e| {
            let path = e.expect("entry").path();
            (path.extension()? == "sql").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = LISTED.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "tests/golden/*.sql and the golden! list differ"
    );
}

/// The package directory of this checkout: cargo sets `CARGO_MANIFEST_DIR`
/// when it runs the test, and a binary built in another checkout with the
/// same target directory (which cargo reuses) would otherwise look there.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
