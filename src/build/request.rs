//! What a build is, as plain data: which frontend makes the build graph,
//! which local folders it may read, where its outputs and cache go, and the
//! secrets, SSH agents and entitlements it may use.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::CacheEntry;
use crate::output::ExportEntry;
use crate::proto::pb;
use crate::services::{AgentSpec, SecretSource};

/// What turns the build's inputs into a build graph.
#[derive(Clone)]
#[non_exhaustive]
pub enum Frontend {
    /// A frontend that runs in the daemon, by name (`dockerfile.v0`), with its
    /// attributes (for the Dockerfile frontend: `filename`, `target`,
    /// `build-arg:NAME`, `label:NAME`, `platform`, `context:NAME`, ...).
    Daemon {
        /// The frontend's name as the daemon knows it.
        name: String,
        /// The frontend's options.
        attrs: BTreeMap<String, String>,
    },
    /// A build graph made by the caller (see [`crate::llb`]). Its local
    /// sources are served by the build's main session.
    Definition(pb::Definition),
    /// A frontend that runs in this process and drives the build through
    /// the daemon's LLBBridge gateway (see [`crate::gateway::ClientFrontend`]),
    /// as Go's `client.Build` does. Local sources it makes should name the
    /// gateway's `session_id()`.
    Client(Arc<dyn crate::gateway::ClientFrontend>),
}

impl fmt::Debug for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frontend::Daemon { name, attrs } => {
                f.debug_struct("Daemon").field("name", name).field("attrs", attrs).finish()
            }
            Frontend::Definition(definition) => {
                f.debug_tuple("Definition").field(&format_args!("{} ops", definition.def.len())).finish()
            }
            Frontend::Client(_) => f.write_str("Client"),
        }
    }
}

/// One build, as plain data. Build it by hand or start from
/// [`BuildRequest::dockerfile`]; run it with [`crate::build::build`].
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// What makes the build graph.
    pub frontend: Frontend,
    /// Folders the daemon may read, by the local name the graph uses
    /// (`context`, `dockerfile`, named contexts). Nothing outside them is
    /// ever read.
    pub locals: BTreeMap<String, PathBuf>,
    /// Where the result goes (images, registries, files and folders here).
    pub exports: Vec<ExportEntry>,
    /// Build cache to import before solving.
    pub cache_imports: Vec<CacheEntry>,
    /// Build cache to export after solving.
    pub cache_exports: Vec<CacheEntry>,
    /// Secrets `RUN --mount=type=secret` may read.
    pub secrets: Vec<SecretSource>,
    /// SSH agents `RUN --mount=type=ssh` may use.
    pub ssh: Vec<AgentSpec>,
    /// Entitlements granted to the build (`network.host`, `security.insecure`).
    pub entitlements: Vec<String>,
    /// OCI layout folders the daemon may read images from, by store id: what
    /// a named context `oci-layout://ID@DIGEST` (`context:NAME` attribute)
    /// names. Served read-only as the content store `oci:ID`.
    pub oci_layouts: BTreeMap<String, PathBuf>,
    /// Bytes the daemon may pull through the session's Upload service, by
    /// id: a context tarball named `http://buildkit-session/ID` in the
    /// `context` attribute (buildx's stdin context).
    pub uploads: BTreeMap<String, bytes::Bytes>,
}

impl BuildRequest {
    /// A request for `frontend` with nothing else: no folders, no outputs
    /// (the result stays in the daemon's cache), no cache, no secrets.
    pub fn new(frontend: Frontend) -> BuildRequest {
        BuildRequest {
            frontend,
            locals: BTreeMap::new(),
            exports: Vec::new(),
            cache_imports: Vec::new(),
            cache_exports: Vec::new(),
            secrets: Vec::new(),
            ssh: Vec::new(),
            entitlements: Vec::new(),
            oci_layouts: BTreeMap::new(),
            uploads: BTreeMap::new(),
        }
    }

    /// The Dockerfile project in `context` (its `Dockerfile`), built by the
    /// daemon's Dockerfile frontend: the same as `fbuild solve CONTEXT`.
    /// Set frontend attributes with [`BuildRequest::attr`].
    pub fn dockerfile(context: impl Into<PathBuf>) -> BuildRequest {
        let context = context.into();
        let mut request = BuildRequest::new(Frontend::Daemon {
            name: DOCKERFILE_FRONTEND.to_string(),
            attrs: [("filename".to_string(), "Dockerfile".to_string())].into(),
        });
        request.locals.insert(LOCAL_DOCKERFILE.into(), context.clone());
        request.locals.insert(LOCAL_CONTEXT.into(), context);
        request
    }

    /// Sets a daemon frontend's attribute (ignored for other frontends).
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> BuildRequest {
        if let Frontend::Daemon { attrs, .. } = &mut self.frontend {
            attrs.insert(key.into(), value.into());
        }
        self
    }

    /// Adds an output.
    pub fn export(mut self, export: ExportEntry) -> BuildRequest {
        self.exports.push(export);
        self
    }

    /// The folder served under the local name `name`, if any.
    pub fn local(&self, name: &str) -> Option<&Path> {
        self.locals.get(name).map(PathBuf::as_path)
    }
}

/// The daemon's Dockerfile frontend.
pub const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";
/// The local name of the build context folder.
pub(crate) const LOCAL_CONTEXT: &str = "context";
/// The local name of the folder holding the Dockerfile.
pub(crate) const LOCAL_DOCKERFILE: &str = "dockerfile";
