//! `fleetform fmt [--check] MANIFEST…`: rewrite manifests in the canonical layout (see
//! [`crate::manifest::layout`] for what the layout is and what the formatter never does).
//!
//! Every result is checked before it is written: the formatted text must parse to exactly the
//! same YAML documents as the original. If it would not, the file is left untouched and
//! reported as one that cannot be formatted, with exit code 1, rather than risk changing its
//! meaning.
//!
//! `--check` writes nothing: it lists the files that are not formatted and exits 1 if any
//! is, for CI. Files are rewritten atomically ([`crate::fsutil::write_atomic`]).

use super::output::ExitStatus;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Comments and the order of keys are kept; only whitespace changes.

Exit codes:
  0  every file is formatted (or was rewritten)
  1  with --check: a file is not formatted; or a file cannot be read, parsed or formatted safely

Examples:
  fleetform fmt fleet.yaml
  fleetform fmt --check fleet.yaml staging.yaml    # in CI
  fleetform fmt --diff fleet.yaml                  # show what would change";

/// Arguments of `fleetform fmt`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct FmtArgs {
    /// The manifests (YAML) to format in place.
    #[arg(value_name = "MANIFEST", required = true)]
    pub manifests: Vec<PathBuf>,

    /// Write nothing; list the files that are not formatted and exit 1 if any.
    #[arg(long)]
    pub check: bool,

    /// Write nothing; print a diff of what formatting would change.
    #[arg(long)]
    pub diff: bool,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Runs `fleetform fmt`.
pub fn run(args: &FmtArgs) -> anyhow::Result<ExitStatus> {
    let limit = crate::manifest::LoadOptions::default().max_file_bytes;
    let mut failed = false;
    let mut unformatted = false;
    for path in &args.manifests {
        let shown = path.display();
        let bytes = match crate::manifest::read_bounded(path, limit) {
            Ok(b) => b,
            Err(e) => {
                super::output::print_error(
                    &anyhow::Error::new(e).context(format!("cannot read `{shown}`")),
                );
                failed = true;
                continue;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            super::output::print_error_message(&format!("cannot format `{shown}`: not UTF-8 text"));
            failed = true;
            continue;
        };
        let formatted = match crate::manifest::layout::format_checked(&text) {
            Ok(f) => f,
            Err(why) => {
                super::output::print_error_message(&format!(
                    "cannot format `{shown}`: {why}; left unchanged"
                ));
                failed = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted = true;
        if args.diff {
            let diff = similar::TextDiff::from_lines(&text, &formatted)
                .unified_diff()
                .header(&format!("{shown}"), &format!("{shown} (formatted)"))
                .to_string();
            super::term::print_stdout(&diff)?;
        }
        if args.check || args.diff {
            if args.check {
                eprintln!("{}", super::term::clean(&format!("not formatted: {shown}")));
            }
            continue;
        }
        crate::fsutil::write_atomic(path, formatted.as_bytes())
            .with_context(|| format!("cannot write `{shown}`"))?;
        eprintln!("{}", super::term::clean(&format!("formatted {shown}")));
    }
    Ok(if failed || (args.check && unformatted) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
