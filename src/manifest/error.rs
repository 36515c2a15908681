//! Diagnostics: what went wrong in a manifest, where, and how to fix it.
//!
//! Every problem the manifest module finds becomes a [`Diagnostic`] naming a file, a 1-based
//! line and column, a message and a hint. A [`ManifestError`] carries all of them, sorted by
//! position, so one run shows every problem at once. Messages never contain values resolved
//! from the environment.

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a manifest or in a config file it includes.
///
/// Displays as `path/to/fleet.yaml:12:9: error: <message>` followed, when there is a hint, by
/// a second line `  hint: <hint>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the problem is in: the manifest, or a `config_file` it includes.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Diagnostic {
    /// A diagnostic at `line`:`column` of `file`.
    pub fn new(
        file: &Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: line.max(1),
            column: column.max(1),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Why a manifest could not be loaded: every problem found, sorted by file and position.
///
/// Displays one block per diagnostic (see [`Diagnostic`]), separated by newlines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render(&self.diagnostics))]
pub struct ManifestError {
    /// At least one diagnostic.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestError {
    /// An error holding a single diagnostic.
    pub fn single(diagnostic: Diagnostic) -> Self {
        ManifestError {
            diagnostics: vec![diagnostic],
        }
    }

    /// With a template's problem shown for a few instances, the rest counted (see
    /// `origin::collapse_instances`).
    pub(crate) fn collapsed(self) -> Self {
        ManifestError {
            diagnostics: super::origin::collapse_instances(self.diagnostics),
        }
    }

    /// Sorts `diagnostics` (the manifest's own first, then included files by path; each by
    /// line and column), drops exact duplicates, and wraps them.
    pub(crate) fn sorted(manifest: &Path, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by(|a, b| {
            (a.file != manifest, &a.file, a.line, a.column).cmp(&(
                b.file != manifest,
                &b.file,
                b.line,
                b.column,
            ))
        });
        diagnostics.dedup();
        ManifestError { diagnostics }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_message_and_hint() {
        let d = Diagnostic::new(
            Path::new("fleet.yaml"),
            12,
            9,
            "unknown key `nmae` in a machine",
            "did you mean `name`?",
        );
        assert_eq!(
            d.to_string(),
            "fleet.yaml:12:9: error: unknown key `nmae` in a machine\n  hint: did you mean `name`?"
        );
    }

    #[test]
    fn sorts_manifest_first_then_by_position() {
        let m = Path::new("fleet.yaml");
        let other = Path::new("parts/a.json");
        let err = ManifestError::sorted(
            m,
            vec![
                Diagnostic::new(other, 1, 1, "c", ""),
                Diagnostic::new(m, 9, 1, "b", ""),
                Diagnostic::new(m, 2, 5, "a", ""),
                Diagnostic::new(m, 2, 5, "a", ""),
            ],
        );
        let order: Vec<_> = err.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(
            err.to_string(),
            "fleet.yaml:2:5: error: a\nfleet.yaml:9:1: error: b\nparts/a.json:1:1: error: c"
        );
    }
}
