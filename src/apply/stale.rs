//! Is a saved plan still true? Each change recorded what it assumed about the resource it
//! changes (a `last_updated`, a fingerprint of the attributes it depends on, or that nothing
//! exists yet at its path). Before applying a saved plan those assumptions are read again;
//! any that no longer hold make the plan stale, and apply refuses it, naming each resource.

use crate::cloud::observe::{DEFAULT_RETRY_BUDGET, RetryBudget, bounded};
use crate::cloud::{CloudApi, CloudError};
use crate::plan::{
    Change, IdRef, Kind, Op, Plan, Precondition, default_fragments_fingerprint, grants_fingerprint,
    key_fingerprint, location_fingerprint, machine_fingerprint, metadata_fingerprint,
    org_settings_fingerprint, secrets_fingerprint, tag_fingerprint,
};
use std::sync::Arc;

/// A precondition that no longer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub change_id: String,
    pub kind: Kind,
    pub path: String,
    /// What changed, for people: "its config was changed at …", "it was deleted", …
    pub what: String,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind.as_str(), self.path, self.what)
    }
}

/// Reads the cloud again and returns every change whose precondition no longer holds.
///
/// The reads run 32 at a time, each starting as soon as one finishes (a pool, like an
/// observation's), and the organization's location and fragment lists are read once for
/// the whole check however many creates look in them.
pub async fn check_preconditions(
    api: Arc<dyn CloudApi>,
    plan: &Plan,
) -> Result<Vec<Stale>, CloudError> {
    // Like an observation, the check starts a read again that exhausted the client's retries
    // on a transient error, from a budget shared by the whole check.
    let budget = &RetryBudget::new(DEFAULT_RETRY_BUDGET);
    let lists = &OrgLists::default();
    let (api, org) = (api.as_ref(), plan.organization_id.as_str());
    let results = bounded(&plan.changes, 32, |c| async move {
        budget
            .read(|| check(api, org, c, lists))
            .await
            .map(|w| w.map(|what| (c, what)))
    })
    .await?;
    let mut stale: Vec<Stale> = results
        .into_iter()
        .flatten()
        .map(|(c, what)| Stale {
            change_id: c.id.clone(),
            kind: c.kind,
            path: c.path.clone(),
            what,
        })
        .collect();
    stale.sort_by_key(|s| {
        s.change_id
            .trim_start_matches('c')
            .parse::<usize>()
            .unwrap_or(0)
    });
    Ok(stale)
}

/// The organization's lists, read at most once per check (a failed read is not kept: the
/// next change that needs it reads it again).
#[derive(Default)]
struct OrgLists {
    locations: tokio::sync::OnceCell<Vec<crate::model::Location>>,
    fragments: tokio::sync::OnceCell<Vec<crate::model::Fragment>>,
}

impl OrgLists {
    async fn locations(
        &self,
        api: &dyn CloudApi,
        org: &str,
    ) -> Result<&[crate::model::Location], CloudError> {
        let list = self
            .locations
            .get_or_try_init(|| api.list_locations(org))
            .await?;
        Ok(list)
    }

    async fn fragments(
        &self,
        api: &dyn CloudApi,
        org: &str,
    ) -> Result<&[crate::model::Fragment], CloudError> {
        let list = self
            .fragments
            .get_or_try_init(|| api.list_fragments(org))
            .await?;
        Ok(list)
    }
}

fn gone(e: &CloudError) -> bool {
    e.is_not_found()
}

