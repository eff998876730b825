//! The TiKV backend: the conformance suite on the in-repo PD + TiKV test
//! server (and on a real cluster when `POSBON_TIKV_PD` is set), the
//! workaround of tikv-client's `scan` defect, region errors and splits,
//! partial batch failures, an unreachable PD, metrics and copies.

use posbon_model::Span;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use posbon_geo::{LatLng, Resolution};
use posbon_store::keys::{self, prefix_range};
use posbon_store::{
    CopyOptions, EmbeddedStore, EventStore, EventStoreExt, KvPair, MemoryStore, Store, StoreConfig,
    StoreErrorKind, TikvConfig, TikvStore, conformance, copy, copy_with, open_store,
    open_store_with_metrics,
};
use posbon_telemetry::Metrics;
use posbon_tikv_testserver::TestServer;

/// Splits at Posbon's prefixes and inside the conformance suite's own
/// namespaces, so its batches, pages and deletes cross regions.
fn conformance_splits() -> Vec<Vec<u8>> {
    let mut splits: Vec<Vec<u8>> = [
        &b"c"[..],
        b"e",
        b"i",
        b"t",
        b"z/atomic/\x00\x00\x03\x00",
        b"z/delete_many/\x00\x00\x30\x00",
        b"z/pages/01234",
        b"z/pages/02000",
        b"z/order/a",
        b"z/binary/\xff",
        b"z/large/\x04",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    // Inside the events of the cell and time fixtures.
    let cell = LatLng::new(41.3111, 69.2797)
        .expect("valid")
        .to_cell(Resolution::Ten);
    let noon = Utc
        .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("time");
    splits.push(keys::event_cell_key(
        u64::from(cell),
        keys::micros(&noon),
        "",
    ));
    splits.push(keys::event_time_key(keys::micros(&noon), ""));
    splits.push(b"im-20".to_vec());
    splits
}

async fn server_with(split_keys: Vec<Vec<u8>>) -> TestServer {
    TestServer::with_splits(split_keys)
        .await
        .expect("test server starts")
}

async fn store_on(server: &TestServer) -> TikvStore {
    TikvStore::connect(&TikvConfig::new([server.pd_endpoint()]), None)
        .await
        .expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_store_conforms_on_the_test_server() {
    let server = server_with(conformance_splits()).await;
    assert!(server.regions().len() >= 10);
    let store = store_on(&server).await;
    conformance::run_all(&store).await;
    assert!(server.calls("RawBatchPut") > 0 && server.calls("RawBatchGet") > 0);
    assert_eq!(server.calls("RawScan"), server.calls("RawScan"));
}

/// The one allowed skip: the issue asks for this suite to run against a real
/// cluster only when one is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_store_conforms_on_a_real_cluster_when_configured() {
    let Ok(endpoints) = std::env::var("POSBON_TIKV_PD") else {
        println!(
            "POSBON_TIKV_PD is not set: the suite against a real TiKV cluster is not configured (see deploy/README.md)"
        );
        return;
    };
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    let mut config = TikvConfig::new(endpoints);
    // A cluster with mutual TLS (deploy/make-certs.sh): its CA and a client
    // certificate.
    if let Ok(dir) = std::env::var("POSBON_TIKV_TLS_DIR") {
        let dir = std::path::PathBuf::from(dir);
        config.tls = Some(posbon_store::TikvTlsConfig {
            ca_path: dir.join("ca.pem"),
            cert_path: dir.join("posbon.pem"),
            key_path: dir.join("posbon-key.pem"),
        });
    }
    let store = TikvStore::connect(&config, None)
        .await
        .expect("the cluster of POSBON_TIKV_PD answers");
    conformance::run_all(&store).await;
}

/// tikv-client's bounded `scan` starts over at the beginning of the key
/// space when it reaches the last region; the backend's scans do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_reaching_the_last_region_are_right() {
    let server = server_with(vec![b"e".to_vec(), b"t".to_vec()]).await;
    let store = store_on(&server).await;
    let entries: Vec<KvPair> = [&b"a"[..], b"f", b"u", b"v"]
        .iter()
        .map(|k| (k.to_vec(), k.to_vec()))
        .collect();
    store.put_batch(entries).await.expect("put");
    // The defect, reproduced with the client itself.
    let raw = tikv_client::RawClient::new(vec![server.pd_endpoint()])
        .await
        .expect("client");
    let wrong: Vec<Vec<u8>> = raw
        .scan(b"u".to_vec()..b"w".to_vec(), 5)
        .await
        .expect("scan")
        .into_iter()
        .map(|p| Vec::from(p.into_key()))
        .collect();
    assert_eq!(
        wrong,
        [&b"u"[..], b"v", b"a", b"f", b"u"].map(|k| k.to_vec()),
        "tikv-client's scan restarts from the first region"
    );
    // The backend: the same range, and ranges over every region.
    let keys = |pairs: Vec<KvPair>| pairs.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan(b"u", b"w", 5).await.expect("scan")),
        vec![b"u".to_vec(), b"v".to_vec()]
    );
    assert_eq!(
        keys(store.scan(b"w", b"z", 5).await.expect("scan")),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        keys(store.scan(b"b", &[0xFF; 10], 10).await.expect("scan")),
        vec![b"f".to_vec(), b"u".to_vec(), b"v".to_vec()]
    );
    assert_eq!(
        keys(store.scan(&[0], b"v", 10).await.expect("scan")),
        vec![b"a".to_vec(), b"f".to_vec(), b"u".to_vec()]
    );
    assert_eq!(
        keys(store.scan(&[0], &[0xFF], 2).await.expect("scan")),
        vec![b"a".to_vec(), b"f".to_vec()]
    );
    // An empty store region between data: [e, t) holds only "f".
    store.delete_range(b"f", b"g").await.expect("delete");
    assert_eq!(
        keys(store.scan(b"a\0", &[0xFF], 10).await.expect("scan")),
        vec![b"u".to_vec(), b"v".to_vec()]
    );
}

