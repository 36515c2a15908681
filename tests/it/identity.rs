//! Stable identity (issue 10): matching rules, swaps and rotations through temporary names,
//! satisfied `moved_from`, prune safety, and idempotence as a property over random manifest
//! sequences, all against the local cloud.

use crate::common;

use common::{Cloud, assert_no_duplicates, failures};
use fleetform::apply::{ApplyOptions, Report, apply};
use fleetform::cli::render::{self, Format, RenderOptions};
use fleetform::cloud::CloudApi;
use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::model::{Desired, location_paths};
use fleetform::plan::{Kind, NoticeLevel, Options, Plan, PlanErrors, plan};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

fn manifest(text: &str) -> Desired {
    fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("bad test manifest: {e}\n{text}"))
}

fn manifest_error(text: &str) -> String {
    match fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None) {
        Ok(_) => panic!("the manifest should not validate:\n{text}"),
        Err(e) => e.to_string(),
    }
}

async fn try_plan(api: &dyn CloudApi, d: &Desired) -> Result<Plan, PlanErrors> {
    let observed = observe(api, d, &ObserveOptions::default())
        .await
        .expect("observe");
    plan(d, &observed, &Options::default())
}

async fn plan_for(api: &dyn CloudApi, d: &Desired) -> Plan {
    try_plan(api, d)
        .await
        .unwrap_or_else(|e| panic!("plan failed: {e}"))
}

async fn run(api: &Arc<dyn CloudApi>, p: &Plan) -> Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    apply(Arc::clone(api), p, &ApplyOptions::default(), None, stop).await
}

