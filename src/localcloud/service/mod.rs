//! `viam.app.v1.AppService` and `viam.app.v1.RobotService/Log` over the [`Store`].
//!
//! Each handler validates its arguments (`INVALID_ARGUMENT` naming the field), resolves ids in
//! the caller's organization (`NOT_FOUND` otherwise), and runs in one store call: a read on a
//! reader connection, or one write transaction. Semantics follow Viam's cloud as documented in
//! the project's SEMANTICS notes; where Viam's behaviour is unknown the choice is written here.
//!
//! # Layout
//! This file holds the services, the shared handler machinery (`read`, `write`, argument
//! checks) and the `AppService` trait impl as a table: each method hands its request to the
//! handler of the same name in the file of its area: `orgs` (organizations, members, invites),
//! `locations`, `robots`, `parts`, `logs`, `fragments`, `metadata`, `roles`, `keys`.
//! `encoded` answers `GetRobotParts` from the stored encodings instead (see [`Routed`]), and
//! `kinds` routes the registered kinds' RPCs to their own handlers (the generated trait
//! answers `UNIMPLEMENTED` for methods the impl leaves out; a test checks none is forgotten).
//!
//! What a calling key may reach (its roles, see `store::keys`) is read in the same store call
//! as the handler's own queries, so a changed or deleted key takes effect at once.

mod encoded;
mod fragments;
mod keys;
pub mod kinds;
mod locations;
mod logs;
mod metadata;
mod orgs;
mod parts;
mod robots;
mod roles;

pub use encoded::Routed;

use super::auth::caller;
use super::store::{self, Access, R, Store, require, require_uuid, ts_us};
use crate::proto::viam::app::v1 as pb;
use crate::proto::viam::common::v1::LogEntry;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

/// Maximum nesting of locations (a top-level location is level 1).
pub use crate::model::rules::MAX_LOCATION_DEPTH;
/// Maximum number of secrets a location may hold.
pub const MAX_LOCATION_SECRETS: usize = 2;
/// Log page size when the request gives no limit, and the cap on any limit.
const DEFAULT_LOG_PAGE: i64 = 100;
const MAX_LOG_PAGE: i64 = 1000;
/// History page size when the request gives no limit.
const DEFAULT_HISTORY_PAGE: i64 = 100;
/// Fragment-history page size when the request gives no limit (the SDK's default).
const DEFAULT_FRAGMENT_HISTORY_PAGE: i64 = 10;

/// Log entries pushed with `RobotService/Log`, fanned out to `TailRobotPartLogs` streams.
#[derive(Clone, Debug)]
pub struct LogBatch {
    pub part_id: String,
    pub entries: Arc<Vec<LogEntry>>,
}

#[derive(Clone)]
pub struct AppService {
    pub store: Arc<Store>,
    pub logs: broadcast::Sender<LogBatch>,
    /// Open log tails per connection, which keep a quiet connection from being idle.
    pub streams: Arc<super::idle::OpenStreams>,
}

type Res<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Res<T> {
    Ok(Response::new(v))
}

/// Runs a read for the caller of `req`, with what its key reaches read in the same call.
async fn read<Req, T, F>(svc: &AppService, req: Request<Req>, f: F) -> Res<T>
where
    T: Send + 'static,
    Req: Send + 'static,
    F: FnOnce(&rusqlite::Connection, &Access, Req) -> R<T> + Send + 'static,
{
    let who = caller(&req)?;
    let body = req.into_inner();
    svc.store
        .read(move |db| f(db, &store::access(db, &who.key_id, &who.org_id)?, body))
        .await
        .map(Response::new)
        .map_err(bounded)
}

/// The longest error message sent, in bytes. Messages quote what the caller sent; an
/// unbounded one would exceed the limit on gRPC headers and the caller would see a dropped
/// stream instead of the error.
const MAX_MESSAGE_BYTES: usize = 1024;

