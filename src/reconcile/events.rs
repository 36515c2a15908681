//! Machine-readable progress: the `--output json-lines` events of `fleetform apply` and
//! `fleetform watch`, one JSON object per line, in one schema (encoded here, for both).
//!
//! Every event has `format_version` ([`EVENTS_FORMAT_VERSION`]), `type` and `time` (RFC 3339,
//! UTC), then the fields of its type:
//!
//! | `type` | fields | from |
//! |---|---|---|
//! | `pass_started` | `triggers` (why the pass runs: an array of `startup`, `files`, `git`, `resync`, `retry`), `commit` (git source, else absent) | watch |
//! | `plan` | `organization {id, name}`, `summary {create, update, move, delete, …}` | apply; watch (every pass that reaches the cloud) |
//! | `drift` | `action`, `kind`, `path`, `reason`, `last_changed_by`, `last_changed_at` (who last changed a drifted part's config in the cloud and when, in words; absent when unknown) | watch (each change a pass finds) |
//! | `change_started` | `action`, `kind`, `path` | apply; watch |
//! | `change_applied` | `action`, `kind`, `path` | apply; watch |
//! | `change_failed`, `change_conflict` | `action`, `kind`, `path`, `cause` | apply; watch |
//! | `change_skipped` | `action`, `kind`, `path`, `because` (the resource whose change did not apply, e.g. `location Factory`) | apply; watch |
//! | `change_not_started` | `action`, `kind`, `path` | apply; watch |
//! | `summary` | `applied`, `failed`, `skipped`, `interrupted`, and `rollout` (`{status, waves_passed, waves, message?, rollback?}`) after a staged rollout | apply (last); watch (after applying) |
//! | `pass_finished` | `result` (`success`, `failed`, `invalid_manifest`, `refused`, `breaker_open`), `cause` (failed and refused passes, else absent) | watch |
//!
//! `action` is `create`, `update`, `move` or `delete`; `kind` is the resource kind
//! (`location`, `machine`, `part`, `fragment`, …). Resources are always named by kind and path,
//! never by the plan's internal change ids. Within a `format_version`, event types and fields
//! may be added but never renamed, removed or given another meaning: consumers should ignore
//! what they do not know.

use crate::apply::{Outcome, Report};
use crate::plan::{Change, Plan};
use serde_json::{Value, json};
use std::sync::Arc;

/// The version of the events' schema; raised on any incompatible change.
pub const EVENTS_FORMAT_VERSION: u32 = 1;

/// One event line (no newline): `format_version`, `type`, `time`, then `fields`.
pub fn line(kind: &str, fields: Value) -> String {
    let mut event = json!({
        "format_version": EVENTS_FORMAT_VERSION,
        "type": kind,
        "time": crate::model::Timestamp::now().to_string(),
    });
    if let (Some(e), Value::Object(f)) = (event.as_object_mut(), fields) {
        e.extend(f);
    }
    event.to_string()
}

/// The `pass_started` event of a watch pass.
pub fn pass_started(triggers: &[&str], commit: Option<&str>) -> String {
    let mut fields = json!({ "triggers": triggers });
    if let Some(commit) = commit {
        fields["commit"] = commit.into();
    }
    line("pass_started", fields)
}

/// The `pass_finished` event of a watch pass: its result, and why when it failed.
pub fn pass_finished(result: &str, cause: Option<&str>) -> String {
    let mut fields = json!({ "result": result });
    if let Some(cause) = cause {
        fields["cause"] = cause.into();
    }
    line("pass_finished", fields)
}

/// The `plan` event.
pub fn plan(plan: &Plan) -> String {
    line(
        "plan",
        json!({
            "organization": { "id": plan.organization_id, "name": plan.organization_name },
            "summary": plan.summary(),
        }),
    )
}

/// The `drift` event for one change a pass found, with who last changed it when known.
pub fn drift(c: &Change) -> String {
    let mut fields = json!({
        "action": c.action,
        "kind": c.kind.as_str(),
        "path": c.path,
        "reason": c.reason,
    });
    if let Some(a) = &c.attribution {
        if let Some(who) = &a.who {
            fields["last_changed_by"] = who.clone().into();
        }
        if let Some(when) = a.when {
            fields["last_changed_at"] = when.to_string().into();
        }
    }
    line("drift", fields)
}

