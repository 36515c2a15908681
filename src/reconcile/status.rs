//! Where an organization stands: its locations, machines and parts as a tree with their
//! online state and last access, and, given a manifest, whether each part is in sync with it
//! (`fleetform status`). The CLI renders a [`StatusReport`]; nothing here prints.
//!
//! With a manifest, it is prepared exactly as `fleetform plan` would prepare it (read-only,
//! drift attributed). A part is then:
//! - `in sync`: declared, and the plan changes nothing about it;
//! - `drifted`: the plan would update it (config, name, main flag or managed metadata), with
//!   who last changed its config in the cloud when the cloud says;
//! - `not in manifest`: not declared (or only deleted by a pruning plan).
//!
//! Everything else the plan would change (fragments and their tags, invites, members' roles,
//! API keys, organization settings, metadata that is not a part's, locations and machines
//! themselves) is listed after the tree by [`outside_the_tree`].
//!
//! A manifest that does not plan (ambiguous or missing pins) becomes a warning, and the tree
//! is still built, without sync states.

use super::{Options, PrepareError, prepare};
use crate::cloud::CloudApi;
use crate::cloud::observe::{ObserveError, observe_scope};
use crate::model::{
    Desired, Location, Machine, Observed, OnlineState, Organization, Part, Timestamp,
    location_paths,
};
use crate::plan::{self, Action, Kind, Op, Plan};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
        #[serde(serialize_with = "crate::model::rfc3339")]
        when: Option<Timestamp>,
    },
    NotInManifest,
}

/// What `fleetform status` shows.
#[derive(Debug)]
pub struct StatusReport {
    /// The organization's locations, top level first, each with its children, machines and
    /// parts (sorted by name).
    pub locations: Vec<LocationNode>,
    /// The manifest's plan, when one was given and it could be made.
    pub plan: Option<Plan>,
    /// Whether parts carry a sync state (a manifest was given and planned).
    pub synced: bool,
    /// What the user should know: a manifest that cannot be planned, drift that cannot be
    /// attributed.
    pub warnings: Vec<String>,
}

