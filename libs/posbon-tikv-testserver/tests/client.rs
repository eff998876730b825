//! tikv-client 0.4's raw API against the test server: every call the
//! backend uses, across region boundaries, with region errors and splits,
//! and the client's `scan` defect at the last region.

use posbon_tikv_testserver::{TestServer, TestServerOptions};
use tikv_client::{Config, KvPair, RawClient};

async fn start(splits: &[&[u8]]) -> (TestServer, RawClient) {
    let server = TestServer::start(TestServerOptions {
        split_keys: splits.iter().map(|k| k.to_vec()).collect(),
        ..TestServerOptions::default()
    })
    .await
    .expect("test server starts");
    let client = RawClient::new_with_config(vec![server.pd_endpoint()], Config::default())
        .await
        .expect("client connects");
    (server, client)
}

fn keys(pairs: &[KvPair]) -> Vec<Vec<u8>> {
    pairs.iter().map(|p| Vec::from(p.key().clone())).collect()
}

#[tokio::test]
async fn raw_calls_work_across_regions() {
    let (server, client) = start(&[b"e", b"i", b"t"]).await;
    assert_eq!(server.regions().len(), 4);
    // One batch over all four regions, larger than one 16 KiB request.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..400u32)
        .flat_map(|i| {
            [b'a', b'f', b'k', b'x'].map(|p| ([&[p][..], &i.to_be_bytes()].concat(), vec![p; 100]))
        })
        .collect();
    client.batch_put(pairs.clone()).await.expect("batch put");
    assert_eq!(server.len(), 1600);
    assert!(
        server.calls("RawBatchPut") >= 8,
        "split by region and by size"
    );
    assert_eq!(
        client.get(b"f\0\0\0\x05".to_vec()).await.expect("get"),
        Some(vec![b'f'; 100])
    );
    assert_eq!(client.get(b"g".to_vec()).await.expect("get"), None);
    client.put(b"g".to_vec(), Vec::new()).await.expect("put");
    assert_eq!(
        client.get(b"g".to_vec()).await.expect("get"),
        Some(Vec::new())
    );
    let got = client
        .batch_get(vec![
            b"x\0\0\0\x01".to_vec(),
            b"nope".to_vec(),
            b"a\0\0\0\x02".to_vec(),
        ])
        .await
        .expect("batch get");
    let mut found = keys(&got);
    found.sort();
    assert_eq!(
        found,
        vec![b"a\0\0\0\x02".to_vec(), b"x\0\0\0\x01".to_vec()]
    );
    // batch_scan splits a range at region boundaries; each_limit counts per
    // region.
    let scanned = client
        .batch_scan(vec![b"a".to_vec()..b"y".to_vec()], 3)
        .await
        .expect("batch scan");
    assert_eq!(scanned.len(), 4 * 3);
    let scanned = keys(&scanned);
    assert!(scanned.windows(2).all(|w| w[0] < w[1]), "region order");
    // delete_range over three regions.
    client
        .delete_range(b"a\0\0\x01\0".to_vec()..b"x\0\0\0\x10".to_vec())
        .await
        .expect("delete range");
    // Left: a with i < 256, x with i >= 16 ("g" was in the range too).
    assert_eq!(server.len(), 256 + 400 - 16);
    client
        .batch_delete(vec![b"g".to_vec(), b"x\0\0\x01\x00".to_vec()])
        .await
        .expect("batch delete");
    client.delete(b"a\0\0\0\0".to_vec()).await.expect("delete");
    assert_eq!(server.len(), 256 + 400 - 16 - 2);
    assert_eq!(
        client.get(b"x\0\0\x01\x00".to_vec()).await.expect("get"),
        None
    );
}

#[tokio::test]
async fn epoch_errors_and_splits_are_retried() {
    let (server, client) = start(&[b"m", b"p"]).await;
    client.put(b"a".to_vec(), b"1".to_vec()).await.expect("put");
    let lookups = server.calls("GetRegion");
    server.inject_epoch_not_match(1);
    assert_eq!(
        client.get(b"a".to_vec()).await.expect("get"),
        Some(b"1".to_vec())
    );
    assert_eq!(server.region_errors(), 1);
    assert!(
        server.calls("GetRegion") > lookups,
        "the region was fetched again"
    );
    // A split behind the client's back: the cached region is stale.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (b'a'..=b'z').map(|c| (vec![c], vec![c])).collect();
    client.batch_put(pairs.clone()).await.expect("put");
    assert!(server.split(b"f"));
    let errors = server.region_errors();
    let got = client
        .batch_get(pairs.iter().map(|(k, _)| k.clone()))
        .await
        .expect("batch get after split");
    assert_eq!(got.len(), 26);
    assert!(
        server.region_errors() > errors,
        "the stale epoch was refused"
    );
    assert_eq!(server.regions().len(), 4);
}

/// The defect the backend works around: a bounded `scan` that reaches the
/// last region (empty end key) without filling its limit starts over from
/// the beginning of the key space.
#[tokio::test]
async fn client_scan_restarts_at_the_last_region() {
    let (_server, client) = start(&[b"e", b"i", b"t"]).await;
    for key in [&b"a"[..], b"u", b"v"] {
        client.put(key.to_vec(), key.to_vec()).await.expect("put");
    }
    let scanned = client
        .scan(b"u".to_vec()..b"w".to_vec(), 7)
        .await
        .expect("scan");
    // Correct would be [u, v]; the client wraps to "" and repeats.
    assert_eq!(
        keys(&scanned),
        vec![
            b"u".to_vec(),
            b"v".to_vec(),
            b"a".to_vec(),
            b"u".to_vec(),
            b"v".to_vec(),
            b"a".to_vec(),
            b"u".to_vec()
        ]
    );
    // An unbounded end reads only the region of the start key.
    let scanned = client.scan(b"a".to_vec().., 10).await.expect("scan");
    assert_eq!(keys(&scanned), vec![b"a".to_vec()]);
    // batch_scan of one range, first n kept, is right.
    let scanned = client
        .batch_scan(vec![b"u".to_vec()..b"w".to_vec()], 7)
        .await
        .expect("batch scan");
    assert_eq!(keys(&scanned), vec![b"u".to_vec(), b"v".to_vec()]);
}

#[tokio::test]
async fn unreachable_pd_fails_fast() {
    let server = TestServer::start(TestServerOptions::default())
        .await
        .expect("starts");
    let endpoint = server.pd_endpoint();
    server.stop().await;
    let error = RawClient::new(vec![endpoint])
        .await
        .err()
        .expect("no pd there");
    assert!(
        error.to_string().contains("PD cluster failed to respond"),
        "{error}"
    );
}
