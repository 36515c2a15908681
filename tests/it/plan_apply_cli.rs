//! `fleetform plan` and `fleetform apply` as users run them: the real binary against a
//! `fleetform cloud serve` process (or the embedded local cloud).

use crate::common;

use fleetform::cloud::CloudApi;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::CliEnv as Env;

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const FLEET: &str = "version: 1
organization: local
locations:
  - name: HQ
    machines:
      - name: arm
        parts:
          - name: arm-main
            config: { components: [ { name: arm, model: ur5e, attributes: { speed: 1 } } ] }
      - name: rover
        parts:
          - name: rover-main
            config: { components: [ { name: base, model: wheeled } ] }
";

#[test]
fn a_bad_manifest_is_reported_with_its_line_and_never_reaches_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\norganization: acme\nlocations:\n  - name: HQ\n    colour: blue\n",
    )
    .unwrap();
    for cloud in ["local", "http://127.0.0.1:1"] {
        for cmd in ["plan", "apply"] {
            let o = crate::common::fleetform_command()
                .args([cmd, "bad.yaml", "--cloud", cloud])
                .current_dir(dir.path())
                .env("VIAM_API_KEY_ID", "00000000-0000-4000-8000-000000000000")
                .env("VIAM_API_KEY", "k")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let text = out(&o);
            assert_eq!(o.status.code(), Some(1), "{text}");
            assert!(text.contains("bad.yaml:5:5"), "{text}");
            assert!(text.contains("colour"), "{text}");
            assert!(text.contains("hint:"), "{text}");
            assert!(
                !text.contains("connect"),
                "no connection was attempted: {text}"
            );
        }
    }
    assert!(
        !dir.path().join(".fleetform").exists(),
        "the local cloud was not even created"
    );
}

