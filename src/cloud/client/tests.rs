//! Unit tests of the call discipline: authentication, retries, observation, endpoints.

use super::retry::Kind;
use super::transport::{parse_endpoint, status_error};
use super::*;
use crate::cloud::CloudApi;
use crate::proto::rpc::v1 as auth;
use crate::proto::rpc::v1::auth_service_server::{AuthService, AuthServiceServer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

const KEY_ID: &str = "0b1c2d3e-key-id";
const KEY: &str = "super-secret-key";

/// What the fake `AuthService` saw, and how it answers.
#[derive(Default)]
struct AuthLog {
    calls: AtomicU32,
    requests: Mutex<Vec<(String, String, String, bool)>>,
    fail: Option<tonic::Code>,
}

struct FakeAuth(Arc<AuthLog>);

#[async_trait::async_trait]
impl AuthService for FakeAuth {
    async fn authenticate(
        &self,
        request: tonic::Request<auth::AuthenticateRequest>,
    ) -> Result<tonic::Response<auth::AuthenticateResponse>, tonic::Status> {
        let had_header = request.metadata().get("authorization").is_some();
        let req = request.into_inner();
        let creds = req.credentials.unwrap_or_default();
        self.0.requests.lock().expect("lock").push((
            req.entity,
            creds.r#type,
            creds.payload.clone(),
            had_header,
        ));
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(code) = self.0.fail {
            // A hostile server echoing the key must not get it into our error.
            return Err(tonic::Status::new(
                code,
                format!("bad key {}", creds.payload),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(tonic::Response::new(auth::AuthenticateResponse {
            access_token: format!("tok-{n}"),
        }))
    }
}

async fn serve_auth(log: Arc<AuthLog>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthServiceServer::new(FakeAuth(log)))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

fn fast_options(endpoint: String) -> ClientOptions {
    let mut opts = ClientOptions::new(endpoint, Credentials::new(KEY_ID, KEY));
    opts.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    opts.call_timeout = Duration::from_secs(5);
    opts
}

async fn client_with(log: Arc<AuthLog>) -> Client {
    let endpoint = serve_auth(log).await;
    Client::connect(fast_options(endpoint))
        .await
        .expect("connect")
}

type Script = Arc<Mutex<VecDeque<Result<(), tonic::Code>>>>;
type Seen = Arc<Mutex<Vec<String>>>;

/// Runs `rpc` through `Client::call` with a scripted answer per attempt (then Ok), recording
/// the authorization header of every attempt.
async fn scripted(
    client: &Client,
    kind: Kind,
    answers: Vec<Result<(), tonic::Code>>,
) -> (Result<(), CloudError>, Vec<String>) {
    let script: Script = Arc::new(Mutex::new(answers.into()));
    let seen: Seen = Arc::default();
    let result = client
        .call("ListOrganizations", kind, (), |_channel, request| {
            let script = script.clone();
            let seen = seen.clone();
            async move {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().expect("lock").push(header);
                let next = script.lock().expect("lock").pop_front().unwrap_or(Ok(()));
                next.map(tonic::Response::new)
                    .map_err(|code| tonic::Status::new(code, "scripted"))
            }
        })
        .await;
    let seen = seen.lock().expect("lock").clone();
    (result, seen)
}

#[tokio::test]
async fn concurrent_first_calls_authenticate_once() {
    let log = Arc::new(AuthLog::default());
    let client = client_with(log.clone()).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            scripted(&client, Kind::Read, vec![]).await
        }));
    }
    for task in tasks {
        let (result, seen) = task.await.expect("join");
        assert_eq!(result, Ok(()));
        assert_eq!(seen, vec!["Bearer tok-1".to_string()]);
    }
    assert_eq!(log.calls.load(Ordering::SeqCst), 1);
    let requests = log.requests.lock().expect("lock").clone();
    assert_eq!(
        requests,
        vec![(KEY_ID.into(), "api-key".into(), KEY.into(), false)]
    );
    let counts = client.rpc_counts();
    assert_eq!(counts.get("Authenticate"), Some(&1));
    assert_eq!(counts.get("ListOrganizations"), Some(&8));
    client.reset_rpc_counts();
    assert!(client.rpc_counts().is_empty());
}

