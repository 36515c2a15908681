//! Planning machines: matching them (also through `moved_from`), creating, renaming and
//! moving them between locations.

use super::*;

impl<'a> Planner<'a> {
    // -- Machines -----------------------------------------------------------------------------

    /// The observed machines an old path (a `moved_from`) means: by name, in what the old
    /// location path means (see [`Self::locations_at`]).
    pub(super) fn machines_at(&self, path: &str) -> Vec<(String, &'a Machine)> {
        let Some((loc, name)) = path.rsplit_once('/') else {
            return vec![];
        };
        let locations: Vec<String> = self
            .locations_at(loc)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        locations
            .iter()
            .filter_map(|lid| self.machine_places.get(&(lid.as_str(), name)))
            .flatten()
            .map(|m| (m.id.clone(), *m))
            .collect()
    }

    pub(super) fn machine(&mut self, dl: &DesiredLocation, dm: &DesiredMachine) {
        let Some(loc) = self.locations.get(&dl.path).cloned() else {
            return; // the location failed to plan; its error is already recorded
        };
        let Ok(found) = self.find(
            Kind::Machine,
            &dm.path,
            &dm.identity,
            |me, id| me.machine_ids.get(id).copied(),
            |me, old| me.machines_at(old),
            |me, name| match loc.existing() {
                Some(lid) => me
                    .machine_places
                    .get(&(lid, name))
                    .into_iter()
                    .flatten()
                    .map(|m| (m.id.clone(), *m))
                    .collect(),
                None => vec![],
            },
        ) else {
            return;
        };
        let loc_change = self.location_changes.get(&dl.path).cloned();
        let Some((id, m)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Machine,
                &dm.path,
                "declared, not in the cloud",
                Op::CreateMachine {
                    name: dm.name.clone(),
                    location: loc.id_ref(),
                },
            );
            c.precondition = Some(Precondition::Absent);
            if let Matched::Created(lc) = &loc {
                c.depends_on.push(lc.clone());
            }
            let cid = self.push(c);
            self.place(&cid, None, Kind::Machine, loc.existing(), &dm.name);
            self.machines.insert(dm.path.clone(), Matched::Created(cid));
            return;
        };
        if !self.claim("machine", &id, &dm.path) {
            return;
        }
        self.machines
            .insert(dm.path.clone(), Matched::Existing(id.clone()));
        let renamed = m.name != dm.name;
        let relocated = loc.existing() != Some(m.location_id.as_str());
        if !(renamed || relocated) {
            return;
        }
        let mut c = change(
            Action::Move,
            Kind::Machine,
            &dm.path,
            reason(&[(renamed, "renamed"), (relocated, "moved")]),
            Op::UpdateMachine {
                id: id.clone(),
                name: renamed.then(|| dm.name.clone()),
                location: relocated.then(|| loc.id_ref()),
            },
        );
        c.resource_id = Some(id.clone());
        c.from_path = Some(self.machine_path(m));
        if renamed {
            c.details
                .push(detail("name", Some(&m.name), Some(&dm.name)));
        }
        if relocated {
            let before = self.loc_paths.get(&m.location_id).cloned();
            c.details
                .push(detail("location", before.as_deref(), Some(&dl.path)));
            if let Matched::Created(_) = loc {
                c.depends_on.extend(loc_change);
            }
        }
        c.precondition = Some(Precondition::Fingerprint(machine_fingerprint(m)));
        let cid = self.push(c);
        self.place(&cid, Some(&id), Kind::Machine, loc.existing(), &dm.name);
        if relocated {
            self.moved_out
                .entry(m.location_id.clone())
                .or_default()
                .push(cid);
        }
    }
}
