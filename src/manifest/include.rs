//! Included files and the manifest digest.
//!
//! [`included_files`] lists the manifest and every file it names (`config_file`s, `include`d
//! manifests and the files they name, `for_each` inventories), so `watch` can watch them all. It is deliberately lenient: it needs only readable YAML, not a valid
//! manifest, so that watching continues while a manifest is being fixed, and it lists files
//! whether or not they exist yet.
//!
//! [`Digester`] makes the SHA-256 that names exactly what a plan was made from: the manifest text,
//! each included file (path as written, then bytes; in order of first use, each once), and the
//! SHA-256 of the value of each environment variable used (sorted by name). Raw environment
//! values never enter it.

use super::error::{Diagnostic, ManifestError};
use super::span::{Node, NodeKind, ScalarKind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The digest in the making. The manifest's text goes in first, so that the text need not
/// be kept while the rest of the manifest is read (for a large fleet it is megabytes).
pub struct Digester(Sha256);

impl Digester {
    /// Starts the digest with the manifest's text.
    pub fn new(manifest: &str) -> Self {
        let mut h = Sha256::new();
        field(&mut h, b"fleetform-manifest-v1", manifest.as_bytes());
        Digester(h)
    }

    /// Hex SHA-256 over the manifest, its included files and its environment values'
    /// hashes.
    pub fn finish(
        mut self,
        includes: &[(String, Vec<u8>)],
        env_used: &BTreeMap<String, String>,
    ) -> String {
        let h = &mut self.0;
        for (rel, bytes) in includes {
            field(h, b"file-path", rel.as_bytes());
            field(h, b"file-bytes", bytes);
        }
        for (name, sha) in env_used {
            field(h, b"env-name", name.as_bytes());
            field(h, b"env-sha256", sha.as_bytes());
        }
        hex::encode(self.0.finalize())
    }
}

/// One tagged, length-prefixed field of the digest.
fn field(h: &mut Sha256, tag: &[u8], bytes: &[u8]) {
    h.update(tag);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The manifest at `path` followed by every config file it references (relative paths
/// resolved against the manifest's directory), each once, in the order validation reads them:
/// fragments first, then each location's machines' parts before its child locations.
///
/// Fails only when the manifest cannot be read or is not YAML; an otherwise invalid manifest
/// still yields the files it names.
pub fn included_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let limit = super::LoadOptions::default().max_file_bytes;
    let text = super::files::read_bounded(path, limit)
        .map_err(|e| e.to_string())
        .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
        .map_err(|e| {
            ManifestError::single(Diagnostic::new(
                path,
                1,
                1,
                format!("cannot read the manifest: {e}"),
                "check the path and its permissions",
            ))
        })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let parsed = super::span::parse(text).map_err(|e| {
        ManifestError::single(Diagnostic::new(
            path,
            e.pos.line(),
            e.pos.column(),
            format!("invalid YAML: {}", e.message),
            "check the indentation and quoting here",
        ))
    })?;
    let mut out = vec![path.to_path_buf()];
    if let Some(doc) = parsed.docs.first() {
        collect(path, doc, &mut out);
    }
    Ok(out)
}

/// The string at top-level `key` of a YAML text that need not be a valid manifest (`None`
/// when it is not YAML or has no such string): for reading, e.g., the organization of a
/// manifest that does not load.
pub fn lenient_top_level_str(text: &str, key: &str) -> Option<String> {
    let parsed = super::span::parse(text.strip_prefix('\u{feff}').unwrap_or(text)).ok()?;
    let doc = parsed.docs.first()?;
    string(&doc.entry(key)?.value).map(str::to_string)
}

/// A string scalar's text (not a number's, boolean's or null's).
fn string(node: &Node) -> Option<&str> {
    node.as_str()
        .filter(|_| node.scalar_kind() == Some(ScalarKind::Str))
}

/// Adds the files the manifest (or included file) `doc` at `path` names: its includes (and
/// theirs, each once), config files and inventories. Unreadable included files are still
/// listed (a watcher sees them appear) but not followed.
fn collect(path: &Path, doc: &Node, out: &mut Vec<PathBuf>) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut add = |v: &Node, key: &str| {
        if let Some(rel) = v.entry(key).and_then(|e| string(&e.value)) {
            let p = dir.join(rel);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    };
    for f in seq(doc, "fragments") {
        add(f, "config_file");
    }
    for t in seq(doc, "templates") {
        for part in seq(t, "parts") {
            add(part, "config_file");
        }
    }
    fn locations<'v>(v: &'v Node, add: &mut dyn FnMut(&'v Node, &str)) {
        for loc in seq(v, "locations") {
            for machine in seq(loc, "machines") {
                add(machine, "for_each");
                for part in seq(machine, "parts") {
                    add(part, "config_file");
                }
            }
            locations(loc, add);
        }
    }
    locations(doc, &mut add);
    let patterns: Vec<&str> = match doc.entry("include").map(|e| &e.value) {
        Some(Node {
            kind: NodeKind::Seq(items),
            ..
        }) => items.iter().filter_map(string).collect(),
        Some(v) => string(v).into_iter().collect(),
        None => Vec::new(),
    };
    for pattern in patterns {
        for rel in super::expand::glob(&dir, pattern) {
            let p = dir.join(rel);
            if out.contains(&p) {
                continue;
            }
            out.push(p.clone());
            let limit = super::LoadOptions::default().max_file_bytes;
            let included = super::files::read_bounded(&p, limit)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| super::span::parse(t.strip_prefix('\u{feff}').unwrap_or(&t)).ok());
            if let Some(included) = included.as_ref().and_then(|i| i.docs.first()) {
                collect(&p, included, out);
            }
        }
    }
}

fn seq<'v>(v: &'v Node, key: &str) -> impl Iterator<Item = &'v Node> {
    v.entry(key)
        .and_then(|e| match &e.value.kind {
            NodeKind::Seq(items) => Some(items.iter()),
            _ => None,
        })
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(
        manifest: &str,
        includes: &[(String, Vec<u8>)],
        env: &BTreeMap<String, String>,
    ) -> String {
        Digester::new(manifest).finish(includes, env)
    }

    #[test]
    fn top_level_strings_are_read_from_manifests_that_do_not_load() {
        let read = |t: &str| lenient_top_level_str(t, "organization");
        assert_eq!(
            read("\u{feff}organization: acme\nlocations: 3\n").as_deref(),
            Some("acme")
        );
        assert_eq!(read("organization: '12'\n").as_deref(), Some("12"));
        assert_eq!(read("organization: 12\n"), None);
        assert_eq!(read("organization: [unclosed\n"), None);
        assert_eq!(read("- organization: a\n"), None);
    }

    #[test]
    fn digest_changes_with_every_input() {
        let none = BTreeMap::new();
        let base = digest("a", &[("x.json".into(), b"{}".to_vec())], &none);
        assert_eq!(base.len(), 64);
        assert_ne!(
            base,
            digest("b", &[("x.json".into(), b"{}".to_vec())], &none)
        );
        assert_ne!(
            base,
            digest("a", &[("y.json".into(), b"{}".to_vec())], &none)
        );
        assert_ne!(
            base,
            digest("a", &[("x.json".into(), b"[]".to_vec())], &none)
        );
        let env = BTreeMap::from([("T".to_string(), "ab".to_string())]);
        assert_ne!(
            base,
            digest("a", &[("x.json".into(), b"{}".to_vec())], &env)
        );
        // Field boundaries are unambiguous.
        assert_ne!(
            digest("ab", &[], &none),
            digest("a", &[("b".into(), vec![])], &none)
        );
    }
}
