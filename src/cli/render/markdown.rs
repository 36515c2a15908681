//! The plan as GitHub-flavoured Markdown, for a pull-request comment
//! (`fleetform plan --output markdown`).
//!
//! A `### fleetform plan for <org>` heading, the summary line in bold, a table of changes
//! (`| | kind | path | reason |`), then one collapsed `<details>` block per change that has
//! something more to show (attribute details, who last changed it, a ```` ```diff ```` of its
//! config), the unmanaged resources and the notices as bullet lists. Temporary steps of swaps
//! show only with `--detail`. Sensitive values are masked as in the text format. Never
//! coloured.
//!
//! Without `--detail`, changes of the same shape are one row and one block (see
//! [`super::group`]). The whole comment is at most [`MAX_CHARS`] characters: past that, the
//! rest (table rows, blocks, list items, each kept whole) is left out and a last line says
//! how many parts were cut and how to see every change. JSON is never cut.

use super::group::{self, Entry};
use super::{
    RenderOptions, attribution_line, blast_radius_line, change_note, config_diff_lines,
    detail_line, notice_line, summary_line, with_known_secrets_marked,
};
use crate::plan::Plan;
use std::fmt::Write;

/// The longest Markdown plan, in characters: GitHub's comment limit is 65,536, and a CI step
/// often wraps the plan in a few lines of its own.
pub const MAX_CHARS: usize = 60_000;

/// Renders the plan as Markdown (at most [`MAX_CHARS`] characters). Ends with a newline.
pub fn render(plan: &Plan, opts: &RenderOptions) -> String {
    let shown = |c: &&crate::plan::Change| opts.detail || !c.temporary;
    let plan = &*with_known_secrets_marked(plan);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### fleetform plan for {}\n",
        inline(&plan.organization_name)
    );
    let _ = writeln!(out, "**{}**", summary_line(plan));

    let entries: Vec<Entry<'_>> = if opts.detail {
        plan.changes
            .iter()
            .filter(shown)
            .map(Entry::Single)
            .collect()
    } else {
        group::group(plan.changes.iter().filter(shown))
    };
    // Everything after the summary, as blocks that are kept whole when the plan is cut.
    let mut blocks: Vec<String> = Vec::new();
    if !entries.is_empty() {
        blocks.push("\n| | kind | path | reason |\n|---|---|---|---|\n".to_string());
        for e in &entries {
            blocks.push(match e {
                Entry::Single(c) => format!(
                    "| {} | {} | {} | {} |\n",
                    c.action.mark(),
                    c.kind.as_str(),
                    inline_cell(&c.path),
                    cell(&match blast_radius_line(c) {
                        Some(reach) => format!("{}; {reach}", change_note(c)),
                        None => change_note(c),
                    }),
                ),
                Entry::Group(g) => format!(
                    "| {} | {} | {} | {} |\n",
                    g.action.mark(),
                    cell(&g.count_noun()),
                    cell(&g.examples()),
                    cell(&g.reason),
                ),
            });
        }
    }
    for e in &entries {
        let block = match e {
            Entry::Single(c) => change_details(c),
            Entry::Group(g) => Some(group_details(g)),
        };
        blocks.extend(block);
    }
    if !plan.unmanaged.is_empty() {
        blocks.push(
            "\n**Unmanaged** (kept; run with `--prune` or set `prune: true` to delete):\n\n"
                .to_string(),
        );
        for u in &plan.unmanaged {
            blocks.push(format!(
                "- {} {} ({})\n",
                u.kind.as_str(),
                inline(&u.path),
                inline(&u.id)
            ));
        }
    }
    if !plan.notices.is_empty() {
        blocks.push("\n**Notices:**\n\n".to_string());
        for n in &plan.notices {
            blocks.push(format!("- {}\n", cell(&notice_line(n))));
        }
    }
    if let Some(r) = &plan.rollout {
        let mut block = format!(
            "\n**{}**\n\n- {}\n",
            super::rollout::heading(r),
            cell(&super::rollout::gates(&r.policy))
        );
        for line in super::rollout::wave_lines(r) {
            block.push_str(&format!("- {}\n", cell(&line)));
        }
        blocks.push(block);
    }
    // Room for the note that says the plan was cut.
    let budget = MAX_CHARS - 400;
    let mut length = out.chars().count();
    let total = blocks.len();
    for (i, b) in blocks.into_iter().enumerate() {
        let n = b.chars().count();
        if length + n > budget {
            let _ = writeln!(
                out,
                "\n_The plan is cut here to fit a comment ({} of {} parts not shown). See every change with `fleetform plan --detail`, or the complete plan with `fleetform plan --output json`._",
                total - i,
                total
            );
            return out;
        }
        length += n;
        out.push_str(&b);
    }
    if entries.iter().any(|e| matches!(e, Entry::Group(_))) {
        out.push_str(
            "\n_Changes of the same shape are grouped; `fleetform plan --detail` shows each one._\n",
        );
    }
    out
}

