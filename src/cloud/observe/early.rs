//! Reads an observation can make before the manifest is known: `plan` starts them while the
//! manifest loads, so that the first rounds of calls overlap the load.
//!
//! # Guessing the organization
//!
//! Every list needs the organization's id, which `ListOrganizations` gives: one round trip
//! before anything else. With [`ObserveOptions::organization_guess`] (the CLI remembers which
//! organization each key saw), the first lists go out together with `ListOrganizations`
//! (`ListLocations` and `ListFragments` for `plan`, `ListFragments` for a command under the
//! lease) and count only when the key sees exactly the guessed organization; otherwise they
//! are made again for the organization it does see, as without a guess.
//!
//! # Reading fragments ahead
//!
//! While the machines are listed (one round trip of one or two calls), the slots it leaves
//! free read each listed fragment's usage and then its tags and revisions, at most one round's
//! worth ([`read_fragments_ahead`]): the reads the observation makes for the manifest's
//! fragments once it is known, which would otherwise take slots from the parts. The
//! observation keeps those of the manifest's fragments; for a manifest that declares fewer
//! fragments than the organization has, the others were read for nothing (at most
//! `read_concurrency` reads).
//!
//! # Reading parts ahead
//!
//! Once the one organization's machines are listed, [`Early::read_parts_ahead`] starts
//! `GetRobotParts` for them, in the order listed, in a pool of `read_concurrency` reads, while
//! the manifest is still loading. The pool starts a round earlier where the machines' ids
//! come sooner: from `ListRobotsForOrg`, asked in the round that lists the locations by a
//! command under the lease ([`read_lists_leased`], `apply`), and by `plan` with a guess of the
//! organization (in the round of `ListOrganizations`). That answer only starts reads: the
//! listing by location, a round later, still decides which machines there are (a machine the
//! answer misses is read by the observation; one it names that the listing does not is
//! dropped with the parts out of scope), and a cloud that refuses it (a key of some
//! locations only) reads the parts after the listing. The observation then tells the pool its scope
//! ([`machines_to_read`](super::machines_to_read)) as soon as the manifest has loaded and the
//! scope is computed: from then on the pool starts only machines in scope (it keeps reading
//! those, so the reads go on without a break), and the observation keeps the parts of the
//! machines in scope and drops the rest. A machine whose read failed is read again by the
//! observation, with its retry budget, and reported as usual.
//!
//! - The pool's reads and the observation's own reads take their slots from one semaphore:
//!   never more than `read_concurrency` reads in flight together.
//! - A manifest that manages the whole organization reads each machine once, as without the
//!   read-ahead. One that manages part of it may also read machines outside its scope: those
//!   the pool started before the scope was known, so at most what fits in the time the
//!   manifest took to load (about `read_concurrency` machines per round trip). That is the
//!   price of not knowing the scope while loading; the parts read outside it are dropped.
//! - Dropping the [`Early`] (a manifest that does not load, an observation that fails or does
//!   not use the early lists) stops the pool: nothing new is started, and reads in flight
//!   are abandoned.

use super::budget::{bounded, lock};
use super::reads::list_machines;
use super::{ObserveOptions, own_fragments};
use crate::cloud::CloudApi;
use crate::model::{Fragment, Location, Machine, Organization, Part, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

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
    /// The parts being read ahead ([`Early::read_parts_ahead`]).
    pub(super) ahead: Option<PartsAhead>,
    /// Fragment reads made alongside the machine listing ([`read_fragments_ahead`]).
    pub(super) fragment_reads: Vec<super::Scoped>,
}

impl Early {
    /// The organizations the API key sees.
    pub fn organizations(&self) -> &[Organization] {
        &self.orgs
    }

    /// Starts reading the parts of every listed machine of the organization, `limit` reads in
    /// flight at most (see the module docs). Nothing when the organization's lists were not
    /// read or it has no machines.
    pub fn read_parts_ahead(&mut self, api: Arc<dyn CloudApi>, limit: usize) {
        let Some(lists) = &mut self.lists else {
            return;
        };
        if lists.machines.is_empty() || lists.ahead.is_some() {
            return;
        }
        let ids = lists.machines.iter().map(|m| m.id.clone()).collect();
        let limit = limit.max(1);
        let permits = Arc::new(Semaphore::new(limit));
        lists.ahead = Some(PartsAhead::start(api, ids, permits, limit));
    }
}

