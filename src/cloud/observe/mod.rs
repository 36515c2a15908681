//! Reading the cloud into an [`Observed`] model: what `plan` compares the manifest against.
//!
//! # Calls
//!
//! One observation is a fixed handful of list calls plus one read per managed machine:
//!
//! 1. `ListOrganizations` (once) resolves the manifest's `organization:` (an id or a name).
//! 2. Concurrently: `ListLocations`, `ListFragments` (every visibility; only the organization's
//!    own fragments are kept), and `ListOrganizationMembers` only when the manifest manages
//!    access (`access:` present, `Desired::invites` is `Some`) or a managed registered kind
//!    needs the members; and what each registered kind the manifest manages reads
//!    ([`crate::kinds::ResourceKind::observe`]; members' roles: `ListAuthorizations`).
//! 3. The machines of every listed location with `ListRobotsForLocations` (what Viam's official
//!    SDKs use), [`LOCATIONS_PER_CALL`] locations per call, the calls concurrent — see
//!    [`list_machines`] for the fallbacks on clouds that lack it. Alongside them, as soon as
//!    the fragments are listed: `GetFragmentUsage` for every observed fragment a declaration
//!    may match (by `id:`, name or `moved_from:`; for the blast radius of fragment changes), and
//!    `GetFragment` (revisions and tags) for those of them whose declaration manages `tags:`.
//! 4. Once the machines are listed, concurrently: `GetRobotParts` for every machine in the
//!    managed scope (see below) and `LocationAuth` for every observed location matched to a
//!    declared location with a secret rotation policy.
//!
//! 5. `Get{Organization,Location,Robot,RobotPart}Metadata` only for the owners whose
//!    declaration has a `metadata:` key ([`metadata_to_read`]): Viam has no list call for
//!    metadata, so a manifest without `metadata:` costs no reads here.
//!
//! All reads in flight at once are bounded by [`ObserveOptions::read_concurrency`] (default 32),
//! one limit shared by the reads of steps 3 and 4: each read starts as soon as a slot is free
//! (a pool, not waves). No per-resource `Get` is ever made where a list call serves (metadata
//! has none).
//!
//! # Early reads
//!
//! Steps 1–3 but the fragment reads need no manifest when the API key sees one organization
//! (the usual key of one organization). [`read_early`] makes them, and `fleetform plan` starts
//! it on a remote cloud while the manifest loads; [`observe_after`] then takes the
//! organizations from it, and the locations, fragments and machines when they are the
//! manifest's organization's (otherwise it reads them itself). A failed early read is not an
//! error: the observation makes that read again and reports it as usual. `apply` does not read
//! early: it lists the fleet only after taking the organization's lease.
//!
//! `plan` also reads the organization's parts ahead ([`Early::read_parts_ahead`]): once the
//! machines are listed, `GetRobotParts` for each of them starts in a pool while the manifest
//! is still loading, and the observation tells that pool its scope as soon as it knows it
//! (see `early.rs` for the pool, the shared limit of reads in flight, and what a manifest of
//! part of an organization may read beyond its scope).
//!
//! # Retries: a budget per observation
//!
//! The client retries each read a few times on a transient error (`UNAVAILABLE`, a deadline,
//! a lost connection; see [`super::RetryPolicy`]). A read that still fails is not the end of
//! the observation: it is started again, up to [`ROUNDS_PER_READ`] more times, while the
//! observation's shared budget ([`ObserveOptions::retry_budget`], default
//! [`DEFAULT_RETRY_BUDGET`]) lasts. At a 30% error rate about one read in 400 exhausts the
//! client's 5 attempts, so a fleet of 2,000 machines spends a handful of the budget, where
//! before one such read aborted the whole plan. A cloud that is down spends the budget quickly
//! and the observation fails with the last error, so a dead cloud is still reported within
//! seconds rather than retried for minutes.
//!
//! # Matching and managed scope
//!
//! Observation is deliberately *generous*: it reads a superset of what the planner needs, and
//! leaves the decisions (ambiguity, renames, moves) to the planner.
//!
//! - An observed location's **path** is its name path from the top (`HQ/Assembly`), computed by
//!   [`location_paths`]. A location whose parent chain is broken (dangling parent id, or a
//!   cycle) has no path and never matches by path.
//! - A declared location **matches** ([`match_locations`]) every observed location that
//!   - has the pinned `id:`, or
//!   - has the same name (or the temporary name of an unfinished swap, see
//!     [`crate::model::temporary_name`]) and sits where the declared one does: at the top level
//!     for a top-level declaration, or directly under any observed location matched to the
//!     declared parent (so children follow a pinned or moved parent), or whose path equals the
//!     declared path, or
//!   - whose path equals the declared `moved_from:` path.
//! - The **managed locations** ([`managed_locations`]) are every matched location plus all of
//!   their descendants.
//! - Parts are read ([`machines_to_read`]) for every machine in a managed location, every
//!   machine pinned by a declared `id:` (wherever it is), and every machine found at a declared
//!   machine's `moved_from:` path.
//! - Location secrets are read for every observed location matched to a declared location
//!   with `rotate_secrets_after` set, unless the location's primary organization is another
//!   one (a location shared with ours: only its owner may read its secrets).
//! - Each observed location carries its `organizations` as the cloud reports them, so the
//!   planner can tell the locations another organization owns and shares with ours.
//!
//! # Layout
//! - `mod.rs`: the options, the error, and [`observe`] itself.
//! - `scope.rs`: the pure rules above: resolving the organization, matching locations, and
//!   what to read.
//! - `reads.rs`: the reads outside one observation: [`observe_scope`] (a subtree for import
//!   and status), [`attribute`] (drift attribution), [`fragment_tags`], [`list_machines`].
//! - `budget.rs`: the retry budget and the bounded-concurrency helper every read goes through.
//! - `early.rs`: [`Early`], the reads made before the manifest is known.

