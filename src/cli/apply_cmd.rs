//! `fleetform apply MANIFEST | PLANFILE`: make the cloud match, safely.
//!
//! With a manifest it prepares ([`crate::reconcile::prepare`]) and applies in one go; a plan
//! saved by `fleetform plan --out` enters as [`crate::reconcile::Prepared::saved`]. It shows
//! the plan, reports a safety refusal (delete budget, empty manifest), asks for confirmation
//! (or takes `--yes`), then [`crate::reconcile::apply`] refuses a stale plan (the cloud changed
//! since) or runs the apply engine, with a progress bar on a terminal (one line per finished
//! change otherwise), and it prints a summary.

use super::GlobalArgs;
use super::output::ExitStatus;
use super::render::{self, Format, RenderOptions};
use super::rollout_cmd::Recovery;
use super::target::{self, LocalOrg};
use crate::apply::{self, Event, Outcome, Report};
use crate::cloud::CloudApi;
use crate::cloud::observe::{Early, resolve_organization};
use crate::model::{Desired, OrgRef};
use crate::plan::{Action, Plan};
use crate::reconcile::{self, ApplyError};
use anyhow::{Context, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

const AFTER_HELP: &str = "\
Safety:
  - Shows the plan and asks for confirmation on a terminal; elsewhere (CI) pass --yes.
  - Deleting more than --max-deletes resources (default 10) needs --allow-deletes.
  - A manifest that declares nothing is never used to delete anything.
  - A plan (saved, or confirmed at the prompt) is refused if the cloud changed since it was
    made: nothing is written (plan again).
  - Ctrl-C stops starting new changes, lets calls in flight finish, and prints the summary.

Exit codes:
  0    everything applied (or nothing to do)
  1    an error, a refused plan, or a change that failed or was skipped
  130  interrupted (Ctrl-C)

When the cloud stops answering (10 changes in a row fail with UNAVAILABLE, a deadline or a
refused connection), apply starts nothing more and prints what applied and what was not
started (exit 1).

Examples:
  fleetform apply fleet.yaml                     # plan, confirm, apply
  fleetform apply fleet.yaml --yes               # in CI after review
  fleetform plan fleet.yaml --out plan.json && fleetform apply plan.json --yes";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyOutput {
    /// For people: the plan, one line per finished change, a summary.
    #[default]
    Text,
    /// One JSON document at the end (format_version 1).
    Json,
    /// One JSON event per line as it happens, for CI (see [`reconcile::events`]; the events
    /// are listed in the README).
    JsonLines,
}

/// Arguments of `fleetform apply`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ApplyArgs {
    /// A manifest (YAML) to plan and apply, or a plan file saved by `fleetform plan --out`.
    #[arg(value_name = "MANIFEST|PLANFILE")]
    pub input: PathBuf,
    /// Apply without asking for confirmation.
    #[arg(short = 'y', long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Changes in flight at once.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = super::ranges::concurrency())]
    pub parallelism: usize,
    /// Reads in flight at once while observing the cloud (and while applying, the reads of
    /// new machines' main parts).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = super::ranges::concurrency())]
    pub read_concurrency: usize,
    /// Refuse a plan that deletes more than this many resources (unless --allow-deletes).
    #[arg(long, value_name = "N", default_value_t = reconcile::safety::DEFAULT_MAX_DELETES, value_parser = super::ranges::count())]
    pub max_deletes: usize,
    /// Allow a plan to delete more than --max-deletes resources.
    #[arg(long)]
    pub allow_deletes: bool,
    /// Delete undeclared things inside the managed scope, as if the manifest said `prune: true`
    /// (manifest input only).
    #[arg(long)]
    pub prune: bool,
    /// Apply only these resources (repeatable, manifest input only): a location, machine or
    /// part path, or `fragment:NAME`; `*` and `?` match within one path component. Nothing
    /// outside them is created, changed or deleted.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// How long to wait for another fleetform that holds the organization's lease (e.g.
    /// `2m`). The default, 0s, refuses at once, naming the holder.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = super::ranges::lock_timeout)]
    pub lock_timeout: std::time::Duration,
    /// How often a staged rollout reads its wave's health (`rollout:` in the manifest).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = super::ranges::rollout_poll)]
    pub rollout_poll: std::time::Duration,
    /// How to report: `text` for people; `json` for programs (one document at the end, the
    /// plan not printed); `json-lines` for CI (one JSON event per line as changes happen).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = ApplyOutput::Text)]
    pub output: ApplyOutput,
    /// Where the secrets of the API keys the plan creates go.
    #[command(flatten)]
    pub keys: super::keys_cmd::KeysOutArgs,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// The ledger of what was ever sensitive, kept in `.fleetform/` (see [`crate::sensitive`]).
