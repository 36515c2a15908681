//! Planning locations: matching them (also through `moved_from` paths read through the
//! manifest's own moves), creating, renaming and re-parenting them, and the depth limit a move
//! must keep with the sub-locations it carries.

use super::*;
use crate::model::rules::MAX_LOCATION_DEPTH;

impl<'a> Planner<'a> {
    // -- Locations ----------------------------------------------------------------------------

    /// The organization that owns `l`, when it is not ours (a location shared with us).
    pub(super) fn foreign_owner(&self, l: &Location) -> Option<String> {
        l.primary_organization()
            .filter(|owner| *owner != self.o.organization.id)
            .map(String::from)
    }

    pub(super) fn observed_location(&self, id: &str) -> Option<&'a Location> {
        self.o.locations.iter().find(|l| l.id == id)
    }

    /// The observed locations whose observed path is `path`.
    pub(super) fn observed_at(&self, path: &str) -> Vec<&'a Location> {
        self.o
            .locations
            .iter()
            .filter(|l| self.loc_paths.get(&l.id).map(String::as_str) == Some(path))
            .collect()
    }

    /// The observed locations an old path (a `moved_from`) means, read through the manifest's
    /// own moves: a path a declared location moved from means that location, wherever it is
    /// now (so a `moved_from` under it still resolves once it moved, e.g. after an interrupted
    /// apply); else the location at that observed path; else the child of that name under
    /// what the parent path means.
    pub(super) fn locations_at(&self, path: &str) -> Vec<(String, &'a Location)> {
        let pair = |l: &'a Location| (l.id.clone(), l);
        let moved: Vec<(String, &'a Location)> = self
            .d
            .all_locations()
            .into_iter()
            .filter(|dl| dl.identity.moved_from.as_deref() == Some(path))
            .filter_map(|dl| self.locations.get(&dl.path).and_then(Matched::existing))
            .filter_map(|id| self.observed_location(id))
            .map(pair)
            .collect();
        if !moved.is_empty() {
            return moved;
        }
        let direct: Vec<(String, &'a Location)> =
            self.observed_at(path).into_iter().map(pair).collect();
        let Some((parent, name)) = path.rsplit_once('/') else {
            return direct;
        };
        if !direct.is_empty() {
            return direct;
        }
        let parents: Vec<String> = self
            .locations_at(parent)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.o
            .locations
            .iter()
            .filter(|l| l.name == name && l.parent_id.as_ref().is_some_and(|p| parents.contains(p)))
            .map(pair)
            .collect()
    }

    pub(super) fn location(&mut self, dl: &DesiredLocation) {
        let parent: Option<Matched> =
            parent_path(&dl.path).and_then(|p| self.locations.get(p).cloned());
        let Ok(found) = self.find(
            Kind::Location,
            &dl.path,
            &dl.identity,
            |me, id| me.observed_location(id),
            |me, old| me.locations_at(old),
            |me, name| {
                let parent_id = match &parent {
                    Some(Matched::Created(_)) => return vec![],
                    Some(Matched::Existing(pid)) => Some(pid.as_str()),
                    None => None,
                };
                me.o.locations
                    .iter()
                    .filter(|l| l.parent_id.as_deref() == parent_id && l.name == name)
                    .map(|l| (l.id.clone(), l))
                    .collect()
            },
        ) else {
            return;
        };
        let parent_ref = parent.as_ref().map(Matched::id_ref);
        let parent_change =
            parent_path(&dl.path).and_then(|p| self.location_changes.get(p).cloned());
        let Some((id, l)) = found else {
            let mut c = change(
                Action::Create,
                Kind::Location,
                &dl.path,
                "declared, not in the cloud",
                Op::CreateLocation {
                    name: dl.name.clone(),
                    parent: parent_ref,
                },
            );
            c.precondition = Some(Precondition::Absent);
            c.depends_on
                .extend(parent_change.filter(|_| matches!(parent, Some(Matched::Created(_)))));
            let cid = self.push(c);
            let scope = match &parent {
                None => Some(""),
                Some(p) => p.existing(),
            };
            self.place(&cid, None, Kind::Location, scope, &dl.name);
            self.locations
                .insert(dl.path.clone(), Matched::Created(cid.clone()));
            self.location_changes.insert(dl.path.clone(), cid);
            return;
        };
        if let Some(owner) = self.foreign_owner(l) {
            self.errors.push(PlanError::Invalid {
                kind: "location",
                path: dl.path.clone(),
                message: format!(
                    "location {id} belongs to organization {owner} and is only shared with this one; fleetform never manages, moves or deletes a location its organization does not own\n  hint: remove it from this manifest and manage it from organization {owner}"
                ),
            });
            return;
        }
        if !self.claim("location", &id, &dl.path) {
            return;
        }
        self.locations
            .insert(dl.path.clone(), Matched::Existing(id.clone()));
        let renamed = l.name != dl.name;
        let reparented = match (&parent, &l.parent_id) {
            (None, None) => false,
            (Some(Matched::Existing(want)), Some(have)) => want != have,
            _ => true,
        };
        if !(renamed || reparented) {
            return;
        }
        let old_path = self
            .loc_paths
            .get(&id)
            .cloned()
            .unwrap_or_else(|| l.name.clone());
        if reparented {
            self.check_depth(dl, &id);
        }
        let mut c = change(
            Action::Move,
            Kind::Location,
            &dl.path,
            reason(&[(renamed, "renamed"), (reparented, "moved")]),
            Op::UpdateLocation {
                id: id.clone(),
                name: renamed.then(|| dl.name.clone()),
                parent: reparented.then(|| parent_ref.clone()),
            },
        );
        c.resource_id = Some(id.clone());
        c.from_path = Some(old_path);
        if renamed {
            c.details
                .push(detail("name", Some(&l.name), Some(&dl.name)));
        }
        if reparented {
            let before = l
                .parent_id
                .as_deref()
                .and_then(|p| self.loc_paths.get(p))
                .map(String::as_str);
            c.details.push(detail(
                "parent",
                Some(before.unwrap_or("(top level)")),
                Some(parent_path(&dl.path).unwrap_or("(top level)")),
            ));
            if let Some(Matched::Created(pc)) = &parent {
                c.depends_on.push(pc.clone());
            }
            // Moving under one of its own current descendants: that descendant must move out first.
            if let Some(Matched::Existing(dest)) = &parent {
                let mut cur = Some(dest.clone());
                while let Some(x) = cur {
                    if x == id {
                        break;
                    }
                    if let Some(p) = self
                        .claimed
                        .get(&x)
                        .and_then(|path| self.location_changes.get(path))
                    {
                        c.depends_on.push(p.clone());
                    }
                    cur = self.observed_location(&x).and_then(|l| l.parent_id.clone());
                }
            }
        }
        c.precondition = Some(Precondition::Fingerprint(location_fingerprint(l)));
        let cid = self.push(c);
        let scope = match &parent {
            None => Some(""),
            Some(p) => p.existing(),
        };
        self.place(&cid, Some(&id), Kind::Location, scope, &dl.name);
        if reparented && let Some(old_parent) = &l.parent_id {
            self.moved_out
                .entry(old_parent.clone())
                .or_default()
                .push(cid.clone());
        }
        self.location_changes.insert(dl.path.clone(), cid);
    }

    /// A moved location keeps its undeclared sub-locations; the result must still nest at most
    /// [`MAX_LOCATION_DEPTH`] levels.
    pub(super) fn check_depth(&mut self, dl: &DesiredLocation, id: &str) {
        let declared_depth = dl.path.split('/').count();
        let height = self.observed_height(id, 0);
        if declared_depth + height - 1 > MAX_LOCATION_DEPTH {
            self.errors.push(PlanError::TooDeep {
                path: dl.path.clone(),
                levels: declared_depth + height - 1,
            });
        }
    }

    pub(super) fn observed_height(&self, id: &str, guard: usize) -> usize {
        if guard > 16 {
            return 1;
        }
        1 + self
            .o
            .locations
            .iter()
            .filter(|l| l.parent_id.as_deref() == Some(id))
            .map(|l| self.observed_height(&l.id, guard + 1))
            .max()
            .unwrap_or(0)
    }
}
