//! Planning what the manifest does not declare inside the managed scope (kept, or deleted
//! under prune), the guards around deletes (`protect`, replacement warnings), and the final
//! ordering of name changes.

use super::*;

impl<'a> Planner<'a> {
    // -- Extraneous: undeclared things inside the managed scope -------------------------------

    pub(super) fn extraneous(&mut self) {
        let o = self.o;
        // Managed scope: every claimed location and everything below it.
        let mut managed: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = o
            .locations
            .iter()
            .filter(|l| self.claimed.contains_key(&l.id))
            .map(|l| l.id.clone())
            .collect();
        while let Some(id) = stack.pop() {
            if managed.insert(id.clone()) {
                // A location shared from another organization is never ours to delete.
                stack.extend(
                    o.locations
                        .iter()
                        .filter(|l| l.parent_id.as_deref() == Some(&id))
                        .filter(|l| self.foreign_owner(l).is_none())
                        .map(|l| l.id.clone()),
                );
            }
        }
        // Parts of declared machines.
        let declared_machines: Vec<&Machine> = o
            .machines
            .iter()
            .filter(|m| self.claimed.contains_key(&m.id))
            .collect();
        for m in declared_machines {
            let mpath = self.claimed[&m.id].clone();
            for p in o.parts.get(&m.id).into_iter().flatten() {
                if self.claimed.contains_key(&p.id) {
                    continue;
                }
                // The old main part goes only after another part became main.
                let after = if p.main {
                    self.mark_main.get(&m.id).cloned()
                } else {
                    None
                };
                self.extraneous_one(
                    Kind::Part,
                    format!("{mpath}/{}", p.name),
                    &p.id,
                    &p.name,
                    "not in the manifest; prune is on",
                    Op::DeletePart { id: p.id.clone() },
                    p.last_updated.map(Precondition::LastUpdated),
                    after.into_iter().collect(),
                );
            }
        }
        // Undeclared machines in managed locations.
        let mut machine_deletes: HashMap<String, Vec<String>> = HashMap::new();
        let mut extra_machines: Vec<&Machine> = o
            .machines
            .iter()
            .filter(|m| managed.contains(&m.location_id) && !self.claimed.contains_key(&m.id))
            .collect();
        extra_machines.sort_by_key(|m| self.machine_path(m));
        for m in extra_machines {
            let deleted = self.extraneous_one(
                Kind::Machine,
                self.machine_path(m),
                &m.id,
                &m.name,
                "not in the manifest; prune is on; its parts go with it",
                Op::DeleteMachine { id: m.id.clone() },
                Some(Precondition::Fingerprint(machine_fingerprint(m))),
                vec![],
            );
            machine_deletes
                .entry(m.location_id.clone())
                .or_default()
                .extend(deleted);
        }
        // Undeclared locations inside the scope, deepest first: each after its machines, its
        // child locations, and whatever moves out of it.
        let mut extra_locs: Vec<&Location> = o
            .locations
            .iter()
            .filter(|l| managed.contains(&l.id) && !self.claimed.contains_key(&l.id))
            .collect();
        extra_locs.sort_by_key(|l| {
            let p = self.loc_paths.get(&l.id).cloned().unwrap_or_default();
            (std::cmp::Reverse(p.matches('/').count()), p)
        });
        let mut location_deletes: HashMap<String, String> = HashMap::new();
        for l in extra_locs {
            let mut after = machine_deletes.get(&l.id).cloned().unwrap_or_default();
            after.extend(self.moved_out.get(&l.id).cloned().unwrap_or_default());
            after.extend(
                o.locations
                    .iter()
                    .filter(|x| x.parent_id.as_deref() == Some(&l.id))
                    .filter_map(|child| location_deletes.get(&child.id).cloned()),
            );
            let path = self
                .loc_paths
                .get(&l.id)
                .cloned()
                .unwrap_or_else(|| l.name.clone());
            if let Some(cid) = self.extraneous_one(
                Kind::Location,
                path,
                &l.id,
                &l.name,
                "not in the manifest; prune is on",
                Op::DeleteLocation { id: l.id.clone() },
                Some(Precondition::Fingerprint(location_fingerprint(l))),
                after,
            ) {
                location_deletes.insert(l.id.clone(), cid);
            }
        }
        self.unmanaged
            .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    }

