//! The store: Locations, their sharing, nesting and secrets.

use super::*;

pub struct LocationRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub created_us: i64,
}

pub fn location_row(db: &Connection, id: &str) -> R<Option<LocationRow>> {
    q(cached_row(
        db,
        "SELECT id, org_id, name, parent_id, created_us FROM locations WHERE id = ?1",
        params![id],
        |r| {
            Ok(LocationRow {
                id: r.get(0)?,
                org_id: r.get(1)?,
                name: r.get(2)?,
                parent_id: r.get(3)?,
                created_us: r.get(4)?,
            })
        },
    )
    .optional())
}

/// Whether location `location_id` is shared with organization `org_id`.
pub fn shared_with(db: &Connection, location_id: &str, org_id: &str) -> R<bool> {
    q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM location_shares WHERE location_id = ?1 AND org_id = ?2)",
        params![location_id, org_id],
        |r| r.get(0),
    ))
}

/// The organizations a location is shared with (not its owner), by id.
pub fn location_shares(db: &Connection, location_id: &str) -> R<Vec<String>> {
    let mut st = q(db.prepare_cached(
        "SELECT org_id FROM location_shares WHERE location_id = ?1 ORDER BY org_id",
    ))?;
    let rows = q(st.query_map(params![location_id], |r| r.get(0)))?;
    q(rows.collect())
}

/// Shares a location with another organization; whether it was not shared with it yet.
pub fn share_location(tx: &Transaction, location_id: &str, org_id: &str) -> R<bool> {
    Ok(q(tx.execute(
        "INSERT OR IGNORE INTO location_shares (location_id, org_id) VALUES (?1, ?2)",
        params![location_id, org_id],
    ))? > 0)
}

/// Stops sharing a location with an organization; whether it was shared.
pub fn unshare_location(tx: &Transaction, location_id: &str, org_id: &str) -> R<bool> {
    Ok(q(tx.execute(
        "DELETE FROM location_shares WHERE location_id = ?1 AND org_id = ?2",
        params![location_id, org_id],
    ))? > 0)
}

/// How the calling key may reach something in a location.
pub(super) enum Reach {
    /// Its organization owns the location and a role of the key covers it.
    Owner,
    /// The location is shared with its organization and the key has a role on the whole
    /// organization: it may read, not change.
    Shared,
    None,
}

/// How `who` reaches something of organization `owner` in `location_id` (on machine
/// `robot_id`, for a machine or part).
pub(super) fn reach(
    db: &Connection,
    owner: &str,
    location_id: &str,
    robot_id: Option<&str>,
    who: &Access,
) -> R<Reach> {
    Ok(if owner == who.org_id {
        if who.covers(db, location_id, robot_id)? {
            Reach::Owner
        } else {
            Reach::None
        }
    } else if who.org_wide() && shared_with(db, location_id, &who.org_id)? {
        Reach::Shared
    } else {
        Reach::None
    })
}

/// `PERMISSION_DENIED` for a change to something in a location shared with the caller.
pub(super) fn shared_only(what: &str, id: &str, owner: &str) -> Status {
    Status::permission_denied(format!(
        "{what} {id} is in a location organization {owner} shares with yours; only {owner} can change it"
    ))
}

/// Where a row sits: its organization, its location (for a location, itself) and its machine
/// (for a machine, itself; none for a location).
pub(super) type Place<T> = fn(&T) -> (&str, &str, Option<&str>);

/// `row` (the `what` with id `id`) when the caller's organization owns its location and a role
/// of the calling key covers it, to change it: `PERMISSION_DENIED` when its location is only
/// shared with the caller, `NOT_FOUND` when it is missing or out of reach.
pub(super) fn owned_by<T>(
    db: &Connection,
    caller: &Access,
    what: &str,
    id: &str,
    row: Option<T>,
    place: Place<T>,
) -> R<T> {
    let Some(row) = row else {
        return Err(Status::not_found(format!("{what} {id} not found")));
    };
    let (owner, location, robot) = place(&row);
    match reach(db, owner, location, robot, caller)? {
        Reach::Owner => Ok(row),
        Reach::Shared => Err(shared_only(what, id, owner)),
        Reach::None => Err(Status::not_found(format!("{what} {id} not found"))),
    }
}

