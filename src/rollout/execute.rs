//! Running a rollout: the plan's other changes, then wave by wave (record, write, gate), then
//! the tag moves and what depends on the waves; and undoing it (rollback).
//!
//! ```text
//! before   every change that is not a wave's and needs none (apply engine)
//! wave k   controls (pause/abort) → record the parts and their `before` → write (engine for
//!          config updates, pins for tag moves) → gate (health) → record the verdicts
//! after    tag moves (SetFragmentTag), unpin, then changes that depend on a wave
//! ```
//!
//! A failed write in a wave aborts the rollout like an unhealthy machine. An abort runs the
//! policy's `on_abort`: `rollback` restores every part the rollout wrote to the config (and
//! name) it had before, from the part's history ([`rollback`]), verified by reading it back;
//! `stop` leaves everything and starts no further wave. A stop signal (Ctrl-C, a lost lease)
//! leaves the rollout recorded as running: the next `apply` recovers it ([`super::recover`]).

use super::health::{self, GateEnd, Watch};
use super::state::{self, ChangedPart, Record, RolloutState, Status};
use super::{Progress, RolloutOptions, RolloutOutcome};
use crate::apply::{self, ApplyOptions, ChangeResult, Event, Outcome, Report};
use crate::cloud::{CloudApi, CloudError, Code};
use crate::model::{OnAbort, Timestamp};
use crate::plan::canonical::same_config;
use crate::plan::rollout::{RolloutPlan, TagMove, Wave};
use crate::plan::{Plan, Precondition};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Writes (pins, rollbacks) in flight at once.
const WRITES_IN_FLIGHT: usize = 10;

/// The sub-plan of `plan` holding the changes `ids` (in plan order).
fn sub_plan(plan: &Plan, ids: &HashSet<String>) -> Plan {
    Plan {
        changes: plan
            .changes
            .iter()
            .filter(|c| ids.contains(&c.id))
            .cloned()
            .collect(),
        rollout: None,
        ..plan.clone()
    }
}

/// Runs `plan` (which has a rollout) and reports every change, with the rollout's outcome.
pub async fn execute(
    api: Arc<dyn CloudApi>,
    plan: &Plan,
    apply_opts: &ApplyOptions,
    opts: &RolloutOptions,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: watch::Receiver<bool>,
) -> Report {
    let Some(rp) = plan.rollout.clone() else {
        return apply::apply(api, plan, apply_opts, events, stop).await;
    };
    let mut run = Run {
        api,
        plan,
        rp: &rp,
        apply_opts,
        opts,
        events,
        stop,
        results: BTreeMap::new(),
        interrupted: false,
        unreachable: None,
    };
    let outcome = run.go().await;
    let report = run.report(outcome);
    if let (Some(p), Some(o)) = (&opts.progress, &report.rollout) {
        p(&Progress::Finished(o.clone()));
    }
    report
}

struct Run<'a> {
    api: Arc<dyn CloudApi>,
    plan: &'a Plan,
    rp: &'a RolloutPlan,
    apply_opts: &'a ApplyOptions,
    opts: &'a RolloutOptions,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: watch::Receiver<bool>,
    /// Change id → how it ended.
    results: BTreeMap<String, Outcome>,
    interrupted: bool,
    unreachable: Option<String>,
}

