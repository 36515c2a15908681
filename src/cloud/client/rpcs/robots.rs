//! Machines (robots).

use super::*;

impl Client {
    pub(super) async fn list_machines(
        &self,
        location_id: &str,
    ) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobots", app.list_robots, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    pub(super) async fn list_machines_for_org(
        &self,
        org_id: &str,
    ) -> Result<Vec<Machine>, CloudError> {
        let req = pb::ListRobotsForOrgRequest {
            org_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListRobotsForOrg", app.list_robots_for_org, req).await?;
        Ok(resp.robots.into_iter().map(convert::machine).collect())
    }

    pub(super) async fn list_machines_for_locations(
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

    pub(super) async fn machine_summaries(
        &self,
        org_id: &str,
        location_ids: &[String],
    ) -> Result<Vec<PartSummary>, CloudError> {
        let req = pb::ListMachineSummariesRequest {
            organization_id: org_id.to_string(),
            fragment_ids: vec![],
            location_ids: location_ids.to_vec(),
            limit: None,
        };
        let resp = rpc!(
            self,
            Read,
            "ListMachineSummaries",
            app.list_machine_summaries,
            req
        )
        .await?;
        Ok(convert::part_summaries(resp))
    }

    pub(super) async fn get_machine(&self, machine_id: &str) -> Result<Machine, CloudError> {
        let req = pb::GetRobotRequest {
            id: machine_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetRobot", app.get_robot, req).await?;
        Ok(convert::machine(required("GetRobot", "robot", resp.robot)?))
    }

    pub(super) async fn new_machine(
        &self,
        name: &str,
        location_id: &str,
    ) -> Result<String, CloudError> {
        let req = pb::NewRobotRequest {
            name: name.to_string(),
            location: location_id.to_string(),
        };
        let resp = rpc!(self, Write, "NewRobot", app.new_robot, req).await?;
        Ok(resp.id)
    }

    pub(super) async fn update_machine(
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

    pub(super) async fn delete_machine(&self, machine_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteRobotRequest {
            id: machine_id.to_string(),
        };
        rpc!(self, Write, "DeleteRobot", app.delete_robot, req).await?;
        Ok(())
    }
}
