//! Reconcile: the one pipeline every command and the watch daemon run, from a manifest to a
//! plan that is safe to apply, and from that plan to the cloud.
//!
//! ```text
//! prepare(api, &Desired, &Options) -> Prepared       observe → plan → attribute → verdicts
//! apply(api, Prepared, &Options, events, stop)       refuse (verdicts, stale) → execute
//! ```
//!
//! - [`prepare`] observes the manifest's scope ([`crate::cloud::observe`]), plans
//!   ([`crate::plan::plan`], pure), attributes config drift to whoever last changed each
//!   drifted part ([`attribute`]), and records the safety verdicts ([`safety`]). It never
//!   writes. `fleetform plan`, `apply`, `status` and `watch` all start here.
//! - [`apply`] refuses a plan that a safety verdict forbids or whose preconditions no longer
//!   hold (a stale plan: the cloud changed since it was observed), whoever calls it, then
//!   executes it with the apply engine ([`crate::apply`]). A plan saved by `plan --out` enters
//!   through [`Prepared::saved`], so it meets the same verdicts and the same stale check.
//!
//! # Safety, decided here once
//! - **protect**: a plan that would delete a resource declared `protect: true` cannot be made;
//!   the planner reports it ([`crate::plan::PlanError::Protected`]) and [`prepare`] returns it
//!   as [`PrepareError::Plan`].
//! - **empty manifest**: a manifest that declares nothing is never used to delete.
//! - **delete budget**: more deletions than [`DeleteBudget::max_deletes`] need
//!   [`DeleteBudget::allow_deletes`].
//!
//! The last two are [`Refusal`]s on the [`Prepared`] plan: callers show them (the CLI after
//! printing the plan, watch in its log), and [`apply`] refuses such a plan regardless.
//!
//! # Stale plans
//! Each change records what it assumed about the resource it touches. [`apply`] reads those
//! assumptions again before its first write, for every plan: one prepared a moment ago may
//! have waited at a confirmation prompt, and a saved one may be days old. Any that no longer
//! holds makes the whole plan stale, and nothing is written.
//!
//! # Layout
//! - `attribute.rs`: who last changed each drifted part.
//! - `events.rs`: the `--output json-lines` events of apply and watch, in one schema.
//! - `safety.rs`: the verdicts (empty manifest, delete budget).
//! - `saved.rs`: plans saved to a file: writing, reading, restoring their sensitive values.
//! - `status.rs`: where each part stands against a manifest (`fleetform status`).
//!
//! Nothing here prints: warnings travel in [`Prepared::warnings`], progress through the
//! optional [`Step`] callback of [`prepare_with`] and the engine's [`crate::apply::Event`]s.

pub mod attribute;
pub mod events;
pub mod safety;
pub mod saved;
pub mod status;

pub use attribute::OWN_KEY;
pub use safety::{DeleteBudget, Refusal};

use crate::apply::{self, ApplyOptions, Event, Outcome, Report, Stale};
use crate::cloud::observe::{
    Early, ObserveError, ObserveOptions, observe_after, resolve_organization,
};
use crate::cloud::{CloudApi, CloudError};
use crate::model::{Desired, HistoryEntry, OrgRef, Organization};
use crate::plan::{self, Plan, PlanErrors};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// How to reconcile. [`Default`] matches the CLI defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Reads in flight and the retry budget while observing (and attributing).
    pub observe: ObserveOptions,
    /// Planner options: `prune` here is `--prune`; the manifest's own `prune: true` is merged
    /// by the planner, never again by callers.
    pub plan: plan::Options,
    /// The delete budget.
    pub deletes: DeleteBudget,
    /// Changes in flight while applying, and when the cloud counts as unreachable.
    pub apply: ApplyOptions,
    /// The API key id this process writes with: drift made with it is attributed to
    /// [`OWN_KEY`] rather than to the id. `None`: every editor is shown as the cloud names it.
    pub own_key_id: Option<String>,
    /// `--target` addresses: the plan is restricted to them ([`crate::plan::target`]).
    /// Empty: the whole manifest.
    pub targets: Vec<String>,
    /// How staged rollouts poll health and report progress ([`crate::rollout`]).
    pub rollout: crate::rollout::RolloutOptions,
}

/// Where [`prepare_with`] is, for a progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading the cloud.
    Observing,
    /// Reading the history of drifted parts.
    Attributing,
    /// A read finished; nothing is in progress.
    Idle,
}

