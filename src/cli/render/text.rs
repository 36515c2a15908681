//! The plan for people at a terminal (`fleetform plan`, the default `--output text`).
//!
//! ```text
//! fleetform plan for organization acme (org-1)
//!
//!   + location Factory/Assembly (declared, not in the cloud)
//!   ~ part HQ/A/arm-01/arm-01-main (config differs)
//!       --- cloud
//!       +++ manifest
//!       @@ -5,7 +5,7 @@
//!       …
//!       last changed in the cloud by alice@acme.example at 2026-01-01T00:00:00Z
//!   → machine HQ/B/arm-01 (from HQ/A/arm-01; moved)
//!       location: "HQ/A" → "HQ/B"
//!   - machine HQ/A/old (not in the manifest (prune))
//!
//! Unmanaged (kept; run with --prune or set prune: true to delete):
//!   machine HQ/A/stray (m-stray)
//!
//! Notices:
//!   note: machine HQ/B/arm-02: `moved_from: HQ/B/arm-01` is done (…); you can remove it
//!
//! Plan: 1 to create, 1 to update, 1 to move, 1 to delete.
//! ```
//!
//! Without `--detail`, changes of the same shape are shown once, with what each does and a
//! few example paths (see [`super::group`]); a line above the summary says so.
//!
//! The temporary step of a swap or rotation (`temporary: true`) is shown only with
//! [`RenderOptions::detail`] (`plan --detail`); the moves it makes possible always are.
//!
//! Colour (green `+`, yellow `~`, cyan `→`, red `-`, bold headings) only when
//! [`RenderOptions::color`] is set.

use super::group;
use super::{
    RenderOptions, attribution_line, blast_radius_line, change_note, config_diff_lines,
    detail_line, notice_line, summary_line, with_known_secrets_marked,
};
use crate::plan::{Action, Change, NoticeLevel, Plan};
use std::fmt::Write;

/// Indentation of a change's header line.
const CHANGE_INDENT: &str = "  ";
/// Indentation of what is shown under a change (details, diffs, attribution).
const BODY_INDENT: &str = "      ";

/// ANSI styles, applied only when colour is on.
#[derive(Clone, Copy)]
enum Style {
    Bold,
    Green,
    Yellow,
    Cyan,
    Red,
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "\x1b[1m",
            Style::Green => "\x1b[32m",
            Style::Yellow => "\x1b[33m",
            Style::Cyan => "\x1b[36m",
            Style::Red => "\x1b[31m",
            Style::Dim => "\x1b[2m",
        }
    }

    fn for_action(action: Action) -> Style {
        match action {
            Action::Create => Style::Green,
            Action::Update => Style::Yellow,
            Action::Move => Style::Cyan,
            Action::Delete => Style::Red,
        }
    }
}

/// Wraps `text` in `style` when `color` is on.
fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{}{text}\x1b[0m", style.code())
    } else {
        text.to_string()
    }
}

/// Renders the plan as text. Ends with a newline.
pub fn render(plan: &Plan, opts: &RenderOptions) -> String {
    let mut all = String::new();
    render_each(plan, opts, &mut |piece| all.push_str(piece));
    all
}