/// `row` when the calling key reaches it (see [`reach`]), to read it; `NOT_FOUND` otherwise.
pub(super) fn readable_by<T>(
    db: &Connection,
    caller: &Access,
    what: &str,
    id: &str,
    row: Option<T>,
    place: Place<T>,
) -> R<T> {
    match row {
        Some(row) => {
            let (owner, location, robot) = place(&row);
            if matches!(reach(db, owner, location, robot, caller)?, Reach::None) {
                Err(Status::not_found(format!("{what} {id} not found")))
            } else {
                Ok(row)
            }
        }
        None => Err(Status::not_found(format!("{what} {id} not found"))),
    }
}

/// The location `id` that the caller's organization owns (to change it): `INVALID_ARGUMENT`
/// for a malformed id, `PERMISSION_DENIED` for one only shared with it, `NOT_FOUND` otherwise.
pub fn location_in(db: &Connection, who: &Access, field: &str, id: &str) -> R<LocationRow> {
    require_location_id(field, id)?;
    owned_by(
        db,
        who,
        "location",
        id,
        location_row(db, id)?,
        |l: &LocationRow| (&l.org_id, &l.id, None),
    )
}

/// The location `id` that the caller's organization owns or has shared with it (to read it).
pub fn location_readable(db: &Connection, who: &Access, field: &str, id: &str) -> R<LocationRow> {
    require_location_id(field, id)?;
    readable_by(
        db,
        who,
        "location",
        id,
        location_row(db, id)?,
        |l: &LocationRow| (&l.org_id, &l.id, None),
    )
}

/// Depth of a location: 1 for a top-level one.
pub fn depth(db: &Connection, id: &str) -> R<usize> {
    let mut d = 0;
    let mut cur = Some(id.to_string());
    while let Some(c) = cur {
        d += 1;
        if d > 64 {
            return Err(internal("location parent chain too long"));
        }
        cur = location_row(db, &c)?.and_then(|l| l.parent_id);
    }
    Ok(d)
}

pub(super) fn children(db: &Connection, id: &str) -> R<Vec<String>> {
    let mut st = q(db.prepare_cached("SELECT id FROM locations WHERE parent_id = ?1"))?;
    let rows = q(st.query_map(params![id], |r| r.get(0)))?;
    q(rows.collect())
}

/// Levels in the subtree rooted at `id` (1 for a leaf).
pub fn height(db: &Connection, id: &str) -> R<usize> {
    let mut h = 0;
    for c in children(db, id)? {
        h = h.max(height(db, &c)?);
    }
    Ok(h + 1)
}

pub fn is_descendant_or_self(db: &Connection, ancestor: &str, id: &str) -> R<bool> {
    let mut cur = Some(id.to_string());
    while let Some(c) = cur {
        if c == ancestor {
            return Ok(true);
        }
        cur = location_row(db, &c)?.and_then(|l| l.parent_id);
    }
    Ok(false)
}

pub fn location_secrets(db: &Connection, location_id: &str) -> R<Vec<pb::SharedSecret>> {
    let mut st = q(db.prepare_cached(
        "SELECT id, secret, created_us FROM location_secrets WHERE location_id = ?1 ORDER BY created_us, id",
    ))?;
    let rows = q(st.query_map(params![location_id], |r| {
        Ok(pb::SharedSecret {
            id: r.get(0)?,
            secret: r.get(1)?,
            created_on: Some(ts(r.get(2)?)),
            state: pb::shared_secret::State::Enabled as i32,
        })
    }))?;
    q(rows.collect())
}

pub fn location_auth(db: &Connection, location_id: &str) -> R<pb::LocationAuth> {
    Ok(pb::LocationAuth {
        location_id: location_id.to_string(),
        secrets: location_secrets(db, location_id)?,
    })
}

pub fn add_location_secret(tx: &Transaction, location_id: &str) -> R<()> {
    q(tx.execute(
        "INSERT INTO location_secrets (id, location_id, secret, created_us) VALUES (?1, ?2, ?3, ?4)",
        params![new_uuid(), location_id, random_alnum(32), now_us()],
    ))
    .map(|_| ())
}