fn describe(p: &Plan) -> String {
    p.changes
        .iter()
        .map(|c| {
            format!(
                "{} {:?} {} {} <- {:?} deps {:?}{}",
                c.id,
                c.action,
                c.kind.as_str(),
                c.path,
                c.from_path,
                c.depends_on,
                if c.temporary { " (temporary)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Plans and applies `d`, which must succeed in one apply and then plan empty.
async fn apply_once(api: &Arc<dyn CloudApi>, d: &Desired) -> Plan {
    let p = plan_for(api.as_ref(), d).await;
    let report = run(api, &p).await;
    assert!(
        report.is_success(),
        "{}\nplan:\n{}",
        failures(&report),
        describe(&p)
    );
    let again = plan_for(api.as_ref(), d).await;
    assert!(
        again.is_empty(),
        "not empty after apply:\n{}",
        describe(&again)
    );
    p
}

/// Everything the cloud holds, by kind and path: `location:S1/a` → id, `machine:…`, `part:…`
/// (parts under their machine's path), `fragment:NAME`.
async fn state(api: &dyn CloudApi, org: &str) -> BTreeMap<String, String> {
    let locs = api.list_locations(org).await.unwrap();
    let paths = location_paths(&locs);
    let mut out = BTreeMap::new();
    for l in &locs {
        out.insert(format!("location:{}", paths[&l.id]), l.id.clone());
    }
    for m in api.list_machines_for_org(org).await.unwrap() {
        let mpath = format!("{}/{}", paths[&m.location_id], m.name);
        for p in api.get_parts(&m.id).await.unwrap() {
            out.insert(format!("part:{mpath}/{}", p.name), p.id.clone());
        }
        out.insert(format!("machine:{mpath}"), m.id);
    }
    for f in api.list_fragments(org).await.unwrap() {
        out.insert(format!("fragment:{}", f.name), f.id);
    }
    out
}

async fn start() -> (Cloud, Arc<dyn CloudApi>) {
    let cloud = Cloud::start().await;
    let client: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    (cloud, client)
}

// -- Rotations ---------------------------------------------------------------------------------

/// Three locations `A`, `B`, `C`, one machine each.
fn three_locations(prune: bool) -> String {
    let mut m = format!("version: 1\norganization: test-org\nprune: {prune}\nlocations:\n");
    for (loc, machine) in [("A", "m-a"), ("B", "m-b"), ("C", "m-c")] {
        m += &format!(
            "  - name: {loc}\n    machines:\n      - name: {machine}\n        parts: [ {{ name: {machine}-main }} ]\n"
        );
    }
    m
}

/// The rotation A → B → C → A with each location identified by `identity(old name)`.
fn rotated(prune: bool, identity: impl Fn(&str) -> String) -> String {
    let mut m = format!("version: 1\norganization: test-org\nprune: {prune}\nlocations:\n");
    for (old, new, machine) in [("A", "B", "m-a"), ("B", "C", "m-b"), ("C", "A", "m-c")] {
        m += &format!(
            "  - name: {new}\n    {}\n    machines:\n      - name: {machine}\n        parts: [ {{ name: {machine}-main }} ]\n",
            identity(old)
        );
    }
    m
}

#[tokio::test]
async fn a_rotation_written_with_moved_from_is_refused_before_anything_is_written() {
    for prune in [false, true] {
        let (cloud, client) = start().await;
        apply_once(&client, &manifest(&three_locations(prune))).await;
        let before = state(client.as_ref(), &cloud.org_id).await;
        let text = rotated(prune, |old| format!("moved_from: {old}"));
        let err = manifest_error(&text);
        // One positioned error per `moved_from` naming a declared path.
        for (line, old) in [(6, "A"), (11, "B"), (16, "C")] {
            assert!(
                err.contains(&format!(
                    "fleet.yaml:{line}:17: error: location `{}` says `moved_from: {old}`, but this manifest declares location `{old}`",
                    match old {
                        "A" => "B",
                        "B" => "C",
                        _ => "A",
                    }
                )),
                "{err}"
            );
        }
        assert!(
            err.contains(
                "hint: a swap or rotation by name is ambiguous: pin each resource with `id:`"
            ),
            "{err}"
        );
        assert_eq!(state(client.as_ref(), &cloud.org_id).await, before);
    }
}

#[tokio::test]
async fn a_rotation_pinned_with_id_applies_in_one_go_and_keeps_every_id() {
    for prune in [false, true] {
        let (cloud, client) = start().await;
        apply_once(&client, &manifest(&three_locations(prune))).await;
        let before = state(client.as_ref(), &cloud.org_id).await;
        let text = rotated(prune, |old| {
            format!("id: {}", before[&format!("location:{old}")])
        });
        let d = manifest(&text);
        let p = apply_once(&client, &d).await;

        // The plan shows the three moves asked for; the temporary step only with --detail.
        let s = p.summary();
        assert_eq!(
            (s.create, s.update, s.moves, s.delete),
            (0, 0, 3, 0),
            "{}",
            describe(&p)
        );
        assert_eq!(p.changes.iter().filter(|c| c.temporary).count(), 1);
        let text_plan = render::render(&p, Format::Text, &RenderOptions::default());
        assert!(!text_plan.contains("fleetform-tmp"), "{text_plan}");
        assert!(
            text_plan.contains("→ location B (from A; renamed)"),
            "{text_plan}"
        );
        let detail = RenderOptions {
            detail: true,
            ..RenderOptions::default()
        };
        let detailed = render::render(&p, Format::Text, &detail);
        assert!(detailed.contains("A-fleetform-tmp"), "{detailed}");
        let json = render::render(&p, Format::Json, &RenderOptions::default());
        assert!(json.contains("\"temporary\": true"), "{json}");

        // Every id kept: the location that was A is now B, and its machine came with it.
        let after = state(client.as_ref(), &cloud.org_id).await;
        for (old, new, machine) in [("A", "B", "m-a"), ("B", "C", "m-b"), ("C", "A", "m-c")] {
            assert_eq!(
                after[&format!("location:{new}")],
                before[&format!("location:{old}")]
            );
            assert_eq!(
                after[&format!("machine:{new}/{machine}")],
                before[&format!("machine:{old}/{machine}")]
            );
        }
        assert_eq!(after.len(), before.len(), "{after:#?}");
        assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
    }
}

#[tokio::test]
async fn two_machines_swap_names_in_one_apply() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: x\n        parts: [ { name: x-main } ]\n      - name: y\n        parts: [ { name: y-main } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    let swapped = format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: x\n        id: {}\n        parts: [ {{ name: y-main }} ]\n      - name: y\n        id: {}\n        parts: [ {{ name: x-main }} ]\n",
        before["machine:L/y"], before["machine:L/x"]
    );
    let p = apply_once(&client, &manifest(&swapped)).await;
    assert_eq!(p.summary().moves, 2, "{}", describe(&p));
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/x"], before["machine:L/y"]);
    assert_eq!(after["machine:L/y"], before["machine:L/x"]);
    assert_eq!(after["part:L/x/y-main"], before["part:L/y/y-main"]);
    assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
}

#[tokio::test]
async fn machines_swap_across_locations_in_one_apply() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L1\n    machines:\n      - name: m\n        parts: [ { name: one } ]\n  - name: L2\n    machines:\n      - name: m\n        parts: [ { name: two } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    let swapped = format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: L1\n    machines:\n      - name: m\n        id: {}\n        parts: [ {{ name: two }} ]\n  - name: L2\n    machines:\n      - name: m\n        id: {}\n        parts: [ {{ name: one }} ]\n",
        before["machine:L2/m"], before["machine:L1/m"]
    );
    let p = apply_once(&client, &manifest(&swapped)).await;
    assert_eq!(p.summary().moves, 2, "{}", describe(&p));
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L1/m"], before["machine:L2/m"]);
    assert_eq!(after["machine:L2/m"], before["machine:L1/m"]);
    assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
}

#[tokio::test]
async fn two_parts_swap_names_in_one_apply() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: m\n        parts:\n          - { name: p, main: true, config: { components: [ { name: a, model: x } ] } }\n          - { name: q }\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    // The names swap; the main part stays main; its config changes on the way.
    let swapped = format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: m\n        parts:\n          - {{ name: q, id: {}, main: true, config: {{ components: [ {{ name: b, model: x }} ] }} }}\n          - {{ name: p, id: {} }}\n",
        before["part:L/m/p"], before["part:L/m/q"]
    );
    apply_once(&client, &manifest(&swapped)).await;
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["part:L/m/q"], before["part:L/m/p"]);
    assert_eq!(after["part:L/m/p"], before["part:L/m/q"]);
    let main = client.get_part(&after["part:L/m/q"]).await.unwrap();
    assert!(main.main);
    assert_eq!(main.config.to_value()["components"][0]["name"], "b");
}

