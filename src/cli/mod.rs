//! The `fleetform` command line: argument definitions, dispatch, and all printing.

/// `print!` for command output: through [`term::clean`], and quiet when the reader of stdout
/// went away (`fleetform … | head -1` ends with exit 0, as `git` does, not a panic).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::term::write_out(format_args!($($arg)*)) };
}

/// `println!` for command output; see [`say!`](crate::say).
#[macro_export]
macro_rules! sayln {
    () => { $crate::cli::term::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::term::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod apply_cmd;
mod cloud_cmd;
mod completions_cmd;
mod fmt_cmd;
mod history_cmd;
mod import_cmd;
mod keys_cmd;
mod lock_cmd;
mod logs_cmd;
mod org_cache;
mod org_cmd;
pub mod output;
mod plan_cmd;
mod ranges;
pub mod render;
mod render_cmd;
mod resolve;
mod rollout_cmd;
mod secrets_cmd;
mod show_cmd;
mod signals;
mod status_cmd;
pub mod target;
pub mod term;
mod validate_cmd;
mod watch_cmd;

use clap::{Args, Parser, Subcommand};
use output::ExitStatus;
pub use watch_cmd::LogFormat;

/// Declarative, GitOps-style fleet management for the Viam robotics cloud.
///
/// fleetform talks to a Viam cloud chosen with --cloud: the real one
/// (https://app.viam.com:443), a `fleetform cloud serve` server (http://127.0.0.1:8080),
/// or, by default, an embedded local cloud kept in .fleetform/cloud.db.
#[derive(Debug, Parser)]
#[command(
    name = "fleetform",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        fleetform plan fleet.yaml                  # what would change\n  \
        fleetform apply fleet.yaml                 # make it so (asks first)\n  \
        fleetform watch fleet.yaml                 # keep it so\n  \
        fleetform plan fleet.yaml --cloud https://app.viam.com:443   # the real cloud\n\n\
        `fleetform COMMAND --help` shows a command's options and examples."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes. The cloud options ([`target::CloudArgs`]) are not here: only
/// the commands that talk to a cloud take them, after the command name
/// (`fleetform plan fleet.yaml --cloud URL`), under a "Cloud" heading in their help; so is
/// `--max-manifest-size` ([`FileLimitArgs`]), only on the commands that read manifests.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What the command does when the local cloud lacks its organization: set by [`run`]
    /// from the command (read-only commands never create it).
    #[arg(skip)]
    pub when_missing: target::WhenMissing,

    /// Whether connecting names the cloud on stderr (`Cloud: …`); set by [`run`]. `watch`
    /// logs it instead, so that `--log-format json` keeps stderr all JSON.
    #[arg(skip)]
    pub quiet_cloud: bool,

    /// The cloud options of the command that runs (its defaults for commands that take
    /// none); set by [`run`].
    #[arg(skip)]
    pub cloud: target::CloudArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what apply would change to make the cloud match a manifest.
    ///
    /// Reads the manifest (an invalid one is reported before anything is sent to the cloud),
    /// reads what the cloud holds for its organization, and prints the changes: `+` create,
    /// `~` update, `→` move or rename, `-` delete, with config diffs and, for configs someone
    /// changed in the cloud, who changed them and when. Nothing is written to the cloud.
    ///
    /// Undeclared resources inside managed locations and machines are listed as unmanaged
    /// and kept, unless --prune (or `prune: true` in the manifest) plans their deletion.
    ///
    /// Save the plan with --out FILE and run `fleetform apply FILE` to perform exactly those
    /// changes; apply refuses a saved plan if the cloud changed since it was made.
    Plan(plan_cmd::PlanArgs),
    /// Make the cloud match a manifest (or apply a plan saved by `plan --out`).
    ///
    /// Shows the plan, asks for confirmation (or takes --yes), then applies the changes in
    /// dependency order, in parallel, and summarises what was applied, failed or skipped.
    Apply(apply_cmd::ApplyArgs),
    /// Keep the cloud matching a manifest (a file or a git branch) until SIGINT or SIGTERM.
    ///
    /// Level-triggered: a change to the manifest or a file it includes, a new commit, or the
    /// resync timer queues a pass that reloads, observes, plans and applies from scratch.
    /// Invalid manifests apply nothing; failures back off and open a circuit breaker;
    /// --detect-only only reports drift. Serves /healthz, /readyz and /metrics.
    Watch(watch_cmd::WatchArgs),
    /// Check manifests without a cloud: syntax, schema, references, templates and files.
    ///
    /// Needs no cloud, no credentials and no .fleetform/ directory. Exit 0 when every
    /// manifest is valid, 1 otherwise; `--output json` gives the diagnostics to a program.
    Validate(validate_cmd::ValidateArgs),
    /// Rewrite manifests in the canonical layout, keeping comments and key order.
    ///
    /// Only whitespace changes; a file the formatter cannot rewrite without changing a value
    /// is left untouched and reported. `--check` writes nothing and exits 1 if a file is not
    /// formatted.
    Fmt(fmt_cmd::FmtArgs),
    /// Print the fully expanded manifest: includes merged, templates and inventories expanded.
    ///
    /// Like `helm template` or `kustomize build`: reviewers see what a template change does.
    Render(render_cmd::RenderArgs),
    /// Print a plan saved by `fleetform plan --out`, as text, JSON or Markdown.
    Show(show_cmd::ShowArgs),
    /// Run or set up a local, Viam-compatible cloud (for trying manifests, CI and tests).
    #[command(subcommand)]
    Cloud(cloud_cmd::CloudCommand),
    /// Organizations the API key can see.
    #[command(subcommand)]
    Org(org_cmd::OrgCommand),
    /// Write a manifest of what an organization already holds, to adopt fleetform.
    ///
    /// Reads every location, machine, part (with its config), fragment and invite, and writes
    /// a manifest that `fleetform plan` shows no changes for. Configs go inline, or into
    /// files under --config-dir. The manifest goes to stdout, or to --out FILE.
    Import(import_cmd::ImportArgs),
    /// Show locations, machines and parts with their online state, and which parts drifted.
    ///
    /// A tree of the organization with each machine's and part's online state and last
    /// access; given a manifest, whether each part's config is in sync with it, drifted, or
    /// not in the manifest at all.
    Status(status_cmd::StatusArgs),
    /// Print a part's recent log entries; with --follow, stream new ones until Ctrl-C.
    Logs(logs_cmd::LogsArgs),
    /// Show who changed a part's config and when, newest first, with a diff of each edit.
    History(history_cmd::HistoryArgs),
    /// See and steer a staged rollout (`rollout:` in the manifest): status, pause, resume, abort.
    #[command(subcommand)]
    Rollout(rollout_cmd::RolloutCommand),
    /// List or rotate a location's secrets (values are shown only with --show-secrets).
    #[command(subcommand)]
    Secrets(secrets_cmd::SecretsCommand),
    /// List the organization's API keys, or give one a new secret (written to a private file).
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Free the organization's lease whoever holds it (after a crash; ID is in the "locked"
    /// error). Another fleetform still running would then write at the same time: be sure.
    ForceUnlock(lock_cmd::ForceUnlockArgs),
    /// Print the JSON Schema of the manifest (for editors and CI validation).
    ///
    /// Point an editor at it with a first line such as
    /// `# yaml-language-server: $schema=fleetform.schema.json`.
    #[command(after_help = "Example:\n  fleetform schema > fleetform.schema.json")]
    Schema,
    /// Print a shell completion script (bash, zsh, fish, powershell or elvish).
    Completions(completions_cmd::CompletionsArgs),
    /// Print the man page (or write one per command with --out-dir).
    Man(completions_cmd::ManArgs),
}

/// The size limit of the files a command reads: flattened into the commands that read
/// manifests, config files or saved plans.
#[derive(Clone, Debug, Args)]
pub struct FileLimitArgs {
    /// The largest manifest or config file read, e.g. `64MiB` (the default), `500KB` or a
    /// number of bytes. Anything larger is refused before it is parsed.
    #[arg(
        long,
        env = "FLEETFORM_MAX_MANIFEST_SIZE",
        hide_env_values = true,
        value_name = "SIZE",
        default_value = "64MiB",
        value_parser = parse_size
    )]
    pub max_manifest_size: u64,
}