/// Reads organization `org` whole and, with `desired`, prepares the manifest against it (see
/// the module docs).
pub async fn status(
    api: &dyn CloudApi,
    org: &Organization,
    desired: Option<&Desired>,
    opts: &Options,
) -> Result<StatusReport, ObserveError> {
    let locations = api
        .list_locations(&org.id)
        .await
        .map_err(|source| ObserveError::Read {
            what: format!("the locations of organization `{}` ({})", org.name, org.id),
            source,
        })?;
    let roots: Vec<String> = locations
        .iter()
        .filter(|l| l.parent_id.is_none())
        .map(|l| l.id.clone())
        .collect();
    let observed = observe_scope(api, org, &roots, false, &opts.observe).await?;
    let mut warnings = vec![];
    let mut plan = None;
    let sync = match desired {
        None => None,
        Some(d) => match prepare(api, d, opts).await {
            Ok(prepared) => {
                warnings.extend(prepared.warnings.iter().cloned());
                let sync = classify(d, prepared.plan(), &observed);
                plan = Some(prepared.into_plan());
                Some(sync)
            }
            Err(PrepareError::Plan(errors)) => {
                for e in &errors.0 {
                    warnings.push(format!("the manifest cannot be planned: {e}"));
                }
                None
            }
            Err(PrepareError::Observe(e)) => return Err(e),
        },
    };
    Ok(StatusReport {
        locations: tree(&observed, sync.as_ref()),
        plan,
        synced: sync.is_some(),
        warnings,
    })
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
                .filter(|c| {
                    matches!(c.kind, Kind::Part | Kind::Metadata)
                        && c.resource_id.as_deref() == Some(&p.id)
                })
                .collect();
            let path = machine_path.as_ref().map(|m| format!("{m}/{}", p.name));
            let declared =
                path.as_ref().is_some_and(|x| declared_paths.contains(x)) || pinned.contains(&p.id);
            let sync = if changes.iter().any(|c| c.action == Action::Delete) {
                SyncState::NotInManifest
            } else if let Some(c) = changes
                .iter()
                .find(|c| matches!(c.op, Op::UpdatePart { .. } | Op::MarkPartAsMain { .. }))
                .or_else(|| {
                    changes.iter().find(|c| {
                        matches!(
                            &c.op,
                            Op::SetMetadata {
                                target: plan::MetadataRef::Part(_),
                                ..
                            }
                        )
                    })
                })
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

/// A location of the tree.
#[derive(Debug, Serialize)]
pub struct LocationNode {
    pub id: String,
    pub name: String,
    pub path: String,
    pub locations: Vec<LocationNode>,
    pub machines: Vec<MachineNode>,
}

/// A machine of the tree.
#[derive(Debug, Serialize)]
pub struct MachineNode {
    pub id: String,
    pub name: String,
    pub online_state: OnlineState,
    #[serde(serialize_with = "crate::model::rfc3339")]
    pub last_access: Option<Timestamp>,
    /// The main part first, then by name.
    pub parts: Vec<PartNode>,
}

/// A part of the tree.
#[derive(Debug, Serialize)]
pub struct PartNode {
    pub id: String,
    pub name: String,
    pub main: bool,
    pub online_state: OnlineState,
    #[serde(serialize_with = "crate::model::rfc3339")]
    pub last_access: Option<Timestamp>,
    /// `None` without a manifest.
    pub sync: Option<SyncState>,
}

/// `(in sync, drifted, not in manifest)` part counts of a tree.
pub fn sync_counts(locations: &[LocationNode]) -> (usize, usize, usize) {
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
    for l in locations {
        walk(l, &mut c);
    }
    c
}

/// The observation as a tree; with `sync`, each part carries its state (undeclared parts:
/// not in manifest). A location whose parent is missing is shown at the top level; a parent
/// cycle is cut.
pub fn tree(o: &Observed, sync: Option<&BTreeMap<String, SyncState>>) -> Vec<LocationNode> {
    let ids: BTreeSet<&str> = o.locations.iter().map(|l| l.id.as_str()).collect();
    let mut children: BTreeMap<Option<&str>, Vec<&Location>> = BTreeMap::new();
    for l in &o.locations {
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
        children: &children,
        machines: &machines,
    };
    let mut seen = BTreeSet::new();
    ctx.nodes(None, "", &mut seen)
}

struct Ctx<'a> {
    o: &'a Observed,
    sync: Option<&'a BTreeMap<String, SyncState>>,
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
            parts: parts
                .into_iter()
                .map(|p| PartNode {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    main: p.main,
                    online_state: p.online_state,
                    last_access: p.last_access,
                    sync: self
                        .sync
                        .map(|s| s.get(&p.id).cloned().unwrap_or(SyncState::NotInManifest)),
                })
                .collect(),
        }
    }
}

/// A change the plan would make that no part's [`SyncState`] shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutOfSync {
    /// `api key`, `member`, `fragment`, … ([`Kind::as_str`]).
    pub kind: &'static str,
    pub path: String,
    /// `+`, `~`, `-`, `→`.
    pub action: &'static str,
    pub reason: String,
}

