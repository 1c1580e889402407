//! A build as a library: a [`BuildRequest`] (plain data) run on a connection
//! with a progress sink and a cancellation token, ending in a [`BuildReport`]
//! or a typed [`BuildError`].
//!
//! ```text
//! BuildRequest ──> sessions: one per local folder (FileSync) + one for the
//!      │             build (FileSend, Auth, Secrets, SSH) ───────────────┐
//!      ├──> Control.Solve(SolveRequest) ─────────────────────────────────┤ concurrently
//!      ├──> Control.Status(ref) ──> ProgressSink ────────────────────────┤
//!      └──> (client-side frontend) LLBBridge on the same channel ────────┘
//! ```
//!
//! Everything a person sees (flags, printing, signals, `--metadata-file`)
//! belongs to the caller: the CLI is one client of [`build`], bake and other
//! Rust programs are others. Several builds may run at once on one channel.
//!
//! Each local folder is served by a session of its own whose shared key is
//! derived from the folder's absolute path (see `session::shared_key_for`):
//! the daemon keeps the previous upload of each folder under that key, so
//! adding a folder to a build, or building another target from the same
//! folder, does not send an unchanged folder again.

pub(crate) mod attrs;
mod error;
mod folders;
mod git_info;
mod options;
mod report;
mod request;
mod run;

pub use attrs::AttrError;
pub use error::{BuildError, FailedBuild};
pub use folders::FolderSessions;
pub use git_info::GitInfoError;
pub use options::{
    BuildContext, BuildOption, BuildOptions, DockerfileSpec, InvalidValue, OptionsError, PlanGuard, PlannedBuild,
    PlannedDockerfile,
};
pub use report::{BuildReport, TransferStats, VertexOutcome};
pub use request::{BuildRequest, Frontend};
#[cfg(test)]
pub(crate) use request::{LOCAL_CONTEXT, LOCAL_DOCKERFILE};
pub use run::{build, build_sharing_folders};

pub use crate::progress::{BuildEnd, NoProgress, ProgressSink};
// The session is crate-internal, but its error is part of `BuildError`:
// callers must be able to name it.
pub use crate::session::SessionError;
pub use tokio_util::sync::CancellationToken;