/// A plan ready to show and, unless refused, to apply. Built only by [`prepare`] (fresh) or
/// [`Prepared::saved`] (a saved plan), and its plan and verdicts cannot be changed apart, so
/// every plan [`apply`] sees carries the verdicts made on it.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The plan, in execution order, with drift attributed. Shared, so that showing it while
    /// it is applied needs no copy (a cold apply's plan holds every config).
    plan: Arc<Plan>,
    /// Why the plan must not be applied; empty when it may be.
    refusals: Vec<Refusal>,
    /// What the user should know that did not stop the plan (e.g. drift that could not be
    /// attributed). One sentence each, without a `warning:` prefix.
    pub warnings: Vec<String>,
}

impl Prepared {
    /// A plan saved by `fleetform plan --out`, with the verdicts that apply to it (the delete
    /// budget; there is no manifest to judge). [`apply`] checks it against the cloud.
    pub fn saved(plan: Plan, opts: &Options) -> Prepared {
        Prepared {
            refusals: safety::verdicts(None, &plan, &opts.deletes),
            plan: Arc::new(plan),
            warnings: vec![],
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The plan, for showing only (it can no longer be applied).
    pub fn into_plan(self) -> Plan {
        Arc::unwrap_or_clone(self.plan)
    }

    /// The plan, shared (to show it while [`apply`] runs it).
    pub fn shared_plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan)
    }

    /// Why the plan must not be applied; empty when it may be.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    /// Marks, for display, every value `ledger` knows was ever sensitive (see
    /// [`crate::sensitive::Ledger::mark_plan`]); what apply writes is unchanged.
    pub fn mark_sensitive(&mut self, ledger: &crate::sensitive::Ledger) {
        ledger.mark_plan(Arc::make_mut(&mut self.plan));
    }

    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }
}

/// Why [`prepare`] made no plan.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The cloud could not be read.
    #[error("cannot read the cloud")]
    Observe(#[source] ObserveError),
    /// The plan cannot be made (ambiguous names, missing pins, a protected resource that
    /// would be deleted, …); each error says which resource and how to fix it.
    #[error("cannot make a plan:\n{0}")]
    Plan(PlanErrors),
}

/// Why [`apply`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A safety verdict forbids the plan.
    #[error("the plan is refused: {}", .0.first().map(ToString::to_string).unwrap_or_default())]
    Refused(Vec<Refusal>),
    /// The cloud changed since the plan was made; each entry names a resource and what changed.
    #[error("the plan is stale: the cloud changed since it was made")]
    Stale(Vec<Stale>),
    /// The plan could not be checked against the cloud.
    #[error("cannot check the plan against the cloud")]
    Check(#[source] CloudError),
}

/// Observes, plans, attributes drift and judges the plan (see the module docs). Never writes.
pub async fn prepare(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &Options,
) -> Result<Prepared, PrepareError> {
    prepare_with(api, desired, opts, &|_| {}).await
}

