//! The RPC table: every [`CloudApi`] method as one thin entry — build the request, make the
//! call through `Client::call` (via `rpc!`), convert the response. See the parent module's
//! "How to add an RPC".

use super::Client;
use super::retry::Kind;
use super::transport::{app, robot, status_error};
use crate::cloud::convert::{self, ConvertError};
use crate::cloud::{CloudApi, CloudError, Code, LogStream, ParentChange, RpcObserver};
use crate::model::{
    Fragment, FragmentHistoryEntry, FragmentImport, FragmentTag, FragmentUsage, FragmentVersions,
    Grant, HistoryEntry, Invite, Location, LocationSecret, LogEntry, LogPage, LogQuery, Machine,
    Member, MemberRole, Metadata, MetadataTarget, Organization, Part, Timestamp, Visibility,
};
use crate::proto::viam::app::v1 as pb;
use std::sync::Arc;
use tokio_stream::StreamExt;

fn required<T>(rpc: &'static str, field: &str, value: Option<T>) -> Result<T, CloudError> {
    value.ok_or_else(|| CloudError::new(rpc, Code::Other, format!("response has no {field}")))
}

fn invalid(rpc: &'static str, err: ConvertError) -> CloudError {
    CloudError::new(rpc, Code::InvalidArgument, err.to_string())
}

fn config_struct(
    rpc: &'static str,
    config: &serde_json::Value,
) -> Result<prost_types::Struct, CloudError> {
    convert::struct_from_json(config, "config").map_err(|e| invalid(rpc, e))
}

/// A config as JSON text, exactly as the domain value holds it (key order, integers and floats
/// as written): what `robot_config_json` / `fragment_config_json` carry.
fn config_text(rpc: &'static str, config: &serde_json::Value) -> Result<String, CloudError> {
    if !config.is_object() {
        return Err(invalid(rpc, ConvertError::NotAnObject { what: "config" }));
    }
    serde_json::to_string(config)
        .map_err(|e| CloudError::new(rpc, Code::InvalidArgument, format!("config: {e}")))
}

/// Whether the `Struct` form carries `config` exactly (the same JSON text back): a `Struct` sorts
/// keys and turns every number into a float.
fn struct_is_exact(config: &serde_json::Value, s: &prost_types::Struct) -> bool {
    let back = convert::json_from_struct(Some(s.clone()));
    serde_json::to_string(&back).ok() == serde_json::to_string(config).ok()
}

/// How many fragment-history entries to ask for per page when paging.
const FRAGMENT_HISTORY_PAGE: i64 = 100;

/// `rpc!(self, Read|Write|Stream, "RpcName", app|robot . method, request)`: one RPC through
/// [`Client::call`].
macro_rules! rpc {
    ($self:ident, $kind:ident, $rpc:literal, $client:ident . $method:ident, $req:expr) => {
        $self.call($rpc, Kind::$kind, $req, |channel, request| async move {
            $client(channel).$method(request).await
        })
    };
}

fn grants_to_proto(grants: &[Grant], org_id: &str) -> Vec<pb::Authorization> {
    grants
        .iter()
        .map(|g| convert::grant_to_authorization(g, org_id))
        .collect()
}

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
}

