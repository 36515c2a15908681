//! Planning parts: creating, adopting (a new machine's main part), renaming and
//! reconfiguring them, and which part is main.

use super::*;

impl<'a> Planner<'a> {
    // -- Parts --------------------------------------------------------------------------------

    /// The config to write for `dp`: its value with ignored values kept from `current`, and
    /// its imports where `current` has its `fragments` key.
    pub(super) fn planned_config(
        &self,
        dp: &DesiredPart,
        current: Option<&serde_json::Value>,
    ) -> PlannedConfig {
        let kept: Vec<_> = current
            .map(|cur| {
                dp.ignore
                    .iter()
                    .filter_map(|p| Some((p, cur.pointer(p)?)))
                    .collect()
            })
            .unwrap_or_default();
        let value = if kept.is_empty() {
            dp.config.json.clone()
        } else {
            let mut value = dp.config.value();
            for (p, v) in kept {
                set_pointer(&mut value, p, v.clone());
            }
            ConfigJson::from_value(&value)
        };
        PlannedConfig {
            value,
            fragments: self.planned_imports(&dp.fragments, current.map_or(&[], imports)),
            fragments_at: current.and_then(fragments_position),
            sensitive: dp.config.sensitive.clone(),
        }
    }

    pub(super) fn config_is_empty(dp: &DesiredPart) -> bool {
        dp.fragments.is_empty() && dp.config.json.is_empty_object()
    }

    pub(super) fn parts(&mut self, dm: &DesiredMachine) {
        match self.machines.get(&dm.path).cloned() {
            None => {}
            Some(Matched::Created(mc)) => self.parts_of_new_machine(dm, &mc),
            Some(Matched::Existing(mid)) => self.parts_of_existing_machine(dm, &mid),
        }
    }

    pub(super) fn parts_of_new_machine(&mut self, dm: &DesiredMachine, machine_change: &str) {
        // Parts never move between machines: a pinned part cannot be in a new machine.
        for dp in &dm.parts {
            if let Some(id) = &dp.identity.id {
                self.errors.push(PlanError::Invalid {
                    kind: "part",
                    path: dp.path.clone(),
                    message: format!(
                        "is pinned to id {id}, but its machine is created by this plan, and a part cannot move to another machine\n  hint: pin the machine with `id:` too, or remove the part's `id:`"
                    ),
                });
            }
        }
        let Some(main) = dm.parts.iter().find(|p| p.main) else {
            return;
        };
        let cfg = (!Self::config_is_empty(main)).then(|| self.planned_config(main, None));
        let mut c = change(
            Action::Create,
            Kind::Part,
            &main.path,
            if main.name == format!("{}-main", dm.name) {
                "the main part the new machine comes with".to_string()
            } else {
                format!("the new machine's main part `{}-main`, renamed", dm.name)
            },
            Op::UpdatePart {
                part: PartRef::MainPartOf(machine_change.to_string()),
                name: main.name.clone(),
                config: cfg.clone(),
            },
        );
        c.config_after = cfg;
        c.depends_on.push(machine_change.to_string());
        c.depends_on.extend(self.import_deps(&main.fragments));
        c.precondition = Some(Precondition::Absent);
        let adopt = self.push(c);
        self.parts.insert(
            main.path.clone(),
            (
                PartRef::MainPartOf(machine_change.to_string()),
                Some(adopt.clone()),
            ),
        );
        for dp in dm.parts.iter().filter(|p| !p.main) {
            let cfg = (!Self::config_is_empty(dp)).then(|| self.planned_config(dp, None));
            let mut c = change(
                Action::Create,
                Kind::Part,
                &dp.path,
                "declared, not in the cloud",
                Op::CreatePart {
                    machine: IdRef::CreatedBy(machine_change.to_string()),
                    name: dp.name.clone(),
                    config: cfg.clone(),
                },
            );
            c.config_after = cfg;
            // After the adoption, which may free the `<machine>-main` name.
            c.depends_on
                .extend([machine_change.to_string(), adopt.clone()]);
            c.depends_on.extend(self.import_deps(&dp.fragments));
            c.precondition = Some(Precondition::Absent);
            let cid = self.push(c);
            self.parts.insert(
                dp.path.clone(),
                (PartRef::CreatedBy(cid.clone()), Some(cid)),
            );
        }
    }

