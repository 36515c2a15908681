//! `fleetform plan MANIFEST`: what apply would change to make the cloud match a manifest.
//!
//! Steps: load the manifest (a bad one is reported before any cloud call), connect, prepare
//! ([`crate::reconcile::prepare`]: observe, plan, attribute drift), render to stdout, and
//! optionally save the plan for `fleetform apply FILE`.

use super::GlobalArgs;
use super::output::ExitStatus;
use super::render::{self, Format, RenderOptions};
use super::target::{self, LocalOrg};
use crate::cloud::CloudApi;
use crate::cloud::observe::{Early, ObserveOptions};
use crate::model::{Desired, OrgRef};
use crate::plan::Plan;
use crate::reconcile::{Options, PrepareError, Prepared, Step};
use anyhow::Context;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Shown after the options in `fleetform plan --help` and `-h`.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (with --detailed-exitcode: success and no changes)
  1  error: invalid manifest, unreachable cloud, or a plan that cannot be made
  2  with --detailed-exitcode only: success, and there are changes to apply

Examples:
  fleetform plan fleet.yaml
  fleetform plan fleet.yaml --detailed-exitcode      # in CI: fail or flag on drift
  fleetform plan fleet.yaml --out plan.json && fleetform apply plan.json
  fleetform plan fleet.yaml --output markdown > comment.md";

/// Arguments of `fleetform plan`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PlanArgs {
    /// The manifest (YAML) that says what the organization should hold.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,

    /// Also save the plan as JSON to FILE, for `fleetform apply FILE`.
    ///
    /// Apply then performs exactly these changes, and refuses to if the cloud changed since
    /// (a stale plan). Sensitive values are saved only as SHA-256 hashes.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// How to print the plan on stdout.
    ///
    /// `text` for people (coloured at a terminal unless NO_COLOR is set), `json` for programs
    /// (a versioned document, `format_version` 2), `markdown` for a pull-request comment.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub output: Format,

    /// Show every step, including the temporary names that swaps and rotations go through.
    ///
    /// Without it, a swap shows as the moves asked for. `--output json` always has every step.
    #[arg(long)]
    pub detail: bool,

    /// Exit 2 when there are changes, 0 when there are none (1 is always an error).
    ///
    /// Without it, a successful plan exits 0 whether or not it has changes.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Plan to delete undeclared resources inside managed locations and machines.
    ///
    /// The same as `prune: true` in the manifest. Without either, they are listed as
    /// unmanaged and kept. Undeclared top-level locations and fragments are never touched.
    #[arg(long)]
    pub prune: bool,

    /// Plan only these resources (repeatable): a location, machine or part path, or
    /// `fragment:NAME`; `*` and `?` match within one path component (`Field/rover-0*`).
    ///
    /// The plan covers them, everything inside them and what they need first (the locations
    /// above, fragments they use); nothing outside is created, changed or deleted.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,

    /// Most cloud reads in flight at once while observing.
    #[arg(
        long,
        value_name = "N",
        default_value_t = ObserveOptions::default().read_concurrency,
        value_parser = super::ranges::concurrency()
    )]
    pub read_concurrency: usize,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Runs `fleetform plan`.
pub async fn run(args: PlanArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    // A remote cloud is connected to, and read as far as it can be without the manifest,
    // while the manifest loads (`target::connect_early`). Nothing is printed until the
    // manifest has loaded, and a bad manifest drops the connection: it is reported as before.
    let observe = ObserveOptions {
        read_concurrency: args.read_concurrency,
        ..ObserveOptions::default()
    };
    let early = target::connect_early(global, observe);
    // 1. The manifest, before any cloud call: a bad manifest costs nothing and touches nothing.
    let desired: Desired = match crate::manifest::load(&args.manifest) {
        Ok(d) => d,
        Err(_) if super::show_cmd::is_saved_plan(&args.manifest) => {
            let shown = args.manifest.display();
            anyhow::bail!(
                "`{shown}` is a saved plan, not a manifest\nhint: print it with `fleetform show {shown}`, or apply it with `fleetform apply {shown}`"
            );
        }
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitStatus::Failure);
        }
    };
    check_targets(&desired, &args.targets)?;

    // 2. The cloud.
    let org = match &desired.organization {
        OrgRef::Name(name) => LocalOrg::Name(name),
        OrgRef::Id(id) => LocalOrg::Id(id),
    };
    let (target, early) = match early {
        Some(early) => {
            let (target, early, _lease) = early.finish(global).await?;
            (target, early)
        }
        None => (target::connect_for(global, org).await?, None),
    };
    let result = plan_and_print(&args, &target.client, &desired, early).await;
    super::drop_aside(desired);
    target.finish(result).await
}

