//! The options of one Dockerfile build, as plain data, and the one function
//! that turns them into a [`BuildRequest`]: buildx's `build.Options` and
//! `toSolveOpt`. Every front end maps its own input into [`BuildOptions`]
//! (`fbuild solve` its flags, bake a resolved target, a Rust program its
//! settings) and calls [`BuildOptions::plan`], so the same option always
//! becomes the same frontend and exporter attributes.
//!
//! Values keep buildx's syntax (`nofile=1024:2048`, `type=local,dest=out`,
//! `id=x,src=file`) and are parsed here; an error names the option
//! ([`BuildOption`]), which the front end shows as its flag or attribute.
//! Relative paths are read from the process's current folder: a front end
//! with another base folder (bake, with the bake file's folder) joins them
//! first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::attrs::{self, AttrError, CallFunc};
use super::request::{BuildRequest, Frontend, DOCKERFILE_FRONTEND, LOCAL_CONTEXT, LOCAL_DOCKERFILE};
use crate::cache::layout::LayoutError;
use crate::cache::{CacheDirection, CacheEntry, CacheProblem};
use crate::output::{ExportEntry, OutputError};
use crate::services::secrets::SecretError;
use crate::services::ssh::SshError;

/// Where the build context comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BuildContext {
    /// A folder here, sent to the daemon as the `context` local (the
    /// current folder by default).
    Dir(PathBuf),
    /// A git or http URL the daemon fetches itself (the `context` attribute).
    Remote(String),
    /// A tarball, served to the daemon by the session's Upload service
    /// (buildx's context from stdin).
    Upload(bytes::Bytes),
}

impl Default for BuildContext {
    fn default() -> BuildContext {
        BuildContext::Dir(PathBuf::from("."))
    }
}

/// Where the Dockerfile comes from (`Dockerfile` in the context by default).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DockerfileSpec {
    /// A path inside the build context: for a folder, the file there (read
    /// here); for a remote context or a tarball, read by the daemon.
    InContext(String),
    /// A file here; its folder is sent as the `dockerfile` local.
    File(PathBuf),
    /// The Dockerfile's text (bake's `dockerfile-inline`, a Dockerfile on
    /// stdin), written into a private folder that lives as long as the plan.
    Inline(String),
}

impl Default for DockerfileSpec {
    fn default() -> DockerfileSpec {
        DockerfileSpec::InContext("Dockerfile".to_owned())
    }
}

