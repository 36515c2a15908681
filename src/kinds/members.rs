//! Members' roles (`access: members:`), a registered kind (see [`crate::kinds`]).
//!
//! Planning: a listed member's roles are made to match its grants in one change
//! (`update_member_roles`: add, then remove); a member not listed keeps its roles unless
//! `prune`, which removes them all (a delete: it counts against the delete budget). A listed
//! member must already be a member of the organization (invite them first). Guard rails, as
//! plan errors: a plan never removes a role of a member declared with `protect: true`, and
//! never leaves the organization without an owner.
//!
//! Apply gives the roles to add first, then takes the others away, so a member changing role
//! holds one at every moment; a saved plan is stale when the member's roles changed since it
//! was made.

use super::{ExecContext, KindOp, KindPlanner, ResourceKind};
use crate::apply::{ExecResult, change_roles};
use crate::cloud::{CloudApi, CloudError, grant_from_authorization, grant_to_authorization};
use crate::manifest::section::{
    EMAIL_PATTERN, Importer, RawGrant, SectionValidator, YPath, export_grant, is_email,
};
use crate::model::{DesiredMember, Grant, MemberRef, MemberRole, Role};
use crate::plan::{
    Action, Change, GrantRef, Kind, PlanError, PlannedGrant, Precondition, Unmanaged,
    grants_fingerprint, planned_grant,
};
use crate::proto::viam::app::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The members kind.
pub struct Members;

/// Its key: in plans, JSON output and `Desired::kinds` / `Observed::kinds`.
const KEY: &str = "member";

impl Kind {
    /// A member's roles; its path is the member's email (or user id).
    #[allow(non_upper_case_globals)]
    pub const Member: Kind = Kind::Registered(KEY);
}

/// A member as written in the manifest: by email or user id, with the roles they should hold.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    protect: bool,
    #[serde(default)]
    grants: Vec<RawGrant>,
}

/// Members' roles on the wire (`ListAuthorizations`, `AddRole`, `RemoveRole`), for any cloud.
#[async_trait::async_trait]
pub trait MemberRoles {
    /// The roles the organization's members hold (`ListAuthorizations`); authorizations
    /// fleetform does not model (such as API keys') are skipped with a warning.
    async fn list_member_roles(&self, org_id: &str) -> Result<Vec<MemberRole>, CloudError>;
    /// Gives member `identity_id` the role `grant` (`AddRole`).
    async fn add_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError>;
    /// Takes the role `grant` from member `identity_id` (`RemoveRole`); the cloud refuses to
    /// remove the organization's last owner.
    async fn remove_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError>;
}

#[async_trait::async_trait]
impl<T: CloudApi + ?Sized> MemberRoles for T {
    async fn list_member_roles(&self, org_id: &str) -> Result<Vec<MemberRole>, CloudError> {
        let request = pb::ListAuthorizationsRequest {
            organization_id: org_id.to_string(),
            resource_ids: vec![],
        };
        let answer: pb::ListAuthorizationsResponse =
            super::call(self, "ListAuthorizations", false, &request).await?;
        Ok(answer
            .authorizations
            .into_iter()
            .filter(|a| a.identity_type.is_empty() || a.identity_type == "user")
            .filter_map(|a| match grant_from_authorization(&a) {
                Ok(grant) => Some(MemberRole {
                    identity_id: a.identity_id,
                    grant,
                }),
                Err(e) => {
                    tracing::warn!(identity = %a.identity_id, error = %e, "skipping authorization");
                    None
                }
            })
            .collect())
    }

    async fn add_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let request = pb::AddRoleRequest {
            authorization: Some(authorization(identity_id, grant, org_id)),
        };
        let _: pb::AddRoleResponse = super::call(self, "AddRole", true, &request).await?;
        Ok(())
    }

    async fn remove_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let request = pb::RemoveRoleRequest {
            authorization: Some(authorization(identity_id, grant, org_id)),
        };
        let _: pb::RemoveRoleResponse = super::call(self, "RemoveRole", true, &request).await?;
        Ok(())
    }
}