/// Makes the [`Early`] reads: `ListOrganizations`; then, with `lists` and for a key that sees
/// one organization, `ListLocations` and `ListFragments` together, then its machines
/// ([`list_machines`], `lists.read_concurrency` calls at a time). With a guess of the
/// organization ([`ObserveOptions::organization_guess`]), its locations and fragments are
/// listed together with the organizations, a round earlier, and kept only when the key sees
/// exactly that organization (else they are listed again for the one it sees). Without
/// `lists`, only the organizations. `None` when the organizations cannot be listed; the
/// lists are absent when any of their reads fails. Failures are not reported here: the
/// observation makes those reads again, with its retry budget, and reports them as it always
/// does.
pub async fn read_early(
    shared: &Arc<dyn CloudApi>,
    lists: Option<&ObserveOptions>,
) -> Option<Early> {
    let api = shared.as_ref();
    let observed_at = Timestamp::now();
    let guess = lists.and_then(|o| Some((o.organization_guess.as_deref()?, o)));
    let Some((guess, opts)) = guess else {
        let orgs = api.list_organizations().await.ok()?;
        return Some(read_lists(api, observed_at, orgs, lists).await);
    };
    // The guessed organization's machines are asked too (`ListRobotsForOrg`), only for their
    // ids: their parts are read from the next round on, while the machines are listed by
    // location (which still decides which machines there are). From here on every read
    // takes its slot from one semaphore, the pool's and then the observation's.
    let limit = opts.read_concurrency.max(1);
    let permits = Arc::new(Semaphore::new(limit));
    let machine_ids = org_machine_ids(api, &permits, guess);
    let (orgs, first, machine_ids) = tokio::join!(
        api.list_organizations(),
        first_lists(api, guess),
        machine_ids
    );
    let orgs = orgs.ok()?;
    match first {
        Some((locations, fragments)) if only(&orgs, guess) => {
            let ahead = machine_ids
                .filter(|ids| !ids.is_empty())
                .map(|ids| PartsAhead::start(Arc::clone(shared), ids, Arc::clone(&permits), limit));
            let lists = lists_after(api, guess, locations, fragments, limit, Some(&permits)).await;
            Some(Early {
                observed_at,
                orgs,
                lists: lists.map(|lists| EarlyLists { ahead, ..lists }),
            })
        }
        _ => Some(read_lists(api, observed_at, orgs, lists).await),
    }
}

/// Whether `orgs` is exactly the organization `id`.
fn only(orgs: &[Organization], id: &str) -> bool {
    matches!(orgs, [org] if org.id == id)
}

/// The rest of [`read_early`] for organizations already listed: with `lists` and one
/// organization, its lists (the observation counts as made at `observed_at`).
async fn read_lists(
    api: &dyn CloudApi,
    observed_at: Timestamp,
    orgs: Vec<Organization>,
    lists: Option<&ObserveOptions>,
) -> Early {
    let lists = match (orgs.as_slice(), lists) {
        ([org], Some(opts)) => lists_of(api, &org.id, opts.read_concurrency.max(1)).await,
        _ => None,
    };
    Early {
        observed_at,
        orgs,
        lists,
    }
}

