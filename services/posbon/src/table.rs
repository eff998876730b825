//! Text tables of the command-line tool: comfy-table with the look of
//! arrow's pretty printer, which the SQL service's own text answers use.

use comfy_table::Table;
use serde_json::Value;

/// comfy-table's `ASCII_FULL_CONDENSED` (no line between rows), with `+`
/// where the header's line meets a column's.
const STYLE: &str = "||--+=++|    ++++++";

/// `rows` under `header`, aligned, one line each.
pub(crate) fn render(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(STYLE);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    let mut text = table.to_string();
    text.push('\n');
    text
}

/// A JSON value as a table cell: text as it is, `null` as `null_as`.
pub(crate) fn cell(v: &Value, null_as: &str) -> String {
    match v {
        Value::Null => null_as.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
