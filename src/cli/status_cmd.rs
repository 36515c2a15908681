//! `fleetform status [MANIFEST]`: the organization as a tree of locations, machines and parts,
//! with each machine's and part's online state and last access, and, given a manifest,
//! whether each part's config is in sync with it.
//!
//! Without a manifest the organization comes from `--org` (or is the only one the key sees).
//! With one, its `organization:` is used, and the manifest is planned against the cloud
//! exactly as `fleetform plan` would (read-only). A part is then:
//! - `in sync`: declared, and the plan changes nothing about it;
//! - `drifted`: the plan would update it (config, name or main flag), with who last changed
//!   it in the cloud when the cloud says;
//! - `not in manifest`: not declared (or only deleted by a pruning plan).
//!
//! A manifest that does not plan (ambiguous or missing pins) is reported as a warning and the
//! tree is still shown, without sync states.

use super::output::ExitStatus;
use super::plan_cmd::{Status, make_plan};
use super::resolve;
use super::target::{self, LocalOrg};
use super::{GlobalArgs, OutputFormat};
use crate::cloud::CloudApi;
use crate::cloud::observe::ObserveOptions;
use crate::model::{
    Desired, Location, Machine, Observed, OnlineState, OrgRef, Part, Timestamp, location_paths,
};
use crate::plan::{self, Action, Kind, Op, Plan, human_age};
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  fleetform status                       # the tree of the only organization the key sees
  fleetform status fleet.yaml            # and whether each part matches the manifest
  fleetform status --org acme --output json";

/// Arguments of `fleetform status`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct StatusArgs {
    /// A manifest to compare each part's config with (its `organization:` is the one shown).
    #[arg(value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// The organization to show (a name or an id), when no manifest names it.
    #[arg(long, value_name = "ORG", conflicts_with = "manifest")]
    pub org: Option<String>,

    /// `text` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `fleetform status`.
pub async fn run(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let desired = match &args.manifest {
        None => None,
        Some(path) => match crate::manifest::load(path) {
            Ok(d) => Some(d),
            Err(err) => {
                eprintln!("{err}");
                return Ok(ExitStatus::Failure);
            }
        },
    };
    let (target, wanted) = match &desired {
        Some(d) => {
            let (local, wanted) = match &d.organization {
                OrgRef::Name(n) => (LocalOrg::Name(n), n.clone()),
                OrgRef::Id(id) => (LocalOrg::Id(id), id.clone()),
            };
            (target::connect_for(global, local).await?, Some(wanted))
        }
        None => (
            resolve::connect_org(global, args.org.as_deref()).await?,
            args.org.clone(),
        ),
    };
    let result = status(&args, &target.client, desired.as_ref(), wanted.as_deref()).await;
    let closed = target.close().await;
    let code = result?;
    closed?;
    Ok(code)
}