impl Run<'_> {
    fn progress(&self, p: Progress) {
        tracing::info!(step = ?p, "rollout");
        if let Some(f) = &self.opts.progress {
            f(&p);
        }
    }

    /// Runs the changes `ids` with the apply engine; whether all applied.
    async fn engine(&mut self, ids: &HashSet<String>) -> bool {
        if ids.is_empty() {
            return true;
        }
        let sub = sub_plan(self.plan, ids);
        let r = apply::apply(
            Arc::clone(&self.api),
            &sub,
            self.apply_opts,
            self.events.clone(),
            self.stop.clone(),
        )
        .await;
        self.interrupted |= r.interrupted;
        if r.unreachable.is_some() {
            self.unreachable = r.unreachable.clone();
        }
        let ok = r.is_success();
        for c in r.results {
            self.results.insert(c.id, c.outcome);
        }
        ok
    }

    async fn go(&mut self) -> Option<RolloutOutcome> {
        let wave_ids: HashSet<String> = self.rp.change_ids().map(str::to_string).collect();
        // Changes that need a wave's change (transitively) run after the last wave.
        let mut after: HashSet<String> = HashSet::new();
        for c in &self.plan.changes {
            if c.depends_on
                .iter()
                .any(|d| wave_ids.contains(d) || after.contains(d))
            {
                after.insert(c.id.clone());
            }
        }
        let before: HashSet<String> = self
            .plan
            .changes
            .iter()
            .filter(|c| !wave_ids.contains(&c.id) && !after.contains(&c.id))
            .map(|c| c.id.clone())
            .collect();
        if !self.engine(&before).await {
            // Nothing is rolled out on top of a failed preparation.
            return None;
        }
        let org = self.plan.organization_id.clone();
        let api = Arc::clone(&self.api);
        let tags = match resolve_tags(api.as_ref(), &self.rp.tag_moves).await {
            Ok(t) => t,
            Err(e) => {
                return Some(
                    self.failed_to_start(format!("cannot read the moved tags' revisions: {e}")),
                );
            }
        };
        let mut record = match state::read(api.as_ref(), &org).await {
            Ok(r) => r,
            Err(e) => {
                return Some(self.failed_to_start(format!("cannot read the rollout record: {e}")));
            }
        };
        let now = Timestamp::now().seconds;
        let mut st = RolloutState {
            id: uuid::Uuid::new_v4().to_string(),
            manifest_digest: self.plan.manifest_digest.clone(),
            started: now,
            updated: now,
            status: Status::Running,
            policy: self.rp.policy.clone(),
            wave: 0,
            passed: 0,
            waves: self.rp.waves.len(),
            wave_sizes: self.rp.waves.iter().map(|w| w.machines.len()).collect(),
            tag_moves: self.rp.tag_moves.iter().map(|t| t.path.clone()).collect(),
            parts: vec![],
            message: None,
        };
        // A new rollout starts with no requests pending.
        record.controls = state::Controls::default();
        if let Err(e) = state::save_state(api.as_ref(), &mut record, &st).await {
            return Some(self.failed_to_start(format!("cannot write the rollout record: {e}")));
        }
        for wave in &self.rp.waves {
            match self.wave(wave, &tags, &mut record, &mut st).await {
                Ok(None) => {}
                Ok(Some(outcome)) => return Some(outcome),
                Err(e) => {
                    // The record could not be kept: stop here, leaving it as it is (running),
                    // so the next apply recovers the rollout.
                    st.message = Some(format!("the rollout record could not be written: {e}"));
                    return Some(outcome_of(&st, Some(e.to_string())));
                }
            }
        }
        // Every wave passed: move the tags, unpin, then what depended on the waves.
        let tag_ids: HashSet<String> = self.rp.tag_moves.iter().map(|t| t.change.clone()).collect();
        let moved = self.engine(&tag_ids).await;
        if moved {
            let pinned: Vec<ChangedPart> = st
                .parts
                .iter()
                .filter(|p| !p.pins.is_empty())
                .cloned()
                .collect();
            let unpinned = for_each(&pinned, &|p| {
                let api = Arc::clone(&api);
                let tags = &tags;
                async move {
                    unpin(api.as_ref(), p, tags)
                        .await
                        .map_err(|e| (p.path.clone(), e))
                }
            })
            .await;
            if let Some((path, e)) = unpinned.into_iter().find_map(Result::err) {
                st.message = Some(format!("{path}: cannot unpin it after moving the tag: {e}"));
            }
        }
        let after_ok = moved && self.engine(&after).await;
        st.status = Status::Done;
        if !after_ok && st.message.is_none() {
            st.message = Some("every wave passed; a change after the last wave failed".into());
        }
        let _ = state::save_state(api.as_ref(), &mut record, &st).await;
        self.progress(Progress::Done);
        Some(outcome_of(&st, None))
    }

    fn failed_to_start(&mut self, why: String) -> RolloutOutcome {
        for id in self.rp.change_ids() {
            self.results
                .insert(id.to_string(), Outcome::Failed { cause: why.clone() });
        }
        RolloutOutcome {
            status: None,
            waves_passed: 0,
            waves: self.rp.waves.len(),
            message: Some(why),
            rollback: None,
        }
    }

    /// One wave; `Some(outcome)` when the rollout ends with it.
    async fn wave(
        &mut self,
        wave: &Wave,
        tags: &[ResolvedTag],
        record: &mut Record,
        st: &mut RolloutState,
    ) -> Result<Option<RolloutOutcome>, CloudError> {
        let api = Arc::clone(&self.api);
        // Between waves: an abort request, a pause, a stop.
        let mut controls = state::reread(api.as_ref(), &record.fragment_id)
            .await?
            .controls;
        if controls.pause && !controls.abort {
            st.status = Status::Paused;
            state::save_state(api.as_ref(), record, st).await?;
            self.progress(Progress::Paused {
                before_wave: wave.number,
            });
            while controls.pause && !controls.abort && !*self.stop.borrow() {
                tokio::time::sleep(self.opts.poll).await;
                if let Ok(r) = state::reread(api.as_ref(), &record.fragment_id).await {
                    controls = r.controls;
                }
            }
            st.status = Status::Running;
            state::save_state(api.as_ref(), record, st).await?;
            self.progress(Progress::Resumed);
        }
        if controls.abort {
            return Ok(Some(
                self.abort(record, st, "aborted by `fleetform rollout abort`".into())
                    .await?,
            ));
        }
        if *self.stop.borrow() {
            self.interrupted = true;
            return Ok(Some(outcome_of(st, None)));
        }
        // Record the parts, and what they were, before writing any.
        let mut parts = vec![];
        for m in &wave.machines {
            for p in &m.parts {
                let before = match p.change.as_deref().and_then(|id| self.plan.change(id)) {
                    Some(c) => match &c.precondition {
                        Some(Precondition::LastUpdated(t)) => Some(*t),
                        _ => None,
                    },
                    None => api.get_part(&p.part_id).await?.last_updated,
                };
                parts.push(ChangedPart {
                    part_id: p.part_id.clone(),
                    path: p.path.clone(),
                    machine_path: m.path.clone(),
                    location_id: m.location_id.clone(),
                    wave: wave.number,
                    before,
                    pins: p
                        .pins
                        .iter()
                        .filter_map(|i| self.rp.tag_moves.get(*i).map(|t| t.path.clone()))
                        .collect(),
                    health: None,
                });
            }
        }
        st.wave = wave.number;
        st.parts.extend(parts.iter().cloned());
        state::save_state(api.as_ref(), record, st).await?;
        self.progress(Progress::WaveStarted {
            number: wave.number,
            of: self.rp.waves.len(),
            machines: wave.machines.len(),
        });
        // Write: config updates through the engine, pins directly.
        let ids: HashSet<String> = wave
            .machines
            .iter()
            .flat_map(|m| m.parts.iter().filter_map(|p| p.change.clone()))
            .collect();
        let mut failed = vec![];
        if !self.engine(&ids).await {
            failed.extend(
                ids.iter()
                    .filter(|id| self.results.get(*id) != Some(&Outcome::Applied))
                    .filter_map(|id| self.plan.change(id).map(|c| c.path.clone())),
            );
        }
        let pins: Vec<(String, String, Vec<ResolvedTag>)> = wave
            .machines
            .iter()
            .flat_map(|m| m.parts.iter())
            .filter(|p| !p.pins.is_empty())
            .map(|p| {
                let t: Vec<ResolvedTag> = p
                    .pins
                    .iter()
                    .filter_map(|i| tags.get(*i).cloned())
                    .collect();
                (p.part_id.clone(), p.path.clone(), t)
            })
            .collect();
        let pinned = for_each(&pins, &|(id, path, t)| {
            let api = Arc::clone(&api);
            async move {
                pin(api.as_ref(), id, t)
                    .await
                    .map_err(|e| format!("{path}: {e}"))
            }
        })
        .await;
        failed.extend(pinned.into_iter().filter_map(Result::err));
        if self.interrupted {
            return Ok(Some(outcome_of(st, None)));
        }
        if !failed.is_empty() {
            let why = format!(
                "wave {}: {} write(s) failed: {}",
                wave.number,
                failed.len(),
                failed.join("; ")
            );
            return Ok(Some(self.abort(record, st, why).await?));
        }
        let since = Timestamp::now();
        let watch = Watch {
            stop: &self.stop,
            record: Some(&record.fragment_id),
        };
        let result = health::gate(
            api.as_ref(),
            &self.plan.organization_id,
            &parts,
            since,
            &self.rp.policy,
            self.opts.poll,
            &watch,
        )
        .await?;
        for p in st.parts.iter_mut().filter(|p| p.wave == wave.number) {
            p.health = result.verdicts.get(&p.part_id).cloned();
        }
        match result.end {
            GateEnd::Passed => {
                st.passed = wave.number;
                state::save_state(api.as_ref(), record, st).await?;
                let unhealthy = result.verdicts.values().filter(|v| *v != "healthy").count();
                self.progress(Progress::WavePassed {
                    number: wave.number,
                    of: self.rp.waves.len(),
                    unhealthy,
                });
                Ok(None)
            }
            GateEnd::Aborted(why) => {
                let why = format!("wave {}: {why}", wave.number);
                Ok(Some(self.abort(record, st, why).await?))
            }
            GateEnd::AbortRequested => Ok(Some(
                self.abort(record, st, "aborted by `fleetform rollout abort`".into())
                    .await?,
            )),
            GateEnd::Interrupted => {
                self.interrupted = true;
                state::save_state(api.as_ref(), record, st).await?;
                Ok(Some(outcome_of(st, None)))
            }
        }
    }

    /// Ends the rollout by its `on_abort`.
    async fn abort(
        &mut self,
        record: &mut Record,
        st: &mut RolloutState,
        why: String,
    ) -> Result<RolloutOutcome, CloudError> {
        self.progress(Progress::Aborted {
            reason: why.clone(),
        });
        st.message = Some(why);
        Ok(finish_abort(self.api.as_ref(), record, st, self.opts).await)
    }

    fn report(&self, rollout: Option<RolloutOutcome>) -> Report {
        let results = self
            .plan
            .changes
            .iter()
            .map(|c| ChangeResult {
                id: c.id.clone(),
                action: c.action,
                kind: c.kind,
                path: c.path.clone(),
                outcome: self
                    .results
                    .get(&c.id)
                    .cloned()
                    .unwrap_or(Outcome::NotStarted),
            })
            .collect();
        Report {
            results,
            interrupted: self.interrupted,
            unreachable: self.unreachable.clone(),
            rollout,
        }
    }
}

