//! Keeping secrets secret at rest and on screen: private files, salted hashes, and the ledger
//! of what was ever sensitive.
//!
//! # Files
//! [`create_private_dir`] makes directories 0700 and [`prepare_private_file`] files 0600
//! (`.fleetform/`, `cloud.db` before SQLite opens it — SQLite gives its `-wal` and `-shm`
//! files the database's own mode — and saved plans).
//!
//! # Salted hashes
//! A saved plan names each sensitive value by [`salted`]`(salt, sha256)`, with a fresh random
//! salt per plan ([`new_salt`]), so a plan file reveals neither the value nor whether two
//! plans hold the same one, and no precomputed table of hashes applies.
//!
//! # The ledger
//! The manifest marks a string sensitive by where it is (`${env:NAME}` at a JSON pointer).
//! Once a secret is in the cloud it stays there after the manifest changes: the key may be
//! renamed, or the reference replaced by a literal, and the planner's "before" side would then
//! show the old secret. The [`Ledger`] (`.fleetform/sensitive.json`, 0600) remembers, for
//! each part and fragment, every pointer that was ever sensitive in a manifest loaded here,
//! and a salted hash of every value that ever was. [`Ledger::mark_plan`] marks those pointers
//! and values in the cloud's side of every config change, and [`Ledger::mask`] masks them in
//! any config shown (e.g. `history`).
//!
//! Decision where the issue was silent: the ledger is local to the directory fleetform runs
//! in (next to the local cloud's state). A secret is also recognised anywhere by value while
//! the manifest still references it (see [`with_known_secrets_marked`]). The wanted
//! side of a plan is the manifest's own content and is masked where the manifest marks it.

use crate::model::{Desired, SensitiveValue};
use crate::plan::{Op, Plan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) with mode 0700. An existing `.fleetform` directory is
/// tightened to 0700 too; other existing directories are left as they are.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    if dir.file_name().is_some_and(|n| n == ".fleetform") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes sure `path` exists with mode 0600 (creating it empty, or tightening an existing
/// file), so that whatever writes it next writes a private file.
pub fn prepare_private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    drop(opts.open(path)?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A fresh random salt (128 bits, hex).
pub fn new_salt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The salted form of a value's SHA-256 (hex): SHA-256 over the salt and the hash.
pub fn salted(salt: &str, sha256_hex: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"fleetform-salted-v1\0");
    h.update(salt.as_bytes());
    h.update(b"\0");
    h.update(sha256_hex.as_bytes());
    hex::encode(h.finalize())
}

/// SHA-256 (hex) of a string.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The ledger's file name inside `.fleetform/`.
pub const LEDGER_FILE: &str = "sensitive.json";

/// What was ever sensitive (see the module docs).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Salt for `values`; random per ledger.
    salt: String,
    /// `part HQ/rover/rover-main` or `fragment kit` → JSON pointers once sensitive there.
    pointers: BTreeMap<String, BTreeSet<String>>,
    /// [`salted`] hashes of every value once sensitive.
    values: BTreeSet<String>,
    /// Where it is kept; `None` for one that is not saved.
    #[serde(skip)]
    path: Option<PathBuf>,
    /// Whether `remember` added anything since loading.
    #[serde(skip)]
    changed: bool,
}

/// The ledger key of a part or fragment.
pub fn resource_key(kind: &str, path: &str) -> String {
    format!("{kind} {path}")
}

