//! The RPC table: every [`CloudApi`] method as one thin entry — build the request, make the
//! call through `Client::call` (via `rpc!`), convert the response. See the parent module's
//! "How to add an RPC".
//!
//! Here: the `rpc!` macro, the shared conversion helpers and `impl CloudApi for Client`, which
//! hands each method to its area's `impl Client` block:
//! - `orgs.rs`: organizations, their settings, members and invites;
//! - `locations.rs`: locations and their secrets;
//! - `robots.rs`: machines;
//! - `parts.rs`: parts, their history and logs;
//! - `fragments.rs`: fragments, their versions, tags, history and usage;
//! - `metadata.rs`: metadata of organizations, locations, machines and parts;
//! - `keys.rs`: API keys and their roles.

use super::Client;
use super::retry::Kind;
use super::transport::{app, app_bytes, app_unary, robot, status_error};
use crate::cloud::convert::{self, ConvertError};
use crate::cloud::{CloudApi, CloudError, Code, LogStream, ParentChange, RpcObserver};
use crate::model::{
    ApiKey, Fragment, FragmentHistoryEntry, FragmentImport, FragmentTag, FragmentUsage,
    FragmentVersions, Grant, HistoryEntry, Invite, KeySecret, Location, LocationSecret, LogEntry,
    LogPage, LogQuery, Machine, Member, Metadata, MetadataTarget, Organization, Part, PartSummary,
    Timestamp, Visibility,
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

mod fragments;
mod keys;
mod locations;
mod metadata;
mod orgs;
mod parts;
mod robots;

fn grants_to_proto(grants: &[Grant], org_id: &str) -> Vec<pb::Authorization> {
    grants
        .iter()
        .map(|g| convert::grant_to_authorization(g, org_id))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CloudApi
// ---------------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl CloudApi for Client {
    fn own_key_id(&self) -> Option<String> {
        Some(self.inner.credentials.key_id.clone())
    }

    async fn call_app(
        &self,
        rpc: &'static str,
        write: bool,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, CloudError> {
        let kind = if write { Kind::Write } else { Kind::Read };
        self.call(rpc, kind, request, |channel, request| {
            app_bytes(channel, rpc, request)
        })
        .await
    }

    async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, CloudError> {
        self.list_keys(org_id).await
    }

    async fn create_key(
        &self,
        org_id: &str,
        name: &str,
        grants: &[Grant],
    ) -> Result<KeySecret, CloudError> {
        self.create_key(org_id, name, grants).await
    }

    async fn rotate_key(&self, key_id: &str) -> Result<KeySecret, CloudError> {
        self.rotate_key(key_id).await
    }

    async fn rename_key(&self, key_id: &str, name: &str) -> Result<(), CloudError> {
        self.rename_key(key_id, name).await
    }

    async fn delete_key(&self, key_id: &str) -> Result<(), CloudError> {
        self.delete_key(key_id).await
    }

    async fn add_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        self.add_key_role(org_id, key_id, grant).await
    }

    async fn remove_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        self.remove_key_role(org_id, key_id, grant).await
    }

    async fn list_organizations(&self) -> Result<Vec<Organization>, CloudError> {
        self.list_organizations().await
    }

    async fn get_organization(&self, org_id: &str) -> Result<Organization, CloudError> {
        self.get_organization(org_id).await
    }

    async fn update_organization_default_fragments(
        &self,
        org_id: &str,
        fragments: &[FragmentImport],
    ) -> Result<Organization, CloudError> {
        self.update_organization_default_fragments(org_id, fragments)
            .await
    }

    async fn update_organization_settings(
        &self,
        org_id: &str,
        name: Option<&str>,
        public_namespace: Option<&str>,
        region: Option<&str>,
    ) -> Result<Organization, CloudError> {
        self.update_organization_settings(org_id, name, public_namespace, region)
            .await
    }

    async fn namespace_available(&self, namespace: &str) -> Result<bool, CloudError> {
        self.namespace_available(namespace).await
    }

    async fn list_members(&self, org_id: &str) -> Result<(Vec<Member>, Vec<Invite>), CloudError> {
        self.list_members(org_id).await
    }

    async fn create_invite(
        &self,
        org_id: &str,
        email: &str,
        grants: &[Grant],
        send_email: bool,
    ) -> Result<Invite, CloudError> {
        self.create_invite(org_id, email, grants, send_email).await
    }

    async fn update_invite_grants(
        &self,
        org_id: &str,
        email: &str,
        add: &[Grant],
        remove: &[Grant],
    ) -> Result<Invite, CloudError> {
        self.update_invite_grants(org_id, email, add, remove).await
    }

    async fn delete_invite(&self, org_id: &str, email: &str) -> Result<(), CloudError> {
        self.delete_invite(org_id, email).await
    }

    async fn list_locations(&self, org_id: &str) -> Result<Vec<Location>, CloudError> {
        self.list_locations(org_id).await
    }

    async fn get_location(&self, location_id: &str) -> Result<Location, CloudError> {
        self.get_location(location_id).await
    }

    async fn create_location(
        &self,
        org_id: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Location, CloudError> {
        self.create_location(org_id, name, parent_id).await
    }

    async fn update_location(
        &self,
        location_id: &str,
        name: Option<&str>,
        parent: ParentChange,
    ) -> Result<Location, CloudError> {
        self.update_location(location_id, name, parent).await
    }

    async fn delete_location(&self, location_id: &str) -> Result<(), CloudError> {
        self.delete_location(location_id).await
    }

    async fn location_secrets(&self, location_id: &str) -> Result<Vec<LocationSecret>, CloudError> {
        self.location_secrets(location_id).await
    }

    async fn create_location_secret(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError> {
        self.create_location_secret(location_id).await
    }

    async fn delete_location_secret(
        &self,
        location_id: &str,
        secret_id: &str,
    ) -> Result<(), CloudError> {
        self.delete_location_secret(location_id, secret_id).await
    }

    async fn list_machines(&self, location_id: &str) -> Result<Vec<Machine>, CloudError> {
        self.list_machines(location_id).await
    }

    async fn list_machines_for_org(&self, org_id: &str) -> Result<Vec<Machine>, CloudError> {
        self.list_machines_for_org(org_id).await
    }

    async fn list_machines_for_locations(
        &self,
        location_ids: &[String],
    ) -> Result<Vec<Machine>, CloudError> {
        self.list_machines_for_locations(location_ids).await
    }

    async fn get_machine(&self, machine_id: &str) -> Result<Machine, CloudError> {
        self.get_machine(machine_id).await
    }
    async fn machine_summaries(
        &self,
        org_id: &str,
        location_ids: &[String],
    ) -> Result<Vec<PartSummary>, CloudError> {
        self.machine_summaries(org_id, location_ids).await
    }

    async fn new_machine(&self, name: &str, location_id: &str) -> Result<String, CloudError> {
        self.new_machine(name, location_id).await
    }

    async fn update_machine(
        &self,
        machine_id: &str,
        name: Option<&str>,
        location_id: Option<&str>,
    ) -> Result<Machine, CloudError> {
        self.update_machine(machine_id, name, location_id).await
    }

    async fn delete_machine(&self, machine_id: &str) -> Result<(), CloudError> {
        self.delete_machine(machine_id).await
    }

    async fn get_parts(&self, machine_id: &str) -> Result<Vec<Part>, CloudError> {
        self.get_parts(machine_id).await
    }

    async fn get_part(&self, part_id: &str) -> Result<Part, CloudError> {
        self.get_part(part_id).await
    }

    async fn new_part(&self, machine_id: &str, name: &str) -> Result<String, CloudError> {
        self.new_part(machine_id, name).await
    }

    async fn update_part(
        &self,
        part_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Part, CloudError> {
        self.update_part(part_id, name, config, last_known_update)
            .await
    }

    async fn delete_part(&self, part_id: &str) -> Result<(), CloudError> {
        self.delete_part(part_id).await
    }

    async fn mark_part_main(&self, part_id: &str) -> Result<(), CloudError> {
        self.mark_part_main(part_id).await
    }

    async fn part_history(
        &self,
        part_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<HistoryEntry>, CloudError> {
        self.part_history(part_id, limit).await
    }

    async fn part_logs(&self, part_id: &str, query: &LogQuery) -> Result<LogPage, CloudError> {
        self.part_logs(part_id, query).await
    }

    async fn tail_part_logs(
        &self,
        part_id: &str,
        errors_only: bool,
        filter: Option<&str>,
    ) -> Result<LogStream, CloudError> {
        self.tail_part_logs(part_id, errors_only, filter).await
    }

    async fn push_logs(&self, part_id: &str, entries: &[LogEntry]) -> Result<(), CloudError> {
        self.push_logs(part_id, entries).await
    }

    async fn list_fragments(&self, org_id: &str) -> Result<Vec<Fragment>, CloudError> {
        self.list_fragments(org_id).await
    }

    async fn get_fragment_versions(
        &self,
        fragment_id: &str,
        version: Option<&str>,
    ) -> Result<FragmentVersions, CloudError> {
        self.get_fragment_versions(fragment_id, version).await
    }

    async fn fragment_history(
        &self,
        fragment_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<FragmentHistoryEntry>, CloudError> {
        self.fragment_history(fragment_id, limit).await
    }

    async fn set_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
        revision: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        self.set_fragment_tag(fragment_id, tag, revision).await
    }

    async fn delete_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        self.delete_fragment_tag(fragment_id, tag).await
    }

    async fn fragment_usage(&self, fragment_id: &str) -> Result<Vec<FragmentUsage>, CloudError> {
        self.fragment_usage(fragment_id).await
    }

    async fn get_fragment(&self, fragment_id: &str) -> Result<Fragment, CloudError> {
        self.get_fragment(fragment_id).await
    }

    async fn create_fragment(
        &self,
        org_id: &str,
        name: &str,
        config: &serde_json::Value,
        visibility: Visibility,
    ) -> Result<Fragment, CloudError> {
        self.create_fragment(org_id, name, config, visibility).await
    }

    async fn update_fragment(
        &self,
        fragment_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        visibility: Option<Visibility>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Fragment, CloudError> {
        self.update_fragment(fragment_id, name, config, visibility, last_known_update)
            .await
    }

    async fn get_metadata(&self, target: &MetadataTarget) -> Result<Metadata, CloudError> {
        self.get_metadata(target).await
    }

    async fn update_metadata(
        &self,
        target: &MetadataTarget,
        data: &Metadata,
    ) -> Result<(), CloudError> {
        self.update_metadata(target, data).await
    }

    fn observed(&self, observer: Arc<dyn RpcObserver>) -> Option<Arc<dyn CloudApi>> {
        Some(Arc::new(self.with_observer(observer)))
    }

    async fn delete_fragment(&self, fragment_id: &str) -> Result<(), CloudError> {
        self.delete_fragment(fragment_id).await
    }
}
