//! Acknowledged writes survive the server being killed with SIGKILL.

use crate::common;

use fleetform::proto::viam::app::v1 as pb;

const WRITES: usize = 60;

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    let (key_id, key) = common::cli_init(&db);
    let (mut server, endpoint) = common::cli_serve(&db, &[]);
    let mut app = common::connect_app(&endpoint, &key_id, &key).await;
    let org = app
        .list_organizations(pb::ListOrganizationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .organizations
        .remove(0)
        .id;
    let loc = app
        .create_location(pb::CreateLocationRequest {
            organization_id: org.clone(),
            name: "site".into(),
            parent_location_id: None,
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap()
        .id;
    let robot = app
        .new_robot(pb::NewRobotRequest {
            name: "m".into(),
            location: loc.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let part = app
        .get_robot_parts(pb::GetRobotPartsRequest {
            robot_id: robot.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .parts
        .remove(0);
    // N acknowledged writes of two kinds: new machines, and config updates of one part.
    let mut machines = vec![];
    for i in 0..WRITES / 2 {
        let id = app
            .new_robot(pb::NewRobotRequest {
                name: format!("m{i}"),
                location: loc.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .id;
        machines.push(id);
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: part.id.clone(),
            name: part.name.clone(),
            robot_config: Some(common::json_struct(serde_json::json!({ "rev": i }))),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    // No graceful shutdown: SIGKILL.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(app);

    let (_server, endpoint) = common::cli_serve(&db, &[]);
    let mut app = common::connect_app(&endpoint, &key_id, &key).await;
    let robots = app
        .list_robots(pb::ListRobotsRequest {
            location_id: loc.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .robots;
    for id in &machines {
        assert!(robots.iter().any(|r| &r.id == id), "machine {id} lost");
    }
    assert_eq!(robots.len(), WRITES / 2 + 1);
    let got = app
        .get_robot_part(pb::GetRobotPartRequest {
            id: part.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let config: serde_json::Value = serde_json::from_str(&got.config_json).unwrap();
    assert_eq!(config, serde_json::json!({ "rev": WRITES / 2 - 1 }));
    let history = app
        .get_robot_part_history(pb::GetRobotPartHistoryRequest {
            id: part.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .history;
    assert_eq!(history.len(), WRITES / 2);
}
