//! The store: Parts: configs, the main part, history.

use super::*;

pub struct PartRow {
    pub id: String,
    pub robot_id: String,
    pub location_id: String,
    pub org_id: String,
    pub name: String,
    pub main: bool,
    pub config: String,
    pub secret: String,
    pub created_us: i64,
    pub last_updated_us: i64,
    pub last_access_us: Option<i64>,
}

/// The columns of a [`PartRow`] (then `$extra`) and the joins they come from.
macro_rules! part_cols {
    ($extra:literal) => {
        concat!(
            "p.id, p.robot_id, r.location_id, l.org_id, p.name, p.main, p.config, p.secret, \
             p.created_us, p.last_updated_us, p.last_access_us",
            $extra,
            " FROM parts p JOIN robots r ON r.id = p.robot_id JOIN locations l ON l.id = r.location_id"
        )
    };
}

pub(super) const PART_COLS: &str = part_cols!("");
/// [`PART_COLS`] and, as column 11, the config's encoded `Struct` (`config_pb`).
const PART_COLS_ENCODED: &str = part_cols!(", p.config_pb");

pub(super) fn part_from(r: &rusqlite::Row) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        id: r.get(0)?,
        robot_id: r.get(1)?,
        location_id: r.get(2)?,
        org_id: r.get(3)?,
        name: r.get(4)?,
        main: r.get(5)?,
        config: r.get(6)?,
        secret: r.get(7)?,
        created_us: r.get(8)?,
        last_updated_us: r.get(9)?,
        last_access_us: r.get(10)?,
    })
}

/// A DNS label made from a part name: lowercase alphanumerics and dashes.
pub(super) fn dns_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl PartRow {
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.config).unwrap_or_else(|_| serde_json::json!({}))
    }

    pub fn to_pb(&self) -> pb::RobotPart {
        pb::RobotPart {
            robot_config: Some(struct_from_json(&self.config_json())),
            ..self.to_pb_without_struct()
        }
    }

    /// The part encoded as [`Self::to_pb`] would be, with `config_pb` (the config's encoded
    /// `Struct`, as stored when the config was written) copied in instead of being built from
    /// the JSON text. `robot_config` (field 5) comes after the other fields; a decoder reads
    /// the same message whatever the order of the fields. `None` (a row written before the
    /// column was filled) builds it from the text.
    pub fn encode(&self, config_pb: Option<&[u8]>) -> Vec<u8> {
        use prost::Message;
        use prost::encoding::{WireType, encode_key, encode_varint};
        let built;
        let config = match config_pb {
            Some(bytes) => bytes,
            None => {
                built = config_pb_of(&self.config_json());
                &built
            }
        };
        let meta = self.to_pb_without_struct();
        let mut out = Vec::with_capacity(meta.encoded_len() + config.len() + 6);
        meta.encode_raw(&mut out);
        encode_key(5, WireType::LengthDelimited, &mut out);
        encode_varint(config.len() as u64, &mut out);
        out.extend_from_slice(config);
        out
    }

    /// Everything [`Self::to_pb`] holds but `robot_config`.
    fn to_pb_without_struct(&self) -> pb::RobotPart {
        let dns = dns_name(&self.name);
        let now = now_us();
        pb::RobotPart {
            id: self.id.clone(),
            name: self.name.clone(),
            secret: self.secret.clone(),
            robot: self.robot_id.clone(),
            robot_config: None,
            last_access: self.last_access_us.map(ts),
            user_supplied_info: None,
            main_part: self.main,
            fqdn: format!("{dns}.{}.local.viam.cloud", self.location_id),
            local_fqdn: format!("{dns}.{}.local.viam.cloud", self.location_id),
            dns_name: dns,
            location_id: self.location_id.clone(),
            created_on: Some(ts(self.created_us)),
            secrets: vec![pb::SharedSecret {
                id: format!("{}-secret", self.id),
                secret: self.secret.clone(),
                created_on: Some(ts(self.created_us)),
                state: pb::shared_secret::State::Enabled as i32,
            }],
            last_updated: Some(ts(self.last_updated_us)),
            online_state: online_state(self.last_access_us, now).0 as i32,
            seconds_since_online: online_state(self.last_access_us, now).1,
            robot_config_json: Some(self.config.clone()),
        }
    }
}

/// A config's `Struct`, encoded: what `config_pb` holds and replies carry as `robot_config`.
pub fn config_pb_of(config: &serde_json::Value) -> Vec<u8> {
    use prost::Message;
    struct_from_json(config).encode_to_vec()
}