/// One build's options, buildx's names in kebab case in the comments. Every
/// field but the context and the Dockerfile may stay empty; the default is
/// `fbuild solve .`: the current folder and its `Dockerfile`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The build context (`PATH`; bake's `context`).
    pub context: BuildContext,
    /// The Dockerfile (`--file`, `dockerfile`, `dockerfile-inline`).
    pub dockerfile: DockerfileSpec,
    /// The daemon frontend that reads the Dockerfile; `None` is `dockerfile.v0`.
    pub frontend: Option<String>,
    /// The stage to build (`target`).
    pub target: Option<String>,
    /// Build arguments, already resolved (`build-arg`, `args`).
    pub build_args: BTreeMap<String, String>,
    /// Image labels (`label`, `labels`).
    pub labels: BTreeMap<String, String>,
    /// Target platforms, each entry possibly comma-separated (`platform`).
    pub platforms: Vec<String>,
    /// Build nothing from the cache (`no-cache`).
    pub no_cache: bool,
    /// Stages built without the cache (`no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// Check registries for newer base images (`pull`).
    pub pull: bool,
    /// `default`, `none` or `host` (`network`); empty is the default.
    pub network: Option<String>,
    /// `HOST=IP` or `HOST:IP` entries for `/etc/hosts` (`add-host`, `extra-hosts`).
    pub extra_hosts: Vec<String>,
    /// Entitlements granted to the build (`allow`, `entitlements`).
    pub entitlements: Vec<String>,
    /// The parent cgroup of `RUN` steps (`cgroup-parent`).
    pub cgroup_parent: Option<String>,
    /// `/dev/shm` size of `RUN` steps, as `64m` (`shm-size`).
    pub shm_size: Option<String>,
    /// `NAME=SOFT[:HARD]` limits of `RUN` steps (`ulimit`, `ulimits`).
    pub ulimits: Vec<String>,
    /// `KEY=VALUE` resource limits of `RUN` steps (`resource`); a later
    /// zero undoes an earlier value.
    pub resources: Vec<String>,
    /// Attestation specs, `type=provenance,...` (`attest`).
    pub attests: Vec<String>,
    /// The provenance shorthand: `true`, `false`, `mode=max` (`provenance`).
    pub provenance: Option<String>,
    /// The SBOM shorthand: `true`, `false`, `generator=IMAGE` (`sbom`).
    pub sbom: Option<String>,
    /// `[TYPE[,TYPE]:]KEY=VALUE` annotations put on every output (`annotation`).
    pub annotations: Vec<String>,
    /// Named contexts, name and value (`build-context`, `contexts`): a folder,
    /// `oci-layout://DIR[:TAG|@DIGEST]`, or a URL the daemon resolves
    /// (`docker-image://`, git, http).
    pub named_contexts: Vec<(String, String)>,
    /// Output specs (`output`); `type=cacheonly` means none.
    pub outputs: Vec<String>,
    /// Image names (`tag`, `tags`).
    pub tags: Vec<String>,
    /// Push the image (`push`).
    pub push: bool,
    /// Whether stdout is a terminal: an output to `-` is refused then.
    pub stdout_is_terminal: bool,
    /// Cache imports, buildx's CSV syntax (`cache-from`).
    pub cache_from: Vec<String>,
    /// Cache exports, buildx's CSV syntax (`cache-to`).
    pub cache_to: Vec<String>,
    /// `id=ID,src=FILE` or `id=ID,env=VAR` secrets (`secret`).
    pub secrets: Vec<String>,
    /// `default` or `ID=PATH` SSH agents (`ssh`).
    pub ssh: Vec<String>,
    /// A frontend subrequest instead of a build: `check`, `outline`,
    /// `targets`, with `format=` and `ignorestatus=` (`call`); `build` or
    /// nothing builds.
    pub call: Option<String>,
    /// Frontend attributes set last, as they are (buildctl's `--opt`).
    pub frontend_attrs: BTreeMap<String, String>,
}

impl BuildOptions {
    /// A build of `context` with `dockerfile`, every other option empty.
    pub fn new(context: BuildContext, dockerfile: DockerfileSpec) -> BuildOptions {
        BuildOptions { context, dockerfile, ..BuildOptions::default() }
    }
}

/// An option, for errors: front ends show it as their flag or attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildOption {
    Platform,
    Network,
    ExtraHost,
    Entitlement,
    ShmSize,
    Ulimit,
    Resource,
    Attest,
    Provenance,
    Sbom,
    Annotation,
    NamedContext,
    CacheFrom,
    CacheTo,
    Secret,
    Ssh,
    Call,
}

impl BuildOption {
    /// The `fbuild solve` (and buildx build) flag.
    pub fn flag(self) -> &'static str {
        match self {
            BuildOption::Platform => "--platform",
            BuildOption::Network => "--network",
            BuildOption::ExtraHost => "--add-host",
            BuildOption::Entitlement => "--allow",
            BuildOption::ShmSize => "--shm-size",
            BuildOption::Ulimit => "--ulimit",
            BuildOption::Resource => "--resource",
            BuildOption::Attest => "--attest",
            BuildOption::Provenance => "--provenance",
            BuildOption::Sbom => "--sbom",
            BuildOption::Annotation => "--annotation",
            BuildOption::NamedContext => "--build-context",
            BuildOption::CacheFrom => "--cache-from",
            BuildOption::CacheTo => "--cache-to",
            BuildOption::Secret => "--secret",
            BuildOption::Ssh => "--ssh",
            BuildOption::Call => "--call",
        }
    }

    /// The bake target attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            BuildOption::Platform => "platforms",
            BuildOption::Network => "network",
            BuildOption::ExtraHost => "extra-hosts",
            BuildOption::Entitlement => "entitlements",
            BuildOption::ShmSize => "shm-size",
            BuildOption::Ulimit => "ulimits",
            BuildOption::Resource => "resources",
            BuildOption::Attest | BuildOption::Provenance | BuildOption::Sbom => "attest",
            BuildOption::Annotation => "annotations",
            BuildOption::NamedContext => "contexts",
            BuildOption::CacheFrom => "cache-from",
            BuildOption::CacheTo => "cache-to",
            BuildOption::Secret => "secret",
            BuildOption::Ssh => "ssh",
            BuildOption::Call => "call",
        }
    }
}

