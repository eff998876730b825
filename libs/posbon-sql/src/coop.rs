//! Queries that can be stopped: a physical optimizer rule that makes every
//! operator able to turn one input batch into many output batches give the
//! runtime a turn between them.
//!
//! A query is stopped (time limit, cancel request, a client gone) by aborting
//! its task, which takes effect when the task next yields. DataFusion's own
//! rule (`EnsureCooperative`) makes the leaves yield, but a join whose build
//! side is in memory can then emit batch after batch without polling a leaf:
//! a runaway cross join ran on for 4.8 s after its time-out. Wrapping the
//! output of each such operator in a `CooperativeExec` spends the task's
//! budget per batch, so the task yields every 128 batches at most.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;

/// The rule (added after DataFusion's own).
#[derive(Debug, Default)]
pub(crate) struct YieldBetweenBatches;

/// Whether `plan` can emit many batches for one batch it reads.
fn multiplies(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<NestedLoopJoinExec>()
        || plan.is::<CrossJoinExec>()
        || plan.is::<HashJoinExec>()
        || plan.is::<SortMergeJoinExec>()
        || plan.is::<SymmetricHashJoinExec>()
        || plan.is::<UnnestExec>()
}

impl PhysicalOptimizerRule for YieldBetweenBatches {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if multiplies(node.as_ref()) {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldBetweenBatches"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
