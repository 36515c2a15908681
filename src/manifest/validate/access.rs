//! Access: invites (emails, roles) and API keys, and the grants of every holder of roles, whose targets
//! must be declared in this manifest.

use super::*;

impl Validator<'_> {
    pub(super) fn invites(&mut self, invites: &[RawInvite], decls: &Decls) -> Vec<DesiredInvite> {
        let list = YPath::root().key("access").key("invites");
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, inv) in invites.iter().enumerate() {
            let at = list.idx(i);
            let email = inv.email.trim().to_ascii_lowercase();
            let email_at = at.key("email");
            if !is_email(&inv.email) {
                self.err(
                    &email_at,
                    format!("`{}` is not a valid email address", inv.email),
                    "write a full address such as `ops@acme.example`",
                );
            } else if let Some(first) = seen.get(&email) {
                self.err(
                    &email_at,
                    format!("duplicate invite for `{email}` (first at line {first})"),
                    "one invite per email: merge their grants into one invite",
                );
            } else {
                seen.insert(email.clone(), self.tree.pos_of(&email_at).line());
            }

            let mut grants = self.grants(&inv.grants, &at, &email, decls);
            if inv.grants.is_empty() {
                // As on the Viam cloud: an invite without authorizations makes an owner.
                grants.push(DesiredGrant {
                    role: Role::Owner,
                    target: GrantTarget::Organization,
                });
            }
            out.push(DesiredInvite {
                email,
                grants,
                protect: inv.protect,
                send_email: inv.send_email.unwrap_or(true),
            });
        }
        out
    }

    /// The grants of one invite or member (`at` is its position, `who` names it in messages):
    /// each parsed, its target resolved, one grant per target.
    pub(super) fn grants(
        &mut self,
        raw: &[crate::manifest::raw::RawGrant],
        at: &YPath,
        who: &str,
        decls: &Decls,
    ) -> Vec<DesiredGrant> {
        let email = who;
        let inv_grants = raw;
        let mut targets: HashMap<GrantTarget, usize> = HashMap::new();
        let mut grants = Vec::new();
        for (gi, g) in inv_grants.iter().enumerate() {
            let gat = at.key("grants").idx(gi);
            let role = Role::parse(&g.role);
            if role.is_none() {
                self.err(
                    &gat.key("role"),
                    format!("unknown role `{}`", g.role),
                    "roles are `owner` and `operator`",
                );
            }
            let Some(target) = self.grant_target(g, &gat, decls) else {
                continue;
            };
            let line = self.tree.pos_of(&gat).line();
            if let Some(first) = targets.get(&target) {
                self.err(
                    &gat,
                    format!(
                        "two grants on the same target {} for `{email}` (first at line {first})",
                        describe_target(&target)
                    ),
                    "keep one grant per target; `owner` already includes what `operator` allows",
                );
            } else {
                targets.insert(target.clone(), line);
            }
            if let Some(role) = role {
                grants.push(DesiredGrant { role, target });
            }
        }
        grants
    }

    /// API keys: names unique (compared exactly, as the cloud does), at least one grant each.
    pub(super) fn keys(&mut self, keys: &[RawKey], decls: &Decls) -> Vec<DesiredKey> {
        let list = YPath::root().key("access").key("keys");
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let at = list.idx(i);
            let name = k.name.trim();
            if name.is_empty() {
                self.err(
                    &at.key("name"),
                    "empty key name",
                    "name the key, e.g. `name: ci-deploy`",
                );
                continue;
            }
            if let Some(first) = seen.get(name) {
                self.err(
                    &at.key("name"),
                    format!("duplicate API key `{name}` (first at line {first})"),
                    "key names are unique: merge their grants into one entry",
                );
                continue;
            }
            seen.insert(name.to_string(), self.tree.pos_of(&at).line());
            if k.grants.is_empty() {
                self.err(
                    &at.key("grants"),
                    format!("API key `{name}` has no grants"),
                    "give it at least one grant, e.g. `{role: operator, location: HQ}`",
                );
                continue;
            }
            let moved_from = k.moved_from.as_deref().map(str::trim);
            if moved_from.is_some_and(|m| m.is_empty() || m == name) {
                self.err(
                    &at.key("moved_from"),
                    format!("`moved_from` of API key `{name}` must name another key"),
                    "write the key's previous name, or remove `moved_from`",
                );
            }
            let grants = self.grants(&k.grants, &at, name, decls);
            out.push(DesiredKey {
                name: name.to_string(),
                moved_from: moved_from.map(String::from),
                grants,
                protect: k.protect,
            });
        }
        out
    }

    pub(super) fn grant_target(
        &mut self,
        g: &crate::manifest::raw::RawGrant,
        at: &YPath,
        decls: &Decls,
    ) -> Option<GrantTarget> {
        if g.organization == Some(false) {
            self.err(
                &at.key("organization"),
                "`organization: false` is not a grant target",
                "write `organization: true` for an organization-wide grant, or use `location:` or `machine:` instead",
            );
            return None;
        }
        let mut set = Vec::new();
        if g.organization == Some(true) {
            set.push("organization");
        }
        if g.location.is_some() {
            set.push("location");
        }
        if g.machine.is_some() {
            set.push("machine");
        }
        match set.len() {
            0 => {
                self.err(
                    at,
                    "grant has no target",
                    "add exactly one of `organization: true`, `location: PATH` or `machine: PATH`",
                );
                return None;
            }
            1 => {}
            _ => {
                self.err(
                    at,
                    format!("grant has more than one target ({})", set.join(", ")),
                    "a grant applies to exactly one target; split it into one grant per target",
                );
                return None;
            }
        }
        let targets = [
            (
                &g.location,
                &decls.locations,
                "location",
                GrantTarget::Location as fn(String) -> GrantTarget,
            ),
            (&g.machine, &decls.machines, "machine", GrantTarget::Machine),
        ];
        for (path, declared, noun, target) in targets {
            let Some(path) = path else { continue };
            if !declared.contains(path) {
                self.err(
                    &at.key(noun),
                    format!("grant on undeclared {noun} `{path}`"),
                    undeclared_hint(path, declared, noun),
                );
                return None;
            }
            return Some(target(path.clone()));
        }
        Some(GrantTarget::Organization)
    }
}

fn describe_target(t: &GrantTarget) -> String {
    match t {
        GrantTarget::Organization => "the organization".to_string(),
        GrantTarget::Location(l) => format!("location `{l}`"),
        GrantTarget::Machine(m) => format!("machine `{m}`"),
    }
}

fn undeclared_hint(path: &str, declared: &HashSet<String>, noun: &str) -> String {
    let mut all: Vec<&str> = declared.iter().map(String::as_str).collect();
    all.sort_unstable();
    let base = format!("grants can name only {noun}s declared in this manifest, by full path");
    match closest(path, &all) {
        Some(c) => format!("did you mean `{c}`? {base}"),
        None if all.is_empty() => format!("{base}; none are declared"),
        None => {
            let shown: Vec<&str> = all.iter().take(8).copied().collect();
            let more = if all.len() > shown.len() { ", …" } else { "" };
            format!("{base}: {}{more}", shown.join(", "))
        }
    }
}