#[tokio::test]
async fn fragments_swap_names_in_one_apply() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nfragments:\n  - { name: f1, config: { components: [] } }\n  - { name: f2, config: { services: [] } }\nlocations: []\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    let swapped = format!(
        "version: 1\norganization: test-org\nfragments:\n  - {{ name: f1, id: {}, config: {{ services: [] }} }}\n  - {{ name: f2, id: {}, config: {{ components: [] }} }}\nlocations: []\n",
        before["fragment:f2"], before["fragment:f1"]
    );
    apply_once(&client, &manifest(&swapped)).await;
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["fragment:f1"], before["fragment:f2"]);
    assert_eq!(after["fragment:f2"], before["fragment:f1"]);
}

#[tokio::test]
async fn an_interrupted_rotation_leaves_temporary_names_and_a_rerun_finishes_it() {
    let (cloud, client) = start().await;
    apply_once(&client, &manifest(&three_locations(true))).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    // Pinned (`id:`) and, for the location that goes first, `moved_from`-free as well: every
    // prefix of the plan is a state an interrupted apply can leave.
    let text = rotated(true, |old| {
        format!("id: {}", before[&format!("location:{old}")])
    });
    let d = manifest(&text);
    let full = plan_for(client.as_ref(), &d).await;
    let temp = full.changes.iter().position(|c| c.temporary).unwrap();
    let mut partial = full.clone();
    partial.changes.truncate(temp + 1);
    assert!(run(&client, &partial).await.is_success());
    let mid = state(client.as_ref(), &cloud.org_id).await;
    assert!(mid.keys().any(|k| k.contains("-fleetform-tmp")), "{mid:#?}");
    // The re-run plans only what is left and finishes.
    apply_once(&client, &d).await;
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["location:B"], before["location:A"]);
    assert_eq!(after["location:C"], before["location:B"]);
    assert_eq!(after["location:A"], before["location:C"]);
    assert!(!after.keys().any(|k| k.contains("-fleetform-tmp")));
}

#[tokio::test]
async fn a_parked_machine_is_recognised_without_a_pin() {
    // A machine left under a temporary name (an interrupted swap) where the manifest declares
    // it by name or `moved_from`: the plan finishes the rename instead of creating another.
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: x-fleetform-tmp\n        parts: [ { name: p } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    let d = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: x\n        moved_from: L/y\n        parts: [ { name: p } ]\n",
    );
    let p = apply_once(&client, &d).await;
    assert_eq!(p.summary().moves, 1, "{}", describe(&p));
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/x"], before["machine:L/x-fleetform-tmp"]);
}

// -- moved_from --------------------------------------------------------------------------------

#[tokio::test]
async fn a_satisfied_moved_from_is_a_notice_and_never_fires_again() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ { name: p } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    let renamed = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: b\n        moved_from: L/a\n        parts: [ { name: p } ]\n",
    );
    let first = apply_once(&client, &renamed).await;
    assert_eq!(first.summary().moves, 1);
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/b"], before["machine:L/a"]);

    // The same manifest again: nothing to do, and a note that `moved_from` can go.
    let again = plan_for(client.as_ref(), &renamed).await;
    assert!(again.is_empty(), "{}", describe(&again));
    assert_eq!(again.notices.len(), 1, "{:#?}", again.notices);
    let n = &again.notices[0];
    assert_eq!(
        (n.level, n.kind, n.path.as_str()),
        (NoticeLevel::Info, Kind::Machine, "L/b")
    );
    assert!(
        n.message.contains("`moved_from: L/a` is done"),
        "{}",
        n.message
    );
    assert!(n.message.contains("you can remove it"), "{}", n.message);
    let text = render::render(&again, Format::Text, &RenderOptions::default());
    assert!(
        text.contains("note: machine L/b: `moved_from: L/a` is done"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rename_then_a_new_resource_taking_the_old_name() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ { name: p } ]\n";
    apply_once(&client, &manifest(base)).await;
    let original = state(client.as_ref(), &cloud.org_id).await["machine:L/a"].clone();
    apply_once(
        &client,
        &manifest("version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: b\n        moved_from: L/a\n        parts: [ { name: p } ]\n"),
    )
    .await;

    // Keeping `moved_from: L/a` while declaring a new `a` is ambiguous: refused, positioned.
    let err = manifest_error(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: b\n        moved_from: L/a\n        parts: [ { name: p } ]\n      - name: a\n        parts: [ { name: q } ]\n",
    );
    assert!(
        err.contains("fleet.yaml:8:21: error: machine `L/b` says `moved_from: L/a`, but this manifest declares machine `L/a`"),
        "{err}"
    );

    // Without it, the new `a` is created and `b` keeps its id.
    let d = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: b\n        parts: [ { name: p } ]\n      - name: a\n        parts: [ { name: q } ]\n",
    );
    let p = apply_once(&client, &d).await;
    let s = p.summary();
    assert_eq!((s.create, s.moves, s.delete), (2, 0, 0), "{}", describe(&p));
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/b"], original);
    assert_ne!(after["machine:L/a"], original);
}

