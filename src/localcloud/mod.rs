//! The embedded local cloud: a Viam-compatible gRPC server over a SQLite store.
//!
//! It serves `proto.rpc.v1.AuthService/Authenticate`, `viam.app.v1.AppService` (the fleet
//! management RPCs fleetform and the official SDKs use) and `viam.app.v1.RobotService/Log`, with
//! the same package, service and method names and field numbers as Viam's cloud, so the official
//! Python SDK works against it unchanged. It binds loopback unless told otherwise, requires a
//! bearer token on every app call, and can inject latency and faults ([`Faults`]).
//!
//! This module imports only generated code and the crate's error-free helpers; it never uses
//! the client side (`crate::cloud`), so a bug in one cannot hide a bug in the other. The one
//! thing it reads from the kinds registry is `crate::kinds::LOCAL`, the list of registered
//! kinds' local halves, which in turn import only generated code and [`kind`] (the API this
//! module gives them: see its docs for how their RPCs are routed and their tables created).
//!
//! Decisions where Viam's behaviour is undocumented (see the service module for each):
//! duplicate location and fragment names are allowed; part names are unique per location;
//! the main part can never be deleted (mark another part main first, or delete the machine);
//! the last location secret cannot be deleted; a fragment used by parts cannot be deleted;
//! empty `name`/`location` in `UpdateRobot` and an empty `name` in `UpdateLocation` mean
//! "unchanged".
//!
//! Configs, fragments and organizations:
//!
//! - **Configs as written.** `robot_config_json` / `fragment_config_json` are stored as sent and
//!   served back byte for byte (key order, `8` vs `8.0`, whitespace); a write carrying only the
//!   `Struct` is stored as its JSON. Reads fill both the `Struct` and the JSON text.
//! - **Fragment revisions.** A fragment is revision `1` when created; every `UpdateFragment`
//!   (even a rename) makes the next revision, keeps the old one, and appends a history entry.
//!   `UpdateFragment` honours `last_known_update` like `UpdateRobotPart` (`FAILED_PRECONDITION`).
//! - **Versions and tags.** A version is a tag name or a revision number. `GetFragment` with a
//!   version serves that revision's name, config and visibility. `SetFragmentTag` creates or
//!   moves a tag to an existing revision; tag names cannot be numbers. Part configs and default
//!   fragments may name any version: it is stored, never resolved.
//! - **History.** `GetFragmentHistory` pages newest first (10 per page by default, as the SDK);
//!   each entry's `old` is the fragment before the edit, `revision` and `config` what the edit
//!   made.
//! - **Usage.** `GetFragmentUsage` counts, per imported `version` (absent = the latest), the
//!   machines whose part configs import the fragment in `fragments` (a bare id or an object with
//!   `id`); organization default fragments are not counted. `GetFragment`'s `fragment_usage`
//!   holds the totals over all versions.
//! - **`ListFragments`.** The caller's own fragments, plus other organizations' `PUBLIC` ones
//!   when asked for: by `PUBLIC` in `fragment_visibility` when that list is non-empty (it takes
//!   precedence, as Viam's SDKs document), else by `show_public`. A non-empty list also filters
//!   the own fragments by visibility. Unlisted and private fragments of other organizations
//!   are never listed.
//! - **Shared locations.** `ShareLocation` / `UnshareLocation` (by the owning organization)
//!   share a location with another organization. `Location.organizations` lists the owner as
//!   primary, then the organizations it is shared with. The other organization lists the
//!   location and reads it, its machines, parts, history and logs; every change to it or to
//!   anything in it, and reading its secrets, is `PERMISSION_DENIED` for it.
//!   `ListRobotsForLocations` refuses ids the caller cannot read (`NOT_FOUND`).
//! - **Invites** without authorizations make an owner of the organization (as on Viam's cloud);
//!   `send_email_invite` (absent = true, the SDK default) is recorded, no mail is sent.
//! - **Default fragments** (`UpdateOrganization.default_fragments`) are stored as given after
//!   checking each fragment exists; `Organization.default_fragments` is absent until set.
//!
//! The store versions its schema (`meta.schema_version`) and migrates older stores on open; a
//! store written by a newer fleetform is refused.
//! Against hostile callers: a part's config may reference only fragments its organization can
//! see (its own or public ones), else `INVALID_ARGUMENT`; names are at most 128 characters
//! without control characters; ids longer than 64 bytes get `INVALID_ARGUMENT` before any
//! lookup, and every error message is cut to 1 KiB (so no reply exceeds the header limit);
//! failed `Authenticate` calls are logged (key id only) and slowed down per peer address
//! (`auth`); connections idle for `idle_timeout` are closed (`idle`).

mod auth;
mod faults;
mod idle;
mod service;
mod sim;
mod store;

pub use faults::Faults;
pub use service::kinds as kind;
pub use sim::{CompareOp, FailMode, FailRule, SimOptions};
pub use store::StoreOpenError;