/// Renders the plan as text, handing it to `emit` a piece at a time (the heading, each
/// change, the sections after them), so a plan of thousands of configs is never held as one
/// string of megabytes. The pieces joined are [`render`]'s text.
pub fn render_each(plan: &Plan, opts: &RenderOptions, emit: &mut dyn FnMut(&str)) {
    let color = opts.color;
    let plan = &*with_known_secrets_marked(plan);
    let mut out = String::new();
    let mut flush = |out: &mut String| {
        emit(out);
        out.clear();
    };
    let org = format!(
        "fleetform plan for organization {} ({})",
        plan.organization_name, plan.organization_id
    );
    let _ = writeln!(out, "{}", paint(color, Style::Bold, &org));

    if !plan.changes.is_empty() {
        out.push('\n');
    }
    let shown = plan.changes.iter().filter(|c| opts.detail || !c.temporary);
    let mut grouped = false;
    flush(&mut out);
    if opts.detail {
        for c in shown {
            write_change(&mut out, c, color);
            flush(&mut out);
        }
    } else {
        for entry in group::group(shown) {
            match entry {
                group::Entry::Single(c) => write_change(&mut out, c, color),
                group::Entry::Group(g) => {
                    grouped = true;
                    write_group(&mut out, &g, color);
                }
            }
            flush(&mut out);
        }
    }

    if !plan.unmanaged.is_empty() {
        out.push('\n');
        let heading = "Unmanaged (kept; run with --prune or set prune: true to delete):";
        let _ = writeln!(out, "{}", paint(color, Style::Bold, heading));
        for u in &plan.unmanaged {
            let _ = writeln!(
                out,
                "{CHANGE_INDENT}{} {} ({})",
                u.kind.as_str(),
                u.path,
                u.id
            );
        }
    }

    if !plan.notices.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", paint(color, Style::Bold, "Notices:"));
        for n in &plan.notices {
            let style = match n.level {
                NoticeLevel::Warning => Style::Red,
                NoticeLevel::Info => Style::Dim,
            };
            let text = notice_line(n).replace('\n', &format!("\n{CHANGE_INDENT}  "));
            let _ = writeln!(out, "{CHANGE_INDENT}{}", paint(color, style, &text));
        }
    }

    if let Some(r) = &plan.rollout {
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            paint(color, Style::Bold, &super::rollout::heading(r))
        );
        let _ = writeln!(out, "{CHANGE_INDENT}{}", super::rollout::gates(&r.policy));
        for line in super::rollout::wave_lines(r) {
            let _ = writeln!(out, "{CHANGE_INDENT}{line}");
        }
    }

    out.push('\n');
    if grouped {
        let note =
            "Changes of the same shape are grouped; `fleetform plan --detail` shows each one.";
        let _ = writeln!(out, "{}", paint(color, Style::Dim, note));
    }
    let _ = writeln!(out, "{}", paint(color, Style::Bold, &summary_line(plan)));
    flush(&mut out);
}

/// One change with everything it has to show.
fn write_change(out: &mut String, c: &Change, color: bool) {
    let style = Style::for_action(c.action);
    let note = change_note(c);
    let note = if note.is_empty() {
        String::new()
    } else {
        format!(" ({note})")
    };
    let _ = writeln!(
        out,
        "{CHANGE_INDENT}{} {} {}{note}",
        paint(color, style, c.action.mark()),
        c.kind.as_str(),
        paint(color, Style::Bold, &c.path),
    );
    for d in &c.details {
        let line = detail_line(d);
        let line = match (&d.before, &d.after) {
            (None, Some(_)) => paint(color, Style::Green, &line),
            (Some(_), None) => paint(color, Style::Red, &line),
            _ => line,
        };
        let _ = writeln!(out, "{BODY_INDENT}{line}");
    }
    if let Some(lines) = config_diff_lines(c) {
        for l in lines {
            let _ = writeln!(out, "{BODY_INDENT}{}", paint_diff_line(color, &l));
        }
    }
    if let Some(line) = attribution_line(c) {
        let _ = writeln!(out, "{BODY_INDENT}{}", paint(color, Style::Dim, &line));
    }
    if let Some(line) = blast_radius_line(c) {
        let _ = writeln!(out, "{BODY_INDENT}{}", paint(color, Style::Bold, &line));
    }
}

/// Changes of one shape: the count, what each changes, a few example paths.
fn write_group(out: &mut String, g: &group::Group<'_>, color: bool) {
    let style = Style::for_action(g.action);
    let note = if g.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", g.reason)
    };
    let _ = writeln!(
        out,
        "{CHANGE_INDENT}{} {}{note}",
        paint(color, style, g.action.mark()),
        paint(color, Style::Bold, &g.count_noun()),
    );
    for e in &g.edits {
        let _ = writeln!(out, "{BODY_INDENT}{e}");
    }
    if g.more_edits > 0 {
        let _ = writeln!(out, "{BODY_INDENT}… and {} more edits", g.more_edits);
    }
    let _ = writeln!(
        out,
        "{BODY_INDENT}{}",
        paint(color, Style::Dim, &g.examples())
    );
}

