//! Staged rollouts (issue 16): simulated machines, machine summaries, and rollouts through
//! waves with health gates, against an in-process local cloud with simulated machines.

use crate::common::Cloud;
use fleetform::cloud::CloudApi;
use fleetform::localcloud::{FailMode, SimOptions};
use fleetform::model::{LogQuery, OnlineState};
use serde_json::json;
use std::time::Duration;

/// Simulated machines that fetch their config every 50 ms.
pub fn sim(fail: &[&str], mode: FailMode) -> SimOptions {
    SimOptions {
        tick: Duration::from_millis(50),
        fail: fail.iter().map(|r| r.parse().expect("rule")).collect(),
        delay: Duration::ZERO,
        mode,
    }
}

/// Polls `check` until it returns `Some`, failing the test after 20 s (a hang is a failure,
/// not a wait).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A location with `n` machines; returns the location id and the main part ids.
pub async fn fleet(api: &dyn CloudApi, org: &str, name: &str, n: usize) -> (String, Vec<String>) {
    let loc = api
        .create_location(org, name, None)
        .await
        .expect("location");
    let mut parts = vec![];
    for i in 0..n {
        let m = api
            .new_machine(&format!("m{i:02}"), &loc.id)
            .await
            .expect("machine");
        parts.push(api.get_parts(&m).await.expect("parts")[0].id.clone());
    }
    (loc.id, parts)
}

/// Machines come online once they fetch their config; one whose config matches the failure
/// rule goes offline (mode offline) while the others stay online; all in one summaries call.
#[tokio::test]
async fn simulated_machines_report_in_and_fail_by_rule() {
    let cloud = Cloud::start_simulated(sim(&["/speed>100"], FailMode::Offline)).await;
    let api = cloud.client().await;
    let (loc, parts) = fleet(&api, &cloud.org_id, "Lab", 3).await;
    let online = |ps: &[fleetform::model::PartSummary], id: &str| {
        ps.iter()
            .find(|p| p.part_id == id)
            .is_some_and(|p| p.online_state == OnlineState::Online)
    };
    eventually("all three online", || async {
        let s = api.machine_summaries(&cloud.org_id, &[]).await.ok()?;
        parts.iter().all(|p| online(&s, p)).then_some(())
    })
    .await;
    let p0 = api.get_part(&parts[0]).await.unwrap();
    api.update_part(&p0.id, &p0.name, Some(&json!({"speed": 500})), None)
        .await
        .unwrap();
    // Offline means "not seen for 10 s"; the agent stops reporting in at once, so its last
    // access stops moving while the others' keep moving.
    let frozen = api.get_part(&parts[0]).await.unwrap().last_access;
    let s = eventually(
        "the others to report in after the failing part stopped",
        || async {
            let s = api
                .machine_summaries(&cloud.org_id, std::slice::from_ref(&loc))
                .await
                .ok()?;
            let later = |id: &str| {
                s.iter()
                    .find(|p| p.part_id == id)
                    .and_then(|p| p.last_access)
                    > frozen
                        .map(|t| fleetform::model::Timestamp::from_micros(t.as_micros() + 200_000))
            };
            (later(&parts[1]) && later(&parts[2])).then_some(s)
        },
    )
    .await;
    let failing = s.iter().find(|p| p.part_id == parts[0]).unwrap();
    assert!(
        failing.last_access
            <= frozen.map(|t| fleetform::model::Timestamp::from_micros(t.as_micros() + 100_000)),
        "the failing part kept reporting in: {failing:?}"
    );
    assert_eq!(s.len(), 3, "one summary per part: {s:?}");
    assert!(
        s.iter()
            .all(|p| p.location_id == loc && p.machine_name.starts_with('m'))
    );
    // Each agent logged the config it applied.
    let logs = api
        .part_logs(&parts[1], &LogQuery::default())
        .await
        .unwrap();
    assert!(
        logs.entries
            .iter()
            .any(|e| e.message.starts_with("applied config")),
        "{:?}",
        logs.entries
    );
    cloud
        .server
        .unwrap()
        .shutdown()
        .await
        .expect("clean shutdown");
}

