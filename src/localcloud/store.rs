//! The local cloud's SQLite store: schema, connections, and the queries every RPC is built from.
//!
//! One writer connection (mutating calls run in one `IMMEDIATE` transaction each) and a small
//! pool of reader connections; WAL mode lets readers proceed while a write commits. All work runs
//! on tokio's blocking pool. Queries return generated protobuf types directly: the store exists
//! only to serve the wire API, and business rules that need the data (nesting depth, unique
//! names, the main part) live here, next to it, as `tonic::Status` errors.

use crate::proto::viam::app::v1 as pb;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::Status;

pub type R<T> = Result<T, Status>;

/// Schema version stored in `meta`; bump with a migration in [`MIGRATIONS`] when the schema
/// changes. [`SCHEMA`] always creates the newest schema.
const SCHEMA_VERSION: i64 = 2;

/// `MIGRATIONS[i]` brings a version `i + 1` database to version `i + 2`.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: organization default fragments, fragment revisions, tags and history, and
    // whether an invite was to be emailed. Existing fragments become revision 1.
    r#"
    ALTER TABLE orgs ADD COLUMN default_fragments BLOB;
    ALTER TABLE fragments ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE invites ADD COLUMN send_email INTEGER NOT NULL DEFAULT 1;
    INSERT OR IGNORE INTO fragment_revisions (fragment_id, revision, name, config, visibility, created_us)
        SELECT id, 1, name, config, visibility, last_updated_us FROM fragments;
    "#,
];

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, public_namespace TEXT NOT NULL DEFAULT '',
    created_us INTEGER NOT NULL, default_fragments BLOB);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), key_sha256 TEXT NOT NULL,
    created_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    org_id TEXT NOT NULL REFERENCES orgs(id), user_id TEXT NOT NULL, email TEXT NOT NULL,
    date_added_us INTEGER NOT NULL, PRIMARY KEY (org_id, user_id));
