//! The state behind both services: an ordered map of raw keys, the region
//! layout with epochs, and the PD and TiKV handlers over them.
//!
//! One file (884 lines, 118 of them tests) because the PD and TiKV handlers read and change
//! one private `State` (data, region layout, epochs, injected failures) under one lock, and
//! the region errors TiKV answers with must agree with the layout PD reports.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use tonic::Status;

use crate::proto::{self, Context, RegionError};

/// The id of the one store; every region's leader lives on it.
const STORE_ID: u64 = 1;
/// The cluster id PD reports.
const CLUSTER_ID: u64 = 0x706f_7362_6f6e; // "posbon"
/// The most rows one RawScan or RawBatchScan range may ask for (TiKV's and
/// the client's limit).
const MAX_SCAN_LIMIT: u32 = 10_240;

/// One region of the layout, as [`crate::TestServer::regions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region id.
    pub id: u64,
    /// First key of the region (inclusive); empty for the first region.
    pub start: Vec<u8>,
    /// End of the region (exclusive); empty for the last region.
    pub end: Vec<u8>,
    /// The epoch's version, raised by every split and injected epoch error.
    pub version: u64,
}

impl RegionInfo {
    fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    fn to_proto(&self) -> proto::Region {
        proto::Region {
            id: self.id,
            start_key: self.start.clone(),
            end_key: self.end.clone(),
            region_epoch: Some(proto::RegionEpoch {
                conf_ver: 1,
                version: self.version,
            }),
            peers: vec![leader(self.id)],
        }
    }

    /// `[lower, upper)` cut to the region; `None` for no upper bound.
    fn clamp(&self, lower: &[u8], upper: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let lower = lower.max(self.start.as_slice()).to_vec();
        let upper = match (upper.is_empty(), self.end.is_empty()) {
            (true, true) => None,
            (true, false) => Some(self.end.clone()),
            (false, true) => Some(upper.to_vec()),
            (false, false) => Some(upper.min(self.end.as_slice()).to_vec()),
        };
        (lower, upper)
    }
}

/// The leader peer of a region: one peer per region, on the one store.
fn leader(region_id: u64) -> proto::Peer {
    proto::Peer {
        id: region_id * 1000 + STORE_ID,
        store_id: STORE_ID,
    }
}

/// A PD response header, with an error when `error` is set.
fn header(error: Option<String>) -> Option<proto::ResponseHeader> {
    Some(proto::ResponseHeader {
        cluster_id: CLUSTER_ID,
        error: error.map(|message| proto::PdError {
            // REGION_NOT_FOUND for missing regions, UNKNOWN otherwise: the
            // client treats both as a failed call.
            r#type: 1,
            message,
        }),
    })
}

/// The key-value state and the layout, behind one lock.
pub(crate) struct Cluster {
    /// `host:port` of this server, for PD's member and store addresses.
    address: String,
    state: Mutex<State>,
}

struct State {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Sorted by start key, covering the key space without gaps.
    regions: Vec<RegionInfo>,
    next_region_id: u64,
    /// TiKV requests still to be answered with `epoch_not_match`.
    inject_epoch_errors: u32,
    calls: HashMap<&'static str, u64>,
    region_errors: u64,
    /// Writes touching a key under this prefix fail.
    fail_writes_under: Option<Vec<u8>>,
}

impl State {
    fn region_of(&self, key: &[u8]) -> Option<&RegionInfo> {
        self.regions.iter().find(|r| r.contains(key))
    }

    /// The region a TiKV request is addressed to, after the checks TiKV
    /// makes: the region exists, the epoch is current, and every key is in
    /// it. An injected error is served here too.
    fn check(
        &mut self,
        context: Option<&Context>,
        keys: &[&[u8]],
    ) -> Result<RegionInfo, Box<RegionError>> {
        let result = self.check_inner(context, keys);
        if result.is_err() {
            self.region_errors += 1;
        }
        result
    }

