//! The AppService handlers for machines (robots).

use super::*;

pub(super) async fn get_robot(
    svc: &AppService,
    req: Request<pb::GetRobotRequest>,
) -> Res<pb::GetRobotResponse> {
    read(svc, req, |db, who, r| {
        let robot = store::robot_readable(db, who, "id", &r.id)?;
        Ok(pb::GetRobotResponse {
            robot: Some(robot.to_pb()),
        })
    })
    .await
}

pub(super) async fn list_robots(
    svc: &AppService,
    req: Request<pb::ListRobotsRequest>,
) -> Res<pb::ListRobotsResponse> {
    read(svc, req, |db, who, r| {
        let l = store::location_readable(db, who, "location_id", &r.location_id)?;
        Ok(pb::ListRobotsResponse {
            robots: store::robots_where(db, "r.location_id = ?1", &l.id)?,
        })
    })
    .await
}

pub(super) async fn list_robots_for_org(
    svc: &AppService,
    req: Request<pb::ListRobotsForOrgRequest>,
) -> Res<pb::ListRobotsForOrgResponse> {
    read(svc, req, |db, who, r| {
        let org = store::key_org(db, who, &r.org_id, "org_id")?;
        let mut robots = store::robots_where(db, "l.org_id = ?1", &org.id)?;
        if !who.org_wide() {
            let mut reached = Vec::with_capacity(robots.len());
            for robot in robots {
                if who.covers(db, &robot.location, Some(&robot.id))? {
                    reached.push(robot);
                }
            }
            robots = reached;
        }
        Ok(pb::ListRobotsForOrgResponse { robots })
    })
    .await
}

pub(super) async fn list_robots_for_locations(
    svc: &AppService,
    req: Request<pb::ListRobotsForLocationsRequest>,
) -> Res<pb::ListRobotsForLocationsResponse> {
    read(svc, req, |db, who, r| {
        // Every id must be a location of the caller's organization; the answer lists the
        // machines of each location in the order asked (duplicates asked once).
        let mut robots = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in &r.location_ids {
            let l = store::location_readable(db, who, "location_ids", id)?;
            if seen.insert(l.id.clone()) {
                robots.extend(store::robots_where(db, "r.location_id = ?1", &l.id)?);
            }
        }
        Ok(pb::ListRobotsForLocationsResponse { robots })
    })
    .await
}

/// `ListMachineSummaries`: the online state of every part of the asked locations (every
/// location the key reaches when none is named), grouped by location and machine.
pub(super) async fn list_machine_summaries(
    svc: &AppService,
    req: Request<pb::ListMachineSummariesRequest>,
) -> Res<pb::ListMachineSummariesResponse> {
    read(svc, req, |db, who, r| {
        store::key_org(db, who, &r.organization_id, "organization_id")?;
        let locations = if r.location_ids.is_empty() {
            store::reachable_location_rows(db, who)?
        } else {
            let mut seen = std::collections::HashSet::new();
            let mut rows = vec![];
            for id in &r.location_ids {
                let l = store::location_readable(db, who, "location_ids", id)?;
                if seen.insert(l.id.clone()) {
                    rows.push(l);
                }
            }
            rows
        };
        let filter = store::SummaryFilter {
            fragment_ids: r.fragment_ids,
            limit: r.limit.map(i64::from),
        };
        Ok(pb::ListMachineSummariesResponse {
            location_summaries: store::machine_summaries(db, &locations, &filter)?,
        })
    })
    .await
}

pub(super) async fn new_robot(
    svc: &AppService,
    req: Request<pb::NewRobotRequest>,
) -> Res<pb::NewRobotResponse> {
    write(svc, req, |tx, who, r| {
        let name = store::require_name("name", &r.name)?.trim();
        let l = store::location_in(tx, who, "location", &r.location)?;
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

pub(super) async fn update_robot(
    svc: &AppService,
    req: Request<pb::UpdateRobotRequest>,
) -> Res<pb::UpdateRobotResponse> {
    write(svc, req, |tx, who, r| {
        let robot = store::robot_in(tx, who, "id", &r.id)?;
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
            l => store::location_in(tx, who, "location", l)?.id,
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
        let updated =
            store::robot_row(tx, &robot.id)?.ok_or_else(|| Status::internal("machine vanished"))?;
        Ok(pb::UpdateRobotResponse {
            robot: Some(updated.to_pb()),
        })
    })
    .await
}

pub(super) async fn delete_robot(
    svc: &AppService,
    req: Request<pb::DeleteRobotRequest>,
) -> Res<pb::DeleteRobotResponse> {
    write(svc, req, |tx, who, r| {
        let robot = store::robot_in(tx, who, "id", &r.id)?;
        store::delete_robot(tx, &robot.id)?;
        Ok(pb::DeleteRobotResponse {})
    })
    .await
}