/// Runs `on_abort` for an aborted rollout (recorded in `st`): rolls back or stops, and
/// records the end.
pub(super) async fn finish_abort(
    api: &dyn CloudApi,
    record: &mut Record,
    st: &mut RolloutState,
    opts: &RolloutOptions,
) -> RolloutOutcome {
    let progress = |p: Progress| {
        if let Some(f) = &opts.progress {
            f(&p);
        }
    };
    if st.policy.on_abort == OnAbort::Stop {
        st.status = Status::Stopped;
        let _ = state::save_state(api, record, st).await;
        return outcome_of(st, None);
    }
    st.status = Status::RollingBack;
    let _ = state::save_state(api, record, st).await;
    progress(Progress::RollingBack {
        parts: st.parts.len(),
    });
    let report = rollback(api, &st.parts).await;
    if report.failed.is_empty() {
        st.status = Status::RolledBack;
    } else {
        // Left rolling back: the next apply tries again.
        let failed: Vec<String> = report
            .failed
            .iter()
            .map(|(p, e)| format!("{p}: {e}"))
            .collect();
        st.message = Some(format!(
            "{}; rollback incomplete: {}",
            st.message.clone().unwrap_or_default(),
            failed.join("; ")
        ));
    }
    let _ = state::save_state(api, record, st).await;
    progress(Progress::RolledBack {
        restored: report.restored.len(),
        failed: report.failed.len(),
    });
    RolloutOutcome {
        rollback: Some(report),
        ..outcome_of(st, None)
    }
}

