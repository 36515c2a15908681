//! Local cloud throughput on loopback: reads (GetRobotParts) and durable writes
//! (UpdateRobotPart), each from concurrent clients. Prints a table; asserts nothing.
//!
//! Run: `cargo bench --bench localcloud` (set `BENCH_SECONDS` to change the time per row).

use fleetform::localcloud::{self, ServerOptions};
use fleetform::proto::rpc::v1 as rpc;
use fleetform::proto::viam::app::v1 as pb;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

type App = pb::app_service_client::AppServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

struct Row {
    op: &'static str,
    concurrency: usize,
    calls: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let key = localcloud::init(&db, "bench", "bench@example.com").unwrap();
    let server = localcloud::start(&ServerOptions::new(&db)).await.unwrap();
    let channel = Channel::from_shared(server.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = rpc::auth_service_client::AuthServiceClient::new(channel.clone())
        .authenticate(rpc::AuthenticateRequest {
            entity: key.key_id.clone(),
            credentials: Some(rpc::Credentials {
                r#type: "api-key".into(),
                payload: key.key.expose().into(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let bearer = Bearer(format!("Bearer {token}").parse().unwrap());
    let mut app: App =
        pb::app_service_client::AppServiceClient::with_interceptor(channel.clone(), bearer.clone());

    // A small fleet: 1 location, 64 machines with one part each.
    let loc = app
        .create_location(pb::CreateLocationRequest {
            organization_id: key.org_id.clone(),
            name: "bench".into(),
            parent_location_id: None,
        })
        .await
        .unwrap()
        .into_inner()
        .location
        .unwrap()
        .id;
    let mut robots = vec![];
    let mut parts = vec![];
    for i in 0..64 {
        let id = app
            .new_robot(pb::NewRobotRequest {
                name: format!("m{i}"),
                location: loc.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .id;
        let p = app
            .get_robot_parts(pb::GetRobotPartsRequest {
                robot_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .parts
            .remove(0);
        robots.push(id);
        parts.push((p.id, p.name));
    }

    let mut rows = vec![];
    for concurrency in [1, 16] {
        rows.push(
            run(
                "GetRobotParts",
                concurrency,
                secs,
                &channel,
                &bearer,
                robots.clone(),
                |mut app, id, _| async move {
                    app.get_robot_parts(pb::GetRobotPartsRequest { robot_id: id })
                        .await
                        .map(|_| ())
                },
            )
            .await,
        );
    }
    for concurrency in [1, 16] {
        rows.push(
            run("UpdateRobotPart", concurrency, secs, &channel, &bearer, parts.clone(), |mut app, (id, name), n| async move {
                let cfg = serde_json::json!({ "components": [{ "name": "arm", "attributes": { "rev": n } }] });
                let robot_config = match cfg_value(&cfg).kind {
                    Some(prost_types::value::Kind::StructValue(s)) => Some(s),
                    _ => None,
                };
                app.update_robot_part(pb::UpdateRobotPartRequest { id, name, robot_config, ..Default::default() }).await.map(|_| ())
            })
            .await,
        );
    }
    server.shutdown().await.unwrap();

    println!();
    println!(
        "local cloud throughput on loopback ({} cores, SQLite WAL, synchronous=FULL)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("| operation | concurrent clients | calls | seconds | calls/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} |",
            r.op,
            r.concurrency,
            r.calls,
            r.secs,
            r.calls as f64 / r.secs,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    }
}

fn cfg_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(cfg_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, v)| (k.clone(), cfg_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Runs `call` from `concurrency` tasks for `secs` seconds, each task cycling through `items`.
async fn run<T, F, Fut>(
    op: &'static str,
    concurrency: usize,
    secs: f64,
    channel: &Channel,
    bearer: &Bearer,
    items: Vec<T>,
    call: F,
) -> Row
where
    T: Clone + Send + Sync + 'static,
    F: Fn(App, T, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = vec![];
    for t in 0..concurrency {
        let app = pb::app_service_client::AppServiceClient::with_interceptor(
            channel.clone(),
            bearer.clone(),
        );
        let items = items.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut n = t;
            while Instant::now() < deadline {
                let item = items[n % items.len()].clone();
                let t0 = Instant::now();
                call(app.clone(), item, n).await.expect("call failed");
                lat.push(t0.elapsed());
                n += concurrency;
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = vec![];
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Row {
        op,
        concurrency,
        calls: lat.len(),
        secs: elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
    }
}