/// In `errors` mode a matching part keeps reporting in and logs errors.
#[tokio::test]
async fn simulated_machines_log_errors_by_rule() {
    let cloud = Cloud::start_simulated(sim(&["/mode=bad"], FailMode::Errors)).await;
    let api = cloud.client().await;
    let (_, parts) = fleet(&api, &cloud.org_id, "Lab", 1).await;
    let p = api.get_part(&parts[0]).await.unwrap();
    api.update_part(&p.id, &p.name, Some(&json!({"mode": "bad"})), None)
        .await
        .unwrap();
    let errors = LogQuery {
        levels: vec!["error".into()],
        ..Default::default()
    };
    eventually("an error log", || async {
        let page = api.part_logs(&parts[0], &errors).await.ok()?;
        (!page.entries.is_empty()).then_some(())
    })
    .await;
    let s = api.machine_summaries(&cloud.org_id, &[]).await.unwrap();
    assert_eq!(s[0].online_state, OnlineState::Online);
}

// -- Rollouts through the reconcile pipeline ----------------------------------------------------

use fleetform::reconcile;
use fleetform::rollout::Status;
use std::sync::Arc;

/// A manifest of location `Lab` with one machine per entry of `speeds` (`m00`, `m01`, …),
/// each part's arm at that speed, and `rollout` (YAML under `rollout:`, or empty for none).
pub fn fleet_manifest(speeds: &[u32], rollout: &str) -> String {
    let mut m = String::from(
        "version: 1\norganization: test-org\nlocations:\n  - name: Lab\n    machines:\n",
    );
    for (i, s) in speeds.iter().enumerate() {
        m.push_str(&format!(
            "      - name: m{i:02}\n        parts:\n          - name: m{i:02}-main\n            config: {{components: [{{name: arm, type: arm, model: fake, attributes: {{speed: {s}}}}}]}}\n"
        ));
    }
    if !rollout.is_empty() {
        m.push_str("rollout:\n");
        m.push_str(rollout);
    }
    m
}

/// Options for a test rollout: health polled every 50 ms.
pub fn fast() -> reconcile::Options {
    let mut o = reconcile::Options::default();
    o.rollout.poll = Duration::from_millis(50);
    o
}

/// Prepares and applies `text`; returns the plan and the report.
pub async fn apply_text(
    api: &Arc<dyn CloudApi>,
    text: &str,
) -> (fleetform::plan::Plan, fleetform::apply::Report) {
    let d = crate::common::manifest(text);
    let opts = fast();
    let prepared = reconcile::prepare(api.as_ref(), &d, &opts)
        .await
        .expect("prepare");
    let plan = prepared.plan().clone();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        reconcile::apply(Arc::clone(api), prepared, &opts, None, stop),
    )
    .await
    .expect("apply hung (likely deadlocked)")
    .expect("apply");
    (plan, report)
}

