//! The AppService handlers for metadata on organizations, locations, machines and parts.
//!
//! Reading needs read access to the resource (a location shared with the caller's organization
//! can be read); writing needs ownership, like every other change. An update replaces the whole
//! object; a request without `data` clears it (`{}`).

use super::*;
use store::MetadataOwner;

fn data_of(s: Option<&prost_types::Struct>) -> serde_json::Value {
    s.map_or_else(|| serde_json::json!({}), store::json_from_struct)
}

fn struct_of(v: &serde_json::Value) -> Option<prost_types::Struct> {
    Some(store::struct_from_json(v))
}

pub(super) async fn get_organization_metadata(
    svc: &AppService,
    req: Request<pb::GetOrganizationMetadataRequest>,
) -> Res<pb::GetOrganizationMetadataResponse> {
    read(svc, req, |db, who, r| {
        let org = store::key_org(db, who, &r.organization_id, "organization_id")?;
        let data = store::metadata(db, MetadataOwner::Organization, &org.id)?;
        Ok(pb::GetOrganizationMetadataResponse {
            data: struct_of(&data),
        })
    })
    .await
}

pub(super) async fn update_organization_metadata(
    svc: &AppService,
    req: Request<pb::UpdateOrganizationMetadataRequest>,
) -> Res<pb::UpdateOrganizationMetadataResponse> {
    write(svc, req, |tx, who, r| {
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        let data = data_of(r.data.as_ref());
        store::set_metadata(tx, MetadataOwner::Organization, &org.id, &data)?;
        Ok(pb::UpdateOrganizationMetadataResponse {})
    })
    .await
}

pub(super) async fn get_location_metadata(
    svc: &AppService,
    req: Request<pb::GetLocationMetadataRequest>,
) -> Res<pb::GetLocationMetadataResponse> {
    read(svc, req, |db, who, r| {
        let l = store::location_readable(db, who, "location_id", &r.location_id)?;
        let data = store::metadata(db, MetadataOwner::Location, &l.id)?;
        Ok(pb::GetLocationMetadataResponse {
            data: struct_of(&data),
        })
    })
    .await
}

pub(super) async fn update_location_metadata(
    svc: &AppService,
    req: Request<pb::UpdateLocationMetadataRequest>,
) -> Res<pb::UpdateLocationMetadataResponse> {
    write(svc, req, |tx, who, r| {
        let l = store::location_in(tx, who, "location_id", &r.location_id)?;
        let data = data_of(r.data.as_ref());
        store::set_metadata(tx, MetadataOwner::Location, &l.id, &data)?;
        Ok(pb::UpdateLocationMetadataResponse {})
    })
    .await
}

pub(super) async fn get_robot_metadata(
    svc: &AppService,
    req: Request<pb::GetRobotMetadataRequest>,
) -> Res<pb::GetRobotMetadataResponse> {
    read(svc, req, |db, who, r| {
        let robot = store::robot_readable(db, who, "id", &r.id)?;
        let data = store::metadata(db, MetadataOwner::Robot, &robot.id)?;
        Ok(pb::GetRobotMetadataResponse {
            data: struct_of(&data),
        })
    })
    .await
}

pub(super) async fn update_robot_metadata(
    svc: &AppService,
    req: Request<pb::UpdateRobotMetadataRequest>,
) -> Res<pb::UpdateRobotMetadataResponse> {
    write(svc, req, |tx, who, r| {
        let robot = store::robot_in(tx, who, "id", &r.id)?;
        let data = data_of(r.data.as_ref());
        store::set_metadata(tx, MetadataOwner::Robot, &robot.id, &data)?;
        Ok(pb::UpdateRobotMetadataResponse {})
    })
    .await
}

pub(super) async fn get_robot_part_metadata(
    svc: &AppService,
    req: Request<pb::GetRobotPartMetadataRequest>,
) -> Res<pb::GetRobotPartMetadataResponse> {
    read(svc, req, |db, who, r| {
        let part = store::part_readable(db, who, "id", &r.id)?;
        let data = store::metadata(db, MetadataOwner::Part, &part.id)?;
        Ok(pb::GetRobotPartMetadataResponse {
            data: struct_of(&data),
        })
    })
    .await
}

pub(super) async fn update_robot_part_metadata(
    svc: &AppService,
    req: Request<pb::UpdateRobotPartMetadataRequest>,
) -> Res<pb::UpdateRobotPartMetadataResponse> {
    write(svc, req, |tx, who, r| {
        let part = store::part_in(tx, who, "id", &r.id)?;
        let data = data_of(r.data.as_ref());
        store::set_metadata(tx, MetadataOwner::Part, &part.id, &data)?;
        Ok(pb::UpdateRobotPartMetadataResponse {})
    })
    .await
}