pub(super) fn local_ledger() -> crate::sensitive::Ledger {
    crate::sensitive::Ledger::load(std::path::Path::new(target::LOCAL_DIR))
}

/// Records `desired`'s sensitive pointers and values in the local ledger; a failure to save
/// it is a warning (masking then relies on what the manifest marks).
pub(super) fn remember_secrets(desired: &Desired) {
    let mut ledger = local_ledger();
    ledger.remember(desired);
    if let Err(e) = ledger.save() {
        tracing::warn!(error = %e, "cannot save the ledger of sensitive values");
    }
}

/// A plan file (see [`crate::reconcile::saved::read`]).
pub(super) fn read_saved_plan(text: &str) -> Option<anyhow::Result<(Plan, Option<String>)>> {
    reconcile::saved::read(text).map(|r| r.map_err(anyhow::Error::from))
}

pub async fn run(args: ApplyArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    if may_be_saved_plan(&args.input) {
        let limit = crate::manifest::LoadOptions::default().max_file_bytes;
        let bytes = crate::manifest::read_bounded(&args.input, limit)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        if let Some(saved) = read_saved_plan(&String::from_utf8_lossy(&bytes)) {
            return run_saved(&args, global, saved).await;
        }
    }
    run_manifest(args, global).await
}

/// Whether `path` may hold a saved plan: a file whose first byte other than white space is
/// `{` (a plan file is a JSON object), or anything that is not a regular file (read whole
/// to tell). A manifest is thus told apart from its first bytes, and read once, by its
/// load, which the early connection overlaps.
fn may_be_saved_plan(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return true;
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return true;
    };
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                if let Some(b) = chunk[..n].iter().find(|b| !b.is_ascii_whitespace()) {
                    return *b == b'{';
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// `apply PLANFILE`: the saved plan, under the lease, without planning again.
async fn run_saved(
    args: &ApplyArgs,
    global: &GlobalArgs,
    saved: anyhow::Result<(Plan, Option<String>)>,
) -> anyhow::Result<ExitStatus> {
    if !args.targets.is_empty() {
        bail!("--target applies to manifests; a saved plan already records its target");
    }
    let (mut plan, salt) = saved?;
    local_ledger().mark_plan(&mut plan);
    let target = target::connect_for(global, LocalOrg::Id(&plan.organization_id)).await?;
    let result = match take_lease(args, &target.client, &plan.organization_id).await {
        Ok(held) => apply_saved(args, &target.client, plan, salt.as_deref(), held).await,
        Err(e) => Err(e),
    };
    target.finish(result).await
}

/// `apply MANIFEST`: plan, show, confirm, write.
async fn run_manifest(args: ApplyArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    // A remote cloud is connected to, its organizations listed and (for a key of one
    // organization) its lease taken while the manifest loads; with the lease held, the
    // organization's lists and parts are read meanwhile too (`target::connect_early_leased`).
    // Nothing is printed (nor any cloud error reported) before the manifest has loaded.
    let early = target::connect_early_leased(global, options(&args).observe, "apply");
    let desired: Desired = match crate::manifest::load(&args.input) {
        Ok(d) => d,
        Err(err) => {
            abandon(early).await;
            eprintln!("{err}");
            return Ok(ExitStatus::Failure);
        }
    };
    if let Err(e) = super::plan_cmd::check_targets(&desired, &args.targets) {
        abandon(early).await;
        return Err(e);
    }
    remember_secrets(&desired);
    let org = match &desired.organization {
        OrgRef::Name(name) => LocalOrg::Name(name),
        OrgRef::Id(id) => LocalOrg::Id(id),
    };
    let (target, early, lease) = match early {
        Some(early) => early.finish(global).await?,
        None => (target::connect_for(global, org).await?, None, None),
    };
    let result = apply_manifest(&args, &target.client, desired, early, lease).await;
    target.finish(result).await
}

/// Frees what the early start took, when the manifest turned out unusable.
async fn abandon(early: Option<target::EarlyTarget>) {
    if let Some(early) = early {
        early.abandon().await;
    }
}

async fn apply_manifest(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    desired: Desired,
    early: Option<Early>,
    lease: Option<Held>,
) -> anyhow::Result<ExitStatus> {
    // The lease first: nobody else may plan and write this organization meanwhile. A lease
    // taken while the manifest loaded is the one organization the key sees, so it is the
    // manifest's whenever that organization resolves.
    let org = match &early {
        Some(early) => resolve_organization(early.organizations().to_vec(), &desired.organization),
        None => reconcile::organization(client, &desired.organization).await,
    };
    let org = match org {
        Ok(org) => org,
        Err(e) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return Err(e.into());
        }
    };
    let held = match lease {
        Some(held) => held,
        None => take_lease(args, client, &org.id).await?,
    };
    let result = plan_and_execute(args, client, desired, &org.id, &held, early).await;
    held.release().await;
    result
}

