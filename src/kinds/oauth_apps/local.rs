//! The local cloud's half of OAuth apps: `CreateOAuthApp`, `ReadOAuthApp`, `UpdateOAuthApp`,
//! `DeleteOAuthApp` and `ListOAuthApps` over the `oauth_apps` table (see
//! `crate::localcloud::kind` for how a kind's RPCs are served).
//!
//! - **Who may**: every call names an organization (`org_id`): another organization's id is
//!   `PERMISSION_DENIED` (or `NOT_FOUND` when it does not exist), and only a key that owns the
//!   organization may list, read, create, update or delete its apps (`PERMISSION_DENIED`).
//!   An app of another organization, or an unknown client id, is `NOT_FOUND`.
//! - **A new app** gets a random client id (a UUID) and a random client secret (32 lowercase
//!   letters and digits), both returned by `CreateOAuthApp`; `ReadOAuthApp` returns the secret
//!   too (as Viam's cloud does); `ListOAuthApps` returns only client ids (oldest first).
//! - **Arguments**: `client_name` is a name (non-empty, at most 128 characters, no control
//!   characters); `oauth_config` is required, with known, specified values of
//!   `client_authentication`, `pkce` and `url_validation`, known grants and no empty URI.
//!   `UpdateOAuthApp` replaces the name and the whole config. Names need not be unique.
//! - **Storage**: the config is stored as its encoded `OAuthConfig`.

use crate::localcloud::kind::{
    Access, Connection, LocalKind, OptionalExtension, R, Rpc, Status, Transaction, key_org,
    new_uuid, now_us, params, q, random_alnum, require_name, require_uuid,
};
use crate::proto::viam::app::v1 as pb;
use prost::Message;

/// The local cloud's half of OAuth apps.
pub struct Local;

impl LocalKind for Local {
    fn tables(&self) -> &'static str {
        r#"
        CREATE TABLE IF NOT EXISTS oauth_apps (
            client_id TEXT PRIMARY KEY,
            org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
            client_name TEXT NOT NULL, client_secret TEXT NOT NULL,
            oauth_config BLOB NOT NULL, created_us INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS oauth_apps_org ON oauth_apps(org_id);
        "#
    }

    fn rpcs(&self) -> Vec<Rpc> {
        vec![
            Rpc::write("CreateOAuthApp", create),
            Rpc::read("ReadOAuthApp", read_app),
            Rpc::write("UpdateOAuthApp", update),
            Rpc::write("DeleteOAuthApp", delete),
            Rpc::read("ListOAuthApps", list),
        ]
    }
}

/// The caller's organization `org_id`, which it must own to manage OAuth apps.
fn owned_org(db: &Connection, who: &Access, org_id: &str, what: &str) -> R<String> {
    let org = key_org(db, who, org_id, "org_id")?;
    who.require_org_owner(what)?;
    Ok(org.id)
}

/// `oauth_config`, checked.
fn config(c: Option<pb::OAuthConfig>) -> R<pb::OAuthConfig> {
    let c = c.ok_or_else(|| Status::invalid_argument("oauth_config is required"))?;
    let known = |field: &str, v: i32, ok: bool| {
        if ok && v != 0 {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "oauth_config.{field} {v} is not a known value"
            )))
        }
    };
    known(
        "client_authentication",
        c.client_authentication,
        pb::ClientAuthentication::try_from(c.client_authentication).is_ok(),
    )?;
    known("pkce", c.pkce, pb::Pkce::try_from(c.pkce).is_ok())?;
    known(
        "url_validation",
        c.url_validation,
        pb::UrlValidation::try_from(c.url_validation).is_ok(),
    )?;
    for &g in &c.enabled_grants {
        known("enabled_grants", g, pb::EnabledGrant::try_from(g).is_ok())?;
    }
    let uris = c.origin_uris.iter().map(|u| ("origin_uris", u));
    let uris = uris.chain(c.redirect_uris.iter().map(|u| ("redirect_uris", u)));
    for (field, uri) in uris {
        crate::localcloud::kind::require(&format!("oauth_config.{field}[]"), uri)?;
    }
    Ok(c)
}

