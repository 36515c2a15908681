//! `fleetform watch MANIFEST` / `fleetform watch --git REPO`: keep the cloud converged until
//! SIGINT or SIGTERM.
//!
//! This file turns arguments into a [`crate::watch::run`] call: it installs the signal
//! handlers (first signal: graceful; second: exit now), opens the manifest source, connects to
//! the cloud, and serves the metrics endpoint.
//!
//! Logging: `main` installs the subscriber for `--log-format` (text or JSON, `info` for
//! fleetform's own events by default; see [`super::Cli::log_format`]) before the runtime
//! starts, so that every event, including the apply engine's and the client's, comes out in
//! one format.

use super::output::ExitStatus;
use super::target::{self, LocalOrg};
use super::{GlobalArgs, ranges};
use crate::model::OrgRef;
use crate::reconcile::events::EventSink;
use crate::watch::{
    self, BackoffPolicy, Debounce, GitRepo, GitSpec, Metrics, Source, WatchOptions,
};
use anyhow::{Context, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const AFTER_HELP: &str = "\
How it works:
  A trigger only queues a pass; every pass reloads the manifest, reads the cloud, plans and
  applies from scratch. Triggers: a change to the manifest or any file it includes (debounced
  until the files settle), a new commit on the followed git branch, and the resync timer,
  which corrects changes made by hand in the cloud. One pass runs at a time; triggers that
  arrive during a pass coalesce into one more.

Safety:
  - An invalid manifest is reported and nothing is applied; the cloud keeps the last good
    state until a valid edit arrives.
  - A pass that would delete more than --max-deletes resources is refused unless
    --allow-deletes; a manifest that declares nothing never deletes anything.
  - Failed passes back off exponentially (jittered, up to --max-backoff, reset by a success).
    The same failure --breaker-threshold times in a row opens a circuit breaker: no passes
    for --breaker-cooldown, then one trial.
  - --detect-only never writes: it logs the drift and counts it in /metrics.
  - SIGINT or SIGTERM: start nothing new, let the calls in flight finish, exit 0. A second
    signal exits at once with status 130.

High availability (--ha):
  Run the same command on several hosts (or pods). One replica is active: it holds the
  organization's lease (renewing it every third of --lease-ttl) and runs every pass; the
  others are standby, run no pass, and try to take the lease every third of the TTL (at most
  every 5s). When the active one dies or loses the cloud, a standby takes over within
  --lease-ttl plus one try, and runs a pass at once. A replica cut off from the cloud gives
  the lease up after two thirds of the TTL, so two replicas never write at once. While a
  replica is active, `apply` against the organization is refused as locked.

Endpoints (with --metrics-addr):
  /healthz  200 while the process runs
  /readyz   200 once a pass has succeeded and the breaker is closed, else 503; with --ha,
            `ready: active` or `ready: standby` (a standby is ready: it is waiting to take
            over, so every pod of a Deployment stays in service)
  /metrics  Prometheus text: passes by result, pass durations, drift, changes applied,
            cloud calls by method and code, last success time, breaker state

Examples:
  # Apply fleet.yaml now and whenever it (or a config file it includes) changes
  fleetform watch fleet.yaml

  # Only report drift, every minute, for a Prometheus alert
  fleetform watch fleet.yaml --detect-only --interval 1m --metrics-addr 127.0.0.1:9464

  # Drift and changes as JSON events on stdout, one per line, for a CI job or a program
  fleetform watch fleet.yaml --detect-only -o json-lines | jq -c 'select(.type == \"drift\")'

  # GitOps: follow a branch against the real cloud, with logs for a log pipeline
  export VIAM_API_KEY_ID=... VIAM_API_KEY=...
  fleetform watch --git https://github.com/acme/fleet.git --ref main --path fleet.yaml \\
      --cloud https://app.viam.com:443 --log-format json --metrics-addr 0.0.0.0:9464";

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// What `fleetform watch` prints on stdout (its log goes to stderr either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchOutput {
    /// Nothing: the log on stderr says what happens.
    #[default]
    Text,
    /// One JSON event per line as it happens: each pass's start and end, its plan, the drift
    /// it found (with who last changed it), each change, and the apply's summary; the same
    /// schema as `apply --output json-lines` (listed in the README).
    JsonLines,
}