    fn check_inner(
        &mut self,
        context: Option<&Context>,
        keys: &[&[u8]],
    ) -> Result<RegionInfo, Box<RegionError>> {
        let context = context.cloned().unwrap_or_default();
        let Some(at) = self.regions.iter().position(|r| r.id == context.region_id) else {
            return Err(Box::new(RegionError {
                message: format!("region {} not found", context.region_id),
                region_not_found: Some(proto::RegionNotFound {
                    region_id: context.region_id,
                }),
                ..RegionError::default()
            }));
        };
        let epoch = context.region_epoch.unwrap_or_default();
        if self.inject_epoch_errors > 0 && epoch.version == self.regions[at].version {
            // As if the region had just changed (a split that kept this
            // range): the client must ask PD again and resend.
            self.regions[at].version += 1;
            self.inject_epoch_errors -= 1;
        }
        let region = self.regions[at].clone();
        if epoch.version != region.version || epoch.conf_ver != 1 {
            return Err(Box::new(RegionError {
                message: format!(
                    "epoch not match: region {} is at version {}, request has {}",
                    region.id, region.version, epoch.version
                ),
                epoch_not_match: Some(proto::EpochNotMatch {
                    current_regions: vec![region.to_proto()],
                }),
                ..RegionError::default()
            }));
        }
        if let Some(key) = keys.iter().find(|k| !region.contains(k)) {
            return Err(Box::new(RegionError {
                message: format!("key is not in region {}", region.id),
                key_not_in_region: Some(proto::KeyNotInRegion {
                    key: key.to_vec(),
                    region_id: region.id,
                    start_key: region.start.clone(),
                    end_key: region.end.clone(),
                }),
                ..RegionError::default()
            }));
        }
        Ok(region)
    }

    /// Up to `limit` pairs of `[lower, upper)` (no upper bound for `None`),
    /// ascending or descending.
    fn range(
        &self,
        lower: &[u8],
        upper: Option<&[u8]>,
        limit: u32,
        key_only: bool,
        reverse: bool,
    ) -> Vec<proto::KvPair> {
        if upper.is_some_and(|u| u <= lower) {
            return Vec::new();
        }
        let bounds = (
            Bound::Included(lower),
            upper.map_or(Bound::Unbounded, Bound::Excluded),
        );
        let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| proto::KvPair {
            key: k.clone(),
            value: if key_only { Vec::new() } else { v.clone() },
        };
        let range = self.data.range::<[u8], _>(bounds);
        let limit = limit as usize;
        if reverse {
            range.rev().take(limit).map(pair).collect()
        } else {
            range.take(limit).map(pair).collect()
        }
    }
}

/// Only the default column family exists.
fn check_cf(cf: &str) -> Result<(), Status> {
    if cf.is_empty() || cf == "default" {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "column family {cf:?} is not served by the test server (only default)"
        )))
    }
}

