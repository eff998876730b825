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
/// Media type of the Parquet rendering.
pub const PARQUET: &str = "application/vnd.apache.parquet";
/// Media type of the GeoJSON rendering.
pub const GEOJSON: &str = posbon_geo::features::GEOJSON_MEDIA_TYPE;

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
/// A batch's columns with dictionaries decoded ([`plain`]).
fn plain_columns(batch: &RecordBatch) -> Result<Vec<ArrayRef>, SqlError> {
    batch.columns().iter().map(plain).collect()
}

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
        let columns = plain_columns(batch)?;
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

/// A text that a spreadsheet would run as a formula gets a `'` before it, so
/// opening an export never runs what an event's free text or a registry name
/// says (OWASP's CSV injection advice): one starting, after any spaces, with
/// `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width
/// forms), and within the text, after a `;` (the field separator of Excel in
/// Uzbek and Russian settings) or a line break, the same again. Numbers are
/// written as they are.
fn guard_formula(text: &str) -> std::borrow::Cow<'_, str> {
    const STARTS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
    let risky = |rest: &str| rest.trim_start_matches(' ').starts_with(STARTS);
    let breaks = |c: char| matches!(c, ';' | '\n' | '\r');
    let after = |i: usize, c: char| &text[i + c.len_utf8()..];
    let lead = risky(text);
    if !lead
        && !text
            .char_indices()
            .any(|(i, c)| breaks(c) && risky(after(i, c)))
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 4);
    if lead {
        out.push('\'');
    }
    for (i, c) in text.char_indices() {
        out.push(c);
        if breaks(c) && risky(after(i, c)) {
            out.push('\'');
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// One field of a CSV record (see [`csv_record`]).
#[derive(Debug, Clone, Copy)]
pub enum CsvField<'a> {
    /// Text: guarded against formulas, quoted when it must be.
    Text(&'a str),
    /// A number, date or JSON value: written as it is, quoted when it must be.
    Plain(&'a str),
    /// NULL: an empty field.
    Null,
}

/// Appends one CSV record and its CRLF: fields quoted when they must be (RFC
/// 4180), and a text that a spreadsheet would run as a formula (`=`, `+`,
/// `-`, `@`, a tab or a carriage return first) prefixed with `'`, so opening
/// an export never runs what an event's free text or a registry name says
/// (OWASP's CSV injection advice). The one CSV writer of Posbon (SQL results
/// and the daily report); `arrow-csv` has no such guard.
pub fn csv_record<'a>(out: &mut String, fields: impl IntoIterator<Item = CsvField<'a>>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = match field {
            CsvField::Text(t) => guard_formula(t),
            CsvField::Plain(t) => std::borrow::Cow::Borrowed(t),
            CsvField::Null => continue,
        };
        if text.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out.push_str("\r\n");
}

/// The result as CSV with a header line; NULL is an empty field, a list is
/// its JSON array; a text that a spreadsheet would take for a formula starts
/// with `'` (see [`csv_record`]).
pub fn to_csv(output: &QueryOutput) -> Result<String, SqlError> {
    let mut out = String::new();
    let names = output.schema.fields().iter().map(|f| f.name().as_str());
    csv_record(&mut out, names.map(CsvField::Text));
    let mut texts: Vec<Option<String>> = Vec::new();
    for batch in &output.batches {
        let columns = plain_columns(batch)?;
        for row in 0..batch.num_rows() {
            texts.clear();
            for column in &columns {
                texts.push(if column.is_null(row) {
                    None
                } else {
                    Some(match column.data_type() {
                        DataType::List(_) | DataType::LargeList(_) => {
                            json_value(column.as_ref(), row)?.to_string()
                        }
                        _ => formatted(column.as_ref(), row)?,
                    })
                });
            }
            let fields = texts.iter().zip(&columns).map(|(t, c)| match t {
                None => CsvField::Null,
                Some(t) if is_text(c.data_type()) => CsvField::Text(t),
                Some(t) => CsvField::Plain(t),
            });
            csv_record(&mut out, fields);
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

/// The result as a Parquet file (zstd-compressed columns, the query's own
/// column types).
pub fn to_parquet(output: &QueryOutput) -> Result<Vec<u8>, SqlError> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&output.schema), Some(properties))
        .map_err(|e| SqlError::internal(format!("parquet: {e}")))?;
    for batch in &output.batches {
        writer
            .write(batch)
            .map_err(|e| SqlError::internal(format!("parquet: {e}")))?;
    }
    writer
        .close()
        .map_err(|e| SqlError::internal(format!("parquet: {e}")))?;
    Ok(bytes)
}

/// Where a row's geometry comes from in a GeoJSON rendering.
enum Geometry {
    /// `lat` and `lng` columns (or `latitude`/`longitude`, `lon`).
    Point { lat: usize, lng: usize },
    /// An H3 cell column (`cell`, `h3`, or a name ending in `_cell`): its
    /// hexagon.
    Cell(usize),
    /// A WKT text column (`wkt`, `geometry`, `geom`, or ending in `_wkt`):
    /// `POINT`, `LINESTRING` or `POLYGON`.
    Wkt(usize),
}

fn geometry_columns(schema: &datafusion::arrow::datatypes::Schema) -> Option<Geometry> {
    let find = |names: &[&str], suffix: Option<&str>, ok: &dyn Fn(&DataType) -> bool| {
        schema.fields().iter().position(|f| {
            let n = f.name().to_ascii_lowercase();
            (names.contains(&n.as_str()) || suffix.is_some_and(|s| n.ends_with(s)))
                && ok(f.data_type())
        })
    };
    let number = |t: &DataType| t.is_numeric();
    let lat = find(&["lat", "latitude"], None, &number);
    let lng = find(&["lng", "lon", "longitude"], None, &number);
    if let (Some(lat), Some(lng)) = (lat, lng) {
        return Some(Geometry::Point { lat, lng });
    }
    let cell = |t: &DataType| t.is_integer() || is_text(t);
    if let Some(c) = find(&["cell", "h3"], Some("_cell"), &cell) {
        return Some(Geometry::Cell(c));
    }
    find(&["wkt", "geometry", "geom"], Some("_wkt"), &is_text).map(Geometry::Wkt)
}

/// The geometry of one row (`null` where its columns are NULL).
fn row_geometry(
    geometry: &Geometry,
    columns: &[ArrayRef],
    names: &[&String],
    row: usize,
) -> Result<Value, SqlError> {
    Ok(match *geometry {
        Geometry::Point { lat, lng } => {
            match (
                json_value(columns[lat].as_ref(), row)?.as_f64(),
                json_value(columns[lng].as_ref(), row)?.as_f64(),
            ) {
                (Some(lat), Some(lng)) => posbon_geo::features::point(lat, lng),
                _ => Value::Null,
            }
        }
        Geometry::Cell(c) => {
            let value = json_value(columns[c].as_ref(), row)?;
            let raw = match &value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
                _ => None,
            };
            match raw.and_then(|r| posbon_geo::CellIndex::try_from(r).ok()) {
                Some(cell) => posbon_geo::features::cell_polygon(cell),
                None if value.is_null() => Value::Null,
                None => {
                    return Err(SqlError::invalid(format!(
                        "geojson: {value} in column {} is not an H3 cell",
                        names[c]
                    )));
                }
            }
        }
        Geometry::Wkt(c) => match json_value(columns[c].as_ref(), row)? {
            Value::String(text) => wkt_geometry(&text)?,
            _ => Value::Null,
        },
    })
}

/// A WKT `POINT`, `LINESTRING` or `POLYGON` as a GeoJSON geometry.
fn wkt_geometry(text: &str) -> Result<Value, SqlError> {
    let bad = || {
        SqlError::invalid(format!(
            "geojson: {:?} is not WKT POINT, LINESTRING or POLYGON",
            text.chars().take(80).collect::<String>()
        ))
    };
    let (kind, rest) = text.trim().split_once('(').ok_or_else(bad)?;
    let body = rest.trim_end().strip_suffix(')').ok_or_else(bad)?;
    let position = |pair: &str| -> Result<Value, SqlError> {
        let mut it = pair.split_whitespace().map(str::parse::<f64>);
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(x)), Some(Ok(y)), None) if x.is_finite() && y.is_finite() => Ok(json!([x, y])),
            _ => Err(bad()),
        }
    };
    let line = |body: &str| -> Result<Value, SqlError> {
        body.split(',')
            .map(|p| position(p.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    match kind.trim().to_ascii_uppercase().as_str() {
        "POINT" => Ok(json!({"type": "Point", "coordinates": position(body.trim())?})),
        "LINESTRING" => Ok(json!({"type": "LineString", "coordinates": line(body)?})),
        "POLYGON" => {
            let rings = body
                .split(')')
                .map(|r| r.trim().trim_start_matches(',').trim())
                .filter(|r| !r.is_empty())
                .map(|r| line(r.strip_prefix('(').ok_or_else(bad)?))
                .collect::<Result<Vec<_>, _>>()?;
            if rings.is_empty() {
                return Err(bad());
            }
            Ok(json!({"type": "Polygon", "coordinates": rings}))
        }
        _ => Err(bad()),
    }
}

/// The result as a GeoJSON FeatureCollection: one Feature a row, its
/// geometry from `lat`/`lng` (a Point), an H3 cell column (its hexagon) or a
/// WKT column, the other columns as properties (values as in JSON). A result
/// without such columns is refused, naming what it needs. `truncated` is a
/// member of the collection.
pub fn to_geojson(output: &QueryOutput) -> Result<Value, SqlError> {
    let geometry = geometry_columns(&output.schema).ok_or_else(|| {
        SqlError::invalid(
            "geojson needs lat and lng columns, an H3 cell column (cell, h3, *_cell) \
             or a WKT column (wkt, geometry, geom, *_wkt)",
        )
    })?;
    let dropped = match geometry {
        Geometry::Wkt(c) => Some(c),
        _ => None,
    };
    let names: Vec<&String> = output.schema.fields().iter().map(|f| f.name()).collect();
    let mut features = Vec::with_capacity(output.rows);
    for batch in &output.batches {
        let columns = plain_columns(batch)?;
        for row in 0..batch.num_rows() {
            let mut properties = serde_json::Map::new();
            for (i, column) in columns.iter().enumerate() {
                if Some(i) != dropped {
                    properties.insert(names[i].clone(), json_value(column.as_ref(), row)?);
                }
            }
            features.push(json!({
                "type": "Feature",
                "geometry": row_geometry(&geometry, &columns, &names, row)?,
                "properties": properties,
            }));
        }
    }
    Ok(json!({
        "type": "FeatureCollection",
        "features": features,
        "truncated": output.truncated,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_guarded_at_the_start_and_after_separators() {
        for (text, guarded) in [
            ("plain", "plain"),
            ("=1+1", "'=1+1"),
            ("  =1+1", "'  =1+1"),
            ("＝1", "'＝1"),
            ("x;=HYPERLINK(\"y\")", "x;'=HYPERLINK(\"y\")"),
            ("x; @SUM(1)", "x;' @SUM(1)"),
            ("a\n-2+3", "a\n'-2+3"),
            ("a;b", "a;b"),
            ("e-mail", "e-mail"),
        ] {
            assert_eq!(guard_formula(text), guarded, "{text:?}");
        }
    }
}
