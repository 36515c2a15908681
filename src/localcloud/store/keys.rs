//! The store: API keys, their authorizations, and what a calling key may reach ([`Access`]).
//!
//! A key belongs to one organization and holds one or more roles (`owner` / `operator`) on
//! the organization, its locations or its machines, like a member. What a role lets a key do
//! on the local cloud:
//! - a role on the **organization** reaches everything in it (and the locations shared with
//!   it, to read); only an organization **owner** administers it: its settings, invites,
//!   members' roles and API keys;
//! - a role on a **location** reaches that location, the locations nested in it, and their
//!   machines and parts (read and write), and nothing else: not the organization's settings,
//!   fragments (they may be read, not changed), other locations, or new top-level locations;
//! - a role on a **machine** reaches that machine and its parts.
//!
//! Owner and operator differ only at the organization level (administration); the local
//! cloud does not model Viam's finer operator limits inside a location or machine.
//!
//! Keys made before authorizations existed (and by `cloud init`) own their organization.
//! Secrets are stored only as SHA-256 hashes; a rotation keeps the key's id and replaces its
//! secret (the old one stops working at once). An organization keeps at least one key that
//! owns it: deleting the last one is refused (`FAILED_PRECONDITION`), so a local
//! organization can always be administered.

use super::*;

/// One role a key holds: `(resource_type, resource_id, role)` as on the wire.
pub type KeyGrant = AuthKey;

/// What the calling API key may reach, read afresh for every call (a changed or deleted key
/// takes effect at once).
#[derive(Clone, Debug)]
pub struct Access {
    pub key_id: String,
    pub org_id: String,
    pub grants: Vec<KeyGrant>,
}

impl Access {
    /// Whether the key holds a role (owner or operator) on its whole organization.
    pub fn org_wide(&self) -> bool {
        self.grants
            .iter()
            .any(|(rt, rid, _)| rt == "organization" && rid == &self.org_id)
    }

    /// Whether the key owns its organization.
    pub fn org_owner(&self) -> bool {
        self.grants
            .iter()
            .any(|(rt, rid, role)| rt == "organization" && rid == &self.org_id && role == "owner")
    }

    /// `PERMISSION_DENIED` unless the key holds a role on its whole organization.
    pub fn require_org_wide(&self, what: &str) -> R<()> {
        if self.org_wide() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{what} needs a role on the whole organization; this API key's roles are on \
                 some of its locations or machines only"
            )))
        }
    }

    /// `PERMISSION_DENIED` unless the key owns its organization.
    pub fn require_org_owner(&self, what: &str) -> R<()> {
        if self.org_owner() {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{what} needs the organization owner role, which this API key does not hold"
            )))
        }
    }

    fn holds_on(&self, resource_type: &str, resource_id: &str) -> bool {
        self.grants
            .iter()
            .any(|(rt, rid, _)| rt == resource_type && rid == resource_id)
    }

    /// Whether a role of the key covers location `location_id` (a role on it or on a location
    /// it is nested in; not a role on the whole organization).
    pub fn covers_location(&self, db: &Connection, location_id: &str) -> R<bool> {
        if !self.grants.iter().any(|(rt, _, _)| rt == "location") {
            return Ok(false);
        }
        let mut current = Some(location_id.to_string());
        let mut steps = 0;
        while let Some(id) = current {
            if self.holds_on("location", &id) {
                return Ok(true);
            }
            steps += 1;
            if steps > 64 {
                return Err(internal("location parent chain too long"));
            }
            current = location_row(db, &id)?.and_then(|l| l.parent_id);
        }
        Ok(false)
    }

    /// Whether a role of the key covers something in the caller's own organization at
    /// `location_id` (and on machine `robot_id`, when it is a machine or part).
    pub fn covers(&self, db: &Connection, location_id: &str, robot_id: Option<&str>) -> R<bool> {
        Ok(self.org_wide()
            || robot_id.is_some_and(|r| self.holds_on("robot", r))
            || self.covers_location(db, location_id)?)
    }
}