impl Ledger {
    /// The ledger kept in `dir` (`.fleetform/`), or an empty one when there is none yet or
    /// it cannot be read (it is then rewritten on [`Ledger::save`]).
    pub fn load(dir: &Path) -> Ledger {
        let path = dir.join(LEDGER_FILE);
        let mut ledger = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Ledger>(&b).ok())
            .filter(|l| !l.salt.is_empty())
            .unwrap_or_else(|| Ledger {
                salt: new_salt(),
                ..Ledger::default()
            });
        ledger.path = Some(path);
        ledger
    }

    /// An empty ledger that is never saved.
    pub fn in_memory() -> Ledger {
        Ledger {
            salt: new_salt(),
            ..Ledger::default()
        }
    }

    /// Records every sensitive pointer and value of `desired`'s configs.
    pub fn remember(&mut self, desired: &Desired) {
        let fragments = desired
            .fragments
            .iter()
            .map(|f| (resource_key("fragment", &f.name), &f.config));
        let machines = desired.all_machines();
        let parts = machines.iter().flat_map(|(_, m)| {
            m.parts
                .iter()
                .map(|p| (resource_key("part", &p.path), &p.config))
        });
        for (key, config) in fragments.chain(parts) {
            if config.sensitive.is_empty() {
                continue;
            }
            let value = config.value();
            for s in &config.sensitive {
                let added = self
                    .pointers
                    .entry(key.clone())
                    .or_default()
                    .insert(s.pointer.clone());
                let hash = match value.pointer(&s.pointer) {
                    Some(Value::String(v)) => sha256_hex(v),
                    _ => s.sha256.clone(),
                };
                let value_added = self.values.insert(salted(&self.salt, &hash));
                self.changed |= added || value_added;
            }
        }
    }

    /// Saves the ledger (mode 0600, in a 0700 directory) if `remember` added anything.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic_private(path, &bytes)
    }

    /// Whether `s` is a value that was once sensitive.
    pub fn is_secret(&self, s: &str) -> bool {
        !self.values.is_empty() && self.values.contains(&salted(&self.salt, &sha256_hex(s)))
    }

    /// The pointers once sensitive in the resource `key` (see [`resource_key`]).
    fn pointers_of(&self, key: &str) -> impl Iterator<Item = &String> {
        self.pointers.get(key).into_iter().flatten()
    }

    /// Every string in `value` that is at a pointer once sensitive for `key`, or that equals a
    /// value once sensitive: `(pointer, sha256 of the string)`.
    pub fn find(&self, key: &str, value: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for p in self.pointers_of(key) {
            if let Some(v) = value.pointer(p) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                found.push((p.clone(), sha256_hex(&text)));
            }
        }
        if !self.values.is_empty() {
            walk_strings(value, &mut String::new(), &mut |pointer, s| {
                if self.is_secret(s) && !found.iter().any(|(p, _)| p == pointer) {
                    found.push((pointer.to_string(), sha256_hex(s)));
                }
            });
        }
        found
    }

    /// Replaces, in `value`, everything [`Ledger::find`] finds by `"(sensitive)"`.
    pub fn mask(&self, key: &str, value: &mut Value) {
        for (pointer, _) in self.find(key, value) {
            if let Some(slot) = value.pointer_mut(&pointer) {
                *slot = Value::String("(sensitive)".into());
            }
        }
    }

    /// [`Ledger::mask`] on a compact config.
    pub fn mask_config(&self, key: &str, config: &mut crate::model::ConfigJson) {
        let mut value = config.to_value();
        if !self.find(key, &value).is_empty() {
            self.mask(key, &mut value);
            *config = crate::model::ConfigJson::from_value(&value);
        }
    }

    /// Marks, on the cloud's side of every config change of `plan` (`config_before`), what
    /// the ledger knows to be sensitive, so that every output of the plan masks it.
    pub fn mark_plan(&self, plan: &mut Plan) {
        if self.pointers.is_empty() && self.values.is_empty() {
            return;
        }
        for change in &mut plan.changes {
            let kind = change.kind.as_str();
            let mut keys = vec![resource_key(kind, &change.path)];
            if let Some(from) = &change.from_path {
                keys.push(resource_key(kind, from));
            }
            let Some(cfg) = change.config_before.as_mut() else {
                continue;
            };
            for key in &keys {
                let found = self.find(key, &cfg.value.to_value());
                mark(cfg, found);
            }
        }
    }
}

/// Marks each `(pointer, sha256)` of `found` sensitive in `cfg` (once), as a value known to
/// be secret rather than one the manifest resolves (no template, no environment names).
pub fn mark(cfg: &mut crate::plan::PlannedConfig, found: Vec<(String, String)>) {
    for (pointer, sha256) in found {
        if !cfg.sensitive.iter().any(|s| s.pointer == pointer) {
            cfg.sensitive.push(SensitiveValue {
                pointer,
                template: String::new(),
                env: vec![],
                sha256,
            });
        }
    }
}