/// Arguments of `fleetform watch`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct WatchArgs {
    /// The manifest (YAML) to keep applied; it and every file it includes are watched.
    #[arg(
        value_name = "MANIFEST",
        required_unless_present = "git",
        conflicts_with = "git"
    )]
    pub manifest: Option<PathBuf>,

    /// Follow a git repository instead of a local file: any URL or path `git fetch` accepts.
    ///
    /// The manifest is read at the newest commit of --ref, fetched every --poll; each pass
    /// logs the commit it applied. Uses your git credentials (SSH agent, credential helpers);
    /// never prompts.
    #[arg(long, value_name = "REPO", help_heading = "Git source")]
    pub git: Option<String>,

    /// Branch (or tag) to follow [default: HEAD, the repository's default branch].
    #[arg(long = "ref", value_name = "BRANCH", help_heading = "Git source")]
    pub reference: Option<String>,

    /// The manifest's path inside the repository [default: fleet.yaml].
    #[arg(long, value_name = "PATH", help_heading = "Git source")]
    pub path: Option<PathBuf>,

    /// How often to fetch the repository [default: 1m].
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = ranges::poll,
        help_heading = "Git source"
    )]
    pub poll: Option<Duration>,

    /// Resync period: reconcile at least this often, correcting drift made in the cloud.
    ///
    /// Each wait is randomly shortened by up to 10 %, so many watchers do not act in step and
    /// drift never lasts longer than the interval.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = ranges::interval)]
    pub interval: Duration,

    /// File changes are applied once the files have been quiet this long.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = ranges::debounce)]
    pub debounce: Duration,

    /// ...or at most this long after the first change, even if changes keep coming.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = ranges::debounce)]
    pub max_delay: Duration,

    /// Report drift (logs and /metrics) and never write to the cloud.
    #[arg(long)]
    pub detect_only: bool,

    /// With --detect-only: look for drift only in these resources (repeatable): a location,
    /// machine or part path, or `fragment:NAME`; `*` and `?` match within one component.
    #[arg(long = "target", value_name = "ADDRESS", requires = "detect_only")]
    pub targets: Vec<String>,

    /// Delete undeclared things inside the managed scope, as if the manifest said `prune: true`.
    #[arg(long)]
    pub prune: bool,

    /// Refuse a pass that would delete more than this many resources (unless --allow-deletes).
    #[arg(long, value_name = "N", default_value_t = crate::reconcile::safety::DEFAULT_MAX_DELETES, value_parser = ranges::count())]
    pub max_deletes: usize,

    /// Allow a pass to delete more than --max-deletes resources.
    #[arg(long)]
    pub allow_deletes: bool,

    /// Changes in flight at once while applying.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = ranges::concurrency())]
    pub parallelism: usize,

    /// Reads in flight at once while reading the cloud.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = ranges::concurrency())]
    pub read_concurrency: usize,

    /// The directory that receives each new API key's id and secret, one private file
    /// (0600) per key: `DIR/NAME.env`.
    #[arg(long, value_name = "DIR", default_value = crate::keyfile::DEFAULT_DIR)]
    pub keys_out: std::path::PathBuf,

    /// Longest wait between retries of a failing pass (the wait starts at 1s and doubles).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = ranges::max_backoff)]
    pub max_backoff: Duration,

    /// Identical consecutive failures that open the circuit breaker.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_threshold: u32,

    /// How long an open circuit breaker pauses passes before one trial pass.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = ranges::breaker_cooldown)]
    pub breaker_cooldown: Duration,

    /// Serve /healthz, /readyz and Prometheus /metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// High availability: run several replicas against one organization; exactly one is
    /// active (holds the organization's lease while it runs) and runs passes, the others are
    /// standby and take over when it dies or is cut off (within --lease-ttl and one pass).
    #[arg(long, help_heading = "High availability")]
    pub ha: bool,

    /// With --ha: how long the active replica's lease lasts unless renewed (renewed every
    /// third of it); failover takes at most this plus one try and one pass.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        env = "FLEETFORM_LEASE_TTL",
        hide_env_values = true,
        value_parser = ranges::lease_ttl,
        help_heading = "High availability"
    )]
    pub lease_ttl: Duration,

    /// Events on stdout: none (`text`; the log says what happens), or `json-lines` for CI and
    /// programs (one JSON event per line, as `apply --output json-lines`).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = WatchOutput::Text)]
    pub output: WatchOutput,

    /// Log format on stderr: text for people, json (one object per line) for machines.
    /// Level: info by default, -v for debug; RUST_LOG overrides.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