/// [`prepare`], telling `progress` which read is under way.
pub async fn prepare_with(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &Options,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Prepared, PrepareError> {
    prepare_after(api, desired, opts, progress, None).await
}

/// [`prepare_with`], observing with the reads `early` made before the manifest was loaded
/// (see [`crate::cloud::observe::observe_after`]).
pub async fn prepare_after(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &Options,
    progress: &(dyn Fn(Step) + Sync),
    early: Option<Early>,
) -> Result<Prepared, PrepareError> {
    let (mut plan, refusals) = plan_step(api, desired, opts, progress, early).await?;
    let newest = attribution_reads(api, &plan, opts, progress).await;
    let warnings = record_attribution(&mut plan, newest, opts);
    Ok(Prepared {
        refusals,
        plan: Arc::new(plan),
        warnings,
    })
}

/// [`prepare_after`] for a caller that applies the plan right away, without asking
/// (`apply --yes`): the stale-plan check ([`check`]) and `fence` (the caller's own last check
/// before writing, such as the lease's) are made together with the drift attribution's reads,
/// so the three take one round trip where they took two. Apply the result right away
/// ([`Prechecked::into_checked`], then [`apply_checked`]): the check is then as old as the
/// time the plan takes to show, and every part write still carries its own precondition.
pub async fn prepare_checked<E>(
    api: Arc<dyn CloudApi>,
    desired: &Desired,
    opts: &Options,
    progress: &(dyn Fn(Step) + Sync),
    early: Option<Early>,
    fence: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(Prechecked, Result<(), E>), PrepareError> {
    let (mut plan, refusals) = plan_step(api.as_ref(), desired, opts, progress, early).await?;
    let (newest, fence, fresh) = tokio::join!(
        attribution_reads(api.as_ref(), &plan, opts, progress),
        fence,
        fresh(Arc::clone(&api), &plan)
    );
    let warnings = record_attribution(&mut plan, newest, opts);
    let prepared = Prepared {
        refusals,
        plan: Arc::new(plan),
        warnings,
    };
    Ok((Prechecked { prepared, fresh }, fence))
}

/// A prepared plan with the outcome of its stale-plan check ([`prepare_checked`]).
#[derive(Debug)]
pub struct Prechecked {
    prepared: Prepared,
    fresh: Result<(), ApplyError>,
}

impl Prechecked {
    /// The prepared plan, to show.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// Marks the plan's sensitive values (see [`Prepared::mark_sensitive`]).
    pub fn mark_sensitive(&mut self, ledger: &crate::sensitive::Ledger) {
        self.prepared.mark_sensitive(ledger);
    }

    /// What [`check`] would answer: the verdicts, then the stale-plan check made with the
    /// attribution.
    pub fn into_checked(self) -> Result<Checked, ApplyError> {
        if !self.prepared.refusals.is_empty() {
            return Err(ApplyError::Refused(self.prepared.refusals));
        }
        self.fresh.map(|()| Checked(self.prepared))
    }
}

/// Observes, plans, restricts the plan to the targets, plans the rollout's waves and gives
/// the safety verdicts: everything of [`prepare_after`] but the drift attribution.
async fn plan_step(
    api: &dyn CloudApi,
    desired: &Desired,
    opts: &Options,
    progress: &(dyn Fn(Step) + Sync),
    early: Option<Early>,
) -> Result<(Plan, Vec<Refusal>), PrepareError> {
    progress(Step::Observing);
    let observed = observe_after(api, desired, &opts.observe, early).await;
    progress(Step::Idle);
    let observed = observed.map_err(PrepareError::Observe)?;
    let mut plan = plan::plan(desired, &observed, &opts.plan).map_err(PrepareError::Plan)?;
    if !opts.targets.is_empty() {
        // The CLI checks the addresses first; one that does not parse covers nothing.
        let addresses: Vec<_> = opts
            .targets
            .iter()
            .filter_map(|t| plan::target::Address::parse(t).ok())
            .collect();
        plan::target::restrict(&mut plan, &opts.targets, &addresses);
    }
    if let Some(policy) = &desired.rollout {
        plan.rollout = crate::rollout::waves(policy, &plan, &observed);
    }
    // The verdicts look at what the changes do, never at who caused the drift.
    let refusals = safety::verdicts(Some(desired), &plan, &opts.deletes);
    Ok((plan, refusals))
}

/// The drift attribution's reads for `plan` (`None` when nothing drifted).
async fn attribution_reads(
    api: &dyn CloudApi,
    plan: &Plan,
    opts: &Options,
    progress: &(dyn Fn(Step) + Sync),
) -> Option<Result<BTreeMap<String, HistoryEntry>, ObserveError>> {
    attribute::drifted_parts(plan).next()?;
    progress(Step::Attributing);
    let newest = attribute::read(api, plan, &opts.observe).await;
    progress(Step::Idle);
    Some(newest)
}

/// Records the attribution in `plan`; a failure to read it is a warning (attribution only
/// explains a change).
fn record_attribution(
    plan: &mut Plan,
    newest: Option<Result<BTreeMap<String, HistoryEntry>, ObserveError>>,
    opts: &Options,
) -> Vec<String> {
    match newest {
        None => vec![],
        Some(Ok(newest)) => {
            attribute::record(plan, &newest, opts.own_key_id.as_deref());
            vec![]
        }
        Some(Err(e)) => vec![format!(
            "cannot tell who changed the drifted parts: {}",
            error_chain(&e)
        )],
    }
}

/// Applies `prepared`: refuses it when a verdict forbids it or it is stale (see the module
/// docs), else executes every change with the apply engine, sending `events` as changes start
/// and finish. Raising `stop` starts nothing new; calls in flight finish. In the report, a
/// skipped change names the change it waited for by resource ([`named_blocker`]).
pub async fn apply(
    api: Arc<dyn CloudApi>,
    prepared: Prepared,
    opts: &Options,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: watch::Receiver<bool>,
) -> Result<Report, ApplyError> {
    let checked = check(Arc::clone(&api), prepared).await?;
    apply_checked(api, checked, opts, events, stop).await
}

/// A plan whose verdicts allow it and whose preconditions held when [`check`] read them:
/// what [`apply_checked`] executes without reading them once more.
#[derive(Debug)]
pub struct Checked(Prepared);

/// The checks [`apply`] makes before its first write (the verdicts, then the stale-plan
/// check), keeping the plan for [`apply_checked`]: for a caller that makes a last check of its
/// own at the same time (the lease's fence), so that both take one round trip. Apply the
/// result right away: a plan that waits (at a prompt) must be checked again.
pub async fn check(api: Arc<dyn CloudApi>, prepared: Prepared) -> Result<Checked, ApplyError> {
    // A refused plan is not read against the cloud.
    let fresh = if prepared.refusals.is_empty() {
        check_fresh(api, &prepared).await
    } else {
        Ok(())
    };
    Prechecked { prepared, fresh }.into_checked()
}

/// [`apply`] of a plan [`check`] has just checked.
pub async fn apply_checked(
    api: Arc<dyn CloudApi>,
    checked: Checked,
    opts: &Options,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: watch::Receiver<bool>,
) -> Result<Report, ApplyError> {
    let plan = checked.0.plan;
    let report = match &plan.rollout {
        Some(_) => {
            crate::rollout::execute(api, &plan, &opts.apply, &opts.rollout, events, stop).await
        }
        None => apply::apply(api, &plan, &opts.apply, events, stop).await,
    };
    Ok(named_report(&plan, report))
}

/// `report` with every skipped change's blocker named by resource ([`named_blocker`]).
fn named_report(plan: &Plan, mut report: Report) -> Report {
    for r in &mut report.results {
        let outcome = std::mem::replace(&mut r.outcome, Outcome::NotStarted);
        r.outcome = named_blocker(plan, outcome);
    }
    report
}

/// Checks that every precondition of `prepared` still holds (the stale-plan check [`apply`]
/// makes before its first write). Callers that show a plan before applying it — a saved plan
/// read from a file — call this first, so a stale plan is reported before anyone is asked to
/// confirm it; [`apply`] checks again, since a confirmation can take a while.
pub async fn check_fresh(api: Arc<dyn CloudApi>, prepared: &Prepared) -> Result<(), ApplyError> {
    fresh(api, &prepared.plan).await
}

/// The stale-plan check of `plan`.
async fn fresh(api: Arc<dyn CloudApi>, plan: &Plan) -> Result<(), ApplyError> {
    if plan.is_empty() {
        return Ok(());
    }
    let stale = apply::check_preconditions(api, plan)
        .await
        .map_err(ApplyError::Check)?;
    if stale.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Stale(stale))
    }
}

