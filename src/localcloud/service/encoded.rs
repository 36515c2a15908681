//! `GetRobotParts` answered from prepared bytes: the one read a plan makes per machine.
//!
//! Each part's config is stored twice when written: as the JSON text (served byte for byte as
//! `robot_config_json`) and as its `google.protobuf.Struct`, encoded (`config_pb`, see
//! `store::parts`). The generated handler would turn every stored config into a `Struct` tree
//! per read (JSON parse, conversion, encoding); here a read is the queries and a copy of those
//! bytes into the reply. [`Routed`] sends the calls of that one method to [`GetParts`] and all
//! others to the generated `AppServiceServer`; both sit behind the same authentication
//! interceptor and fault layer, so callers see the same service.

use super::kinds::Table;
use super::{AppService, Res, pb, read};
use crate::localcloud::store;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::{Body, Bytes, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};

/// The path of the method answered here.
const GET_ROBOT_PARTS: &str = "/viam.app.v1.AppService/GetRobotParts";

/// `viam.app.v1.GetRobotPartsResponse` with each `RobotPart` already encoded (a repeated
/// message field and a repeated `bytes` field of the same tag are the same on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRobotPartsEncoded {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub parts: Vec<Vec<u8>>,
}

/// `GetRobotParts`, as the generated handler answers it but from the stored encodings.
pub(super) async fn get_robot_parts(
    svc: &AppService,
    req: tonic::Request<pb::GetRobotPartsRequest>,
) -> Res<GetRobotPartsEncoded> {
    read(svc, req, |db, who, r| {
        let robot = store::robot_readable(db, who, "robot_id", &r.robot_id)?;
        Ok(GetRobotPartsEncoded {
            parts: store::parts_of_encoded(db, &robot.id)?,
        })
    })
    .await
}

/// The unary service of [`get_robot_parts`].
struct GetParts(AppService);

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl UnaryService<pb::GetRobotPartsRequest> for GetParts {
    type Response = GetRobotPartsEncoded;
    type Future = BoxFuture<tonic::Response<GetRobotPartsEncoded>, tonic::Status>;

    fn call(&mut self, req: tonic::Request<pb::GetRobotPartsRequest>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move { get_robot_parts(&svc, req).await })
    }
}

/// The AppService: `GetRobotParts` from [`get_robot_parts`], the registered kinds' RPCs from
/// their handlers (`super::kinds`), every other method from `inner` (the generated server).
#[derive(Clone)]
pub struct Routed<S> {
    inner: S,
    app: AppService,
    kinds: Arc<Table>,
}

impl<S> Routed<S> {
    /// `inner` (the generated server of `app`) with the registered kinds in front.
    pub fn new(inner: S, app: AppService) -> Self {
        Routed {
            inner,
            app,
            kinds: Arc::new(Table::of(crate::kinds::LOCAL)),
        }
    }
}

impl<S: NamedService> NamedService for Routed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Routed<S>
where
    S: tower::Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == GET_ROBOT_PARTS {
            let method = GetParts(self.app.clone());
            return Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<GetRobotPartsEncoded, pb::GetRobotPartsRequest>::default();
                Ok(Grpc::new(codec).unary(method, req).await)
            });
        }
        if let Some(rpc) = self.kinds.get(req.uri().path()) {
            let reply = rpc.serve(&self.app, req);
            return Box::pin(async move { Ok(reply.await) });
        }
        // Take the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(req).await })
    }
}
