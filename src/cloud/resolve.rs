//! Turning what a user typed into cloud resources: an organization (a name or an id), a
//! LOCATION and a PART.
//!
//! # Forms accepted
//! - Organization: a name or an id of an organization the API key can see. Without one, the
//!   only organization the key sees (several is an error that lists them).
//! - LOCATION: a name path from the top (`HQ/Assembly`) or a location id (`abcde12345`).
//! - FRAGMENT: a name (unique in the organization) or an id.
//! - PART: a part path (`HQ/Assembly/arm-01/arm-01-main`), a machine path (`HQ/Assembly/arm-01`,
//!   meaning that machine's main part), or a part id (a UUID).
//!
//! An id wins over a name that happens to look like one. A path that names several resources
//! (the cloud allows sibling locations with one name) is an error listing every candidate with
//! its id, so the user can pass the id instead; an unknown path is an error naming the first
//! segment that did not match, with the closest names as a hint.
//!
//! This module only reads; it never prints. Its errors are written for the person who typed
//! the argument: the problem, then a `hint:` line.

use super::{CloudApi, CloudError, Code};
use crate::model::rules::{is_location_id, is_uuid};
use crate::model::{Fragment, Location, Machine, Organization, Part, location_paths};
use std::collections::BTreeMap;

/// Why an argument did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The argument names nothing, or several things: the message says which, and how to
    /// say it unambiguously (a `hint:` line).
    #[error("{0}")]
    Unresolved(String),
    /// Reading the cloud failed; `context` says what was being read.
    #[error("{context}")]
    Cloud {
        context: String,
        #[source]
        source: CloudError,
    },
}

type Result<T> = std::result::Result<T, ResolveError>;

/// Returns `Err(ResolveError::Unresolved(…))` with a formatted message.
macro_rules! unresolved {
    ($($arg:tt)*) => {
        return Err(ResolveError::Unresolved(format!($($arg)*)))
    };
}

/// Wraps a cloud error with what was being read.
fn reading(context: impl Into<String>) -> impl FnOnce(CloudError) -> ResolveError {
    let context = context.into();
    move |source| ResolveError::Cloud { context, source }
}

/// The organization a command works on: `wanted` (a name or an id) among those the API key
/// sees, or, when `None`, the only one it sees.
pub async fn organization(api: &dyn CloudApi, wanted: Option<&str>) -> Result<Organization> {
    let orgs = api.list_organizations().await.map_err(reading(
        "cannot list the organizations this API key can see",
    ))?;
    choose_organization(orgs, wanted)
}

