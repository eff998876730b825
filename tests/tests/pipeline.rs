//! The pipeline end to end on a real nats-server into the embedded store
//! ([`posbon_tests::pipeline`]). One run kills the indexer with SIGKILL
//! mid-stream, another restarts nats-server mid-stream: nothing lost,
//! nothing duplicated.

use posbon_tests::pipeline::{Backend, Chaos, run_pipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_killed_mid_stream_loses_and_duplicates_nothing() {
    run_pipeline(Chaos::KillIndexer, Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_stream_loses_and_duplicates_nothing() {
    run_pipeline(Chaos::RestartNats, Backend::Embedded).await;
}