CREATE TABLE IF NOT EXISTS locations (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    parent_id TEXT REFERENCES locations(id), created_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS locations_org ON locations(org_id);
CREATE TABLE IF NOT EXISTS location_shares (
    location_id TEXT NOT NULL REFERENCES locations(id), org_id TEXT NOT NULL REFERENCES orgs(id),
    PRIMARY KEY (location_id, org_id));
CREATE TABLE IF NOT EXISTS location_secrets (
    id TEXT PRIMARY KEY, location_id TEXT NOT NULL REFERENCES locations(id), secret TEXT NOT NULL,
    created_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS location_secrets_loc ON location_secrets(location_id);
CREATE TABLE IF NOT EXISTS robots (
    id TEXT PRIMARY KEY, location_id TEXT NOT NULL REFERENCES locations(id), name TEXT NOT NULL,
    created_us INTEGER NOT NULL, last_access_us INTEGER, UNIQUE (location_id, name));
CREATE TABLE IF NOT EXISTS parts (
    id TEXT PRIMARY KEY, robot_id TEXT NOT NULL REFERENCES robots(id), name TEXT NOT NULL,
    main INTEGER NOT NULL, config TEXT NOT NULL, secret TEXT NOT NULL, created_us INTEGER NOT NULL,
    last_updated_us INTEGER NOT NULL, last_access_us INTEGER);
CREATE INDEX IF NOT EXISTS parts_robot ON parts(robot_id);
CREATE TABLE IF NOT EXISTS part_fragments (
    part_id TEXT NOT NULL REFERENCES parts(id), fragment_id TEXT NOT NULL,
    PRIMARY KEY (part_id, fragment_id));
CREATE INDEX IF NOT EXISTS part_fragments_fragment ON part_fragments(fragment_id);
CREATE TABLE IF NOT EXISTS part_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, part_id TEXT NOT NULL, robot_id TEXT NOT NULL,
    when_us INTEGER NOT NULL, old BLOB NOT NULL, editor_type INTEGER NOT NULL,
    editor_value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS part_history_part ON part_history(part_id, seq);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, part_id TEXT NOT NULL, time_us INTEGER NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL, entry BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS logs_part ON logs(part_id, seq);
CREATE TABLE IF NOT EXISTS fragments (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
    config TEXT NOT NULL, visibility INTEGER NOT NULL, created_us INTEGER NOT NULL,
    last_updated_us INTEGER NOT NULL, revision INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS fragments_org ON fragments(org_id);
CREATE TABLE IF NOT EXISTS fragment_revisions (
    fragment_id TEXT NOT NULL, revision INTEGER NOT NULL, name TEXT NOT NULL,
    config TEXT NOT NULL, visibility INTEGER NOT NULL, created_us INTEGER NOT NULL,
    PRIMARY KEY (fragment_id, revision));
CREATE TABLE IF NOT EXISTS fragment_tags (
    fragment_id TEXT NOT NULL, tag TEXT NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (fragment_id, tag));
CREATE TABLE IF NOT EXISTS fragment_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, fragment_id TEXT NOT NULL, revision INTEGER NOT NULL,
    when_us INTEGER NOT NULL, old BLOB NOT NULL, editor_type INTEGER NOT NULL,
    editor_value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS fragment_history_fragment ON fragment_history(fragment_id, seq);
CREATE TABLE IF NOT EXISTS invites (
    org_id TEXT NOT NULL REFERENCES orgs(id), email TEXT NOT NULL, created_us INTEGER NOT NULL,
    send_email INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (org_id, email));
CREATE TABLE IF NOT EXISTS invite_auths (
    org_id TEXT NOT NULL, email TEXT NOT NULL, resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (org_id, email, resource_type, resource_id, role));
"#;

/// Number of read-only connections kept open for concurrent reads.
const READERS: usize = 4;

/// The store: one writer, a pool of readers, all over the same database file.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("local cloud store: {e}"))
}

impl From<StoreOpenError> for Status {
    fn from(e: StoreOpenError) -> Status {
        internal(e)
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the local cloud database {path}: {source}")]
pub struct StoreOpenError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a write is on disk before the RPC that made it is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Creates the schema in a new database, or brings an older one up to [`SCHEMA_VERSION`] with
/// [`MIGRATIONS`], in one transaction. A database newer than this program is refused.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match stored.map(|v| v.parse::<i64>()) {
        None => {
            tx.execute_batch(SCHEMA)?;
        }
        Some(Ok(v)) if (1..=SCHEMA_VERSION).contains(&v) => {
            // New tables first (the migrations may fill them), then the column changes.
            tx.execute_batch(SCHEMA)?;
            for m in &MIGRATIONS[(v - 1) as usize..] {
                tx.execute_batch(m)?;
            }
        }
        Some(other) => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!(
                    "unsupported schema version {other:?} (this program knows 1 to {SCHEMA_VERSION}); \
                     use a newer fleetform"
                )
                .into(),
            ));
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        params![SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreOpenError> {
        let err = |source| StoreOpenError {
            path: path.display().to_string(),
            source,
        };
        let io_err = |e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e)));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::sensitive::create_private_dir(dir).map_err(io_err)?;
        }
        // The database holds secrets: 0600 before SQLite opens it (SQLite creates its -wal
        // and -shm files with the database's mode); older files are tightened.
        crate::sensitive::prepare_private_file(path).map_err(io_err)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_os_string();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                crate::sensitive::prepare_private_file(&side).map_err(io_err)?;
            }
        }
        let mut writer = open_conn(path).map_err(err)?;
        migrate(&mut writer).map_err(err)?;
        let readers = (0..READERS)
            .map(|_| open_conn(path))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(readers),
        })
    }

    /// Runs `f` on a reader connection on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> R<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> R<T> + Send + 'static,
    {
        // Reads are short (indexed lookups on a local file), so they run inline: handing each
        // to the blocking pool costs more than the query.
        let conn = self.readers.lock().map_err(internal)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path).map_err(internal)?,
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push(conn);
        }
        out
    }

    /// Runs `f` in one write transaction on the blocking pool; commits only if `f` succeeds.
    pub async fn write<T, F>(self: &Arc<Self>, f: F) -> R<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> R<T> + Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(internal)?
    }

    /// Like [`Store::write`] but on the calling thread (for `cloud init` and tests).
    pub fn write_blocking<T, F>(&self, f: F) -> R<T>
    where
        F: FnOnce(&Transaction) -> R<T>,
    {
        let mut conn = self.writer.lock().map_err(internal)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(internal)?;
        let out = f(&tx)?;
        tx.commit().map_err(internal)?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

pub fn ts(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

pub fn ts_us(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random lowercase alphanumeric string of `len` characters.
pub fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = fastrand::Rng::with_seed(seed());
    (0..len)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect()
}

/// Seeds from the OS random source (via a v4 UUID) so ids and secrets are unpredictable.
fn seed() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        ^ u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The longest name (of an organization, location, machine, part or fragment) accepted, in
/// characters. Viam documents no limit; without one, a few huge names make every listing of
/// the organization larger than a gRPC message may be.
pub use crate::model::rules::MAX_NAME_CHARS;

/// The longest id accepted, in bytes (a UUID has 36). Longer ids are refused before they are
/// looked up or quoted in an error.
pub const MAX_ID_BYTES: usize = 64;

/// The longest value of any other required string field, in bytes.
const MAX_FIELD_BYTES: usize = 4096;

/// `INVALID_ARGUMENT` unless `value` is non-empty (and not absurdly long).
pub fn require<'a>(field: &str, value: &'a str) -> R<&'a str> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} is too long ({} bytes; at most {MAX_FIELD_BYTES})",
            value.len()
        )));
    }
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

