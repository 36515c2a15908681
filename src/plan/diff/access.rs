//! Planning access and secrets: invites and the grants they carry, and location secret
//! rotations.

use super::*;

impl<'a> Planner<'a> {
    // -- Invites ------------------------------------------------------------------------------

    pub(super) fn grant_ref(&self, target: &GrantTarget) -> Option<(GrantRef, Option<String>)> {
        let dep = |m: &Matched| match m {
            Matched::Created(c) => Some(c.clone()),
            Matched::Existing(_) => None,
        };
        match target {
            GrantTarget::Organization => {
                Some((GrantRef::Organization(self.o.organization.id.clone()), None))
            }
            GrantTarget::Location(p) => self
                .locations
                .get(p)
                .map(|m| (GrantRef::Location(m.id_ref()), dep(m))),
            GrantTarget::Machine(p) => self
                .machines
                .get(p)
                .map(|m| (GrantRef::Machine(m.id_ref()), dep(m))),
        }
    }

    /// The grants to hold, with the changes creating their targets (to depend on).
    pub(super) fn wanted_grants(
        &self,
        grants: &[crate::model::DesiredGrant],
    ) -> (BTreeSet<PlannedGrant>, Vec<String>) {
        let mut want = BTreeSet::new();
        let mut deps = vec![];
        for g in grants {
            if let Some((target, dep)) = self.grant_ref(&g.target) {
                want.insert(PlannedGrant {
                    role: g.role,
                    target,
                });
                deps.extend(dep);
            }
        }
        (want, deps)
    }

