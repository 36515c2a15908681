//! Resolving `--cloud` into a connected client.
//!
//! - `local` (the default): the embedded cloud over `.fleetform/cloud.db`, served in-process on
//!   an ephemeral loopback port for the life of the command. On first use the store is created
//!   with an organization and an API key, kept in `.fleetform/credentials.json` (mode 0600,
//!   ignored by git). The client then dials it exactly as it would a remote cloud.
//! - `http://…` / `https://…`: a remote cloud, with credentials from `--api-key-id`/`--api-key`
//!   or `VIAM_API_KEY_ID`/`VIAM_API_KEY`.

use super::GlobalArgs;
use crate::cloud::{Client, ClientOptions, Credentials};
use crate::localcloud::{self, RunningServer, ServerOptions};
use crate::model::Sensitive;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The directory holding the local cloud's state.
pub const LOCAL_DIR: &str = ".fleetform";

/// A connected cloud: the client, and the in-process server when the target is `local`.
pub struct Target {
    pub client: Client,
    /// The organization the local cloud made for us (remote targets: `None`).
    pub local_org_id: Option<String>,
    server: Option<RunningServer>,
}

impl Target {
    /// Stops the in-process server, if any, after in-flight calls finish.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Some(server) = self.server {
            server.shutdown().await?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct LocalCredentials {
    org_id: String,
    key_id: String,
    key: Sensitive,
}

/// Connects to the cloud named by the global arguments.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Target> {
    match global.cloud.as_str() {
        "local" => connect_local(Path::new(LOCAL_DIR), global).await,
        url if url.starts_with("http://") || url.starts_with("https://") => {
            let (Some(key_id), Some(key)) = (&global.api_key_id, &global.api_key) else {
                bail!(
                    "no credentials for {url}\nhint: set VIAM_API_KEY_ID and VIAM_API_KEY (or pass \
                     --api-key-id and --api-key); for a local server, `fleetform cloud init` prints them"
                );
            };
            let creds = Credentials {
                key_id: key_id.clone(),
                key: Sensitive::new(key.clone()),
            };
            let mut opts = ClientOptions::new(url, creds);
            opts.call_timeout = global.timeout;
            let client = Client::connect(opts)
                .await
                .with_context(|| format!("cannot connect to {url}"))?;
            Ok(Target {
                client,
                local_org_id: None,
                server: None,
            })
        }
        other => bail!(
            "unknown cloud {other:?}\nhint: use `local`, `http://HOST:PORT` or `https://HOST[:PORT]` \
             (the real cloud is https://app.viam.com:443)"
        ),
    }
}

/// Starts the embedded cloud over `dir/cloud.db` and connects to it.
pub async fn connect_local(dir: &Path, global: &GlobalArgs) -> anyhow::Result<Target> {
    let db = dir.join("cloud.db");
    let creds = local_credentials(dir, &db)?;
    let server = localcloud::start(&ServerOptions::new(&db))
        .await
        .with_context(|| format!("cannot start the local cloud over {}", db.display()))?;
    let mut opts = ClientOptions::new(
        server.endpoint(),
        Credentials {
            key_id: creds.key_id.clone(),
            key: creds.key.clone(),
        },
    );
    opts.call_timeout = global.timeout;
    let client = Client::connect(opts)
        .await
        .context("cannot connect to the local cloud")?;
    Ok(Target {
        client,
        local_org_id: Some(creds.org_id),
        server: Some(server),
    })
}

/// Reads the local credentials, creating the store and a key on first use.
fn local_credentials(dir: &Path, db: &Path) -> anyhow::Result<LocalCredentials> {
    let path: PathBuf = dir.join("credentials.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid\nhint: delete {} to start a fresh local cloud",
                path.display(),
                dir.display()
            )
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = localcloud::init(db, "local", "owner@fleetform.local")
        .with_context(|| format!("cannot initialise {}", db.display()))?;
    let creds = LocalCredentials {
        org_id: key.org_id,
        key_id: key.key_id,
        key: key.key,
    };
    write_private(&path, &serde_json::to_vec_pretty(&creds)?)?;
    tracing::info!(db = %db.display(), "created the local cloud");
    Ok(creds)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
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
