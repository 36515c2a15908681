//! Organizations: the organization itself, its settings, members and invites.

use super::*;

impl Client {
    /// `UpdateOrganization` with whichever fields `req` sets.
    async fn update_organization(
        &self,
        req: pb::UpdateOrganizationRequest,
    ) -> Result<Organization, CloudError> {
        const RPC: &str = "UpdateOrganization";
        let resp = rpc!(
            self,
            Write,
            "UpdateOrganization",
            app.update_organization,
            req
        )
        .await?;
        Ok(convert::organization(required(
            RPC,
            "organization",
            resp.organization,
        )?))
    }

    pub(super) async fn list_organizations(&self) -> Result<Vec<Organization>, CloudError> {
        let req = pb::ListOrganizationsRequest {};
        let resp = rpc!(self, Read, "ListOrganizations", app.list_organizations, req).await?;
        Ok(resp
            .organizations
            .into_iter()
            .map(convert::organization)
            .collect())
    }

    pub(super) async fn get_organization(&self, org_id: &str) -> Result<Organization, CloudError> {
        let req = pb::GetOrganizationRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetOrganization", app.get_organization, req).await?;
        let org = required("GetOrganization", "organization", resp.organization)?;
        Ok(convert::organization(org))
    }

    pub(super) async fn update_organization_settings(
        &self,
        org_id: &str,
        name: Option<&str>,
        public_namespace: Option<&str>,
        region: Option<&str>,
    ) -> Result<Organization, CloudError> {
        self.update_organization(pb::UpdateOrganizationRequest {
            organization_id: org_id.to_string(),
            name: name.map(String::from),
            public_namespace: public_namespace.map(String::from),
            region: region.map(String::from),
            cid: None,
            default_fragments: None,
        })
        .await
    }

    pub(super) async fn namespace_available(&self, namespace: &str) -> Result<bool, CloudError> {
        let req = pb::GetOrganizationNamespaceAvailabilityRequest {
            public_namespace: namespace.to_string(),
            organization_id: String::new(),
        };
        let resp = rpc!(
            self,
            Read,
            "GetOrganizationNamespaceAvailability",
            app.get_organization_namespace_availability,
            req
        )
        .await?;
        Ok(resp.available)
    }

    pub(super) async fn list_members(
        &self,
        org_id: &str,
    ) -> Result<(Vec<Member>, Vec<Invite>), CloudError> {
        let req = pb::ListOrganizationMembersRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(
            self,
            Read,
            "ListOrganizationMembers",
            app.list_organization_members,
            req
        )
        .await?;
        Ok((
            resp.members.into_iter().map(convert::member).collect(),
            resp.invites.into_iter().map(convert::invite).collect(),
        ))
    }

    pub(super) async fn create_invite(
        &self,
        org_id: &str,
        email: &str,
        grants: &[Grant],
        send_email: bool,
    ) -> Result<Invite, CloudError> {
        let req = pb::CreateOrganizationInviteRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
            authorizations: grants_to_proto(grants, org_id),
            send_email_invite: Some(send_email),
        };
        let resp = rpc!(
            self,
            Write,
            "CreateOrganizationInvite",
            app.create_organization_invite,
            req
        )
        .await?;
        let invite = required("CreateOrganizationInvite", "invite", resp.invite)?;
        Ok(convert::invite(invite))
    }

    pub(super) async fn update_invite_grants(
        &self,
        org_id: &str,
        email: &str,
        add: &[Grant],
        remove: &[Grant],
    ) -> Result<Invite, CloudError> {
        let req = pb::UpdateOrganizationInviteAuthorizationsRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
            add_authorizations: grants_to_proto(add, org_id),
            remove_authorizations: grants_to_proto(remove, org_id),
        };
        let resp = rpc!(
            self,
            Write,
            "UpdateOrganizationInviteAuthorizations",
            app.update_organization_invite_authorizations,
            req
        )
        .await?;
        let invite = required(
            "UpdateOrganizationInviteAuthorizations",
            "invite",
            resp.invite,
        )?;
        Ok(convert::invite(invite))
    }

    pub(super) async fn delete_invite(&self, org_id: &str, email: &str) -> Result<(), CloudError> {
        let req = pb::DeleteOrganizationInviteRequest {
            organization_id: org_id.to_string(),
            email: email.to_string(),
        };
        rpc!(
            self,
            Write,
            "DeleteOrganizationInvite",
            app.delete_organization_invite,
            req
        )
        .await?;
        Ok(())
    }

    pub(super) async fn update_organization_default_fragments(
        &self,
        org_id: &str,
        fragments: &[FragmentImport],
    ) -> Result<Organization, CloudError> {
        const RPC: &str = "UpdateOrganization";
        let fragments = fragments
            .iter()
            .map(convert::fragment_import_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(RPC, e))?;
        self.update_organization(pb::UpdateOrganizationRequest {
            organization_id: org_id.to_string(),
            name: None,
            public_namespace: None,
            region: None,
            cid: None,
            default_fragments: Some(pb::FragmentImportList { fragments }),
        })
        .await
    }
}
