//! Where a node of the manifest's tree came from: which file, and for a template's expansion
//! which instance.
//!
//! Every [`Pos`] carries `src`, an index into the [`Origins`] of one load. Index 0 is the
//! manifest itself; included manifests and inventories get one each, and each template
//! instance gets its own (naming the machine, the template and the inventory row), so a
//! diagnostic inside an expanded template reads
//! `fleet.yaml:12:9: error: in machine rover-07 (template rover, inventory/field.csv row 8): ...`.

use super::error::Diagnostic;
use super::span::Pos;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One file, or one template instance inside a file.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The file as diagnostics name it.
    pub file: PathBuf,
    /// `machine rover-07 (template rover, inventory/field.csv row 8)` for an instance.
    pub instance: Option<Rc<str>>,
    /// The instance's `${var:NAME}` values (config files of its parts use them).
    pub vars: Option<Rc<BTreeMap<String, String>>>,
}

/// The origins of one load.
#[derive(Clone, Debug)]
pub struct Origins {
    list: Vec<Origin>,
}

impl Origins {
    /// Only the manifest (or a config file) itself.
    pub fn single(file: &Path) -> Self {
        Origins {
            list: vec![Origin {
                file: file.to_path_buf(),
                instance: None,
                vars: None,
            }],
        }
    }

    /// Adds `origin`; returns its index for [`Pos::src`].
    pub fn add(&mut self, origin: Origin) -> u32 {
        self.list.push(origin);
        u32::try_from(self.list.len() - 1).unwrap_or(u32::MAX)
    }

    /// The origin of `pos` (the manifest for an unknown index).
    pub fn get(&self, pos: Pos) -> &Origin {
        self.list
            .get(pos.src as usize)
            .unwrap_or_else(|| &self.list[0])
    }

    /// The manifest's own file.
    pub fn manifest(&self) -> &Path {
        &self.list[0].file
    }

    /// A diagnostic at `pos`, in its file, prefixed with its instance when it has one.
    pub fn diag(
        &self,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Diagnostic {
        let origin = self.get(pos);
        let message = message.into();
        let message = match &origin.instance {
            Some(instance) => format!("in {instance}: {message}"),
            None => message,
        };
        Diagnostic::new(&origin.file, pos.line(), pos.column(), message, hint)
    }

    /// `file:line:column` of `pos`, to name a second place in a message.
    pub fn place(&self, pos: Pos) -> String {
        format!(
            "{}:{}:{}",
            self.get(pos).file.display(),
            pos.line,
            pos.column
        )
    }

    /// `line N` when `at` is in the same file as `from`, else `file:N`.
    pub fn line_ref(&self, at: Pos, from: Pos) -> String {
        let (a, b) = (self.get(at), self.get(from));
        if a.file == b.file {
            format!("line {}", at.line)
        } else {
            format!("{}:{}", a.file.display(), at.line)
        }
    }
}

/// How many instances a problem of a template is shown for before the rest are counted.
pub const INSTANCES_SHOWN: usize = 3;

/// A problem in a template is found once per instance; past [`INSTANCES_SHOWN`] instances
/// at the same place with the same hint, the others are counted on the last one shown
/// (`(and 997 more instances)`), so a typo in a template of 1,000 machines reads in a few
/// lines. `diagnostics` are sorted.
pub fn collapse_instances(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    use std::collections::HashMap;
    let instance_free = |d: &Diagnostic| -> Option<String> {
        // The message names the instance's own resources; the place and the hint do not.
        d.message.strip_prefix("in machine ")?;
        Some(format!(
            "{}:{}:{}\u{0}{}",
            d.file.display(),
            d.line,
            d.column,
            d.hint
        ))
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for d in &diagnostics {
        if let Some(k) = instance_free(d) {
            *counts.entry(k).or_default() += 1;
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(diagnostics.len());
    for mut d in diagnostics {
        let Some(k) = instance_free(&d) else {
            out.push(d);
            continue;
        };
        let n = seen.entry(k.clone()).or_default();
        *n += 1;
        let total = counts[&k];
        if *n < INSTANCES_SHOWN || total == INSTANCES_SHOWN {
            out.push(d);
        } else if *n == INSTANCES_SHOWN {
            d.message.push_str(&format!(
                " (and {} more instances)",
                total - INSTANCES_SHOWN
            ));
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_instances_of_one_problem_are_counted() {
        let d = |i: usize| {
            Diagnostic::new(
                Path::new("f.yaml"),
                7,
                9,
                format!("in machine r{i} (template t, f.csv row {i}): unknown key `mian`"),
                "h",
            )
        };
        let other = Diagnostic::new(Path::new("f.yaml"), 8, 1, "other", "");
        let out = collapse_instances((1..=10).map(d).chain([other.clone()]).collect());
        assert_eq!(out.len(), 4);
        assert!(
            out[2].message.ends_with("`mian` (and 7 more instances)"),
            "{out:?}"
        );
        assert_eq!(out[3], other);
        assert_eq!(collapse_instances((1..=3).map(d).collect()).len(), 3);
    }
}