/// Steps 3–6, against a connected cloud.
async fn plan_and_print(
    args: &PlanArgs,
    api: &dyn CloudApi,
    desired: &Desired,
    early: Option<Early>,
) -> anyhow::Result<ExitStatus> {
    let mut opts = reconcile_options(Some(args.read_concurrency), args.prune);
    opts.targets = args.targets.clone();
    // The ledger of sensitive values is kept only where `.fleetform/` already exists: a
    // plan creates nothing.
    let mut ledger = super::apply_cmd::local_ledger();
    ledger.remember(desired);
    if Path::new(target::LOCAL_DIR).is_dir()
        && let Err(e) = ledger.save()
    {
        tracing::warn!(error = %e, "cannot save the ledger of sensitive values");
    }
    let Some(mut prepared) = prepare(api, desired, &opts, early).await? else {
        return Ok(ExitStatus::Failure);
    };
    prepared.mark_sensitive(&ledger);
    let plan = prepared.into_plan();

    // 5. Print, and save.
    print_plan(&plan, args.output, args.detail)?;
    if let Some(out) = &args.out {
        crate::fsutil::write_atomic_private(out, render::json::saved_plan(&plan).as_bytes())
            .with_context(|| format!("cannot save the plan to `{}`", out.display()))?;
        eprintln!(
            "Saved the plan to {0}; apply it with: fleetform apply {0}",
            out.display()
        );
    }

    // 6. The exit code.
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}

/// Refuses `--target` addresses that do not parse or name nothing the manifest declares.
pub(super) fn check_targets(desired: &Desired, targets: &[String]) -> anyhow::Result<()> {
    crate::plan::target::parse_all(targets).map_err(|e| anyhow::anyhow!("--target {e}"))?;
    let unknown = crate::plan::target::undeclared(desired, targets);
    if let Some(first) = unknown.first() {
        anyhow::bail!(
            "--target `{first}` names nothing the manifest declares\nhint: an address is a location, machine or part path as declared (`Field/rover-07`) or `fragment:NAME`"
        );
    }
    Ok(())
}

/// The reconcile options of a command: `read_concurrency` (`None`: the default), `--prune`,
/// and this run's API key (so drift it made reads as [`crate::reconcile::OWN_KEY`]). The
/// delete budget and parallelism are the defaults; `apply` sets its own.
pub(super) fn reconcile_options(read_concurrency: Option<usize>, prune: bool) -> Options {
    let mut opts = Options {
        plan: crate::plan::Options { prune },
        own_key_id: target::own_key_id().map(String::from),
        ..Options::default()
    };
    if let Some(n) = read_concurrency {
        opts.observe.read_concurrency = n;
        opts.apply.read_parallelism = n;
    }
    opts
}

/// Steps 3–4 ([`crate::reconcile::prepare`]), with a progress line on a terminal. A read
/// failure is the error; a plan that cannot be made is printed and is `None`. Warnings are
/// printed.
pub(super) async fn prepare(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &Options,
    early: Option<Early>,
) -> anyhow::Result<Option<Prepared>> {
    let status = Status::new();
    let progress = progress(&status);
    let prepared = crate::reconcile::prepare_after(api, desired, opts, &progress, early).await;
    reported(prepared, |p| &p.warnings)
}

/// The status line a preparation's steps show.
pub(super) fn progress(status: &Status) -> impl Fn(Step) + Sync + '_ {
    |step: Step| match step {
        Step::Observing => status.show("Reading the cloud…"),
        Step::Attributing => status.show("Reading part history…"),
        Step::Idle => status.clear(),
    }
}

