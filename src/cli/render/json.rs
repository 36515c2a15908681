//! The plan as a JSON document for programs (`fleetform plan --output json`), and the saved
//! plan file (`fleetform plan --out FILE`).
//!
//! # The `--output json` document, `format_version` 2
//!
//! One JSON object, pretty-printed, followed by a newline:
//!
//! ```json
//! {
//!   "format_version": 2,
//!   "organization": { "id": "8d0f…", "name": "acme" },
//!   "manifest_digest": "3b1c…",
//!   "prune": false,
//!   "summary": { "create": 1, "update": 2, "move": 0, "delete": 0 },
//!   "changes": [ { "id": "c1", "action": "create", "kind": "location", … } ],
//!   "unmanaged": [ { "kind": "machine", "path": "HQ/A/stray", "id": "…" } ],
//!   "notices": [ { "level": "info", "kind": "machine", "path": "HQ/B/arm", "message": "…" } ]
//! }
//! ```
//!
//! Top-level fields:
//!
//! - `format_version` (integer): the version of this document's shape, [`FORMAT_VERSION`].
//!   Check it before reading anything else.
//! - `organization` (object): the organization planned against: `id` (the cloud's id) and
//!   `name`.
//! - `manifest_digest` (string): SHA-256 (hex) of the manifest and every file it includes,
//!   with sensitive values hashed; names exactly what the plan was made from.
//! - `prune` (boolean): whether undeclared resources inside the managed scope are deleted
//!   (`prune: true` in the manifest or `--prune`) rather than listed in `unmanaged`.
//! - `summary` (object): how many changes of each action: `create`, `update`, `move`,
//!   `delete` (integers). All zero means the cloud matches the manifest.
//! - `changes` (array): the changes in a valid execution order (dependencies first), each as
//!   a saved plan holds it (the serde form of [`crate::plan::Change`]): `id` (`c1`, `c2`, …),
//!   `action` (`create`, `update`, `move`, `delete`), `kind` (`fragment`, `location`,
//!   `machine`, `part`, `invite`, `location_secret`), `path`, `from_path` (before a move or
//!   rename, else `null`), `resource_id` (`null` for creates), `reason`, `details`
//!   (`{field, before, after}`), `config_before` / `config_after` (`{value, fragments?,
//!   fragments_at?, sensitive?}` or `null`: `value` is the config without its `fragments`
//!   key; each of `fragments` is `{fragment, entry}`, where `fragment` is `{"existing": ID}`
//!   or `{"created_by": CHANGE}` and `entry` the import as written with its id filled in at
//!   apply time; `fragments_at` is the key's position among the config's keys),
//!   `attribution` (`{when, who}` or `null`), `blast_radius` (fragment changes and tag moves:
//!   `{machines, machines_in_org, by_version: [{version, machines}]}`, absent when unknown),
//!   `precondition`, `depends_on` (change ids), `op` (the cloud operation, tagged by its `op`
//!   field), and `temporary: true` on the first step of a resource moved through a temporary
//!   name in a swap or rotation (absent otherwise; such steps are not counted in `summary`).
//! - `unmanaged` (array): resources inside the managed scope that the manifest does not
//!   declare and the plan keeps: `{kind, path, id}`.
//! - `notices` (array, present only when there are any): what is worth knowing but is not a
//!   change: `{level, kind, path,
//!   message}`, `level` being `info` (e.g. a `moved_from` whose move is done) or `warning`
//!   (e.g. a delete and a create at the same path).
//! - `target` (object, present only for a plan made with `--target`): `addresses` (the
//!   addresses as given) and `left_out` (how many changes of the whole manifest's plan the
//!   target left out).
//! - `rollout` (object, present only when the manifest has a `rollout:` policy and the plan
//!   updates parts or moves imported tags): `policy` (`waves` as `{"count": N}` or
//!   `{"percent": N}`, `order`, `wait`, `healthy_when {online_within, max_error_logs}`,
//!   `abort_when`, `on_abort`; durations as `{secs, nanos}`), `waves` (`[{number, machines:
//!   [{path, machine_id, location_id, parts: [{part_id, path, change?, pins?}]}]}]`) and
//!   `tag_moves` (`[{change, fragment_id, path, tag, revision}]`, absent when none).
//!
//! Timestamps are RFC 3339 text in UTC (`2026-05-01T12:00:00Z`, with the fraction the cloud
//! gave: microseconds, or nanoseconds when they are not whole microseconds). Version 1 wrote
//! them as `{"seconds": N, "nanos": N}`; that is the only difference between 1 and 2.
//!
//! **Sensitive values never appear.** Each string a config marks as sensitive is replaced by
//! `{"$sensitive": "<hash>"}` and listed in that config's `sensitive` array
//! (`{pointer, env, sha256}`). The hash is the value's SHA-256 salted with the document's
//! `sensitive_salt` (random per document, see [`crate::sensitive::salted`]): equal within
//! one document, unrelated across documents, and useless for looking values up. A string of
//! the cloud's config (`config_before`) that equals a known sensitive value, or that was
//! sensitive there once (the ledger, [`crate::sensitive`]), is masked the same way, with
//! `env: []`.
//!
//! **Stability.** Within a `format_version`, fields may be added (at any level) but are never
//! renamed, removed or given a different meaning; consumers should ignore fields they do not
//! know. Any other change bumps `format_version`.
//!
//! # The saved plan (`--out FILE`)
//!
//! [`saved_plan`]: the [`Plan`] exactly as serde writes it (what `fleetform apply FILE`
//! reads), with sensitive values masked and salted the same way (its salt in
//! `sensitive_salt`, which `apply` uses to check the environment). Its own version is the plan's
//! `format_version` field ([`crate::plan::PLAN_FORMAT_VERSION`]).

