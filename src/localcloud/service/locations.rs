//! The AppService handlers for locations, their sharing and secrets.

use super::*;

pub(super) async fn create_location(
    svc: &AppService,
    req: Request<pb::CreateLocationRequest>,
) -> Res<pb::CreateLocationResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::key_org(tx, who, &r.organization_id, "organization_id")?;
        let name = store::require_name("name", &r.name)?;
        let parent = match r.parent_location_id.as_deref() {
            None | Some("") => {
                who.require_org_wide("creating a top-level location")?;
                None
            }
            Some(p) => {
                let parent = store::location_in(tx, who, "parent_location_id", p)?;
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

pub(super) async fn get_location(
    svc: &AppService,
    req: Request<pb::GetLocationRequest>,
) -> Res<pb::GetLocationResponse> {
    read(svc, req, |db, who, r| {
        let l = store::location_readable(db, who, "location_id", &r.location_id)?;
        Ok(pb::GetLocationResponse {
            location: Some(store::location_pb(db, &l)?),
        })
    })
    .await
}

pub(super) async fn update_location(
    svc: &AppService,
    req: Request<pb::UpdateLocationRequest>,
) -> Res<pb::UpdateLocationResponse> {
    write(svc, req, |tx, who, r| {
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
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
                let parent = store::location_in(tx, who, "parent_location_id", p)?;
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

pub(super) async fn delete_location(
    svc: &AppService,
    req: Request<pb::DeleteLocationRequest>,
) -> Res<pb::DeleteLocationResponse> {
    write(svc, req, |tx, who, r| {
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
        store::delete_location(tx, &l.id)?;
        Ok(pb::DeleteLocationResponse {})
    })
    .await
}

pub(super) async fn list_locations(
    svc: &AppService,
    req: Request<pb::ListLocationsRequest>,
) -> Res<pb::ListLocationsResponse> {
    read(svc, req, |db, who, r| {
        store::key_org(db, who, &r.organization_id, "organization_id")?;
        Ok(pb::ListLocationsResponse {
            locations: store::list_locations(db, who)?,
        })
    })
    .await
}

pub(super) async fn share_location(
    svc: &AppService,
    req: Request<pb::ShareLocationRequest>,
) -> Res<pb::ShareLocationResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("sharing a location")?;
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
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

pub(super) async fn unshare_location(
    svc: &AppService,
    req: Request<pb::UnshareLocationRequest>,
) -> Res<pb::UnshareLocationResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("sharing a location")?;
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
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

pub(super) async fn location_auth(
    svc: &AppService,
    req: Request<pb::LocationAuthRequest>,
) -> Res<pb::LocationAuthResponse> {
    read(svc, req, |db, who, r| {
        let l = store::location_in(db, who, "location_id", &r.location_id)?;
        Ok(pb::LocationAuthResponse {
            auth: Some(store::location_auth(db, &l.id)?),
        })
    })
    .await
}

pub(super) async fn create_location_secret(
    svc: &AppService,
    req: Request<pb::CreateLocationSecretRequest>,
) -> Res<pb::CreateLocationSecretResponse> {
    write(svc, req, |tx, who, r| {
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
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

pub(super) async fn delete_location_secret(
    svc: &AppService,
    req: Request<pb::DeleteLocationSecretRequest>,
) -> Res<pb::DeleteLocationSecretResponse> {
    write(svc, req, |tx, who, r| {
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
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
