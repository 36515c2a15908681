//! The AppService handlers for fragments: revisions, tags, history and usage.

use super::*;

pub(super) async fn list_fragments(
    svc: &AppService,
    req: Request<pb::ListFragmentsRequest>,
) -> Res<pb::ListFragmentsResponse> {
    read(svc, req, |db, who, r| {
        let org = store::key_org(db, who, &r.organization_id, "organization_id")?;
        Ok(pb::ListFragmentsResponse {
            fragments: store::list_fragments(db, &org.id, r.show_public, &r.fragment_visibility)?,
            // Usage is served per fragment by GetFragmentUsage.
            fragment_usages: Vec::new(),
        })
    })
    .await
}

pub(super) async fn get_fragment(
    svc: &AppService,
    req: Request<pb::GetFragmentRequest>,
) -> Res<pb::GetFragmentResponse> {
    read(svc, req, |db, who, r| {
        let f = store::fragment_visible(db, &who.org_id, &r.id)?;
        // A version (a tag or a revision number) selects that revision's name, config and
        // visibility; counts and ids stay the fragment's own.
        let shown = match r.version.as_deref() {
            None | Some("") => f,
            Some(v) => {
                let rev = store::resolve_version(db, &f, v)?;
                store::fragment_at(db, &f, rev)?
            }
        };
        let (fragment, usage) = store::fragment_pb_and_usage(db, &shown, &who.org_id)?;
        Ok(pb::GetFragmentResponse {
            fragment: Some(fragment),
            fragment_usage: Some(usage.total),
            revisions: store::fragment_revisions(db, &shown.id)?,
            tags: store::fragment_tags(db, &shown.id)?,
        })
    })
    .await
}

pub(super) async fn create_fragment(
    svc: &AppService,
    req: Request<pb::CreateFragmentRequest>,
) -> Res<pb::CreateFragmentResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_wide("changing fragments")?;
        let org = store::caller_org(tx, who, &r.organization_id, "organization_id")?;
        let name = store::require_name("name", &r.name)?.trim();
        let vis = visibility(r.visibility.unwrap_or_default())?;
        let config = config_from(r.config.as_ref(), None, "config")?
            .map_or_else(|| "{}".to_string(), |c| c.text);
        let id = store::insert_fragment(tx, &org.id, name, &config, vis)?;
        let row =
            store::fragment_row(tx, &id)?.ok_or_else(|| Status::internal("fragment vanished"))?;
        Ok(pb::CreateFragmentResponse {
            fragment: Some(store::fragment_pb(tx, &row)?),
        })
    })
    .await
}

pub(super) async fn update_fragment(
    svc: &AppService,
    req: Request<pb::UpdateFragmentRequest>,
) -> Res<pb::UpdateFragmentResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_wide("changing fragments")?;
        let f = store::fragment_owned(tx, &who.org_id, &r.id)?;
        let name = store::require_name("name", &r.name)?.trim();
        if let Some(sent) = &r.last_known_update
            && ts_us(sent) != f.last_updated_us
        {
            return Err(stale("fragment", &f.id, sent, f.last_updated_us));
        }
        let vis = match (r.visibility, r.public) {
            (Some(v), _) => visibility(v)?,
            (None, Some(true)) => pb::FragmentVisibility::Public as i32,
            (None, Some(false)) => pb::FragmentVisibility::Private as i32,
            (None, None) => f.visibility,
        };
        let config = config_from(
            r.config.as_ref(),
            r.fragment_config_json.as_deref(),
            "fragment_config_json",
        )?;
        // Every update makes a new revision, even one that changes only the name.
        let row = store::update_fragment(
            tx,
            &f,
            name,
            config.as_ref().map(|c| c.text.as_str()),
            vis,
            (pb::AuthenticationType::ApiKey, &who.key_id),
        )?;
        Ok(pb::UpdateFragmentResponse {
            fragment: Some(store::fragment_pb(tx, &row)?),
        })
    })
    .await
}

pub(super) async fn delete_fragment(
    svc: &AppService,
    req: Request<pb::DeleteFragmentRequest>,
) -> Res<pb::DeleteFragmentResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_wide("changing fragments")?;
        let f = store::fragment_owned(tx, &who.org_id, &r.id)?;
        // Viam's current docs: "Fragments can only be deleted if no machines are using them".
        let users = store::fragment_part_count(tx, &f.id)?;
        if users > 0 {
            return Err(Status::failed_precondition(format!(
                "fragment {} is used by {users} part(s); remove it from their configs first",
                f.id
            )));
        }
        store::delete_fragment(tx, &f.id)?;
        Ok(pb::DeleteFragmentResponse {})
    })
    .await
}

pub(super) async fn get_fragment_history(
    svc: &AppService,
    req: Request<pb::GetFragmentHistoryRequest>,
) -> Res<pb::GetFragmentHistoryResponse> {
    read(svc, req, |db, who, r| {
        let f = store::fragment_owned(db, &who.org_id, &r.id)?;
        let before = page_token(r.page_token.as_deref())?;
        let limit = match r.page_limit {
            Some(n) if n < 0 => {
                return Err(Status::invalid_argument("page_limit must not be negative"));
            }
            Some(0) | None => DEFAULT_FRAGMENT_HISTORY_PAGE,
            Some(n) => n,
        };
        let (history, next) = store::fragment_history(db, &f.id, before, limit)?;
        Ok(pb::GetFragmentHistoryResponse {
            history,
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        })
    })
    .await
}

pub(super) async fn get_fragment_usage(
    svc: &AppService,
    req: Request<pb::GetFragmentUsageRequest>,
) -> Res<pb::GetFragmentUsageResponse> {
    read(svc, req, |db, who, r| {
        let f = store::fragment_visible(db, &who.org_id, &r.fragment_id)?;
        Ok(pb::GetFragmentUsageResponse {
            version_usages: store::fragment_usage(db, &f.id, &who.org_id)?.by_version,
        })
    })
    .await
}

pub(super) async fn set_fragment_tag(
    svc: &AppService,
    req: Request<pb::SetFragmentTagRequest>,
) -> Res<pb::SetFragmentTagResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_wide("changing fragments")?;
        let f = store::fragment_owned(tx, &who.org_id, &r.fragment_id)?;
        let tag = check_tag(&r.tag)?;
        let revision = revision_number("revision", &r.revision)?;
        store::fragment_at(tx, &f, revision)?;
        store::set_fragment_tag(tx, &f.id, tag, revision)?;
        Ok(pb::SetFragmentTagResponse {
            tags: store::fragment_tags(tx, &f.id)?,
        })
    })
    .await
}

pub(super) async fn delete_fragment_tag(
    svc: &AppService,
    req: Request<pb::DeleteFragmentTagRequest>,
) -> Res<pb::DeleteFragmentTagResponse> {
    write(svc, req, |tx, who, r| {
        who.require_org_wide("changing fragments")?;
        let f = store::fragment_owned(tx, &who.org_id, &r.fragment_id)?;
        let tag = require("tag", &r.tag)?;
        if !store::delete_fragment_tag(tx, &f.id, tag)? {
            return Err(Status::not_found(format!(
                "fragment {} has no tag {tag:?}",
                f.id
            )));
        }
        Ok(pb::DeleteFragmentTagResponse {
            tags: store::fragment_tags(tx, &f.id)?,
        })
    })
    .await
}
