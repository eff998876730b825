//! The table providers: the event tables over the store, `mahallas` from
//! the registry, `escalations` from the escalation records.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StringDictionaryBuilder,
    TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int8Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use geo::{Centroid, GeodesicArea};
use posbon_geo::Registry;
use posbon_model::EscalationRecord;
use posbon_store::{EscalationStoreExt, Store};

use crate::columns::{TableDef, enum_type, timestamp_type};
use crate::error::SqlError;
use crate::scan::{ScanPlan, StoreScanExec, key_filter, usable};

/// An event table (`events`, `incidents`, `camera_alerts`, `fraud_flags`)
/// over the store.
pub(crate) struct EventTable {
    def: Arc<TableDef>,
    schema: SchemaRef,
    store: Store,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for EventTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventTable")
            .field("table", &self.def.name)
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl EventTable {
    pub(crate) fn new(def: TableDef, store: Store, registry: Arc<Registry>) -> Self {
        let schema = def.schema();
        Self {
            def: Arc::new(def),
            schema,
            store,
            registry,
        }
    }
}

#[async_trait]
impl TableProvider for EventTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if usable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filter = key_filter(filters, &self.registry);
        let partitions = state.config().target_partitions();
        let plan = ScanPlan::new(
            &self.store,
            &self.def,
            filter,
            self.registry.resolution(),
            partitions,
        )
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.def.cols.len()).collect());
        Ok(Arc::new(StoreScanExec::new(
            Arc::clone(&self.def),
            self.store.clone(),
            plan,
            projection,
            limit,
        )))
    }
}

/// The `mahallas` table: the registry, one row per mahalla.
pub(crate) fn mahallas_table(registry: &Registry) -> Result<MemTable, SqlError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("mahalla_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("district_id", DataType::Utf8, false),
        Field::new("district_name", DataType::Utf8, false),
        Field::new("region_id", DataType::Utf8, false),
        Field::new("region_name", DataType::Utf8, false),
        Field::new("population", DataType::UInt32, true),
        Field::new("inspector", DataType::Utf8, true),
        Field::new("lat", DataType::Float64, true),
        Field::new("lng", DataType::Float64, true),
        Field::new("area_km2", DataType::Float64, false),
    ]));
    let n = registry.mahallas().len();
    let mut id = StringBuilder::with_capacity(n, n * 16);
    let mut name = StringBuilder::with_capacity(n, n * 16);
    let mut district = StringBuilder::with_capacity(n, n * 16);
    let mut district_name = StringBuilder::with_capacity(n, n * 16);
    let mut region = StringBuilder::with_capacity(n, n * 16);
    let mut region_name = StringBuilder::with_capacity(n, n * 16);
    let mut population = UInt32Builder::with_capacity(n);
    let mut inspector = StringBuilder::with_capacity(n, n * 8);
    let mut lat = Float64Builder::with_capacity(n);
    let mut lng = Float64Builder::with_capacity(n);
    let mut area = Float64Builder::with_capacity(n);
    for m in registry.mahallas() {
        id.append_value(&m.id);
        name.append_value(&m.name);
        district.append_value(&m.district_id);
        district_name.append_value(
            registry
                .district(&m.district_id)
                .map_or(m.district_id.as_str(), |d| d.name.as_str()),
        );
        region.append_value(&m.region_id);
        region_name.append_value(
            registry
                .region(&m.region_id)
                .map_or(m.region_id.as_str(), |r| r.name.as_str()),
        );
        population.append_option(m.population);
        inspector.append_option(m.inspector.as_deref());
        let centre = m.geometry.centroid();
        lat.append_option(centre.map(|p| p.y()));
        lng.append_option(centre.map(|p| p.x()));
        area.append_value(m.geometry.geodesic_area_unsigned() / 1e6);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(district.finish()),
        Arc::new(district_name.finish()),
        Arc::new(region.finish()),
        Arc::new(region_name.finish()),
        Arc::new(population.finish()),
        Arc::new(inspector.finish()),
        Arc::new(lat.finish()),
        Arc::new(lng.finish()),
        Arc::new(area.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
        .map_err(|e| SqlError::internal(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(SqlError::from)
}

/// The schema of `escalations`.
pub(crate) fn escalations_schema() -> SchemaRef {
    let ts = timestamp_type;
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("mahalla_id", DataType::Utf8, false),
        Field::new("district_id", DataType::Utf8, false),
        Field::new("region_id", DataType::Utf8, false),
        Field::new("level", enum_type(), false),
        Field::new("previous_level", enum_type(), false),
        Field::new("score", DataType::Float64, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("status", enum_type(), false),
        Field::new("tier", enum_type(), false),
        Field::new("assignee", DataType::Utf8, true),
        Field::new("opened_at", ts(), false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("acknowledged_at", ts(), true),
        Field::new("closed_at", ts(), true),
        Field::new("updated_at", ts(), false),
        Field::new("alert_sequence", DataType::UInt64, false),
        Field::new("evidence_count", DataType::Int64, false),
        Field::new(
            "hot_cells",
            DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true))),
            false,
        ),
        Field::new("counts", DataType::Utf8, false),
        Field::new("measure", enum_type(), true),
        Field::new("measure_value", DataType::Float64, true),
        Field::new("measure_threshold", DataType::Float64, true),
        Field::new("measure_z", DataType::Float64, true),
        Field::new("measure_min_z", DataType::Float64, true),
    ]))
}