use super::RenderOptions;
use crate::plan::{Change, Notice, Plan, Summary, Targeting, Unmanaged};
use serde::Serialize;
use serde_json::Value;

/// The version of the `--output json` document described in the module docs.
pub const FORMAT_VERSION: u32 = 2;

/// The `--output json` document.
#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    organization: Organization<'a>,
    manifest_digest: &'a str,
    prune: bool,
    summary: Summary,
    changes: &'a [Change],
    unmanaged: &'a [Unmanaged],
    #[serde(skip_serializing_if = "<[Notice]>::is_empty")]
    notices: &'a [Notice],
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Targeting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<&'a crate::plan::rollout::RolloutPlan>,
    /// The salt of the sensitive hashes (see [`crate::sensitive::salted`]); only when
    /// there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitive_salt: Option<String>,
}

#[derive(Serialize)]
struct Organization<'a> {
    id: &'a str,
    name: &'a str,
}

/// Renders the `--output json` document (see the module docs). Ends with a newline.
///
/// Like a saved plan, it names sensitive values only by hashes salted per document.
pub fn render(plan: &Plan, _opts: &RenderOptions) -> String {
    let (plan, salt) = crate::reconcile::saved::salted(plan);
    let plan = &plan;
    let doc = Document {
        sensitive_salt: salt,
        format_version: FORMAT_VERSION,
        organization: Organization {
            id: &plan.organization_id,
            name: &plan.organization_name,
        },
        manifest_digest: &plan.manifest_digest,
        prune: plan.prune,
        summary: plan.summary(),
        changes: &plan.changes,
        unmanaged: &plan.unmanaged,
        notices: &plan.notices,
        target: plan.target.as_ref(),
        rollout: plan.rollout.as_ref(),
    };
    pretty(&doc)
}

/// The plan as saved by `--out FILE` (see [`crate::reconcile::saved`]).
pub fn saved_plan(plan: &Plan) -> String {
    crate::reconcile::saved::to_json(plan)
}

fn pretty(value: &impl Serialize) -> String {
    // Plans hold only strings, numbers, booleans, sequences and string-keyed maps, so
    // serializing them cannot fail.
    let mut out = serde_json::to_string_pretty(value).expect("a plan serializes to JSON");
    out.push('\n');
    out
}

/// Parses a document rendered by [`render`] (for tests, and consumers written in Rust).
pub fn parse(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use serde_json::json;

    #[test]
    fn top_level_fields_in_documented_order() {
        let out = render(&fixtures::small(), &RenderOptions::default());
        assert!(
            out.starts_with("{\n  \"format_version\": 2,\n  \"organization\""),
            "{out}"
        );
        let v = parse(&out).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "changes",
                "format_version",
                "manifest_digest",
                "organization",
                "prune",
                "summary",
                "unmanaged"
            ]
        );
        assert_eq!(v["organization"], json!({"id": "org-1", "name": "acme"}));
        assert_eq!(
            v["summary"],
            json!({"create": 1, "update": 2, "move": 1, "delete": 1})
        );
        assert_eq!(v["changes"].as_array().unwrap().len(), 5);
        assert_eq!(v["changes"][0]["action"], "create");
        assert_eq!(v["changes"][2]["from_path"], "HQ/A/arm-01");
        assert_eq!(
            v["unmanaged"],
            json!([{"kind": "machine", "path": "HQ/A/stray", "id": "m-stray"}])
        );
    }

    #[test]
    fn empty_plan() {
        let out = render(&fixtures::no_changes(), &RenderOptions::default());
        insta::assert_snapshot!(out, @r#"
        {
          "format_version": 2,
          "organization": {
            "id": "org-1",
            "name": "acme"
          },
          "manifest_digest": "d1gest",
          "prune": false,
          "summary": {
            "create": 0,
            "update": 0,
            "move": 0,
            "delete": 0
          },
          "changes": [],
          "unmanaged": []
        }
        "#);
    }

    #[test]
    fn secrets_become_hashes() {
        let plan = fixtures::with_secret();
        let out = render(&plan, &RenderOptions::default());
        assert!(!out.contains("hunter2-secret"), "{out}");
        assert!(out.contains("\"$sensitive\""), "{out}");
    }

    #[test]
    fn saved_plan_round_trips() {
        let plan = fixtures::small();
        let back: Plan = serde_json::from_str(&saved_plan(&plan)).unwrap();
        assert_eq!(back, plan);
    }
}
