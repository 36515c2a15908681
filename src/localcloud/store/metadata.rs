//! Metadata: the free-form JSON object kept on an organization, a location, a machine or a
//! part (`Get/Update{Organization,Location,Robot,RobotPart}Metadata`).
//!
//! One row per resource that ever had metadata written; a resource without a row has empty
//! metadata (`{}`), as on Viam's cloud. Rows go with their resource when it is deleted.

use super::{R, q};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// What a metadata row belongs to; the value is the `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataOwner {
    Organization,
    Location,
    Robot,
    Part,
}

impl MetadataOwner {
    fn as_str(self) -> &'static str {
        match self {
            MetadataOwner::Organization => "organization",
            MetadataOwner::Location => "location",
            MetadataOwner::Robot => "robot",
            MetadataOwner::Part => "part",
        }
    }
}

/// The metadata of `id` (an empty object when none was ever written).
pub fn metadata(db: &Connection, owner: MetadataOwner, id: &str) -> R<serde_json::Value> {
    let text: Option<String> = q(db
        .query_row(
            "SELECT data FROM metadata WHERE kind = ?1 AND id = ?2",
            params![owner.as_str(), id],
            |r| r.get(0),
        )
        .optional())?;
    match text {
        Some(t) => serde_json::from_str(&t).map_err(super::internal),
        None => Ok(serde_json::json!({})),
    }
}

/// Replaces the metadata of `id` with `data` (a JSON object).
pub fn set_metadata(
    tx: &Transaction,
    owner: MetadataOwner,
    id: &str,
    data: &serde_json::Value,
) -> R<()> {
    let text = serde_json::to_string(data).map_err(super::internal)?;
    q(tx.execute(
        "INSERT INTO metadata (kind, id, data) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
        params![owner.as_str(), id, text],
    ))
    .map(|_| ())
}

/// Removes the metadata of a deleted resource.
pub(super) fn drop_metadata(tx: &Transaction, owner: MetadataOwner, id: &str) -> R<()> {
    q(tx.execute(
        "DELETE FROM metadata WHERE kind = ?1 AND id = ?2",
        params![owner.as_str(), id],
    ))
    .map(|_| ())
}
