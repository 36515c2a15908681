//! Lossless configs on real fleets: every key, value form and key order of a part config
//! survives import, plan and apply; fragment imports (version, prefix, variables) compare and
//! write exactly; fragment tags move with their blast radius shown.

use crate::common;

use common::Cloud;
use fleetform::apply::{ApplyOptions, Report, apply};
use fleetform::cloud::CloudApi;
use fleetform::cloud::observe::{ObserveOptions, observe};
use fleetform::model::Desired;
use fleetform::plan::{Action, Kind, Op, Options, Plan, plan};
use fleetform::proto::viam::app::v1 as pb;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

fn manifest(text: &str) -> Desired {
    fleetform::manifest::parse_str(text, Path::new("fleet.yaml"), &|_| None)
        .unwrap_or_else(|e| panic!("bad test manifest: {e}\n{text}"))
}

async fn plan_for(api: &dyn CloudApi, d: &Desired) -> Plan {
    let observed = observe(api, d, &ObserveOptions::default())
        .await
        .expect("observe");
    plan(d, &observed, &Options::default()).expect("plan")
}

async fn run(api: Arc<dyn CloudApi>, p: &Plan) -> Report {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let report = apply(api, p, &ApplyOptions::default(), None, stop).await;
    assert!(report.is_success(), "{report:#?}");
    report
}

// -- The writer and the reader agree: export → load gives back the same model ----------------

/// `d` written by `manifest::export` (inline, and with configs in files) and read back.
fn exported_and_loaded(d: &Desired) -> [Desired; 2] {
    use fleetform::manifest::export::{ExportOptions, export};
    let dir = tempfile::tempdir().unwrap();
    [None, Some("configs".to_string())].map(|config_dir| {
        let out = export(
            d,
            &ExportOptions {
                config_dir,
                header: vec!["a header".into()],
            },
        );
        for f in &out.files {
            let path = dir.path().join(&f.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &f.contents).unwrap();
        }
        let mut back =
            fleetform::manifest::parse_str(&out.manifest, &dir.path().join("fleet.yaml"), &|_| {
                None
            })
            .unwrap_or_else(|e| panic!("{e}\n---\n{}", out.manifest));
        back.digest.clear();
        back
    })
}

#[test]
fn the_real_config_corpus_exports_and_loads_back_the_same() {
    // Every corpus config as a part config (its fragment imports, which need fragments in a
    // cloud, are covered by the import test below).
    let parts: Vec<Value> = common::real_configs()
        .into_iter()
        .map(|(name, text)| {
            let mut config: Value = serde_json::from_str(&text).unwrap();
            config.as_object_mut().unwrap().remove("fragments");
            let name = name.trim_end_matches(".json").to_string();
            json!({"name": name, "parts": [{"name": format!("{name}-main"), "config": config}]})
        })
        .collect();
    let text = json!({
        "version": 1,
        "organization": "acme",
        "locations": [{"name": "HQ", "machines": parts}],
    })
    .to_string();
    let mut source = manifest(&text);
    source.digest.clear();
    for back in exported_and_loaded(&source) {
        assert_eq!(back, source);
    }
}

// -- The corpus: import → plan → drift → apply → read back ---------------------------------------

