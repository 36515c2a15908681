//! Planning API keys (`access: keys:`), matched by name:
//! - a declared key the cloud does not have is created (`CreateKey`, with its roles; apply
//!   hands the new id and secret to the caller, never to the plan);
//! - a declared key whose roles differ has them made to match in one change
//!   (`UpdateKeyRoles`: add, then remove), keeping its id and secret;
//! - a declared key found only under its `moved_from` name is renamed (`RenameKey`, a move),
//!   keeping its id and secret; the old name then no longer counts as undeclared;
//! - a key not declared is kept (listed as unmanaged) unless `prune`, which deletes it.
//!
//! Guard rails, as plan errors: two cloud keys with a declared name are ambiguous (rename
//! one); a plan never deletes a key or takes a role from it when it is declared with
//! `protect: true`, or when it is the key fleetform itself is authenticated with (the error
//! names it).

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn keys(&mut self) {
        let (d, o) = (self.d, self.o);
        let (Some(desired), Some(keys)) = (&d.keys, &o.api_keys) else {
            return;
        };
        let own = o.own_key_id.as_deref();
        let mut declared: HashSet<&str> = HashSet::new();
        for dk in desired {
            declared.insert(&dk.name);
            let (want, mut deps) = self.wanted_grants(&dk.grants);
            let named = |name: &str| -> Vec<&crate::model::ApiKey> {
                keys.iter().filter(|k| k.name == name).collect()
            };
            let mut found = named(&dk.name);
            if let (true, Some(old)) = (found.is_empty(), dk.moved_from.as_deref())
                && let [prev] = named(old).as_slice()
            {
                declared.insert(old);
                let mut c = change(
                    Action::Move,
                    Kind::ApiKey,
                    &dk.name,
                    format!("renamed from {old}"),
                    Op::RenameKey {
                        key_id: prev.id.clone(),
                        name: dk.name.clone(),
                    },
                );
                c.resource_id = Some(prev.id.clone());
                c.details.push(detail("name", Some(old), Some(&dk.name)));
                c.precondition = Some(Precondition::Fingerprint(key_fingerprint(prev)));
                deps.push(self.push(c));
                found = vec![*prev];
            } else if let (true, Some(old)) = (found.is_empty(), dk.moved_from.as_deref())
                && named(old).len() > 1
            {
                self.errors.push(PlanError::Invalid {
                    kind: "API key",
                    path: dk.name.clone(),
                    message: format!(
                        "moves from `{old}`, but the cloud has {} keys with that name\n  hint: rename or delete all but one (`fleetform keys list`)",
                        named(old).len()
                    ),
                });
                continue;
            }
            let key = match found.as_slice() {
                [] => {
                    let grants: Vec<PlannedGrant> = want.into_iter().collect();
                    let mut c = change(
                        Action::Create,
                        Kind::ApiKey,
                        &dk.name,
                        "not in the cloud",
                        Op::CreateKey {
                            name: dk.name.clone(),
                            grants: grants.clone(),
                        },
                    );
                    c.details.extend(self.role_details(&grants, &[]));
                    c.depends_on = deps;
                    c.precondition = Some(Precondition::Absent);
                    self.push(c);
                    continue;
                }
                [one] => *one,
                many => {
                    self.errors.push(PlanError::Invalid {
                        kind: "API key",
                        path: dk.name.clone(),
                        message: format!(
                            "is ambiguous: the cloud has {} keys with this name ({})\n  hint: rename or delete all but one (`fleetform keys list`)",
                            many.len(),
                            many.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    });
                    continue;
                }
            };
            let have: BTreeSet<PlannedGrant> = key.grants.iter().map(planned_grant).collect();
            let add: Vec<PlannedGrant> = want.difference(&have).cloned().collect();
            let remove: Vec<PlannedGrant> = have.difference(&want).cloned().collect();
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            if !remove.is_empty() {
                let why = if own == Some(key.id.as_str()) {
                    Some(format!(
                        "is the key fleetform is authenticated with ({})",
                        key.id
                    ))
                } else if dk.protect {
                    Some(format!("({}) is declared with `protect: true`", key.id))
                } else {
                    None
                };
                if let Some(why) = why {
                    self.errors.push(PlanError::Invalid {
                        kind: "API key",
                        path: dk.name.clone(),
                        message: format!(
                            "{why}, but the plan would take away {}\n  hint: declare the role, or run fleetform with another key to change this one",
                            self.grant_labels(&remove)
                        ),
                    });
                    continue;
                }
            }
            let mut c =
                self.key_roles_change(Action::Update, &dk.name, key, add, remove, "roles differ");
            c.depends_on = deps;
            self.push(c);
        }
        for key in keys {
            if declared.contains(key.name.as_str()) {
                continue;
            }
            let label = if key.name.is_empty() {
                key.id.clone()
            } else {
                key.name.clone()
            };
            if !self.prune {
                self.unmanaged.push(Unmanaged {
                    kind: Kind::ApiKey,
                    path: label,
                    id: key.id.clone(),
                });
                continue;
            }
            if own == Some(key.id.as_str()) {
                self.errors.push(PlanError::Invalid {
                    kind: "API key",
                    path: label,
                    message: format!(
                        "is the key fleetform is authenticated with ({}); prune would delete it\n  hint: declare it under `access: keys:`",
                        key.id
                    ),
                });
                continue;
            }
            let mut c = change(
                Action::Delete,
                Kind::ApiKey,
                &label,
                "not in the manifest; prune is on",
                Op::DeleteKey {
                    key_id: key.id.clone(),
                },
            );
            c.resource_id = Some(key.id.clone());
            c.precondition = Some(Precondition::Fingerprint(key_fingerprint(key)));
            self.push(c);
        }
    }

    fn key_roles_change(
        &self,
        action: Action,
        name: &str,
        key: &crate::model::ApiKey,
        add: Vec<PlannedGrant>,
        remove: Vec<PlannedGrant>,
        reason: &str,
    ) -> Change {
        let mut c = change(
            action,
            Kind::ApiKey,
            name,
            reason,
            Op::UpdateKeyRoles {
                key_id: key.id.clone(),
                add: add.clone(),
                remove: remove.clone(),
            },
        );
        c.resource_id = Some(key.id.clone());
        c.details.extend(self.role_details(&add, &remove));
        c.precondition = Some(Precondition::Fingerprint(key_fingerprint(key)));
        c
    }
}
