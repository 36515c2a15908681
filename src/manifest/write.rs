//! Writing what fleetform makes to disk: manifests and config files (`import`, `fmt`) and
//! saved plans (`plan --out`). Every write is atomic — readers see the old file or the new one,
//! never a part — and paths written into a manifest are ones it can follow.

use std::io::Write;
use std::path::{Component, Path};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file next to it, flushed to disk, then renamed over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, false)
}

/// [`write_atomically`], with the file created 0600 (saved plans: they name what is
/// sensitive, and where).
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, true)
}

fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = if private {
            crate::sensitive::prepare_private_file(&tmp)?;
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&tmp)?
        } else {
            std::fs::File::create(&tmp)?
        };
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `target` as a path relative to `base` (both relative to the current directory, or
/// absolute), `/`-separated, for a `config_file:` that the manifest in `base` can follow.
pub fn relative_to(base: &Path, target: &Path) -> std::io::Result<String> {
    if target.is_absolute() && !base.is_absolute() && base == Path::new(".") {
        return Ok(target.to_string_lossy().replace('\\', "/"));
    }
    if base == Path::new(".") && target.is_relative() {
        let s = target.to_string_lossy().replace('\\', "/");
        return Ok(s.trim_start_matches("./").to_string());
    }
    let abs = |p: &Path| std::path::absolute(p);
    let (base, target) = (abs(base)?, abs(target)?);
    let clean = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for c in p.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other.as_os_str().to_string_lossy().into_owned()),
            }
        }
        out
    };
    let (b, t) = (clean(&base), clean(&target));
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return Ok(target.to_string_lossy().replace('\\', "/"));
    }
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(t[common..].iter().cloned());
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["plan.json"]);
    }

    #[test]
    fn atomic_write_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/plan.json");
        assert!(write_atomically(&path, b"x").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn relative_paths_for_config_files() {
        assert_eq!(
            relative_to(Path::new("."), Path::new("configs")).unwrap(),
            "configs"
        );
        assert_eq!(
            relative_to(Path::new("."), Path::new("./configs")).unwrap(),
            "configs"
        );
        assert_eq!(
            relative_to(Path::new("out"), Path::new("configs")).unwrap(),
            "../configs"
        );
        assert_eq!(
            relative_to(Path::new("out"), Path::new("out/configs")).unwrap(),
            "configs"
        );
        assert_eq!(
            relative_to(Path::new("/a/b"), Path::new("/a/c/d")).unwrap(),
            "../c/d"
        );
    }
}
