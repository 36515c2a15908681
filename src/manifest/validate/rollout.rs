//! The `rollout:` policy: wave sizes, the location order, durations, the health gate, the
//! abort condition.
//!
//! Decisions where the issue was silent:
//! - `waves` is cumulative and must not shrink: `[1, 5%, 25%, 100%]`. A count is at least 1,
//!   a percentage 1 % to 100 %. Whatever the list, the last wave takes every machine left
//!   (so `[1, 10%]` is one machine, then 10 %, then the rest in a final wave).
//! - `order` names declared location paths (a parent covers its children), each once.
//! - `abort_when.unhealthy` is a count (at least 1) or a percentage of the wave (1 % to 100 %);
//!   the default is 1. `healthy_when` defaults to `{online_within: 2m, max_error_logs: 0}`,
//!   `wait` to `0s`, `on_abort` to `rollback`.

use super::*;
use crate::manifest::raw::{RawAmount, RawRollout};
use crate::model::{Amount, HealthGate, OnAbort, RolloutPolicy};

const AMOUNT_HINT: &str = "write a number of machines such as `5`, or a percentage such as `25%`";
const DURATION_HINT: &str = "write a number and a unit (ms, s, m, h or d), e.g. `5m` or `30s`";

impl Validator<'_> {
    pub(super) fn rollout(
        &mut self,
        raw: &RawRollout,
        locations: &[DesiredLocation],
    ) -> RolloutPolicy {
        let at = YPath::root().key("rollout");
        if raw.waves.is_empty() {
            self.err(
                &at.key("waves"),
                "`waves` is empty",
                "list the machines per wave, e.g. `waves: [1, 5%, 25%, 100%]`",
            );
        }
        let mut waves = vec![];
        for (i, w) in raw.waves.iter().enumerate() {
            if let Some(a) = self.amount(w, &at.key("waves").idx(i)) {
                waves.push(a);
            }
        }
        for pair in waves.windows(2) {
            let shrinks = match (pair[0], pair[1]) {
                (Amount::Count(a), Amount::Count(b)) | (Amount::Percent(a), Amount::Percent(b)) => {
                    b < a
                }
                _ => false,
            };
            if shrinks {
                self.err(
                    &at.key("waves"),
                    format!("wave `{}` comes after the larger `{}`", pair[1], pair[0]),
                    "waves are cumulative (machines changed so far): list them from small to large",
                );
                break;
            }
        }
        let mut paths = vec![];
        collect_paths(locations, &mut paths);
        let mut order: Vec<String> = vec![];
        for (i, o) in raw.order.iter().enumerate() {
            let oat = at.key("order").idx(i);
            let o = o.trim_matches('/').to_string();
            if !paths.contains(&o) {
                let candidates: Vec<&str> = paths.iter().map(String::as_str).collect();
                let hint = match closest(&o, &candidates) {
                    Some(c) => format!("did you mean `{c}`? `order` lists declared location paths"),
                    None => "`order` lists declared location paths such as `HQ/Assembly`".into(),
                };
                self.err(&oat, format!("location `{o}` is not declared"), hint);
            } else if order.contains(&o) {
                self.err(
                    &oat,
                    format!("location `{o}` is listed twice"),
                    "list each location once",
                );
            } else {
                order.push(o);
            }
        }
        let wait = raw
            .wait
            .as_deref()
            .and_then(|w| self.rollout_duration(w, &at.key("wait"), true))
            .unwrap_or_default();
        let mut healthy_when = HealthGate::default();
        if let Some(h) = &raw.healthy_when {
            let hat = at.key("healthy_when");
            if let Some(d) = h
                .online_within
                .as_deref()
                .and_then(|w| self.rollout_duration(w, &hat.key("online_within"), false))
            {
                healthy_when.online_within = d;
            }
            if let Some(n) = h.max_error_logs {
                match u32::try_from(n) {
                    Ok(n) => healthy_when.max_error_logs = n,
                    Err(_) => self.err(
                        &hat.key("max_error_logs"),
                        format!("`max_error_logs` must be 0 or more, not {n}"),
                        "write how many error log entries a healthy machine may have, e.g. `0`",
                    ),
                }
            }
        }
        let abort_when = raw
            .abort_when
            .as_ref()
            .and_then(|a| self.amount(&a.unhealthy, &at.key("abort_when").key("unhealthy")))
            .unwrap_or(Amount::Count(1));
        let on_abort = match raw.on_abort.as_deref() {
            None | Some("rollback") => OnAbort::Rollback,
            Some("stop") => OnAbort::Stop,
            Some(other) => {
                self.err(
                    &at.key("on_abort"),
                    format!("unknown `on_abort` `{other}`"),
                    "write `rollback` (put changed machines back) or `stop` (leave them, start no more waves)",
                );
                OnAbort::Rollback
            }
        };
        RolloutPolicy {
            waves,
            order,
            wait,
            healthy_when,
            abort_when,
            on_abort,
        }
    }

    /// A count (at least 1) or a percentage (1 % to 100 %).
    fn amount(&mut self, raw: &RawAmount, at: &YPath) -> Option<Amount> {
        let parsed = match raw {
            RawAmount::Count(n) => u32::try_from(*n)
                .ok()
                .filter(|n| *n >= 1)
                .map(Amount::Count),
            RawAmount::Text(t) => match t.trim().strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .map(Amount::Percent),
                None => t
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(Amount::Count),
            },
        };
        if parsed.is_none() {
            let shown = match raw {
                RawAmount::Count(n) => n.to_string(),
                RawAmount::Text(t) => t.clone(),
            };
            self.err(
                at,
                format!(
                    "`{shown}` is not a machine count (1 or more) or a percentage (1% to 100%)"
                ),
                AMOUNT_HINT,
            );
        }
        parsed
    }

    fn rollout_duration(
        &mut self,
        text: &str,
        at: &YPath,
        zero_ok: bool,
    ) -> Option<std::time::Duration> {
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.err(at, "this duration must be longer than zero", DURATION_HINT);
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err(at, format!("bad duration: {e}"), DURATION_HINT);
                None
            }
        }
    }
}