/// The early reads of a command that must hold the organization's lease before its reads
/// count (`apply`), in as few round trips: `ListOrganizations`, then for a key that sees one
/// organization `ListFragments`, then `lease` (given its whole answer, the lease's fragment
/// included) ∥ `ListLocations` and the machines ∥ `ListRobotsForOrg` and the parts read
/// ahead from it (see the module docs). With a guess of the organization
/// ([`ObserveOptions::organization_guess`]), its fragments are listed together with the
/// organizations, and that listing is kept only when the key sees exactly that organization.
/// `None` when the organizations cannot be listed.
///
/// `ListLocations` waits for the fragments' answer (instead of going with it, as for `plan`)
/// because only reads made after the listing are covered by the lease taken from it: a
/// location listing answered just before another run's last write and release would
/// otherwise pass for current.
///
/// `lease` answers `Some((held, true))` when it took the lease from that answer by a
/// compare-and-swap: no other fleetform run wrote since the listing (see
/// `crate::lease::Guard::take_listed`), so the lists stand. `Some((held, false))`: the lease is
/// held but was read again first, so the lists are read again under it. `None`: no lease, and
/// no lists.
pub async fn read_lists_leased<T, F, Fut>(
    shared: &Arc<dyn CloudApi>,
    opts: &ObserveOptions,
    lease: F,
) -> Option<(Early, Option<T>)>
where
    F: FnOnce(String, Vec<Fragment>) -> Fut,
    Fut: std::future::Future<Output = Option<(T, bool)>>,
{
    let api = shared.as_ref();
    let observed_at = Timestamp::now();
    let limit = opts.read_concurrency.max(1);
    let bare = |observed_at, orgs| {
        Some((
            Early {
                observed_at,
                orgs,
                lists: None,
            },
            None,
        ))
    };
    let (orgs, guessed) = match opts.organization_guess.as_deref() {
        Some(guess) => {
            let (orgs, fragments) =
                tokio::join!(api.list_organizations(), api.list_fragments(guess));
            let orgs = orgs.ok()?;
            let fragments = fragments.ok().filter(|_| only(&orgs, guess));
            (orgs, fragments)
        }
        None => (api.list_organizations().await.ok()?, None),
    };
    let org_id = match orgs.as_slice() {
        [org] => org.id.clone(),
        _ => return bare(observed_at, orgs),
    };
    let fragments = match guessed {
        Some(fragments) => fragments,
        None => match api.list_fragments(&org_id).await {
            Ok(fragments) => fragments,
            Err(_) => return bare(observed_at, orgs),
        },
    };
    let own = own_fragments(fragments.clone());
    // The machines come in two rounds (locations, then their machines), and the parts can be
    // read as soon as the machines' ids are known: `ListRobotsForOrg` gives them in the
    // first round, so the parts are read ahead while the machines are listed (see the module
    // docs). Every read from here on takes its slot from one semaphore, the pool's and then
    // the observation's: never more than `limit` in flight.
    let permits = Arc::new(Semaphore::new(limit));
    let ahead = async {
        let machines = org_machine_ids(api, &permits, &org_id).await?;
        let permits = Arc::clone(&permits);
        Some(PartsAhead::start(
            Arc::clone(shared),
            machines,
            permits,
            limit,
        ))
    };
    let lists = async {
        let locations = slot(&permits, api.list_locations(&org_id)).await.ok()?;
        let ids: Vec<String> = locations.iter().map(|l| l.id.clone()).collect();
        let calls = u32::try_from(machine_calls(&ids, limit)).unwrap_or(u32::MAX);
        let slots = permits.acquire_many(calls).await;
        let machines = list_machines(api, &org_id, &ids, limit).await.ok()?;
        drop(slots);
        Some((locations, machines))
    };
    // The fragments' reads fill the rest of the first round.
    let reads = read_fragments_ahead(api, &own, limit.saturating_sub(2), Some(&permits));
    let lists = async {
        let (ahead, lists, reads) = tokio::join!(ahead, lists, reads);
        lists.map(|(locations, machines)| (locations, machines, ahead, reads))
    };
    let (held, lists) = tokio::join!(lease(org_id.clone(), fragments.clone()), lists);
    match held {
        None => bare(observed_at, orgs),
        Some((held, true)) => {
            let lists = match lists {
                Some((locations, machines, ahead, fragment_reads)) => Some(EarlyLists {
                    org_id,
                    locations,
                    fragments: own,
                    machines,
                    ahead,
                    fragment_reads,
                }),
                _ => None,
            };
            let early = Early {
                observed_at,
                orgs,
                lists,
            };
            Some((early, Some(held)))
        }
        Some((held, false)) => {
            let early = read_lists(api, Timestamp::now(), orgs, Some(opts)).await;
            Some((early, Some(held)))
        }
    }
}