/// The config JSON text of every part, exactly as the cloud stores it, by part id.
async fn stored_texts(app: &mut common::App, machine_ids: &[String]) -> Vec<(String, String)> {
    let mut out = vec![];
    for m in machine_ids {
        let parts = app
            .get_robot_parts(pb::GetRobotPartsRequest {
                robot_id: m.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .parts;
        for p in parts {
            out.push((p.id.clone(), p.robot_config_json.expect("config JSON text")));
        }
    }
    out
}

/// One attribute changed by hand: the first component's first attribute when there is one,
/// else a new top-level key.
fn drift(config: &mut Value) {
    let slot = config
        .pointer_mut("/components/0/attributes")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.values_mut().next());
    match slot {
        Some(v) => *v = json!("changed by hand"),
        None => {
            config
                .as_object_mut()
                .unwrap()
                .insert("drifted".into(), json!(1));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_configs_survive_import_plan_drift_and_apply_byte_for_byte() {
    let env = common::CliEnv::start(&[]);
    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let corpus = common::real_configs_in(&c, &org).await;
    assert!(corpus.len() >= 12, "{} configs", corpus.len());
    let hq = c.create_location(&org, "Lab", None).await.unwrap();
    let mut machines = vec![];
    for (i, (name, text)) in corpus.iter().enumerate() {
        let config: Value = serde_json::from_str(text).unwrap();
        let m = c
            .new_machine(&format!("robot-{i:02}"), &hq.id)
            .await
            .unwrap();
        let part = c.get_parts(&m).await.unwrap().remove(0);
        c.update_part(&part.id, &part.name, Some(&config), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        machines.push(m);
    }
    let mut app = common::connect_app(&env.endpoint, &env.key_id, &env.key).await;
    let written = stored_texts(&mut app, &machines).await;

    // Import, then the imported manifest plans empty.
    env.ok(&["import", "--out", "fleet.yaml"]);
    let yaml = std::fs::read_to_string(env.dir.path().join("fleet.yaml")).unwrap();
    assert!(yaml.contains("version: stable"), "{yaml}");
    assert!(yaml.contains("prefix: left"), "{yaml}");
    env.ok(&["plan", "fleet.yaml", "--detailed-exitcode"]);

    // Every part drifts by one attribute in the cloud; apply puts back exactly what was
    // written: every other key, value form and key order untouched.
    for (part_id, _) in &written {
        let part = c.get_part(part_id).await.unwrap();
        let mut config = part.config.to_value();
        drift(&mut config);
        c.update_part(part_id, &part.name, Some(&config), None)
            .await
            .unwrap();
    }
    let drifted = stored_texts(&mut app, &machines).await;
    assert!(drifted.iter().zip(&written).all(|(d, w)| d.1 != w.1));
    let plan = env.run(&["plan", "fleet.yaml", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "the drift is a planned change");
    env.ok(&["apply", "fleet.yaml", "--yes"]);
    let back = stored_texts(&mut app, &machines).await;
    for ((id, w), (_, b)) in written.iter().zip(&back) {
        assert_eq!(b, w, "part {id} came back different");
    }
    env.ok(&["plan", "fleet.yaml", "--detailed-exitcode"]);
}

// -- Property: random configs survive; import option changes are diffs --------------------------

fn random_value(rng: &mut fastrand::Rng, depth: usize) -> Value {
    let leaf = depth >= 4 || rng.u8(..10) < 4;
    if leaf {
        return match rng.u8(..6) {
            0 => json!(rng.i64(-1_000_000..1_000_000)),
            1 => json!(f64::from(rng.i32(-1000..1000)) + 0.25),
            2 => json!(rng.bool()),
            3 => Value::Null,
            4 => json!(format!("s-{}-ü✓", rng.u32(..1000))),
            _ => json!(rng.u8(..3) as i64 * 8),
        };
    }
    if rng.bool() {
        let n = rng.usize(0..4);
        Value::Array((0..n).map(|_| random_value(rng, depth + 1)).collect())
    } else {
        let n = rng.usize(0..5);
        let mut o = serde_json::Map::new();
        for _ in 0..n {
            // Keys in no particular order, so key order is tested too.
            let key = format!(
                "{}{}",
                ["z", "a", "m", "b", "é"][rng.usize(..5)],
                rng.u16(..100)
            );
            o.insert(key, random_value(rng, depth + 1));
        }
        Value::Object(o)
    }
}

fn random_import(rng: &mut fastrand::Rng) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("name".into(), json!("kit"));
    if rng.bool() {
        o.insert("version".into(), json!(rng.u8(1..4).to_string()));
    }
    if rng.bool() {
        o.insert("prefix".into(), json!(format!("p{}", rng.u8(..3))));
    }
    if rng.bool() {
        o.insert("variables".into(), json!({"n": rng.u8(..3)}));
    }
    Value::Object(o)
}

/// A manifest (JSON is YAML) with one fragment and one machine `robot-CASE`, whose part's
/// config is `config`.
fn fleet(case: usize, config: &Value, import: &Value) -> String {
    json!({
        "version": 1,
        "organization": "test-org",
        "fragments": [{"name": "kit", "config": {"components": []}}],
        "locations": [{"name": "Lab", "machines": [{"name": format!("robot-{case}"), "parts": [{
            "name": format!("robot-{case}-main"),
            "fragments": [import],
            "config": config,
        }]}]}],
    })
    .to_string()
}

/// The part config the cloud should hold for `fleet(config, import)`: the config with the
/// import appended, its `name` replaced by the fragment's id.
fn expected(config: &Value, import: &Value, fragment_id: &str) -> String {
    let mut entry = serde_json::Map::new();
    entry.insert("id".into(), json!(fragment_id));
    for (k, v) in import.as_object().unwrap() {
        if k != "name" {
            entry.insert(k.clone(), v.clone());
        }
    }
    let mut c = config.as_object().unwrap().clone();
    c.insert("fragments".into(), json!([entry]));
    serde_json::to_string(&c).unwrap()
}

#[tokio::test]
async fn property_random_configs_survive_and_import_options_are_diffs() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let mut rng = fastrand::Rng::with_seed(0x10551e55);
    for case in 0..12 {
        let mut config = random_value(&mut rng, 1);
        if !config.is_object() {
            config = json!({ "value": config });
        }
        let import = random_import(&mut rng);
        let d = manifest(&fleet(case, &config, &import));
        let p = plan_for(api.as_ref(), &d).await;
        run(Arc::clone(&api), &p).await;
        let again = plan_for(api.as_ref(), &d).await;
        assert!(again.is_empty(), "case {case}: {:#?}", again.changes);

        let frag = api
            .list_fragments(&cloud.org_id)
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.name == "kit")
            .unwrap();
        let machine = api
            .list_machines_for_org(&cloud.org_id)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.name == format!("robot-{case}"))
            .unwrap();
        let part = api.get_parts(&machine.id).await.unwrap().remove(0);
        assert_eq!(
            serde_json::to_string(&part.config).unwrap(),
            expected(&config, &import, &frag.id),
            "case {case}: the config came back different"
        );

        // Any change to the import's version, prefix or variables is a planned diff.
        for key in ["version", "prefix", "variables"] {
            let mut changed = import.clone();
            let o = changed.as_object_mut().unwrap();
            match o.get(key) {
                Some(_) => {
                    o.shift_remove(key);
                }
                None => {
                    let v = match key {
                        "variables" => json!({"added": true}),
                        _ => json!("added"),
                    };
                    o.insert(key.into(), v);
                }
            }
            let p = plan_for(api.as_ref(), &manifest(&fleet(case, &config, &changed))).await;
            let update = p
                .changes
                .iter()
                .find(|c| c.kind == Kind::Part && c.action == Action::Update);
            assert!(
                update.is_some(),
                "case {case}: changing `{key}` of {import} planned nothing: {:#?}",
                p.changes
            );
        }
    }
}

/// A one-part fleet whose part config is `config` (JSON text, which is YAML too).
fn one_part(config: &str) -> String {
    format!(
        "version: 1\norganization: test-org\nlocations:\n  - name: Lab\n    machines:\n      - name: rover\n        parts:\n          - name: rover-main\n            config: {config}\n"
    )
}

#[tokio::test]
async fn configs_differing_only_in_key_order_or_number_spelling_plan_nothing() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let d = manifest(&one_part(
        r#"{"b": 1, "a": {"y": 2.0, "x": [1, 2.5, "\u00e9"]}, "c": {}}"#,
    ));
    run(Arc::clone(&api), &plan_for(api.as_ref(), &d).await).await;
    let machine = api.list_machines_for_org(&cloud.org_id).await.unwrap()[0].clone();
    let part = api.get_parts(&machine.id).await.unwrap().remove(0);
    let write = |text: &'static str| {
        let api = Arc::clone(&api);
        let (id, name) = (part.id.clone(), part.name.clone());
        async move {
            let v: Value = serde_json::from_str(text).unwrap();
            api.update_part(&id, &name, Some(&v), None).await.unwrap();
        }
    };
    // Written by hand in another key order and other number spellings: the same config.
    write(r#"{"c": {}, "a": {"x": [1.0, 25e-1, "é"], "y": 2}, "b": 1e0}"#).await;
    let p = plan_for(api.as_ref(), &d).await;
    assert!(p.is_empty(), "{:#?}", p.changes);
    // Any real difference is seen: list order, a string, a type, a key, an empty value.
    for text in [
        r#"{"b": 1, "a": {"y": 2, "x": [2.5, 1, "é"]}, "c": {}}"#,
        r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5, "e"]}, "c": {}}"#,
        r#"{"b": "1", "a": {"y": 2, "x": [1, 2.5, "é"]}, "c": {}}"#,
        r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5, "é"]}, "c": {}, "d": null}"#,
        r#"{"b": 1, "a": {"y": 2, "x": [1, 2.5, "é"]}, "c": []}"#,
    ] {
        write(text).await;
        let p = plan_for(api.as_ref(), &d).await;
        let updates: Vec<_> = p
            .changes
            .iter()
            .filter(|c| c.kind == Kind::Part && c.action == Action::Update)
            .collect();
        assert_eq!(updates.len(), 1, "{text}: {:#?}", p.changes);
    }
}

