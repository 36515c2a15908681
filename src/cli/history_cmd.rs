//! `fleetform history PART` and `fleetform history --fragment FRAGMENT`: who changed a part or a
//! fragment, when, and what: newest first, each edit as a unified diff of the config before and
//! after it (for a fragment, also the revision each edit made).
//!
//! The cloud's history entries hold the part or fragment as it was *before* each edit (`old`),
//! newest first. So the edit recorded by entry `i` turned `entries[i].old` into the next newer
//! state: `entries[i - 1].old`, or, for the newest entry, the resource as it is now. Configs are
//! compared as canonical pretty JSON (sorted keys), so a key-order difference is never shown as
//! a change.

use super::output::ExitStatus;
use super::resolve;
use super::status_cmd::{ago, emit, outln};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::model::{Editor, Fragment, FragmentHistoryEntry, HistoryEntry, Part, Timestamp};
use crate::plan::canonical;
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

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
}

/// Runs `fleetform history`.
pub async fn run(args: HistoryArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let target = resolve::connect_org(global, args.org.as_deref()).await?;
    let result = history(&args, &target.client, &target.key_id).await;
    let closed = target.close().await;
    let code = result?;
    closed?;
    Ok(code)
}

/// How an edit made with the API key this run uses is attributed.
pub const OWN_KEY: &str = "this key (fleetform)";