#[tokio::test]
async fn a_pinned_rename_and_a_new_resource_at_the_old_name_in_one_apply() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ { name: p } ]\n";
    apply_once(&client, &manifest(base)).await;
    let original = state(client.as_ref(), &cloud.org_id).await["machine:L/a"].clone();
    let d = manifest(&format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ {{ name: q }} ]\n      - name: b\n        id: {original}\n        parts: [ {{ name: p }} ]\n"
    ));
    // Saved, the plan is not stale: the create does not assume `a` is free already.
    let saved = plan_for(client.as_ref(), &d).await;
    let stale = fleetform::apply::check_preconditions(Arc::clone(&client), &saved)
        .await
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
    let p = apply_once(&client, &d).await;
    // The create waits for the rename that frees the name.
    let rename = p.changes.iter().find(|c| c.path == "L/b").unwrap();
    let create = p.changes.iter().find(|c| c.path == "L/a").unwrap();
    assert!(create.depends_on.contains(&rename.id), "{}", describe(&p));
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/b"], original);
}

#[tokio::test]
async fn prune_never_deletes_what_a_moved_from_names() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ { name: p } ]\n      - name: b\n        parts: [ { name: q } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    // `b` already exists, so `moved_from: L/a` is not used, and `a` is kept despite prune.
    let d = manifest(
        "version: 1\norganization: test-org\nprune: true\nlocations:\n  - name: L\n    machines:\n      - name: b\n        moved_from: L/a\n        parts: [ { name: q } ]\n",
    );
    let p = plan_for(client.as_ref(), &d).await;
    assert!(p.is_empty(), "{}", describe(&p));
    assert!(p.unmanaged.iter().any(|u| u.path == "L/a"));
    assert!(
        p.notices
            .iter()
            .any(|n| n.level == NoticeLevel::Warning
                && n.message.contains("kept although prune is on")),
        "{:#?}",
        p.notices
    );
    assert!(
        p.notices
            .iter()
            .any(|n| n.message.contains("`moved_from: L/a` is not used")),
        "{:#?}",
        p.notices
    );
    assert_eq!(state(client.as_ref(), &cloud.org_id).await, before);
}

