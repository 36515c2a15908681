//! Resolving `--cloud` into a connected client.
//!
//! - `local` (the default): the embedded cloud over `.fleetform/cloud.db`, served in-process on
//!   an ephemeral loopback port for the life of the command. The first time an organization is
//!   needed it is created — named as the manifest's `organization:` (or `local` for commands
//!   without a manifest) — with an API key kept in `.fleetform/credentials.json` (mode 0600,
//!   ignored by git). The client then dials it exactly as it would a remote cloud.
//! - `http://…` / `https://…`: a remote cloud, with credentials from `--api-key-id`/`--api-key`
//!   or `VIAM_API_KEY_ID`/`VIAM_API_KEY`.
//!
//! Every connection first names the cloud on stderr (`Cloud: local (.fleetform/cloud.db),
//! organization acme` or `Cloud: https://app.viam.com:443`), so a CI job that forgot
//! `FLEETFORM_CLOUD` cannot mistake a plan against an empty local cloud for the real one.
//!
//! The options ([`CloudArgs`]) belong to the commands that talk to a cloud and follow the
//! command name (`fleetform plan fleet.yaml --cloud URL`, or `FLEETFORM_CLOUD`); commands
//! that need no cloud (`validate`, `fmt`, `show`, `schema`, `cloud serve`, …) neither take
//! nor show them. They used to be global options accepted before the command as well; that
//! position is no longer accepted, so that every command's help lists only what it uses.
//!
//! Read-only commands never create anything ([`GlobalArgs::when_missing`]): against a local
//! store that does not exist or lacks the organization, `plan` plans against an empty,
//! throw-away local cloud and says so, and the other read commands say there is nothing yet.
//! Only writing commands (`apply`, `watch`, `secrets rotate`, …) create it.

use super::GlobalArgs;
use super::org_cache::OrgCache;
use crate::cloud::observe::{Early, ObserveOptions, read_early, read_lists_leased};
use crate::cloud::{Client, ClientOptions, Credentials};
use crate::localcloud::{self, RunningServer, ServerOptions};
use crate::model::Sensitive;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which cloud a command talks to, and how: flattened into every command that talks to a
/// cloud, under the "Cloud" heading of its help.
#[derive(Clone, Debug, clap::Args)]
pub struct CloudArgs {
    /// Which cloud to talk to: `local` (embedded, state in .fleetform/cloud.db),
    /// `http://HOST:PORT` (plaintext, e.g. `fleetform cloud serve`) or `https://HOST[:PORT]`
    /// (TLS; the real cloud is https://app.viam.com:443).
    #[arg(
        id = "cloud",
        long = "cloud",
        env = "FLEETFORM_CLOUD",
        hide_env_values = true,
        default_value = "local",
        value_name = "CLOUD",
        help_heading = "Cloud"
    )]
    pub target: String,

    /// API key id for a remote cloud (a UUID).
    #[arg(
        long,
        env = "VIAM_API_KEY_ID",
        hide_env_values = true,
        value_name = "ID",
        help_heading = "Cloud"
    )]
    pub api_key_id: Option<String>,

    /// API key for a remote cloud. Prefer $VIAM_API_KEY: a flag is visible to other users of
    /// this machine. Never printed or logged.
    #[arg(
        long,
        env = "VIAM_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Cloud"
    )]
    pub api_key: Option<String>,

    /// Per-call deadline for cloud requests.
    #[arg(
        long,
        default_value = "30s",
        value_name = "DURATION",
        value_parser = super::ranges::timeout,
        help_heading = "Cloud"
    )]
    pub timeout: std::time::Duration,

    /// Simulated machines in the embedded local cloud (`--cloud local` only).
    #[command(flatten, next_help_heading = "Simulated machines (--cloud local)")]
    pub sim: super::cloud_cmd::SimArgs,
}

impl Default for CloudArgs {
    /// What the options default to (the embedded local cloud, 30 s per call).
    fn default() -> Self {
        CloudArgs {
            target: "local".into(),
            api_key_id: None,
            api_key: None,
            timeout: std::time::Duration::from_secs(30),
            sim: Default::default(),
        }
    }
}

/// The id of the API key of the first cloud this process connected to (a command connects
/// once): edits made with it are shown as [`crate::reconcile::OWN_KEY`], not as a UUID.
static OWN_KEY_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// See [`OWN_KEY_ID`]; `None` before any connection.
pub(super) fn own_key_id() -> Option<&'static str> {
    OWN_KEY_ID.get().map(String::as_str)
}