async fn status(
    args: &StatusArgs,
    api: &dyn CloudApi,
    desired: Option<&Desired>,
    wanted: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    let org = resolve::organization(api, wanted).await?;
    let locations = api.list_locations(&org.id).await?;
    let roots: Vec<String> = locations
        .iter()
        .filter(|l| l.parent_id.is_none())
        .map(|l| l.id.clone())
        .collect();
    let observed = super::import_cmd::observe_subtrees(api, &org, &roots, false).await?;

    let mut warnings = vec![];
    let mut plan_summary = None;
    let sync = match desired {
        None => None,
        Some(d) => {
            let made = make_plan(
                api,
                d,
                &plan::Options::default(),
                &ObserveOptions::default(),
                &Status::new(),
            )
            .await?;
            match made {
                Ok(plan) => {
                    plan_summary = Some(super::render::summary_line(&plan));
                    Some(classify(d, &plan, &observed))
                }
                Err(errors) => {
                    for e in &errors.0 {
                        warnings.push(format!("the manifest cannot be planned: {e}"));
                    }
                    None
                }
            }
        }
    };
    let now = Timestamp::now();
    let tree = Tree::build(&observed, sync.as_ref(), now);
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "organization": { "id": org.id, "name": org.name },
                "manifest": args.manifest.as_ref().map(|p| p.display().to_string()),
                "plan": plan_summary,
                "warnings": warnings,
                "locations": tree.locations,
            });
            outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            for w in &warnings {
                eprintln!("warning: {}", super::term::clean(&w.to_string()));
            }
            outln!(out, "Organization `{}` ({})", org.name, org.id);
            if let (Some(path), Some(summary)) = (&args.manifest, &plan_summary) {
                outln!(out, "Manifest {}: {summary}", path.display());
            }
            outln!(out);
            if tree.locations.is_empty() {
                outln!(out, "No locations.");
            }
            let mut lines = vec![];
            for l in &tree.locations {
                l.lines(0, &mut lines);
            }
            let width = lines
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0);
            for (name, rest) in lines {
                let pad = width - name.chars().count();
                outln!(out, "{name}{}  {rest}", " ".repeat(pad));
            }
            if sync.is_some() {
                let counts = tree.sync_counts();
                outln!(out);
                outln!(
                    out,
                    "{} in sync, {} drifted, {} not in manifest.",
                    counts.0,
                    counts.1,
                    counts.2
                );
            }
        }
    }
    emit(&out)?;
    Ok(ExitStatus::Success)
}

/// Where a part stands against the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    InSync,
    Drifted {
        /// Why, from the plan: "config differs", "renamed", "becomes the machine's main part".
        reason: String,
        /// Who last changed the part in the cloud, and when, when the history says.
        who: Option<String>,
        #[serde(serialize_with = "super::term::rfc3339")]
        when: Option<Timestamp>,
    },
    NotInManifest,
}

impl SyncState {
    fn text(&self) -> String {
        match self {
            SyncState::InSync => "in sync".to_string(),
            SyncState::NotInManifest => "not in manifest".to_string(),
            SyncState::Drifted { reason, who, when } => {
                let mut s = format!("drifted: {reason}");
                if let Some(who) = who {
                    s.push_str(&format!("; last changed by {who}"));
                    if let Some(when) = when {
                        s.push_str(&format!(" at {when}"));
                    }
                }
                s
            }
        }
    }
}

/// The sync state of every observed part (by id), from the manifest and its plan.
pub fn classify(
    desired: &Desired,
    plan: &Plan,
    observed: &Observed,
) -> BTreeMap<String, SyncState> {
    let mut declared_paths = BTreeSet::new();
    let mut pinned = BTreeSet::new();
    for (_, m) in desired.all_machines() {
        for p in &m.parts {
            declared_paths.insert(p.path.clone());
            if let Some(id) = &p.identity.id {
                pinned.insert(id.clone());
            }
        }
    }
    let paths = location_paths(&observed.locations);
    let machines: BTreeMap<&str, &Machine> = observed
        .machines
        .iter()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut out = BTreeMap::new();
    for (machine_id, parts) in &observed.parts {
        let machine_path = machines.get(machine_id.as_str()).map(|m| {
            format!(
                "{}/{}",
                paths.get(&m.location_id).cloned().unwrap_or_default(),
                m.name
            )
        });
        for p in parts {
            let changes: Vec<&plan::Change> = plan
                .changes
                .iter()
                .filter(|c| c.kind == Kind::Part && c.resource_id.as_deref() == Some(&p.id))
                .collect();
            let path = machine_path.as_ref().map(|m| format!("{m}/{}", p.name));
            let declared =
                path.as_ref().is_some_and(|x| declared_paths.contains(x)) || pinned.contains(&p.id);
            let sync = if changes.iter().any(|c| c.action == Action::Delete) {
                SyncState::NotInManifest
            } else if let Some(c) = changes
                .iter()
                .find(|c| matches!(c.op, Op::UpdatePart { .. } | Op::MarkPartAsMain { .. }))
            {
                let reasons: Vec<&str> = changes.iter().map(|c| c.reason.as_str()).collect();
                SyncState::Drifted {
                    reason: reasons.join("; "),
                    who: c.attribution.as_ref().and_then(|a| a.who.clone()),
                    when: c.attribution.as_ref().and_then(|a| a.when),
                }
            } else if declared || !changes.is_empty() {
                SyncState::InSync
            } else {
                SyncState::NotInManifest
            };
            out.insert(p.id.clone(), sync);
        }
    }
    out
}

