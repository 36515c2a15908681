//! The state of a rollout, kept in the cloud so that it survives a crash of the process
//! running it, and so that `fleetform rollout status|pause|resume|abort` can see and steer it
//! from anywhere.
//!
//! # Where it lives
//! A reserved private fragment named [`STATE_FRAGMENT`] in the organization (like the lease,
//! [`crate::lease`]); observation leaves it out and a manifest may not declare it. Its config
//! holds two keys, each written by one side with a compare-and-swap (`last_known_update`):
//! - `fleetform_rollout`: the [`RolloutState`], written by the apply running the rollout
//!   (which holds the organization's lease);
//! - `fleetform_rollout_control`: the [`Controls`] (`pause`, `abort`), written by
//!   `fleetform rollout pause|resume|abort`, which need no lease.
//!
//! Each side re-reads on a conflict and writes its own key over the other's freshest value,
//! so neither ever loses the other's write.
//!
//! # What it records
//! Before a wave writes, its parts are recorded with the `last_updated` each had before
//! (`before`). That is enough to undo the rollout from the cloud's own history: a part's
//! history entry whose old `last_updated` is `before` holds the config (and name) it had
//! before the rollout. A part still at `before` was never written.

use crate::cloud::{CloudApi, CloudError, Code};
use crate::model::{Fragment, RolloutPolicy, Timestamp, Visibility};
use serde::{Deserialize, Serialize};

/// The name of the reserved fragment holding rollout state.
pub const STATE_FRAGMENT: &str = "fleetform-rollout";

const STATE_KEY: &str = "fleetform_rollout";
const CONTROL_KEY: &str = "fleetform_rollout_control";

/// Whether `f` is the rollout state's fragment (and so not part of any fleet).
pub fn is_state(f: &Fragment) -> bool {
    f.name == STATE_FRAGMENT
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waves are being written or gated.
    Running,
    /// Waiting between waves for `fleetform rollout resume`.
    Paused,
    /// Putting the changed machines back.
    RollingBack,
    /// Every wave passed.
    Done,
    /// Aborted and every changed machine is back on its previous config.
    RolledBack,
    /// Aborted with `on_abort: stop`: changed machines were left as they are.
    Stopped,
}

impl Status {
    /// Whether nothing remains to be done for it.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::RolledBack | Status::Stopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::RollingBack => "rolling back",
            Status::Done => "done",
            Status::RolledBack => "rolled back",
            Status::Stopped => "stopped",
        }
    }
}

/// A part the rollout writes (or wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedPart {
    pub part_id: String,
    pub path: String,
    pub machine_path: String,
    pub location_id: String,
    /// The wave that writes it (1, 2, …).
    pub wave: usize,
    /// Its `last_updated` before the rollout wrote it.
    pub before: Option<Timestamp>,
    /// The moved tags (`fragment@tag`) it is pinned for; empty for a config update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
    /// Its health when last judged: `healthy`, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// A rollout, as recorded in the cloud.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// Unique per rollout.
    pub id: String,
    /// The manifest the rollout came from.
    pub manifest_digest: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds of the last change of this record.
    pub updated: i64,
    pub status: Status,
    pub policy: RolloutPolicy,
    /// The wave under way or last finished (0 before the first).
    pub wave: usize,
    /// How many waves passed their gate.
    #[serde(default)]
    pub passed: usize,
    pub waves: usize,
    /// Machines per wave, as planned.
    pub wave_sizes: Vec<usize>,
    /// The fragment tags this rollout moves (`fragment@tag`), by pinning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_moves: Vec<String>,
    pub parts: Vec<ChangedPart>,
    /// Why it was aborted, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Requests to the rollout under way, from `fleetform rollout pause|resume|abort`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    pub pause: bool,
    pub abort: bool,
}

/// The record as read: the state (if any), the controls, and the compare-and-swap token.
#[derive(Clone, Debug)]
pub struct Record {
    pub fragment_id: String,
    pub state: Option<RolloutState>,
    pub controls: Controls,
    version: Option<Timestamp>,
}

/// Of several record fragments (two first runs), the oldest is the record.
fn oldest(mut fs: Vec<Fragment>) -> Option<Fragment> {
    fs.retain(is_state);
    fs.sort_by(|a, b| (a.created_on, &a.id).cmp(&(b.created_on, &b.id)));
    fs.into_iter().next()
}