#[tokio::test]
async fn replacing_a_resource_at_the_same_path_is_loud_and_protect_refuses_it() {
    let (cloud, client) = start().await;
    let base = "version: 1\norganization: test-org\nlocations:\n  - name: L\n    machines:\n      - name: a\n        parts: [ { name: p } ]\n      - name: k\n        parts: [ { name: q } ]\n";
    apply_once(&client, &manifest(base)).await;
    let before = state(client.as_ref(), &cloud.org_id).await;
    // `a` is declared pinned to what is now `k`: the machine at L/a is another one.
    let pinned = |prune: bool, protect: bool| {
        format!(
            "version: 1\norganization: test-org\nprune: {prune}\nlocations:\n  - name: L\n    machines:\n      - name: a\n        id: {}\n        protect: {protect}\n        parts: [ {{ name: q }} ]\n",
            before["machine:L/k"]
        )
    };
    // Without prune it is in the way: a plan error, nothing written.
    let err = try_plan(client.as_ref(), &manifest(&pinned(false, false)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("machine L/a"), "{err}");
    assert!(err.contains("is in the way"), "{err}");
    // With protect, the delete is refused.
    let err = try_plan(client.as_ref(), &manifest(&pinned(true, true)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`protect: true`"), "{err}");
    // With prune: a loud warning, and the rename waits for the delete.
    let d = manifest(&pinned(true, false));
    let p = plan_for(client.as_ref(), &d).await;
    let warning = p
        .notices
        .iter()
        .find(|n| n.level == NoticeLevel::Warning)
        .unwrap_or_else(|| panic!("{:#?}", p.notices));
    assert!(
        warning
            .message
            .contains("puts a different one at the same path"),
        "{}",
        warning.message
    );
    let text = render::render(&p, Format::Text, &RenderOptions::default());
    assert!(
        text.contains("warning: machine L/a: the plan deletes"),
        "{text}"
    );
    apply_once(&client, &d).await;
    let after = state(client.as_ref(), &cloud.org_id).await;
    assert_eq!(after["machine:L/a"], before["machine:L/k"]);
}

// -- Idempotence as a law ----------------------------------------------------------------------
//
// Random sequences of manifests over a small set of names: locations renamed, moved between
// two fixed sites, swapped; machines renamed, moved, exchanged between locations; parts renamed
// and swapped; fragments renamed and swapped; things added and deleted. Every changed path is
// declared with `id:` or, where it is unambiguous, `moved_from`; unchanged ones keep or drop
// their pins and their (satisfied) `moved_from` at random; two sequences in three prune.
// Now and then an apply is interrupted part-way. After every apply: the plan is empty, no
// resource that stays declared changed its id, and no two siblings share a name.

const SITES: [&str; 2] = ["S1", "S2"];
const LOCATION_NAMES: [&str; 3] = ["a", "b", "c"];
const MACHINE_NAMES: [&str; 3] = ["m1", "m2", "m3"];
const FRAGMENT_NAMES: [&str; 3] = ["f1", "f2", "f3"];

/// One logical resource of the random world, followed across renames by its `key`.
#[derive(Clone, Debug)]
struct Ent {
    key: u32,
    name: String,
    pin: bool,
    moved_from: Option<String>,
}

#[derive(Clone, Debug)]
struct PartE {
    e: Ent,
    main: bool,
}

#[derive(Clone, Debug)]
struct MachineE {
    e: Ent,
    parts: Vec<PartE>,
}

#[derive(Clone, Debug)]
struct LocationE {
    e: Ent,
    site: usize,
    machines: Vec<MachineE>,
}

#[derive(Clone, Debug, Default)]
struct World {
    locations: Vec<LocationE>,
    fragments: Vec<Ent>,
    next_key: u32,
    /// `prune:` of the manifests. Without prune nothing is deleted from the manifest (what
    /// is left behind would be kept and could stand in the way of later renames, which the
    /// plan rightly refuses).
    prune: bool,
}

/// (kind, key) → declared path.
type Paths = BTreeMap<(Kind, u32), String>;

impl World {
    fn ent(&mut self, name: &str) -> Ent {
        self.next_key += 1;
        Ent {
            key: self.next_key,
            name: name.to_string(),
            pin: false,
            moved_from: None,
        }
    }

    fn paths(&self) -> Paths {
        let mut out = Paths::new();
        for f in &self.fragments {
            out.insert((Kind::Fragment, f.key), f.name.clone());
        }
        for l in &self.locations {
            let lpath = format!("{}/{}", SITES[l.site], l.e.name);
            for m in &l.machines {
                let mpath = format!("{lpath}/{}", m.e.name);
                for p in &m.parts {
                    out.insert((Kind::Part, p.e.key), format!("{mpath}/{}", p.e.name));
                }
                out.insert((Kind::Machine, m.e.key), mpath);
            }
            out.insert((Kind::Location, l.e.key), lpath);
        }
        out
    }

    /// (kind, key) → the key of its parent entity (machines: location; parts: machine).
    fn parents(&self) -> BTreeMap<(Kind, u32), u32> {
        let mut out = BTreeMap::new();
        for l in &self.locations {
            for m in &l.machines {
                out.insert((Kind::Machine, m.e.key), l.e.key);
                for p in &m.parts {
                    out.insert((Kind::Part, p.e.key), m.e.key);
                }
            }
        }
        out
    }

    fn new_machine(&mut self, name: &str, rng: &mut fastrand::Rng) -> MachineE {
        let e = self.ent(name);
        let count = rng.usize(1..=2);
        let parts = (0..count)
            .map(|i| {
                let pe = self.ent(&format!("p{}{}", e.key, ["x", "y"][i]));
                PartE {
                    e: pe,
                    main: i == 0,
                }
            })
            .collect();
        MachineE { e, parts }
    }

    fn add_location(&mut self, rng: &mut fastrand::Rng) {
        let site = rng.usize(0..SITES.len());
        let Some(name) = free_name(&LOCATION_NAMES, self.location_names(site), rng) else {
            return;
        };
        let e = self.ent(&name);
        let m = self.new_machine(MACHINE_NAMES[rng.usize(0..3)], rng);
        self.locations.push(LocationE {
            e,
            site,
            machines: vec![m],
        });
    }

    fn location_names(&self, site: usize) -> Vec<String> {
        self.locations
            .iter()
            .filter(|l| l.site == site)
            .map(|l| l.e.name.clone())
            .collect()
    }

    /// One random change.
    fn mutate(&mut self, rng: &mut fastrand::Rng) {
        let nl = self.locations.len();
        match rng.u32(0..10) {
            // Rename a location; onto a sibling's name, the two swap.
            0 if nl > 0 => {
                let i = rng.usize(0..nl);
                let name = LOCATION_NAMES[rng.usize(0..3)].to_string();
                let site = self.locations[i].site;
                if let Some(j) = (0..nl).find(|&j| {
                    j != i && self.locations[j].site == site && self.locations[j].e.name == name
                }) {
                    self.locations[j].e.name = self.locations[i].e.name.clone();
                }
                self.locations[i].e.name = name;
            }
            // Move a location to the other site, under a free name.
            1 if nl > 0 => {
                let i = rng.usize(0..nl);
                let site = 1 - self.locations[i].site;
                let taken = self.location_names(site);
                let own = self.locations[i].e.name.clone();
                let name = if taken.contains(&own) {
                    free_name(&LOCATION_NAMES, taken, rng)
                } else {
                    Some(own)
                };
                if let Some(name) = name {
                    self.locations[i].site = site;
                    self.locations[i].e.name = name;
                }
            }
            // Rename a machine; onto a sibling's name, the two swap.
            2 if nl > 0 => {
                let l = &mut self.locations[rng.usize(0..nl)];
                if l.machines.is_empty() {
                    return;
                }
                let i = rng.usize(0..l.machines.len());
                let name = MACHINE_NAMES[rng.usize(0..3)].to_string();
                if let Some(j) =
                    (0..l.machines.len()).find(|&j| j != i && l.machines[j].e.name == name)
                {
                    l.machines[j].e.name = l.machines[i].e.name.clone();
                }
                l.machines[i].e.name = name;
            }
            // Move a machine to another location, under a free name.
            3 if nl > 1 => {
                let (from, to) = two(rng, nl);
                if self.locations[from].machines.is_empty() {
                    return;
                }
                let taken: Vec<String> = self.locations[to]
                    .machines
                    .iter()
                    .map(|m| m.e.name.clone())
                    .collect();
                let i = rng.usize(0..self.locations[from].machines.len());
                let own = self.locations[from].machines[i].e.name.clone();
                let name = if taken.contains(&own) {
                    free_name(&MACHINE_NAMES, taken, rng)
                } else {
                    Some(own)
                };
                if let Some(name) = name {
                    let mut m = self.locations[from].machines.remove(i);
                    m.e.name = name;
                    self.locations[to].machines.push(m);
                }
            }
            // Exchange two machines between two locations, names kept.
            4 if nl > 1 => {
                let (x, y) = two(rng, nl);
                if self.locations[x].machines.is_empty() || self.locations[y].machines.is_empty() {
                    return;
                }
                let i = rng.usize(0..self.locations[x].machines.len());
                let j = rng.usize(0..self.locations[y].machines.len());
                let (mi, mj) = (
                    self.locations[x].machines[i].e.name.clone(),
                    self.locations[y].machines[j].e.name.clone(),
                );
                let clash_x = self.locations[x]
                    .machines
                    .iter()
                    .enumerate()
                    .any(|(k, m)| k != i && m.e.name == mj);
                let clash_y = self.locations[y]
                    .machines
                    .iter()
                    .enumerate()
                    .any(|(k, m)| k != j && m.e.name == mi);
                if clash_x || clash_y {
                    return;
                }
                let a = self.locations[x].machines.remove(i);
                let b = self.locations[y].machines.remove(j);
                self.locations[x].machines.push(b);
                self.locations[y].machines.push(a);
            }
            // Rename a part within its machine's names; onto a sibling's, the two swap.
            5 if nl > 0 => {
                let l = &mut self.locations[rng.usize(0..nl)];
                if l.machines.is_empty() {
                    return;
                }
                let nm = l.machines.len();
                let m = &mut l.machines[rng.usize(0..nm)];
                let i = rng.usize(0..m.parts.len());
                let name = format!("p{}{}", m.e.key, ["x", "y", "z"][rng.usize(0..3)]);
                if let Some(j) = (0..m.parts.len()).find(|&j| j != i && m.parts[j].e.name == name) {
                    m.parts[j].e.name = m.parts[i].e.name.clone();
                }
                m.parts[i].e.name = name;
            }
            // Delete a machine, or a whole location.
            6 if nl > 0 && self.prune => {
                let i = rng.usize(0..nl);
                if nl > 1 && rng.bool() {
                    self.locations.remove(i);
                } else if !self.locations[i].machines.is_empty() {
                    let n = self.locations[i].machines.len();
                    self.locations[i].machines.remove(rng.usize(0..n));
                }
            }
            // Add a machine to a location.
            7 if nl > 0 => {
                let i = rng.usize(0..nl);
                let taken = self.locations[i]
                    .machines
                    .iter()
                    .map(|m| m.e.name.clone())
                    .collect();
                if let Some(name) = free_name(&MACHINE_NAMES, taken, rng) {
                    let m = self.new_machine(&name, rng);
                    self.locations[i].machines.push(m);
                }
            }
            // Rename a fragment; onto another's name, the two swap.
            8 => {
                let n = self.fragments.len();
                let i = rng.usize(0..n);
                let name = FRAGMENT_NAMES[rng.usize(0..3)].to_string();
                if let Some(j) = (0..n).find(|&j| j != i && self.fragments[j].name == name) {
                    self.fragments[j].name = self.fragments[i].name.clone();
                }
                self.fragments[i].name = name;
            }
            _ => self.add_location(rng),
        }
    }

    /// Declares every resource whose path changed since `before` with `id:` or, where that is
    /// unambiguous, `moved_from`; the others keep or drop their pins and `moved_from`.
    fn identify(
        &mut self,
        before: &Paths,
        parents_before: &BTreeMap<(Kind, u32), u32>,
        rng: &mut fastrand::Rng,
    ) {
        let after = self.paths();
        let parents = self.parents();
        let declared: HashSet<(Kind, String)> =
            after.iter().map(|((k, _), p)| (*k, p.clone())).collect();
        let held: HashSet<(Kind, String)> =
            before.iter().map(|((k, _), p)| (*k, p.clone())).collect();
        // Children follow their location: a path under a location that moves names, in the
        // manifest, what is under the location's new path (and the other way round).
        let location_moves: Vec<(String, String)> = before
            .iter()
            .filter(|((k, _), _)| *k == Kind::Location)
            .filter_map(|(key, old)| {
                let new = after.get(key)?;
                (new != old).then(|| (format!("{old}/"), format!("{new}/")))
            })
            .collect();
        let map = |p: &str, forward: bool| {
            location_moves
                .iter()
                .find_map(|(old, new)| {
                    let (from, to) = if forward { (old, new) } else { (new, old) };
                    p.strip_prefix(from.as_str())
                        .map(|rest| format!("{to}{rest}"))
                })
                .unwrap_or_else(|| p.to_string())
        };
        // Declared in the manifest, by its own words or through a moved location.
        let declared_as = |kind: Kind, p: &str| {
            declared.contains(&(kind, p.to_string())) || declared.contains(&(kind, map(p, true)))
        };
        // Held in the cloud before, at the place the manifest now names.
        let held_at = |kind: Kind, p: &str| {
            held.contains(&(kind, p.to_string())) || held.contains(&(kind, map(p, false)))
        };
        let mut decide = |kind: Kind, e: &mut Ent| {
            let now = &after[&(kind, e.key)];
            let parent = |p: &str| p.rsplit_once('/').map(|(a, _)| a.to_string());
            // Moved: a new path, or the same path under another parent (a machine that moved
            // into the location that took its old location's name).
            let reparented = parents.get(&(kind, e.key)) != parents_before.get(&(kind, e.key));
            match before.get(&(kind, e.key)) {
                None => {
                    e.pin = false;
                    e.moved_from = None;
                }
                Some(old) if old != now || reparented => {
                    // `moved_from` only where it cannot be misread: the old path is declared by
                    // nothing, nothing was at the new path, and a part stays in its machine.
                    let unambiguous = old != now
                        && !declared_as(kind, old)
                        && !held_at(kind, now)
                        && (kind != Kind::Part || parent(old) == parent(now));
                    if unambiguous && rng.bool() {
                        e.pin = false;
                        e.moved_from = Some(old.clone());
                    } else {
                        e.pin = true;
                        e.moved_from = None;
                    }
                }
                Some(_) => {
                    // A satisfied `moved_from` may stay while nothing else claims its path.
                    e.moved_from = e.moved_from.take().filter(|m| {
                        !declared_as(kind, m)
                            && !held_at(kind, m)
                            && (kind != Kind::Part || parent(m) == parent(now))
                            && rng.bool()
                    });
                    e.pin = if e.moved_from.is_some() {
                        false
                    } else if e.pin {
                        rng.u32(0..4) != 0
                    } else {
                        rng.u32(0..4) == 0
                    };
                }
            }
        };
        for f in &mut self.fragments {
            decide(Kind::Fragment, f);
        }
        for l in &mut self.locations {
            decide(Kind::Location, &mut l.e);
            for m in &mut l.machines {
                decide(Kind::Machine, &mut m.e);
                for p in &mut m.parts {
                    decide(Kind::Part, &mut p.e);
                }
            }
        }
    }

    fn manifest(&self, ids: &BTreeMap<(Kind, u32), String>) -> String {
        let identity = |kind: Kind, e: &Ent, indent: &str| {
            let mut s = String::new();
            if e.pin {
                s += &format!("{indent}id: {}\n", ids[&(kind, e.key)]);
            }
            if let Some(m) = &e.moved_from {
                s += &format!("{indent}moved_from: {m}\n");
            }
            s
        };
        let mut out = format!(
            "version: 1\norganization: test-org\nprune: {}\nfragments:\n",
            self.prune
        );
        for f in &self.fragments {
            out += &format!("  - name: {}\n", f.name);
            out += &identity(Kind::Fragment, f, "    ");
            out += &format!(
                "    config: {{ components: [ {{ name: c{}, model: fake }} ] }}\n",
                f.key
            );
        }
        out += "locations:\n";
        for (site, site_name) in SITES.iter().enumerate() {
            let here: Vec<&LocationE> = self.locations.iter().filter(|l| l.site == site).collect();
            let none = if here.is_empty() { " []" } else { "" };
            out += &format!("  - name: {site_name}\n    locations:{none}\n");
            for l in here {
                out += &format!("      - name: {}\n", l.e.name);
                out += &identity(Kind::Location, &l.e, "        ");
                let none = if l.machines.is_empty() { " []" } else { "" };
                out += &format!("        machines:{none}\n");
                for m in &l.machines {
                    out += &format!("          - name: {}\n", m.e.name);
                    out += &identity(Kind::Machine, &m.e, "            ");
                    out += "            parts:\n";
                    for p in &m.parts {
                        out += &format!("              - name: {}\n", p.e.name);
                        out += &format!("                main: {}\n", p.main);
                        out += &identity(Kind::Part, &p.e, "                ");
                    }
                }
            }
        }
        out
    }
}

fn free_name(names: &[&str], taken: Vec<String>, rng: &mut fastrand::Rng) -> Option<String> {
    let free: Vec<&&str> = names
        .iter()
        .filter(|n| !taken.iter().any(|t| t == **n))
        .collect();
    (!free.is_empty()).then(|| free[rng.usize(0..free.len())].to_string())
}

/// Two different indexes below `n` (at least 2).
fn two(rng: &mut fastrand::Rng, n: usize) -> (usize, usize) {
    let a = rng.usize(0..n);
    let b = (a + rng.usize(1..n)) % n;
    (a, b)
}

fn kind_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Fragment => "fragment",
        Kind::Location => "location",
        Kind::Machine => "machine",
        _ => "part",
    }
}

#[tokio::test]
async fn any_sequence_of_manifests_applies_then_plans_empty_and_keeps_ids() {
    let seeds: u64 = std::env::var("IDENTITY_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    const STEPS: usize = 6;
    // What the sequences exercised, so that the law cannot hold vacuously.
    let (mut temporary, mut moves, mut deletes, mut interrupted) = (0, 0, 0, 0);
    for seed in 0..seeds {
        let (cloud, client) = start().await;
        let mut rng = fastrand::Rng::with_seed(seed);
        // Every third sequence without prune.
        let mut world = World {
            prune: seed % 3 != 2,
            ..World::default()
        };
        for name in &FRAGMENT_NAMES[..2] {
            let f = world.ent(name);
            world.fragments.push(f);
        }
        world.add_location(&mut rng);
        world.add_location(&mut rng);
        let mut ids: BTreeMap<(Kind, u32), String> = BTreeMap::new();
        for step in 0..=STEPS {
            let before = world.paths();
            let parents_before = world.parents();
            if step > 0 {
                for _ in 0..rng.usize(1..=3) {
                    world.mutate(&mut rng);
                }
                world.identify(&before, &parents_before, &mut rng);
            }
            let text = world.manifest(&ids);
            let context = format!("seed {seed} step {step}:\n{text}");
            let d = fleetform::manifest::parse_str(&text, Path::new("fleet.yaml"), &|_| None)
                .unwrap_or_else(|e| panic!("{context}\ninvalid: {e}"));
            let mut p = try_plan(client.as_ref(), &d)
                .await
                .unwrap_or_else(|e| panic!("{context}\nplan failed: {e}"));
            // Now and then the apply is interrupted (only a prefix of the plan, in its order,
            // applies); the next plan must finish the job.
            if p.changes.len() > 1 && rng.u32(0..3) == 0 {
                let mut prefix = p.clone();
                prefix.changes.truncate(rng.usize(1..p.changes.len()));
                let report = run(&client, &prefix).await;
                assert!(report.is_success(), "{context}\n{}", failures(&report));
                interrupted += 1;
                p = try_plan(client.as_ref(), &d).await.unwrap_or_else(|e| {
                    panic!(
                        "{context}\ninterrupted after:\n{}\nplanning again failed: {e}",
                        describe(&prefix)
                    )
                });
            }
            temporary += p.changes.iter().filter(|c| c.temporary).count();
            moves += p.summary().moves;
            deletes += p.summary().delete;
            let report = run(&client, &p).await;
            assert!(
                report.is_success(),
                "{context}\n{}\nplan:\n{}",
                failures(&report),
                describe(&p)
            );
            let again = try_plan(client.as_ref(), &d).await.unwrap_or_else(|e| {
                panic!(
                    "{context}\nplan:\n{}\nplanning again failed: {e}",
                    describe(&p)
                )
            });
            assert!(
                again.is_empty(),
                "{context}\nplan:\n{}\nnot empty after apply:\n{}",
                describe(&p),
                describe(&again)
            );
            assert_no_duplicates(client.as_ref(), &cloud.org_id).await;
            // Every declared resource is where the manifest says, with the id it had.
            let cloud_state = state(client.as_ref(), &cloud.org_id).await;
            let mut next_ids = BTreeMap::new();
            for ((kind, key), path) in world.paths() {
                let id = cloud_state
                    .get(&format!("{}:{path}", kind_prefix(kind)))
                    .unwrap_or_else(|| panic!("{context}\n{path} missing: {cloud_state:#?}"));
                if let Some(old) = ids.get(&(kind, key)) {
                    assert_eq!(
                        old,
                        id,
                        "{context}\n{} {path} changed its id",
                        kind.as_str()
                    );
                }
                next_ids.insert((kind, key), id.clone());
            }
            ids = next_ids;
        }
    }
    assert!(
        temporary > 0 && moves > 0 && deletes > 0 && interrupted > 0,
        "the sequences exercised too little: {temporary} temporary steps, {moves} moves, {deletes} deletes, {interrupted} interrupted applies"
    );
}

#[test]
fn a_moved_from_under_a_moved_location_names_the_declared_child() {
    // `New` moved from `Old`, so `Old/m` is the machine declared as `New/m`: naming it from
    // another machine is ambiguous, whatever the cloud holds.
    let err = manifest_error(
        "version: 1\norganization: test-org\nlocations:\n  - name: New\n    moved_from: Old\n    machines:\n      - name: m\n        parts: [ { name: p } ]\n  - name: Other\n    machines:\n      - name: m\n        moved_from: Old/m\n        parts: [ { name: q } ]\n",
    );
    assert!(
        err.contains("fleet.yaml:12:21: error: machine `Other/m` says `moved_from: Old/m`, but that machine is declared as `New/m` (its location moved)"),
        "{err}"
    );
}
