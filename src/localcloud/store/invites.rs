//! The store: Invites and the authorizations they carry.

use super::*;

pub fn invites(db: &Connection, org_id: &str) -> R<Vec<pb::OrganizationInvite>> {
    let emails: Vec<String> = {
        let mut st =
            q(db.prepare_cached("SELECT email FROM invites WHERE org_id = ?1 ORDER BY email"))?;
        let rows = q(st.query_map(params![org_id], |r| r.get(0)))?;
        q(rows.collect())?
    };
    emails
        .iter()
        .map(|e| invite(db, org_id, e)?.ok_or_else(|| internal("invite vanished")))
        .collect()
}

pub fn invite(db: &Connection, org_id: &str, email: &str) -> R<Option<pb::OrganizationInvite>> {
    let created: Option<i64> = q(db
        .query_row(
            "SELECT created_us FROM invites WHERE org_id = ?1 AND email = ?2",
            params![org_id, email],
            |r| r.get(0),
        )
        .optional())?;
    let Some(created) = created else {
        return Ok(None);
    };
    let mut st = q(db.prepare_cached(
        "SELECT resource_type, resource_id, role FROM invite_auths WHERE org_id = ?1 AND email = ?2 \
         ORDER BY resource_type, resource_id, role",
    ))?;
    let rows = q(st.query_map(params![org_id, email], |r| {
        let (rt, rid, role): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(pb::Authorization {
            authorization_type: "role".into(),
            authorization_id: format!("{rt}_{role}"),
            resource_type: rt,
            resource_id: rid,
            identity_id: String::new(),
            organization_id: org_id.to_string(),
            identity_type: String::new(),
        })
    }))?;
    Ok(Some(pb::OrganizationInvite {
        organization_id: org_id.to_string(),
        email: email.to_string(),
        created_on: Some(ts(created)),
        authorizations: q(rows.collect())?,
    }))
}

/// Accepts the pending invite of `email` to `org_id`, as the invited person would in the
/// Viam app: they become a member (a new user id) holding the invite's roles, and the
/// invite is gone. Returns the user id; `NOT_FOUND` when there is no such invite.
pub fn accept_invite(tx: &Transaction, org_id: &str, email: &str) -> R<String> {
    let Some(invite) = invite(tx, org_id, email)? else {
        return Err(Status::not_found(format!(
            "no pending invite for {email:?} in organization {org_id}"
        )));
    };
    let user = new_uuid();
    q(tx.execute(
        "INSERT INTO members (org_id, user_id, email, date_added_us) VALUES (?1, ?2, ?3, ?4)",
        params![org_id, user, email, now_us()],
    ))?;
    for a in &invite.authorizations {
        let role = a
            .authorization_id
            .rsplit_once('_')
            .map(|(_, role)| role.to_string())
            .unwrap_or_default();
        add_member_role(
            tx,
            org_id,
            &user,
            &(a.resource_type.clone(), a.resource_id.clone(), role),
        )?;
    }
    delete_invite(tx, org_id, email)?;
    Ok(user)
}

/// A validated authorization: `(resource_type, resource_id, role)`.
pub type AuthKey = (String, String, String);

/// Checks an authorization's shape and that its resource exists in `org_id`.
pub fn validate_auth(db: &Connection, org_id: &str, a: &pb::Authorization) -> R<AuthKey> {
    if a.authorization_type != "role" {
        return Err(Status::invalid_argument(format!(
            "authorization_type must be \"role\", got {:?}",
            a.authorization_type
        )));
    }
    let Some((rt, role)) = a.authorization_id.rsplit_once('_') else {
        return Err(Status::invalid_argument(format!(
            "authorization_id {:?} is not of the form <resource_type>_<role>",
            a.authorization_id
        )));
    };
    if !matches!(role, "owner" | "operator") {
        return Err(Status::invalid_argument(format!(
            "authorization_id {:?}: role must be owner or operator",
            a.authorization_id
        )));
    }
    if rt != a.resource_type {
        return Err(Status::invalid_argument(format!(
            "authorization_id {:?} does not match resource_type {:?}",
            a.authorization_id, a.resource_type
        )));
    }
    if !a.organization_id.is_empty() && a.organization_id != org_id {
        return Err(Status::invalid_argument(format!(
            "authorization organization_id {:?} is not the invite's organization",
            a.organization_id
        )));
    }
    let exists = match rt {
        "organization" => a.resource_id == org_id,
        "location" => location_row(db, &a.resource_id)?.is_some_and(|l| l.org_id == org_id),
        "robot" => robot_row(db, &a.resource_id)?.is_some_and(|r| r.org_id == org_id),
        other => {
            return Err(Status::invalid_argument(format!(
                "resource_type must be organization, location or robot, got {other:?}"
            )));
        }
    };
    if !exists {
        return Err(Status::not_found(format!(
            "{rt} {:?} not found in organization {org_id}",
            a.resource_id
        )));
    }
    Ok((rt.to_string(), a.resource_id.clone(), role.to_string()))
}

pub fn replace_invite_auths(
    tx: &Transaction,
    org_id: &str,
    email: &str,
    auths: &[AuthKey],
) -> R<()> {
    // An invite holds one role per resource.
    let mut seen = std::collections::HashSet::new();
    for (rt, rid, _) in auths {
        if !seen.insert((rt, rid)) {
            return Err(Status::invalid_argument(format!(
                "an invite can hold only one role on {rt} {rid}"
            )));
        }
    }
    q(tx.execute(
        "DELETE FROM invite_auths WHERE org_id = ?1 AND email = ?2",
        params![org_id, email],
    ))?;
    for (rt, rid, role) in auths {
        q(tx.execute(
            "INSERT INTO invite_auths (org_id, email, resource_type, resource_id, role) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![org_id, email, rt, rid, role],
        ))?;
    }
    Ok(())
}

/// Records an invite; `send_email` is whether the cloud was asked to email it (the local cloud
/// sends no mail, it only keeps the answer).
pub fn insert_invite(tx: &Transaction, org_id: &str, email: &str, send_email: bool) -> R<()> {
    q(tx.execute(
        "INSERT INTO invites (org_id, email, created_us, send_email) VALUES (?1, ?2, ?3, ?4)",
        params![org_id, email, now_us(), send_email],
    ))
    .map(|_| ())
}

pub fn delete_invite(tx: &Transaction, org_id: &str, email: &str) -> R<bool> {
    q(tx.execute(
        "DELETE FROM invite_auths WHERE org_id = ?1 AND email = ?2",
        params![org_id, email],
    ))?;
    Ok(q(tx.execute(
        "DELETE FROM invites WHERE org_id = ?1 AND email = ?2",
        params![org_id, email],
    ))? > 0)
}

/// Removes authorizations (of invites, members and API keys) that point at a deleted resource.
pub(super) fn drop_auths_on(tx: &Transaction, resource_type: &str, resource_id: &str) -> R<()> {
    q(tx.execute(
        "DELETE FROM invite_auths WHERE resource_type = ?1 AND resource_id = ?2",
        params![resource_type, resource_id],
    ))?;
    drop_member_roles_on(tx, resource_type, resource_id)?;
    drop_key_roles_on(tx, resource_type, resource_id)
}
