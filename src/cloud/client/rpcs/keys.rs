//! API keys: list, create, rotate, rename, delete, and their roles.

use super::*;
use crate::model::Sensitive;

impl Client {
    pub(super) async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, CloudError> {
        let req = pb::ListKeysRequest {
            org_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListKeys", app.list_keys, req).await?;
        Ok(resp.api_keys.into_iter().map(convert::api_key).collect())
    }

    pub(super) async fn create_key(
        &self,
        org_id: &str,
        name: &str,
        grants: &[Grant],
    ) -> Result<KeySecret, CloudError> {
        let req = pb::CreateKeyRequest {
            authorizations: grants
                .iter()
                .map(|g| pb::Authorization {
                    identity_type: "api-key".to_string(),
                    ..convert::grant_to_authorization(g, org_id)
                })
                .collect(),
            name: name.to_string(),
        };
        let resp = rpc!(self, Write, "CreateKey", app.create_key, req).await?;
        Ok(KeySecret {
            id: resp.id,
            key: Sensitive::new(resp.key),
        })
    }

    pub(super) async fn rotate_key(&self, key_id: &str) -> Result<KeySecret, CloudError> {
        let req = pb::RotateKeyRequest {
            id: key_id.to_string(),
        };
        let resp = rpc!(self, Write, "RotateKey", app.rotate_key, req).await?;
        Ok(KeySecret {
            id: resp.id,
            key: Sensitive::new(resp.key),
        })
    }

    pub(super) async fn rename_key(&self, key_id: &str, name: &str) -> Result<(), CloudError> {
        let req = pb::RenameKeyRequest {
            id: key_id.to_string(),
            name: name.to_string(),
        };
        rpc!(self, Write, "RenameKey", app.rename_key, req).await?;
        Ok(())
    }

    pub(super) async fn delete_key(&self, key_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteKeyRequest {
            id: key_id.to_string(),
        };
        rpc!(self, Write, "DeleteKey", app.delete_key, req).await?;
        Ok(())
    }

    pub(super) async fn add_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let req = pb::AddRoleRequest {
            authorization: Some(convert::key_role_to_authorization(key_id, grant, org_id)),
        };
        rpc!(self, Write, "AddRole", app.add_role, req).await?;
        Ok(())
    }

    pub(super) async fn remove_key_role(
        &self,
        org_id: &str,
        key_id: &str,
        grant: &Grant,
    ) -> Result<(), CloudError> {
        let req = pb::RemoveRoleRequest {
            authorization: Some(convert::key_role_to_authorization(key_id, grant, org_id)),
        };
        rpc!(self, Write, "RemoveRole", app.remove_role, req).await?;
        Ok(())
    }
}