/// A member's role as an authorization of `org_id`.
fn authorization(identity_id: &str, g: &Grant, org_id: &str) -> pb::Authorization {
    pb::Authorization {
        identity_id: identity_id.to_string(),
        identity_type: "user".to_string(),
        ..grant_to_authorization(g, org_id)
    }
}

/// The members a manifest declares (`None`: members' roles are not managed).
pub fn declared(d: &crate::model::Desired) -> Option<Vec<DesiredMember>> {
    desired(d.kinds.get(KEY))
}

/// The members' roles an observation read (`None`: not read).
pub fn roles(o: &crate::model::Observed) -> Option<Vec<MemberRole>> {
    observed(o.kinds.get(KEY))
}

/// Its desired form (`None`: not managed), as `validate` or `import` wrote it.
fn desired(value: Option<&Value>) -> Option<Vec<DesiredMember>> {
    value.map(|v| Vec::<DesiredMember>::deserialize(v).expect("members in their desired form"))
}

/// What it observed (`None`: not read): the roles the organization's members hold.
fn observed(value: Option<&Value>) -> Option<Vec<MemberRole>> {
    value.map(|v| Vec::<MemberRole>::deserialize(v).expect("members' roles as observed"))
}

/// Its operations, as written in a plan.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum MemberOp {
    /// Gives member `user_id` the roles `add`, then takes `remove` away.
    UpdateMemberRoles {
        user_id: String,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
    },
}