/// The access of key `key_id` of `org_id`; `UNAUTHENTICATED` when the key no longer exists
/// (its token outlived it).
pub fn access(db: &Connection, key_id: &str, org_id: &str) -> R<Access> {
    // Cached statements: every call of every RPC asks this.
    let exists: bool = q(db
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = ?1 AND org_id = ?2)")
        .and_then(|mut st| st.query_row(params![key_id, org_id], |r| r.get(0))))?;
    if !exists {
        return Err(Status::unauthenticated(
            "the API key of this token no longer exists",
        ));
    }
    Ok(Access {
        key_id: key_id.to_string(),
        org_id: org_id.to_string(),
        grants: key_grants(db, key_id)?,
    })
}

pub(super) const KEY_GRANTS_SQL: &str = "SELECT resource_type, resource_id, role FROM key_auths \
     WHERE key_id = ?1 ORDER BY resource_type, resource_id, role";

/// The roles key `key_id` holds, in a stable order.
pub fn key_grants(db: &Connection, key_id: &str) -> R<Vec<KeyGrant>> {
    let mut st = q(db.prepare_cached(KEY_GRANTS_SQL))?;
    let rows = q(st.query_map(params![key_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))?;
    q(rows.collect())
}

/// An API key found in an organization.
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
}

/// Key `id` of `org_id`; `NOT_FOUND` for any other.
pub fn key_in(db: &Connection, org_id: &str, id: &str) -> R<KeyRow> {
    require_uuid("id", id)?;
    q(cached_row(
        db,
        "SELECT id, org_id FROM api_keys WHERE id = ?1 AND org_id = ?2",
        params![id, org_id],
        |r| {
            Ok(KeyRow {
                id: r.get(0)?,
                org_id: r.get(1)?,
            })
        },
    )
    .optional())?
    .ok_or_else(|| Status::not_found(format!("API key {id} not found")))
}

/// Every key of `org_id` with its authorizations (`ListKeys`); the secrets are never returned.
pub fn list_keys(db: &Connection, org_id: &str) -> R<Vec<pb::ApiKeyWithAuthorizations>> {
    let mut st = q(db.prepare_cached(
        "SELECT id, name, created_us FROM api_keys WHERE org_id = ?1 ORDER BY created_us, id",
    ))?;
    let rows = q(st.query_map(params![org_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    }))?;
    let rows: Vec<(String, String, i64)> = q(rows.collect())?;
    rows.into_iter()
        .map(|(id, name, created_us)| {
            let authorizations = key_grants(db, &id)?
                .into_iter()
                .map(|(rt, rid, role)| pb::AuthorizationDetails {
                    authorization_type: "role".into(),
                    authorization_id: format!("{rt}_{role}"),
                    resource_type: rt,
                    resource_id: rid,
                    org_id: org_id.to_string(),
                })
                .collect();
            Ok(pb::ApiKeyWithAuthorizations {
                api_key: Some(pb::ApiKey {
                    id,
                    key: String::new(),
                    name,
                    created_on: Some(ts(created_us)),
                }),
                authorizations,
            })
        })
        .collect()
}

/// Adds a key named `name` holding `grants` to `org_id`; returns `(key_id, key)`. Only the
/// key's hash is stored.
pub fn insert_key(
    tx: &Transaction,
    org_id: &str,
    name: &str,
    grants: &[KeyGrant],
) -> R<(String, String)> {
    let key_id = new_uuid();
    let key = random_alnum(32);
    q(tx.execute(
        "INSERT INTO api_keys (id, org_id, key_sha256, created_us, name) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key_id, org_id, sha256_hex(&key), now_us(), name],
    ))?;
    for (rt, rid, role) in grants {
        q(tx.execute(
            "INSERT OR IGNORE INTO key_auths (key_id, resource_type, resource_id, role) \
             VALUES (?1, ?2, ?3, ?4)",
            params![key_id, rt, rid, role],
        ))?;
    }
    Ok((key_id, key))
}