/// `status` with its message cut to [`MAX_MESSAGE_BYTES`] (at a character boundary).
fn bounded(status: Status) -> Status {
    let message = status.message();
    if message.len() <= MAX_MESSAGE_BYTES {
        return status;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Status::new(status.code(), format!("{}…", &message[..end]))
}

/// Runs one write transaction for the caller of `req`, with what its key reaches read in
/// the same transaction.
async fn write<Req, T, F>(svc: &AppService, req: Request<Req>, f: F) -> Res<T>
where
    T: Send + 'static,
    Req: Send + 'static,
    F: FnOnce(&rusqlite::Transaction, &Access, Req) -> R<T> + Send + 'static,
{
    let who = caller(&req)?;
    let body = req.into_inner();
    svc.store
        .write(move |tx| f(tx, &store::access(tx, &who.key_id, &who.org_id)?, body))
        .await
        .map(Response::new)
        .map_err(bounded)
}

fn check_email(email: &str) -> R<&str> {
    require("email", email)?;
    let valid = email.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.contains(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(Status::invalid_argument(format!(
            "email {email:?} is not a valid address"
        )))
    }
}

/// Organization namespaces: lowercase letters, digits and dashes.
fn check_namespace(ns: &str) -> R<&str> {
    require("public_namespace", ns)?;
    if ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
    {
        Ok(ns)
    } else {
        Err(Status::invalid_argument(format!(
            "public_namespace {ns:?} may contain only lowercase letters, digits and dashes"
        )))
    }
}

/// The config a write carries: its JSON text (`json_field`) when present, kept exactly as sent,
/// else the struct (serialized as JSON), else none.
fn config_from(
    config: Option<&prost_types::Struct>,
    json: Option<&str>,
    json_field: &str,
) -> R<Option<store::ConfigText>> {
    if let Some(text) = json {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Status::invalid_argument(format!("{json_field} is not valid JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(Status::invalid_argument(format!(
                "{json_field} must be a JSON object"
            )));
        }
        return Ok(Some(store::ConfigText {
            text: text.to_string(),
            value,
        }));
    }
    config
        .map(|c| {
            let value = store::json_from_struct(c);
            let text =
                serde_json::to_string(&value).map_err(|e| Status::internal(e.to_string()))?;
            Ok(store::ConfigText { text, value })
        })
        .transpose()
}

/// A revision number as sent on the wire (decimal text).
fn revision_number(field: &str, revision: &str) -> R<i64> {
    require(field, revision)?;
    revision.trim().parse::<i64>().map_err(|_| {
        Status::invalid_argument(format!("{field} {revision:?} is not a revision number"))
    })
}

/// Tag names: non-empty, no surrounding whitespace, and not a number (a version that is a
/// number names a revision, so such a tag could never be used).
fn check_tag(tag: &str) -> R<&str> {
    require("tag", tag)?;
    if tag.trim() != tag || tag.parse::<i64>().is_ok() {
        return Err(Status::invalid_argument(format!(
            "tag {tag:?} must not be a number or have surrounding whitespace"
        )));
    }
    Ok(tag)
}

fn check_part_name(
    db: &rusqlite::Connection,
    location_id: &str,
    name: &str,
    except: &str,
) -> R<()> {
    if store::part_name_taken(db, location_id, name, except)? {
        return Err(Status::already_exists(format!(
            "a part named {name:?} already exists in location {location_id}"
        )));
    }
    Ok(())
}

fn visibility(v: i32) -> R<i32> {
    match pb::FragmentVisibility::try_from(v) {
        Ok(pb::FragmentVisibility::Unspecified) => Ok(pb::FragmentVisibility::Private as i32),
        Ok(v) => Ok(v as i32),
        Err(_) => Err(Status::invalid_argument(format!(
            "visibility {v} is not a known value"
        ))),
    }
}

fn stale(what: &str, id: &str, sent: &prost_types::Timestamp, current_us: i64) -> Status {
    Status::failed_precondition(format!(
        "{what} {id} was modified since last_known_update ({} != {}); re-read it and retry",
        crate::model::Timestamp {
            seconds: sent.seconds,
            nanos: sent.nanos
        },
        crate::model::Timestamp::from_micros(current_us)
    ))
}

