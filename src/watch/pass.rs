//! One pass of the watch loop: load the manifest, prepare (observe and plan), check
//! safety, take the lease and apply; and the logging of its drift and of the apply's progress.

use super::*;

/// What a pass needs; one per `run`.
pub(super) struct Reconciler {
    pub(super) api: Arc<dyn CloudApi>,
    pub(super) opts: WatchOptions,
    pub(super) metrics: Arc<Metrics>,
}

impl Reconciler {
    /// What a pass asks of [`reconcile`]: the watch's options (the manifest's own `prune:` is
    /// merged by the planner).
    fn reconcile_options(&self) -> reconcile::Options {
        let o = &self.opts;
        let mut opts = reconcile::Options {
            plan: crate::plan::Options { prune: o.prune },
            deletes: reconcile::DeleteBudget {
                max_deletes: o.max_deletes,
                allow_deletes: o.allow_deletes,
            },
            own_key_id: o.own_key_id.clone(),
            targets: o.targets.clone(),
            ..reconcile::Options::default()
        };
        opts.observe.read_concurrency = o.read_concurrency;
        opts.apply.parallelism = o.parallelism;
        opts
    }

    /// Writes a new API key's id and secret to its private file, and logs where (never the
    /// secret).
    fn keep_key(&self, k: &crate::apply::NewKey) {
        match crate::keyfile::write(&self.opts.keys_out, &k.name, &k.secret) {
            Ok(path) => tracing::info!(
                key = %k.name,
                key_id = %k.secret.id,
                file = %path.display(),
                "API key created: id and secret written to its file"
            ),
            Err(e) => tracing::error!(
                key = %k.name,
                key_id = %k.secret.id,
                error = %e,
                "API key created, but its secret could not be written; `fleetform keys rotate NAME` gives it a new one"
            ),
        }
    }

    /// One pass from scratch (see the module docs). Logs what it finds and does.
    pub(super) async fn pass(
        &self,
        path: PathBuf,
        revision: Option<String>,
        checkout: Option<Arc<Checkout>>,
        stop: watch::Receiver<bool>,
        leader: Option<Arc<crate::lease::Guard>>,
    ) -> PassEnd {
        // 1. The manifest: nothing reaches the cloud unless it is valid.
        // In git mode, the checkout is the root no file may leave (the manifest included).
        let desired = match load_manifest(&path, checkout.as_deref()) {
            Ok(d) => d,
            Err(err) => {
                let mut text = err.to_string();
                if let Some(c) = &checkout {
                    // Name files as they are in the repository, not in our cache.
                    text = text.replace(&format!("{}/", c.root.display()), "");
                }
                tracing::error!(
                    manifest = %path.display(),
                    problems = err.diagnostics.len(),
                    "invalid manifest; nothing applied, the cloud keeps its last good state:\n{text}"
                );
                return PassEnd::Done(PassResult::InvalidManifest);
            }
        };

        // HA: the lease is held for the whole time this replica is active.
        if let Some(guard) = leader {
            // Shutdown and a lost lease both stop the pass from starting new writes.
            return self.pass_under(desired, revision, stop, &guard).await;
        }
        // 2–5 without the lease: an in-sync pass (the usual one) writes nothing at all.
        let end = self
            .pass_locked(desired.clone(), revision.clone(), stop.clone(), None)
            .await;
        let PassEnd::NeedsLease(org_id) = end else {
            return end;
        };
        // There is something to write: take the organization's lease (one writer per
        // organization), then observe and plan again under it, so that the plan applied is
        // one nobody else was writing against.
        let guard = match self.take_lease(&org_id).await {
            Ok(g) => g,
            Err(end) => return end,
        };
        let end = self.pass_under(desired, revision, stop, &guard).await;
        guard.release().await;
        end
    }

    /// Steps 2 to 5 of a pass under a held lease: shutdown (`stop`) and a lost lease both stop
    /// it from starting new writes.
    async fn pass_under(
        &self,
        desired: crate::model::Desired,
        revision: Option<String>,
        stop: watch::Receiver<bool>,
        guard: &crate::lease::Guard,
    ) -> PassEnd {
        let (tx, merged) = watch::channel(false);
        let tx = Arc::new(tx);
        let forward = |mut rx: watch::Receiver<bool>| {
            let tx = Arc::clone(&tx);
            tokio::spawn(async move {
                if rx.wait_for(|s| *s).await.is_ok() {
                    let _ = tx.send(true);
                }
            })
        };
        let forwards = [forward(stop), forward(guard.stop.subscribe())];
        let end = match self
            .pass_locked(desired, revision, merged, Some(guard))
            .await
        {
            PassEnd::NeedsLease(_) => PassEnd::Failure {
                result: PassResult::Failed,
                cause: "lease: not held".into(),
            },
            end => end,
        };
        forwards.iter().for_each(tokio::task::JoinHandle::abort);
        end
    }

