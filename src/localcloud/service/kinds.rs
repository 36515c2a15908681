//! The local cloud's half of registered kinds (`crate::kinds`): each serves its own RPCs from
//! its own table, and nothing here or in the `AppService` impl names a kind.
//!
//! # How a kind's RPCs are served
//!
//! A kind's server half implements [`LocalKind`]: the DDL of its tables
//! ([`LocalKind::tables`]) and its handlers ([`LocalKind::rpcs`]), each an [`Rpc`]: the
//! method's Viam name and a function of the store connection (a reader for [`Rpc::read`], the
//! one write transaction for [`Rpc::write`]), the calling key's [`Access`] and the request.
//! The halves are listed in `crate::kinds::LOCAL`.
//!
//! `service::Routed` sits where the generated `AppServiceServer` sat: a call to
//! `/viam.app.v1.AppService/<Method>` that a registered kind serves runs the kind's handler
//! through tonic's own unary machinery (`tonic::server::Grpc` with the prost codec: framing,
//! compression, status); every other call goes to the generated server. Both sit behind the
//! same fault layer, the same bearer-token interceptor and the same idle tracking, and a
//! kind's handler runs through the same `read` / `write` as every other handler: the caller
//! is the one the interceptor attached, the key's roles are read in the same store call, and
//! error messages are cut to 1 KiB.
//!
//! # The generated service and forgotten methods
//!
//! The generated `AppService` trait gives every method a default answer (`UNIMPLEMENTED`;
//! `build.rs`: `generate_default_stubs`), so a kind's new RPC in `app.proto` needs no method
//! in the impl. The impl still implements every other method: the integration test
//! `kinds::every_rpc_of_the_protos_is_served` calls each method `app.proto` and `robot.proto`
//! declare and fails on an `UNIMPLEMENTED` from one that no kind serves.
//!
//! # Tables
//!
//! A kind's DDL (`CREATE TABLE IF NOT EXISTS …`, rows pointing at their organization with
//! `REFERENCES orgs(id) ON DELETE CASCADE`) runs every time a store is opened, after the
//! store's own schema and migrations. So a new kind's table needs no schema-version bump (an
//! older store gains the table when opened); a change to an existing kind's table does: a
//! migration in `store::MIGRATIONS` like any other change of the schema.
//!
//! # Layering
//!
//! A kind's server half imports only the generated messages (`crate::proto`) and this module
//! (re-exported as `crate::localcloud::kind`: the store's access checks, argument checks and
//! id helpers), never the client side; the local cloud reads only the list of halves
//! (`crate::kinds::LOCAL`) from the registry.

use super::{AppService, read, write};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use tonic::server::Grpc;

pub use super::super::store::{
    Access, R, key_org, new_uuid, now_us, q, random_alnum, require, require_name, require_uuid,
};
pub use rusqlite::{Connection, OptionalExtension, Transaction, params};
pub use tonic::Status;

/// The local cloud's half of a registered kind.
pub trait LocalKind: Sync {
    /// The DDL of its tables, run on every open of a store (see the module docs).
    fn tables(&self) -> &'static str;

    /// The RPCs it serves.
    fn rpcs(&self) -> Vec<Rpc>;
}

/// A reply in the making.
type Reply = Pin<Box<dyn Future<Output = http::Response<tonic::body::Body>> + Send>>;

/// One RPC a kind serves: `AppService/<method>` and its handler.
pub struct Rpc {
    method: &'static str,
    serve: Box<dyn Fn(AppService, http::Request<tonic::body::Body>) -> Reply + Send + Sync>,
}

impl Rpc {
    /// `method`, answered by `f` on a reader connection.
    pub fn read<Req, Resp>(method: &'static str, f: fn(&Connection, &Access, Req) -> R<Resp>) -> Rpc
    where
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        Rpc::unary(
            method,
            move |app, req| async move { read(&app, req, f).await },
        )
    }

    /// `method`, answered by `f` in one write transaction (committed only if `f` succeeds).
    pub fn write<Req, Resp>(
        method: &'static str,
        f: fn(&Transaction, &Access, Req) -> R<Resp>,
    ) -> Rpc
    where
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        Rpc::unary(
            method,
            move |app, req| async move { write(&app, req, f).await },
        )
    }

    /// Answers `req` (a call of this RPC) for `app`.
    pub(super) fn serve<B>(&self, app: &AppService, req: http::Request<B>) -> Reply
    where
        B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        (self.serve)(app.clone(), req.map(tonic::body::Body::new))
    }

    fn unary<Req, Resp, F, Fut>(method: &'static str, handler: F) -> Rpc
    where
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
        F: Fn(AppService, tonic::Request<Req>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
    {
        Rpc {
            method,
            serve: Box::new(move |app, req| {
                Box::pin(async move {
                    let codec = tonic_prost::ProstCodec::<Resp, Req>::default();
                    let service = tower::service_fn(move |r| handler(app.clone(), r));
                    Grpc::new(codec).unary(service, req).await
                })
            }),
        }
    }
}

/// The path of `method` of `viam.app.v1.AppService`.
fn path(method: &str) -> String {
    format!("/viam.app.v1.AppService/{method}")
}

/// Every registered kind's RPCs, by path.
pub(super) struct Table(HashMap<String, Rpc>);

impl Table {
    /// The RPCs of `kinds`. Two kinds serving one method is a programming error.
    pub(super) fn of(kinds: &[&dyn LocalKind]) -> Table {
        let mut t = HashMap::new();
        for rpc in kinds.iter().flat_map(|k| k.rpcs()) {
            let p = path(rpc.method);
            assert!(
                t.insert(p.clone(), rpc).is_none(),
                "two registered kinds serve {p}"
            );
        }
        Table(t)
    }

    /// The RPC a kind serves at `path`, if any.
    pub(super) fn get(&self, path: &str) -> Option<&Rpc> {
        self.0.get(path)
    }

    /// The methods it serves (their Viam names).
    pub(super) fn methods(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.values().map(|r| r.method)
    }
}

/// The DDL of every registered kind's tables, in registry order.
pub(in crate::localcloud) fn tables() -> impl Iterator<Item = &'static str> {
    crate::kinds::LOCAL.iter().map(|k| k.tables())
}

/// The Viam names of the methods the registered kinds serve.
pub fn served_methods() -> Vec<&'static str> {
    let mut m: Vec<&str> = Table::of(crate::kinds::LOCAL).methods().collect();
    m.sort_unstable();
    m
}