#[tokio::test]
async fn unauthenticated_reauthenticates_once_and_repeats_once() {
    let log = Arc::new(AuthLog::default());
    let client = client_with(log.clone()).await;
    let unauth = Err(tonic::Code::Unauthenticated);

    let (result, seen) = scripted(&client, Kind::Write, vec![unauth]).await;
    assert_eq!(result, Ok(()));
    assert_eq!(seen, vec!["Bearer tok-1", "Bearer tok-2"]);

    let (result, seen) = scripted(&client, Kind::Write, vec![unauth, unauth, unauth]).await;
    assert_eq!(result.map_err(|e| e.code), Err(Code::Unauthenticated));
    assert_eq!(seen, vec!["Bearer tok-2", "Bearer tok-3"]);
    assert_eq!(log.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn reads_retry_transient_errors_writes_do_not() {
    let log = Arc::new(AuthLog::default());
    let client = client_with(log).await;
    let unavailable = Err(tonic::Code::Unavailable);

    let (result, seen) = scripted(&client, Kind::Read, vec![unavailable; 2]).await;
    assert_eq!(result, Ok(()));
    assert_eq!(seen.len(), 3);

    let (result, seen) = scripted(&client, Kind::Read, vec![unavailable; 5]).await;
    assert_eq!(result.map_err(|e| e.code), Err(Code::Unavailable));
    assert_eq!(seen.len(), 3, "max_attempts bounds retries");

    let (result, seen) = scripted(&client, Kind::Write, vec![unavailable]).await;
    assert!(result.expect_err("not retried").outcome_unknown());
    assert_eq!(seen.len(), 1);

    let not_found = Err(tonic::Code::NotFound);
    let (result, seen) = scripted(&client, Kind::Read, vec![not_found]).await;
    assert_eq!(result.map_err(|e| e.code), Err(Code::NotFound));
    assert_eq!(seen.len(), 1, "permanent errors are not retried");
    assert_eq!(client.rpc_counts().get("ListOrganizations"), Some(&8));
}

/// Records what the client reports, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, Option<Code>)>>);

impl RpcObserver for Recorder {
    fn rpc_finished(&self, rpc: &'static str, error: Option<&CloudError>) {
        self.0
            .lock()
            .expect("lock")
            .push((rpc, error.map(|e| e.code)));
    }
}

#[tokio::test]
async fn the_observer_sees_each_logical_call_once_and_only_on_its_handle() {
    let log = Arc::new(AuthLog::default());
    let plain = client_with(log.clone()).await;
    let recorder = Arc::new(Recorder::default());
    let observed = plain.with_observer(recorder.clone());
    let unavailable = Err(tonic::Code::Unavailable);

    // Two retries and a re-authentication: still one call each.
    let (result, seen) = scripted(&observed, Kind::Read, vec![unavailable; 2]).await;
    assert_eq!((result, seen.len()), (Ok(()), 3));
    let unauthenticated = Err(tonic::Code::Unauthenticated);
    let (result, seen) = scripted(&observed, Kind::Write, vec![unauthenticated]).await;
    assert_eq!((result, seen.len()), (Ok(()), 2));
    let (result, _) = scripted(&observed, Kind::Read, vec![unavailable; 5]).await;
    assert_eq!(result.map_err(|e| e.code), Err(Code::Unavailable));
    // Calls through the handle without the observer are not reported.
    let (result, _) = scripted(&plain, Kind::Read, vec![]).await;
    assert_eq!(result, Ok(()));

    let reported = recorder.0.lock().expect("lock").clone();
    assert_eq!(
        reported,
        [
            ("ListOrganizations", None),
            ("ListOrganizations", None),
            ("ListOrganizations", Some(Code::Unavailable)),
        ]
    );
    // The handles share the connection and its counters.
    assert_eq!(plain.rpc_counts().get("ListOrganizations"), Some(&9));
}

#[tokio::test]
async fn authentication_failure_names_key_id_but_never_the_key() {
    let log = Arc::new(AuthLog {
        fail: Some(tonic::Code::PermissionDenied),
        ..AuthLog::default()
    });
    let client = client_with(log.clone()).await;
    let (result, seen) = scripted(&client, Kind::Read, vec![]).await;
    let err = result.expect_err("auth fails");
    assert!(seen.is_empty(), "no app call without a token");
    assert_eq!(err.rpc, "Authenticate");
    assert_eq!(err.code, Code::PermissionDenied);
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains(KEY_ID), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert!(!format!("{client:?} {err:?}").contains(KEY));
    assert_eq!(log.calls.load(Ordering::SeqCst), 1, "not transient");
}

#[tokio::test]
async fn connect_failure_names_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let endpoint = format!("http://{addr}");
    let err = Client::connect(fast_options(endpoint.clone()))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.rpc, "Connect");
    assert!(err.is_transient());
    assert!(err.message.contains(&endpoint), "{err}");
}