/// The outcome of the rollout recorded in `st`.
pub(super) fn outcome_of(st: &RolloutState, message: Option<String>) -> RolloutOutcome {
    RolloutOutcome {
        status: Some(st.status),
        waves_passed: st.passed,
        waves: st.waves,
        message: message.or_else(|| st.message.clone()),
        rollback: None,
    }
}

/// What a rollback did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RollbackReport {
    /// Paths of the parts back on their previous config (verified by reading back), or never
    /// written.
    pub restored: Vec<String>,
    /// Paths of the parts that could not be restored, and why.
    pub failed: Vec<(String, String)>,
}

/// Restores every part of `parts` to the config and name it had before the rollout (see the
/// module docs), verified by reading it back.
pub async fn rollback(api: &dyn CloudApi, parts: &[ChangedPart]) -> RollbackReport {
    let done = for_each(parts, &|p| async move {
        restore(api, p)
            .await
            .map(|()| p.path.clone())
            .map_err(|e| (p.path.clone(), e))
    })
    .await;
    let mut report = RollbackReport::default();
    for r in done {
        match r {
            Ok(path) => report.restored.push(path),
            Err(e) => report.failed.push(e),
        }
    }
    report
}

/// Puts one part back (see [`rollback`]).
async fn restore(api: &dyn CloudApi, p: &ChangedPart) -> Result<(), String> {
    for _attempt in 0..3 {
        let current = api.get_part(&p.part_id).await.map_err(|e| e.to_string())?;
        if current.last_updated == p.before {
            return Ok(()); // never written
        }
        let history = api
            .part_history(&p.part_id, Some(100))
            .await
            .map_err(|e| e.to_string())?;
        let Some(old) = history
            .iter()
            .find(|h| h.old.last_updated == p.before)
            .map(|h| &h.old)
        else {
            return Err("its config before the rollout is not in its history".into());
        };
        if current.name == old.name && same_config(&current.config, &old.config) {
            return Ok(());
        }
        match api
            .update_part(
                &p.part_id,
                &old.name,
                Some(&old.config.to_value()),
                current.last_updated,
            )
            .await
        {
            Ok(_) => {}
            // Changed between our read and our write: read again.
            Err(e) if e.code == Code::FailedPrecondition || e.outcome_unknown() => continue,
            Err(e) => return Err(e.to_string()),
        }
        let back = api.get_part(&p.part_id).await.map_err(|e| e.to_string())?;
        return if back.name == old.name && same_config(&back.config, &old.config) {
            Ok(())
        } else {
            Err("read back after restoring, it differs from its previous config".into())
        };
    }
    Err("it kept changing while being restored".into())
}