fn collect_paths(locations: &[DesiredLocation], out: &mut Vec<String>) {
    for l in locations {
        out.push(l.path.clone());
        collect_paths(&l.locations, out);
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::parse_str;
    use crate::model::{Amount, OnAbort};
    use std::path::Path;
    use std::time::Duration;

    const FLEET: &str = "version: 1\norganization: a\nlocations:\n  - name: HQ\n    locations: [{name: Lab}]\n  - name: Factory\n";

    fn parse(rollout: &str) -> Result<crate::model::Desired, Vec<String>> {
        parse_str(
            &format!("{FLEET}rollout:\n{rollout}"),
            Path::new("m.yaml"),
            &|_| None,
        )
        .map_err(|e| e.diagnostics.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_issue_example_parses_with_every_field() {
        let d = parse(
            "  waves: [1, 5%, 25%, 100%]\n  order: [HQ/Lab, Factory]\n  wait: 5m\n  healthy_when: { online_within: 2m, max_error_logs: 3 }\n  abort_when: { unhealthy: 10% }\n  on_abort: stop\n",
        )
        .unwrap();
        let r = d.rollout.unwrap();
        assert_eq!(
            r.waves,
            [
                Amount::Count(1),
                Amount::Percent(5),
                Amount::Percent(25),
                Amount::Percent(100)
            ]
        );
        assert_eq!(r.order, ["HQ/Lab", "Factory"]);
        assert_eq!(r.wait, Duration::from_secs(300));
        assert_eq!(r.healthy_when.online_within, Duration::from_secs(120));
        assert_eq!(r.healthy_when.max_error_logs, 3);
        assert_eq!(r.abort_when, Amount::Percent(10));
        assert_eq!(r.on_abort, OnAbort::Stop);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let r = parse("  waves: [2]\n").unwrap().rollout.unwrap();
        assert_eq!(r.abort_when, Amount::Count(1));
        assert_eq!(r.on_abort, OnAbort::Rollback);
        assert_eq!(r.wait, Duration::ZERO);
        assert_eq!(r.healthy_when, crate::model::HealthGate::default());
    }

    #[test]
    fn mistakes_are_reported_where_they_are() {
        let e = parse(
            "  waves: [0, 150%, 25%, 5%]\n  order: [HQ/Lb]\n  on_abort: retry\n  wait: soon\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains("m.yaml:8:11: error: `0` is not a machine count"),
            "{all}"
        );
        assert!(all.contains("`150%` is not a machine count"), "{all}");
        assert!(
            all.contains("wave `5%` comes after the larger `25%`"),
            "{all}"
        );
        assert!(
            all.contains("location `HQ/Lb` is not declared")
                && all.contains("did you mean `HQ/Lab`"),
            "{all}"
        );
        assert!(all.contains("unknown `on_abort` `retry`"), "{all}");
        assert!(all.contains("bad duration"), "{all}");
        let e = parse("  waves: [1]\n  healthy_when: {online_within: 0s}\n").unwrap_err();
        assert!(e[0].contains("longer than zero"), "{e:?}");
        let e = parse("  waves: [1]\n  speed: 3\n").unwrap_err();
        assert!(e[0].contains("unknown key `speed`"), "{e:?}");
    }

    #[test]
    fn amounts_of_a_whole_round_up() {
        assert_eq!(Amount::Percent(5).of(10), 1);
        assert_eq!(Amount::Percent(25).of(10), 3);
        assert_eq!(Amount::Percent(100).of(7), 7);
        assert_eq!(Amount::Count(3).of(2), 3);
    }
}
