//! The store: Fragments: revisions, tags, history and usage.

use super::*;

pub struct FragmentRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// The config as written (JSON text).
    pub config: String,
    pub visibility: i32,
    pub created_us: i64,
    pub last_updated_us: i64,
    /// The current revision: 1 at creation, one more with every update.
    pub revision: i64,
}

pub(super) const FRAGMENT_COLS: &str =
    "id, org_id, name, config, visibility, created_us, last_updated_us, revision FROM fragments";

pub(super) fn fragment_from(r: &rusqlite::Row) -> rusqlite::Result<FragmentRow> {
    Ok(FragmentRow {
        id: r.get(0)?,
        org_id: r.get(1)?,
        name: r.get(2)?,
        config: r.get(3)?,
        visibility: r.get(4)?,
        created_us: r.get(5)?,
        last_updated_us: r.get(6)?,
        revision: r.get(7)?,
    })
}

pub fn fragment_row(db: &Connection, id: &str) -> R<Option<FragmentRow>> {
    q(cached_row(
        db,
        &format!("SELECT {FRAGMENT_COLS} WHERE id = ?1"),
        params![id],
        fragment_from,
    )
    .optional())
}

/// A fragment the caller may read: its own organization's, or any public one.
pub fn fragment_visible(db: &Connection, org_id: &str, id: &str) -> R<FragmentRow> {
    require_uuid("id", id)?;
    match fragment_row(db, id)? {
        Some(f) if f.org_id == org_id || f.visibility != pb::FragmentVisibility::Private as i32 => {
            Ok(f)
        }
        _ => Err(Status::not_found(format!("fragment {id} not found"))),
    }
}

pub fn fragment_owned(db: &Connection, org_id: &str, id: &str) -> R<FragmentRow> {
    let f = fragment_visible(db, org_id, id)?;
    if f.org_id != org_id {
        return Err(Status::permission_denied(format!(
            "fragment {id} belongs to another organization"
        )));
    }
    Ok(f)
}

pub fn fragment_part_count(db: &Connection, id: &str) -> R<i64> {
    q(cached_row(
        db,
        "SELECT COUNT(*) FROM part_fragments WHERE fragment_id = ?1",
        params![id],
        |r| r.get(0),
    ))
}

pub fn fragment_pb(db: &Connection, f: &FragmentRow) -> R<pb::Fragment> {
    // The organizations whose machines import it, and whether the owner is one of them, in
    // one pass over its importing machines: `fragment_imports` has the machine of every
    // import in its index, so the pass joins machines and locations only (one import row per
    // version imported; counting distinct organizations makes repeats harmless).
    let (orgs_using, owner_uses): (i64, bool) = q(db
        .prepare_cached(
            "SELECT COUNT(DISTINCT l.org_id), COALESCE(MAX(l.org_id = ?2), 0) \
             FROM fragment_imports fi JOIN robots r ON r.id = fi.robot_id \
             JOIN locations l ON l.id = r.location_id \
             WHERE fi.fragment_id = ?1",
        )
        .and_then(|mut st| st.query_row(params![f.id, f.org_id], |r| Ok((r.get(0)?, r.get(1)?)))))?;
    fragment_pb_counted(db, f, orgs_using, owner_uses)
}

/// `GetFragment`'s fragment and usage from one pass over the fragment's imports (see
/// [`fragment_usage`]; `current_org` is the caller's organization).
pub fn fragment_pb_and_usage(
    db: &Connection,
    f: &FragmentRow,
    current_org: &str,
) -> R<(pb::Fragment, Usage)> {
    let (usage, owner_uses) = usage_of(db, &f.id, current_org, &f.org_id)?;
    let orgs_using = i64::from(usage.total.organizations);
    Ok((fragment_pb_counted(db, f, orgs_using, owner_uses)?, usage))
}

/// [`fragment_pb`] with the organizations importing it counted already.
fn fragment_pb_counted(
    db: &Connection,
    f: &FragmentRow,
    orgs_using: i64,
    owner_uses: bool,
) -> R<pb::Fragment> {
    let owner = org(db, &f.org_id)?;
    let count = fragment_part_count(db, &f.id)?;
    let config: serde_json::Value =
        serde_json::from_str(&f.config).unwrap_or_else(|_| serde_json::json!({}));
    Ok(pb::Fragment {
        id: f.id.clone(),
        name: f.name.clone(),
        fragment: Some(struct_from_json(&config)),
        organization_owner: f.org_id.clone(),
        public: f.visibility == pb::FragmentVisibility::Public as i32,
        created_on: Some(ts(f.created_us)),
        organization_name: owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
        robot_part_count: count as i32,
        organization_count: orgs_using as i32,
        only_used_by_owner: orgs_using == 0 || (orgs_using == 1 && owner_uses),
        visibility: f.visibility,
        last_updated: Some(ts(f.last_updated_us)),
        revision: f.revision.to_string(),
        public_namespace: owner
            .map(|o| o.public_namespace)
            .filter(|ns| !ns.is_empty()),
        fragment_config_json: Some(f.config.clone()),
    })
}

