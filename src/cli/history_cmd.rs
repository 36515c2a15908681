//! `fleetform history PART`: who changed a part, when, and what: newest first, each edit as a
//! unified diff of the config before and after it.
//!
//! The cloud's history entries hold the part as it was *before* each edit (`old`), newest
//! first. So the edit recorded by entry `i` turned `entries[i].old` into the next newer state:
//! `entries[i - 1].old`, or, for the newest entry, the part as it is now. Configs are compared
//! as canonical pretty JSON (sorted keys), so a key-order difference is never shown as a change.

use super::resolve;
use super::status_cmd::{ago, emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::model::{HistoryEntry, Part, Timestamp};
use crate::plan::canonical;
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
PART is a part path (HQ/Assembly/arm-01/arm-01-main), a machine path (HQ/Assembly/arm-01, for
its main part) or a part id.

Examples:
  fleetform history HQ/Assembly/arm-01/arm-01-main
  fleetform history HQ/Assembly/arm-01 -n 3 --output json";

/// Arguments of `fleetform history`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct HistoryArgs {
    /// The part: a part path, a machine path (its main part) or a part id.
    #[arg(value_name = "PART")]
    pub part: String,

    /// The organization (a name or an id). Default: the only one the API key sees.
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,

    /// How many of the most recent edits to show.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10, value_parser = super::ranges::count)]
    pub count: usize,

    /// `text` for people, `json` for programs.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `fleetform history`.
pub async fn run(args: HistoryArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let target = resolve::connect_org(global, args.org.as_deref()).await?;
    let result = history(&args, &target.client).await;
    let closed = target.close().await;
    let code = result?;
    closed?;
    Ok(code)
}

/// One edit of a part: the state before and after it.
#[derive(Debug, Serialize)]
pub struct Edit {
    pub when: Option<Timestamp>,
    /// The user's email or the API key id.
    pub by: Option<String>,
    /// `api-key`, `web-oauth`, … when the cloud says.
    pub by_kind: Option<String>,
    pub name_before: String,
    pub name_after: String,
    pub main_before: bool,
    pub main_after: bool,
    pub config_before: serde_json::Value,
    pub config_after: serde_json::Value,
    /// Unified diff of the canonical configs; empty when the config did not change.
    pub diff: String,
}

async fn history(args: &HistoryArgs, api: &dyn CloudApi) -> anyhow::Result<ExitCode> {
    let org = resolve::organization(api, args.org.as_deref()).await?;
    let (path, part) = resolve::resolve_part(api, &org.id, &args.part).await?;
    let limit = i64::try_from(args.count.saturating_add(1)).unwrap_or(i64::MAX);
    let entries = api
        .part_history(&part.id, Some(limit))
        .await
        .with_context(|| format!("cannot read the history of `{path}`"))?;
    let more = entries.len() > args.count;
    let ledger = super::apply_cmd::local_ledger();
    let edits = edits(&part, &entries, args.count, &path, &ledger);
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "part": { "id": part.id, "path": path },
                "edits": edits,
                "more": more,
            });
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
    Ok(ExitCode::SUCCESS)
}

/// The newest `n` edits of `current`, from its history `entries` (newest first). Every
/// config is masked where `ledger` knows a value was sensitive (by pointer in this part, or
/// by value anywhere), before it is compared or shown.
pub fn edits(
    current: &Part,
    entries: &[HistoryEntry],
    n: usize,
    path: &str,
    ledger: &crate::sensitive::Ledger,
) -> Vec<Edit> {
    let key = crate::sensitive::resource_key("part", path);
    let masked = |config: &serde_json::Value| {
        let mut c = config.clone();
        ledger.mask(&key, &mut c);
        c
    };
    entries
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, entry)| {
            let after = if i == 0 { current } else { &entries[i - 1].old };
            let before = &entry.old;
            let (config_before, config_after) = (masked(&before.config), masked(&after.config));
            let (cb, ca) = (
                canonical::canonical(&config_before),
                canonical::canonical(&config_after),
            );
            let diff = if cb == ca {
                String::new()
            } else {
                let (b, a) = (canonical::pretty(&cb) + "\n", canonical::pretty(&ca) + "\n");
                let when =
                    |t: Option<Timestamp>| t.map_or_else(|| "?".to_string(), |t| t.to_string());
                similar::TextDiff::from_lines(&b, &a)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("{path} {}", when(before.last_updated)),
                        &format!("{path} {}", when(entry.when)),
                    )
                    .to_string()
            };
            Edit {
                when: entry.when,
                by: entry.edited_by.as_ref().map(|e| e.value.clone()),
                by_kind: entry
                    .edited_by
                    .as_ref()
                    .map(|e| e.kind.clone())
                    .filter(|k| !k.is_empty()),
                name_before: before.name.clone(),
                name_after: after.name.clone(),
                main_before: before.main,
                main_after: after.main,
                config_before,
                config_after,
                diff,
            }
        })
        .collect()
}