/// Many regions, a long paged scan over all of them, with regions split
/// and epochs changed while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_scans_survive_splits_and_epoch_errors() {
    let splits: Vec<Vec<u8>> = (1..40u32)
        .map(|i| format!("k{:05}", i * 250).into_bytes())
        .collect();
    let server = server_with(splits).await;
    let store = store_on(&server).await;
    let entries: Vec<KvPair> = (0..10_000u32)
        .filter(|i| !(3000..6000).contains(i)) // twelve empty regions in the middle
        .map(|i| (format!("k{i:05}").into_bytes(), i.to_be_bytes().to_vec()))
        .collect();
    store.put_batch(entries.clone()).await.expect("put");
    let (start, end) = prefix_range(b"k");
    let mut stream = store.scan_stream(start.clone(), end.clone(), 300);
    let mut got = Vec::new();
    while let Some(pair) = stream.try_next().await.expect("scan") {
        got.push(pair);
        match got.len() {
            1000 => {
                server.inject_epoch_not_match(3);
            }
            2000 => {
                for i in [2100u32, 2170, 7777, 9999] {
                    assert!(server.split(format!("k{i:05}").as_bytes()));
                }
            }
            _ => {}
        }
    }
    assert_eq!(got, entries);
    assert!(
        server.region_errors() >= 3,
        "{} region errors",
        server.region_errors()
    );
    // Batch gets and deletes over the split layout.
    let keys: Vec<Vec<u8>> = (0..10_000u32)
        .step_by(7)
        .map(|i| format!("k{i:05}").into_bytes())
        .collect();
    let values = store.get_many(keys.clone()).await.expect("get many");
    for (key, value) in keys.iter().zip(values) {
        let i: u32 = std::str::from_utf8(&key[1..])
            .expect("ascii")
            .parse()
            .expect("number");
        let expected = (!(3000..6000).contains(&i)).then(|| i.to_be_bytes().to_vec());
        assert_eq!(value, expected, "k{i:05}");
    }
    store
        .delete_range(b"k02000", b"k08000")
        .await
        .expect("delete");
    let left: Vec<KvPair> = store
        .scan_stream(start, end, 1000)
        .try_collect()
        .await
        .expect("scan");
    assert_eq!(left.len(), 2000 + 2000);
}

