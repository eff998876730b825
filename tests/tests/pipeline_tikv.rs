//! The pipeline end to end ([`posbon_tests::pipeline`]) with the indexer
//! storing into TiKV: the in-repo PD + TiKV test server, its key space split
//! into regions at Posbon's prefixes and inside the event keys, so batches
//! and scans cross regions. The indexer is killed with SIGKILL mid-stream
//! (a batch can be cut between regions): nothing lost, nothing duplicated.
//! Then the SQL engine reads the stored day from TiKV, from the records and
//! from the columnar day segment built there, with the same answer.

use std::sync::Arc;

use posbon_geo::LatLng;
use posbon_sql::{SqlEngine, SqlLimits, output};
use posbon_store::keys::{event_cell_key, event_id_key, event_time_key, micros};
use posbon_store::{StoreConfig, open_store};
use posbon_tests::pipeline::{Backend, Chaos, run_pipeline};
use posbon_tikv_testserver::TestServer;

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
    let server = TestServer::with_splits(splits())
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

    // SQL over TiKV: the first day of the stream from its records, then from
    // its segment (written to and read from TiKV), the same rows.
    let store = open_store(&StoreConfig::tikv([server.pd_endpoint()]))
        .await
        .expect("store opens");
    let city = posbon_sim::city_registry(&posbon_sim::CityOptions::default()).expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let engine = SqlEngine::new(store.clone(), registry, SqlLimits::default()).expect("sql engine");
    let day = posbon_sim::default_start().date_naive();
    let sql = format!(
        "SELECT mahalla_id, kind, count(*) AS n, sum(severity) AS s FROM events \
         WHERE local_date = DATE '{day}' GROUP BY mahalla_id, kind \
         ORDER BY mahalla_id NULLS LAST, kind"
    );
    let table = |out: posbon_sql::QueryOutput| output::to_csv(&out).expect("csv");
    let from_records = table(engine.query(&sql).await.expect("query"));
    let built = posbon_sql::segments::build_day(&store, day)
        .await
        .expect("segments on tikv");
    assert!(built.built && built.rows > 10_000, "{built:?}");
    let explain = engine
        .query(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain");
    let explain = output::to_text_table(&explain).expect("text");
    assert!(explain.contains("path=segments,"), "{explain}");
    let from_segment = table(engine.query(&sql).await.expect("query"));
    assert_eq!(from_records, from_segment);
}
