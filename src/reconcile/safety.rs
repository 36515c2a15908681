//! The safety verdicts on a plan, decided here and nowhere else: the empty-manifest guard and
//! the delete budget. (`protect: true` is enforced by the planner, which cannot make a plan
//! that deletes a protected resource; see the module docs of [`super`].)
//!
//! Deletions are counted as the plan summary counts them: every deleted resource, not the
//! temporary steps of swaps and rotations.

use crate::model::Desired;
use crate::plan::Plan;

/// Default of [`DeleteBudget::max_deletes`].
pub const DEFAULT_MAX_DELETES: usize = 10;

/// How many deletions one apply may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteBudget {
    /// A plan that deletes more than this is refused unless `allow_deletes` (`--max-deletes`).
    pub max_deletes: usize,
    /// Lift the budget (`--allow-deletes`).
    pub allow_deletes: bool,
}

impl Default for DeleteBudget {
    /// [`DEFAULT_MAX_DELETES`], not lifted.
    fn default() -> Self {
        DeleteBudget {
            max_deletes: DEFAULT_MAX_DELETES,
            allow_deletes: false,
        }
    }
}

/// Why a plan must not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The manifest declares nothing, yet the plan deletes: an empty or truncated manifest
    /// is never used to delete.
    #[error("the manifest declares nothing, and applying it would delete {deletes} resource(s)")]
    EmptyManifest { deletes: usize },
    /// More deletions than the budget allows.
    #[error(
        "the plan deletes {deletes} resources, more than the budget of {max_deletes} (--max-deletes)"
    )]
    DeleteBudget { deletes: usize, max_deletes: usize },
}

impl Refusal {
    /// What to do about it, for a `hint:` line.
    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::EmptyManifest { .. } => {
                "this is refused to protect against an empty or truncated manifest; delete them with a manifest that declares what stays"
            }
            Refusal::DeleteBudget { .. } => {
                "review the deletions; if they are intended, pass --allow-deletes"
            }
        }
    }
}

/// The verdicts on `plan`: every reason it must not be applied, empty when it may be.
/// `desired` is the manifest it was made from (`None` for a saved plan).
pub fn verdicts(desired: Option<&Desired>, plan: &Plan, budget: &DeleteBudget) -> Vec<Refusal> {
    let deletes = plan.summary().delete;
    let mut out = vec![];
    if deletes == 0 {
        return out;
    }
    if desired.is_some_and(Desired::is_empty) {
        out.push(Refusal::EmptyManifest { deletes });
    }
    if deletes > budget.max_deletes && !budget.allow_deletes {
        out.push(Refusal::DeleteBudget {
            deletes,
            max_deletes: budget.max_deletes,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredLocation, Identity, OrgRef};
    use crate::plan::{Action, Change, Kind, Op};

    fn plan(deletes: usize, creates: usize) -> Plan {
        let change = |i: usize, action: Action| Change {
            id: format!("c{i}"),
            resource_id: Some(format!("id{i}")),
            ..Change::new(
                action,
                Kind::Location,
                &format!("L{i}"),
                "",
                Op::DeleteLocation {
                    id: format!("id{i}"),
                },
            )
        };
        Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            manifest_digest: String::new(),
            organization_id: "org".into(),
            organization_name: "acme".into(),
            prune: true,
            changes: (0..deletes)
                .map(|i| change(i, Action::Delete))
                .chain((deletes..deletes + creates).map(|i| change(i, Action::Create)))
                .collect(),
            unmanaged: vec![],
            notices: vec![],
            target: None,
            rollout: None,
        }
    }

    fn desired(declares: bool) -> Desired {
        Desired {
            organization: OrgRef::Name("acme".into()),
            rollout: None,
            prune: true,
            locations: if declares {
                vec![DesiredLocation {
                    name: "HQ".into(),
                    path: "HQ".into(),
                    identity: Identity::default(),
                    rotate_secrets_after: None,
                    locations: vec![],
                    machines: vec![],
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }
    }

    #[test]
    fn an_empty_manifest_never_deletes() {
        let d = desired(false);
        assert_eq!(
            verdicts(Some(&d), &plan(1, 0), &DeleteBudget::default()),
            [Refusal::EmptyManifest { deletes: 1 }]
        );
        // Creating from an empty manifest cannot happen, but nothing deleted is no refusal.
        assert!(verdicts(Some(&d), &plan(0, 2), &DeleteBudget::default()).is_empty());
        // A saved plan has no manifest to judge.
        assert!(verdicts(None, &plan(1, 0), &DeleteBudget::default()).is_empty());
        // A manifest that declares only API keys (pruning the others) declares something.
        let keys_only = Desired {
            keys: Some(vec![crate::model::DesiredKey {
                name: "ci".into(),
                moved_from: None,
                grants: vec![],
                protect: false,
            }]),
            ..desired(false)
        };
        assert!(verdicts(Some(&keys_only), &plan(1, 0), &DeleteBudget::default()).is_empty());
    }

    #[test]
    fn the_delete_budget_is_lifted_only_on_request() {
        let d = desired(true);
        let budget = DeleteBudget {
            max_deletes: 2,
            allow_deletes: false,
        };
        assert!(verdicts(Some(&d), &plan(2, 5), &budget).is_empty());
        let refused = verdicts(Some(&d), &plan(3, 0), &budget);
        assert_eq!(
            refused,
            [Refusal::DeleteBudget {
                deletes: 3,
                max_deletes: 2
            }]
        );
        assert!(refused[0].to_string().contains("--max-deletes"));
        assert!(refused[0].hint().contains("--allow-deletes"));
        let lifted = DeleteBudget {
            allow_deletes: true,
            ..budget
        };
        assert!(verdicts(None, &plan(30, 0), &lifted).is_empty());
        // Both at once: an empty manifest beyond the budget.
        assert_eq!(
            verdicts(Some(&desired(false)), &plan(3, 0), &budget).len(),
            2
        );
    }
}