/// The organization as a tree, ready to print or serialize.
struct Tree {
    locations: Vec<LocationNode>,
}

#[derive(Serialize)]
struct LocationNode {
    id: String,
    name: String,
    path: String,
    locations: Vec<LocationNode>,
    machines: Vec<MachineNode>,
}

#[derive(Serialize)]
struct MachineNode {
    id: String,
    name: String,
    online_state: OnlineState,
    #[serde(serialize_with = "super::term::rfc3339")]
    last_access: Option<Timestamp>,
    #[serde(skip)]
    last_access_text: String,
    parts: Vec<PartNode>,
}

#[derive(Serialize)]
struct PartNode {
    id: String,
    name: String,
    main: bool,
    online_state: OnlineState,
    #[serde(serialize_with = "super::term::rfc3339")]
    last_access: Option<Timestamp>,
    #[serde(skip)]
    last_access_text: String,
    /// `None` without a manifest.
    sync: Option<SyncState>,
}

impl Tree {
    fn build(o: &Observed, sync: Option<&BTreeMap<String, SyncState>>, now: Timestamp) -> Tree {
        let ids: BTreeSet<&str> = o.locations.iter().map(|l| l.id.as_str()).collect();
        let mut children: BTreeMap<Option<&str>, Vec<&Location>> = BTreeMap::new();
        for l in &o.locations {
            // A location whose parent is missing is shown at the top level.
            let parent = l.parent_id.as_deref().filter(|p| ids.contains(p));
            children.entry(parent).or_default().push(l);
        }
        for list in children.values_mut() {
            list.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        }
        let mut machines: BTreeMap<&str, Vec<&Machine>> = BTreeMap::new();
        for m in &o.machines {
            machines.entry(m.location_id.as_str()).or_default().push(m);
        }
        for list in machines.values_mut() {
            list.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        }
        let ctx = Ctx {
            o,
            sync,
            now,
            children: &children,
            machines: &machines,
        };
        let mut seen = BTreeSet::new();
        Tree {
            locations: ctx.nodes(None, "", &mut seen),
        }
    }

    /// `(in sync, drifted, not in manifest)` part counts.
    fn sync_counts(&self) -> (usize, usize, usize) {
        fn walk(l: &LocationNode, c: &mut (usize, usize, usize)) {
            for m in &l.machines {
                for p in &m.parts {
                    match &p.sync {
                        Some(SyncState::InSync) => c.0 += 1,
                        Some(SyncState::Drifted { .. }) => c.1 += 1,
                        Some(SyncState::NotInManifest) => c.2 += 1,
                        None => {}
                    }
                }
            }
            for child in &l.locations {
                walk(child, c);
            }
        }
        let mut c = (0, 0, 0);
        for l in &self.locations {
            walk(l, &mut c);
        }
        c
    }
}

struct Ctx<'a> {
    o: &'a Observed,
    sync: Option<&'a BTreeMap<String, SyncState>>,
    now: Timestamp,
    children: &'a BTreeMap<Option<&'a str>, Vec<&'a Location>>,
    machines: &'a BTreeMap<&'a str, Vec<&'a Machine>>,
}