use crate::proto::rpc::v1::auth_service_server::AuthServiceServer;
use crate::proto::viam::app::v1::app_service_server::AppServiceServer;
use crate::proto::viam::app::v1::robot_service_server::RobotServiceServer;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Errors starting or initialising the local cloud.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] StoreOpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("local cloud store: {0}")]
    Store(String),
    #[error("the local cloud server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// How to run a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub db: PathBuf,
    pub listen: SocketAddr,
    pub faults: Faults,
    /// How long an access token stays valid. The Python SDK never refreshes its token, so the
    /// default is long (24 h).
    pub token_ttl: Duration,
    /// A connection with no traffic (and no open log tail) for this long is closed.
    pub idle_timeout: Duration,
    /// Simulated machines: an agent per part that fetches its config, reports in and logs
    /// ([`SimOptions`]). `None`: parts never report in.
    pub simulate: Option<SimOptions>,
}

impl ServerOptions {
    pub fn new(db: impl Into<PathBuf>) -> Self {
        ServerOptions {
            db: db.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Faults::default(),
            token_ttl: Duration::from_secs(24 * 3600),
            idle_timeout: Duration::from_secs(600),
            simulate: None,
        }
    }
}

/// A running server; dropping it does not stop it, call [`RunningServer::shutdown`].
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
    /// The simulated machines' task and its stop signal, when they run.
    sim: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the endpoint a client dials.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting calls, lets in-flight calls finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some((stop, task)) = self.sim.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .map_err(|e| Error::Store(format!("server task: {e}")))?
    }

    /// Waits until the server ends (after a shutdown signal or an error).
    pub async fn wait(mut self) -> Result<(), Error> {
        let _keep_open = self.stop.take();
        (&mut self.task)
            .await
            .map_err(|e| Error::Store(format!("server task: {e}")))?
    }
}

/// Opens the store at `opts.db` (creating it if needed), binds `opts.listen`, and serves in a
/// background task until [`RunningServer::shutdown`] or `stop` resolves.
pub async fn start(opts: &ServerOptions) -> Result<RunningServer, Error> {
    let store = Arc::new(store::Store::open(&opts.db)?);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: opts.listen,
        source,
    })?;
    let tokens = auth::Tokens::new(opts.token_ttl);
    let (logs, _) = tokio::sync::broadcast::channel(1024);
    let streams = Arc::new(idle::OpenStreams::default());
    let sim = opts.simulate.clone().map(|sim_opts| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(sim::run(Arc::clone(&store), logs.clone(), sim_opts, rx));
        (tx, task)
    });
    let app = service::AppService {
        store: Arc::clone(&store),
        logs,
        streams: Arc::clone(&streams),
    };
    let robot = service::RobotService { app: app.clone() };
    let auth_svc = auth::AuthService {
        store,
        tokens: Arc::clone(&tokens),
        throttle: Arc::default(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = tonic::transport::Server::builder()
        .layer(faults::FaultLayer(opts.faults))
        .add_service(AuthServiceServer::new(auth_svc))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            service::Routed::new(AppServiceServer::new(app.clone()), app),
            tokens.interceptor(),
        ))
        .add_service(RobotServiceServer::with_interceptor(
            robot,
            tokens.interceptor(),
        ));
    // Without TCP_NODELAY, small gRPC replies wait on delayed ACKs (~40 ms each).
    let idle_timeout = opts.idle_timeout;
    let incoming = tokio_stream::StreamExt::map(
        tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        move |conn| {
            conn.map(|tcp| {
                let peer = tcp.peer_addr().ok();
                idle::IdleTimeout::new(tcp, idle_timeout, peer, Arc::clone(&streams))
            })
        },
    );
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            })
            .await
            .map_err(Error::from)
    });
    tracing::info!(%addr, "local cloud listening");
    Ok(RunningServer {
        addr,
        stop: Some(stop_tx),
        task,
        sim,
    })
}

/// Credentials made by [`init`]. The key is shown once and stored only as a hash.
#[derive(Clone)]
pub struct NewKey {
    pub org_id: String,
    pub key_id: String,
    pub key: crate::model::Sensitive,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("org_id", &self.org_id)
            .field("key_id", &self.key_id)
            .field("key", &self.key)
            .finish()
    }
}

/// Accepts the pending invite of `email` to organization `org_id` in the store at `db`, as
/// the invited person would in the Viam app (the local cloud has no sign-in of its own):
/// they become a member holding the invite's roles. Returns their user id.
pub fn accept_invite(db: &Path, org_id: &str, email: &str) -> Result<String, Error> {
    let store = store::Store::open(db)?;
    store
        .write_blocking(|tx| store::accept_invite(tx, org_id, email))
        .map_err(|s| Error::Store(s.message().to_string()))
}

/// Creates the store at `db` if needed, an organization named `org_name` with a founding
/// member `owner_email`, and an API key for it.
pub fn init(db: &Path, org_name: &str, owner_email: &str) -> Result<NewKey, Error> {
    let store = store::Store::open(db)?;
    let (org_id, (key_id, key)) = store
        .write_blocking(|tx| {
            let org = store::create_org(tx, org_name, owner_email)?;
            let key = store::create_api_key(tx, &org, "fleetform")?;
            Ok((org, key))
        })
        .map_err(|s| Error::Store(s.message().to_string()))?;
    Ok(NewKey {
        org_id,
        key_id,
        key: crate::model::Sensitive::new(key),
    })
}
