//! Reading the cloud into an [`Observed`] model: what `plan` compares the manifest against.
//!
//! # Calls
//!
//! One observation is a fixed handful of list calls plus one read per managed machine:
//!
//! 1. `ListOrganizations` (once) resolves the manifest's `organization:` (an id or a name).
//! 2. Concurrently: `ListLocations`, `ListFragments` (every visibility; only the organization's
//!    own fragments are kept), and `ListOrganizationMembers` only when the manifest manages
//!    access (`access:` present, `Desired::invites` is `Some`).
//! 3. The machines of every listed location with `ListRobotsForLocations` (what Viam's official
//!    SDKs use), [`LOCATIONS_PER_CALL`] locations per call, the calls concurrent — see
//!    [`list_machines`] for the fallbacks on clouds that lack it.
//! 4. Concurrently: `GetRobotParts` for every machine in the managed scope (see below),
//!    `LocationAuth` for every observed location matched to a declared location with a secret
//!    rotation policy, `GetFragmentUsage` for every observed fragment a declaration may match
//!    (by `id:`, name or `moved_from:`; for the blast radius of fragment changes), and
//!    `GetFragment` (revisions and tags) for those of them whose declaration manages `tags:`.
//!
//! All reads in flight at once are bounded by [`ObserveOptions::read_concurrency`] (default 32).
//! No per-resource `Get` is ever made where a list call serves.
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

use super::{CloudApi, CloudError, Code};
use crate::model::{
    Desired, DesiredLocation, Fragment, FragmentTag, FragmentUsage, HistoryEntry, Invite, Location,
    LocationSecret, Machine, Member, Observed, OrgRef, Organization, Part, Timestamp,
    temporary_name,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

/// How to observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObserveOptions {
    /// Most reads in flight at once (at least 1; `0` is treated as 1).
    pub read_concurrency: usize,
    /// How many times, in all, reads whose client retries were exhausted by transient errors
    /// are started again during one observation (see the module docs).
    pub retry_budget: usize,
}

/// Default of [`ObserveOptions::retry_budget`].
pub const DEFAULT_RETRY_BUDGET: usize = 100;

/// Most times one read is started again from the budget.
pub const ROUNDS_PER_READ: u32 = 3;

impl Default for ObserveOptions {
    /// 32 reads in flight, a retry budget of [`DEFAULT_RETRY_BUDGET`].
    fn default() -> Self {
        ObserveOptions {
            read_concurrency: 32,
            retry_budget: DEFAULT_RETRY_BUDGET,
        }
    }
}

/// What is left of an observation's retry budget.
#[derive(Debug)]
pub struct RetryBudget(AtomicUsize);

impl RetryBudget {
    pub fn new(budget: usize) -> RetryBudget {
        RetryBudget(AtomicUsize::new(budget))
    }