/// A tag move with the revision it moves to, known.
#[derive(Clone, Debug)]
pub(super) struct ResolvedTag {
    /// `fragment@tag`.
    pub path: String,
    pub fragment_id: String,
    pub tag: String,
    pub revision: String,
}

/// The revision each tag move goes to (the fragment's current one when the plan left it to
/// apply time).
async fn resolve_tags(
    api: &dyn CloudApi,
    moves: &[TagMove],
) -> Result<Vec<ResolvedTag>, CloudError> {
    let mut out = vec![];
    for t in moves {
        let revision = match &t.revision {
            Some(r) => r.clone(),
            None => api
                .get_fragment_versions(&t.fragment_id, None)
                .await?
                .revisions
                .last()
                .map(|r| r.revision.clone())
                .ok_or_else(|| {
                    CloudError::new("GetFragment", Code::Other, "the fragment has no revisions")
                })?,
        };
        out.push(ResolvedTag {
            path: t.path.clone(),
            fragment_id: t.fragment_id.clone(),
            tag: t.tag.clone(),
            revision,
        });
    }
    Ok(out)
}

/// `config` with each import of a fragment in `tags` at `from(tag)` set to `to(tag)`;
/// `None` when none matched.
fn retarget(
    config: &serde_json::Value,
    tags: &[ResolvedTag],
    from: impl Fn(&ResolvedTag) -> String,
    to: impl Fn(&ResolvedTag) -> String,
) -> Option<serde_json::Value> {
    let mut config = config.clone();
    let mut changed = false;
    let list = config.get_mut("fragments")?.as_array_mut()?;
    for entry in list.iter_mut() {
        let Some(o) = entry.as_object_mut() else {
            continue;
        };
        for t in tags {
            if o.get("id").and_then(|v| v.as_str()) == Some(t.fragment_id.as_str())
                && o.get("version").and_then(|v| v.as_str()) == Some(from(t).as_str())
            {
                o.insert("version".into(), serde_json::Value::String(to(t)));
                changed = true;
            }
        }
    }
    changed.then_some(config)
}