    /// Takes the lease of the organization `org_id` for a pass; the pass's end when it cannot
    /// (held by another fleetform: retried with backoff).
    async fn take_lease(&self, org_id: &str) -> Result<crate::lease::Guard, PassEnd> {
        crate::lease::Guard::take(Arc::clone(&self.api), org_id, "watch", Duration::ZERO)
            .await
            .map_err(|e| {
                tracing::warn!("nothing applied this pass: {e}");
                PassEnd::Failure {
                    result: PassResult::Failed,
                    // The same problem gives the same cause (no holder ids) for the breaker.
                    cause: match e {
                        crate::lease::LeaseError::Held { .. } => {
                            "lease held by another fleetform".to_string()
                        }
                        crate::lease::LeaseError::Lost(_) => "lease lost".to_string(),
                        crate::lease::LeaseError::Cloud(c) => {
                            format!("lease: {} {}", c.rpc, c.code.as_str())
                        }
                    },
                }
            })
    }

    /// Finishes or resumes a rollout a crash left ([`crate::rollout::recover`]): `Ok(true)`
    /// when it wrote something (the plan must be made again), the pass's end when it must
    /// stop there (it rolled back or stopped one, or could not tell).
    async fn recover_rollout(
        &self,
        org_id: &str,
        opts: &reconcile::Options,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, PassEnd> {
        match crate::rollout::recover(self.api.as_ref(), org_id, &opts.rollout, stop).await {
            Ok(crate::rollout::Recovered::Nothing) => Ok(false),
            Ok(crate::rollout::Recovered::Resumed { parts }) => {
                tracing::info!(
                    parts,
                    "an interrupted rollout's changes are healthy and stay"
                );
                Ok(true)
            }
            Ok(crate::rollout::Recovered::Ended(o)) => {
                tracing::warn!(
                    status = ?o.status,
                    "an unfinished rollout ended by its on_abort: {}",
                    o.message.clone().unwrap_or_default()
                );
                Err(PassEnd::Failure {
                    result: PassResult::Failed,
                    cause: "rollout rolled back".into(),
                })
            }
            Err(e) => {
                tracing::error!("nothing applied: cannot recover the last rollout: {e}");
                Err(PassEnd::Failure {
                    result: PassResult::Failed,
                    cause: format!("rollout recovery: {} {}", e.rpc, e.code.as_str()),
                })
            }
        }
    }

    /// Steps 2 to 5 of a pass. Without the lease (`guard` is `None`) it stops before writing
    /// with [`PassEnd::NeedsLease`].
    async fn pass_locked(
        &self,
        desired: crate::model::Desired,
        revision: Option<String>,
        mut stop: watch::Receiver<bool>,
        guard: Option<&crate::lease::Guard>,
    ) -> PassEnd {
        // 2. Observe (abandoned on shutdown: reads are safe to drop), plan, attribute drift.
        let opts = self.reconcile_options();
        let prepared = tokio::select! {
            p = reconcile::prepare(self.api.as_ref(), &desired, &opts) => p,
            _ = stop.wait_for(|s| *s) => return PassEnd::Interrupted,
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(PrepareError::Observe(err)) => {
                let cause = match &err {
                    crate::cloud::observe::ObserveError::Read { source, .. } => {
                        format!("observe: {} {}", source.rpc, source.code.as_str())
                    }
                    other => format!("observe: {other}"),
                };
                tracing::error!(
                    error = %reconcile::error_chain(&err),
                    "cannot read the cloud; will retry"
                );
                return PassEnd::Failure {
                    result: PassResult::Failed,
                    cause,
                };
            }
            Err(PrepareError::Plan(errors)) => {
                let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                tracing::error!(
                    "cannot make a plan; nothing applied:\n{}",
                    messages.join("\n")
                );
                return PassEnd::Failure {
                    result: PassResult::Failed,
                    cause: format!("plan: {}", messages.join("; ")),
                };
            }
        };
        // Under the lease, a rollout a crash left is finished or resumed first; when that
        // wrote anything, plan again.
        let prepared = match guard {
            None => prepared,
            Some(_) => match self
                .recover_rollout(&prepared.plan().organization_id, &opts, &stop)
                .await
            {
                Ok(false) => prepared,
                Ok(true) => match reconcile::prepare(self.api.as_ref(), &desired, &opts).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!("cannot plan again after a rollout recovery: {e}");
                        return PassEnd::Failure {
                            result: PassResult::Failed,
                            cause: "plan after rollout recovery".into(),
                        };
                    }
                },
                Err(end) => return end,
            },
        };
        for w in &prepared.warnings {
            tracing::warn!("{w}");
        }
        let plan = prepared.plan();
        self.metrics.record_drift(plan);
        // The plan and its drift as events, once per pass: not for the look taken before
        // the lease (the pass plans again under it).
        let announce = || {
            let sink = &self.opts.events;
            sink.emit(|| events::plan(plan));
            for c in &plan.changes {
                sink.emit(|| events::drift(c));
            }
        };
        if plan.is_empty() {
            announce();
            tracing::info!(
                organization = %plan.organization_name,
                "in sync: nothing to change"
            );
            return PassEnd::Done(PassResult::Success);
        }
        let s = plan.summary();
        let summary = format!(
            "{} to create, {} to update, {} to move, {} to delete",
            s.create, s.update, s.moves, s.delete
        );