#[tonic::async_trait]
impl pb::app_service_server::AppService for AppService {
    // -- Organizations ------------------------------------------------------------------------

    async fn list_organizations(
        &self,
        req: Request<pb::ListOrganizationsRequest>,
    ) -> Res<pb::ListOrganizationsResponse> {
        orgs::list_organizations(self, req).await
    }

    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Res<pb::GetOrganizationResponse> {
        orgs::get_organization(self, req).await
    }

    async fn update_organization(
        &self,
        req: Request<pb::UpdateOrganizationRequest>,
    ) -> Res<pb::UpdateOrganizationResponse> {
        orgs::update_organization(self, req).await
    }

    async fn get_organization_namespace_availability(
        &self,
        req: Request<pb::GetOrganizationNamespaceAvailabilityRequest>,
    ) -> Res<pb::GetOrganizationNamespaceAvailabilityResponse> {
        orgs::get_organization_namespace_availability(self, req).await
    }

    async fn list_organization_members(
        &self,
        req: Request<pb::ListOrganizationMembersRequest>,
    ) -> Res<pb::ListOrganizationMembersResponse> {
        orgs::list_organization_members(self, req).await
    }

    async fn create_organization_invite(
        &self,
        req: Request<pb::CreateOrganizationInviteRequest>,
    ) -> Res<pb::CreateOrganizationInviteResponse> {
        orgs::create_organization_invite(self, req).await
    }

    async fn update_organization_invite_authorizations(
        &self,
        req: Request<pb::UpdateOrganizationInviteAuthorizationsRequest>,
    ) -> Res<pb::UpdateOrganizationInviteAuthorizationsResponse> {
        orgs::update_organization_invite_authorizations(self, req).await
    }

    async fn delete_organization_invite(
        &self,
        req: Request<pb::DeleteOrganizationInviteRequest>,
    ) -> Res<pb::DeleteOrganizationInviteResponse> {
        orgs::delete_organization_invite(self, req).await
    }

    // -- Locations ----------------------------------------------------------------------------

    async fn create_location(
        &self,
        req: Request<pb::CreateLocationRequest>,
    ) -> Res<pb::CreateLocationResponse> {
        locations::create_location(self, req).await
    }

    async fn get_location(
        &self,
        req: Request<pb::GetLocationRequest>,
    ) -> Res<pb::GetLocationResponse> {
        locations::get_location(self, req).await
    }

    async fn update_location(
        &self,
        req: Request<pb::UpdateLocationRequest>,
    ) -> Res<pb::UpdateLocationResponse> {
        locations::update_location(self, req).await
    }

    async fn delete_location(
        &self,
        req: Request<pb::DeleteLocationRequest>,
    ) -> Res<pb::DeleteLocationResponse> {
        locations::delete_location(self, req).await
    }

    async fn list_locations(
        &self,
        req: Request<pb::ListLocationsRequest>,
    ) -> Res<pb::ListLocationsResponse> {
        locations::list_locations(self, req).await
    }

    async fn share_location(
        &self,
        req: Request<pb::ShareLocationRequest>,
    ) -> Res<pb::ShareLocationResponse> {
        locations::share_location(self, req).await
    }

    async fn unshare_location(
        &self,
        req: Request<pb::UnshareLocationRequest>,
    ) -> Res<pb::UnshareLocationResponse> {
        locations::unshare_location(self, req).await
    }

    async fn location_auth(
        &self,
        req: Request<pb::LocationAuthRequest>,
    ) -> Res<pb::LocationAuthResponse> {
        locations::location_auth(self, req).await
    }

    async fn create_location_secret(
        &self,
        req: Request<pb::CreateLocationSecretRequest>,
    ) -> Res<pb::CreateLocationSecretResponse> {
        locations::create_location_secret(self, req).await
    }