// -- Fragment tags -----------------------------------------------------------------------------

fn tagged_fleet(kit_config: &str, tags: &str) -> String {
    format!(
        "version: 1
organization: test-org
fragments:
  - name: camera-kit
    config: {kit_config}
    tags: {tags}
locations:
  - name: Lab
    machines:
      - name: stable-1
        parts: [ {{ name: stable-1-main, fragments: [ {{ name: camera-kit, version: stable }} ] }} ]
      - name: stable-2
        parts: [ {{ name: stable-2-main, fragments: [ {{ name: camera-kit, version: stable }} ] }} ]
      - name: beta-1
        parts: [ {{ name: beta-1-main, fragments: [ {{ name: camera-kit, version: beta }} ] }} ]
      - name: latest-1
        parts: [ {{ name: latest-1-main, fragments: [ camera-kit ] }} ]
"
    )
}

/// A tag move: the tag's path, its revision before and after, and how many machines it reaches.
type TagMove = (String, Option<String>, Option<String>, Option<i64>);

/// The tag moves of a plan.
fn tag_moves(p: &Plan) -> Vec<TagMove> {
    p.changes
        .iter()
        .filter(|c| c.kind == Kind::FragmentTag)
        .map(|c| {
            let d = &c.details[0];
            (
                c.path.clone(),
                d.before.clone(),
                d.after.clone(),
                c.blast_radius.as_ref().map(|r| r.machines),
            )
        })
        .collect()
}