mod budget;
mod early;
mod reads;
mod scope;

pub use budget::RetryBudget;
pub(crate) use budget::bounded;
pub use early::{Early, read_early, read_lists_leased};
pub use reads::{
    LOCATIONS_PER_CALL, attribute, fragment_tags, list_machines, observe_for_import, observe_scope,
};
pub use scope::{
    fragments_to_read, location_paths, machines_to_read, managed_locations, match_locations,
    metadata_to_read, resolve_organization, secrets_to_read,
};

use super::{CloudApi, CloudError, Code};
use crate::model::{
    Desired, Fragment, FragmentTag, FragmentUsage, Invite, Location, LocationSecret, Machine,
    Member, Metadata, MetadataTarget, Observed, Part, Timestamp,
};
use std::collections::BTreeMap;

/// How to observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserveOptions {
    /// Most reads in flight at once (at least 1; `0` is treated as 1).
    pub read_concurrency: usize,
    /// How many times, in all, reads whose client retries were exhausted by transient errors
    /// are started again during one observation (see the module docs).
    pub retry_budget: usize,
    /// The organization the API key is expected to see, and to see alone (the one it saw last
    /// time: the CLI remembers it). The early reads ([`read_early`], [`read_lists_leased`])
    /// then list that organization's locations and fragments together with the
    /// organizations, a round trip sooner, and keep those lists only when the key does see
    /// exactly that organization: a wrong guess costs those reads and nothing else. The
    /// observation itself ignores it.
    pub organization_guess: Option<String>,
}

/// Default of [`ObserveOptions::retry_budget`].
pub const DEFAULT_RETRY_BUDGET: usize = 100;

/// Most times one read is started again from the budget.
pub const ROUNDS_PER_READ: u32 = 3;

impl Default for ObserveOptions {
    /// 32 reads in flight, a retry budget of [`DEFAULT_RETRY_BUDGET`], no guess of the
    /// organization.
    fn default() -> Self {
        ObserveOptions {
            read_concurrency: 32,
            retry_budget: DEFAULT_RETRY_BUDGET,
            organization_guess: None,
        }
    }
}

/// Why an observation failed. Messages name what was being read and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A cloud read failed; `what` says what was being read, `source` is the cloud's answer.
    #[error("could not read {what}")]
    Read {
        what: String,
        #[source]
        source: CloudError,
    },
    /// The manifest's `organization:` matches none of the organizations the API key can see.
    #[error(
        "organization `{wanted}` not found; {}\nhint: set `organization:` in the manifest to one of these names or ids, or use an API key of that organization",
        visible_orgs(.visible)
    )]
    OrganizationNotFound {
        /// The manifest's `organization:` value.
        wanted: String,
        /// `(name, id)` of every organization the API key can see.
        visible: Vec<(String, String)>,
    },
    /// The manifest names its organization by a name that several visible organizations have.
    #[error(
        "organization name `{name}` is ambiguous: it matches organizations {}\nhint: set `organization:` to the id of the one you mean",
        .ids.join(", ")
    )]
    AmbiguousOrganization { name: String, ids: Vec<String> },
}