/// The rows of `escalations` from the records.
fn escalation_batch(records: &[EscalationRecord]) -> Result<RecordBatch, SqlError> {
    let n = records.len();
    let s = || StringBuilder::with_capacity(n, n * 16);
    let dict = StringDictionaryBuilder::<Int8Type>::new;
    let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut id, mut mahalla, mut district, mut region) = (s(), s(), s(), s());
    let (mut level, mut previous, mut status, mut tier) = (dict(), dict(), dict(), dict());
    let mut score = Float64Builder::with_capacity(n);
    let (mut rule, mut assignee, mut counts) = (s(), s(), s());
    let (mut opened, mut wstart, mut wend, mut acked, mut closed, mut updated) =
        (ts(), ts(), ts(), ts(), ts(), ts());
    let mut sequence = UInt64Builder::with_capacity(n);
    let mut evidence = Int64Builder::with_capacity(n);
    let mut hot = ListBuilder::new(UInt64Builder::new());
    let mut measure = dict();
    let f = || Float64Builder::with_capacity(n);
    let (mut m_value, mut m_threshold, mut m_z, mut m_min_z) = (f(), f(), f(), f());
    for r in records {
        let e = &r.escalation;
        id.append_value(&e.id);
        mahalla.append_value(&e.mahalla_id);
        district.append_value(&e.district_id);
        region.append_value(&e.region_id);
        level.append_value(e.level.as_str());
        previous.append_value(e.previous_level.as_str());
        score.append_value(e.score);
        rule.append_value(&e.rule);
        status.append_value(e.status.as_str());
        tier.append_value(r.tier.as_str());
        assignee.append_option(r.assignee.as_deref());
        opened.append_value(e.opened_at.timestamp_micros());
        wstart.append_value(e.window_start.timestamp_micros());
        wend.append_value(e.window_end.timestamp_micros());
        acked.append_option(r.acknowledged_at.map(|t| t.timestamp_micros()));
        closed.append_option(r.closed_at.map(|t| t.timestamp_micros()));
        updated.append_value(r.updated_at.timestamp_micros());
        sequence.append_value(r.alert_sequence);
        evidence.append_value(i64::try_from(e.evidence.len()).unwrap_or(i64::MAX));
        for c in &e.hot_cells {
            hot.values().append_value(c.cell.get());
        }
        hot.append(true);
        let map: &BTreeMap<String, u64> = &e.counts;
        counts.append_value(serde_json::to_string(map).unwrap_or_default());
        let m = e.measure.as_ref();
        measure.append_option(m.map(|m| m.name.as_str()));
        m_value.append_option(m.map(|m| m.value));
        m_threshold.append_option(m.map(|m| m.threshold));
        m_z.append_option(m.and_then(|m| m.z));
        m_min_z.append_option(m.and_then(|m| m.min_z));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(mahalla.finish()),
        Arc::new(district.finish()),
        Arc::new(region.finish()),
        Arc::new(level.finish()),
        Arc::new(previous.finish()),
        Arc::new(score.finish()),
        Arc::new(rule.finish()),
        Arc::new(status.finish()),
        Arc::new(tier.finish()),
        Arc::new(assignee.finish()),
        Arc::new(opened.finish()),
        Arc::new(wstart.finish()),
        Arc::new(wend.finish()),
        Arc::new(acked.finish()),
        Arc::new(closed.finish()),
        Arc::new(updated.finish()),
        Arc::new(sequence.finish()),
        Arc::new(evidence.finish()),
        Arc::new(hot.finish()),
        Arc::new(counts.finish()),
        Arc::new(measure.finish()),
        Arc::new(m_value.finish()),
        Arc::new(m_threshold.finish()),
        Arc::new(m_z.finish()),
        Arc::new(m_min_z.finish()),
    ];
    RecordBatch::try_new(escalations_schema(), columns)
        .map_err(|e| SqlError::internal(e.to_string()))
}

/// `escalations`: the escalation records, read when a query scans them.
pub(crate) struct EscalationsTable {
    store: Store,
    schema: SchemaRef,
}

impl std::fmt::Debug for EscalationsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EscalationsTable")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl EscalationsTable {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            store,
            schema: escalations_schema(),
        }
    }
}

/// Rows per batch of `escalations`.
const ESCALATION_BATCH: usize = 4096;

#[async_trait]
impl TableProvider for EscalationsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut stream = self.store.escalations_stream();
        let mut batches = Vec::new();
        let mut chunk = Vec::with_capacity(ESCALATION_BATCH);
        let external = |e: SqlError| DataFusionError::External(Box::new(e));
        while let Some(record) = stream
            .try_next()
            .await
            .map_err(|e| external(SqlError::from(e)))?
        {
            chunk.push(record);
            if chunk.len() == ESCALATION_BATCH {
                batches.push(escalation_batch(&chunk).map_err(external)?);
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            batches.push(escalation_batch(&chunk).map_err(external)?);
        }
        let mem = MemTable::try_new(Arc::clone(&self.schema), vec![batches])?;
        mem.scan(state, projection, filters, limit).await
    }
}