    pub(super) fn parts_of_existing_machine(&mut self, dm: &DesiredMachine, mid: &str) {
        let Some(observed) = self.o.parts.get(mid) else {
            self.errors.push(PlanError::Invalid {
                kind: "machine",
                path: dm.path.clone(),
                message: "its parts were not read from the cloud (observation incomplete); run the plan again".into(),
            });
            return;
        };
        // Match declared parts to observed ones (parts never change machines).
        let named = |name: &str| -> Vec<(String, &Part)> {
            observed
                .iter()
                .filter(|p| p.name == name)
                .map(|p| (p.id.clone(), p))
                .collect()
        };
        let mut matched: Vec<(&DesiredPart, Option<&Part>)> = vec![];
        for dp in &dm.parts {
            let Ok(found) = self.find(
                Kind::Part,
                &dp.path,
                &dp.identity,
                |_, id| observed.iter().find(|p| p.id == id),
                |_, old| named(last_segment(old)),
                |_, name| named(name),
            ) else {
                continue;
            };
            let found = found.map(|(_, p)| p);
            if let Some(p) = found
                && !self.claim("part", &p.id, &dp.path)
            {
                continue;
            }
            matched.push((dp, found));
        }
        // Main-part adoption: an unmatched declared main part takes over the observed main part
        // when nothing else claimed or pinned it, instead of creating a part and deleting that one.
        if let Some(slot) = matched.iter_mut().find(|(dp, p)| dp.main && p.is_none())
            && let Some(om) = observed.iter().find(|p| {
                p.main && !self.claimed.contains_key(&p.id) && !self.pinned.contains(&p.id)
            })
            && self.claim("part", &om.id, &slot.0.path)
        {
            slot.1 = Some(om);
        }
        let scope = self.machine_ids.get(mid).map(|m| m.location_id.clone());
        let mut main_ref: Option<(PartRef, Option<String>, bool)> = None;
        for (dp, found) in matched {
            let r = match found {
                Some(p) => {
                    if let Some(cid) = self.update_part(dp, p)
                        && p.name != dp.name
                    {
                        self.place(&cid, Some(&p.id), Kind::Part, scope.as_deref(), &dp.name);
                    }
                    (PartRef::Existing(p.id.clone()), None, p.main)
                }
                None => {
                    let cfg = (!Self::config_is_empty(dp)).then(|| self.planned_config(dp, None));
                    let mut c = change(
                        Action::Create,
                        Kind::Part,
                        &dp.path,
                        "declared, not in the cloud",
                        Op::CreatePart {
                            machine: IdRef::Existing(mid.to_string()),
                            name: dp.name.clone(),
                            config: cfg.clone(),
                        },
                    );
                    c.config_after = cfg;
                    c.depends_on.extend(self.import_deps(&dp.fragments));
                    c.precondition = Some(Precondition::Absent);
                    let cid = self.push(c);
                    self.place(&cid, None, Kind::Part, scope.as_deref(), &dp.name);
                    (PartRef::CreatedBy(cid.clone()), Some(cid), false)
                }
            };
            self.parts
                .insert(dp.path.clone(), (r.0.clone(), r.1.clone()));
            if dp.main {
                main_ref = Some(r);
            }
        }
        if let Some((part, created, already_main)) = main_ref
            && !already_main
        {
            let path = dm
                .parts
                .iter()
                .find(|p| p.main)
                .map(|p| p.path.clone())
                .unwrap_or_default();
            let mut c = change(
                Action::Update,
                Kind::Part,
                &path,
                "becomes the machine's main part",
                Op::MarkPartAsMain { part: part.clone() },
            );
            if let PartRef::Existing(id) = &part {
                c.resource_id = Some(id.clone());
            }
            c.details.push(detail("main", Some("false"), Some("true")));
            c.depends_on.extend(created);
            let cid = self.push(c);
            self.mark_main.insert(mid.to_string(), cid);
        }
    }

    /// Plans the rename and/or reconfiguration of `p`; returns the change, if any.
    pub(super) fn update_part(&mut self, dp: &DesiredPart, p: &'a Part) -> Option<String> {
        let renamed = p.name != dp.name;
        let fragments_differ = !self.imports_match(&dp.fragments, &p.config);
        // By digest; a part with `ignore` pointers is compared on its values without them.
        let config_differs = fragments_differ
            || if dp.ignore.is_empty() {
                !p.config.same_without_fragments(&dp.config.json)
            } else {
                !comparable_eq(&p.config.to_value(), &dp.config.value(), &dp.ignore)
            };
        if !(renamed || config_differs) {
            return None;
        }
        // The cloud's config as a value only for a part whose config changes.
        let current = config_differs.then(|| p.config.to_value());
        let cfg = current
            .as_ref()
            .map(|cur| self.planned_config(dp, Some(cur)));
        let action = if config_differs {
            Action::Update
        } else {
            Action::Move
        };
        let mut c = change(
            action,
            Kind::Part,
            &dp.path,
            reason(&[(renamed, "renamed"), (config_differs, "config differs")]),
            Op::UpdatePart {
                part: PartRef::Existing(p.id.clone()),
                name: dp.name.clone(),
                config: cfg.clone(),
            },
        );
        c.resource_id = Some(p.id.clone());
        if renamed {
            let machine_path = parent_path(&dp.path).unwrap_or("");
            c.from_path = Some(format!("{machine_path}/{}", p.name));
            c.details
                .push(detail("name", Some(&p.name), Some(&dp.name)));
        }
        if let Some(current) = &current {
            c.config_before = Some(observed_config(current, &dp.config.sensitive));
            c.config_after = cfg;
            c.depends_on.extend(self.import_deps(&dp.fragments));
        }
        c.precondition = p.last_updated.map(Precondition::LastUpdated);
        Some(self.push(c))
    }
}
