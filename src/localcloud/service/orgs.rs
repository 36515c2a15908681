//! The AppService handlers for organizations, members and invites.

use super::*;

pub(super) async fn list_organizations(
    svc: &AppService,
    req: Request<pb::ListOrganizationsRequest>,
) -> Res<pb::ListOrganizationsResponse> {
    read(svc, req, |db, who, _| {
        Ok(pb::ListOrganizationsResponse {
            organizations: store::org(db, &who.org_id)?
                .iter()
                .map(store::OrgRow::to_pb)
                .collect(),
        })
    })
    .await
}

pub(super) async fn get_organization(
    svc: &AppService,
    req: Request<pb::GetOrganizationRequest>,
) -> Res<pb::GetOrganizationResponse> {
    read(svc, req, |db, who, r| {
        let org = store::key_org(db, who, &r.organization_id, "organization_id")?;
        Ok(pb::GetOrganizationResponse {
            organization: Some(org.to_pb()),
        })
    })
    .await
}

pub(super) async fn update_organization(
    svc: &AppService,
    req: Request<pb::UpdateOrganizationRequest>,
) -> Res<pb::UpdateOrganizationResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        who.require_org_owner("administering the organization")?;
        if let Some(name) = r.name.as_deref() {
            let name = require("name", name)?.trim();
            tx.execute("UPDATE orgs SET name = ?2 WHERE id = ?1", rusqlite::params![org.id, name])
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        if let Some(ns) = r.public_namespace.as_deref() {
            let ns = check_namespace(ns)?;
            if org.public_namespace != ns {
                if !org.public_namespace.is_empty() {
                    return Err(Status::failed_precondition(format!(
                        "the organization's public namespace is already set to {:?} and cannot change",
                        org.public_namespace
                    )));
                }
                if store::namespace_taken(tx, ns)? {
                    return Err(Status::already_exists(format!("public namespace {ns:?} is taken")));
                }
                tx.execute(
                    "UPDATE orgs SET public_namespace = ?2 WHERE id = ?1",
                    rusqlite::params![org.id, ns],
                )
                .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
        if r.region.as_deref().is_some_and(|reg| !reg.is_empty() && reg != "local") {
            return Err(Status::invalid_argument("region: the local cloud has only the region \"local\""));
        }
        if r.cid.as_deref().is_some_and(|c| !c.is_empty()) {
            return Err(Status::invalid_argument("cid: the local cloud keeps no CRM ids"));
        }
        if let Some(list) = &r.default_fragments {
            // Each fragment must exist and be readable; versions are stored, not resolved.
            for f in &list.fragments {
                store::fragment_visible(tx, &org.id, &f.fragment_id)?;
            }
            store::set_default_fragments(tx, &org.id, list)?;
        }
        let org = store::org(tx, &org.id)?.ok_or_else(|| Status::internal("organization vanished"))?;
        Ok(pb::UpdateOrganizationResponse { organization: Some(org.to_pb()) })
    })
    .await
}

pub(super) async fn get_organization_namespace_availability(
    svc: &AppService,
    req: Request<pb::GetOrganizationNamespaceAvailabilityRequest>,
) -> Res<pb::GetOrganizationNamespaceAvailabilityResponse> {
    read(svc, req, |db, _, r| {
        let ns = check_namespace(&r.public_namespace)?;
        Ok(pb::GetOrganizationNamespaceAvailabilityResponse {
            available: !store::namespace_taken(db, ns)?,
        })
    })
    .await
}

pub(super) async fn list_organization_members(
    svc: &AppService,
    req: Request<pb::ListOrganizationMembersRequest>,
) -> Res<pb::ListOrganizationMembersResponse> {
    read(svc, req, |db, who, r| {
        let org = store::caller_org(db, who, &r.organization_id, "organization_id")?;
        Ok(pb::ListOrganizationMembersResponse {
            members: store::members(db, &org.id)?,
            invites: store::invites(db, &org.id)?,
            organization_id: org.id,
        })
    })
    .await
}

pub(super) async fn create_organization_invite(
    svc: &AppService,
    req: Request<pb::CreateOrganizationInviteRequest>,
) -> Res<pb::CreateOrganizationInviteResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        who.require_org_owner("administering the organization")?;
        let email = check_email(&r.email)?;
        if store::invite(tx, &org.id, email)?.is_some() {
            return Err(Status::already_exists(format!(
                "an invite for {email} already exists"
            )));
        }
        // As on Viam's cloud: an invite without authorizations makes an owner of the org.
        let auths = if r.authorizations.is_empty() {
            vec![(
                "organization".to_string(),
                org.id.clone(),
                "owner".to_string(),
            )]
        } else {
            r.authorizations
                .iter()
                .map(|a| store::validate_auth(tx, &org.id, a))
                .collect::<R<Vec<_>>>()?
        };
        // The SDKs default `send_email_invite` to true; the local cloud sends no mail and
        // only records the choice.
        store::insert_invite(tx, &org.id, email, r.send_email_invite.unwrap_or(true))?;
        store::replace_invite_auths(tx, &org.id, email, &auths)?;
        Ok(pb::CreateOrganizationInviteResponse {
            invite: store::invite(tx, &org.id, email)?,
        })
    })
    .await
}

pub(super) async fn update_organization_invite_authorizations(
    svc: &AppService,
    req: Request<pb::UpdateOrganizationInviteAuthorizationsRequest>,
) -> Res<pb::UpdateOrganizationInviteAuthorizationsResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        who.require_org_owner("administering the organization")?;
        let email = check_email(&r.email)?;
        if r.add_authorizations.is_empty() && r.remove_authorizations.is_empty() {
            return Err(Status::invalid_argument(
                "add_authorizations and remove_authorizations are both empty",
            ));
        }
        let Some(invite) = store::invite(tx, &org.id, email)? else {
            return Err(Status::not_found(format!("no invite for {email}")));
        };
        let mut current = invite
            .authorizations
            .iter()
            .map(|a| store::validate_auth(tx, &org.id, a))
            .collect::<R<Vec<_>>>()?;
        for a in &r.remove_authorizations {
            let key = store::validate_auth(tx, &org.id, a)?;
            let before = current.len();
            current.retain(|c| c != &key);
            if current.len() == before {
                return Err(Status::not_found(format!(
                    "the invite for {email} has no authorization {} on {} {}",
                    a.authorization_id, a.resource_type, a.resource_id
                )));
            }
        }
        for a in &r.add_authorizations {
            let key = store::validate_auth(tx, &org.id, a)?;
            if !current.contains(&key) {
                current.push(key);
            }
        }
        if current.is_empty() {
            return Err(Status::failed_precondition(format!(
                "the invite for {email} would have no authorizations left; delete the invite instead"
            )));
        }
        store::replace_invite_auths(tx, &org.id, email, &current)?;
        Ok(pb::UpdateOrganizationInviteAuthorizationsResponse { invite: store::invite(tx, &org.id, email)? })
    })
    .await
}

pub(super) async fn delete_organization_invite(
    svc: &AppService,
    req: Request<pb::DeleteOrganizationInviteRequest>,
) -> Res<pb::DeleteOrganizationInviteResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        who.require_org_owner("administering the organization")?;
        let email = check_email(&r.email)?;
        if !store::delete_invite(tx, &org.id, email)? {
            return Err(Status::not_found(format!("no invite for {email}")));
        }
        Ok(pb::DeleteOrganizationInviteResponse {})
    })
    .await
}
