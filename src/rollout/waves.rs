//! Computing the waves of a plan (pure): which machines take the change in which wave.
//!
//! - **What rolls out**: the plan's updates of existing parts that write a config (config
//!   changes, fragment import version changes), and moves of existing fragment tags that
//!   machines import. Everything else (creates, renames without a config, fragment edits,
//!   deletes…) runs before the first wave, or after the last when it depends on a wave.
//!   A config update that imports a fragment this same apply creates is not staged either
//!   (the fragment's id exists only once the apply runs): it runs before the first wave.
//! - **Tag moves**: the parts importing the fragment at the moved tag are pinned, wave by
//!   wave, to the revision the tag moves to; after the last wave the tag moves and they are
//!   unpinned. Parts importing the fragment at any other version, or not at all, are never
//!   touched. A part that this plan also reconfigures is not pinned: its own update applies.
//! - **Order**: machines sort by the position of the first `order:` location that holds them
//!   (a location covers its children), machines in no listed location last, then by path. So
//!   the same plan always makes the same waves.
//! - **Sizes**: each wave's amount is cumulative over all `N` machines (a percentage rounds
//!   up); wave `i` takes the machines from the previous wave's total to its own, the last
//!   wave takes the rest, and waves left empty (e.g. `5%` of 10 after `1`) are dropped.

use crate::model::{Observed, RolloutPolicy, location_paths, rules};
use crate::plan::rollout::{RolloutPlan, TagMove, Wave, WaveMachine, WavePart};
use crate::plan::{Action, IdRef, Op, PartRef, Plan};
use std::collections::BTreeMap;