/// Gives key `id` a new secret; returns it.
pub fn rotate_key(tx: &Transaction, id: &str) -> R<String> {
    let key = random_alnum(32);
    q(tx.execute(
        "UPDATE api_keys SET key_sha256 = ?2 WHERE id = ?1",
        params![id, sha256_hex(&key)],
    ))?;
    Ok(key)
}

pub fn rename_key(tx: &Transaction, id: &str, name: &str) -> R<()> {
    q(tx.execute(
        "UPDATE api_keys SET name = ?2 WHERE id = ?1",
        params![id, name],
    ))
    .map(|_| ())
}

/// Deletes key `id` of `org_id` with its authorizations; `FAILED_PRECONDITION` when it is the
/// last key that owns the organization.
pub fn delete_key(tx: &Transaction, org_id: &str, id: &str) -> R<()> {
    q(tx.execute("DELETE FROM key_auths WHERE key_id = ?1", params![id]))?;
    q(tx.execute("DELETE FROM api_keys WHERE id = ?1", params![id]))?;
    check_an_owner_key_remains(tx, org_id, id)
}

/// Gives key `id` the role `grant`; `ALREADY_EXISTS` when it holds it.
pub fn add_key_role(tx: &Transaction, id: &str, grant: &KeyGrant) -> R<()> {
    let added = q(tx.execute(
        "INSERT OR IGNORE INTO key_auths (key_id, resource_type, resource_id, role)          VALUES (?1, ?2, ?3, ?4)",
        params![id, grant.0, grant.1, grant.2],
    ))?;
    if added == 0 {
        return Err(Status::already_exists(format!(
            "API key {id} already holds {} on {} {}",
            grant.2, grant.0, grant.1
        )));
    }
    Ok(())
}

/// Takes the role `grant` from key `id` of `org_id`; `NOT_FOUND` when it does not hold it,
/// `FAILED_PRECONDITION` when no key would own the organization.
pub fn remove_key_role(tx: &Transaction, org_id: &str, id: &str, grant: &KeyGrant) -> R<()> {
    let removed = q(tx.execute(
        "DELETE FROM key_auths WHERE key_id = ?1 AND resource_type = ?2 AND resource_id = ?3          AND role = ?4",
        params![id, grant.0, grant.1, grant.2],
    ))?;
    if removed == 0 {
        return Err(Status::not_found(format!(
            "API key {id} holds no {} role on {} {}",
            grant.2, grant.0, grant.1
        )));
    }
    check_an_owner_key_remains(tx, org_id, id)
}

/// `FAILED_PRECONDITION` (naming key `id`, the one just changed) unless some key still owns
/// `org_id`.
pub fn check_an_owner_key_remains(tx: &Transaction, org_id: &str, id: &str) -> R<()> {
    let owners: i64 = q(cached_row(
        tx,
        "SELECT COUNT(*) FROM key_auths k JOIN api_keys a ON a.id = k.key_id \
         WHERE a.org_id = ?1 AND k.resource_type = 'organization' AND k.resource_id = ?1 \
         AND k.role = 'owner'",
        params![org_id],
        |r| r.get(0),
    ))?;
    if owners == 0 {
        return Err(Status::failed_precondition(format!(
            "API key {id} is the last key that owns organization {org_id}; create another owner key first"
        )));
    }
    Ok(())
}

/// Removes the keys' roles on a deleted resource.
pub(super) fn drop_key_roles_on(tx: &Transaction, resource_type: &str, resource_id: &str) -> R<()> {
    q(tx.execute(
        "DELETE FROM key_auths WHERE resource_type = ?1 AND resource_id = ?2",
        params![resource_type, resource_id],
    ))
    .map(|_| ())
}
