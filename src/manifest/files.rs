//! Reading the manifest and its config files safely: bounded, regular files only, inside the
//! manifest's root.
//!
//! A manifest may come from someone else (a pull request, a watched git branch), so reading it
//! must not let it choose what fleetform reads or how much:
//! - Every file is read with a size limit ([`LoadOptions::max_file_bytes`], 64 MiB by
//!   default; `--max-manifest-size` or `FLEETFORM_MAX_MANIFEST_SIZE` changes it). A file that
//!   grows while being read is cut at the limit and refused, never read to the end.
//! - Only regular files are read. Devices (`/dev/zero`), FIFOs and directories are refused; a
//!   file is opened non-blocking so that a FIFO swapped in after the check cannot hang us.
//! - A `config_file` path is relative and stays inside the root ([`LoadOptions::root`]; in
//!   `watch --git` mode the checkout; otherwise [`default_root`]: the git work tree holding
//!   the manifest, else the current directory when the manifest is below it, else the
//!   manifest's directory): no absolute path, no `..` that climbs above the root, and no
//!   symlink whose target lies outside it. Symlinks that stay inside the root are followed.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The default size limit for the manifest and for each config file: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The limit [`LoadOptions::default`] uses; set once by the command line.
static MAX_FILE_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_FILE_BYTES);

/// Sets the size limit that [`LoadOptions::default`] uses from now on (the command line's
/// `--max-manifest-size`).
pub fn set_default_max_file_bytes(limit: u64) {
    MAX_FILE_BYTES.store(limit.max(1), Ordering::Relaxed);
}

/// How a manifest is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The directory no file may leave. `None` means the manifest's own directory. In
    /// `watch --git` mode it is the checkout, and the manifest itself must be inside it too.
    pub root: Option<PathBuf>,
    /// The largest manifest or config file read, in bytes.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            root: None,
            max_file_bytes: MAX_FILE_BYTES.load(Ordering::Relaxed),
        }
    }
}

/// Why a file was not read. Displays as a phrase: "not a regular file".
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed (not found, permissions, …).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A device, FIFO, socket or directory.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than the limit.
    #[error("larger than the limit of {limit} bytes (see `--max-manifest-size`)")]
    TooLarge {
        /// The limit that applied.
        limit: u64,
    },
}

/// Reads the regular file at `path`, refusing anything larger than `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading blocks until a writer appears; non-blocking it returns
        // at once, and the type check below refuses it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file: File = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Why a path is not allowed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An absolute path (or one with a Windows prefix).
    #[error("is absolute; config_file paths are relative to the manifest")]
    Absolute,
    /// `..` climbs above the root.
    #[error("leaves the manifest's root directory `{0}` through `..`")]
    DotDot(String),
    /// The path, once symlinks are resolved, lies outside the root.
    #[error("resolves (through a symlink) to a place outside the manifest's root directory `{0}`")]
    Symlink(String),
}

/// The root for a manifest in `dir` when none is given: the nearest enclosing directory
/// holding `.git` (the repository, so `../shared/x.json` works between its folders), else the
/// current directory when `dir` is inside it, else `dir` itself. Canonical.
pub fn default_root(dir: &Path) -> std::io::Result<PathBuf> {
    let dir = canonical_root(dir)?;
    if let Some(repo) = dir.ancestors().find(|a| a.join(".git").exists()) {
        return Ok(repo.to_path_buf());
    }
    if let Ok(cwd) = std::env::current_dir().and_then(|c| c.canonicalize())
        && dir.starts_with(&cwd)
    {
        return Ok(cwd);
    }
    Ok(dir)
}

/// The canonical form of a root directory (`""` meaning the current one).
pub fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    root.canonicalize()
}

/// Resolves `rel` (as written in a manifest in `dir`) and checks it stays inside `root`.
///
/// `root` must be canonical (see [`canonical_root`]) and `dir` inside it. The lexical check
/// comes first, so that `../x` is refused even when it does not exist; a path that exists is
/// then canonicalized (following every symlink) and must still be inside `root`. A missing
/// file passes, and reading it reports "not found".
pub fn resolve_inside(root: &Path, dir: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let rel_path = Path::new(rel);
    if rel_path.is_absolute() || rel_path.has_root() {
        return Err(PathError::Absolute);
    }
    let shown = root.display().to_string();
    // Where `dir` is below the root, as a stack of names.
    let dir_abs = canonical_root(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut stack: Vec<std::ffi::OsString> = match dir_abs.strip_prefix(root) {
        Ok(below) => below.iter().map(|c| c.to_os_string()).collect(),
        Err(_) => return Err(PathError::DotDot(shown)),
    };
    for c in rel_path.components() {
        match c {
            Component::Normal(name) => stack.push(name.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                if stack.pop().is_none() {
                    return Err(PathError::DotDot(shown));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
        }
    }
    let lexical: PathBuf = stack.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    match lexical.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(_) => Err(PathError::Symlink(shown)),
        // Missing (or a dangling symlink): a dangling link may still point outside; refuse
        // it when the link itself exists.
        Err(_) if std::fs::symlink_metadata(&lexical).is_ok_and(|m| m.file_type().is_symlink()) => {
            Err(PathError::Symlink(shown))
        }
        Err(_) => Ok(lexical),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = canonical_root(dir.path()).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("a.json"), "{}").unwrap();
        let sub = root.join("sub");
        assert_eq!(
            resolve_inside(&root, &root, "a.json").unwrap(),
            root.join("a.json")
        );
        assert_eq!(
            resolve_inside(&root, &sub, "../a.json").unwrap(),
            root.join("a.json")
        );
        assert_eq!(
            resolve_inside(&root, &root, "./sub/../missing.json").unwrap(),
            root.join("missing.json")
        );
        assert_eq!(
            resolve_inside(&root, &root, "/etc/passwd.json"),
            Err(PathError::Absolute)
        );
        assert!(matches!(
            resolve_inside(&root, &sub, "../../x.json"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            resolve_inside(&root, &root, "sub/../../x.json"),
            Err(PathError::DotDot(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_may_not_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = canonical_root(dir.path()).unwrap();
        std::fs::write(root.join("in.json"), "{}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.json"), root.join("out.json"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("in.json"), root.join("alias.json")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("dir")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x.json", root.join("dangling.json")).unwrap();
        assert!(matches!(
            resolve_inside(&root, &root, "out.json"),
            Err(PathError::Symlink(_))
        ));
        assert!(matches!(
            resolve_inside(&root, &root, "dir/secret.json"),
            Err(PathError::Symlink(_))
        ));
        assert!(matches!(
            resolve_inside(&root, &root, "dangling.json"),
            Err(PathError::Symlink(_))
        ));
        assert_eq!(
            resolve_inside(&root, &root, "alias.json").unwrap(),
            root.join("in.json")
        );
    }

    #[test]
    fn reading_is_bounded_and_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.json");
        std::fs::write(&f, "0123456789").unwrap();
        assert_eq!(read_bounded(&f, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_bounded(&f, 9),
            Err(ReadError::TooLarge { limit: 9 })
        ));
        assert!(matches!(
            read_bounded(dir.path(), 10),
            Err(ReadError::NotRegular)
        ));
        #[cfg(unix)]
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        assert!(matches!(
            read_bounded(&fifo, 10),
            Err(ReadError::NotRegular)
        ));
    }
}