/// The waves of `plan` under `policy`; `None` when nothing in the plan rolls out.
pub fn waves(policy: &RolloutPolicy, plan: &Plan, observed: &Observed) -> Option<RolloutPlan> {
    let loc_paths = location_paths(&observed.locations);
    let machines: BTreeMap<&str, (String, &str)> = observed
        .machines
        .iter()
        .filter_map(|m| {
            let loc = loc_paths.get(&m.location_id)?;
            Some((
                m.id.as_str(),
                (format!("{loc}/{}", m.name), m.location_id.as_str()),
            ))
        })
        .collect();
    let parts: BTreeMap<&str, &crate::model::Part> = observed
        .parts
        .values()
        .flatten()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let mut by_machine: BTreeMap<String, WaveMachine> = BTreeMap::new();
    let mut add = |part: &crate::model::Part, change: Option<String>, pin: Option<usize>| {
        let Some((path, location_id)) = machines.get(part.machine_id.as_str()) else {
            return;
        };
        let m = by_machine
            .entry(part.machine_id.clone())
            .or_insert_with(|| WaveMachine {
                path: path.clone(),
                machine_id: part.machine_id.clone(),
                location_id: location_id.to_string(),
                parts: vec![],
            });
        let slot = match m.parts.iter_mut().position(|p| p.part_id == part.id) {
            Some(i) => &mut m.parts[i],
            None => {
                m.parts.push(WavePart {
                    part_id: part.id.clone(),
                    path: format!("{path}/{}", part.name),
                    change: None,
                    pins: vec![],
                });
                m.parts.last_mut().expect("just pushed")
            }
        };
        if change.is_some() {
            slot.change = change;
        }
        slot.pins.extend(pin);
    };
    // Config updates of existing parts.
    let mut reconfigured = vec![];
    for c in plan.changes.iter().filter(|c| !c.temporary) {
        if let Op::UpdatePart {
            part: PartRef::Existing(id),
            config: Some(cfg),
            ..
        } = &c.op
            && cfg
                .fragments
                .iter()
                .all(|f| matches!(f.fragment, IdRef::Existing(_)))
            && let Some(part) = parts.get(id.as_str())
        {
            add(part, Some(c.id.clone()), None);
            reconfigured.push(id.as_str());
        }
    }
    // Tag moves, rolled out over the parts that import the fragment at the tag.
    let mut tag_moves = vec![];
    for c in plan.changes.iter() {
        let Op::SetFragmentTag {
            fragment: IdRef::Existing(fid),
            tag,
            revision,
        } = &c.op
        else {
            continue;
        };
        if c.action != Action::Update {
            continue;
        }
        let importers: Vec<&crate::model::Part> = parts
            .values()
            .filter(|p| !reconfigured.contains(&p.id.as_str()) && imports_at(&p.config, fid, tag))
            .copied()
            .collect();
        if importers.is_empty() {
            continue;
        }
        let index = tag_moves.len();
        tag_moves.push(TagMove {
            change: c.id.clone(),
            fragment_id: fid.clone(),
            path: c.path.clone(),
            tag: tag.clone(),
            revision: revision.clone(),
        });
        for p in importers {
            add(p, None, Some(index));
        }
    }
    if by_machine.is_empty() {
        return None;
    }
    let rank = |path: &str| order_rank(&policy.order, path);
    let mut all: Vec<WaveMachine> = by_machine.into_values().collect();
    all.sort_by(|a, b| (rank(&a.path), &a.path).cmp(&(rank(&b.path), &b.path)));
    for m in &mut all {
        m.parts.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Some(RolloutPlan {
        policy: policy.clone(),
        waves: split(policy, all),
        tag_moves,
    })
}

/// Where a machine at `path` goes by `order`: the position of the first listed location that
/// holds it (a location holds its children's machines too), after all of them when none does.
fn order_rank(order: &[String], path: &str) -> usize {
    order
        .iter()
        .position(|o| path.starts_with(&format!("{o}/")))
        .unwrap_or(order.len())
}

/// `machines` cut into the policy's waves (see the module docs).
fn split(policy: &RolloutPolicy, machines: Vec<WaveMachine>) -> Vec<Wave> {
    let n = machines.len();
    let mut ends: Vec<usize> = policy.waves.iter().map(|a| a.of(n).min(n)).collect();
    ends.push(n);
    let mut waves = vec![];
    let mut rest = machines.into_iter();
    let mut taken = 0;
    for end in ends {
        if end <= taken {
            continue;
        }
        let machines: Vec<WaveMachine> = rest.by_ref().take(end - taken).collect();
        taken = end;
        waves.push(Wave {
            number: waves.len() + 1,
            machines,
        });
    }
    waves
}

/// Whether `config` imports fragment `fid` at version `tag`.
pub fn imports_at(config: &crate::model::ConfigJson, fid: &str, tag: &str) -> bool {
    config.imports().iter().any(|e| {
        rules::import_id(e) == Some(fid)
            && e.get("version").and_then(serde_json::Value::as_str) == Some(tag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Amount, HealthGate, OnAbort};

    fn policy(waves: Vec<Amount>, order: &[&str]) -> RolloutPolicy {
        RolloutPolicy {
            waves,
            order: order.iter().map(|s| s.to_string()).collect(),
            wait: std::time::Duration::ZERO,
            healthy_when: HealthGate::default(),
            abort_when: Amount::Count(1),
            on_abort: OnAbort::Rollback,
        }
    }

    fn machine(path: &str) -> WaveMachine {
        WaveMachine {
            path: path.into(),
            machine_id: path.into(),
            location_id: String::new(),
            parts: vec![],
        }
    }

    fn sizes(w: &[Wave]) -> Vec<usize> {
        w.iter().map(|w| w.machines.len()).collect()
    }

    #[test]
    fn waves_are_cumulative_and_the_last_takes_the_rest() {
        use Amount::*;
        let ms = |n: usize| {
            (0..n)
                .map(|i| machine(&format!("L/m{i:03}")))
                .collect::<Vec<_>>()
        };
        let p = policy(vec![Count(1), Percent(5), Percent(25), Percent(100)], &[]);
        assert_eq!(sizes(&split(&p, ms(100))), [1, 4, 20, 75]);
        // 5% of 10 rounds up to 1, which wave 1 already took: that wave is dropped.
        assert_eq!(sizes(&split(&p, ms(10))), [1, 2, 7]);
        assert_eq!(sizes(&split(&p, ms(1))), [1]);
        // Fewer listed than needed: a last wave takes the rest.
        assert_eq!(sizes(&split(&policy(vec![Count(2)], &[]), ms(5))), [2, 3]);
        let numbers: Vec<usize> = split(&p, ms(100)).iter().map(|w| w.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
    }

    #[test]
    fn listed_locations_go_first_in_their_order() {
        let order = ["Field-Lab".to_string(), "HQ".to_string()];
        assert_eq!(order_rank(&order, "Field-Lab/arm-1"), 0);
        assert_eq!(
            order_rank(&order, "HQ/Assembly/arm-2"),
            1,
            "a location holds its children"
        );
        assert_eq!(order_rank(&order, "Factory/arm-3"), 2);
        // A name that merely starts the same is another location.
        assert_eq!(order_rank(&order, "HQ-2/arm-4"), 2);
    }

    #[test]
    fn imports_at_a_tag_only_match_that_tag() {
        let c = crate::model::ConfigJson::from_value(
            &serde_json::json!({"fragments": [{"id": "f", "version": "stable"}, "g", {"id": "h", "version": "beta"}]}),
        );
        assert!(imports_at(&c, "f", "stable"));
        assert!(!imports_at(&c, "f", "beta"));
        assert!(!imports_at(&c, "g", "stable"));
        assert!(!imports_at(&c, "h", "stable"));
    }
}