async fn lists_of(api: &dyn CloudApi, org_id: &str, limit: usize) -> Option<EarlyLists> {
    let (locations, fragments) = first_lists(api, org_id).await?;
    lists_after(api, org_id, locations, fragments, limit, None).await
}

/// The organization's locations and fragments, listed together.
async fn first_lists(api: &dyn CloudApi, org_id: &str) -> Option<(Vec<Location>, Vec<Fragment>)> {
    let (locations, fragments) =
        tokio::join!(api.list_locations(org_id), api.list_fragments(org_id));
    Some((locations.ok()?, fragments.ok()?))
}

/// The rest of [`lists_of`] once the locations and fragments are listed: the machines, with
/// the fragments' reads in the slots that listing leaves free.
async fn lists_after(
    api: &dyn CloudApi,
    org_id: &str,
    locations: Vec<Location>,
    fragments: Vec<Fragment>,
    limit: usize,
    permits: Option<&Semaphore>,
) -> Option<EarlyLists> {
    let fragments = own_fragments(fragments);
    let ids: Vec<String> = locations.iter().map(|l| l.id.clone()).collect();
    let calls = machine_calls(&ids, limit);
    let machines = async {
        let _slots = match permits {
            Some(p) => Some(
                p.acquire_many(u32::try_from(calls).unwrap_or(u32::MAX))
                    .await,
            ),
            None => None,
        };
        list_machines(api, org_id, &ids, limit).await
    };
    let (machines, fragment_reads) = tokio::join!(
        machines,
        read_fragments_ahead(api, &fragments, limit.saturating_sub(calls), permits)
    );
    Some(EarlyLists {
        org_id: org_id.to_string(),
        locations,
        fragments,
        machines: machines.ok()?,
        ahead: None,
        fragment_reads,
    })
}

/// `read`, once a slot of `permits` is free (at once if they were closed).
async fn slot<T>(permits: &Semaphore, read: impl std::future::Future<Output = T>) -> T {
    let _slot = permits.acquire().await;
    read.await
}

/// The ids of organization `org_id`'s machines (`ListRobotsForOrg`, in a slot of `permits`),
/// to start the parts read-ahead from; `None` when the cloud does not answer it.
async fn org_machine_ids(
    api: &dyn CloudApi,
    permits: &Semaphore,
    org_id: &str,
) -> Option<Vec<String>> {
    let listed = slot(permits, api.list_machines_for_org(org_id)).await;
    Some(listed.ok()?.into_iter().map(|m| m.id).collect())
}

/// How many calls [`list_machines`] makes for `location_ids`, at most `limit` at once.
fn machine_calls(location_ids: &[String], limit: usize) -> usize {
    location_ids
        .len()
        .div_ceil(super::reads::LOCATIONS_PER_CALL)
        .min(limit)
}

/// The reads the observation makes per fragment once the manifest is known (`GetFragmentUsage`
/// for each fragment, then `GetFragment` with its tags and revisions for each), made while the
/// machines are listed, in the slots that listing leaves free: at most `slots` of them, so
/// they take one round, the round the machine listing takes anyway. The observation keeps the
/// answers for the fragments the manifest reads and makes the rest of its fragment reads
/// itself. A read that fails is left out: the observation makes it again, with its retry
/// budget, and reports it as usual. At most `slots` reads are made for nothing when the
/// manifest declares no fragments (an organization of many fragments gets no more).
async fn read_fragments_ahead(
    api: &dyn CloudApi,
    fragments: &[Fragment],
    slots: usize,
    permits: Option<&Semaphore>,
) -> Vec<super::Scoped> {
    let usage = fragments
        .iter()
        .map(|f| super::ScopedRead::Usage(f.id.clone()));
    let versions = fragments
        .iter()
        .map(|f| super::ScopedRead::Versions(f.id.clone()));
    let reads: Vec<super::ScopedRead> = usage.chain(versions).take(slots).collect();
    // No retries here: a read that fails is made again by the observation, with its budget.
    let budget = &super::budget::RetryBudget::new(0);
    let by_id = |id: &str| id.to_string();
    let answers = bounded(&reads, reads.len().max(1), |read| async move {
        let read = super::read_scoped(api, budget, read, &by_id, &by_id);
        let answer = match permits {
            Some(permits) => slot(permits, read).await,
            None => read.await,
        }
        .ok();
        Ok::<_, std::convert::Infallible>(answer.filter(|a| !matches!(a, super::Scoped::Nothing)))
    })
    .await;
    let Ok(answers) = answers;
    answers.into_iter().flatten().collect()
}

