//! The store: Robots (machines).

use super::*;

pub struct RobotRow {
    pub id: String,
    pub org_id: String,
    pub location_id: String,
    pub name: String,
    pub created_us: i64,
    pub last_access_us: Option<i64>,
}

pub(super) const ROBOT_COLS: &str = "r.id, l.org_id, r.location_id, r.name, r.created_us, r.last_access_us \
                          FROM robots r JOIN locations l ON l.id = r.location_id";

pub(super) fn robot_from(r: &rusqlite::Row) -> rusqlite::Result<RobotRow> {
    Ok(RobotRow {
        id: r.get(0)?,
        org_id: r.get(1)?,
        location_id: r.get(2)?,
        name: r.get(3)?,
        created_us: r.get(4)?,
        last_access_us: r.get(5)?,
    })
}

impl RobotRow {
    pub fn to_pb(&self) -> pb::Robot {
        pb::Robot {
            id: self.id.clone(),
            name: self.name.clone(),
            location: self.location_id.clone(),
            last_access: self.last_access_us.map(ts),
            created_on: Some(ts(self.created_us)),
            online_state: online_state(self.last_access_us, now_us()).0 as i32,
            seconds_since_online: online_state(self.last_access_us, now_us()).1,
        }
    }
}

pub fn robot_row(db: &Connection, id: &str) -> R<Option<RobotRow>> {
    q(
        db.prepare_cached(&format!("SELECT {ROBOT_COLS} WHERE r.id = ?1"))
            .and_then(|mut st| st.query_row(params![id], robot_from).optional()),
    )
}

/// The machine `id` in a location the caller's organization owns (to change it).
pub fn robot_in(db: &Connection, who: &Access, field: &str, id: &str) -> R<RobotRow> {
    require_uuid(field, id)?;
    owned_by(
        db,
        who,
        "machine",
        id,
        robot_row(db, id)?,
        |r: &RobotRow| (&r.org_id, &r.location_id, Some(&r.id)),
    )
}

/// The machine `id` in a location the caller's organization owns or has shared with it.
pub fn robot_readable(db: &Connection, who: &Access, field: &str, id: &str) -> R<RobotRow> {
    require_uuid(field, id)?;
    readable_by(
        db,
        who,
        "machine",
        id,
        robot_row(db, id)?,
        |r: &RobotRow| (&r.org_id, &r.location_id, Some(&r.id)),
    )
}

pub fn robots_where(db: &Connection, cond: &str, arg: &str) -> R<Vec<pb::Robot>> {
    let mut st = q(db.prepare_cached(&format!(
        "SELECT {ROBOT_COLS} WHERE {cond} ORDER BY r.created_us, r.id"
    )))?;
    let rows = q(st.query_map(params![arg], robot_from))?;
    let rows: Vec<RobotRow> = q(rows.collect())?;
    Ok(rows.iter().map(RobotRow::to_pb).collect())
}

pub fn robot_name_taken(db: &Connection, location_id: &str, name: &str, except: &str) -> R<bool> {
    q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM robots WHERE location_id = ?1 AND name = ?2 AND id != ?3)",
        params![location_id, name, except],
        |r| r.get(0),
    ))
}

/// Whether a part named `name` exists in `location_id` (other than part `except`).
pub fn part_name_taken(db: &Connection, location_id: &str, name: &str, except: &str) -> R<bool> {
    q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM parts p JOIN robots r ON r.id = p.robot_id \
         WHERE r.location_id = ?1 AND p.name = ?2 AND p.id != ?3)",
        params![location_id, name, except],
        |r| r.get(0),
    ))
}

pub fn insert_robot(tx: &Transaction, location_id: &str, name: &str) -> R<String> {
    let id = new_uuid();
    q(tx.execute(
        "INSERT INTO robots (id, location_id, name, created_us) VALUES (?1, ?2, ?3, ?4)",
        params![id, location_id, name, now_us()],
    ))?;
    insert_part(tx, &id, &format!("{name}-main"), true)?;
    Ok(id)
}

pub fn delete_robot(tx: &Transaction, id: &str) -> R<()> {
    let parts: Vec<String> = {
        let mut st = q(tx.prepare_cached("SELECT id FROM parts WHERE robot_id = ?1"))?;
        let rows = q(st.query_map(params![id], |r| r.get(0)))?;
        q(rows.collect())?
    };
    for p in &parts {
        remove_part(tx, p)?;
    }
    q(tx.execute("DELETE FROM robots WHERE id = ?1", params![id]))?;
    super::drop_metadata(tx, super::MetadataOwner::Robot, id)?;
    drop_auths_on(tx, "robot", id)
}
