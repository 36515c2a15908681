//! Talking to a Viam cloud: the [`CloudApi`] trait in domain terms, its errors, and the gRPC
//! client that implements it (authentication, TLS, deadlines, retries).
//!
//! Everything above this module (observe, plan, apply, the CLI) sees only [`CloudApi`] and the
//! types of [`crate::model`]; the generated protobuf types stay inside `cloud` and `localcloud`.

mod client;
mod convert;
mod error;
pub mod observe;
pub mod resolve;

pub use client::{Client, ClientOptions, Credentials, RetryPolicy};
pub use convert::{grant_from_authorization, grant_to_authorization};
pub use error::{CloudError, Code};

use crate::model::{
    ApiKey, Fragment, FragmentHistoryEntry, FragmentImport, FragmentTag, FragmentUsage,
    FragmentVersions, Grant, HistoryEntry, Invite, KeySecret, Location, LocationSecret, LogEntry,
    LogPage, LogQuery, Machine, Member, Metadata, MetadataTarget, Organization, Part, PartSummary,
    Timestamp, Visibility,
};
use std::pin::Pin;
use std::sync::Arc;

/// A stream of log batches from [`CloudApi::tail_part_logs`]; every batch is non-empty.
pub type LogStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<Vec<LogEntry>, CloudError>> + Send>>;

/// How `update_location` should treat the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentChange {
    /// Leave the parent as it is.
    Keep,
    /// Move to the top level.
    Root,
    /// Move under this location id.
    To(String),
}

