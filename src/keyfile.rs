//! Where the secret of an API key fleetform creates (`apply`, `watch`) or rotates
//! (`fleetform keys rotate`) goes: the cloud shows a secret only once, so it is written at
//! once to a private file, one per key, and nowhere else (never to a plan, a log, an error
//! or the manifest).
//!
//! The file is `<dir>/<name>.env` (the default directory is [`DEFAULT_DIR`]; characters of
//! the name other than letters, digits, `-`, `_` and `.` become `_`), mode 0600 in a 0700
//! directory, written whole (a rotation replaces it), and reads as shell. The directory gets
//! a `.gitignore` of `*` (unless it has one), since manifests live in git repositories and a
//! secret must never be committed by accident:
//!
//! ```text
//! # API key "line-robot" (fleetform); keep this file secret
//! export VIAM_API_KEY_ID=…
//! export VIAM_API_KEY=…
//! ```

use crate::model::KeySecret;
use std::path::{Path, PathBuf};

/// The default directory of key files, next to the local cloud's state.
pub const DEFAULT_DIR: &str = ".fleetform/keys";

/// The file name of key `name`'s file.
pub fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!("{}.env", if safe.is_empty() { "key" } else { safe })
}

/// The file's text.
pub fn contents(name: &str, secret: &KeySecret) -> String {
    format!(
        "# API key {name:?} (fleetform); keep this file secret\nexport VIAM_API_KEY_ID={}\nexport VIAM_API_KEY={}\n",
        secret.id,
        secret.key.expose()
    )
}

/// Writes key `name`'s id and secret to its file in `dir` (created 0700 if missing); returns
/// the file's path.
pub fn write(dir: &Path, name: &str, secret: &KeySecret) -> std::io::Result<PathBuf> {
    crate::sensitive::create_private_dir(dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        crate::fsutil::write_atomic(&ignore, b"# API key secrets written by fleetform\n*\n")?;
    }
    let path = dir.join(file_name(name));
    crate::fsutil::write_atomic_private(&path, contents(name, secret).as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sensitive;

    #[test]
    fn names_become_safe_file_names() {
        assert_eq!(file_name("line-robot"), "line-robot.env");
        assert_eq!(file_name("ci deploy/../x"), "ci_deploy_.._x.env");
        assert_eq!(file_name("..."), "key.env");
    }

    #[test]
    fn the_file_is_private_and_reads_as_shell() {
        let dir = tempfile::tempdir().unwrap();
        let secret = KeySecret {
            id: "3b4e28ba-2fa1-11d2-883f-0016d3cca427".into(),
            key: Sensitive::new("s3cret"),
        };
        let path = write(&dir.path().join("keys"), "ci", &secret).unwrap();
        let ignore = std::fs::read_to_string(dir.path().join("keys/.gitignore")).unwrap();
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("export VIAM_API_KEY_ID=3b4e28ba-2fa1-11d2-883f-0016d3cca427\n"));
        assert!(text.contains("export VIAM_API_KEY=s3cret\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