/// The pool reading parts ahead (see the module docs). Dropping it stops the pool.
#[derive(Debug)]
pub(super) struct PartsAhead {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// What the pool and the observation share.
#[derive(Debug)]
struct Shared {
    /// The machines to read, in the order listed.
    machines: Vec<String>,
    /// The observation's scope, once known: only these are started from then on.
    scope: OnceLock<HashSet<String>>,
    /// The slots of reads in flight, shared with the observation's own reads.
    permits: Arc<Semaphore>,
    /// The parts read, by machine id (failed reads are absent).
    parts: Mutex<HashMap<String, Vec<Part>>>,
    /// Reads started.
    started: AtomicUsize,
}

impl PartsAhead {
    /// Starts reading `machines`' parts, each read in a slot of `permits` (which has `limit`
    /// in all), a worker per slot.
    fn start(
        api: Arc<dyn CloudApi>,
        machines: Vec<String>,
        permits: Arc<Semaphore>,
        limit: usize,
    ) -> PartsAhead {
        let shared = Arc::new(Shared {
            machines,
            scope: OnceLock::new(),
            permits,
            parts: Mutex::new(HashMap::new()),
            started: AtomicUsize::new(0),
        });
        let pool = Arc::clone(&shared);
        // A task per slot, so that the answers are decoded on every core of the runtime
        // (dropping the pool drops the set, which stops them).
        let task = tokio::spawn(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..limit.min(pool.machines.len()) {
                let (pool, api, next) = (Arc::clone(&pool), Arc::clone(&api), Arc::clone(&next));
                workers.spawn(async move {
                    while let Some(id) = pool.machines.get(next.fetch_add(1, Ordering::SeqCst)) {
                        pool.read(api.as_ref(), id).await;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        });
        PartsAhead { shared, task }
    }

    /// The slots of reads in flight that the pool takes its reads from.
    pub(super) fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.shared.permits)
    }

    /// Tells the pool the scope, waits for it to finish (every machine of `scope` read or
    /// failed), and returns the parts read of the machines in `scope`.
    pub(super) async fn finish(mut self, scope: &[String]) -> HashMap<String, Vec<Part>> {
        let wanted: HashSet<String> = scope.iter().cloned().collect();
        let _ = self.shared.scope.set(wanted);
        let before_scope = self.shared.started.load(Ordering::SeqCst);
        if (&mut self.task).await.is_err() {
            // The pool panicked or was stopped: the observation reads what is missing.
            tracing::warn!("observe: the parts read ahead were lost; reading them again");
        }
        let wanted = self.shared.scope.get().expect("set above");
        let mut parts = std::mem::take(&mut *lock(&self.shared.parts));
        let read = parts.len();
        parts.retain(|id, _| wanted.contains(id));
        tracing::info!(
            phase = "scope",
            before_scope,
            started = self.shared.started.load(Ordering::SeqCst),
            read,
            kept = parts.len(),
            "observe: parts read ahead (started before the scope was known, in all, read, kept)"
        );
        parts
    }
}

impl Drop for PartsAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    /// Reads the parts of machine `id` and keeps them, unless the scope is known and leaves
    /// it out.
    async fn read(&self, api: &dyn CloudApi, id: &str) {
        if !self.in_scope(id) {
            return;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        // The scope may have become known while this read waited for a slot.
        if !self.in_scope(id) {
            return;
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        if let Ok(parts) = api.get_parts(id).await {
            lock(&self.parts).insert(id.to_string(), parts);
        }
    }

    fn in_scope(&self, id: &str) -> bool {
        self.scope.get().is_none_or(|s| s.contains(id))
    }
}
