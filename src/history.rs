//! The edits of a part or a fragment, from the cloud's history of it: who changed it, when,
//! and what (the config before and after, and a unified diff of the two).
//!
//! The cloud's history entries hold the part or fragment as it was *before* each edit (`old`),
//! newest first. So the edit recorded by entry `i` turned `entries[i].old` into the next newer
//! state: `entries[i - 1].old`, or, for the newest entry, the resource as it is now. Configs are
//! compared as canonical pretty JSON (sorted keys), so a key-order difference is never shown as
//! a change. `fleetform history` renders them.

use crate::model::{Editor, Fragment, FragmentHistoryEntry, HistoryEntry, Part, Timestamp};
use crate::plan::canonical;
use serde::Serialize;

/// One edit of a part or a fragment: the state before and after it.
#[derive(Debug, Serialize)]
pub struct Edit {
    #[serde(serialize_with = "crate::model::rfc3339")]
    pub when: Option<Timestamp>,
    /// The user's email or the API key id.
    pub by: Option<String>,
    /// `api-key`, `web-oauth`, … when the cloud says.
    pub by_kind: Option<String>,
    /// Who `by` is, in words (`history` sets it: see [`crate::reconcile::attribute::editor_in_words`]).
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

/// A part or fragment at one point of its history.
struct State<'a> {
    name: &'a str,
    main: Option<bool>,
    revision: Option<&'a str>,
    config: std::borrow::Cow<'a, serde_json::Value>,
    last_updated: Option<Timestamp>,
}

impl<'a> From<&'a Part> for State<'a> {
    fn from(p: &'a Part) -> Self {
        State {
            name: &p.name,
            main: Some(p.main),
            revision: None,
            config: std::borrow::Cow::Owned(p.config.to_value()),
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
            config: std::borrow::Cow::Borrowed(&f.config),
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
        canonical::canonical(&before.config),
        canonical::canonical(&after.config),
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
        config_before: before.config.into_owned(),
        config_after: after.config.into_owned(),
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

/// Parts, fragments and history entries for tests here and in `fleetform history`'s.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::model::OnlineState;

    /// Part `p` of machine `m`, main, last updated at `updated`.
    pub fn part(name: &str, config: serde_json::Value, updated: i64) -> Part {
        Part {
            id: "p".into(),
            name: name.into(),
            machine_id: "m".into(),
            location_id: "l".into(),
            main: true,
            config: config.into(),
            last_updated: Some(Timestamp {
                seconds: updated,
                nanos: 0,
            }),
            created_on: None,
            last_access: None,
            online_state: OnlineState::Unknown,
        }
    }

    /// The edit of part `p` at `when` by API key `who`, from state `old`.
    pub fn entry(old: Part, when: i64, who: &str) -> HistoryEntry {
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

    /// Fragment `f` at `revision`.
    pub fn fragment(name: &str, revision: &str, config: serde_json::Value) -> Fragment {
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

    /// The edit of fragment `f` at `when` that made `revision`, from state `old`.
    pub fn fragment_entry(old: Fragment, revision: &str, when: i64) -> FragmentHistoryEntry {
        FragmentHistoryEntry {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{entry, fragment, fragment_entry, part};
    use super::*;
    use serde_json::json;

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
        assert!(
            edits[0]
                .diff
                .contains("--- HQ/m/arm-main 1970-01-01T00:03:20Z\n"),
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
    }

    #[test]
    fn fragment_edits_show_the_revision_each_edit_made() {
        let r1 = fragment("kit", "1", json!({"fps": 10}));
        let r2 = fragment("kit", "2", json!({"fps": 20}));
        let current = fragment("kit", "3", json!({"fps": 30}));
        let history = vec![fragment_entry(r2, "3", 300), fragment_entry(r1, "2", 200)];
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
        let doc = serde_json::to_value(&edits[0]).unwrap();
        assert!(doc.get("main_before").is_none(), "{doc}");
        assert_eq!(doc["revision_after"], "3");
        assert_eq!(doc["when"], "1970-01-01T00:05:00Z");
    }

    #[test]
    fn key_order_is_not_a_change() {
        let old = part("a", serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap(), 1);
        let current = part("a", serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap(), 2);
        let edits = edits(&current, &[entry(old, 2, "k")], 1, "p");
        assert!(edits[0].diff.is_empty());
    }
}
