//! The organization each API key saw last time, so that the next `plan` or `apply` with that
//! key can guess it ([`crate::cloud::observe::ObserveOptions::organization_guess`]) and list
//! its locations and fragments together with the organizations: one round trip fewer before
//! the parts are read. Like `kubectl`'s discovery cache, it only saves time; it decides
//! nothing. A guess is used only when the key sees exactly that organization, so a wrong,
//! stale or tampered entry costs the reads made for it and nothing else.
//!
//! # The file
//!
//! `organizations` in the cache directory: `$FLEETFORM_CACHE_DIR` if set (set to the empty
//! string, there is no cache at all), else `$XDG_CACHE_HOME/fleetform`, else
//! `$HOME/.cache/fleetform`. One line per API key, the most recent first, at most
//! [`MAX_ENTRIES`]: the SHA-256 (hex) of the key's id, a space, the organization id. An API
//! key belongs to one organization, so the cloud's URL is not part of the entry (a local
//! server restarted on another port over the same store still guesses right). The key id
//! is not written as such, and never the key; an organization id is no credential, but the
//! file is still private (mode 0600, written whole and atomically). It is written only when the organization seen differs from the
//! guess, so a run that guessed right writes nothing.
//!
//! A cache that cannot be read or written is no error: the command goes on without it (and
//! says why at debug level, `-vv`).

use std::path::{Path, PathBuf};

/// Most entries kept: one per cloud and key used on this machine, the oldest dropped first.
pub const MAX_ENTRIES: usize = 64;

/// Most bytes read from the file (a line is under 150 bytes); a longer file is ignored.
const MAX_BYTES: u64 = 64 * 1024;

/// The file name in the cache directory.
const FILE: &str = "organizations";

/// The cache's entry for one API key: what it guesses, and where to record what was seen.
#[derive(Debug, Clone)]
pub struct OrgCache {
    /// The file; `None` when there is no cache directory.
    path: Option<PathBuf>,
    /// The hex SHA-256 of the key id.
    key: String,
    /// The organization recorded for them, if any.
    guess: Option<String>,
}

impl OrgCache {
    /// The entry of `key_id` in the cache directory the environment names (see the module
    /// docs).
    pub fn open(key_id: &str) -> OrgCache {
        OrgCache::open_in(cache_dir().as_deref(), key_id)
    }

    /// The entry of `key_id` in `dir` (`None`: no cache).
    pub fn open_in(dir: Option<&Path>, key_id: &str) -> OrgCache {
        let key = entry_key(key_id);
        let path = dir.map(|d| d.join(FILE));
        let guess = path
            .as_deref()
            .and_then(read_entries)
            .and_then(|entries| entries.into_iter().find(|(k, _)| *k == key))
            .map(|(_, org)| org);
        OrgCache { path, key, guess }
    }

    /// The organization this key saw last time.
    pub fn guess(&self) -> Option<&str> {
        self.guess.as_deref()
    }

    /// Records that this key sees exactly `org_id`. Writes the file only when that
    /// differs from the guess; failures are logged at debug level and otherwise ignored.
    pub fn remember(&self, org_id: &str) {
        if self.guess.as_deref() == Some(org_id) || !is_org_id(org_id) {
            return;
        }
        let Some(path) = &self.path else {
            return;
        };
        if let Err(e) = self.write(path, org_id) {
            tracing::debug!(error = %e, path = %path.display(), "cannot update the organization cache");
        }
    }

    fn write(&self, path: &Path, org_id: &str) -> std::io::Result<()> {
        let mut entries = read_entries(path).unwrap_or_default();
        entries.retain(|(k, _)| *k != self.key);
        entries.insert(0, (self.key.clone(), org_id.to_string()));
        entries.truncate(MAX_ENTRIES);
        let text: String = entries
            .iter()
            .map(|(k, org)| format!("{k} {org}\n"))
            .collect();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic_private(path, text.as_bytes())
    }
}

