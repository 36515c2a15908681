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

/// One round: every part fetches its config, and reports in or fails, all in one write
/// transaction, so a part that reports in after a config write has fetched that config.
async fn tick(
    store: &Arc<Store>,
    logs: &broadcast::Sender<LogBatch>,
    opts: &SimOptions,
    agents: &mut HashMap<String, Agent>,
) -> store::R<()> {
    let opts = opts.clone();
    let mut mine = std::mem::take(agents);
    let now = tokio::time::Instant::now();
    let (back, written) = store
        .write(move |tx| {
            let written = step(tx, &opts, &mut mine, now)?;
            Ok((mine, written))
        })
        .await?;
    *agents = back;
    for (part_id, e) in written {
        let _ = logs.send(LogBatch {
            part_id,
            entries: Arc::new(vec![e]),
        });
    }
    Ok(())
}

/// The work of one tick inside its transaction; returns the log entries written.
fn step(
    tx: &rusqlite::Transaction,
    opts: &SimOptions,
    agents: &mut HashMap<String, Agent>,
    now: tokio::time::Instant,
) -> store::R<Vec<(String, LogEntry)>> {
    let fetched = fetch_all(tx)?;
    let mut written: Vec<(String, LogEntry)> = vec![];
    agents.retain(|id, _| fetched.iter().any(|(p, _)| p == id));
    let at = store::now_us();
    for (part, configs) in fetched {
        let digest = digest(&configs);
        let agent = agents.entry(part.clone()).or_insert_with(|| Agent {
            digest: String::new(),
            since: now,
        });
        if agent.digest != digest {
            agent.digest = digest.clone();
            agent.since = now;
            written.push((
                part.clone(),
                entry("info", format!("applied config {digest}")),
            ));
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
                written.push((
                    part.clone(),
                    entry("error", "the config makes this machine fail".into()),
                ));
                true
            }
        };
        // Logs first: a part that reports in has already written what it logged.
        for (p, e) in written.iter().filter(|(p, _)| *p == part) {
            store::insert_logs(tx, p, std::slice::from_ref(e))?;
        }
        if report_in {
            store::touch_part(tx, &part, at)?;
        }
    }
    Ok(written)
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