/// The changes of `plan` that the part tree does not show (see the module docs), in plan
/// order.
pub fn outside_the_tree(plan: &Plan) -> Vec<OutOfSync> {
    plan.changes
        .iter()
        .filter(|c| match &c.op {
            Op::SetMetadata {
                target: plan::MetadataRef::Part(_),
                ..
            } => false,
            _ => c.kind != Kind::Part,
        })
        .map(|c| OutOfSync {
            kind: c.kind.as_str(),
            path: c.path.clone(),
            action: c.action.mark(),
            reason: c.reason.clone(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{
        Config, DesiredLocation, DesiredMachine, DesiredPart, Identity, OrgRef, Organization,
    };
    use serde_json::json;

    fn part(id: &str, name: &str, main: bool, config: serde_json::Value) -> Part {
        Part {
            id: id.into(),
            name: name.into(),
            machine_id: "m1".into(),
            location_id: "hq00000001".into(),
            main,
            config: config.into(),
            last_updated: None,
            created_on: None,
            last_access: None,
            online_state: OnlineState::Unknown,
        }
    }

    pub(crate) fn observed() -> Observed {
        Observed {
            organization: Organization {
                id: "org".into(),
                name: "acme".into(),
                ..Default::default()
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
            ..Default::default()
        }
    }

    pub(crate) fn desired(
        main_config: serde_json::Value,
        cam_config: serde_json::Value,
    ) -> Desired {
        let p = |name: &str, main: bool, v: serde_json::Value| DesiredPart {
            name: name.into(),
            path: format!("HQ/arm/{name}"),
            identity: Identity::default(),
            main,
            config: Config::from(v),
            fragments: vec![],
            ignore: vec![],
        };
        Desired {
            organization: OrgRef::Name("acme".into()),
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
            ..Default::default()
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

        let locations = tree(&o, Some(&sync));
        assert_eq!(sync_counts(&locations), (1, 1, 1));
        let arm = &locations[0].machines[0];
        let names: Vec<&str> = arm.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["arm-main", "arm-cam", "arm-extra"], "main first");
        assert_eq!(sync_counts(&tree(&o, None)), (0, 0, 0));
    }

    #[test]
    fn a_part_whose_managed_metadata_differs_is_drifted() {
        let mut o = observed();
        let target = crate::model::MetadataTarget::Part("p1".into());
        o.metadata.insert(
            target.key(),
            json!({"slot": 1}).as_object().unwrap().clone(),
        );
        let mut d = desired(json!({"a": 1}), json!({"b": 2}));
        d.metadata.push(crate::model::DesiredMetadata {
            owner: crate::model::MetadataOwner::Part("HQ/arm/arm-main".into()),
            data: json!({"slot": 2}).as_object().unwrap().clone(),
        });
        let plan = plan::plan(&d, &o, &plan::Options::default()).unwrap();
        let sync = classify(&d, &plan, &o);
        assert!(
            matches!(&sync["p1"], SyncState::Drifted { reason, .. } if reason == "metadata differs"),
            "{sync:?}"
        );
        // Equal metadata (other number spelling) is in sync.
        d.metadata[0].data = json!({"slot": 1.0}).as_object().unwrap().clone();
        let plan = plan::plan(&d, &o, &plan::Options::default()).unwrap();
        assert_eq!(classify(&d, &plan, &o)["p1"], SyncState::InSync);
    }

    #[test]
    fn changes_the_tree_does_not_show_are_listed_outside_it() {
        let o = observed();
        let mut d = desired(json!({"a": 1}), json!({"b": 2}));
        let data = |v: serde_json::Value| v.as_object().unwrap().clone();
        d.metadata.push(crate::model::DesiredMetadata {
            owner: crate::model::MetadataOwner::Part("HQ/arm/arm-main".into()),
            data: data(json!({"slot": 2})),
        });
        d.metadata.push(crate::model::DesiredMetadata {
            owner: crate::model::MetadataOwner::Organization,
            data: data(json!({"team": "ops"})),
        });
        let plan = plan::plan(&d, &o, &plan::Options::default()).unwrap();
        let others = outside_the_tree(&plan);
        // The part's config and metadata show in its sync state; the organization's metadata
        // only here.
        assert_eq!(others.len(), 1, "{others:?}");
        assert_eq!((others[0].kind, others[0].action), ("metadata", "~"));
        assert!(plan.changes.iter().any(|c| c.kind == Kind::Part));
    }
}