/// Every `Lab` part's arm speed, by machine name.
pub async fn speeds(api: &dyn CloudApi, org: &str) -> Vec<(String, serde_json::Value)> {
    let locs = api.list_locations(org).await.unwrap();
    let lab = locs.iter().find(|l| l.name == "Lab").expect("Lab");
    let mut out = vec![];
    for m in api.list_machines(&lab.id).await.unwrap() {
        let p = &api.get_parts(&m.id).await.unwrap()[0];
        out.push((
            m.name.clone(),
            p.config.to_value()["components"][0]["attributes"]["speed"].clone(),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A converged fleet at `speeds`, every machine online.
async fn converged(
    fail: &[&str],
    mode: FailMode,
    speeds_now: &[u32],
) -> (Cloud, Arc<dyn CloudApi>) {
    let cloud = Cloud::start_simulated(sim(fail, mode)).await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let (_, report) = apply_text(&api, &fleet_manifest(speeds_now, "")).await;
    assert!(report.is_success(), "{report:?}");
    let n = speeds_now.len();
    eventually("every machine online", || async {
        let s = api.machine_summaries(&cloud.org_id, &[]).await.ok()?;
        (s.iter()
            .filter(|p| p.online_state == OnlineState::Online)
            .count()
            == n)
            .then_some(())
    })
    .await;
    (cloud, api)
}

/// Issue 16: a healthy change rolls through all waves, in the planned order.
#[tokio::test]
async fn a_healthy_change_rolls_through_every_wave() {
    let (cloud, api) = converged(
        &["/components/0/attributes/speed>100"],
        FailMode::Offline,
        &[10; 6],
    )
    .await;
    let text = fleet_manifest(
        &[50; 6],
        "  waves: [1, 50%, 100%]\n  healthy_when: {online_within: 10s}\n",
    );
    let (plan, report) = apply_text(&api, &text).await;
    let r = plan.rollout.as_ref().expect("a rollout");
    let sizes: Vec<usize> = r.waves.iter().map(|w| w.machines.len()).collect();
    assert_eq!(sizes, [1, 2, 3]);
    assert_eq!(r.waves[0].machines[0].path, "Lab/m00");
    assert!(report.is_success(), "{report:#?}");
    let o = report.rollout.as_ref().unwrap();
    assert_eq!(
        (o.status, o.waves_passed, o.waves),
        (Some(Status::Done), 3, 3)
    );
    assert!(
        speeds(api.as_ref(), &cloud.org_id)
            .await
            .iter()
            .all(|(_, s)| *s == json!(50))
    );
    let (state, _) = fleetform::rollout::status(api.as_ref(), &cloud.org_id)
        .await
        .unwrap();
    let state = state.unwrap();
    assert_eq!(state.status, Status::Done);
    assert!(
        state
            .parts
            .iter()
            .all(|p| p.health.as_deref() == Some("healthy")),
        "{state:#?}"
    );
    // The record is not part of the fleet: planning the same manifest again changes nothing.
    let (plan, _) = apply_text(&api, &text).await;
    assert!(plan.is_empty(), "{plan:#?}");
}

/// Issue 16: a change that makes wave-2 machines unhealthy aborts within that wave, rolls
/// back, and every machine ends on its old config (read back); later waves are never written.
#[tokio::test]
async fn an_unhealthy_wave_two_aborts_and_rolls_everything_back() {
    let (cloud, api) = converged(
        &["/components/0/attributes/speed>100"],
        FailMode::Offline,
        &[10; 6],
    )
    .await;
    let before = speeds(api.as_ref(), &cloud.org_id).await;
    // m00 (wave 1) is fine; the others would go offline.
    let text = fleet_manifest(
        &[50, 500, 500, 500, 500, 500],
        "  waves: [1, 3, 100%]\n  healthy_when: {online_within: 1s}\n",
    );
    let histories = |api: Arc<dyn CloudApi>, org: String| async move {
        let locs = api.list_locations(&org).await.unwrap();
        let mut n = vec![];
        for m in api.list_machines(&locs[0].id).await.unwrap() {
            let p = &api.get_parts(&m.id).await.unwrap()[0];
            n.push((
                m.name.clone(),
                api.part_history(&p.id, None).await.unwrap().len(),
            ));
        }
        n.sort();
        n
    };
    let h0 = histories(Arc::clone(&api), cloud.org_id.clone()).await;
    let (_, report) = apply_text(&api, &text).await;
    assert!(!report.is_success());
    let o = report.rollout.as_ref().unwrap();
    assert_eq!(o.status, Some(Status::RolledBack), "{o:#?}");
    assert_eq!(o.waves_passed, 1, "{o:#?}");
    assert!(o.message.as_deref().unwrap().contains("wave 2"), "{o:#?}");
    let rb = o.rollback.as_ref().unwrap();
    assert!(rb.failed.is_empty(), "{rb:#?}");
    assert_eq!(rb.restored.len(), 3, "waves 1 and 2 are restored: {rb:#?}");
    assert_eq!(speeds(api.as_ref(), &cloud.org_id).await, before);
    // Wave 3 (m03..m05) was never written.
    let h1 = histories(Arc::clone(&api), cloud.org_id.clone()).await;
    for i in 3..6 {
        assert_eq!(h1[i], h0[i], "wave 3 machine {} was written", h1[i].0);
    }
    let (state, _) = fleetform::rollout::status(api.as_ref(), &cloud.org_id)
        .await
        .unwrap();
    assert_eq!(state.unwrap().status, Status::RolledBack);
}

/// Issue 16: a fragment tag move rolls out by pinning wave by wave, then moves the tag and
/// unpins; machines importing the fragment at another tag are never touched.
#[tokio::test]
async fn a_tag_move_rolls_out_by_pinning_and_leaves_other_tags_alone() {
    let cloud = Cloud::start_simulated(sim(&[], FailMode::Offline)).await;
    let api: Arc<dyn CloudApi> = Arc::new(cloud.client().await);
    let fleet = |fps: u32, beta: &str, rollout: &str| {
        let mut m = format!(
            "version: 1\norganization: test-org\nfragments:\n  - name: kit\n    config: {{components: [{{name: cam, type: camera, model: fake, attributes: {{fps: {fps}}}}}]}}\n    tags: {{stable: current, beta: {beta}}}\nlocations:\n  - name: Lab\n    machines:\n"
        );
        for (i, tag) in ["stable", "stable", "stable", "beta"].iter().enumerate() {
            m.push_str(&format!(
                "      - name: m{i:02}\n        parts:\n          - name: m{i:02}-main\n            fragments: [{{name: kit, version: {tag}}}]\n            config: {{}}\n"
            ));
        }
        if !rollout.is_empty() {
            m.push_str("rollout:\n");
            m.push_str(rollout);
        }
        m
    };
    let (_, r) = apply_text(&api, &fleet(10, "current", "")).await;
    assert!(r.is_success(), "{r:#?}");
    let parts_now = |api: Arc<dyn CloudApi>, org: String| async move {
        let locs = api.list_locations(&org).await.unwrap();
        let lab = locs.iter().find(|l| l.name == "Lab").unwrap().id.clone();
        let mut out = vec![];
        for m in api.list_machines(&lab).await.unwrap() {
            let p = api.get_parts(&m.id).await.unwrap().remove(0);
            let history = api.part_history(&p.id, None).await.unwrap().len();
            out.push((m.name.clone(), p.config.clone(), history));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let before = parts_now(Arc::clone(&api), cloud.org_id.clone()).await;
    let kit_id = api
        .list_fragments(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.name == "kit")
        .unwrap()
        .id;
    let tag = |tags: &[fleetform::model::FragmentTag], t: &str| {
        tags.iter()
            .find(|x| x.tag == t)
            .map(|x| x.revision.clone())
            .unwrap()
    };
    let tags0 = api.get_fragment_versions(&kit_id, None).await.unwrap().tags;
    let beta = format!("\"{}\"", tag(&tags0, "beta"));
    let second = fleet(
        20,
        &beta,
        "  waves: [1, 100%]\n  healthy_when: {online_within: 10s}\n",
    );
    let (plan, report) = apply_text(&api, &second).await;
    let r = plan.rollout.as_ref().expect("a rollout");
    assert_eq!(r.tag_moves.len(), 1, "{r:#?}");
    assert_eq!(r.tag_moves[0].path, "kit@stable");
    let machines: Vec<&str> = r.machines().map(|m| m.path.as_str()).collect();
    assert_eq!(machines, ["Lab/m00", "Lab/m01", "Lab/m02"]);
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.rollout.as_ref().unwrap().status, Some(Status::Done));
    let after = parts_now(Arc::clone(&api), cloud.org_id.clone()).await;
    // Pinned, then unpinned: the configs are as before (importing `stable`), two edits each.
    for i in 0..3 {
        assert_eq!(after[i].1, before[i].1, "{}", after[i].0);
        assert_eq!(
            after[i].2,
            before[i].2 + 2,
            "{} pinned and unpinned",
            after[i].0
        );
    }
    // The machine on `beta` was never touched.
    assert_eq!(after[3], before[3]);
    let versions = api.get_fragment_versions(&kit_id, None).await.unwrap();
    let newest = versions.revisions.last().unwrap().revision.clone();
    assert_eq!(tag(&versions.tags, "stable"), newest);
    assert_ne!(tag(&tags0, "stable"), newest);
    assert_eq!(tag(&versions.tags, "beta"), tag(&tags0, "beta"));
    // Nothing left to do.
    let (plan, _) = apply_text(&api, &second).await;
    assert!(plan.is_empty(), "{plan:#?}");
}

/// Issue 16: `apply` killed with SIGKILL mid-rollout; the next `apply` recovers: the machine
/// the first one changed is healthy and stays, the rest rolls out anew, turns unhealthy and
/// is rolled back.
#[tokio::test]
async fn a_killed_apply_is_recovered_by_the_next_one() {
    let (cloud, api) = converged(
        &["/components/0/attributes/speed>100"],
        FailMode::Errors,
        &[10; 4],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    // A long soak after wave 1, so the first apply is surely killed inside it.
    std::fs::write(
        &path,
        fleet_manifest(
            &[50, 500, 500, 500],
            "  waves: [1, 100%]\n  wait: 60s\n  healthy_when: {online_within: 5s}\n",
        ),
    )
    .unwrap();
    let (cwd, endpoint, key_id, key) = (
        dir.path().to_path_buf(),
        cloud.endpoint(),
        cloud.key_id.clone(),
        cloud.key.clone(),
    );
    let apply = move || {
        let mut c = crate::common::fleetform_command();
        c.current_dir(&cwd)
            .args([
                "apply",
                "fleet.yaml",
                "--yes",
                "--rollout-poll",
                "50ms",
                "--cloud",
            ])
            .arg(&endpoint)
            .env("VIAM_API_KEY_ID", &key_id)
            .env("VIAM_API_KEY", &key)
            .env("NO_COLOR", "1");
        c
    };
    let mut first = crate::common::Child(
        apply()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("wave 1 written by the first apply", || async {
        let s = speeds(api.as_ref(), &cloud.org_id).await;
        (s[0].1 == json!(50)).then_some(())
    })
    .await;
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let (state, _) = fleetform::rollout::status(api.as_ref(), &cloud.org_id)
        .await
        .unwrap();
    assert_eq!(state.unwrap().status, Status::Running);
    // The killed apply still holds the lease; free it as an operator would.
    let lease = api
        .list_fragments(&cloud.org_id)
        .await
        .unwrap()
        .into_iter()
        .find(fleetform::lease::is_lease)
        .unwrap();
    fleetform::lease::force_unlock(api.as_ref(), &lease.id)
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || apply().output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("A rollout was interrupted"), "{stderr}");
    assert!(stderr.contains("Rollout aborted: wave 1"), "{stderr}");
    assert!(stdout.contains("Rollout rolled back"), "{stdout}");
    let s = speeds(api.as_ref(), &cloud.org_id).await;
    let got: Vec<serde_json::Value> = s.into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, [json!(50), json!(10), json!(10), json!(10)]);
}

/// Runs `fleetform ARGS --cloud <cloud>` to completion; returns (exit code, stdout, stderr).
async fn cli(cloud: &Cloud, args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = crate::common::fleetform_command();
    c.args(args)
        .arg("--cloud")
        .arg(cloud.endpoint())
        .env("VIAM_API_KEY_ID", &cloud.key_id)
        .env("VIAM_API_KEY", &cloud.key)
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `fleetform rollout pause` holds the next wave until `rollout resume`, and
/// `rollout status` shows where the rollout stands.
#[tokio::test]
async fn pause_holds_the_next_wave_until_resume() {
    let (cloud, api) = converged(&[], FailMode::Offline, &[10; 3]).await;
    let text = fleet_manifest(
        &[50; 3],
        "  waves: [1, 100%]\n  wait: 1s\n  healthy_when: {online_within: 10s}\n",
    );
    let running = {
        let api = Arc::clone(&api);
        tokio::spawn(async move { apply_text(&api, &text).await })
    };
    let org = cloud.org_id.clone();
    let state = |api: Arc<dyn CloudApi>, org: String| async move {
        fleetform::rollout::status(api.as_ref(), &org).await.ok()?.0
    };
    eventually("wave 1 under way", || async {
        let s = state(Arc::clone(&api), org.clone()).await?;
        (s.wave == 1).then_some(())
    })
    .await;
    let (code, _, err) = cli(&cloud, &["rollout", "pause"]).await;
    assert_eq!(code, Some(0), "{err}");
    eventually("the rollout paused before wave 2", || async {
        let s = state(Arc::clone(&api), org.clone()).await?;
        (s.status == Status::Paused).then_some(())
    })
    .await;
    let got: Vec<serde_json::Value> = speeds(api.as_ref(), &org)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        got,
        [json!(50), json!(10), json!(10)],
        "wave 2 started while paused"
    );
    let (code, out, err) = cli(&cloud, &["rollout", "status"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(": paused (wave 1 of 2), pause requested"),
        "{out}"
    );
    assert!(out.contains("wave 1: 1 machine(s), passed"), "{out}");
    assert!(
        out.contains("Lab/m00/m00-main: healthy, now online"),
        "{out}"
    );
    let (code, _, err) = cli(&cloud, &["rollout", "resume"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (_, report) = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the rollout did not resume")
        .unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert!(
        speeds(api.as_ref(), &org)
            .await
            .iter()
            .all(|(_, v)| *v == json!(50))
    );
}

/// `fleetform rollout abort` stops a running rollout at its next poll and rolls it back; for a
/// rollout whose process died, the next `apply` carries the abort out before planning.
#[tokio::test]
async fn abort_requests_roll_back_running_and_crashed_rollouts() {
    let (cloud, api) = converged(&[], FailMode::Offline, &[10; 3]).await;
    let org = cloud.org_id.clone();
    let text = fleet_manifest(
        &[50; 3],
        "  waves: [1, 100%]\n  wait: 60s\n  healthy_when: {online_within: 10s}\n",
    );
    let wave_one_written = || async {
        eventually("wave 1 written", || async {
            let s = speeds(api.as_ref(), &org).await;
            (s[0].1 == json!(50)).then_some(())
        })
        .await
    };
    // Running: the abort is read at the next health poll.
    let running = {
        let api = Arc::clone(&api);
        let text = text.clone();
        tokio::spawn(async move { apply_text(&api, &text).await })
    };
    wave_one_written().await;
    let (code, _, err) = cli(&cloud, &["rollout", "abort"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (_, report) = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the abort was not noticed")
        .unwrap();
    let o = report.rollout.unwrap();
    assert_eq!(o.status, Some(Status::RolledBack), "{o:#?}");
    assert!(o.message.unwrap().contains("rollout abort"));
    assert!(
        speeds(api.as_ref(), &org)
            .await
            .iter()
            .all(|(_, v)| *v == json!(10))
    );

    // Crashed (its task dropped mid-soak), then an abort request: the next apply rolls back.
    let crashed = {
        let api = Arc::clone(&api);
        let text = text.clone();
        tokio::spawn(async move { apply_text(&api, &text).await })
    };
    wave_one_written().await;
    crashed.abort();
    let _ = crashed.await;
    let (state, _) = fleetform::rollout::status(api.as_ref(), &org)
        .await
        .unwrap();
    assert_eq!(state.unwrap().status, Status::Running);
    let (code, _, err) = cli(&cloud, &["rollout", "abort"]).await;
    assert_eq!(code, Some(0), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = cli(&cloud, &["apply", path.to_str().unwrap(), "--yes"]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("A rollout was left unfinished; Rollout rolled back"),
        "{err}"
    );
    assert!(!out.contains("Plan:"), "nothing was planned: {out}");
    assert!(
        speeds(api.as_ref(), &org)
            .await
            .iter()
            .all(|(_, v)| *v == json!(10))
    );
}

/// The in-process local cloud (`--cloud local`) runs simulated machines too: a rollout there
/// passes its health gates, and a failing rule rolls it back.
#[tokio::test]
async fn the_in_process_local_cloud_simulates_machines() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: String, extra: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        async move {
            std::fs::write(dir.join("fleet.yaml"), text).unwrap();
            let out = tokio::task::spawn_blocking(move || {
                crate::common::fleetform_command()
                    .current_dir(&dir)
                    .args(["apply", "fleet.yaml", "--yes", "--rollout-poll", "50ms"])
                    .args(["--simulate-machines", "--sim-tick", "50ms"])
                    .args(extra)
                    .env("NO_COLOR", "1")
                    .env_remove("FLEETFORM_CLOUD")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let policy = "  waves: [1, 100%]\n  healthy_when: {online_within: 1s}\n";
    let fail: &[&str] = &["--sim-fail", "/components/0/attributes/speed>100"];
    let (code, out, err) = run(fleet_manifest(&[10; 3], ""), &[]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, out, err) = run(fleet_manifest(&[50; 3], policy), fail).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("Rollout done: 2 of 2 wave(s) passed"),
        "{out}\n{err}"
    );
    let (code, out, err) = run(fleet_manifest(&[500; 3], policy), fail).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("Rollout rolled back: 0 of 2 wave(s) passed"),
        "{out}\n{err}"
    );
}
