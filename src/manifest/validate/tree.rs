//! The location tree: locations (nesting depth, unique names), their machines (one main part
//! each) and the machines' parts (names unique within a location, as Viam requires).

use super::*;
use crate::model::MetadataOwner;

impl Validator<'_> {
    pub(super) fn locations(
        &mut self,
        raw: &[RawLocation],
        parent: Option<&str>,
        depth: usize,
        list: &YPath,
        decls: &mut Decls,
    ) -> Vec<DesiredLocation> {
        let scope = match parent {
            Some(p) => format!(" in location `{p}`"),
            None => " among top-level locations".to_string(),
        };
        self.check_unique(
            raw.iter().map(|l| l.name.as_str()),
            list,
            Kind::Location,
            &scope,
        );
        raw.iter()
            .enumerate()
            .map(|(i, l)| self.location(l, parent, depth, &list.idx(i), decls))
            .collect()
    }

    pub(super) fn location(
        &mut self,
        raw: &RawLocation,
        parent: Option<&str>,
        depth: usize,
        at: &YPath,
        decls: &mut Decls,
    ) -> DesiredLocation {
        let path = join(parent, &raw.name);
        self.check_name(&raw.name, at, Kind::Location);
        if depth == MAX_LOCATION_DEPTH + 1 {
            self.err(
                &at.key("name"),
                format!(
                    "location `{path}` is nested {depth} levels deep; Viam allows at most {MAX_LOCATION_DEPTH}"
                ),
                "move it up a level: locations nest at most 3 deep (e.g. Site/Building/Line)",
            );
        }
        decls.locations.insert(path.clone());
        self.metadata(MetadataOwner::Location(path.clone()), raw.metadata.as_ref());
        let identity = self.identity(
            Kind::Location,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            None,
        );
        let rotate_secrets_after = raw.secrets.as_ref().and_then(|s| {
            let at = at.key("secrets").key("rotate_after");
            match parse_duration(&s.rotate_after) {
                Ok(d) if d.is_zero() => {
                    self.err(
                        &at,
                        "`rotate_after` must be longer than zero",
                        "write a duration such as `90d`, or remove `secrets:` to never rotate",
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        &at,
                        format!("bad `rotate_after`: {e}"),
                        "write a number and a unit (ms, s, m, h or d), e.g. `90d` or `12h`",
                    );
                    None
                }
            }
        });
        let machine_list = at.key("machines");
        self.check_unique(
            raw.machines.iter().map(|m| m.name.as_str()),
            &machine_list,
            Kind::Machine,
            &format!(" in location `{path}`"),
        );
        let machines: Vec<DesiredMachine> = raw
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| self.machine(m, &path, &machine_list.idx(i), decls))
            .collect();
        self.check_part_names_in_location(raw, &path, &machine_list);
        let locations = self.locations(
            &raw.locations,
            Some(&path),
            depth + 1,
            &at.key("locations"),
            decls,
        );
        DesiredLocation {
            name: raw.name.clone(),
            path,
            identity,
            rotate_secrets_after,
            locations,
            machines,
        }
    }

    /// Viam requires part names to be unique within a location, across its machines.
    pub(super) fn check_part_names_in_location(
        &mut self,
        raw: &RawLocation,
        path: &str,
        machines: &YPath,
    ) {
        let mut seen: HashMap<&str, (&str, usize)> = HashMap::new();
        for (mi, m) in raw.machines.iter().enumerate() {
            for (pi, p) in m.parts.iter().enumerate() {
                let at = machines.idx(mi).key("parts").idx(pi).key("name");
                match seen.get(p.name.as_str()) {
                    Some((other, line)) if *other != m.name => {
                        let message = format!(
                            "part name `{}` is already used by machine `{other}` in location `{path}` (line {line})",
                            p.name
                        );
                        self.err(
                            &at,
                            message,
                            "Viam requires part names to be unique within a location; rename one (e.g. prefix it with the machine's name)",
                        );
                    }
                    Some(_) => {}
                    None => {
                        let line = self.tree.pos_of(&at).line();
                        seen.insert(&p.name, (&m.name, line));
                    }
                }
            }
        }
    }

    pub(super) fn machine(
        &mut self,
        raw: &RawMachine,
        location: &str,
        at: &YPath,
        decls: &mut Decls,
    ) -> DesiredMachine {
        let path = join(Some(location), &raw.name);
        self.check_name(&raw.name, at, Kind::Machine);
        decls.machines.insert(path.clone());
        self.metadata(MetadataOwner::Machine(path.clone()), raw.metadata.as_ref());
        let identity = self.identity(
            Kind::Machine,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            None,
        );
        let list = at.key("parts");
        self.check_unique(
            raw.parts.iter().map(|p| p.name.as_str()),
            &list,
            Kind::Part,
            &format!(" in machine `{path}`"),
        );
        let mains = self.main_flags(raw, &path, at);
        let ctx = MachineCtx {
            path: &path,
            moved_from: identity.moved_from.as_deref(),
        };
        let parts = raw
            .parts
            .iter()
            .zip(mains)
            .enumerate()
            .map(|(i, (p, main))| self.part(p, &ctx, main, &list.idx(i), decls))
            .collect();
        DesiredMachine {
            name: raw.name.clone(),
            path,
            identity,
            parts,
        }
    }

    /// Which parts are main, reporting a machine without exactly one main part.
    pub(super) fn main_flags(&mut self, raw: &RawMachine, path: &str, at: &YPath) -> Vec<bool> {
        let list = at.key("parts");
        match raw.parts.as_slice() {
            [] => {
                self.err_key(
                    &list,
                    format!("machine `{path}` has no parts"),
                    format!(
                        "a machine always has a main part; add one, e.g. `parts: [{{ name: {}-main }}]`",
                        raw.name
                    ),
                );
                vec![]
            }
            [only] => {
                if only.main == Some(false) {
                    self.err(
                        &list.idx(0).key("main"),
                        format!("the only part of machine `{path}` cannot be `main: false`"),
                        "a machine always has a main part, and a single part is main implicitly; remove `main: false`",
                    );
                }
                vec![true]
            }
            parts => {
                let mains: Vec<bool> = parts.iter().map(|p| p.main == Some(true)).collect();
                let names: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.main == Some(true))
                    .map(|p| p.name.as_str())
                    .collect();
                if names.is_empty() {
                    self.err_key(
                        &list,
                        format!(
                            "machine `{path}` has {} parts but none is `main: true`",
                            parts.len()
                        ),
                        "mark exactly one part `main: true`",
                    );
                } else if names.len() > 1 {
                    let first = names[0];
                    for (i, _) in mains.iter().enumerate().filter(|(_, m)| **m).skip(1) {
                        self.err(
                            &list.idx(i).key("main"),
                            format!(
                                "machine `{path}` has more than one main part: `{first}` and `{}`",
                                parts[i].name
                            ),
                            "exactly one part per machine is main; remove `main: true` from the others",
                        );
                    }
                }
                mains
            }
        }
    }

    pub(super) fn part(
        &mut self,
        raw: &RawPart,
        machine: &MachineCtx<'_>,
        main: bool,
        at: &YPath,
        decls: &Decls,
    ) -> DesiredPart {
        let path = join(Some(machine.path), &raw.name);
        self.check_name(&raw.name, at, Kind::Part);
        self.metadata(MetadataOwner::Part(path.clone()), raw.metadata.as_ref());
        let identity = self.identity(
            Kind::Part,
            &path,
            raw.id.as_deref(),
            raw.moved_from.as_deref(),
            raw.protect,
            at,
            Some(machine),
        );
        let fragments = self.fragment_uses(
            &raw.fragments,
            &at.key("fragments"),
            &format!("part `{path}`"),
            decls,
        );
        let config = self.config(
            raw.config.is_some(),
            raw.config_file.as_deref(),
            at,
            crate::manifest::config::Owner::Part,
        );
        for (i, pointer) in raw.ignore.iter().enumerate() {
            if let Err(why) = check_pointer(pointer) {
                self.err(
                    &at.key("ignore").idx(i),
                    format!("`ignore` entry `{pointer}` {why}"),
                    "a JSON pointer (RFC 6901) starts with `/` and writes `~` as `~0` and `/` as `~1`, e.g. `/components/0/attributes/calibration`",
                );
            }
        }
        DesiredPart {
            name: raw.name.clone(),
            path,
            identity,
            main,
            config,
            fragments,
            ignore: raw.ignore.clone(),
        }
    }
}
