//! The store: liveness. When parts last reached the cloud, what that makes their online
//! state, and the machine summaries (`ListMachineSummaries`) built from it.
//!
//! A part is **online** while its last access is at most [`ONLINE_WINDOW`] old, **offline**
//! after that, and **awaiting setup** until it has reached the cloud once. A machine's last
//! access is the newest of its parts'.

use super::*;
use std::collections::HashMap;

/// How recent a part's last access must be for it to count as online. Machines reach the
/// cloud every few seconds while they run, so 10 s of silence means it is gone.
pub const ONLINE_WINDOW_US: i64 = 10_000_000;

/// The online state and seconds since online of something last seen at `last_access_us`.
pub fn online_state(last_access_us: Option<i64>, now: i64) -> (pb::OnlineState, i64) {
    match last_access_us {
        None => (pb::OnlineState::AwaitingSetup, 0),
        Some(t) if now - t <= ONLINE_WINDOW_US => (pb::OnlineState::Online, 0),
        Some(t) => (pb::OnlineState::Offline, (now - t).max(0) / 1_000_000),
    }
}

/// Records that part `part_id` (and so its machine) reached the cloud at `at_us`.
pub fn touch_part(tx: &Transaction, part_id: &str, at_us: i64) -> R<()> {
    q(tx.execute(
        "UPDATE parts SET last_access_us = ?2 WHERE id = ?1",
        params![part_id, at_us],
    ))?;
    q(tx.execute(
        "UPDATE robots SET last_access_us = ?2 WHERE id = (SELECT robot_id FROM parts WHERE id = ?1) \
         AND (last_access_us IS NULL OR last_access_us < ?2)",
        params![part_id, at_us],
    ))?;
    Ok(())
}

/// A part as its summary needs it.
struct SummaryRow {
    id: String,
    name: String,
    robot_id: String,
    robot_name: String,
    main: bool,
    last_access_us: Option<i64>,
}

/// What `ListMachineSummaries` asks for.
pub struct SummaryFilter {
    /// Only machines with a part importing one of these fragments; no filter when empty.
    pub fragment_ids: Vec<String>,
    /// At most this many machines.
    pub limit: Option<i64>,
}

/// The summaries of the machines of `org_id`'s locations `locations` (already checked
/// readable), grouped by location in the order given, machines and parts by creation.
pub fn machine_summaries(
    db: &Connection,
    locations: &[LocationRow],
    f: &SummaryFilter,
) -> R<Vec<pb::LocationSummary>> {
    let now = now_us();
    let mut machines_left = f.limit.filter(|l| *l > 0).unwrap_or(i64::MAX);
    let mut out = vec![];
    // Per location, two queries: its parts with their machines' names (no configs), and the
    // fragments those parts import.
    let mut st = q(db.prepare_cached(
        "SELECT p.id, p.name, p.robot_id, r.name, p.main, p.last_access_us \
         FROM parts p JOIN robots r ON r.id = p.robot_id WHERE r.location_id = ?1 \
         ORDER BY r.created_us, r.id, p.created_us, p.id",
    ))?;
    let mut frag = q(db.prepare_cached(
        "SELECT pf.part_id, pf.fragment_id, COALESCE(f.name, '') FROM part_fragments pf \
         JOIN parts p ON p.id = pf.part_id JOIN robots r ON r.id = p.robot_id \
         LEFT JOIN fragments f ON f.id = pf.fragment_id \
         WHERE r.location_id = ?1 ORDER BY pf.part_id, pf.fragment_id",
    ))?;
    for l in locations {
        let rows = q(st.query_map(params![l.id], |r| {
            Ok(SummaryRow {
                id: r.get(0)?,
                name: r.get(1)?,
                robot_id: r.get(2)?,
                robot_name: r.get(3)?,
                main: r.get(4)?,
                last_access_us: r.get(5)?,
            })
        }))?;
        let rows: Vec<SummaryRow> = q(rows.collect())?;
        let mut imports: HashMap<String, Vec<pb::FragmentSummary>> = HashMap::new();
        for row in q(frag.query_map(params![l.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        }))? {
            let (part, id, name) = q(row)?;
            imports
                .entry(part)
                .or_default()
                .push(pb::FragmentSummary { id, name });
        }
        let mut machines: Vec<pb::MachineSummary> = vec![];
        for p in rows {
            let fragments = imports.remove(&p.id).unwrap_or_default();
            let (state, since) = online_state(p.last_access_us, now);
            let summary = pb::PartSummary {
                part_id: p.id.clone(),
                part_name: p.name.clone(),
                last_online: p.last_access_us.map(ts),
                viam_server_version: None,
                viam_agent_version: None,
                os: None,
                platform: None,
                public_ip_address: None,
                fragments,
                dns_name: Some(dns_name(&p.name)),
                is_main_part: p.main,
                online_state: state as i32,
                seconds_since_online: since,
                last_access: p.last_access_us.map(ts),
            };
            match machines.last_mut() {
                Some(m) if m.machine_id == p.robot_id => m.part_summaries.push(summary),
                _ => machines.push(pb::MachineSummary {
                    machine_id: p.robot_id,
                    machine_name: p.robot_name,
                    part_summaries: vec![summary],
                }),
            }
        }
        if !f.fragment_ids.is_empty() {
            machines.retain(|m| {
                m.part_summaries
                    .iter()
                    .any(|p| p.fragments.iter().any(|fs| f.fragment_ids.contains(&fs.id)))
            });
        }
        let take = machines
            .len()
            .min(usize::try_from(machines_left).unwrap_or(usize::MAX));
        machines.truncate(take);
        machines_left -= take as i64;
        out.push(pb::LocationSummary {
            location_id: l.id.clone(),
            location_name: l.name.clone(),
            machine_summaries: machines,
        });
        if machines_left == 0 {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_the_window_passes() {
        let now = 100_000_000;
        assert_eq!(online_state(None, now).0, pb::OnlineState::AwaitingSetup);
        assert_eq!(
            online_state(Some(now - ONLINE_WINDOW_US), now).0,
            pb::OnlineState::Online
        );
        assert_eq!(
            online_state(Some(now - ONLINE_WINDOW_US - 3_000_000), now),
            (pb::OnlineState::Offline, 13)
        );
    }
}
