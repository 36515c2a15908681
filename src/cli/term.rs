//! Text bound for a terminal, made harmless.
//!
//! Names, messages and errors from the cloud are written by whoever can write to the
//! organization. Printed raw, a control character could move the cursor, clear the screen or
//! rewrite lines already shown — e.g. erase the plan above the confirmation prompt. Everything
//! fleetform prints goes through [`clean`]: newlines, tabs and colour (SGR) sequences stay,
//! every other control character (and every invisible character that reorders text) is shown
//! escaped, as `\u{1b}`.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The length of the colour sequence (`ESC [ digits;… m`) at the start of `s`, if one is.
fn sgr_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix("\u{1b}[")?;
    let params = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ';'))
        .unwrap_or(rest.len());
    (rest[params..].starts_with('m')).then_some(2 + params + 1)
}

/// `text` with every control character other than newline, tab and colour sequences escaped.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c == '\u{1b}'
            && let Some(n) = sgr_len(&text[i..])
        {
            out.push_str(&text[i..i + n]);
            i += n;
            continue;
        }
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        i += c.len_utf8();
    }
    Cow::Owned(out)
}

/// Writes `text` to stdout through [`clean`]. A reader that went away (`fleetform … | head`)
/// is not an error: the rest of the output is dropped quietly, as `git` does.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(clean(text).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes formatted output to stdout through [`clean`], for the [`say!`](crate::say) and
/// [`sayln!`](crate::sayln) macros; see [`print_stdout`] for a reader that went away. Any
/// other write error is reported once on stderr and later output is dropped.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = print_stdout(&args.to_string()) {
        FAILED.store(true, Ordering::Relaxed);
        super::output::print_error(&anyhow::Error::new(e).context("cannot write to stdout"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_colours_kept() {
        assert!(matches!(clean("plain\ttext\n"), Cow::Borrowed(_)));
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("a\u{1b}[1Ab\rc\0"), "a\\u{1b}[1Ab\\u{d}c\\u{0}");
        assert_eq!(clean("\u{1b}[32m+ x\u{1b}[0m"), "\u{1b}[32m+ x\u{1b}[0m");
        assert_eq!(clean("x\u{1b}]0;title\u{7}"), "x\\u{1b}]0;title\\u{7}");
        assert_eq!(clean("ab\u{202e}cd"), "ab\\u{202e}cd");
    }
}