/// The organization `wanted` names, among those the API key can see (for the lease, which is
/// taken before preparing).
pub async fn organization(
    api: &dyn CloudApi,
    wanted: &OrgRef,
) -> Result<Organization, ObserveError> {
    let orgs = api
        .list_organizations()
        .await
        .map_err(|source| ObserveError::Read {
            what: "the organizations this API key can see (ListOrganizations)".into(),
            source,
        })?;
    resolve_organization(orgs, wanted)
}

/// `outcome` with the change a skipped change waited for named by what it changes
/// (`location Factory`), never by the plan's internal change id: how the engine's events and
/// results are shown.
pub fn named_blocker(plan: &Plan, outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Skipped { because } => Outcome::Skipped {
            because: plan
                .change(&because)
                .map_or(because, |d| format!("{} {}", d.kind.as_str(), d.path)),
        },
        other => other,
    }
}

/// `top: cause: cause…` on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ChangeResult;
    use crate::plan::{Action, Change, Kind, Op};

    fn change(id: &str, kind: Kind, path: &str, op: Op) -> Change {
        Change {
            id: id.into(),
            ..Change::new(Action::Create, kind, path, "declared, not in the cloud", op)
        }
    }

    /// A skipped change names the resource it waited for, and results never show change ids.
    #[test]
    fn reports_name_resources_never_change_ids() {
        let hq = change(
            "c1",
            Kind::Location,
            "HQ",
            Op::CreateLocation {
                name: "HQ".into(),
                parent: None,
            },
        );
        let plan = Plan {
            format_version: plan::PLAN_FORMAT_VERSION,
            manifest_digest: String::new(),
            organization_id: "org-1".into(),
            organization_name: "acme".into(),
            prune: false,
            target: None,
            rollout: None,
            changes: vec![hq],
            unmanaged: vec![],
            notices: vec![],
        };
        let report = Report {
            results: vec![ChangeResult {
                id: "c2".into(),
                action: Action::Create,
                kind: Kind::Machine,
                path: "HQ/arm".into(),
                outcome: Outcome::Skipped {
                    because: "c1".into(),
                },
            }],
            interrupted: false,
            unreachable: None,
            rollout: None,
        };
        let named = named_report(&plan, report);
        assert_eq!(
            named.results[0].outcome,
            Outcome::Skipped {
                because: "location HQ".into()
            }
        );
        let json = serde_json::to_value(&named).unwrap();
        assert_eq!(
            json["results"][0],
            serde_json::json!({
                "action": "create", "kind": "machine", "path": "HQ/arm",
                "outcome": "skipped", "because": "location HQ"
            })
        );
    }
}