#[tokio::test]
async fn https_to_a_plaintext_server_fails_cleanly() {
    let endpoint = serve_auth(Arc::new(AuthLog::default())).await;
    let endpoint = endpoint.replace("http://", "https://");
    let err = Client::connect(fast_options(endpoint.clone()))
        .await
        .expect_err("no TLS there");
    assert_eq!(err.rpc, "Connect");
    assert!(err.message.contains(&endpoint), "{err}");
    let lazy = Client::connect_lazy(fast_options(endpoint)).expect("lazy");
    let err = lazy.list_organizations().await.expect_err("no TLS there");
    assert_eq!(err.rpc, "Authenticate", "{err}");
    assert!(err.message.contains(KEY_ID), "{err}");
}

#[test]
fn endpoints_accept_only_http_and_https() {
    let (uri, tls) = parse_endpoint("http://127.0.0.1:8080").expect("http");
    assert_eq!(uri.port_u16(), Some(8080));
    assert_eq!(tls, None);
    let (_, tls) = parse_endpoint("https://app.viam.com").expect("https");
    assert_eq!(tls.as_deref(), Some("app.viam.com"));
    let (_, tls) = parse_endpoint("https://app.viam.com:443/").expect("https");
    assert_eq!(tls.as_deref(), Some("app.viam.com"));
    for bad in [
        "grpc://host:1",
        "app.viam.com:443",
        "",
        "http://host:1/path",
        "unix:/x",
    ] {
        let err = parse_endpoint(bad).expect_err(bad);
        assert_eq!(err.code, Code::InvalidArgument, "{bad}");
        assert!(err.message.contains("http://HOST:PORT"), "{err}");
        assert!(err.message.contains("https://HOST[:PORT]"), "{err}");
    }
}

#[test]
fn retry_delay_grows_and_is_capped() {
    let p = RetryPolicy::default();
    let b = p.backoff();
    assert_eq!(b.bound(1), Duration::from_millis(100));
    assert_eq!(b.bound(2), Duration::from_millis(200));
    assert_eq!(b.bound(u32::MAX), p.max_delay);
}

#[test]
fn credentials_come_from_both_variables_and_hide_the_key() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let creds =
        Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id-1"), ("VIAM_API_KEY", "k3y")]))
            .expect("both set");
    assert_eq!(creds.key_id, "id-1");
    assert_eq!(creds.key.expose(), "k3y");
    assert!(!format!("{creds:?}").contains("k3y"));
    assert!(Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id-1")])).is_none());
    assert!(
        Credentials::from_lookup(env(&[("VIAM_API_KEY_ID", "id"), ("VIAM_API_KEY", "")])).is_none()
    );
    let opts = ClientOptions::new("http://h:1", creds);
    assert!(!format!("{opts:?}").contains("k3y"));
    assert_eq!(opts.call_timeout, Duration::from_secs(30));
    assert_eq!(opts.connect_timeout, Duration::from_secs(10));
}

#[test]
fn transport_statuses_are_classified_as_transport() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    let status = tonic::Status::from_error(Box::new(io));
    let err = status_error("GetRobot", &status);
    assert!(err.message.contains("reset by peer"), "{err}");
    assert!(err.is_transient(), "{err:?}");
    let server = status_error("GetRobot", &tonic::Status::unknown("boom"));
    assert_eq!(server.code, Code::Other);
}
