//! Fragments: their declarations, the imports of a part (or of the organization's default
//! fragments) and the tags that point at fragment revisions.

use super::*;

impl Validator<'_> {
    pub(super) fn fragments(&mut self, raw: &[RawFragment]) -> Vec<DesiredFragment> {
        let list = YPath::root().key("fragments");
        self.check_unique(
            raw.iter().map(|f| f.name.as_str()),
            &list,
            Kind::Fragment,
            "",
        );
        raw.iter()
            .enumerate()
            .map(|(i, f)| {
                let at = list.idx(i);
                self.check_name(&f.name, &at, Kind::Fragment);
                if f.name == crate::lease::LEASE_FRAGMENT
                    || f.name == crate::rollout::state::STATE_FRAGMENT
                {
                    self.err(
                        &at.key("name"),
                        format!("the fragment name `{}` is reserved", f.name),
                        "fleetform keeps the organization's lease and rollout state in fragments of those names; choose another",
                    );
                }
                let identity = self.identity(
                    Kind::Fragment,
                    &f.name,
                    f.id.as_deref(),
                    f.moved_from.as_deref(),
                    f.protect,
                    &at,
                    None,
                );
                let visibility = match f.visibility.as_deref() {
                    None | Some("private") => Visibility::Private,
                    Some("public") => Visibility::Public,
                    Some("public_unlisted") => Visibility::PublicUnlisted,
                    Some(other) => {
                        self.err(
                            &at.key("visibility"),
                            format!("unknown fragment visibility `{other}`"),
                            "use `private` (the default), `public` or `public_unlisted`",
                        );
                        Visibility::Private
                    }
                };
                let config = self.config(
                    f.config.is_some(),
                    f.config_file.as_deref(),
                    &at,
                    crate::manifest::config::Owner::Fragment,
                );
                let tags = f.tags.as_ref().map(|t| self.tags(t, &at.key("tags")));
                DesiredFragment {
                    name: f.name.clone(),
                    identity,
                    visibility,
                    config,
                    tags,
                }
            })
            .collect()
    }

    /// Checks a list of fragment imports (a part's `fragments:` or the organization's
    /// `default_fragments:`); `owner` names whose list it is in messages.
    pub(super) fn fragment_uses(
        &mut self,
        raw: &[Value],
        list: &YPath,
        owner: &str,
        decls: &Decls,
    ) -> Vec<FragmentUse> {
        let mut out: Vec<FragmentUse> = Vec::new();
        // One fragment may be imported more than once (e.g. under two prefixes), but not
        // twice the same way.
        let mut listed: HashMap<(FragmentRef, String), usize> = HashMap::new();
        for (i, entry) in raw.iter().enumerate() {
            let at = list.idx(i);
            let Some(u) = self.fragment_use(entry, &at, owner, decls) else {
                continue;
            };
            let line = self.tree.pos_of(&at).line();
            let key = (
                u.fragment.clone(),
                Value::Object(u.options.clone()).to_string(),
            );
            if let Some(first) = listed.get(&key) {
                self.err(
                    &at,
                    format!(
                        "fragment `{}` is listed twice in {owner} (first at line {first})",
                        match &u.fragment {
                            FragmentRef::Name(n) | FragmentRef::Id(n) => n,
                        }
                    ),
                    "list each import once; import a fragment again only with other options, e.g. another `prefix`",
                );
                continue;
            }
            listed.insert(key, line);
            out.push(u);
        }
        out
    }

    /// One import: a declared fragment's name, or a mapping with `name:` or `id:` and options.
    pub(super) fn fragment_use(
        &mut self,
        entry: &Value,
        at: &YPath,
        owner: &str,
        decls: &Decls,
    ) -> Option<FragmentUse> {
        let (name_at, fragment, mut options) = match entry {
            Value::String(name) => (
                at.clone(),
                FragmentRef::Name(name.clone()),
                serde_json::Map::new(),
            ),
            Value::Object(o) => {
                let mut options = o.clone();
                let name = options.shift_remove("name");
                let id = options.shift_remove("id");
                match (name, id) {
                    (Some(Value::String(n)), None) => {
                        (at.key("name"), FragmentRef::Name(n), options)
                    }
                    (None, Some(Value::String(id))) => {
                        if !is_uuid(&id) {
                            self.err(
                                &at.key("id"),
                                format!("fragment id `{id}` is not a UUID"),
                                "a fragment id looks like 1b4e28ba-2fa1-11d2-883f-0016d3cca427; to import a declared fragment write `name:` instead",
                            );
                            return None;
                        }
                        (
                            at.key("id"),
                            FragmentRef::Id(id.to_ascii_lowercase()),
                            options,
                        )
                    }
                    (Some(_), Some(_)) => {
                        self.err(
                            at,
                            "a fragment import has both `name` and `id`",
                            "use `name:` for a fragment this manifest declares, `id:` for any other",
                        );
                        return None;
                    }
                    _ => {
                        self.err(
                            at,
                            "a fragment import needs `name` (a declared fragment) or `id`",
                            "write e.g. `{ name: camera-kit, version: stable }`",
                        );
                        return None;
                    }
                }
            }
            _ => return None, // the structural pass reported the type
        };
        if let FragmentRef::Name(f) = &fragment
            && !decls.fragments.iter().any(|d| d == f)
        {
            let declared: Vec<&str> = decls.fragments.iter().map(String::as_str).collect();
            let hint = match (closest(f, &declared), declared.is_empty()) {
                (_, true) => format!(
                    "no fragments are declared; add `{{ name: {f} }}` under the top-level `fragments:`, or import it by `id:`"
                ),
                (Some(c), false) => format!(
                    "did you mean `{c}`? declared fragments: {}",
                    declared.join(", ")
                ),
                (None, false) => format!(
                    "declare it under the top-level `fragments:`, or import it by `id:`; declared fragments: {}",
                    declared.join(", ")
                ),
            };
            self.err(
                &name_at,
                format!("{owner} uses undeclared fragment `{f}`"),
                hint,
            );
            return None;
        }
        // `version: 3` is the revision "3": Viam names revisions and tags with strings.
        if let Some(Value::Number(n)) = options.get("version") {
            let text = n.to_string();
            options.insert("version".into(), Value::String(text));
        }
        let known = ["name", "id", "version", "prefix", "variables"];
        for key in options.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            if let Some(c) = closest(key, &known) {
                self.err_key(
                    &at.key(key),
                    format!("unknown key `{key}` in a fragment import"),
                    format!("did you mean `{c}`? Keys other than name, id, version, prefix and variables are written to the cloud as given"),
                );
            }
        }
        Some(FragmentUse { fragment, options })
    }

    /// A fragment's `tags:` mapping.
    pub(super) fn tags(
        &mut self,
        raw: &serde_json::Map<String, Value>,
        at: &YPath,
    ) -> Vec<(String, TagTarget)> {
        let mut out = Vec::new();
        for (tag, target) in raw {
            let tat = at.key(tag);
            if tag.is_empty() || tag.trim() != tag || tag.chars().any(char::is_control) {
                self.err_key(
                    &tat,
                    format!("invalid tag name `{tag}`"),
                    "a tag name is non-empty, without surrounding spaces, e.g. `stable`",
                );
                continue;
            }
            let target = match target {
                Value::String(s) if s == "current" => TagTarget::Current,
                Value::String(s) if !s.trim().is_empty() => TagTarget::Revision(s.clone()),
                Value::Number(n) if n.is_u64() => TagTarget::Revision(n.to_string()),
                _ => {
                    self.err(
                        &tat,
                        format!("tag `{tag}` must name a revision or `current`"),
                        "write a revision such as `3`, or `current` for the revision this apply leaves the fragment at",
                    );
                    continue;
                }
            };
            out.push((tag.clone(), target));
        }
        out
    }
}
