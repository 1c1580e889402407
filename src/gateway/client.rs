//! [`Gateway`]: typed LLBBridge calls for one build.
//!
//! Every call carries `buildkit-controlapi-buildid: <build ref>` (added by
//! [`BuildId`], a tonic interceptor), which is how buildkitd's gateway
//! forwarder finds the build a call belongs to; calls can therefore go over
//! any connection to the daemon, though sharing the solve's is cheapest.
//! No call has a deadline: a gateway solve builds, and builds can take hours.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prost::Message;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::cache::CacheEntry;
use crate::control::MAX_MESSAGE_SIZE;
use crate::proto::google::rpc;
use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
use crate::proto::moby::buildkit::v1::frontend as api;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use crate::proto::moby::buildkit::v1::types::WorkerRecord;
use crate::proto::pb;

use super::frontend::FrontendOutput;
use super::GatewayError;

/// The metadata key buildkitd routes LLBBridge calls by (Go's
/// `client/buildid`).
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// Adds the build ref to every LLBBridge call.
#[derive(Clone)]
pub(crate) struct BuildId(MetadataValue<Ascii>);

impl Interceptor for BuildId {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(BUILD_ID_KEY, self.0.clone());
        Ok(request)
    }
}

/// What the daemon's gateway supports, from `Ping`.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    frontend: BTreeMap<String, ApiCap>,
    llb: BTreeMap<String, ApiCap>,
    workers: Vec<WorkerRecord>,
}

/// Go's `grpcclient.defaultCaps`: what a daemon that predates capability
/// reporting supports. (An empty list means such a daemon.)
const DEFAULT_FRONTEND_CAPS: &[&str] = &["solve.base", "solve.inlinereturn", "resolveimage", "readfile"];

/// Go's `grpcclient.defaultLLBCaps`, for the same reason.
const DEFAULT_LLB_CAPS: &[&str] = &[
    "source.image",
    "source.local",
    "source.local.unique",
    "source.local.sessionid",
    "source.local.includepatterns",
    "source.local.followpaths",
    "source.local.excludepatterns",
    "source.local.sharedkeyhint",
    "source.git",
    "source.git.keepgitdir",
    "source.git.fullurl",
    "source.http",
    "source.http.checksum",
    "source.http.perm",
    "source.http.uidgid",
    "source.buildop.llbfilename",
    "exec.meta.base",
    "exec.meta.proxy",
    "exec.mount.bind",
    "exec.mount.cache",
    "exec.mount.cache.sharing",
    "exec.mount.selector",
    "exec.mount.tmpfs",
    "exec.mount.secret",
    "constraints",
    "platform",
    "meta.ignorecache",
    "meta.description",
    "meta.exportcache",
];

impl Capabilities {
    fn from_pong(pong: api::PongResponse) -> Self {
        let index = |caps: Vec<ApiCap>, defaults: &[&str]| -> BTreeMap<String, ApiCap> {
            if caps.is_empty() {
                defaults
                    .iter()
                    .map(|id| ((*id).to_owned(), ApiCap { id: (*id).to_owned(), enabled: true, ..Default::default() }))
                    .collect()
            } else {
                caps.into_iter().map(|cap| (cap.id.clone(), cap)).collect()
            }
        };
        Capabilities {
            frontend: index(pong.frontend_api_caps, DEFAULT_FRONTEND_CAPS),
            llb: index(pong.llb_caps, DEFAULT_LLB_CAPS),
            workers: pong.workers,
        }
    }

    /// Whether the gateway API capability `id` (e.g. `return`,
    /// `proto.refarray`) is there and enabled.
    pub fn supports(&self, id: &str) -> bool {
        self.frontend.get(id).is_some_and(|cap| cap.enabled)
    }

    /// Whether the LLB capability `id` (e.g. `exec.mount.cache`) is there and
    /// enabled.
    pub fn supports_llb(&self, id: &str) -> bool {
        self.llb.get(id).is_some_and(|cap| cap.enabled)
    }