async fn tags_of(api: &dyn CloudApi, id: &str) -> Vec<(String, String)> {
    let mut t: Vec<_> = api
        .get_fragment_versions(id, None)
        .await
        .unwrap()
        .tags
        .into_iter()
        .map(|t| (t.tag, t.revision))
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn stable_moves_across_three_revisions_and_beta_stays_put() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);

    // Revision 1, both tags on it.
    let d = manifest(&tagged_fleet(
        "{ components: [ { name: cam, v: 1 } ] }",
        "{ stable: current, beta: current }",
    ));
    let p = plan_for(api.as_ref(), &d).await;
    run(Arc::clone(&api), &p).await;
    assert!(plan_for(api.as_ref(), &d).await.is_empty());
    let kit = api.list_fragments(&cloud.org_id).await.unwrap().remove(0);
    let first = kit.revision.clone();
    assert_eq!(
        tags_of(api.as_ref(), &kit.id).await,
        [
            ("beta".into(), first.clone()),
            ("stable".into(), first.clone())
        ]
    );

    let mut revisions = vec![first.clone()];
    for v in 2..=3 {
        // A new config, with stable following it: the plan shows the fragment update
        // reaching the machines on the latest revision and on stable, and the tag move
        // reaching the two stable machines. beta does not move.
        let kit_config = format!("{{ components: [ {{ name: cam, v: {v} }} ] }}");
        let d = manifest(&tagged_fleet(
            &kit_config,
            &format!("{{ stable: current, beta: \"{first}\" }}"),
        ));
        let p = plan_for(api.as_ref(), &d).await;
        let update = p
            .changes
            .iter()
            .find(|c| c.kind == Kind::Fragment)
            .expect("a fragment update");
        let reach = update.blast_radius.as_ref().expect("blast radius");
        assert_eq!(reach.machines, 3, "latest-1 and the two stable machines");
        let prev = revisions.last().unwrap().clone();
        assert_eq!(
            tag_moves(&p),
            [(
                "camera-kit@stable".into(),
                Some(prev.clone()),
                Some("(after this apply)".into()),
                Some(2)
            )]
        );
        let text = fleetform::cli::render::text::render(&p, &Default::default());
        assert!(
            text.contains(&format!(
                "~ fragment tag camera-kit@stable (moves {prev} → the revision this apply makes)"
            )),
            "{text}"
        );
        assert!(text.contains("takes effect on 2 machines"), "{text}");
        run(Arc::clone(&api), &p).await;
        assert!(plan_for(api.as_ref(), &d).await.is_empty());
        let now = api.get_fragment(&kit.id).await.unwrap().revision;
        assert_ne!(&now, revisions.last().unwrap());
        revisions.push(now.clone());
        assert_eq!(
            tags_of(api.as_ref(), &kit.id).await,
            [("beta".into(), first.clone()), ("stable".into(), now)]
        );
    }

    // Moving stable back to the first revision by number is a plain tag move.
    let d = manifest(&tagged_fleet(
        "{ components: [ { name: cam, v: 3 } ] }",
        &format!("{{ stable: \"{first}\", beta: \"{first}\" }}"),
    ));
    let p = plan_for(api.as_ref(), &d).await;
    assert_eq!(
        tag_moves(&p),
        [(
            "camera-kit@stable".into(),
            Some(revisions[2].clone()),
            Some(first.clone()),
            Some(2)
        )]
    );
    assert!(
        !p.changes
            .iter()
            .any(|c| matches!(c.op, Op::UpdateFragment { .. }))
    );
    run(Arc::clone(&api), &p).await;
    assert_eq!(
        tags_of(api.as_ref(), &kit.id).await,
        [("beta".into(), first.clone()), ("stable".into(), first)]
    );

    // The machine pinned to beta was never touched by any of this.
    let beta = api
        .list_machines_for_org(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "beta-1")
        .unwrap();
    let part = api.get_parts(&beta.id).await.unwrap().remove(0);
    assert_eq!(
        part.config.to_value()["fragments"],
        json!([{"id": kit.id, "version": "beta"}])
    );
}

#[tokio::test]
async fn a_tag_naming_a_missing_revision_is_a_plan_error() {
    let cloud = Cloud::start().await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let d = manifest(&tagged_fleet("{ components: [] }", "{ stable: current }"));
    run(Arc::clone(&api), &plan_for(api.as_ref(), &d).await).await;
    let d = manifest(&tagged_fleet("{ components: [] }", "{ stable: \"99\" }"));
    let observed = observe(api.as_ref(), &d, &ObserveOptions::default())
        .await
        .unwrap();
    let err = plan(&d, &observed, &Options::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("names revision 99, which the fragment does not have"),
        "{err}"
    );
}