    async fn delete_location_secret(
        &self,
        req: Request<pb::DeleteLocationSecretRequest>,
    ) -> Res<pb::DeleteLocationSecretResponse> {
        locations::delete_location_secret(self, req).await
    }

    // -- Machines -----------------------------------------------------------------------------

    async fn get_robot(&self, req: Request<pb::GetRobotRequest>) -> Res<pb::GetRobotResponse> {
        robots::get_robot(self, req).await
    }

    async fn list_robots(
        &self,
        req: Request<pb::ListRobotsRequest>,
    ) -> Res<pb::ListRobotsResponse> {
        robots::list_robots(self, req).await
    }

    async fn list_robots_for_org(
        &self,
        req: Request<pb::ListRobotsForOrgRequest>,
    ) -> Res<pb::ListRobotsForOrgResponse> {
        robots::list_robots_for_org(self, req).await
    }

    async fn list_robots_for_locations(
        &self,
        req: Request<pb::ListRobotsForLocationsRequest>,
    ) -> Res<pb::ListRobotsForLocationsResponse> {
        robots::list_robots_for_locations(self, req).await
    }

    async fn list_machine_summaries(
        &self,
        req: Request<pb::ListMachineSummariesRequest>,
    ) -> Res<pb::ListMachineSummariesResponse> {
        robots::list_machine_summaries(self, req).await
    }

    async fn new_robot(&self, req: Request<pb::NewRobotRequest>) -> Res<pb::NewRobotResponse> {
        robots::new_robot(self, req).await
    }

    async fn update_robot(
        &self,
        req: Request<pb::UpdateRobotRequest>,
    ) -> Res<pb::UpdateRobotResponse> {
        robots::update_robot(self, req).await
    }

    async fn delete_robot(
        &self,
        req: Request<pb::DeleteRobotRequest>,
    ) -> Res<pb::DeleteRobotResponse> {
        robots::delete_robot(self, req).await
    }

    // -- Parts --------------------------------------------------------------------------------

    async fn get_robot_parts(
        &self,
        req: Request<pb::GetRobotPartsRequest>,
    ) -> Res<pb::GetRobotPartsResponse> {
        parts::get_robot_parts(self, req).await
    }

    async fn get_robot_part(
        &self,
        req: Request<pb::GetRobotPartRequest>,
    ) -> Res<pb::GetRobotPartResponse> {
        parts::get_robot_part(self, req).await
    }

    async fn new_robot_part(
        &self,
        req: Request<pb::NewRobotPartRequest>,
    ) -> Res<pb::NewRobotPartResponse> {
        parts::new_robot_part(self, req).await
    }

    async fn update_robot_part(
        &self,
        req: Request<pb::UpdateRobotPartRequest>,
    ) -> Res<pb::UpdateRobotPartResponse> {
        parts::update_robot_part(self, req).await
    }

    async fn delete_robot_part(
        &self,
        req: Request<pb::DeleteRobotPartRequest>,
    ) -> Res<pb::DeleteRobotPartResponse> {
        parts::delete_robot_part(self, req).await
    }

    async fn mark_part_as_main(
        &self,
        req: Request<pb::MarkPartAsMainRequest>,
    ) -> Res<pb::MarkPartAsMainResponse> {
        parts::mark_part_as_main(self, req).await
    }

    async fn get_robot_part_history(
        &self,
        req: Request<pb::GetRobotPartHistoryRequest>,
    ) -> Res<pb::GetRobotPartHistoryResponse> {
        parts::get_robot_part_history(self, req).await
    }

    // -- Logs ---------------------------------------------------------------------------------

    async fn get_robot_part_logs(
        &self,
        req: Request<pb::GetRobotPartLogsRequest>,
    ) -> Res<pb::GetRobotPartLogsResponse> {
        logs::get_robot_part_logs(self, req).await
    }

