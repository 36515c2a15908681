//! The store: Organizations, their API keys and members.

use super::*;

pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub public_namespace: String,
    pub created_us: i64,
    /// An encoded `FragmentImportList`; `None` until default fragments are set.
    pub default_fragments: Option<Vec<u8>>,
}

impl OrgRow {
    pub fn to_pb(&self) -> pb::Organization {
        use prost::Message;
        pb::Organization {
            id: self.id.clone(),
            name: self.name.clone(),
            created_on: Some(ts(self.created_us)),
            public_namespace: self.public_namespace.clone(),
            default_region: "local".into(),
            default_fragments: self
                .default_fragments
                .as_deref()
                .and_then(|b| pb::FragmentImportList::decode(b).ok()),
        }
    }
}

pub fn org(db: &Connection, id: &str) -> R<Option<OrgRow>> {
    q(cached_row(
        db,
        "SELECT id, name, public_namespace, created_us, default_fragments FROM orgs WHERE id = ?1",
        params![id],
        |r| {
            Ok(OrgRow {
                id: r.get(0)?,
                name: r.get(1)?,
                public_namespace: r.get(2)?,
                created_us: r.get(3)?,
                default_fragments: r.get(4)?,
            })
        },
    )
    .optional())
}

/// Replaces an organization's default fragments.
pub fn set_default_fragments(
    tx: &Transaction,
    org_id: &str,
    list: &pb::FragmentImportList,
) -> R<()> {
    use prost::Message;
    q(tx.execute(
        "UPDATE orgs SET default_fragments = ?2 WHERE id = ?1",
        params![org_id, list.encode_to_vec()],
    ))
    .map(|_| ())
}

/// The caller's own organization, when the calling key holds a role on all of it;
/// `PERMISSION_DENIED` for a key whose roles are narrower, and `PERMISSION_DENIED` /
/// `NOT_FOUND` for any other organization id.
pub fn caller_org(db: &Connection, who: &Access, requested: &str, field: &str) -> R<OrgRow> {
    let org = key_org(db, who, requested, field)?;
    who.require_org_wide(&format!("this request on organization {requested}"))?;
    Ok(org)
}

/// The caller's own organization, for any of its keys (the organization itself, and the
/// listings that show each key what it reaches); `PERMISSION_DENIED` / `NOT_FOUND` for any
/// other id.
pub fn key_org(db: &Connection, who: &Access, requested: &str, field: &str) -> R<OrgRow> {
    require_uuid(field, requested)?;
    let caller_org = who.org_id.as_str();
    if requested != caller_org {
        return Err(match org(db, requested)? {
            Some(_) => Status::permission_denied(format!(
                "the API key has no access to organization {requested}"
            )),
            None => Status::not_found(format!("organization {requested} not found")),
        });
    }
    org(db, requested)?
        .ok_or_else(|| Status::not_found(format!("organization {requested} not found")))
}

pub fn namespace_taken(db: &Connection, ns: &str) -> R<bool> {
    q(cached_row(
        db,
        "SELECT EXISTS(SELECT 1 FROM orgs WHERE public_namespace = ?1)",
        params![ns],
        |r| r.get(0),
    ))
}

/// Creates an organization with its founding member and first API key; returns the org id.
pub fn create_org(tx: &Transaction, name: &str, owner_email: &str) -> R<String> {
    let id = new_uuid();
    let now = now_us();
    q(tx.execute(
        "INSERT INTO orgs (id, name, created_us) VALUES (?1, ?2, ?3)",
        params![id, name, now],
    ))?;
    let owner = new_uuid();
    q(tx.execute(
        "INSERT INTO members (org_id, user_id, email, date_added_us) VALUES (?1, ?2, ?3, ?4)",
        params![id, owner, owner_email, now],
    ))?;
    add_member_role(
        tx,
        &id,
        &owner,
        &("organization".into(), id.clone(), "owner".into()),
    )?;
    Ok(id)
}

/// Adds an API key named `name` that owns `org_id`; returns `(key_id, key)`. Only the key's
/// hash is stored.
pub fn create_api_key(tx: &Transaction, org_id: &str, name: &str) -> R<(String, String)> {
    insert_key(
        tx,
        org_id,
        name,
        &[("organization".into(), org_id.to_string(), "owner".into())],
    )
}

/// The organization of an API key whose secret hashes to `key_sha256`.
pub fn api_key_org(db: &Connection, key_id: &str, key_sha256: &str) -> R<Option<String>> {
    let row: Option<(String, String)> = q(db
        .query_row(
            "SELECT org_id, key_sha256 FROM api_keys WHERE id = ?1",
            params![key_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional())?;
    Ok(row.and_then(|(org, hash)| constant_time_eq(&hash, key_sha256).then_some(org)))
}

pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn members(db: &Connection, org_id: &str) -> R<Vec<pb::OrganizationMember>> {
    let mut st = q(db.prepare_cached(
        "SELECT user_id, email, date_added_us FROM members WHERE org_id = ?1 ORDER BY date_added_us, user_id",
    ))?;
    let rows = q(st.query_map(params![org_id], |r| {
        Ok(pb::OrganizationMember {
            user_id: r.get(0)?,
            emails: vec![r.get(1)?],
            date_added: Some(ts(r.get(2)?)),
        })
    }))?;
    q(rows.collect())
}