/// Pins part `id`'s imports at the moved tags to the revisions they move to.
async fn pin(api: &dyn CloudApi, id: &str, tags: &[ResolvedTag]) -> Result<(), String> {
    let p = api.get_part(id).await.map_err(|e| e.to_string())?;
    let Some(config) = retarget(
        &p.config.to_value(),
        tags,
        |t| t.tag.clone(),
        |t| t.revision.clone(),
    ) else {
        return Err("it no longer imports the fragment at the tag".into());
    };
    api.update_part(id, &p.name, Some(&config), p.last_updated)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Points a pinned part back at the tags (which now name the revisions it was pinned to).
async fn unpin(api: &dyn CloudApi, p: &ChangedPart, tags: &[ResolvedTag]) -> Result<(), String> {
    let tags: Vec<ResolvedTag> = tags
        .iter()
        .filter(|t| p.pins.contains(&t.path))
        .cloned()
        .collect();
    let part = api.get_part(&p.part_id).await.map_err(|e| e.to_string())?;
    let Some(config) = retarget(
        &part.config.to_value(),
        &tags,
        |t| t.revision.clone(),
        |t| t.tag.clone(),
    ) else {
        return Ok(()); // already back on the tag
    };
    api.update_part(&p.part_id, &part.name, Some(&config), part.last_updated)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `f` over `items`, [`WRITES_IN_FLIGHT`] at a time, results in order (every item
/// runs, whatever the others' results).
async fn for_each<'a, T, R, F, Fut>(items: &'a [T], f: &'a F) -> Vec<R>
where
    T: Sync,
    R: Send + 'a,
    F: Fn(&'a T) -> Fut + Sync + 'a,
    Fut: std::future::Future<Output = R> + Send + 'a,
{
    let all = crate::cloud::observe::bounded(items, WRITES_IN_FLIGHT, |item| {
        let fut = f(item);
        async move { Ok::<R, std::convert::Infallible>(fut.await) }
    })
    .await;
    match all {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pins_touch_only_imports_at_the_moving_tag() {
        let tags = [ResolvedTag {
            path: "kit@stable".into(),
            fragment_id: "f1".into(),
            tag: "stable".into(),
            revision: "7".into(),
        }];
        let config = json!({
            "components": [],
            "fragments": [
                {"id": "f1", "version": "stable", "prefix": "front"},
                {"id": "f1", "version": "beta"},
                {"id": "f2", "version": "stable"},
                "f1"
            ]
        });
        let pinned = retarget(&config, &tags, |t| t.tag.clone(), |t| t.revision.clone()).unwrap();
        assert_eq!(
            pinned["fragments"],
            json!([
                {"id": "f1", "version": "7", "prefix": "front"},
                {"id": "f1", "version": "beta"},
                {"id": "f2", "version": "stable"},
                "f1"
            ])
        );
        // Unpinning puts the config back exactly, key order included.
        let back = retarget(&pinned, &tags, |t| t.revision.clone(), |t| t.tag.clone()).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&config).unwrap()
        );
        // Nothing at the tag: nothing to pin.
        assert!(
            retarget(
                &json!({"fragments": ["f1"]}),
                &tags,
                |t| t.tag.clone(),
                |t| t.revision.clone()
            )
            .is_none()
        );
    }
}
