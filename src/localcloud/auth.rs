//! Authentication for the local cloud: `proto.rpc.v1.AuthService/Authenticate` exchanges an API
//! key for a random, expiring bearer token, and an interceptor admits AppService and
//! RobotService calls only with a valid `authorization: Bearer <token>`.
//!
//! Tokens live in memory: a restarted server forgets them, and clients re-authenticate on the
//! resulting `UNAUTHENTICATED` (as they must when a token expires). API keys are stored only as
//! SHA-256 hashes.

use super::store::{self, Store};
use crate::proto::rpc::v1 as rpc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Who is calling: attached to each authenticated request as an extension.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub org_id: String,
}

struct Session {
    caller: Caller,
    expires: Instant,
}

/// The live tokens of one server.
pub struct Tokens {
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Tokens {
    pub fn new(ttl: Duration) -> Arc<Tokens> {
        Arc::new(Tokens {
            ttl,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn issue(&self, caller: Caller) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.expires > now);
            s.insert(
                token.clone(),
                Session {
                    caller,
                    expires: now + self.ttl,
                },
            );
        }
        token
    }

    fn check(&self, token: &str) -> Option<Caller> {
        let s = self.sessions.lock().ok()?;
        s.get(token)
            .filter(|v| v.expires > Instant::now())
            .map(|v| v.caller.clone())
    }

    /// The interceptor for AppService and RobotService.
    pub fn interceptor(
        self: &Arc<Self>,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let tokens = Arc::clone(self);
        move |mut req: Request<()>| {
            let values: Vec<_> = req.metadata().get_all("authorization").iter().collect();
            let [value] = values.as_slice() else {
                return Err(Status::unauthenticated("authentication required"));
            };
            let value = value
                .to_str()
                .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
            let token = value.strip_prefix("Bearer ").ok_or_else(|| {
                Status::unauthenticated("expected authorization header with prefix: Bearer ")
            })?;
            let caller = tokens.check(token).ok_or_else(|| {
                Status::unauthenticated("unauthenticated: invalid or expired token")
            })?;
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }
}

/// The caller attached by the interceptor.
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("authentication required"))
}

/// `proto.rpc.v1.AuthService`.
pub struct AuthService {
    pub store: Arc<Store>,
    pub tokens: Arc<Tokens>,
}

#[tonic::async_trait]
impl rpc::auth_service_server::AuthService for AuthService {
    async fn authenticate(
        &self,
        request: Request<rpc::AuthenticateRequest>,
    ) -> Result<Response<rpc::AuthenticateResponse>, Status> {
        if request.metadata().get("authorization").is_some() {
            return Err(Status::invalid_argument(
                "already authenticated; cannot re-authenticate",
            ));
        }
        let req = request.into_inner();
        let creds = req
            .credentials
            .ok_or_else(|| Status::invalid_argument("credentials required"))?;
        if creds.r#type != "api-key" {
            return Err(Status::invalid_argument(format!(
                "do not know how to handle credential type {:?}",
                creds.r#type
            )));
        }
        let key_id = req.entity;
        let hash = store::sha256_hex(&creds.payload);
        let lookup_id = key_id.clone();
        let org = self
            .store
            .read(move |db| store::api_key_org(db, &lookup_id, &hash))
            .await?;
        let Some(org_id) = org else {
            return Err(Status::permission_denied(
                "failed to authenticate: unknown API key id or wrong key",
            ));
        };
        let access_token = self.tokens.issue(Caller { key_id, org_id });
        Ok(Response::new(rpc::AuthenticateResponse { access_token }))
    }
}