/// `WHEN  by WHO`, then what changed, indented.
fn render_edit(e: &Edit, now: Timestamp) -> String {
    let when = e
        .when
        .map_or_else(|| "(unknown time)".to_string(), |t| t.to_string());
    let who = match (&e.by, &e.by_kind) {
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
    if e.main_before != e.main_after {
        out.push_str(if e.main_after {
            "  became the main part\n"
        } else {
            "  stopped being the main part\n"
        });
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
    use crate::model::{Editor, OnlineState};
    use serde_json::json;

    fn part(name: &str, config: serde_json::Value, updated: i64) -> Part {
        Part {
            id: "p".into(),
            name: name.into(),
            machine_id: "m".into(),
            location_id: "l".into(),
            main: true,
            config,
            last_updated: Some(Timestamp {
                seconds: updated,
                nanos: 0,
            }),
            created_on: None,
            last_access: None,
            online_state: OnlineState::Unknown,
        }
    }

    fn entry(old: Part, when: i64, who: &str) -> HistoryEntry {
        HistoryEntry {
            part_id: "p".into(),
            machine_id: "m".into(),
            when: Some(Timestamp {
                seconds: when,
                nanos: 0,
            }),
            old,
            edited_by: Some(Editor {
                kind: "api-key".into(),
                value: who.into(),
            }),
        }
    }

    #[test]
    fn each_edit_diffs_its_old_state_against_the_next_newer_one() {
        let v1 = part("arm", json!({"fps": 10}), 100);
        let v2 = part("arm", json!({"fps": 20}), 200);
        let current = part("arm-main", json!({"fps": 30}), 300);
        // Newest first: the edit at 300 turned v2 into current; the one at 200, v1 into v2.
        let history = vec![entry(v2, 300, "bob"), entry(v1, 200, "alice")];
        let ledger = crate::sensitive::Ledger::in_memory();
        let edits = edits(&current, &history, 10, "HQ/m/arm-main", &ledger);
        assert_eq!(edits.len(), 2);
        assert_eq!(edits[0].by.as_deref(), Some("bob"));
        assert!(
            edits[0].diff.contains("-  \"fps\": 20"),
            "{}",
            edits[0].diff
        );
        assert!(
            edits[0].diff.contains("+  \"fps\": 30"),
            "{}",
            edits[0].diff
        );
        assert_eq!(
            (edits[0].name_before.as_str(), edits[0].name_after.as_str()),
            ("arm", "arm-main")
        );
        assert!(
            edits[1].diff.contains("-  \"fps\": 10"),
            "{}",
            edits[1].diff
        );
        assert!(
            edits[1].diff.contains("+  \"fps\": 20"),
            "{}",
            edits[1].diff
        );

        let text = render_edit(
            &edits[0],
            Timestamp {
                seconds: 400,
                nanos: 0,
            },
        );
        assert!(
            text.starts_with("1970-01-01T00:05:00Z  by bob (api-key)  (1m ago)\n"),
            "{text}"
        );
        assert!(text.contains("  renamed `arm` → `arm-main`\n"), "{text}");
        assert!(
            text.contains("  --- HQ/m/arm-main 1970-01-01T00:03:20Z\n"),
            "{text}"
        );
    }

    #[test]
    fn key_order_is_not_a_change() {
        let old = part("a", serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap(), 1);
        let current = part("a", serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap(), 2);
        let ledger = crate::sensitive::Ledger::in_memory();
        let edits = edits(&current, &[entry(old, 2, "k")], 1, "p", &ledger);
        assert!(edits[0].diff.is_empty());
        let text = render_edit(
            &edits[0],
            Timestamp {
                seconds: 3,
                nanos: 0,
            },
        );
        assert!(text.contains("(no config change)"), "{text}");
    }
}
