//! `fleetform history PART` and `fleetform history --fragment FRAGMENT`: who changed a part or a
//! fragment, when, and what: newest first, each edit as a unified diff of the config before and
//! after it (for a fragment, also the revision each edit made).
//!
//! Which edits there were, and what each changed, is the library's ([`crate::history`]); this
//! command resolves the part or fragment, reads its history and renders the edits.

use super::output::ExitStatus;
use super::resolve;
use super::status_cmd::{ago, emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::history::{Edit, edits, fragment_edits};
use crate::model::Timestamp;
use anyhow::{Context, bail};
use clap::Args;

const AFTER_HELP: &str = "\
PART is a part path (HQ/Assembly/arm-01/arm-01-main), a machine path (HQ/Assembly/arm-01, for
its main part) or a part id. With --fragment, the history of a fragment of the organization
(by name or id) instead: each edit is a new revision of the fragment.

Examples:
  fleetform history HQ/Assembly/arm-01/arm-01-main
  fleetform history HQ/Assembly/arm-01 -n 3 --output json
  fleetform history --fragment camera-kit";

/// Arguments of `fleetform history`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct HistoryArgs {
    /// The part: a part path, a machine path (its main part) or a part id.
    #[arg(value_name = "PART", required_unless_present = "fragment")]
    pub part: Option<String>,

    /// Show the history of this fragment (a name or an id) instead of a part's.
    #[arg(long, value_name = "FRAGMENT", conflicts_with = "part")]
    pub fragment: Option<String>,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// How many of the most recent edits to show.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10, value_parser = super::ranges::count())]
    pub count: usize,

    /// `text` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Which cloud, and with which key.
    #[command(flatten)]
    pub cloud: super::target::CloudArgs,
}

/// Runs `fleetform history`.
pub async fn run(args: HistoryArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let target = resolve::connect_org(global, args.org.as_deref()).await?;
    let result = history(&args, &target.client, &target.key_id).await;
    target.finish(result).await
}