/// The `fragments` value of config text `config` (`Null` when absent or when the text does not
/// parse as a config), without building the rest of the config.
fn fragments_of(config: &str) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct Imports {
        #[serde(default)]
        fragments: serde_json::Value,
    }
    serde_json::from_str::<Imports>(config).map_or(serde_json::Value::Null, |i| i.fragments)
}

/// Records the fragments config text `config` of `part` imports: a `part_fragments` row per
/// fragment (`fragment_ids`, the ids [`fragment_refs`] gives) and a `fragment_imports` row per
/// import of one, with its machine (a part never changes machines) and version (see
/// [`import_versions`]), which fragment usage counts. The part's earlier rows are replaced.
fn record_imports(tx: &Connection, part: &PartRow, config: &str, fragment_ids: &[String]) -> R<()> {
    let part_id = &part.id;
    for sql in [
        "DELETE FROM part_fragments WHERE part_id = ?1",
        "DELETE FROM fragment_imports WHERE part_id = ?1",
    ] {
        q(tx.execute(sql, params![part_id]))?;
    }
    let fragments = fragments_of(config);
    for f in fragment_ids {
        q(tx.execute(
            "INSERT INTO part_fragments (part_id, fragment_id) VALUES (?1, ?2)",
            params![part_id, f],
        ))?;
        for version in import_versions(&fragments, f) {
            q(tx.execute(
                "INSERT INTO fragment_imports (fragment_id, part_id, robot_id, version) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![f, part_id, part.robot_id, version],
            ))?;
        }
    }
    Ok(())
}

