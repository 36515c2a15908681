//! Domain rules of the Viam cloud that several modules apply — the manifest's validation, the
//! planner, the CLI's argument resolution and the local cloud — defined once here.
//!
//! - Locations nest at most [`MAX_LOCATION_DEPTH`] levels.
//! - Names are at most [`MAX_NAME_CHARS`] characters, none of them [`is_forbidden_char`].
//! - Part, machine, fragment and organization ids are UUIDs ([`is_uuid`], any case); location
//!   ids are 10 lowercase letters or digits ([`is_location_id`]).
//! - A config imports fragments through its `fragments` list ([`fragment_imports`]): each
//!   entry is a bare fragment id (`"ID"`) or an object with an `id` (and `version`, `prefix`,
//!   `variables`, …); [`import_id`] reads the id of either form.

use serde_json::Value;

/// Locations nest at most this deep (Viam's limit).
pub const MAX_LOCATION_DEPTH: usize = 3;

/// The longest name (of an organization, location, machine, part or fragment), in
/// characters. Viam documents no limit; this one keeps names readable and every list of
/// them far below the wire's message size limit.
pub const MAX_NAME_CHARS: usize = 128;

/// Whether `name` matches the wildcard `pattern`: `*` any run of characters, `?` one
/// character (one name or path component; `manifest` include patterns and `--target`).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &name.chars().collect::<Vec<_>>(),
    )
}

/// Control characters, and the invisible characters that reorder text on screen: never part
/// of a name.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A UUID in its hyphenated 8-4-4-4-12 form, any case.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// 10 lowercase letters or digits: the shape of a Viam location id.
pub fn is_location_id(s: &str) -> bool {
    s.len() == 10
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A config's `fragments` entries as written (empty when it has none).
pub fn fragment_imports(config: &Value) -> &[Value] {
    config
        .get("fragments")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The fragment id of one import entry: a bare `"ID"` or `{"id": "ID", …}`; `None` for any
/// other shape.
pub fn import_id(entry: &Value) -> Option<&str> {
    match entry {
        Value::String(id) => Some(id),
        Value::Object(o) => o.get("id")?.as_str(),
        _ => None,
    }
}

/// The fragment ids a config imports, in order, without repeats.
pub fn imported_fragment_ids(config: &Value) -> Vec<String> {
    import_ids(fragment_imports(config))
}

/// The fragment ids of import `entries`, in order, without repeats.
pub fn import_ids(entries: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for id in entries.iter().filter_map(import_id) {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recognises_ids() {
        assert!(is_uuid("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(is_uuid("1B4E28BA-2FA1-11D2-883F-0016D3CCA427"));
        assert!(!is_uuid("1b4e28ba2fa111d2883f0016d3cca427"));
        assert!(!is_uuid("1b4e28ba-2fa1-11d2-883f-0016d3cca42g"));
        assert!(!is_uuid("1b4e28ba-2fa1-11d2-883f-0016d3cca42"));
        assert!(!is_uuid("HQ"));
        assert!(is_location_id("abcde12345"));
        assert!(!is_location_id("ABCDE12345"));
        assert!(!is_location_id("abcde1234"));
    }

    #[test]
    fn names_refuse_control_and_reordering_characters() {
        for c in [
            '\n', '\t', '\u{1b}', '\0', '\u{202e}', '\u{2067}', '\u{200f}',
        ] {
            assert!(is_forbidden_char(c), "{}", c.escape_unicode());
        }
        for c in ['a', 'é', '✓', ' ', '-', '/'] {
            assert!(!is_forbidden_char(c), "{c}");
        }
    }

    #[test]
    fn imports_are_bare_ids_or_objects_with_an_id() {
        let config =
            json!({"fragments": ["a", {"id": "b", "version": "2"}, {"version": "1"}, 7, "a"]});
        assert_eq!(fragment_imports(&config).len(), 5);
        let ids: Vec<Option<&str>> = fragment_imports(&config).iter().map(import_id).collect();
        assert_eq!(ids, [Some("a"), Some("b"), None, None, Some("a")]);
        assert_eq!(imported_fragment_ids(&config), ["a", "b"]);
        assert!(fragment_imports(&json!({"components": []})).is_empty());
        assert!(fragment_imports(&json!({"fragments": "a"})).is_empty());
    }
}