/// What a preparation answered, reported: its warnings printed; plan errors printed (then
/// `None`); an observation's failure returned.
pub(super) fn reported<T>(
    result: Result<T, PrepareError>,
    warnings: impl Fn(&T) -> &[String],
) -> anyhow::Result<Option<T>> {
    match result {
        Ok(prepared) => {
            for w in warnings(&prepared) {
                eprintln!("warning: {}", super::term::clean(w));
            }
            Ok(Some(prepared))
        }
        Err(PrepareError::Observe(e)) => Err(e.into()),
        Err(PrepareError::Plan(errors)) => {
            for e in &errors.0 {
                eprintln!("error: {}", super::term::clean(&e.to_string()));
            }
            Ok(None)
        }
    }
}

/// Prints `plan` on stdout in `format` (coloured at a terminal unless `NO_COLOR` is set);
/// a reader that went away (`fleetform plan … | head`) is not an error.
pub(super) fn print_plan(plan: &Plan, format: Format, detail: bool) -> anyhow::Result<()> {
    let color = super::output::stdout_color();
    let mut written = Ok(());
    render::render_each(
        plan,
        format,
        &RenderOptions { color, detail },
        &mut |piece| {
            if written.is_ok() {
                written = super::term::print_stdout(piece);
            }
        },
    );
    written.context("cannot write the plan to stdout")
}

/// A one-line progress message on stderr, shown only when stderr is a terminal (so logs and
/// CI output stay clean).
pub(super) struct Status {
    enabled: bool,
    spinner: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Status {
    pub(super) fn new() -> Self {
        Status {
            enabled: std::io::stderr().is_terminal(),
            spinner: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn show(&self, message: &str) {
        if !self.enabled {
            return;
        }
        let mut slot = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
        let spinner = slot.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        spinner.set_message(super::term::clean(message).into_owned());
    }

    pub(super) fn clear(&self) {
        let mut slot = self.spinner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(spinner) = slot.take() {
            spinner.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;

    /// A config drift on an existing part is attributed to whoever wrote the cloud's copy
    /// (here: fleetform's own local API key), and the drift renders with a diff.
    #[tokio::test]
    async fn config_drift_is_attributed_from_part_history() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalArgs {
            cloud: target::CloudArgs::default(),
            verbose: 0,
            when_missing: target::WhenMissing::Create,
            quiet_cloud: false,
        };
        let target =
            target::connect_local(&dir.path().join("cloud"), &global, LocalOrg::Name("acme"))
                .await
                .unwrap();
        let api: &dyn CloudApi = &target.client;
        let org_id = target.local_org_id.clone().unwrap();
        let loc = api.create_location(&org_id, "HQ", None).await.unwrap();
        let machine = api.new_machine("rover", &loc.id).await.unwrap();
        let main = api.get_parts(&machine).await.unwrap().remove(0);
        let edited =
            serde_json::json!({"components": [{"name": "cam", "attributes": {"fps": 60}}]});
        api.update_part(&main.id, &main.name, Some(&edited), None)
            .await
            .unwrap();

        let manifest = dir.path().join("fleet.yaml");
        std::fs::write(
            &manifest,
            "version: 1\norganization: acme\nlocations:\n  - name: HQ\n    machines:\n      - name: rover\n        parts:\n          - name: rover-main\n            config: { components: [ { name: cam, attributes: { fps: 30 } } ] }\n",
        )
        .unwrap();
        let desired = crate::manifest::load(&manifest).unwrap();
        let plan = crate::reconcile::prepare(api, &desired, &reconcile_options(None, false))
            .await
            .unwrap()
            .into_plan();
        target.close().await.unwrap();

        assert_eq!(plan.changes.len(), 1, "{plan:#?}");
        let change = &plan.changes[0];
        assert_eq!(change.path, "HQ/rover/rover-main");
        let attribution = change.attribution.as_ref().expect("drift is attributed");
        assert!(attribution.when.is_some(), "{attribution:?}");
        let who = attribution.who.as_deref().unwrap_or_default();
        assert!(!who.is_empty(), "{attribution:?}");

        let text = render::render(&plan, Format::Text, &RenderOptions::default());
        assert!(text.contains("-        \"fps\": 60"), "{text}");
        assert!(text.contains("+        \"fps\": 30"), "{text}");
        assert!(
            text.contains(&format!("last changed in the cloud by {who} at ")),
            "{text}"
        );
        assert!(
            text.ends_with("Plan: 0 to create, 1 to update, 0 to move, 0 to delete.\n"),
            "{text}"
        );
    }
}