/// The app `client_id` of organization `org_id`: its name, secret and config.
fn app(db: &Connection, org_id: &str, client_id: &str) -> R<pb::ReadOAuthAppResponse> {
    require_uuid("client_id", client_id)?;
    let row: Option<(String, String, Vec<u8>)> = q(db
        .query_row(
            "SELECT client_name, client_secret, oauth_config FROM oauth_apps \
             WHERE client_id = ?1 AND org_id = ?2",
            params![client_id, org_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional())?;
    let (client_name, client_secret, config) =
        row.ok_or_else(|| Status::not_found(format!("OAuth app {client_id} not found")))?;
    let oauth_config = pb::OAuthConfig::decode(config.as_slice())
        .map_err(|e| Status::internal(format!("stored OAuth config: {e}")))?;
    Ok(pb::ReadOAuthAppResponse {
        client_name,
        client_secret,
        oauth_config: Some(oauth_config),
    })
}

fn create(
    tx: &Transaction,
    who: &Access,
    r: pb::CreateOAuthAppRequest,
) -> R<pb::CreateOAuthAppResponse> {
    let org = owned_org(tx, who, &r.org_id, "creating OAuth apps")?;
    let name = require_name("client_name", &r.client_name)?.trim();
    let config = config(r.oauth_config)?;
    let (client_id, client_secret) = (new_uuid(), random_alnum(32));
    q(tx.execute(
        "INSERT INTO oauth_apps (client_id, org_id, client_name, client_secret, oauth_config, \
         created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            client_id,
            org,
            name,
            client_secret,
            config.encode_to_vec(),
            now_us()
        ],
    ))?;
    Ok(pb::CreateOAuthAppResponse {
        client_id,
        client_secret,
    })
}

fn read_app(
    db: &Connection,
    who: &Access,
    r: pb::ReadOAuthAppRequest,
) -> R<pb::ReadOAuthAppResponse> {
    let org = owned_org(db, who, &r.org_id, "reading OAuth apps")?;
    app(db, &org, &r.client_id)
}

fn update(
    tx: &Transaction,
    who: &Access,
    r: pb::UpdateOAuthAppRequest,
) -> R<pb::UpdateOAuthAppResponse> {
    let org = owned_org(tx, who, &r.org_id, "updating OAuth apps")?;
    app(tx, &org, &r.client_id)?;
    let name = require_name("client_name", &r.client_name)?.trim();
    let config = config(r.oauth_config)?;
    q(tx.execute(
        "UPDATE oauth_apps SET client_name = ?1, oauth_config = ?2 WHERE client_id = ?3",
        params![name, config.encode_to_vec(), r.client_id],
    ))?;
    Ok(pb::UpdateOAuthAppResponse {})
}

fn delete(
    tx: &Transaction,
    who: &Access,
    r: pb::DeleteOAuthAppRequest,
) -> R<pb::DeleteOAuthAppResponse> {
    let org = owned_org(tx, who, &r.org_id, "deleting OAuth apps")?;
    app(tx, &org, &r.client_id)?;
    q(tx.execute(
        "DELETE FROM oauth_apps WHERE client_id = ?1",
        params![r.client_id],
    ))?;
    Ok(pb::DeleteOAuthAppResponse {})
}

fn list(
    db: &Connection,
    who: &Access,
    r: pb::ListOAuthAppsRequest,
) -> R<pb::ListOAuthAppsResponse> {
    let org = owned_org(db, who, &r.org_id, "listing OAuth apps")?;
    let mut stmt = q(db.prepare_cached(
        "SELECT client_id FROM oauth_apps WHERE org_id = ?1 ORDER BY created_us, client_id",
    ))?;
    let client_ids = q(stmt
        .query_map(params![org], |r| r.get(0))
        .and_then(Iterator::collect))?;
    Ok(pb::ListOAuthAppsResponse { client_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> pb::OAuthConfig {
        pb::OAuthConfig {
            client_authentication: pb::ClientAuthentication::Required as i32,
            pkce: pb::Pkce::Required as i32,
            url_validation: pb::UrlValidation::ExactMatch as i32,
            redirect_uris: vec!["https://a.example/cb".into()],
            enabled_grants: vec![pb::EnabledGrant::AuthorizationCode as i32],
            ..Default::default()
        }
    }

    #[test]
    fn a_config_needs_known_specified_values_and_no_empty_uri() {
        assert!(config(Some(valid())).is_ok());
        assert!(config(None).unwrap_err().message().contains("oauth_config"));
        let bad = [
            pb::OAuthConfig { pkce: 0, ..valid() },
            pb::OAuthConfig {
                url_validation: 9,
                ..valid()
            },
            pb::OAuthConfig {
                client_authentication: 0,
                ..valid()
            },
            pb::OAuthConfig {
                enabled_grants: vec![0],
                ..valid()
            },
            pb::OAuthConfig {
                origin_uris: vec![" ".into()],
                ..valid()
            },
        ];
        for c in bad {
            let e = config(Some(c.clone())).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{c:?}");
        }
    }
}