impl Ctx<'_> {
    fn nodes(
        &self,
        parent: Option<&str>,
        parent_path: &str,
        seen: &mut BTreeSet<String>,
    ) -> Vec<LocationNode> {
        let mut out = vec![];
        for l in self.children.get(&parent).into_iter().flatten() {
            if !seen.insert(l.id.clone()) {
                continue; // a parent cycle
            }
            let path = if parent_path.is_empty() {
                l.name.clone()
            } else {
                format!("{parent_path}/{}", l.name)
            };
            let machines = self
                .machines
                .get(l.id.as_str())
                .into_iter()
                .flatten()
                .map(|m| self.machine(m))
                .collect();
            out.push(LocationNode {
                id: l.id.clone(),
                name: l.name.clone(),
                locations: self.nodes(Some(&l.id), &path, seen),
                path,
                machines,
            });
        }
        out
    }

    fn machine(&self, m: &Machine) -> MachineNode {
        let mut parts: Vec<&Part> = self.o.parts.get(&m.id).into_iter().flatten().collect();
        parts.sort_by(|a, b| (!a.main, &a.name).cmp(&(!b.main, &b.name)));
        MachineNode {
            id: m.id.clone(),
            name: m.name.clone(),
            online_state: m.online_state,
            last_access: m.last_access,
            last_access_text: ago(m.last_access, self.now),
            parts: parts
                .into_iter()
                .map(|p| PartNode {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    main: p.main,
                    online_state: p.online_state,
                    last_access: p.last_access,
                    last_access_text: ago(p.last_access, self.now),
                    sync: self
                        .sync
                        .map(|s| s.get(&p.id).cloned().unwrap_or(SyncState::NotInManifest)),
                })
                .collect(),
        }
    }
}

impl LocationNode {
    /// `(name column, rest)` lines for the text tree.
    fn lines(&self, depth: usize, out: &mut Vec<(String, String)>) {
        let indent = "  ".repeat(depth);
        out.push((
            format!("{indent}{}", self.name),
            format!("location  {}", self.id),
        ));
        for child in &self.locations {
            child.lines(depth + 1, out);
        }
        for m in &self.machines {
            out.push((
                format!("{indent}  {}", m.name),
                format!(
                    "machine   {:<14}  last access {}",
                    state(m.online_state),
                    m.last_access_text
                ),
            ));
            for p in &m.parts {
                let main = if p.main { " (main)" } else { "" };
                let mut rest = format!(
                    "part      {:<14}  last access {}",
                    state(p.online_state),
                    p.last_access_text
                );
                if let Some(s) = &p.sync {
                    rest.push_str(&format!("  {}", s.text()));
                }
                out.push((format!("{indent}    {}{main}", p.name), rest));
            }
        }
    }
}

fn state(s: OnlineState) -> &'static str {
    match s {
        OnlineState::Unknown => "unknown",
        OnlineState::Online => "online",
        OnlineState::Offline => "offline",
        OnlineState::AwaitingSetup => "awaiting setup",
    }
}