// ---------------------------------------------------------------------------------------------
// CloudApi
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl CloudApi for Client {
    async fn list_organizations(&self) -> Result<Vec<Organization>, CloudError> {
        let req = pb::ListOrganizationsRequest {};
        let resp = rpc!(self, Read, "ListOrganizations", app.list_organizations, req).await?;
        Ok(resp
            .organizations
            .into_iter()
            .map(convert::organization)
            .collect())
    }

    async fn get_organization(&self, org_id: &str) -> Result<Organization, CloudError> {
        let req = pb::GetOrganizationRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetOrganization", app.get_organization, req).await?;
        let org = required("GetOrganization", "organization", resp.organization)?;
        Ok(convert::organization(org))
    }

    async fn update_organization_default_fragments(
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

    async fn update_organization_settings(
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

    async fn namespace_available(&self, namespace: &str) -> Result<bool, CloudError> {
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

    async fn list_members(&self, org_id: &str) -> Result<(Vec<Member>, Vec<Invite>), CloudError> {
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

    async fn create_invite(
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

    async fn update_invite_grants(
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

    async fn delete_invite(&self, org_id: &str, email: &str) -> Result<(), CloudError> {
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

    async fn list_locations(&self, org_id: &str) -> Result<Vec<Location>, CloudError> {
        let req = pb::ListLocationsRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListLocations", app.list_locations, req).await?;
        Ok(resp.locations.into_iter().map(convert::location).collect())
    }

    async fn get_location(&self, location_id: &str) -> Result<Location, CloudError> {
        let req = pb::GetLocationRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetLocation", app.get_location, req).await?;
        let location = required("GetLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn create_location(
        &self,
        org_id: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Location, CloudError> {
        let req = pb::CreateLocationRequest {
            organization_id: org_id.to_string(),
            name: name.to_string(),
            parent_location_id: parent_id.map(str::to_string),
        };
        let resp = rpc!(self, Write, "CreateLocation", app.create_location, req).await?;
        let location = required("CreateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn update_location(
        &self,
        location_id: &str,
        name: Option<&str>,
        parent: ParentChange,
    ) -> Result<Location, CloudError> {
        let parent_location_id = match parent {
            ParentChange::Keep => None,
            ParentChange::Root => Some(String::new()),
            ParentChange::To(id) => Some(id),
        };
        let req = pb::UpdateLocationRequest {
            location_id: location_id.to_string(),
            name: name.map(str::to_string),
            parent_location_id,
            region: None,
        };
        let resp = rpc!(self, Write, "UpdateLocation", app.update_location, req).await?;
        let location = required("UpdateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    async fn delete_location(&self, location_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteLocationRequest {
            location_id: location_id.to_string(),
        };
        rpc!(self, Write, "DeleteLocation", app.delete_location, req).await?;
        Ok(())
    }

    async fn location_secrets(&self, location_id: &str) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::LocationAuthRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "LocationAuth", app.location_auth, req).await?;
        Ok(convert::location_secrets(resp.auth))
    }

    async fn create_location_secret(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::CreateLocationSecretRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "CreateLocationSecret",
            app.create_location_secret,
            req
        )
        .await?;
        Ok(convert::location_secrets(resp.auth))
    }

    async fn delete_location_secret(
        &self,
        location_id: &str,
        secret_id: &str,
    ) -> Result<(), CloudError> {
        let req = pb::DeleteLocationSecretRequest {
            location_id: location_id.to_string(),
            secret_id: secret_id.to_string(),
        };
        rpc!(
            self,
            Write,
            "DeleteLocationSecret",
            app.delete_location_secret,
            req
        )
        .await?;
        Ok(())
    }

    async fn list_machines(&self, location_id: &str) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobots", app.list_robots, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn list_machines_for_org(&self, org_id: &str) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsForOrgRequest {
            org_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobotsForOrg", app.list_robots_for_org, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn list_machines_for_locations(
        &self,
        location_ids: &[String],
    ) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsForLocationsRequest {
            location_ids: location_ids.to_vec(),
        };
        let resp = rpc!(
            self,
            Read,
            "ListRobotsForLocations",
            app.list_robots_for_locations,
            req
        )
        .await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    async fn get_machine(&self, machine_id: &str) -> Result<Machine, CloudError> {
        let req = pb::GetRobotRequest {
            id: machine_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobot", app.get_robot, req).await?;
        Ok(convert::machine(required("GetRobot", "robot", resp.robot)?))
    }

    async fn new_machine(&self, name: &str, location_id: &str) -> Result<String, CloudError> {
        let req = pb::NewRobotRequest {
            name: name.to_string(),
            location: location_id.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobot", app.new_robot, req).await?;
        Ok(resp.id)
    }

    async fn update_machine(
        &self,
        machine_id: &str,
        name: Option<&str>,
        location_id: Option<&str>,
    ) -> Result<Machine, CloudError> {
        // The cloud treats an empty name or location as "unchanged".
        let req = pb::UpdateRobotRequest {
            id: machine_id.to_string(),
            name: name.unwrap_or_default().to_string(),
            location: location_id.unwrap_or_default().to_string(),
        };
        let resp = rpc!(self, Write, "UpdateRobot", app.update_robot, req).await?;
        Ok(convert::machine(required(
            "UpdateRobot",
            "robot",
            resp.robot,
        )?))
    }

    async fn delete_machine(&self, machine_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotRequest {
            id: machine_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobot", app.delete_robot, req).await?;
        Ok(())
    }

    async fn get_parts(&self, machine_id: &str) -> Result<Vec<Part>, CloudError> {
        let req = pb::GetRobotPartsRequest {
            robot_id: machine_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobotParts", app.get_robot_parts, req).await?;
        Ok(resp.parts.into_iter().map(convert::part).collect())
    }

    async fn get_part(&self, part_id: &str) -> Result<Part, CloudError> {
        let req = pb::GetRobotPartRequest {
            id: part_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobotPart", app.get_robot_part, req).await?;
        let mut part = required("GetRobotPart", "part", resp.part)?;
        if part.robot_config_json.is_none() && !resp.config_json.is_empty() {
            part.robot_config_json = Some(resp.config_json);
        }
        Ok(convert::part(part))
    }

    async fn new_part(&self, machine_id: &str, name: &str) -> Result<String, CloudError> {
        let req = pb::NewRobotPartRequest {
            robot_id: machine_id.to_string(),
            part_name: name.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobotPart", app.new_robot_part, req).await?;
        Ok(resp.part_id)
    }

    async fn update_part(
        &self,
        part_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Part, CloudError> {
        const RPC: &str = "UpdateRobotPart";
        // Both forms: the JSON text keeps the config as written; the struct serves clouds
        // that do not know the JSON field.
        let req = pb::UpdateRobotPartRequest {
            id: part_id.to_string(),
            name: name.to_string(),
            robot_config: config.map(|c| config_struct(RPC, c)).transpose()?,
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            robot_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateRobotPart", app.update_robot_part, req).await?;
        Ok(convert::part(required(RPC, "part", resp.part)?))
    }

    async fn delete_part(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotPartRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobotPart", app.delete_robot_part, req).await?;
        Ok(())
    }

    async fn mark_part_main(&self, part_id: &str) -> Result<(), CloudError> {
        let req = pb::MarkPartAsMainRequest {
            part_id: part_id.to_string(),
        };
        rpc!(self, Write, "MarkPartAsMain", app.mark_part_as_main, req).await?;
        Ok(())
    }

    async fn part_history(
        &self,
        part_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<HistoryEntry>, CloudError> {
        let req = pb::GetRobotPartHistoryRequest {
            id: part_id.to_string(),
            page_token: None,
            page_limit: limit,
            start: None,
            end: None,
        };
        let resp = rpc!(
            self,
            Read,
            "GetRobotPartHistory",
            app.get_robot_part_history,
            req
        )
        .await?;
        Ok(resp
            .history
            .into_iter()
            .map(convert::history_entry)
            .collect())
    }

    // `errors_only` is deprecated on the wire in favour of `levels` but still honoured; fleetform
    // passes the caller's choice through unchanged.
    #[allow(deprecated)]
    async fn part_logs(&self, part_id: &str, query: &LogQuery) -> Result<LogPage, CloudError> {
        let req = pb::GetRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only: query.errors_only,
            filter: query.filter.clone(),
            page_token: query.page_token.clone(),
            levels: query.levels.clone(),
            start: query.start.map(convert::timestamp_to_proto),
            end: query.end.map(convert::timestamp_to_proto),
            limit: query.limit,
        };
        let resp = rpc!(self, Read, "GetRobotPartLogs", app.get_robot_part_logs, req).await?;
        Ok(LogPage {
            entries: resp.logs.into_iter().map(convert::log_entry).collect(),
            next_page_token: Some(resp.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    async fn tail_part_logs(
        &self,
        part_id: &str,
        errors_only: bool,
        filter: Option<&str>,
    ) -> Result<LogStream, CloudError> {
        let req = pb::TailRobotPartLogsRequest {
            id: part_id.to_string(),
            errors_only,
            filter: filter.map(str::to_string),
        };
        let stream = rpc!(
            self,
            Stream,
            "TailRobotPartLogs",
            app.tail_robot_part_logs,
            req
        )
        .await?;
        // Every entry is forwarded; only empty batches (never sent by a well-behaved server)
        // are dropped, since a `LogStream` batch is never empty.
        let batches = stream.filter_map(|item| match item {
            Ok(batch) if batch.logs.is_empty() => None,
            Ok(batch) => Some(Ok(batch.logs.into_iter().map(convert::log_entry).collect())),
            Err(status) => Some(Err(status_error("TailRobotPartLogs", &status))),
        });
        Ok(Box::pin(batches))
    }

    async fn push_logs(&self, part_id: &str, entries: &[LogEntry]) -> Result<(), CloudError> {
        let logs = entries
            .iter()
            .map(convert::log_entry_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("Log", e))?;
        let req = pb::LogRequest {
            id: part_id.to_string(),
            logs,
        };
        rpc!(self, Write, "Log", robot.log, req).await?;
        Ok(())
    }

    async fn list_fragments(&self, org_id: &str) -> Result<Vec<Fragment>, CloudError> {
        // Every visibility, explicitly: `show_public` alone means different things to
        // different clouds. Other organizations' public fragments are dropped.
        let req = pb::ListFragmentsRequest {
            organization_id: org_id.to_string(),
            show_public: false,
            fragment_visibility: [
                Visibility::Private,
                Visibility::Public,
                Visibility::PublicUnlisted,
            ]
            .into_iter()
            .map(convert::visibility_to_proto)
            .collect(),
        };
        let resp = rpc!(self, Read, "ListFragments", app.list_fragments, req).await?;
        Ok(resp
            .fragments
            .into_iter()
            .map(convert::fragment)
            .filter(|f| f.organization_id == org_id)
            .collect())
    }

    async fn get_fragment_versions(
        &self,
        fragment_id: &str,
        version: Option<&str>,
    ) -> Result<FragmentVersions, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: version.map(str::to_string),
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(FragmentVersions {
            fragment: convert::fragment(required("GetFragment", "fragment", resp.fragment)?),
            revisions: resp
                .revisions
                .into_iter()
                .map(convert::fragment_revision)
                .collect(),
            tags: resp.tags.into_iter().map(convert::fragment_tag).collect(),
        })
    }

    async fn fragment_history(
        &self,
        fragment_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<FragmentHistoryEntry>, CloudError> {
        let mut entries = Vec::new();
        let mut page_token = None;
        loop {
            let wanted = limit.map(|l| l - entries.len() as i64);
            if wanted.is_some_and(|w| w <= 0) {
                break;
            }
            let req = pb::GetFragmentHistoryRequest {
                id: fragment_id.to_string(),
                page_token: page_token.take(),
                page_limit: Some(
                    wanted.map_or(FRAGMENT_HISTORY_PAGE, |w| w.min(FRAGMENT_HISTORY_PAGE)),
                ),
            };
            let resp = rpc!(
                self,
                Read,
                "GetFragmentHistory",
                app.get_fragment_history,
                req
            )
            .await?;
            let got = resp.history.len();
            entries.extend(
                resp.history
                    .into_iter()
                    .map(convert::fragment_history_entry),
            );
            if resp.next_page_token.is_empty() || got == 0 {
                break;
            }
            page_token = Some(resp.next_page_token);
        }
        if let Some(l) = limit {
            entries.truncate(usize::try_from(l).unwrap_or(0));
        }
        Ok(entries)
    }

    async fn set_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
        revision: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::SetFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
            revision: revision.to_string(),
        };
        let resp = rpc!(self, Write, "SetFragmentTag", app.set_fragment_tag, req).await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    async fn delete_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::DeleteFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "DeleteFragmentTag",
            app.delete_fragment_tag,
            req
        )
        .await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    async fn fragment_usage(&self, fragment_id: &str) -> Result<Vec<FragmentUsage>, CloudError> {
        let req = pb::GetFragmentUsageRequest {
            fragment_id: fragment_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetFragmentUsage", app.get_fragment_usage, req).await?;
        Ok(resp
            .version_usages
            .into_iter()
            .map(convert::fragment_usage)
            .collect())
    }

    async fn get_fragment(&self, fragment_id: &str) -> Result<Fragment, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: None,
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(convert::fragment(required(
            "GetFragment",
            "fragment",
            resp.fragment,
        )?))
    }

    async fn create_fragment(
        &self,
        org_id: &str,
        name: &str,
        config: &serde_json::Value,
        visibility: Visibility,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "CreateFragment";
        let text = config_text(RPC, config)?;
        let config_struct = config_struct(RPC, config)?;
        let exact = struct_is_exact(config, &config_struct);
        let req = pb::CreateFragmentRequest {
            name: name.to_string(),
            config: Some(config_struct),
            organization_id: org_id.to_string(),
            visibility: Some(convert::visibility_to_proto(visibility)),
        };
        let resp = rpc!(self, Write, "CreateFragment", app.create_fragment, req).await?;
        let created = convert::fragment(required(RPC, "fragment", resp.fragment)?);
        if exact {
            return Ok(created);
        }
        // `CreateFragment` has no JSON field, and the struct lost key order or number forms:
        // write the JSON text at once, guarded so that nothing written in between is lost.
        let req = pb::UpdateFragmentRequest {
            id: created.id.clone(),
            name: created.name.clone(),
            config: None,
            public: None,
            visibility: None,
            last_known_update: created.last_updated.map(convert::timestamp_to_proto),
            fragment_config_json: Some(text),
        };
        match rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await {
            Ok(resp) => Ok(convert::fragment(required(
                "UpdateFragment",
                "fragment",
                resp.fragment,
            )?)),
            Err(e) => {
                // The fragment exists with the same config in struct form; only the form as
                // written is missing. Report the fragment rather than a failed create.
                tracing::warn!(fragment_id = %created.id, error = %e, "could not store the fragment config as JSON text");
                Ok(created)
            }
        }
    }

    async fn update_fragment(
        &self,
        fragment_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        visibility: Option<Visibility>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "UpdateFragment";
        let req = pb::UpdateFragmentRequest {
            id: fragment_id.to_string(),
            name: name.to_string(),
            config: config.map(|c| config_struct(RPC, c)).transpose()?,
            public: None,
            visibility: visibility.map(convert::visibility_to_proto),
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            fragment_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await?;
        Ok(convert::fragment(required(RPC, "fragment", resp.fragment)?))
    }

    async fn list_member_roles(&self, org_id: &str) -> Result<Vec<MemberRole>, CloudError> {
        let req = pb::ListAuthorizationsRequest {
            organization_id: org_id.to_string(),
            resource_ids: vec![],
        };
        let resp = rpc!(
            self,
            Read,
            "ListAuthorizations",
            app.list_authorizations,
            req
        )
        .await?;
        Ok(convert::member_roles(resp.authorizations))
    }

    async fn add_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let req = pb::AddRoleRequest {
            authorization: Some(convert::member_role_to_authorization(
                identity_id,
                grant,
                org_id,
            )),
        };
        rpc!(self, Write, "AddRole", app.add_role, req).await?;
        Ok(())
    }

    async fn remove_member_role(
        &self,
        org_id: &str,
        identity_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let req = pb::RemoveRoleRequest {
            authorization: Some(convert::member_role_to_authorization(
                identity_id,
                grant,
                org_id,
            )),
        };
        rpc!(self, Write, "RemoveRole", app.remove_role, req).await?;
        Ok(())
    }

    async fn get_metadata(&self, target: &MetadataTarget) -> Result<Metadata, CloudError> {
        let data = match target {
            MetadataTarget::Organization(id) => {
                let req = pb::GetOrganizationMetadataRequest {
                    organization_id: id.clone(),
                };
                let r = rpc!(
                    self,
                    Read,
                    "GetOrganizationMetadata",
                    app.get_organization_metadata,
                    req
                );
                r.await?.data
            }
            MetadataTarget::Location(id) => {
                let req = pb::GetLocationMetadataRequest {
                    location_id: id.clone(),
                };
                let r = rpc!(
                    self,
                    Read,
                    "GetLocationMetadata",
                    app.get_location_metadata,
                    req
                );
                r.await?.data
            }
            MetadataTarget::Machine(id) => {
                let req = pb::GetRobotMetadataRequest { id: id.clone() };
                let r = rpc!(self, Read, "GetRobotMetadata", app.get_robot_metadata, req);
                r.await?.data
            }
            MetadataTarget::Part(id) => {
                let req = pb::GetRobotPartMetadataRequest { id: id.clone() };
                let r = rpc!(
                    self,
                    Read,
                    "GetRobotPartMetadata",
                    app.get_robot_part_metadata,
                    req
                );
                r.await?.data
            }
        };
        Ok(convert::metadata(data))
    }

    async fn update_metadata(
        &self,
        target: &MetadataTarget,
        data: &Metadata,
    ) -> Result<(), CloudError> {
        let data = Some(convert::metadata_to_proto(data));
        match target {
            MetadataTarget::Organization(id) => {
                let req = pb::UpdateOrganizationMetadataRequest {
                    organization_id: id.clone(),
                    data,
                };
                let r = rpc!(
                    self,
                    Write,
                    "UpdateOrganizationMetadata",
                    app.update_organization_metadata,
                    req
                );
                r.await?;
            }
            MetadataTarget::Location(id) => {
                let req = pb::UpdateLocationMetadataRequest {
                    location_id: id.clone(),
                    data,
                };
                let r = rpc!(
                    self,
                    Write,
                    "UpdateLocationMetadata",
                    app.update_location_metadata,
                    req
                );
                r.await?;
            }
            MetadataTarget::Machine(id) => {
                let req = pb::UpdateRobotMetadataRequest {
                    id: id.clone(),
                    data,
                };
                let r = rpc!(
                    self,
                    Write,
                    "UpdateRobotMetadata",
                    app.update_robot_metadata,
                    req
                );
                r.await?;
            }
            MetadataTarget::Part(id) => {
                let req = pb::UpdateRobotPartMetadataRequest {
                    id: id.clone(),
                    data,
                };
                let r = rpc!(
                    self,
                    Write,
                    "UpdateRobotPartMetadata",
                    app.update_robot_part_metadata,
                    req
                );
                r.await?;
            }
        }
        Ok(())
    }

    fn observed(&self, observer: Arc<dyn RpcObserver>) -> Option<Arc<dyn CloudApi>> {
        Some(Arc::new(self.with_observer(observer)))
    }

    async fn delete_fragment(&self, fragment_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteFragmentRequest {
            id: fragment_id.to_string(),
        };
        rpc!(self, Write, "DeleteFragment", app.delete_fragment, req).await?;
        Ok(())
    }
}