/// `Some(what changed)` when `c`'s precondition no longer holds.
async fn check(
    api: &dyn CloudApi,
    org: &str,
    c: &Change,
    lists: &OrgLists,
) -> Result<Option<String>, CloudError> {
    if let Some(kind) = crate::kinds::of(c.kind) {
        return kind.stale(api, org, c).await;
    }
    let Some(pre) = &c.precondition else {
        return Ok(None);
    };
    let id = c.resource_id.clone().unwrap_or_default();
    match pre {
        Precondition::LastUpdated(t) => {
            let now = match c.kind {
                Kind::Fragment => api.get_fragment(&id).await.map(|f| f.last_updated),
                _ => api.get_part(&id).await.map(|p| p.last_updated),
            };
            match now {
                Err(e) if gone(&e) => Ok(Some("it was deleted since the plan was made".into())),
                Err(e) => Err(e),
                Ok(now) if now == Some(*t) => Ok(None),
                Ok(now) => Ok(Some(format!(
                    "it was changed in the cloud at {} (the plan saw {t})",
                    now.map(|n| n.to_string())
                        .unwrap_or_else(|| "an unknown time".into())
                ))),
            }
        }
        Precondition::Fingerprint(fp) => {
            let now = match c.kind {
                Kind::Location => api
                    .get_location(&id)
                    .await
                    .map(|l| location_fingerprint(&l)),
                Kind::Machine => api.get_machine(&id).await.map(|m| machine_fingerprint(&m)),
                Kind::LocationSecret => api.location_secrets(&id).await.map(|s| {
                    secrets_fingerprint(&id, &s.iter().map(|x| x.id.clone()).collect::<Vec<_>>())
                }),
                Kind::Invite => {
                    let (_, invites) = api.list_members(org).await?;
                    match invites
                        .iter()
                        .find(|i| i.email.eq_ignore_ascii_case(&c.path))
                    {
                        Some(i) => Ok(grants_fingerprint(&i.email, &i.grants)),
                        None => {
                            return Ok(Some(
                                "the invite was deleted since the plan was made".into(),
                            ));
                        }
                    }
                }
                Kind::ApiKey => match api.list_keys(org).await?.iter().find(|k| k.id == id) {
                    Some(k) => Ok(key_fingerprint(k)),
                    None => {
                        return Ok(Some("the key was deleted since the plan was made".into()));
                    }
                },
                Kind::FragmentTag => {
                    let tag = match &c.op {
                        Op::SetFragmentTag { tag, .. } | Op::DeleteFragmentTag { tag, .. } => tag,
                        _ => return Ok(None),
                    };
                    if id.is_empty() {
                        return Ok(None); // the fragment is created by this plan
                    }
                    api.get_fragment_versions(&id, None).await.map(|v| {
                        let now = v.tags.iter().find(|t| &t.tag == tag);
                        tag_fingerprint(&id, tag, now.map(|t| t.revision.as_str()))
                    })
                }
                Kind::Organization => api.get_organization(org).await.map(|o| match &c.op {
                    Op::UpdateOrganization { .. } => org_settings_fingerprint(&o),
                    _ => default_fragments_fingerprint(&o),
                }),
                Kind::Metadata => {
                    let Op::SetMetadata { target, .. } = &c.op else {
                        return Ok(None);
                    };
                    let Some(target) = existing_metadata_target(target) else {
                        return Ok(None); // its owner is created by this plan
                    };
                    api.get_metadata(&target)
                        .await
                        .map(|d| metadata_fingerprint(&target.key(), Some(&d)))
                }
                // Registered kinds are checked by their module, above.
                Kind::Fragment | Kind::Part | Kind::Registered(_) => return Ok(None),
            };
            match now {
                Err(e) if gone(&e) => Ok(Some("it was deleted since the plan was made".into())),
                Err(e) => Err(e),
                Ok(now) if &now == fp => Ok(None),
                Ok(_) => Ok(Some(match c.kind {
                    Kind::LocationSecret => "its secrets changed since the plan was made".into(),
                    Kind::Invite => "its grants changed since the plan was made".into(),
                    Kind::ApiKey => {
                        "it was renamed or its roles changed since the plan was made".into()
                    }
                    Kind::FragmentTag => "the tag was moved since the plan was made".into(),
                    Kind::Organization => match &c.op {
                        Op::UpdateOrganization { .. } => {
                            "its settings changed since the plan was made".into()
                        }
                        _ => "its default fragments changed since the plan was made".into(),
                    },
                    Kind::Metadata => "its metadata changed since the plan was made".into(),
                    _ => "it was renamed or moved since the plan was made".into(),
                })),
            }
        }
        Precondition::Absent => absent(api, org, c, lists).await,
    }
}

/// The cloud owner of a metadata change, when it exists before the plan runs.
pub(crate) fn existing_metadata_target(
    target: &crate::plan::MetadataRef,
) -> Option<crate::model::MetadataTarget> {
    use crate::model::MetadataTarget as T;
    use crate::plan::MetadataRef as R;
    Some(match target {
        R::Organization(id) => T::Organization(id.clone()),
        R::Location(IdRef::Existing(id)) => T::Location(id.clone()),
        R::Machine(IdRef::Existing(id)) => T::Machine(id.clone()),
        R::Part(crate::plan::PartRef::Existing(id)) => T::Part(id.clone()),
        _ => return None,
    })
}

/// For creates: does something now exist where the plan will create?
async fn absent(
    api: &dyn CloudApi,
    org: &str,
    c: &Change,
    lists: &OrgLists,
) -> Result<Option<String>, CloudError> {
    let exists = |what: &str| {
        Ok(Some(format!(
            "a {what} with this name now exists; plan again"
        )))
    };
    match &c.op {
        Op::CreateLocation { name, parent } => {
            let parent = match parent {
                None => None,
                Some(IdRef::Existing(p)) => Some(p.as_str()),
                Some(IdRef::CreatedBy(_)) => return Ok(None),
            };
            let found = lists
                .locations(api, org)
                .await?
                .iter()
                .any(|l| &l.name == name && l.parent_id.as_deref() == parent);
            if found { exists("location") } else { Ok(None) }
        }
        Op::CreateMachine {
            name,
            location: IdRef::Existing(l),
        } => {
            if api.list_machines(l).await?.iter().any(|m| &m.name == name) {
                exists("machine")
            } else {
                Ok(None)
            }
        }
        Op::CreatePart {
            machine: IdRef::Existing(m),
            name,
            ..
        } => {
            if api.get_parts(m).await?.iter().any(|p| &p.name == name) {
                exists("part")
            } else {
                Ok(None)
            }
        }
        Op::CreateFragment { name, .. } => {
            if lists
                .fragments(api, org)
                .await?
                .iter()
                .any(|f| &f.name == name)
            {
                exists("fragment")
            } else {
                Ok(None)
            }
        }
        Op::CreateInvite { email, .. } => {
            let (_, invites) = api.list_members(org).await?;
            if invites.iter().any(|i| i.email.eq_ignore_ascii_case(email)) {
                exists("invite")
            } else {
                Ok(None)
            }
        }
        Op::CreateKey { name, .. } => {
            if api.list_keys(org).await?.iter().any(|k| &k.name == name) {
                Ok(Some(
                    "an API key with this name now exists; plan again".into(),
                ))
            } else {
                Ok(None)
            }
        }
        _ => Ok(None),
    }
}