impl WatchArgs {
    /// Checks what clap cannot: the git options need `--git`. (clap's `requires` is waived
    /// when the required argument conflicts with one that is present, here MANIFEST.)
    fn validate(&self) -> anyhow::Result<()> {
        crate::plan::target::parse_all(&self.targets)
            .map_err(|e| anyhow::anyhow!("--target {e}"))?;
        if self.git.is_none() {
            for (given, flag) in [
                (self.reference.is_some(), "--ref"),
                (self.path.is_some(), "--path"),
                (self.poll.is_some(), "--poll"),
            ] {
                if given {
                    bail!(
                        "{flag} applies only to a git source\nhint: add --git REPO, or drop {flag} to watch a local file"
                    );
                }
            }
        }
        Ok(())
    }

    fn git_spec(&self, repo: &str) -> GitSpec {
        GitSpec {
            repo: repo.to_string(),
            reference: self.reference.clone().unwrap_or_else(|| "HEAD".into()),
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("fleet.yaml")),
        }
    }

    fn poll(&self) -> Duration {
        self.poll.unwrap_or(Duration::from_secs(60))
    }

    fn options(&self) -> WatchOptions {
        WatchOptions {
            interval: self.interval,
            debounce: Debounce {
                settle: self.debounce,
                max_delay: self.max_delay.max(self.debounce),
            },
            detect_only: self.detect_only,
            prune: self.prune,
            max_deletes: self.max_deletes,
            allow_deletes: self.allow_deletes,
            parallelism: self.parallelism,
            read_concurrency: self.read_concurrency,
            backoff: BackoffPolicy {
                max: self.max_backoff,
                breaker_threshold: self.breaker_threshold,
                breaker_cooldown: self.breaker_cooldown,
                ..BackoffPolicy::default()
            },
            ha_lease_ttl: self.ha.then_some(self.lease_ttl),
            own_key_id: None,
            targets: self.targets.clone(),
            keys_out: self.keys_out.clone(),
            events: match self.output {
                WatchOutput::Text => EventSink::default(),
                WatchOutput::JsonLines => EventSink::new(|line| crate::sayln!("{line}")),
            },
        }
    }
}

/// Runs `fleetform watch` until SIGINT or SIGTERM, and returns once it has shut down.
pub async fn run(args: WatchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    args.validate()?;
    watch_until_signalled(args, global).await
}

/// Resolves when `rx` turns `true` (or its sender is gone).
async fn signalled(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn watch_until_signalled(args: WatchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    // Handlers first: a signal during start-up (cloning, connecting) is honoured.
    let stop = super::signals::graceful_then_exit()?;
    let opts = args.options();

    // 1. The manifest source.
    let source = match &args.git {
        Some(repo) => {
            let spec = args.git_spec(repo);
            let reference = spec.reference.clone();
            let repo = tokio::select! {
                r = GitRepo::open(spec) => r.with_context(|| format!(
                    "cannot follow `{}` at `{reference}`",
                    watch::git::redact(repo),
                ))?,
                () = signalled(stop.clone()) => return Ok(ExitStatus::Success),
            };
            Source::Git {
                repo,
                poll: args.poll(),
            }
        }
        None => {
            let Some(path) = args.manifest.clone() else {
                bail!("give a MANIFEST to watch, or --git REPO");
            };
            if !path.is_file() {
                bail!(
                    "`{}` is not a file\nhint: give the path of the manifest (YAML) to watch",
                    path.display()
                );
            }
            Source::File(path)
        }
    };
    let manifest_now = match &source {
        Source::File(p) => p.clone(),
        Source::Git { repo, .. } => repo.current().manifest.clone(),
    };

    // 2. The cloud (for `local`: the organization the manifest names, made on first use).
    let org = declared_org(&manifest_now);
    let local_org = match &org {
        Some(OrgRef::Name(n)) => LocalOrg::Name(n),
        Some(OrgRef::Id(id)) => LocalOrg::Id(id),
        None => LocalOrg::Any,
    };
    let target = tokio::select! {
        t = target::connect_for(global, local_org) => t?,
        () = signalled(stop.clone()) => return Ok(ExitStatus::Success),
    };

    // 3. The metrics endpoint.
    let metrics = Metrics::new();
    let (endpoint_stop, endpoint_stop_rx) = tokio::sync::watch::channel(false);
    let endpoint = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for --metrics-addr"))?;
            let bound = listener.local_addr()?;
            tracing::info!(addr = %bound, "serving /healthz, /readyz and /metrics");
            Some(tokio::spawn(watch::metrics::serve(
                listener,
                Arc::clone(&metrics),
                signalled(endpoint_stop_rx),
            )))
        }
        None => None,
    };

    // 4. Watch until signalled.
    match &source {
        Source::File(p) => tracing::info!(
            manifest = %p.display(),
            cloud = %global.cloud.target,
            interval_s = opts.interval.as_secs_f64(),
            detect_only = opts.detect_only,
            "watching"
        ),
        Source::Git { repo, poll } => tracing::info!(
            repo = ?repo,
            cloud = %global.cloud.target,
            poll_s = poll.as_secs_f64(),
            interval_s = opts.interval.as_secs_f64(),
            detect_only = opts.detect_only,
            "watching"
        ),
    }
    let api: Arc<dyn crate::cloud::CloudApi> = Arc::new(target.client.clone());
    let opts = WatchOptions {
        own_key_id: target::own_key_id().map(String::from),
        ..opts
    };
    let result = watch::run(api, source, opts, metrics, signalled(stop)).await;

    let _ = endpoint_stop.send(true);
    if let Some(task) = endpoint {
        let _ = task.await;
    }
    target.finish(result).await?;
    Ok(ExitStatus::Success)
}