    pub(super) fn invites(&mut self) {
        let (d, o) = (self.d, self.o);
        let (Some(desired), Some(observed)) = (&d.invites, &o.invites) else {
            return;
        };
        let mut declared = HashSet::new();
        for di in desired {
            declared.insert(di.email.to_ascii_lowercase());
            let (want, deps) = self.wanted_grants(&di.grants);
            // Invites have no `id:` or `moved_from`: the email is the identity.
            let Ok(existing) = self.find(
                Kind::Invite,
                &di.email,
                &Identity::default(),
                |_, _| None,
                |_, _| vec![],
                |_, email| {
                    observed
                        .iter()
                        .filter(|i| i.email.eq_ignore_ascii_case(email))
                        .map(|i| (i.email.clone(), i))
                        .collect()
                },
            ) else {
                continue;
            };
            let Some((_, inv)) = existing else {
                let mut c = change(
                    Action::Create,
                    Kind::Invite,
                    &di.email,
                    "declared, not in the cloud",
                    Op::CreateInvite {
                        email: di.email.clone(),
                        grants: want.iter().cloned().collect(),
                        send_email: di.send_email,
                    },
                );
                c.details.extend(
                    want.iter()
                        .map(|g| detail("grant", None, Some(&self.grant_label(g)))),
                );
                c.depends_on = deps;
                c.precondition = Some(Precondition::Absent);
                self.push(c);
                continue;
            };
            let have: BTreeSet<PlannedGrant> = inv.grants.iter().map(planned_grant).collect();
            let add: Vec<PlannedGrant> = want.difference(&have).cloned().collect();
            let remove: Vec<PlannedGrant> = have.difference(&want).cloned().collect();
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            let mut c = change(
                Action::Update,
                Kind::Invite,
                &di.email,
                "grants differ",
                Op::UpdateInvite {
                    email: inv.email.clone(),
                    add: add.clone(),
                    remove: remove.clone(),
                },
            );
            c.details.extend(
                add.iter()
                    .map(|g| detail("grant", None, Some(&self.grant_label(g)))),
            );
            c.details.extend(
                remove
                    .iter()
                    .map(|g| detail("grant", Some(&self.grant_label(g)), None)),
            );
            c.depends_on = deps;
            c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                &inv.email,
                &inv.grants,
            )));
            self.push(c);
        }
        for inv in observed {
            if declared.contains(&inv.email.to_ascii_lowercase()) {
                continue;
            }
            if self.prune {
                let mut c = change(
                    Action::Delete,
                    Kind::Invite,
                    &inv.email,
                    "not in the manifest; prune is on",
                    Op::DeleteInvite {
                        email: inv.email.clone(),
                    },
                );
                c.details.extend(
                    inv.grants
                        .iter()
                        .map(|g| detail("grant", Some(&self.grant_label(&planned_grant(g))), None)),
                );
                c.precondition = Some(Precondition::Fingerprint(grants_fingerprint(
                    &inv.email,
                    &inv.grants,
                )));
                self.push(c);
            } else {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::Invite,
                    path: inv.email.clone(),
                    id: inv.email.clone(),
                });
            }
        }
    }

    /// One `role` detail per grant added (after) and removed (before).
    pub(super) fn role_details(
        &self,
        add: &[PlannedGrant],
        remove: &[PlannedGrant],
    ) -> Vec<Detail> {
        add.iter()
            .map(|g| detail("role", None, Some(&self.grant_label(g))))
            .chain(
                remove
                    .iter()
                    .map(|g| detail("role", Some(&self.grant_label(g)), None)),
            )
            .collect()
    }

    /// `owner on organization, operator on location HQ`, for people.
    pub(super) fn grant_labels(&self, gs: &[PlannedGrant]) -> String {
        gs.iter()
            .map(|g| self.grant_label(g))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `operator on location HQ/Assembly`, for people.
    pub(super) fn grant_label(&self, g: &PlannedGrant) -> String {
        let target = match &g.target {
            GrantRef::Organization(_) => "organization".to_string(),
            GrantRef::Location(r) => format!("location {}", self.ref_label(r, true)),
            GrantRef::Machine(r) => format!("machine {}", self.ref_label(r, false)),
        };
        format!("{} on {target}", g.role.as_str())
    }

    pub(super) fn ref_label(&self, r: &IdRef, location: bool) -> String {
        match r {
            IdRef::Existing(id) => {
                let declared = self.claimed.get(id).cloned();
                let observed = if location {
                    self.loc_paths.get(id).cloned()
                } else {
                    self.observed_path(id)
                };
                declared.or(observed).unwrap_or_else(|| id.clone())
            }
            IdRef::CreatedBy(c) => self
                .changes
                .iter()
                .find(|x| &x.id == c)
                .map(|x| x.path.clone())
                .unwrap_or_else(|| c.clone()),
        }
    }

    // -- Secrets ------------------------------------------------------------------------------

    pub(super) fn secrets(&mut self) {
        for dl in self.d.all_locations() {
            let (Some(max_age), Some(Matched::Existing(id))) = (
                dl.rotate_secrets_after,
                self.locations.get(&dl.path).cloned(),
            ) else {
                continue;
            };
            let secrets = match self.o.secrets.get(&id) {
                Some(s) => s.clone(),
                None => self
                    .observed_location(&id)
                    .map(|l| l.secrets.clone())
                    .unwrap_or_default(),
            };
            let mut old: Vec<_> = secrets.iter().collect();
            old.sort_by_key(|s| (s.created_on, s.id.clone()));
            let newest = old.last().and_then(|s| s.created_on);
            let age = newest.map(|t| t.seconds_until(self.o.observed_at));
            let due = match age {
                None => true,
                Some(a) => a > max_age.as_secs() as i64,
            };
            if !due {
                continue;
            }
            let ids: Vec<String> = old.iter().map(|s| s.id.clone()).collect();
            let mut c = change(
                Action::Update,
                Kind::LocationSecret,
                &dl.path,
                match age {
                    Some(a) => format!(
                        "newest secret is {} old (rotate after {})",
                        human_age(a),
                        human_age(max_age.as_secs() as i64)
                    ),
                    None => "the location has no dated secret".to_string(),
                },
                Op::RotateSecret {
                    location_id: id.clone(),
                    old_secret_ids: ids.clone(),
                },
            );
            c.resource_id = Some(id.clone());
            c.details.push(detail(
                "secrets",
                Some(&format!("{} old", ids.len())),
                Some("1 new"),
            ));
            c.precondition = Some(Precondition::Fingerprint(secrets_fingerprint(&id, &ids)));
            self.push(c);
        }
    }
}
