//! How a command ends, in one place: its exit status, and the error that ended it.
//!
//! **Exit status.** Every command returns an [`ExitStatus`]; the process exit code comes only
//! from `From<ExitStatus> for ExitCode` (and [`ExitStatus::exit_now`] for the one place that
//! must leave at once: a second Ctrl-C).
//!
//! **Errors** are printed once, as a chain in the style of `uv`:
//!
//! ```text
//! error: cannot open the local cloud database /proc/nope/x.db
//!   Caused by: No such file or directory (os error 2)
//! hint: …
//! ```
//!
//! An error arrives as a chain (`cannot connect to URL` → the client's `CloudError` → the
//! transport's error), and each layer tends to quote the one below it (a `thiserror` variant
//! with its source both in its message and in `#[source]`). [`Report`] keeps each thing said
//! once: a cause whose text a line above already contains is left out, and a cause that
//! starts by repeating the line above says only what it adds. When the top line already ends
//! with its cause's text, the cause stays in the `Caused by:` line and is cut from the top.
//!
//! **Hints** have one format, `hint: <text>` at the start of a line, after the chain. A
//! message may carry its own (a line `hint: …` in its text, the way `bail!` writes them);
//! otherwise one is chosen for the common causes:
//!
//! - a refused connection: is the server running, and is the URL right;
//! - a TLS mismatch: `http://` against a TLS server, or `https://` against a plaintext one;
//! - a failed `Authenticate`: which variables or flags hold the key id and the key;
//! - `PERMISSION_DENIED`: the API key belongs to another organization, or lacks the role;
//! - `NOT_FOUND`, `DEADLINE_EXCEEDED`, `UNAVAILABLE`, `UNIMPLEMENTED`: what to check;
//! - a port already in use (`cloud serve`, `--metrics-addr`).
//!
//! A manifest's diagnostics are the one other layout: each names its file, line and column,
//! compiler-style (`fleet.yaml:12:9: error: …` with its `  hint: …` beneath it), because a
//! manifest has many at once (see [`crate::manifest::Diagnostic`]).
//!
//! gRPC codes are named as gRPC names them (`PERMISSION_DENIED`), never by number. `error:`
//! is red and bold, `hint:` bold, on a terminal only, and never with `NO_COLOR` set. All text
//! goes through [`super::term::clean`]: cloud-side strings cannot move the cursor.

use crate::cloud::{CloudError, Code};
use std::io::IsTerminal;
use std::process::ExitCode;

/// How a command ended; the only source of the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command did what was asked.
    Success,
    /// 1: an error, an invalid manifest, a failed or refused change, a file not formatted.
    Failure,
    /// 2: `plan --detailed-exitcode`: success, and there are changes to apply.
    Changes,
    /// 2: the command worked and its answer is no (`org namespace-available` on a taken name).
    No,
    /// 130 (128 + SIGINT): stopped by Ctrl-C or SIGTERM before finishing.
    Interrupted,
}

impl ExitStatus {
    /// The numeric code, as the shell sees it.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Changes | ExitStatus::No => 2,
            ExitStatus::Interrupted => 130,
        }
    }

    /// Ends the process now with this status, without unwinding (a second Ctrl-C).
    pub fn exit_now(self) -> ! {
        std::process::exit(i32::from(self.code()))
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// Whether stderr takes colour: a terminal, and `NO_COLOR` unset or empty.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && no_color_unset()
}

/// Whether stdout takes colour: a terminal, and `NO_COLOR` unset or empty.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && no_color_unset()
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

const RED_BOLD: &str = "\x1b[1;31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Prints the error that ended a command on stderr (see the module docs).
pub fn print_error(err: &anyhow::Error) {
    eprint!("{}", Report::new(err).render(stderr_color()));
}

/// Prints one of several errors a command reports before it fails (a plan that cannot be
/// made, a file that cannot be formatted): `error: <message>`, then its hints.
pub fn print_error_message(message: &str) {
    let report = Report::from_message(message);
    eprint!("{}", report.render(stderr_color()));
}

/// Prints a hint on its own, in the one hint format.
pub fn print_hint(hint: &str) {
    eprintln!("{}", hint_line(hint, stderr_color()));
}

fn hint_line(hint: &str, color: bool) -> String {
    let label = if color {
        format!("{BOLD}hint:{RESET}")
    } else {
        "hint:".to_string()
    };
    format!("{label} {}", super::term::clean(hint))
}

/// An error ready to print: its top line, the causes that add something, and hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What failed (`error: …`).
    pub message: String,
    /// Why, outermost first (`  Caused by: …`), each saying something the lines above do not.
    pub causes: Vec<String>,
    /// What to do about it (`hint: …`).
    pub hints: Vec<String>,
}