/// A batch that fails part-way leaves no id-index entry behind: the
/// redelivered batch is written whole, not taken for duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_batch_is_completed_by_its_retry() {
    let server = server_with(vec![b"e".to_vec(), b"i".to_vec(), b"t".to_vec()]).await;
    let store = TikvStore::connect(
        &TikvConfig {
            retries: 1,
            retry_backoff: Span::from_millis(1),
            ..TikvConfig::new([server.pd_endpoint()])
        },
        None,
    )
    .await
    .expect("connects");
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("time");
    let cell = LatLng::new(41.3111, 69.2797)
        .expect("valid")
        .to_cell(Resolution::Ten);
    let events: Vec<_> = (0..300)
        .map(|i| conformance::enriched_in_cell(&format!("p-{i:03}"), at, cell, None))
        .collect();
    // The time copies (last region) cannot be written.
    server.fail_writes_under(b"t");
    let error = store.put_events(&events).await.expect_err("writes fail");
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(
        store.count_events().await.expect("count"),
        0,
        "no index entry"
    );
    server.clear_write_failures();
    let summary = store.put_events(&events).await.expect("retry");
    assert_eq!((summary.written, summary.duplicates), (300, 0));
    let back = store
        .events_in_time(at, at + chrono::Duration::seconds(1))
        .await
        .expect("scan");
    assert_eq!(back.len(), 300);
    assert_eq!(store.count_events().await.expect("count"), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pd_is_a_clear_error() {
    let server = server_with(Vec::new()).await;
    let endpoint = server.pd_endpoint();
    server.stop().await;
    let started = Instant::now();
    let error = open_store(&StoreConfig::tikv([endpoint.clone()]))
        .await
        .err()
        .expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    let message = error.to_string();
    assert!(
        message.contains(&endpoint) && message.contains("pd"),
        "{message}"
    );
    let error = open_store(&StoreConfig::tikv(Vec::<String>::new()))
        .await
        .err()
        .expect("no endpoints");
    assert_eq!(error.kind(), StoreErrorKind::InvalidRequest);
    assert!(
        error.to_string().contains("store.tikv.pd_endpoints"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_measured() {
    let server = server_with(vec![b"m".to_vec()]).await;
    let metrics = Metrics::new();
    let store = open_store_with_metrics(&StoreConfig::tikv([server.pd_endpoint()]), &metrics)
        .await
        .expect("opens");
    assert_eq!(store.name(), "tikv");
    store
        .put_batch(vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"z".to_vec(), b"2".to_vec()),
        ])
        .await
        .expect("put");
    assert_eq!(store.get(b"a").await.expect("get"), Some(b"1".to_vec()));
    assert_eq!(store.scan(b"a", b"zz", 10).await.expect("scan").len(), 2);
    let text = metrics.render();
    for op in ["put_batch", "get", "scan"] {
        let line = format!("posbon_store_operation_seconds_count{{backend=\"tikv\",op=\"{op}\"}}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    // A failure is counted by kind.
    server.fail_writes_under(b"q");
    store
        .put_batch(vec![(b"q".to_vec(), b"x".to_vec())])
        .await
        .expect_err("fails");
    let text = metrics.render();
    assert!(
        text.contains(
            "posbon_store_errors_total{backend=\"tikv\",op=\"put_batch\",kind=\"unavailable\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("posbon_store_retries_total{backend=\"tikv\",op=\"put_batch\"} 3"),
        "{text}"
    );
}

/// embedded → TiKV → memory, every key equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_backends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let embedded = EmbeddedStore::open(dir.path()).expect("open");
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 9, 0, 0)
        .single()
        .expect("time");
    let cell = LatLng::new(41.3111, 69.2797)
        .expect("valid")
        .to_cell(Resolution::Ten);
    let events: Vec<_> = (0..2000)
        .map(|i| {
            conformance::enriched_in_cell(
                &format!("c-{i}"),
                at + chrono::Duration::seconds(i),
                cell,
                Some("m-1"),
            )
        })
        .collect();
    embedded.put_events(&events).await.expect("put");
    embedded
        .put_checkpoint("indexer", b"seq=9".to_vec())
        .await
        .expect("put");
    let server = server_with(conformance_splits()).await;
    let tikv: Store = open_store(&StoreConfig::tikv([server.pd_endpoint()]))
        .await
        .expect("opens");
    let mut batches = 0;
    let options = CopyOptions {
        page: 500,
        batch_bytes: 64 << 10,
    };
    let summary = copy_with(&embedded, &*tikv, options, |_| batches += 1)
        .await
        .expect("copy");
    // Three keys per event, the checkpoint, and the write mark of the one
    // hour the events fall in.
    assert_eq!(summary.keys, 3 * 2000 + 2);
    assert!(batches >= 4, "{batches} batches");
    assert_eq!(server.len(), 3 * 2000 + 2);
    let memory = MemoryStore::new();
    copy(&*tikv, &memory, |_| {}).await.expect("copy back");
    assert_eq!(memory.count_events().await.expect("count"), 2000);
    assert_eq!(
        memory.checkpoint("indexer").await.expect("get"),
        Some(b"seq=9".to_vec())
    );
    assert_eq!(everything(&memory).await, everything(&embedded).await);
}

async fn everything(store: &dyn EventStore) -> Vec<KvPair> {
    store
        .scan_stream(vec![0], vec![0xFF; 8], 500)
        .try_collect()
        .await
        .expect("scan")
}

/// Batch gets whose answer is larger than the client accepts are split until
/// they fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_are_fetched_in_parts() {
    let server = server_with(vec![b"m".to_vec()]).await;
    let store = TikvStore::connect(
        &TikvConfig {
            max_response_bytes: 4000,
            ..TikvConfig::new([server.pd_endpoint()])
        },
        None,
    )
    .await
    .expect("connects");
    let entries: Vec<KvPair> = (0..16u8).map(|i| (vec![b'a', i], vec![i; 500])).collect();
    store.put_batch(entries.clone()).await.expect("put");
    let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
    let values = store.get_many(keys).await.expect("get many in parts");
    assert_eq!(
        values,
        entries
            .iter()
            .map(|(_, v)| Some(v.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.scan(b"a", b"b", 100).await.expect("scan"), entries);
    assert!(
        server.calls("RawBatchGet") > 2,
        "{} batch gets",
        server.calls("RawBatchGet")
    );
}

/// The TLS path of `[store.tikv.tls]` against the test server run with
/// mutual TLS: the conformance suite passes with a client certificate of the
/// cluster's CA; without TLS, or with a certificate of another CA, the
/// store does not connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_store_over_mutual_tls() {
    use posbon_store::TikvTlsConfig;
    use posbon_tikv_testserver::{TestServerOptions, TestServerTls};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
    }
    fn leaf(names: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
    let cluster_ca = ca();
    let (server_cert, server_key) = leaf(&["127.0.0.1", "localhost"], &cluster_ca);
    let (client_cert, client_key) = leaf(&["posbon"], &cluster_ca);
    let stranger_ca = ca();
    let (stranger_cert, stranger_key) = leaf(&["stranger"], &stranger_ca);
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let ca_path = write("ca.pem", &cluster_ca.pem());
    let client = TikvTlsConfig {
        ca_path: ca_path.clone(),
        cert_path: write("client.pem", &client_cert),
        key_path: write("client-key.pem", &client_key),
    };
    let stranger = TikvTlsConfig {
        ca_path,
        cert_path: write("stranger.pem", &stranger_cert),
        key_path: write("stranger-key.pem", &stranger_key),
    };
    let server = TestServer::start(TestServerOptions {
        split_keys: conformance_splits(),
        tls: Some(TestServerTls {
            cert_pem: server_cert.into_bytes(),
            key_pem: server_key.into_bytes(),
            client_ca_pem: cluster_ca.pem().into_bytes(),
        }),
        ..TestServerOptions::default()
    })
    .await
    .expect("test server with tls");
    let config = |tls: Option<TikvTlsConfig>| {
        let mut config = TikvConfig::new([server.pd_endpoint()]);
        config.tls = tls;
        config.connect_timeout = Span::from_secs(2);
        config
    };
    let store = TikvStore::connect(&config(Some(client)), None)
        .await
        .expect("connects with the cluster's client certificate");
    conformance::run_all(&store).await;
    assert!(
        TikvStore::connect(&config(None), None).await.is_err(),
        "plain gRPC is refused"
    );
    assert!(
        TikvStore::connect(&config(Some(stranger)), None)
            .await
            .is_err(),
        "a certificate of another CA is refused"
    );
}
