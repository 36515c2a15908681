//! `--target ADDRESS`: a plan restricted to some resources.
//!
//! # Addresses
//! - `Field`, `Field/Row 2`: a location, with everything inside it;
//! - `Field/rover-07`: a machine, with its parts;
//! - `Field/rover-07/rover-07-cam`: one part;
//! - `fragment:telemetry`: a fragment, with its tags.
//!
//! A path component may hold `*` (any run of characters) and `?` (one character), matched
//! within that component: `Field/rover-0*` is every machine of Field whose name starts with
//! `rover-0`; `*/rover-01` is `rover-01` in every top-level location. An address names
//! resources by their path in the manifest (for a move, the old path names it too).
//!
//! # What a targeted plan holds
//! The changes to the resources the addresses name and to everything inside them; the
//! locations above them that must be created or moved first; and every change those depend
//! on (a fragment a new part uses, …), except deletions: nothing outside the target is ever
//! deleted, so a change that could only follow a deletion outside the target is left out too.
//! Invites and the organization's settings are never in a target. The plan records the
//! addresses and how many changes were left out ([`Targeting`]); a saved plan keeps them, so
//! applying it later changes what was shown.

use super::types::{Action, Change, Kind, Plan, Targeting};
use crate::model::Desired;
use std::collections::{HashMap, HashSet};

/// One parsed `--target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `fragment:NAME` (NAME may hold wildcards).
    Fragment(String),
    /// A location, machine or part path, by component.
    Path(Vec<String>),
}

impl Address {
    /// Parses an address (see the module docs).
    pub fn parse(s: &str) -> Result<Address, String> {
        if let Some(name) = s.strip_prefix("fragment:") {
            if name.is_empty() {
                return Err("`fragment:` needs a fragment name, e.g. `fragment:telemetry`".into());
            }
            return Ok(Address::Fragment(name.to_string()));
        }
        let parts: Vec<String> = s.split('/').map(str::to_string).collect();
        if s.is_empty() || parts.iter().any(String::is_empty) {
            return Err(format!(
                "`{s}` is not an address: write a location, machine or part path (`Field/rover-07`) or `fragment:NAME`"
            ));
        }
        if parts.len() > 5 {
            return Err(format!(
                "`{s}` is deeper than a part path (3 levels of locations, a machine, a part)"
            ));
        }
        Ok(Address::Path(parts))
    }

    /// Whether the resource at `path` (of `kind`) is this address or inside it.
    fn covers(&self, kind: Kind, path: &str) -> bool {
        match (self, kind) {
            (Address::Fragment(pattern), Kind::Fragment) => matches(pattern, path),
            (Address::Fragment(pattern), Kind::FragmentTag) => {
                matches(pattern, path.split('@').next().unwrap_or(path))
            }
            (
                Address::Path(addr),
                Kind::Location | Kind::Machine | Kind::Part | Kind::LocationSecret,
            ) => {
                let comps: Vec<&str> = path.split('/').collect();
                comps.len() >= addr.len() && addr.iter().zip(&comps).all(|(a, c)| matches(a, c))
            }
            _ => false,
        }
    }

    /// Whether the location at `path` is above this address (it must exist first).
    fn is_below(&self, path: &str) -> bool {
        let Address::Path(addr) = self else {
            return false;
        };
        let comps: Vec<&str> = path.split('/').collect();
        comps.len() < addr.len() && addr.iter().zip(&comps).all(|(a, c)| matches(a, c))
    }

    /// Whether the address names exactly the resource at `path` (not only something inside).
    fn names(&self, path: &str) -> bool {
        match self {
            Address::Fragment(p) => matches(p, path),
            Address::Path(addr) => {
                let comps: Vec<&str> = path.split('/').collect();
                comps.len() == addr.len() && addr.iter().zip(&comps).all(|(a, c)| matches(a, c))
            }
        }
    }
}

use crate::model::rules::wildcard_match as matches;