/// Colours one line of a unified diff by its tag.
fn paint_diff_line(color: bool, line: &str) -> String {
    let style = if line.starts_with("---") || line.starts_with("+++") {
        Style::Bold
    } else if line.starts_with("@@") {
        Style::Cyan
    } else if line.starts_with('+') {
        Style::Green
    } else if line.starts_with('-') {
        Style::Red
    } else {
        return line.to_string();
    };
    paint(color, style, line)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn small_plan() {
        let out = render(&fixtures::small(), &RenderOptions::default());
        insta::assert_snapshot!(out, @r#"
        fleetform plan for organization acme (org-1)

          + location Factory/Assembly (declared, not in the cloud)
          ~ part HQ/A/arm-01/arm-01-main (config differs)
              --- cloud
              +++ manifest
              @@ -3,7 +3,7 @@
                   {
                     "attributes": {
                       "port": "/dev/ttyUSB0",
              -        "speed": 10
              +        "speed": 20
                     },
                     "name": "arm"
                   }
              @@ -11,6 +11,9 @@
                 "fragments": [
                   {
                     "id": "frag-1"
              +    },
              +    {
              +      "id": "(created by c9)"
                   }
                 ]
               }
              last changed in the cloud by alice@acme.example at 2026-01-01T00:00:00Z
          → machine HQ/B/arm-01 (from HQ/A/arm-01; moved)
              location: "HQ/A" → "HQ/B"
          ~ invite ops@acme.example (grants differ)
              + grant operator on location HQ
              - grant owner on location HQ
          - machine HQ/A/old (not in the manifest (prune))

        Unmanaged (kept; run with --prune or set prune: true to delete):
          machine HQ/A/stray (m-stray)

        Plan: 1 to create, 2 to update, 1 to move, 1 to delete.
        "#);
    }

    #[test]
    fn no_changes() {
        let out = render(&fixtures::no_changes(), &RenderOptions::default());
        insta::assert_snapshot!(out, @"
        fleetform plan for organization acme (org-1)

        No changes. The cloud matches the manifest.
        ");
    }

    #[test]
    fn swaps_hide_their_temporary_step_unless_detail() {
        let out = render(&fixtures::swap(), &RenderOptions::default());
        insta::assert_snapshot!(out, @r"
        fleetform plan for organization acme (org-1)

          → machine L/x (from L/y; renamed)
          → machine L/y (from L/x; renamed)

        Notices:
          note: location L: `moved_from: Old` is done (the location is at L); you can remove it
          warning: machine L/z: the plan deletes machine L/z (m-z) and puts a different one at the same path
              hint: pin it with `id: m-z`

        Plan: 0 to create, 0 to update, 2 to move, 0 to delete.
        ");
        let detail = RenderOptions {
            detail: true,
            ..RenderOptions::default()
        };
        let out = render(&fixtures::swap(), &detail);
        assert!(
            out.contains("  → machine L/y-fleetform-tmp (from L/x; temporary name, frees the old name for the swap; then renamed to `y`)\n"),
            "{out}"
        );
        assert!(
            out.contains("Plan: 0 to create, 0 to update, 2 to move"),
            "{out}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let plain = render(
            &fixtures::small(),
            &RenderOptions {
                color: false,
                detail: false,
            },
        );
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = render(
            &fixtures::small(),
            &RenderOptions {
                color: true,
                detail: false,
            },
        );
        assert!(coloured.contains("\x1b[32m+\x1b[0m location"), "{coloured}");
        assert!(coloured.contains("\x1b[33m~\x1b[0m part"), "{coloured}");
        assert!(coloured.contains("\x1b[36m→\x1b[0m machine"), "{coloured}");
        assert!(coloured.contains("\x1b[31m-\x1b[0m machine"), "{coloured}");
    }
}
