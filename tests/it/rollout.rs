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