fn visible_orgs(visible: &[(String, String)]) -> String {
    if visible.is_empty() {
        return "the API key can see no organizations".to_string();
    }
    let list: Vec<String> = visible
        .iter()
        .map(|(name, id)| format!("`{name}` ({id})"))
        .collect();
    format!("the API key can see: {}", list.join(", "))
}

fn read_error(what: impl Into<String>) -> impl FnOnce(CloudError) -> ObserveError {
    let what = what.into();
    move |source| ObserveError::Read { what, source }
}

/// Reads what the cloud holds for the manifest's organization and scope (see the module docs
/// for the calls made and the scope rules).
pub async fn observe(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &ObserveOptions,
) -> Result<Observed, ObserveError> {
    observe_after(api, desired, opts, None).await
}

/// [`observe`], taking from `early` (see [`read_early`]) the reads it made: the organizations
/// always, and the locations, fragments and machines when they are the manifest's
/// organization's. The observation then counts as made when the early reads started.
pub async fn observe_after(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &ObserveOptions,
    early: Option<Early>,
) -> Result<Observed, ObserveError> {
    let (observed_at, early_orgs, early_lists) = match early {
        Some(e) => (e.observed_at, Some(e.orgs), e.lists),
        None => (Timestamp::now(), None, None),
    };
    let limit = opts.read_concurrency.max(1);
    let budget = &RetryBudget::new(opts.retry_budget);

    // 1. The organization.
    tracing::info!(phase = "organization", "observe: resolving organization");
    let orgs = match early_orgs {
        Some(orgs) => orgs,
        None => budget
            .read(|| api.list_organizations())
            .await
            .map_err(read_error(
                "the organizations this API key can see (ListOrganizations)",
            ))?,
    };
    let organization = resolve_organization(orgs, &desired.organization)?;
    let org_id = organization.id.clone();
    let org_label = format!("organization `{}` ({})", organization.name, org_id);
    tracing::info!(
        phase = "organization",
        org_id = %organization.id,
        org_name = %organization.name,
        "observe: organization resolved"
    );
    let early_lists = early_lists.filter(|l| l.org_id == org_id);

    // 2. The org-wide lists, concurrently (locations and fragments unless read early).
    let mut lists = vec![];
    if early_lists.is_none() {
        lists.extend([ListRead::Locations, ListRead::Fragments]);
    }
    let kinds: Vec<&'static dyn crate::kinds::ResourceKind> = crate::kinds::KINDS
        .iter()
        .copied()
        .filter(|k| desired.kinds.contains_key(k.key()))
        .collect();
    if desired.invites.is_some() || kinds.iter().any(|k| k.needs_members()) {
        lists.push(ListRead::Members);
    }
    lists.extend(kinds.iter().map(|&k| ListRead::Kind(k)));
    if desired.keys.is_some() {
        lists.push(ListRead::Keys);
    }
    tracing::info!(
        phase = "lists",
        calls = lists.len(),
        "observe: listing locations, fragments{}",
        if lists.iter().any(|l| matches!(l, ListRead::Members)) {
            " and members"
        } else {
            ""
        }
    );
    let (org_id, org_label) = (&org_id, &org_label);
    let results = bounded(&lists, limit, |read| async move {
        match read {
            ListRead::Locations => budget
                .read(|| api.list_locations(org_id))
                .await
                .map(Listed::Locations)
                .map_err(read_error(format!("the locations of {org_label}"))),
            ListRead::Fragments => budget
                .read(|| api.list_fragments(org_id))
                .await
                .map(|fs| Listed::Fragments(own_fragments(fs)))
                .map_err(read_error(format!("the fragments of {org_label}"))),
            ListRead::Members => budget
                .read(|| api.list_members(org_id))
                .await
                .map(|(m, i)| Listed::Members(m, i))
                .map_err(read_error(format!(
                    "the members and invites of {org_label}"
                ))),
            ListRead::Kind(k) => budget
                .read(|| k.observe(api, org_id, limit))
                .await
                .map(|v| Listed::Kind(k.key(), v))
                .map_err(read_error(format!("{} in {org_label}", k.reads()))),
            ListRead::Keys => budget
                .read(|| api.list_keys(org_id))
                .await
                .map(Listed::Keys)
                .map_err(read_error(format!("the API keys of {org_label}"))),
        }
    })
    .await?;
    let mut locations = vec![];
    let mut fragments = vec![];
    let mut early_machines = None;
    let mut ahead = None;
    let mut fragments_ahead = vec![];
    if let Some(early) = early_lists {
        locations = early.locations;
        fragments = early.fragments;
        early_machines = Some(early.machines);
        ahead = early.ahead;
        fragments_ahead = early.fragment_reads;
    }
    let mut members = vec![];
    let mut invites = None;
    let mut kinds = std::collections::BTreeMap::new();
    let mut api_keys = None;
    for listed in results {
        match listed {
            Listed::Locations(l) => locations = l,
            Listed::Fragments(f) => fragments = f,
            Listed::Members(m, i) => {
                members = m;
                // Read for members' roles alone, invites stay unmanaged.
                invites = desired.invites.is_some().then_some(i);
            }
            Listed::Kind(key, v) => {
                kinds.insert(key.to_string(), v);
            }
            Listed::Keys(k) => api_keys = Some(k),
        }
    }

    // 3 and 4. The machines of every location and then the managed scope (parts of its
    //    machines, secrets of rotating locations); meanwhile the reads that need only the
    //    fragments (usage, revisions and tags). All share one limit of reads in flight.
    // The parts read ahead take their slots from the same semaphore.
    let permits = match &ahead {
        Some(ahead) => ahead.permits(),
        None => std::sync::Arc::new(tokio::sync::Semaphore::new(limit)),
    };
    let permits = permits.as_ref();
    let (mut usage_ids, mut version_ids) = fragments_to_read(desired, &fragments);
    // The fragment reads made while the machines were listed (see `early`): those the
    // manifest reads are kept and not made again; the others are dropped.
    let mut fragment_reads_ahead = vec![];
    for scoped in fragments_ahead {
        let wanted = match &scoped {
            Scoped::Usage(id, _) => take_id(&mut usage_ids, id),
            Scoped::Versions(id, _, _) => take_id(&mut version_ids, id),
            _ => false,
        };
        if wanted {
            fragment_reads_ahead.push(scoped);
        }
    }
    let fragment_reads: Vec<ScopedRead> = usage_ids
        .into_iter()
        .map(ScopedRead::Usage)
        .chain(version_ids.into_iter().map(ScopedRead::Versions))
        .collect();
    // Fragment reads name the fragment themselves.
    let by_id = |id: &str| id.to_string();
    let fragment_results = bounded(&fragment_reads, limit, |read| async move {
        let _permit = permits.acquire().await.ok();
        read_scoped(api, budget, read, &by_id, &by_id).await
    });
    let (locs, frags) = (&locations, &fragments);
    let scope_results = async move {
        let machines = match early_machines {
            Some(machines) => machines,
            None => {
                let location_ids: Vec<String> = locs.iter().map(|l| l.id.clone()).collect();
                let calls = location_ids.len().div_ceil(LOCATIONS_PER_CALL).min(limit);
                let _permits = permits.acquire_many(calls as u32).await.ok();
                budget
                    .read(|| list_machines(api, org_id, &location_ids, limit))
                    .await
                    .map_err(read_error(format!("the machines of {org_label}")))?
            }
        };
        tracing::info!(
            phase = "lists",
            locations = locs.len(),
            machines = machines.len(),
            fragments = frags.len(),
            "observe: listed"
        );
        let paths = location_paths(locs);
        for l in locs {
            if !paths.contains_key(&l.id) {
                tracing::warn!(
                    location_id = %l.id,
                    name = %l.name,
                    "observe: location has a broken parent chain (missing parent or cycle); it matches no path"
                );
            }
        }
        let matches = match_locations(&desired.locations, locs, &paths);
        let managed = managed_locations(&matches, locs);
        let machine_ids = machines_to_read(desired, &machines, &managed, &paths);
        let mut secret_ids = secrets_to_read(desired, &matches);
        // Only the owner of a location reads its secrets; a shared one is never managed here.
        secret_ids.retain(|id| {
            locs.iter()
                .find(|l| &l.id == id)
                .and_then(Location::primary_organization)
                .is_none_or(|owner| owner == org_id.as_str())
        });
        tracing::info!(
            phase = "scope",
            managed_locations = managed.len(),
            machines = machine_ids.len(),
            secrets = secret_ids.len(),
            "observe: reading parts of managed machines and secrets of rotating locations"
        );
        // Error descriptions are built only when a read fails.
        let machines_by_id: BTreeMap<&str, &Machine> =
            machines.iter().map(|m| (m.id.as_str(), m)).collect();
        let describe_location = |id: &str| match paths.get(id) {
            Some(path) => format!("location `{path}` ({id})"),
            None => format!("location {id}"),
        };
        let describe_machine = |id: &str| match machines_by_id.get(id) {
            Some(m) => match paths.get(&m.location_id) {
                Some(path) => format!("machine `{path}/{}` ({id})", m.name),
                None => format!("machine `{}` ({id})", m.name),
            },
            None => format!("machine {id}"),
        };
        // With parts read ahead: the machines in scope are read there (the secrets meanwhile),
        // and here only those whose read failed.
        let (describe_location, describe_machine) = (&describe_location, &describe_machine);
        let read = |scoped: Vec<ScopedRead>| async move {
            bounded(&scoped, limit, |read| async move {
                let _permit = permits.acquire().await.ok();
                read_scoped(api, budget, read, describe_location, describe_machine).await
            })
            .await
        };
        let secret_reads = secret_ids.into_iter().map(ScopedRead::Secrets).collect();
        let results = match ahead {
            Some(ahead) => {
                let (mut read_ahead, secrets) =
                    tokio::join!(ahead.finish(&machine_ids), read(secret_reads));
                let mut results = secrets?;
                let missing: Vec<ScopedRead> = machine_ids
                    .into_iter()
                    .filter_map(|id| match read_ahead.remove(&id) {
                        Some(parts) => {
                            results.push(Scoped::Parts(id, parts));
                            None
                        }
                        None => Some(ScopedRead::Parts(id)),
                    })
                    .collect();
                results.extend(read(missing).await?);
                results
            }
            None => {
                let scoped = machine_ids.into_iter().map(ScopedRead::Parts);
                read(scoped.chain(secret_reads).collect()).await?
            }
        };
        drop(machines_by_id);
        Ok::<_, ObserveError>((machines, matches, results))
    };
    let ((machines, matches, scoped), fragment_results) =
        tokio::try_join!(scope_results, fragment_results)?;
    let mut parts = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut fragment_usage = BTreeMap::new();
    let mut fragment_tags = BTreeMap::new();
    let mut fragment_revisions = BTreeMap::new();
    let fragment_results = fragment_results.into_iter().chain(fragment_reads_ahead);
    for scoped in scoped.into_iter().chain(fragment_results) {
        match scoped {
            Scoped::Parts(id, p) => {
                parts.insert(id, p);
            }
            Scoped::Secrets(id, s) => {
                secrets.insert(id, s);
            }
            Scoped::Usage(id, u) => {
                fragment_usage.insert(id, u);
            }
            Scoped::Versions(id, tags, revisions) => {
                fragment_tags.insert(id.clone(), tags);
                fragment_revisions.insert(id, revisions);
            }
            Scoped::Nothing => {}
        }
    }
    // 5. Metadata, only where the manifest manages it (one read per resource: Viam has no
    //    list call for metadata).
    let targets = metadata_to_read(desired, org_id, &matches, &machines, &parts);
    let metadata = read_metadata(api, &targets, limit, budget).await?;
    tracing::info!(
        phase = "done",
        locations = locations.len(),
        machines = machines.len(),
        machines_with_parts = parts.len(),
        fragments = fragments.len(),
        "observe: done"
    );

    Ok(Observed {
        organization,
        locations,
        machines,
        parts,
        fragments,
        invites,
        members,
        api_keys,
        own_key_id: api.own_key_id(),
        secrets,
        fragment_tags,
        fragment_revisions,
        fragment_usage,
        metadata,
        kinds,
        observed_at,
    })
}

