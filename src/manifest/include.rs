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
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        ManifestError::single(Diagnostic::new(
            path,
            line,
            column,
            format!("invalid YAML: {e}"),
            "check the indentation and quoting here",
        ))
    })?;
    let mut out = vec![path.to_path_buf()];
    collect(path, &doc, &mut out);
    Ok(out)
}

/// Adds the files the manifest (or included file) `doc` at `path` names: its includes (and
/// theirs, each once), config files and inventories. Unreadable included files are still
/// listed (a watcher sees them appear) but not followed.
fn collect(path: &Path, doc: &serde_yaml::Value, out: &mut Vec<PathBuf>) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut add = |v: &serde_yaml::Value, key: &str| {
        if let Some(rel) = v.get(key).and_then(serde_yaml::Value::as_str) {
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
    fn locations<'v>(v: &'v serde_yaml::Value, add: &mut dyn FnMut(&'v serde_yaml::Value, &str)) {
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
    let patterns: Vec<&str> = match doc.get("include") {
        Some(serde_yaml::Value::String(s)) => vec![s.as_str()],
        Some(v) => v
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(serde_yaml::Value::as_str)
            .collect(),
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
                .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok());
            if let Some(included) = included {
                collect(&p, &included, out);
            }
        }
    }
}

fn seq<'v>(v: &'v serde_yaml::Value, key: &str) -> impl Iterator<Item = &'v serde_yaml::Value> {
    v.get(key)
        .and_then(serde_yaml::Value::as_sequence)
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
