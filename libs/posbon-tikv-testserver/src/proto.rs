//! The protobuf messages of PD (`pdpb`, `metapb`) and TiKV (`kvrpcpb`,
//! `errorpb`) that the raw API of tikv-client 0.4 sends and reads, with the
//! field numbers of the real protocol (kvproto). Message names do not travel
//! on the wire; only tags and types matter, and unknown fields are skipped,
//! so fields the client never sets or reads are left out.

// metapb

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RegionEpoch {
    #[prost(uint64, tag = "1")]
    pub(crate) conf_ver: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) version: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Peer {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) store_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Region {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) start_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) end_key: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    pub(crate) region_epoch: Option<RegionEpoch>,
    #[prost(message, repeated, tag = "5")]
    pub(crate) peers: Vec<Peer>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Store {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    #[prost(string, tag = "2")]
    pub(crate) address: String,
    /// StoreState: Up 0, Offline 1, Tombstone 2.
    #[prost(int32, tag = "3")]
    pub(crate) state: i32,
    #[prost(string, tag = "5")]
    pub(crate) version: String,
}

// pdpb

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RequestHeader {
    #[prost(uint64, tag = "1")]
    pub(crate) cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) sender_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PdError {
    /// ErrorType: OK 0, UNKNOWN 1, NOT_BOOTSTRAPPED 2, ..., REGION_NOT_FOUND 6.
    #[prost(int32, tag = "1")]
    pub(crate) r#type: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub(crate) cluster_id: u64,
    #[prost(message, optional, tag = "2")]
    pub(crate) error: Option<PdError>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Member {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(uint64, tag = "2")]
    pub(crate) member_id: u64,
    #[prost(string, repeated, tag = "3")]
    pub(crate) peer_urls: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub(crate) client_urls: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetMembersRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<RequestHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetMembersResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) members: Vec<Member>,
    #[prost(message, optional, tag = "3")]
    pub(crate) leader: Option<Member>,
    #[prost(message, optional, tag = "4")]
    pub(crate) etcd_leader: Option<Member>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetRegionRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<RequestHeader>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) region_key: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub(crate) need_buckets: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetRegionByIdRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<RequestHeader>,
    #[prost(uint64, tag = "2")]
    pub(crate) region_id: u64,
    #[prost(bool, tag = "3")]
    pub(crate) need_buckets: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetRegionResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub(crate) region: Option<Region>,
    #[prost(message, optional, tag = "3")]
    pub(crate) leader: Option<Peer>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetStoreRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<RequestHeader>,
    #[prost(uint64, tag = "2")]
    pub(crate) store_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetStoreResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, optional, tag = "2")]
    pub(crate) store: Option<Store>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetAllStoresRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<RequestHeader>,
    #[prost(bool, tag = "2")]
    pub(crate) exclude_tombstone_stores: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetAllStoresResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) header: Option<ResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) stores: Vec<Store>,
}

// errorpb

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EpochNotMatch {
    #[prost(message, repeated, tag = "1")]
    pub(crate) current_regions: Vec<Region>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RegionNotFound {
    #[prost(uint64, tag = "1")]
    pub(crate) region_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyNotInRegion {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub(crate) region_id: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) start_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) end_key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RegionError {
    #[prost(string, tag = "1")]
    pub(crate) message: String,
    #[prost(message, optional, tag = "3")]
    pub(crate) region_not_found: Option<RegionNotFound>,
    #[prost(message, optional, tag = "4")]
    pub(crate) key_not_in_region: Option<KeyNotInRegion>,
    #[prost(message, optional, tag = "5")]
    pub(crate) epoch_not_match: Option<EpochNotMatch>,
}

// kvrpcpb

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Context {
    #[prost(uint64, tag = "1")]
    pub(crate) region_id: u64,
    #[prost(message, optional, tag = "2")]
    pub(crate) region_epoch: Option<RegionEpoch>,
    #[prost(message, optional, tag = "3")]
    pub(crate) peer: Option<Peer>,
    /// ApiVersion: V1 0, V1TTL 1, V2 2.
    #[prost(int32, tag = "21")]
    pub(crate) api_version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KvPair {
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyRange {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) start_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) end_key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawGetRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(string, tag = "3")]
    pub(crate) cf: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawGetResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) region_error: Option<RegionError>,
    #[prost(string, tag = "2")]
    pub(crate) error: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) value: Vec<u8>,
    #[prost(bool, tag = "4")]
    pub(crate) not_found: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawBatchGetRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(crate) keys: Vec<Vec<u8>>,
    #[prost(string, tag = "3")]
    pub(crate) cf: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawBatchGetResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) region_error: Option<RegionError>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) pairs: Vec<KvPair>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawPutRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) value: Vec<u8>,
    #[prost(string, tag = "4")]
    pub(crate) cf: String,
    #[prost(uint64, tag = "5")]
    pub(crate) ttl: u64,
    #[prost(bool, tag = "6")]
    pub(crate) for_cas: bool,
}