    async fn tail_robot_part_logs(
        &self,
        req: Request<pb::TailRobotPartLogsRequest>,
    ) -> Res<tonic::codegen::BoxStream<pb::TailRobotPartLogsResponse>> {
        logs::tail_robot_part_logs(self, req).await
    }

    // -- Fragments ----------------------------------------------------------------------------

    async fn list_fragments(
        &self,
        req: Request<pb::ListFragmentsRequest>,
    ) -> Res<pb::ListFragmentsResponse> {
        fragments::list_fragments(self, req).await
    }

    async fn get_fragment(
        &self,
        req: Request<pb::GetFragmentRequest>,
    ) -> Res<pb::GetFragmentResponse> {
        fragments::get_fragment(self, req).await
    }

    async fn create_fragment(
        &self,
        req: Request<pb::CreateFragmentRequest>,
    ) -> Res<pb::CreateFragmentResponse> {
        fragments::create_fragment(self, req).await
    }

    async fn update_fragment(
        &self,
        req: Request<pb::UpdateFragmentRequest>,
    ) -> Res<pb::UpdateFragmentResponse> {
        fragments::update_fragment(self, req).await
    }

    async fn delete_fragment(
        &self,
        req: Request<pb::DeleteFragmentRequest>,
    ) -> Res<pb::DeleteFragmentResponse> {
        fragments::delete_fragment(self, req).await
    }

    async fn get_fragment_history(
        &self,
        req: Request<pb::GetFragmentHistoryRequest>,
    ) -> Res<pb::GetFragmentHistoryResponse> {
        fragments::get_fragment_history(self, req).await
    }

    async fn get_fragment_usage(
        &self,
        req: Request<pb::GetFragmentUsageRequest>,
    ) -> Res<pb::GetFragmentUsageResponse> {
        fragments::get_fragment_usage(self, req).await
    }

    async fn set_fragment_tag(
        &self,
        req: Request<pb::SetFragmentTagRequest>,
    ) -> Res<pb::SetFragmentTagResponse> {
        fragments::set_fragment_tag(self, req).await
    }

    async fn delete_fragment_tag(
        &self,
        req: Request<pb::DeleteFragmentTagRequest>,
    ) -> Res<pb::DeleteFragmentTagResponse> {
        fragments::delete_fragment_tag(self, req).await
    }

    // Roles of members.

    async fn list_authorizations(
        &self,
        req: Request<pb::ListAuthorizationsRequest>,
    ) -> Res<pb::ListAuthorizationsResponse> {
        roles::list_authorizations(self, req).await
    }

    async fn add_role(&self, req: Request<pb::AddRoleRequest>) -> Res<pb::AddRoleResponse> {
        roles::add_role(self, req).await
    }

    async fn remove_role(
        &self,
        req: Request<pb::RemoveRoleRequest>,
    ) -> Res<pb::RemoveRoleResponse> {
        roles::remove_role(self, req).await
    }

    async fn change_role(
        &self,
        req: Request<pb::ChangeRoleRequest>,
    ) -> Res<pb::ChangeRoleResponse> {
        roles::change_role(self, req).await
    }

    // API keys.

    async fn create_key(&self, req: Request<pb::CreateKeyRequest>) -> Res<pb::CreateKeyResponse> {
        keys::create_key(self, req).await
    }

