//! The git source: the manifest as it is at the newest commit of a branch.
//!
//! Uses the `git` command line (so SSH keys, credential helpers and `insteadOf` rules work as
//! they do for the user), in a private cache directory that is removed on exit:
//!
//! 1. `git init --bare CACHE/mirror.git` once.
//! 2. Each poll: `git fetch --no-tags REPO +REF:refs/fleetform/source`, then
//!    `git rev-parse refs/fleetform/source^{commit}`. `REF` is whatever the remote resolves:
//!    a branch (`main`), a tag, or `HEAD` (the remote's default branch).
//! 3. A new commit is checked out into its own directory `CACHE/checkouts/<commit>` with a
//!    private index (`read-tree` + `checkout-index`), so `config_file` includes resolve
//!    exactly as they would in a clone. The previous checkout is removed once no pass is
//!    reading it (it is reference-counted).
//!
//! Git never prompts (`GIT_TERMINAL_PROMPT=0`): a repository that needs credentials it does
//! not have fails instead of hanging. Every command is bounded by a timeout and killed if it
//! overruns. Submodules and LFS objects are not fetched.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The ref fetched into the cache.
const LOCAL_REF: &str = "refs/fleetform/source";
/// Bound on any single git command.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the manifest comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSpec {
    /// A URL or path `git fetch` understands.
    pub repo: String,
    /// The branch, tag or `HEAD` to follow.
    pub reference: String,
    /// The manifest, relative to the repository root.
    pub path: PathBuf,
}

/// Why a git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be run at all.
    #[error("cannot run `git` (is it installed and on PATH?)")]
    Spawn(#[source] std::io::Error),
    /// A git command exited unsuccessfully; `stderr` is what it said.
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    /// A git command did not finish in time and was killed.
    #[error("`git {command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    /// The manifest path is absolute or leaves the repository.
    #[error("the manifest path `{0}` must be relative to the repository root and stay inside it")]
    BadPath(PathBuf),
    /// Setting up the cache directory failed.
    #[error("cannot prepare the git cache directory")]
    Cache(#[source] std::io::Error),
}

/// One commit's files on disk; removed when the last reference is dropped.
#[derive(Debug)]
pub struct Checkout {
    /// The full commit id.
    pub commit: String,
    /// The checked-out tree.
    pub root: PathBuf,
    /// The manifest inside `root`.
    pub manifest: PathBuf,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Best effort: the cache directory is removed on exit anyway.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A followed branch: the cache, and the checkout of the newest commit.
pub struct GitRepo {
    spec: GitSpec,
    /// The repo as given, or made absolute when it is an existing local path.
    remote: String,
    cache: tempfile::TempDir,
    current: Arc<Checkout>,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("repo", &redact(&self.spec.repo))
            .field("reference", &self.spec.reference)
            .field("commit", &self.current.commit)
            .finish_non_exhaustive()
    }
}

impl GitRepo {
    /// Prepares the cache, fetches `spec.reference` and checks out its commit. Errors here
    /// (no git, unreachable repository, unknown ref) are the user's to fix before watching.
    pub async fn open(spec: GitSpec) -> Result<GitRepo, GitError> {
        if spec.path.is_absolute()
            || spec
                .path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(GitError::BadPath(spec.path.clone()));
        }
        let remote = match std::path::absolute(&spec.repo) {
            Ok(abs) if Path::new(&spec.repo).exists() => abs.to_string_lossy().into_owned(),
            _ => spec.repo.clone(),
        };
        let cache = tempfile::Builder::new()
            .prefix("fleetform-git-")
            .tempdir()
            .map_err(GitError::Cache)?;
        std::fs::create_dir_all(cache.path().join("checkouts")).map_err(GitError::Cache)?;
        let mirror = cache.path().join("mirror.git");
        run_git(
            [
                OsStr::new("init"),
                OsStr::new("--bare"),
                OsStr::new("--quiet"),
                mirror.as_os_str(),
            ],
            None,
            None,
        )
        .await?;
        let commit = fetch_commit(&mirror, &remote, &spec.reference).await?;
        let current = Arc::new(checkout(cache.path(), &commit, &spec.path).await?);
        tracing::info!(
            repo = %redact(&spec.repo),
            reference = %spec.reference,
            commit = %commit,
            "git: following"
        );
        Ok(GitRepo {
            spec,
            remote,
            cache,
            current,
        })
    }

    /// The checkout of the newest commit fetched so far.
    pub fn current(&self) -> Arc<Checkout> {
        Arc::clone(&self.current)
    }

    /// Fetches; returns the new checkout if the ref moved to another commit.
    pub async fn fetch(&mut self) -> Result<Option<Arc<Checkout>>, GitError> {
        let mirror = self.cache.path().join("mirror.git");
        let commit = fetch_commit(&mirror, &self.remote, &self.spec.reference).await?;
        if commit == self.current.commit {
            return Ok(None);
        }
        let next = Arc::new(checkout(self.cache.path(), &commit, &self.spec.path).await?);
        self.current = Arc::clone(&next);
        Ok(Some(next))
    }
}

