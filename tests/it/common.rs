//! Shared harness for integration tests: a local cloud on `127.0.0.1:0` over a temporary
//! database, and raw gRPC clients that carry a bearer token.

#![allow(dead_code)]

use fleetform::localcloud::{self, Faults, RunningServer, ServerOptions};
use fleetform::proto::rpc::v1 as rpc;
use fleetform::proto::viam::app::v1 as pb;
use std::path::PathBuf;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Bearer =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
pub type App = pb::app_service_client::AppServiceClient<InterceptedService<Channel, Bearer>>;
pub type Robot = pb::robot_service_client::RobotServiceClient<InterceptedService<Channel, Bearer>>;

pub struct Cloud {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub org_id: String,
    pub key_id: String,
    pub key: String,
    pub server: Option<RunningServer>,
}

impl Cloud {
    /// A fresh store with one organization and key, served with `faults`.
    pub async fn start_with(faults: Faults) -> Cloud {
        Self::start_opts(faults, None).await
    }

    /// A fresh store served with simulated machines ([`localcloud::SimOptions`]).
    pub async fn start_simulated(sim: localcloud::SimOptions) -> Cloud {
        Self::start_opts(Faults::default(), Some(sim)).await
    }

    async fn start_opts(faults: Faults, simulate: Option<localcloud::SimOptions>) -> Cloud {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("cloud.db");
        let key = localcloud::init(&db, "test-org", "owner@example.com").expect("init");
        let mut opts = ServerOptions::new(&db);
        opts.faults = faults;
        opts.simulate = simulate;
        let server = localcloud::start(&opts).await.expect("start");
        Cloud {
            dir,
            db,
            org_id: key.org_id,
            key_id: key.key_id,
            key: key.key.expose().to_string(),
            server: Some(server),
        }
    }

    pub async fn start() -> Cloud {
        Self::start_with(Faults::default()).await
    }

    pub fn endpoint(&self) -> String {
        self.server.as_ref().expect("running").endpoint()
    }

    /// Stops the server and starts a new one on the same address over the same database file.
    pub async fn restart(&mut self) {
        let addr = self.server.as_ref().expect("running").addr();
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("shutdown");
        }
        let mut opts = ServerOptions::new(&self.db);
        opts.listen = addr;
        let server = localcloud::start(&opts).await.expect("restart");
        self.server = Some(server);
    }

    /// Stops the server, runs `sql` on its database (to make it what an older version wrote)
    /// and serves the database again: opening it migrates it.
    pub async fn reopen_after(&mut self, sql: &str) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("shutdown");
        }
        rusqlite::Connection::open(&self.db)
            .expect("open the database")
            .execute_batch(sql)
            .expect("rewrite the database");
        let server = localcloud::start(&ServerOptions::new(&self.db))
            .await
            .expect("the older store opens");
        self.server = Some(server);
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn token(&self) -> String {
        authenticate(&self.channel().await, &self.key_id, &self.key)
            .await
            .expect("authenticate")
    }

    /// A fleetform client (the code under test in client tests).
    pub async fn client(&self) -> fleetform::cloud::Client {
        let creds = fleetform::cloud::Credentials::new(&self.key_id, &self.key);
        fleetform::cloud::Client::connect(fleetform::cloud::ClientOptions::new(
            self.endpoint(),
            creds,
        ))
        .await
        .expect("client connect")
    }

    pub async fn app(&self) -> App {
        let token = self.token().await;
        pb::app_service_client::AppServiceClient::with_interceptor(
            self.channel().await,
            bearer(token),
        )
    }

    pub async fn robot(&self) -> Robot {
        let token = self.token().await;
        pb::robot_service_client::RobotServiceClient::with_interceptor(
            self.channel().await,
            bearer(token),
        )
    }
}

/// An authenticated AppService client for the server at `endpoint`.
pub async fn connect_app(endpoint: &str, key_id: &str, key: &str) -> App {
    let channel = Channel::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let token = authenticate(&channel, key_id, key)
        .await
        .expect("authenticate");
    pb::app_service_client::AppServiceClient::with_interceptor(channel, bearer(token))
}