    /// The daemon's workers, as the gateway reports them.
    pub fn workers(&self) -> &[WorkerRecord] {
        &self.workers
    }
}

/// An image's config as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference after the daemon's source policies (usually the one
    /// asked for).
    pub reference: String,
    /// The manifest digest (`sha256:…`) the config belongs to: pin the image
    /// source to it so the build uses what was resolved.
    pub digest: String,
    /// The image config JSON.
    pub config: Vec<u8>,
}

/// A warning for the build's progress ([`Gateway::warn`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Warning {
    /// The op it belongs to (its digest); may be empty.
    pub digest: String,
    /// 1 for a warning (BuildKit's only level so far).
    pub level: i64,
    /// One line: what is wrong, e.g. `RuleName: message (line 3)`.
    pub short: String,
    /// Longer explanation, one entry per paragraph.
    pub detail: Vec<String>,
    /// Where to read more.
    pub url: String,
    /// The file it is about, to show its lines.
    pub source: Option<pb::SourceInfo>,
    /// The lines it is about, in `source`.
    pub ranges: Vec<pb::Range>,
}

/// A result the daemon holds for this build: the output of a gateway solve.
///
/// An empty reference stands for an empty filesystem (a solve of scratch);
/// it can be returned but not read from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reference {
    id: String,
    definition: Option<pb::Definition>,
}

impl Reference {
    /// The daemon's id for the result.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this is the empty result.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// The definition the daemon reports the result was built from.
    pub fn definition(&self) -> Option<&pb::Definition> {
        self.definition.as_ref()
    }

    pub(super) fn from_pb(reference: api::Ref) -> Self {
        Reference { id: reference.id, definition: reference.def }
    }

    fn to_pb(&self) -> api::Ref {
        api::Ref { id: self.id.clone(), def: self.definition.clone() }
    }
}