/// The event for a change that started (`outcome` `None`) or finished. A skipped change's
/// `because` must already name a resource ([`super::named_blocker`]).
pub fn change(c: &Change, outcome: Option<&Outcome>) -> String {
    let mut fields = json!({
        "action": c.action,
        "kind": c.kind.as_str(),
        "path": c.path,
    });
    let kind = match outcome {
        None => "change_started",
        Some(Outcome::Applied) => "change_applied",
        Some(Outcome::Failed { cause }) => {
            fields["cause"] = cause.clone().into();
            "change_failed"
        }
        Some(Outcome::Conflict { cause }) => {
            fields["cause"] = cause.clone().into();
            "change_conflict"
        }
        Some(Outcome::Skipped { because }) => {
            fields["because"] = because.clone().into();
            "change_skipped"
        }
        Some(Outcome::NotStarted) => "change_not_started",
    };
    line(kind, fields)
}

/// The `summary` event: the counts of `report` (all 0 when nothing was applied).
pub fn summary(report: Option<&Report>) -> String {
    let mut v = json!({
        "applied": report.map_or(0, Report::applied),
        "failed": report.map_or(0, Report::failed),
        "skipped": report.map_or(0, Report::skipped),
        "interrupted": report.is_some_and(|r| r.interrupted),
    });
    if let (Some(o), Some(obj)) = (report.and_then(|r| r.rollout.as_ref()), v.as_object_mut()) {
        obj.insert(
            "rollout".into(),
            serde_json::to_value(o).unwrap_or_default(),
        );
    }
    line("summary", v)
}

/// What an [`EventSink`] hands each line to.
type Emit = dyn Fn(&str) + Send + Sync;

/// Where a daemon sends its event lines (the CLI: stdout). The default sends them nowhere.
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<Emit>>);

impl EventSink {
    /// A sink that hands each line to `f`.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        EventSink(Some(Arc::new(f)))
    }

    /// Sends the line `make` builds; builds nothing when the sink goes nowhere.
    pub fn emit(&self, make: impl FnOnce() -> String) {
        if let Some(f) = &self.0 {
            f(&make());
        }
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(on)"
        } else {
            "EventSink(off)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::plan::{Action, Attribution, Kind, Op, PartRef};

    fn part_change() -> Change {
        Change {
            id: "c7".into(),
            resource_id: Some("p1".into()),
            attribution: Some(Attribution {
                when: Some(Timestamp {
                    seconds: 1_767_225_600,
                    nanos: 0,
                }),
                who: Some("alice@acme.example".into()),
            }),
            ..Change::new(
                Action::Update,
                Kind::Part,
                "HQ/arm/arm-main",
                "config differs",
                Op::UpdatePart {
                    part: PartRef::Existing("p1".into()),
                    name: "arm-main".into(),
                    config: None,
                },
            )
        }
    }

    fn parse(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["format_version"], EVENTS_FORMAT_VERSION);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        v
    }

    #[test]
    fn drift_names_the_resource_and_who_changed_it() {
        let v = parse(&drift(&part_change()));
        assert_eq!(v["type"], "drift");
        assert_eq!(v["action"], "update");
        assert_eq!(v["kind"], "part");
        assert_eq!(v["path"], "HQ/arm/arm-main");
        assert_eq!(v["last_changed_by"], "alice@acme.example");
        assert_eq!(v["last_changed_at"], "2026-01-01T00:00:00Z");
        assert!(v.get("id").is_none(), "no change ids: {v}");
        let mut unknown = part_change();
        unknown.attribution = None;
        let v = parse(&drift(&unknown));
        assert!(v.get("last_changed_by").is_none(), "{v}");
    }

    #[test]
    fn change_events_carry_their_outcome() {
        let c = part_change();
        assert_eq!(parse(&change(&c, None))["type"], "change_started");
        let skipped = Outcome::Skipped {
            because: "location HQ".into(),
        };
        let v = parse(&change(&c, Some(&skipped)));
        assert_eq!(v["type"], "change_skipped");
        assert_eq!(v["because"], "location HQ");
        let failed = Outcome::Failed {
            cause: "NOT_FOUND".into(),
        };
        let v = parse(&change(&c, Some(&failed)));
        assert_eq!(
            (v["type"].as_str(), v["cause"].as_str()),
            (Some("change_failed"), Some("NOT_FOUND"))
        );
        let v = parse(&summary(None));
        assert_eq!(v["applied"], 0);
        assert_eq!(v["interrupted"], false);
    }

    #[test]
    fn a_sink_that_goes_nowhere_builds_nothing() {
        EventSink::default().emit(|| unreachable!("not built"));
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let s = Arc::clone(&seen);
        EventSink::new(move |l| s.lock().unwrap().push(l.to_string())).emit(|| "x".into());
        assert_eq!(*seen.lock().unwrap(), ["x"]);
    }
}
