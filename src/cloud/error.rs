//! Errors from the cloud, classified by what a caller does about them.

use std::fmt;

/// The gRPC status codes fleetform distinguishes; everything else is [`Code::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    FailedPrecondition,
    Aborted,
    Unauthenticated,
    Unavailable,
    DeadlineExceeded,
    ResourceExhausted,
    /// The server does not implement the RPC (an older or partial Viam-compatible cloud).
    Unimplemented,
    Internal,
    OutOfRange,
    /// The request could not be sent, or the connection failed (no status from the server).
    Transport,
    Other,
}

impl Code {
    pub fn from_tonic(code: tonic::Code) -> Code {
        match code {
            tonic::Code::InvalidArgument => Code::InvalidArgument,
            tonic::Code::NotFound => Code::NotFound,
            tonic::Code::AlreadyExists => Code::AlreadyExists,
            tonic::Code::PermissionDenied => Code::PermissionDenied,
            tonic::Code::FailedPrecondition => Code::FailedPrecondition,
            tonic::Code::Aborted => Code::Aborted,
            tonic::Code::Unauthenticated => Code::Unauthenticated,
            tonic::Code::Unavailable => Code::Unavailable,
            tonic::Code::DeadlineExceeded => Code::DeadlineExceeded,
            tonic::Code::ResourceExhausted => Code::ResourceExhausted,
            tonic::Code::Unimplemented => Code::Unimplemented,
            tonic::Code::Internal => Code::Internal,
            tonic::Code::OutOfRange => Code::OutOfRange,
            _ => Code::Other,
        }
    }

    /// Whether a read that failed with this code may be retried.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Transport
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Transport => "TRANSPORT",
            Code::Other => "UNKNOWN",
        }
    }
}

/// An error from one cloud call: which RPC, the classified code, and the server's message.
///
/// Messages come from the server or the transport and never contain credentials: the client
/// sends the API key only in `Authenticate` and never puts it in an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudError {
    pub rpc: &'static str,
    pub code: Code,
    pub message: String,
}

impl CloudError {
    pub fn new(rpc: &'static str, code: Code, message: impl Into<String>) -> Self {
        CloudError {
            rpc,
            code,
            message: message.into(),
        }
    }

    pub fn from_status(rpc: &'static str, status: &tonic::Status) -> Self {
        let code = Code::from_tonic(status.code());
        let message = if status.message().is_empty() {
            status.code().description().to_string()
        } else {
            status.message().to_string()
        };
        CloudError { rpc, code, message }
    }

    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }

    /// Whether the server may have carried out the request even though the call failed
    /// (a write whose outcome is unknown).
    pub fn outcome_unknown(&self) -> bool {
        self.is_transient()
    }

    /// Whether the write was refused because the resource changed since it was read (a stale
    /// `last_known_update`): `FAILED_PRECONDITION` or `ABORTED`, whatever the message says.
    pub fn is_conflict(&self) -> bool {
        matches!(self.code, Code::FailedPrecondition | Code::Aborted)
    }

    /// Whether the server does not implement the RPC.
    pub fn is_unimplemented(&self) -> bool {
        self.code == Code::Unimplemented
    }

    pub fn is_not_found(&self) -> bool {
        // Authz-first services may answer PermissionDenied for ids the caller cannot see.
        matches!(self.code, Code::NotFound | Code::PermissionDenied)
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}: {}",
            self.rpc,
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for CloudError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_names() {
        for (tonic_code, name) in [
            (tonic::Code::Unimplemented, "UNIMPLEMENTED"),
            (tonic::Code::Internal, "INTERNAL"),
            (tonic::Code::OutOfRange, "OUT_OF_RANGE"),
            (tonic::Code::Aborted, "ABORTED"),
            (tonic::Code::DataLoss, "UNKNOWN"),
        ] {
            let err = CloudError::from_status("GetFragment", &tonic::Status::new(tonic_code, "x"));
            assert_eq!(err.code.as_str(), name);
            assert_eq!(err.to_string(), format!("GetFragment failed: {name}: x"));
        }
    }

    #[test]
    fn conflicts_are_recognised_by_code_alone() {
        let status = |code| {
            CloudError::from_status("UpdateRobotPart", &tonic::Status::new(code, "any text"))
        };
        assert!(status(tonic::Code::FailedPrecondition).is_conflict());
        assert!(status(tonic::Code::Aborted).is_conflict());
        assert!(!status(tonic::Code::InvalidArgument).is_conflict());
        assert!(status(tonic::Code::Unimplemented).is_unimplemented());
        assert!(!status(tonic::Code::Unimplemented).is_transient());
    }
}
