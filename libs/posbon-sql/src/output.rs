//! Renderings of a [`QueryOutput`]: JSON, CSV, Arrow IPC and a text table.
//!
//! JSON is `{"columns": [{"name": ..., "type": ...}], "rows": [[...], ...],
//! "row_count": n, "truncated": bool, "elapsed_ms": ms}`. Types are named as
//! in DuckDB (`UBIGINT`, `VARCHAR`, `TIMESTAMPTZ`, ...). Values: numbers as
//! JSON numbers (64-bit integers exactly, so a JavaScript client should read
//! cells with a big-integer aware parser or select `h3_h3_to_string(cell)`),
//! NaN and infinities as `null`, timestamps as RFC 3339 in UTC, dates as
//! `YYYY-MM-DD`, lists as arrays, enums as their strings.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use serde_json::{Number, Value, json};

use crate::engine::QueryOutput;
use crate::error::SqlError;

/// Media type of the JSON rendering.
pub const JSON: &str = "application/json";
/// Media type of the CSV rendering.
pub const CSV: &str = "text/csv";
/// Media type of the Arrow IPC stream rendering.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The DuckDB-style SQL name of an Arrow type.
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Dictionary(_, v) => sql_type_name(v),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("{}[]", sql_type_name(f.data_type()))
        }
        other => other.to_string(),
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// The JSON value of row `i` of `array`.
fn json_value(array: &dyn Array, i: usize) -> Result<Value, SqlError> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_owned()),
        DataType::Dictionary(..) => {
            let plain = plain(&array.slice(i, 1))?;
            json_value(plain.as_ref(), 0)?
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(i);
            let items: Result<Vec<Value>, SqlError> = (0..values.len())
                .map(|j| json_value(values.as_ref(), j))
                .collect();
            Value::Array(items?)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let values = list.value(i);
            let items: Result<Vec<Value>, SqlError> = (0..values.len())
                .map(|j| json_value(values.as_ref(), j))
                .collect();
            Value::Array(items?)
        }
        _ => Value::String(formatted(array, i)?),
    })
}

/// Row `i` of `array` as arrow prints it (timestamps in RFC 3339).
fn formatted(array: &dyn Array, i: usize) -> Result<String, SqlError> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array, &options)
        .map_err(|e| SqlError::internal(format!("cannot format a value: {e}")))?;
    Ok(formatter.value(i).to_string())
}

/// A dictionary column as a column of its values; others as they are.
fn plain(column: &ArrayRef) -> Result<ArrayRef, SqlError> {
    match column.data_type() {
        DataType::Dictionary(_, values) => cast(column, values)
            .map_err(|e| SqlError::internal(format!("cannot decode a dictionary: {e}"))),
        _ => Ok(Arc::clone(column)),
    }
}

/// The result as the JSON document of `POST /v1/sql`.
pub fn to_json(output: &QueryOutput) -> Result<Value, SqlError> {
    let columns: Vec<Value> = output
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": sql_type_name(f.data_type())}))
        .collect();
    let mut rows = Vec::with_capacity(output.rows);
    for batch in &output.batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(plain)
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            let row: Result<Vec<Value>, SqlError> =
                columns.iter().map(|c| json_value(c.as_ref(), i)).collect();
            rows.push(Value::Array(row?));
        }
    }
    Ok(json!({
        "columns": columns,
        "rows": rows,
        "row_count": output.rows,
        "truncated": output.truncated,
        "elapsed_ms": output.elapsed.as_secs_f64() * 1000.0,
    }))
}

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The result as CSV with a header line; NULL is an empty field, a list is
/// its JSON array.
pub fn to_csv(output: &QueryOutput) -> Result<String, SqlError> {
    let mut out = String::new();
    for (i, f) in output.schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, f.name());
    }
    out.push_str("\r\n");
    for batch in &output.batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(plain)
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if column.is_null(row) {
                    continue;
                }
                let text = match column.data_type() {
                    DataType::List(_) | DataType::LargeList(_) => {
                        json_value(column.as_ref(), row)?.to_string()
                    }
                    _ => formatted(column.as_ref(), row)?,
                };
                csv_field(&mut out, &text);
            }
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

/// The result as an Arrow IPC stream.
pub fn to_arrow_ipc(output: &QueryOutput) -> Result<Vec<u8>, SqlError> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &output.schema)
        .map_err(|e| SqlError::internal(e.to_string()))?;
    for batch in &output.batches {
        writer
            .write(batch)
            .map_err(|e| SqlError::internal(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| SqlError::internal(e.to_string()))?;
    drop(writer);
    Ok(bytes)
}

/// The result as a text table for a terminal, with a line saying how many
/// rows and whether the result was cut.
pub fn to_text_table(output: &QueryOutput) -> Result<String, SqlError> {
    let empty;
    let batches: &[RecordBatch] = if output.batches.is_empty() {
        empty = [RecordBatch::new_empty(output.schema.clone())];
        &empty
    } else {
        &output.batches
    };
    let table = pretty_format_batches(batches).map_err(|e| SqlError::internal(e.to_string()))?;
    let mut text = table.to_string();
    text.push('\n');
    text.push_str(&format!(
        "{} row{}{} ({:.3} s)\n",
        output.rows,
        if output.rows == 1 { "" } else { "s" },
        if output.truncated {
            ", truncated at the row limit"
        } else {
            ""
        },
        output.elapsed.as_secs_f64()
    ));
    Ok(text)
}
