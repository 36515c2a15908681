//! Carrying out one change: the cloud calls for each [`Op`], and what to do when a call's
//! outcome is unknown.
//!
//! A write that fails with a transient error (`UNAVAILABLE`, a deadline, a lost connection)
//! may or may not have happened. Before trying again, each operation re-reads what it was
//! writing: a create looks for the resource by name (so nothing is ever created twice), an
//! update checks whether the cloud already holds the wanted state, a delete checks whether the
//! resource is gone. Only then is the call repeated.

use super::Resolved;
use crate::backoff::Exponential;
use crate::cloud::{CloudApi, CloudError, Code, ParentChange};
use crate::model::{ConfigJson, Grant, ResourceKind, Timestamp};
use crate::plan::canonical::{canonical, fragment_import, same_config};
use crate::plan::{
    Change, GrantRef, IdRef, Op, PartRef, PlannedConfig, PlannedGrant, Precondition,
};
use serde_json::Value;
use std::time::Duration;

/// How often a write with an unknown outcome is re-checked and repeated.
const UNKNOWN_OUTCOME_ATTEMPTS: u32 = 4;
/// The pause before reading back after an unknown outcome: 50, 100, 150 ms (no jitter: the
/// read-back is one caller's own resource, not a crowd retrying against a server).
const SETTLE_BACKOFF: Exponential =
    Exponential::new(Duration::from_millis(50), Duration::from_millis(150));

/// Why a change failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// The resource changed since the plan was made; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

/// What a successful change produced: the id of a created resource, if any.
pub type ExecResult = Result<Option<String>, ExecError>;