/// The organization the manifest names, even when the manifest is otherwise invalid (then
/// read leniently from its `organization:` key); `None` if it names none.
fn declared_org(manifest: &Path) -> Option<OrgRef> {
    if let Ok(d) = crate::manifest::load(manifest) {
        return Some(d.organization);
    }
    let limit = crate::manifest::LoadOptions::default().max_file_bytes;
    let text = String::from_utf8(crate::manifest::read_bounded(manifest, limit).ok()?).ok()?;
    let name = crate::manifest::lenient_top_level_str(&text, "organization")?;
    Some(OrgRef::Name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<WatchArgs, clap::Error> {
        #[derive(Debug, Parser)]
        struct T {
            #[command(flatten)]
            w: WatchArgs,
        }
        T::try_parse_from(std::iter::once("watch").chain(args.iter().copied())).map(|t| t.w)
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let a = parse(&["fleet.yaml"]).unwrap();
        let o = a.options();
        assert_eq!(o.interval, Duration::from_secs(300));
        assert_eq!(o.debounce.settle, Duration::from_millis(250));
        assert_eq!(o.max_deletes, 10);
        assert_eq!(o.parallelism, 10);
        assert_eq!(o.backoff.breaker_threshold, 5);
        assert!(!o.detect_only);
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!(a.output, WatchOutput::Text);
        assert!(format!("{:?}", o.events).contains("off"));
        assert!(a.metrics_addr.is_none());
    }

    #[test]
    fn a_manifest_or_git_but_not_both() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["fleet.yaml", "--git", "r.git"]).is_err());
        let g = parse(&["--git", "r.git", "--ref", "main", "--poll", "30s"]).unwrap();
        g.validate().unwrap();
        let spec = g.git_spec("r.git");
        assert_eq!(spec.reference, "main");
        assert_eq!(spec.path, PathBuf::from("fleet.yaml"));
        assert_eq!(g.poll(), Duration::from_secs(30));
        let d = parse(&["--git", "r.git"]).unwrap();
        assert_eq!(d.git_spec("r.git").reference, "HEAD");
        assert_eq!(d.poll(), Duration::from_secs(60));
        for flag in [["--ref", "main"], ["--path", "x.yaml"], ["--poll", "1s"]] {
            let a = parse(&["fleet.yaml", flag[0], flag[1]]).unwrap();
            let err = a.validate().unwrap_err().to_string();
            assert!(err.contains("applies only to a git source"), "{err}");
        }
    }

    #[test]
    fn zero_intervals_are_rejected() {
        assert!(parse(&["fleet.yaml", "--interval", "0s"]).is_err());
        assert!(parse(&["fleet.yaml", "--parallelism", "0"]).is_err());
        assert!(parse(&["fleet.yaml", "--breaker-threshold", "0"]).is_err());
    }
}
