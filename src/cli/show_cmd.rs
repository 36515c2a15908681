//! `fleetform show PLANFILE`: render a plan saved by `fleetform plan --out`.
//!
//! Reads the saved plan and prints it in any plan format (`text`, `json`, `markdown`) exactly
//! as `plan` would have, without connecting to a cloud: for reviewing a plan made in CI, or
//! turning it into a pull-request comment. Values that were sensitive are shown as
//! `(sensitive)`; the file holds only their hashes.
//!
//! It reads `.fleetform/` only to learn which values were ever sensitive (never writes it).

use super::output::ExitStatus;
use super::render::Format;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Needs no cloud and no credentials.

Examples:
  fleetform plan fleet.yaml --out plan.json
  fleetform show plan.json
  fleetform show plan.json -o markdown > comment.md
  fleetform show plan.json -o json | jq '.summary'";

/// Arguments of `fleetform show`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ShowArgs {
    /// A plan file saved by `fleetform plan --out`.
    #[arg(value_name = "PLANFILE")]
    pub plan: PathBuf,

    /// How to print the plan: `text`, `json` (format_version 2) or `markdown`.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    pub output: Format,

    /// Show every step, including the temporary names that swaps and rotations go through.
    #[arg(long)]
    pub detail: bool,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Whether `path` holds a plan saved by `fleetform plan --out` (so a command that wanted a
/// manifest can say what to do with it instead).
pub(super) fn is_saved_plan(path: &std::path::Path) -> bool {
    let limit = crate::manifest::LoadOptions::default().max_file_bytes;
    crate::manifest::read_bounded(path, limit)
        .is_ok_and(|b| super::apply_cmd::read_saved_plan(&String::from_utf8_lossy(&b)).is_some())
}

/// Runs `fleetform show`.
pub fn run(args: &ShowArgs) -> anyhow::Result<ExitStatus> {
    let limit = crate::manifest::LoadOptions::default().max_file_bytes;
    let bytes = crate::manifest::read_bounded(&args.plan, limit)
        .with_context(|| format!("cannot read `{}`", args.plan.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let Some(saved) = super::apply_cmd::read_saved_plan(&text) else {
        anyhow::bail!(
            "`{}` is not a saved plan\nhint: save one with `fleetform plan MANIFEST --out {}`; \
             to check a manifest use `fleetform validate`",
            args.plan.display(),
            args.plan.display()
        );
    };
    let (mut plan, _salt) =
        saved.with_context(|| format!("cannot read the plan in `{}`", args.plan.display()))?;
    super::apply_cmd::local_ledger().mark_plan(&mut plan);
    super::plan_cmd::print_plan(&plan, args.output, args.detail)?;
    Ok(ExitStatus::Success)
}
