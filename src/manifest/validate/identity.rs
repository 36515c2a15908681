//! Identity: `id:` pins (syntax, and no id pinned twice across every kind) and `moved_from`
//! paths (full paths, not claimed twice, not naming what the manifest still declares).

use super::*;

impl Validator<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn identity(
        &mut self,
        kind: Kind,
        own: &str,
        id: Option<&str>,
        moved_from: Option<&str>,
        protect: bool,
        at: &YPath,
        machine: Option<&MachineCtx<'_>>,
    ) -> Identity {
        let noun = kind.noun();
        let what = format!("{noun} `{own}`");
        let pinned = id.and_then(|raw| {
            let id_at = at.key("id");
            if kind == Kind::Location {
                if !is_location_id(raw) {
                    self.err(
                        &id_at,
                        format!("location id `{raw}` is malformed"),
                        "a location id is 10 lowercase letters or digits, e.g. `abcde12345` (copy it from the Viam app)",
                    );
                    return None;
                }
            } else if !is_uuid(raw) {
                self.err(
                    &id_at,
                    format!("{noun} id `{raw}` is not a UUID"),
                    format!("a {noun} id looks like `1b4e28ba-2fa1-11d2-883f-0016d3cca427` (copy it from the Viam app)"),
                );
                return None;
            }
            let id = if kind == Kind::Location {
                raw.to_string()
            } else {
                raw.to_ascii_lowercase()
            };
            let line = self.tree.pos_of(&id_at).line();
            match self.pins.get(&id) {
                Some((first, first_line)) => {
                    let message = format!(
                        "id `{id}` is pinned twice: by {first} (line {first_line}) and by {what}"
                    );
                    self.err(&id_at, message, "an id names one resource; remove the wrong pin");
                }
                None => {
                    self.pins.insert(id.clone(), (what.clone(), line));
                }
            }
            Some(id)
        });
        let moved_from = match moved_from {
            None => None,
            Some(_) if id.is_some() => {
                self.err_key(
                    &at.key("moved_from"),
                    "id pins the resource; moved_from is not needed",
                    format!("remove `moved_from`: the pinned id already keeps {what} across renames and moves"),
                );
                None
            }
            Some(m) => self.moved_from(kind, own, &what, m, at, machine),
        };
        Identity {
            id: pinned,
            moved_from,
            protect,
        }
    }

    pub(super) fn moved_from(
        &mut self,
        kind: Kind,
        own: &str,
        what: &str,
        m: &str,
        at: &YPath,
        machine: Option<&MachineCtx<'_>>,
    ) -> Option<String> {
        let m_at = at.key("moved_from");
        if m == own {
            self.err(
                &m_at,
                format!("moved_from names {what}'s own path"),
                "set it to the path the resource had before, or remove `moved_from`",
            );
            return None;
        }
        let segments: Vec<&str> = m.split('/').collect();
        let segments_ok = segments.iter().all(|s| !s.is_empty() && s.trim() == *s);
        let (range, example) = match kind {
            Kind::Fragment => (
                1..=1,
                "a fragment's moved_from is its previous name, without `/`",
            ),
            Kind::Location => (
                1..=MAX_LOCATION_DEPTH,
                "a location path is the names from the top joined by `/`, e.g. `HQ/Assembly`",
            ),
            Kind::Machine => (
                2..=MAX_LOCATION_DEPTH + 1,
                "a machine path is its location's path and its name, e.g. `HQ/Assembly/arm-00`",
            ),
            Kind::Part => (
                3..=MAX_LOCATION_DEPTH + 2,
                "a part path is its machine's path and its name, e.g. `HQ/Assembly/arm-01/arm-01-old`",
            ),
        };
        if !segments_ok || !range.contains(&segments.len()) {
            self.err(
                &m_at,
                format!("`moved_from: {m}` is not a valid {} path", kind.noun()),
                example,
            );
            return None;
        }
        if let Some(machine) = machine {
            let parent = m.rsplit_once('/').map_or("", |(p, _)| p);
            if parent != machine.path && Some(parent) != machine.moved_from {
                self.err(
                    &m_at,
                    format!(
                        "a part's moved_from must be in the same machine: `{m}` is not in `{}`",
                        machine.path
                    ),
                    format!(
                        "parts cannot move between machines; write `{}/<old name>`, or declare a new part instead",
                        machine.path
                    ),
                );
                return None;
            }
        }
        let line = self.tree.pos_of(&m_at).line();
        match self.moves.get(&(kind, m.to_string())) {
            Some((first, first_line, _)) => {
                let message =
                    format!("{what} and {first} (line {first_line}) both say `moved_from: {m}`");
                self.err(
                    &m_at,
                    message,
                    "only one resource can take over the old one; remove one of the moved_from",
                );
                None
            }
            None => {
                self.moves
                    .insert((kind, m.to_string()), (what.to_string(), line, m_at));
                Some(m.to_string())
            }
        }
    }

    /// A `moved_from` naming a path the manifest itself declares is ambiguous on its face (a
    /// swap or rotation written by name, or a move onto a declared resource): an error
    /// whatever the cloud holds. Paths under a location that has `moved_from` count at the
    /// location's new path too: `moved_from: Old/x` names `New/x` when `New` moved from `Old`.
    pub(super) fn moved_from_declared(
        &mut self,
        fragments: &[DesiredFragment],
        locations: &[DesiredLocation],
    ) {
        fn walk(
            ls: &[DesiredLocation],
            out: &mut HashSet<(Kind, String)>,
            moved: &mut Vec<(String, String)>,
        ) {
            for l in ls {
                out.insert((Kind::Location, l.path.clone()));
                if let Some(old) = &l.identity.moved_from {
                    moved.push((format!("{old}/"), format!("{}/", l.path)));
                }
                for m in &l.machines {
                    out.insert((Kind::Machine, m.path.clone()));
                    out.extend(m.parts.iter().map(|p| (Kind::Part, p.path.clone())));
                }
                walk(&l.locations, out, moved);
            }
        }
        let mut declared: HashSet<(Kind, String)> = fragments
            .iter()
            .map(|f| (Kind::Fragment, f.name.clone()))
            .collect();
        let mut moved = vec![];
        walk(locations, &mut declared, &mut moved);
        // The path `m` has in this manifest, when one of its locations moved.
        let follow = |m: &str| {
            moved.iter().find_map(|(old, new)| {
                m.strip_prefix(old.as_str())
                    .map(|rest| format!("{new}{rest}"))
            })
        };
        let mut found: Vec<(usize, String, YPath)> = self
            .moves
            .iter()
            .filter_map(|((kind, m), (what, line, at))| {
                let noun = kind.noun();
                let message = if declared.contains(&(*kind, m.clone())) {
                    format!("{what} says `moved_from: {m}`, but this manifest declares {noun} `{m}`")
                } else {
                    let now = follow(m).filter(|p| declared.contains(&(*kind, p.clone())))?;
                    format!(
                        "{what} says `moved_from: {m}`, but that {noun} is declared as `{now}` (its location moved)"
                    )
                };
                Some((*line, message, at.clone()))
            })
            .collect();
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, message, at) in found {
            self.err(
                &at,
                message,
                "a swap or rotation by name is ambiguous: pin each resource with `id:` instead of `moved_from` (fleetform applies it through temporary names); if the move is done, remove `moved_from`",
            );
        }
    }
}
