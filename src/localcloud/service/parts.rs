//! The AppService handlers for parts: configs, the main part, history.

use super::*;

/// The generated handler's `GetRobotParts`; the server answers it from the stored encodings
/// (`encoded::get_robot_parts`, the same reply on the wire).
pub(super) async fn get_robot_parts(
    svc: &AppService,
    req: Request<pb::GetRobotPartsRequest>,
) -> Res<pb::GetRobotPartsResponse> {
    read(svc, req, |db, who, r| {
        let robot = store::robot_readable(db, who, "robot_id", &r.robot_id)?;
        let parts = store::parts_of(db, &robot.id)?;
        Ok(pb::GetRobotPartsResponse {
            parts: parts.iter().map(store::PartRow::to_pb).collect(),
        })
    })
    .await
}

pub(super) async fn get_robot_part(
    svc: &AppService,
    req: Request<pb::GetRobotPartRequest>,
) -> Res<pb::GetRobotPartResponse> {
    read(svc, req, |db, who, r| {
        let part = store::part_readable(db, who, "id", &r.id)?;
        let config_json = serde_json::to_string_pretty(&part.config_json())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(pb::GetRobotPartResponse {
            part: Some(part.to_pb()),
            config_json,
        })
    })
    .await
}

pub(super) async fn new_robot_part(
    svc: &AppService,
    req: Request<pb::NewRobotPartRequest>,
) -> Res<pb::NewRobotPartResponse> {
    write(svc, req, |tx, who, r| {
        let robot = store::robot_in(tx, who, "robot_id", &r.robot_id)?;
        let name = store::require_name("part_name", &r.part_name)?.trim();
        check_part_name(tx, &robot.location_id, name, "")?;
        let main = store::parts_of(tx, &robot.id)?.is_empty();
        Ok(pb::NewRobotPartResponse {
            part_id: store::insert_part(tx, &robot.id, name, main)?,
        })
    })
    .await
}

pub(super) async fn update_robot_part(
    svc: &AppService,
    req: Request<pb::UpdateRobotPartRequest>,
) -> Res<pb::UpdateRobotPartResponse> {
    write(svc, req, |tx, who, r| {
        let part = store::part_in(tx, who, "id", &r.id)?;
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

pub(super) async fn delete_robot_part(
    svc: &AppService,
    req: Request<pb::DeleteRobotPartRequest>,
) -> Res<pb::DeleteRobotPartResponse> {
    write(svc, req, |tx, who, r| {
        let part = store::part_in(tx, who, "part_id", &r.part_id)?;
        store::delete_part(tx, &part)?;
        Ok(pb::DeleteRobotPartResponse {})
    })
    .await
}

pub(super) async fn mark_part_as_main(
    svc: &AppService,
    req: Request<pb::MarkPartAsMainRequest>,
) -> Res<pb::MarkPartAsMainResponse> {
    write(svc, req, |tx, who, r| {
        let part = store::part_in(tx, who, "part_id", &r.part_id)?;
        store::mark_main(tx, &part)?;
        Ok(pb::MarkPartAsMainResponse {})
    })
    .await
}

pub(super) async fn get_robot_part_history(
    svc: &AppService,
    req: Request<pb::GetRobotPartHistoryRequest>,
) -> Res<pb::GetRobotPartHistoryResponse> {
    read(svc, req, |db, who, r| {
        let part = store::part_readable(db, who, "id", &r.id)?;
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
