//! Files written whole: readers see the old file or the new one, never a part.
//!
//! The bytes go into a temporary file in the same directory (named `.<name>.<random>`, so
//! that a crash leaves nothing that looks like the real file), flushed to disk, then renamed
//! over the target with [`tempfile::NamedTempFile::persist`]. If anything fails, the
//! temporary file is removed and the target is untouched.
//!
//! [`write_atomic`] creates the file as `File::create` would (0666 less the umask: 0644 for
//! most users); [`write_atomic_private`] creates it 0600 from the first byte (saved plans and
//! the ledger of sensitive values name what is sensitive, and where).

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, 0o666)
}

/// [`write_atomic`], the file readable and writable by its owner only (mode 0600).
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, 0o600)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(names(dir.path()), ["plan.json"]);
    }

    #[test]
    fn into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/plan.json");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_and_others_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let private = dir.path().join("plan.json");
        std::fs::write(&private, "old").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic_private(&private, b"secret").unwrap();
        assert_eq!(mode(&private), 0o600);
        // The same mode as a file made by `File::create`.
        let created = dir.path().join("created");
        std::fs::File::create(&created).unwrap();
        let plain = dir.path().join("fleet.yaml");
        write_atomic(&plain, b"x").unwrap();
        assert_eq!(mode(&plain), mode(&created));
        assert_eq!(names(dir.path()).len(), 3);
    }
}
