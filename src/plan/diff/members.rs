//! Planning members' roles (`access: members:`): a listed member's roles are made to match
//! its grants in one change (`UpdateMemberRoles`: add, then remove); a member not listed keeps
//! its roles unless `prune`, which removes them all (a delete: it counts against the delete
//! budget). A listed member must already be a member of the organization (invite them
//! first). Guard rails, as plan errors: a plan never removes a role of a member declared with
//! `protect: true`, and never leaves the organization without an owner.

use super::*;
use crate::model::{MemberRef, Role};

impl<'a> Planner<'a> {
    pub(super) fn members(&mut self) {
        let (d, o) = (self.d, self.o);
        let (Some(desired), Some(roles)) = (&d.members, &o.member_roles) else {
            return;
        };
        let mut held: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
        for r in roles {
            held.entry(&r.identity_id).or_default().push(&r.grant);
        }
        let planned = |gs: &[&Grant]| -> BTreeSet<PlannedGrant> {
            gs.iter().map(|g| planned_from_observed(g)).collect()
        };
        let owned = |gs: &[&Grant]| gs.iter().map(|g| (*g).clone()).collect::<Vec<Grant>>();
        // Who holds an organization-wide owner role once the plan is applied.
        let mut owners_after: BTreeSet<String> = held
            .iter()
            .filter(|(_, gs)| gs.iter().any(|g| is_org_owner(&planned_from_observed(g))))
            .map(|(id, _)| id.to_string())
            .collect();
        let had_owner = !owners_after.is_empty();
        let mut declared: HashSet<String> = HashSet::new();
        for dm in desired {
            let (label, member) = match &dm.who {
                MemberRef::Email(e) => (
                    e.clone(),
                    o.members
                        .iter()
                        .find(|m| m.emails.iter().any(|x| x.eq_ignore_ascii_case(e))),
                ),
                MemberRef::UserId(id) => (id.clone(), o.members.iter().find(|m| &m.user_id == id)),
            };
            let Some(member) = member else {
                self.errors.push(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: "is not a member of the organization\n  hint: invite them under `access: invites:` first, or fix the email or user id".into(),
                });
                continue;
            };
            let user = member.user_id.clone();
            if !declared.insert(user.clone()) {
                self.errors.push(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: format!(
                        "names user {user}, who is listed twice (by email and by user id)\n  hint: list each member once"
                    ),
                });
                continue;
            }
            let (want, deps) = self.wanted_grants(&dm.grants);
            let current = held.get(user.as_str()).cloned().unwrap_or_default();
            let have = planned(&current);
            let add: Vec<PlannedGrant> = want.difference(&have).cloned().collect();
            let remove: Vec<PlannedGrant> = have.difference(&want).cloned().collect();
            if want.iter().any(is_org_owner) {
                owners_after.insert(user.clone());
            } else {
                owners_after.remove(&user);
            }
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            if dm.protect && !remove.is_empty() {
                self.errors.push(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: format!(
                        "is declared with `protect: true`, but the plan would remove {}\n  hint: declare the role, or remove `protect` to let it go",
                        self.grant_labels(&remove)
                    ),
                });
                continue;
            }
            let mut c =
                self.roles_change(Action::Update, &label, &user, add, remove, "roles differ");
            c.depends_on = deps;
            c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                &user,
                &owned(&current),
            )));
            self.push(c);
        }
        for (user, current) in &held {
            if declared.contains(*user) {
                continue;
            }
            let label = o
                .members
                .iter()
                .find(|m| m.user_id == *user)
                .and_then(|m| m.emails.first().cloned())
                .unwrap_or_else(|| user.to_string());
            if self.prune {
                owners_after.remove(*user);
                let remove: Vec<PlannedGrant> = planned(current).into_iter().collect();
                let mut c = self.roles_change(
                    Action::Delete,
                    &label,
                    user,
                    vec![],
                    remove,
                    "not in the manifest; prune is on",
                );
                c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                    user,
                    &owned(current),
                )));
                self.push(c);
            } else {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::Member,
                    path: label,
                    id: user.to_string(),
                });
            }
        }
        if had_owner && owners_after.is_empty() {
            self.errors.push(PlanError::Invalid {
                kind: "organization",
                path: o.organization.name.clone(),
                message: "the plan would leave the organization without an owner\n  hint: keep `{role: owner, organization: true}` on at least one member".into(),
            });
        }
    }

    fn roles_change(
        &self,
        action: Action,
        label: &str,
        user: &str,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
        reason: &str,
    ) -> Change {
        let mut c = change(
            action,
            Kind::Member,
            label,
            reason,
            Op::UpdateMemberRoles {
                user_id: user.to_string(),
                add: add.clone(),
                remove: remove.clone(),
            },
        );
        c.resource_id = Some(user.to_string());
        c.details.extend(self.role_details(&add, &remove));
        c
    }
}

fn is_org_owner(g: &PlannedGrant) -> bool {
    g.role == Role::Owner && matches!(g.target, GrantRef::Organization(_))
}