impl Report {
    /// The report of `err` and its chain of sources.
    pub fn new(err: &anyhow::Error) -> Report {
        let mut texts: Vec<String> = Vec::new();
        let mut hints: Vec<String> = Vec::new();
        let mut cloud: Option<&CloudError> = None;
        let mut io_kind: Option<std::io::ErrorKind> = None;
        for cause in err.chain() {
            let text = if let Some(c) = cause.downcast_ref::<CloudError>() {
                cloud.get_or_insert(c);
                cloud_text(c)
            } else {
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    io_kind.get_or_insert(io.kind());
                }
                cause.to_string()
            };
            let (body, own) = split_hints(&text);
            for h in own {
                if !hints.contains(&h) {
                    hints.push(h);
                }
            }
            texts.push(body);
        }
        let mut lines = chain_without_repeats(&texts);
        let message = if lines.is_empty() {
            "unknown error".to_string()
        } else {
            lines.remove(0)
        };
        if hints.is_empty() {
            let all = std::iter::once(message.as_str())
                .chain(lines.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(": ");
            let hint = match cloud {
                Some(c) => cloud_hint(c),
                None => io_hint(io_kind, &all),
            };
            hints.extend(hint);
        }
        Report {
            message,
            causes: lines,
            hints,
        }
    }

    /// The report of a message that carries its own `hint:` lines, if any.
    pub fn from_message(message: &str) -> Report {
        let (message, hints) = split_hints(message);
        Report {
            message,
            causes: Vec::new(),
            hints,
        }
    }

    /// The text printed on stderr, ending in a newline; `color` for a terminal.
    pub fn render(&self, color: bool) -> String {
        let label = if color {
            format!("{RED_BOLD}error:{RESET}")
        } else {
            "error:".to_string()
        };
        let mut out = format!("{label} {}\n", super::term::clean(&self.message));
        for cause in &self.causes {
            out.push_str(&format!("  Caused by: {}\n", super::term::clean(cause)));
        }
        for hint in &self.hints {
            out.push_str(&hint_line(hint, color));
            out.push('\n');
        }
        out
    }
}

/// `text` without its `hint: …` lines (indented or not), and those hints.
fn split_hints(text: &str) -> (String, Vec<String>) {
    let mut body: Vec<&str> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("hint:") {
            Some(h) => hints.push(h.trim().to_string()),
            None => body.push(line),
        }
    }
    (body.join("\n").trim_end().to_string(), hints)
}

/// The lines of a chain of messages (outermost first), each saying only what the ones above
/// do not. A message another line already contains is left out; one that starts by quoting
/// the line above (`A` then `A: B`) keeps only what it adds (`B`); a line that ends by quoting
/// the next one (`A: B` then `B`) drops that tail, so that the cause is said on its own line.
fn chain_without_repeats(texts: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for text in texts {
        let mut text = collapse_repeated_tail(text);
        if text.is_empty() || kept.iter().any(|k| k.contains(text.as_str())) {
            if let Some(last) = kept.last_mut()
                && let Some(head) = last.strip_suffix(&format!(": {text}"))
                && !head.is_empty()
                && !text.is_empty()
            {
                *last = head.to_string();
                kept.push(text);
            }
            continue;
        }
        for k in &kept {
            if let Some(rest) = text.strip_prefix(&format!("{k}: ")) {
                text = rest.to_string();
            }
        }
        kept.push(text);
    }
    kept
}

/// `a: b: b` → `a: b` (a layer that quotes its source, whose text is then added again).
fn collapse_repeated_tail(text: &str) -> String {
    let pieces: Vec<&str> = text.split(": ").collect();
    let mut out: Vec<&str> = Vec::new();
    for piece in pieces {
        if out.last() != Some(&piece) {
            out.push(piece);
        }
    }
    out.join(": ")
}

/// A cloud error in words: the server's message and the gRPC code by name. A connection
/// that never reached a server has no code worth naming.
fn cloud_text(c: &CloudError) -> String {
    match c.code {
        Code::Transport => c.message.clone(),
        code => format!("{} ({} from {})", c.message, code.as_str(), c.rpc),
    }
}