/// The organization's lease, held (and renewed in the background) for one apply.
type Held = crate::lease::Guard;

/// Takes the lease of `org_id` for this apply, waiting up to `--lock-timeout`.
async fn take_lease(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    org_id: &str,
) -> anyhow::Result<Held> {
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    Ok(crate::lease::Guard::take(api, org_id, "apply", args.lock_timeout).await?)
}

async fn plan_and_execute(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    desired: Desired,
    org_id: &str,
    held: &Held,
    early: Option<Early>,
) -> anyhow::Result<ExitStatus> {
    let opts = options(args);
    // A rollout a crash left is finished (or resumed) before anything is planned.
    let stop = held.stop.subscribe();
    let early = match super::rollout_cmd::recover(client, org_id, &opts.rollout, &stop).await? {
        Recovery::Nothing => early,
        // Reads made before the recovery wrote are stale: observe afresh.
        Recovery::Resumed => None,
        Recovery::Stop(status) => return Ok(status),
    };
    let ready = if args.yes {
        // Nobody is asked: the lease's fence and the stale-plan check go out with the drift
        // attribution's reads (one round trip for the three).
        let status = super::plan_cmd::Status::new();
        let progress = super::plan_cmd::progress(&status);
        let api: Arc<dyn CloudApi> = Arc::new(client.clone());
        let prepared =
            reconcile::prepare_checked(api, &desired, &opts, &progress, early, held.fence()).await;
        let reported = super::plan_cmd::reported(prepared, |(p, _)| &p.prepared().warnings)?;
        let Some((mut prechecked, fence)) = reported else {
            return Ok(ExitStatus::Failure);
        };
        prechecked.mark_sensitive(&local_ledger());
        Ready::Checked(prechecked, fence)
    } else {
        let Some(mut prepared) = super::plan_cmd::prepare(client, &desired, &opts, early).await?
        else {
            return Ok(ExitStatus::Failure);
        };
        prepared.mark_sensitive(&local_ledger());
        Ready::Prepared(prepared)
    };
    // The plan holds all that applying needs: the manifest's model is not kept meanwhile.
    super::drop_aside(desired);
    execute(args, client, ready, &opts, held, false).await
}

/// A plan ready to show and apply.
enum Ready {
    /// To be checked (fence and stale-plan check) right before writing.
    Prepared(reconcile::Prepared),
    /// Checked already, with the lease's fence ([`reconcile::prepare_checked`]).
    Checked(reconcile::Prechecked, Result<(), crate::lease::LeaseError>),
}

impl Ready {
    fn prepared(&self) -> &reconcile::Prepared {
        match self {
            Ready::Prepared(p) => p,
            Ready::Checked(p, _) => p.prepared(),
        }
    }
}