/// A `fleetform` child process, killed when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `fleetform cloud init --db DB` and returns `(key_id, key)` from its export lines.
pub fn cli_init(db: &std::path::Path) -> (String, String) {
    let out = crate::common::fleetform_command()
        .args(["cloud", "init", "--db"])
        .arg(db)
        .output()
        .expect("run fleetform cloud init");
    assert!(
        out.status.success(),
        "cloud init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let get = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("no {name} in {stdout:?}"))
            .to_string()
    };
    (get("VIAM_API_KEY_ID"), get("VIAM_API_KEY"))
}

/// Starts `fleetform cloud serve --db DB --listen 127.0.0.1:0 EXTRA…` and returns the child
/// and its endpoint, read from the `listening on` line.
pub fn cli_serve(db: &std::path::Path, extra: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    let mut child = crate::common::fleetform_command()
        .args(["cloud", "serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn fleetform cloud serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Child(child), endpoint)
}

pub async fn authenticate(
    channel: &Channel,
    entity: &str,
    key: &str,
) -> Result<String, tonic::Status> {
    let mut auth = rpc::auth_service_client::AuthServiceClient::new(channel.clone());
    let resp = auth
        .authenticate(rpc::AuthenticateRequest {
            entity: entity.to_string(),
            credentials: Some(rpc::Credentials {
                r#type: "api-key".into(),
                payload: key.to_string(),
            }),
        })
        .await?;
    Ok(resp.into_inner().access_token)
}

pub fn bearer(token: String) -> Bearer {
    Box::new(move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header value"),
        );
        Ok(req)
    })
}

/// Asserts a call failed with `code` and its message mentions `needle`.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: tonic::Code,
    needle: &str,
) {
    match r {
        Ok(v) => panic!("expected {code:?} mentioning {needle:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected status: {s:?}");
            assert!(
                s.message().contains(needle),
                "message {:?} does not mention {needle:?}",
                s.message()
            );
        }
    }
}

pub fn json_struct(v: serde_json::Value) -> prost_types::Struct {
    fn value(v: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().expect("number")),
            serde_json::Value::String(s) => Kind::StringValue(s.clone()),
            serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                values: a.iter().map(value).collect(),
            }),
            serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
                fields: o.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match value(&v).kind {
        Some(prost_types::value::Kind::StructValue(s)) => s,
        _ => panic!("not an object"),
    }
}

/// The corpus of part configs in the forms real fleets write (`tests/real_configs`), as
/// `(file name, JSON text)`, in file-name order.
pub fn real_configs() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/real_configs")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("readable corpus file");
            (name, text)
        })
        .collect()
}

