//! How a build can fail, told apart so a caller can react: the build itself
//! failed (a step, with its log), the daemon went away, the daemon refused
//! the request, the caller cancelled, or the build could not be set up.

use crate::control::ControlError;
use crate::progress::BuildFailure;
use crate::session::SessionError;

/// A build that did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The build ran and failed: a step failed, or the frontend could not
    /// make a graph (a Dockerfile error).
    #[error("the build failed: {}", .0.failure.message)]
    Failed(Box<FailedBuild>),
    /// The connection to the daemon broke during the build.
    #[error("lost the connection to buildkitd during the build")]
    DaemonLost(#[source] ControlError),
    /// The daemon refused the request before building (an unknown frontend,
    /// a missing entitlement, an invalid option).
    #[error("buildkitd refused the build request")]
    Rejected(#[source] ControlError),
    /// The caller cancelled the build (its [`CancellationToken`](super::CancellationToken)).
    #[error("the build was cancelled")]
    Cancelled,
    /// A session with the daemon could not be opened.
    #[error("cannot open a session with buildkitd")]
    Session(#[source] SessionError),
    /// A local cache folder (`type=local`) could not be used: before the
    /// solve (nothing was sent), or after it, when its `index.json` could not
    /// be updated (the folder keeps its previous cache).
    #[error("local cache folder")]
    LocalCache(#[source] crate::cache::local::LocalCacheError),
    /// A session service could not be set up from the request.
    #[error("cannot serve {what} to the build")]
    Service {
        /// Which service.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A build that ran and failed.
#[derive(Debug, Clone)]
pub struct FailedBuild {
    /// The daemon's error, with the failed vertex and source locations.
    pub failure: BuildFailure,
    /// The name of the step that failed (`[deps 2/3] RUN pip install ...`).
    pub step: Option<String>,
    /// The failed step's last log lines.
    pub log: Vec<String>,
}

impl BuildError {
    /// The daemon's failure details, when the build itself failed.
    pub fn failure(&self) -> Option<&BuildFailure> {
        match self {
            BuildError::Failed(failed) => Some(&failed.failure),
            _ => None,
        }
    }

    /// Sorts the error of a `Solve` call that returned one. `step_failed` is
    /// whether the status stream showed a failed step, `started` whether it
    /// showed any step at all.
    pub(crate) fn from_solve(error: ControlError, step_failed: bool, started: bool) -> BuildError {
        use tonic::Code;
        let status = error.status();
        let failure = BuildFailure::from_status(status);
        if step_failed || failure.vertex.is_some() || !failure.sources.is_empty() {
            return BuildError::Failed(Box::new(FailedBuild { failure, step: None, log: Vec::new() }));
        }
        match status.code() {
            // tonic reports a broken connection as Unavailable (or Unknown
            // with a transport cause); the daemon never answers Unavailable.
            Code::Unavailable => BuildError::DaemonLost(error),
            Code::Unknown if is_transport_error(status) => BuildError::DaemonLost(error),
            Code::Cancelled => BuildError::Cancelled,
            Code::InvalidArgument | Code::Unimplemented | Code::PermissionDenied | Code::FailedPrecondition => {
                BuildError::Rejected(error)
            }
            // Nothing ran and nothing points at a step or a line: the daemon
            // turned the request down (`invalid frontend: ...`).
            _ if !started => BuildError::Rejected(error),
            _ => BuildError::Failed(Box::new(FailedBuild { failure, step: None, log: Vec::new() })),
        }
    }

    /// Sorts the error of a call made before the solve (Status, Session).
    pub(crate) fn from_call(error: ControlError) -> BuildError {
        match error.status().code() {
            tonic::Code::Unavailable | tonic::Code::Unknown => BuildError::DaemonLost(error),
            _ => BuildError::Rejected(error),
        }
    }
}

/// Whether the status comes from the transport (a hyper or h2 error as its
/// cause) rather than from the daemon.
fn is_transport_error(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.is::<hyper::Error>() || cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve_error(status: tonic::Status) -> ControlError {
        ControlError::new("Solve", status)
    }

    #[test]
    fn errors_are_sorted_by_what_the_caller_can_do() {
        let lost = BuildError::from_solve(solve_error(tonic::Status::unavailable("connection reset")), false, true);
        assert!(matches!(lost, BuildError::DaemonLost(_)), "{lost:?}");
        let refused = BuildError::from_solve(
            solve_error(tonic::Status::invalid_argument("network.host is not allowed")),
            false,
            false,
        );
        assert!(matches!(refused, BuildError::Rejected(_)), "{refused:?}");
        let failed = BuildError::from_solve(
            solve_error(tonic::Status::unknown("process \"/bin/sh -c exit 3\" did not complete successfully")),
            true,
            true,
        );
        assert!(matches!(&failed, BuildError::Failed(f) if f.failure.message.contains("exit 3")), "{failed:?}");
        assert_eq!(failed.to_string(), "the build failed: process \"/bin/sh -c exit 3\" did not complete successfully");
        let cancelled = BuildError::from_solve(solve_error(tonic::Status::cancelled("context canceled")), false, true);
        assert!(matches!(cancelled, BuildError::Cancelled));
        let unknown_frontend =
            BuildError::from_solve(solve_error(tonic::Status::unknown("invalid frontend: x.v9")), false, false);
        assert!(matches!(unknown_frontend, BuildError::Rejected(_)), "{unknown_frontend:?}");
    }
}
