//! Plan fixtures: `tests/fixtures/<case>/` holds a manifest (`fleet.yaml`), the cloud's state
//! (`cloud.yaml`, a compact description turned into an `Observed`), optional environment
//! (`env.yaml`), and the expected output as `insta` snapshots beside them: `plan_text.snap`
//! and `plan_json.snap`, or `error.snap` when planning must fail. One test per case
//! (`plan_fixtures::no_op`, …).
//!
//! A new case is a directory and a line in [`fixtures!`]. After a change to planning or
//! rendering, rewrite the snapshots and review them with `git diff`:
//! `INSTA_UPDATE=always cargo test --test it plan_fixtures` (without it, a differing case
//! fails and leaves a `.snap.new` beside its snapshot).

use fleetform::model::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cloud {
    organization: Org,
    observed_at: i64,
    #[serde(default)]
    locations: Vec<Loc>,
    #[serde(default)]
    machines: Vec<Mach>,
    #[serde(default)]
    fragments: Vec<Frag>,
    invites: Option<Vec<Inv>>,
    /// Members with the roles they hold (read when the manifest has `access: members:`).
    #[serde(default)]
    members: Vec<Mem>,
    /// API keys with their roles (read when the manifest has `access: keys:`).
    #[serde(default)]
    keys: Vec<Key>,
    /// The id of the API key the plan is made with.
    own_key: Option<String>,
    /// Metadata read, by `kind:id` (`location:hqhqhqhq01`).
    #[serde(default)]
    metadata: BTreeMap<String, Metadata>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Org {
    id: String,
    name: String,
    #[serde(default)]
    public_namespace: String,
    #[serde(default)]
    region: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Loc {
    id: String,
    name: String,
    parent: Option<String>,
    #[serde(default)]
    secrets: Vec<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Secret {
    id: String,
    created: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mach {
    id: String,
    name: String,
    location: String,
    parts: Option<Vec<P>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct P {
    id: String,
    name: String,
    main: bool,
    last_updated: i64,
    config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Frag {
    id: String,
    name: String,
    #[serde(default)]
    visibility: Visibility,
    config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inv {
    email: String,
    grants: Vec<G>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mem {
    user_id: String,
    email: String,
    #[serde(default)]
    grants: Vec<G>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    id: String,
    name: String,
    grants: Vec<G>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct G {
    role: Role,
    organization: Option<String>,
    location: Option<String>,
    machine: Option<String>,
}

impl G {
    fn grant(self) -> Grant {
        let (kind, id) = match (self.organization, self.location, self.machine) {
            (Some(o), None, None) => (ResourceKind::Organization, o),
            (None, Some(l), None) => (ResourceKind::Location, l),
            (None, None, Some(m)) => (ResourceKind::Robot, m),
            _ => panic!("a grant names exactly one target"),
        };
        Grant {
            role: self.role,
            resource_kind: kind,
            resource_id: id,
        }
    }
}

fn ts(s: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: s,
        nanos: 0,
    })
}

/// The `Observed` of `c`, with what `d` manages read (invites, members' roles, keys).
fn observed(c: Cloud, d: &Desired) -> Observed {
    let manage_invites = d.invites.is_some();
    let org = Organization {
        id: c.organization.id,
        name: c.organization.name,
        public_namespace: c.organization.public_namespace,
        default_region: c.organization.region,
        created_on: ts(0),
        default_fragments: None,
    };
    let locations = c
        .locations
        .into_iter()
        .map(|l| Location {
            robot_count: c.machines.iter().filter(|m| m.location == l.id).count() as i32,
            id: l.id,
            name: l.name,
            parent_id: l.parent,
            created_on: ts(0),
            secrets: l
                .secrets
                .into_iter()
                .map(|s| LocationSecret {
                    id: s.id,
                    secret: Sensitive::new("x"),
                    created_on: ts(s.created),
                    enabled: true,
                })
                .collect(),
            organizations: vec![],
        })
        .collect();
    let mut parts = BTreeMap::new();
    let mut machines = vec![];
    for m in c.machines {
        if let Some(ps) = m.parts {
            let list = ps
                .into_iter()
                .map(|p| Part {
                    id: p.id,
                    name: p.name,
                    machine_id: m.id.clone(),
                    location_id: m.location.clone(),
                    main: p.main,
                    config: p.config.into(),
                    last_updated: ts(p.last_updated),
                    created_on: ts(0),
                    last_access: None,
                    online_state: OnlineState::Unknown,
                })
                .collect();
            parts.insert(m.id.clone(), list);
        }
        machines.push(Machine {
            id: m.id,
            name: m.name,
            location_id: m.location,
            created_on: ts(0),
            last_access: None,
            online_state: OnlineState::Unknown,
        });
    }
    let fragments = c
        .fragments
        .into_iter()
        .map(|f| Fragment {
            id: f.id,
            name: f.name,
            organization_id: org.id.clone(),
            config: f.config,
            visibility: f.visibility,
            robot_part_count: 0,
            created_on: ts(0),
            last_updated: ts(1_700_000_000),
            revision: String::new(),
        })
        .collect();
    let invites = manage_invites.then(|| {
        c.invites
            .unwrap_or_default()
            .into_iter()
            .map(|i| Invite {
                email: i.email,
                grants: i.grants.into_iter().map(G::grant).collect(),
                created_on: ts(0),
            })
            .collect()
    });
    let mut members = vec![];
    let mut member_roles = vec![];
    for m in c.members {
        member_roles.extend(m.grants.into_iter().map(|g| MemberRole {
            identity_id: m.user_id.clone(),
            grant: g.grant(),
        }));
        members.push(Member {
            user_id: m.user_id,
            emails: vec![m.email],
            date_added: ts(0),
        });
    }
    let api_keys = c
        .keys
        .into_iter()
        .map(|k| ApiKey {
            id: k.id,
            name: k.name,
            created_on: ts(0),
            grants: k.grants.into_iter().map(G::grant).collect(),
        })
        .collect();
    Observed {
        organization: org,
        locations,
        machines,
        parts,
        fragments,
        invites,
        members,
        api_keys: d.keys.is_some().then_some(api_keys),
        own_key_id: c.own_key,
        metadata: c.metadata,
        // What the members kind reads: their roles, when the manifest manages them.
        kinds: fleetform::kinds::members::declared(d)
            .map(|_| ("member".to_string(), serde_json::json!(member_roles)))
            .into_iter()
            .collect(),
        observed_at: Timestamp {
            seconds: c.observed_at,
            nanos: 0,
        },
        ..Default::default()
    }
}

/// The JSON plan with its random salt removed and each salted hash replaced by
/// `salted-N` (N by first appearance), so that equal values still show as equal.
fn unsalted(json: &str) -> String {
    let mut seen: Vec<String> = vec![];
    let mut out = String::new();
    for line in json.lines() {
        if line.trim_start().starts_with("\"sensitive_salt\"") {
            continue;
        }
        let mut line = line.to_string();
        for key in ["\"$sensitive\": \"", "\"sha256\": \""] {
            if let Some(at) = line.find(key) {
                let start = at + key.len();
                if let Some(hash) = line.get(start..start + 64) {
                    let hash = hash.to_string();
                    let n = seen.iter().position(|h| *h == hash).unwrap_or_else(|| {
                        seen.push(hash.clone());
                        seen.len() - 1
                    });
                    line.replace_range(start..start + 64, &format!("salted-{}", n + 1));
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    // The salt was the last field: its predecessor lost its trailing comma's reason.
    out.replace("],\n}", "]\n}")
}

/// One test per fixture directory; [`every_fixture_directory_has_a_test`] keeps the list
/// and the directories in step.
macro_rules! fixtures {
    ($($case:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($case)),*];
        $(
            #[test]
            fn $case() {
                fixture(stringify!($case));
            }
        )*
    };
}

fixtures!(
    ambiguous_duplicate,
    ambiguous_pinned,
    api_keys,
    config_drift_ignore,
    create_from_empty,
    extraneous_machine,
    fragment_reference,
    grouped_template_change,
    invite_grants,
    key_order_only,
    location_move,
    main_part_adoption,
    member_roles,
    metadata_and_settings,
    no_op,
    own_key_guard,
    protect_violation,
    prune_off,
    prune_on,
    rename_moved_from,
    secret_rotation_due,
    sensitive_masking,
);

fn fixtures_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn every_fixture_directory_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, CASES, "add the new fixture to `fixtures!`");
}

/// Plans fixture `case` and compares its rendering with the snapshots in its directory.
fn fixture(case: &str) {
    let dir = fixtures_dir().join(case);
    let env: BTreeMap<String, String> = std::fs::read_to_string(dir.join("env.yaml"))
        .map(|t| serde_yaml::from_str(&t).unwrap())
        .unwrap_or_default();
    let desired =
        fleetform::manifest::load_with_env(&dir.join("fleet.yaml"), &|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let cloud: Cloud =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("cloud.yaml")).unwrap())
            .unwrap_or_else(|e| panic!("{}/cloud.yaml: {e}", dir.display()));
    let observed = observed(cloud, &desired);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(dir.join("fleet.yaml"));
    let _bound = settings.bind_to_scope();
    match fleetform::plan::plan(&desired, &observed, &fleetform::plan::Options::default()) {
        Err(e) => insta::assert_snapshot!("error", format!("{e}\n")),
        Ok(plan) => {
            let opts = fleetform::cli::render::RenderOptions::default();
            let text =
                fleetform::cli::render::render(&plan, fleetform::cli::render::Format::Text, &opts);
            let json =
                fleetform::cli::render::render(&plan, fleetform::cli::render::Format::Json, &opts);
            for secret in env.values() {
                assert!(
                    !text.contains(secret.as_str()) && !json.contains(secret.as_str()),
                    "{}: a sensitive value leaked",
                    dir.display()
                );
            }
            insta::assert_snapshot!("plan_text", text);
            insta::assert_snapshot!("plan_json", unsalted(&json));
        }
    }
}
