//! The local cloud against hostile callers (issue 13, point 7): other organizations' private
//! fragments, huge and control-character names, oversized ids, failed logins, idle sockets.

use crate::common;

use common::{Cloud, assert_code, connect_app, json_struct};
use fleetform::proto::viam::app::v1 as pb;
use serde_json::json;
use tonic::Code;

async fn first_part(app: &mut common::App, org: &str) -> (String, String) {
    let loc = app
        .create_location(pb::CreateLocationRequest {
            organization_id: org.into(),
            name: "HQ".into(),
            parent_location_id: None,
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap();
    let robot = app
        .new_robot(pb::NewRobotRequest {
            name: "arm".into(),
            location: loc.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let part = app
        .get_robot_parts(pb::GetRobotPartsRequest { robot_id: robot })
        .await
        .unwrap()
        .into_inner()
        .parts
        .remove(0);
    (loc.id, part.id)
}

async fn fragment(app: &mut common::App, org: &str, name: &str, public: bool) -> String {
    let visibility = public.then_some(pb::FragmentVisibility::Public as i32);
    app.create_fragment(pb::CreateFragmentRequest {
        name: name.into(),
        config: None,
        organization_id: org.into(),
        visibility,
    })
    .await
    .unwrap()
    .into_inner()
    .fragment
    .unwrap()
    .id
}

#[tokio::test]
async fn a_part_may_not_use_another_organizations_private_fragment() {
    let cloud = Cloud::start().await;
    let mut a = cloud.app().await;
    let other = fleetform::localcloud::init(&cloud.db, "other-org", "b@example.com").unwrap();
    let mut b = connect_app(&cloud.endpoint(), &other.key_id, other.key.expose()).await;
    let private = fragment(&mut b, &other.org_id, "theirs", false).await;
    let public = fragment(&mut b, &other.org_id, "shared", true).await;
    let (_, part) = first_part(&mut a, &cloud.org_id).await;
    let update = |fragments: Vec<String>| pb::UpdateRobotPartRequest {
        id: part.clone(),
        name: "arm-main".into(),
        robot_config: Some(json_struct(json!({ "fragments": fragments }))),
        ..Default::default()
    };
    assert_code(
        a.update_robot_part(update(vec![private.clone()])).await,
        Code::InvalidArgument,
        "fragment",
    );
    assert_code(
        a.update_robot_part(update(vec!["not-an-id".into()])).await,
        Code::InvalidArgument,
        "fragments",
    );
    a.update_robot_part(update(vec![public])).await.unwrap();
    // Nothing of `a` blocks `b` from deleting its own private fragment.
    b.delete_fragment(pb::DeleteFragmentRequest { id: private })
        .await
        .unwrap();
}

#[tokio::test]
async fn names_have_limits_and_no_control_characters() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    let create = |name: String| pb::CreateLocationRequest {
        organization_id: cloud.org_id.clone(),
        name,
        parent_location_id: None,
    };
    app.create_location(create("n".repeat(128))).await.unwrap();
    assert_code(
        app.create_location(create("n".repeat(129))).await,
        Code::InvalidArgument,
        "at most 128",
    );
    let huge = app.create_location(create("n".repeat(3_900_000))).await;
    let status = huge.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() <= 1100, "a short message");
    for bad in ["a\0b", "a\u{1b}[2Jb", "a\nb", "a\u{202e}b"] {
        assert_code(
            app.create_location(create(bad.into())).await,
            Code::InvalidArgument,
            "control character",
        );
    }
    let (loc, part) = first_part(&mut app, &cloud.org_id).await;
    assert_code(
        app.update_robot_part(pb::UpdateRobotPartRequest {
            id: part,
            name: "x\u{7}".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "control character",
    );
    assert_code(
        app.update_location(pb::UpdateLocationRequest {
            location_id: loc,
            name: Some("y\rz".into()),
            parent_location_id: None,
            region: None,
        })
        .await,
        Code::InvalidArgument,
        "control character",
    );
    // Listing the organization still works.
    let all = app
        .list_locations(pb::ListLocationsRequest {
            organization_id: cloud.org_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn oversized_ids_get_invalid_argument_not_a_dropped_stream() {
    let cloud = Cloud::start().await;
    let mut app = cloud.app().await;
    for len in [65, 100_000, 3_900_000] {
        let id = "a".repeat(len);
        let r = app
            .get_robot_part(pb::GetRobotPartRequest { id: id.clone() })
            .await;
        assert_code(r, Code::InvalidArgument, "too long to be an id");
        let r = app
            .get_location(pb::GetLocationRequest { location_id: id })
            .await;
        assert_code(r, Code::InvalidArgument, "too long to be an id");
    }
}

#[tokio::test]
async fn failed_logins_are_refused_and_a_good_one_still_works() {
    let cloud = Cloud::start().await;
    let channel = cloud.channel().await;
    for _ in 0..4 {
        let r = common::authenticate(&channel, &cloud.key_id, "wrong").await;
        assert_eq!(r.expect_err("wrong key").code(), Code::PermissionDenied);
    }
    common::authenticate(&channel, &cloud.key_id, &cloud.key)
        .await
        .expect("the right key still works (after a wait)");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    fleetform::localcloud::init(&db, "org", "o@example.com").unwrap();
    let mut opts = fleetform::localcloud::ServerOptions::new(&db);
    opts.idle_timeout = std::time::Duration::from_millis(300);
    let server = fleetform::localcloud::start(&opts).await.unwrap();
    // A client that connects and never says anything.
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server never closed the idle connection"
    );
    server.shutdown().await.unwrap();
}