pub fn location_pb(db: &Connection, l: &LocationRow) -> R<pb::Location> {
    let robot_count: i64 = q(cached_row(
        db,
        "SELECT COUNT(*) FROM robots WHERE location_id = ?1",
        params![l.id],
        |r| r.get(0),
    ))?;
    Ok(pb::Location {
        id: l.id.clone(),
        name: l.name.clone(),
        created_on: Some(ts(l.created_us)),
        parent_location_id: l.parent_id.clone().unwrap_or_default(),
        auth: Some(location_auth(db, &l.id)?),
        // The owning organization is the primary one; then those it shares the location with.
        organizations: std::iter::once(pb::LocationOrganization {
            organization_id: l.org_id.clone(),
            primary: true,
        })
        .chain(
            location_shares(db, &l.id)?
                .into_iter()
                .map(|organization_id| pb::LocationOrganization {
                    organization_id,
                    primary: false,
                }),
        )
        .collect(),
        robot_count: robot_count as i32,
    })
}

/// The locations of `who`'s organization and those shared with it that the key reaches.
pub fn list_locations(db: &Connection, who: &Access) -> R<Vec<pb::Location>> {
    let rows = reachable_location_rows(db, who)?;
    rows.iter().map(|l| location_pb(db, l)).collect()
}

/// [`location_rows`] of `who`'s organization, only those a role of the key reaches.
pub fn reachable_location_rows(db: &Connection, who: &Access) -> R<Vec<LocationRow>> {
    let mut rows = location_rows(db, &who.org_id)?;
    let mut keep = Vec::with_capacity(rows.len());
    for l in &rows {
        keep.push(!matches!(
            reach(db, &l.org_id, &l.id, None, who)?,
            Reach::None
        ));
    }
    let mut keep = keep.into_iter();
    rows.retain(|_| keep.next().unwrap_or(false));
    Ok(rows)
}

/// The locations `org_id` owns or has been shared, oldest first.
pub fn location_rows(db: &Connection, org_id: &str) -> R<Vec<LocationRow>> {
    let mut st = q(db.prepare_cached(
        "SELECT id, org_id, name, parent_id, created_us FROM locations \
         WHERE org_id = ?1 OR id IN (SELECT location_id FROM location_shares WHERE org_id = ?1) \
         ORDER BY created_us, id",
    ))?;
    let rows = q(st.query_map(params![org_id], |r| {
        Ok(LocationRow {
            id: r.get(0)?,
            org_id: r.get(1)?,
            name: r.get(2)?,
            parent_id: r.get(3)?,
            created_us: r.get(4)?,
        })
    }))?;
    q(rows.collect())
}

pub fn insert_location(
    tx: &Transaction,
    org_id: &str,
    name: &str,
    parent: Option<&str>,
) -> R<String> {
    let id = random_alnum(10);
    q(tx.execute(
        "INSERT INTO locations (id, org_id, name, parent_id, created_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, org_id, name, parent, now_us()],
    ))?;
    add_location_secret(tx, &id)?;
    Ok(id)
}

pub fn delete_location(tx: &Transaction, id: &str) -> R<()> {
    let robots: i64 = q(cached_row(
        tx,
        "SELECT COUNT(*) FROM robots WHERE location_id = ?1",
        params![id],
        |r| r.get(0),
    ))?;
    if robots > 0 {
        return Err(Status::failed_precondition(format!(
            "location {id} still has {robots} machine(s); delete or move them first"
        )));
    }
    let kids = children(tx, id)?;
    if !kids.is_empty() {
        return Err(Status::failed_precondition(format!(
            "location {id} still has {} child location(s); delete or move them first",
            kids.len()
        )));
    }
    q(tx.execute(
        "DELETE FROM location_secrets WHERE location_id = ?1",
        params![id],
    ))?;
    q(tx.execute(
        "DELETE FROM location_shares WHERE location_id = ?1",
        params![id],
    ))?;
    q(tx.execute("DELETE FROM locations WHERE id = ?1", params![id]))?;
    super::drop_metadata(tx, super::MetadataOwner::Location, id)?;
    drop_auths_on(tx, "location", id)
}