/// The reconcile options `args` ask for.
fn options(args: &ApplyArgs) -> reconcile::Options {
    let mut opts = super::plan_cmd::reconcile_options(Some(args.read_concurrency), args.prune);
    opts.deletes = reconcile::DeleteBudget {
        max_deletes: args.max_deletes,
        allow_deletes: args.allow_deletes,
    };
    opts.apply.parallelism = args.parallelism;
    opts.targets = args.targets.clone();
    opts.rollout.poll = args.rollout_poll;
    opts.rollout.progress = Some(super::rollout_cmd::progress_printer());
    opts
}

async fn apply_saved(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    mut plan: Plan,
    salt: Option<&str>,
    held: Held,
) -> anyhow::Result<ExitStatus> {
    let result = apply_saved_held(args, client, &mut plan, salt, &held).await;
    held.release().await;
    result
}

async fn apply_saved_held(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    plan: &mut Plan,
    salt: Option<&str>,
    held: &Held,
) -> anyhow::Result<ExitStatus> {
    if args.prune {
        bail!("--prune applies to manifests; a saved plan already says what it deletes");
    }
    reconcile::saved::restore_sensitive(plan, &|name| std::env::var(name).ok(), salt)?;
    let opts = options(args);
    let stop = held.stop.subscribe();
    if let Recovery::Stop(status) =
        super::rollout_cmd::recover(client, &plan.organization_id, &opts.rollout, &stop).await?
    {
        return Ok(status);
    }
    let prepared = reconcile::Prepared::saved(plan.clone(), &opts);
    // A stale saved plan is reported before anyone is asked to confirm it (apply checks again
    // after the prompt). With --yes there is no prompt: apply's own check is the only one.
    if !args.yes {
        let status = super::plan_cmd::Status::new();
        status.show("Checking the saved plan against the cloud…");
        let fresh = reconcile::check_fresh(Arc::new(client.clone()), &prepared).await;
        status.clear();
        if let Err(e) = fresh {
            return apply_error(e, true);
        }
    }
    execute(args, client, Ready::Prepared(prepared), &opts, held, true).await
}

/// Reports why [`reconcile::apply`] (or its stale check) wrote nothing.
fn apply_error(err: ApplyError, saved: bool) -> anyhow::Result<ExitStatus> {
    match err {
        ApplyError::Stale(stale) => {
            let which = if saved { "the saved plan" } else { "the plan" };
            super::output::print_error_message(&format!(
                "{which} is stale: the cloud changed since it was made"
            ));
            for s in &stale {
                eprintln!("  {}", super::term::clean(&s.to_string()));
            }
            super::output::print_hint("run `fleetform plan` again and review the new plan");
            Ok(ExitStatus::Failure)
        }
        e @ ApplyError::Refused(_) => Err(e.into()),
        ApplyError::Check(e) => {
            Err(anyhow::Error::from(e).context("cannot check the plan against the cloud"))
        }
    }
}

