//! The two gRPC services, `pdpb.PD` and `tikvpb.Tikv`, written out by hand:
//! each routes a method path to a synchronous handler of [`Cluster`] through
//! `tonic::server::Grpc` with tonic-prost's codec (what tonic's code
//! generator would emit, without a build script or protoc).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body as TonicBody;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

use crate::cluster::Cluster;

/// Largest message either side may send: values reach 1 MiB and batch
/// answers are not split by size, so well above tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// A one-shot unary handler as a tonic [`UnaryService`].
struct Handler<F, Req, Resp> {
    f: Option<F>,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp> UnaryService<Req> for Handler<F, Req, Resp>
where
    F: FnOnce(Req) -> Result<Resp, Status>,
{
    type Response = Resp;
    type Future = Ready<Result<tonic::Response<Resp>, Status>>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        ready(match self.f.take() {
            Some(f) => f(request.into_inner()).map(tonic::Response::new),
            None => Err(Status::internal("handler called twice")),
        })
    }
}

/// Decodes `request`, runs `f`, encodes its answer.
fn unary<B, Req, Resp, F>(
    request: http::Request<B>,
    f: F,
) -> BoxFuture<http::Response<TonicBody>, Infallible>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Req) -> Result<Resp, Status> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = Grpc::new(ProstCodec::<Resp, Req>::default())
            .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
        let handler = Handler {
            f: Some(f),
            _types: PhantomData,
        };
        Ok(grpc.unary(handler, request).await)
    })
}

/// The answer to a method this server does not serve (PD's `Tso` among
/// them: the raw API never asks for a timestamp).
fn unimplemented() -> BoxFuture<http::Response<TonicBody>, Infallible> {
    Box::pin(async move { Ok(Status::unimplemented("not served by the test server").into_http()) })
}

/// `pdpb.PD`.
#[derive(Clone)]
pub(crate) struct PdService(pub(crate) Arc<Cluster>);

impl NamedService for PdService {
    const NAME: &'static str = "pdpb.PD";
}

impl<B> Service<http::Request<B>> for PdService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let c = Arc::clone(&self.0);
        match request.uri().path() {
            "/pdpb.PD/GetMembers" => unary(request, move |r| c.get_members(r)),
            "/pdpb.PD/GetRegion" => unary(request, move |r| c.get_region(r)),
            "/pdpb.PD/GetRegionByID" => unary(request, move |r| c.get_region_by_id(r)),
            "/pdpb.PD/GetStore" => unary(request, move |r| c.get_store(r)),
            "/pdpb.PD/GetAllStores" => unary(request, move |r| c.get_all_stores(r)),
            _ => unimplemented(),
        }
    }
}

/// `tikvpb.Tikv`: the raw methods.
#[derive(Clone)]
pub(crate) struct TikvService(pub(crate) Arc<Cluster>);

impl NamedService for TikvService {
    const NAME: &'static str = "tikvpb.Tikv";
}

impl<B> Service<http::Request<B>> for TikvService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let c = Arc::clone(&self.0);
        match request.uri().path() {
            "/tikvpb.Tikv/RawGet" => unary(request, move |r| c.raw_get(r)),
            "/tikvpb.Tikv/RawBatchGet" => unary(request, move |r| c.raw_batch_get(r)),
            "/tikvpb.Tikv/RawPut" => unary(request, move |r| c.raw_put(r)),
            "/tikvpb.Tikv/RawBatchPut" => unary(request, move |r| c.raw_batch_put(r)),
            "/tikvpb.Tikv/RawCompareAndSwap" => unary(request, move |r| c.raw_cas(r)),
            "/tikvpb.Tikv/RawDelete" => unary(request, move |r| c.raw_delete(r)),
            "/tikvpb.Tikv/RawBatchDelete" => unary(request, move |r| c.raw_batch_delete(r)),
            "/tikvpb.Tikv/RawDeleteRange" => unary(request, move |r| c.raw_delete_range(r)),
            "/tikvpb.Tikv/RawScan" => unary(request, move |r| c.raw_scan(r)),
            "/tikvpb.Tikv/RawBatchScan" => unary(request, move |r| c.raw_batch_scan(r)),
            _ => unimplemented(),
        }
    }
}