    /// Takes one retry; `false` when none is left.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Retries left.
    pub fn left(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Runs `read`, and again (up to [`ROUNDS_PER_READ`] times, after a short pause) while it
    /// fails with a transient error and the budget lasts.
    pub async fn read<T, F, Fut>(&self, mut read: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut round = 0;
        loop {
            match read().await {
                Err(e) if e.is_transient() && round < ROUNDS_PER_READ && self.take() => {
                    round += 1;
                    tracing::info!(
                        rpc = e.rpc,
                        code = e.code.as_str(),
                        round,
                        budget_left = self.left(),
                        "observe: a read exhausted its retries; starting it again from the retry budget"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(round)))
                        .await;
                }
                other => return other,
            }
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
    let observed_at = Timestamp::now();
    let limit = opts.read_concurrency.max(1);
    let budget = &RetryBudget::new(opts.retry_budget);

    // 1. The organization.
    tracing::info!(phase = "organization", "observe: resolving organization");
    let orgs = budget
        .read(|| api.list_organizations())
        .await
        .map_err(read_error(
            "the organizations this API key can see (ListOrganizations)",
        ))?;
    let organization = resolve_organization(orgs, &desired.organization)?;
    let org_id = organization.id.clone();
    let org_label = format!("organization `{}` ({})", organization.name, org_id);
    tracing::info!(
        phase = "organization",
        org_id = %organization.id,
        org_name = %organization.name,
        "observe: organization resolved"
    );

    // 2. The org-wide lists, concurrently.
    let mut lists = vec![ListRead::Locations, ListRead::Fragments];
    if desired.invites.is_some() {
        lists.push(ListRead::Members);
    }
    tracing::info!(
        phase = "lists",
        calls = lists.len(),
        "observe: listing locations, fragments{}",
        if desired.invites.is_some() {
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
                // The lease is fleetform's own bookkeeping, never part of a fleet.
                .map(|fs| {
                    Listed::Fragments(
                        fs.into_iter()
                            .filter(|f| !crate::lease::is_lease(f))
                            .collect(),
                    )
                })
                .map_err(read_error(format!("the fragments of {org_label}"))),
            ListRead::Members => budget
                .read(|| api.list_members(org_id))
                .await
                .map(|(m, i)| Listed::Members(m, i))
                .map_err(read_error(format!(
                    "the members and invites of {org_label}"
                ))),
        }
    })
    .await?;
    let mut locations = vec![];
    let mut fragments = vec![];
    let mut members = vec![];
    let mut invites = None;
    for listed in results {
        match listed {
            Listed::Locations(l) => locations = l,
            Listed::Fragments(f) => fragments = f,
            Listed::Members(m, i) => {
                members = m;
                invites = Some(i);
            }
        }
    }
    // 3. The machines of every location.
    let location_ids: Vec<String> = locations.iter().map(|l| l.id.clone()).collect();
    let machines = budget
        .read(|| list_machines(api, org_id, &location_ids, limit))
        .await
        .map_err(read_error(format!("the machines of {org_label}")))?;
    tracing::info!(
        phase = "lists",
        locations = locations.len(),
        machines = machines.len(),
        fragments = fragments.len(),
        "observe: listed"
    );

    // 4. The managed scope: parts of its machines, secrets of rotating locations.
    let paths = location_paths(&locations);
    for l in &locations {
        if !paths.contains_key(&l.id) {
            tracing::warn!(
                location_id = %l.id,
                name = %l.name,
                "observe: location has a broken parent chain (missing parent or cycle); it matches no path"
            );
        }
    }
    let matches = match_locations(&desired.locations, &locations, &paths);
    let managed = managed_locations(&matches, &locations);
    let machine_ids = machines_to_read(desired, &machines, &managed, &paths);
    let mut secret_ids = secrets_to_read(desired, &matches);
    // Only the owner of a location reads its secrets; a shared one is never managed here.
    secret_ids.retain(|id| {
        locations
            .iter()
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
    let (usage_ids, version_ids) = fragments_to_read(desired, &fragments);
    let scoped: Vec<ScopedRead> = machine_ids
        .into_iter()
        .map(ScopedRead::Parts)
        .chain(secret_ids.into_iter().map(ScopedRead::Secrets))
        .chain(usage_ids.into_iter().map(ScopedRead::Usage))
        .chain(version_ids.into_iter().map(ScopedRead::Versions))
        .collect();
    let results = bounded(&scoped, limit, |read| {
        let describe_location = &describe_location;
        let describe_machine = &describe_machine;
        async move {
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
    })
    .await?;
    let mut parts = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut fragment_usage = BTreeMap::new();
    let mut fragment_tags = BTreeMap::new();
    let mut fragment_revisions = BTreeMap::new();
    for scoped in results {
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
        secrets,
        fragment_tags,
        fragment_revisions,
        fragment_usage,
        observed_at,
    })
}

/// The observed fragments a declaration may match (by pinned id, name or `moved_from:`): all of
/// them get their usage read; those whose declaration manages `tags:` also their versions.
pub fn fragments_to_read(desired: &Desired, fragments: &[Fragment]) -> (Vec<String>, Vec<String>) {
    let mut usage = BTreeSet::new();
    let mut versions = BTreeSet::new();
    for df in &desired.fragments {
        for f in fragments.iter().filter(|f| {
            df.identity.id.as_deref() == Some(f.id.as_str())
                || f.name == df.name
                || df.identity.moved_from.as_deref() == Some(f.name.as_str())
        }) {
            usage.insert(f.id.clone());
            if df.tags.is_some() {
                versions.insert(f.id.clone());
            }
        }
    }
    (usage.into_iter().collect(), versions.into_iter().collect())
}

/// The newest part-history entry of each part (one `GetRobotPartHistory` with limit 1 per
/// part, at most `read_concurrency` in flight). Parts with no history are absent.
pub async fn attribute(
    api: &dyn CloudApi,
    part_ids: &[String],
    opts: &ObserveOptions,
) -> Result<BTreeMap<String, HistoryEntry>, ObserveError> {
    tracing::info!(
        phase = "attribute",
        parts = part_ids.len(),
        "observe: reading the newest history entry of parts"
    );
    let budget = &RetryBudget::new(opts.retry_budget);
    let results = bounded(part_ids, opts.read_concurrency.max(1), |id| async move {
        match budget.read(|| api.part_history(id, Some(1))).await {
            Ok(h) => Ok((id.clone(), h.into_iter().next())),
            Err(source) => Err(ObserveError::Read {
                what: format!("the history of part {id}"),
                source,
            }),
        }
    })
    .await?;
    Ok(results
        .into_iter()
        .filter_map(|(id, entry)| entry.map(|e| (id, e)))
        .collect())
}

/// The tags of each of `fragments` (one `GetFragment` each, at most `read_concurrency` in
/// flight), by fragment id: what `import` writes as a fragment's `tags:`.
pub async fn fragment_tags(
    api: &dyn CloudApi,
    fragments: &[Fragment],
    opts: &ObserveOptions,
) -> Result<BTreeMap<String, Vec<FragmentTag>>, ObserveError> {
    let budget = &RetryBudget::new(opts.retry_budget);
    let results = bounded(fragments, opts.read_concurrency.max(1), |f| async move {
        match budget.read(|| api.get_fragment_versions(&f.id, None)).await {
            Ok(v) => Ok((f.id.clone(), v.tags)),
            Err(source) => Err(ObserveError::Read {
                what: format!("the tags of fragment `{}` ({})", f.name, f.id),
                source,
            }),
        }
    })
    .await?;
    Ok(results.into_iter().collect())
}

/// Most location ids in one `ListRobotsForLocations` call.
pub const LOCATIONS_PER_CALL: usize = 50;

/// The machines of `location_ids` (the locations of organization `org_id`), with at most `limit`
/// calls in flight.
///
/// `ListRobotsForLocations` in batches of [`LOCATIONS_PER_CALL`] first. A cloud that answers
/// `UNIMPLEMENTED` to it is asked `ListRobotsForOrg` instead; one that answers that with
/// `UNIMPLEMENTED` or `PERMISSION_DENIED` too gets one `ListRobots` per location. No call is made
/// for no locations.
pub async fn list_machines(
    api: &dyn CloudApi,
    org_id: &str,
    location_ids: &[String],
    limit: usize,
) -> Result<Vec<Machine>, CloudError> {
    if location_ids.is_empty() {
        return Ok(vec![]);
    }
    let limit = limit.max(1);
    let batches: Vec<&[String]> = location_ids.chunks(LOCATIONS_PER_CALL).collect();
    match bounded(&batches, limit, |batch| {
        api.list_machines_for_locations(batch)
    })
    .await
    {
        Ok(lists) => return Ok(lists.concat()),
        Err(e) if e.is_unimplemented() => {
            tracing::info!(error = %e, "observe: ListRobotsForLocations unavailable; trying ListRobotsForOrg");
        }
        Err(e) => return Err(e),
    }
    match api.list_machines_for_org(org_id).await {
        Ok(machines) => return Ok(machines),
        Err(e) if e.is_unimplemented() || e.code == crate::cloud::Code::PermissionDenied => {
            tracing::info!(error = %e, "observe: ListRobotsForOrg unavailable; listing machines per location");
        }
        Err(e) => return Err(e),
    }
    let lists = bounded(location_ids, limit, |id| api.list_machines(id)).await?;
    Ok(lists.concat())
}

/// The org-wide list reads of phase 2.
enum ListRead {
    Locations,
    Fragments,
    Members,
}

enum Listed {
    Locations(Vec<Location>),
    Fragments(Vec<Fragment>),
    Members(Vec<Member>, Vec<Invite>),
}

/// The per-resource reads of phase 3.
enum ScopedRead {
    Parts(String),
    Secrets(String),
    Usage(String),
    Versions(String),
}

enum Scoped {
    Parts(String, Vec<Part>),
    Secrets(String, Vec<LocationSecret>),
    Usage(String, Vec<FragmentUsage>),
    /// Tags, and revisions oldest first.
    Versions(String, Vec<FragmentTag>, Vec<String>),
    Nothing,
}

// ---------------------------------------------------------------------------------------------
// Pure matching
// ---------------------------------------------------------------------------------------------

/// Picks the organization the manifest names from those the API key can see: `OrgRef::Id`
/// matches the id, `OrgRef::Name` the name (which must be unique).
pub fn resolve_organization(
    orgs: Vec<Organization>,
    wanted: &OrgRef,
) -> Result<Organization, ObserveError> {
    let (wanted_text, matching): (&str, Vec<&Organization>) = match wanted {
        OrgRef::Id(id) => (id, orgs.iter().filter(|o| o.id == *id).collect()),
        OrgRef::Name(name) => (name, orgs.iter().filter(|o| o.name == *name).collect()),
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ObserveError::OrganizationNotFound {
            wanted: wanted_text.to_string(),
            visible: orgs
                .iter()
                .map(|o| (o.name.clone(), o.id.clone()))
                .collect(),
        }),
        many => Err(ObserveError::AmbiguousOrganization {
            name: wanted_text.to_string(),
            ids: many.iter().map(|o| o.id.clone()).collect(),
        }),
    }
}

pub use crate::model::location_paths;

/// For every declared location (by declared path), the ids of the observed locations it
/// matches: by `id:` pin, by name under the matches of its parent (top level for a top-level
/// declaration), by its declared path, and by its `moved_from:` path. Generous: several matches
/// are possible (the planner reports ambiguity); a declared location may match none.
pub fn match_locations(
    declared: &[DesiredLocation],
    observed: &[Location],
    paths: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(
        declared: &[DesiredLocation],
        parent_matches: Option<&BTreeSet<String>>,
        observed: &[Location],
        paths: &BTreeMap<String, String>,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        for d in declared {
            let path_is = |l: &Location, want: &str| paths.get(&l.id).is_some_and(|p| p == want);
            let matched: BTreeSet<String> = observed
                .iter()
                .filter(|l| {
                    let pinned = d.identity.id.as_deref() == Some(l.id.as_str());
                    let named = l.name == d.name || l.name == temporary_name(&d.name);
                    let placed = named
                        && match parent_matches {
                            None => l.parent_id.is_none(),
                            Some(parents) => {
                                l.parent_id.as_ref().is_some_and(|p| parents.contains(p))
                            }
                        };
                    let moved = d
                        .identity
                        .moved_from
                        .as_deref()
                        .is_some_and(|m| path_is(l, m));
                    pinned || placed || path_is(l, &d.path) || moved
                })
                .map(|l| l.id.clone())
                .collect();
            walk(&d.locations, Some(&matched), observed, paths, out);
            out.insert(d.path.clone(), matched);
        }
    }
    let mut out = BTreeMap::new();
    walk(declared, None, observed, paths, &mut out);
    out
}

/// The managed observed locations: every matched location and all of its descendants
/// (cycles in the parent links are tolerated).
pub fn managed_locations(
    matches: &BTreeMap<String, BTreeSet<String>>,
    observed: &[Location],
) -> BTreeSet<String> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in observed {
        if let Some(parent) = l.parent_id.as_deref() {
            children.entry(parent).or_default().push(&l.id);
        }
    }
    let mut managed = BTreeSet::new();
    let mut queue: Vec<&str> = matches.values().flatten().map(String::as_str).collect();
    while let Some(id) = queue.pop() {
        if managed.insert(id.to_string()) {
            queue.extend(children.get(id).into_iter().flatten().copied());
        }
    }
    managed
}

/// The machines whose parts to read, in the order of `machines`: those in a managed location,
/// those pinned by a declared machine's `id:`, and those at a declared machine's `moved_from:`
/// path (`LOCATION/PATH/machine`).
pub fn machines_to_read(
    desired: &Desired,
    machines: &[Machine],
    managed: &BTreeSet<String>,
    paths: &BTreeMap<String, String>,
) -> Vec<String> {
    let declared = desired.all_machines();
    let pinned: BTreeSet<&str> = declared
        .iter()
        .filter_map(|(_, m)| m.identity.id.as_deref())
        .collect();
    let moved_from: BTreeSet<&str> = declared
        .iter()
        .filter_map(|(_, m)| m.identity.moved_from.as_deref())
        .collect();
    machines
        .iter()
        .filter(|m| {
            managed.contains(&m.location_id)
                || pinned.contains(m.id.as_str())
                || (!moved_from.is_empty()
                    && paths
                        .get(&m.location_id)
                        .is_some_and(|p| moved_from.contains(format!("{p}/{}", m.name).as_str())))
        })
        .map(|m| m.id.clone())
        .collect()
}

/// The observed locations whose secrets to read: those matched to a declared location with a
/// rotation policy.
pub fn secrets_to_read(
    desired: &Desired,
    matches: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    desired
        .all_locations()
        .into_iter()
        .filter(|d| d.rotate_secrets_after.is_some())
        .filter_map(|d| matches.get(&d.path))
        .flatten()
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bounded concurrency
// ---------------------------------------------------------------------------------------------

type BoxedFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs `f` over `items` with at most `limit` calls in flight and returns the results in the
/// order of `items`. Stops starting new calls after the first error and returns that error.
///
/// A small pool of `limit` workers pulling indexes from a shared counter, all polled on the
/// current task. Unlike `JoinSet`, this borrows (`&dyn CloudApi` need not be `'static`), and a
/// wake-up polls only the workers, not every item.
async fn bounded<'a, T, R, E, F, Fut>(items: &'a [T], limit: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send + 'a,
    E: Send + 'a,
    F: Fn(&'a T) -> Fut + Sync + 'a,
    Fut: Future<Output = Result<R, E>> + Send + 'a,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    {
        let worker = || async {
            while !failed.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                match f(item).await {
                    Ok(r) => lock(&results)[i] = Some(r),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        lock(&first_error).get_or_insert(e);
                    }
                }
            }
        };
        let mut workers: Vec<BoxedFuture<'_>> = (0..limit.max(1).min(items.len()))
            .map(|_| Box::pin(worker()) as BoxedFuture<'_>)
            .collect();
        std::future::poll_fn(|cx| {
            workers.retain_mut(|w| w.as_mut().poll(cx).is_pending());
            if workers.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredMachine, DesiredPart, Identity};
    use std::time::Duration;

    fn loc(id: &str, name: &str, parent: Option<&str>) -> Location {
        Location {
            organizations: vec![],
            id: id.into(),
            name: name.into(),
            parent_id: parent.map(Into::into),
            robot_count: 0,
            created_on: None,
            secrets: vec![],
        }
    }

    fn machine(id: &str, name: &str, location: &str) -> Machine {
        Machine {
            id: id.into(),
            name: name.into(),
            location_id: location.into(),
            created_on: None,
            last_access: None,
            online_state: Default::default(),
        }
    }

    fn dloc(path: &str, children: Vec<DesiredLocation>) -> DesiredLocation {
        DesiredLocation {
            name: path.rsplit('/').next().unwrap().into(),
            path: path.into(),
            identity: Identity::default(),
            rotate_secrets_after: None,
            locations: children,
            machines: vec![],
        }
    }

    fn dmachine(path: &str, identity: Identity) -> DesiredMachine {
        let name = path.rsplit('/').next().unwrap().to_string();
        DesiredMachine {
            name: name.clone(),
            path: path.into(),
            identity,
            parts: vec![DesiredPart {
                name: format!("{name}-main"),
                path: format!("{path}/{name}-main"),
                identity: Identity::default(),
                main: true,
                config: Default::default(),
                fragments: vec![],
                ignore: vec![],
            }],
        }
    }

    fn desired(locations: Vec<DesiredLocation>) -> Desired {
        Desired {
            organization: OrgRef::Name("acme".into()),
            prune: false,
            default_fragments: None,
            fragments: vec![],
            locations,
            invites: None,
            digest: String::new(),
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// HQ(1) / Assembly(2) / Line(3), HQ / Spare(4), Lab(5), a cycle 6 <-> 7, and 8 under a
    /// missing parent.
    fn fleet() -> Vec<Location> {
        vec![
            loc("3", "Line", Some("2")),
            loc("1", "HQ", None),
            loc("2", "Assembly", Some("1")),
            loc("4", "Spare", Some("1")),
            loc("5", "Lab", None),
            loc("6", "A", Some("7")),
            loc("7", "B", Some("6")),
            loc("8", "Orphan", Some("gone")),
        ]
    }

    #[test]
    fn paths_follow_parents_and_skip_broken_chains() {
        let paths = location_paths(&fleet());
        let want: BTreeMap<String, String> = [
            ("1", "HQ"),
            ("2", "HQ/Assembly"),
            ("3", "HQ/Assembly/Line"),
            ("4", "HQ/Spare"),
            ("5", "Lab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(paths, want);
        // A self-parent is a cycle too.
        assert!(location_paths(&[loc("x", "X", Some("x"))]).is_empty());
    }

    #[test]
    fn declared_locations_match_by_path_and_children_by_name_under_their_parent() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let declared = vec![dloc("HQ", vec![dloc("HQ/Assembly", vec![])])];
        let m = match_locations(&declared, &observed, &paths);
        assert_eq!(m["HQ"], set(&["1"]));
        assert_eq!(m["HQ/Assembly"], set(&["2"]));
        // Managed: matched plus descendants (Line and the undeclared Spare), never Lab.
        assert_eq!(managed_locations(&m, &observed), set(&["1", "2", "3", "4"]));

        // Not declared at all: nothing managed.
        let m = match_locations(&[dloc("Nowhere", vec![])], &observed, &paths);
        assert_eq!(m["Nowhere"], set(&[]));
        assert!(managed_locations(&m, &observed).is_empty());
    }

    #[test]
    fn pins_and_moved_from_match_and_children_follow_their_parent() {
        let observed = fleet();
        let paths = location_paths(&observed);
        // HQ renamed to Factory, pinned by id: its declared child Assembly matches by name under
        // the pinned parent even though the observed path is still HQ/Assembly.
        let mut factory = dloc("Factory", vec![dloc("Factory/Assembly", vec![])]);
        factory.identity.id = Some("1".into());
        // Line moved to the top level as Line.
        let mut line = dloc("Line", vec![]);
        line.identity.moved_from = Some("HQ/Assembly/Line".into());
        let m = match_locations(&[factory, line], &observed, &paths);
        assert_eq!(m["Factory"], set(&["1"]));
        assert_eq!(m["Factory/Assembly"], set(&["2"]));
        assert_eq!(m["Line"], set(&["3"]));

        // Duplicate names in the cloud: both match; the planner decides.
        let mut dup = observed.clone();
        dup.push(loc("9", "HQ", None));
        let paths = location_paths(&dup);
        let m = match_locations(&[dloc("HQ", vec![])], &dup, &paths);
        assert_eq!(m["HQ"], set(&["1", "9"]));
    }

    #[test]
    fn managed_scope_survives_cycles() {
        let observed = fleet();
        let mut m = BTreeMap::new();
        m.insert("A".to_string(), set(&["6"]));
        assert_eq!(managed_locations(&m, &observed), set(&["6", "7"]));
    }

    #[test]
    fn machines_read_in_scope_pinned_and_moved_from() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let machines = vec![
            machine("m1", "arm-01", "2"),
            machine("m2", "spare-01", "4"),
            machine("m3", "lab-01", "5"),
            machine("m4", "lab-02", "5"),
            machine("m5", "lab-03", "5"),
        ];
        let mut hq = dloc("HQ", vec![]);
        let d = desired(vec![hq.clone()]);
        let m = match_locations(&d.locations, &observed, &paths);
        let managed = managed_locations(&m, &observed);
        assert_eq!(
            machines_to_read(&d, &machines, &managed, &paths),
            vec!["m1", "m2"]
        );

        hq.machines = vec![
            dmachine(
                "HQ/pinned",
                Identity {
                    id: Some("m3".into()),
                    ..Default::default()
                },
            ),
            dmachine(
                "HQ/moved",
                Identity {
                    moved_from: Some("Lab/lab-02".into()),
                    ..Default::default()
                },
            ),
        ];
        let d = desired(vec![hq]);
        assert_eq!(
            machines_to_read(&d, &machines, &managed, &paths),
            vec!["m1", "m2", "m3", "m4"]
        );
    }

    #[test]
    fn secrets_only_for_locations_with_a_rotation_policy() {
        let observed = fleet();
        let paths = location_paths(&observed);
        let mut asm = dloc("HQ/Assembly", vec![dloc("HQ/Assembly/Line", vec![])]);
        asm.rotate_secrets_after = Some(Duration::from_secs(90 * 86_400));
        let d = desired(vec![dloc("HQ", vec![asm])]);
        let m = match_locations(&d.locations, &observed, &paths);
        assert_eq!(secrets_to_read(&d, &m), set(&["2"]));
    }

    fn org(id: &str, name: &str) -> Organization {
        Organization {
            default_fragments: None,
            id: id.into(),
            name: name.into(),
            public_namespace: String::new(),
            created_on: None,
        }
    }

    #[test]
    fn organizations_resolve_by_id_or_unique_name() {
        let orgs = vec![org("o1", "acme"), org("o2", "beta"), org("o3", "beta")];
        let by_name = resolve_organization(orgs.clone(), &OrgRef::Name("acme".into())).unwrap();
        assert_eq!(by_name.id, "o1");
        let by_id = resolve_organization(orgs.clone(), &OrgRef::Id("o3".into())).unwrap();
        assert_eq!(by_id.name, "beta");

        let err = resolve_organization(orgs.clone(), &OrgRef::Name("gamma".into())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ObserveError::OrganizationNotFound { .. }));
        assert!(text.contains("`gamma` not found"), "{text}");
        assert!(text.contains("`acme` (o1)"), "{text}");
        assert!(text.contains("`beta` (o3)"), "{text}");
        assert!(text.contains("hint: set `organization:`"), "{text}");

        let err = resolve_organization(orgs.clone(), &OrgRef::Name("beta".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ObserveError::AmbiguousOrganization { ids, .. } if ids == &["o2", "o3"])
        );
        assert!(text.contains("ambiguous"), "{text}");
        assert!(text.contains("o2, o3"), "{text}");
        assert!(
            text.contains("hint: set `organization:` to the id"),
            "{text}"
        );

        let err = resolve_organization(vec![], &OrgRef::Id("o1".into())).unwrap_err();
        assert!(err.to_string().contains("can see no organizations"));
    }

    /// A read failing transiently `fails` times, then answering; counts its calls.
    async fn flaky(calls: &AtomicUsize, fails: usize, code: Code) -> Result<usize, CloudError> {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if n < fails {
            Err(CloudError::new("GetRobotParts", code, "injected"))
        } else {
            Ok(n)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_read_is_started_again_from_the_budget() {
        let budget = RetryBudget::new(10);
        let calls = AtomicUsize::new(0);
        let r = budget.read(|| flaky(&calls, 2, Code::Unavailable)).await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(budget.left(), 8);
        // At most ROUNDS_PER_READ more starts per read, even with budget left.
        let calls = AtomicUsize::new(0);
        let r = budget
            .read(|| flaky(&calls, 100, Code::DeadlineExceeded))
            .await;
        assert_eq!(r.unwrap_err().code, Code::DeadlineExceeded);
        assert_eq!(calls.load(Ordering::SeqCst), 1 + ROUNDS_PER_READ as usize);
        assert_eq!(budget.left(), 8 - ROUNDS_PER_READ as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_or_a_permanent_error_is_not_retried() {
        let budget = RetryBudget::new(1);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 5, Code::Unavailable))
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(budget.left(), 0);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 1, Code::Unavailable))
                .await
                .is_err()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let budget = RetryBudget::new(5);
        let calls = AtomicUsize::new(0);
        assert!(
            budget
                .read(|| flaky(&calls, 1, Code::NotFound))
                .await
                .is_err()
        );
        assert_eq!((calls.load(Ordering::SeqCst), budget.left()), (1, 5));
    }

    #[tokio::test]
    async fn bounded_keeps_order_and_limits_reads_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u64> = (0..40).collect();
        let out: Vec<u64> = bounded(&items, 3, |&i| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis((i * 7) % 5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ()>(i * 2)
            }
        })
        .await
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);

        let empty: Vec<u64> = bounded(&[] as &[u64], 3, |&i| async move { Ok::<_, ()>(i) })
            .await
            .unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn bounded_stops_after_the_first_error() {
        let started = AtomicUsize::new(0);
        let items: Vec<u64> = (0..100).collect();
        let err = bounded(&items, 2, |&i| {
            let started = &started;
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if i == 5 { Err(i) } else { Ok(i) }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err, 5);
        assert!(
            started.load(Ordering::SeqCst) < 10,
            "no new reads after a failure"
        );
    }

    /// `observe` must be usable from spawned tasks (watch runs it in one).
    #[allow(dead_code)]
    fn observe_is_send(api: &dyn CloudApi, d: &Desired, o: &ObserveOptions) {
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&observe(api, d, o));
        assert_send(&attribute(api, &[], o));
    }
}
