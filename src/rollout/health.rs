//! The health gate of one wave: are the machines it changed healthy?
//!
//! A part is **healthy** after its change when it reaches the cloud (online, with a last
//! access after the write) within `online_within`, and has at most `max_error_logs` error
//! log entries since the write; it turns **unhealthy** when it does not come online in time,
//! has more error logs, or goes offline after coming online.
//!
//! The gate polls, every [`RolloutOptions::poll`](super::RolloutOptions::poll), with a bounded
//! number of calls: one `ListMachineSummaries` for the wave's locations per poll, and the
//! error logs (`GetRobotPartLogs`, levels `error`, since the write, at most one more entry
//! than allowed) of a part once when it first comes online and once more at the end of the
//! soak (`wait`) — never per part per poll; those reads run 16 at a time.
//!
//! The wave **passes** once every part has come online (or been judged unhealthy) and the
//! soak has passed with the abort threshold never reached; it **aborts** as soon as the
//! number of unhealthy parts reaches `abort_when` (a count, or a percentage of the wave,
//! rounded up, at least 1).
//!
//! "After the write" compares the cloud's `last_access` with this host's clock when the
//! wave's writes had all returned, so a part counts only when it reported in after its new
//! config was stored. A clock far ahead of the cloud's would make parts look late: keep
//! clocks in sync (NTP), or give `online_within` room.

use super::state::ChangedPart;
use crate::cloud::{CloudApi, CloudError};
use crate::model::{LogQuery, OnlineState, RolloutPolicy, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// How a wave's gate ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateEnd {
    /// Every part healthy, or fewer unhealthy than the abort threshold.
    Passed,
    /// The abort threshold was reached; the reason names the parts.
    Aborted(String),
    /// `fleetform rollout abort` asked for it.
    AbortRequested,
    /// The stop signal was raised (Ctrl-C, a lost lease): the gate was left undecided.
    Interrupted,
}

/// What the gate found: its end, and each part's verdict (`healthy`, or why not).
#[derive(Clone, Debug)]
pub struct GateResult {
    pub end: GateEnd,
    pub verdicts: BTreeMap<String, String>,
}

/// What ends a gate early, looked at between polls.
pub struct Watch<'a> {
    /// Raised: the gate ends undecided ([`GateEnd::Interrupted`]).
    pub stop: &'a tokio::sync::watch::Receiver<bool>,
    /// The rollout record's fragment, whose controls are read each poll (one call): an abort
    /// request ends the gate ([`GateEnd::AbortRequested`]). `None`: not read.
    pub record: Option<&'a str>,
}

impl Watch<'_> {
    async fn check(&self, api: &dyn CloudApi) -> Option<GateEnd> {
        if *self.stop.borrow() {
            return Some(GateEnd::Interrupted);
        }
        let fid = self.record?;
        match super::state::reread(api, fid).await {
            Ok(r) if r.controls.abort => Some(GateEnd::AbortRequested),
            _ => None,
        }
    }
}

/// What is known of one part during the gate.
#[derive(Default)]
struct Seen {
    online: bool,
    unhealthy: Option<String>,
}