/// RawCompareAndSwap: writes `value` when the key's value is
/// `previous_value` (or, with `previous_not_exist`, when it has none).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawCasRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) value: Vec<u8>,
    #[prost(bool, tag = "4")]
    pub(crate) previous_not_exist: bool,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) previous_value: Vec<u8>,
    #[prost(string, tag = "6")]
    pub(crate) cf: String,
    #[prost(uint64, tag = "7")]
    pub(crate) ttl: u64,
}

/// The answer to RawCompareAndSwap: whether it wrote, and the value the key
/// had before either way.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawCasResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) region_error: Option<RegionError>,
    #[prost(string, tag = "2")]
    pub(crate) error: String,
    #[prost(bool, tag = "3")]
    pub(crate) succeed: bool,
    #[prost(bool, tag = "4")]
    pub(crate) previous_not_exist: bool,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) previous_value: Vec<u8>,
}

/// The answer of every raw write: RawPut, RawBatchPut, RawDelete,
/// RawBatchDelete and RawDeleteRange share this shape.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawWriteResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) region_error: Option<RegionError>,
    #[prost(string, tag = "2")]
    pub(crate) error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawBatchPutRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) pairs: Vec<KvPair>,
    #[prost(string, tag = "3")]
    pub(crate) cf: String,
    #[prost(uint64, tag = "4")]
    pub(crate) ttl: u64,
    #[prost(bool, tag = "5")]
    pub(crate) for_cas: bool,
    #[prost(uint64, repeated, tag = "6")]
    pub(crate) ttls: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawDeleteRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(string, tag = "3")]
    pub(crate) cf: String,
    #[prost(bool, tag = "4")]
    pub(crate) for_cas: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawBatchDeleteRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(crate) keys: Vec<Vec<u8>>,
    #[prost(string, tag = "3")]
    pub(crate) cf: String,
    #[prost(bool, tag = "4")]
    pub(crate) for_cas: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawDeleteRangeRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) start_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) end_key: Vec<u8>,
    #[prost(string, tag = "4")]
    pub(crate) cf: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawScanRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) start_key: Vec<u8>,
    #[prost(uint32, tag = "3")]
    pub(crate) limit: u32,
    #[prost(bool, tag = "4")]
    pub(crate) key_only: bool,
    #[prost(string, tag = "5")]
    pub(crate) cf: String,
    #[prost(bool, tag = "6")]
    pub(crate) reverse: bool,
    #[prost(bytes = "vec", tag = "7")]
    pub(crate) end_key: Vec<u8>,
}

/// The answer of RawScan and RawBatchScan.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawScanResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) region_error: Option<RegionError>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) kvs: Vec<KvPair>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawBatchScanRequest {
    #[prost(message, optional, tag = "1")]
    pub(crate) context: Option<Context>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) ranges: Vec<KeyRange>,
    #[prost(uint32, tag = "3")]
    pub(crate) each_limit: u32,
    #[prost(bool, tag = "4")]
    pub(crate) key_only: bool,
    #[prost(string, tag = "5")]
    pub(crate) cf: String,
    #[prost(bool, tag = "6")]
    pub(crate) reverse: bool,
}
