//! Reads an observation can make before the manifest is known: `plan` starts them while the
//! manifest loads, so that the first rounds of calls overlap the load.

use super::reads::list_machines;
use super::{ObserveOptions, own_fragments};
use crate::cloud::CloudApi;
use crate::model::{Fragment, Location, Machine, Organization, Timestamp};

/// The organizations the API key sees and, when it sees exactly one (the usual API key of one
/// organization), that organization's locations, fragments and machines: every read of an
/// observation that needs no manifest. [`super::observe_after`] uses them.
#[derive(Debug)]
pub struct Early {
    /// When the first of these reads started.
    pub(super) observed_at: Timestamp,
    pub(super) orgs: Vec<Organization>,
    pub(super) lists: Option<EarlyLists>,
}

/// The lists of the one organization the key sees.
#[derive(Debug)]
pub(super) struct EarlyLists {
    pub(super) org_id: String,
    pub(super) locations: Vec<Location>,
    pub(super) fragments: Vec<Fragment>,
    pub(super) machines: Vec<Machine>,
}

impl Early {
    /// The organizations the API key sees.
    pub fn organizations(&self) -> &[Organization] {
        &self.orgs
    }
}

/// Makes the [`Early`] reads: `ListOrganizations`; then, with `lists` and for a key that sees
/// one organization, `ListLocations` and `ListFragments` together, then its machines
/// ([`list_machines`], `lists.read_concurrency` calls at a time). Without `lists`, only the
/// organizations: what a command reads that must take the organization's lease before it
/// lists anything. `None` when the organizations cannot be listed; the lists are absent when
/// any of their reads fails. Failures are not reported here: the observation makes those
/// reads again, with its retry budget, and reports them as it always does.
pub async fn read_early(api: &dyn CloudApi, lists: Option<&ObserveOptions>) -> Option<Early> {
    let observed_at = Timestamp::now();
    let orgs = api.list_organizations().await.ok()?;
    let lists = match (orgs.as_slice(), lists) {
        ([org], Some(opts)) => lists_of(api, &org.id, opts.read_concurrency.max(1)).await,
        _ => None,
    };
    Some(Early {
        observed_at,
        orgs,
        lists,
    })
}

async fn lists_of(api: &dyn CloudApi, org_id: &str, limit: usize) -> Option<EarlyLists> {
    let (locations, fragments) =
        tokio::join!(api.list_locations(org_id), api.list_fragments(org_id));
    let (locations, fragments) = (locations.ok()?, own_fragments(fragments.ok()?));
    let ids: Vec<String> = locations.iter().map(|l| l.id.clone()).collect();
    let machines = list_machines(api, org_id, &ids, limit).await.ok()?;
    Some(EarlyLists {
        org_id: org_id.to_string(),
        locations,
        fragments,
        machines,
    })
}
