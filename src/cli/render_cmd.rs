//! `fleetform render MANIFEST`: the fully expanded manifest, like `helm template` or
//! `kustomize build`: includes merged, templates and inventories expanded, patches applied,
//! configs inline, written in the canonical layout. Reviewers diff it to see what a template
//! change does; it loads back to the same model.
//!
//! `${env:NAME}` references must resolve (as for `validate`), but are written as the
//! references, never as their values.

use super::output::ExitStatus;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Needs no cloud and no credentials. Exit 1 when the manifest is invalid.

Examples:
  fleetform render fleet.yaml > expanded.yaml
  diff <(git show main:fleet.yaml | fleetform render /dev/stdin) <(fleetform render fleet.yaml)";

/// Arguments of `fleetform render`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RenderArgs {
    /// The manifest (YAML) to expand.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Runs `fleetform render`.
pub fn run(args: &RenderArgs) -> anyhow::Result<ExitStatus> {
    match crate::manifest::load(&args.manifest) {
        Ok(desired) => {
            let out = crate::manifest::export::export(&desired, &Default::default());
            crate::say!("{}", out.manifest);
            Ok(ExitStatus::Success)
        }
        Err(err) => {
            eprintln!("{}", super::term::clean(&err.to_string()));
            Ok(ExitStatus::Failure)
        }
    }
}