/// The hint for a cloud error, by what usually causes it.
fn cloud_hint(c: &CloudError) -> Option<String> {
    let m = c.message.to_ascii_lowercase();
    let hint = match c.code {
        Code::Transport
            if m.contains("invalidcontenttype")
                || m.contains("corrupt message")
                || m.contains("wrong version number") =>
        {
            "the server does not speak TLS: use `http://` instead of `https://` in --cloud \
             (or FLEETFORM_CLOUD)"
        }
        Code::Transport
            if m.contains("http2 error")
                || m.contains("frame with invalid size")
                || m.contains("connection reset") && c.message.contains("http://") =>
        {
            "the server may expect TLS: use `https://` instead of `http://` in --cloud \
             (or FLEETFORM_CLOUD)"
        }
        Code::Transport if m.contains("dns error") || m.contains("failed to lookup") => {
            "the host name does not resolve: check the URL in --cloud (or FLEETFORM_CLOUD)"
        }
        Code::Transport => {
            "is the server running, and is the URL in --cloud (or FLEETFORM_CLOUD) right? \
             `fleetform cloud serve` prints the address it listens on"
        }
        _ if c.rpc == "Authenticate" => {
            "check the API key: VIAM_API_KEY_ID (or --api-key-id) holds the key's id, a UUID, \
             and VIAM_API_KEY (or --api-key) the key itself; both must come from the same key"
        }
        Code::Unauthenticated => {
            "the session was refused: check VIAM_API_KEY_ID and VIAM_API_KEY (or --api-key-id \
             and --api-key)"
        }
        Code::PermissionDenied => {
            "the API key may belong to another organization, or lack the role this needs: \
             `fleetform org list` shows the organizations it can see"
        }
        Code::NotFound => {
            "it may have been deleted or renamed meanwhile: `fleetform status` shows what the \
             organization holds"
        }
        Code::DeadlineExceeded => "the cloud answered too slowly: raise --timeout, or retry",
        Code::Unavailable | Code::ResourceExhausted => {
            "the cloud is busy or restarting: retry in a moment"
        }
        Code::Unimplemented => {
            "this cloud does not implement the call: it may be an older or partial \
             Viam-compatible server"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// The hint for a local error (no cloud involved).
fn io_hint(kind: Option<std::io::ErrorKind>, text: &str) -> Option<String> {
    match kind? {
        std::io::ErrorKind::AddrInUse => Some(
            "another program listens on that address: choose another port (port 0 picks a \
             free one), or stop the other program"
                .into(),
        ),
        std::io::ErrorKind::PermissionDenied if text.contains("listen") => {
            Some("ports below 1024 need privileges: choose a port above 1024".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A `thiserror`-style error that says its source in its message and also returns it
    /// from `source()`.
    #[derive(Debug)]
    struct Quoting {
        path: &'static str,
        source: std::io::Error,
    }

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot open {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_quoted_by_its_parent_is_said_once_on_its_own_line() {
        let io = std::io::Error::from_raw_os_error(2);
        let os = io.to_string();
        let err = anyhow::Error::new(Quoting {
            path: "/proc/nope/x.db",
            source: io,
        })
        .context("cannot start the local cloud");
        let report = Report::new(&err);
        assert_eq!(report.message, "cannot start the local cloud");
        assert_eq!(
            report.causes,
            vec!["cannot open /proc/nope/x.db", os.as_str()]
        );
        let text = report.render(false);
        assert_eq!(text.matches(os.as_str()).count(), 1, "{text}");
        assert_eq!(
            text,
            format!(
                "error: cannot start the local cloud\n  Caused by: cannot open /proc/nope/x.db\n  \
                 Caused by: {os}\n"
            )
        );
    }

    #[test]
    fn a_refused_connection_is_a_short_chain_and_one_hint() {
        let inner = CloudError::new(
            "Connect",
            Code::Transport,
            "cannot connect to http://127.0.0.1:1: transport error: tcp connect error: \
             Connection refused (os error 111)",
        );
        let err = Err::<(), _>(inner)
            .context("cannot connect to http://127.0.0.1:1")
            .unwrap_err();
        assert_eq!(
            Report::new(&err).render(false),
            "error: cannot connect to http://127.0.0.1:1\n  Caused by: transport error: tcp \
             connect error: Connection refused (os error 111)\nhint: is the server running, and \
             is the URL in --cloud (or FLEETFORM_CLOUD) right? `fleetform cloud serve` prints \
             the address it listens on\n"
        );
    }

    #[test]
    fn repeats_are_left_out() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err =
            anyhow::Error::new(io).context("cannot listen on 1.2.3.4:5: Address already in use");
        let report = Report::new(&err);
        assert_eq!(report.message, "cannot listen on 1.2.3.4:5");
        assert_eq!(report.causes, vec!["Address already in use"]);
        assert!(report.hints[0].starts_with("another program"), "{report:?}");
        assert_eq!(collapse_repeated_tail("a: b: b"), "a: b");
        // Said in the middle of a line above: left out, nothing cut.
        assert_eq!(
            chain_without_repeats(&["x: y: z".into(), "y".into()]),
            vec!["x: y: z".to_string()]
        );
    }

    #[test]
    fn codes_are_named_and_an_existing_hint_is_kept_in_the_one_format() {
        let err = anyhow::Error::new(CloudError::new("GetRobot", Code::NotFound, "no robot x"));
        assert_eq!(
            Report::new(&err).message,
            "no robot x (NOT_FOUND from GetRobot)"
        );
        let own = anyhow::anyhow!("no credentials\nhint: set them");
        assert_eq!(
            Report::new(&own).render(false),
            "error: no credentials\nhint: set them\n"
        );
        // An indented hint (as plan errors write them) comes out in the same format.
        let listed = Report::from_message("x is ambiguous\n  hint: pin it with `id:`");
        assert_eq!(
            listed.render(false),
            "error: x is ambiguous\nhint: pin it with `id:`\n"
        );
    }

    #[test]
    fn colour_marks_the_labels_only() {
        let report = Report::from_message("boom\nhint: fix it");
        assert_eq!(
            report.render(true),
            "\x1b[1;31merror:\x1b[0m boom\n\x1b[1mhint:\x1b[0m fix it\n"
        );
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Changes,
            ExitStatus::No,
            ExitStatus::Interrupted,
        ]
        .map(ExitStatus::code)
        .to_vec();
        assert_eq!(codes, vec![0, 1, 2, 2, 130]);
    }
}
