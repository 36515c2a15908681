//! Canonical JSON, so config equality is semantic: object keys sorted, numbers normalised
//! (`1`, `1.0` and `1e0` are one number), and `ignore` pointers removed; fragment imports
//! compared by meaning (`"ID"` is `{"id": "ID"}`; `version`, `prefix`, `variables` and unknown
//! keys count), in order.
//!
//! Configs in the model are compact ([`ConfigJson`]) and compared by their canonical digest
//! ([`same_config`], `ConfigJson::same_without_fragments`); the functions on
//! `serde_json::Value` here serve what needs the structure: `ignore` pointers, imports,
//! diffs and the planned config of a changed part.

use crate::model::ConfigJson;
use serde_json::{Map, Value};

/// `v` with keys sorted at every level and integral numbers written as integers.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&o[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Number(n) => normalize_number(n),
        other => other.clone(),
    }
}

fn normalize_number(n: &serde_json::Number) -> Value {
    if n.is_i64() || n.is_u64() {
        return Value::Number(n.clone());
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Value::from(f as i64),
        _ => Value::Number(n.clone()),
    }
}

/// A config's `fragments` entries as written (empty when it has none).
pub use crate::model::rules::fragment_imports as imports;

/// What an import entry means, for comparison: its fragment id and its other keys in
/// canonical form. A bare `"ID"` is `{"id": "ID"}` with no other keys. `None` for an entry
/// without an id.
pub fn import_meaning(entry: &Value) -> Option<(String, Value)> {
    match entry {
        Value::String(id) => Some((id.clone(), Value::Object(Map::new()))),
        Value::Object(o) => {
            let id = crate::model::rules::import_id(entry)?.to_string();
            let mut rest = o.clone();
            rest.shift_remove("id");
            Some((id, canonical(&Value::Object(rest))))
        }
        _ => None,
    }
}

/// Whether import `entry` means fragment `id` with `options` (every other key of the import),
/// as [`import_meaning`] decides, without building either meaning: a fleet's parts are
/// compared on every plan, and most imports match.
pub fn import_means(entry: &Value, id: &str, options: &Map<String, Value>) -> bool {
    match entry {
        Value::String(s) => s == id && options.is_empty(),
        Value::Object(o) => {
            crate::model::rules::import_id(entry) == Some(id)
                && o.len() - 1 == options.len()
                && options
                    .iter()
                    .all(|(k, v)| k != "id" && o.get(k).is_some_and(|w| canonical_eq(v, w)))
        }
        _ => false,
    }
}

/// The meanings of a config's imports, in order; entries without an id compare as themselves.
pub fn import_meanings(config: &Value) -> Vec<Value> {
    meanings(imports(config))
}

/// The meanings of import `entries`, in order (see [`import_meanings`]).
pub fn meanings(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| match import_meaning(e) {
            Some((id, rest)) => serde_json::json!([id, rest]),
            None => canonical(e),
        })
        .collect()
}

/// An organization default-fragment import (proto form) as a config-style import entry:
/// `{"id", "version"?, "prefix"?, "variables"?}`.
pub fn import_entry(f: &crate::model::FragmentImport) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::String(f.fragment_id.clone()));
    if let Some(v) = &f.version {
        o.insert("version".into(), Value::String(v.clone()));
    }
    if let Some(p) = &f.prefix {
        o.insert("prefix".into(), Value::String(p.clone()));
    }
    match &f.fragment_variables {
        Some(v) => {
            o.insert("variables".into(), v.clone());
        }
        None if !f.variables.is_empty() => {
            let vars = f
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            o.insert("variables".into(), Value::Object(vars));
        }
        None => {}
    }
    Value::Object(o)
}

/// The proto form of an import entry (see [`import_entry`]); keys other than `id`,
/// `version`, `prefix` and `variables` have no place in it.
pub fn fragment_import(entry: &Value) -> Option<crate::model::FragmentImport> {
    let (id, _) = import_meaning(entry)?;
    let field = |k: &str| entry.get(k).and_then(Value::as_str).map(String::from);
    let variables = entry.get("variables").filter(|v| v.is_object()).cloned();
    Some(crate::model::FragmentImport {
        fragment_id: id,
        version: field("version"),
        prefix: field("prefix"),
        variables: variables
            .as_ref()
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        fragment_variables: variables,
    })
}

