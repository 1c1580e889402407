//! Client-side frontends: the [`ClientFrontend`] trait and
//! [`run_client_frontend`], which runs one against a build the way Go's
//! `grpcclient.Run` does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message;

use crate::control::Control;

use super::client::{Capabilities, Gateway, Reference};
use super::GatewayError;

/// How long to keep asking for a build the daemon has not registered yet.
///
/// The daemon registers a frontend-less build early in `Control.Solve`, and
/// an LLBBridge call for an unknown build waits up to 3 s for it before
/// failing with `NotFound`. Go's client pings once with a 15 s deadline; a
/// solve that reaches the daemon late (slow session start, busy daemon) can
/// miss the 3 s window, so this retries within the same 15 s.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(15);
const REGISTRATION_RETRY: Duration = Duration::from_millis(100);

/// What a frontend returns: the filesystem to export and metadata for the
/// exporter (e.g. `containerimage.config` with the image config JSON).
///
/// Attestations are not modelled for frontends of our own yet; a daemon
/// frontend's result handed on whole ([`Gateway::forward_frontend`]) keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontendOutput {
    /// The result's filesystem; `None` exports an empty one.
    pub reference: Option<Reference>,
    /// One filesystem per platform (`linux/amd64` → ...) for a
    /// multi-platform result, with `refs.platforms` in the metadata; set,
    /// it wins over `reference`.
    pub references: BTreeMap<String, Reference>,
    /// Exporter metadata, by key.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// A daemon frontend's result as it came (from
    /// [`Gateway::forward_frontend`]), returned as is: its per-platform
    /// references and attestations included. Set, it wins over the fields above.
    pub forwarded: Option<ForwardedResult>,
}

/// A daemon frontend's whole result, opaque: it can only be returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedResult(pub(crate) crate::proto::moby::buildkit::v1::frontend::Result);

impl ForwardedResult {
    /// The result's filesystems: `(None, ref)` for a single result,
    /// `(Some(platform), ref)` for each of a multi-platform one; `None` for a
    /// platform stands for an empty filesystem. Forms older than BuildKit
    /// 0.5 (ids without definitions) give no definition.
    pub(crate) fn references(&self) -> Vec<(Option<String>, Option<Reference>)> {
        use crate::proto::moby::buildkit::v1::frontend::result::Result as Form;
        let reference = |r: &crate::proto::moby::buildkit::v1::frontend::Ref| {
            (!r.id.is_empty()).then(|| Reference::from_pb(r.clone()))
        };
        match &self.0.result {
            None => Vec::new(),
            Some(Form::Ref(r)) => vec![(None, reference(r))],
            Some(Form::Refs(map)) => map.refs.iter().map(|(p, r)| (Some(p.clone()), reference(r))).collect(),
            Some(Form::RefDeprecated(id)) => {
                vec![(None, (!id.is_empty()).then(|| Reference::from_pb(api_ref(id))))]
            }
            Some(Form::RefsDeprecated(map)) => map
                .refs
                .iter()
                .map(|(p, id)| (Some(p.clone()), (!id.is_empty()).then(|| Reference::from_pb(api_ref(id)))))
                .collect(),
        }
    }

    /// The exporter metadata, by key (`containerimage.config`, ...).
    pub(crate) fn metadata(&self) -> &BTreeMap<String, bytes::Bytes> {
        &self.0.metadata
    }
}

fn api_ref(id: &str) -> crate::proto::moby::buildkit::v1::frontend::Ref {
    crate::proto::moby::buildkit::v1::frontend::Ref { id: id.to_owned(), def: None }
}

/// Why a frontend failed. It wraps any error; its whole chain becomes the
/// message the build fails with.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FrontendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl FrontendError {
    /// Wraps an error, or a message (`FrontendError::new("no Dockerfile")`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        FrontendError(error.into())
    }

    /// The status `LLBBridge.Return` carries for this error: the message is
    /// the whole cause chain (so the build's error says what went wrong, not
    /// only that the frontend failed); a failed gateway call keeps its code
    /// and typed details (which tell the client which step failed).
    pub(crate) fn to_status(&self) -> tonic::Status {
        let mut message = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            message.push_str(": ");
            message.push_str(&error.to_string());
            cause = error.source();
        }
        let daemon_status = self.0.downcast_ref::<GatewayError>().and_then(GatewayError::status);
        let Some(status) = daemon_status else {
            return tonic::Status::unknown(message);
        };
        match crate::proto::google::rpc::Status::decode(status.details()) {
            Ok(details) if !details.details.is_empty() => {
                let details = crate::proto::google::rpc::Status {
                    code: status.code() as i32,
                    message: message.clone(),
                    details: details.details,
                };
                tonic::Status::with_details(status.code(), message, details.encode_to_vec().into())
            }
            _ => tonic::Status::new(status.code(), message),
        }
    }
}

impl From<GatewayError> for FrontendError {
    fn from(error: GatewayError) -> Self {
        FrontendError(Box::new(error))
    }
}

/// A frontend that runs in this process and drives the build through the
/// gateway: resolve images, solve LLB, read files, and return a result.
#[tonic::async_trait]
pub trait ClientFrontend: Send + Sync {
    /// Builds the result of the build `gateway` belongs to.
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError>;