/// The cache directory the environment names (see the module docs).
fn cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name);
    match var("FLEETFORM_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let base = match var("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
                Some(xdg) => PathBuf::from(xdg),
                None => PathBuf::from(var("HOME").filter(|h| !h.is_empty())?).join(".cache"),
            };
            Some(base.join("fleetform"))
        }
    }
}

/// The entry key of `key_id`, which is not written as such.
fn entry_key(key_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key_id.as_bytes()))
}

/// Whether `id` may be written as an organization id (one word, no line breaks).
fn is_org_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The file's entries, in order; `None` when it cannot be read (or is too long). Malformed
/// lines are skipped.
fn read_entries(path: &Path) -> Option<Vec<(String, String)>> {
    use std::io::Read;
    let mut text = String::new();
    let file = std::fs::File::open(path).ok()?;
    file.take(MAX_BYTES + 1).read_to_string(&mut text).ok()?;
    if text.len() as u64 > MAX_BYTES {
        return None;
    }
    let entries = text
        .lines()
        .filter_map(|line| {
            let (key, org) = line.split_once(' ')?;
            let well_formed =
                key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) && is_org_id(org);
            well_formed.then(|| (key.to_string(), org.to_string()))
        })
        .take(MAX_ENTRIES)
        .collect();
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_key_without_writing_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        let a = OrgCache::open_in(d, "key-a");
        assert_eq!(a.guess(), None);
        a.remember("org-1");
        OrgCache::open_in(d, "key-b").remember("org-2");
        assert_eq!(OrgCache::open_in(d, "key-a").guess(), Some("org-1"));
        assert_eq!(OrgCache::open_in(d, "key-b").guess(), Some("org-2"));
        assert_eq!(OrgCache::open_in(d, "key-c").guess(), None);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("key-a"), "{text}");
        assert_eq!(text.lines().count(), 2);
        // The most recent first; a key seeing another organization replaces its entry.
        OrgCache::open_in(d, "key-a").remember("org-3");
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().next().unwrap().ends_with(" org-3"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_right_guess_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        OrgCache::open_in(d, "k").remember("org-1");
        let path = dir.path().join(FILE);
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + "\n").unwrap();
        let cache = OrgCache::open_in(d, "k");
        assert_eq!(cache.guess(), Some("org-1"));
        cache.remember("org-1");
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("\n\n"));
    }

    #[test]
    fn keeps_the_most_recent_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        for i in 0..MAX_ENTRIES + 5 {
            OrgCache::open_in(d, &format!("key-{i}")).remember(&format!("org-{i}"));
        }
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), MAX_ENTRIES);
        assert_eq!(OrgCache::open_in(d, "key-0").guess(), None);
        let last = MAX_ENTRIES + 4;
        assert_eq!(
            OrgCache::open_in(d, &format!("key-{last}")).guess(),
            Some(format!("org-{last}").as_str())
        );
    }

    #[test]
    fn a_bad_file_is_no_cache_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let key = entry_key("k");
        // Malformed lines are skipped, the rest is used.
        std::fs::write(
            &path,
            format!("junk\n{key} org id with spaces\n{key} org-9\n"),
        )
        .unwrap();
        assert_eq!(
            OrgCache::open_in(Some(dir.path()), "k").guess(),
            Some("org-9")
        );
        // Too long: ignored, then rewritten.
        std::fs::write(&path, "x".repeat(MAX_BYTES as usize + 10)).unwrap();
        let cache = OrgCache::open_in(Some(dir.path()), "k");
        assert_eq!(cache.guess(), None);
        cache.remember("org-1");
        assert_eq!(
            OrgCache::open_in(Some(dir.path()), "k").guess(),
            Some("org-1")
        );
        // No directory: nothing, quietly.
        let none = OrgCache::open_in(None, "k");
        assert_eq!(none.guess(), None);
        none.remember("org-1");
        // An id that is not one word is never written.
        let cache = OrgCache::open_in(Some(dir.path()), "other");
        cache.remember("a b\nc");
        assert_eq!(OrgCache::open_in(Some(dir.path()), "other").guess(), None);
    }
}
