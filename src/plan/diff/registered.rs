//! Planning the registered kinds ([`crate::kinds`]): each plans through a [`KindPlanner`],
//! which lends it what the planner knows and shares, and nothing it could break.

use super::*;

impl<'a> Planner<'a> {
    /// Each registered kind plans its changes, in the registry's order.
    pub(super) fn registered_kinds(&mut self) {
        for kind in crate::kinds::KINDS {
            kind.plan(&mut KindPlanner { p: self });
        }
    }
}

/// What a registered kind plans with: the desired and observed state, the prune setting, the
/// grant helpers shared by every holder of roles, and the means to record changes, errors and
/// unmanaged resources.
pub struct KindPlanner<'p, 'a> {
    p: &'p mut Planner<'a>,
}

impl<'a> KindPlanner<'_, 'a> {
    pub fn desired(&self) -> &'a Desired {
        self.p.d
    }

    pub fn observed(&self) -> &'a Observed {
        self.p.o
    }

    /// Whether undeclared resources are deleted (the manifest's `prune`, or `--prune`).
    pub fn prune(&self) -> bool {
        self.p.prune
    }

    /// Appends a change (numbered by the planner) and returns its id.
    pub fn push(&mut self, c: Change) -> String {
        self.p.push(c)
    }

    /// Records a problem; a plan with problems is not made.
    pub fn error(&mut self, e: PlanError) {
        self.p.errors.push(e);
    }

    /// Records a resource in the managed scope that the manifest does not declare and the
    /// plan keeps.
    pub fn unmanaged(&mut self, u: Unmanaged) {
        self.p.unmanaged.push(u);
    }

    /// The grants to hold in cloud terms, with the changes creating their targets (to
    /// depend on); a grant whose target is not declared is left out (validation reports it).
    pub fn wanted_grants(
        &self,
        grants: &[crate::model::DesiredGrant],
    ) -> (BTreeSet<PlannedGrant>, Vec<String>) {
        self.p.wanted_grants(grants)
    }

    /// One `role` detail per grant added (after) and removed (before).
    pub fn role_details(&self, add: &[PlannedGrant], remove: &[PlannedGrant]) -> Vec<Detail> {
        self.p.role_details(add, remove)
    }

    /// `owner on organization, operator on location HQ`, for people.
    pub fn grant_labels(&self, gs: &[PlannedGrant]) -> String {
        self.p.grant_labels(gs)
    }
}
