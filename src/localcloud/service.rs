//! `viam.app.v1.AppService` and `viam.app.v1.RobotService/Log` over the [`Store`].
//!
//! Each handler validates its arguments (`INVALID_ARGUMENT` naming the field), resolves ids in
//! the caller's organization (`NOT_FOUND` otherwise), and runs in one store call: a read on a
//! reader connection, or one write transaction. Semantics follow Viam's cloud as documented in
//! the project's SEMANTICS notes; where Viam's behaviour is unknown the choice is written here.

use super::auth::{Caller, caller};
use super::store::{self, R, Store, require, require_uuid, ts_us};
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

/// Runs a read for the caller of `req`.
async fn read<Req, T, F>(svc: &AppService, req: Request<Req>, f: F) -> Res<T>
where
    T: Send + 'static,
    Req: Send + 'static,
    F: FnOnce(&rusqlite::Connection, &Caller, Req) -> R<T> + Send + 'static,
{
    let who = caller(&req)?;
    let body = req.into_inner();
    svc.store
        .read(move |db| f(db, &who, body))
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

/// Runs one write transaction for the caller of `req`.
async fn write<Req, T, F>(svc: &AppService, req: Request<Req>, f: F) -> Res<T>
where
    T: Send + 'static,
    Req: Send + 'static,
    F: FnOnce(&rusqlite::Transaction, &Caller, Req) -> R<T> + Send + 'static,
{
    let who = caller(&req)?;
    let body = req.into_inner();
    svc.store
        .write(move |tx| f(tx, &who, body))
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
        read(self, req, |db, who, _| {
            Ok(pb::ListOrganizationsResponse {
                organizations: store::org(db, &who.org_id)?
                    .iter()
                    .map(store::OrgRow::to_pb)
                    .collect(),
            })
        })
        .await
    }

    async fn get_organization(
        &self,
        req: Request<pb::GetOrganizationRequest>,
    ) -> Res<pb::GetOrganizationResponse> {
        read(self, req, |db, who, r| {
            let org = store::caller_org(db, &who.org_id, &r.organization_id, "organization_id")?;
            Ok(pb::GetOrganizationResponse {
                organization: Some(org.to_pb()),
            })
        })
        .await
    }

    async fn update_organization(
        &self,
        req: Request<pb::UpdateOrganizationRequest>,
    ) -> Res<pb::UpdateOrganizationResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
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

    async fn get_organization_namespace_availability(
        &self,
        req: Request<pb::GetOrganizationNamespaceAvailabilityRequest>,
    ) -> Res<pb::GetOrganizationNamespaceAvailabilityResponse> {
        read(self, req, |db, _, r| {
            let ns = check_namespace(&r.public_namespace)?;
            Ok(pb::GetOrganizationNamespaceAvailabilityResponse {
                available: !store::namespace_taken(db, ns)?,
            })
        })
        .await
    }

    async fn list_organization_members(
        &self,
        req: Request<pb::ListOrganizationMembersRequest>,
    ) -> Res<pb::ListOrganizationMembersResponse> {
        read(self, req, |db, who, r| {
            let org = store::caller_org(db, &who.org_id, &r.organization_id, "organization_id")?;
            Ok(pb::ListOrganizationMembersResponse {
                members: store::members(db, &org.id)?,
                invites: store::invites(db, &org.id)?,
                organization_id: org.id,
            })
        })
        .await
    }

    async fn create_organization_invite(
        &self,
        req: Request<pb::CreateOrganizationInviteRequest>,
    ) -> Res<pb::CreateOrganizationInviteResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
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

    async fn update_organization_invite_authorizations(
        &self,
        req: Request<pb::UpdateOrganizationInviteAuthorizationsRequest>,
    ) -> Res<pb::UpdateOrganizationInviteAuthorizationsResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
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

    async fn delete_organization_invite(
        &self,
        req: Request<pb::DeleteOrganizationInviteRequest>,
    ) -> Res<pb::DeleteOrganizationInviteResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
            let email = check_email(&r.email)?;
            if !store::delete_invite(tx, &org.id, email)? {
                return Err(Status::not_found(format!("no invite for {email}")));
            }
            Ok(pb::DeleteOrganizationInviteResponse {})
        })
        .await
    }

    // -- Locations ----------------------------------------------------------------------------

    async fn create_location(
        &self,
        req: Request<pb::CreateLocationRequest>,
    ) -> Res<pb::CreateLocationResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
            let name = store::require_name("name", &r.name)?;
            let parent = match r.parent_location_id.as_deref() {
                None | Some("") => None,
                Some(p) => {
                    let parent = store::location_in(tx, &org.id, "parent_location_id", p)?;
                    if store::depth(tx, &parent.id)? >= MAX_LOCATION_DEPTH {
                        return Err(Status::failed_precondition(format!(
                            "parent_location_id {p}: locations nest at most {MAX_LOCATION_DEPTH} levels deep"
                        )));
                    }
                    Some(parent.id)
                }
            };
            let id = store::insert_location(tx, &org.id, name.trim(), parent.as_deref())?;
            let row = store::location_row(tx, &id)?.ok_or_else(|| Status::internal("location vanished"))?;
            Ok(pb::CreateLocationResponse { location: Some(store::location_pb(tx, &row)?) })
        })
        .await
    }

    async fn get_location(
        &self,
        req: Request<pb::GetLocationRequest>,
    ) -> Res<pb::GetLocationResponse> {
        read(self, req, |db, who, r| {
            let l = store::location_readable(db, &who.org_id, "location_id", &r.location_id)?;
            Ok(pb::GetLocationResponse {
                location: Some(store::location_pb(db, &l)?),
            })
        })
        .await
    }

    async fn update_location(
        &self,
        req: Request<pb::UpdateLocationRequest>,
    ) -> Res<pb::UpdateLocationResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            // Unset fields stay as they are; an empty name is treated as unset (Viam's examples
            // send name="" when only moving).
            let name = match r.name.as_deref().map(str::trim) {
                None | Some("") => l.name.clone(),
                Some(n) => {
                    store::check_name("name", n)?;
                    n.to_string()
                }
            };
            let parent = match r.parent_location_id.as_deref() {
                None => l.parent_id.clone(),
                Some("") => None,
                Some(p) => {
                    let parent = store::location_in(tx, &who.org_id, "parent_location_id", p)?;
                    if store::is_descendant_or_self(tx, &l.id, &parent.id)? {
                        return Err(Status::invalid_argument(format!(
                            "parent_location_id {p}: a location cannot move under itself or its own descendant"
                        )));
                    }
                    let levels = store::depth(tx, &parent.id)? + store::height(tx, &l.id)?;
                    if levels > MAX_LOCATION_DEPTH {
                        return Err(Status::failed_precondition(format!(
                            "parent_location_id {p}: the move would nest locations {levels} levels deep (at most {MAX_LOCATION_DEPTH})"
                        )));
                    }
                    Some(parent.id)
                }
            };
            if r.region.as_deref().is_some_and(|reg| !reg.is_empty() && reg != "local") {
                return Err(Status::invalid_argument("region: the local cloud has only the region \"local\""));
            }
            tx.execute(
                "UPDATE locations SET name = ?2, parent_id = ?3 WHERE id = ?1",
                rusqlite::params![l.id, name, parent],
            )
            .map_err(|e| Status::internal(e.to_string()))?;
            let row = store::location_row(tx, &l.id)?.ok_or_else(|| Status::internal("location vanished"))?;
            Ok(pb::UpdateLocationResponse { location: Some(store::location_pb(tx, &row)?) })
        })
        .await
    }

    async fn delete_location(
        &self,
        req: Request<pb::DeleteLocationRequest>,
    ) -> Res<pb::DeleteLocationResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            store::delete_location(tx, &l.id)?;
            Ok(pb::DeleteLocationResponse {})
        })
        .await
    }

    async fn list_locations(
        &self,
        req: Request<pb::ListLocationsRequest>,
    ) -> Res<pb::ListLocationsResponse> {
        read(self, req, |db, who, r| {
            let org = store::caller_org(db, &who.org_id, &r.organization_id, "organization_id")?;
            Ok(pb::ListLocationsResponse {
                locations: store::list_locations(db, &org.id)?,
            })
        })
        .await
    }

    async fn share_location(
        &self,
        req: Request<pb::ShareLocationRequest>,
    ) -> Res<pb::ShareLocationResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            let target = share_target(tx, &l, &r.organization_id)?;
            if !store::share_location(tx, &l.id, &target)? {
                return Err(Status::already_exists(format!(
                    "location {} is already shared with organization {target}",
                    l.id
                )));
            }
            Ok(pb::ShareLocationResponse {})
        })
        .await
    }

    async fn unshare_location(
        &self,
        req: Request<pb::UnshareLocationRequest>,
    ) -> Res<pb::UnshareLocationResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            let target = share_target(tx, &l, &r.organization_id)?;
            if !store::unshare_location(tx, &l.id, &target)? {
                return Err(Status::not_found(format!(
                    "location {} is not shared with organization {target}",
                    l.id
                )));
            }
            Ok(pb::UnshareLocationResponse {})
        })
        .await
    }

    async fn location_auth(
        &self,
        req: Request<pb::LocationAuthRequest>,
    ) -> Res<pb::LocationAuthResponse> {
        read(self, req, |db, who, r| {
            let l = store::location_in(db, &who.org_id, "location_id", &r.location_id)?;
            Ok(pb::LocationAuthResponse {
                auth: Some(store::location_auth(db, &l.id)?),
            })
        })
        .await
    }

    async fn create_location_secret(
        &self,
        req: Request<pb::CreateLocationSecretRequest>,
    ) -> Res<pb::CreateLocationSecretResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            let n = store::location_secrets(tx, &l.id)?.len();
            if n >= MAX_LOCATION_SECRETS {
                return Err(Status::failed_precondition(format!(
                    "location {} already has {n} secrets (at most {MAX_LOCATION_SECRETS}); delete one first",
                    l.id
                )));
            }
            store::add_location_secret(tx, &l.id)?;
            Ok(pb::CreateLocationSecretResponse { auth: Some(store::location_auth(tx, &l.id)?) })
        })
        .await
    }

    async fn delete_location_secret(
        &self,
        req: Request<pb::DeleteLocationSecretRequest>,
    ) -> Res<pb::DeleteLocationSecretResponse> {
        write(self, req, |tx, who, r| {
            let l = store::location_in(tx, &who.org_id, "location_id", &r.location_id)?;
            let secret_id = require_uuid("secret_id", &r.secret_id)?;
            let secrets = store::location_secrets(tx, &l.id)?;
            if !secrets.iter().any(|s| s.id == secret_id) {
                return Err(Status::not_found(format!(
                    "secret {secret_id} not found in location {}",
                    l.id
                )));
            }
            if secrets.len() == 1 {
                return Err(Status::failed_precondition(format!(
                    "secret {secret_id} is the last secret of location {}; create another first",
                    l.id
                )));
            }
            tx.execute(
                "DELETE FROM location_secrets WHERE id = ?1",
                rusqlite::params![secret_id],
            )
            .map_err(|e| Status::internal(e.to_string()))?;
            Ok(pb::DeleteLocationSecretResponse {})
        })
        .await
    }

    // -- Machines -----------------------------------------------------------------------------

    async fn get_robot(&self, req: Request<pb::GetRobotRequest>) -> Res<pb::GetRobotResponse> {
        read(self, req, |db, who, r| {
            let robot = store::robot_readable(db, &who.org_id, "id", &r.id)?;
            Ok(pb::GetRobotResponse {
                robot: Some(robot.to_pb()),
            })
        })
        .await
    }

    async fn list_robots(
        &self,
        req: Request<pb::ListRobotsRequest>,
    ) -> Res<pb::ListRobotsResponse> {
        read(self, req, |db, who, r| {
            let l = store::location_readable(db, &who.org_id, "location_id", &r.location_id)?;
            Ok(pb::ListRobotsResponse {
                robots: store::robots_where(db, "r.location_id = ?1", &l.id)?,
            })
        })
        .await
    }

    async fn list_robots_for_org(
        &self,
        req: Request<pb::ListRobotsForOrgRequest>,
    ) -> Res<pb::ListRobotsForOrgResponse> {
        read(self, req, |db, who, r| {
            let org = store::caller_org(db, &who.org_id, &r.org_id, "org_id")?;
            Ok(pb::ListRobotsForOrgResponse {
                robots: store::robots_where(db, "l.org_id = ?1", &org.id)?,
            })
        })
        .await
    }

    async fn list_robots_for_locations(
        &self,
        req: Request<pb::ListRobotsForLocationsRequest>,
    ) -> Res<pb::ListRobotsForLocationsResponse> {
        read(self, req, |db, who, r| {
            // Every id must be a location of the caller's organization; the answer lists the
            // machines of each location in the order asked (duplicates asked once).
            let mut robots = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for id in &r.location_ids {
                let l = store::location_readable(db, &who.org_id, "location_ids", id)?;
                if seen.insert(l.id.clone()) {
                    robots.extend(store::robots_where(db, "r.location_id = ?1", &l.id)?);
                }
            }
            Ok(pb::ListRobotsForLocationsResponse { robots })
        })
        .await
    }

    async fn new_robot(&self, req: Request<pb::NewRobotRequest>) -> Res<pb::NewRobotResponse> {
        write(self, req, |tx, who, r| {
            let name = store::require_name("name", &r.name)?.trim();
            let l = store::location_in(tx, &who.org_id, "location", &r.location)?;
            if store::robot_name_taken(tx, &l.id, name, "")? {
                return Err(Status::already_exists(format!(
                    "a machine named {name:?} already exists in location {}",
                    l.id
                )));
            }
            check_part_name(tx, &l.id, &format!("{name}-main"), "")?;
            Ok(pb::NewRobotResponse {
                id: store::insert_robot(tx, &l.id, name)?,
            })
        })
        .await
    }

    async fn update_robot(
        &self,
        req: Request<pb::UpdateRobotRequest>,
    ) -> Res<pb::UpdateRobotResponse> {
        write(self, req, |tx, who, r| {
            let robot = store::robot_in(tx, &who.org_id, "id", &r.id)?;
            // Empty name or location means "unchanged" (the CLI sends name "" when moving and
            // the Python SDK sends location "" when renaming).
            let name = match r.name.trim() {
                "" => robot.name.clone(),
                n => {
                    store::check_name("name", n)?;
                    n.to_string()
                }
            };
            let location = match r.location.as_str() {
                "" => robot.location_id.clone(),
                l => store::location_in(tx, &who.org_id, "location", l)?.id,
            };
            if store::robot_name_taken(tx, &location, &name, &robot.id)? {
                return Err(Status::already_exists(format!(
                    "a machine named {name:?} already exists in location {location}"
                )));
            }
            if location != robot.location_id {
                for p in store::parts_of(tx, &robot.id)? {
                    check_part_name(tx, &location, &p.name, &p.id)?;
                }
            }
            tx.execute(
                "UPDATE robots SET name = ?2, location_id = ?3 WHERE id = ?1",
                rusqlite::params![robot.id, name, location],
            )
            .map_err(|e| Status::internal(e.to_string()))?;
            let updated = store::robot_row(tx, &robot.id)?
                .ok_or_else(|| Status::internal("machine vanished"))?;
            Ok(pb::UpdateRobotResponse {
                robot: Some(updated.to_pb()),
            })
        })
        .await
    }

    async fn delete_robot(
        &self,
        req: Request<pb::DeleteRobotRequest>,
    ) -> Res<pb::DeleteRobotResponse> {
        write(self, req, |tx, who, r| {
            let robot = store::robot_in(tx, &who.org_id, "id", &r.id)?;
            store::delete_robot(tx, &robot.id)?;
            Ok(pb::DeleteRobotResponse {})
        })
        .await
    }

    // -- Parts --------------------------------------------------------------------------------

    async fn get_robot_parts(
        &self,
        req: Request<pb::GetRobotPartsRequest>,
    ) -> Res<pb::GetRobotPartsResponse> {
        read(self, req, |db, who, r| {
            let robot = store::robot_readable(db, &who.org_id, "robot_id", &r.robot_id)?;
            let parts = store::parts_of(db, &robot.id)?;
            Ok(pb::GetRobotPartsResponse {
                parts: parts.iter().map(store::PartRow::to_pb).collect(),
            })
        })
        .await
    }

    async fn get_robot_part(
        &self,
        req: Request<pb::GetRobotPartRequest>,
    ) -> Res<pb::GetRobotPartResponse> {
        read(self, req, |db, who, r| {
            let part = store::part_readable(db, &who.org_id, "id", &r.id)?;
            let config_json = serde_json::to_string_pretty(&part.config_json())
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok(pb::GetRobotPartResponse {
                part: Some(part.to_pb()),
                config_json,
            })
        })
        .await
    }

    async fn new_robot_part(
        &self,
        req: Request<pb::NewRobotPartRequest>,
    ) -> Res<pb::NewRobotPartResponse> {
        write(self, req, |tx, who, r| {
            let robot = store::robot_in(tx, &who.org_id, "robot_id", &r.robot_id)?;
            let name = store::require_name("part_name", &r.part_name)?.trim();
            check_part_name(tx, &robot.location_id, name, "")?;
            let main = store::parts_of(tx, &robot.id)?.is_empty();
            Ok(pb::NewRobotPartResponse {
                part_id: store::insert_part(tx, &robot.id, name, main)?,
            })
        })
        .await
    }

    async fn update_robot_part(
        &self,
        req: Request<pb::UpdateRobotPartRequest>,
    ) -> Res<pb::UpdateRobotPartResponse> {
        write(self, req, |tx, who, r| {
            let part = store::part_in(tx, &who.org_id, "id", &r.id)?;
            let name = store::require_name("name", &r.name)?.trim();
            let config = config_from(
                r.robot_config.as_ref(),
                r.robot_config_json.as_deref(),
                "robot_config_json",
            )?;
            if let Some(sent) = &r.last_known_update
                && ts_us(sent) != part.last_updated_us
            {
                return Err(stale("part", &part.id, sent, part.last_updated_us));
            }
            // A part may use only fragments its organization can see: its own, or public ones.
            // (Naming another organization's private fragment would otherwise block its
            // deletion.)
            for id in config.iter().flat_map(|c| store::fragment_refs(&c.value)) {
                store::fragment_visible(tx, &who.org_id, &id).map_err(|e| {
                    Status::invalid_argument(format!("robot_config fragments: {}", e.message()))
                })?;
            }
            check_part_name(tx, &part.location_id, name, &part.id)?;
            store::update_part(
                tx,
                &part,
                name,
                config.as_ref(),
                (pb::AuthenticationType::ApiKey, &who.key_id),
            )?;
            let updated =
                store::part_row(tx, &part.id)?.ok_or_else(|| Status::internal("part vanished"))?;
            Ok(pb::UpdateRobotPartResponse {
                part: Some(updated.to_pb()),
            })
        })
        .await
    }

    async fn delete_robot_part(
        &self,
        req: Request<pb::DeleteRobotPartRequest>,
    ) -> Res<pb::DeleteRobotPartResponse> {
        write(self, req, |tx, who, r| {
            let part = store::part_in(tx, &who.org_id, "part_id", &r.part_id)?;
            store::delete_part(tx, &part)?;
            Ok(pb::DeleteRobotPartResponse {})
        })
        .await
    }

    async fn mark_part_as_main(
        &self,
        req: Request<pb::MarkPartAsMainRequest>,
    ) -> Res<pb::MarkPartAsMainResponse> {
        write(self, req, |tx, who, r| {
            let part = store::part_in(tx, &who.org_id, "part_id", &r.part_id)?;
            store::mark_main(tx, &part)?;
            Ok(pb::MarkPartAsMainResponse {})
        })
        .await
    }

    async fn get_robot_part_history(
        &self,
        req: Request<pb::GetRobotPartHistoryRequest>,
    ) -> Res<pb::GetRobotPartHistoryResponse> {
        read(self, req, |db, who, r| {
            let part = store::part_readable(db, &who.org_id, "id", &r.id)?;
            let before = page_token(r.page_token.as_deref())?;
            let limit = match r.page_limit {
                Some(n) if n < 0 => {
                    return Err(Status::invalid_argument("page_limit must not be negative"));
                }
                Some(0) | None => DEFAULT_HISTORY_PAGE,
                Some(n) => n,
            };
            let (history, next) = store::part_history(
                db,
                &part.id,
                before,
                r.start.as_ref().map(ts_us),
                r.end.as_ref().map(ts_us),
                limit,
            )?;
            Ok(pb::GetRobotPartHistoryResponse {
                history,
                next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
            })
        })
        .await
    }

    // -- Logs ---------------------------------------------------------------------------------

    async fn get_robot_part_logs(
        &self,
        req: Request<pb::GetRobotPartLogsRequest>,
    ) -> Res<pb::GetRobotPartLogsResponse> {
        read(self, req, |db, who, r| {
            let part = store::part_readable(db, &who.org_id, "id", &r.id)?;
            let limit = match r.limit {
                Some(n) if n < 0 => {
                    return Err(Status::invalid_argument("limit must not be negative"));
                }
                Some(0) | None => DEFAULT_LOG_PAGE,
                Some(n) => n.min(MAX_LOG_PAGE),
            };
            let mut levels = r.levels.clone();
            #[allow(deprecated)]
            if r.errors_only {
                levels = vec!["error".into()];
            }
            let filter = store::LogFilter {
                before: page_token(r.page_token.as_deref())?,
                filter: r.filter.clone().filter(|f| !f.is_empty()),
                levels,
                start_us: r.start.as_ref().map(ts_us),
                end_us: r.end.as_ref().map(ts_us),
                limit,
            };
            let (logs, next) = store::part_logs(db, &part.id, &filter)?;
            Ok(pb::GetRobotPartLogsResponse {
                logs,
                next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
            })
        })
        .await
    }

    type TailRobotPartLogsStream = Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::TailRobotPartLogsResponse, Status>> + Send>,
    >;

    async fn tail_robot_part_logs(
        &self,
        req: Request<pb::TailRobotPartLogsRequest>,
    ) -> Res<Self::TailRobotPartLogsStream> {
        // Subscribe before looking the part up, so nothing pushed in between is missed.
        let mut rx = self.logs.subscribe();
        // The connection is busy while the tail is open, however quiet.
        let busy = req.remote_addr().map(|peer| self.streams.open(peer));
        let r = read(self, req, |db, who, r| {
            let part = store::part_readable(db, &who.org_id, "id", &r.id)?;
            Ok((part.id, r.errors_only, r.filter.filter(|f| !f.is_empty())))
        })
        .await?
        .into_inner();
        let (part_id, errors_only, filter) = r;
        let stream = async_stream(move |tx| async move {
            let _busy = busy;
            loop {
                let batch = match rx.recv().await {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "log tail fell behind; entries skipped");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if batch.part_id != part_id {
                    continue;
                }
                let logs: Vec<LogEntry> = batch
                    .entries
                    .iter()
                    .filter(|e| !errors_only || e.level.eq_ignore_ascii_case("error"))
                    .filter(|e| filter.as_deref().is_none_or(|f| e.message.contains(f)))
                    .cloned()
                    .collect();
                // Never an empty batch: clients take one as the end of the stream.
                if logs.is_empty() {
                    continue;
                }
                if tx
                    .send(Ok(pb::TailRobotPartLogsResponse { logs }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        ok(stream)
    }

    // -- Fragments ----------------------------------------------------------------------------

    async fn list_fragments(
        &self,
        req: Request<pb::ListFragmentsRequest>,
    ) -> Res<pb::ListFragmentsResponse> {
        read(self, req, |db, who, r| {
            let org = store::caller_org(db, &who.org_id, &r.organization_id, "organization_id")?;
            Ok(pb::ListFragmentsResponse {
                fragments: store::list_fragments(
                    db,
                    &org.id,
                    r.show_public,
                    &r.fragment_visibility,
                )?,
                // Usage is served per fragment by GetFragmentUsage.
                fragment_usages: Vec::new(),
            })
        })
        .await
    }

    async fn get_fragment(
        &self,
        req: Request<pb::GetFragmentRequest>,
    ) -> Res<pb::GetFragmentResponse> {
        read(self, req, |db, who, r| {
            let f = store::fragment_visible(db, &who.org_id, &r.id)?;
            // A version (a tag or a revision number) selects that revision's name, config and
            // visibility; counts and ids stay the fragment's own.
            let shown = match r.version.as_deref() {
                None | Some("") => f,
                Some(v) => {
                    let rev = store::resolve_version(db, &f, v)?;
                    store::fragment_at(db, &f, rev)?
                }
            };
            Ok(pb::GetFragmentResponse {
                fragment: Some(store::fragment_pb(db, &shown)?),
                fragment_usage: Some(store::fragment_usage(db, &shown.id, &who.org_id)?.total),
                revisions: store::fragment_revisions(db, &shown.id)?,
                tags: store::fragment_tags(db, &shown.id)?,
            })
        })
        .await
    }

    async fn create_fragment(
        &self,
        req: Request<pb::CreateFragmentRequest>,
    ) -> Res<pb::CreateFragmentResponse> {
        write(self, req, |tx, who, r| {
            let org = store::caller_org(tx, &who.org_id, &r.organization_id, "organization_id")?;
            let name = store::require_name("name", &r.name)?.trim();
            let vis = visibility(r.visibility.unwrap_or_default())?;
            let config = config_from(r.config.as_ref(), None, "config")?
                .map_or_else(|| "{}".to_string(), |c| c.text);
            let id = store::insert_fragment(tx, &org.id, name, &config, vis)?;
            let row = store::fragment_row(tx, &id)?
                .ok_or_else(|| Status::internal("fragment vanished"))?;
            Ok(pb::CreateFragmentResponse {
                fragment: Some(store::fragment_pb(tx, &row)?),
            })
        })
        .await
    }

    async fn update_fragment(
        &self,
        req: Request<pb::UpdateFragmentRequest>,
    ) -> Res<pb::UpdateFragmentResponse> {
        write(self, req, |tx, who, r| {
            let f = store::fragment_owned(tx, &who.org_id, &r.id)?;
            let name = store::require_name("name", &r.name)?.trim();
            if let Some(sent) = &r.last_known_update
                && ts_us(sent) != f.last_updated_us
            {
                return Err(stale("fragment", &f.id, sent, f.last_updated_us));
            }
            let vis = match (r.visibility, r.public) {
                (Some(v), _) => visibility(v)?,
                (None, Some(true)) => pb::FragmentVisibility::Public as i32,
                (None, Some(false)) => pb::FragmentVisibility::Private as i32,
                (None, None) => f.visibility,
            };
            let config = config_from(
                r.config.as_ref(),
                r.fragment_config_json.as_deref(),
                "fragment_config_json",
            )?;
            // Every update makes a new revision, even one that changes only the name.
            let row = store::update_fragment(
                tx,
                &f,
                name,
                config.as_ref().map(|c| c.text.as_str()),
                vis,
                (pb::AuthenticationType::ApiKey, &who.key_id),
            )?;
            Ok(pb::UpdateFragmentResponse {
                fragment: Some(store::fragment_pb(tx, &row)?),
            })
        })
        .await
    }

    async fn delete_fragment(
        &self,
        req: Request<pb::DeleteFragmentRequest>,
    ) -> Res<pb::DeleteFragmentResponse> {
        write(self, req, |tx, who, r| {
            let f = store::fragment_owned(tx, &who.org_id, &r.id)?;
            // Viam's current docs: "Fragments can only be deleted if no machines are using them".
            let users = store::fragment_part_count(tx, &f.id)?;
            if users > 0 {
                return Err(Status::failed_precondition(format!(
                    "fragment {} is used by {users} part(s); remove it from their configs first",
                    f.id
                )));
            }
            store::delete_fragment(tx, &f.id)?;
            Ok(pb::DeleteFragmentResponse {})
        })
        .await
    }

    async fn get_fragment_history(
        &self,
        req: Request<pb::GetFragmentHistoryRequest>,
    ) -> Res<pb::GetFragmentHistoryResponse> {
        read(self, req, |db, who, r| {
            let f = store::fragment_owned(db, &who.org_id, &r.id)?;
            let before = page_token(r.page_token.as_deref())?;
            let limit = match r.page_limit {
                Some(n) if n < 0 => {
                    return Err(Status::invalid_argument("page_limit must not be negative"));
                }
                Some(0) | None => DEFAULT_FRAGMENT_HISTORY_PAGE,
                Some(n) => n,
            };
            let (history, next) = store::fragment_history(db, &f.id, before, limit)?;
            Ok(pb::GetFragmentHistoryResponse {
                history,
                next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_fragment_usage(
        &self,
        req: Request<pb::GetFragmentUsageRequest>,
    ) -> Res<pb::GetFragmentUsageResponse> {
        read(self, req, |db, who, r| {
            let f = store::fragment_visible(db, &who.org_id, &r.fragment_id)?;
            Ok(pb::GetFragmentUsageResponse {
                version_usages: store::fragment_usage(db, &f.id, &who.org_id)?.by_version,
            })
        })
        .await
    }

    async fn set_fragment_tag(
        &self,
        req: Request<pb::SetFragmentTagRequest>,
    ) -> Res<pb::SetFragmentTagResponse> {
        write(self, req, |tx, who, r| {
            let f = store::fragment_owned(tx, &who.org_id, &r.fragment_id)?;
            let tag = check_tag(&r.tag)?;
            let revision = revision_number("revision", &r.revision)?;
            store::fragment_at(tx, &f, revision)?;
            store::set_fragment_tag(tx, &f.id, tag, revision)?;
            Ok(pb::SetFragmentTagResponse {
                tags: store::fragment_tags(tx, &f.id)?,
            })
        })
        .await
    }

    async fn delete_fragment_tag(
        &self,
        req: Request<pb::DeleteFragmentTagRequest>,
    ) -> Res<pb::DeleteFragmentTagResponse> {
        write(self, req, |tx, who, r| {
            let f = store::fragment_owned(tx, &who.org_id, &r.fragment_id)?;
            let tag = require("tag", &r.tag)?;
            if !store::delete_fragment_tag(tx, &f.id, tag)? {
                return Err(Status::not_found(format!(
                    "fragment {} has no tag {tag:?}",
                    f.id
                )));
            }
            Ok(pb::DeleteFragmentTagResponse {
                tags: store::fragment_tags(tx, &f.id)?,
            })
        })
        .await
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
            let part = store::part_in(tx, &who.org_id, "id", &r.id)?;
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