/// Appends a line to a `String` being built for [`emit`]: `outln!(out)` or
/// `outln!(out, "{x}")`.
macro_rules! outln {
    ($out:ident) => {
        $out.push('\n')
    };
    ($out:ident, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}
pub(super) use outln;

/// Writes a command's output to stdout in one go. A reader that went away
/// (`fleetform status | head`) is not an error: the output is simply cut short.
pub(super) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(super::term::clean(text).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// `5m ago`, `just now`, or `never`.
pub(super) fn ago(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        None => "never".to_string(),
        Some(t) if t.seconds <= 0 && t.nanos == 0 => "never".to_string(),
        Some(t) => match t.seconds_until(now) {
            s if s < 1 => "just now".to_string(),
            s => format!("{} ago", human_age(s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Config, DesiredLocation, DesiredMachine, DesiredPart, Identity, Organization,
    };
    use serde_json::json;

    fn part(id: &str, name: &str, main: bool, config: serde_json::Value) -> Part {
        Part {
            id: id.into(),
            name: name.into(),
            machine_id: "m1".into(),
            location_id: "hq00000001".into(),
            main,
            config,
            last_updated: None,
            created_on: None,
            last_access: None,
            online_state: OnlineState::Unknown,
        }
    }

    fn observed() -> Observed {
        Observed {
            organization: Organization {
                default_fragments: None,
                id: "org".into(),
                name: "acme".into(),
                public_namespace: String::new(),
                created_on: None,
            },
            locations: vec![Location {
                organizations: vec![],
                id: "hq00000001".into(),
                name: "HQ".into(),
                parent_id: None,
                robot_count: 1,
                created_on: None,
                secrets: vec![],
            }],
            machines: vec![Machine {
                id: "m1".into(),
                name: "arm".into(),
                location_id: "hq00000001".into(),
                created_on: None,
                last_access: Some(Timestamp {
                    seconds: 1000,
                    nanos: 0,
                }),
                online_state: OnlineState::Online,
            }],
            parts: BTreeMap::from([(
                "m1".to_string(),
                vec![
                    part("p1", "arm-main", true, json!({"a": 1})),
                    part("p2", "arm-cam", false, json!({"b": 1})),
                    part("p3", "arm-extra", false, json!({})),
                ],
            )]),
            fragments: vec![],
            invites: None,
            members: vec![],
            secrets: BTreeMap::new(),
            fragment_tags: BTreeMap::new(),
            fragment_revisions: BTreeMap::new(),
            fragment_usage: BTreeMap::new(),
            observed_at: Timestamp::default(),
        }
    }

    fn desired(main_config: serde_json::Value, cam_config: serde_json::Value) -> Desired {
        let p = |name: &str, main: bool, v: serde_json::Value| DesiredPart {
            name: name.into(),
            path: format!("HQ/arm/{name}"),
            identity: Identity::default(),
            main,
            config: Config {
                value: v,
                sensitive: vec![],
            },
            fragments: vec![],
            ignore: vec![],
        };
        Desired {
            organization: OrgRef::Name("acme".into()),
            prune: false,
            default_fragments: None,
            fragments: vec![],
            locations: vec![DesiredLocation {
                name: "HQ".into(),
                path: "HQ".into(),
                identity: Identity::default(),
                rotate_secrets_after: None,
                locations: vec![],
                machines: vec![DesiredMachine {
                    name: "arm".into(),
                    path: "HQ/arm".into(),
                    identity: Identity::default(),
                    parts: vec![
                        p("arm-main", true, main_config),
                        p("arm-cam", false, cam_config),
                    ],
                }],
            }],
            invites: None,
            digest: String::new(),
        }
    }

    #[test]
    fn parts_are_in_sync_drifted_or_not_in_the_manifest() {
        let o = observed();
        let d = desired(json!({"a": 1}), json!({"b": 2}));
        let plan = plan::plan(&d, &o, &plan::Options::default()).unwrap();
        let sync = classify(&d, &plan, &o);
        assert_eq!(sync["p1"], SyncState::InSync);
        assert!(
            matches!(&sync["p2"], SyncState::Drifted { reason, .. } if reason == "config differs"),
            "{sync:?}"
        );
        assert_eq!(sync["p3"], SyncState::NotInManifest);

        let tree = Tree::build(
            &o,
            Some(&sync),
            Timestamp {
                seconds: 1300,
                nanos: 0,
            },
        );
        assert_eq!(tree.sync_counts(), (1, 1, 1));
        let mut lines = vec![];
        tree.locations[0].lines(0, &mut lines);
        assert_eq!(
            lines[0],
            ("HQ".to_string(), "location  hq00000001".to_string())
        );
        assert_eq!(lines[1].0, "  arm");
        assert!(
            lines[1].1.contains("online") && lines[1].1.contains("last access 5m ago"),
            "{lines:?}"
        );
        assert_eq!(lines[2].0, "    arm-main (main)");
        assert!(
            lines[2].1.ends_with("last access never  in sync"),
            "{lines:?}"
        );
        assert!(lines[3].1.contains("drifted: config differs"), "{lines:?}");
    }

    #[test]
    fn ages_read_naturally() {
        let now = Timestamp {
            seconds: 1_000_000,
            nanos: 0,
        };
        assert_eq!(ago(None, now), "never");
        assert_eq!(
            ago(
                Some(Timestamp {
                    seconds: 999_990,
                    nanos: 0
                }),
                now
            ),
            "10s ago"
        );
        assert_eq!(ago(Some(now), now), "just now");
        assert_eq!(
            ago(
                Some(Timestamp {
                    seconds: 1_000_000 - 2 * 86_400,
                    nanos: 0
                }),
                now
            ),
            "2d ago"
        );
    }
}