/// Frees `value` on a thread of its own. A fleet's model is large and made of many small
/// allocations (the M fleet's, about 100,000), and freeing it on the command's own path cost
/// a no-op `plan` 5 ms of its 0.8 s; meanwhile the command goes on with its next round trip
/// or its output. A process that exits first returns the memory all the same.
pub(crate) fn drop_aside<T: Send + 'static>(value: T) {
    // Without a thread, the closure (and `value` with it) is dropped here.
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

/// Output format for commands that report data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Parses a size: a whole number of bytes with an optional unit (`B`, `KB`, `MB`, `GB` in
/// powers of 1000, `KiB`, `MiB`, `GiB` in powers of 1024), between 1 byte and 4 GiB.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; expected e.g. 64MiB, 500KB or 1048576"))?;
    match n.checked_mul(scale) {
        Some(v) if (1..=4 << 30).contains(&v) => Ok(v),
        _ => Err(format!("size {s:?} is out of range: use 1 byte to 4GiB")),
    }
}

impl Command {
    /// The file size limit of a command that reads manifests or plans; `None` for the others.
    fn file_limit(&self) -> Option<&FileLimitArgs> {
        match self {
            Command::Plan(a) => Some(&a.files),
            Command::Apply(a) => Some(&a.files),
            Command::Watch(a) => Some(&a.files),
            Command::Validate(a) => Some(&a.files),
            Command::Render(a) => Some(&a.files),
            Command::Fmt(a) => Some(&a.files),
            Command::Show(a) => Some(&a.files),
            Command::Status(a) => Some(&a.files),
            _ => None,
        }
    }