/// The organization's own fragments of a `ListFragments` answer: fleetform's lease and rollout
/// state are its own bookkeeping, never part of a fleet.
fn own_fragments(fragments: Vec<Fragment>) -> Vec<Fragment> {
    fragments
        .into_iter()
        .filter(|f| !crate::lease::is_lease(f) && !crate::rollout::is_state(f))
        .collect()
}

/// One read of phase 4; `describe_location` and `describe_machine` name what a failed read
/// was reading.
async fn read_scoped(
    api: &dyn CloudApi,
    budget: &RetryBudget,
    read: &ScopedRead,
    describe_location: &(dyn Fn(&str) -> String + Sync),
    describe_machine: &(dyn Fn(&str) -> String + Sync),
) -> Result<Scoped, ObserveError> {
    match read {
        ScopedRead::Parts(id) => match budget.read(|| api.get_parts(id)).await {
            Ok(p) => Ok(Scoped::Parts(id.clone(), p)),
            Err(source) => Err(ObserveError::Read {
                what: format!("the parts of {}", describe_machine(id)),
                source,
            }),
        },
        ScopedRead::Secrets(id) => match budget.read(|| api.location_secrets(id)).await {
            Ok(s) => Ok(Scoped::Secrets(id.clone(), s)),
            Err(source) => Err(ObserveError::Read {
                what: format!("the secrets of {}", describe_location(id)),
                source,
            }),
        },
        ScopedRead::Usage(id) => match budget.read(|| api.fragment_usage(id)).await {
            Ok(u) => Ok(Scoped::Usage(id.clone(), u)),
            // A cloud that cannot say leaves the blast radius unknown.
            Err(e) if matches!(e.code, Code::Unimplemented | Code::PermissionDenied) => {
                Ok(Scoped::Nothing)
            }
            Err(source) => Err(ObserveError::Read {
                what: format!("the usage of fragment {id}"),
                source,
            }),
        },
        ScopedRead::Versions(id) => {
            match budget.read(|| api.get_fragment_versions(id, None)).await {
                Ok(v) => Ok(Scoped::Versions(
                    id.clone(),
                    v.tags,
                    v.revisions.into_iter().map(|r| r.revision).collect(),
                )),
                Err(e) if matches!(e.code, Code::Unimplemented) => Ok(Scoped::Nothing),
                Err(source) => Err(ObserveError::Read {
                    what: format!("the revisions and tags of fragment {id}"),
                    source,
                }),
            }
        }
    }
}

