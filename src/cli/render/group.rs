//! Grouping a plan's changes so a fleet's plan stays readable: changes of the same shape
//! are shown once, with a few example paths and how many more there are.
//!
//! Two changes have the same shape when they have the same action, kind and reason, and:
//! - updates and moves: the same attribute details and the same config edits, compared leaf
//!   by leaf (`/components/0/attributes/speed` `45` → `50`), so 1,000 parts whose speed
//!   changes from 45 to 50 are one entry whatever else their configs hold;
//! - creates: configs of the same skeleton (the same keys and list lengths, values aside),
//!   which is what the machines of one template have in common;
//! - deletes: nothing more.
//!
//! Drifted changes also share who last changed them (when is left out). A shape shared by
//! fewer than [`MIN_GROUP`] changes is shown change by change, as are changes with something
//! of their own to say (how many machines a fragment change reaches, sensitive values) and
//! temporary steps. `--detail` shows every
//! change; JSON always holds every change.

use super::{detail_line, display_config};
use crate::plan::{Action, Change, Kind};
use serde_json::Value;
use std::collections::HashMap;

/// The fewest changes of one shape that are grouped.
pub const MIN_GROUP: usize = 3;

/// Example paths shown for a group.
pub const EXAMPLES: usize = 3;

/// The most leaf edits listed for a group.
const MAX_EDITS: usize = 8;

/// One entry of a grouped plan.
pub enum Entry<'p> {
    /// A change shown on its own.
    Single(&'p Change),
    /// Changes of one shape.
    Group(Group<'p>),
}

/// Changes of one shape.
pub struct Group<'p> {
    pub action: Action,
    pub kind: Kind,
    pub reason: String,
    /// What each of them changes: detail lines, then `pointer: before → after` edits.
    pub edits: Vec<String>,
    /// Edits beyond those listed.
    pub more_edits: usize,
    pub changes: Vec<&'p Change>,
}

impl Group<'_> {
    /// `Field/rover-01/…, Field/rover-02/… and 997 more`.
    pub fn examples(&self) -> String {
        let shown: Vec<&str> = self
            .changes
            .iter()
            .take(EXAMPLES)
            .map(|c| c.path.as_str())
            .collect();
        let rest = self.changes.len().saturating_sub(EXAMPLES);
        if rest == 0 {
            shown.join(", ")
        } else {
            format!("{} and {} more", shown.join(", "), thousands(rest))
        }
    }

    /// `1,000 parts`.
    pub fn count_noun(&self) -> String {
        let n = self.changes.len();
        let noun = self.kind.as_str();
        let plural = match noun {
            "location secret" => "location secrets".to_string(),
            n => format!("{n}s"),
        };
        format!(
            "{} {}",
            thousands(n),
            if n == 1 { noun.to_string() } else { plural }
        )
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The shown changes of `changes`, grouped (see the module docs), in the order of each
/// entry's first change.
pub fn group<'p>(changes: impl Iterator<Item = &'p Change>) -> Vec<Entry<'p>> {
    let mut entries: Vec<Entry<'p>> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for c in changes {
        let Some((key, edits, more)) = shape(c) else {
            entries.push(Entry::Single(c));
            continue;
        };
        match by_key.get(&key) {
            Some(&i) => {
                if let Entry::Group(g) = &mut entries[i] {
                    g.changes.push(c);
                }
            }
            None => {
                by_key.insert(key, entries.len());
                entries.push(Entry::Group(Group {
                    action: c.action,
                    kind: c.kind,
                    reason: c.reason.clone(),
                    edits,
                    more_edits: more,
                    changes: vec![c],
                }));
            }
        }
    }
    // Groups too small to be worth it go back to single changes, in place.
    entries
        .into_iter()
        .flat_map(|e| match e {
            Entry::Group(g) if g.changes.len() < MIN_GROUP => {
                g.changes.into_iter().map(Entry::Single).collect()
            }
            other => vec![other],
        })
        .collect()
}

/// A change's shape key, with the edit lines a group of it shows; `None` for a change shown
/// on its own.
fn shape(c: &Change) -> Option<(String, Vec<String>, usize)> {
    let sensitive = [&c.config_before, &c.config_after]
        .iter()
        .any(|cfg| cfg.as_ref().is_some_and(|cfg| !cfg.sensitive.is_empty()));
    if c.temporary || c.blast_radius.is_some() || sensitive {
        return None;
    }
    let mut edits: Vec<String> = c.details.iter().map(detail_line).collect();
    // Who drifted it is part of the shape; when is not.
    let who = c
        .attribution
        .as_ref()
        .and_then(|a| a.who.as_deref())
        .filter(|w| !w.is_empty())
        .map(|w| format!("last changed in the cloud by {w}"))
        .unwrap_or_default();
    let skeleton = match c.action {
        Action::Update | Action::Move => {
            if let (Some(before), Some(after)) = (&c.config_before, &c.config_after) {
                let mut leaves = Vec::new();
                leaf_edits(
                    &display_config(before),
                    &display_config(after),
                    &mut String::new(),
                    &mut leaves,
                );
                if leaves.is_empty() && c.details.is_empty() {
                    // Only order or form differs: nothing to say in one line.
                    return None;
                }
                edits.extend(leaves);
            }
            String::new()
        }
        Action::Create => c
            .config_after
            .as_ref()
            .map(|cfg| skeleton(&display_config(cfg)).to_string())
            .unwrap_or_default(),
        Action::Delete => String::new(),
    };
    let key = format!(
        "{:?}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{who}",
        c.action,
        c.kind,
        c.reason,
        edits.join("\u{1}"),
        skeleton
    );
    let more = edits.len().saturating_sub(MAX_EDITS);
    edits.truncate(MAX_EDITS);
    if !who.is_empty() {
        edits.push(who);
    }
    Some((key, edits, more))
}

/// `pointer: before → after` for every leaf that differs.
fn leaf_edits(before: &Value, after: &Value, at: &mut String, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                match a.get(k) {
                    Some(av) => leaf_edits(bv, av, at, out),
                    None => out.push(format!("{at}: {} → (removed)", short(bv))),
                }
                at.truncate(len);
            }
            for (k, av) in a {
                if !b.contains_key(k) {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(format!("{p}: (added) → {}", short(av)));
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                leaf_edits(bv, av, at, out);
                at.truncate(len);
            }
        }
        (b, a) if b != a => {
            let p = if at.is_empty() { "/" } else { at.as_str() };
            out.push(format!("{p}: {} → {}", short(b), short(a)));
        }
        _ => {}
    }
}

/// A value in one short line.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

/// The config's keys and list lengths, its values replaced by their type.
fn skeleton(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), skeleton(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(skeleton).collect()),
        Value::String(_) => Value::String(String::new()),
        Value::Number(_) => Value::from(0),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaf_edits_name_pointers_and_values() {
        let mut out = Vec::new();
        leaf_edits(
            &json!({"components": [{"attributes": {"speed": 45, "ip": "a"}}], "gone": 1}),
            &json!({"components": [{"attributes": {"speed": 50, "ip": "a"}}], "new": true}),
            &mut String::new(),
            &mut out,
        );
        assert_eq!(
            out,
            [
                "/components/0/attributes/speed: 45 → 50",
                "/gone: 1 → (removed)",
                "/new: (added) → true"
            ]
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
