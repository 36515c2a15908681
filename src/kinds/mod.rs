//! The registry of resource kinds: a kind that implements [`ResourceKind`] keeps its planning,
//! its operations and their execution, and its stale-plan check in one module
//! (`src/kinds/<kind>.rs`), and the generic code reaches it only through [`KINDS`].
//!
//! # What the generic code does for a registered kind
//!
//! - **Plan** (`plan::plan`): after invites and before API keys, each registered kind plans
//!   its changes through a [`KindPlanner`], which gives it the desired and observed state,
//!   the prune setting, the shared grant helpers (the targets a grant names, their labels for
//!   people) and the means to push changes, errors and unmanaged resources. Its changes are
//!   numbered, sequenced and rendered like every other change.
//! - **Operations**: a kind's changes carry [`Op::Kind`] holding a [`KindOp`]: the kind and
//!   the operation's body as JSON. The body is the kind's own `#[serde(tag = "op")]` enum
//!   serialized, so a saved plan holds it exactly as a built-in operation is written
//!   (`{"op": "update_member_roles", ...}`), and reading a saved plan finds the kind by the
//!   `op` tag ([`ResourceKind::ops`]) and checks the body ([`ResourceKind::check_op`]).
//! - **References to created resources** inside a body are written as [`IdRef`](crate::plan::IdRef) /
//!   [`PartRef`](crate::plan::PartRef) values (`{"created_by": "c3"}`), which is how every operation refers to a
//!   resource an earlier change of the plan creates. When the plan renumbers its changes,
//!   [`map_refs`] rewrites them in any body, so renumbering needs nothing from the kind. The
//!   rule that follows: a body must not carry free-form user data as JSON objects (a
//!   user's `{"created_by": ...}` would be rewritten); carry such data as a string.
//! - **Apply** runs [`ResourceKind::execute`] for the kind's operations, with the cloud, the
//!   organization and the ids resolved so far ([`ExecContext`]); the engine's ordering,
//!   retries of unknown outcomes (`apply::with_unknown_outcome`) and reporting are shared.
//! - **Stale plans**: [`ResourceKind::stale`] re-reads what one of its changes assumed.
//!
//! # Registered kinds
//!
//! - [`members`]: members' roles (`access: members:`).
//!
//! The other kinds (locations, machines, parts, fragments, fragment tags, invites, location
//! secrets, metadata, organization settings, API keys) use the older layout described in
//! `CONTRIBUTING.md`.

use crate::apply::{ExecResult, Resolved};
use crate::cloud::{CloudApi, CloudError};
use crate::plan::{Change, Kind, Op};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod members;

pub use crate::plan::KindPlanner;

/// Every registered kind, in the order they are planned.
pub static KINDS: &[&dyn ResourceKind] = &[&members::Members];

/// One kind of resource, kept in one module.
#[async_trait::async_trait]
pub trait ResourceKind: Send + Sync {
    /// Its name in plans and JSON output (`snake_case`), unique among all kinds.
    fn key(&self) -> &'static str;

    /// Its name for people.
    fn label(&self) -> &'static str;

    /// The kind of its changes, notices and unmanaged resources.
    fn kind(&self) -> Kind {
        Kind::Registered(self.key())
    }

    /// The `op` tags of its operations, as written in a plan.
    fn ops(&self) -> &'static [&'static str];

    /// Whether `body` (an operation with one of [`Self::ops`] as its tag) is well formed; the
    /// error says what is wrong. Saved plans are checked as they are read.
    fn check_op(&self, body: &Value) -> Result<(), String>;

    /// Plans its changes: `desired` against `observed`, through `p`. Pure, like all planning.
    fn plan(&self, p: &mut KindPlanner<'_, '_>);

    /// Carries out one of its operations.
    async fn execute(&self, cx: &ExecContext<'_>, body: &Value) -> ExecResult;

    /// `Some(what changed)` when the precondition of `change` (one of its changes) no longer
    /// holds.
    async fn stale(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        change: &Change,
    ) -> Result<Option<String>, CloudError>;
}

/// What an operation runs with: the cloud, the organization, and the ids of the resources
/// created by the changes it waits for.
pub struct ExecContext<'a> {
    pub api: &'a dyn CloudApi,
    pub org_id: &'a str,
    pub resolved: &'a Resolved,
}