/// Reads the organization's rollout record without creating it: `None` when no rollout ever
/// ran (for reads such as `fleetform rollout status`).
pub async fn read_existing(api: &dyn CloudApi, org_id: &str) -> Result<Option<Record>, CloudError> {
    Ok(oldest(api.list_fragments(org_id).await?).map(parse))
}

/// Reads the organization's rollout record, creating its fragment (empty) if there is none.
pub async fn read(api: &dyn CloudApi, org_id: &str) -> Result<Record, CloudError> {
    let f = match oldest(api.list_fragments(org_id).await?) {
        Some(f) => f,
        None => {
            api.create_fragment(
                org_id,
                STATE_FRAGMENT,
                &serde_json::json!({}),
                Visibility::Private,
            )
            .await?;
            oldest(api.list_fragments(org_id).await?).ok_or_else(|| {
                CloudError::new("ListFragments", Code::Other, "the rollout record vanished")
            })?
        }
    };
    Ok(parse(f))
}

/// Reads the record again by its fragment id (one call).
pub async fn reread(api: &dyn CloudApi, fragment_id: &str) -> Result<Record, CloudError> {
    Ok(parse(api.get_fragment(fragment_id).await?))
}

fn parse(f: Fragment) -> Record {
    let state = f
        .config
        .get(STATE_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let controls = f
        .config
        .get(CONTROL_KEY)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Record {
        fragment_id: f.id,
        state,
        controls,
        version: f.last_updated,
    }
}

/// How many times a write is tried again after a conflict or a transient error.
const ATTEMPTS: u32 = 20;

/// Writes `record` (its state and controls) if the fragment is still at its version.
async fn write(api: &dyn CloudApi, record: &mut Record) -> Result<(), CloudError> {
    let mut config = serde_json::Map::new();
    if let Some(s) = &record.state {
        config.insert(
            STATE_KEY.into(),
            serde_json::to_value(s)
                .map_err(|e| CloudError::new("UpdateFragment", Code::Other, e.to_string()))?,
        );
    }
    if record.controls != Controls::default() {
        config.insert(
            CONTROL_KEY.into(),
            serde_json::to_value(record.controls).unwrap_or_default(),
        );
    }
    let f = api
        .update_fragment(
            &record.fragment_id,
            STATE_FRAGMENT,
            Some(&serde_json::Value::Object(config)),
            Some(Visibility::Private),
            record.version,
        )
        .await?;
    record.version = f.last_updated;
    Ok(())
}

/// Saves `state` as the rollout state (keeping the freshest controls), and returns the
/// controls read along the way.
pub async fn save_state(
    api: &dyn CloudApi,
    record: &mut Record,
    state: &RolloutState,
) -> Result<Controls, CloudError> {
    let mut state = state.clone();
    state.updated = Timestamp::now().seconds;
    record.state = Some(state.clone());
    let mut attempt = 0;
    loop {
        match write(api, record).await {
            Ok(()) => return Ok(record.controls),
            Err(e)
                if (e.code == Code::FailedPrecondition || e.is_transient())
                    && attempt < ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
                let fresh = reread(api, &record.fragment_id).await?;
                if e.is_transient() && fresh.state.as_ref() == Some(&state) {
                    // The write landed; its answer was lost.
                    *record = fresh;
                    return Ok(record.controls);
                }
                record.controls = fresh.controls;
                record.version = fresh.version;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Applies `change` to the controls (keeping the freshest state), for
/// `fleetform rollout pause|resume|abort`. Returns the record as written.
pub async fn set_controls(
    api: &dyn CloudApi,
    org_id: &str,
    change: impl Fn(&mut Controls),
) -> Result<Record, CloudError> {
    let mut record = read(api, org_id).await?;
    let mut attempt = 0;
    loop {
        change(&mut record.controls);
        match write(api, &mut record).await {
            Ok(()) => return Ok(record),
            Err(e)
                if (e.code == Code::FailedPrecondition || e.is_transient())
                    && attempt < ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
                record = reread(api, &record.fragment_id).await?;
            }
            Err(e) => return Err(e),
        }
    }
}