        // 3. Detect only: report, never write.
        if self.opts.detect_only {
            announce();
            for c in &plan.changes {
                log_drift(c, tracing::Level::WARN);
            }
            tracing::warn!(
                organization = %plan.organization_name,
                changes = plan.changes.len(),
                "drift detected (detect-only: nothing written): {summary}"
            );
            return PassEnd::Done(PassResult::Success);
        }

        // 4. Safety.
        if let Some(why) = prepared.refusals().first() {
            announce();
            tracing::error!("plan refused, nothing written: {why}; {}", why.hint());
            return PassEnd::Failure {
                result: PassResult::Refused,
                cause: format!("refused: {why}"),
            };
        }

        // A manifest whose rollout was aborted is not rolled out again by the daemon.
        if plan.rollout.is_some() {
            match crate::rollout::aborted_before(
                self.api.as_ref(),
                &plan.organization_id,
                &plan.manifest_digest,
            )
            .await
            {
                Ok(None) => {}
                Ok(Some(why)) => {
                    announce();
                    tracing::error!("nothing applied: {why}");
                    return PassEnd::Failure {
                        result: PassResult::Refused,
                        cause: "rollout aborted earlier".into(),
                    };
                }
                Err(e) => {
                    return PassEnd::Failure {
                        result: PassResult::Failed,
                        cause: format!("rollout record: {} {}", e.rpc, e.code.as_str()),
                    };
                }
            }
        }

