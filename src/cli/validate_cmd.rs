//! `fleetform validate MANIFEST…`: check manifests without any cloud.
//!
//! Runs everything `plan` checks before it connects: YAML syntax, the schema, references
//! between resources (fragments, paths), `${env:NAME}` templates and the config files a
//! manifest includes. It never connects to a cloud and never reads or creates `.fleetform/`,
//! so it is safe in any CI job and in an editor's save hook.
//!
//! Decisions where the issue was silent:
//! - `${env:NAME}` references are resolved from the environment, as `plan` would resolve
//!   them: a manifest that `plan` would reject for a missing variable is invalid here too.
//! - Several manifests may be given; every one is checked and all diagnostics are reported,
//!   and the exit code is 1 if any is invalid.
//! - `--output json` prints one document (`format_version` 1) on stdout:
//!   `{"format_version": 1, "valid": bool, "manifests": [{"file", "valid", "diagnostics":
//!   [{"file", "line", "column", "message", "hint"}]}]}`; text goes to stderr as for `plan`.

use super::OutputFormat;
use super::output::ExitStatus;
use crate::model::{Desired, DesiredLocation};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

/// The version of the `--output json` document; raised on any incompatible change.
pub const VALIDATE_FORMAT_VERSION: u32 = 1;

const AFTER_HELP: &str = "\
Needs no cloud, no credentials and no .fleetform/ directory.

Exit codes:
  0  every manifest is valid
  1  at least one manifest is invalid (every problem is listed)

Examples:
  fleetform validate fleet.yaml
  fleetform validate fleet.yaml staging.yaml -o json   # diagnostics for a program";

/// Arguments of `fleetform validate`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ValidateArgs {
    /// The manifests (YAML) to check.
    #[arg(value_name = "MANIFEST", required = true)]
    pub manifests: Vec<PathBuf>,

    /// How to report: `text` for people (on stderr), `json` for programs (on stdout).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Runs `fleetform validate`.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitStatus> {
    let mut all_valid = true;
    let mut reports = Vec::new();
    for path in &args.manifests {
        match crate::manifest::load(path) {
            Ok(desired) => {
                if args.output == OutputFormat::Text {
                    let line = format!("{}: valid ({})", path.display(), summary(&desired));
                    eprintln!("{}", super::term::clean(&line));
                }
                reports.push(json!({"file": path, "valid": true, "diagnostics": []}));
            }
            Err(err) => {
                all_valid = false;
                if args.output == OutputFormat::Text {
                    eprintln!("{}", super::term::clean(&err.to_string()));
                }
                reports.push(json!({
                    "file": path,
                    "valid": false,
                    "diagnostics": err.diagnostics,
                }));
            }
        }
    }
    if args.output == OutputFormat::Json {
        let doc = json!({
            "format_version": VALIDATE_FORMAT_VERSION,
            "valid": all_valid,
            "manifests": reports,
        });
        super::term::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    }
    Ok(if all_valid {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// What a valid manifest declares, in words: "organization acme, 2 locations, 3 machines, …".
fn summary(desired: &Desired) -> String {
    fn walk(locs: &[DesiredLocation], counts: &mut [usize; 3]) {
        for loc in locs {
            counts[0] += 1;
            counts[1] += loc.machines.len();
            counts[2] += loc.machines.iter().map(|m| m.parts.len()).sum::<usize>();
            walk(&loc.locations, counts);
        }
    }
    let mut counts = [0; 3];
    walk(&desired.locations, &mut counts);
    let org = match &desired.organization {
        crate::model::OrgRef::Name(n) | crate::model::OrgRef::Id(n) => n,
    };
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    format!(
        "organization {org}, {}, {}, {}, {}",
        plural(counts[0], "location"),
        plural(counts[1], "machine"),
        plural(counts[2], "part"),
        plural(desired.fragments.len(), "fragment"),
    )
}