/// Fetches `reference` from `remote` into the mirror and returns its commit id.
async fn fetch_commit(mirror: &Path, remote: &str, reference: &str) -> Result<String, GitError> {
    let git_dir = git_dir_arg(mirror);
    let refspec = format!("+{reference}:{LOCAL_REF}");
    run_git(
        [
            git_dir.as_os_str(),
            OsStr::new("fetch"),
            OsStr::new("--quiet"),
            OsStr::new("--no-tags"),
            OsStr::new("--"),
            OsStr::new(remote),
            OsStr::new(&refspec),
        ],
        None,
        None,
    )
    .await?;
    let rev = format!("{LOCAL_REF}^{{commit}}");
    let out = run_git(
        [
            git_dir.as_os_str(),
            OsStr::new("rev-parse"),
            OsStr::new("--verify"),
            OsStr::new(&rev),
        ],
        None,
        None,
    )
    .await?;
    Ok(out.trim().to_string())
}

/// Writes the tree of `commit` into `CACHE/checkouts/<commit>`, using a private index.
async fn checkout(cache: &Path, commit: &str, manifest: &Path) -> Result<Checkout, GitError> {
    let mirror = cache.join("mirror.git");
    let git_dir = git_dir_arg(&mirror);
    let root = cache.join("checkouts").join(commit);
    let index = cache.join(format!("index-{commit}"));
    // A leftover from an interrupted attempt would mix trees: start clean.
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(GitError::Cache)?;
    let env = Some(("GIT_INDEX_FILE", index.as_os_str()));
    let result = async {
        run_git(
            [
                git_dir.as_os_str(),
                OsStr::new("read-tree"),
                OsStr::new(commit),
            ],
            env,
            None,
        )
        .await?;
        let mut work_tree = std::ffi::OsString::from("--work-tree=");
        work_tree.push(&root);
        run_git(
            [
                git_dir.as_os_str(),
                work_tree.as_os_str(),
                OsStr::new("checkout-index"),
                OsStr::new("--all"),
                OsStr::new("--force"),
            ],
            env,
            Some(&root),
        )
        .await
    }
    .await;
    let _ = std::fs::remove_file(&index);
    let checkout = Checkout {
        commit: commit.to_string(),
        manifest: root.join(manifest),
        root,
    };
    // On error, dropping `checkout` removes the half-written tree.
    result.map(|_| checkout)
}

fn git_dir_arg(mirror: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from("--git-dir=");
    arg.push(mirror);
    arg
}

/// Runs `git ARGS` (never prompting, bounded by [`GIT_TIMEOUT`]) and returns its stdout.
async fn run_git<'a>(
    args: impl IntoIterator<Item = &'a OsStr>,
    env: Option<(&str, &OsStr)>,
    cwd: Option<&Path>,
) -> Result<String, GitError> {
    let args: Vec<&OsStr> = args.into_iter().collect();
    // For messages: the subcommand and its plain arguments, never the remote (it may carry
    // credentials in its userinfo).
    let command = args
        .iter()
        .map(|a| a.to_string_lossy())
        .filter(|a| !a.starts_with("--git-dir=") && !a.starts_with("--work-tree="))
        .take(1)
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let output = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
        Err(_) => {
            return Err(GitError::Timeout {
                command,
                timeout: GIT_TIMEOUT,
            });
        }
        Ok(r) => r.map_err(GitError::Spawn)?,
    };
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        // git may quote the remote's URL: never with its credentials.
        for url in args
            .iter()
            .map(|a| a.to_string_lossy())
            .filter(|a| a.contains("://"))
        {
            stderr = stderr.replace(url.as_ref(), &redact(&url));
        }
        return Err(GitError::Failed {
            command,
            stderr: if stderr.is_empty() {
                format!("exit status {}", output.status)
            } else {
                stderr
            },
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `scheme://user:secret@host/…?token=…` → `scheme://***@host/…?***`, for logs and errors:
/// credentials may sit in the userinfo or in the query string (or fragment).
pub fn redact(repo: &str) -> String {
    let Some((scheme, rest)) = repo.split_once("://") else {
        return repo.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_string(),
    };
    let rest = match rest.find(['?', '#']) {
        Some(q) => format!("{}{}***", &rest[..q], &rest[q..=q]),
        None => rest,
    };
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact("https://bot:ghp_secret@github.com/acme/fleet.git"),
            "https://***@github.com/acme/fleet.git"
        );
        assert_eq!(
            redact("https://github.com/acme/fleet.git"),
            "https://github.com/acme/fleet.git"
        );
        assert_eq!(
            redact("git@github.com:acme/fleet.git"),
            "git@github.com:acme/fleet.git"
        );
        assert_eq!(redact("/srv/fleet.git"), "/srv/fleet.git");
        assert_eq!(
            redact("https://github.com/acme/fleet.git?access_token=ghp_x"),
            "https://github.com/acme/fleet.git?***"
        );
        assert_eq!(redact("https://u:p@host?x=1#frag"), "https://***@host?***");
    }

    #[tokio::test]
    async fn manifest_paths_must_stay_inside_the_repository() {
        for bad in ["/etc/fleet.yaml", "../fleet.yaml", "a/../../fleet.yaml"] {
            let err = GitRepo::open(GitSpec {
                repo: "/nonexistent".into(),
                reference: "main".into(),
                path: bad.into(),
            })
            .await
            .unwrap_err();
            assert!(matches!(err, GitError::BadPath(_)), "{bad}: {err}");
        }
    }
}
