//! Authentication: the API key ([`Credentials`]) and the token flow.
//!
//! On first use, `proto.rpc.v1.AuthService/Authenticate` exchanges the API key for a bearer
//! token (sent without an `authorization` header); concurrent first calls authenticate once
//! (the token slot's lock is held across the exchange). `Client::call` sends the token as
//! `authorization: Bearer <token>` and, on `UNAUTHENTICATED`, forgets it and repeats once. The
//! key and the token are never logged or put into errors.

use super::Client;
use crate::cloud::{CloudError, Code};
use crate::model::Sensitive;
use crate::proto::rpc::v1 as auth;
use crate::proto::rpc::v1::auth_service_client::AuthServiceClient;
use tonic::metadata::AsciiMetadataValue;

/// RPC name used for the token exchange in errors and counts.
pub(super) const AUTHENTICATE: &str = "Authenticate";

/// An API key: its id (not secret) and the key itself (secret; `Debug` prints `(sensitive)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    pub key: Sensitive,
}

impl Credentials {
    /// Credentials from a key id and key.
    pub fn new(key_id: impl Into<String>, key: impl Into<String>) -> Self {
        Credentials {
            key_id: key_id.into(),
            key: Sensitive::new(key),
        }
    }

    /// Reads `VIAM_API_KEY_ID` and `VIAM_API_KEY`; `None` unless both are set and non-empty.
    pub fn from_env() -> Option<Credentials> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(super) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Some(Credentials::new(
            get("VIAM_API_KEY_ID")?,
            get("VIAM_API_KEY")?,
        ))
    }
}

impl Client {
    /// The cached bearer header, authenticating first if there is none.
    pub(super) async fn token(&self) -> Result<AsciiMetadataValue, CloudError> {
        let mut slot = self.inner.token.lock().await;
        if let Some(token) = slot.as_ref() {
            return Ok(token.clone());
        }
        let token = self.authenticate().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops `stale` from the cache unless another task already replaced it.
    pub(super) async fn forget_token(&self, stale: &AsciiMetadataValue) {
        let mut slot = self.inner.token.lock().await;
        if slot.as_ref() == Some(stale) {
            *slot = None;
        }
    }

    /// Exchanges the API key for a bearer token; transient failures are retried.
    pub(super) async fn authenticate(&self) -> Result<AsciiMetadataValue, CloudError> {
        let creds = &self.inner.credentials;
        let req = auth::AuthenticateRequest {
            entity: creds.key_id.clone(),
            credentials: Some(auth::Credentials {
                r#type: "api-key".to_string(),
                payload: creds.key.expose().to_string(),
            }),
        };
        let mut attempt = 1;
        loop {
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(self.inner.call_timeout);
            let mut client = AuthServiceClient::new(self.inner.channel.clone());
            match self
                .attempt(AUTHENTICATE, client.authenticate(request))
                .await
            {
                Ok(response) => return bearer(&response.into_inner().access_token),
                Err(err) if self.may_retry(&err, attempt) => {
                    self.backoff(AUTHENTICATE, &err, attempt).await;
                    attempt += 1;
                }
                Err(err) => return Err(self.authentication_failed(err)),
            }
        }
    }

    /// The error for a failed `Authenticate`: names the key id, never the key.
    pub(super) fn authentication_failed(&self, err: CloudError) -> CloudError {
        let creds = &self.inner.credentials;
        let mut detail = err.message;
        if !creds.key.expose().is_empty() {
            detail = detail.replace(creds.key.expose(), "(sensitive)");
        }
        CloudError::new(
            AUTHENTICATE,
            err.code,
            format!(
                "authentication failed for API key id {}: {detail}",
                creds.key_id
            ),
        )
    }
}

/// The `Bearer <token>` header value, marked sensitive so the HTTP stack never logs it.
pub(super) fn bearer(token: &str) -> Result<AsciiMetadataValue, CloudError> {
    if token.is_empty() {
        return Err(CloudError::new(
            AUTHENTICATE,
            Code::Other,
            "authentication returned an empty access token",
        ));
    }
    let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
        CloudError::new(
            AUTHENTICATE,
            Code::Other,
            "authentication returned an access token that is not valid header text",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}
