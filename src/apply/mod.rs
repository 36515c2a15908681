//! Apply: walk a plan's dependency graph against a [`CloudApi`], in parallel, safely.
//!
//! - At most `parallelism` changes run at once, and never two on one resource.
//! - A change starts when everything it depends on has been applied; ids of created resources
//!   flow to the changes that need them.
//! - A change that fails skips its dependents (transitively); independent branches continue.
//! - A stop request (SIGINT, or a lost lease) starts nothing new; calls in flight finish, the
//!   rest are reported as not started. The stop signal is read again right before each change
//!   starts, so a lease lost between two changes fences every later write.
//! - **Main parts of new machines** are looked up by a read of their own, not inside a write
//!   slot: once a machine creation applies, and a change of the plan updates that machine's
//!   main part, its parts are read (at most [`ApplyOptions::read_parallelism`] such reads at
//!   once) and the update becomes ready when the read has answered. A failed read fails the
//!   update with that error, as if the update had read it (so its dependents are skipped and
//!   it counts towards failing fast), and the machine's creation stays applied.
//! - **Failing fast**: after [`ApplyOptions::unreachable_after`] changes in a row failed with a
//!   transport error (`UNAVAILABLE`, a deadline, a refused or lost connection, after the
//!   client's own retries and the re-reads of unknown outcomes), the cloud is taken to be
//!   unreachable: nothing new starts, calls in flight finish, and the report says
//!   [`Report::unreachable`] with the last error. Any change that the cloud answered (applied,
//!   refused, conflict) resets the count, so scattered transient errors never stop an apply.
//! - The engine emits [`Event`]s and never prints; the CLI renders them.
//!
//! How each change is carried out, including writes whose outcome is unknown, is in `exec.rs`;
//! checking a saved plan against the cloud before applying it is in `stale.rs`.

mod exec;
mod stale;

pub(crate) use exec::change_roles;
pub use exec::{ExecError, ExecResult, with_unknown_outcome};
pub use stale::{Stale, check_preconditions};

use crate::cloud::CloudApi;
use crate::plan::{Action, Change, Kind, Plan};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Changes in flight at once (default 10).
    pub parallelism: usize,
    /// Reads in flight at once for the main parts of new machines (default 32).
    pub read_parallelism: usize,
    /// Consecutive changes failing with a transport error after which the cloud is taken to be
    /// unreachable and nothing new starts (default 10; at least 1).
    pub unreachable_after: u32,
    /// Where the id and secret of each API key the plan creates go, the only time they are
    /// known (the caller writes them to a private file or shows them once). `None`: the
    /// secrets are dropped; `fleetform keys rotate NAME` makes a new one.
    pub new_keys: Option<mpsc::UnboundedSender<NewKey>>,
}

/// An API key made by an apply, with its secret: never logged, serialized or put in a
/// report.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// The key's name, as declared.
    pub name: String,
    pub secret: crate::model::KeySecret,
}

/// Default of [`ApplyOptions::unreachable_after`].
pub const UNREACHABLE_AFTER: u32 = 10;

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            read_parallelism: 32,
            unreachable_after: UNREACHABLE_AFTER,
            new_keys: None,
        }
    }
}

/// Ids produced while applying: what each create made.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Change id → id of the resource it created.
    created: HashMap<String, String>,
    /// Machine-creating change id → id of the main part that came with the machine.
    main_parts: HashMap<String, String>,
    /// Machine-creating change id → its main part as read once the machine was created (or
    /// why the read failed).
    looked_up: HashMap<String, Result<MainPart, ExecError>>,
}

/// A new machine's main part, as the cloud made it.
#[derive(Clone, Debug)]
pub(crate) struct MainPart {
    pub id: String,
    pub name: String,
}

impl Resolved {
    /// What `c` can look up: the entries of the changes it depends on, directly or through
    /// others (a change refers only to resources made by changes it waits for). A task gets
    /// this much rather than a copy of everything resolved so far, which grows with the plan.
    fn for_change(&self, plan: &Plan, index: &HashMap<&str, usize>, c: &Change) -> Resolved {
        let mut out = Resolved::default();
        for id in crate::plan::waits_for(&plan.changes, index, c) {
            if let Some(v) = self.created.get(id) {
                out.created.insert(id.to_string(), v.clone());
            }
            if let Some(v) = self.main_parts.get(id) {
                out.main_parts.insert(id.to_string(), v.clone());
            }
            if let Some(v) = self.looked_up.get(id) {
                out.looked_up.insert(id.to_string(), v.clone());
            }
        }
        out
    }

    fn created(&self, change: &str) -> Result<String, ExecError> {
        self.created.get(change).cloned().ok_or_else(|| {
            ExecError::Other(format!("change {change} has not created its resource"))
        })
    }
}

/// How one change ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    Failed {
        cause: String,
    },
    /// The resource changed since the plan; nothing was written to it.
    Conflict {
        cause: String,
    },
    /// Not attempted because a change it depends on did not apply.
    Skipped {
        because: String,
    },
    /// Not attempted because apply was interrupted (or stopped: lease lost, cloud unreachable).
    NotStarted,
}

