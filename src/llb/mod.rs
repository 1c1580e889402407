//! LLB, BuildKit's build graph, built in Rust: the same model as Go's
//! `client/llb`, so that our code can be read next to theirs.
//!
//! A [`State`] is an immutable value: a filesystem (the output of an op, or
//! nothing for [`scratch`]) plus the settings later ops inherit (working
//! directory, environment, user, platform). Every method returns a new state.
//! Sources start a graph ([`image`], [`local`], [`http()`], [`git()`],
//! [`scratch`]); [`State::file`] adds a file op ([`mkdir`], [`mkfile`],
//! [`copy`], [`rm`]); [`State::run`] adds an exec op and gives an
//! [`ExecState`] whose root and mounts are states again; [`merge()`] stacks
//! filesystems and [`diff()`] takes the changes between two. Every op takes
//! [`OpOptions`]: progress name and group, descriptions, cache bypass, and a
//! [`Location`] in a [`SourceMap`] (the Dockerfile line an error points at).
//! [`State::marshal`] turns the graph into a `pb::Definition`, with the
//! source maps in `Definition.source`.
//!
//! This module owns the encoding: ops are encoded with prost (maps are
//! `BTreeMap`s, so encoding is deterministic) except that `Op`'s kind goes
//! after its platform and constraints, where Go's protobuf runtime writes it;
//! an op's digest is the sha256 of its bytes; inputs refer to digests; the
//! definition lists inputs before the ops that use them, each op once, then a
//! terminal op pointing at the result. The daemon computes cache keys from
//! what ops mean, not their bytes, but identical digests are what lets
//! `--print-llb`-style snapshots and pins against Go catch drift, so Go's
//! marshaller is followed to the byte (field values, default platform, mount
//! order, input order); `tests.rs` pins digests Go computed.
//!
//! One op kind per file: sources (`source.rs`, with git remotes parsed in
//! `git_url.rs`), file ops (`fileop.rs`), exec ops (`exec.rs`), merge
//! (`merge.rs`) and diff (`diff.rs`); `state.rs` holds the state, the op
//! trait and the per-op options, `marshal.rs` the walk. Who sends a definition is not this module's business:
//! `Control.Solve` takes one directly, and a client-side frontend hands one
//! to [`crate::gateway::Gateway::solve`].
//!
//! Not here yet (Go has them): per-op worker constraints and linux
//! resources, export-cache metadata, symlink file actions and `rm` options
//! beyond wildcards, cgroup parent, CDI devices, mount content-cache
//! settings, source maps that carry a definition (`NewSourceMap` with a
//! state), `oci-layout://` sources, git options beyond checkout basics
//! (signature checks, bundles, mtime, fetch by commit) and HTTP headers,
//! auth and signatures. Unlike Go, an SSH git remote without
//! [`GitOptions::known_ssh_hosts`] is not key-scanned over the network
//! (the attribute is left out). Copy actions' own capabilities
//! (`file.copy.requiredpaths`, `file.copy.modestring`, ...) are not sent,
//! because Go's marshaller never sends them either (see `fileop.rs`).

mod diff;
mod exec;
mod fileop;
pub(crate) mod git_url;
mod marshal;
mod merge;
mod path;
mod reference;
mod source;
mod state;

pub use diff::diff;
pub use exec::{ExecState, Mount, ProxyEnv, Run};
pub use fileop::{copy, mkdir, mkfile, rm, Chown, Copy, FileAction, Mkdir, Mkfile, Rm, UserOpt};
pub(crate) use marshal::drop_empty_map_values;
pub use marshal::{digest_of, MarshalOptions};
pub use merge::merge;
pub(crate) use reference::normalize as normalize_reference;
pub use reference::ReferenceError;
pub(crate) use reference::{parse as parse_reference_as_written, parse_normalized as parse_reference, Named};
pub use source::{git, http, image, image_with, local, scratch, GitOptions, HttpOptions, ImageOptions, LocalOptions};
pub(crate) use state::normalize_platform as normalize_platform_spec;
pub use state::{default_platform, Deferred, Location, OpOptions, ProgressGroup, SourceMap, State};

/// Why a graph could not be turned into a definition.
///
/// Like Go's `client/llb`, building a state never fails; mistakes surface
/// when the graph is marshalled, naming the op that holds them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarshalError {
    /// An [`image`] reference that does not parse.
    #[error("invalid image reference {reference:?}")]
    ImageReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        #[source]
        source: ReferenceError,
    },
    /// A source op without an identifier.
    #[error("a source op needs an identifier")]
    EmptySource,
    /// A [`Run`] without a command.
    #[error("an exec op needs at least one argument")]
    NoArgs,
    /// A [`Deferred`] state that was not set, or set to what cannot fill it.
    #[error("{0}")]
    Deferred(&'static str),
    /// A mount that cannot work as given.
    #[error("exec mount {target:?}: {reason}")]
    InvalidMount {
        /// The mount's target path.
        target: String,
        /// What is wrong.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests;
