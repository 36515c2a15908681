//! Plan renderers: the only code that turns a [`Plan`] into text for people or programs.
//!
//! Each format is a pure function `fn(&Plan, &RenderOptions) -> String`, so every output can
//! be snapshot-tested without a terminal or a cloud:
//!
//! - [`text`]: for a terminal (colour only when [`RenderOptions::color`] says so);
//! - [`json`]: a documented, versioned document for programs (see its module docs);
//! - [`markdown`]: for a pull-request comment.
//!
//! The renderers decide nothing about the environment (terminal, `NO_COLOR`): the command does,
//! and passes the answer in [`RenderOptions`].
//!
//! **Sensitive values never reach any output.** Each renderer first applies
//! [`with_known_secrets_marked`] (a secret the cloud holds at an unmarked place is marked
//! too); configs are then shown through [`display_config`], which replaces every sensitive
//! string by `(sensitive)`, and the JSON format relies on the `PlannedConfig` serializer,
//! which writes `{"$sensitive": "<sha256>"}` instead.

pub mod group;
pub mod json;
pub mod markdown;
pub mod rollout;
pub mod text;

use crate::model::SensitiveValue;
use crate::plan::{Change, Detail, IdRef, Notice, NoticeLevel, Plan, PlannedConfig, canonical};
use serde_json::Value;

/// What a plan is rendered as (`fleetform plan --output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people at a terminal: one block per change, config diffs, a summary line.
    #[default]
    Text,
    /// For programs: a versioned JSON document (format_version 2).
    Json,
    /// For a pull-request comment: a table of changes and collapsible config diffs.
    Markdown,
}

/// How to render, as decided by the command (the renderers never look at the environment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Use ANSI colours and bold. The command sets it only when stdout is a terminal and
    /// `NO_COLOR` is unset or empty. Ignored by the JSON and Markdown formats.
    pub color: bool,
    /// Show every step (`--detail`): also the temporary steps of swaps and rotations, which
    /// are otherwise hidden behind the moves they make possible. JSON always has them all.
    pub detail: bool,
}

/// Renders `plan` in `format`. The result ends with a newline.
pub fn render(plan: &Plan, format: Format, opts: &RenderOptions) -> String {
    let mut all = String::new();
    render_each(plan, format, opts, &mut |piece| all.push_str(piece));
    all
}

/// [`render`], handed to `emit` a piece at a time: the text format emits each change as it
/// is rendered (a cold apply's plan is thousands of configs and megabytes of text, which
/// need never be held at once); JSON and Markdown emit one piece.
pub fn render_each(plan: &Plan, format: Format, opts: &RenderOptions, emit: &mut dyn FnMut(&str)) {
    match format {
        Format::Text => {
            let names = CreatedNames::of(plan);
            text::render_each(plan, opts, &mut |piece| emit(&names.apply(piece)))
        }
        Format::Json => emit(&json::render(plan, opts)),
        Format::Markdown => emit(&CreatedNames::of(plan).apply(&markdown::render(plan, opts))),
    }
}

/// What `(created by cN)` names: the resource of the change that creates that id.
struct CreatedNames<'a> {
    by_id: std::collections::HashMap<&'a str, &'a Change>,
}

impl<'a> CreatedNames<'a> {
    fn of(plan: &'a Plan) -> Self {
        CreatedNames {
            by_id: plan.changes.iter().map(|c| (c.id.as_str(), c)).collect(),
        }
    }

    /// `rendered` with each `(created by cN)` — an id that an earlier change of the plan
    /// creates — naming that change's resource instead of its internal change id:
    /// `(fragment camera-kit, created by this plan)`. One pass over the text.
    fn apply<'t>(&self, rendered: &'t str) -> std::borrow::Cow<'t, str> {
        name_created_ids(&self.by_id, rendered)
    }
}

