//! `fleetform status [MANIFEST]`: the organization as a tree of locations, machines and parts,
//! with each machine's and part's online state and last access, and, given a manifest,
//! whether each part's config is in sync with it.
//!
//! Without a manifest the organization comes from `--org` (or is the only one the key sees).
//! With one, its `organization:` is used. What a part's sync state means, and how it is
//! found, is in [`crate::reconcile::status`]; this file handles the arguments and renders.

use super::output::ExitStatus;
use super::resolve;
use super::target::{self, LocalOrg};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::model::{Desired, OnlineState, OrgRef, Timestamp};
use crate::plan::human_age;
use crate::reconcile::status::{LocationNode, StatusReport, SyncState, sync_counts};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  fleetform status                       # the tree of the only organization the key sees
  fleetform status fleet.yaml            # and whether each part matches the manifest
  fleetform status --org acme --output json";

/// Arguments of `fleetform status`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct StatusArgs {
    /// A manifest to compare each part's config with (its `organization:` is the one shown).
    #[arg(value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// The organization to show (a name or an id), when no manifest names it.
    #[arg(long, value_name = "ORG", conflicts_with = "manifest")]
    pub org: Option<String>,

    /// `text` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
    /// The size limit of the files read.
    #[command(flatten)]
    pub files: super::FileLimitArgs,
}

/// Runs `fleetform status`.
pub async fn run(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let desired = match &args.manifest {
        None => None,
        Some(path) => match crate::manifest::load(path) {
            Ok(d) => Some(d),
            Err(err) => {
                eprintln!("{err}");
                return Ok(ExitStatus::Failure);
            }
        },
    };
    let (target, wanted) = match &desired {
        Some(d) => {
            let (local, wanted) = match &d.organization {
                OrgRef::Name(n) => (LocalOrg::Name(n), n.clone()),
                OrgRef::Id(id) => (LocalOrg::Id(id), id.clone()),
            };
            (target::connect_for(global, local).await?, Some(wanted))
        }
        None => (
            resolve::connect_org(global, args.org.as_deref()).await?,
            args.org.clone(),
        ),
    };
    let result = status(&args, &target.client, desired.as_ref(), wanted.as_deref()).await;
    target.finish(result).await
}

async fn status(
    args: &StatusArgs,
    api: &dyn CloudApi,
    desired: Option<&Desired>,
    wanted: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, wanted).await?;
    let opts = super::plan_cmd::reconcile_options(None, false);
    let report: StatusReport = crate::reconcile::status::status(api, &org, desired, &opts)
        .await
        .with_context(|| format!("cannot read organization `{}` ({})", org.name, org.id))?;
    let plan_summary = report.plan.as_ref().map(super::render::summary_line);
    let others = report
        .plan
        .as_ref()
        .map(crate::reconcile::status::outside_the_tree)
        .unwrap_or_default();
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "organization": { "id": org.id, "name": org.name },
                "manifest": args.manifest.as_ref().map(|p| p.display().to_string()),
                "plan": plan_summary,
                "out_of_sync": others,
                "warnings": report.warnings,
                "locations": report.locations,
            });
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            for w in &report.warnings {
                eprintln!("warning: {}", super::term::clean(&w.to_string()));
            }
            outln!(out, "Organization `{}` ({})", org.name, org.id);
            if let (Some(path), Some(summary)) = (&args.manifest, &plan_summary) {
                outln!(out, "Manifest {}: {summary}", path.display());
            }
            outln!(out);
            if report.locations.is_empty() {
                outln!(out, "No locations.");
            }
            let now = Timestamp::now();
            let mut lines = vec![];
            for l in &report.locations {
                tree_lines(l, 0, now, &mut lines);
            }
            let width = lines
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0);
            for (name, rest) in lines {
                let pad = width - name.chars().count();
                outln!(out, "{name}{}  {rest}", " ".repeat(pad));
            }
            if report.synced {
                let counts = sync_counts(&report.locations);
                outln!(out);
                outln!(
                    out,
                    "{} in sync, {} drifted, {} not in manifest.",
                    counts.0,
                    counts.1,
                    counts.2
                );
            }
            if !others.is_empty() {
                outln!(out);
                outln!(out, "Out of sync outside the tree above:");
                for o in &others {
                    let reason = if o.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", o.reason)
                    };
                    outln!(out, "  {} {} {}{reason}", o.action, o.kind, o.path);
                }
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// A part's sync state, in words.
fn sync_text(sync: &SyncState) -> String {
    match sync {
        SyncState::InSync => "in sync".to_string(),
        SyncState::NotInManifest => "not in manifest".to_string(),
        SyncState::Drifted { reason, who, when } => {
            let mut s = format!("drifted: {reason}");
            if let Some(who) = who {
                s.push_str(&format!("; last changed by {who}"));
                if let Some(when) = when {
                    s.push_str(&format!(" at {when}"));
                }
            }
            s
        }
    }
}