async fn history(
    args: &HistoryArgs,
    api: &dyn CloudApi,
    own_key_id: &str,
) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let limit = i64::try_from(args.count.saturating_add(1)).unwrap_or(i64::MAX);
    let (subject, path, more, mut edits) = match (&args.fragment, &args.part) {
        (Some(wanted), _) => {
            let fragment = resolve::resolve_fragment(api, &org.id, wanted).await?;
            let path = fragment.name.clone();
            let entries = api
                .fragment_history(&fragment.id, Some(limit))
                .await
                .with_context(|| format!("cannot read the history of fragment `{path}`"))?;
            let more = entries.len() > args.count;
            let edits = fragment_edits(&fragment, &entries, args.count);
            let subject = serde_json::json!({ "fragment": { "id": fragment.id, "name": path } });
            (subject, path, more, edits)
        }
        (None, Some(arg)) => {
            let (path, mut part) = resolve::resolve_part(api, &org.id, arg).await?;
            let mut entries = api
                .part_history(&part.id, Some(limit))
                .await
                .with_context(|| format!("cannot read the history of `{path}`"))?;
            let more = entries.len() > args.count;
            // Every config is masked where a value was ever sensitive (by pointer in this
            // part, or by value anywhere) before it is compared or shown.
            let ledger = super::apply_cmd::local_ledger();
            let key = crate::sensitive::resource_key("part", &path);
            ledger.mask_config(&key, &mut part.config);
            for e in &mut entries {
                ledger.mask_config(&key, &mut e.old.config);
            }
            let edits = edits(&part, &entries, args.count, &path);
            let subject = serde_json::json!({ "part": { "id": part.id, "path": path } });
            (subject, path, more, edits)
        }
        (None, None) => bail!("name a PART or a --fragment"),
    };
    for e in &mut edits {
        if let Some(by) = &e.by {
            let editor = crate::model::Editor {
                kind: e.by_kind.clone().unwrap_or_default(),
                value: by.clone(),
            };
            e.by_name = Some(crate::reconcile::attribute::editor_in_words(
                &editor,
                Some(own_key_id),
            ));
        }
    }
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let mut doc = subject;
            doc["edits"] = serde_json::to_value(&edits)?;
            doc["more"] = more.into();
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            if edits.is_empty() {
                outln!(out, "`{path}` has no recorded edits.");
            }
            let now = Timestamp::now();
            for (i, e) in edits.iter().enumerate() {
                if i > 0 {
                    outln!(out);
                }
                out.push_str(&render_edit(e, now));
            }
            if more {
                outln!(out);
                outln!(
                    out,
                    "… older edits not shown; see more with -n {}",
                    args.count.saturating_mul(2).max(1)
                );
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// `WHEN  by WHO`, then what changed, indented.
fn render_edit(e: &Edit, now: Timestamp) -> String {
    let when = e
        .when
        .map_or_else(|| "(unknown time)".to_string(), |t| t.to_string());
    let who = match (&e.by, &e.by_kind) {
        _ if e.by_name.is_some() => e.by_name.clone().unwrap_or_default(),
        (Some(by), Some(kind)) => format!("{by} ({kind})"),
        (Some(by), None) => by.clone(),
        (None, _) => "(unknown)".to_string(),
    };
    let mut out = format!("{when}  by {who}  ({})\n", ago(e.when, now));
    if e.name_before != e.name_after {
        out.push_str(&format!(
            "  renamed `{}` → `{}`\n",
            e.name_before, e.name_after
        ));
    }
    if let (Some(before), Some(after)) = (e.main_before, e.main_after)
        && before != after
    {
        out.push_str(if after {
            "  became the main part\n"
        } else {
            "  stopped being the main part\n"
        });
    }
    if let (Some(before), Some(after)) = (&e.revision_before, &e.revision_after) {
        out.push_str(&format!("  revision {before} → {after}\n"));
    }
    if e.diff.is_empty() {
        if e.name_before == e.name_after && e.main_before == e.main_after {
            out.push_str("  (no config change)\n");
        }
    } else {
        for line in e.diff.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::{entry, fragment, fragment_entry, part};
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn an_edit_shows_when_who_renames_and_the_diff() {
        let v2 = part("arm", json!({"fps": 20}), 200);
        let current = part("arm-main", json!({"fps": 30}), 300);
        let edits = edits(&current, &[entry(v2, 300, "bob")], 10, "HQ/m/arm-main");
        let text = render_edit(&edits[0], at(400));
        assert!(
            text.starts_with("1970-01-01T00:05:00Z  by bob (api-key)  (1m ago)\n"),
            "{text}"
        );
        assert!(text.contains("  renamed `arm` → `arm-main`\n"), "{text}");
        assert!(
            text.contains("  --- HQ/m/arm-main 1970-01-01T00:03:20Z\n"),
            "{text}"
        );
        assert!(text.contains("  +  \"fps\": 30\n"), "{text}");
    }

    #[test]
    fn a_fragment_edit_shows_its_revision_and_no_main_part() {
        let r2 = fragment("kit", "2", json!({"fps": 20}));
        let current = fragment("kit", "3", json!({"fps": 30}));
        let edits = fragment_edits(&current, &[fragment_entry(r2, "3", 300)], 10);
        let text = render_edit(&edits[0], at(400));
        assert!(text.contains("  revision 2 → 3\n"), "{text}");
        assert!(!text.contains("main part"), "{text}");
    }

    #[test]
    fn an_edit_without_a_config_change_says_so() {
        let old = part("a", serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap(), 1);
        let current = part("a", serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap(), 2);
        let edits = edits(&current, &[entry(old, 2, "k")], 1, "p");
        let text = render_edit(&edits[0], at(3));
        assert!(text.contains("(no config change)"), "{text}");
    }
}