/// The collapsed block of a change that has more to show, if it has.
fn change_details(c: &crate::plan::Change) -> Option<String> {
    let diff = config_diff_lines(c);
    let attribution = attribution_line(c);
    if c.details.is_empty() && diff.is_none() && attribution.is_none() {
        return None;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n<details><summary>{} {} {}</summary>\n",
        c.action.mark(),
        c.kind.as_str(),
        html(&c.path)
    );
    for d in &c.details {
        let _ = writeln!(out, "- {}", inline(&detail_line(d)));
    }
    if let Some(line) = attribution {
        if !c.details.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "_{}_", cell(&line));
    }
    if let Some(lines) = diff {
        let body = lines.join("\n");
        let fence = fence_for(&body);
        let _ = writeln!(out, "\n{fence}diff\n{body}\n{fence}");
    }
    out.push_str("\n</details>\n");
    Some(out)
}

/// The collapsed block of a group: what each change does, and a few of them.
fn group_details(g: &group::Group<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n<details><summary>{} {}</summary>\n",
        g.action.mark(),
        html(&g.count_noun())
    );
    for e in &g.edits {
        let _ = writeln!(out, "- {}", inline(e));
    }
    if g.more_edits > 0 {
        let _ = writeln!(out, "- … and {} more edits", g.more_edits);
    }
    let _ = writeln!(out, "\n{}", cell(&g.examples()));
    out.push_str("\n</details>\n");
    out
}

/// `text` as inline code, with a backtick fence longer than any backtick run inside it.
fn inline(text: &str) -> String {
    let longest = longest_run(text, '`');
    let ticks = "`".repeat(longest + 1);
    // Inline code may not start or end with a backtick next to the fence.
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// [`inline`] for a table cell: `|` must be escaped even inside code there.
fn inline_cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// `text` safe in a table cell and as Markdown: `|` escaped, newlines flattened, and, outside
/// `code spans`, HTML and Markdown specials escaped. Backticks are kept as code spans when
/// they pair up (the planner writes names that way), and escaped otherwise.
fn cell(text: &str) -> String {
    let code_spans = text.matches('`').count().is_multiple_of(2);
    let mut in_code = false;
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '`' if code_spans => {
                in_code = !in_code;
                out.push(ch);
            }
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            _ if in_code => out.push(ch),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' => {
                out.push('\\');
                out.push(ch);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped for HTML (inside `<summary>`).
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A code fence longer than any backtick run in `body`, so config text cannot close it.
fn fence_for(body: &str) -> String {
    "`".repeat(longest_run(body, '`').max(2) + 1)
}

fn longest_run(text: &str, ch: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == ch { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn swaps_show_the_moves_asked_for_and_the_notices() {
        let out = render(&fixtures::swap(), &RenderOptions::default());
        assert!(!out.contains("fleetform-tmp"), "{out}");
        assert!(
            out.contains("| → | machine | `L/x` | from L/y; renamed |"),
            "{out}"
        );
        assert!(out.contains("**Notices:**"), "{out}");
        assert!(
            out.contains("- warning: machine L/z: the plan deletes machine L/z"),
            "{out}"
        );
        let detail = RenderOptions {
            detail: true,
            ..RenderOptions::default()
        };
        let out = render(&fixtures::swap(), &detail);
        assert!(out.contains("`L/y-fleetform-tmp`"), "{out}");
    }

    #[test]
    fn small_plan() {
        let out = render(&fixtures::small(), &RenderOptions::default());
        insta::assert_snapshot!(out, @r#"
        ### fleetform plan for `acme`

        **Plan: 1 to create, 2 to update, 1 to move, 1 to delete.**

        | | kind | path | reason |
        |---|---|---|---|
        | + | location | `Factory/Assembly` | declared, not in the cloud |
        | ~ | part | `HQ/A/arm-01/arm-01-main` | config differs |
        | → | machine | `HQ/B/arm-01` | from HQ/A/arm-01; moved |
        | ~ | invite | `ops@acme.example` | grants differ |
        | - | machine | `HQ/A/old` | not in the manifest (prune) |

        <details><summary>~ part HQ/A/arm-01/arm-01-main</summary>

        _last changed in the cloud by alice@acme.example at 2026-01-01T00:00:00Z_

        ```diff
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
        ```

        </details>

        <details><summary>→ machine HQ/B/arm-01</summary>

        - `location: "HQ/A" → "HQ/B"`

        </details>

        <details><summary>~ invite ops@acme.example</summary>

        - `+ grant operator on location HQ`
        - `- grant owner on location HQ`

        </details>

        **Unmanaged** (kept; run with `--prune` or set `prune: true` to delete):

        - machine `HQ/A/stray` (`m-stray`)
        "#);
    }

    #[test]
    fn no_changes() {
        let out = render(&fixtures::no_changes(), &RenderOptions::default());
        insta::assert_snapshot!(out, @"
        ### fleetform plan for `acme`

        **No changes. The cloud matches the manifest.**
        ");
    }

    #[test]
    fn names_cannot_break_the_table_or_the_fence() {
        assert_eq!(inline_cell("a|b"), "`a\\|b`");
        assert_eq!(inline("x`y"), "``x`y``");
        assert_eq!(cell("<b>|x"), "&lt;b&gt;\\|x");
        assert_eq!(cell("from `a_b|c` *x*"), "from `a_b\\|c` \\*x\\*");
        assert_eq!(cell("odd ` tick_"), "odd \\` tick\\_");
        assert_eq!(fence_for("\"```\""), "````");
        assert_eq!(fence_for("plain"), "```");
    }
}
