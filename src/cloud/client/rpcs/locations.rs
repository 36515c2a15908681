//! Locations and their secrets.

use super::*;

impl Client {
    pub(super) async fn list_locations(&self, org_id: &str) -> Result<Vec<Location>, CloudError> {
        let req = pb::ListLocationsRequest {
            organization_id: org_id.to_string(),
        };
        let resp = rpc!(self, Read, "ListLocations", app.list_locations, req).await?;
        Ok(resp.locations.into_iter().map(convert::location).collect())
    }

    pub(super) async fn get_location(&self, location_id: &str) -> Result<Location, CloudError> {
        let req = pb::GetLocationRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetLocation", app.get_location, req).await?;
        let location = required("GetLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    pub(super) async fn create_location(
        &self,
        org_id: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Location, CloudError> {
        let req = pb::CreateLocationRequest {
            organization_id: org_id.to_string(),
            name: name.to_string(),
            parent_location_id: parent_id.map(str::to_string),
        };
        let resp = rpc!(self, Write, "CreateLocation", app.create_location, req).await?;
        let location = required("CreateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    pub(super) async fn update_location(
        &self,
        location_id: &str,
        name: Option<&str>,
        parent: ParentChange,
    ) -> Result<Location, CloudError> {
        let parent_location_id = match parent {
            ParentChange::Keep => None,
            ParentChange::Root => Some(String::new()),
            ParentChange::To(id) => Some(id),
        };
        let req = pb::UpdateLocationRequest {
            location_id: location_id.to_string(),
            name: name.map(str::to_string),
            parent_location_id,
            region: None,
        };
        let resp = rpc!(self, Write, "UpdateLocation", app.update_location, req).await?;
        let location = required("UpdateLocation", "location", resp.location)?;
        Ok(convert::location(location))
    }

    pub(super) async fn delete_location(&self, location_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteLocationRequest {
            location_id: location_id.to_string(),
        };
        rpc!(self, Write, "DeleteLocation", app.delete_location, req).await?;
        Ok(())
    }

    pub(super) async fn location_secrets(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::LocationAuthRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(self, Read, "LocationAuth", app.location_auth, req).await?;
        Ok(convert::location_secrets(resp.auth))
    }

    pub(super) async fn create_location_secret(
        &self,
        location_id: &str,
    ) -> Result<Vec<LocationSecret>, CloudError> {
        let req = pb::CreateLocationSecretRequest {
            location_id: location_id.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "CreateLocationSecret",
            app.create_location_secret,
            req
        )
        .await?;
        Ok(convert::location_secrets(resp.auth))
    }

    pub(super) async fn delete_location_secret(
        &self,
        location_id: &str,
        secret_id: &str,
    ) -> Result<(), CloudError> {
        let req = pb::DeleteLocationSecretRequest {
            location_id: location_id.to_string(),
            secret_id: secret_id.to_string(),
        };
        rpc!(
            self,
            Write,
            "DeleteLocationSecret",
            app.delete_location_secret,
            req
        )
        .await?;
        Ok(())
    }
}
