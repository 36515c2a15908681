//! Fragments: their configs, versions, tags, history and usage.

use super::*;

impl Client {
    pub(super) async fn list_fragments(&self, org_id: &str) -> Result<Vec<Fragment>, CloudError> {
        // Every visibility, explicitly: `show_public` alone means different things to
        // different clouds. Other organizations' public fragments are dropped.
        let req = pb::ListFragmentsRequest {
            organization_id: org_id.to_string(),
            show_public: false,
            fragment_visibility: [
                Visibility::Private,
                Visibility::Public,
                Visibility::PublicUnlisted,
            ]
            .into_iter()
            .map(convert::visibility_to_proto)
            .collect(),
        };
        let resp = rpc!(self, Read, "ListFragments", app.list_fragments, req).await?;
        Ok(resp
            .fragments
            .into_iter()
            .map(convert::fragment)
            .filter(|f| f.organization_id == org_id)
            .collect())
    }

    pub(super) async fn get_fragment_versions(
        &self,
        fragment_id: &str,
        version: Option<&str>,
    ) -> Result<FragmentVersions, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: version.map(str::to_string),
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(FragmentVersions {
            fragment: convert::fragment(required("GetFragment", "fragment", resp.fragment)?),
            revisions: resp
                .revisions
                .into_iter()
                .map(convert::fragment_revision)
                .collect(),
            tags: resp.tags.into_iter().map(convert::fragment_tag).collect(),
        })
    }

    pub(super) async fn fragment_history(
        &self,
        fragment_id: &str,
        limit: Option<i64>,
    ) -> Result<Vec<FragmentHistoryEntry>, CloudError> {
        let mut entries = Vec::new();
        let mut page_token = None;
        loop {
            let wanted = limit.map(|l| l - entries.len() as i64);
            if wanted.is_some_and(|w| w <= 0) {
                break;
            }
            let req = pb::GetFragmentHistoryRequest {
                id: fragment_id.to_string(),
                page_token: page_token.take(),
                page_limit: Some(
                    wanted.map_or(FRAGMENT_HISTORY_PAGE, |w| w.min(FRAGMENT_HISTORY_PAGE)),
                ),
            };
            let resp = rpc!(
                self,
                Read,
                "GetFragmentHistory",
                app.get_fragment_history,
                req
            )
            .await?;
            let got = resp.history.len();
            entries.extend(
                resp.history
                    .into_iter()
                    .map(convert::fragment_history_entry),
            );
            if resp.next_page_token.is_empty() || got == 0 {
                break;
            }
            page_token = Some(resp.next_page_token);
        }
        if let Some(l) = limit {
            entries.truncate(usize::try_from(l).unwrap_or(0));
        }
        Ok(entries)
    }

    pub(super) async fn set_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
        revision: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::SetFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
            revision: revision.to_string(),
        };
        let resp = rpc!(self, Write, "SetFragmentTag", app.set_fragment_tag, req).await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    pub(super) async fn delete_fragment_tag(
        &self,
        fragment_id: &str,
        tag: &str,
    ) -> Result<Vec<FragmentTag>, CloudError> {
        let req = pb::DeleteFragmentTagRequest {
            fragment_id: fragment_id.to_string(),
            tag: tag.to_string(),
        };
        let resp = rpc!(
            self,
            Write,
            "DeleteFragmentTag",
            app.delete_fragment_tag,
            req
        )
        .await?;
        Ok(resp.tags.into_iter().map(convert::fragment_tag).collect())
    }

    pub(super) async fn fragment_usage(
        &self,
        fragment_id: &str,
    ) -> Result<Vec<FragmentUsage>, CloudError> {
        let req = pb::GetFragmentUsageRequest {
            fragment_id: fragment_id.to_string(),
        };
        let resp = rpc!(self, Read, "GetFragmentUsage", app.get_fragment_usage, req).await?;
        Ok(resp
            .version_usages
            .into_iter()
            .map(convert::fragment_usage)
            .collect())
    }

    pub(super) async fn get_fragment(&self, fragment_id: &str) -> Result<Fragment, CloudError> {
        let req = pb::GetFragmentRequest {
            id: fragment_id.to_string(),
            current_organization_id: String::new(),
            version: None,
        };
        let resp = rpc!(self, Read, "GetFragment", app.get_fragment, req).await?;
        Ok(convert::fragment(required(
            "GetFragment",
            "fragment",
            resp.fragment,
        )?))
    }

    pub(super) async fn create_fragment(
        &self,
        org_id: &str,
        name: &str,
        config: &serde_json::Value,
        visibility: Visibility,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "CreateFragment";
        let text = config_text(RPC, config)?;
        let config_struct = config_struct(RPC, config)?;
        let exact = struct_is_exact(config, &config_struct);
        let req = pb::CreateFragmentRequest {
            name: name.to_string(),
            config: Some(config_struct),
            organization_id: org_id.to_string(),
            visibility: Some(convert::visibility_to_proto(visibility)),
        };
        let resp = rpc!(self, Write, "CreateFragment", app.create_fragment, req).await?;
        let created = convert::fragment(required(RPC, "fragment", resp.fragment)?);
        if exact {
            return Ok(created);
        }
        // `CreateFragment` has no JSON field, and the struct lost key order or number forms:
        // write the JSON text at once, guarded so that nothing written in between is lost.
        let req = pb::UpdateFragmentRequest {
            id: created.id.clone(),
            name: created.name.clone(),
            config: None,
            public: None,
            visibility: None,
            last_known_update: created.last_updated.map(convert::timestamp_to_proto),
            fragment_config_json: Some(text),
        };
        match rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await {
            Ok(resp) => Ok(convert::fragment(required(
                "UpdateFragment",
                "fragment",
                resp.fragment,
            )?)),
            Err(e) => {
                // The fragment exists with the same config in struct form; only the form as
                // written is missing. Report the fragment rather than a failed create.
                tracing::warn!(fragment_id = %created.id, error = %e, "could not store the fragment config as JSON text");
                Ok(created)
            }
        }
    }

    pub(super) async fn update_fragment(
        &self,
        fragment_id: &str,
        name: &str,
        config: Option<&serde_json::Value>,
        visibility: Option<Visibility>,
        last_known_update: Option<Timestamp>,
    ) -> Result<Fragment, CloudError> {
        const RPC: &str = "UpdateFragment";
        let req = pb::UpdateFragmentRequest {
            id: fragment_id.to_string(),
            name: name.to_string(),
            config: config.map(|c| config_struct(RPC, c)).transpose()?,
            public: None,
            visibility: visibility.map(convert::visibility_to_proto),
            last_known_update: last_known_update.map(convert::timestamp_to_proto),
            fragment_config_json: config.map(|c| config_text(RPC, c)).transpose()?,
        };
        let resp = rpc!(self, Write, "UpdateFragment", app.update_fragment, req).await?;
        Ok(convert::fragment(required(RPC, "fragment", resp.fragment)?))
    }

    pub(super) async fn delete_fragment(&self, fragment_id: &str) -> Result<(), CloudError> {
        let req = pb::DeleteFragmentRequest {
            id: fragment_id.to_string(),
        };
        rpc!(self, Write, "DeleteFragment", app.delete_fragment, req).await?;
        Ok(())
    }
}