        // 5. Apply, if the lease is still ours (fencing).
        let Some(g) = guard else {
            return PassEnd::NeedsLease(plan.organization_id.clone());
        };
        announce();
        if let Err(e) = g.fence().await {
            tracing::error!("nothing applied: {e}");
            return PassEnd::Failure {
                result: PassResult::Failed,
                cause: format!("lease: {e}"),
            };
        }
        for c in &plan.changes {
            log_drift(c, tracing::Level::INFO);
        }
        tracing::info!(
            organization = %plan.organization_name,
            changes = plan.changes.len(),
            "applying: {summary}"
        );
        let (engine_tx, engine_rx) = tokio::sync::mpsc::unbounded_channel();
        let logged = plan.clone();
        let (keys_tx, mut keys_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut opts = opts;
        opts.apply.new_keys = Some(keys_tx);
        let (result, ()) = tokio::join!(
            reconcile::apply(
                Arc::clone(&self.api),
                prepared,
                &opts,
                Some(engine_tx),
                stop
            ),
            log_progress(&logged, engine_rx, &self.opts.events),
        );
        drop(opts);
        while let Ok(k) = keys_rx.try_recv() {
            self.keep_key(&k);
        }
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                let detail = match &e {
                    ApplyError::Stale(stale) => stale
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => reconcile::error_chain(other),
                };
                tracing::error!("nothing applied: {e}: {detail}");
                return PassEnd::Failure {
                    result: PassResult::Failed,
                    cause: match e {
                        ApplyError::Stale(_) => "apply: stale plan".to_string(),
                        ApplyError::Refused(_) => "refused".to_string(),
                        ApplyError::Check(c) => format!("check: {} {}", c.rpc, c.code.as_str()),
                    },
                };
            }
        };
        self.metrics.record_applied(&report);
        self.opts.events.emit(|| events::summary(Some(&report)));
        let first_failure = report.results.iter().find_map(|r| match r.outcome {
            Outcome::Failed { .. } | Outcome::Conflict { .. } => Some(format!(
                "apply: {} {} {}",
                r.action.mark(),
                r.kind.as_str(),
                r.path
            )),
            _ => None,
        });
        let (applied, failed, skipped) = (report.applied(), report.failed(), report.skipped());
        if report.interrupted {
            tracing::info!(
                applied,
                failed,
                skipped,
                "pass interrupted by shutdown or a lost lease: {applied} applied, {failed} failed, {skipped} not started or skipped"
            );
            return PassEnd::Interrupted;
        }
        if report.is_success() {
            match &revision {
                Some(commit) => tracing::info!(
                    commit = %commit,
                    applied,
                    "applied commit {commit}: {applied} change(s)"
                ),
                None => tracing::info!(applied, "applied {applied} change(s)"),
            }
            PassEnd::Done(PassResult::Success)
        } else {
            tracing::error!(
                applied,
                failed,
                skipped,
                "apply finished with errors: {applied} applied, {failed} failed, {skipped} skipped"
            );
            PassEnd::Failure {
                result: PassResult::Failed,
                cause: first_failure.unwrap_or_else(|| "apply: changes skipped".into()),
            }
        }
    }
}

/// Logs one change of a pass's plan as drift (detect-only: a warning; before applying:
/// info), with who last changed a drifted part in the cloud and when, when the part history
/// says (`last_changed_by`, `last_changed_at`).
fn log_drift(c: &Change, level: tracing::Level) {
    let (action, kind) = (c.action.mark(), c.kind.as_str());
    let who = c.attribution.as_ref().and_then(|a| a.who.as_deref());
    let when = c.attribution.as_ref().and_then(|a| a.when);
    macro_rules! drift {
        ($lvl:ident) => {
            match (who, when) {
                (Some(who), when) => {
                    let when = when.map(|t| t.to_string()).unwrap_or_default();
                    tracing::$lvl!(
                        action,
                        kind,
                        path = %c.path,
                        reason = %c.reason,
                        last_changed_by = who,
                        last_changed_at = %when,
                        "drift: {action} {kind} {}: {}; last changed in the cloud by {who} at {when}",
                        c.path,
                        c.reason
                    )
                }
                (None, _) => tracing::$lvl!(
                    action,
                    kind,
                    path = %c.path,
                    reason = %c.reason,
                    "drift: {action} {kind} {}: {}",
                    c.path,
                    c.reason
                ),
            }
        };
    }
    if level == tracing::Level::WARN {
        drift!(warn);
    } else {
        drift!(info);
    }
}

/// Logs each change as the apply engine finishes it (the engine never logs or prints), and
/// sends each start and end to `sink`. Returns when the engine drops its sender, i.e. when
/// apply returns.
async fn log_progress(
    plan: &Plan,
    mut engine: tokio::sync::mpsc::UnboundedReceiver<apply::Event>,
    sink: &EventSink,
) {
    while let Some(event) = engine.recv().await {
        let (id, outcome) = match event {
            apply::Event::Started { id } => {
                if let Some(c) = plan.change(&id) {
                    sink.emit(|| events::change(c, None));
                }
                continue;
            }
            apply::Event::Finished { id, outcome } => (id, outcome),
        };
        let Some(c) = plan.change(&id) else { continue };
        let what = format!("{} {} {}", c.action.mark(), c.kind.as_str(), c.path);
        let outcome = reconcile::named_blocker(plan, outcome);
        sink.emit(|| events::change(c, Some(&outcome)));
        match outcome {
            Outcome::Applied => tracing::info!("applied  {what}"),
            Outcome::Failed { cause } | Outcome::Conflict { cause } => {
                tracing::warn!("failed   {what}: {cause}");
            }
            Outcome::Skipped { because } => {
                tracing::warn!("skipped  {what} (it needs {because}, which did not apply)");
            }
            Outcome::NotStarted => tracing::info!("not started  {what}"),
        }
    }
}