/// `INVALID_ARGUMENT` for an id longer than [`MAX_ID_BYTES`].
fn check_id_len(field: &str, value: &str) -> R<()> {
    if value.len() > MAX_ID_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} is too long to be an id ({} bytes; at most {MAX_ID_BYTES})",
            value.len()
        )));
    }
    Ok(())
}

/// `INVALID_ARGUMENT` unless `value` is a name: non-empty, at most [`MAX_NAME_CHARS`]
/// characters, and free of control characters (and of the invisible characters that reorder
/// text on a terminal).
pub fn require_name<'a>(field: &str, value: &'a str) -> R<&'a str> {
    require(field, value)?;
    check_name(field, value)?;
    Ok(value)
}

/// The length and character rules of [`require_name`], for an optional name.
pub fn check_name(field: &str, value: &str) -> R<()> {
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Status::invalid_argument(format!(
            "{field} is {chars} characters long; names are at most {MAX_NAME_CHARS}"
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| crate::model::rules::is_forbidden_char(c))
    {
        return Err(Status::invalid_argument(format!(
            "{field} contains the control character {}",
            c.escape_unicode()
        )));
    }
    Ok(())
}

/// `INVALID_ARGUMENT` unless `value` is a UUID.
pub fn require_uuid<'a>(field: &str, value: &'a str) -> R<&'a str> {
    check_id_len(field, value)?;
    require(field, value)?;
    if uuid::Uuid::parse_str(value).is_err() {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} is not a valid id (expected a UUID)"
        )));
    }
    Ok(value)
}

/// `INVALID_ARGUMENT` unless `value` looks like a location id (10 lowercase alphanumerics).
pub fn require_location_id<'a>(field: &str, value: &'a str) -> R<&'a str> {
    check_id_len(field, value)?;
    require(field, value)?;
    if value.len() != 10
        || !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} is not a valid location id (expected 10 lowercase letters or digits)"
        )));
    }
    Ok(value)
}

fn q<T>(r: rusqlite::Result<T>) -> R<T> {
    r.map_err(internal)
}

pub fn struct_from_json(v: &serde_json::Value) -> prost_types::Struct {
    match json_to_value(v).kind {
        Some(prost_types::value::Kind::StructValue(s)) => s,
        _ => prost_types::Struct::default(),
    }
}

fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn json_from_struct(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => json_from_struct(s),
    }
}

