//! Authentication for the local cloud: `proto.rpc.v1.AuthService/Authenticate` exchanges an API
//! key for a random, expiring bearer token, and an interceptor admits AppService and
//! RobotService calls only with a valid `authorization: Bearer <token>`.
//!
//! Tokens live in memory: a restarted server forgets them, and clients re-authenticate on the
//! resulting `UNAUTHENTICATED` (as they must when a token expires). API keys are stored only as
//! SHA-256 hashes.
//!
//! A failed `Authenticate` is logged (the key id, escaped and cut to 64 characters, and the
//! peer's address; never the key), and repeated failures from one peer address are slowed
//! down: after [`FREE_FAILURES`] failures, each attempt from that address waits 100 ms,
//! doubling per further failure up to [`MAX_DELAY`], until one succeeds or the address has
//! not failed for [`FORGET_AFTER`].

use super::store::{self, Store};
use crate::proto::rpc::v1 as rpc;
use std::collections::HashMap;
use std::net::IpAddr;
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

/// Failures from one address allowed before attempts are slowed down.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait imposed on an attempt.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// A peer's failures are forgotten after this long without another.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_PEERS: usize = 4096;

/// Consecutive failed `Authenticate` calls per peer address.
#[derive(Default)]
pub struct Throttle {
    peers: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Throttle {
    /// How long an attempt from `ip` waits before it is checked.
    pub fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        let Ok(peers) = self.peers.lock() else {
            return Duration::ZERO;
        };
        match peers.get(&ip) {
            Some(&(n, last)) if n >= FREE_FAILURES && now.duration_since(last) < FORGET_AFTER => {
                let doublings = (n - FREE_FAILURES).min(16);
                (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failure from `ip`; returns how many in a row it has now.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> u32 {
        let Ok(mut peers) = self.peers.lock() else {
            return 0;
        };
        if peers.len() >= MAX_PEERS && !peers.contains_key(&ip) {
            peers.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if peers.len() >= MAX_PEERS
                && let Some(oldest) = peers
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| *k)
            {
                peers.remove(&oldest);
            }
        }
        let entry = peers.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }

    /// Forgets `ip`'s failures after a success.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.remove(&ip);
        }
    }
}

/// A key id as logged: escaped, at most 64 characters.
fn loggable(key_id: &str) -> String {
    let mut s: String = key_id
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if key_id.chars().count() > 64 {
        s.push('…');
    }
    s
}

/// `proto.rpc.v1.AuthService`.
pub struct AuthService {
    pub store: Arc<Store>,
    pub tokens: Arc<Tokens>,
    /// Slows down repeated failures per peer.
    pub throttle: Arc<Throttle>,
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
        let peer = request.remote_addr().map(|a| a.ip());
        if let Some(ip) = peer {
            let wait = self.throttle.delay(ip, Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
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
            let failures = peer.map(|ip| self.throttle.failed(ip, Instant::now()));
            tracing::warn!(
                key_id = %loggable(&key_id),
                peer = ?peer,
                failures_in_a_row = ?failures,
                "local cloud: failed Authenticate (unknown API key id or wrong key)"
            );
            return Err(Status::permission_denied(
                "failed to authenticate: unknown API key id or wrong key",
            ));
        };
        if let Some(ip) = peer {
            self.throttle.succeeded(ip);
        }
        let access_token = self.tokens.issue(Caller { key_id, org_id });
        Ok(Response::new(rpc::AuthenticateResponse { access_token }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_from_one_peer_are_slowed_down() {
        let t = Throttle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for n in 1..=FREE_FAILURES {
            assert_eq!(t.delay(ip, t0), Duration::ZERO);
            assert_eq!(t.failed(ip, t0), n);
        }
        assert_eq!(t.delay(ip, t0), Duration::from_millis(100));
        t.failed(ip, t0);
        assert_eq!(t.delay(ip, t0), Duration::from_millis(200));
        for _ in 0..40 {
            t.failed(ip, t0);
        }
        assert_eq!(t.delay(ip, t0), MAX_DELAY);
        // Per peer: another address is not slowed down.
        assert_eq!(t.delay(other, t0), Duration::ZERO);
        // Forgotten after a quiet period, and after a success.
        assert_eq!(t.delay(ip, t0 + FORGET_AFTER), Duration::ZERO);
        assert_eq!(t.failed(ip, t0 + FORGET_AFTER), 1);
        t.succeeded(ip);
        assert_eq!(t.delay(ip, t0), Duration::ZERO);
    }

    #[test]
    fn key_ids_are_logged_escaped_and_short() {
        assert_eq!(loggable("abc"), "abc");
        assert_eq!(loggable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        let long = loggable(&"k".repeat(1000));
        assert_eq!(long.chars().count(), 65);
    }
}
