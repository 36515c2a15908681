//! The store: Part logs.

use super::*;

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
    let mut st = q(tx.prepare_cached(
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
    let mut st = q(db.prepare_cached(
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