/// The pure part of [`organization`].
fn choose_organization(orgs: Vec<Organization>, wanted: Option<&str>) -> Result<Organization> {
    let listing = |orgs: &[Organization]| {
        orgs.iter()
            .map(|o| format!("  {}  {}", o.id, o.name))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some(wanted) = wanted else {
        return match orgs.len() {
            0 => unresolved!(
                "this API key can see no organizations\nhint: use an API key of the organization (an organization or location owner key)"
            ),
            1 => Ok(orgs.into_iter().next().expect("one")),
            _ => unresolved!(
                "this API key can see {} organizations; say which one with --org:\n{}\nhint: pass --org NAME or --org ID",
                orgs.len(),
                listing(&orgs)
            ),
        };
    };
    if let Some(o) = orgs.iter().find(|o| o.id.eq_ignore_ascii_case(wanted)) {
        return Ok(o.clone());
    }
    let named: Vec<&Organization> = orgs.iter().filter(|o| o.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => unresolved!(
            "no organization `{wanted}` among those this API key can see ({})\nhint: to reach `{wanted}`, use an API key of that organization (VIAM_API_KEY_ID and VIAM_API_KEY); or pass one of the key's own to --org",
            seen_in_words(&orgs)
        ),
        many => unresolved!(
            "organization name `{wanted}` is ambiguous: {} organizations have it:\n{}\nhint: pass the id to --org",
            many.len(),
            many.iter()
                .map(|o| format!("  {}  {}", o.id, o.name))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The organizations a key sees, on one line: `it sees `acme` (ID), …` (the first five).
fn seen_in_words(orgs: &[Organization]) -> String {
    if orgs.is_empty() {
        return "it sees none".to_string();
    }
    let mut named: Vec<String> = orgs
        .iter()
        .take(5)
        .map(|o| format!("`{}` ({})", o.name, o.id))
        .collect();
    if orgs.len() > 5 {
        named.push(format!("and {} more", orgs.len() - 5));
    }
    format!("it sees {}", named.join(", "))
}

/// Resolves a LOCATION argument (a name path or an id) in organization `org_id`; returns the
/// location's name path and the location.
pub async fn resolve_location(
    api: &dyn CloudApi,
    org_id: &str,
    arg: &str,
) -> Result<(String, Location)> {
    let places = Places::load(api, org_id, false).await?;
    // An id is read directly (GetLocation), unless a path is spelled the same.
    let arg = arg.trim().trim_matches('/');
    if is_location_id(arg) && !places.paths.values().any(|p| p == arg) {
        match api.get_location(arg).await {
            Ok(l) if places.paths.contains_key(&l.id) => {
                return Ok((places.location_path(&l.id), l));
            }
            Ok(_) => {}
            Err(e) if matches!(e.code, Code::NotFound | Code::PermissionDenied) => {}
            Err(e) => return Err(reading(format!("cannot read location {arg}"))(e)),
        }
    }
    let (path, location) = places.location(arg)?;
    Ok((path, location.clone()))
}

/// Resolves a PART argument (a part path, a machine path meaning its main part, or a part id)
/// in organization `org_id`; returns the part's name path and the part.
pub async fn resolve_part(api: &dyn CloudApi, org_id: &str, arg: &str) -> Result<(String, Part)> {
    let places = Places::load(api, org_id, true).await?;
    places.part(api, arg).await
}

/// The fragment the organization owns with id or name `wanted` (a name must be unique).
pub async fn resolve_fragment(api: &dyn CloudApi, org_id: &str, wanted: &str) -> Result<Fragment> {
    let wanted = wanted.trim();
    let fragments = api.list_fragments(org_id).await.map_err(reading(format!(
        "cannot list the fragments of organization {org_id}"
    )))?;
    if let Some(f) = fragments.iter().find(|f| f.id == wanted) {
        return Ok(f.clone());
    }
    let named: Vec<&Fragment> = fragments.iter().filter(|f| f.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let mut names: Vec<&str> = fragments.iter().map(|f| f.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            unresolved!(
                "no fragment named or with id `{wanted}` in organization {org_id}\nhint: its fragments are: {}",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
        many => unresolved!(
            "fragment name `{wanted}` is ambiguous: fragments {} have it\nhint: pass the id of the one you mean",
            many.iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Most machine-list calls in flight while loading [`Places`].
const READ_CONCURRENCY: usize = 8;

/// The locations (and, when loaded, machines) of one organization, with their name paths:
/// what resolution searches.
pub struct Places {
    pub org_id: String,
    pub locations: Vec<Location>,
    /// Location id → name path; locations with a broken parent chain are absent.
    pub paths: BTreeMap<String, String>,
    /// Empty unless loaded with machines.
    pub machines: Vec<Machine>,
}

impl Places {
    /// Lists the organization's locations and, with `machines`, its machines.
    pub async fn load(api: &dyn CloudApi, org_id: &str, machines: bool) -> Result<Self> {
        let locations = api.list_locations(org_id).await.map_err(reading(format!(
            "cannot list the locations of organization {org_id}"
        )))?;
        let machines = if machines {
            let ids: Vec<String> = locations.iter().map(|l| l.id.clone()).collect();
            crate::cloud::observe::list_machines(api, org_id, &ids, READ_CONCURRENCY)
                .await
                .map_err(reading(format!(
                    "cannot list the machines of organization {org_id}"
                )))?
        } else {
            vec![]
        };
        let paths = location_paths(&locations);
        Ok(Places {
            org_id: org_id.to_string(),
            locations,
            paths,
            machines,
        })
    }

    /// The name path of location `id` (its id when the parent chain is broken).
    pub fn location_path(&self, id: &str) -> String {
        self.paths
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The name path of a machine: `LOCATION/PATH/name`.
    pub fn machine_path(&self, m: &Machine) -> String {
        format!("{}/{}", self.location_path(&m.location_id), m.name)
    }

    /// Resolves a LOCATION argument to its path and location.
    pub fn location(&self, arg: &str) -> Result<(String, &Location)> {
        let arg = arg.trim().trim_matches('/');
        if arg.is_empty() {
            unresolved!(
                "empty location\nhint: pass a location path such as `HQ/Assembly`, or a location id"
            );
        }
        if let Some(l) = self.locations.iter().find(|l| l.id == arg) {
            return Ok((self.location_path(&l.id), l));
        }
        let found: Vec<&Location> = self
            .locations
            .iter()
            .filter(|l| self.paths.get(&l.id).is_some_and(|p| p == arg))
            .collect();
        match found.as_slice() {
            [one] => Ok((arg.to_string(), *one)),
            [] => Err(self.unknown_location(arg)),
            many => unresolved!(
                "location path `{arg}` is ambiguous: the cloud has {} locations there:\n{}\nhint: pass the id of the one you mean",
                many.len(),
                many.iter()
                    .map(|l| format!("  {}  {arg}", l.id))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Explains which segment of an unknown location path did not match.
    fn unknown_location(&self, arg: &str) -> ResolveError {
        let segments: Vec<&str> = arg.split('/').collect();
        // The longest prefix that exists, and the names one level below it.
        let mut known = String::new();
        let mut parents: Vec<Option<&str>> = vec![None];
        for (i, seg) in segments.iter().enumerate() {
            let children: Vec<&Location> = self
                .locations
                .iter()
                .filter(|l| parents.contains(&l.parent_id.as_deref()))
                .collect();
            let next: Vec<&str> = children
                .iter()
                .filter(|l| l.name == *seg)
                .map(|l| l.id.as_str())
                .collect();
            if next.is_empty() {
                let names: Vec<&str> = children.iter().map(|l| l.name.as_str()).collect();
                let place = if i == 0 {
                    "at the top level".to_string()
                } else {
                    format!("in `{known}`")
                };
                return ResolveError::Unresolved(format!(
                    "no location `{arg}` in organization {}: there is no `{seg}` {place}\nhint: {}",
                    self.org_id,
                    suggestion(seg, &names, "locations", &known)
                ));
            }
            if !known.is_empty() {
                known.push('/');
            }
            known.push_str(seg);
            parents = next.into_iter().map(Some).collect();
        }
        ResolveError::Unresolved(format!(
            "no location `{arg}` in organization {}\nhint: `fleetform status` lists the locations",
            self.org_id
        ))
    }

    /// Resolves a PART argument; reads the parts of the candidate machines (or the part by id).
    pub async fn part(&self, api: &dyn CloudApi, arg: &str) -> Result<(String, Part)> {
        let arg = arg.trim().trim_matches('/');
        if !arg.contains('/') {
            if is_uuid(arg) {
                return self.part_by_id(api, arg).await;
            }
            unresolved!(
                "`{arg}` is neither a part path nor a part id\nhint: pass a path such as `HQ/Assembly/arm-01/arm-01-main` (or `HQ/Assembly/arm-01` for its main part), or a part id (a UUID)"
            );
        }
        // Two readings: LOCATION/MACHINE/PART, and LOCATION/MACHINE meaning its main part.
        let (head, last) = arg.rsplit_once('/').expect("has a slash");
        let as_part: Vec<&Machine> = head
            .rsplit_once('/')
            .map(|(loc, machine)| self.machines_at(loc, machine))
            .unwrap_or_default();
        let as_machine: Vec<&Machine> = self.machines_at(head, last);
        let mut candidates: Vec<(String, Part)> = vec![];
        for m in &as_part {
            let parts = read_parts(api, m).await?;
            candidates.extend(
                parts
                    .into_iter()
                    .filter(|p| p.name == last)
                    .map(|p| (format!("{}/{}", self.machine_path(m), p.name), p)),
            );
        }
        for m in &as_machine {
            let parts = read_parts(api, m).await?;
            candidates.extend(
                parts
                    .into_iter()
                    .filter(|p| p.main)
                    .map(|p| (format!("{}/{}", self.machine_path(m), p.name), p)),
            );
        }
        match candidates.len() {
            1 => Ok(candidates.pop().expect("one")),
            0 => Err(self.unknown_part(api, arg, &as_part).await),
            n => unresolved!(
                "part path `{arg}` is ambiguous: it matches {n} parts:\n{}\nhint: pass the id of the one you mean",
                candidates
                    .iter()
                    .map(|(path, p)| format!("  {}  {path}", p.id))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Machines named `name` in every location whose path is `location_path`.
    fn machines_at(&self, location_path: &str, name: &str) -> Vec<&Machine> {
        self.machines
            .iter()
            .filter(|m| {
                m.name == name
                    && self
                        .paths
                        .get(&m.location_id)
                        .is_some_and(|p| p == location_path)
            })
            .collect()
    }

    async fn part_by_id(&self, api: &dyn CloudApi, id: &str) -> Result<(String, Part)> {
        let part = match api.get_part(id).await {
            Ok(p) => p,
            Err(e) if matches!(e.code, Code::NotFound | Code::PermissionDenied) => unresolved!(
                "no part with id {id} in organization {}\nhint: check the id, or pass the part's path (`fleetform status` lists them)",
                self.org_id
            ),
            Err(e) => return Err(reading(format!("cannot read part {id}"))(e)),
        };
        // GetRobot names the machine; its location must be one of this organization's.
        let machine = api
            .get_machine(&part.machine_id)
            .await
            .map_err(reading(format!(
                "cannot read machine {} of part {id}",
                part.machine_id
            )))?;
        if !self.locations.iter().any(|l| l.id == machine.location_id) {
            unresolved!(
                "part {id} is not in organization {}\nhint: pass --org to choose its organization",
                self.org_id
            );
        }
        Ok((
            format!("{}/{}", self.machine_path(&machine), part.name),
            part,
        ))
    }

    /// Explains an unknown part path: which location, machine or part is missing.
    async fn unknown_part(
        &self,
        api: &dyn CloudApi,
        arg: &str,
        machines: &[&Machine],
    ) -> ResolveError {
        let segments: Vec<&str> = arg.split('/').collect();
        let (part_name, rest) = segments.split_last().expect("non-empty");
        let shape = "hint: a part path is LOCATION/PATH/MACHINE/PART, e.g. `HQ/Assembly/arm-01/arm-01-main`, or a machine path for its main part";
        // The machine exists: name its parts.
        if let Some(m) = machines.first() {
            let names: Vec<String> = read_parts(api, m)
                .await
                .map(|ps| ps.into_iter().map(|p| p.name).collect())
                .unwrap_or_default();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return ResolveError::Unresolved(format!(
                "no part `{part_name}` in machine `{}`\nhint: {}",
                self.machine_path(m),
                suggestion(part_name, &names, "parts", &self.machine_path(m))
            ));
        }
        // A machine path (LOCATION/MACHINE, for its main part) whose location exists: the
        // machine is what is missing, so name that location's machines.
        let whole = rest.join("/");
        if let Some(err) = self.missing_machine(arg, &whole, part_name) {
            return err;
        }
        // A machine path with a typo anywhere: the closest existing machine path.
        if let Some(close) = self.closest_machine_path(arg) {
            return ResolveError::Unresolved(format!(
                "no part `{arg}`: there is no machine at `{arg}`\nhint: did you mean `{close}`?"
            ));
        }
        let Some((machine_name, location)) = rest.split_last() else {
            return ResolveError::Unresolved(format!("no part `{arg}`\n{shape}"));
        };
        let location = location.join("/");
        if location.is_empty() {
            return ResolveError::Unresolved(format!(
                "no part `{arg}`: the path is too short\n{shape}"
            ));
        }
        // The location exists: name its machines.
        if let Some(err) = self.missing_machine(arg, &location, machine_name) {
            return err;
        }
        match self.location(&location) {
            Err(e) => ResolveError::Unresolved(format!("no part `{arg}`: {e}")),
            Ok(_) => ResolveError::Unresolved(format!("no part `{arg}`\n{shape}")),
        }
    }
}

impl Places {
    /// The machine path closest to `path` (a few characters apart at most), if any.
    fn closest_machine_path(&self, path: &str) -> Option<String> {
        let reach = (path.chars().count() / 4).max(2);
        self.machines
            .iter()
            .map(|m| self.machine_path(m))
            .map(|p| {
                (
                    strsim::levenshtein(&path.to_lowercase(), &p.to_lowercase()),
                    p,
                )
            })
            .filter(|(d, _)| *d <= reach)
            .min()
            .map(|(_, p)| p)
    }

    /// "location `L` has no machine `M`", with the closest of its machines, when location
    /// `location` exists; `None` when it does not.
    fn missing_machine(&self, arg: &str, location: &str, machine: &str) -> Option<ResolveError> {
        let ids: Vec<&str> = self
            .locations
            .iter()
            .filter(|l| self.paths.get(&l.id).is_some_and(|p| p == location))
            .map(|l| l.id.as_str())
            .collect();
        if ids.is_empty() {
            return None;
        }
        let names: Vec<&str> = self
            .machines
            .iter()
            .filter(|m| ids.contains(&m.location_id.as_str()))
            .map(|m| m.name.as_str())
            .collect();
        Some(ResolveError::Unresolved(format!(
            "no part `{arg}`: location `{location}` has no machine `{machine}`\nhint: {}",
            suggestion(machine, &names, "machines", location)
        )))
    }
}

async fn read_parts(api: &dyn CloudApi, m: &Machine) -> Result<Vec<Part>> {
    api.get_parts(&m.id).await.map_err(reading(format!(
        "cannot read the parts of machine `{}` ({})",
        m.name, m.id
    )))
}

/// A hint naming the closest of `names` to `wanted` (or all of them, when few), each as its
/// whole path under `under` (the path they are in; empty at the top level).
fn suggestion(wanted: &str, names: &[&str], noun: &str, under: &str) -> String {
    let path = |n: &str| {
        if under.is_empty() {
            format!("`{n}`")
        } else {
            format!("`{under}/{n}`")
        }
    };
    if names.is_empty() {
        return format!("there are no {noun} there; `fleetform status` shows the whole tree");
    }
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| {
            (
                strsim::levenshtein(&wanted.to_lowercase(), &n.to_lowercase()),
                *n,
            )
        })
        .collect();
    scored.sort();
    scored.dedup();
    // The closest names within reach (about a third of the name may differ).
    let within: Vec<&(usize, &str)> = scored
        .iter()
        .filter(|(d, n)| *d <= (n.chars().count().max(wanted.chars().count()) / 3).max(2))
        .collect();
    let best = within.first().map_or(0, |(d, _)| *d);
    let close: Vec<String> = within
        .iter()
        .filter(|(d, _)| *d == best)
        .take(3)
        .map(|(_, n)| path(n))
        .collect();
    if !close.is_empty() {
        return format!("did you mean {}?", close.join(" or "));
    }
    if names.len() <= 8 {
        let all: Vec<String> = scored.iter().map(|(_, n)| path(n)).collect();
        return format!("the {noun} there are {}", all.join(", "));
    }
    format!(
        "there are {} {noun} there; `fleetform status` lists them",
        names.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, name: &str) -> Organization {
        Organization {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn loc(id: &str, name: &str, parent: Option<&str>) -> Location {
        Location {
            organizations: vec![],
            id: id.into(),
            name: name.into(),
            parent_id: parent.map(String::from),
            robot_count: 0,
            created_on: None,
            secrets: vec![],
        }
    }

    fn places(locations: Vec<Location>) -> Places {
        Places {
            org_id: "o".into(),
            paths: location_paths(&locations),
            locations,
            machines: vec![],
        }
    }

    #[test]
    fn organizations_are_chosen_by_name_id_or_uniqueness() {
        let one = vec![org("a", "acme")];
        assert_eq!(choose_organization(one.clone(), None).unwrap().id, "a");
        let two = vec![org("a", "acme"), org("b", "beta")];
        let e = choose_organization(two.clone(), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 organizations") && e.contains("beta") && e.contains("hint:"),
            "{e}"
        );
        assert_eq!(
            choose_organization(two.clone(), Some("beta")).unwrap().id,
            "b"
        );
        assert_eq!(choose_organization(two.clone(), Some("a")).unwrap().id, "a");
        let e = choose_organization(two, Some("gamma"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no organization `gamma`") && e.contains("acme"),
            "{e}"
        );
        let dup = vec![org("a", "acme"), org("b", "acme")];
        let e = choose_organization(dup, Some("acme"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ambiguous") && e.contains("  a  acme") && e.contains("  b  acme"),
            "{e}"
        );
    }

    #[test]
    fn locations_resolve_by_path_or_id() {
        let p = places(vec![
            loc("hq00000001", "HQ", None),
            loc("asm0000001", "Assembly", Some("hq00000001")),
        ]);
        assert_eq!(p.location("HQ/Assembly").unwrap().1.id, "asm0000001");
        assert_eq!(p.location("/HQ/Assembly/").unwrap().0, "HQ/Assembly");
        assert_eq!(p.location("asm0000001").unwrap().0, "HQ/Assembly");
    }

    #[test]
    fn ambiguous_locations_list_the_candidates() {
        let p = places(vec![
            loc("hq00000001", "HQ", None),
            loc("hq00000002", "HQ", None),
        ]);
        let e = p.location("HQ").unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        assert!(e.contains("hq00000001") && e.contains("hq00000002"), "{e}");
        assert!(e.contains("hint: pass the id"), "{e}");
    }

    #[test]
    fn unknown_locations_name_the_missing_segment_and_suggest() {
        let p = places(vec![
            loc("hq00000001", "HQ", None),
            loc("asm0000001", "Assembly", Some("hq00000001")),
        ]);
        let e = p.location("HQ/Asembly").unwrap_err().to_string();
        assert!(e.contains("no `Asembly` in `HQ`"), "{e}");
        assert!(e.contains("did you mean `HQ/Assembly`?"), "{e}");
        let e = p.location("Warehouse").unwrap_err().to_string();
        assert!(e.contains("at the top level"), "{e}");
        assert!(e.contains("`HQ`"), "{e}");
    }
}
