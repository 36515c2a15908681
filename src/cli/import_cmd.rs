//! `fleetform import`: write a manifest of what an organization already holds, so an existing
//! fleet can adopt fleetform. The manifest plans with zero changes against the same cloud.
//!
//! Steps: choose the organization, read it (one observation over the chosen subtrees, with
//! bounded concurrency: [`crate::cloud::observe::observe_scope`]), turn the observation into a
//! [`crate::model::Desired`] model ([`crate::manifest::from_observed::build`], pure, which
//! also documents what a manifest cannot express and what import does instead), write it with
//! [`crate::manifest::export`], check that the text parses back, and write it out.

use super::output::ExitStatus;
use super::resolve::{self, Places};
use super::status_cmd::{emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::cloud::observe::{ObserveOptions, observe_for_import};
use crate::manifest::export::{ExportOptions, export};
use crate::manifest::from_observed::build;
use crate::manifest::write::relative_to;
use anyhow::{Context, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

const AFTER_HELP: &str = "\
The manifest declares every location, machine, part and fragment read, with their configs,
and the organization's invites under `access:`. `fleetform plan` on it shows no changes; from
then on, edit the manifest instead of the Viam app. What a manifest cannot express (duplicate
sibling names, fragments of other organizations, …) is left out with a `warning:` on stderr.

Examples:
  fleetform import > fleet.yaml && fleetform plan fleet.yaml --detailed-exitcode
  fleetform import --org acme --out fleet.yaml --config-dir configs
  fleetform import --location HQ/Assembly --location Warehouse --out assembly.yaml";

/// Arguments of `fleetform import`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ImportArgs {
    /// The organization to import (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// Import only this location and everything inside it (a path such as `HQ/Assembly`, or a
    /// location id). Repeatable. Its parent locations are declared too, holding only it;
    /// only fragments its parts use are imported.
    #[arg(long = "location", value_name = "PATH")]
    pub locations: Vec<String>,

    /// Write each config to its own JSON file under DIR (`DIR/<part path>.json`,
    /// `DIR/fragments/<name>.json`) and refer to it with `config_file:`, instead of inline.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Write the manifest to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE and config files that already exist.
    #[arg(long)]
    pub force: bool,

    /// `text`: the manifest on stdout (unless --out) and a summary on stderr. `json`: a report
    /// on stdout with the manifest text, the files written and the warnings.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

/// Runs `fleetform import`.
pub async fn run(args: ImportArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let target = resolve::connect_org(global, args.org.as_deref()).await?;
    let result = import(&args, &target.client).await;
    target.finish(result).await
}

async fn import(args: &ImportArgs, api: &dyn CloudApi) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let places = Places::load(api, &org.id, false).await?;
    let mut roots: Vec<String> = vec![];
    for arg in &args.locations {
        let (_, l) = places.location(arg)?;
        if !roots.contains(&l.id) {
            roots.push(l.id.clone());
        }
    }
    let limited = !roots.is_empty();
    if !limited {
        roots = places
            .locations
            .iter()
            .filter(|l| l.parent_id.is_none())
            .map(|l| l.id.clone())
            .collect();
    }
    let (observed, org_name_shared) =
        observe_for_import(api, &org, &roots, &ObserveOptions::default())
            .await
            .with_context(|| format!("cannot read organization `{}` ({})", org.name, org.id))?;
    let built = build(
        &observed,
        limited.then_some(roots.as_slice()),
        org_name_shared,
    );

    // The text, and where its config files go.
    let manifest_dir: PathBuf = match &args.out {
        Some(out) => out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        None => PathBuf::from("."),
    };
    let config_dir = match &args.config_dir {
        None => None,
        Some(dir) => Some(
            relative_to(&manifest_dir, dir)
                .with_context(|| format!("cannot resolve `{}`", dir.display()))?,
        ),
    };
    let mut header = vec![format!(
        "Imported from organization `{}` ({}) by `fleetform import`.",
        org.name, org.id
    )];
    header.push(
        "`fleetform plan` on this file should show no changes; edit it instead of the Viam app."
            .into(),
    );
    if limited {
        header.push(
            "Only some locations were imported: their parents hold only them here, so keep prune off."
                .into(),
        );
    }
    let exported = export(&built.desired, &ExportOptions { config_dir, header });

    // Refuse to overwrite, then write the config files, check the manifest, write it.
    let file_paths: Vec<PathBuf> = exported
        .files
        .iter()
        .map(|f| manifest_dir.join(&f.path))
        .collect();
    if !args.force {
        let existing: Vec<String> = args
            .out
            .iter()
            .chain(file_paths.iter())
            .filter(|p| p.exists())
            .map(|p| format!("`{}`", p.display()))
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist{}: {}\nhint: pass --force to overwrite, or choose another --out / --config-dir",
                if existing.len() == 1 {
                    "a file"
                } else {
                    "files"
                },
                if existing.len() == 1 { "s" } else { "" },
                existing.join(", ")
            );
        }
    }
    for (file, path) in exported.files.iter().zip(&file_paths) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        crate::fsutil::write_atomic(path, file.contents.as_bytes())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let check_path = args
        .out
        .clone()
        .unwrap_or_else(|| manifest_dir.join("fleet.yaml"));
    if let Err(e) = crate::manifest::parse_str(&exported.manifest, &check_path, &|_| None) {
        bail!("the imported manifest does not validate (a fleetform bug; please report it):\n{e}");
    }
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        crate::fsutil::write_atomic(out, exported.manifest.as_bytes())
            .with_context(|| format!("cannot write the manifest to `{}`", out.display()))?;
    }

    // Report.
    let counts = &built.counts;
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let report = serde_json::json!({
                "organization": { "id": org.id, "name": org.name },
                "out": args.out.as_ref().map(|p| p.display().to_string()),
                "manifest": exported.manifest,
                "config_files": file_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "counts": counts,
                "warnings": built.warnings,
            });
            outln!(out, "{}", serde_json::to_string_pretty(&report)?);
        }
        OutputFormat::Text => {
            if args.out.is_none() {
                let mut stdout = std::io::stdout().lock();
                match stdout
                    .write_all(exported.manifest.as_bytes())
                    .and_then(|()| stdout.flush())
                {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other.context("cannot write the manifest to stdout")?,
                }
            }
            for w in &built.warnings {
                eprintln!("warning: {}", super::term::clean(&w.to_string()));
            }
            eprintln!(
                "Imported {} from organization `{}` ({}).",
                counts.describe(),
                org.name,
                org.id
            );
            if let Some(out) = &args.out {
                eprintln!(
                    "Wrote {}{}; check it with: fleetform plan {}",
                    out.display(),
                    match file_paths.len() {
                        0 => String::new(),
                        1 => " and 1 config file".to_string(),
                        n => format!(" and {n} config files"),
                    },
                    out.display()
                );
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}
