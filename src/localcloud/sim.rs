//! Simulated machines: an agent per part that runs inside the local cloud, so staged rollouts
//! and health gates can be tried and tested without robots.
//!
//! Every [`SimOptions::tick`], each part's agent fetches its config as a machine would (the
//! part's own config, and each imported fragment at the version it names: a tag, a revision,
//! or the latest), reports in (its `last_access`, which makes it online) and writes an `info`
//! log line whenever the config it fetched changed (`applied config <digest>`).
//!
//! A [`FailRule`] makes a part unhealthy: when the rule's JSON pointer, looked up in the part's
//! config or in any fragment config it imports, compares true with the rule's value, then
//! [`SimOptions::delay`] after the agent fetched that config it either stops reporting in (the
//! part goes offline: [`FailMode::Offline`]) or logs an `error` line each tick while it keeps
//! reporting in ([`FailMode::Errors`]). A config that no longer matches heals the part at the
//! next tick (it reports in again, and logs `applied config …`).
//!
//! The agents share no state with the gRPC handlers beyond the store: they write through it
//! like every call does (one transaction per tick for all parts).

use super::service::LogBatch;
use super::store::{self, Store};
use crate::proto::viam::common::v1::LogEntry;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How a failing part shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// It stops reporting in, so it turns offline.
    #[default]
    Offline,
    /// It keeps reporting in and logs an error every tick.
    Errors,
}

/// The comparison of a [`FailRule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// `<json-pointer><op><value>`, e.g. `/components/0/attributes/speed_degs_per_sec>100`: parts
/// whose config holds a value there that compares true fail. `<value>` is JSON when it parses
/// as JSON (`100`, `true`, `"fast"`), else a string. Ordering operators compare numbers only.
#[derive(Clone, Debug, PartialEq)]
pub struct FailRule {
    pub pointer: String,
    pub op: CompareOp,
    pub value: Value,
}

impl std::str::FromStr for FailRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!(
                "{s:?} does not start with a JSON pointer; expected e.g. `/components/0/attributes/speed>100`"
            ));
        }
        // The first operator character ends the pointer (two-character operators first).
        let at = s
            .find(['=', '!', '<', '>'])
            .ok_or_else(|| format!("{s:?} has no operator (one of = != > >= < <=)"))?;
        let (pointer, rest) = s.split_at(at);
        let (op, value) = [
            ("!=", CompareOp::Ne),
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("==", CompareOp::Eq),
            ("=", CompareOp::Eq),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ]
        .into_iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|v| (op, v)))
        .ok_or_else(|| format!("{s:?} has no operator (one of = != > >= < <=)"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        if matches!(
            op,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        ) && !value.is_number()
        {
            return Err(format!(
                "{s:?}: `{value}` is not a number, and > >= < <= compare numbers"
            ));
        }
        Ok(FailRule {
            pointer: pointer.to_string(),
            op,
            value,
        })
    }
}

impl FailRule {
    /// Whether `config` holds a value at the pointer that compares true.
    pub fn matches(&self, config: &Value) -> bool {
        let Some(have) = config.pointer(&self.pointer) else {
            return false;
        };
        let num = |v: &Value| v.as_f64();
        match self.op {
            CompareOp::Eq => have == &self.value,
            CompareOp::Ne => have != &self.value,
            op => match (num(have), num(&self.value)) {
                (Some(a), Some(b)) => match op {
                    CompareOp::Gt => a > b,
                    CompareOp::Ge => a >= b,
                    CompareOp::Lt => a < b,
                    _ => a <= b,
                },
                _ => false,
            },
        }
    }
}

/// How the simulated machines behave.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// How often each agent fetches its config and reports in.
    pub tick: Duration,
    /// Rules making parts unhealthy; a part fails when any rule matches.
    pub fail: Vec<FailRule>,
    /// How long after fetching a matching config a part starts failing.
    pub delay: Duration,
    /// How a failing part shows it.
    pub mode: FailMode,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            tick: Duration::from_secs(1),
            fail: vec![],
            delay: Duration::ZERO,
            mode: FailMode::Offline,
        }
    }
}

/// What one agent remembers: the config it runs, and since when.
struct Agent {
    digest: String,
    since: tokio::time::Instant,
}

