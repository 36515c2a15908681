//! How an error that ends a command reaches the user: one line, no repeats, and a hint.
//!
//! An error arrives as a chain (`cannot connect to URL` → the client's `CloudError` → the
//! transport's error), and each layer tends to quote the one below it. [`report`] joins the
//! chain with `": "`, leaving out any part already said by another, and adds one `hint:`
//! line for the common causes, unless the error already carries its own:
//!
//! - a refused connection: is the server running, and is the URL right;
//! - a TLS mismatch: `http://` against a TLS server, or `https://` against a plaintext one;
//! - a failed `Authenticate`: which variables or flags hold the key id and the key;
//! - `PERMISSION_DENIED`: the API key belongs to another organization, or lacks the role;
//! - `NOT_FOUND`, `DEADLINE_EXCEEDED`, `UNAVAILABLE`, `UNIMPLEMENTED`: what to check;
//! - a port already in use (`cloud serve`, `--metrics-addr`).
//!
//! gRPC codes are named as gRPC names them (`PERMISSION_DENIED`), never by number. The text
//! goes through [`super::term::clean`]: cloud-side strings cannot move the cursor.

use crate::cloud::{CloudError, Code};

/// The message printed for `err` after `error: `, with a `hint:` line when one helps.
pub fn report(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
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
        parts.push(text);
    }
    let mut text = join_without_repeats(&parts);
    if !text.contains("\nhint:") {
        let hint = match cloud {
            Some(c) => cloud_hint(c),
            None => io_hint(io_kind, &text),
        };
        if let Some(hint) = hint {
            text.push_str("\nhint: ");
            text.push_str(&hint);
        }
    }
    super::term::clean(&text).into_owned()
}

/// A cloud error in words: the server's message and the gRPC code by name. A connection
/// that never reached a server has no code worth naming.
fn cloud_text(c: &CloudError) -> String {
    match c.code {
        Code::Transport => c.message.clone(),
        code => format!("{} ({} from {})", c.message, code.as_str(), c.rpc),
    }
}

/// `parts` joined with `": "`, leaving out a part that another part already contains, and
/// collapsing a part that repeats its own tail (`X: Y: Y`).
fn join_without_repeats(parts: &[String]) -> String {
    let parts: Vec<String> = parts.iter().map(|p| collapse_repeated_tail(p)).collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let part = part.as_str();
        if part.is_empty() {
            continue;
        }
        let said_before = kept.iter().any(|k| k.contains(part));
        let said_later = parts[i + 1..]
            .iter()
            .any(|later| later.len() > part.len() && later.contains(part));
        if !said_before && !said_later {
            kept.push(part);
        }
    }
    kept.join(": ")
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

    #[test]
    fn a_refused_connection_is_one_line_and_one_hint() {
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
            report(&err),
            "cannot connect to http://127.0.0.1:1: transport error: tcp connect error: \
             Connection refused (os error 111)\nhint: is the server running, and is the URL in \
             --cloud (or FLEETFORM_CLOUD) right? `fleetform cloud serve` prints the address it \
             listens on"
        );
    }

    #[test]
    fn repeats_are_left_out() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err =
            anyhow::Error::new(io).context("cannot listen on 1.2.3.4:5: Address already in use");
        let text = report(&err);
        assert_eq!(
            text.lines().next().unwrap(),
            "cannot listen on 1.2.3.4:5: Address already in use"
        );
        assert!(text.contains("\nhint: another program"), "{text}");
        assert_eq!(collapse_repeated_tail("a: b: b"), "a: b");
    }

    #[test]
    fn codes_are_named_and_an_existing_hint_is_kept() {
        let err = anyhow::Error::new(CloudError::new("GetRobot", Code::NotFound, "no robot x"));
        assert_eq!(
            report(&err).lines().next().unwrap(),
            "no robot x (NOT_FOUND from GetRobot)"
        );
        let own = anyhow::anyhow!("no credentials\nhint: set them");
        assert_eq!(report(&own), "no credentials\nhint: set them");
    }
}