    /// An undeclared resource inside the managed scope: listed as kept, or, under prune, planned
    /// for deletion after `after`. Returns the delete's change id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn extraneous_one(
        &mut self,
        kind: Kind,
        path: String,
        id: &str,
        name: &str,
        reason: &str,
        op: Op,
        precondition: Option<Precondition>,
        after: Vec<String>,
    ) -> Option<String> {
        if let Some(declared) = self.moved_from.get(&(kind, path.clone())).cloned() {
            // A `moved_from` could still claim it: never delete it.
            if self.prune {
                self.notice(
                    NoticeLevel::Warning,
                    kind,
                    &path,
                    format!("kept although prune is on: `moved_from: {path}` of {declared} names it\n  hint: remove that `moved_from` to let prune delete it"),
                );
            }
            self.unmanaged.push(Unmanaged {
                kind,
                path,
                id: id.to_string(),
            });
            return None;
        }
        if !self.prune {
            self.unmanaged.push(Unmanaged {
                kind,
                path,
                id: id.to_string(),
            });
            return None;
        }
        self.check_protect(kind, &path, id, name);
        let mut c = change(Action::Delete, kind, &path, reason, op);
        c.resource_id = Some(id.to_string());
        c.depends_on = after;
        c.precondition = precondition;
        Some(self.push(c))
    }

    /// A plan that deletes a resource and puts another of the same kind at the same path is
    /// most likely a mistake (a missing `id:` or `moved_from`): say so loudly.
    pub(super) fn replacement_warnings(&mut self) {
        // What lands at each path: a create, or a rename or move.
        let arriving: HashSet<(Kind, &str)> = self
            .changes
            .iter()
            .filter(|c| !c.temporary && (c.action == Action::Create || c.from_path.is_some()))
            .map(|c| (c.kind, c.path.as_str()))
            .collect();
        let mut warnings = vec![];
        for d in self.changes.iter().filter(|c| c.action == Action::Delete) {
            if arriving.contains(&(d.kind, d.path.as_str())) {
                let id = d.resource_id.clone().unwrap_or_default();
                warnings.push(Notice {
                    level: NoticeLevel::Warning,
                    kind: d.kind,
                    path: d.path.clone(),
                    message: format!(
                        "the plan deletes {} {} ({id}) and puts a different one at the same path: its history and config go with the delete\n  hint: if it is the same {}, pin it with `id: {id}`; add `protect: true` to make such a plan fail",
                        d.kind.as_str(),
                        d.path,
                        d.kind.as_str()
                    ),
                });
            }
        }
        self.notices.extend(warnings);
    }

    /// A move found through `moved_from: OLD/PATH` runs before the locations along `OLD/PATH`
    /// move, where that adds no cycle: an apply interrupted in between would otherwise leave
    /// a `moved_from` naming a path that no longer exists (a location moved by `id:` leaves no
    /// trace of its old path in the manifest).
    pub(super) fn moves_before_their_old_parents(&mut self) {
        let moved_via = std::mem::take(&mut self.moved_via);
        let change_of = |changes: &[Change], id: &str, kind: Option<Kind>| {
            changes.iter().position(|c| {
                c.resource_id.as_deref() == Some(id)
                    && c.from_path.is_some()
                    && kind.is_none_or(|k| c.kind == k)
            })
        };
        for (id, old) in &moved_via {
            let Some(m) = change_of(&self.changes, id, None) else {
                continue;
            };
            let mut ancestor = parent_path(old);
            while let Some(path) = ancestor {
                let here: Vec<String> = self
                    .observed_at(path)
                    .into_iter()
                    .map(|l| l.id.clone())
                    .collect();
                for lid in here {
                    if let Some(l) = change_of(&self.changes, &lid, Some(Kind::Location))
                        && l != m
                        && !depends_on(&self.changes, m, l)
                    {
                        let first = self.changes[m].id.clone();
                        self.changes[l].depends_on.push(first);
                    }
                }
                ancestor = parent_path(path);
            }
        }
    }

    /// Orders name changes so that none takes a name still held (see `identity.rs`).
    pub(super) fn sequence(&mut self) {
        let o = self.o;
        let mut held = Occupants::new();
        let mut hold = |kind: Kind, scope: &str, name: &str, id: &str| {
            held.entry(Slot {
                kind,
                scope: scope.to_string(),
                name: name.to_string(),
            })
            .or_default()
            .push(id.to_string());
        };
        for l in &o.locations {
            hold(
                Kind::Location,
                l.parent_id.as_deref().unwrap_or(""),
                &l.name,
                &l.id,
            );
        }
        for m in &o.machines {
            hold(Kind::Machine, &m.location_id, &m.name, &m.id);
            for p in o.parts.get(&m.id).into_iter().flatten() {
                hold(Kind::Part, &m.location_id, &p.name, &p.id);
            }
        }
        for f in &o.fragments {
            hold(Kind::Fragment, "", &f.name, &f.id);
        }
        let mut errors = vec![];
        let mut changes = std::mem::take(&mut self.changes);
        let label = |id: &str| self.observed_label(id);
        sequence(&mut changes, &self.placements, &held, &label, &mut errors);
        self.changes = changes;
        self.errors.extend(errors);
    }

    /// An observed resource's path (a fragment's name), for messages; its id if unknown.
    pub(super) fn observed_label(&self, id: &str) -> String {
        if let Some(p) = self.observed_path(id) {
            return p;
        }
        for m in &self.o.machines {
            if let Some(p) = self
                .o
                .parts
                .get(&m.id)
                .into_iter()
                .flatten()
                .find(|p| p.id == id)
            {
                return format!("{}/{}", self.machine_path(m), p.name);
            }
        }
        match self.o.fragments.iter().find(|f| f.id == id) {
            Some(f) => f.name.clone(),
            None => id.to_string(),
        }
    }

    /// A delete of something named like a protected declaration of the same kind is most likely
    /// a move or rename the manifest did not announce: refuse it.
    pub(super) fn check_protect(&mut self, k: Kind, path: &str, id: &str, name: &str) {
        let declared: Option<String> = match k {
            Kind::Location => self
                .d
                .all_locations()
                .into_iter()
                .find(|l| l.identity.protect && l.name == name)
                .map(|l| l.path.clone()),
            Kind::Machine => self
                .d
                .all_machines()
                .into_iter()
                .find(|(_, m)| m.identity.protect && m.name == name)
                .map(|(_, m)| m.path.clone()),
            Kind::Part => self
                .d
                .all_machines()
                .into_iter()
                .flat_map(|(_, m)| m.parts.iter())
                .find(|p| p.identity.protect && p.name == name)
                .map(|p| p.path.clone()),
            _ => None,
        };
        if let Some(declared) = declared {
            self.errors.push(PlanError::Protected {
                kind: k.as_str(),
                path: path.to_string(),
                id: id.to_string(),
                declared,
            });
        }
    }
}