/// Runs every part's agent until `stop` resolves.
pub(super) async fn run(
    store: Arc<Store>,
    logs: broadcast::Sender<LogBatch>,
    opts: SimOptions,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut agents: HashMap<String, Agent> = HashMap::new();
    let mut every = tokio::time::interval(opts.tick.max(Duration::from_millis(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        if let Err(e) = tick(&store, &logs, &opts, &mut agents).await {
            tracing::warn!(error = %e.message(), "simulated machines: a tick failed");
        }
    }
}

/// One round: every part fetches its config (a read), then the reports and logs are written in
/// one transaction that first checks nothing was written meanwhile: a part whose config, or
/// any fragment, changed since the read skips this round. So a part that reports in after a
/// config write has fetched that config, and the writer is held only briefly.
async fn tick(
    store: &Arc<Store>,
    logs: &broadcast::Sender<LogBatch>,
    opts: &SimOptions,
    agents: &mut HashMap<String, Agent>,
) -> store::R<()> {
    let (fetched, seen) = store.read(|db| Ok((fetch_all(db)?, versions(db)?))).await?;
    let now = tokio::time::Instant::now();
    let mut next: HashMap<String, Agent> = HashMap::new();
    let mut rounds: Vec<Round> = vec![];
    for (part, configs) in fetched {
        let digest = digest(&configs);
        let mut agent = agents.remove(&part).unwrap_or(Agent {
            digest: String::new(),
            since: now,
        });
        let mut entries = vec![];
        if agent.digest != digest {
            agent.digest = digest.clone();
            agent.since = now;
            entries.push(entry("info", format!("applied config {digest}")));
        }
        let failing = opts
            .fail
            .iter()
            .any(|r| configs.iter().any(|c| r.matches(c)))
            && now.duration_since(agent.since) >= opts.delay;
        let report_in = match (failing, opts.mode) {
            (false, _) => true,
            (true, FailMode::Offline) => false,
            (true, FailMode::Errors) => {
                entries.push(entry("error", "the config makes this machine fail".into()));
                true
            }
        };
        rounds.push(Round {
            part: part.clone(),
            entries,
            report_in,
        });
        next.insert(part, agent);
    }
    let (done, rounds) = store
        .write(move |tx| {
            let now_seen = versions(tx)?;
            let fragments_same = now_seen.1 == seen.1;
            let at = store::now_us();
            let mut done = vec![];
            for r in &rounds {
                let same = fragments_same && now_seen.0.get(&r.part) == seen.0.get(&r.part);
                if !same {
                    continue;
                }
                // Logs first: a part that reports in has already written what it logged.
                store::insert_logs(tx, &r.part, &r.entries)?;
                if r.report_in {
                    store::touch_part(tx, &r.part, at)?;
                }
                done.push(r.part.clone());
            }
            Ok((done, rounds))
        })
        .await?;
    // Agents whose round was skipped fetch again next tick, as if this one never happened.
    for part in &done {
        if let Some(a) = next.remove(part) {
            agents.insert(part.clone(), a);
        }
    }
    for r in rounds.into_iter().filter(|r| done.contains(&r.part)) {
        if !r.entries.is_empty() {
            let _ = logs.send(LogBatch {
                part_id: r.part,
                entries: Arc::new(r.entries),
            });
        }
    }
    Ok(())
}

/// What one part does in a round.
struct Round {
    part: String,
    entries: Vec<LogEntry>,
    report_in: bool,
}

/// Every part's `last_updated`, and a stamp of every fragment's revision and tags: what a
/// round checks did not change between its read and its write.
fn versions(db: &rusqlite::Connection) -> store::R<(HashMap<String, i64>, String)> {
    let q = |e: rusqlite::Error| tonic::Status::internal(e.to_string());
    let mut st = db
        .prepare("SELECT id, last_updated_us FROM parts")
        .map_err(q)?;
    let parts = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(q)?
        .collect::<Result<HashMap<_, _>, _>>()
        .map_err(q)?;
    let stamp: String = db
        .query_row(
            "SELECT (SELECT COUNT(*) || ':' || COALESCE(MAX(last_updated_us), 0) FROM fragments) || '/' || \
             COALESCE((SELECT group_concat(fragment_id || ':' || tag || ':' || revision, ',') \
             FROM (SELECT * FROM fragment_tags ORDER BY fragment_id, tag)), '')",
            [],
            |r| r.get(0),
        )
        .map_err(q)?;
    Ok((parts, stamp))
}

/// Every part with what it fetches: its own config, then each imported fragment's config at
/// the version it names. An import that cannot be resolved is left out (a machine would log
/// it and run without it).
fn fetch_all(db: &rusqlite::Connection) -> store::R<Vec<(String, Vec<Value>)>> {
    let parts = store::all_parts(db)?;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let config = p.config_json();
        let mut configs = vec![];
        for import in crate::model::rules::fragment_imports(&config) {
            let Some(id) = crate::model::rules::import_id(import) else {
                continue;
            };
            let Ok(Some(f)) = store::fragment_row(db, id) else {
                continue;
            };
            let version = import.get("version").and_then(Value::as_str);
            let at = match version {
                Some(v) => store::resolve_version(db, &f, v)
                    .and_then(|rev| store::fragment_at(db, &f, rev))
                    .ok(),
                None => Some(f),
            };
            if let Some(f) = at {
                configs.push(serde_json::from_str(&f.config).unwrap_or(Value::Null));
            }
        }
        configs.insert(0, config);
        out.push((p.id, configs));
    }
    Ok(out)
}

/// A short digest of what a part fetched, for its log line.
fn digest(configs: &[Value]) -> String {
    use sha2::Digest;
    let text = serde_json::to_string(configs).unwrap_or_default();
    let hash = sha2::Sha256::digest(text.as_bytes());
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn entry(level: &str, message: String) -> LogEntry {
    LogEntry {
        host: "simulated".into(),
        level: level.into(),
        time: Some(store::ts(store::now_us())),
        logger_name: "rdk.sim".into(),
        message,
        caller: None,
        stack: String::new(),
        fields: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_parse_and_match() {
        let r: FailRule = "/components/0/attributes/speed>100".parse().unwrap();
        assert_eq!(r.op, CompareOp::Gt);
        let cfg = |v: Value| json!({"components": [{"attributes": {"speed": v}}]});
        assert!(r.matches(&cfg(json!(101))));
        assert!(!r.matches(&cfg(json!(100))));
        assert!(!r.matches(&cfg(json!("fast"))));
        assert!(!r.matches(&json!({})));
        let eq: FailRule = "/mode=fast".parse().unwrap();
        assert_eq!(eq.value, json!("fast"));
        assert!(eq.matches(&json!({"mode": "fast"})));
        let ge: FailRule = "/n>=2".parse().unwrap();
        assert!(ge.matches(&json!({"n": 2})));
        let ne: FailRule = "/on!=true".parse().unwrap();
        assert!(ne.matches(&json!({"on": false})));
        assert!("components>1".parse::<FailRule>().is_err());
        assert!("/a>fast".parse::<FailRule>().is_err());
        assert!("/a".parse::<FailRule>().is_err());
    }
}