/// The directory holding the local cloud's state.
pub const LOCAL_DIR: &str = ".fleetform";

/// A connected cloud: the client, and the in-process server when the target is `local`.
pub struct Target {
    pub client: Client,
    /// The organization the local cloud made for us (remote targets: `None`).
    pub local_org_id: Option<String>,
    /// The id of the API key this run uses: edits made with it are "this key (fleetform)".
    pub key_id: String,
    server: Option<RunningServer>,
    /// The throw-away store of a read-only command against a missing local organization;
    /// removed when the target is dropped.
    _scratch: Option<tempfile::TempDir>,
}

impl Target {
    /// Stops the in-process server, if any, after in-flight calls finish. Logs (at debug
    /// level, target `fleetform::cli::target`) the cloud calls this command made, by method:
    /// how `cargo bench --bench fleet` counts the calls of a `fleetform` process.
    pub async fn close(self) -> anyhow::Result<()> {
        tracing::debug!(calls = ?self.client.rpc_counts(), "cloud calls by method");
        if let Some(server) = self.server {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// Closes the target after a command's work, then returns that work's `result`: the
    /// command's own error first, else a failure to close.
    pub async fn finish<T, E>(self, result: Result<T, E>) -> anyhow::Result<T>
    where
        E: Into<anyhow::Error>,
    {
        let closed = self.close().await;
        let value = result.map_err(Into::into)?;
        closed?;
        Ok(value)
    }
}

/// One organization of the local cloud and the API key fleetform uses for it.
#[derive(Clone, Serialize, Deserialize)]
struct LocalCredentials {
    org_name: String,
    org_id: String,
    key_id: String,
    key: Sensitive,
}

/// The organization a command wants from the local cloud.
#[derive(Clone, Copy, Debug)]
pub enum LocalOrg<'a> {
    /// Any (the first one); `local` is created if there is none.
    Any,
    /// The manifest's `organization:` name: created on first use.
    Name(&'a str),
    /// The manifest's `organization:` id: must already exist.
    Id(&'a str),
}

/// Connects to the cloud named by the global arguments.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Target> {
    connect_for(global, LocalOrg::Any).await
}

/// Like [`connect`], naming the organization wanted from a local cloud.
pub async fn connect_for(global: &GlobalArgs, org: LocalOrg<'_>) -> anyhow::Result<Target> {
    warn_simulate_remote(global);
    match global.cloud.target.as_str() {
        "local" => {
            let dir = Path::new(LOCAL_DIR);
            if global.when_missing == WhenMissing::Create || has_local_org(dir, org) {
                return connect_local(dir, global, org).await;
            }
            let wanted = match org {
                LocalOrg::Any => "organization".to_string(),
                LocalOrg::Name(n) | LocalOrg::Id(n) => format!("organization `{n}`"),
            };
            let db = dir.join("cloud.db");
            match global.when_missing {
                WhenMissing::Empty => {
                    let scratch =
                        tempfile::tempdir().context("cannot make a temporary directory")?;
                    let org = match org {
                        LocalOrg::Id(_) => LocalOrg::Any,
                        other => other,
                    };
                    let mut target = connect_local_quietly(scratch.path(), global, org).await?;
                    target._scratch = Some(scratch);
                    announce(
                        global,
                        &format!(
                            "Cloud: local ({}), which has no {wanted} yet: planning against an \
                             empty one (`fleetform apply` creates it)",
                            db.display()
                        ),
                    );
                    Ok(target)
                }
                _ => bail!(
                    "the local cloud ({}) has no {wanted} yet: there is nothing to show\nhint: \
                     `fleetform apply MANIFEST` creates it; for another cloud set --cloud (or \
                     FLEETFORM_CLOUD)",
                    db.display()
                ),
            }
        }
        url if is_remote(url) => {
            let target = connect_remote_quietly(&global.cloud, url).await?;
            announce(global, &format!("Cloud: {url}"));
            Ok(target)
        }
        other => bail!(
            "unknown cloud {other:?}\nhint: use `local`, `http://HOST:PORT` or `https://HOST[:PORT]` \
             (the real cloud is https://app.viam.com:443)"
        ),
    }
}

/// Whether `--cloud` names a remote cloud (`http://…`, `https://…`).
fn is_remote(target: &str) -> bool {
    target.starts_with("http://") || target.starts_with("https://")
}

/// `--simulate-machines` is for the embedded cloud only: a warning for any other.
fn warn_simulate_remote(global: &GlobalArgs) {
    if global.cloud.sim.simulate_machines && global.cloud.target != "local" {
        eprintln!(
            "warning: --simulate-machines applies to the embedded local cloud (--cloud local) only; for a served one, pass it to `fleetform cloud serve`"
        );
    }
}

/// Connects to the remote cloud `url` with the credentials of `cloud`, without naming it.
async fn connect_remote_quietly(cloud: &CloudArgs, url: &str) -> anyhow::Result<Target> {
    let (key_id, key) = match (&cloud.api_key_id, &cloud.api_key) {
        (Some(id), Some(key)) => (id, key),
        (None, None) => bail!(
            "no credentials for {url}\nhint: set VIAM_API_KEY_ID and VIAM_API_KEY (or pass \
                 --api-key-id and --api-key); for a local server, `fleetform cloud init` prints them"
        ),
        (Some(_), None) => bail!(
            "an API key id is set but not the key itself, for {url}\nhint: set \
                 VIAM_API_KEY (or pass --api-key) to the key that goes with VIAM_API_KEY_ID"
        ),
        (None, Some(_)) => bail!(
            "an API key is set but not its id, for {url}\nhint: set VIAM_API_KEY_ID (or \
                 pass --api-key-id) to the id (a UUID) of the key in VIAM_API_KEY"
        ),
    };
    let creds = Credentials {
        key_id: key_id.clone(),
        key: Sensitive::new(key.clone()),
    };
    let mut opts = ClientOptions::new(url, creds);
    opts.call_timeout = cloud.timeout;
    let client = Client::connect(opts)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let _ = OWN_KEY_ID.set(key_id.clone());
    Ok(Target {
        client,
        key_id: key_id.clone(),
        local_org_id: None,
        server: None,
        _scratch: None,
    })
}

/// A connection to a remote cloud made while the manifest loads, with the reads that need no
/// manifest under way. It prints nothing until [`EarlyTarget::finish`].
///
/// - For `plan` ([`connect_early`]): the organizations, and for a key of one organization its
///   lists, then its parts read ahead ([`read_early`]). Dropped unfinished (the manifest did
///   not load), it stops, and the connection closes.
/// - For a command that writes ([`connect_early_leased`]), so that no read counts unless the
///   organization's lease covers it: the organizations and, for a key that sees exactly one,
///   its fragments; then the lease, taken from that listing (if it is free: it never waits
///   here; a held lease is waited for, with its messages, once the manifest has loaded) while
///   the locations and machines are listed; and with the lease held, the parts read ahead
///   ([`read_lists_leased`]). The lease is taken by a compare-and-swap against the lease as
///   listed, so no other fleetform run wrote since the listing: the lists count as read under
///   the lease (`crate::lease::Guard::take_listed`). A manifest that does not load calls
///   [`EarlyTarget::abandon`], which waits for the step that takes the lease (never aborted
///   midway) and frees it: such a manifest holds the lease for the few round trips its
///   loading took.
///
/// Both guess the organization from the one the key saw last time (the `org_cache` module),
/// which lists it together with the organizations, and record the one it sees.
pub struct EarlyTarget {
    task: tokio::task::JoinHandle<anyhow::Result<EarlyStart>>,
}

/// What [`EarlyTarget`]'s task made.
struct EarlyStart {
    target: Target,
    /// The early reads: `None` when the organizations could not be listed.
    early: Option<Early>,
    /// The organization's lease, when [`connect_early_leased`] took it.
    lease: Option<crate::lease::Guard>,
}

/// Starts [`EarlyTarget`] for `plan` against a remote `--cloud`; `None` for the local cloud,
/// which needs the manifest's organization to start.
pub fn connect_early(global: &GlobalArgs, lists: ObserveOptions) -> Option<EarlyTarget> {
    let (cache, lists) = guess_organization(global, lists);
    start_early(global, move |target| async move {
        let api: Arc<dyn crate::cloud::CloudApi> = Arc::new(target.client.clone());
        let mut early = read_early(&api, Some(&lists)).await;
        if let Some(early) = &mut early {
            remember_organization(&cache, early);
            early.read_parts_ahead(api, lists.read_concurrency);
        }
        Ok(EarlyStart {
            target,
            early,
            lease: None,
        })
    })
}

/// Starts [`EarlyTarget`] for a command that writes, for `operation` (the lease's label);
/// `None` for the local cloud.
pub fn connect_early_leased(
    global: &GlobalArgs,
    lists: ObserveOptions,
    operation: &'static str,
) -> Option<EarlyTarget> {
    let (cache, lists) = guess_organization(global, lists);
    start_early(global, move |target| async move {
        let api: Arc<dyn crate::cloud::CloudApi> = Arc::new(target.client.clone());
        let take = |org_id: String, listed| {
            let api = Arc::clone(&api);
            async move {
                let zero = std::time::Duration::ZERO;
                let taken =
                    crate::lease::Guard::take_listed(api, &org_id, operation, zero, listed).await;
                taken.ok()
            }
        };
        let Some((mut early, lease)) = read_lists_leased(&api, &lists, take).await else {
            return Ok(EarlyStart {
                target,
                early: None,
                lease: None,
            });
        };
        remember_organization(&cache, &early);
        if lease.is_some() {
            early.read_parts_ahead(Arc::clone(&api), lists.read_concurrency);
        }
        Ok(EarlyStart {
            target,
            early: Some(early),
            lease,
        })
    })
}

/// The organization cache's entry for the API key of `global` (remote clouds), and `lists` with
/// its guess of the organization (see [`super::org_cache`]).
fn guess_organization(
    global: &GlobalArgs,
    mut lists: ObserveOptions,
) -> (Option<OrgCache>, ObserveOptions) {
    let cache = match &global.cloud.api_key_id {
        Some(key_id) if is_remote(&global.cloud.target) => Some(OrgCache::open(key_id)),
        _ => None,
    };
    lists.organization_guess = cache.as_ref().and_then(|c| c.guess().map(String::from));
    (cache, lists)
}

/// Records in `cache` the organization `early` found, when the key sees exactly one.
fn remember_organization(cache: &Option<OrgCache>, early: &Early) {
    if let (Some(cache), [org]) = (cache, early.organizations()) {
        cache.remember(&org.id);
    }
}

/// Connects to the remote `--cloud` and runs `reads` on the connection, in a task.
fn start_early<F, Fut>(global: &GlobalArgs, reads: F) -> Option<EarlyTarget>
where
    F: FnOnce(Target) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<EarlyStart>> + Send,
{
    if !is_remote(&global.cloud.target) {
        return None;
    }
    let cloud = global.cloud.clone();
    let task = tokio::spawn(async move {
        let target = connect_remote_quietly(&cloud, &cloud.target).await?;
        reads(target).await
    });
    Some(EarlyTarget { task })
}

impl EarlyTarget {
    /// Waits for the connection and the early reads, then names the cloud on stderr (as
    /// [`connect_for`] does): errors and messages come in the order they did before. The
    /// lease, when it was taken, comes with them.
    pub async fn finish(
        mut self,
        global: &GlobalArgs,
    ) -> anyhow::Result<(Target, Option<Early>, Option<crate::lease::Guard>)> {
        warn_simulate_remote(global);
        let start = (&mut self.task)
            .await
            .context("connecting to the cloud stopped")??;
        announce(global, &format!("Cloud: {}", global.cloud.target));
        Ok((start.target, start.early, start.lease))
    }

    /// The manifest did not load: waits for the early step, stops its reads and frees the
    /// lease if it was taken.
    pub async fn abandon(mut self) {
        if let Ok(Ok(start)) = (&mut self.task).await {
            drop(start.early);
            if let Some(lease) = start.lease {
                lease.release().await;
            }
        }
    }
}

impl Drop for EarlyTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a command does when the local cloud lacks the organization it wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenMissing {
    /// Create it (commands that write).
    #[default]
    Create,
    /// Use an empty, throw-away one and say so (`plan`).
    Empty,
    /// Say there is nothing yet (other read-only commands).
    Refuse,
}

/// Whether the local store in `dir` already has what `org` asks for. Reads only.
fn has_local_org(dir: &Path, org: LocalOrg<'_>) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("credentials.json")) else {
        return false;
    };
    let Ok(all) = serde_json::from_str::<Vec<LocalCredentials>>(&text) else {
        // Let the usual path report the broken file.
        return true;
    };
    match org {
        LocalOrg::Any => !all.is_empty(),
        LocalOrg::Name(name) => all.iter().any(|c| c.org_name == name),
        LocalOrg::Id(id) => all.iter().any(|c| c.org_id == id),
    }
}

/// Starts the embedded cloud over `dir/cloud.db` and connects to it, naming it on stderr.
pub async fn connect_local(
    dir: &Path,
    global: &GlobalArgs,
    org: LocalOrg<'_>,
) -> anyhow::Result<Target> {
    let target = connect_local_quietly(dir, global, org).await?;
    let name = std::fs::read_to_string(dir.join("credentials.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<LocalCredentials>>(&t).ok())
        .and_then(|all| {
            all.into_iter()
                .find(|c| Some(&c.org_id) == target.local_org_id.as_ref())
        })
        .map(|c| c.org_name)
        .unwrap_or_default();
    announce(
        global,
        &format!(
            "Cloud: local ({}), organization {name}",
            dir.join("cloud.db").display()
        ),
    );
    Ok(target)
}

/// Names the cloud: on stderr, or as a log event for commands whose stderr is a log.
fn announce(global: &GlobalArgs, line: &str) {
    if global.quiet_cloud {
        tracing::info!("{line}");
    } else {
        eprintln!("{}", super::term::clean(line));
    }
}

/// [`connect_local`] without naming the cloud.
async fn connect_local_quietly(
    dir: &Path,
    global: &GlobalArgs,
    org: LocalOrg<'_>,
) -> anyhow::Result<Target> {
    let db = dir.join("cloud.db");
    let creds = local_credentials(dir, &db, org)?;
    let server = localcloud::start(&ServerOptions {
        simulate: global.cloud.sim.options(),
        ..ServerOptions::new(&db)
    })
    .await
    .with_context(|| format!("cannot start the local cloud over {}", db.display()))?;
    let mut opts = ClientOptions::new(
        server.endpoint(),
        Credentials {
            key_id: creds.key_id.clone(),
            key: creds.key.clone(),
        },
    );
    opts.call_timeout = global.cloud.timeout;
    let client = Client::connect(opts)
        .await
        .context("cannot connect to the local cloud")?;
    let _ = OWN_KEY_ID.set(creds.key_id.clone());
    Ok(Target {
        client,
        key_id: creds.key_id,
        local_org_id: Some(creds.org_id),
        server: Some(server),
        _scratch: None,
    })
}

/// The local credentials for `org`, creating the store, the organization and a key as needed.
///
/// Runs under an exclusive lock on `.fleetform/lock`, so that two first runs at once create
/// one organization, not two of the same name: the second waits, then finds the first's.
fn local_credentials(dir: &Path, db: &Path, org: LocalOrg<'_>) -> anyhow::Result<LocalCredentials> {
    crate::sensitive::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let result = local_credentials_locked(dir, db, org);
    drop(lock);
    result
}

fn local_credentials_locked(
    dir: &Path,
    db: &Path,
    org: LocalOrg<'_>,
) -> anyhow::Result<LocalCredentials> {
    let path: PathBuf = dir.join("credentials.json");
    let mut all: Vec<LocalCredentials> = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid\nhint: delete {} to start a fresh local cloud",
                path.display(),
                dir.display()
            )
        })?
    } else {
        vec![]
    };
    let found = match org {
        LocalOrg::Any => all.first(),
        LocalOrg::Name(name) => all.iter().find(|c| c.org_name == name),
        LocalOrg::Id(id) => all.iter().find(|c| c.org_id == id),
    };
    if let Some(c) = found {
        return Ok(c.clone());
    }
    let name = match org {
        LocalOrg::Any => "local",
        LocalOrg::Name(name) => name,
        LocalOrg::Id(id) => bail!(
            "the local cloud has no organization with id {id}\nhint: name the organization in the \
             manifest instead (`organization: acme`); the local cloud creates it on first use"
        ),
    };
    crate::sensitive::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let key = localcloud::init(db, name, "owner@fleetform.local")
        .with_context(|| format!("cannot initialise {}", db.display()))?;
    let creds = LocalCredentials {
        org_name: name.to_string(),
        org_id: key.org_id,
        key_id: key.key_id,
        key: key.key,
    };
    all.push(creds.clone());
    write_private(&path, &serde_json::to_vec_pretty(&all)?)?;
    tracing::info!(db = %db.display(), org = name, "created an organization in the local cloud");
    Ok(creds)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