/// The registered kind whose changes have kind `kind`.
pub fn of(kind: Kind) -> Option<&'static dyn ResourceKind> {
    match kind {
        Kind::Registered(key) => by_key(key),
        _ => None,
    }
}

/// The registered kind called `key` ([`ResourceKind::key`]).
pub fn by_key(key: &str) -> Option<&'static dyn ResourceKind> {
    KINDS.iter().copied().find(|k| k.key() == key)
}

/// An operation of a registered kind: its body as written in a plan (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct KindOp {
    pub kind: Kind,
    pub body: Value,
}

impl KindOp {
    /// The operation `op` (a value of the kind's `#[serde(tag = "op")]` enum) of `kind`.
    pub fn op(kind: Kind, op: &impl Serialize) -> Op {
        let body = serde_json::to_value(op).expect("an operation serializes to JSON");
        Op::Kind(KindOp { kind, body })
    }

    /// The body read as the kind's operation type.
    pub fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, String> {
        T::deserialize(body).map_err(|e| e.to_string())
    }
}

impl Serialize for KindOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(s)
    }
}

impl<'de> Deserialize<'de> for KindOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let body = Value::deserialize(d)?;
        let tag = body
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| D::Error::custom("an operation needs an `op` tag"))?;
        let kind = KINDS
            .iter()
            .find(|k| k.ops().contains(&tag))
            .ok_or_else(|| D::Error::custom(format!("unknown operation `{tag}`")))?;
        kind.check_op(&body)
            .map_err(|e| D::Error::custom(format!("operation `{tag}`: {e}")))?;
        Ok(KindOp {
            kind: kind.kind(),
            body,
        })
    }
}

/// Applies `map` to every change id an operation body refers to: the `created_by` of an
/// [`IdRef`](crate::plan::IdRef) or [`PartRef`](crate::plan::PartRef) and the `main_part_of`
/// of a `PartRef`, wherever they are.
pub fn map_refs(body: &mut Value, map: &impl Fn(&mut String)) {
    match body {
        Value::Object(o) => {
            if o.len() == 1
                && let Some((k, Value::String(id))) = o.iter_mut().next()
                && (k == "created_by" || k == "main_part_of")
            {
                map(id);
                return;
            }
            o.values_mut().for_each(|v| map_refs(v, map));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| map_refs(v, map)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_to_created_resources_are_renumbered_anywhere_in_a_body() {
        let mut body = json!({
            "op": "x",
            "created_by": "c9",
            "add": [{"role": "owner", "target": {"location": {"created_by": "c3"}}}],
            "part": {"main_part_of": "c4"},
            "keep": {"existing": "c5"},
        });
        map_refs(&mut body, &|id: &mut String| id.push('!'));
        assert_eq!(
            body,
            json!({
                "op": "x",
                "created_by": "c9",
                "add": [{"role": "owner", "target": {"location": {"created_by": "c3!"}}}],
                "part": {"main_part_of": "c4!"},
                "keep": {"existing": "c5"},
            })
        );
    }

    #[test]
    fn registered_kinds_have_keys_no_other_kind_has() {
        let mut keys: Vec<&str> = KINDS.iter().map(|k| k.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), KINDS.len(), "two registered kinds share a key");
        for k in KINDS {
            let json = serde_json::to_value(k.kind()).unwrap();
            assert_eq!(json, json!(k.key()));
            assert_eq!(serde_json::from_value::<Kind>(json).unwrap(), k.kind());
            assert_eq!(k.kind().as_str(), k.label());
        }
        for built_in in [Kind::Fragment, Kind::LocationSecret, Kind::ApiKey] {
            assert!(by_key(built_in.key()).is_none(), "{}", built_in.key());
        }
        let ops: Vec<&str> = KINDS.iter().flat_map(|k| k.ops().iter().copied()).collect();
        assert_eq!(
            ops.iter().collect::<std::collections::BTreeSet<_>>().len(),
            ops.len(),
            "two registered operations share a tag"
        );
    }

    #[test]
    fn a_saved_operation_of_no_registered_kind_is_refused() {
        let e = serde_json::from_value::<KindOp>(json!({"op": "frobnicate"})).unwrap_err();
        assert!(
            e.to_string().contains("unknown operation `frobnicate`"),
            "{e}"
        );
        let e = serde_json::from_value::<KindOp>(json!({"user_id": "u"})).unwrap_err();
        assert!(e.to_string().contains("`op` tag"), "{e}");
    }
}