    /// Frontend attributes for the build's `Control.Solve` (Go's
    /// `SolveOpt.FrontendAttrs` with `client.Build`): the daemon hands them
    /// to frontends it runs for this build and reads the attestation and
    /// epoch options among them. Default: none.
    fn solve_attrs(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// Runs `frontend` for the build `build_ref`, whose `Control.Solve` (with no
/// frontend and no definition, and session `session_id`) the caller runs at
/// the same time on `control`'s connection.
///
/// Like Go's `grpcclient`: ping until the daemon has registered the build,
/// run the frontend, then `Return` its result or its error. The solve ends
/// after the return; with an error it fails with the frontend's message.
/// When the frontend fails, that is the error returned here, even if the
/// return failed too (the solve's error then says why the build stopped).
///
/// If the solve fails before the daemon registers the build (a bad exporter,
/// say), this keeps asking for up to 15 s; a runner stops waiting for it
/// (drops it) once the solve has ended. Go's `client.Build` does the reverse
/// too: when the frontend side fails it gives the solve 5 s to fail as well,
/// then cancels it.
pub async fn run_client_frontend(
    control: &Control,
    build_ref: &str,
    session_id: &str,
    frontend: &dyn ClientFrontend,
) -> Result<(), GatewayError> {
    run_client_frontend_importing(control, build_ref, session_id, Vec::new(), frontend).await
}

/// [`run_client_frontend`] for a build that imports cache: the frontend finds
/// the entries in [`Gateway::cache_imports`].
pub(crate) async fn run_client_frontend_importing(
    control: &Control,
    build_ref: &str,
    session_id: &str,
    cache_imports: Vec<crate::cache::CacheEntry>,
    frontend: &dyn ClientFrontend,
) -> Result<(), GatewayError> {
    let gateway = Gateway::new(control.channel().clone(), build_ref, session_id)?.with_cache_imports(cache_imports);
    let caps = wait_for_build(&gateway).await?;
    // Without `return` the result would go back through a "final" solve,
    // a protocol older daemons (before BuildKit 0.5) speak; not supported.
    if !caps.supports("return") {
        return Err(GatewayError::MissingCapability("return"));
    }
    let gateway = gateway.with_capabilities(caps);
    match frontend.build(&gateway).await {
        Ok(output) => gateway.return_result(Ok(output)).await,
        Err(error) => {
            if let Err(return_error) = gateway.return_result(Err(error.to_status())).await {
                tracing::warn!(error = %return_error, "could not hand the frontend's error to the daemon");
            }
            Err(GatewayError::Frontend(error))
        }
    }
}

/// Pings until the daemon knows the build (see [`REGISTRATION_TIMEOUT`]).
async fn wait_for_build(gateway: &Gateway) -> Result<Capabilities, GatewayError> {
    let start = Instant::now();
    loop {
        match gateway.ping().await {
            Ok(caps) => return Ok(caps),
            Err(GatewayError::Call { source, .. }) if source.0.code() == tonic::Code::NotFound => {
                if start.elapsed() >= REGISTRATION_TIMEOUT {
                    return Err(GatewayError::NotRegistered {
                        build_ref: gateway.build_ref().to_owned(),
                        waited: start.elapsed(),
                        source,
                    });
                }
                tokio::time::sleep(REGISTRATION_RETRY).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::DaemonStatus;

    /// A build runner spawns the frontend run next to the solve.
    #[allow(dead_code)]
    fn the_run_is_send(control: &Control, frontend: &dyn ClientFrontend) {
        fn send<T: Send>(_: T) {}
        send(run_client_frontend(control, "ref", "session", frontend));
    }

    #[test]
    fn a_plain_error_returns_its_chain_as_unknown() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot parse the Dockerfile")]
        struct Parse(#[source] std::io::Error);
        let error = FrontendError::new(Parse(std::io::Error::other("line 3: unknown instruction FORM")));
        let status = error.to_status();
        assert_eq!(status.code(), tonic::Code::Unknown);
        assert_eq!(status.message(), "cannot parse the Dockerfile: line 3: unknown instruction FORM");
        assert_eq!(FrontendError::new("no Dockerfile").to_status().message(), "no Dockerfile");
    }

    #[test]
    fn a_failed_gateway_call_keeps_its_code_and_details() {
        let any = prost_types::Any {
            type_url: "type.googleapis.com/moby.buildkit.v1.errdefs.Solve".into(),
            value: vec![1, 2],
        };
        let details =
            crate::proto::google::rpc::Status { code: 2, message: "exit code: 1".into(), details: vec![any.clone()] };
        let daemon = tonic::Status::with_details(tonic::Code::Unknown, "exit code: 1", details.encode_to_vec().into());
        let error = FrontendError::from(GatewayError::Call { call: "Solve", source: DaemonStatus(daemon) });
        let status = error.to_status();
        assert_eq!(status.code(), tonic::Code::Unknown);
        assert_eq!(status.message(), "buildkitd's LLBBridge.Solve call failed: exit code: 1");
        let forwarded = crate::proto::google::rpc::Status::decode(status.details()).expect("details decode");
        assert_eq!(forwarded.details, [any]);

        let cancelled = FrontendError::from(GatewayError::Call {
            call: "ReadFile",
            source: DaemonStatus(tonic::Status::cancelled("context canceled")),
        });
        assert_eq!(cancelled.to_status().code(), tonic::Code::Cancelled);
    }
}