/// Progress, for whoever displays it.
#[derive(Clone, Debug)]
pub enum Event {
    Started { id: String },
    Finished { id: String, outcome: Outcome },
}

/// The result of one change.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeResult {
    /// The plan's internal change id: for matching results to changes in-process, never
    /// shown (output names the resource by `kind` and `path`).
    #[serde(skip)]
    pub id: String,
    pub action: Action,
    pub kind: Kind,
    pub path: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What happened to every change of the plan, in plan order.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub results: Vec<ChangeResult>,
    /// The stop signal was raised (Ctrl-C, a lost lease, a watch shutting down).
    pub interrupted: bool,
    /// Apply stopped starting changes because the cloud looked unreachable: the last transport
    /// error, after [`ApplyOptions::unreachable_after`] changes in a row failed with one.
    pub unreachable: Option<String>,
    /// How a staged rollout ended, when the plan had one ([`crate::rollout`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::RolloutOutcome>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Applied))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. } | Outcome::Conflict { .. }))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. } | Outcome::NotStarted))
    }
    /// Every change applied, and a rollout (if any) went through all its waves.
    pub fn is_success(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Applied)
            && self
                .rollout
                .as_ref()
                .is_none_or(|r| r.status == Some(crate::rollout::Status::Done))
    }
}

/// The key that serializes changes touching the same resource.
fn resource_key(c: &crate::plan::Change) -> String {
    match &c.resource_id {
        Some(id) => id.clone(),
        None => format!("{}:{}", c.kind.as_str(), c.path),
    }
}

/// The machine creation whose main part `c` updates, if it is such an update.
fn main_part_of(c: &Change) -> Option<&str> {
    match &c.op {
        crate::plan::Op::UpdatePart {
            part: crate::plan::PartRef::MainPartOf(m),
            ..
        } => Some(m),
        _ => None,
    }
}