/// Where the `fragments` key stands among a config's keys.
pub fn fragments_position(config: &Value) -> Option<usize> {
    config.as_object()?.keys().position(|k| k == "fragments")
}

/// `config` without its `fragments` key.
pub fn without_fragments(config: &Value) -> Value {
    let mut v = config.clone();
    if let Value::Object(o) = &mut v {
        o.shift_remove("fragments");
    }
    v
}

/// Splits an RFC 6901 pointer into unescaped tokens; `""` is the whole document.
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Removes the value at `pointer`, if any. Removing an array element shifts the rest.
pub fn remove_pointer(v: &mut Value, pointer: &str) {
    let toks = tokens(pointer);
    let Some((last, parents)) = toks.split_last() else {
        return;
    };
    let mut cur = v;
    for t in parents {
        cur = match cur {
            Value::Object(o) => match o.get_mut(t) {
                Some(next) => next,
                None => return,
            },
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    match cur {
        Value::Object(o) => {
            o.shift_remove(last);
        }
        Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Sets the value at `pointer` when its parent exists (objects gain the key; arrays only
/// replace an existing element). Returns whether it was set.
pub fn set_pointer(v: &mut Value, pointer: &str, value: Value) -> bool {
    let toks = tokens(pointer);
    let Some((last, parents)) = toks.split_last() else {
        *v = value;
        return true;
    };
    let mut cur = v;
    for t in parents {
        cur = match cur {
            Value::Object(o) => match o.get_mut(t) {
                Some(next) => next,
                None => return false,
            },
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(o) => {
            o.insert(last.clone(), value);
            true
        }
        Value::Array(a) => match last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The canonical form used for comparison: fragments dropped, `ignore` pointers removed.
pub fn comparable(config: &Value, ignore: &[String]) -> Value {
    let mut v = without_fragments(config);
    // Remove deeper pointers first so array indices of earlier ones stay meaningful.
    let mut sorted: Vec<&String> = ignore.iter().collect();
    sorted.sort_by(|a, b| b.cmp(a));
    for p in sorted {
        remove_pointer(&mut v, p);
    }
    canonical(&v)
}

/// Whether `a` and `b` have the same canonical form (key order and the spelling of numbers
/// aside), decided without building it: configs are compared for every part on every plan,
/// and most are equal.
pub fn canonical_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| canonical_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| canonical_eq(v, w))
        }
        (Value::Number(x), Value::Number(y)) => normalize_number(x) == normalize_number(y),
        _ => a == b,
    }
}

/// `comparable(a, ignore) == comparable(b, ignore)`, without copies when nothing is ignored.
pub fn comparable_eq(a: &Value, b: &Value, ignore: &[String]) -> bool {
    if !ignore.is_empty() {
        return comparable(a, ignore) == comparable(b, ignore);
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let own = |m: &Map<String, Value>| m.len() - usize::from(m.contains_key("fragments"));
            own(x) == own(y)
                && x.iter()
                    .filter(|(k, _)| *k != "fragments")
                    .all(|(k, v)| y.get(k).is_some_and(|w| canonical_eq(v, w)))
        }
        _ => canonical_eq(a, b),
    }
}

/// Whether two compact configs are the same: equal canonical forms and imports of the same
/// meaning. Neither is parsed except for its imports.
pub fn same_config(a: &ConfigJson, b: &ConfigJson) -> bool {
    a.same_without_fragments(b) && meanings(&a.imports()) == meanings(&b.imports())
}

/// Pretty, canonical JSON text for diffs.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(&canonical(v)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_number_form_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2.0, "x": [1, 2.5]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": [1.0, 2.5], "y": 2}, "b": 1e0}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(
            canonical(&a),
            canonical(&json!({"b": 1, "a": {"y": 2, "x": [2.5, 1]}}))
        );
    }

    #[test]
    fn equality_without_building_the_canonical_form_agrees_with_it() {
        let configs = [
            json!({"b": 1, "a": {"y": 2.0, "x": [1, 2.5]}}),
            json!({"a": {"x": [1.0, 2.5], "y": 2}, "b": 1e0}),
            json!({"a": {"x": [2.5, 1], "y": 2}, "b": 1}),
            json!({"a": {"x": [1, 2.5], "y": 2}, "b": 1, "fragments": ["f"]}),
            json!({"a": {"x": [1, 2.5], "y": 2}}),
            json!({"a": {"x": [1, 2.5], "y": 2, "z": null}, "b": 1}),
            json!({"a": {"x": [1, 2.5], "y": "2"}, "b": 1}),
            json!([1, {"a": 1}]),
            json!("text"),
        ];
        let ignores = [vec![], vec!["/a/y".to_string()]];
        for a in &configs {
            for b in &configs {
                assert_eq!(canonical_eq(a, b), canonical(a) == canonical(b), "{a} {b}");
                for ignore in &ignores {
                    assert_eq!(
                        comparable_eq(a, b, ignore),
                        comparable(a, ignore) == comparable(b, ignore),
                        "{a} {b} {ignore:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_import_compared_in_place_means_what_its_meaning_says() {
        let entries = [
            json!("f"),
            json!("g"),
            json!({"id": "f"}),
            json!({"id": "f", "version": "2"}),
            json!({"version": 2.0, "id": "f"}),
            json!({"id": "f", "version": "2", "prefix": "a-"}),
            json!({"id": "f", "variables": {"x": [1, 2.0]}}),
            json!({"id": "f", "variables": {"x": [1.0, 2]}}),
            json!({"id": 7}),
            json!({"version": "2"}),
            json!(["f", {}]),
            json!(null),
        ];
        // What a declared import holds: a fragment id and its other keys.
        let declared = entries.iter().filter_map(|e| {
            let (id, rest) = import_meaning(e)?;
            Some((id, rest.as_object()?.clone()))
        });
        for (id, options) in declared {
            let wanted = json!([id, canonical(&Value::Object(options.clone()))]);
            for e in &entries {
                // An entry without an id means no import (`meanings` keeps it as itself,
                // which the array `["f", {}]` would pass for).
                let means =
                    import_meaning(e).is_some() && meanings(std::slice::from_ref(e))[0] == wanted;
                assert_eq!(
                    import_means(e, &id, &options),
                    means,
                    "{e} against {wanted}"
                );
            }
        }
        // An option named `id` never matches (the entry's `id` is the fragment).
        let mut odd = Map::new();
        odd.insert("id".into(), json!("f"));
        assert!(!import_means(&json!({"id": "f"}), "f", &odd));
    }

    #[test]
    fn fragments_in_either_form() {
        // A bare id means the object with only that id; other keys and order count.
        assert_eq!(
            import_meanings(&json!({"fragments": ["b", "a"]})),
            import_meanings(&json!({"fragments": [{"id": "b"}, {"id": "a"}]}))
        );
        assert_ne!(
            import_meanings(&json!({"fragments": ["b"]})),
            import_meanings(&json!({"fragments": [{"id": "b", "version": "2"}]}))
        );
        assert_ne!(
            import_meanings(&json!({"fragments": ["a", "b"]})),
            import_meanings(&json!({"fragments": ["b", "a"]}))
        );
        assert!(import_meanings(&json!({})).is_empty());
        assert_eq!(
            without_fragments(&json!({"fragments": ["a"], "k": 1})),
            json!({"k": 1})
        );
    }

    #[test]
    fn ignore_pointers_are_removed_before_comparing() {
        let cloud =
            json!({"components": [{"name": "arm", "attributes": {"calibration": 7, "speed": 1}}]});
        let wanted = json!({"components": [{"name": "arm", "attributes": {"speed": 1}}]});
        let ignore = vec!["/components/0/attributes/calibration".to_string()];
        assert_eq!(comparable(&cloud, &ignore), comparable(&wanted, &ignore));
        assert_ne!(comparable(&cloud, &[]), comparable(&wanted, &[]));
    }

    #[test]
    fn pointers_set_and_remove_with_escapes() {
        let mut v = json!({"a/b": {"c~d": 1}, "list": [1, 2, 3]});
        assert!(set_pointer(&mut v, "/a~1b/c~0d", json!(2)));
        assert_eq!(v["a/b"]["c~d"], json!(2));
        assert!(set_pointer(&mut v, "/a~1b/new", json!(true)));
        assert!(!set_pointer(&mut v, "/missing/x", json!(1)));
        assert!(!set_pointer(&mut v, "/list/9", json!(1)));
        remove_pointer(&mut v, "/list/1");
        assert_eq!(v["list"], json!([1, 3]));
        remove_pointer(&mut v, "/nothing/here");
    }
}
