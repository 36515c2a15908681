//! Reads outside one observation of a manifest: a whole subtree ([`observe_scope`], for import
//! and status), the newest history entry of parts ([`attribute`]), fragment tags, and the
//! machines of many locations ([`list_machines`], also used by [`super::observe`]).

use super::budget::{RetryBudget, bounded};
use super::{ObserveError, ObserveOptions, observe};
use crate::cloud::{CloudApi, CloudError};
use crate::model::{
    Desired, DesiredLocation, Fragment, FragmentTag, HistoryEntry, Identity, Machine, Observed,
    OrgRef, Organization,
};
use std::collections::{BTreeMap, BTreeSet};

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

/// Observes the organization's locations with ids `roots` and everything inside them: all
/// locations, machines and fragments of the organization, the parts of every machine in those
/// subtrees, and (with `invites`) members and invites and what every registered kind reads. What `import` and `status` read.
///
/// It observes a probe manifest that pins each root: observation then reads exactly that
/// scope, with its bounded concurrency and retry budget.
pub async fn observe_scope(
    api: &dyn CloudApi,
    org: &Organization,
    roots: &[String],
    invites: bool,
    opts: &ObserveOptions,
) -> Result<Observed, ObserveError> {
    let probe = Desired {
        organization: OrgRef::Id(org.id.clone()),
        locations: roots
            .iter()
            .map(|id| DesiredLocation {
                name: id.clone(),
                path: id.clone(),
                identity: Identity {
                    id: Some(id.clone()),
                    moved_from: None,
                    protect: false,
                },
                rotate_secrets_after: None,
                locations: vec![],
                machines: vec![],
            })
            .collect(),
        invites: invites.then(Vec::new),
        kinds: crate::kinds::KINDS
            .iter()
            .filter(|_| invites)
            .map(|k| (k.key().to_string(), k.empty()))
            .collect(),
        ..Default::default()
    };
    observe(api, &probe, opts).await
}

/// What `import` reads: [`observe_scope`] of `roots` with members and invites, the tags of
/// every fragment (part of a fragment's declaration), the API keys (when the key may list
/// them), and whether another organization the
/// key sees has `org`'s name (then the manifest names it by id). The name check is best
/// effort: a failure to list counts as unique.
pub async fn observe_for_import(
    api: &dyn CloudApi,
    org: &Organization,
    roots: &[String],
    opts: &ObserveOptions,
) -> Result<(Observed, bool), ObserveError> {
    let mut observed = observe_scope(api, org, roots, true, opts).await?;
    observed.fragment_tags = fragment_tags(api, &observed.fragments, opts).await?;
    observed.metadata = import_metadata(api, &observed, roots, opts).await?;
    // The API keys, when the importing key may list them (an organization owner); a key
    // with narrower roles imports no `keys:` section.
    observed.api_keys = match api.list_keys(&org.id).await {
        Ok(keys) => Some(keys),
        Err(e) if e.code == crate::cloud::Code::PermissionDenied => {
            tracing::warn!(error = %e, "import: the API keys cannot be listed with this key; no `keys:` section");
            None
        }
        Err(e) => {
            return Err(ObserveError::Read {
                what: format!("the API keys of organization {}", org.id),
                source: e,
            });
        }
    };
    let same_name = api
        .list_organizations()
        .await
        .map(|orgs| orgs.iter().filter(|o| o.name == org.name).count())
        .unwrap_or(1);
    Ok((observed, same_name > 1))
}

/// The metadata of everything an import writes: the organization, the locations under
/// `roots`, and the machines and parts read (one read each: Viam has no list call for it).
async fn import_metadata(
    api: &dyn CloudApi,
    observed: &Observed,
    roots: &[String],
    opts: &ObserveOptions,
) -> Result<BTreeMap<String, crate::model::Metadata>, ObserveError> {
    use crate::model::MetadataTarget;
    let matches: BTreeMap<String, BTreeSet<String>> = roots
        .iter()
        .map(|id| (id.clone(), BTreeSet::from([id.clone()])))
        .collect();
    let locations = super::managed_locations(&matches, &observed.locations);
    let targets: Vec<MetadataTarget> = std::iter::once(MetadataTarget::Organization(
        observed.organization.id.clone(),
    ))
    .chain(locations.into_iter().map(MetadataTarget::Location))
    .chain(observed.parts.keys().cloned().map(MetadataTarget::Machine))
    .chain(
        observed
            .parts
            .values()
            .flatten()
            .map(|p| MetadataTarget::Part(p.id.clone())),
    )
    .collect();
    let budget = RetryBudget::new(opts.retry_budget);
    super::read_metadata(api, &targets, opts.read_concurrency.max(1), &budget).await
}