#[async_trait::async_trait]
impl ResourceKind for Members {
    fn key(&self) -> &'static str {
        KEY
    }

    fn label(&self) -> &'static str {
        "member"
    }

    fn ops(&self) -> &'static [&'static str] {
        &["update_member_roles"]
    }

    fn check_op(&self, body: &Value) -> Result<(), String> {
        KindOp::parse::<MemberOp>(body).map(|_| ())
    }

    fn section(&self) -> &'static str {
        "members"
    }

    fn schema(&self) -> (Value, Vec<(&'static str, Value)>) {
        let section = json!({
            "description": "Members of the organization and the roles each should hold. Absent: members' roles are not managed. A listed member's roles are made to match; members not listed keep their roles unless `prune: true`.",
            "type": "array",
            "items": { "$ref": "#/$defs/member" }
        });
        let member = json!({
            "title": "member",
            "description": "A member of the organization, named by exactly one of `email` or `user_id`.",
            "type": "object",
            "additionalProperties": false,
            "oneOf": [
                { "required": ["email"] },
                { "required": ["user_id"] }
            ],
            "properties": {
                "email": {
                    "description": "One of the member's email addresses (compared case-insensitively).",
                    "type": "string",
                    "format": "email",
                    "pattern": EMAIL_PATTERN
                },
                "user_id": {
                    "description": "The member's user id.",
                    "type": "string",
                    "minLength": 1
                },
                "grants": {
                    "description": "Every role the member should hold, one per target. Roles the member holds on other targets are removed.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/grant" }
                },
                "protect": { "$ref": "#/$defs/protect" }
            }
        });
        (section, vec![("member", member)])
    }

    fn validate(&self, v: &mut SectionValidator<'_, '_>, raw: &Value, list: &YPath) -> Value {
        let members = match Vec::<RawMember>::deserialize(raw) {
            Ok(m) => m,
            Err(e) => {
                v.err(
                    list,
                    format!("members: {e}"),
                    "see the manifest reference for `members`",
                );
                return json!([]);
            }
        };
        let mut seen: HashMap<MemberRef, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let at = list.idx(i);
            let who = match (&m.email, &m.user_id) {
                (Some(email), None) => {
                    if !is_email(email) {
                        v.err(
                            &at.key("email"),
                            format!("`{email}` is not a valid email address"),
                            "write a full address such as `ops@acme.example`",
                        );
                        continue;
                    }
                    MemberRef::Email(email.trim().to_ascii_lowercase())
                }
                (None, Some(id)) if !id.trim().is_empty() => {
                    MemberRef::UserId(id.trim().to_string())
                }
                (None, Some(_)) => {
                    v.err(
                        &at.key("user_id"),
                        "empty `user_id`",
                        "write the member's user id, or name them by `email:`",
                    );
                    continue;
                }
                (Some(_), Some(_)) => {
                    v.err(
                        &at,
                        "member has both `email` and `user_id`",
                        "name each member once: by `email:` or by `user_id:`",
                    );
                    continue;
                }
                (None, None) => {
                    v.err(
                        &at,
                        "member has neither `email` nor `user_id`",
                        "name the member by `email:` or by `user_id:`",
                    );
                    continue;
                }
            };
            let label = match &who {
                MemberRef::Email(e) | MemberRef::UserId(e) => e.clone(),
            };
            let line = v.line(&at);
            if let Some(first) = seen.get(&who) {
                v.err(
                    &at,
                    format!("duplicate member `{label}` (first at line {first})"),
                    "one entry per member: merge their grants into one entry",
                );
                continue;
            }
            seen.insert(who.clone(), line);
            let grants = v.grants(&m.grants, &at, &label);
            out.push(DesiredMember {
                who,
                grants,
                protect: m.protect,
            });
        }
        json!(out)
    }

    fn export(&self, desired: &Value) -> Value {
        let members = self::desired(Some(desired)).unwrap_or_default();
        let raw: Vec<RawMember> = members
            .iter()
            .map(|m| {
                let (email, user_id) = match &m.who {
                    MemberRef::Email(e) => (Some(e.clone()), None),
                    MemberRef::UserId(id) => (None, Some(id.clone())),
                };
                RawMember {
                    email,
                    user_id,
                    protect: m.protect,
                    grants: m.grants.iter().map(export_grant).collect(),
                }
            })
            .collect();
        json!(raw)
    }

    /// Members with their roles, by email (else user id). A member holding a role on
    /// something the manifest does not declare is left out, and so left alone.
    fn import(&self, i: &mut Importer<'_, '_>) -> Option<Value> {
        let o = i.observed();
        let roles = observed(o.kinds.get(self.key()))?;
        let mut out = vec![];
        for m in &o.members {
            let held: Vec<&Grant> = roles
                .iter()
                .filter(|r| r.identity_id == m.user_id)
                .map(|r| &r.grant)
                .collect();
            let label = format!("member `{}`", m.emails.first().unwrap_or(&m.user_id));
            let Some(grants) = i.declared_grants(&held, &label) else {
                continue;
            };
            let who = match m.emails.first() {
                Some(e) => MemberRef::Email(e.to_lowercase()),
                None => MemberRef::UserId(m.user_id.clone()),
            };
            out.push(DesiredMember {
                who,
                grants,
                protect: false,
            });
        }
        out.sort_by(|a, b| a.who.cmp(&b.who));
        // Declaring `members: []` would manage every member as holding nothing.
        (!out.is_empty()).then(|| json!(out))
    }

    fn needs_members(&self) -> bool {
        true
    }

    fn reads(&self) -> &'static str {
        "the members' roles"
    }

    async fn observe(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        _limit: usize,
    ) -> Result<Value, CloudError> {
        Ok(json!(api.list_member_roles(org_id).await?))
    }

    fn plan(&self, p: &mut KindPlanner<'_, '_>) {
        let o = p.observed();
        let (Some(desired), Some(roles)) = (
            desired(p.desired().kinds.get(self.key())),
            observed(o.kinds.get(self.key())),
        ) else {
            return;
        };
        let mut held: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
        for r in &roles {
            held.entry(&r.identity_id).or_default().push(&r.grant);
        }
        let planned = |gs: &[&Grant]| -> BTreeSet<PlannedGrant> {
            gs.iter().map(|g| planned_grant(g)).collect()
        };
        let owned = |gs: &[&Grant]| gs.iter().map(|g| (*g).clone()).collect::<Vec<Grant>>();
        // Who holds an organization-wide owner role once the plan is applied.
        let mut owners_after: BTreeSet<String> = held
            .iter()
            .filter(|(_, gs)| gs.iter().any(|g| is_org_owner(&planned_grant(g))))
            .map(|(id, _)| id.to_string())
            .collect();
        let had_owner = !owners_after.is_empty();
        let mut declared: HashSet<String> = HashSet::new();
        for dm in &desired {
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
                p.error(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: "is not a member of the organization\n  hint: invite them under `access: invites:` first, or fix the email or user id".into(),
                });
                continue;
            };
            let user = member.user_id.clone();
            if !declared.insert(user.clone()) {
                p.error(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: format!(
                        "names user {user}, who is listed twice (by email and by user id)\n  hint: list each member once"
                    ),
                });
                continue;
            }
            let (want, deps) = p.wanted_grants(&dm.grants);
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
                p.error(PlanError::Invalid {
                    kind: "member",
                    path: label,
                    message: format!(
                        "is declared with `protect: true`, but the plan would remove {}\n  hint: declare the role, or remove `protect` to let it go",
                        p.grant_labels(&remove)
                    ),
                });
                continue;
            }
            let mut c = roles_change(
                p,
                Action::Update,
                &label,
                &user,
                add,
                remove,
                "roles differ",
            );
            c.depends_on = deps;
            c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                &user,
                &owned(&current),
            )));
            p.push(c);
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
            if p.prune() {
                owners_after.remove(*user);
                let remove: Vec<PlannedGrant> = planned(current).into_iter().collect();
                let mut c = roles_change(
                    p,
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
                p.push(c);
            } else {
                p.unmanaged(Unmanaged {
                    kind: Kind::Member,
                    path: label,
                    id: user.to_string(),
                });
            }
        }
        if had_owner && owners_after.is_empty() {
            p.error(PlanError::Invalid {
                kind: "organization",
                path: o.organization.name.clone(),
                message: "the plan would leave the organization without an owner\n  hint: keep `{role: owner, organization: true}` on at least one member".into(),
            });
        }
    }

    async fn execute(&self, cx: &ExecContext<'_>, body: &Value) -> ExecResult {
        let MemberOp::UpdateMemberRoles {
            user_id,
            add,
            remove,
        } = KindOp::parse(body).map_err(crate::apply::ExecError::Other)?;
        let (api, org_id, user_id) = (cx.api, cx.org_id, &user_id);
        change_roles(
            &add,
            &remove,
            cx.resolved,
            |g, adding| async move {
                if adding {
                    api.add_member_role(org_id, user_id, &g).await
                } else {
                    api.remove_member_role(org_id, user_id, &g).await
                }
            },
            |g| async move {
                Ok(api
                    .list_member_roles(org_id)
                    .await?
                    .iter()
                    .any(|m| &m.identity_id == user_id && m.grant == g))
            },
        )
        .await
    }

    async fn stale(
        &self,
        api: &dyn CloudApi,
        org_id: &str,
        change: &Change,
    ) -> Result<Option<String>, CloudError> {
        let Some(Precondition::Fingerprint(fp)) = &change.precondition else {
            return Ok(None);
        };
        let id = change.resource_id.as_deref().unwrap_or_default();
        let roles = match api.list_member_roles(org_id).await {
            Err(e) if e.is_not_found() => {
                return Ok(Some("it was deleted since the plan was made".into()));
            }
            roles => roles?,
        };
        let held: Vec<Grant> = roles
            .into_iter()
            .filter(|m| m.identity_id == id)
            .map(|m| m.grant)
            .collect();
        Ok((&grants_fingerprint(id, &held) != fp)
            .then(|| "its roles changed since the plan was made".into()))
    }
}

fn roles_change(
    p: &KindPlanner<'_, '_>,
    action: Action,
    label: &str,
    user: &str,
    add: Vec<PlannedGrant>,
    remove: Vec<PlannedGrant>,
    reason: &str,
) -> Change {
    let details = p.role_details(&add, &remove);
    let mut c = Change::new(
        action,
        Kind::Member,
        label,
        reason,
        KindOp::op(
            Kind::Member,
            &MemberOp::UpdateMemberRoles {
                user_id: user.to_string(),
                add,
                remove,
            },
        ),
    );
    c.resource_id = Some(user.to_string());
    c.details.extend(details);
    c
}

fn is_org_owner(g: &PlannedGrant) -> bool {
    g.role == Role::Owner && matches!(g.target, GrantRef::Organization(_))
}