/// One edit of a part or a fragment: the state before and after it.
#[derive(Debug, Serialize)]
pub struct Edit {
    #[serde(serialize_with = "super::term::rfc3339")]
    pub when: Option<Timestamp>,
    /// The user's email or the API key id.
    pub by: Option<String>,
    /// `api-key`, `web-oauth`, … when the cloud says.
    pub by_kind: Option<String>,
    /// Who `by` is, in words, when fleetform knows: [`OWN_KEY`] for the key this run uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_name: Option<String>,
    pub name_before: String,
    pub name_after: String,
    /// Parts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_before: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_after: Option<bool>,
    /// Fragments only: the revision before the edit and the one it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_after: Option<String>,
    pub config_before: serde_json::Value,
    pub config_after: serde_json::Value,
    /// Unified diff of the canonical configs; empty when the config did not change.
    pub diff: String,
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
            let fragment = resolve_fragment(api, &org.id, wanted).await?;
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
            ledger.mask(&key, &mut part.config);
            for e in &mut entries {
                ledger.mask(&key, &mut e.old.config);
            }
            let edits = edits(&part, &entries, args.count, &path);
            let subject = serde_json::json!({ "part": { "id": part.id, "path": path } });
            (subject, path, more, edits)
        }
        (None, None) => bail!("name a PART or a --fragment"),
    };
    for e in &mut edits {
        if e.by.as_deref() == Some(own_key_id) {
            e.by_name = Some(OWN_KEY.to_string());
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

/// The fragment the organization owns with id or name `wanted` (a name must be unique).
async fn resolve_fragment(
    api: &dyn CloudApi,
    org_id: &str,
    wanted: &str,
) -> anyhow::Result<Fragment> {
    let wanted = wanted.trim();
    let fragments = api
        .list_fragments(org_id)
        .await
        .with_context(|| format!("cannot list the fragments of organization {org_id}"))?;
    if let Some(f) = fragments.iter().find(|f| f.id == wanted) {
        return Ok(f.clone());
    }
    let named: Vec<&Fragment> = fragments.iter().filter(|f| f.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let mut names: Vec<&str> = fragments.iter().map(|f| f.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            bail!(
                "no fragment named or with id `{wanted}` in organization {org_id}\nhint: its fragments are: {}",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
        many => bail!(
            "fragment name `{wanted}` is ambiguous: fragments {} have it\nhint: pass the id of the one you mean",
            many.iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A part or fragment at one point of its history.
struct State<'a> {
    name: &'a str,
    main: Option<bool>,
    revision: Option<&'a str>,
    config: &'a serde_json::Value,
    last_updated: Option<Timestamp>,
}

impl<'a> From<&'a Part> for State<'a> {
    fn from(p: &'a Part) -> Self {
        State {
            name: &p.name,
            main: Some(p.main),
            revision: None,
            config: &p.config,
            last_updated: p.last_updated,
        }
    }
}

impl<'a> From<&'a Fragment> for State<'a> {
    fn from(f: &'a Fragment) -> Self {
        State {
            name: &f.name,
            main: None,
            revision: Some(f.revision.as_str()).filter(|r| !r.is_empty()),
            config: &f.config,
            last_updated: f.last_updated,
        }
    }
}

/// The edit at `when` by `by` that turned `before` into `after`.
fn edit(
    before: State<'_>,
    after: State<'_>,
    when: Option<Timestamp>,
    by: Option<&Editor>,
    path: &str,
) -> Edit {
    let (cb, ca) = (
        canonical::canonical(before.config),
        canonical::canonical(after.config),
    );
    let diff = if cb == ca {
        String::new()
    } else {
        let (b, a) = (canonical::pretty(&cb) + "\n", canonical::pretty(&ca) + "\n");
        let stamp = |t: Option<Timestamp>| t.map_or_else(|| "?".to_string(), |t| t.to_string());
        similar::TextDiff::from_lines(&b, &a)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{path} {}", stamp(before.last_updated)),
                &format!("{path} {}", stamp(when)),
            )
            .to_string()
    };
    Edit {
        when,
        by: by.map(|e| e.value.clone()),
        by_kind: by.map(|e| e.kind.clone()).filter(|k| !k.is_empty()),
        by_name: None,
        name_before: before.name.to_string(),
        name_after: after.name.to_string(),
        main_before: before.main,
        main_after: after.main,
        revision_before: before.revision.map(str::to_string),
        revision_after: after.revision.map(str::to_string),
        config_before: before.config.clone(),
        config_after: after.config.clone(),
        diff,
    }
}

/// The newest `n` edits of `current`, from its history `entries` (newest first).
pub fn edits(current: &Part, entries: &[HistoryEntry], n: usize, path: &str) -> Vec<Edit> {
    entries
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, entry)| {
            let after = if i == 0 { current } else { &entries[i - 1].old };
            edit(
                (&entry.old).into(),
                after.into(),
                entry.when,
                entry.edited_by.as_ref(),
                path,
            )
        })
        .collect()
}

/// The newest `n` edits of fragment `current`, from its history `entries` (newest first).
/// An entry's own revision, when the cloud gives it, is the revision the edit made.
pub fn fragment_edits(current: &Fragment, entries: &[FragmentHistoryEntry], n: usize) -> Vec<Edit> {
    entries
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, entry)| {
            let after = if i == 0 { current } else { &entries[i - 1].old };
            let mut after = State::from(after);
            if !entry.revision.is_empty() {
                after.revision = Some(&entry.revision);
            }
            edit(
                (&entry.old).into(),
                after,
                entry.when,
                entry.edited_by.as_ref(),
                &current.name,
            )
        })
        .collect()
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
        let edits = edits(&current, &history, 10, "HQ/m/arm-main");
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

    fn fragment(name: &str, revision: &str, config: serde_json::Value) -> Fragment {
        Fragment {
            id: "f".into(),
            name: name.into(),
            organization_id: "o".into(),
            config,
            visibility: crate::model::Visibility::Private,
            robot_part_count: 0,
            created_on: None,
            last_updated: None,
            revision: revision.into(),
        }
    }

    #[test]
    fn fragment_edits_show_the_revision_each_edit_made() {
        let r1 = fragment("kit", "1", json!({"fps": 10}));
        let r2 = fragment("kit", "2", json!({"fps": 20}));
        let current = fragment("kit", "3", json!({"fps": 30}));
        let entry = |old: Fragment, revision: &str, when: i64| FragmentHistoryEntry {
            fragment_id: "f".into(),
            revision: revision.into(),
            when: Some(Timestamp {
                seconds: when,
                nanos: 0,
            }),
            old,
            config: None,
            edited_by: Some(Editor {
                kind: "api-key".into(),
                value: "k".into(),
            }),
        };
        let history = vec![entry(r2, "3", 300), entry(r1, "2", 200)];
        let edits = fragment_edits(&current, &history, 10);
        assert_eq!(edits.len(), 2);
        let revisions: Vec<(Option<&str>, Option<&str>)> = edits
            .iter()
            .map(|e| (e.revision_before.as_deref(), e.revision_after.as_deref()))
            .collect();
        assert_eq!(revisions, [(Some("2"), Some("3")), (Some("1"), Some("2"))]);
        assert!(
            edits[0].diff.contains("+  \"fps\": 30"),
            "{}",
            edits[0].diff
        );
        assert!(
            edits[1].diff.contains("-  \"fps\": 10"),
            "{}",
            edits[1].diff
        );
        assert_eq!(edits[0].main_before, None);
        let text = render_edit(
            &edits[0],
            Timestamp {
                seconds: 400,
                nanos: 0,
            },
        );
        assert!(text.contains("  revision 2 → 3\n"), "{text}");
        assert!(!text.contains("main part"), "{text}");
        let doc = serde_json::to_value(&edits[0]).unwrap();
        assert!(doc.get("main_before").is_none(), "{doc}");
        assert_eq!(doc["revision_after"], "3");
    }

    #[test]
    fn key_order_is_not_a_change() {
        let old = part("a", serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap(), 1);
        let current = part("a", serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap(), 2);
        let edits = edits(&current, &[entry(old, 2, "k")], 1, "p");
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
