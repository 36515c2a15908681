//! A rollout left by a process that died (kill -9, a lost host): what the next `apply` does
//! with it before planning, and what `fleetform rollout status` reads.
//!
//! - **Rolling back, or asked to abort** (`fleetform rollout abort`): every part the rollout
//!   wrote is restored ([`super::rollback`]) and the apply stops there
//!   ([`Recovered::RolledBack`]), so the change is not rolled out again unasked.
//! - **Running or paused**: the parts it wrote are gated again from now (they must report in
//!   within `online_within` and log at most `max_error_logs` errors since). Unhealthy by
//!   `abort_when` (of the parts written): `on_abort` runs as for a live rollout. Healthy:
//!   config updates stay, tag pins are undone (the tag has not moved), the record says done,
//!   and the apply goes on to plan what is left ([`Recovered::Resumed`]).

use super::execute::{finish_abort, outcome_of, rollback};
use super::health::{self, GateEnd, Watch};
use super::state::{self, ChangedPart, RolloutState, Status};
use super::{RolloutOptions, RolloutOutcome};
use crate::cloud::{CloudApi, CloudError};
use crate::model::Timestamp;

/// What [`recover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// No unfinished rollout.
    Nothing,
    /// An interrupted rollout's changes were healthy: kept (pins undone); `parts` written.
    Resumed { parts: usize },
    /// An unfinished rollout ended by its `on_abort` (rolled back, or stopped).
    Ended(RolloutOutcome),
}

/// How many parts recovery reads at once to learn which the rollout wrote.
const PART_READS_IN_FLIGHT: usize = 32;

/// Finishes or resumes an unfinished rollout of `org_id` (see the module docs). Call it while
/// holding the organization's lease, before planning.
pub async fn recover(
    api: &dyn CloudApi,
    org_id: &str,
    opts: &RolloutOptions,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Recovered, CloudError> {
    let Some(mut record) = state::read_existing(api, org_id).await? else {
        return Ok(Recovered::Nothing);
    };
    let Some(mut st) = record.state.clone().filter(|s| !s.status.is_final()) else {
        return Ok(Recovered::Nothing);
    };
    if st.status == Status::RollingBack || record.controls.abort {
        if st.message.is_none() {
            st.message = Some("aborted by `fleetform rollout abort`".into());
        }
        st.policy.on_abort = if st.status == Status::RollingBack {
            crate::model::OnAbort::Rollback
        } else {
            st.policy.on_abort
        };
        return Ok(Recovered::Ended(
            finish_abort(api, &mut record, &mut st, opts).await,
        ));
    }
    // Interrupted: keep only the parts actually written.
    let now = crate::cloud::observe::bounded(&st.parts, PART_READS_IN_FLIGHT, |p| {
        api.get_part(&p.part_id)
    })
    .await?;
    let written: Vec<ChangedPart> = st
        .parts
        .iter()
        .zip(now)
        .filter(|(p, now)| now.last_updated != p.before)
        .map(|(p, _)| p.clone())
        .collect();
    if !written.is_empty() {
        let watch = Watch { stop, record: None };
        // Health now: the soak already ran (or was cut short) before the interruption.
        let policy = crate::model::RolloutPolicy {
            wait: std::time::Duration::ZERO,
            ..st.policy.clone()
        };
        let result = health::gate(
            api,
            org_id,
            &written,
            Timestamp::now(),
            &policy,
            opts.poll,
            &watch,
        )
        .await?;
        match result.end {
            GateEnd::Passed => {}
            GateEnd::Interrupted => return Ok(Recovered::Ended(outcome_of(&st, None))),
            GateEnd::Aborted(why) => {
                st.message = Some(format!("after an interruption: {why}"));
                return Ok(Recovered::Ended(
                    finish_abort(api, &mut record, &mut st, opts).await,
                ));
            }
            GateEnd::AbortRequested => {
                st.message = Some("aborted by `fleetform rollout abort`".into());
                return Ok(Recovered::Ended(
                    finish_abort(api, &mut record, &mut st, opts).await,
                ));
            }
        }
    }
    // Healthy: pins are undone (the tag never moved), config updates stay.
    let pins: Vec<ChangedPart> = written
        .iter()
        .filter(|p| !p.pins.is_empty())
        .cloned()
        .collect();
    let undone = rollback(api, &pins).await;
    st.status = Status::Done;
    st.message = Some(format!(
        "resumed after an interruption: {} part(s) kept{}",
        written.len() - pins.len(),
        if undone.failed.is_empty() {
            String::new()
        } else {
            format!("; {} pin(s) could not be undone", undone.failed.len())
        }
    ));
    state::save_state(api, &mut record, &st).await?;
    Ok(Recovered::Resumed {
        parts: written.len(),
    })
}

/// The organization's last rollout, and the controls pending (`fleetform rollout status`).
pub async fn status(
    api: &dyn CloudApi,
    org_id: &str,
) -> Result<(Option<RolloutState>, state::Controls), CloudError> {
    Ok(match state::read_existing(api, org_id).await? {
        Some(r) => (r.state, r.controls),
        None => (None, state::Controls::default()),
    })
}

/// Why `watch` must not roll out the manifest `digest` again: its last rollout in `org_id`
/// was aborted (rolled back or stopped). A daemon re-applying it on every resync would roll
/// the same bad change out and back forever; a new manifest, or an explicit
/// `fleetform apply`, rolls out again. `None`: go ahead.
pub async fn aborted_before(
    api: &dyn CloudApi,
    org_id: &str,
    digest: &str,
) -> Result<Option<String>, CloudError> {
    let (state, _) = status(api, org_id).await?;
    Ok(state
        .filter(|s| {
            s.manifest_digest == digest && matches!(s.status, Status::RolledBack | Status::Stopped)
        })
        .map(|s| {
            format!(
                "the last rollout of this manifest was {} ({}); change the manifest, or run `fleetform apply` to roll it out again",
                s.status.as_str(),
                s.message.unwrap_or_default()
            )
        }))
}