/// An LLBBridge client bound to one build (one `Control.Solve` ref).
#[derive(Clone)]
pub struct Gateway {
    client: LlbBridgeClient<InterceptedService<Channel, BuildId>>,
    build_ref: String,
    session_id: String,
    caps: Option<Arc<Capabilities>>,
    /// The build's `--cache-from`s (type, attributes), as the build sent them.
    cache_imports: Arc<[CacheEntry]>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("build_ref", &self.build_ref)
            .field("session_id", &self.session_id)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A client for the build `build_ref` on `channel`; `session_id` is the
    /// build's session (frontends put it in `local` sources). No call is
    /// made yet.
    pub fn new(channel: Channel, build_ref: &str, session_id: &str) -> Result<Self, GatewayError> {
        let value = MetadataValue::try_from(build_ref)
            .map_err(|source| GatewayError::InvalidBuildRef { build_ref: build_ref.to_owned(), source })?;
        let client = LlbBridgeClient::with_interceptor(channel, BuildId(value))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Gateway {
            client,
            build_ref: build_ref.to_owned(),
            session_id: session_id.to_owned(),
            caps: None,
            cache_imports: Arc::default(),
        })
    }

    /// The build this client talks to.
    pub fn build_ref(&self) -> &str {
        &self.build_ref
    }

    /// The build's session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// What the daemon said it supports, once a frontend run has pinged it
    /// (see [`super::run_client_frontend`]).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_deref()
    }

    /// The build's cache imports, for [`Gateway::solve_with`]: the
    /// daemon imports cache per gateway solve, so a frontend passes these on
    /// (Go frontends read them from the `cache-imports` option).
    pub fn cache_imports(&self) -> &[CacheEntry] {
        &self.cache_imports
    }

    pub(crate) fn with_cache_imports(mut self, imports: Vec<CacheEntry>) -> Self {
        self.cache_imports = imports.into();
        self
    }

    pub(crate) fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = Some(Arc::new(caps));
        self
    }

    /// Asks the daemon what its gateway supports. Fails with `NotFound` ("no
    /// such job") when the daemon has not registered the build (yet): it
    /// waits about 3 s for the registration before answering so.
    pub async fn ping(&self) -> Result<Capabilities, GatewayError> {
        let pong = self.client.clone().ping(api::PingRequest {}).await.map_err(|s| GatewayError::call("Ping", s))?;
        Ok(Capabilities::from_pong(pong.into_inner()))
    }

    /// The config of image `reference` (`busybox`, `registry:5000/app:tag`)
    /// for `platform` (default: the daemon's). Progress shows the lookup as
    /// `[internal] load metadata for <reference>`, as for Dockerfile builds.
    pub async fn resolve_image_config(
        &self,
        reference: &str,
        platform: Option<pb::Platform>,
    ) -> Result<ResolvedImage, GatewayError> {
        let log_name = format!("[internal] load metadata for {reference}");
        self.resolve_image_config_with(reference, platform, "", &log_name).await
    }

    /// [`Gateway::resolve_image_config`] with a resolve mode (`pull` checks
    /// the registry even when the daemon has the image, `local` prefers the
    /// daemon's copy, empty is the default) and the progress name to show.
    pub async fn resolve_image_config_with(
        &self,
        reference: &str,
        platform: Option<pb::Platform>,
        resolve_mode: &str,
        log_name: &str,
    ) -> Result<ResolvedImage, GatewayError> {
        let request = api::ResolveImageConfigRequest {
            r#ref: reference.to_owned(),
            platform,
            resolve_mode: resolve_mode.to_owned(),
            log_name: log_name.to_owned(),
            // 0: a registry (not an OCI layout in the session); the daemon
            // authenticates with this build's session.
            resolver_type: 0,
            ..Default::default()
        };
        let response = self
            .client
            .clone()
            .resolve_image_config(request)
            .await
            .map_err(|s| GatewayError::call("ResolveImageConfig", s))?
            .into_inner();
        let resolved_ref = if response.r#ref.is_empty() { reference.to_owned() } else { response.r#ref };
        Ok(ResolvedImage { reference: resolved_ref, digest: response.digest, config: response.config.to_vec() })
    }

    /// Solves `definition` within the build. Like Go's gateway client this is
    /// lazy: the daemon answers with a reference at once and builds it when
    /// something needs it (a [`Gateway::read_file`], [`Gateway::evaluate`] or
    /// the export after the frontend returns), so build errors surface there.
    pub async fn solve(&self, definition: pb::Definition) -> Result<Reference, GatewayError> {
        self.solve_with(definition, &[], &BTreeMap::new()).await
    }

    /// [`Gateway::solve`] that may take cache from `cache_imports` (as
    /// `--cache-from` gives them; the daemon imports per
    /// gateway solve, not per build, so a frontend passes them on as Go's
    /// Dockerfile frontend does) and records `frontend_opt` (the build's
    /// options, e.g. `build-arg:*`) as the request in the result's provenance.
    pub async fn solve_with(
        &self,
        definition: pb::Definition,
        cache_imports: &[CacheEntry],
        frontend_opt: &BTreeMap<String, String>,
    ) -> Result<Reference, GatewayError> {
        let mut definition = definition;
        crate::llb::drop_empty_map_values(&mut definition);
        if let Some(caps) = self.capabilities() {
            // Go refuses graphs that need what the daemon lacks before sending them.
            for cap in definition.metadata.values().flat_map(|metadata| metadata.caps.keys()) {
                if !caps.supports_llb(cap) {
                    return Err(GatewayError::MissingLlbCapability(cap.clone()));
                }
            }
        }
        let request = api::SolveRequest {
            definition: Some(definition),
            frontend_opt: frontend_opt.clone(),
            cache_imports: cache_imports
                .iter()
                .map(|entry| api::CacheOptionsEntry { r#type: entry.kind.clone(), attrs: entry.attrs.clone() })
                .collect(),
            // Ask for the `Result` form (refs with their definitions), as Go
            // does; an old daemon would still answer with a bare ref id.
            allow_result_return: true,
            allow_result_array_ref: true,
            ..Default::default()
        };
        let response =
            self.client.clone().solve(request).await.map_err(|s| GatewayError::call("Solve", s))?.into_inner();
        let Some(result) = response.result else {
            return Ok(Reference { id: response.r#ref, definition: None });
        };
        match result.result {
            None => Ok(Reference::default()),
            Some(api::result::Result::Ref(reference)) => Ok(Reference::from_pb(reference)),
            Some(api::result::Result::RefDeprecated(id)) => Ok(Reference { id, definition: None }),
            // A definition solves to one result; a map comes from frontends
            // that build several platforms, which this API does not call.
            Some(api::result::Result::Refs(_) | api::result::Result::RefsDeprecated(_)) => {
                Err(GatewayError::MultiPlatformResult)
            }
        }
    }

    /// Runs the daemon frontend `frontend` (e.g. `dockerfile.v0`) with
    /// `opts` inside this build and returns its result's metadata, as Go's
    /// `gateway.Client.Solve` with a frontend does. buildx asks subrequests
    /// (`requestid=frontend.outline`) this way: their answers (`result.json`,
    /// `result.txt`, `result.statuscode`) live in the metadata, which
    /// `Control.Solve` would not pass on (it keeps only `frontend.*` keys).
    pub async fn solve_frontend(
        &self,
        frontend: &str,
        opts: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Vec<u8>>, GatewayError> {
        Ok(self.forward_frontend(frontend, opts).await?.metadata)
    }

    /// Runs the daemon frontend `frontend` with `opts` inside this build and
    /// returns its whole result (the filesystem and the exporter metadata),
    /// ready to be returned as this frontend's own: how a client-side
    /// frontend hands a build it cannot do to the daemon's frontend.
    pub async fn forward_frontend(
        &self,
        frontend: &str,
        opts: BTreeMap<String, String>,
    ) -> Result<super::FrontendOutput, GatewayError> {
        self.forward_frontend_with_inputs(frontend, opts, BTreeMap::new()).await
    }

    /// [`Gateway::forward_frontend`] with frontend inputs: graphs the
    /// frontend reads by key (the Dockerfile frontend's named contexts
    /// `context:NAME=input:KEY`), as buildx hands one bake target's result
    /// to the targets that use it.
    pub(crate) async fn forward_frontend_with_inputs(
        &self,
        frontend: &str,
        opts: BTreeMap<String, String>,
        mut inputs: BTreeMap<String, pb::Definition>,
    ) -> Result<super::FrontendOutput, GatewayError> {
        inputs.values_mut().for_each(crate::llb::drop_empty_map_values);
        let request = api::SolveRequest {
            frontend: frontend.to_owned(),
            frontend_opt: opts.into_iter().collect(),
            frontend_inputs: inputs,
            allow_result_return: true,
            allow_result_array_ref: true,
            ..Default::default()
        };
        let response =
            self.client.clone().solve(request).await.map_err(|s| GatewayError::call("Solve", s))?.into_inner();
        let Some(result) = response.result else {
            return Ok(super::FrontendOutput {
                reference: Some(Reference { id: response.r#ref, definition: None }),
                ..Default::default()
            });
        };
        let metadata = result.metadata.iter().map(|(key, value)| (key.clone(), value.to_vec())).collect();
        Ok(super::FrontendOutput { metadata, forwarded: Some(super::ForwardedResult(result)), ..Default::default() })
    }

    /// Shows a warning in the build's progress, attached to the op `digest`
    /// (Go's `Client.Warn`; the daemon's frontends report lint findings so).
    pub async fn warn(&self, warning: Warning) -> Result<(), GatewayError> {
        let request = api::WarnRequest {
            digest: warning.digest,
            level: warning.level,
            short: warning.short.into_bytes().into(),
            detail: warning.detail.into_iter().map(|d| d.into_bytes().into()).collect(),
            url: warning.url,
            info: warning.source,
            ranges: warning.ranges,
        };
        self.client.clone().warn(request).await.map_err(|s| GatewayError::call("Warn", s))?;
        Ok(())
    }

    /// Builds `reference` now, so its errors surface here rather than later.
    pub async fn evaluate(&self, reference: &Reference) -> Result<(), GatewayError> {
        if reference.is_empty() {
            return Ok(());
        }
        self.client
            .clone()
            .evaluate(api::EvaluateRequest { r#ref: reference.id.clone() })
            .await
            .map_err(|s| GatewayError::call("Evaluate", s))?;
        Ok(())
    }

    /// The contents of the file at `path` in `reference`'s filesystem
    /// (building it first if needed).
    pub async fn read_file(&self, reference: &Reference, path: &str) -> Result<Vec<u8>, GatewayError> {
        if reference.is_empty() {
            return Err(GatewayError::EmptyReference { path: path.to_owned() });
        }
        let request =
            api::ReadFileRequest { r#ref: reference.id.clone(), file_path: path.to_owned(), ..Default::default() };
        let response =
            self.client.clone().read_file(request).await.map_err(|s| GatewayError::call("ReadFile", s))?.into_inner();
        Ok(response.data.to_vec())
    }

    /// Ends the frontend's part of the build (`LLBBridge.Return`): the daemon
    /// exports `result`, or fails the build with the error's code and message.
    pub(crate) async fn return_result(
        &self,
        result: Result<FrontendOutput, tonic::Status>,
    ) -> Result<(), GatewayError> {
        let request = match result {
            Ok(super::FrontendOutput { forwarded: Some(result), .. }) => {
                api::ReturnRequest { result: Some(result.0), error: None }
            }
            Ok(output) => api::ReturnRequest {
                result: Some(api::Result {
                    metadata: output.metadata.into_iter().map(|(key, value)| (key, value.into())).collect(),
                    result: Some(if output.references.is_empty() {
                        // The daemon reads an empty id as "no filesystem".
                        api::result::Result::Ref(output.reference.unwrap_or_default().to_pb())
                    } else {
                        api::result::Result::Refs(api::RefMap {
                            refs: output.references.iter().map(|(k, r)| (k.clone(), r.to_pb())).collect(),
                        })
                    }),
                    ..Default::default()
                }),
                error: None,
            },
            Err(status) => {
                // Typed details (which step failed, stacks) ride along, so the
                // daemon rebuilds the same error it would have reported itself.
                let details = rpc::Status::decode(status.details()).map(|s| s.details).unwrap_or_default();
                api::ReturnRequest {
                    result: None,
                    error: Some(rpc::Status {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                        details,
                    }),
                }
            }
        };
        self.client.clone().r#return(request).await.map_err(|s| GatewayError::call("Return", s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interceptor_names_the_build() {
        let mut interceptor = BuildId(MetadataValue::from_static("build-1"));
        let request = interceptor.call(tonic::Request::new(())).expect("never refuses");
        assert_eq!(request.metadata().get(BUILD_ID_KEY).and_then(|v| v.to_str().ok()), Some("build-1"));
    }

    #[test]
    fn a_daemon_without_cap_lists_gets_gos_defaults() {
        let caps = Capabilities::from_pong(api::PongResponse::default());
        assert!(caps.supports("readfile"));
        assert!(!caps.supports("return"), "introduced with cap reporting, so not a default");
        assert!(caps.supports_llb("exec.mount.cache"));

        let pong = api::PongResponse {
            frontend_api_caps: vec![
                ApiCap { id: "return".into(), enabled: true, ..Default::default() },
                ApiCap { id: "gateway.exec".into(), enabled: false, ..Default::default() },
            ],
            ..Default::default()
        };
        let caps = Capabilities::from_pong(pong);
        assert!(caps.supports("return"));
        assert!(!caps.supports("gateway.exec"), "listed but disabled");
        assert!(!caps.supports("readfile"), "a listing replaces the defaults");
    }
}