impl fmt::Display for BuildOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.attribute())
    }
}

/// Options that cannot make a build; nothing was sent to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// A value of `option` that cannot be used, and why.
    #[error("invalid {option} value {value:?}: {reason}")]
    Invalid { option: BuildOption, value: String, reason: Box<InvalidValue> },
    /// The context folder is missing.
    #[error("build context {path:?} does not exist or is not a folder")]
    MissingContext { path: PathBuf },
    /// The Dockerfile cannot be read.
    #[error("cannot read the Dockerfile {path:?}")]
    Dockerfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An inline Dockerfile cannot be written into its private folder.
    #[error("cannot write the Dockerfile into a temporary folder")]
    Inline(#[source] std::io::Error),
    /// A named context's folder is missing.
    #[error("named context {name}: folder {path:?} does not exist")]
    MissingNamedContext { name: String, path: PathBuf },
    /// An environment variable the build reads holds a value it cannot use.
    #[error("{variable}={value:?} is not a boolean")]
    Environment { variable: &'static str, value: String },
    /// An output or a tag.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The context is in a git work tree that git cannot read.
    #[error(transparent)]
    Git(#[from] super::git_info::GitInfoError),
}

/// Why a value of an option cannot be used: the value's words only, as
/// [`OptionsError::Invalid`] names the option and the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidValue {
    /// Not a value the option takes; the text says which it takes.
    #[error("{0}")]
    Unusable(&'static str),
    /// An option encoded as an attribute (attest, annotation, shm-size,
    /// ulimit, resource, call).
    #[error(transparent)]
    Attribute(#[from] AttrError),
    #[error(transparent)]
    Cache(#[from] CacheProblem),
    /// An `oci-layout://` named context.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Ssh(#[from] SshError),
}

impl From<&'static str> for InvalidValue {
    fn from(text: &'static str) -> InvalidValue {
        InvalidValue::Unusable(text)
    }
}

fn invalid(option: BuildOption, value: &str, reason: impl Into<InvalidValue>) -> OptionsError {
    OptionsError::Invalid { option, value: value.to_owned(), reason: Box::new(reason.into()) }
}

/// The Dockerfile a plan uses.
#[derive(Debug)]
pub struct PlannedDockerfile {
    /// The folder sent as the `dockerfile` local; `None` when the daemon
    /// reads it from a remote context.
    pub dir: Option<PathBuf>,
    /// Its name in that folder (the `filename` attribute).
    pub name: String,
    /// Its text, when it was read here (for error context and the native
    /// compiler).
    pub text: Option<String>,
}

/// What [`BuildOptions::plan`] makes: the request and what it needs kept.
#[derive(Debug)]
pub struct PlannedBuild {
    /// The build, ready for [`crate::build::build`].
    pub request: BuildRequest,
    /// The Dockerfile it reads.
    pub dockerfile: PlannedDockerfile,
    /// The subrequest, when [`BuildOptions::call`] asks for one.
    pub(crate) call: Option<CallFunc>,
    /// Private folders the request names (an inline Dockerfile's): keep it
    /// as long as the request is used.
    pub guard: PlanGuard,
}

/// Keeps a plan's private folders (an inline Dockerfile's) until dropped.
#[derive(Debug)]
pub struct PlanGuard {
    _inline: Option<tempfile::TempDir>,
}

/// The entitlements a build may be granted.
const ENTITLEMENTS: &[&str] = &["network.host", "security.insecure", "device"];

impl BuildOptions {
    /// The request these options describe, every value checked first.
    /// `env` reads the environment: `SOURCE_DATE_EPOCH`,
    /// `BUILDX_NO_DEFAULT_ATTESTATIONS`, and the CI credentials of gha and
    /// s3 cache entries (as buildx does).
    pub fn plan(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<PlannedBuild, OptionsError> {
        let mut attrs = BTreeMap::new();
        let mut locals = BTreeMap::new();
        let mut uploads = BTreeMap::new();
        if let BuildContext::Dir(dir) = &self.context {
            if !dir.is_dir() {
                return Err(OptionsError::MissingContext { path: dir.clone() });
            }
        }
        let (dockerfile, inline) = self.dockerfile_here()?;
        attrs.insert("filename".to_owned(), dockerfile.name.clone());
        match &self.context {
            BuildContext::Dir(dir) => {
                locals.insert(LOCAL_CONTEXT.to_owned(), dir.clone());
            }
            BuildContext::Remote(url) => {
                attrs.insert("context".into(), url.clone());
            }
            BuildContext::Upload(bytes) => {
                let id = crate::session::new_id();
                attrs.insert("context".into(), format!("{}{id}", crate::services::upload::URL_PREFIX));
                uploads.insert(id, bytes.clone());
            }
        }
        if let Some(dir) = &dockerfile.dir {
            if !matches!(self.context, BuildContext::Dir(_)) {
                // A remote context with a Dockerfile from here (buildx's dockerfilekey).
                attrs.insert("dockerfilekey".into(), LOCAL_DOCKERFILE.into());
            }
            locals.insert(LOCAL_DOCKERFILE.to_owned(), dir.clone());
        }
        if let Some(target) = &self.target {
            attrs.insert("target".into(), target.clone());
        }
        // SOURCE_DATE_EPOCH is passed on like buildctl and buildx do; an
        // explicit build argument wins because it is inserted afterwards.
        if let Some(epoch) = env("SOURCE_DATE_EPOCH") {
            attrs.insert("build-arg:SOURCE_DATE_EPOCH".into(), epoch);
        }
        for (key, value) in &self.build_args {
            attrs.insert(format!("build-arg:{key}"), value.clone());
        }
        for (key, value) in &self.labels {
            attrs.insert(format!("label:{key}"), value.clone());
        }
        let platforms: Vec<&str> =
            self.platforms.iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()).collect();
        for platform in &platforms {
            validate_platform(platform)?;
        }
        if !platforms.is_empty() {
            attrs.insert("platform".into(), platforms.join(","));
        }
        if self.no_cache {
            attrs.insert("no-cache".into(), String::new());
        } else if !self.no_cache_filter.is_empty() {
            attrs.insert("no-cache".into(), self.no_cache_filter.join(","));
        }
        if self.pull {
            attrs.insert("image-resolve-mode".into(), "pull".into());
        }
        let mut entitlements = Vec::new();
        for entitlement in &self.entitlements {
            if !ENTITLEMENTS.contains(&entitlement.as_str()) {
                return Err(invalid(
                    BuildOption::Entitlement,
                    entitlement,
                    "known entitlements are network.host, security.insecure",
                ));
            }
            if !entitlements.contains(entitlement) {
                entitlements.push(entitlement.clone());
            }
        }
        match self.network.as_deref() {
            None | Some("default") | Some("") => {}
            Some("none") => {
                attrs.insert("force-network-mode".into(), "none".into());
            }
            Some("host") => {
                attrs.insert("force-network-mode".into(), "host".into());
                // buildx grants the entitlement that the host network needs.
                if !entitlements.iter().any(|e| e == "network.host") {
                    entitlements.push("network.host".into());
                }
            }
            Some(other) => return Err(invalid(BuildOption::Network, other, "expected default, none or host")),
        }
        if !self.extra_hosts.is_empty() {
            let mut hosts = Vec::new();
            for entry in &self.extra_hosts {
                // buildx accepts host:ip and host=ip; IPv6 addresses contain ':' themselves.
                let (host, ip) = entry
                    .split_once('=')
                    .or_else(|| entry.split_once(':'))
                    .ok_or_else(|| invalid(BuildOption::ExtraHost, entry, "expected HOST:IP"))?;
                if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid(BuildOption::ExtraHost, entry, "expected HOST:IP with a valid IP address"));
                }
                hosts.push(format!("{host}={ip}"));
            }
            attrs.insert("add-hosts".into(), hosts.join(","));
        }
        if let Some(parent) = &self.cgroup_parent {
            attrs.insert("cgroup-parent".into(), parent.clone());
        }
        if let Some(size) = &self.shm_size {
            let bytes =
                attrs::ram_in_bytes(size.trim()).map_err(|reason| invalid(BuildOption::ShmSize, size, reason))?;
            // buildx sends it only when positive.
            if bytes > 0 {
                attrs.insert("shm-size".into(), bytes.to_string());
            }
        }
        if !self.ulimits.is_empty() {
            // One per name, the last one winning, sorted by name (docker's UlimitOpt).
            let mut ulimits = BTreeMap::new();
            for value in &self.ulimits {
                let (name, ulimit) =
                    attrs::parse_ulimit(value).map_err(|reason| invalid(BuildOption::Ulimit, value, reason))?;
                ulimits.insert(name, ulimit);
            }
            attrs.insert("ulimit".into(), ulimits.into_values().collect::<Vec<_>>().join(","));
        }
        for entry in &self.resources {
            match attrs::parse_resource(entry).map_err(|reason| invalid(BuildOption::Resource, entry, reason))? {
                (attr, Some(value)) => attrs.insert(attr.into(), value),
                // A later zero undoes an earlier value, as buildx's struct.
                (attr, None) => attrs.remove(attr),
            };
        }

        // Attestations, as buildx: the specs, then the shorthands.
        let mut attests = Vec::new();
        for value in &self.attests {
            attests.push(attrs::parse_attest(value).map_err(|reason| invalid(BuildOption::Attest, value, reason))?);
        }
        for (option, kind, value) in
            [(BuildOption::Provenance, "provenance", &self.provenance), (BuildOption::Sbom, "sbom", &self.sbom)]
        {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                let spec = attrs::canonical_attest(kind, value);
                attests.push(attrs::parse_attest(&spec).map_err(|reason| invalid(option, value, reason))?);
            }
        }
        let no_default = match env(attrs::NO_DEFAULT_ATTESTATIONS) {
            None => false,
            Some(value) => crate::gostrconv::parse_bool(&value)
                .ok_or(OptionsError::Environment { variable: attrs::NO_DEFAULT_ATTESTATIONS, value })?,
        };
        attrs.extend(attrs::attest_attrs(&attests, no_default));

        let call = match &self.call {
            Some(value) => attrs::parse_call(value).map_err(|reason| invalid(BuildOption::Call, value, reason))?,
            None => None,
        };
        if let Some(call) = &call {
            // What buildx's build.go adds for a subrequest.
            let caps = "moby.buildkit.frontend.subrequests+forward";
            attrs
                .entry("frontend.caps".into())
                .and_modify(|existing: &mut String| {
                    existing.push(',');
                    existing.push_str(caps)
                })
                .or_insert_with(|| caps.into());
            attrs.insert("requestid".into(), format!("frontend.{}", call.name));
        }

        let mut oci_layouts = BTreeMap::new();
        for (name, value) in &self.named_contexts {
            if let Some(layout) = value.strip_prefix("oci-layout://") {
                // Served from this machine: the daemon reads the folder
                // through the session's content store `oci:ID`.
                let id = format!("fbuild-oci-{}", oci_layouts.len());
                let (dir, digest) = crate::cache::layout::resolve_image(layout)
                    .map_err(|reason| invalid(BuildOption::NamedContext, &format!("{name}={value}"), reason))?;
                attrs.insert(format!("context:{name}"), format!("oci-layout://{id}@{digest}"));
                oci_layouts.insert(id, dir);
            } else if value.contains("://") || value.starts_with("target:") {
                // Sources the daemon resolves itself pass through unchanged.
                attrs.insert(format!("context:{name}"), value.clone());
            } else {
                let path = PathBuf::from(value);
                if !path.is_dir() {
                    return Err(OptionsError::MissingNamedContext { name: name.clone(), path });
                }
                // A local of its own name, so a context named `context` or
                // `dockerfile` does not replace the main folders.
                let local = format!("named-{name}");
                attrs.insert(format!("context:{name}"), format!("local:{local}"));
                locals.insert(local, path);
            }
        }
        for (key, value) in &self.frontend_attrs {
            attrs.insert(key.clone(), value.clone());
        }
        if let BuildContext::Dir(dir) = &self.context {
            // buildx's git facts, under the local names buildx gives the folders
            // (a named context's folder is its name there, `named-NAME` here).
            let buildx_locals: BTreeMap<String, PathBuf> = locals
                .iter()
                .map(|(local, path)| (local.strip_prefix("named-").unwrap_or(local).to_owned(), path.clone()))
                .collect();
            let dockerfile_path = dockerfile.dir.as_ref().map(|d| d.join(&dockerfile.name));
            attrs.extend(super::git_info::git_attributes(dir, dockerfile_path.as_deref(), &buildx_locals, env)?);
        }

        let exports = if call.is_some() {
            // A subrequest exports nothing (buildx: NoOutput).
            Vec::new()
        } else {
            self.exports()?
        };
        // Credentials for gha and s3 come from the CI environment, as buildx
        // takes them; a gha entry with neither token nor URL is skipped.
        let cache = |specs: &[String], option, direction| -> Result<Vec<CacheEntry>, OptionsError> {
            specs
                .iter()
                .map(|spec| CacheEntry::parse(spec, direction).map_err(|e| invalid(option, spec, e.problem)))
                .filter_map(|entry| entry.map(|e| e.with_ci_env(env)).transpose())
                .collect()
        };
        let cache_imports = cache(&self.cache_from, BuildOption::CacheFrom, CacheDirection::Import)?;
        let cache_exports = cache(&self.cache_to, BuildOption::CacheTo, CacheDirection::Export)?;
        let mut secrets = Vec::new();
        for spec in &self.secrets {
            // buildx hands secrets to BuildKit's store, which refuses one
            // without an id ("secret missing ID") instead of guessing one.
            let has_id = crate::output::csv_fields(spec).unwrap_or_default().iter().any(|field| {
                field.split_once('=').is_some_and(|(key, value)| key.eq_ignore_ascii_case("id") && !value.is_empty())
            });
            if !has_id {
                return Err(invalid(
                    BuildOption::Secret,
                    spec,
                    "secret missing ID (add id=NAME, the id RUN --mount=type=secret uses)",
                ));
            }
            secrets.push(crate::services::secrets::SecretSource::parse(spec).map_err(|e| {
                let value = e.value().to_owned();
                invalid(BuildOption::Secret, &value, e)
            })?);
        }
        let ssh = self
            .ssh
            .iter()
            .map(|spec| crate::services::ssh::AgentSpec::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                let value = e.value().to_owned();
                invalid(BuildOption::Ssh, &value, e)
            })?;

        Ok(PlannedBuild {
            request: BuildRequest {
                frontend: Frontend::Daemon {
                    name: self.frontend.clone().unwrap_or_else(|| DOCKERFILE_FRONTEND.to_owned()),
                    attrs,
                },
                locals,
                exports,
                cache_imports,
                cache_exports,
                secrets,
                ssh,
                entitlements,
                oci_layouts,
                uploads,
            },
            dockerfile,
            call,
            guard: PlanGuard { _inline: inline },
        })
    }

    /// The Dockerfile: read here when it is here (the text shows the lines
    /// around an error), written into a private folder when inline.
    fn dockerfile_here(&self) -> Result<(PlannedDockerfile, Option<tempfile::TempDir>), OptionsError> {
        let path = match (&self.dockerfile, &self.context) {
            (DockerfileSpec::Inline(text), _) => {
                let dir =
                    tempfile::Builder::new().prefix("fbuild-dockerfile-").tempdir().map_err(OptionsError::Inline)?;
                fs_err::write(dir.path().join("Dockerfile"), text).map_err(OptionsError::Inline)?;
                let planned = PlannedDockerfile {
                    dir: Some(dir.path().to_path_buf()),
                    name: "Dockerfile".into(),
                    text: Some(text.clone()),
                };
                return Ok((planned, Some(dir)));
            }
            (DockerfileSpec::InContext(name), BuildContext::Dir(dir)) => dir.join(name),
            (DockerfileSpec::InContext(name), _) => {
                return Ok((PlannedDockerfile { dir: None, name: name.clone(), text: None }, None))
            }
            (DockerfileSpec::File(path), _) => path.clone(),
        };
        let text =
            std::fs::read_to_string(&path).map_err(|source| OptionsError::Dockerfile { path: path.clone(), source })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok((PlannedDockerfile { dir: Some(dir), name, text: Some(text) }, None))
    }

    /// The outputs, with the tags, the push and the annotations: buildx
    /// puts every annotation on every output.
    fn exports(&self) -> Result<Vec<ExportEntry>, OptionsError> {
        let outputs: Vec<String> = self.outputs.iter().filter(|o| !is_cacheonly(o)).cloned().collect();
        let mut exports = crate::output::exports_from_flags(&outputs, &self.tags, self.push, self.stdout_is_terminal)?;
        let mut annotations = Vec::new();
        for value in &self.annotations {
            annotations.extend(
                attrs::parse_annotation(value).map_err(|reason| invalid(BuildOption::Annotation, value, reason))?,
            );
        }
        for export in &mut exports {
            export.attrs.extend(annotations.iter().cloned());
        }
        Ok(exports)
    }
}

