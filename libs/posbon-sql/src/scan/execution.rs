//! The execution of a scan: the stream of one partition, which reads its
//! parts from the store (records a page at a time, or columnar segments).

use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use futures::StreamExt;
use posbon_store::EventStoreExt;
use posbon_store::keys::{decode_event_cell_key, decode_event_time_key};

use super::plan::{Part, StoreScanExec};
use crate::columns::{Decoder, KeyParts};
use crate::error::SqlError;

/// Records read per store call.
pub(crate) const PAGE: usize = 4096;

impl StoreScanExec {
    /// The stream of `partition`: its parts, read in order, cut at the
    /// limit.
    pub(super) fn execute_partition(
        &self,
        partition: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let n = self.plan.partitions;
        let parts: Vec<Part> = self
            .plan
            .parts
            .iter()
            .skip(partition)
            .step_by(n)
            .cloned()
            .collect();
        if parts.is_empty() {
            // An empty scan still has one partition, with no rows.
            return Ok(builder.build());
        }
        let tx = builder.tx();
        let store = self.store.clone();
        let table = Arc::clone(&self.table);
        let projection = self.projection.clone();
        let cell_filter = self.plan.cell_filter.clone();
        let storage = self.plan.storage;
        let schema = Arc::clone(&self.schema);
        let external = |e: SqlError| DataFusionError::External(Box::new(e));
        let mut left = self.limit.unwrap_or(usize::MAX);
        builder.spawn(async move {
            for part in parts {
                let part = match part {
                    Part::Segment(segment) => {
                        let loaded = crate::segments::load(&store, table.name, &segment, &schema)
                            .await
                            .map_err(external)?;
                        match loaded {
                            Some(batches) => {
                                for batch in batches {
                                    if !send(&tx, batch, &mut left).await {
                                        return Ok(());
                                    }
                                }
                                continue;
                            }
                            // Replaced while the query ran: read the day's
                            // records.
                            None => Part::Time {
                                from: segment.from,
                                to: segment.to,
                            },
                        }
                    }
                    other => other,
                };
                let cell_keys = matches!(part, Part::Cells { .. });
                let mut decoder = Decoder::new(&table, &projection, cell_keys);
                if let Some(ranges) = &cell_filter {
                    decoder.keep_cells(Arc::clone(ranges));
                }
                let mut pages = match &part {
                    Part::Time { from, to } => store.time_record_pages(*from, *to, PAGE),
                    Part::Cells { cells, from, to } => {
                        let (from, to) = (*from, *to);
                        let cells = cells.clone();
                        let store = &store;
                        futures::stream::iter(cells)
                            .map(move |cell| store.cell_record_pages(cell, storage, from, to, PAGE))
                            .flatten()
                            .boxed()
                    }
                    Part::Segment(_) => unreachable!("segments are read above"),
                };
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| DataFusionError::External(Box::new(e)))?;
                    let rows = page.iter().filter_map(|(key, value)| {
                        let parts = if cell_keys {
                            decode_event_cell_key(key).map(|k| KeyParts {
                                micros: k.micros,
                                cell: Some(k.cell),
                                id: k.id,
                            })
                        } else {
                            decode_event_time_key(key).map(|k| KeyParts {
                                micros: k.micros,
                                cell: None,
                                id: k.id,
                            })
                        };
                        parts.map(|p| (p, value.as_slice()))
                    });
                    let batch = decoder.decode(rows, page.len()).map_err(external)?;
                    if !send(&tx, batch, &mut left).await {
                        return Ok(());
                    }
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// Sends a batch (cut to the rows `left` under the limit); false when the
/// scan is done: the limit is reached or the consumer is gone.
async fn send(
    tx: &tokio::sync::mpsc::Sender<DfResult<datafusion::arrow::record_batch::RecordBatch>>,
    mut batch: datafusion::arrow::record_batch::RecordBatch,
    left: &mut usize,
) -> bool {
    if batch.num_rows() > *left {
        batch = batch.slice(0, *left);
    }
    *left -= batch.num_rows();
    if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
        // The consumer is gone (query finished or cancelled).
        return false;
    }
    *left > 0
}
