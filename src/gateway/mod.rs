//! The client side of BuildKit's frontend gateway (the `LLBBridge` service):
//! what lets a frontend run *in this process* instead of in the daemon.
//!
//! A build whose `Control.Solve` names no frontend and carries no definition
//! makes the daemon wait for a frontend to call `LLBBridge` on its behalf.
//! Calls reach the right build through the gRPC metadata
//! `buildkit-controlapi-buildid: <solve ref>`, which [`Gateway`] adds to every
//! call with a tonic interceptor. The frontend resolves image configs, solves
//! LLB graphs (made with [`crate::llb`]), reads files from the results, and
//! finally `Return`s one result (or an error), which the daemon then exports
//! as it would a daemon-side frontend's. This is Go's `client.Build` with
//! `frontend/gateway/grpcclient`.
//!
//! This module owns the LLBBridge calls ([`Gateway`]), the frontend trait
//! ([`ClientFrontend`]) and the protocol of one frontend run
//! ([`run_client_frontend`]: wait for the build, run the frontend, return its
//! result). Running the `Control.Solve` (with its session and status stream)
//! that the frontend belongs to is the build runner's job: it calls
//! [`run_client_frontend`] next to the solve, on the same connection.

mod client;
mod frontend;

pub use client::{Capabilities, Gateway, Reference, ResolvedImage, Warning};
pub(crate) use frontend::run_client_frontend_importing;
pub use frontend::{run_client_frontend, ClientFrontend, ForwardedResult, FrontendError, FrontendOutput};

use crate::control::DaemonStatus;

/// A gateway call or a frontend run that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The build ref is not a valid header value (not visible ASCII).
    #[error("build ref {build_ref:?} cannot be sent as gRPC metadata")]
    InvalidBuildRef {
        /// The ref as given.
        build_ref: String,
        /// Why it is not a header value.
        #[source]
        source: tonic::metadata::errors::InvalidMetadataValue,
    },
    /// An LLBBridge call the daemon (or the transport) failed.
    #[error("buildkitd's LLBBridge.{call} call failed")]
    Call {
        /// The RPC method, e.g. `Solve` or `ReadFile`.
        call: &'static str,
        /// The daemon's status.
        #[source]
        source: DaemonStatus,
    },
    /// The daemon never knew the build: its `Control.Solve` did not reach
    /// the daemon, or failed before the daemon waited for a frontend.
    #[error("buildkitd did not register build {build_ref} with its gateway in {waited:?}")]
    NotRegistered {
        /// The build's ref.
        build_ref: String,
        /// How long we asked.
        waited: std::time::Duration,
        /// The daemon's last answer ("no such job").
        #[source]
        source: DaemonStatus,
    },
    /// The daemon's gateway is too old for this client.
    #[error("buildkitd's gateway lacks the {0:?} capability")]
    MissingCapability(&'static str),
    /// A definition uses an LLB feature the daemon does not have.
    #[error("the graph needs the LLB capability {0:?}, which buildkitd lacks")]
    MissingLlbCapability(String),
    /// A solve answered with a result per platform.
    #[error("LLBBridge.Solve returned one result per platform; only single results are supported")]
    MultiPlatformResult,
    /// A read from the result of solving scratch.
    #[error("cannot read {path:?} from an empty result (a solve of scratch)")]
    EmptyReference {
        /// The path asked for.
        path: String,
    },
    /// The frontend returned an error (and the build failed with it).
    #[error("the client-side frontend failed")]
    Frontend(#[source] FrontendError),
}

impl GatewayError {
    pub(crate) fn call(call: &'static str, status: tonic::Status) -> Self {
        GatewayError::Call { call, source: DaemonStatus(status) }
    }

    /// The daemon's status when a call failed, for callers that branch on
    /// the code (e.g. `Cancelled` when the build was stopped).
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            GatewayError::Call { source, .. } | GatewayError::NotRegistered { source, .. } => Some(&source.0),
            _ => None,
        }
    }
}