fn name_created_ids<'t>(
    by_id: &std::collections::HashMap<&str, &Change>,
    rendered: &'t str,
) -> std::borrow::Cow<'t, str> {
    const MARK: &str = "(created by ";
    if !rendered.contains(MARK) {
        return std::borrow::Cow::Borrowed(rendered);
    }
    let mut out = String::with_capacity(rendered.len());
    let mut rest = rendered;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let named = after
            .find(')')
            .and_then(|end| by_id.get(&after[..end]).map(|c| (c, end)));
        match named {
            Some((c, end)) => {
                out.push_str(&format!(
                    "({} {}, created by this plan)",
                    c.kind.as_str(),
                    c.path
                ));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(MARK);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// `Plan: N to create, N to update, N to move, N to delete.`, or, for an empty plan,
/// `No changes. The cloud matches the manifest.`
pub fn summary_line(plan: &Plan) -> String {
    let line = if plan.is_empty() {
        match &plan.target {
            None => "No changes. The cloud matches the manifest.".to_string(),
            Some(_) => "No changes in the target.".to_string(),
        }
    } else {
        let s = plan.summary();
        format!(
            "Plan: {} to create, {} to update, {} to move, {} to delete.",
            s.create, s.update, s.moves, s.delete
        )
    };
    match &plan.target {
        None => line,
        Some(t) => format!(
            "{line} Targeted ({}): {} change{} outside the target left out.",
            t.addresses.join(", "),
            t.left_out,
            if t.left_out == 1 { "" } else { "s" }
        ),
    }
}

/// What goes in parentheses after a change's path: where it moved from, and why.
pub(crate) fn change_note(change: &Change) -> String {
    match (&change.from_path, change.reason.is_empty()) {
        (Some(from), true) => format!("from {from}"),
        (Some(from), false) => format!("from {from}; {}", change.reason),
        (None, _) => change.reason.clone(),
    }
}

/// `warning: machine HQ/A/arm: …` / `note: …`, for the notices sections.
pub(crate) fn notice_line(n: &Notice) -> String {
    let level = match n.level {
        NoticeLevel::Warning => "warning",
        NoticeLevel::Info => "note",
    };
    format!("{level}: {} {}: {}", n.kind.as_str(), n.path, n.message)
}

/// The line for one attribute detail: `name: "a" → "b"`, `+ grant …` or `- grant …`.
pub(crate) fn detail_line(d: &Detail) -> String {
    match (&d.before, &d.after) {
        (Some(before), Some(after)) => {
            format!("{}: {} → {}", d.field, quote(before), quote(after))
        }
        (None, Some(after)) => format!("+ {} {after}", d.field),
        (Some(before), None) => format!("- {} {before}", d.field),
        (None, None) => d.field.clone(),
    }
}

/// `"text"` with JSON escaping, so empty strings and odd characters stay visible.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// `last changed in the cloud by WHO at WHEN`, when the change carries an attribution.
pub(crate) fn attribution_line(change: &Change) -> Option<String> {
    let a = change.attribution.as_ref()?;
    let who = a.who.as_deref().filter(|w| !w.is_empty());
    match (who, a.when) {
        (Some(who), Some(when)) => Some(format!("last changed in the cloud by {who} at {when}")),
        (Some(who), None) => Some(format!("last changed in the cloud by {who}")),
        (None, Some(when)) => Some(format!("last changed in the cloud at {when}")),
        (None, None) => None,
    }
}

/// `takes effect on 37 machines (30 in this organization): latest 30, tag beta 7`, for a
/// fragment change or tag move whose reach the cloud reported.
pub(crate) fn blast_radius_line(change: &Change) -> Option<String> {
    let r = change.blast_radius.as_ref()?;
    if r.machines == 0 {
        return Some("takes effect on no machines".into());
    }
    let plural = |n: i64| if n == 1 { "machine" } else { "machines" };
    let by: Vec<String> = r
        .by_version
        .iter()
        .filter(|v| v.machines > 0)
        .map(|v| match v.version.as_str() {
            "latest" => format!("{} on the latest revision", v.machines),
            other => format!("{} pinned to {other}", v.machines),
        })
        .collect();
    Some(format!(
        "takes effect on {} {} ({} in this organization): {}",
        r.machines,
        plural(r.machines),
        r.machines_in_org,
        by.join(", ")
    ))
}

pub use crate::sensitive::with_known_secrets_marked;

/// A config as people see it: sensitive strings replaced by `"(sensitive)"`, and the
/// `fragments` it references put back as a list of ids (`"(created by cN)"` for a fragment
/// that an earlier change of the plan creates).
pub fn display_config(cfg: &PlannedConfig) -> Value {
    display_config_with(cfg, |_| SENSITIVE)
}

/// [`display_config`] with the text shown for each sensitive value chosen by `label`.
fn display_config_with(
    cfg: &PlannedConfig,
    label: impl Fn(&SensitiveValue) -> &'static str,
) -> Value {
    let masked = cfg.masked_with(|s| Value::String(label(s).to_string()));
    cfg.assemble(masked, |f| {
        Ok::<_, std::convert::Infallible>(match f {
            IdRef::Existing(id) => id.clone(),
            IdRef::CreatedBy(c) => format!("(created by {c})"),
        })
    })
    .unwrap_or_else(|never| match never {})
}

/// What a masked value is shown as.
pub const SENSITIVE: &str = "(sensitive)";

/// What a masked value that the change replaces by a different one is shown as.
pub const SENSITIVE_CHANGED: &str = "(sensitive, changed)";

/// The config diff of a change, as lines of a unified diff (each starting with its tag:
/// `---`/`+++` headers, `@@` hunk headers, `+`, `-` or ` `).
///
/// - Both configs (a config drift or update): a unified diff, 3 lines of context, from
///   `cloud` to `manifest`, of the pretty canonical JSON of each.
/// - Only the wanted config (a create): the whole config as added lines, no headers.
/// - Only the current config: the whole config as removed lines, no headers.
/// - Neither: `None`.
///
/// Both sides go through [`display_config`], so sensitive values are masked.
pub fn config_diff_lines(change: &Change) -> Option<Vec<String>> {
    let show = |c: &PlannedConfig| canonical::pretty(&display_config(c)) + "\n";
    let before = change.config_before.as_ref().map(show);
    // A secret that changes must still show as a changed line, without showing either value.
    let old: Vec<(&str, &str)> = change
        .config_before
        .iter()
        .flat_map(|c| {
            c.sensitive
                .iter()
                .map(|s| (s.pointer.as_str(), s.sha256.as_str()))
        })
        .collect();
    let after = change.config_after.as_ref().map(|c| {
        let label = |s: &SensitiveValue| {
            let same = old.iter().any(|(p, h)| *p == s.pointer && *h == s.sha256);
            if change.config_before.is_some() && !same {
                SENSITIVE_CHANGED
            } else {
                SENSITIVE
            }
        };
        canonical::pretty(&display_config_with(c, label)) + "\n"
    });
    let prefixed = |text: &str, tag: char| {
        text.lines()
            .map(|l| format!("{tag}{l}"))
            .collect::<Vec<_>>()
    };
    match (before, after) {
        (None, None) => None,
        (None, Some(after)) => Some(prefixed(&after, '+')),
        (Some(before), None) => Some(prefixed(&before, '-')),
        (Some(before), Some(after)) => {
            let diff = similar::TextDiff::from_lines(&before, &after);
            let text = diff
                .unified_diff()
                .context_radius(3)
                .header("cloud", "manifest")
                .to_string();
            Some(text.lines().map(String::from).collect())
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Small hand-built plans shared by the renderer tests.

    use crate::model::{SensitiveValue, Timestamp};
    use crate::plan::*;
    use serde_json::json;

    fn import(fragment: IdRef) -> PlannedImport {
        PlannedImport {
            fragment,
            entry: json!({"id": ""}),
        }
    }

    fn change(id: &str, action: Action, kind: Kind, path: &str, reason: &str, op: Op) -> Change {
        Change {
            id: id.to_string(),
            ..Change::new(action, kind, path, reason, op)
        }
    }

    fn empty(org: &str) -> Plan {
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            manifest_digest: "d1gest".to_string(),
            organization_id: "org-1".to_string(),
            organization_name: org.to_string(),
            prune: false,
            changes: vec![],
            unmanaged: vec![],
            notices: vec![],
            target: None,
            rollout: None,
        }
    }

    /// A plan with no changes and nothing unmanaged.
    pub fn no_changes() -> Plan {
        empty("acme")
    }

    /// One change of each action, a config drift with attribution, a grant change, a
    /// prune delete, and an unmanaged machine.
    pub fn small() -> Plan {
        let mut plan = empty("acme");

        let mut c1 = change(
            "c1",
            Action::Create,
            Kind::Location,
            "Factory/Assembly",
            "declared, not in the cloud",
            Op::CreateLocation {
                name: "Assembly".into(),
                parent: Some(IdRef::Existing("loc-factory".into())),
            },
        );
        c1.precondition = Some(Precondition::Absent);

        let before = PlannedConfig {
            value: json!({"components": [{"name": "arm", "attributes": {"speed": 10, "port": "/dev/ttyUSB0"}}]}).into(),
            fragments: vec![import(IdRef::Existing("frag-1".into()))],
            fragments_at: None,
            sensitive: vec![],
        };
        let after = PlannedConfig {
            value: json!({"components": [{"name": "arm", "attributes": {"speed": 20, "port": "/dev/ttyUSB0"}}]}).into(),
            fragments: vec![
                import(IdRef::Existing("frag-1".into())),
                import(IdRef::CreatedBy("c9".into())),
            ],
            fragments_at: None,
            sensitive: vec![],
        };
        let mut c2 = change(
            "c2",
            Action::Update,
            Kind::Part,
            "HQ/A/arm-01/arm-01-main",
            "config differs",
            Op::UpdatePart {
                part: PartRef::Existing("part-1".into()),
                name: "arm-01-main".into(),
                config: Some(after.clone()),
            },
        );
        c2.resource_id = Some("part-1".into());
        c2.config_before = Some(before);
        c2.config_after = Some(after);
        c2.attribution = Some(Attribution {
            when: Some(Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            who: Some("alice@acme.example".into()),
        });
        c2.precondition = Some(Precondition::LastUpdated(Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }));

        let mut c3 = change(
            "c3",
            Action::Move,
            Kind::Machine,
            "HQ/B/arm-01",
            "moved",
            Op::UpdateMachine {
                id: "m-1".into(),
                name: None,
                location: Some(IdRef::Existing("loc-b".into())),
            },
        );
        c3.from_path = Some("HQ/A/arm-01".into());
        c3.resource_id = Some("m-1".into());
        c3.details.push(Detail {
            field: "location".into(),
            before: Some("HQ/A".into()),
            after: Some("HQ/B".into()),
        });

        let mut c4 = change(
            "c4",
            Action::Update,
            Kind::Invite,
            "ops@acme.example",
            "grants differ",
            Op::UpdateInvite {
                email: "ops@acme.example".into(),
                add: vec![],
                remove: vec![],
            },
        );
        c4.details.push(Detail {
            field: "grant".into(),
            before: None,
            after: Some("operator on location HQ".into()),
        });
        c4.details.push(Detail {
            field: "grant".into(),
            before: Some("owner on location HQ".into()),
            after: None,
        });

        let mut c5 = change(
            "c5",
            Action::Delete,
            Kind::Machine,
            "HQ/A/old",
            "not in the manifest (prune)",
            Op::DeleteMachine { id: "m-old".into() },
        );
        c5.resource_id = Some("m-old".into());

        plan.changes = vec![c1, c2, c3, c4, c5];
        plan.unmanaged.push(Unmanaged {
            kind: Kind::Machine,
            path: "HQ/A/stray".into(),
            id: "m-stray".into(),
        });
        plan
    }

    /// A swap of two machine names (one through a temporary name), a satisfied
    /// `moved_from` note and a replacement warning.
    pub fn swap() -> Plan {
        let mut plan = empty("acme");
        let rename = |id: &str, res: &str, path: &str, from: &str, name: &str| {
            let mut c = change(
                id,
                Action::Move,
                Kind::Machine,
                path,
                "renamed",
                Op::UpdateMachine {
                    id: res.into(),
                    name: Some(name.into()),
                    location: None,
                },
            );
            c.from_path = Some(from.into());
            c.resource_id = Some(res.into());
            c
        };
        let mut c1 = rename("c1", "m-x", "L/y-fleetform-tmp", "L/x", "y-fleetform-tmp");
        c1.reason = "temporary name, frees the old name for the swap; then renamed to `y`".into();
        c1.temporary = true;
        let mut c2 = rename("c2", "m-y", "L/x", "L/y", "x");
        c2.depends_on = vec!["c1".into()];
        let mut c3 = rename("c3", "m-x", "L/y", "L/x", "y");
        c3.depends_on = vec!["c1".into(), "c2".into()];
        plan.changes = vec![c1, c2, c3];
        plan.notices = vec![
            Notice {
                level: NoticeLevel::Info,
                kind: Kind::Location,
                path: "L".into(),
                message: "`moved_from: Old` is done (the location is at L); you can remove it"
                    .into(),
            },
            Notice {
                level: NoticeLevel::Warning,
                kind: Kind::Machine,
                path: "L/z".into(),
                message: "the plan deletes machine L/z (m-z) and puts a different one at the same path\n  hint: pin it with `id: m-z`".into(),
            },
        ];
        plan
    }

    /// A create and a drift whose configs hold the sensitive value `hunter2-secret`.
    pub fn with_secret() -> Plan {
        let mut plan = empty("acme");
        let secret = SensitiveValue {
            pointer: "/components/0/attributes/token".into(),
            template: "${env:ARM_TOKEN}".into(),
            env: vec!["ARM_TOKEN".into()],
            sha256: sha256("hunter2-secret"),
        };
        let cfg = |token: &str| PlannedConfig {
            value:
                json!({"components": [{"name": "arm", "attributes": {"token": token, "speed": 1}}]})
                    .into(),
            sensitive: vec![secret.clone()],
            ..PlannedConfig::default()
        };
        let c1 = {
            let mut c = change(
                "c1",
                Action::Create,
                Kind::Part,
                "HQ/A/arm-01/arm-01-extra",
                "declared, not in the cloud",
                Op::CreatePart {
                    machine: IdRef::Existing("m-1".into()),
                    name: "arm-01-extra".into(),
                    config: Some(cfg("hunter2-secret")),
                },
            );
            c.config_after = Some(cfg("hunter2-secret"));
            c
        };
        let c2 = {
            // The cloud holds the secret at a pointer the manifest no longer marks.
            let before = PlannedConfig {
                value: json!({"components": [{"name": "arm", "attributes": {"old_token": "hunter2-secret"}}]}).into(),
                ..PlannedConfig::default()
            };
            let mut c = change(
                "c2",
                Action::Update,
                Kind::Part,
                "HQ/A/arm-01/arm-01-main",
                "config differs",
                Op::UpdatePart {
                    part: PartRef::Existing("part-1".into()),
                    name: "arm-01-main".into(),
                    config: Some(cfg("hunter2-secret")),
                },
            );
            c.config_before = Some(before);
            c.config_after = Some(cfg("hunter2-secret"));
            c
        };
        plan.changes = vec![c1, c2];
        plan
    }

    fn sha256(s: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_counts_each_action() {
        assert_eq!(
            summary_line(&fixtures::small()),
            "Plan: 1 to create, 2 to update, 1 to move, 1 to delete."
        );
        assert_eq!(
            summary_line(&fixtures::no_changes()),
            "No changes. The cloud matches the manifest."
        );
    }

    #[test]
    fn sensitive_values_never_appear_in_any_format() {
        let plan = fixtures::with_secret();
        for color in [false, true] {
            let opts = RenderOptions {
                color,
                detail: false,
            };
            for format in [Format::Text, Format::Json, Format::Markdown] {
                let out = render(&plan, format, &opts);
                assert!(
                    !out.contains("hunter2-secret"),
                    "{format:?} (color {color}) leaks the secret:\n{out}"
                );
            }
        }
        let text = render(&plan, Format::Text, &RenderOptions::default());
        assert!(text.contains("\"token\": \"(sensitive)\""), "{text}");
        assert!(text.contains("\"old_token\": \"(sensitive)\""), "{text}");
        let md = render(&plan, Format::Markdown, &RenderOptions::default());
        assert!(md.contains("(sensitive)"), "{md}");
        let saved = json::saved_plan(&plan);
        assert!(!saved.contains("hunter2-secret"), "{saved}");
    }

    #[test]
    fn creates_show_the_whole_config_as_added_lines() {
        let plan = fixtures::with_secret();
        let lines = config_diff_lines(&plan.changes[0]).unwrap();
        assert!(lines.iter().all(|l| l.starts_with('+')), "{lines:#?}");
        assert!(!lines.iter().any(|l| l.starts_with("+++")), "{lines:#?}");
    }

    #[test]
    fn fragments_are_shown_with_created_ones_named_by_change() {
        let plan = fixtures::small();
        let lines = config_diff_lines(&plan.changes[1]).unwrap();
        let text = lines.join("\n");
        assert!(
            text.contains("+      \"id\": \"(created by c9)\""),
            "{text}"
        );
        assert!(text.starts_with("--- cloud\n+++ manifest\n@@"), "{text}");
    }

    #[test]
    fn rendered_plans_name_created_resources_not_change_ids() {
        // The fixture's config refers to a fragment created by change c9; let c9 be the
        // plan's first change.
        let mut plan = fixtures::small();
        plan.changes[0].id = "c9".into();
        let c9 = &plan.changes[0];
        let named = format!("({} {}, created by this plan)", c9.kind.as_str(), c9.path);
        for format in [Format::Text, Format::Markdown] {
            let out = render(&plan, format, &RenderOptions::default());
            assert!(!out.contains("(created by c9)"), "{out}");
            assert!(out.contains(&named), "{format:?}: {out}");
        }
    }

    #[test]
    fn only_ids_of_the_plan_are_named_and_the_rest_of_the_text_is_kept() {
        let mut plan = fixtures::small();
        plan.changes[0].id = "c9".into();
        let c9 = &plan.changes[0];
        let named = format!("({} {}, created by this plan)", c9.kind.as_str(), c9.path);
        let text = "a (created by c9) b (created by c99) c (created by c9)(created by ";
        assert_eq!(
            CreatedNames::of(&plan).apply(text),
            format!("a {named} b (created by c99) c {named}(created by ")
        );
    }
}
