//! The AppService handlers for API keys: create, list, rename, rotate, delete.
//!
//! Only a key that owns the organization manages keys (`PERMISSION_DENIED` otherwise), and
//! only keys of its own organization (`NOT_FOUND` for others). A new key's authorizations
//! must be roles on the caller's organization or on its locations or machines; the secret
//! is returned once, by `CreateKey` and `RotateKey`, and never listed.

use super::*;

pub(super) async fn create_key(
    svc: &AppService,
    req: Request<pb::CreateKeyRequest>,
) -> Res<pb::CreateKeyResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("creating API keys")?;
        let name = store::require_name("name", &r.name)?.trim();
        if r.authorizations.is_empty() {
            return Err(Status::invalid_argument(
                "authorizations: a key needs at least one",
            ));
        }
        let mut grants = Vec::with_capacity(r.authorizations.len());
        for a in &r.authorizations {
            if !a.identity_id.is_empty() {
                return Err(Status::invalid_argument(
                    "identity_id must be empty when creating a key",
                ));
            }
            grants.push(store::validate_auth(tx, &who.org_id, a)?);
        }
        let (id, key) = store::insert_key(tx, &who.org_id, name, &grants)?;
        Ok(pb::CreateKeyResponse { key, id })
    })
    .await
}

pub(super) async fn list_keys(
    svc: &AppService,
    req: Request<pb::ListKeysRequest>,
) -> Res<pb::ListKeysResponse> {
    read(svc, req, |db, who, r| {
        let org = store::caller_org(db, who, &r.org_id, "org_id")?;
        who.require_org_owner("listing API keys")?;
        Ok(pb::ListKeysResponse {
            api_keys: store::list_keys(db, &org.id)?,
        })
    })
    .await
}

pub(super) async fn rename_key(
    svc: &AppService,
    req: Request<pb::RenameKeyRequest>,
) -> Res<pb::RenameKeyResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("renaming API keys")?;
        let key = store::key_in(tx, &who.org_id, &r.id)?;
        let name = store::require_name("name", &r.name)?.trim();
        store::rename_key(tx, &key.id, name)?;
        Ok(pb::RenameKeyResponse {
            id: key.id,
            name: name.to_string(),
        })
    })
    .await
}

pub(super) async fn rotate_key(
    svc: &AppService,
    req: Request<pb::RotateKeyRequest>,
) -> Res<pb::RotateKeyResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("rotating API keys")?;
        let key = store::key_in(tx, &who.org_id, &r.id)?;
        let secret = store::rotate_key(tx, &key.id)?;
        Ok(pb::RotateKeyResponse {
            id: key.id,
            key: secret,
        })
    })
    .await
}

pub(super) async fn delete_key(
    svc: &AppService,
    req: Request<pb::DeleteKeyRequest>,
) -> Res<pb::DeleteKeyResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_owner("deleting API keys")?;
        let key = store::key_in(tx, &who.org_id, &r.id)?;
        store::delete_key(tx, &key.org_id, &key.id)?;
        Ok(pb::DeleteKeyResponse {})
    })
    .await
}
