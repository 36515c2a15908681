//! The store: the roles organization members hold (`ListAuthorizations`, `AddRole`,
//! `RemoveRole`, `ChangeRole`).
//!
//! One row per (member, resource, role). An organization always keeps at least one member
//! who owns it: removing or changing away the last organization owner is refused
//! (`FAILED_PRECONDITION`), as on Viam's cloud. Rows go with a deleted location or machine.

use super::*;

/// The user id of a member of `org_id` (`NOT_FOUND` for anyone else).
pub fn member_id<'a>(db: &Connection, org_id: &str, identity_id: &'a str) -> R<&'a str> {
    require("identity_id", identity_id)?;
    let found: bool = q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM members WHERE org_id = ?1 AND user_id = ?2)",
        params![org_id, identity_id],
        |r| r.get(0),
    ))?;
    if found {
        Ok(identity_id)
    } else {
        Err(Status::not_found(format!(
            "identity {identity_id:?} is not a member of organization {org_id}"
        )))
    }
}

/// Every role held in `org_id`, optionally only on `resource_ids`, in a stable order.
pub fn member_roles(
    db: &Connection,
    org_id: &str,
    resource_ids: &[String],
) -> R<Vec<pb::Authorization>> {
    let mut st = q(db.prepare_cached(
        "SELECT identity_id, resource_type, resource_id, role FROM member_roles \
         WHERE org_id = ?1 ORDER BY identity_id, resource_type, resource_id, role",
    ))?;
    let rows = q(st.query_map(params![org_id], |r| {
        let (who, rt, rid, role): (String, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        Ok(pb::Authorization {
            authorization_type: "role".into(),
            authorization_id: format!("{rt}_{role}"),
            resource_type: rt,
            resource_id: rid,
            identity_id: who,
            organization_id: org_id.to_string(),
            identity_type: "user".into(),
        })
    }))?;
    let all: Vec<pb::Authorization> = q(rows.collect())?;
    Ok(all
        .into_iter()
        .filter(|a| resource_ids.is_empty() || resource_ids.contains(&a.resource_id))
        .collect())
}

/// Whether `identity_id` holds exactly this role.
fn holds(db: &Connection, org_id: &str, identity_id: &str, key: &AuthKey) -> R<bool> {
    q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM member_roles WHERE org_id = ?1 AND identity_id = ?2 \
         AND resource_type = ?3 AND resource_id = ?4 AND role = ?5)",
        params![org_id, identity_id, key.0, key.1, key.2],
        |r| r.get(0),
    ))
}

/// Grants a role; `ALREADY_EXISTS` when the member holds it.
pub fn add_member_role(tx: &Transaction, org_id: &str, identity_id: &str, key: &AuthKey) -> R<()> {
    if holds(tx, org_id, identity_id, key)? {
        return Err(Status::already_exists(format!(
            "identity {identity_id:?} already holds {} {} on {} {}",
            key.2, key.0, key.0, key.1
        )));
    }
    q(tx.execute(
        "INSERT INTO member_roles (org_id, identity_id, resource_type, resource_id, role) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![org_id, identity_id, key.0, key.1, key.2],
    ))
    .map(|_| ())
}

/// Takes a role away; `NOT_FOUND` when the member does not hold it. Call
/// [`check_an_owner_remains`] before committing.
pub fn remove_member_role(
    tx: &Transaction,
    org_id: &str,
    identity_id: &str,
    key: &AuthKey,
) -> R<()> {
    if !holds(tx, org_id, identity_id, key)? {
        return Err(Status::not_found(format!(
            "identity {identity_id:?} holds no {} role on {} {}",
            key.2, key.0, key.1
        )));
    }
    q(tx.execute(
        "DELETE FROM member_roles WHERE org_id = ?1 AND identity_id = ?2 \
         AND resource_type = ?3 AND resource_id = ?4 AND role = ?5",
        params![org_id, identity_id, key.0, key.1, key.2],
    ))
    .map(|_| ())
}

/// `FAILED_PRECONDITION` unless some member still owns the organization.
pub fn check_an_owner_remains(db: &Connection, org_id: &str) -> R<()> {
    let owners: i64 = q(cached_row(
        db,
        "SELECT COUNT(*) FROM member_roles WHERE org_id = ?1 AND resource_type = 'organization' \
         AND resource_id = ?1 AND role = 'owner'",
        params![org_id],
        |r| r.get(0),
    ))?;
    if owners == 0 {
        return Err(Status::failed_precondition(format!(
            "organization {org_id} would have no owner left; make another member an owner first"
        )));
    }
    Ok(())
}

/// Removes the roles held on a deleted resource.
pub(super) fn drop_member_roles_on(
    tx: &Transaction,
    resource_type: &str,
    resource_id: &str,
) -> R<()> {
    q(tx.execute(
        "DELETE FROM member_roles WHERE resource_type = ?1 AND resource_id = ?2",
        params![resource_type, resource_id],
    ))
    .map(|_| ())
}