/// Told about every RPC a [`CloudApi`] makes (metrics): once per logical call, with the Viam RPC
/// name and how it ended, however many attempts it took (retries and the repeat after
/// re-authentication are one call; `Authenticate` is part of the call that needed it).
///
/// Called on the caller's task right after the call ends, so it must be quick and must not
/// block (counting into a map under a short lock is fine).
pub trait RpcObserver: Send + Sync {
    /// `rpc` (such as `UpdateRobotPart`) finished: `None` for success, else its error.
    fn rpc_finished(&self, rpc: &'static str, error: Option<&CloudError>);
}

/// The Viam cloud operations fleetform uses, in domain terms.
///
/// Implemented by [`Client`] over gRPC. Every method is one RPC (except `tail_part_logs`, a
/// stream). Read methods are safe to retry; write methods are not retried by the client when
/// their outcome is unknown — the caller decides (apply re-observes before retrying a create).
#[async_trait::async_trait]
pub trait CloudApi: Send + Sync {
    /// One unary AppService call `rpc` (its Viam name, such as `ListAuthorizations`) with its
    /// request and answer as encoded protobuf messages: how a registered kind
    /// ([`crate::kinds`]) makes the calls only it needs, with everything every other method
    /// gets (token, deadline, retries of reads (`write: false`), counting, the
    /// [`RpcObserver`]). [`crate::kinds::call`] encodes and decodes.
    async fn call_app(
        &self,
        rpc: &'static str,
        write: bool,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, CloudError>;

    // Organizations and access.
    async fn list_organizations(&self) -> Result<Vec<Organization>, CloudError>;
    async fn get_organization(&self, org_id: &str) -> Result<Organization, CloudError>;
    async fn namespace_available(&self, namespace: &str) -> Result<bool, CloudError>;
    /// Replaces the organization's default fragments (`UpdateOrganization`).
    async fn update_organization_default_fragments(
        &self,
        org_id: &str,
        fragments: &[FragmentImport],
    ) -> Result<Organization, CloudError>;
    /// Renames the organization and/or sets its public namespace and default region
    /// (`UpdateOrganization`); `None` leaves that setting as it is.
    async fn update_organization_settings(
        &self,
        org_id: &str,
        name: Option<&str>,
        public_namespace: Option<&str>,
        region: Option<&str>,
    ) -> Result<Organization, CloudError>;
    async fn list_members(&self, org_id: &str) -> Result<(Vec<Member>, Vec<Invite>), CloudError>;
    /// The id of the API key this client authenticates with, when it has one: the key a
    /// plan must never delete or downgrade.
    fn own_key_id(&self) -> Option<String> {
        None
    }
    /// The organization's API keys with their roles (`ListKeys`), never their secrets.
    async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, CloudError>;
    /// Creates a key named `name` holding `grants` (`CreateKey`); the secret is returned
    /// once.
    async fn create_key(
        &self,
        org_id: &str,
        name: &str,
        grants: &[Grant],
    ) -> Result<KeySecret, CloudError>;
    /// A new secret for key `key_id` (`RotateKey`); use the returned id from then on.
    async fn rotate_key(&self, key_id: &str) -> Result<KeySecret, CloudError>;
    async fn rename_key(&self, key_id: &str, name: &str) -> Result<(), CloudError>;
    async fn delete_key(&self, key_id: &str) -> Result<(), CloudError>;
    /// Gives key `key_id` the role `grant` (`AddRole` with the key as identity).
    async fn add_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError>;
    /// Takes the role `grant` from key `key_id` (`RemoveRole` with the key as identity).
    async fn remove_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError>;
    /// Invites `email` with `grants` (no grants = owner of the organization, as on Viam's
    /// cloud); `send_email` asks the cloud to email the invite.
    async fn create_invite(
        &self,
        org_id: &str,
        email: &str,
        grants: &[Grant],
        send_email: bool,
    ) -> Result<Invite, CloudError>;
    async fn update_invite_grants(
        &self,
        org_id: &str,
        email: &str,
        add: &[Grant],
        remove: &[Grant],
    ) -> Result<Invite, CloudError>;
    async fn delete_invite(&self, org_id: &str, email: &str) -> Result<(), CloudError>;

    // Locations and their secrets.
    async fn list_locations(&self, org_id: &str) -> Result<Vec<Location>, CloudError>;
    async fn get_location(&self, location_id: &str) -> Result<Location, CloudError>;
    async fn create_location(
        &self,
        org_id: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Location, CloudError>;
    async fn update_location(
        &self,
        location_id: &str,
        name: Option<&str>,
        parent: ParentChange,
    ) -> Result<Location, CloudError>;
    async fn delete_location(&self, location_id: &str) -> Result<(), CloudError>;
    async fn location_secrets(&self, location_id: &str) -> Result<Vec<LocationSecret>, CloudError>;
    async fn create_location_secret(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError>;
    async fn delete_location_secret(
        &self,
        location_id: &str,
        secret_id: &str,
    ) -> Result<(), CloudError>;

    // Machines.
    async fn list_machines(&self, location_id: &str) -> Result<Vec<Machine>, CloudError>;
    async fn list_machines_for_org(&self, org_id: &str) -> Result<Vec<Machine>, CloudError>;
    /// The machines of several locations in one call (`ListRobotsForLocations`).
    async fn list_machines_for_locations(
        &self,
        location_ids: &[String],
    ) -> Result<Vec<Machine>, CloudError>;
    async fn get_machine(&self, machine_id: &str) -> Result<Machine, CloudError>;
    /// The online state of every part in `location_ids` (all of the organization's locations
    /// when empty), in one call (`ListMachineSummaries`).
    async fn machine_summaries(
        &self,
        org_id: &str,
        location_ids: &[String],
    ) -> Result<Vec<PartSummary>, CloudError>;
    /// Creates a machine (and its main part `<name>-main`); returns the machine id.
    async fn new_machine(&self, name: &str, location_id: &str) -> Result<String, CloudError>;
    /// Renames and/or moves a machine. `None` leaves that attribute unchanged.
    async fn update_machine(
        &self,
        machine_id: &str,
        name: Option<&str>,
        location_id: Option<&str>,
    ) -> Result<Machine, CloudError>;
    async fn delete_machine(&self, machine_id: &str) -> Result<(), CloudError>;

    // Parts.
    async fn get_parts(&self, machine_id: &str) -> Result<Vec<Part>, CloudError>;
    async fn get_part(&self, part_id: &str) -> Result<Part, CloudError>;
    /// Creates a part; returns its id.
    async fn new_part(&self, machine_id: &str, name: &str) -> Result<String, CloudError>;
    /// Renames a part and (when `config` is given) replaces its config. With
    /// `last_known_update`, the cloud refuses the write if the part changed since then.
    async fn update_part(
        &self,
        part_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Part, CloudError>;
    async fn delete_part(&self, part_id: &str) -> Result<(), CloudError>;
    async fn mark_part_main(&self, part_id: &str) -> Result<(), CloudError>;
    /// Newest first, at most `limit` entries when given.
    async fn part_history(
        &self,
        part_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<HistoryEntry>, CloudError>;

    // Logs.
    async fn part_logs(&self, part_id: &str, query: &LogQuery) -> Result<LogPage, CloudError>;
    async fn tail_part_logs(
        &self,
        part_id: &str,
        errors_only: bool,
        filter: Option<&str>,
    ) -> Result<LogStream, CloudError>;
    /// Pushes log entries for a part (`RobotService/Log`, what machines call).
    async fn push_logs(&self, part_id: &str, entries: &[LogEntry]) -> Result<(), CloudError>;

    // Fragments.
    /// The organization's own fragments, of every visibility (fragments of other
    /// organizations are never returned).
    async fn list_fragments(&self, org_id: &str) -> Result<Vec<Fragment>, CloudError>;
    async fn get_fragment(&self, fragment_id: &str) -> Result<Fragment, CloudError>;
    /// The fragment (at `version`, a revision or tag, when given; else the latest) with its
    /// revisions and tags (`GetFragment`).
    async fn get_fragment_versions(
        &self,
        fragment_id: &str,
        version: Option<&str>,
    ) -> Result<FragmentVersions, CloudError>;
    /// Newest first, at most `limit` entries when given (`GetFragmentHistory`).
    async fn fragment_history(
        &self,
        fragment_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<FragmentHistoryEntry>, CloudError>;
    /// Points `tag` at `revision`; returns all tags of the fragment.
    async fn set_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
        revision: &str,
    ) -> Result<Vec<FragmentTag>, CloudError>;
    /// Removes `tag`; returns the remaining tags of the fragment.
    async fn delete_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
    ) -> Result<Vec<FragmentTag>, CloudError>;
    /// How many machines import the fragment, per imported version (`GetFragmentUsage`).
    async fn fragment_usage(&self, fragment_id: &str) -> Result<Vec<FragmentUsage>, CloudError>;
    async fn create_fragment(
        &self,
        org_id: &str,
        name: &str,
        config: &serde_json::Value,
        visibility: Visibility,
    ) -> Result<Fragment, CloudError>;
    async fn update_fragment(
        &self,
        fragment_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        visibility: Option<Visibility>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Fragment, CloudError>;
    async fn delete_fragment(&self, fragment_id: &str) -> Result<(), CloudError>;

    // Metadata.
    /// The metadata of an organization, location, machine or part
    /// (`Get{Organization,Location,Robot,RobotPart}Metadata`); `{}` when it has none.
    async fn get_metadata(&self, target: &MetadataTarget) -> Result<Metadata, CloudError>;
    /// Replaces the whole metadata object
    /// (`Update{Organization,Location,Robot,RobotPart}Metadata`).
    async fn update_metadata(
        &self,
        target: &MetadataTarget,
        data: &Metadata,
    ) -> Result<(), CloudError>;

    /// A handle to the same cloud whose RPCs are all reported to `observer` (other handles are
    /// not affected). `None` when this implementation makes no RPCs it could report; the caller
    /// then goes on with the unobserved handle.
    fn observed(&self, observer: Arc<dyn RpcObserver>) -> Option<Arc<dyn CloudApi>> {
        let _ = observer;
        None
    }
}
