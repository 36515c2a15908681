//! The registry of resource kinds: a kind that implements [`ResourceKind`] keeps its manifest
//! section (serde type, schema, validation, export, import), its observation, its planning,
//! its operations and their execution, and its stale-plan check in one module
//! (`src/kinds/<kind>.rs`), and the generic code reaches it only through [`KINDS`].
//!
//! # What the generic code does for a registered kind
//!
//! - **The manifest**: its section sits under `access:` ([`ResourceKind::section`]). The
//!   schema (`manifest::schema`, and so the structural pass and `fleetform.schema.json`)
//!   takes its fragment; `RawAccess` keeps the section as written; validation hands it to
//!   the kind with a [`SectionValidator`] (diagnostics at their place, the shared grant
//!   rules) and stores the kind's desired form in `Desired::kinds[key]` (type-erased JSON:
//!   the generic code never names the kind's types); included files may hold it; export
//!   and import ([`Importer`]) go through the kind.
//! - **Observe**: when the manifest has its section, its read
//!   ([`ResourceKind::observe`]) runs with the organization-wide lists, under the same
//!   concurrency limit and retry budget, into `Observed::kinds[key]`.
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
//! - **References to created resources** inside a body are written as
//!   [`IdRef`](crate::plan::IdRef) / [`PartRef`](crate::plan::PartRef) values
//!   (`{"created_by": "c3"}`), which is how every operation refers to a resource an earlier
//!   change of the plan creates. When the plan renumbers its changes,
//!   [`map_refs`] rewrites them in any body, so renumbering needs nothing from the kind. The
//!   rule that follows: a body must not carry free-form user data as JSON objects (a
//!   user's `{"created_by": ...}` would be rewritten); carry such data as a string.
//! - **The wire**: a kind makes the RPCs only it needs with [`call`] (the generated
//!   request and answer messages, through the one generic [`CloudApi::call_app`]), so a new
//!   RPC needs its messages in `proto/` and nothing in `cloud/`.
//! - **The local cloud** serves a kind's own RPCs from the kind's local half
//!   (`src/kinds/<kind>/local.rs`, listed in [`LOCAL`]): its tables (created on every open of
//!   a store) and its handlers, routed in front of the generated `AppService` with the same
//!   authentication, roles, faults and error limits as every other RPC (see
//!   `crate::localcloud::kind`). Members' `AddRole`/`RemoveRole` stay in the `AppService`
//!   impl: they are shared with API keys' roles there.
//! - **Apply** runs [`ResourceKind::execute`] for the kind's operations, with the cloud, the
//!   organization and the ids resolved so far ([`ExecContext`]); the engine's ordering,
//!   failure handling and reporting are shared, and so is `apply::change_roles` (add, then
//!   remove, each write re-checked after an unknown outcome) for holders of roles.
//! - **Stale plans**: [`ResourceKind::stale`] re-reads what one of its changes assumed.
//!
//! # Decisions
//!
//! - **Type erasure as JSON**: a kind's desired and observed data are `serde_json::Value`s
//!   in `Desired::kinds` / `Observed::kinds`, keyed by [`ResourceKind::key`], so `Desired`
//!   and `Observed` stay `Clone`, comparable and serializable, and the model never names a
//!   kind. The kind parses its own form where it uses it; for the sizes involved (an
//!   organization's members) that costs nothing measurable.
//! - **Saved plans keep their shape**: [`Kind::Registered`] is written by its key
//!   (`"member"`, as before) and an [`Op::Kind`] as the kind's own tagged operation, so plans
//!   saved before a kind moved onto the registry still read, and plan fixtures did not change.
//! - **Layering**: `model` knows nothing of kinds; `plan` calls a kind only through the pure
//!   [`ResourceKind::plan`]; the kinds use the layers below them like any caller. A kind's
//!   local half is a child module of the kind (one directory per kind, so the list of files
//!   stays short) but imports only the generated messages and `crate::localcloud::kind`;
//!   the local cloud reads [`LOCAL`] and nothing else of this module.
//! - **Naming a kind in code**: a kind module may name its `Kind` for the code and tests that
//!   need it (`Kind::Member`), and offer typed accessors (`members::{declared, roles}`) and
//!   its RPCs as an extension trait of every `CloudApi` (`members::MemberRoles`).
//! - **Sections under `access:`**: the one place registered kinds' sections go today; a kind
//!   with a top-level section first gives `RawManifest` the same flattened map `RawAccess`
//!   has.
//!
//! # Registered kinds
//!
//! - [`members`]: members' roles (`access: members:`).
//! - [`oauth_apps`]: OAuth apps (`access: oauth_apps:`), with RPCs and a local-cloud table of
//!   its own ([`oauth_apps::local`]).
//!
//! The other kinds (locations, machines, parts, fragments, fragment tags, invites, location
//! secrets, metadata, organization settings, API keys) use the older layout described in
//! `CONTRIBUTING.md`.

