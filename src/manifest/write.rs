//! Paths written into a manifest (`import`'s `config_file:` entries) that the manifest can
//! follow. Files themselves are written whole by [`crate::fsutil`].

use std::path::{Component, Path};

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
