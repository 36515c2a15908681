//! The AppService handlers for the roles of organization members: list, add, remove, change.
//!
//! The caller's organization only; the identity must be a member of it (`NOT_FOUND`), the
//! resource must exist in it, and the organization always keeps an owner: a removal or change
//! that would leave none is `FAILED_PRECONDITION`.
//!
//! `AddRole` and `RemoveRole` also take an API key's roles (`identity_type: "api-key"`, the
//! key id as `identity_id`), which is how a key's authorizations change without a new
//! secret; the organization keeps a key that owns it. `ListAuthorizations` lists members'
//! roles only (a key's roles are in `ListKeys`).

use super::*;

/// The member and the validated role of an authorization in the caller's organization.
fn member_role<'a>(
    db: &rusqlite::Connection,
    org_id: &str,
    a: &'a pb::Authorization,
) -> R<(&'a str, store::AuthKey)> {
    if !a.identity_type.is_empty() && a.identity_type != "user" {
        return Err(Status::invalid_argument(format!(
            "identity_type {:?}: the local cloud keeps roles of members (\"user\") only",
            a.identity_type
        )));
    }
    let key = store::validate_auth(db, org_id, a)?;
    let who = store::member_id(db, org_id, &a.identity_id)?;
    Ok((who, key))
}

fn required_auth<'a>(field: &str, a: &'a Option<pb::Authorization>) -> R<&'a pb::Authorization> {
    a.as_ref()
        .ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}

pub(super) async fn list_authorizations(
    svc: &AppService,
    req: Request<pb::ListAuthorizationsRequest>,
) -> Res<pb::ListAuthorizationsResponse> {
    read(svc, req, |db, who, r| {
        let org = store::caller_org(db, who, &r.organization_id, "organization_id")?;
        Ok(pb::ListAuthorizationsResponse {
            authorizations: store::member_roles(db, &org.id, &r.resource_ids)?,
        })
    })
    .await
}

/// `Some((key id, role))` for an authorization of an API key of the caller's organization.
fn key_role(
    tx: &rusqlite::Transaction,
    org_id: &str,
    a: &pb::Authorization,
) -> R<Option<(String, store::AuthKey)>> {
    if a.identity_type != "api-key" {
        return Ok(None);
    }
    let key = store::key_in(tx, org_id, &a.identity_id)?;
    Ok(Some((key.id, store::validate_auth(tx, org_id, a)?)))
}

pub(super) async fn add_role(
    svc: &AppService,
    req: Request<pb::AddRoleRequest>,
) -> Res<pb::AddRoleResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("changing members' roles")?;
        let a = required_auth("authorization", &r.authorization)?;
        if let Some((id, grant)) = key_role(tx, &who.org_id, a)? {
            store::add_key_role(tx, &id, &grant)?;
            return Ok(pb::AddRoleResponse {});
        }
        let (member, key) = member_role(tx, &who.org_id, a)?;
        store::add_member_role(tx, &who.org_id, member, &key)?;
        Ok(pb::AddRoleResponse {})
    })
    .await
}

pub(super) async fn remove_role(
    svc: &AppService,
    req: Request<pb::RemoveRoleRequest>,
) -> Res<pb::RemoveRoleResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("changing members' roles")?;
        let a = required_auth("authorization", &r.authorization)?;
        if let Some((id, grant)) = key_role(tx, &who.org_id, a)? {
            store::remove_key_role(tx, &who.org_id, &id, &grant)?;
            return Ok(pb::RemoveRoleResponse {});
        }
        let (member, key) = member_role(tx, &who.org_id, a)?;
        store::remove_member_role(tx, &who.org_id, member, &key)?;
        store::check_an_owner_remains(tx, &who.org_id)?;
        Ok(pb::RemoveRoleResponse {})
    })
    .await
}

pub(super) async fn change_role(
    svc: &AppService,
    req: Request<pb::ChangeRoleRequest>,
) -> Res<pb::ChangeRoleResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("changing members' roles")?;
        let old = required_auth("old_authorization", &r.old_authorization)?;
        let new = required_auth("new_authorization", &r.new_authorization)?;
        let (old_member, old_key) = member_role(tx, &who.org_id, old)?;
        let (new_member, new_key) = member_role(tx, &who.org_id, new)?;
        store::remove_member_role(tx, &who.org_id, old_member, &old_key)?;
        store::add_member_role(tx, &who.org_id, new_member, &new_key)?;
        store::check_an_owner_remains(tx, &who.org_id)?;
        Ok(pb::ChangeRoleResponse {})
    })
    .await
}