/// Parses every address; the error names the first bad one.
pub fn parse_all(targets: &[String]) -> Result<Vec<Address>, String> {
    targets.iter().map(|t| Address::parse(t)).collect()
}

/// The addresses that name nothing `desired` declares (a typo would otherwise plan nothing).
pub fn undeclared(desired: &Desired, targets: &[String]) -> Vec<String> {
    if targets.is_empty() {
        return vec![];
    }
    let mut paths: Vec<(bool, &str)> = desired
        .fragments
        .iter()
        .map(|f| (true, f.name.as_str()))
        .collect();
    fn walk<'d>(locs: &'d [crate::model::DesiredLocation], out: &mut Vec<(bool, &'d str)>) {
        for l in locs {
            out.push((false, &l.path));
            for m in &l.machines {
                out.push((false, &m.path));
                out.extend(m.parts.iter().map(|p| (false, p.path.as_str())));
            }
            walk(&l.locations, out);
        }
    }
    walk(&desired.locations, &mut paths);
    targets
        .iter()
        .filter(|t| match Address::parse(t) {
            Ok(a) => !paths
                .iter()
                .any(|(frag, p)| *frag == matches!(a, Address::Fragment(_)) && a.names(p)),
            Err(_) => true,
        })
        .cloned()
        .collect()
}

/// Restricts `plan` to `addresses` (see the module docs) and records the targeting.
pub fn restrict(plan: &mut Plan, targets: &[String], addresses: &[Address]) {
    let in_scope = |c: &Change| {
        addresses.iter().any(|a| {
            a.covers(c.kind, &c.path)
                || c.from_path.as_deref().is_some_and(|p| a.covers(c.kind, p))
                || (c.kind == Kind::Location && c.action != Action::Delete && a.is_below(&c.path))
        })
    };
    let by_id: HashMap<&str, &Change> = plan.changes.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut keep: HashSet<String> = plan
        .changes
        .iter()
        .filter(|c| in_scope(c))
        .map(|c| c.id.clone())
        .collect();
    // Dependencies in; anything that needs a deletion outside the target out; until stable.
    loop {
        let mut next = keep.clone();
        for id in &keep {
            let Some(c) = by_id.get(id.as_str()) else {
                continue;
            };
            for dep in &c.depends_on {
                match by_id.get(dep.as_str()) {
                    Some(d) if d.action == Action::Delete && !in_scope(d) => {
                        next.remove(id);
                    }
                    Some(_) => {
                        next.insert(dep.clone());
                    }
                    None => {}
                }
            }
        }
        if next == keep {
            break;
        }
        keep = next;
    }
    let before = plan.changes.len();
    plan.changes.retain(|c| keep.contains(&c.id));
    let covered = |kind: Kind, path: &str| addresses.iter().any(|a| a.covers(kind, path));
    plan.unmanaged.retain(|u| covered(u.kind, &u.path));
    plan.notices.retain(|n| covered(n.kind, &n.path));
    plan.target = Some(Targeting {
        addresses: targets.to_vec(),
        left_out: before - plan.changes.len(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_cover() {
        let a = Address::parse("Field/rover-0*").expect("address");
        assert!(a.covers(Kind::Machine, "Field/rover-01"));
        assert!(a.covers(Kind::Part, "Field/rover-01/rover-01-main"));
        assert!(!a.covers(Kind::Machine, "Field/arm-01"));
        assert!(!a.covers(Kind::Location, "Field"));
        assert!(a.is_below("Field"));
        assert!(!a.is_below("Yard"));
        let f = Address::parse("fragment:kit").expect("address");
        assert!(f.covers(Kind::Fragment, "kit"));
        assert!(f.covers(Kind::FragmentTag, "kit@stable"));
        assert!(!f.covers(Kind::Location, "kit"));
        assert!(Address::parse("").is_err());
        assert!(Address::parse("a//b").is_err());
        assert!(Address::parse("fragment:").is_err());
        assert!(Address::parse("a/b/c/d/e/f").is_err());
    }
}