#[test]
fn the_example_fleet_plans_applies_and_converges_on_the_local_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let run = |args: &[&str]| {
        crate::common::fleetform_command()
            .args(args)
            .current_dir(dir.path())
            .env_remove("FLEETFORM_CLOUD")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let manifest = examples.join("fleet.yaml");
    let m = manifest.to_str().unwrap();
    let plan = run(&["plan", m, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", out(&plan));
    assert!(out(&plan).contains("to create"));
    let refused = run(&["apply", m]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(out(&refused).contains("--yes"), "{}", out(&refused));
    let apply = run(&["apply", m, "--yes"]);
    assert_eq!(apply.status.code(), Some(0), "{}", out(&apply));
    assert!(out(&apply).contains("Apply complete"));
    let again = run(&["plan", m, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", out(&again));
    let json = run(&["plan", m, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 2);
    assert_eq!(v["summary"]["create"], 0);
}

#[tokio::test]
async fn a_stale_saved_plan_is_refused_naming_what_changed() {
    let env = Env::start(&[]);
    env.write("fleet.yaml", FLEET);
    let applied = env.run(&["apply", "fleet.yaml", "--yes"]);
    assert!(applied.status.success(), "{}", out(&applied));
    env.write(
        "fleet.yaml",
        &FLEET
            .replace("speed: 1", "speed: 2")
            .replace("model: wheeled", "model: tracked"),
    );
    let planned = env.run(&["plan", "fleet.yaml", "--out", "plan.json"]);
    assert!(planned.status.success(), "{}", out(&planned));

    // Someone edits arm-main in the app.
    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let arm = c
        .list_machines_for_org(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "arm")
        .unwrap();
    let part = c.get_parts(&arm.id).await.unwrap().remove(0);
    c.update_part(
        &part.id,
        &part.name,
        Some(&serde_json::json!({"components": []})),
        None,
    )
    .await
    .unwrap();

    // Without --yes (stdin is not a terminal) the plan is still reported as stale, before
    // anyone would be asked to confirm it.
    let unconfirmed = env.run(&["apply", "plan.json"]);
    let text = out(&unconfirmed);
    assert_eq!(unconfirmed.status.code(), Some(1), "{text}");
    assert!(text.contains("the saved plan is stale"), "{text}");
    assert!(!text.contains("without confirmation"), "{text}");

    let stale = env.run(&["apply", "plan.json", "--yes"]);
    let text = out(&stale);
    assert_eq!(stale.status.code(), Some(1), "{text}");
    assert!(text.contains("stale"), "{text}");
    assert!(
        text.contains("part HQ/arm/arm-main: it was changed in the cloud"),
        "{text}"
    );
    assert!(
        !text.contains("rover-main:"),
        "only what changed is named: {text}"
    );
    // Nothing was written: rover still has its old model, the hand edit stays.
    let rover = c
        .list_machines_for_org(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "rover")
        .unwrap();
    assert_eq!(
        c.get_parts(&rover.id).await.unwrap()[0].config.to_value()["components"][0]["model"],
        "wheeled"
    );
    assert_eq!(
        c.get_part(&part.id).await.unwrap().config.to_value(),
        serde_json::json!({"components": []})
    );

    // A fresh plan applies.
    assert!(
        env.run(&["plan", "fleet.yaml", "--out", "plan.json"])
            .status
            .success()
    );
    let ok = env.run(&["apply", "plan.json", "--yes"]);
    assert!(ok.status.success(), "{}", out(&ok));
    assert_eq!(
        env.run(&["plan", "fleet.yaml", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test]
async fn saved_plans_keep_sensitive_values_out_and_check_them_on_apply() {
    let env = Env::start(&[]);
    env.write(
        "fleet.yaml",
        &FLEET.replace("speed: 1", "token: \"Bearer ${env:ARM_TOKEN}\""),
    );
    let planned = env
        .cmd(&["plan", "fleet.yaml", "--out", "plan.json"])
        .env("ARM_TOKEN", "tok-AAAA-1111")
        .output()
        .unwrap();
    assert!(planned.status.success(), "{}", out(&planned));
    assert!(!out(&planned).contains("tok-AAAA-1111"));
    let saved = std::fs::read_to_string(env.dir.path().join("plan.json")).unwrap();
    assert!(
        !saved.contains("tok-AAAA-1111"),
        "the saved plan holds only a hash"
    );

    let missing = env
        .cmd(&["apply", "plan.json", "--yes"])
        .env_remove("ARM_TOKEN")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        out(&missing).contains("ARM_TOKEN is not set"),
        "{}",
        out(&missing)
    );
    let other = env
        .cmd(&["apply", "plan.json", "--yes"])
        .env("ARM_TOKEN", "tok-BBBB-2222")
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    assert!(out(&other).contains("differs"), "{}", out(&other));
    assert!(!out(&other).contains("tok-"), "{}", out(&other));
    let ok = env
        .cmd(&["apply", "plan.json", "--yes"])
        .env("ARM_TOKEN", "tok-AAAA-1111")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", out(&ok));
    assert!(!out(&ok).contains("tok-AAAA-1111"));

    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let arm = c
        .list_machines_for_org(&org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "arm")
        .unwrap();
    let part = c.get_parts(&arm.id).await.unwrap().remove(0);
    assert_eq!(
        part.config.to_value()["components"][0]["attributes"]["token"],
        "Bearer tok-AAAA-1111"
    );
}

#[test]
fn deletes_beyond_the_budget_need_allow_deletes() {
    let env = Env::start(&[]);
    let mut many =
        String::from("version: 1\norganization: local\nlocations:\n  - name: HQ\n    machines:\n");
    for i in 0..12 {
        many.push_str(&format!(
            "      - name: m{i}\n        parts:\n          - name: m{i}-main\n"
        ));
    }
    env.write("fleet.yaml", &many);
    assert!(env.run(&["apply", "fleet.yaml", "--yes"]).status.success());
    env.write(
        "fleet.yaml",
        "version: 1\norganization: local\nprune: true\nlocations:\n  - name: HQ\n",
    );
    let refused = env.run(&["apply", "fleet.yaml", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        out(&refused).contains("--allow-deletes"),
        "{}",
        out(&refused)
    );
    let ok = env.run(&["apply", "fleet.yaml", "--yes", "--allow-deletes"]);
    assert!(ok.status.success(), "{}", out(&ok));
    assert!(out(&ok).contains("12 applied"), "{}", out(&ok));
}

fn big_fleet(machines: usize) -> String {
    let mut t = String::from("version: 1\norganization: local\nlocations:\n");
    for s in 0..3 {
        t.push_str(&format!("  - name: site-{s}\n    machines:\n"));
        for m in 0..machines / 3 {
            t.push_str(&format!(
                "      - name: m{s}-{m}\n        parts:\n          - name: m{s}-{m}-main\n            main: true\n            config: {{ k: {m} }}\n          - name: m{s}-{m}-aux\n"
            ));
        }
    }
    t
}

/// Starts `fleetform ARGS` and returns once it reports a change applied, with a thread that
/// collects its stdout.
fn apply_until_a_change_applied(
    env: &Env,
    args: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = vec![];
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("applied") {
                let _ = started_tx.send(());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    started_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("apply started");
    (child, reader)
}

#[test]
fn sigint_stops_starting_changes_prints_the_summary_and_exits_130() {
    let env = Env::start(&["--latency", "150ms"]);
    env.write("fleet.yaml", &big_fleet(12));
    let (mut child, reader) = apply_until_a_change_applied(
        &env,
        &["apply", "fleet.yaml", "--yes", "--parallelism", "2"],
    );
    assert!(
        Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let text = format!("{}\n{stderr}", reader.join().unwrap());
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("Apply interrupted"), "{text}");
    assert!(text.contains("were not started"), "{text}");
    // The next apply finishes the job.
    let ok = env.run(&["apply", "fleet.yaml", "--yes"]);
    assert!(ok.status.success(), "{}", out(&ok));
    assert_eq!(
        env.run(&["plan", "fleet.yaml", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
}

/// The server dies mid-apply: apply stops starting changes after consecutive transport
/// failures and says the cloud is unreachable, instead of failing every change.
#[test]
fn a_dead_cloud_mid_apply_stops_it_with_a_cloud_unreachable_summary() {
    let mut env = Env::start(&["--latency", "100ms"]);
    env.write("fleet.yaml", &big_fleet(60));
    let (mut child, reader) =
        apply_until_a_change_applied(&env, &["apply", "fleet.yaml", "--yes", "--output", "text"]);
    env.server.0.kill().unwrap();
    env.server.0.wait().unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let text = format!("{}\n{stderr}", reader.join().unwrap());
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("Apply stopped: the cloud is unreachable"),
        "{text}"
    );
    assert!(text.contains("failed to reach the cloud"), "{text}");
    assert!(text.contains("were not started"), "{text}");
}

/// `fleetform force-unlock ID` on the organization's lease, if there is one.
async fn force_unlock(env: &Env) {
    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let lease = c
        .list_fragments(&org)
        .await
        .unwrap()
        .into_iter()
        .find(fleetform::lease::is_lease);
    if let Some(lease) = lease {
        let o = env.run(&["force-unlock", &lease.id]);
        assert!(o.status.success(), "{}", out(&o));
    }
}

#[tokio::test]
async fn killing_apply_at_random_points_never_duplicates_and_a_rerun_converges() {
    let env = Env::start(&["--latency", "3ms"]);
    env.write("fleet.yaml", &big_fleet(24));
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..10 {
        // A killed apply leaves the organization's lease held until it expires: free it the
        // documented way, as an operator would after a crash.
        force_unlock(&env).await;
        let mut child = env
            .cmd(&["apply", "fleet.yaml", "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    force_unlock(&env).await;
    let ok = env.run(&["apply", "fleet.yaml", "--yes"]);
    assert!(ok.status.success(), "{}", out(&ok));
    assert_eq!(
        env.run(&["plan", "fleet.yaml", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let locations = c.list_locations(&org).await.unwrap();
    assert_eq!(locations.len(), 3, "no duplicate locations: {locations:?}");
    let machines = c.list_machines_for_org(&org).await.unwrap();
    assert_eq!(machines.len(), 24);
    for m in &machines {
        assert_eq!(
            c.get_parts(&m.id).await.unwrap().len(),
            2,
            "machine {}",
            m.name
        );
    }
}

#[tokio::test]
async fn a_swap_pinned_with_id_plans_as_two_moves_and_applies_from_a_saved_plan() {
    let env = Env::start(&[]);
    env.write("fleet.yaml", FLEET);
    let applied = env.run(&["apply", "fleet.yaml", "--yes"]);
    assert!(applied.status.success(), "{}", out(&applied));
    let c = env.client().await;
    let org = c.list_organizations().await.unwrap().remove(0).id;
    let machines = c.list_machines_for_org(&org).await.unwrap();
    let id = |name: &str| machines.iter().find(|m| m.name == name).unwrap().id.clone();
    // `arm` and `rover` swap names; each keeps its parts.
    let swapped = FLEET
        .replace("- name: arm\n", "- name: rover\n        id: ARM\n")
        .replace(
            "- name: rover\n        parts:\n          - name: rover-main",
            "- name: arm\n        id: ROVER\n        parts:\n          - name: rover-main",
        )
        .replace("ARM", &id("arm"))
        .replace("ROVER", &id("rover"));
    env.write("fleet.yaml", &swapped);

    let plan = env.run(&["plan", "fleet.yaml"]);
    let text = out(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(
        text.contains("→ machine HQ/rover (from HQ/arm; renamed)"),
        "{text}"
    );
    assert!(
        text.contains("→ machine HQ/arm (from HQ/rover; renamed)"),
        "{text}"
    );
    assert!(!text.contains("fleetform-tmp"), "{text}");
    assert!(
        text.contains("Plan: 0 to create, 0 to update, 2 to move, 0 to delete."),
        "{text}"
    );
    let detail = env.run(&["plan", "fleet.yaml", "--detail", "--out", "plan.json"]);
    assert!(out(&detail).contains("-fleetform-tmp"), "{}", out(&detail));

    let apply = env.run(&["apply", "plan.json", "--yes"]);
    assert!(apply.status.success(), "{}", out(&apply));
    let again = env.run(&["plan", "fleet.yaml", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", out(&again));
    let after = c.list_machines_for_org(&org).await.unwrap();
    let now = |name: &str| after.iter().find(|m| m.name == name).unwrap().id.clone();
    assert_eq!((now("rover"), now("arm")), (id("arm"), id("rover")));
}

/// The organization a key saw is remembered (by a hash of the key id, never the id itself),
/// and a wrong entry costs nothing but its reads: the plan is right and the entry is mended.
#[test]
fn the_organization_cache_guesses_and_a_wrong_guess_is_harmless() {
    let env = crate::common::CliEnv::start(&[]);
    let cache = env.dir.path().join("cache");
    let file = cache.join("organizations");
    env.write(
        "fleet.yaml",
        "version: 1\norganization: local\nlocations:\n  - name: HQ\n    machines:\n      - name: cam-01\n        parts: [{name: main, config: {components: []}}]\n",
    );
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("FLEETFORM_CACHE_DIR", &cache)
            .output()
            .expect("run fleetform")
    };
    let applied = run(&["apply", "fleet.yaml", "--yes"]);
    assert!(applied.status.success(), "{}", out(&applied));
    let text = std::fs::read_to_string(&file).expect("the cache was written");
    let (_, org_id) = text.trim_end().split_once(' ').expect("one entry");
    let org_id = org_id.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains(&env.key_id), "{text}");

    for wrong in [&org_id, "00000000-0000-4000-8000-000000000000"] {
        std::fs::write(&file, text.replace(&org_id, wrong)).unwrap();
        let plan = run(&["plan", "fleet.yaml", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "{}", out(&plan));
        let again = run(&["apply", "fleet.yaml", "--yes"]);
        assert!(again.status.success(), "{}", out(&again));
        assert!(out(&again).contains("No changes"), "{}", out(&again));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
    // No cache at all.
    let plan = env
        .cmd(&["plan", "fleet.yaml", "--detailed-exitcode"])
        .env("FLEETFORM_CACHE_DIR", "")
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", out(&plan));
}