/// No two siblings share a name: locations under one parent, machines in one location, parts
/// in one location, fragments in the organization.
pub async fn assert_no_duplicates(api: &dyn fleetform::cloud::CloudApi, org: &str) {
    let locs = api.list_locations(org).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for l in &locs {
        assert!(
            seen.insert((l.parent_id.clone(), l.name.clone())),
            "duplicate location {} under {:?}",
            l.name,
            l.parent_id
        );
    }
    let mut machines = std::collections::HashSet::new();
    let mut parts = std::collections::HashSet::new();
    for m in api.list_machines_for_org(org).await.unwrap() {
        assert!(
            machines.insert((m.location_id.clone(), m.name.clone())),
            "duplicate machine {}",
            m.name
        );
        for p in api.get_parts(&m.id).await.unwrap() {
            assert!(
                parts.insert((m.location_id.clone(), p.name.clone())),
                "duplicate part {}",
                p.name
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in api.list_fragments(org).await.unwrap() {
        assert!(seen.insert(f.name.clone()), "duplicate fragment {}", f.name);
    }
}

/// The changes of an apply report that did not apply, one line each.
pub fn failures(r: &fleetform::apply::Report) -> String {
    r.results
        .iter()
        .filter(|x| x.outcome != fleetform::apply::Outcome::Applied)
        .map(|x| format!("{} {} {}: {:?}", x.id, x.kind.as_str(), x.path, x.outcome))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The placeholder fragment ids of the corpus: `5d2a9c1e-1111-4aaa-8bbb-` and 12 digits.
const PLACEHOLDER_PREFIX: &str = "5d2a9c1e-1111-4aaa-8bbb-";

/// [`real_configs`] with every placeholder fragment id replaced by the id of a fragment
/// created in `org` for it (a cloud refuses imports of fragments it does not have).
pub async fn real_configs_in(
    api: &dyn fleetform::cloud::CloudApi,
    org: &str,
) -> Vec<(String, String)> {
    let corpus = real_configs();
    let mut placeholders = std::collections::BTreeSet::new();
    for (_, text) in &corpus {
        for (at, _) in text.match_indices(PLACEHOLDER_PREFIX) {
            placeholders.insert(text[at..at + 36].to_string());
        }
    }
    let mut ids = vec![];
    for (i, placeholder) in placeholders.iter().enumerate() {
        let config =
            serde_json::json!({"components": [{"name": format!("c{i}"), "model": "fake"}]});
        let f = api
            .create_fragment(
                org,
                &format!("corpus-kit-{i}"),
                &config,
                fleetform::model::Visibility::Private,
            )
            .await
            .expect("create a corpus fragment");
        ids.push((placeholder.clone(), f.id));
    }
    corpus
        .into_iter()
        .map(|(name, mut text)| {
            for (placeholder, id) in &ids {
                text = text.replace(placeholder, id);
            }
            (name, text)
        })
        .collect()
}

/// A `fleetform cloud serve` process over a fresh store in a temporary directory, and the
/// real binary run in that directory against it.
pub struct CliEnv {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub key_id: String,
    pub key: String,
    pub server: Child,
}

impl CliEnv {
    /// `extra`: more `cloud serve` flags (faults, latency).
    pub fn start(extra: &[&str]) -> CliEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("cloud.db");
        let (key_id, key) = cli_init(&db);
        let (server, endpoint) = cli_serve(&db, extra);
        CliEnv {
            dir,
            endpoint,
            key_id,
            key,
            server,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = crate::common::fleetform_command();
        c.args(args)
            .current_dir(self.dir.path())
            .env("FLEETFORM_CLOUD", &self.endpoint)
            .env("VIAM_API_KEY_ID", &self.key_id)
            .env("VIAM_API_KEY", &self.key)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().expect("run fleetform")
    }

    /// Runs `args`, asserts success, and returns stdout and stderr together.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "fleetform {args:?} failed:\n{text}");
        text
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write a test file");
    }

    pub async fn client(&self) -> fleetform::cloud::Client {
        fleetform::cloud::Client::connect(fleetform::cloud::ClientOptions::new(
            &self.endpoint,
            fleetform::cloud::Credentials::new(&self.key_id, &self.key),
        ))
        .await
        .expect("connect")
    }
}

/// Parses a test manifest (no environment), panicking with the diagnostics on error.
pub fn manifest(text: &str) -> fleetform::model::Desired {
    fleetform::manifest::parse_str(text, std::path::Path::new("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("bad test manifest: {e}\n{text}"))
}

/// Observes for `d` and plans it.
pub async fn plan_for(
    api: &dyn fleetform::cloud::CloudApi,
    d: &fleetform::model::Desired,
) -> fleetform::plan::Plan {
    use fleetform::cloud::observe::{ObserveOptions, observe};
    let observed = observe(api, d, &ObserveOptions::default())
        .await
        .expect("observe");
    fleetform::plan::plan(d, &observed, &fleetform::plan::Options::default()).expect("plan")
}

/// A change's details as (before, after).
pub type Details<'a> = Vec<(Option<&'a str>, Option<&'a str>)>;

/// The changes of kind `kind` in `p`: action, path and details.
pub fn changes_of(
    p: &fleetform::plan::Plan,
    kind: fleetform::plan::Kind,
) -> Vec<(fleetform::plan::Action, &str, Details<'_>)> {
    p.changes
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| {
            let d = c
                .details
                .iter()
                .map(|d| (d.before.as_deref(), d.after.as_deref()))
                .collect();
            (c.action, c.path.as_str(), d)
        })
        .collect()
}

/// The `fleetform` binary as a command, with its organization cache in a directory of this
/// test run (not the user's `~/.cache`). Tests that need their own set `FLEETFORM_CACHE_DIR`.
pub fn fleetform_command() -> std::process::Command {
    static CACHE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().expect("cache dir"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetform"));
    cmd.env("FLEETFORM_CACHE_DIR", cache.path());
    cmd
}