use crate::apply::{ExecResult, Resolved};
use crate::cloud::{CloudApi, CloudError};
use crate::manifest::section::{Importer, SectionValidator, YPath};
use crate::plan::{Change, Kind, Op};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod members;
pub mod oauth_apps;

pub use crate::plan::KindPlanner;

/// Every registered kind, in the order they are planned.
pub static KINDS: &[&dyn ResourceKind] = &[&members::Members, &oauth_apps::OAuthApps];

/// The local cloud's half of every registered kind that has one: its tables and the RPCs it
/// serves (see `crate::localcloud::kind`).
pub static LOCAL: &[&dyn crate::localcloud::kind::LocalKind] = &[&oauth_apps::local::Local];

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

    // -- Its manifest section.

    /// Its key under `access:`.
    fn section(&self) -> &'static str;

    /// The JSON schema of its section, and the `$defs` entries that refers to.
    fn schema(&self) -> (Value, Vec<(&'static str, Value)>);

    /// Its section as written (`raw`, at `at`), in its desired form (what `Desired::kinds`
    /// holds); problems are reported through `v`.
    fn validate(&self, v: &mut SectionValidator<'_, '_>, raw: &Value, at: &YPath) -> Value;

    /// Its desired form written back as its section (export, import).
    fn export(&self, desired: &Value) -> Value;

    /// What the cloud holds, in its desired form (`import`); `None`: no section.
    fn import(&self, i: &mut Importer<'_, '_>) -> Option<Value>;

    /// Its desired form of an empty section: what `import` and `status` observe with.
    fn empty(&self) -> Value {
        Value::Array(vec![])
    }

    // -- Observing.

    /// Whether it plans against the organization's members (`Observed::members`), which
    /// are then read.
    fn needs_members(&self) -> bool {
        false
    }

    /// What [`Self::observe`] reads, for messages: `the members' roles`.
    fn reads(&self) -> &'static str;

    /// Reads what it plans against (only when the manifest has its section); the result is
    /// `Observed::kinds[key]`. Retried like every read of an observation; `limit` is the
    /// most reads it may have in flight at once (the observation's read concurrency).
    async fn observe(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        limit: usize,
    ) -> Result<Value, CloudError>;

    // -- Planning and applying.

    /// Plans its changes: its desired form against what it observed, through `p`. Pure, like
    /// all planning.
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

/// One of a kind's own RPCs: `rpc` (its Viam name) of AppService with `request`, the answer
/// decoded as `Resp`. The messages are the generated ones (`crate::proto`); the call goes
/// through [`CloudApi::call_app`], so it is authenticated, bounded, retried (reads), counted
/// and observed like every other.
pub async fn call<A, Req, Resp>(
    api: &A,
    rpc: &'static str,
    write: bool,
    request: &Req,
) -> Result<Resp, CloudError>
where
    A: CloudApi + ?Sized,
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    let answer = api.call_app(rpc, write, request.encode_to_vec()).await?;
    Resp::decode(answer.as_slice()).map_err(|e| {
        CloudError::new(
            rpc,
            crate::cloud::Code::Other,
            format!("the answer is not a valid message: {e}"),
        )
    })
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
    fn a_registered_operation_is_written_as_its_kind_writes_it_and_read_back() {
        let body = json!({
            "op": "update_member_roles",
            "user_id": "u1",
            "add": [{"role": "operator", "target": {"location": {"created_by": "c2"}}}],
            "remove": [],
        });
        let op = KindOp::op(Kind::Member, &body);
        assert_eq!(serde_json::to_value(&op).unwrap(), body);
        assert_eq!(serde_json::from_value::<Op>(body).unwrap(), op);
        // A built-in operation is still read as itself.
        let built_in = json!({"op": "delete_location", "id": "l1"});
        assert_eq!(
            serde_json::from_value::<Op>(built_in).unwrap(),
            Op::DeleteLocation { id: "l1".into() }
        );
        // The kind checks the body of a saved operation.
        let e = serde_json::from_value::<KindOp>(json!({"op": "update_member_roles"})).unwrap_err();
        assert!(
            e.to_string().contains("operation `update_member_roles`"),
            "{e}"
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