/// Gates `parts`, written at `since` (see the module docs).
pub async fn gate(
    api: &dyn CloudApi,
    org_id: &str,
    parts: &[ChangedPart],
    since: Timestamp,
    policy: &RolloutPolicy,
    poll: Duration,
    watch: &Watch<'_>,
) -> Result<GateResult, CloudError> {
    let threshold = policy.abort_when.of(parts.len()).max(1);
    let gate = &policy.healthy_when;
    let mut locations: Vec<String> = parts.iter().map(|p| p.location_id.clone()).collect();
    locations.sort();
    locations.dedup();
    let started = tokio::time::Instant::now();
    let mut seen: BTreeMap<&str, Seen> = parts
        .iter()
        .map(|p| (p.part_id.as_str(), Seen::default()))
        .collect();
    let mut soak_from: Option<tokio::time::Instant> = None;
    let path_of = |id: &str| {
        parts
            .iter()
            .find(|p| p.part_id == id)
            .map_or(id.to_string(), |p| p.path.clone())
    };
    let result = |end: GateEnd, seen: &BTreeMap<&str, Seen>| GateResult {
        end,
        verdicts: seen
            .iter()
            .map(|(id, s)| {
                let v = match (&s.unhealthy, s.online) {
                    (Some(why), _) => why.clone(),
                    (None, true) => "healthy".to_string(),
                    (None, false) => "not yet online".to_string(),
                };
                (id.to_string(), v)
            })
            .collect(),
    };
    loop {
        let summaries = match api.machine_summaries(org_id, &locations).await {
            Ok(s) => Some(s),
            // A poll the cloud could not answer tells nothing; the next one may.
            Err(e) if e.is_transient() => None,
            Err(e) => return Err(e),
        };
        let elapsed = started.elapsed();
        if let Some(summaries) = summaries {
            let mut came_online: Vec<String> = vec![];
            for (id, s) in seen.iter_mut().filter(|(_, s)| s.unhealthy.is_none()) {
                let summary = summaries.iter().find(|p| p.part_id == *id);
                let online = summary.is_some_and(|p| {
                    p.online_state == OnlineState::Online
                        && p.last_access.is_some_and(|t| t > since)
                });
                if s.online && !online {
                    s.unhealthy = Some("went offline after its change".into());
                } else if !s.online && online {
                    s.online = true;
                    came_online.push(id.to_string());
                } else if !s.online && elapsed > gate.online_within {
                    s.unhealthy = Some(format!(
                        "not online within {} of its change",
                        crate::rollout::duration_text(gate.online_within)
                    ));
                }
            }
            for (id, verdict) in logs_of(api, &came_online, since, gate.max_error_logs).await? {
                if let Some(s) = seen.get_mut(id.as_str()) {
                    s.unhealthy = verdict;
                }
            }
        }
        let unhealthy: Vec<String> = seen
            .iter()
            .filter(|(_, s)| s.unhealthy.is_some())
            .map(|(id, s)| format!("{} ({})", path_of(id), s.unhealthy.as_deref().unwrap_or("")))
            .collect();
        if unhealthy.len() >= threshold {
            let reason = format!("{} unhealthy: {}", unhealthy.len(), unhealthy.join(", "));
            return Ok(result(GateEnd::Aborted(reason), &seen));
        }
        if soak_from.is_none() && seen.values().all(|s| s.online || s.unhealthy.is_some()) {
            soak_from = Some(tokio::time::Instant::now());
        }
        if let Some(t) = soak_from
            && t.elapsed() >= policy.wait
        {
            if !policy.wait.is_zero() {
                // The end of the soak: errors logged during it count too.
                let healthy: Vec<String> = seen
                    .iter()
                    .filter(|(_, s)| s.unhealthy.is_none())
                    .map(|(id, _)| id.to_string())
                    .collect();
                for (id, verdict) in logs_of(api, &healthy, since, gate.max_error_logs).await? {
                    if let Some(s) = seen.get_mut(id.as_str()) {
                        s.unhealthy = verdict;
                    }
                }
                let n = seen.values().filter(|s| s.unhealthy.is_some()).count();
                if n >= threshold {
                    let names: Vec<String> = seen
                        .iter()
                        .filter(|(_, s)| s.unhealthy.is_some())
                        .map(|(id, s)| {
                            format!("{} ({})", path_of(id), s.unhealthy.as_deref().unwrap_or(""))
                        })
                        .collect();
                    return Ok(result(
                        GateEnd::Aborted(format!("{n} unhealthy: {}", names.join(", "))),
                        &seen,
                    ));
                }
            }
            return Ok(result(GateEnd::Passed, &seen));
        }
        if let Some(end) = watch.check(api).await {
            return Ok(result(end, &seen));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Log reads in flight at once.
const LOG_READS_IN_FLIGHT: usize = 16;

/// [`error_logs`] of each of `ids`, [`LOG_READS_IN_FLIGHT`] at a time.
async fn logs_of<'a>(
    api: &'a dyn CloudApi,
    ids: &'a [String],
    since: Timestamp,
    max: u32,
) -> Result<Vec<(&'a String, Option<String>)>, CloudError> {
    crate::cloud::observe::bounded(ids, LOG_READS_IN_FLIGHT, move |id| async move {
        Ok((id, error_logs(api, id, since, max).await?))
    })
    .await
}

/// `Some(reason)` when part `id` has more than `max` error log entries since `since`.
async fn error_logs(
    api: &dyn CloudApi,
    id: &str,
    since: Timestamp,
    max: u32,
) -> Result<Option<String>, CloudError> {
    let query = LogQuery {
        levels: vec!["error".into()],
        start: Some(since),
        limit: Some(i64::from(max) + 1),
        ..LogQuery::default()
    };
    let page = api.part_logs(id, &query).await?;
    let n = page.entries.len();
    Ok((n > max as usize).then(|| {
        let more = if n > max as usize && page.next_page_token.is_some() {
            " or more"
        } else {
            ""
        };
        format!("{n}{more} error log entries since its change (at most {max} allowed)")
    }))
}
