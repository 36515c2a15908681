//! The local cloud's SQLite store: schema, connections, and the queries every RPC is built from.
//!
//! One writer connection (mutating calls run in one `IMMEDIATE` transaction each) and a small
//! pool of reader connections; WAL mode lets readers proceed while a write commits. All work runs
//! on tokio's blocking pool. Queries return generated protobuf types directly: the store exists
//! only to serve the wire API, and business rules that need the data (nesting depth, unique
//! names, the main part) live here, next to it, as `tonic::Status` errors.
//!
//! # Layout
//! This file holds the schema and migrations, the connections ([`Store`]) and the small
//! helpers (ids, timestamps, argument checks, JSON ⇄ `Struct`); the queries live in one file per
//! table group: `orgs`, `invites`, `locations`, `robots`, `parts`, `logs`, `fragments`,
//! `metadata`, `roles`, `keys`. Their
//! public items are re-exported here, so callers write `store::name` whatever the file.
//! Registered kinds keep their own tables and queries (`crate::localcloud::kind`); their DDL
//! runs on every open, after [`SCHEMA`] and the migrations.

use crate::proto::viam::app::v1 as pb;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::Status;

mod fragments;
mod invites;
mod keys;
mod locations;
mod logs;
mod metadata;
mod orgs;
mod parts;
mod robots;
mod roles;
mod summaries;

pub use fragments::*;
pub use invites::*;
pub use keys::*;
pub use locations::*;
pub use logs::*;
pub use metadata::*;
pub use orgs::*;
pub use parts::*;
pub use robots::*;
pub use roles::*;
pub use summaries::*;

pub type R<T> = Result<T, Status>;

/// Schema version stored in `meta`; bump with a migration in [`MIGRATIONS`] when the schema
/// changes. [`SCHEMA`] always creates the newest schema.
const SCHEMA_VERSION: i64 = 6;

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
    // 2 -> 3: the `metadata` and `member_roles` tables, which SCHEMA creates; every existing
    // member owns its organization (before roles, every member could do everything).
    r#"
    INSERT OR IGNORE INTO member_roles (org_id, identity_id, resource_type, resource_id, role)
        SELECT org_id, user_id, 'organization', org_id, 'owner' FROM members;
    "#,
    // 3 -> 4: API keys have names and authorizations (the `key_auths` table, which SCHEMA
    // creates); every existing key owns its organization (before, every key could do
    // everything).
    r#"
    ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
    INSERT OR IGNORE INTO key_auths (key_id, resource_type, resource_id, role)
        SELECT id, 'organization', org_id, 'owner' FROM api_keys;
    "#,
    // 4 -> 5: each part's config also as the encoded `Struct` that replies carry
    // (`config_pb`); `migrate` fills it for the existing parts.
    r#"
    ALTER TABLE parts ADD COLUMN config_pb BLOB;
    "#,
    // 5 -> 6: each import of a fragment with its version (`fragment_imports`, which SCHEMA
    // creates); `migrate` fills it from the existing parts' configs.
    "",
];

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, public_namespace TEXT NOT NULL DEFAULT '',
    created_us INTEGER NOT NULL, default_fragments BLOB);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), key_sha256 TEXT NOT NULL,
    created_us INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS key_auths (
    key_id TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
    role TEXT NOT NULL, PRIMARY KEY (key_id, resource_type, resource_id, role));
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
    last_updated_us INTEGER NOT NULL, last_access_us INTEGER, config_pb BLOB);
CREATE INDEX IF NOT EXISTS parts_robot ON parts(robot_id);
-- What a machine summary reads of a part, so it never reads the row (whose config and its
-- encoding spill over several pages before the last access).
CREATE INDEX IF NOT EXISTS parts_summary
    ON parts(robot_id, created_us, id, name, main, last_access_us);
CREATE TABLE IF NOT EXISTS part_fragments (
    part_id TEXT NOT NULL REFERENCES parts(id), fragment_id TEXT NOT NULL,
    PRIMARY KEY (part_id, fragment_id));
CREATE INDEX IF NOT EXISTS part_fragments_fragment ON part_fragments(fragment_id);
CREATE TABLE IF NOT EXISTS fragment_imports (
    fragment_id TEXT NOT NULL, part_id TEXT NOT NULL REFERENCES parts(id),
    robot_id TEXT NOT NULL REFERENCES robots(id), version TEXT);
CREATE INDEX IF NOT EXISTS fragment_imports_fragment
    ON fragment_imports(fragment_id, robot_id, version);
CREATE INDEX IF NOT EXISTS fragment_imports_part ON fragment_imports(part_id);
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
CREATE TABLE IF NOT EXISTS member_roles (
    org_id TEXT NOT NULL, identity_id TEXT NOT NULL, resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (org_id, identity_id, resource_type, resource_id, role));
CREATE TABLE IF NOT EXISTS metadata (
    kind TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, id));
"#;

/// Number of read-only connections kept open for concurrent reads.
const READERS: usize = 4;

/// The most of the database file each connection maps into memory (address space only;
/// the pages are the operating system's file cache, shared by every connection).
const MMAP_BYTES: i64 = 1 << 30;

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

/// `db.query_row` through the connection's statement cache: the store asks the same few
/// dozen questions over and over (a location listing asks two per location), and preparing a
/// statement costs more than answering it.
pub(super) fn cached_row<T, P: rusqlite::Params>(
    db: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    db.prepare_cached(sql)?.query_row(params, f)
}

/// Statements each connection keeps prepared: every one the store uses (about 80), so none is
/// evicted and prepared again.
const STATEMENT_CACHE: usize = 256;

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a write is on disk before the RPC that made it is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Pages read through a memory map rather than a `pread` and a copy each: most of a read's
    // time in the kernel was those copies (each connection's own page cache is small, and a
    // fleet's configs are megabytes). Pages the write-ahead log holds are read as before.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    // Query plans that do not depend on the values bound. Otherwise an `x = ?` the planner
    // looks at marks the statement "re-prepare when rebound", and the statement cache clears
    // every statement's bindings when it is put back: each use of a cached statement was a
    // full re-compile of its SQL (a quarter of the CPU of a read). No query here has a plan
    // that a bound value could improve (no `LIKE ?`, no `ANALYZE` statistics).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
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
            if v < 5 {
                parts::fill_config_pb(&tx)?;
            }
            if v < 6 {
                parts::fill_fragment_imports(&tx)?;
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
    // The registered kinds' tables (`service::kinds`): created on every open, so a new
    // kind's table needs no schema-version bump.
    for ddl in super::service::kinds::tables() {
        tx.execute_batch(ddl)?;
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

/// A query's result, its error as `INTERNAL`.
pub fn q<T>(r: rusqlite::Result<T>) -> R<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached statement is compiled once, not again each time it runs with new values:
    /// every RPC asks `key_grants` on a reader connection.
    #[test]
    fn cached_statements_are_not_recompiled_when_rebound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cloud.db")).unwrap();
        let conn = store.readers.lock().unwrap().pop().unwrap();
        for key in ["k1", "k2", "k3", "k4"] {
            assert!(key_grants(&conn, key).unwrap().is_empty());
        }
        let st = conn.prepare_cached(KEY_GRANTS_SQL).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