/// Fragments for `ListFragments`. The organization's own fragments, plus other organizations'
/// `PUBLIC` ones when asked for: by `PUBLIC` in `visibilities` when that list is given (it takes
/// precedence), else by `show_public`. With `visibilities`, only those visibilities are listed.
/// Other organizations' unlisted and private fragments are never listed.
pub fn list_fragments(
    db: &Connection,
    org_id: &str,
    show_public: bool,
    visibilities: &[i32],
) -> R<Vec<pb::Fragment>> {
    let public = pb::FragmentVisibility::Public as i32;
    let others_public = if visibilities.is_empty() {
        show_public
    } else {
        visibilities.contains(&public)
    };
    let mut st = q(db.prepare_cached(&format!(
        "SELECT {FRAGMENT_COLS} WHERE org_id = ?1 OR (?2 AND visibility = ?3) ORDER BY created_us, id"
    )))?;
    let rows = q(st.query_map(params![org_id, others_public, public], fragment_from))?;
    let rows: Vec<FragmentRow> = q(rows.collect())?;
    rows.iter()
        .filter(|f| visibilities.is_empty() || visibilities.contains(&f.visibility))
        .map(|f| fragment_pb(db, f))
        .collect()
}

/// Records revision `f.revision` of a fragment as it now is.
pub(super) fn insert_fragment_revision(tx: &Transaction, f: &FragmentRow) -> R<()> {
    q(tx.execute(
        "INSERT INTO fragment_revisions (fragment_id, revision, name, config, visibility, created_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![f.id, f.revision, f.name, f.config, f.visibility, f.last_updated_us],
    ))
    .map(|_| ())
}

/// Creates a fragment at revision 1; returns its id.
pub fn insert_fragment(
    tx: &Transaction,
    org_id: &str,
    name: &str,
    config: &str,
    visibility: i32,
) -> R<String> {
    let id = new_uuid();
    let now = now_us();
    q(tx.execute(
        "INSERT INTO fragments (id, org_id, name, config, visibility, created_us, last_updated_us, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)",
        params![id, org_id, name, config, visibility, now],
    ))?;
    let row = fragment_row(tx, &id)?.ok_or_else(|| internal("fragment vanished"))?;
    insert_fragment_revision(tx, &row)?;
    Ok(id)
}

/// Writes a new name, config (JSON text; `None` keeps it) and visibility as the next revision,
/// bumping `last_updated` and appending a history entry holding the fragment as it was.
pub fn update_fragment(
    tx: &Transaction,
    old: &FragmentRow,
    name: &str,
    config: Option<&str>,
    visibility: i32,
    editor: EditorInfo<'_>,
) -> R<FragmentRow> {
    use prost::Message;
    let new = FragmentRow {
        id: old.id.clone(),
        org_id: old.org_id.clone(),
        name: name.to_string(),
        config: config.map_or_else(|| old.config.clone(), str::to_string),
        visibility,
        created_us: old.created_us,
        last_updated_us: now_us().max(old.last_updated_us + 1),
        revision: old.revision + 1,
    };
    q(tx.execute(
        "INSERT INTO fragment_history (fragment_id, revision, when_us, old, editor_type, editor_value) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            old.id,
            new.revision,
            new.last_updated_us,
            fragment_pb(tx, old)?.encode_to_vec(),
            editor.0 as i32,
            editor.1
        ],
    ))?;
    q(tx.execute(
        "UPDATE fragments SET name = ?2, config = ?3, visibility = ?4, last_updated_us = ?5, revision = ?6 \
         WHERE id = ?1",
        params![new.id, new.name, new.config, new.visibility, new.last_updated_us, new.revision],
    ))?;
    insert_fragment_revision(tx, &new)?;
    Ok(new)
}

