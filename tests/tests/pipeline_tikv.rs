//! The pipeline end to end ([`posbon_tests::pipeline`]) with the indexer
//! storing into TiKV: the in-repo PD + TiKV test server, its key space split
//! into regions at Posbon's prefixes and inside the event keys, so batches
//! and scans cross regions. The indexer is killed with SIGKILL mid-stream
//! (a batch can be cut between regions): nothing lost, nothing duplicated.

use posbon_geo::LatLng;
use posbon_store::keys::{event_cell_key, event_id_key, event_time_key, micros};
use posbon_tests::pipeline::{Backend, Chaos, run_pipeline};
use posbon_tikv_testserver::{TestServer, TestServerOptions};

/// Region boundaries: every prefix, the centre cell of the simulated city,
/// two hours into the stream, and the middle of the id alphabet.
fn splits() -> Vec<Vec<u8>> {
    let centre = LatLng::new(41.31, 69.25)
        .expect("valid")
        .to_cell(posbon_geo::Resolution::Ten);
    let two_hours_in = micros(&(posbon_sim::default_start() + chrono::TimeDelta::hours(2)));
    vec![
        b"c".to_vec(),
        b"e".to_vec(),
        event_cell_key(u64::from(centre), 0, ""),
        b"i".to_vec(),
        event_id_key("m"),
        b"t".to_vec(),
        event_time_key(two_hours_in, ""),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_on_tikv_killed_mid_stream_loses_and_duplicates_nothing() {
    let server = TestServer::start(TestServerOptions {
        split_keys: splits(),
        ..TestServerOptions::default()
    })
    .await
    .expect("tikv test server starts");
    assert_eq!(server.regions().len(), 8);
    run_pipeline(
        Chaos::KillIndexer,
        Backend::Tikv {
            pd_endpoint: server.pd_endpoint(),
        },
    )
    .await;
    // The events went through the regions of the test server.
    assert!(server.len() > 3 * 90_000, "{} keys stored", server.len());
    assert!(server.calls("RawBatchPut") > 0);
}