/// Fills `fragment_imports` from the configs of the parts that import fragments (a store
/// written before the table).
pub(super) fn fill_fragment_imports(tx: &Transaction) -> rusqlite::Result<()> {
    let rows: Vec<(String, String, String, String)> = tx
        .prepare(
            "SELECT pf.fragment_id, pf.part_id, p.robot_id, p.config FROM part_fragments pf \
             JOIN parts p ON p.id = pf.part_id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute("DELETE FROM fragment_imports", [])?;
    let mut insert = tx.prepare(
        "INSERT INTO fragment_imports (fragment_id, part_id, robot_id, version) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (fragment_id, part_id, robot_id, config) in rows {
        for version in import_versions(&fragments_of(&config), &fragment_id) {
            insert.execute(params![fragment_id, part_id, robot_id, version])?;
        }
    }
    Ok(())
}

/// Fills `config_pb` of every part that lacks it (a store written before the column).
pub(super) fn fill_config_pb(tx: &Transaction) -> rusqlite::Result<()> {
    let rows: Vec<(String, String)> = tx
        .prepare("SELECT id, config FROM parts WHERE config_pb IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE parts SET config_pb = ?2 WHERE id = ?1")?;
    for (id, config) in rows {
        let value = serde_json::from_str(&config).unwrap_or_else(|_| serde_json::json!({}));
        update.execute(params![id, config_pb_of(&value)])?;
    }
    Ok(())
}

pub fn part_row(db: &Connection, id: &str) -> R<Option<PartRow>> {
    q(cached_row(
        db,
        &format!("SELECT {PART_COLS} WHERE p.id = ?1"),
        params![id],
        part_from,
    )
    .optional())
}

/// The part `id` in a location the caller's organization owns (to change it).
pub fn part_in(db: &Connection, who: &Access, field: &str, id: &str) -> R<PartRow> {
    require_uuid(field, id)?;
    owned_by(db, who, "part", id, part_row(db, id)?, |p: &PartRow| {
        (&p.org_id, &p.location_id, Some(&p.robot_id))
    })
}

/// The part `id` in a location the caller's organization owns or has shared with it.
pub fn part_readable(db: &Connection, who: &Access, field: &str, id: &str) -> R<PartRow> {
    require_uuid(field, id)?;
    readable_by(db, who, "part", id, part_row(db, id)?, |p: &PartRow| {
        (&p.org_id, &p.location_id, Some(&p.robot_id))
    })
}

/// The parts of `robot_id`, in the order of [`parts_of`], each encoded as a `RobotPart`
/// ([`PartRow::encode`]): what `GetRobotParts` sends.
pub fn parts_of_encoded(db: &Connection, robot_id: &str) -> R<Vec<Vec<u8>>> {
    let mut st = q(db.prepare_cached(&format!(
        "SELECT {PART_COLS_ENCODED} WHERE p.robot_id = ?1 ORDER BY p.main DESC, p.created_us, p.id"
    )))?;
    let rows = q(st.query_map(params![robot_id], |r| {
        let part = part_from(r)?;
        let config_pb: Option<Vec<u8>> = r.get(11)?;
        Ok(part.encode(config_pb.as_deref()))
    }))?;
    q(rows.collect())
}

pub fn parts_of(db: &Connection, robot_id: &str) -> R<Vec<PartRow>> {
    let mut st = q(db.prepare_cached(&format!(
        "SELECT {PART_COLS} WHERE p.robot_id = ?1 ORDER BY p.main DESC, p.created_us, p.id"
    )))?;
    let rows = q(st.query_map(params![robot_id], part_from))?;
    q(rows.collect())
}

/// Every part of every organization (what the simulated machines run).
pub fn all_parts(db: &Connection) -> R<Vec<PartRow>> {
    let mut st = q(db.prepare_cached(&format!("SELECT {PART_COLS} ORDER BY p.created_us, p.id")))?;
    let rows = q(st.query_map([], part_from))?;
    q(rows.collect())
}

pub fn insert_part(tx: &Transaction, robot_id: &str, name: &str, main: bool) -> R<String> {
    let id = new_uuid();
    let now = now_us();
    q(tx.execute(
        "INSERT INTO parts (id, robot_id, name, main, config, secret, created_us, last_updated_us, config_pb) \
         VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?6, x'')",
        params![id, robot_id, name, main, random_alnum(32), now],
    ))?;
    Ok(id)
}

pub(super) fn remove_part(tx: &Transaction, id: &str) -> R<()> {
    for sql in [
        "DELETE FROM part_fragments WHERE part_id = ?1",
        "DELETE FROM fragment_imports WHERE part_id = ?1",
        "DELETE FROM part_history WHERE part_id = ?1",
        "DELETE FROM logs WHERE part_id = ?1",
        "DELETE FROM parts WHERE id = ?1",
    ] {
        q(tx.execute(sql, params![id]))?;
    }
    super::drop_metadata(tx, super::MetadataOwner::Part, id)
}

pub fn delete_part(tx: &Transaction, p: &PartRow) -> R<()> {
    if p.main {
        let others = parts_of(tx, &p.robot_id)?.len() - 1;
        return Err(Status::failed_precondition(if others > 0 {
            format!(
                "part {} is the machine's main part and {others} other part(s) exist; \
                 mark another part as main first",
                p.id
            )
        } else {
            format!(
                "part {} is the machine's only part; a machine always has a main part (delete the machine instead)",
                p.id
            )
        }));
    }
    remove_part(tx, &p.id)
}

pub fn mark_main(tx: &Transaction, p: &PartRow) -> R<()> {
    q(tx.execute(
        "UPDATE parts SET main = (id = ?1) WHERE robot_id = ?2",
        params![p.id, p.robot_id],
    ))
    .map(|_| ())
}

/// Fragment ids a config references through `fragments`: `["id", …]` or `[{"id": …}, …]`,
/// sorted.
pub fn fragment_refs(config: &serde_json::Value) -> Vec<String> {
    let mut ids = crate::model::rules::imported_fragment_ids(config);
    ids.sort();
    ids
}

/// A config as written (the exact JSON text, stored and served back byte for byte) and as
/// parsed (for the fragments it references).
pub struct ConfigText {
    pub text: String,
    pub value: serde_json::Value,
}

/// Who made a change: the authentication type and the key id or email.
pub type EditorInfo<'a> = (pb::AuthenticationType, &'a str);

/// Stores a new name/config for `old`, bumping `last_updated` and appending a history entry
/// that holds the part as it was and who changed it.
pub fn update_part(
    tx: &Transaction,
    old: &PartRow,
    name: &str,
    config: Option<&ConfigText>,
    editor: EditorInfo<'_>,
) -> R<()> {
    let now = now_us().max(old.last_updated_us + 1);
    let old_pb: Option<Vec<u8>> = q(cached_row(
        tx,
        "SELECT config_pb FROM parts WHERE id = ?1",
        params![old.id],
        |r| r.get(0),
    ))?;
    let (config_text, config_pb) = match config {
        Some(c) => (c.text.clone(), Some(config_pb_of(&c.value))),
        None => (old.config.clone(), old_pb.clone()),
    };
    q(tx.execute(
        "INSERT INTO part_history (part_id, robot_id, when_us, old, editor_type, editor_value) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            old.id,
            old.robot_id,
            now,
            old.encode(old_pb.as_deref()),
            editor.0 as i32,
            editor.1
        ],
    ))?;
    q(tx.execute(
        "UPDATE parts SET name = ?2, config = ?3, last_updated_us = ?4, config_pb = ?5 WHERE id = ?1",
        params![old.id, name, config_text, now, config_pb],
    ))?;
    if let Some(c) = config {
        record_imports(tx, old, &c.text, &fragment_refs(&c.value))?;
    }
    Ok(())
}