/// Deletes a fragment with its revisions, tags and history.
pub fn delete_fragment(tx: &Transaction, id: &str) -> R<()> {
    for sql in [
        "DELETE FROM fragment_tags WHERE fragment_id = ?1",
        "DELETE FROM fragment_revisions WHERE fragment_id = ?1",
        "DELETE FROM fragment_history WHERE fragment_id = ?1",
        "DELETE FROM fragments WHERE id = ?1",
    ] {
        q(tx.execute(sql, params![id]))?;
    }
    Ok(())
}

/// The revision a version names: a tag of the fragment, else a revision number it has.
/// `NOT_FOUND` for anything else.
pub fn resolve_version(db: &Connection, f: &FragmentRow, version: &str) -> R<i64> {
    let tagged: Option<i64> = q(db
        .query_row(
            "SELECT revision FROM fragment_tags WHERE fragment_id = ?1 AND tag = ?2",
            params![f.id, version],
            |r| r.get(0),
        )
        .optional())?;
    if let Some(rev) = tagged {
        return Ok(rev);
    }
    let exists = |rev: i64| -> R<bool> {
        q(cached_row(
            db,
            "SELECT EXISTS(SELECT 1 FROM fragment_revisions WHERE fragment_id = ?1 AND revision = ?2)",
            params![f.id, rev],
            |r| r.get(0),
        ))
    };
    match version.parse::<i64>() {
        Ok(rev) if exists(rev)? => Ok(rev),
        _ => Err(Status::not_found(format!(
            "fragment {} has no revision or tag {version:?}",
            f.id
        ))),
    }
}

/// The fragment as it was at `revision` (name, config, visibility and time of that revision).
pub fn fragment_at(db: &Connection, f: &FragmentRow, revision: i64) -> R<FragmentRow> {
    q(cached_row(
        db,
        "SELECT name, config, visibility, created_us FROM fragment_revisions \
         WHERE fragment_id = ?1 AND revision = ?2",
        params![f.id, revision],
        |r| {
            Ok(FragmentRow {
                id: f.id.clone(),
                org_id: f.org_id.clone(),
                name: r.get(0)?,
                config: r.get(1)?,
                visibility: r.get(2)?,
                created_us: f.created_us,
                last_updated_us: r.get(3)?,
                revision,
            })
        },
    )
    .optional())?
    .ok_or_else(|| Status::not_found(format!("fragment {} has no revision {revision}", f.id)))
}

/// Every revision of a fragment, oldest first.
pub fn fragment_revisions(db: &Connection, id: &str) -> R<Vec<pb::FragmentRevision>> {
    let mut st = q(db.prepare_cached(
        "SELECT revision, created_us FROM fragment_revisions WHERE fragment_id = ?1 ORDER BY revision",
    ))?;
    let rows = q(st.query_map(params![id], |r| {
        Ok(pb::FragmentRevision {
            revision: r.get::<_, i64>(0)?.to_string(),
            created_at: Some(ts(r.get(1)?)),
        })
    }))?;
    q(rows.collect())
}

/// Every tag of a fragment, by name.
pub fn fragment_tags(db: &Connection, id: &str) -> R<Vec<pb::FragmentTag>> {
    let mut st = q(
        db.prepare("SELECT tag, revision FROM fragment_tags WHERE fragment_id = ?1 ORDER BY tag")
    )?;
    let rows = q(st.query_map(params![id], |r| {
        Ok(pb::FragmentTag {
            tag: r.get(0)?,
            revision: r.get::<_, i64>(1)?.to_string(),
        })
    }))?;
    q(rows.collect())
}

/// Points `tag` at `revision` (creating or moving it).
pub fn set_fragment_tag(tx: &Transaction, id: &str, tag: &str, revision: i64) -> R<()> {
    q(tx.execute(
        "INSERT INTO fragment_tags (fragment_id, tag, revision) VALUES (?1, ?2, ?3) \
         ON CONFLICT (fragment_id, tag) DO UPDATE SET revision = excluded.revision",
        params![id, tag, revision],
    ))
    .map(|_| ())
}

/// Removes `tag`; whether it existed.
pub fn delete_fragment_tag(tx: &Transaction, id: &str, tag: &str) -> R<bool> {
    Ok(q(tx.execute(
        "DELETE FROM fragment_tags WHERE fragment_id = ?1 AND tag = ?2",
        params![id, tag],
    ))? > 0)
}

