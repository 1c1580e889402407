//! From `fbuild solve` flags to a [`SolvePlan`]: the flags are mapped into
//! the library's [`BuildOptions`] (what bake maps its targets into too),
//! which make the [`BuildRequest`]; this adds what only the command line
//! cares about (stdin, `--load`, `--metadata-file`, `--iidfile`,
//! `--progress`). Every path is checked and every option parsed before
//! anything is sent to the daemon; errors name the flag.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::Args;
#[cfg(test)]
use crate::build::Frontend;
use crate::build::{BuildContext, BuildOptions, BuildRequest, DockerfileSpec, OptionsError, PlanGuard, PlannedBuild};
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
    #[error(transparent)]
    Git(#[from] crate::build::GitInfoError),
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> PlanError {
    PlanError::InvalidFlag { flag, value: value.to_string(), reason: reason.into() }
}

/// The Dockerfile the build reads, and what keeps its private folders.
#[derive(Debug)]
pub struct DockerfileSource {
    /// The folder sent to the daemon as the `dockerfile` local (empty when
    /// the daemon reads it from a remote context).
    pub dir: PathBuf,
    /// The file's name inside `dir` (the `filename` frontend attribute).
    pub name: String,
    /// Its text, for showing the lines around an error (empty when remote).
    pub text: String,
    /// How the user knows it (buildx's `DockerfileMappingSrc`): the
    /// `--file` path, PATH/Dockerfile, or `stdin`.
    pub display: String,
    /// A Dockerfile from stdin lives in a private folder.
    _guard: PlanGuard,
    /// The empty context folder of `PATH -` with a Dockerfile on stdin.
    _empty_context: Option<tempfile::TempDir>,
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
        let mut empty_context = None;
        let file = args.file.as_deref();
        let (context, dockerfile, display) = match context_source(&args.context, file)? {
            ContextSource::Dir(dir) => {
                let (dockerfile, display) = match file {
                    Some(file) => local_dockerfile(file)?,
                    None => {
                        let path = dir.join("Dockerfile");
                        let display = path.display().to_string();
                        (DockerfileSpec::File(path), display)
                    }
                };
                (BuildContext::Dir(dir), dockerfile, display)
            }
            ContextSource::StdinDockerfile(text) => {
                let dir = tempfile::Builder::new().prefix("fbuild-context-").tempdir().map_err(PlanError::TempDir)?;
                let context = BuildContext::Dir(dir.path().to_path_buf());
                empty_context = Some(dir);
                (context, DockerfileSpec::Inline(text), "stdin".to_owned())
            }
            ContextSource::Remote(url) => {
                let (dockerfile, display) = remote_dockerfile(file)?;
                (BuildContext::Remote(url), dockerfile, display)
            }
            ContextSource::Upload(bytes) => {
                let (dockerfile, display) = remote_dockerfile(file)?;
                (BuildContext::Upload(bytes.into()), dockerfile, display)
            }
        };

        let mut options = BuildOptions::new(context, dockerfile);
        options.frontend = Some(args.frontend.clone());
        options.target = args.target.clone();
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
                options.build_args.insert(key.to_owned(), value);
            }
        }
        for label in &args.labels {
            let (key, value) = label.split_once('=').ok_or_else(|| invalid("--label", label, "expected K=V"))?;
            if key.is_empty() {
                return Err(invalid("--label", label, "the key is empty"));
            }
            options.labels.insert(key.to_owned(), value.to_owned());
        }
        options.platforms = args.platforms.clone();
        options.no_cache = args.no_cache;
        options.no_cache_filter = args.no_cache_filter.clone();
        options.pull = args.pull;
        options.entitlements = args.allow.clone();
        options.network = args.network.clone();
        options.extra_hosts = args.add_hosts.clone();
        options.cgroup_parent = args.cgroup_parent.clone();
        options.shm_size = args.shm_size.clone();
        options.ulimits = args.ulimits.clone();
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
        options.resources = legacy
            .iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| format!("{key}={value}")))
            .chain(args.resources.iter().cloned())
            .collect();
        options.attests = args.attests.clone();
        options.provenance = args.provenance.clone();
        options.sbom = args.sbom.clone();
        options.annotations = args.annotations.clone();
        options.call = if args.check { Some("check".to_owned()) } else { args.call.clone() };
        for spec in &args.build_contexts {
            let (name, value) = spec
                .split_once('=')
                .filter(|(name, value)| !name.is_empty() && !value.is_empty())
                .ok_or_else(|| invalid("--build-context", spec, "expected NAME=PATH or NAME=docker-image://REF"))?;
            options.named_contexts.push((name.to_owned(), value.to_owned()));
        }
        for opt in &args.frontend_opts {
            let (key, value) = opt.split_once('=').ok_or_else(|| invalid("--opt", opt, "expected K=V"))?;
            options.frontend_attrs.insert(key.to_owned(), value.to_owned());
        }
        let load = if args.load { Some(load_plan(env)?) } else { None };
        options.outputs = args.outputs.clone();
        if let Some(load) = &load {
            options.outputs.push(format!("type=docker,\"dest={}\"", load.archive.display()));
        }
        options.tags = args.tags.clone();
        options.push = args.push;
        // `-o -` to a terminal is refused, where the terminal is known.
        options.stdout_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        options.cache_from = args.cache_from.clone();
        options.cache_to = args.cache_to.clone();
        options.secrets = args.secrets.clone();
        options.ssh = args.ssh.clone();

        let planned = options.plan(&|key| env.var(key)).map_err(|error| from_options(error, file.is_some()))?;
        let PlannedBuild { request, dockerfile, call, guard } = planned;
        let dockerfile = DockerfileSource {
            dir: dockerfile.dir.unwrap_or_default(),
            name: dockerfile.name,
            text: dockerfile.text.unwrap_or_default(),
            display,
            _guard: guard,
            _empty_context: empty_context,
        };

        let mut create_dirs = Vec::new();
        for export in &request.exports {
            if let Some(crate::output::OutputDest::File(path)) = &export.destination {
                // Checked when planned: only missing folders are left.
                create_dirs.extend(crate::output::parse::missing_parents(path).unwrap_or_default());
            }
        }
        if let Some(path) = &args.iidfile {
            if request.exports.iter().any(|e| matches!(e.exporter, ExporterType::Local | ExporterType::Tar)) {
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
        if request.exports.is_empty() && call.is_none() {
            warnings.push(
                "No output specified. Build result will only remain in the build cache. \
                 To push result image into registry use --push or to load image into docker use --load"
                    .to_string(),
            );
        }
        let progress: crate::progress::ProgressMode = args
            .progress
            .parse()
            .map_err(|e: crate::progress::ParseModeError| invalid("--progress", &args.progress, e.to_string()))?;

        Ok(SolvePlan {
            request,
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

/// A Dockerfile named by `--file` when it is read here: a file, or `-`
/// (stdin); with how the user knows it (buildx's `DockerfileMappingSrc`).
fn local_dockerfile(file: &Path) -> Result<(DockerfileSpec, String), PlanError> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(PlanError::Stdin)?;
        return Ok((DockerfileSpec::Inline(text), "stdin".to_owned()));
    }
    Ok((DockerfileSpec::File(file.to_path_buf()), file.display().to_string()))
}

/// As buildx: with a remote context the Dockerfile is in it, at `--file`'s
/// path when it is relative; an absolute `--file` (or `-`) is read here and
/// sent as the `dockerfile` local.
fn remote_dockerfile(file: Option<&Path>) -> Result<(DockerfileSpec, String), PlanError> {
    match file {
        Some(file) if file == Path::new("-") || file.is_absolute() => local_dockerfile(file),
        Some(file) => {
            let name = file.to_string_lossy().into_owned();
            Ok((DockerfileSpec::InContext(name.clone()), name))
        }
        None => Ok((DockerfileSpec::InContext("Dockerfile".into()), "Dockerfile".into())),
    }
}

/// The library's planning error, named with the flag it came from.
fn from_options(error: OptionsError, file_flag: bool) -> PlanError {
    match error {
        OptionsError::Invalid { option, value, reason } => {
            PlanError::InvalidFlag { flag: option.flag(), value, reason: reason.to_string() }
        }
        OptionsError::Environment { variable, value } => {
            PlanError::InvalidFlag { flag: variable, value, reason: "not a boolean".into() }
        }
        OptionsError::MissingContext { path } => PlanError::MissingContext { path },
        OptionsError::Dockerfile { path, source } => {
            PlanError::MissingDockerfile { path, from_flag: file_flag, source }
        }
        OptionsError::Inline(source) => PlanError::TempDir(source),
        OptionsError::MissingNamedContext { name, path } => PlanError::MissingNamedContext { name, path },
        OptionsError::Output(error) => PlanError::Output(error),
        OptionsError::Git(error) => PlanError::Git(error),
    }
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

/// `--metadata-file` and `--iidfile` (of `solve` and `bake`) are written when the build ends; what
/// would make that fail is refused now, as moby's `atomicwriter` (which
/// buildx writes both with) would: the folder must exist and the path must
/// be a regular file or nothing.
pub(in crate::cli) fn check_output_file(flag: &'static str, path: &Path) -> Result<(), PlanError> {
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
pub(in crate::cli) fn load_plan(env: &dyn Env) -> Result<LoadPlan, PlanError> {
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
