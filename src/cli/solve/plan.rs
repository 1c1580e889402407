//! From `fbuild solve` flags to a [`SolvePlan`]: the library's
//! [`BuildRequest`] plus what only the command line cares about (the
//! Dockerfile's text for error context, `--metadata-file`, `--progress`).
//! Every path is checked and every option parsed before anything is sent to
//! the daemon; errors name the flag. The frontend attributes are the ones
//! buildx and buildctl send to `dockerfile.v0` (keys read from the pinned
//! `frontend/dockerui/config.go`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Args;
use crate::build::{BuildRequest, Frontend, LOCAL_CONTEXT, LOCAL_DOCKERFILE};
use crate::cache::{CacheDirection, CacheEntry};
use crate::output::ExporterType;

/// The environment the plan reads (`--build-arg K`, `SOURCE_DATE_EPOCH`);
/// a trait so tests don't touch the process environment.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// A flag value that cannot be used, named with its flag.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("build context {path:?} does not exist or is not a folder (nor `-` for stdin, nor a git or http URL)")]
    MissingContext { path: PathBuf },
    #[error("cannot read the build context from stdin (PATH -)")]
    StdinContext(#[source] std::io::Error),
    #[error("stdin cannot be both the build context and the Dockerfile (PATH - with --file -)")]
    StdinTwice,
    #[error("ambiguous Dockerfile: stdin holds a Dockerfile (PATH -) and --file names another")]
    StdinDockerfileAndFile,
    #[error("cannot use {path:?} as {flag}: {problem}")]
    OutputFile { flag: &'static str, path: PathBuf, problem: String },
    #[error("cannot create a temporary folder")]
    TempDir(#[source] std::io::Error),
    #[error("--load needs a `docker` or `podman` command on PATH to load the image into; neither was found")]
    NoLoader,
    #[error("cannot read the Dockerfile {path:?}{}", if *.from_flag { " (--file)" } else { "" })]
    MissingDockerfile {
        path: PathBuf,
        /// The path came from `--file` (rather than being PATH/Dockerfile).
        from_flag: bool,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the Dockerfile from stdin (--file -)")]
    Stdin(#[source] std::io::Error),
    #[error("invalid {flag} value {value:?}: {reason}")]
    InvalidFlag { flag: &'static str, value: String, reason: String },
    #[error("--build-context {name}: folder {path:?} does not exist")]
    MissingNamedContext { name: String, path: PathBuf },
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> PlanError {
    PlanError::InvalidFlag { flag, value: value.to_string(), reason: reason.into() }
}

/// Where the Dockerfile comes from. A Dockerfile read from stdin is written
/// into a private temporary folder, which lives as long as the plan.
#[derive(Debug)]
pub struct DockerfileSource {
    /// The folder sent to the daemon as the `dockerfile` local.
    pub dir: PathBuf,
    /// The file's name inside `dir` (the `filename` frontend attribute).
    pub name: String,
    /// Its text, for showing the lines around an error.
    pub text: String,
    /// How the user knows it (buildx's `DockerfileMappingSrc`): the
    /// `--file` path, PATH/Dockerfile, or `stdin`.
    pub display: String,
    _stdin_dir: Option<tempfile::TempDir>,
    /// The empty context folder of `PATH -` with a Dockerfile on stdin.
    _empty_context: Option<tempfile::TempDir>,
}

impl DockerfileSource {
    /// The Dockerfile of a remote context, at `name` in it: the daemon reads it from there.
    fn remote_at(name: String) -> DockerfileSource {
        DockerfileSource {
            dir: PathBuf::new(),
            display: name.clone(),
            name,
            text: String::new(),
            _stdin_dir: None,
            _empty_context: None,
        }
    }
}

/// Everything one `fbuild solve` needs, checked.
#[derive(Debug)]
pub struct SolvePlan {
    /// The build, as the library runs it.
    pub request: BuildRequest,
    pub dockerfile: DockerfileSource,
    pub metadata_file: Option<PathBuf>,
    /// `--iidfile`: where the image id goes (checked like the metadata file).
    pub iidfile: Option<PathBuf>,
    pub progress: crate::progress::ProgressMode,
    /// `--call`/`--check`: a frontend subrequest instead of a build.
    pub call: Option<super::flags::CallFunc>,
    /// `--load`: the docker-archive output to hand to this command's `load`.
    pub load: Option<LoadPlan>,
    /// Folders above file outputs that do not exist yet: created when the
    /// build starts (buildx creates them before writing).
    pub create_dirs: Vec<PathBuf>,
    /// Messages for the user before the build starts (buildx's warnings).
    pub warnings: Vec<String>,
}

/// `--load`: the image is written as a docker archive into a private temp
/// folder, then loaded with `PROGRAM load -i FILE`.
#[derive(Debug)]
pub struct LoadPlan {
    /// `docker` or `podman`, as found on PATH.
    pub program: PathBuf,
    pub archive: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where the build context comes from.
#[derive(Debug)]
enum ContextSource {
    /// A local folder, sent as the `context` local.
    Dir(PathBuf),
    /// A URL the daemon fetches itself (git or http), sent as the `context`
    /// frontend attribute, as buildx does.
    Remote(String),
    /// A tarball read from stdin, served to the daemon by the session's
    /// Upload service (buildx's `uploadprovider`).
    Upload(Vec<u8>),
    /// A Dockerfile read from stdin (`PATH -` with no archive): an empty
    /// context, as in buildx.
    StdinDockerfile(String),
}

impl SolvePlan {
    pub fn from_args(args: &Args, env: &dyn Env) -> Result<SolvePlan, PlanError> {
        let mut warnings = Vec::new();
        let context = context_source(&args.context, args.file.as_deref())?;
        let empty_context;
        let (dockerfile, context_dir) = match &context {
            ContextSource::Dir(dir) => (dockerfile_source(dir, args.file.as_deref())?, Some(dir.clone())),
            ContextSource::StdinDockerfile(text) => {
                empty_context =
                    tempfile::Builder::new().prefix("fbuild-context-").tempdir().map_err(PlanError::TempDir)?;
                let source = dockerfile_from_text(text.clone()).map_err(PlanError::Stdin)?;
                let dir = empty_context.path().to_path_buf();
                (DockerfileSource { _empty_context: Some(empty_context), ..source }, Some(dir))
            }
            // As buildx: the Dockerfile is in the remote context, at --file's
            // path when it is relative; an absolute --file (or `-`) is read
            // here and sent as the `dockerfile` local.
            ContextSource::Remote(_) | ContextSource::Upload(_) => match args.file.as_deref() {
                Some(file) if file == Path::new("-") || file.is_absolute() => {
                    (dockerfile_source(Path::new("."), Some(file))?, None)
                }
                Some(file) => (DockerfileSource::remote_at(file.to_string_lossy().into_owned()), None),
                None => (DockerfileSource::remote_at("Dockerfile".into()), None),
            },
        };

        let mut attrs = BTreeMap::new();
        attrs.insert("filename".to_string(), dockerfile.name.clone());
        let mut uploads = BTreeMap::new();
        match context {
            ContextSource::Remote(url) => {
                attrs.insert("context".into(), url);
            }
            ContextSource::Upload(bytes) => {
                let id = crate::session::new_id();
                attrs.insert("context".into(), format!("{}{id}", crate::services::upload::URL_PREFIX));
                uploads.insert(id, bytes::Bytes::from(bytes));
            }
            ContextSource::Dir(_) | ContextSource::StdinDockerfile(_) => {}
        }
        if !dockerfile.dir.as_os_str().is_empty() && context_dir.is_none() {
            // A remote context with a Dockerfile from here (buildx's dockerfilekey).
            attrs.insert("dockerfilekey".into(), LOCAL_DOCKERFILE.into());
        }
        if let Some(target) = &args.target {
            attrs.insert("target".into(), target.clone());
        }
        // SOURCE_DATE_EPOCH is passed on like buildctl and buildx do; an
        // explicit --build-arg wins because it is inserted afterwards.
        if let Some(epoch) = env.var("SOURCE_DATE_EPOCH") {
            attrs.insert("build-arg:SOURCE_DATE_EPOCH".into(), epoch);
        }
        for arg in &args.build_args {
            let (key, value) = match arg.split_once('=') {
                Some((key, value)) => (key, Some(value.to_string())),
                None => (arg.as_str(), env.var(arg)),
            };
            if key.is_empty() {
                return Err(invalid("--build-arg", arg, "expected K=V or K"));
            }
            // `--build-arg K` with K unset is skipped, as in buildx.
            if let Some(value) = value {
                attrs.insert(format!("build-arg:{key}"), value);
            }
        }
        for label in &args.labels {
            let (key, value) = label.split_once('=').ok_or_else(|| invalid("--label", label, "expected K=V"))?;
            if key.is_empty() {
                return Err(invalid("--label", label, "the key is empty"));
            }
            attrs.insert(format!("label:{key}"), value.to_string());
        }
        let platforms: Vec<&str> =
            args.platforms.iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()).collect();
        for platform in &platforms {
            validate_platform(platform)?;
        }
        if !platforms.is_empty() {
            attrs.insert("platform".into(), platforms.join(","));
        }
        if args.no_cache {
            attrs.insert("no-cache".into(), String::new());
        } else if !args.no_cache_filter.is_empty() {
            attrs.insert("no-cache".into(), args.no_cache_filter.join(","));
        }
        if args.pull {
            attrs.insert("image-resolve-mode".into(), "pull".into());
        }
        let mut entitlements: Vec<String> = Vec::new();
        for entitlement in &args.allow {
            match entitlement.as_str() {
                "network.host" | "security.insecure" | "device" => entitlements.push(entitlement.clone()),
                _ => {
                    return Err(invalid(
                        "--allow",
                        entitlement,
                        "known entitlements are network.host, security.insecure",
                    ))
                }
            }
        }
        if let Some(network) = &args.network {
            match network.as_str() {
                "default" => {}
                "none" => {
                    attrs.insert("force-network-mode".into(), "none".into());
                }
                "host" => {
                    attrs.insert("force-network-mode".into(), "host".into());
                    // buildx grants the entitlement that --network=host needs.
                    if !entitlements.iter().any(|e| e == "network.host") {
                        entitlements.push("network.host".into());
                    }
                }
                _ => return Err(invalid("--network", network, "expected default, none or host")),
            }
        }
        if !args.add_hosts.is_empty() {
            let mut hosts = Vec::new();
            for entry in &args.add_hosts {
                // buildx accepts host:ip and host=ip; IPv6 addresses contain ':' themselves.
                let (host, ip) = entry
                    .split_once('=')
                    .or_else(|| entry.split_once(':'))
                    .ok_or_else(|| invalid("--add-host", entry, "expected HOST:IP"))?;
                if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid("--add-host", entry, "expected HOST:IP with a valid IP address"));
                }
                hosts.push(format!("{host}={ip}"));
            }
            attrs.insert("add-hosts".into(), hosts.join(","));
        }

        if let Some(parent) = &args.cgroup_parent {
            attrs.insert("cgroup-parent".into(), parent.clone());
        }
        if let Some(size) = &args.shm_size {
            let bytes = super::flags::ram_in_bytes(size).map_err(|reason| invalid("--shm-size", size, reason))?;
            // buildx sends it only when positive.
            if bytes > 0 {
                attrs.insert("shm-size".into(), bytes.to_string());
            }
        }
        if !args.ulimits.is_empty() {
            // One per name, the last one winning, sorted by name (docker's UlimitOpt).
            let mut ulimits = BTreeMap::new();
            for value in &args.ulimits {
                let (name, ulimit) =
                    super::flags::parse_ulimit(value).map_err(|reason| invalid("--ulimit", value, reason))?;
                ulimits.insert(name, ulimit);
            }
            attrs.insert("ulimit".into(), ulimits.into_values().collect::<Vec<_>>().join(","));
        }

        // buildx puts the legacy flags before --resource values; later wins.
        let legacy = [
            ("memory", &args.memory),
            ("memory-swap", &args.memory_swap),
            ("cpu-shares", &args.cpu_shares),
            ("cpu-period", &args.cpu_period),
            ("cpu-quota", &args.cpu_quota),
            ("cpuset-cpus", &args.cpuset_cpus),
            ("cpuset-mems", &args.cpuset_mems),
        ];
        let resources = legacy
            .iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| format!("{key}={value}")))
            .chain(args.resources.iter().cloned());
        for entry in resources {
            match super::flags::parse_resource(&entry).map_err(|reason| invalid("--resource", &entry, reason))? {
                (attr, Some(value)) => attrs.insert(attr.into(), value),
                // A later zero undoes an earlier value, as buildx's struct.
                (attr, None) => attrs.remove(attr),
            };
        }

        // Attestations, as buildx: --attest values, then the shorthands.
        let mut attests = Vec::new();
        for value in &args.attests {
            attests.push(super::flags::parse_attest(value).map_err(|reason| invalid("--attest", value, reason))?);
        }
        for (flag, kind, value) in [("--provenance", "provenance", &args.provenance), ("--sbom", "sbom", &args.sbom)] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                let spec = super::flags::canonical_attest(kind, value);
                attests.push(super::flags::parse_attest(&spec).map_err(|reason| invalid(flag, value, reason))?);
            }
        }
        let no_default = match env.var(super::flags::NO_DEFAULT_ATTESTATIONS) {
            None => false,
            Some(value) => crate::output::parse::parse_go_bool(&value).ok_or_else(|| PlanError::InvalidFlag {
                flag: super::flags::NO_DEFAULT_ATTESTATIONS,
                value: value.clone(),
                reason: "not a boolean".into(),
            })?,
        };
        attrs.extend(super::flags::attest_attrs(&attests, no_default));

        let call = match (&args.call, args.check) {
            (_, true) => super::flags::parse_call("check").map_err(|reason| invalid("--check", "true", reason))?,
            (Some(value), false) => {
                super::flags::parse_call(value).map_err(|reason| invalid("--call", value, reason))?
            }
            (None, false) => None,
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

        let mut locals = BTreeMap::new();
        let mut oci_layouts = BTreeMap::new();
        if let Some(dir) = context_dir {
            locals.insert(LOCAL_CONTEXT.to_string(), dir);
        }
        if !dockerfile.dir.as_os_str().is_empty() {
            locals.insert(LOCAL_DOCKERFILE.to_string(), dockerfile.dir.clone());
        }
        for spec in &args.build_contexts {
            let (name, value) = spec
                .split_once('=')
                .filter(|(name, value)| !name.is_empty() && !value.is_empty())
                .ok_or_else(|| invalid("--build-context", spec, "expected NAME=PATH or NAME=docker-image://REF"))?;
            if let Some(layout) = value.strip_prefix("oci-layout://") {
                // Served from this machine: the daemon reads the folder
                // through the session's content store `oci:ID`.
                let id = format!("fbuild-oci-{}", oci_layouts.len());
                let (dir, digest) = crate::cache::layout::resolve_image(layout)
                    .map_err(|reason| invalid("--build-context", spec, reason))?;
                attrs.insert(format!("context:{name}"), format!("oci-layout://{id}@{digest}"));
                oci_layouts.insert(id, dir);
            } else if value.contains("://") || value.starts_with("target:") {
                // Sources the daemon resolves itself pass through unchanged.
                attrs.insert(format!("context:{name}"), value.to_string());
            } else {
                let path = PathBuf::from(value);
                if !path.is_dir() {
                    return Err(PlanError::MissingNamedContext { name: name.to_string(), path });
                }
                // A local of its own name, so a context named `context` or
                // `dockerfile` does not replace the main folders.
                let local = format!("named-{name}");
                attrs.insert(format!("context:{name}"), format!("local:{local}"));
                locals.insert(local, path);
            }
        }
        for opt in &args.frontend_opts {
            let (key, value) = opt.split_once('=').ok_or_else(|| invalid("--opt", opt, "expected K=V"))?;
            attrs.insert(key.to_string(), value.to_string());
        }

        // `-o -` to a terminal is refused here, where the terminal is known.
        let stdout_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let load = if args.load { Some(load_plan(env)?) } else { None };
        let mut outputs = args.outputs.clone();
        if let Some(load) = &load {
            outputs.push(format!("type=docker,\"dest={}\"", load.archive.display()));
        }
        let mut exports = crate::output::exports_from_flags(&outputs, &args.tags, args.push, stdout_is_terminal)?;
        let mut annotations = Vec::new();
        for value in &args.annotations {
            annotations.extend(
                super::flags::parse_annotation(value).map_err(|reason| invalid("--annotation", value, reason))?,
            );
        }
        // buildx puts every annotation on every output.
        for export in &mut exports {
            export.attrs.extend(annotations.iter().cloned());
        }
        if call.is_some() {
            // A subrequest exports nothing (buildx: NoOutput).
            exports.clear();
        }
        let mut create_dirs = Vec::new();
        for export in &exports {
            if let Some(crate::output::OutputDest::File(path)) = &export.destination {
                // Checked by exports_from_flags: only missing folders are left.
                create_dirs.extend(crate::output::parse::missing_parents(path).unwrap_or_default());
            }
        }
        if let Some(path) = &args.iidfile {
            if exports.iter().any(|e| matches!(e.exporter, ExporterType::Local | ExporterType::Tar)) {
                return Err(PlanError::OutputFile {
                    flag: "--iidfile",
                    path: path.clone(),
                    problem: "local and tar outputs have no image id (buildx refuses them together too)".into(),
                });
            }
            check_output_file("--iidfile", path)?;
        }
        if let Some(path) = &args.metadata_file {
            check_output_file("--metadata-file", path)?;
        }
        if exports.is_empty() && call.is_none() {
            warnings.push(
                "No output specified. Build result will only remain in the build cache. \
                 To push result image into registry use --push or to load image into docker use --load"
                    .to_string(),
            );
        }

        // Credentials for gha and s3 come from the CI environment, as buildx
        // takes them; a gha entry with neither token nor URL is skipped.
        let lookup = |key: &str| env.var(key);
        let cache_imports = args
            .cache_from
            .iter()
            .map(|spec| cache_entry("--cache-from", spec, CacheDirection::Import))
            .filter_map(|entry| entry.map(|e| e.with_ci_env(&lookup)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let cache_exports = args
            .cache_to
            .iter()
            .map(|spec| cache_entry("--cache-to", spec, CacheDirection::Export))
            .filter_map(|entry| entry.map(|e| e.with_ci_env(&lookup)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        for spec in &args.secrets {
            // buildx hands secrets to BuildKit's store, which refuses one
            // without an id ("secret missing ID") instead of guessing one.
            let has_id = crate::output::csv_fields(spec).unwrap_or_default().iter().any(|field| {
                field.split_once('=').is_some_and(|(key, value)| key.eq_ignore_ascii_case("id") && !value.is_empty())
            });
            if !has_id {
                return Err(invalid(
                    "--secret",
                    spec,
                    "secret missing ID (add id=NAME, the id RUN --mount=type=secret uses)",
                ));
            }
        }
        let secrets = args
            .secrets
            .iter()
            .map(|spec| crate::services::secrets::SecretSource::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("--secret", e.value(), e.to_string()))?;
        let ssh = args
            .ssh
            .iter()
            .map(|spec| crate::services::ssh::AgentSpec::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("--ssh", e.value(), e.to_string()))?;
        let progress: crate::progress::ProgressMode = args
            .progress
            .parse()
            .map_err(|e: crate::progress::ParseModeError| invalid("--progress", &args.progress, e.to_string()))?;

        Ok(SolvePlan {
            request: BuildRequest {
                frontend: Frontend::Daemon { name: args.frontend.clone(), attrs },
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
            metadata_file: args.metadata_file.clone(),
            iidfile: args.iidfile.clone(),
            progress,
            call,
            load,
            create_dirs,
            warnings,
        })
    }

    /// The daemon frontend's attributes.
    #[cfg(test)]
    fn frontend_attrs(&self) -> &BTreeMap<String, String> {
        match &self.request.frontend {
            Frontend::Daemon { attrs, .. } => attrs,
            other => panic!("not a daemon frontend: {other:?}"),
        }
    }
}

fn dockerfile_source(context: &Path, file: Option<&Path>) -> Result<DockerfileSource, PlanError> {
    match file {
        Some(path) if path == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(PlanError::Stdin)?;
            dockerfile_from_text(text).map_err(PlanError::Stdin)
        }
        _ => {
            let path = match file {
                Some(path) => path.to_path_buf(),
                None => context.join("Dockerfile"),
            };
            let text = std::fs::read_to_string(&path).map_err(|source| PlanError::MissingDockerfile {
                path: path.clone(),
                from_flag: file.is_some(),
                source,
            })?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let dir = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let display = path.display().to_string();
            Ok(DockerfileSource { dir, name, text, display, _stdin_dir: None, _empty_context: None })
        }
    }
}

/// A Dockerfile given as text, written into a private temporary folder.
fn dockerfile_from_text(text: String) -> std::io::Result<DockerfileSource> {
    let dir = tempfile::Builder::new().prefix("fbuild-dockerfile-").tempdir()?;
    fs_err::write(dir.path().join("Dockerfile"), &text)?;
    Ok(DockerfileSource {
        dir: dir.path().to_path_buf(),
        name: "Dockerfile".into(),
        text,
        display: "stdin".into(),
        _stdin_dir: Some(dir),
        _empty_context: None,
    })
}

/// How many bytes of stdin tell an archive from a Dockerfile (buildx peeks
/// twice the tar header size).
const ARCHIVE_PEEK: usize = 1024;

/// The build context argument, resolved the way buildx's `loadInputs`
/// does: `-` is stdin (a tarball, else a Dockerfile), a folder is a folder
/// (even one named like a URL), then git and http URLs go to the daemon.
fn context_source(path: &Path, file: Option<&Path>) -> Result<ContextSource, PlanError> {
    if path == Path::new("-") {
        if file == Some(Path::new("-")) {
            return Err(PlanError::StdinTwice);
        }
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(PlanError::StdinContext)?;
        if is_archive(&bytes[..bytes.len().min(ARCHIVE_PEEK)]) {
            return Ok(ContextSource::Upload(bytes));
        }
        if file.is_some() {
            return Err(PlanError::StdinDockerfileAndFile);
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| PlanError::StdinContext(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        return Ok(ContextSource::StdinDockerfile(text));
    }
    if path.is_dir() {
        return Ok(ContextSource::Dir(path.to_path_buf()));
    }
    match path.to_str() {
        Some(url) if is_remote_url(url) => Ok(ContextSource::Remote(url.to_owned())),
        _ => Err(PlanError::MissingContext { path: path.to_path_buf() }),
    }
}

/// buildx's `urlutil.IsRemoteURL`: http(s) URLs and what BuildKit's
/// `ParseGitRef` takes for a git repository.
fn is_remote_url(value: &str) -> bool {
    const PREFIXES: &[&str] = &["http://", "https://", "git://", "ssh://", "git@", "github.com/"];
    PREFIXES.iter().any(|prefix| value.starts_with(prefix) && value.len() > prefix.len())
}

/// moby's `archive.IsArchive` as buildx uses it: tar (the `ustar` magic),
/// gzip, bzip2, xz or zstd.
fn is_archive(header: &[u8]) -> bool {
    const COMPRESSED: &[&[u8]] =
        &[&[0x1f, 0x8b, 0x08], b"BZh", &[0xfd, b'7', b'z', b'X', b'Z', 0x00], &[0x28, 0xb5, 0x2f, 0xfd]];
    COMPRESSED.iter().any(|magic| header.starts_with(magic)) || header.len() >= 262 && &header[257..262] == b"ustar"
}

/// `--metadata-file` and `--iidfile` are written when the build ends; what
/// would make that fail is refused now, as moby's `atomicwriter` (which
/// buildx writes both with) would: the folder must exist and the path must
/// be a regular file or nothing.
fn check_output_file(flag: &'static str, path: &Path) -> Result<(), PlanError> {
    let fail = |problem: String| PlanError::OutputFile { flag, path: path.to_path_buf(), problem };
    if path.as_os_str().is_empty() {
        return Err(fail("the path is empty".into()));
    }
    let dir = crate::output::sink::parent_dir(path);
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(fail(format!("{} is not a folder", dir.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(format!("the folder {} does not exist", dir.display())))
        }
        Err(err) => return Err(fail(format!("cannot inspect {}: {err}", dir.display()))),
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(meta) if meta.is_dir() => return Err(fail("it is a folder".into())),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(fail("it is a symbolic link; name the file it points to".into()))
        }
        Ok(_) => return Err(fail("it is not a regular file".into())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail(format!("cannot inspect it: {err}"))),
    }
    // Writable? A temp file in the folder is how the file will be written.
    tempfile::NamedTempFile::new_in(dir).map_err(|err| fail(format!("cannot write in {}: {err}", dir.display())))?;
    Ok(())
}

/// `--load`: `docker`, else `podman`, from PATH; the archive goes into a
/// private temp folder.
fn load_plan(env: &dyn Env) -> Result<LoadPlan, PlanError> {
    let path = env.var("PATH").unwrap_or_default();
    let program = ["docker", "podman"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
        })
        .ok_or(PlanError::NoLoader)?;
    let dir = tempfile::Builder::new().prefix("fbuild-load-").tempdir().map_err(PlanError::TempDir)?;
    Ok(LoadPlan { program, archive: dir.path().join("image.tar"), _dir: dir })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn validate_platform(platform: &str) -> Result<(), PlanError> {
    let parts: Vec<&str> = platform.split('/').collect();
    let valid = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty())
        || parts.len() == 1 && parts[0] == "local";
    if valid {
        Ok(())
    } else {
        Err(invalid("--platform", platform, "expected OS/ARCH[/VARIANT], e.g. linux/amd64"))
    }
}

/// A `--cache-from`/`--cache-to` value (buildx's syntax), named with its flag.
fn cache_entry(flag: &'static str, spec: &str, direction: CacheDirection) -> Result<CacheEntry, PlanError> {
    CacheEntry::parse(spec, direction).map_err(|e| invalid(flag, spec, e.problem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        dir
    }

    fn plan(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<SolvePlan, PlanError> {
        let mut argv = vec!["solve".to_string(), dir.display().to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let args = Wrapper::try_parse_from(argv).unwrap().args;
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SolvePlan::from_args(&args, &env)
    }

    #[test]
    fn frontend_attrs_match_buildx() {
        let dir = project();
        let plan = plan(
            dir.path(),
            &[
                "--target",
                "deps",
                "--build-arg",
                "A=1",
                "--build-arg",
                "FROM_ENV",
                "--build-arg",
                "UNSET",
                "--label",
                "org.x=y",
                "--platform",
                "linux/amd64,linux/arm64",
                "--pull",
                "--no-cache-filter",
                "deps",
                "--add-host",
                "db:10.0.0.2",
                "--network",
                "host",
                "--progress",
                "plain",
            ],
            &[("FROM_ENV", "env-value"), ("SOURCE_DATE_EPOCH", "0")],
        )
        .unwrap();
        let attrs: Vec<(String, String)> = plan.frontend_attrs().clone().into_iter().collect();
        let expected: Vec<(String, String)> = [
            ("add-hosts", "db=10.0.0.2"),
            // buildx's default provenance.
            ("attest:provenance", "mode=min,inline-only=true"),
            ("build-arg:A", "1"),
            ("build-arg:FROM_ENV", "env-value"),
            ("build-arg:SOURCE_DATE_EPOCH", "0"),
            ("filename", "Dockerfile"),
            ("force-network-mode", "host"),
            ("image-resolve-mode", "pull"),
            ("label:org.x", "y"),
            ("no-cache", "deps"),
            ("platform", "linux/amd64,linux/arm64"),
            ("target", "deps"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(attrs, expected);
        assert_eq!(plan.request.entitlements, ["network.host"]);
        assert_eq!(plan.request.locals.keys().collect::<Vec<_>>(), ["context", "dockerfile"]);
    }

    #[test]
    fn named_contexts_become_locals() {
        let dir = project();
        let other = tempfile::tempdir().unwrap();
        let spec = format!("assets={}", other.path().display());
        let plan = plan(dir.path(), &["--build-context", &spec, "--build-context", "base=docker-image://busybox"], &[])
            .unwrap();
        assert_eq!(plan.frontend_attrs()["context:assets"], "local:named-assets");
        assert_eq!(plan.frontend_attrs()["context:base"], "docker-image://busybox");
        assert_eq!(plan.request.locals["named-assets"], other.path());
    }

    #[test]
    fn bad_input_names_the_flag() {
        let dir = project();
        let cases: &[(&[&str], &str)] = &[
            (&["--label", "novalue"], "--label"),
            (&["--platform", "linux"], "--platform"),
            (&["--network", "bridge0"], "--network"),
            (&["--add-host", "db:notanip"], "--add-host"),
            (&["--allow", "root"], "--allow"),
            (&["--build-context", "x"], "--build-context"),
            (&["--cache-to", "type=local"], "--cache-to"),
            (&["--cache-to", "type=registry"], "--cache-to"),
            (&["--cache-from", "type=nope,ref=x"], "--cache-from"),
        ];
        for (extra, flag) in cases {
            let err = plan(dir.path(), extra, &[]).unwrap_err().to_string();
            assert!(err.contains(flag), "{extra:?}: {err}");
        }
        let missing = dir.path().join("nope");
        let err = plan(&missing, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = plan(dir.path(), &["-f", "/nonexistent/Dockerfile.x"], &[]).unwrap_err().to_string();
        assert!(err.contains("Dockerfile.x"), "{err}");
    }

    #[test]
    fn build_flags_become_buildx_attrs() {
        let dir = project();
        let built = plan(
            dir.path(),
            &[
                "--shm-size",
                "64m",
                "--ulimit",
                "nproc=10",
                "--ulimit",
                "nofile=1024:2048",
                "--ulimit",
                "nproc=20:30",
                "--cgroup-parent",
                "ci.slice",
                "--provenance",
                "mode=max",
                "--sbom",
                "true",
            ],
            &[],
        )
        .unwrap();
        let attrs = built.frontend_attrs();
        assert_eq!(attrs["shm-size"], "67108864");
        assert_eq!(attrs["ulimit"], "nofile=1024:2048,nproc=20:30", "one per name, the last wins, sorted");
        assert_eq!(attrs["cgroup-parent"], "ci.slice");
        assert_eq!(attrs["attest:provenance"], "type=provenance,mode=max");
        assert_eq!(attrs["attest:sbom"], "type=sbom");
        // `--shm-size 0` sends nothing, as buildx.
        assert!(!plan(dir.path(), &["--shm-size", "0"], &[]).unwrap().frontend_attrs().contains_key("shm-size"));
        // BUILDX_NO_DEFAULT_ATTESTATIONS: set and true turns the default off; junk is refused.
        let plan_env = |value: &str| plan(dir.path(), &[], &[("BUILDX_NO_DEFAULT_ATTESTATIONS", value)]);
        assert!(!plan_env("1").unwrap().frontend_attrs().contains_key("attest:provenance"));
        assert!(plan_env("false").unwrap().frontend_attrs().contains_key("attest:provenance"));
        assert!(plan_env("maybe").unwrap_err().to_string().contains("BUILDX_NO_DEFAULT_ATTESTATIONS"));
    }

    #[test]
    fn annotations_go_on_every_output() {
        let dir = project();
        let out = dir.path().join("o.tar");
        let plan = plan(
            dir.path(),
            &[
                "-o",
                &format!("type=oci,dest={}", out.display()),
                "--push",
                "-t",
                "r/a:1",
                "--annotation",
                "org.a=1",
                "--annotation",
                "index,manifest:org.b=2",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(plan.request.exports.len(), 2);
        for export in &plan.request.exports {
            assert_eq!(export.attrs["annotation.org.a"], "1");
            assert_eq!(export.attrs["annotation-index.org.b"], "2");
            assert_eq!(export.attrs["annotation-manifest.org.b"], "2");
        }
    }

    #[test]
    fn call_runs_a_subrequest_without_outputs() {
        let dir = project();
        let plan = plan(dir.path(), &["--call", "outline", "-t", "r/a:1", "--push"], &[]).unwrap();
        assert_eq!(plan.frontend_attrs()["requestid"], "frontend.outline");
        assert_eq!(plan.frontend_attrs()["frontend.caps"], "moby.buildkit.frontend.subrequests+forward");
        assert!(plan.request.exports.is_empty(), "a subrequest exports nothing");
        assert!(plan.warnings.is_empty(), "and is not warned about");
        let check = plan_check(dir.path());
        assert_eq!(check.frontend_attrs()["requestid"], "frontend.lint");
    }

    fn plan_check(dir: &Path) -> SolvePlan {
        plan(dir, &["--check"], &[]).unwrap()
    }

    #[test]
    fn remote_contexts_go_to_the_daemon() {
        let plan = plan(Path::new("git://127.0.0.1/repo.git#main"), &[], &[]).unwrap();
        assert_eq!(plan.frontend_attrs()["context"], "git://127.0.0.1/repo.git#main");
        assert!(plan.request.locals.is_empty(), "nothing is sent from here");
        let dir = project();
        let dockerfile = dir.path().join("Dockerfile");
        let remote = plan_with_file("https://example.com/ctx.tar.gz", &dockerfile);
        assert_eq!(remote.frontend_attrs()["dockerfilekey"], "dockerfile");
        assert_eq!(remote.request.locals["dockerfile"], dir.path());
        assert!(!remote.request.locals.contains_key("context"));
        // A relative --file names the Dockerfile inside the remote context.
        let inside = plan_with_file("git://127.0.0.1/repo.git", Path::new("build/app.Dockerfile"));
        assert_eq!(inside.frontend_attrs()["filename"], "build/app.Dockerfile");
        assert!(inside.request.locals.is_empty() && !inside.frontend_attrs().contains_key("dockerfilekey"));
        let err = tests::plan(Path::new("no/such/folder"), &[], &[]).unwrap_err().to_string();
        assert!(err.contains("no/such/folder") && err.contains("git or http URL"), "{err}");
    }

    fn plan_with_file(context: &str, file: &Path) -> SolvePlan {
        plan(Path::new(context), &["-f", file.to_str().unwrap()], &[]).unwrap()
    }

    #[test]
    fn archives_are_told_from_dockerfiles() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(is_archive(&tar));
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(is_archive(&[0x28, 0xb5, 0x2f, 0xfd, 1]));
        assert!(!is_archive(b"FROM scratch\n"));
        assert!(is_remote_url("github.com/docker/buildx"));
        assert!(is_remote_url("git@github.com:docker/buildx.git"));
        assert!(!is_remote_url("./ctx"));
    }

    #[test]
    fn output_files_are_checked_first() {
        let dir = project();
        let missing = dir.path().join("nope/meta.json");
        for flag in ["--metadata-file", "--iidfile"] {
            let err = plan(dir.path(), &[flag, missing.to_str().unwrap()], &[]).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains("nope/meta.json") && err.contains("does not exist"), "{err}");
            let err = plan(dir.path(), &[flag, dir.path().to_str().unwrap()], &[]).unwrap_err().to_string();
            assert!(err.contains("it is a folder"), "{err}");
        }
        let deep = dir.path().join("a/b/out.tar");
        let plan = plan(dir.path(), &["-o", &format!("type=tar,dest={}", deep.display())], &[]).unwrap();
        assert_eq!(plan.create_dirs, [dir.path().join("a"), dir.path().join("a/b")]);
    }

    #[test]
    fn secrets_need_an_id_and_no_output_is_warned_about() {
        let dir = project();
        std::fs::write(dir.path().join("s"), "x").unwrap();
        let src = dir.path().join("s");
        let err = plan(dir.path(), &["--secret", &format!("src={}", src.display())], &[]).unwrap_err().to_string();
        assert!(err.contains("--secret") && err.contains("secret missing ID"), "{err}");
        let ok = plan(dir.path(), &["--secret", &format!("id=s,src={}", src.display()), "-t", "a:1"], &[]).unwrap();
        assert_eq!(ok.warnings.len(), 1);
        assert!(ok.warnings[0].starts_with("No output specified."), "{:?}", ok.warnings);
    }

    #[test]
    fn load_needs_a_docker_or_podman() {
        let dir = project();
        let err = plan(dir.path(), &["--load"], &[("PATH", "/nonexistent")]).unwrap_err().to_string();
        assert!(err.contains("--load") && err.contains("docker") && err.contains("podman"), "{err}");
        let bin = tempfile::tempdir().unwrap();
        let podman = bin.path().join("podman");
        std::fs::write(&podman, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&podman, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let plan = plan(dir.path(), &["--load", "-t", "a:1"], &[("PATH", bin.path().to_str().unwrap())]).unwrap();
        let load = plan.load.as_ref().unwrap();
        assert_eq!(load.program, podman);
        assert_eq!(plan.request.exports[0].exporter, ExporterType::Docker);
        assert_eq!(plan.request.exports[0].attrs["name"], "a:1");
    }

    #[test]
    fn dockerfile_elsewhere_is_its_own_local() {
        let dir = project();
        let other = tempfile::tempdir().unwrap();
        let file = other.path().join("app.Dockerfile");
        std::fs::write(&file, "FROM scratch\n").unwrap();
        let plan = plan(dir.path(), &["-f", file.to_str().unwrap()], &[]).unwrap();
        assert_eq!(plan.frontend_attrs()["filename"], "app.Dockerfile");
        assert_eq!(plan.request.locals["dockerfile"], other.path());
    }
}