    async fn delete_key(&self, req: Request<pb::DeleteKeyRequest>) -> Res<pb::DeleteKeyResponse> {
        keys::delete_key(self, req).await
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Res<pb::ListKeysResponse> {
        keys::list_keys(self, req).await
    }

    async fn rename_key(&self, req: Request<pb::RenameKeyRequest>) -> Res<pb::RenameKeyResponse> {
        keys::rename_key(self, req).await
    }

    async fn rotate_key(&self, req: Request<pb::RotateKeyRequest>) -> Res<pb::RotateKeyResponse> {
        keys::rotate_key(self, req).await
    }

    // Metadata.

    async fn get_organization_metadata(
        &self,
        req: Request<pb::GetOrganizationMetadataRequest>,
    ) -> Res<pb::GetOrganizationMetadataResponse> {
        metadata::get_organization_metadata(self, req).await
    }

    async fn update_organization_metadata(
        &self,
        req: Request<pb::UpdateOrganizationMetadataRequest>,
    ) -> Res<pb::UpdateOrganizationMetadataResponse> {
        metadata::update_organization_metadata(self, req).await
    }

    async fn get_location_metadata(
        &self,
        req: Request<pb::GetLocationMetadataRequest>,
    ) -> Res<pb::GetLocationMetadataResponse> {
        metadata::get_location_metadata(self, req).await
    }

    async fn update_location_metadata(
        &self,
        req: Request<pb::UpdateLocationMetadataRequest>,
    ) -> Res<pb::UpdateLocationMetadataResponse> {
        metadata::update_location_metadata(self, req).await
    }

    async fn get_robot_metadata(
        &self,
        req: Request<pb::GetRobotMetadataRequest>,
    ) -> Res<pb::GetRobotMetadataResponse> {
        metadata::get_robot_metadata(self, req).await
    }

    async fn update_robot_metadata(
        &self,
        req: Request<pb::UpdateRobotMetadataRequest>,
    ) -> Res<pb::UpdateRobotMetadataResponse> {
        metadata::update_robot_metadata(self, req).await
    }

    async fn get_robot_part_metadata(
        &self,
        req: Request<pb::GetRobotPartMetadataRequest>,
    ) -> Res<pb::GetRobotPartMetadataResponse> {
        metadata::get_robot_part_metadata(self, req).await
    }

    async fn update_robot_part_metadata(
        &self,
        req: Request<pb::UpdateRobotPartMetadataRequest>,
    ) -> Res<pb::UpdateRobotPartMetadataResponse> {
        metadata::update_robot_part_metadata(self, req).await
    }
}

/// The organization a location is to be shared with or unshared from: an existing
/// organization other than the location's owner.
fn share_target(db: &rusqlite::Connection, l: &store::LocationRow, org_id: &str) -> R<String> {
    require_uuid("organization_id", org_id)?;
    if store::org(db, org_id)?.is_none() {
        return Err(Status::not_found(format!(
            "organization {org_id} not found"
        )));
    }
    if org_id == l.org_id {
        return Err(Status::invalid_argument(format!(
            "organization_id {org_id} owns location {}; a location is shared with other organizations",
            l.id
        )));
    }
    Ok(org_id.to_string())
}

/// Parses a page token (the sequence number to continue below); empty means the first page.
fn page_token(token: Option<&str>) -> R<Option<i64>> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => t.parse::<i64>().map(Some).map_err(|_| {
            Status::invalid_argument(format!(
                "page_token {t:?} is not a token this server issued"
            ))
        }),
    }
}

/// A stream fed by a spawned task through a bounded channel.
fn async_stream<T, F, Fut>(f: F) -> Pin<Box<dyn tokio_stream::Stream<Item = T> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// `viam.app.v1.RobotService`: log ingestion only.
#[derive(Clone)]
pub struct RobotService {
    pub app: AppService,
}

#[tonic::async_trait]
impl pb::robot_service_server::RobotService for RobotService {
    async fn log(&self, req: Request<pb::LogRequest>) -> Res<pb::LogResponse> {
        let r = req.get_ref();
        if r.logs.len() > 1000 {
            return Err(Status::invalid_argument(
                "logs: at most 1000 entries per request",
            ));
        }
        let entries = Arc::new(r.logs.clone());
        let pushed = Arc::clone(&entries);
        let part_id = write(&self.app, req, move |tx, who, r| {
            let part = store::part_in(tx, who, "id", &r.id)?;
            store::insert_logs(tx, &part.id, &pushed)?;
            Ok(part.id)
        })
        .await?
        .into_inner();
        // Tail subscribers see the batch only after it is committed. No subscribers is fine.
        let _ = self.app.logs.send(LogBatch { part_id, entries });
        ok(pb::LogResponse {})
    }
}
