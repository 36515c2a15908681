//! The rollout part of a plan: which machines each wave changes, and the gates between waves.
//!
//! Computed by [`crate::rollout::waves`] when the manifest has a `rollout:` policy, carried by
//! the plan (so a saved plan rolls out exactly as shown) and executed by
//! [`crate::rollout::execute`]. Shown by every plan renderer.

use crate::model::RolloutPolicy;
use serde::{Deserialize, Serialize};

/// How the plan's part updates and tag moves reach the fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    pub policy: RolloutPolicy,
    /// The waves in order; none is empty.
    pub waves: Vec<Wave>,
    /// Fragment tag moves rolled out by pinning (their changes run after the last wave).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_moves: Vec<TagMove>,
}

impl RolloutPlan {
    /// Every machine of every wave.
    pub fn machines(&self) -> impl Iterator<Item = &WaveMachine> {
        self.waves.iter().flat_map(|w| w.machines.iter())
    }

    /// The ids of the changes the waves carry out (config updates and tag moves); the rest of
    /// the plan runs before the first wave, or after the last when it depends on them.
    pub fn change_ids(&self) -> impl Iterator<Item = &str> {
        self.machines()
            .flat_map(|m| m.parts.iter())
            .filter_map(|p| p.change.as_deref())
            .chain(self.tag_moves.iter().map(|t| t.change.as_str()))
    }
}

/// One wave: the machines it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    /// 1, 2, …
    pub number: usize,
    pub machines: Vec<WaveMachine>,
}

/// A machine changed in a wave, with the parts that change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaveMachine {
    /// Its path, `HQ/Lab/arm-01`.
    pub path: String,
    pub machine_id: String,
    pub location_id: String,
    pub parts: Vec<WavePart>,
}

/// A part changed in a wave: by a change of the plan (a config update), or pinned to the new
/// revision of a fragment whose tag moves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WavePart {
    pub part_id: String,
    /// Its path, `HQ/Lab/arm-01/arm-01-main`.
    pub path: String,
    /// The id of the plan's change that updates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Indexes into [`RolloutPlan::tag_moves`] of the tags this part imports and is pinned
    /// for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<usize>,
}

/// A fragment tag move rolled out by pinning: each wave's parts that import the fragment at
/// the tag are pinned to the new revision; after the last wave the tag moves and they are
/// unpinned (back to the tag, which now names the same revision).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TagMove {
    /// The `SetFragmentTag` change.
    pub change: String,
    pub fragment_id: String,
    /// `fragment@tag`.
    pub path: String,
    pub tag: String,
    /// The revision the tag moves to; `None`: the fragment's revision once the changes before
    /// the first wave (its own update) are applied.
    pub revision: Option<String>,
}