/// Applies `plan`. `stop` turning `true` stops starting new changes.
pub async fn apply(
    api: Arc<dyn CloudApi>,
    plan: &Plan,
    opts: &ApplyOptions,
    events: Option<mpsc::UnboundedSender<Event>>,
    mut stop: watch::Receiver<bool>,
) -> Report {
    let n = plan.changes.len();
    let index: HashMap<&str, usize> = plan
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut running: HashSet<usize> = HashSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    let resolved = Arc::new(std::sync::Mutex::new(Resolved::default()));
    let mut tasks: tokio::task::JoinSet<(usize, Result<Option<String>, ExecError>)> =
        tokio::task::JoinSet::new();
    let send = |e: Event| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let parallelism = opts.parallelism.max(1);
    let mut interrupted = *stop.borrow();
    let mut stop_closed = false;
    let unreachable_after = opts.unreachable_after.max(1);
    let mut transport_failures = 0u32;
    let mut unreachable: Option<String> = None;
    // Whether a change ended other than applied since the last look for changes to skip
    // (only then can there be any), and the first change without an outcome: the engine
    // looks at each change a bounded number of times, not once per finished change.
    let mut failures_to_settle = false;
    let mut first_open = 0;
    // The main-part lookups: which machine creations have a main part to update, the lookups
    // due (machine change id, machine id), and those in flight by task.
    let wants_main: HashSet<&str> = plan
        .changes
        .iter()
        .filter_map(|c| main_part_of(c))
        .filter(|m| index.contains_key(m))
        .collect();
    let mut lookups_due: std::collections::VecDeque<(String, String)> = Default::default();
    let mut lookups: tokio::task::JoinSet<(String, Result<MainPart, ExecError>)> =
        tokio::task::JoinSet::new();
    let mut lookup_of: HashMap<tokio::task::Id, String> = HashMap::new();
    let read_parallelism = opts.read_parallelism.max(1);

    loop {
        // Skip everything whose dependencies can no longer apply.
        let mut changed = std::mem::take(&mut failures_to_settle);
        while changed {
            changed = false;
            for i in first_open..n {
                if outcome[i].is_some() || running.contains(&i) {
                    continue;
                }
                let blocker = plan.changes[i].depends_on.iter().find(|d| {
                    index.get(d.as_str()).is_some_and(
                        |&j| matches!(outcome[j], Some(ref o) if *o != Outcome::Applied),
                    )
                });
                if let Some(b) = blocker {
                    let o = Outcome::Skipped { because: b.clone() };
                    send(Event::Finished {
                        id: plan.changes[i].id.clone(),
                        outcome: o.clone(),
                    });
                    outcome[i] = Some(o);
                    changed = true;
                }
            }
        }
        while first_open < n && outcome[first_open].is_some() {
            first_open += 1;
        }
        // Start what is ready: lookups first (they make updates ready), then changes.
        if !interrupted && unreachable.is_none() && !*stop.borrow() {
            while lookups.len() < read_parallelism {
                let Some((m, machine)) = lookups_due.pop_front() else {
                    break;
                };
                let api = Arc::clone(&api);
                let key = m.clone();
                let task = lookups.spawn(async move {
                    let part = exec::main_part(api.as_ref(), &machine).await;
                    (m, part)
                });
                lookup_of.insert(task.id(), key);
            }
        }
        if !interrupted && unreachable.is_none() {
            for i in first_open..n {
                if running.len() >= parallelism {
                    break;
                }
                // Fencing: a stop raised since the last look (a lost lease) starts nothing more.
                if *stop.borrow() {
                    interrupted = true;
                    break;
                }
                if outcome[i].is_some() || running.contains(&i) {
                    continue;
                }
                let c = &plan.changes[i];
                let ready = c.depends_on.iter().all(|d| {
                    index
                        .get(d.as_str())
                        .is_none_or(|&j| outcome[j] == Some(Outcome::Applied))
                });
                let looked_up = main_part_of(c).is_none_or(|m| {
                    !wants_main.contains(m)
                        || resolved.lock().is_ok_and(|r| r.looked_up.contains_key(m))
                });
                let key = resource_key(c);
                if !ready || !looked_up || busy.contains(&key) {
                    continue;
                }
                busy.insert(key);
                running.insert(i);
                send(Event::Started { id: c.id.clone() });
                let api = Arc::clone(&api);
                let change = c.clone();
                let org = plan.organization_id.clone();
                let snapshot = resolved
                    .lock()
                    .map(|r| r.for_change(plan, &index, c))
                    .unwrap_or_default();
                let new_keys = opts.new_keys.clone();
                tasks.spawn(async move {
                    let result =
                        exec::execute(api.as_ref(), &org, &change, &snapshot, new_keys.as_ref())
                            .await;
                    (i, result)
                });
            }
        }
        if running.is_empty() && lookups.is_empty() {
            break;
        }
        tokio::select! {
            joined = lookups.join_next_with_id(), if !lookups.is_empty() => {
                let (m, part) = match joined {
                    Some(Ok((task, done))) => {
                        lookup_of.remove(&task);
                        done
                    }
                    Some(Err(e)) => {
                        let Some(m) = lookup_of.remove(&e.id()) else { continue };
                        (m, Err(ExecError::Other(format!("internal error: {e}"))))
                    }
                    None => continue,
                };
                if let Ok(mut r) = resolved.lock() {
                    r.looked_up.insert(m, part);
                }
            }
            joined = tasks.join_next(), if !tasks.is_empty() => {
                let Some(joined) = joined else { break };
                let (i, result) = match joined {
                    Ok(r) => r,
                    Err(e) => {
                        // A panicked task: find which one is gone by elimination is not possible,
                        // so report it against every running change.
                        for &i in &running {
                            outcome[i] = Some(Outcome::Failed { cause: format!("internal error: {e}") });
                        }
                        running.clear();
                        failures_to_settle = true;
                        continue;
                    }
                };
                running.remove(&i);
                busy.remove(&resource_key(&plan.changes[i]));
                let c = &plan.changes[i];
                let result_transport = match &result {
                    Err(ExecError::Cloud(e)) if e.is_transient() => Some(e.to_string()),
                    _ => None,
                };
                let o = match result {
                    Ok(created) => {
                        if let Some(id) = created.as_ref().filter(|_| wants_main.contains(c.id.as_str())) {
                            lookups_due.push_back((c.id.clone(), id.clone()));
                        }
                        if let (Some(id), Ok(mut r)) = (created, resolved.lock()) {
                            match &c.op {
                                crate::plan::Op::UpdatePart { part: crate::plan::PartRef::MainPartOf(m), .. } => {
                                    r.main_parts.insert(m.clone(), id.clone());
                                    r.created.insert(c.id.clone(), id);
                                }
                                _ => {
                                    r.created.insert(c.id.clone(), id);
                                }
                            }
                        }
                        Outcome::Applied
                    }
                    Err(ExecError::Conflict(cause)) => Outcome::Conflict { cause },
                    Err(e) => Outcome::Failed { cause: e.to_string() },
                };
                match &result_transport {
                    Some(cause) => {
                        transport_failures += 1;
                        if transport_failures >= unreachable_after && unreachable.is_none() {
                            tracing::error!(
                                consecutive = transport_failures,
                                error = %cause,
                                "the cloud looks unreachable; starting no new changes"
                            );
                            unreachable = Some(cause.clone());
                        }
                    }
                    None => transport_failures = 0,
                }
                failures_to_settle |= o != Outcome::Applied;
                send(Event::Finished { id: c.id.clone(), outcome: o.clone() });
                outcome[i] = Some(o);
            }
            res = stop.changed(), if !interrupted && !stop_closed => {
                match res {
                    Ok(()) => interrupted = *stop.borrow(),
                    Err(_) => stop_closed = true,
                }
            }
        }
    }

    let results = plan
        .changes
        .iter()
        .zip(outcome)
        .map(|(c, o)| ChangeResult {
            id: c.id.clone(),
            action: c.action,
            kind: c.kind,
            path: c.path.clone(),
            outcome: o.unwrap_or(Outcome::NotStarted),
        })
        .collect();
    Report {
        results,
        interrupted,
        unreachable,
        rollout: None,
    }
}