/// Calls `f(pointer, string)` for every string under `v` (RFC 6901 pointers).
pub fn walk_strings(v: &Value, pointer: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(pointer, s),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk_strings(x, pointer, f);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                walk_strings(x, pointer, f);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// Rewrites every sensitive hash of `plan` (in every config: both sides and the operation's)
/// with `rewrite`; used to salt a plan before saving it. Returns whether there was any.
pub fn rewrite_hashes(plan: &mut Plan, rewrite: &dyn Fn(&str) -> String) -> bool {
    let mut any = false;
    use crate::plan::Op;
    for change in &mut plan.changes {
        let op_config = match &mut change.op {
            Op::CreateFragment { config, .. } => Some(config),
            Op::UpdateFragment { config, .. }
            | Op::CreatePart { config, .. }
            | Op::UpdatePart { config, .. } => config.as_mut(),
            _ => None,
        };
        let configs = [
            change.config_before.as_mut(),
            change.config_after.as_mut(),
            op_config,
        ];
        for cfg in configs.into_iter().flatten() {
            for s in &mut cfg.sensitive {
                s.sha256 = rewrite(&s.sha256);
                any = true;
            }
        }
    }
    any
}

/// The SHA-256 hashes of every sensitive value any config of the plan marks.
fn sensitive_hashes(plan: &Plan) -> BTreeSet<String> {
    let mut hashes = BTreeSet::new();
    for c in &plan.changes {
        let op_config = match &c.op {
            Op::CreatePart { config, .. }
            | Op::UpdatePart { config, .. }
            | Op::UpdateFragment { config, .. } => config.as_ref(),
            Op::CreateFragment { config, .. } => Some(config),
            _ => None,
        };
        for cfg in [c.config_before.as_ref(), c.config_after.as_ref(), op_config]
            .into_iter()
            .flatten()
        {
            hashes.extend(cfg.sensitive.iter().map(|s| s.sha256.clone()));
        }
    }
    hashes
}

/// `plan`, with every string of a cloud-side config (`config_before`) that equals a known
/// sensitive value marked sensitive too. Every renderer and the saved plan go through this.
///
/// The planner marks the cloud's config as sensitive at the pointers the manifest marks. But
/// the cloud may still hold a secret elsewhere — the manifest moved it to another pointer, or
/// another part holds the same value — and nothing else would know that string is secret.
/// Only `config_before` is touched: it is for display, while the configs that apply writes
/// (`config_after`, the op's) are left exactly as planned.
pub fn with_known_secrets_marked(plan: &Plan) -> Cow<'_, Plan> {
    let hashes = sensitive_hashes(plan);
    if hashes.is_empty() {
        return Cow::Borrowed(plan);
    }
    let mut plan = plan.clone();
    for cfg in plan
        .changes
        .iter_mut()
        .filter_map(|c| c.config_before.as_mut())
    {
        let mut found = vec![];
        walk_strings(
            &cfg.value.to_value(),
            &mut String::new(),
            &mut |pointer, s| {
                let h = sha256_hex(s);
                if hashes.contains(&h) {
                    found.push((pointer.to_string(), h));
                }
            },
        );
        mark(cfg, found);
    }
    Cow::Owned(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salting_depends_on_the_salt() {
        let h = sha256_hex("hunter2");
        assert_ne!(salted("a", &h), salted("b", &h));
        assert_eq!(salted("a", &h), salted("a", &h));
        assert_ne!(salted("a", &h), h);
        assert_ne!(new_salt(), new_salt());
    }

    #[test]
    fn the_ledger_remembers_pointers_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let text = "version: 1
organization: a
locations:
  - name: HQ
    machines:
      - name: r
        parts:
          - name: r-main
            config: { auth: { token: '${env:TOKEN}' } }
";
        let d = crate::manifest::parse_str(text, Path::new("m.yaml"), &|_| Some("s3cr3t".into()))
            .unwrap();
        let mut ledger = Ledger::load(dir.path());
        ledger.remember(&d);
        ledger.save().unwrap();
        let saved = std::fs::read_to_string(dir.path().join(LEDGER_FILE)).unwrap();
        assert!(!saved.contains("s3cr3t"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(LEDGER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ledger = Ledger::load(dir.path());
        // By pointer, whatever the value is now.
        let key = resource_key("part", "HQ/r/r-main");
        let mut cloud = serde_json::json!({"auth": {"token": "other"}, "x": "s3cr3t", "y": "ok"});
        ledger.mask(&key, &mut cloud);
        assert_eq!(
            cloud,
            serde_json::json!({"auth": {"token": "(sensitive)"}, "x": "(sensitive)", "y": "ok"})
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_files_and_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join(".fleetform");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&d).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        let f = d.join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_private_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
    }
}