/// `type=cacheonly`: no exporter at all, the result stays in the cache.
fn is_cacheonly(output: &str) -> bool {
    crate::output::csv_fields(output).is_ok_and(|fields| fields.iter().any(|f| f == "type=cacheonly"))
}

fn validate_platform(platform: &str) -> Result<(), OptionsError> {
    let parts: Vec<&str> = platform.split('/').collect();
    let valid = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty())
        || parts.len() == 1 && parts[0] == "local";
    if valid {
        Ok(())
    } else {
        Err(invalid(BuildOption::Platform, platform, "expected OS/ARCH[/VARIANT], e.g. linux/amd64"))
    }
}

#[cfg(test)]
fn attrs_of(planned: &PlannedBuild) -> &BTreeMap<String, String> {
    match &planned.request.frontend {
        Frontend::Daemon { attrs, .. } => attrs,
        other => panic!("not a daemon frontend: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, BuildOptions) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let options =
            BuildOptions::new(BuildContext::Dir(dir.path().to_owned()), DockerfileSpec::InContext("Dockerfile".into()));
        (dir, options)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_folder_and_its_dockerfile_are_locals() {
        let (dir, options) = project();
        let planned = options.plan(&no_env).unwrap();
        assert_eq!(planned.request.locals["context"], dir.path());
        assert_eq!(planned.request.locals["dockerfile"], dir.path());
        assert_eq!(planned.dockerfile.text.as_deref(), Some("FROM scratch\n"));
        assert_eq!(attrs_of(&planned)["filename"], "Dockerfile");
    }

    #[test]
    fn inline_dockerfiles_live_as_long_as_the_plan() {
        let (dir, mut options) = project();
        options.dockerfile = DockerfileSpec::Inline("FROM busybox\n".into());
        let planned = options.plan(&no_env).unwrap();
        let folder = planned.request.locals["dockerfile"].clone();
        assert_ne!(folder, dir.path());
        assert_eq!(std::fs::read_to_string(folder.join("Dockerfile")).unwrap(), "FROM busybox\n");
        let PlannedBuild { request: _request, guard, .. } = planned;
        assert!(folder.exists());
        drop(guard);
        assert!(!folder.exists());
    }

    #[test]
    fn remote_contexts_read_their_own_dockerfile() {
        let mut options =
            BuildOptions::new(BuildContext::Remote("git://h/r.git".into()), DockerfileSpec::InContext("a/Df".into()));
        let planned = options.plan(&no_env).unwrap();
        assert_eq!(attrs_of(&planned)["context"], "git://h/r.git");
        assert_eq!(attrs_of(&planned)["filename"], "a/Df");
        assert!(planned.request.locals.is_empty());
        options.dockerfile = DockerfileSpec::Inline("FROM scratch\n".into());
        let planned = options.plan(&no_env).unwrap();
        assert_eq!(attrs_of(&planned)["dockerfilekey"], "dockerfile");
    }

    #[test]
    fn one_encoding_for_every_front_end() {
        let (_dir, mut options) = project();
        options.shm_size = Some(" 64m".into());
        options.ulimits = vec!["nproc=10".into(), "nofile=1024:2048".into(), "nproc=20:30".into()];
        options.network = Some("host".into());
        options.outputs = vec!["type=cacheonly".into()];
        options.call = Some("build".into());
        let planned = options.plan(&|key| (key == "SOURCE_DATE_EPOCH").then(|| "0".to_owned())).unwrap();
        let attrs = attrs_of(&planned);
        assert_eq!(attrs["shm-size"], "67108864");
        assert_eq!(attrs["ulimit"], "nofile=1024:2048,nproc=20:30");
        assert_eq!(attrs["build-arg:SOURCE_DATE_EPOCH"], "0");
        assert_eq!(planned.request.entitlements, ["network.host"]);
        assert!(planned.request.exports.is_empty(), "cacheonly exports nothing");
        assert!(planned.call.is_none(), "call=build is a build");
    }

    #[test]
    fn errors_name_the_option() {
        type Setter = fn(&mut BuildOptions);
        let cases: Vec<(Setter, BuildOption)> = vec![
            (|o| o.shm_size = Some("lots".into()), BuildOption::ShmSize),
            (|o| o.ulimits = vec!["nofile=2:1".into()], BuildOption::Ulimit),
            (|o| o.platforms = vec!["linux".into()], BuildOption::Platform),
            (|o| o.network = Some("bridge".into()), BuildOption::Network),
            (|o| o.extra_hosts = vec!["db=x".into()], BuildOption::ExtraHost),
            (|o| o.entitlements = vec!["root".into()], BuildOption::Entitlement),
            (|o| o.call = Some("nope".into()), BuildOption::Call),
            (|o| o.secrets = vec!["src=f".into()], BuildOption::Secret),
            (|o| o.cache_to = vec!["type=local".into()], BuildOption::CacheTo),
        ];
        for (set, expected) in cases {
            let (_dir, mut options) = project();
            set(&mut options);
            match options.plan(&no_env) {
                Err(OptionsError::Invalid { option, .. }) => assert_eq!(option, expected),
                other => panic!("{expected:?}: {other:?}"),
            }
        }
        let (dir, mut options) = project();
        options.dockerfile = DockerfileSpec::InContext("nope".into());
        assert!(
            matches!(options.plan(&no_env), Err(OptionsError::Dockerfile { path, .. }) if path == dir.path().join("nope"))
        );
    }
}