// ---------------------------------------------------------------------------------------------
// Organizations, API keys, members.

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
    q(db.query_row(
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

/// The caller's own organization, or `PERMISSION_DENIED` / `NOT_FOUND` for any other id.
pub fn caller_org(db: &Connection, caller_org: &str, requested: &str, field: &str) -> R<OrgRow> {
    require_uuid(field, requested)?;
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
    q(db.query_row(
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
    q(tx.execute(
        "INSERT INTO members (org_id, user_id, email, date_added_us) VALUES (?1, ?2, ?3, ?4)",
        params![id, new_uuid(), owner_email, now],
    ))?;
    Ok(id)
}

/// Adds an API key to `org_id`; returns `(key_id, key)`. Only the key's hash is stored.
pub fn create_api_key(tx: &Transaction, org_id: &str) -> R<(String, String)> {
    let key_id = new_uuid();
    let key = random_alnum(32);
    q(tx.execute(
        "INSERT INTO api_keys (id, org_id, key_sha256, created_us) VALUES (?1, ?2, ?3, ?4)",
        params![key_id, org_id, sha256_hex(&key), now_us()],
    ))?;
    Ok((key_id, key))
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

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn members(db: &Connection, org_id: &str) -> R<Vec<pb::OrganizationMember>> {
    let mut st = q(db.prepare(
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

// ---------------------------------------------------------------------------------------------
// Invites.

pub fn invites(db: &Connection, org_id: &str) -> R<Vec<pb::OrganizationInvite>> {
    let emails: Vec<String> = {
        let mut st = q(db.prepare("SELECT email FROM invites WHERE org_id = ?1 ORDER BY email"))?;
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
    let mut st = q(db.prepare(
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

/// Removes authorizations that point at a deleted resource.
fn drop_auths_on(tx: &Transaction, resource_type: &str, resource_id: &str) -> R<()> {
    q(tx.execute(
        "DELETE FROM invite_auths WHERE resource_type = ?1 AND resource_id = ?2",
        params![resource_type, resource_id],
    ))
    .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Locations and secrets.

pub struct LocationRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub created_us: i64,
}

pub fn location_row(db: &Connection, id: &str) -> R<Option<LocationRow>> {
    q(db.query_row(
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
    q(db.query_row(
        "SELECT EXISTS(SELECT 1 FROM location_shares WHERE location_id = ?1 AND org_id = ?2)",
        params![location_id, org_id],
        |r| r.get(0),
    ))
}

/// The organizations a location is shared with (not its owner), by id.
pub fn location_shares(db: &Connection, location_id: &str) -> R<Vec<String>> {
    let mut st =
        q(db.prepare("SELECT org_id FROM location_shares WHERE location_id = ?1 ORDER BY org_id"))?;
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

/// How the caller's organization may reach something in a location.
enum Reach {
    /// Its organization owns the location.
    Owner,
    /// The location is shared with its organization: it may read, not change.
    Shared,
    None,
}

fn reach(db: &Connection, owner: &str, location_id: &str, caller: &str) -> R<Reach> {
    Ok(if owner == caller {
        Reach::Owner
    } else if shared_with(db, location_id, caller)? {
        Reach::Shared
    } else {
        Reach::None
    })
}

/// `PERMISSION_DENIED` for a change to something in a location shared with the caller.
fn shared_only(what: &str, id: &str, owner: &str) -> Status {
    Status::permission_denied(format!(
        "{what} {id} is in a location organization {owner} shares with yours; only {owner} can change it"
    ))
}

/// The location `id` that the caller's organization owns (to change it): `INVALID_ARGUMENT`
/// for a malformed id, `PERMISSION_DENIED` for one only shared with it, `NOT_FOUND` otherwise.
pub fn location_in(db: &Connection, org_id: &str, field: &str, id: &str) -> R<LocationRow> {
    require_location_id(field, id)?;
    match location_row(db, id)? {
        Some(l) => match reach(db, &l.org_id, &l.id, org_id)? {
            Reach::Owner => Ok(l),
            Reach::Shared => Err(shared_only("location", id, &l.org_id)),
            Reach::None => Err(Status::not_found(format!("location {id} not found"))),
        },
        None => Err(Status::not_found(format!("location {id} not found"))),
    }
}

/// The location `id` that the caller's organization owns or has shared with it (to read it).
pub fn location_readable(db: &Connection, org_id: &str, field: &str, id: &str) -> R<LocationRow> {
    require_location_id(field, id)?;
    match location_row(db, id)? {
        Some(l) if !matches!(reach(db, &l.org_id, &l.id, org_id)?, Reach::None) => Ok(l),
        _ => Err(Status::not_found(format!("location {id} not found"))),
    }
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

fn children(db: &Connection, id: &str) -> R<Vec<String>> {
    let mut st = q(db.prepare("SELECT id FROM locations WHERE parent_id = ?1"))?;
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
    let mut st = q(db.prepare(
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
    let robot_count: i64 = q(db.query_row(
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

pub fn list_locations(db: &Connection, org_id: &str) -> R<Vec<pb::Location>> {
    let mut st = q(db.prepare(
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
    let rows: Vec<LocationRow> = q(rows.collect())?;
    rows.iter().map(|l| location_pb(db, l)).collect()
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
    let robots: i64 = q(tx.query_row(
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
    drop_auths_on(tx, "location", id)
}

// ---------------------------------------------------------------------------------------------
// Robots.

pub struct RobotRow {
    pub id: String,
    pub org_id: String,
    pub location_id: String,
    pub name: String,
    pub created_us: i64,
    pub last_access_us: Option<i64>,
}

const ROBOT_COLS: &str = "r.id, l.org_id, r.location_id, r.name, r.created_us, r.last_access_us \
                          FROM robots r JOIN locations l ON l.id = r.location_id";

fn robot_from(r: &rusqlite::Row) -> rusqlite::Result<RobotRow> {
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
            online_state: if self.last_access_us.is_some() {
                pb::OnlineState::Offline
            } else {
                pb::OnlineState::AwaitingSetup
            } as i32,
            seconds_since_online: 0,
        }
    }
}

pub fn robot_row(db: &Connection, id: &str) -> R<Option<RobotRow>> {
    q(db.query_row(
        &format!("SELECT {ROBOT_COLS} WHERE r.id = ?1"),
        params![id],
        robot_from,
    )
    .optional())
}

/// The machine `id` in a location the caller's organization owns (to change it).
pub fn robot_in(db: &Connection, org_id: &str, field: &str, id: &str) -> R<RobotRow> {
    require_uuid(field, id)?;
    match robot_row(db, id)? {
        Some(r) => match reach(db, &r.org_id, &r.location_id, org_id)? {
            Reach::Owner => Ok(r),
            Reach::Shared => Err(shared_only("machine", id, &r.org_id)),
            Reach::None => Err(Status::not_found(format!("machine {id} not found"))),
        },
        None => Err(Status::not_found(format!("machine {id} not found"))),
    }
}

/// The machine `id` in a location the caller's organization owns or has shared with it.
pub fn robot_readable(db: &Connection, org_id: &str, field: &str, id: &str) -> R<RobotRow> {
    require_uuid(field, id)?;
    match robot_row(db, id)? {
        Some(r) if !matches!(reach(db, &r.org_id, &r.location_id, org_id)?, Reach::None) => Ok(r),
        _ => Err(Status::not_found(format!("machine {id} not found"))),
    }
}

pub fn robots_where(db: &Connection, cond: &str, arg: &str) -> R<Vec<pb::Robot>> {
    let mut st = q(db.prepare(&format!(
        "SELECT {ROBOT_COLS} WHERE {cond} ORDER BY r.created_us, r.id"
    )))?;
    let rows = q(st.query_map(params![arg], robot_from))?;
    let rows: Vec<RobotRow> = q(rows.collect())?;
    Ok(rows.iter().map(RobotRow::to_pb).collect())
}

pub fn robot_name_taken(db: &Connection, location_id: &str, name: &str, except: &str) -> R<bool> {
    q(db.query_row(
        "SELECT EXISTS(SELECT 1 FROM robots WHERE location_id = ?1 AND name = ?2 AND id != ?3)",
        params![location_id, name, except],
        |r| r.get(0),
    ))
}

/// Whether a part named `name` exists in `location_id` (other than part `except`).
pub fn part_name_taken(db: &Connection, location_id: &str, name: &str, except: &str) -> R<bool> {
    q(db.query_row(
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
        let mut st = q(tx.prepare("SELECT id FROM parts WHERE robot_id = ?1"))?;
        let rows = q(st.query_map(params![id], |r| r.get(0)))?;
        q(rows.collect())?
    };
    for p in &parts {
        remove_part(tx, p)?;
    }
    q(tx.execute("DELETE FROM robots WHERE id = ?1", params![id]))?;
    drop_auths_on(tx, "robot", id)
}

// ---------------------------------------------------------------------------------------------
// Parts.

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

const PART_COLS: &str = "p.id, p.robot_id, r.location_id, l.org_id, p.name, p.main, p.config, p.secret, \
                         p.created_us, p.last_updated_us, p.last_access_us \
                         FROM parts p JOIN robots r ON r.id = p.robot_id JOIN locations l ON l.id = r.location_id";

fn part_from(r: &rusqlite::Row) -> rusqlite::Result<PartRow> {
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
fn dns_name(name: &str) -> String {
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
        let dns = dns_name(&self.name);
        pb::RobotPart {
            id: self.id.clone(),
            name: self.name.clone(),
            secret: self.secret.clone(),
            robot: self.robot_id.clone(),
            robot_config: Some(struct_from_json(&self.config_json())),
            last_access: self.last_access_us.map(ts),
            user_supplied_info: None,
            main_part: self.main,
            fqdn: format!("{dns}.{}.local.viam.cloud", self.location_id),
            dns_name: dns.clone(),
            local_fqdn: format!("{dns}.{}.local.viam.cloud", self.location_id),
            location_id: self.location_id.clone(),
            created_on: Some(ts(self.created_us)),
            secrets: vec![pb::SharedSecret {
                id: format!("{}-secret", self.id),
                secret: self.secret.clone(),
                created_on: Some(ts(self.created_us)),
                state: pb::shared_secret::State::Enabled as i32,
            }],
            last_updated: Some(ts(self.last_updated_us)),
            online_state: if self.last_access_us.is_some() {
                pb::OnlineState::Offline
            } else {
                pb::OnlineState::AwaitingSetup
            } as i32,
            seconds_since_online: 0,
            robot_config_json: Some(self.config.clone()),
        }
    }
}

pub fn part_row(db: &Connection, id: &str) -> R<Option<PartRow>> {
    q(db.query_row(
        &format!("SELECT {PART_COLS} WHERE p.id = ?1"),
        params![id],
        part_from,
    )
    .optional())
}

/// The part `id` in a location the caller's organization owns (to change it).
pub fn part_in(db: &Connection, org_id: &str, field: &str, id: &str) -> R<PartRow> {
    require_uuid(field, id)?;
    match part_row(db, id)? {
        Some(p) => match reach(db, &p.org_id, &p.location_id, org_id)? {
            Reach::Owner => Ok(p),
            Reach::Shared => Err(shared_only("part", id, &p.org_id)),
            Reach::None => Err(Status::not_found(format!("part {id} not found"))),
        },
        None => Err(Status::not_found(format!("part {id} not found"))),
    }
}

/// The part `id` in a location the caller's organization owns or has shared with it.
pub fn part_readable(db: &Connection, org_id: &str, field: &str, id: &str) -> R<PartRow> {
    require_uuid(field, id)?;
    match part_row(db, id)? {
        Some(p) if !matches!(reach(db, &p.org_id, &p.location_id, org_id)?, Reach::None) => Ok(p),
        _ => Err(Status::not_found(format!("part {id} not found"))),
    }
}

pub fn parts_of(db: &Connection, robot_id: &str) -> R<Vec<PartRow>> {
    let mut st = q(db.prepare(&format!(
        "SELECT {PART_COLS} WHERE p.robot_id = ?1 ORDER BY p.main DESC, p.created_us, p.id"
    )))?;
    let rows = q(st.query_map(params![robot_id], part_from))?;
    q(rows.collect())
}

pub fn insert_part(tx: &Transaction, robot_id: &str, name: &str, main: bool) -> R<String> {
    let id = new_uuid();
    let now = now_us();
    q(tx.execute(
        "INSERT INTO parts (id, robot_id, name, main, config, secret, created_us, last_updated_us) \
         VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?6)",
        params![id, robot_id, name, main, random_alnum(32), now],
    ))?;
    Ok(id)
}

fn remove_part(tx: &Transaction, id: &str) -> R<()> {
    for sql in [
        "DELETE FROM part_fragments WHERE part_id = ?1",
        "DELETE FROM part_history WHERE part_id = ?1",
        "DELETE FROM logs WHERE part_id = ?1",
        "DELETE FROM parts WHERE id = ?1",
    ] {
        q(tx.execute(sql, params![id]))?;
    }
    Ok(())
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
    use prost::Message;
    let now = now_us().max(old.last_updated_us + 1);
    let config_text = match config {
        Some(c) => c.text.clone(),
        None => old.config.clone(),
    };
    q(tx.execute(
        "INSERT INTO part_history (part_id, robot_id, when_us, old, editor_type, editor_value) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            old.id,
            old.robot_id,
            now,
            old.to_pb().encode_to_vec(),
            editor.0 as i32,
            editor.1
        ],
    ))?;
    q(tx.execute(
        "UPDATE parts SET name = ?2, config = ?3, last_updated_us = ?4 WHERE id = ?1",
        params![old.id, name, config_text, now],
    ))?;
    if let Some(c) = config {
        q(tx.execute(
            "DELETE FROM part_fragments WHERE part_id = ?1",
            params![old.id],
        ))?;
        for f in fragment_refs(&c.value) {
            q(tx.execute(
                "INSERT INTO part_fragments (part_id, fragment_id) VALUES (?1, ?2)",
                params![old.id, f],
            ))?;
        }
    }
    Ok(())
}

/// One page of rows fetched with `LIMIT limit + 1`, newest first: the first `limit` items and,
/// when there were more, the token of the next page (the sequence number of the last item kept).
fn page<T>(mut rows: Vec<(i64, T)>, limit: i64) -> (Vec<T>, Option<i64>) {
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
    let mut st = q(db.prepare(
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

// ---------------------------------------------------------------------------------------------
// Logs.

pub struct LogFilter {
    pub before: Option<i64>,
    pub filter: Option<String>,
    pub levels: Vec<String>,
    pub start_us: Option<i64>,
    pub end_us: Option<i64>,
    pub limit: i64,
}

pub fn insert_logs(
    tx: &Transaction,
    part_id: &str,
    logs: &[crate::proto::viam::common::v1::LogEntry],
) -> R<()> {
    use prost::Message;
    let mut st = q(tx.prepare(
        "INSERT INTO logs (part_id, time_us, level, message, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
    ))?;
    let now = now_us();
    for l in logs {
        q(st.execute(params![
            part_id,
            l.time.as_ref().map(ts_us).unwrap_or(now),
            l.level.to_ascii_lowercase(),
            l.message,
            l.encode_to_vec()
        ]))?;
    }
    Ok(())
}

/// Log entries of a part, newest first, and the token of the next (older) page.
pub fn part_logs(
    db: &Connection,
    part_id: &str,
    f: &LogFilter,
) -> R<(Vec<crate::proto::viam::common::v1::LogEntry>, Option<i64>)> {
    use prost::Message;
    let levels: Vec<String> = f.levels.iter().map(|l| l.to_ascii_lowercase()).collect();
    let levels_json = serde_json::to_string(&levels).map_err(internal)?;
    let mut st = q(db.prepare(
        "SELECT seq, entry FROM logs WHERE part_id = ?1 AND seq < ?2 AND time_us >= ?3 AND time_us <= ?4 \
         AND (?5 = '' OR instr(message, ?5) > 0) \
         AND (?6 = '[]' OR level IN (SELECT value FROM json_each(?6))) \
         ORDER BY seq DESC LIMIT ?7",
    ))?;
    let rows = q(st.query_map(
        params![
            part_id,
            f.before.unwrap_or(i64::MAX),
            f.start_us.unwrap_or(i64::MIN),
            f.end_us.unwrap_or(i64::MAX),
            f.filter.clone().unwrap_or_default(),
            levels_json,
            f.limit + 1
        ],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
    ))?;
    let rows: Vec<(i64, Vec<u8>)> = q(rows.collect())?;
    let (rows, next) = page(rows, f.limit);
    let entries = rows
        .iter()
        .map(|b| crate::proto::viam::common::v1::LogEntry::decode(b.as_slice()).map_err(internal))
        .collect::<R<Vec<_>>>()?;
    Ok((entries, next))
}

// ---------------------------------------------------------------------------------------------
// Fragments.

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

const FRAGMENT_COLS: &str =
    "id, org_id, name, config, visibility, created_us, last_updated_us, revision FROM fragments";

fn fragment_from(r: &rusqlite::Row) -> rusqlite::Result<FragmentRow> {
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
    q(db.query_row(
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
    q(db.query_row(
        "SELECT COUNT(*) FROM part_fragments WHERE fragment_id = ?1",
        params![id],
        |r| r.get(0),
    ))
}

pub fn fragment_pb(db: &Connection, f: &FragmentRow) -> R<pb::Fragment> {
    let owner = org(db, &f.org_id)?;
    let count = fragment_part_count(db, &f.id)?;
    let config: serde_json::Value =
        serde_json::from_str(&f.config).unwrap_or_else(|_| serde_json::json!({}));
    let orgs_using: i64 = q(db.query_row(
        "SELECT COUNT(DISTINCT l.org_id) FROM part_fragments pf JOIN parts p ON p.id = pf.part_id \
         JOIN robots r ON r.id = p.robot_id JOIN locations l ON l.id = r.location_id WHERE pf.fragment_id = ?1",
        params![f.id],
        |r| r.get(0),
    ))?;
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
        only_used_by_owner: orgs_using == 0
            || (orgs_using == 1 && count > 0 && {
                let owner_uses: i64 = q(db.query_row(
                    "SELECT COUNT(*) FROM part_fragments pf JOIN parts p ON p.id = pf.part_id \
                 JOIN robots r ON r.id = p.robot_id JOIN locations l ON l.id = r.location_id \
                 WHERE pf.fragment_id = ?1 AND l.org_id = ?2",
                    params![f.id, f.org_id],
                    |r| r.get(0),
                ))?;
                owner_uses == count
            }),
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
    let mut st = q(db.prepare(&format!(
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
fn insert_fragment_revision(tx: &Transaction, f: &FragmentRow) -> R<()> {
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
        q(db.query_row(
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
    q(db.query_row(
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
    let mut st = q(db.prepare(
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
    let mut st = q(db.prepare(
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

/// The `version` of each import of `fragment_id` in a config's `fragments` list: `None` for a
/// bare id or an object without a version (the latest revision). A numeric version counts as
/// its decimal text.
fn import_versions(config: &serde_json::Value, fragment_id: &str) -> Vec<Option<String>> {
    config
        .get("fragments")
        .and_then(|f| f.as_array())
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

/// How many machines import a fragment, computed from the parts' configs: for each version,
/// the machines whose parts import it at that version, the organizations they belong to, and
/// how many of them are in `current_org`.
pub fn fragment_usage(db: &Connection, fragment_id: &str, current_org: &str) -> R<Usage> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut st = q(db.prepare(&format!(
        "SELECT {PART_COLS} WHERE p.id IN (SELECT part_id FROM part_fragments WHERE fragment_id = ?1)"
    )))?;
    let rows = q(st.query_map(params![fragment_id], part_from))?;
    let parts: Vec<PartRow> = q(rows.collect())?;
    // version -> (machines, organizations, machines in the current organization)
    type Counts = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);
    let mut by_version: BTreeMap<Option<String>, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for p in &parts {
        for version in import_versions(&p.config_json(), fragment_id) {
            for (machines, orgs, local) in [by_version.entry(version).or_default(), &mut total] {
                machines.insert(p.robot_id.clone());
                orgs.insert(p.org_id.clone());
                if p.org_id == current_org {
                    local.insert(p.robot_id.clone());
                }
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
    Ok(Usage {
        by_version: by_version
            .into_iter()
            .map(|(version, counts)| usage(version, counts))
            .collect(),
        total: usage(None, total),
    })
}