/// Runs `write`; when its outcome is unknown, runs `settle` to learn whether it took effect
/// (`Some(result)`) before repeating it.
pub async fn with_unknown_outcome<W, WF, S, SF>(mut write: W, mut settle: S) -> ExecResult
where
    W: FnMut() -> WF,
    WF: std::future::Future<Output = Result<Option<String>, CloudError>>,
    S: FnMut() -> SF,
    SF: std::future::Future<Output = Result<Option<Option<String>>, CloudError>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(r) => return Ok(r),
            Err(e) if e.outcome_unknown() && attempt < UNKNOWN_OUTCOME_ATTEMPTS => {
                tracing::debug!(
                    rpc = e.rpc,
                    attempt,
                    "outcome unknown; re-reading before retrying"
                );
                tokio::time::sleep(SETTLE_BACKOFF.bound(attempt)).await;
                match settle().await {
                    Ok(Some(done)) => return Ok(done),
                    Ok(None) => {}
                    Err(read) if read.is_transient() => {}
                    Err(read) => return Err(read.into()),
                }
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A config ready to write: the planned value with its `fragments` list put back where it
/// goes, each import's id resolved.
fn build_config(cfg: &PlannedConfig, r: &Resolved) -> Result<Value, ExecError> {
    let value = cfg.value.to_value();
    if !value.is_object() {
        return Err(ExecError::Other("a config must be a JSON object".into()));
    }
    cfg.assemble(value, |f| r.id(f))
}

fn grant(g: &PlannedGrant, r: &Resolved) -> Result<Grant, ExecError> {
    let (kind, id) = match &g.target {
        GrantRef::Organization(id) => (ResourceKind::Organization, id.clone()),
        GrantRef::Location(x) => (ResourceKind::Location, r.id(x)?),
        GrantRef::Machine(x) => (ResourceKind::Robot, r.id(x)?),
    };
    Ok(Grant {
        role: g.role,
        resource_kind: kind,
        resource_id: id,
    })
}

/// Gives the roles `add`, then takes `remove` away (adds first, so whoever changes role holds
/// one at every moment): `write(grant, adding)` makes one call, `holds(grant)` reads back
/// whether the grant is held after an unknown outcome.
pub(crate) async fn change_roles<W, WF, H, HF>(
    add: &[PlannedGrant],
    remove: &[PlannedGrant],
    r: &Resolved,
    write: W,
    holds: H,
) -> ExecResult
where
    W: Fn(Grant, bool) -> WF,
    WF: std::future::Future<Output = Result<(), CloudError>>,
    H: Fn(Grant) -> HF,
    HF: std::future::Future<Output = Result<bool, CloudError>>,
{
    for (g, adding) in add
        .iter()
        .map(|g| (g, true))
        .chain(remove.iter().map(|g| (g, false)))
    {
        let g = grant(g, r)?;
        with_unknown_outcome(
            || async { write(g.clone(), adding).await.map(|_| None) },
            || async { Ok((holds(g.clone()).await? == adding).then_some(None)) },
        )
        .await?;
    }
    Ok(None)
}

/// Executes one change against the cloud. A created API key's id and secret go to
/// `new_keys` (and nowhere else).
pub async fn execute(
    api: &dyn CloudApi,
    org_id: &str,
    change: &Change,
    r: &Resolved,
    new_keys: Option<&tokio::sync::mpsc::UnboundedSender<super::NewKey>>,
) -> ExecResult {
    match &change.op {
        Op::CreateKey { name, grants } => {
            let grants = grants
                .iter()
                .map(|g| grant(g, r))
                .collect::<Result<Vec<_>, _>>()?;
            let made: std::sync::Mutex<Option<crate::model::KeySecret>> = Default::default();
            let keep = |s: crate::model::KeySecret| {
                let id = s.id.clone();
                if let Ok(mut m) = made.lock() {
                    *m = Some(s);
                }
                id
            };
            // A key found under the name after an unknown outcome is the one just made; its
            // secret was lost with the answer, so it gets a new one.
            let id = with_unknown_outcome(
                || async { Ok(Some(keep(api.create_key(org_id, name, &grants).await?))) },
                || async {
                    match api
                        .list_keys(org_id)
                        .await?
                        .into_iter()
                        .find(|k| &k.name == name)
                    {
                        Some(k) => Ok(Some(Some(keep(api.rotate_key(&k.id).await?)))),
                        None => Ok(None),
                    }
                },
            )
            .await?;
            let secret = made.lock().ok().and_then(|mut m| m.take());
            match (secret, new_keys) {
                (Some(secret), Some(sink)) => {
                    let _ = sink.send(super::NewKey {
                        name: name.clone(),
                        secret,
                    });
                }
                (Some(_), None) => tracing::warn!(
                    key = %name,
                    "API key created, but nothing receives its secret; `fleetform keys rotate NAME` gives it a new one"
                ),
                (None, _) => {}
            }
            Ok(id)
        }
        Op::UpdateKeyRoles {
            key_id,
            add,
            remove,
        } => {
            change_roles(
                add,
                remove,
                r,
                |g, adding| async move {
                    if adding {
                        api.add_key_role(org_id, key_id, &g).await
                    } else {
                        api.remove_key_role(org_id, key_id, &g).await
                    }
                },
                |g| async move {
                    Ok(api
                        .list_keys(org_id)
                        .await?
                        .iter()
                        .any(|k| &k.id == key_id && k.grants.contains(&g)))
                },
            )
            .await
        }
        Op::RenameKey { key_id, name } => {
            with_unknown_outcome(
                || async { api.rename_key(key_id, name).await.map(|_| None) },
                || async {
                    let done = api
                        .list_keys(org_id)
                        .await?
                        .iter()
                        .any(|k| &k.id == key_id && &k.name == name);
                    Ok(done.then_some(None))
                },
            )
            .await
        }
        Op::DeleteKey { key_id } => {
            with_unknown_outcome(
                || async { api.delete_key(key_id).await.map(|_| None) },
                || async {
                    let gone = !api.list_keys(org_id).await?.iter().any(|k| &k.id == key_id);
                    Ok(gone.then_some(None))
                },
            )
            .await
        }
        Op::CreateLocation { name, parent } => {
            let parent = parent.as_ref().map(|p| r.id(p)).transpose()?;
            let p = parent.as_deref();
            // The plan saw no such location; one that exists now is ours (the newest, should
            // several have appeared).
            with_unknown_outcome(
                || async { Ok(Some(api.create_location(org_id, name, p).await?.id)) },
                || async {
                    let now = api.list_locations(org_id).await?;
                    Ok(now
                        .into_iter()
                        .filter(|l| &l.name == name && l.parent_id.as_deref() == p)
                        .max_by_key(|l| l.created_on)
                        .map(|l| Some(l.id)))
                },
            )
            .await
        }
        Op::UpdateLocation { id, name, parent } => {
            let parent = match parent {
                None => ParentChange::Keep,
                Some(None) => ParentChange::Root,
                Some(Some(p)) => ParentChange::To(r.id(p)?),
            };
            // Idempotent: repeating it is harmless.
            with_unknown_outcome(
                || async {
                    api.update_location(id, name.as_deref(), parent.clone())
                        .await
                        .map(|_| None)
                },
                || async { Ok(None) },
            )
            .await
        }
        Op::DeleteLocation { id } => {
            delete(|| api.delete_location(id), || api.get_location(id)).await
        }
        Op::CreateMachine { name, location } => {
            let loc = r.id(location)?;
            // Machine names are unique per location: one found by name after a lost reply is ours.
            with_unknown_outcome(
                || async { Ok(Some(api.new_machine(name, &loc).await?)) },
                || async {
                    let now = api.list_machines(&loc).await?;
                    Ok(now
                        .into_iter()
                        .find(|m| &m.name == name)
                        .map(|m| Some(m.id)))
                },
            )
            .await
            .map_err(|e| already_exists_hint(e, "machine", name))
        }
        Op::UpdateMachine { id, name, location } => {
            let location = location.as_ref().map(|l| r.id(l)).transpose()?;
            with_unknown_outcome(
                || async {
                    api.update_machine(id, name.as_deref(), location.as_deref())
                        .await
                        .map(|_| None)
                },
                || async { Ok(None) },
            )
            .await
        }
        Op::DeleteMachine { id } => delete(|| api.delete_machine(id), || api.get_machine(id)).await,
        Op::CreatePart {
            machine,
            name,
            config,
        } => {
            let machine = r.id(machine)?;
            // Part names are unique per location: one found by name after a lost reply is ours.
            let id = with_unknown_outcome(
                || async { Ok(Some(api.new_part(&machine, name).await?)) },
                || async {
                    let now = api.get_parts(&machine).await?;
                    Ok(now
                        .into_iter()
                        .find(|p| &p.name == name)
                        .map(|p| Some(p.id)))
                },
            )
            .await
            .map_err(|e| already_exists_hint(e, "part", name))?
            .ok_or_else(|| ExecError::Other("the cloud returned no part id".into()))?;
            if let Some(cfg) = config {
                let value = build_config(cfg, r)?;
                write_part(api, &id, name, Some(&value), None).await?;
            }
            Ok(Some(id))
        }
        Op::UpdatePart { part, name, config } => {
            let (id, current_name) = match part {
                PartRef::MainPartOf(c) => {
                    let main = match r.looked_up.get(c) {
                        Some(looked_up) => looked_up.clone()?,
                        None => main_part(api, &r.created(c)?).await?,
                    };
                    (main.id, Some(main.name))
                }
                other => (r.part(other)?, None),
            };
            if config.is_none() && current_name.as_deref() == Some(name.as_str()) {
                return Ok(Some(id));
            }
            let lku = match (&change.precondition, part) {
                (Some(Precondition::LastUpdated(t)), PartRef::Existing(_)) => Some(*t),
                _ => None,
            };
            let value = config.as_ref().map(|c| build_config(c, r)).transpose()?;
            write_part(api, &id, name, value.as_ref(), lku).await?;
            Ok(Some(id))
        }
        Op::MarkPartAsMain { part } => {
            let id = r.part(part)?;
            with_unknown_outcome(
                || async { api.mark_part_main(&id).await.map(|_| None) },
                || async { Ok(None) },
            )
            .await
        }
        Op::DeletePart { id } => delete(|| api.delete_part(id), || api.get_part(id)).await,
        Op::CreateFragment {
            name,
            config,
            visibility,
        } => {
            let value = build_config(config, r)?;
            with_unknown_outcome(
                || async {
                    Ok(Some(
                        api.create_fragment(org_id, name, &value, *visibility)
                            .await?
                            .id,
                    ))
                },
                || async {
                    let now = api.list_fragments(org_id).await?;
                    Ok(now
                        .into_iter()
                        .filter(|f| &f.name == name)
                        .max_by_key(|f| f.created_on)
                        .map(|f| Some(f.id)))
                },
            )
            .await
        }
        Op::UpdateFragment {
            id,
            name,
            config,
            visibility,
        } => {
            let value = config.as_ref().map(|c| build_config(c, r)).transpose()?;
            let lku = match &change.precondition {
                Some(Precondition::LastUpdated(t)) => Some(*t),
                _ => None,
            };
            write_fragment(api, id, name, value.as_ref(), *visibility, lku).await?;
            Ok(None)
        }
        Op::DeleteFragment { id } => {
            delete(|| api.delete_fragment(id), || api.get_fragment(id)).await
        }
        Op::SetFragmentTag {
            fragment,
            tag,
            revision,
        } => {
            let id = r.id(fragment)?;
            // `None`: the revision the fragment has now, after the changes this one follows.
            let revision = match revision {
                Some(rev) => rev.clone(),
                None => {
                    let now = api.get_fragment(&id).await?.revision;
                    if now.is_empty() {
                        return Err(ExecError::Other(
                            "the cloud did not say which revision the fragment is at".into(),
                        ));
                    }
                    now
                }
            };
            // Idempotent: pointing a tag where it points is harmless.
            with_unknown_outcome(
                || async {
                    api.set_fragment_tag(&id, tag, &revision)
                        .await
                        .map(|_| None)
                },
                || async { Ok(None) },
            )
            .await
        }
        Op::DeleteFragmentTag { fragment, tag } => {
            match api.delete_fragment_tag(fragment, tag).await {
                Ok(_) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) if e.outcome_unknown() => {
                    let now = api.get_fragment_versions(fragment, None).await?;
                    if now.tags.iter().any(|t| &t.tag == tag) {
                        api.delete_fragment_tag(fragment, tag).await?;
                    }
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        }
        Op::UpdateOrganization {
            name,
            public_namespace,
            region,
        } => {
            // Setting the same values again is harmless: an unknown outcome is retried by the
            // next apply, which sees the settings as they are.
            api.update_organization_settings(
                org_id,
                name.as_deref(),
                public_namespace.as_deref(),
                region.as_deref(),
            )
            .await?;
            Ok(None)
        }
        Op::SetMetadata { target, data } => {
            use crate::model::MetadataTarget as T;
            use crate::plan::MetadataRef as M;
            let target = match target {
                M::Organization(id) => T::Organization(id.clone()),
                M::Location(x) => T::Location(r.id(x)?),
                M::Machine(x) => T::Machine(r.id(x)?),
                M::Part(p) => T::Part(r.part(p)?),
            };
            // Replacing the whole object is idempotent: an unknown outcome is simply retried
            // by the next apply, which sees the metadata as it is.
            api.update_metadata(&target, data).await?;
            Ok(None)
        }
        Op::SetDefaultFragments { fragments } => {
            let imports = fragments
                .iter()
                .map(|f| {
                    let entry = f.with_id(&r.id(&f.fragment)?);
                    fragment_import(&entry).ok_or_else(|| {
                        ExecError::Other(format!("default fragment {entry} has no id"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            with_unknown_outcome(
                || async {
                    api.update_organization_default_fragments(org_id, &imports)
                        .await
                        .map(|_| None)
                },
                || async { Ok(None) },
            )
            .await
        }
        Op::CreateInvite {
            email,
            grants,
            send_email,
        } => {
            let grants = grants
                .iter()
                .map(|g| grant(g, r))
                .collect::<Result<Vec<_>, _>>()?;
            with_unknown_outcome(
                || async {
                    api.create_invite(org_id, email, &grants, *send_email)
                        .await
                        .map(|_| None)
                },
                || async {
                    let (_, invites) = api.list_members(org_id).await?;
                    Ok(invites
                        .iter()
                        .any(|i| i.email.eq_ignore_ascii_case(email))
                        .then_some(None))
                },
            )
            .await
        }
        Op::UpdateInvite { email, add, remove } => {
            let add = add
                .iter()
                .map(|g| grant(g, r))
                .collect::<Result<Vec<_>, _>>()?;
            let remove = remove
                .iter()
                .map(|g| grant(g, r))
                .collect::<Result<Vec<_>, _>>()?;
            with_unknown_outcome(
                || async {
                    api.update_invite_grants(org_id, email, &add, &remove)
                        .await
                        .map(|_| None)
                },
                || async {
                    let (_, invites) = api.list_members(org_id).await?;
                    let Some(inv) = invites.iter().find(|i| i.email.eq_ignore_ascii_case(email))
                    else {
                        return Ok(None);
                    };
                    let done = add.iter().all(|g| inv.grants.contains(g))
                        && remove.iter().all(|g| !inv.grants.contains(g));
                    Ok(done.then_some(None))
                },
            )
            .await
        }
        Op::DeleteInvite { email } => {
            with_unknown_outcome(
                || async {
                    match api.delete_invite(org_id, email).await {
                        Err(e) if e.code == Code::NotFound => Ok(None),
                        other => other.map(|_| None),
                    }
                },
                || async {
                    let (_, invites) = api.list_members(org_id).await?;
                    Ok(
                        (!invites.iter().any(|i| i.email.eq_ignore_ascii_case(email)))
                            .then_some(None),
                    )
                },
            )
            .await
        }
        Op::Kind(k) => match crate::kinds::of(k.kind) {
            Some(kind) => {
                let cx = crate::kinds::ExecContext {
                    api,
                    org_id,
                    resolved: r,
                };
                kind.execute(&cx, &k.body).await
            }
            None => Err(ExecError::Other(format!(
                "no registered kind runs {} changes",
                k.kind.as_str()
            ))),
        },
        Op::RotateSecret {
            location_id,
            old_secret_ids,
        } => rotate(api, location_id, old_secret_ids).await,
    }
}

/// `ALREADY_EXISTS` on a create means the plan is out of date: say so.
fn already_exists_hint(e: ExecError, kind: &str, name: &str) -> ExecError {
    match e {
        ExecError::Cloud(c) if c.code == Code::AlreadyExists => ExecError::Conflict(format!(
            "a {kind} named {name:?} appeared since the plan was made ({})",
            c.message
        )),
        other => other,
    }
}

/// A guarded write refused by the cloud (`FAILED_PRECONDITION` or `ABORTED`, recognised by code,
/// never by message text) is a conflict with a change made after the plan.
fn conflict_on_stale(e: ExecError) -> ExecError {
    match e {
        ExecError::Cloud(c) if c.is_conflict() => ExecError::Conflict(format!(
            "it was changed in the cloud after the plan was made; nothing was written ({})",
            c.message
        )),
        other => other,
    }
}

/// What a write guarded by `last_known_update` does after an unknown outcome, given the
/// resource as read back: done, retry with the same precondition, or conflict.
fn settle_guarded(
    done: bool,
    read_back: Option<Timestamp>,
    lku: Option<Timestamp>,
) -> Option<Result<(), ExecError>> {
    if done {
        Some(Ok(()))
    } else if lku.is_none() || read_back == lku {
        None
    } else {
        Some(Err(ExecError::Conflict(
            "it changed in the cloud while fleetform was writing it; nothing more was written"
                .into(),
        )))
    }
}

/// The main part the cloud made with a new machine.
pub(super) async fn main_part(
    api: &dyn CloudApi,
    machine_id: &str,
) -> Result<super::MainPart, ExecError> {
    api.get_parts(machine_id)
        .await?
        .into_iter()
        .find(|p| p.main)
        .map(|p| super::MainPart {
            id: p.id,
            name: p.name,
        })
        .ok_or_else(|| ExecError::Other("the new machine has no main part".into()))
}

/// Writes a part's name and (optionally) config with optimistic concurrency, settling unknown
/// outcomes by reading the part back.
async fn write_part(
    api: &dyn CloudApi,
    id: &str,
    name: &str,
    value: Option<&Value>,
    lku: Option<Timestamp>,
) -> Result<(), ExecError> {
    let mut attempt = 1;
    loop {
        match api.update_part(id, name, value, lku).await {
            Ok(_) => return Ok(()),
            Err(e) if e.outcome_unknown() && attempt < UNKNOWN_OUTCOME_ATTEMPTS => {
                tokio::time::sleep(SETTLE_BACKOFF.bound(attempt)).await;
                match api.get_part(id).await {
                    Ok(p) => {
                        let done = p.name == name
                            && value
                                .is_none_or(|v| same_config(&p.config, &ConfigJson::from_value(v)));
                        if let Some(r) = settle_guarded(done, p.last_updated, lku) {
                            return r;
                        }
                    }
                    Err(read) if read.is_transient() => {}
                    Err(read) => return Err(read.into()),
                }
                attempt += 1;
            }
            Err(e) => return Err(conflict_on_stale(e.into())),
        }
    }
}

async fn write_fragment(
    api: &dyn CloudApi,
    id: &str,
    name: &str,
    value: Option<&Value>,
    visibility: Option<crate::model::Visibility>,
    lku: Option<Timestamp>,
) -> Result<(), ExecError> {
    let mut attempt = 1;
    loop {
        match api.update_fragment(id, name, value, visibility, lku).await {
            Ok(_) => return Ok(()),
            Err(e) if e.outcome_unknown() && attempt < UNKNOWN_OUTCOME_ATTEMPTS => {
                tokio::time::sleep(SETTLE_BACKOFF.bound(attempt)).await;
                match api.get_fragment(id).await {
                    Ok(f) => {
                        let done = f.name == name
                            && value.is_none_or(|v| canonical(&f.config) == canonical(v))
                            && visibility.is_none_or(|v| f.visibility == v);
                        if let Some(r) = settle_guarded(done, f.last_updated, lku) {
                            return r;
                        }
                    }
                    Err(read) if read.is_transient() => {}
                    Err(read) => return Err(read.into()),
                }
                attempt += 1;
            }
            Err(e) => return Err(conflict_on_stale(e.into())),
        }
    }
}

/// Deletes idempotently: `NOT_FOUND` counts as done, and an unknown outcome is settled by
/// checking whether the resource still exists.
async fn delete<D, DF, G, GF, T>(del: D, get: G) -> ExecResult
where
    D: Fn() -> DF,
    DF: std::future::Future<Output = Result<(), CloudError>>,
    G: Fn() -> GF,
    GF: std::future::Future<Output = Result<T, CloudError>>,
{
    with_unknown_outcome(
        || async {
            match del().await {
                Err(e) if e.code == Code::NotFound => Ok(None),
                other => other.map(|_| None),
            }
        },
        || async {
            match get().await {
                Err(e) if e.is_not_found() => Ok(Some(None)),
                Err(e) => Err(e),
                Ok(_) => Ok(None),
            }
        },
    )
    .await
}

/// Replaces a location's secrets by one new secret, never leaving it without a valid one.
async fn rotate(api: &dyn CloudApi, location_id: &str, old: &[String]) -> ExecResult {
    let current = api.location_secrets(location_id).await?;
    let has_new = current.iter().any(|s| !old.contains(&s.id));
    if !has_new {
        if current.len() >= 2 {
            // At the cap: drop the oldest first; the other stays valid meanwhile.
            let oldest = current
                .iter()
                .min_by_key(|s| (s.created_on, s.id.clone()))
                .map(|s| s.id.clone());
            if let Some(oldest) = oldest {
                delete(
                    || api.delete_location_secret(location_id, &oldest),
                    || async { Ok::<(), CloudError>(()) },
                )
                .await?;
            }
        }
        with_unknown_outcome(
            || async { api.create_location_secret(location_id).await.map(|_| None) },
            || async {
                let now = api.location_secrets(location_id).await?;
                Ok(now.iter().any(|s| !old.contains(&s.id)).then_some(None))
            },
        )
        .await?;
    }
    for s in api.location_secrets(location_id).await? {
        if old.contains(&s.id) {
            match api.delete_location_secret(location_id, &s.id).await {
                Ok(()) => {}
                Err(e) if e.code == Code::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(None)
}

impl Resolved {
    /// The cloud id an [`IdRef`] stands for.
    pub fn id(&self, r: &IdRef) -> Result<String, ExecError> {
        match r {
            IdRef::Existing(id) => Ok(id.clone()),
            IdRef::CreatedBy(c) => self.created(c),
        }
    }

    fn part(&self, r: &PartRef) -> Result<String, ExecError> {
        match r {
            PartRef::Existing(id) => Ok(id.clone()),
            PartRef::CreatedBy(c) => self.created(c),
            PartRef::MainPartOf(c) => self.main_parts.get(c).cloned().ok_or_else(|| {
                ExecError::Other(format!(
                    "the main part of the machine created by {c} is not known yet"
                ))
            }),
        }
    }
}
