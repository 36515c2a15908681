//! Metadata of organizations, locations, machines and parts.

use super::*;

impl Client {
    pub(super) async fn get_metadata(
        &self,
        target: &MetadataTarget,
    ) -> Result<Metadata, CloudError> {
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

    pub(super) async fn update_metadata(
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
}