/// One page of rows fetched with `LIMIT limit + 1`, newest first: the first `limit` items and,
/// when there were more, the token of the next page (the sequence number of the last item kept).
pub(super) fn page<T>(mut rows: Vec<(i64, T)>, limit: i64) -> (Vec<T>, Option<i64>) {
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|(seq, _)| *seq)
    } else {
        None
    };
    (rows.into_iter().map(|(_, item)| item).collect(), next)
}

/// History of a part, newest first, entries with `seq < before` when paging.
pub fn part_history(
    db: &Connection,
    part_id: &str,
    before: Option<i64>,
    start_us: Option<i64>,
    end_us: Option<i64>,
    limit: i64,
) -> R<(Vec<pb::RobotPartHistoryEntry>, Option<i64>)> {
    use prost::Message;
    let mut st = q(db.prepare_cached(
        "SELECT seq, part_id, robot_id, when_us, old, editor_type, editor_value FROM part_history \
         WHERE part_id = ?1 AND seq < ?2 AND when_us >= ?3 AND when_us <= ?4 ORDER BY seq DESC LIMIT ?5",
    ))?;
    let rows = q(st.query_map(
        params![
            part_id,
            before.unwrap_or(i64::MAX),
            start_us.unwrap_or(i64::MIN),
            end_us.unwrap_or(i64::MAX),
            limit + 1
        ],
        |r| {
            let blob: Vec<u8> = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?,
                pb::RobotPartHistoryEntry {
                    part: r.get(1)?,
                    robot: r.get(2)?,
                    when: Some(ts(r.get(3)?)),
                    old: pb::RobotPart::decode(blob.as_slice()).ok(),
                    edited_by: Some(pb::AuthenticatorInfo {
                        r#type: r.get(5)?,
                        value: r.get(6)?,
                        is_deactivated: false,
                    }),
                },
            ))
        },
    ))?;
    let rows: Vec<(i64, pb::RobotPartHistoryEntry)> = q(rows.collect())?;
    Ok(page(rows, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(config: &str) -> PartRow {
        PartRow {
            id: "p".into(),
            robot_id: "r".into(),
            location_id: "l".into(),
            org_id: "o".into(),
            name: "Arm Main".into(),
            main: true,
            config: config.into(),
            secret: "s3cret".into(),
            created_us: 1_000_000,
            last_updated_us: 2_000_000,
            last_access_us: Some(3_000_000),
        }
    }

    /// The prepared encoding is `to_pb`'s message, from the stored `Struct` or from the text.
    #[test]
    fn an_encoded_part_decodes_to_the_part() {
        use prost::Message;
        for config in [
            r#"{"components": [{"name": "a", "attributes": {"x": [1, 2.5, null, true, "s", {}], "y": {"z": []}}}], "fragments": ["f1"]}"#,
            r#"{}"#,
            r#"not json"#,
        ] {
            let r = row(config);
            let want = r.to_pb();
            let stored = config_pb_of(&r.config_json());
            for encoded in [r.encode(Some(&stored)), r.encode(None)] {
                assert_eq!(
                    pb::RobotPart::decode(encoded.as_slice()).unwrap(),
                    want,
                    "{config}"
                );
            }
        }
    }

    #[test]
    fn fragments_of_is_the_fragments_value_of_the_whole_config() {
        for config in [
            r#"{"components": [{"name": "a", "attributes": {"x": [1, {"y": null}]}}], "fragments": ["f1", {"id": "f2", "version": "3"}], "modules": []}"#,
            r#"{"fragments": []}"#,
            r#"{"components": []}"#,
            r#"{}"#,
            r#"not json"#,
        ] {
            let r = row(config);
            let whole = r
                .config_json()
                .get("fragments")
                .cloned()
                .unwrap_or_default();
            assert_eq!(fragments_of(&r.config), whole, "{config}");
        }
        assert_eq!(
            fragments_of(r#"{"a": {"fragments": 1}, "fragments": ["f"]}"#),
            json!(["f"])
        );
    }
}
