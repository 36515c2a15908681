//! The rollout section of a plan (text and Markdown): the gates, then each wave with its
//! machines, at most [`SHOWN_PER_WAVE`] named per wave (`… and 40 more`).

use crate::model::{OnAbort, RolloutPolicy};
use crate::plan::rollout::RolloutPlan;

/// Machines named per wave; the rest are counted.
pub const SHOWN_PER_WAVE: usize = 5;

use crate::rollout::duration_text as duration;

/// The heading: `Rollout: 12 machines in 4 waves` (and the tags moved by pinning).
pub fn heading(r: &RolloutPlan) -> String {
    let n = r.machines().count();
    let mut s = format!(
        "Rollout: {n} machine{} in {} wave{}",
        plural(n),
        r.waves.len(),
        plural(r.waves.len())
    );
    if !r.tag_moves.is_empty() {
        let tags: Vec<&str> = r.tag_moves.iter().map(|t| t.path.as_str()).collect();
        s.push_str(&format!(
            " (tag moves by pinning, tag moved after the last wave: {})",
            tags.join(", ")
        ));
    }
    s
}

/// The gates, one sentence.
pub fn gates(p: &RolloutPolicy) -> String {
    format!(
        "healthy: online within {} of its change, at most {} error log{}; abort a wave at {} unhealthy, then {}; wait {} after each wave",
        duration(p.healthy_when.online_within),
        p.healthy_when.max_error_logs,
        plural(p.healthy_when.max_error_logs as usize),
        p.abort_when,
        match p.on_abort {
            OnAbort::Rollback => "roll back every machine changed",
            OnAbort::Stop => "stop",
        },
        duration(p.wait)
    )
}

/// One line per wave: `wave 2: 4 machines: HQ/a, HQ/b, … and 2 more`.
pub fn wave_lines(r: &RolloutPlan) -> Vec<String> {
    r.waves
        .iter()
        .map(|w| {
            let n = w.machines.len();
            let names: Vec<&str> = w
                .machines
                .iter()
                .take(SHOWN_PER_WAVE)
                .map(|m| m.path.as_str())
                .collect();
            let more = n.saturating_sub(SHOWN_PER_WAVE);
            let mut list = names.join(", ");
            if more > 0 {
                list.push_str(&format!(" … and {more} more"));
            }
            format!("wave {}: {n} machine{}: {list}", w.number, plural(n))
        })
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Amount, HealthGate};
    use crate::plan::rollout::{Wave, WaveMachine};

    #[test]
    fn big_waves_are_truncated_and_gates_spelled_out() {
        let m = |i: usize| WaveMachine {
            path: format!("HQ/m{i:02}"),
            machine_id: format!("id{i}"),
            location_id: "l".into(),
            parts: vec![],
        };
        let r = RolloutPlan {
            policy: RolloutPolicy {
                waves: vec![Amount::Count(1), Amount::Percent(100)],
                order: vec![],
                wait: std::time::Duration::from_secs(300),
                healthy_when: HealthGate::default(),
                abort_when: Amount::Percent(10),
                on_abort: OnAbort::Rollback,
            },
            waves: vec![
                Wave {
                    number: 1,
                    machines: vec![m(0)],
                },
                Wave {
                    number: 2,
                    machines: (1..9).map(m).collect(),
                },
            ],
            tag_moves: vec![],
        };
        assert_eq!(heading(&r), "Rollout: 9 machines in 2 waves");
        assert_eq!(
            wave_lines(&r),
            [
                "wave 1: 1 machine: HQ/m00",
                "wave 2: 8 machines: HQ/m01, HQ/m02, HQ/m03, HQ/m04, HQ/m05 … and 3 more"
            ]
        );
        assert_eq!(
            gates(&r.policy),
            "healthy: online within 2m of its change, at most 0 error logs; abort a wave at 10% unhealthy, then roll back every machine changed; wait 5m after each wave"
        );
    }
}