/// Reads the metadata of every target, concurrently (at most `limit` in flight), keyed by
/// [`MetadataTarget::key`].
pub(crate) async fn read_metadata(
    api: &dyn CloudApi,
    targets: &[MetadataTarget],
    limit: usize,
    budget: &RetryBudget,
) -> Result<BTreeMap<String, Metadata>, ObserveError> {
    let results = bounded(targets, limit, |target| async move {
        budget
            .read(|| api.get_metadata(target))
            .await
            .map(|data| (target.key(), data))
            .map_err(read_error(format!("the metadata of {}", target.key())))
    })
    .await?;
    Ok(results.into_iter().collect())
}

/// The org-wide list reads of phase 2.
enum ListRead {
    Locations,
    Fragments,
    Members,
    /// What a registered kind reads.
    Kind(&'static dyn crate::kinds::ResourceKind),
    Keys,
}

enum Listed {
    Locations(Vec<Location>),
    Fragments(Vec<Fragment>),
    Members(Vec<Member>, Vec<Invite>),
    Kind(&'static str, serde_json::Value),
    Keys(Vec<crate::model::ApiKey>),
}

/// Removes `id` from `ids`; whether it was there.
fn take_id(ids: &mut Vec<String>, id: &str) -> bool {
    let before = ids.len();
    ids.retain(|i| i != id);
    ids.len() < before
}

/// The per-resource reads of phase 3.
enum ScopedRead {
    Parts(String),
    Secrets(String),
    Usage(String),
    Versions(String),
}

#[derive(Debug)]
enum Scoped {
    Parts(String, Vec<Part>),
    Secrets(String, Vec<LocationSecret>),
    Usage(String, Vec<FragmentUsage>),
    /// Tags, and revisions oldest first.
    Versions(String, Vec<FragmentTag>, Vec<String>),
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `observe` must be usable from spawned tasks (watch runs it in one).
    #[allow(dead_code)]
    fn observe_is_send(api: &dyn CloudApi, d: &Desired, o: &ObserveOptions) {
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&observe(api, d, o));
        assert_send(&attribute(api, &[], o));
    }
}
