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
    #[error("build context {path:?} does not exist or is not a folder")]
    MissingContext { path: PathBuf },
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
    _stdin_dir: Option<tempfile::TempDir>,
}

/// Everything one `fbuild solve` needs, checked.
#[derive(Debug)]
pub struct SolvePlan {
    /// The build, as the library runs it.
    pub request: BuildRequest,
    pub dockerfile: DockerfileSource,
    pub metadata_file: Option<PathBuf>,
    pub progress: crate::progress::ProgressMode,
}

impl SolvePlan {
    pub fn from_args(args: &Args, env: &dyn Env) -> Result<SolvePlan, PlanError> {
        let context_dir = args.context.clone();
        if !context_dir.is_dir() {
            return Err(PlanError::MissingContext { path: context_dir });
        }
        let dockerfile = dockerfile_source(&context_dir, args.file.as_deref())?;

        let mut attrs = BTreeMap::new();
        attrs.insert("filename".to_string(), dockerfile.name.clone());
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

        let mut locals = BTreeMap::new();
        let mut oci_layouts = BTreeMap::new();
        locals.insert(LOCAL_CONTEXT.to_string(), context_dir);
        locals.insert(LOCAL_DOCKERFILE.to_string(), dockerfile.dir.clone());
        for spec in &args.build_contexts {
            let (name, value) = spec
                .split_once('=')
                .filter(|(name, value)| !name.is_empty() && !value.is_empty())
                .ok_or_else(|| invalid("--build-context", spec, "expected NAME=PATH or NAME=docker-image://REF"))?;
            if let Some(layout) = value.strip_prefix("oci-layout://") {
                // Served from this machine: the daemon reads the folder
                // through the session's content store `oci:ID`.
                let id = format!("fbuild-oci-{}", oci_layouts.len());
                let digest = resolve_layout_image(layout).map_err(|reason| invalid("--build-context", spec, reason))?;
                attrs.insert(format!("context:{name}"), format!("oci-layout://{id}@{digest}"));
                oci_layouts.insert(id, PathBuf::from(layout_dir(layout)));
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
        let exports = crate::output::exports_from_flags(&args.outputs, &args.tags, args.push, stdout_is_terminal)?;
        let cache_imports = args
            .cache_from
            .iter()
            .map(|spec| cache_entry("--cache-from", spec, CacheDirection::Import))
            .collect::<Result<Vec<_>, _>>()?;
        let cache_exports = args
            .cache_to
            .iter()
            .map(|spec| cache_entry("--cache-to", spec, CacheDirection::Export))
            .collect::<Result<Vec<_>, _>>()?;
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
            },
            dockerfile,
            metadata_file: args.metadata_file.clone(),
            progress,
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
            let dir = tempfile::Builder::new().prefix("fbuild-dockerfile-").tempdir().map_err(PlanError::Stdin)?;
            fs_err::write(dir.path().join("Dockerfile"), &text).map_err(PlanError::Stdin)?;
            Ok(DockerfileSource {
                dir: dir.path().to_path_buf(),
                name: "Dockerfile".into(),
                text,
                _stdin_dir: Some(dir),
            })
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
            Ok(DockerfileSource { dir, name, text, _stdin_dir: None })
        }
    }
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

/// The folder of `DIR[:TAG|@DIGEST]`: a `:` or `@` after the last `/`
/// starts the tag or digest, as buildx reads it.
fn layout_dir(spec: &str) -> &str {
    let last_slash = spec.rfind('/').map_or(0, |i| i + 1);
    match spec[last_slash..].find(['@', ':']) {
        Some(at) => &spec[..last_slash + at],
        None => spec,
    }
}

/// The image digest `DIR[:TAG|@DIGEST]` names in the OCI layout folder DIR
/// (tag `latest` when neither is given), checked now.
fn resolve_layout_image(spec: &str) -> Result<String, String> {
    use crate::cache::layout::{BlobDigest, OciLayout};
    let dir = layout_dir(spec);
    let rest = &spec[dir.len()..];
    let layout = OciLayout::open_existing(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{dir} is not an OCI layout folder (missing or empty)"))?;
    let digest = match rest.strip_prefix('@') {
        Some(digest) => BlobDigest::parse(digest).map_err(|e| e.to_string())?,
        None => {
            let tag = rest.strip_prefix(':').filter(|t| !t.is_empty()).unwrap_or("latest");
            let descriptor = layout.resolve_tag(tag).map_err(|e| e.to_string())?;
            BlobDigest::parse(descriptor.digest().as_ref()).map_err(|e| e.to_string())?
        }
    };
    if layout.blob_size(&digest).map_err(|e| e.to_string())?.is_none() {
        return Err(format!("{dir} has no blob {digest}"));
    }
    Ok(digest.to_string())
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
