//! `information_schema` as PostgreSQL shows it: `tables`, `columns` and
//! `schemata` of the caller's tables, with PostgreSQL's type names
//! (`timestamp with time zone`, `bigint`, ...) where DataFusion's own shows
//! Arrow's. Tools pick time columns and formats by these names (Grafana's
//! column picker, DBeaver's navigator).

use std::sync::Arc;

use arrow_pg::datatypes::field_into_pg_type;
use pgwire::api::Type;
use posbon_sql::datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use posbon_sql::datafusion::arrow::datatypes::{Field, Schema};
use posbon_sql::datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider};
use posbon_sql::{CATALOG, SqlEngine, SqlError};

/// The name PostgreSQL's `information_schema.columns.data_type` gives `t`.
fn standard_name(t: &Type) -> String {
    let name = match *t {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::INTERVAL => "interval",
        Type::JSON => "json",
        Type::JSONB => "jsonb",
        _ if t.name().starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    };
    name.to_owned()
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn table(columns: Vec<(&str, ArrayRef)>) -> Result<Arc<MemTable>, SqlError> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| SqlError::internal(format!("information_schema: {e}")))?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Replaces DataFusion's `information_schema` in `engine`'s session with
/// PostgreSQL's view of the same tables.
pub(crate) async fn install(engine: &SqlEngine) -> Result<(), SqlError> {
    let ctx = engine.context();
    let (mut t_name, mut c_table, mut c_column, mut c_position) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_nullable, mut c_type, mut c_udt) = (Vec::new(), Vec::new(), Vec::new());
    for name in engine.table_names() {
        let provider = ctx.table_provider(name.as_str()).await?;
        for (i, field) in provider.schema().fields().iter().enumerate() {
            let pg = field_into_pg_type(field).unwrap_or(Type::TEXT);
            c_table.push(name.clone());
            c_column.push(field.name().clone());
            c_position.push(i as i32 + 1);
            c_nullable.push(if field.is_nullable() { "YES" } else { "NO" }.to_owned());
            c_type.push(standard_name(&pg));
            c_udt.push(pg.name().to_owned());
        }
        t_name.push(name);
    }
    let tables = table(vec![
        (
            "table_catalog",
            strings(vec![CATALOG.to_owned(); t_name.len()]),
        ),
        (
            "table_schema",
            strings(vec!["public".to_owned(); t_name.len()]),
        ),
        (
            "table_type",
            strings(vec!["BASE TABLE".to_owned(); t_name.len()]),
        ),
        ("table_name", strings(t_name)),
    ])?;
    let n = c_table.len();
    let columns = table(vec![
        ("table_catalog", strings(vec![CATALOG.to_owned(); n])),
        ("table_schema", strings(vec!["public".to_owned(); n])),
        ("table_name", strings(c_table)),
        ("column_name", strings(c_column)),
        ("ordinal_position", Arc::new(Int32Array::from(c_position))),
        ("column_default", Arc::new(StringArray::new_null(n))),
        ("is_nullable", strings(c_nullable)),
        ("data_type", strings(c_type)),
        ("udt_name", strings(c_udt)),
    ])?;
    let schemata = table(vec![
        ("catalog_name", strings(vec![CATALOG.to_owned(); 3])),
        (
            "schema_name",
            strings(vec![
                "public".into(),
                "pg_catalog".into(),
                "information_schema".into(),
            ]),
        ),
        ("schema_owner", strings(vec!["posbon".to_owned(); 3])),
    ])?;
    let schema = MemorySchemaProvider::new();
    schema.register_table("tables".into(), tables)?;
    schema.register_table("columns".into(), columns)?;
    schema.register_table("schemata".into(), schemata)?;
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.information_schema = false;
    }
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| SqlError::internal("the posbon catalog is missing"))?;
    catalog.register_schema("information_schema", Arc::new(schema))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_have_postgresqls_standard_names() {
        assert_eq!(
            standard_name(&Type::TIMESTAMPTZ),
            "timestamp with time zone"
        );
        assert_eq!(standard_name(&Type::FLOAT8), "double precision");
        assert_eq!(standard_name(&Type::INT8), "bigint");
        assert_eq!(standard_name(&Type::TEXT_ARRAY), "ARRAY");
    }
}