impl Cluster {
    /// A cluster whose regions are split at `split_keys` (sorted, empty and
    /// repeated keys ignored), served at `address`.
    pub(crate) fn new(address: String, split_keys: &[Vec<u8>]) -> Self {
        let mut keys: Vec<Vec<u8>> = split_keys
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        let mut regions = Vec::with_capacity(keys.len() + 1);
        let mut start = Vec::new();
        for (n, key) in keys
            .into_iter()
            .chain(std::iter::once(Vec::new()))
            .enumerate()
        {
            regions.push(RegionInfo {
                id: n as u64 + 2,
                start: std::mem::replace(&mut start, key.clone()),
                end: key,
                version: 1,
            });
        }
        let next_region_id = regions.len() as u64 + 2;
        Cluster {
            address,
            state: Mutex::new(State {
                data: BTreeMap::new(),
                regions,
                next_region_id,
                inject_epoch_errors: 0,
                calls: HashMap::new(),
                region_errors: 0,
                fail_writes_under: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every
        // handler writes at its end), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, method: &'static str) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.lock();
        *state.calls.entry(method).or_default() += 1;
        state
    }

    pub(crate) fn regions(&self) -> Vec<RegionInfo> {
        self.lock().regions.clone()
    }

    pub(crate) fn calls(&self, method: &str) -> u64 {
        self.lock().calls.get(method).copied().unwrap_or(0)
    }

    pub(crate) fn region_errors(&self) -> u64 {
        self.lock().region_errors
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().data.len()
    }

    pub(crate) fn fail_writes_under(&self, prefix: Option<Vec<u8>>) {
        self.lock().fail_writes_under = prefix;
    }

    pub(crate) fn inject_epoch_not_match(&self, count: u32) {
        self.lock().inject_epoch_errors += count;
    }

    /// Splits the region holding `key` at `key`; false when `key` already
    /// starts a region (or is empty).
    pub(crate) fn split(&self, key: &[u8]) -> bool {
        let mut state = self.lock();
        let id = state.next_region_id;
        let Some(at) = state.regions.iter().position(|r| r.contains(key)) else {
            return false;
        };
        if key.is_empty() || state.regions[at].start == key {
            return false;
        }
        state.next_region_id += 1;
        let old = &mut state.regions[at];
        old.version += 1;
        let upper = RegionInfo {
            id,
            start: key.to_vec(),
            end: std::mem::replace(&mut old.end, key.to_vec()),
            version: old.version,
        };
        state.regions.insert(at + 1, upper);
        true
    }

    // PD

    pub(crate) fn get_members(
        &self,
        _request: proto::GetMembersRequest,
    ) -> Result<proto::GetMembersResponse, Status> {
        let _state = self.count("GetMembers");
        let member = proto::Member {
            name: "posbon-tikv-testserver".into(),
            member_id: 1,
            peer_urls: vec![format!("http://{}", self.address)],
            client_urls: vec![format!("http://{}", self.address)],
        };
        Ok(proto::GetMembersResponse {
            header: header(None),
            members: vec![member.clone()],
            leader: Some(member.clone()),
            etcd_leader: Some(member),
        })
    }

    fn region_response(region: Option<&RegionInfo>, what: String) -> proto::GetRegionResponse {
        match region {
            Some(region) => proto::GetRegionResponse {
                header: header(None),
                region: Some(region.to_proto()),
                leader: Some(leader(region.id)),
            },
            None => proto::GetRegionResponse {
                header: header(Some(format!("{what} not found"))),
                region: None,
                leader: None,
            },
        }
    }

    pub(crate) fn get_region(
        &self,
        request: proto::GetRegionRequest,
    ) -> Result<proto::GetRegionResponse, Status> {
        let state = self.count("GetRegion");
        let region = state.region_of(&request.region_key);
        Ok(Self::region_response(region, "region for key".into()))
    }

    pub(crate) fn get_region_by_id(
        &self,
        request: proto::GetRegionByIdRequest,
    ) -> Result<proto::GetRegionResponse, Status> {
        let state = self.count("GetRegionByID");
        let region = state.regions.iter().find(|r| r.id == request.region_id);
        Ok(Self::region_response(
            region,
            format!("region {}", request.region_id),
        ))
    }

    fn store(&self) -> proto::Store {
        proto::Store {
            id: STORE_ID,
            address: self.address.clone(),
            state: 0,
            version: "8.5.0".into(),
        }
    }

    pub(crate) fn get_store(
        &self,
        request: proto::GetStoreRequest,
    ) -> Result<proto::GetStoreResponse, Status> {
        let _state = self.count("GetStore");
        if request.store_id == STORE_ID {
            Ok(proto::GetStoreResponse {
                header: header(None),
                store: Some(self.store()),
            })
        } else {
            // The client unwraps `store`; answer with an error header and an
            // empty store rather than none, so a wrong id fails cleanly.
            Ok(proto::GetStoreResponse {
                header: header(Some(format!("store {} not found", request.store_id))),
                store: Some(proto::Store::default()),
            })
        }
    }

    pub(crate) fn get_all_stores(
        &self,
        _request: proto::GetAllStoresRequest,
    ) -> Result<proto::GetAllStoresResponse, Status> {
        let _state = self.count("GetAllStores");
        Ok(proto::GetAllStoresResponse {
            header: header(None),
            stores: vec![self.store()],
        })
    }

    // TiKV

    pub(crate) fn raw_get(
        &self,
        request: proto::RawGetRequest,
    ) -> Result<proto::RawGetResponse, Status> {
        check_cf(&request.cf)?;
        let mut state = self.count("RawGet");
        if let Err(e) = state.check(request.context.as_ref(), &[&request.key]) {
            return Ok(proto::RawGetResponse {
                region_error: Some(*e),
                ..Default::default()
            });
        }
        Ok(match state.data.get(&request.key) {
            Some(value) => proto::RawGetResponse {
                value: value.clone(),
                ..Default::default()
            },
            None => proto::RawGetResponse {
                not_found: true,
                ..Default::default()
            },
        })
    }

    pub(crate) fn raw_batch_get(
        &self,
        request: proto::RawBatchGetRequest,
    ) -> Result<proto::RawBatchGetResponse, Status> {
        check_cf(&request.cf)?;
        let mut state = self.count("RawBatchGet");
        let keys: Vec<&[u8]> = request.keys.iter().map(Vec::as_slice).collect();
        if let Err(e) = state.check(request.context.as_ref(), &keys) {
            return Ok(proto::RawBatchGetResponse {
                region_error: Some(*e),
                pairs: Vec::new(),
            });
        }
        // Only keys that exist, in the order asked.
        let pairs = request
            .keys
            .into_iter()
            .filter_map(|key| {
                let value = state.data.get(&key)?.clone();
                Some(proto::KvPair { key, value })
            })
            .collect();
        Ok(proto::RawBatchGetResponse {
            region_error: None,
            pairs,
        })
    }

    fn write(
        &self,
        method: &'static str,
        context: Option<&Context>,
        cf: &str,
        keys: &[&[u8]],
        apply: impl FnOnce(&mut State, &RegionInfo),
    ) -> Result<proto::RawWriteResponse, Status> {
        check_cf(cf)?;
        let mut state = self.count(method);
        if let Some(prefix) = &state.fail_writes_under
            && keys.iter().any(|k| k.starts_with(prefix))
        {
            return Ok(proto::RawWriteResponse {
                region_error: None,
                error: format!("injected failure of writes under {prefix:?}"),
            });
        }
        match state.check(context, keys) {
            Err(e) => Ok(proto::RawWriteResponse {
                region_error: Some(*e),
                error: String::new(),
            }),
            Ok(region) => {
                apply(&mut state, &region);
                Ok(proto::RawWriteResponse::default())
            }
        }
    }

    pub(crate) fn raw_put(
        &self,
        request: proto::RawPutRequest,
    ) -> Result<proto::RawWriteResponse, Status> {
        if request.key.is_empty() {
            return Ok(proto::RawWriteResponse {
                region_error: None,
                error: "key cannot be empty".into(),
            });
        }
        let proto::RawPutRequest {
            context,
            key,
            value,
            cf,
            ..
        } = request;
        self.write(
            "RawPut",
            context.as_ref(),
            &cf,
            &[&key.clone()],
            |state, _| {
                state.data.insert(key, value);
            },
        )
    }

    pub(crate) fn raw_batch_put(
        &self,
        request: proto::RawBatchPutRequest,
    ) -> Result<proto::RawWriteResponse, Status> {
        if request.pairs.iter().any(|p| p.key.is_empty()) {
            return Ok(proto::RawWriteResponse {
                region_error: None,
                error: "key cannot be empty".into(),
            });
        }
        let keys: Vec<Vec<u8>> = request.pairs.iter().map(|p| p.key.clone()).collect();
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let pairs = request.pairs;
        self.write(
            "RawBatchPut",
            request.context.as_ref(),
            &request.cf,
            &keys,
            |state, _| {
                for pair in pairs {
                    state.data.insert(pair.key, pair.value);
                }
            },
        )
    }

    /// RawCompareAndSwap, atomic under the cluster's lock as TiKV's is under
    /// its latch.
    pub(crate) fn raw_cas(
        &self,
        request: proto::RawCasRequest,
    ) -> Result<proto::RawCasResponse, Status> {
        check_cf(&request.cf)?;
        if request.key.is_empty() {
            return Ok(proto::RawCasResponse {
                error: "key cannot be empty".into(),
                ..Default::default()
            });
        }
        let mut state = self.count("RawCompareAndSwap");
        if let Some(prefix) = &state.fail_writes_under
            && request.key.starts_with(prefix)
        {
            return Ok(proto::RawCasResponse {
                error: format!("injected failure of writes under {prefix:?}"),
                ..Default::default()
            });
        }
        if let Err(e) = state.check(request.context.as_ref(), &[&request.key]) {
            return Ok(proto::RawCasResponse {
                region_error: Some(*e),
                ..Default::default()
            });
        }
        let previous = state.data.get(&request.key).cloned();
        let succeed = match &previous {
            None => request.previous_not_exist,
            Some(value) => !request.previous_not_exist && *value == request.previous_value,
        };
        if succeed {
            state.data.insert(request.key, request.value);
        }
        Ok(proto::RawCasResponse {
            region_error: None,
            error: String::new(),
            succeed,
            previous_not_exist: previous.is_none(),
            previous_value: previous.unwrap_or_default(),
        })
    }

    pub(crate) fn raw_delete(
        &self,
        request: proto::RawDeleteRequest,
    ) -> Result<proto::RawWriteResponse, Status> {
        let key = request.key;
        self.write(
            "RawDelete",
            request.context.as_ref(),
            &request.cf,
            &[&key.clone()],
            |state, _| {
                state.data.remove(&key);
            },
        )
    }

    pub(crate) fn raw_batch_delete(
        &self,
        request: proto::RawBatchDeleteRequest,
    ) -> Result<proto::RawWriteResponse, Status> {
        let keys: Vec<&[u8]> = request.keys.iter().map(Vec::as_slice).collect();
        self.write(
            "RawBatchDelete",
            request.context.as_ref(),
            &request.cf,
            &keys,
            |state, _| {
                for key in &request.keys {
                    state.data.remove(key);
                }
            },
        )
    }

    pub(crate) fn raw_delete_range(
        &self,
        request: proto::RawDeleteRangeRequest,
    ) -> Result<proto::RawWriteResponse, Status> {
        let (start, end) = (request.start_key, request.end_key);
        self.write(
            "RawDeleteRange",
            request.context.as_ref(),
            &request.cf,
            &[&start.clone()],
            |state, region| {
                let (lower, upper) = region.clamp(&start, &end);
                let doomed: Vec<Vec<u8>> = state
                    .range(&lower, upper.as_deref(), u32::MAX, true, false)
                    .into_iter()
                    .map(|p| p.key)
                    .collect();
                for key in doomed {
                    state.data.remove(&key);
                }
            },
        )
    }

    pub(crate) fn raw_scan(
        &self,
        request: proto::RawScanRequest,
    ) -> Result<proto::RawScanResponse, Status> {
        check_cf(&request.cf)?;
        if request.limit > MAX_SCAN_LIMIT {
            return Err(Status::invalid_argument(format!(
                "scan limit {} is above {MAX_SCAN_LIMIT}",
                request.limit
            )));
        }
        let mut state = self.count("RawScan");
        // Forward: [start_key, end_key). Reverse: start_key is the exclusive
        // upper bound and end_key the inclusive lower bound. Either way the
        // scan stops at the region's edge, as TiKV's does.
        let region = if request.reverse {
            state.check(request.context.as_ref(), &[])
        } else {
            state.check(request.context.as_ref(), &[&request.start_key])
        };
        let region = match region {
            Ok(region) => region,
            Err(e) => {
                return Ok(proto::RawScanResponse {
                    region_error: Some(*e),
                    kvs: Vec::new(),
                });
            }
        };
        let kvs = if request.reverse {
            let (lower, upper) = region.clamp(&request.end_key, &request.start_key);
            state.range(
                &lower,
                upper.as_deref(),
                request.limit,
                request.key_only,
                true,
            )
        } else {
            let (lower, upper) = region.clamp(&request.start_key, &request.end_key);
            state.range(
                &lower,
                upper.as_deref(),
                request.limit,
                request.key_only,
                false,
            )
        };
        Ok(proto::RawScanResponse {
            region_error: None,
            kvs,
        })
    }

    pub(crate) fn raw_batch_scan(
        &self,
        request: proto::RawBatchScanRequest,
    ) -> Result<proto::RawScanResponse, Status> {
        check_cf(&request.cf)?;
        if request.reverse {
            return Err(Status::unimplemented(
                "reverse batch scan is not served by the test server",
            ));
        }
        if request.each_limit > MAX_SCAN_LIMIT {
            return Err(Status::invalid_argument(format!(
                "scan limit {} is above {MAX_SCAN_LIMIT}",
                request.each_limit
            )));
        }
        let mut state = self.count("RawBatchScan");
        // Empty pieces (start == end, e.g. a range cut exactly at this
        // region's end) hold nothing and need not lie in the region.
        let starts: Vec<&[u8]> = request
            .ranges
            .iter()
            .filter(|r| r.end_key.is_empty() || r.start_key < r.end_key)
            .map(|r| r.start_key.as_slice())
            .collect();
        let region = match state.check(request.context.as_ref(), &starts) {
            Ok(region) => region,
            Err(e) => {
                return Ok(proto::RawScanResponse {
                    region_error: Some(*e),
                    kvs: Vec::new(),
                });
            }
        };
        let mut kvs = Vec::new();
        for range in &request.ranges {
            let (lower, upper) = region.clamp(&range.start_key, &range.end_key);
            kvs.extend(state.range(
                &lower,
                upper.as_deref(),
                request.each_limit,
                request.key_only,
                false,
            ));
        }
        Ok(proto::RawScanResponse {
            region_error: None,
            kvs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(region: &RegionInfo) -> Option<Context> {
        Some(Context {
            region_id: region.id,
            region_epoch: Some(proto::RegionEpoch {
                conf_ver: 1,
                version: region.version,
            }),
            peer: Some(leader(region.id)),
            api_version: 0,
        })
    }

    #[test]
    fn layout_covers_the_key_space() {
        let cluster = Cluster::new("x:1".into(), &[b"m".to_vec(), b"c".to_vec(), b"m".to_vec()]);
        let regions = cluster.regions();
        let bounds: Vec<(&[u8], &[u8])> = regions
            .iter()
            .map(|r| (r.start.as_slice(), r.end.as_slice()))
            .collect();
        assert_eq!(
            bounds,
            vec![(&b""[..], &b"c"[..]), (b"c", b"m"), (b"m", b"")]
        );
        assert!(cluster.split(b"f"));
        assert!(!cluster.split(b"f"), "already a boundary");
        let regions = cluster.regions();
        assert_eq!(regions.len(), 4);
        assert_eq!(
            (regions[1].end.as_slice(), regions[1].version),
            (&b"f"[..], 2)
        );
        assert_eq!(
            (regions[2].start.as_slice(), regions[2].version),
            (&b"f"[..], 2)
        );
    }

    #[test]
    fn stale_epochs_and_foreign_keys_are_region_errors() {
        let cluster = Cluster::new("x:1".into(), &[b"m".to_vec()]);
        let first = cluster.regions()[0].clone();
        let put = |key: &[u8], ctx| proto::RawPutRequest {
            context: ctx,
            key: key.to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let ok = cluster.raw_put(put(b"a", context(&first))).expect("put");
        assert!(ok.region_error.is_none() && ok.error.is_empty());
        let foreign = cluster.raw_put(put(b"z", context(&first))).expect("put");
        assert!(
            foreign
                .region_error
                .expect("error")
                .key_not_in_region
                .is_some()
        );
        cluster.inject_epoch_not_match(1);
        let stale = cluster.raw_put(put(b"b", context(&first))).expect("put");
        assert!(stale.region_error.expect("error").epoch_not_match.is_some());
        let fresh = cluster.regions()[0].clone();
        assert_eq!(fresh.version, first.version + 1);
        let ok = cluster.raw_put(put(b"b", context(&fresh))).expect("put");
        assert!(ok.region_error.is_none());
        assert_eq!(cluster.region_errors(), 2);
        assert_eq!(cluster.len(), 2);
    }

    #[test]
    fn scans_stop_at_the_region_edge() {
        let cluster = Cluster::new("x:1".into(), &[b"m".to_vec()]);
        let regions = cluster.regions();
        for key in [&b"a"[..], b"b", b"l"] {
            let response = cluster
                .raw_put(proto::RawPutRequest {
                    context: context(&regions[0]),
                    key: key.to_vec(),
                    ..Default::default()
                })
                .expect("put");
            assert!(response.region_error.is_none());
        }
        cluster
            .raw_put(proto::RawPutRequest {
                context: context(&regions[1]),
                key: b"n".to_vec(),
                ..Default::default()
            })
            .expect("put");
        let scan = |start: &[u8], end: &[u8], reverse| {
            cluster
                .raw_scan(proto::RawScanRequest {
                    context: context(&regions[0]),
                    start_key: start.to_vec(),
                    end_key: end.to_vec(),
                    limit: 10,
                    reverse,
                    ..Default::default()
                })
                .expect("scan")
                .kvs
                .into_iter()
                .map(|p| p.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            scan(b"a", b"", false),
            vec![b"a".to_vec(), b"b".to_vec(), b"l".to_vec()]
        );
        assert_eq!(scan(b"b", b"z", false), vec![b"b".to_vec(), b"l".to_vec()]);
        assert_eq!(scan(b"l", b"a", true), vec![b"b".to_vec(), b"a".to_vec()]);
    }
}