/// History of a fragment, newest first, entries with `seq < before` when paging.
pub fn fragment_history(
    db: &Connection,
    id: &str,
    before: Option<i64>,
    limit: i64,
) -> R<(Vec<pb::FragmentHistoryEntry>, Option<i64>)> {
    use prost::Message;
    let mut st = q(db.prepare_cached(
        "SELECT h.seq, h.revision, h.when_us, h.old, h.editor_type, h.editor_value, v.config \
         FROM fragment_history h LEFT JOIN fragment_revisions v \
         ON v.fragment_id = h.fragment_id AND v.revision = h.revision \
         WHERE h.fragment_id = ?1 AND h.seq < ?2 ORDER BY h.seq DESC LIMIT ?3",
    ))?;
    let rows = q(
        st.query_map(params![id, before.unwrap_or(i64::MAX), limit + 1], |r| {
            let blob: Vec<u8> = r.get(3)?;
            let config: Option<String> = r.get(6)?;
            Ok((
                r.get::<_, i64>(0)?,
                pb::FragmentHistoryEntry {
                    fragment: id.to_string(),
                    revision: r.get::<_, i64>(1)?.to_string(),
                    edited_on: Some(ts(r.get(2)?)),
                    old: pb::Fragment::decode(blob.as_slice()).ok(),
                    edited_by: Some(pb::AuthenticatorInfo {
                        r#type: r.get(4)?,
                        value: r.get(5)?,
                        is_deactivated: false,
                    }),
                    config: config
                        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
                        .map(|v| struct_from_json(&v)),
                },
            ))
        }),
    )?;
    let rows: Vec<(i64, pb::FragmentHistoryEntry)> = q(rows.collect())?;
    Ok(page(rows, limit))
}

/// The `version` of each import of `fragment_id` in a config's `fragments` list (`fragments`,
/// as `parts::fragments_of` gives it): `None` for a bare id or an object without a
/// version (the latest revision). A numeric version counts as its decimal text.
pub(super) fn import_versions(
    fragments: &serde_json::Value,
    fragment_id: &str,
) -> Vec<Option<String>> {
    fragments
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| match entry {
            serde_json::Value::String(s) if s == fragment_id => Some(None),
            serde_json::Value::Object(o)
                if o.get("id").and_then(|v| v.as_str()) == Some(fragment_id) =>
            {
                Some(match o.get("version") {
                    Some(serde_json::Value::String(v)) if !v.is_empty() => Some(v.clone()),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect()
}

/// How many machines import a fragment: per version, and in all.
pub struct Usage {
    /// One entry per imported version (`None` = the latest revision, first, then versions by
    /// name).
    pub by_version: Vec<pb::FragmentUsage>,
    /// Over all versions (no `version`), each machine and organization counted once.
    pub total: pb::FragmentUsage,
}

/// How many machines import a fragment, from the imports recorded when the parts' configs
/// were written (`fragment_imports`): for each version, the machines whose parts import it at
/// that version, the organizations they belong to, and how many of them are in `current_org`.
pub fn fragment_usage(db: &Connection, fragment_id: &str, current_org: &str) -> R<Usage> {
    Ok(usage_of(db, fragment_id, current_org, "")?.0)
}

/// [`fragment_usage`], and whether organization `owner` is among those importing it.
fn usage_of(
    db: &Connection,
    fragment_id: &str,
    current_org: &str,
    owner: &str,
) -> R<(Usage, bool)> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut st = q(db.prepare_cached(
        "SELECT fi.robot_id, l.org_id, fi.version FROM fragment_imports fi \
         JOIN robots r ON r.id = fi.robot_id JOIN locations l ON l.id = r.location_id \
         WHERE fi.fragment_id = ?1",
    ))?;
    let rows = q(st.query_map(params![fragment_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    }))?;
    let imports: Vec<(String, String, Option<String>)> = q(rows.collect())?;
    let owner_uses = imports.iter().any(|(_, org, _)| org == owner);
    // version -> (machines, organizations, machines in the current organization)
    type Counts = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
    let mut by_version: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for (robot_id, org_id, version) in imports {
        for (machines, orgs, local) in [by_version.entry(version).or_default(), &mut total] {
            machines.insert(robot_id.clone());
            orgs.insert(org_id.clone());
            if org_id == current_org {
                local.insert(robot_id.clone());
            }
        }
    }
    let usage = |version: Option<String>, (machines, orgs, local): Counts| pb::FragmentUsage {
        fragment_id: fragment_id.to_string(),
        organizations: orgs.len() as i32,
        machines: machines.len() as i32,
        machines_in_current_org: local.len() as i32,
        version,
    };
    let usage = Usage {
        by_version: by_version
            .into_iter()
            .map(|(version, counts)| usage(version, counts))
            .collect(),
        total: usage(None, total),
    };
    Ok((usage, owner_uses))
}