/// `(name column, rest)` lines of the text tree for `l` and everything inside it.
fn tree_lines(l: &LocationNode, depth: usize, now: Timestamp, out: &mut Vec<(String, String)>) {
    let indent = "  ".repeat(depth);
    out.push((format!("{indent}{}", l.name), format!("location  {}", l.id)));
    for child in &l.locations {
        tree_lines(child, depth + 1, now, out);
    }
    for m in &l.machines {
        out.push((
            format!("{indent}  {}", m.name),
            format!(
                "machine   {:<14}  last access {}",
                state(m.online_state),
                ago(m.last_access, now)
            ),
        ));
        for p in &m.parts {
            let main = if p.main { " (main)" } else { "" };
            let mut rest = format!(
                "part      {:<14}  last access {}",
                state(p.online_state),
                ago(p.last_access, now)
            );
            if let Some(s) = &p.sync {
                rest.push_str(&format!("  {}", sync_text(s)));
            }
            out.push((format!("{indent}    {}{main}", p.name), rest));
        }
    }
}

fn state(s: OnlineState) -> &'static str {
    match s {
        OnlineState::Unknown => "unknown",
        OnlineState::Online => "online",
        OnlineState::Offline => "offline",
        OnlineState::AwaitingSetup => "awaiting setup",
    }
}

/// Appends a line to a `String` being built for [`emit`]: `outln!(out)` or
/// `outln!(out, "{x}")`.
macro_rules! outln {
    ($out:ident) => {
        $out.push('\n')
    };
    ($out:ident, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}
pub(super) use outln;

/// Writes a command's output to stdout in one go. A reader that went away
/// (`fleetform status | head`) is not an error: the output is simply cut short.
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(super::term::clean(text).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// `5m ago`, `just now`, or `never`.
pub(super) fn ago(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        None => "never".to_string(),
        Some(t) if t.seconds <= 0 && t.nanos == 0 => "never".to_string(),
        Some(t) => match t.seconds_until(now) {
            s if s < 1 => "just now".to_string(),
            s => format!("{} ago", human_age(s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan;
    use crate::reconcile::status::tests::{desired, observed};
    use crate::reconcile::status::{classify, tree};
    use serde_json::json;

    #[test]
    fn the_tree_renders_states_ages_and_sync() {
        let o = observed();
        let d = desired(json!({"a": 1}), json!({"b": 2}));
        let plan = plan::plan(&d, &o, &plan::Options::default()).unwrap();
        let sync = classify(&d, &plan, &o);
        let locations = tree(&o, Some(&sync));
        let now = Timestamp {
            seconds: 1300,
            nanos: 0,
        };
        let mut lines = vec![];
        tree_lines(&locations[0], 0, now, &mut lines);
        assert_eq!(
            lines[0],
            ("HQ".to_string(), "location  hq00000001".to_string())
        );
        assert_eq!(lines[1].0, "  arm");
        assert!(
            lines[1].1.contains("online") && lines[1].1.contains("last access 5m ago"),
            "{lines:?}"
        );
        assert_eq!(lines[2].0, "    arm-main (main)");
        assert!(
            lines[2].1.ends_with("last access never  in sync"),
            "{lines:?}"
        );
        assert!(lines[3].1.contains("drifted: config differs"), "{lines:?}");
        assert!(lines[4].1.ends_with("not in manifest"), "{lines:?}");
    }

    #[test]
    fn ages_read_naturally() {
        let now = Timestamp {
            seconds: 1_000_000,
            nanos: 0,
        };
        assert_eq!(ago(None, now), "never");
        assert_eq!(
            ago(
                Some(Timestamp {
                    seconds: 999_990,
                    nanos: 0
                }),
                now
            ),
            "10s ago"
        );
        assert_eq!(ago(Some(now), now), "just now");
        assert_eq!(
            ago(
                Some(Timestamp {
                    seconds: 1_000_000 - 2 * 86_400,
                    nanos: 0
                }),
                now
            ),
            "2d ago"
        );
    }
}