/// Shows the plan, applies the safety checks, asks, applies, reports.
async fn execute(
    args: &ApplyArgs,
    client: &crate::cloud::Client,
    ready: Ready,
    opts: &reconcile::Options,
    held: &Held,
    saved: bool,
) -> anyhow::Result<ExitStatus> {
    let plan = ready.prepared().shared_plan();
    let color = super::output::stdout_color();
    let text_output = args.output == ApplyOutput::Text;
    if text_output {
        let opts = RenderOptions {
            color,
            detail: false,
        };
        render::render_each(&plan, Format::Text, &opts, &mut |piece| {
            crate::say!("{piece}")
        });
    }
    let lines = args.output == ApplyOutput::JsonLines;
    if lines {
        crate::sayln!("{}", reconcile::events::plan(&plan));
    }
    if plan.is_empty() {
        match args.output {
            ApplyOutput::Text => {}
            ApplyOutput::Json => crate::sayln!(
                "{}",
                serde_json::to_string_pretty(&json_report(&plan, None))?
            ),
            ApplyOutput::JsonLines => crate::sayln!("{}", reconcile::events::summary(None)),
        }
        return Ok(ExitStatus::Success);
    }
    if let Some(refusal) = ready.prepared().refusals().first() {
        bail!("{refusal}\nhint: {}", refusal.hint());
    }
    if args.keys.show_secrets && args.output != ApplyOutput::Text {
        bail!(
            "--show-secrets prints shell lines on stdout, which would break --output json\nhint: use --keys-out DIR to receive new API keys' secrets in files"
        );
    }
    let api: Arc<dyn CloudApi> = Arc::new(client.clone());
    let (fence, checked) = match ready {
        Ready::Checked(prechecked, fence) => (fence, prechecked.into_checked()),
        Ready::Prepared(prepared) => {
            if !args.yes {
                confirm(&plan)?;
            }
            // Fencing: the confirmation may have taken a while; write only if the lease is
            // still ours. The stale-plan check reads the cloud at the same time (one round
            // trip for both).
            tokio::join!(held.fence(), reconcile::check(Arc::clone(&api), prepared))
        }
    };
    let checked = match (fence, checked) {
        (Err(e), _) => return Err(e.into()),
        (Ok(()), Err(e)) => return apply_error(e, saved),
        (Ok(()), Ok(checked)) => checked,
    };

    let stop_tx = Arc::clone(&held.stop);
    let stop_rx = held.stop.subscribe();
    let ctrl_c = tokio::spawn(async move {
        super::signals::interrupt().await;
        eprintln!("\nInterrupted: finishing the calls in flight, starting nothing new…");
        let _ = stop_tx.send(true);
    });
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = tokio::spawn(show_progress(Arc::clone(&plan), events_rx, args.output));
    // The secrets of the keys the plan creates come back once, here.
    let (keys_tx, mut keys_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = opts.clone();
    opts.apply.new_keys = Some(keys_tx);
    let result = reconcile::apply_checked(api, checked, &opts, Some(events_tx), stop_rx).await;
    drop(opts);
    ctrl_c.abort();
    let _ = progress.await;
    let mut new_keys = vec![];
    while let Ok(k) = keys_rx.try_recv() {
        new_keys.push(k);
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => return apply_error(e, saved),
    };
    if held.lost() {
        eprintln!(
            "The organization's lease was taken over by another fleetform while applying; no change was started after that."
        );
    }

    match args.output {
        ApplyOutput::Text => print_summary(&report),
        ApplyOutput::Json => crate::sayln!(
            "{}",
            serde_json::to_string_pretty(&json_report(&plan, Some(&report)))?
        ),
        ApplyOutput::JsonLines => {
            crate::sayln!("{}", reconcile::events::summary(Some(&report)));
        }
    }
    // After the summary, so that `--show-secrets` lines come last.
    super::keys_cmd::deliver(&args.keys, new_keys)?;
    Ok(if held.lost() {
        ExitStatus::Failure
    } else if report.interrupted {
        ExitStatus::Interrupted
    } else if report.is_success() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn confirm(plan: &Plan) -> anyhow::Result<()> {
    ask_yes(
        &format!(
            "Apply these {} change(s) to organization {}?",
            plan.changes.len(),
            plan.organization_name
        ),
        "apply",
        "review the plan, then pass --yes",
    )
}

/// Asks `question` on a terminal and goes on only on `yes`; without a terminal it refuses,
/// with `hint`. `verb` names the action in the refusal (`apply`, `rotate`).
pub(super) fn ask_yes(question: &str, verb: &str, hint: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {verb} without confirmation: stdin is not a terminal\nhint: {hint}");
    }
    eprint!(
        "\n{} Only 'yes' will be accepted: ",
        super::term::clean(question)
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("{verb} cancelled; nothing was changed");
    }
    Ok(())
}

/// Renders engine events: a progress bar on a terminal, else one line per finished change.
async fn show_progress(
    plan: Arc<Plan>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    output: ApplyOutput,
) {
    let text_output = output == ApplyOutput::Text;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(plan.changes.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    // On a terminal the bar replaces the per-change lines, so applied changes are recorded
    // above it: each one for a small plan, grouped by action and kind for a large one.
    let each = plan.changes.len() <= RECORD_EACH_UP_TO;
    let mut record = Record::default();
    let by_id: std::collections::HashMap<&str, &crate::plan::Change> =
        plan.changes.iter().map(|c| (c.id.as_str(), c)).collect();
    while let Some(e) = events.recv().await {
        match e {
            Event::Started { id } => {
                let change = by_id.get(id.as_str()).copied();
                if let (ApplyOutput::JsonLines, Some(c)) = (output, change) {
                    crate::sayln!("{}", reconcile::events::change(c, None));
                }
                if let (Some(bar), Some(c)) = (&bar, change) {
                    bar.set_message(format!(
                        "{} {} {}",
                        c.action.mark(),
                        c.kind.as_str(),
                        c.path
                    ));
                }
            }
            Event::Finished { id, outcome } => {
                let Some(&c) = by_id.get(id.as_str()) else {
                    continue;
                };
                let outcome = reconcile::named_blocker(&plan, outcome);
                if output == ApplyOutput::JsonLines {
                    crate::sayln!("{}", reconcile::events::change(c, Some(&outcome)));
                }
                let line = outcome_line(c.action, c.kind.as_str(), &c.path, &outcome);
                match &bar {
                    Some(bar) => {
                        bar.inc(1);
                        if outcome != Outcome::Applied || each {
                            bar.println(line);
                        } else {
                            record.add(c.action, c.kind.as_str(), &c.path);
                        }
                    }
                    None if text_output => crate::sayln!("{line}"),
                    None => {}
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        for line in record.lines() {
            eprintln!("{}", super::term::clean(&line));
        }
    }
}

/// Plans up to this size record every applied change on a terminal; larger ones, a grouped
/// record ([`Record`]).
const RECORD_EACH_UP_TO: usize = 50;

/// Applied changes grouped by action and kind, with a few example paths: what a terminal
/// apply of a large plan leaves behind (`applied  + 1000 machine: HQ/a, HQ/b, HQ/c and 997
/// more`). Failures, conflicts and skips are always shown one by one.
#[derive(Default)]
struct Record {
    groups: Vec<(Action, String, usize, Vec<String>)>,
}

impl Record {
    const EXAMPLES: usize = 3;

    fn add(&mut self, action: Action, kind: &str, path: &str) {
        let group = match self
            .groups
            .iter_mut()
            .find(|(a, k, ..)| *a == action && k == kind)
        {
            Some(g) => g,
            None => {
                self.groups.push((action, kind.to_string(), 0, vec![]));
                self.groups.last_mut().expect("just pushed")
            }
        };
        group.2 += 1;
        if group.3.len() < Self::EXAMPLES {
            group.3.push(path.to_string());
        }
    }

    fn lines(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|(action, kind, n, examples)| {
                let more = n - examples.len();
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!(
                    "applied  {} {n} {kind}: {}{tail}",
                    action.mark(),
                    examples.join(", ")
                )
            })
            .collect()
    }
}

/// One line of apply's report; terminal-safe (see [`super::term`]).
fn outcome_line(action: Action, kind: &str, path: &str, outcome: &Outcome) -> String {
    super::term::clean(&outcome_text(action, kind, path, outcome)).into_owned()
}

fn outcome_text(action: Action, kind: &str, path: &str, outcome: &Outcome) -> String {
    let what = format!("{} {kind} {path}", action.mark());
    match outcome {
        Outcome::Applied => format!("applied  {what}"),
        Outcome::Failed { cause } => format!("failed   {what}: {cause}"),
        Outcome::Conflict { cause } => format!("conflict {what}: {cause}"),
        Outcome::Skipped { because } => {
            format!("skipped  {what} (it needs {because}, which did not apply)")
        }
        Outcome::NotStarted => format!("skipped  {what} (apply stopped before it started)"),
    }
}

fn print_summary(report: &Report) {
    let problems: Vec<_> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. } | Outcome::Conflict { .. }))
        .collect();
    if !problems.is_empty() {
        crate::sayln!("\nFailed:");
        for r in &problems {
            crate::sayln!(
                "  {}",
                outcome_line(r.action, r.kind.as_str(), &r.path, &r.outcome)
            );
        }
    }
    let head = if report.unreachable.is_some() {
        "Apply stopped: the cloud is unreachable"
    } else if report.interrupted {
        "Apply interrupted"
    } else if report.is_success() {
        "Apply complete"
    } else {
        "Apply finished with errors"
    };
    crate::sayln!(
        "\n{head}: {} applied, {} failed, {} skipped.",
        report.applied(),
        report.failed(),
        report.skipped()
    );
    if let Some(o) = &report.rollout {
        crate::sayln!(
            "{}",
            super::term::clean(&super::rollout_cmd::outcome_line(o))
        );
    }
    if let Some(cause) = &report.unreachable {
        println!(
            "{}",
            super::term::clean(&format!(
                "The last {} changes in a row failed to reach the cloud (last error: {cause}); nothing new was started.",
                apply::UNREACHABLE_AFTER
            ))
        );
    }
    if let Some(o) = report.rollout.as_ref().filter(|o| {
        matches!(
            o.status,
            Some(crate::rollout::Status::RolledBack | crate::rollout::Status::Stopped)
        )
    }) {
        let what = match o.status {
            Some(crate::rollout::Status::RolledBack) => {
                "every machine it changed is back on its previous config"
            }
            _ => "the machines it changed were left as they are",
        };
        crate::sayln!(
            "The rollout aborted and {what}; fix the manifest, then apply again (`fleetform rollout status` shows each machine's health)."
        );
        return;
    }
    let not_started = report.count(|o| *o == Outcome::NotStarted);
    if not_started > 0 {
        crate::sayln!(
            "{not_started} change(s) were not started; run the same apply again to finish."
        );
    }
    if !report.is_success() && !report.interrupted {
        crate::sayln!(
            "Run the same apply again to retry what failed; it plans from the cloud as it is now."
        );
    }
}

/// The `--output json` report (format_version 1): the plan's summary and, after applying, each
/// change's outcome (`applied`, `failed`, `conflict`, `skipped`, `not_started`).
fn json_report(plan: &Plan, report: Option<&Report>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "format_version": 1,
        "organization": { "id": plan.organization_id, "name": plan.organization_name },
        "plan_summary": plan.summary(),
        "results": report.map(|r| &r.results),
        "applied": report.map_or(0, Report::applied),
        "failed": report.map_or(0, Report::failed),
        "skipped": report.map_or(0, Report::skipped),
        "interrupted": report.is_some_and(|r| r.interrupted),
        "unreachable": report.and_then(|r| r.unreachable.as_deref()),
    });
    // Only with a staged rollout: how it ended (`crate::rollout::RolloutOutcome`).
    if let (Some(o), Some(obj)) = (report.and_then(|r| r.rollout.as_ref()), doc.as_object_mut()) {
        obj.insert(
            "rollout".into(),
            serde_json::to_value(o).unwrap_or_default(),
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_told_from_a_saved_plan_by_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let long_blank = format!("{}{{}}", " \n".repeat(5000));
        for (text, maybe) in [
            ("organization: acme\n", false),
            ("", false),
            ("\n\n  {\"format_version\": 3}", true),
            (long_blank.as_str(), true),
            ("{organization: acme}", true),
        ] {
            assert_eq!(may_be_saved_plan(&file("f", text)), maybe, "{text:.20?}");
        }
        // What cannot be peeked at is read whole, which reports it.
        assert!(may_be_saved_plan(&dir.path().join("missing")));
        assert!(may_be_saved_plan(dir.path()));
    }

    #[test]
    fn a_large_terminal_apply_leaves_a_grouped_record() {
        let mut r = Record::default();
        for i in 0..1000 {
            r.add(Action::Create, "machine", &format!("HQ/m{i:04}"));
        }
        r.add(Action::Update, "part", "HQ/m0000/main");
        assert_eq!(
            r.lines(),
            [
                "applied  + 1000 machine: HQ/m0000, HQ/m0001, HQ/m0002 and 997 more",
                "applied  ~ 1 part: HQ/m0000/main",
            ]
        );
    }
}