    /// The cloud options of a command that talks to a cloud; `None` for the others.
    fn cloud_args(&self) -> Option<&target::CloudArgs> {
        Some(match self {
            Command::Plan(a) => &a.cloud,
            Command::Apply(a) => &a.cloud,
            Command::Watch(a) => &a.cloud,
            Command::Import(a) => &a.cloud,
            Command::Status(a) => &a.cloud,
            Command::Logs(a) => &a.cloud,
            Command::History(a) => &a.cloud,
            Command::ForceUnlock(a) => &a.cloud,
            Command::Org(c) => c.cloud_args(),
            Command::Secrets(c) => c.cloud_args(),
            Command::Keys(c) => c.cloud_args(),
            Command::Rollout(c) => c.cloud_args(),
            Command::Validate(_)
            | Command::Render(_)
            | Command::Fmt(_)
            | Command::Show(_)
            | Command::Cloud(_)
            | Command::Schema
            | Command::Completions(_)
            | Command::Man(_) => return None,
        })
    }
}

impl Cli {
    /// The format of log lines on stderr: `watch --log-format`, else text.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Watch(args) => args.log_format,
            _ => LogFormat::Text,
        }
    }

    /// The log filter when `RUST_LOG` is unset: warnings only, more with `-v` and `-vv`. A
    /// daemon's log is its output, so `watch` also logs its passes and changes at `info`,
    /// without the per-call chatter of observing.
    pub fn default_log_filter(&self) -> &'static str {
        match (self.global.verbose, &self.command) {
            (0, Command::Watch(_)) => "warn,fleetform=info,fleetform::cloud=warn",
            (0, _) => "warn",
            (1, _) => "info",
            _ => "debug",
        }
    }
}

/// Runs the parsed command line and returns the process exit code.
pub async fn run(mut cli: Cli) -> anyhow::Result<ExitStatus> {
    if let Some(limit) = cli.command.file_limit() {
        crate::manifest::set_default_max_file_bytes(limit.max_manifest_size);
    }
    cli.global.when_missing = match &cli.command {
        // A saved plan must be made against the organization it will be applied to.
        Command::Plan(args) if args.out.is_some() => target::WhenMissing::Create,
        Command::Plan(_) => target::WhenMissing::Empty,
        Command::Org(_)
        | Command::Import(_)
        | Command::Status(_)
        | Command::Logs(_)
        | Command::History(_)
        | Command::Secrets(secrets_cmd::SecretsCommand::List(_))
        | Command::Keys(keys_cmd::KeysCommand::List(_))
        | Command::ForceUnlock(_)
        | Command::Rollout(_) => target::WhenMissing::Refuse,
        _ => target::WhenMissing::Create,
    };
    cli.global.quiet_cloud = matches!(cli.command, Command::Watch(_));
    if let Some(cloud) = cli.command.cloud_args() {
        cli.global.cloud = cloud.clone();
    }
    match cli.command {
        Command::Cloud(cmd) => cloud_cmd::run(cmd).await,
        Command::Org(cmd) => org_cmd::run(cmd, &cli.global).await,
        Command::Import(args) => import_cmd::run(args, &cli.global).await,
        Command::Status(args) => status_cmd::run(args, &cli.global).await,
        Command::Logs(args) => logs_cmd::run(args, &cli.global).await,
        Command::History(args) => history_cmd::run(args, &cli.global).await,
        Command::Secrets(cmd) => secrets_cmd::run(cmd, &cli.global).await,
        Command::Keys(cmd) => keys_cmd::run(cmd, &cli.global).await,
        Command::Rollout(cmd) => rollout_cmd::run(cmd, &cli.global).await,
        Command::Plan(args) => plan_cmd::run(args, &cli.global).await,
        Command::Apply(args) => apply_cmd::run(args, &cli.global).await,
        Command::Watch(args) => watch_cmd::run(args, &cli.global).await,
        Command::ForceUnlock(args) => lock_cmd::run(args, &cli.global).await,
        Command::Validate(args) => validate_cmd::run(&args),
        Command::Fmt(args) => fmt_cmd::run(&args),
        Command::Render(args) => render_cmd::run(&args),
        Command::Show(args) => show_cmd::run(&args),
        Command::Completions(args) => completions_cmd::completions(&args),
        Command::Man(args) => completions_cmd::man(&args),
        Command::Schema => {
            crate::sayln!(
                "{}",
                serde_json::to_string_pretty(&crate::manifest::source_schema())?
            );
            Ok(ExitStatus::Success)
        }
    }
}
