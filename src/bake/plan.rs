//! One resolved target to one [`BuildRequest`] for the daemon's Dockerfile
//! frontend, with the attributes `fbuild solve` sends for the same flags
//! (and buildx for the same target). Paths are read relative to the
//! current folder (compose paths were already joined with the compose
//! file's folder); everything is checked before the daemon hears of it.
//! Contexts naming another target (`target:NAME`) are left as links, which
//! [`super::run`] fills in once that target is built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{BakeError, Env, Target};
use crate::build::{attrs, BuildRequest, Frontend, LOCAL_CONTEXT, LOCAL_DOCKERFILE};
use crate::cache::{CacheDirection, CacheEntry};

/// A target ready to build.
#[derive(Debug)]
pub(crate) struct TargetPlan {
    pub(crate) name: String,
    pub(crate) request: BuildRequest,
    /// `(context name, target name)`: named contexts that are other targets' images.
    pub(crate) links: Vec<(String, String)>,
    /// Holds a `dockerfile-inline` Dockerfile for as long as the plan lives.
    _inline: Option<tempfile::TempDir>,
}

pub(crate) fn plan(
    cwd: &Path,
    name: &str,
    target: &Target,
    env: &Env,
    stdout_is_terminal: bool,
) -> Result<TargetPlan, BakeError> {
    let fail = |reason: String| BakeError::Target { target: name.to_string(), reason };
    if let Some(call) = target.call.as_deref().filter(|c| *c != "build") {
        return Err(fail(format!(
            "call = {call:?}: frontend subrequests are not supported by fbuild bake yet (`fbuild solve --call {call}` runs one)"
        )));
    }
    let context = target.context.as_deref().unwrap_or(".");
    if context.contains("://") || context.starts_with("git@") {
        return Err(fail(format!("context {context:?}: remote contexts are not supported by fbuild bake yet")));
    }
    let context_dir = cwd.join(context);
    if !context_dir.is_dir() {
        return Err(fail(format!("context folder {context_dir:?} does not exist")));
    }

    let mut frontend_attrs = BTreeMap::new();
    let mut locals = BTreeMap::new();
    locals.insert(LOCAL_CONTEXT.to_string(), context_dir.clone());
    let mut inline = None;
    if let Some(text) = &target.dockerfile_inline {
        let dir = tempfile::Builder::new()
            .prefix("fbuild-bake-dockerfile-")
            .tempdir()
            .map_err(|e| fail(format!("cannot write dockerfile-inline: {e}")))?;
        fs_err::write(dir.path().join("Dockerfile"), text)
            .map_err(|e| fail(format!("cannot write dockerfile-inline: {e}")))?;
        frontend_attrs.insert("filename".to_string(), "Dockerfile".to_string());
        locals.insert(LOCAL_DOCKERFILE.to_string(), dir.path().to_path_buf());
        inline = Some(dir);
    } else {
        // buildx reads a relative Dockerfile path from the context folder.
        let dockerfile = context_dir.join(target.dockerfile.as_deref().unwrap_or("Dockerfile"));
        if !dockerfile.is_file() {
            return Err(fail(format!("Dockerfile {dockerfile:?} does not exist")));
        }
        let file_name = dockerfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = dockerfile.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        frontend_attrs.insert("filename".to_string(), file_name);
        locals.insert(LOCAL_DOCKERFILE.to_string(), dir);
    }

    if let Some(stage) = &target.target {
        frontend_attrs.insert("target".into(), stage.clone());
    }
    // As buildx and `fbuild solve`: SOURCE_DATE_EPOCH reaches the
    // Dockerfile; an explicit arg wins.
    if let Some(epoch) = env.get("SOURCE_DATE_EPOCH") {
        frontend_attrs.insert("build-arg:SOURCE_DATE_EPOCH".into(), epoch.clone());
    }
    for (key, value) in target.args.iter().flatten() {
        frontend_attrs.insert(format!("build-arg:{key}"), value.clone());
    }
    for (key, value) in target.labels.iter().flatten() {
        frontend_attrs.insert(format!("label:{key}"), value.clone());
    }
    if let Some(platforms) = target.platforms.as_ref().filter(|p| !p.is_empty()) {
        frontend_attrs.insert("platform".into(), platforms.join(","));
    }
    if target.no_cache == Some(true) {
        frontend_attrs.insert("no-cache".into(), String::new());
    } else if let Some(filter) = target.no_cache_filter.as_ref().filter(|f| !f.is_empty()) {
        frontend_attrs.insert("no-cache".into(), filter.join(","));
    }
    if target.pull == Some(true) {
        frontend_attrs.insert("image-resolve-mode".into(), "pull".into());
    }
    let mut entitlements: Vec<String> = target.entitlements.clone().unwrap_or_default();
    match target.network.as_deref() {
        None | Some("default") | Some("") => {}
        Some("none") => {
            frontend_attrs.insert("force-network-mode".into(), "none".into());
        }
        Some("host") => {
            frontend_attrs.insert("force-network-mode".into(), "host".into());
            if !entitlements.iter().any(|e| e == "network.host") {
                entitlements.push("network.host".into());
            }
        }
        Some(other) => return Err(fail(format!("network {other:?}: expected default, none or host"))),
    }
    if let Some(hosts) = target.extra_hosts.as_ref().filter(|h| !h.is_empty()) {
        let mut entries = Vec::new();
        for (host, ip) in hosts {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(fail(format!("extra-hosts {host}: {ip:?} is not an IP address")));
            }
            entries.push(format!("{host}={ip}"));
        }
        frontend_attrs.insert("add-hosts".into(), entries.join(","));
    }
    // The same encoders as `fbuild solve`'s flags (`build::attrs`).
    if let Some(size) = &target.shm_size {
        let bytes = attrs::ram_in_bytes(size.trim()).map_err(|e| fail(format!("shm-size {size:?}: {e}")))?;
        // buildx sends it only when positive.
        if bytes > 0 {
            frontend_attrs.insert("shm-size".into(), bytes.to_string());
        }
    }
    if let Some(values) = target.ulimits.as_ref().filter(|u| !u.is_empty()) {
        // One per name, the last one winning, sorted by name (docker's UlimitOpt).
        let mut ulimits = BTreeMap::new();
        for value in values {
            let (name, ulimit) = attrs::parse_ulimit(value).map_err(|e| fail(format!("ulimits {value:?}: {e}")))?;
            ulimits.insert(name, ulimit);
        }
        frontend_attrs.insert("ulimit".into(), ulimits.into_values().collect::<Vec<_>>().join(","));
    }
    let mut attests = Vec::new();
    for spec in target.attest.iter().flatten() {
        attests.push(attrs::parse_attest(spec).map_err(|e| fail(format!("attest {spec:?}: {e}")))?);
    }
    // buildx bake adds the same default provenance as buildx build.
    let no_default = match env.get(attrs::NO_DEFAULT_ATTESTATIONS) {
        None => false,
        Some(value) => crate::output::parse::parse_go_bool(value)
            .ok_or_else(|| fail(format!("{}={value:?} is not a boolean", attrs::NO_DEFAULT_ATTESTATIONS)))?,
    };
    frontend_attrs.extend(attrs::attest_attrs(&attests, no_default));
    let mut annotations = Vec::new();
    for value in target.annotations.iter().flatten() {
        annotations.extend(attrs::parse_annotation(value).map_err(|e| fail(format!("annotations {value:?}: {e}")))?);
    }

    let mut links = Vec::new();
    let mut oci_layouts = BTreeMap::new();
    for (ctx_name, value) in target.contexts.iter().flatten() {
        if let Some(linked) = value.strip_prefix("target:") {
            links.push((ctx_name.clone(), linked.to_string()));
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            let id = format!("fbuild-bake-oci-{}", oci_layouts.len());
            let (dir, digest) = crate::cache::layout::resolve_image(&cwd.join(layout).to_string_lossy())
                .map_err(|reason| fail(format!("context {ctx_name}: {reason}")))?;
            frontend_attrs.insert(format!("context:{ctx_name}"), format!("oci-layout://{id}@{digest}"));
            oci_layouts.insert(id, dir);
        } else if value.contains("://") {
            frontend_attrs.insert(format!("context:{ctx_name}"), value.clone());
        } else {
            let path = cwd.join(value);
            if !path.is_dir() {
                return Err(fail(format!("context {ctx_name}: folder {path:?} does not exist")));
            }
            let local = format!("named-{ctx_name}");
            frontend_attrs.insert(format!("context:{ctx_name}"), format!("local:{local}"));
            locals.insert(local, path);
        }
    }

    // `cacheonly` means no exporter at all: the result stays in the cache.
    let outputs: Vec<String> =
        target.outputs.iter().flatten().filter(|o| o.as_str() != "type=cacheonly").cloned().collect();
    let tags = target.tags.clone().unwrap_or_default();
    let mut exports = crate::output::exports_from_flags(&outputs, &tags, false, stdout_is_terminal)
        .map_err(|e| fail(crate::error::error_chain(&e)))?;
    // buildx puts every annotation on every output.
    for export in &mut exports {
        export.attrs.extend(annotations.iter().cloned());
    }
    let cache = |specs: &Option<Vec<String>>, direction, what: &str| -> Result<Vec<CacheEntry>, BakeError> {
        specs
            .iter()
            .flatten()
            .map(|spec| CacheEntry::parse(spec, direction).map_err(|e| fail(format!("{what} {spec:?}: {}", e.problem))))
            // gha and s3 credentials from the CI environment, as buildx adds them.
            .filter_map(|entry| entry.map(|e| e.with_ci_env(&|key| env.get(key).cloned())).transpose())
            .collect()
    };
    let cache_imports = cache(&target.cache_from, CacheDirection::Import, "cache-from")?;
    let cache_exports = cache(&target.cache_to, CacheDirection::Export, "cache-to")?;
    let secrets = target
        .secrets
        .iter()
        .flatten()
        .map(|spec| {
            crate::services::secrets::SecretSource::parse(spec)
                .map_err(|e| fail(format!("secret {:?}: {e}", e.value())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ssh = target
        .ssh
        .iter()
        .flatten()
        .map(|spec| crate::services::ssh::AgentSpec::parse(spec).map_err(|e| fail(format!("ssh {:?}: {e}", e.value()))))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(TargetPlan {
        name: name.to_string(),
        request: BuildRequest {
            frontend: Frontend::Daemon { name: "dockerfile.v0".to_string(), attrs: frontend_attrs },
            locals,
            exports,
            cache_imports,
            cache_exports,
            secrets,
            ssh,
            entitlements,
            oci_layouts,
            uploads: Default::default(),
        },
        links,
        _inline: inline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_match_solve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile.x"), "FROM scratch\n").unwrap();
        let target = Target {
            context: Some(".".into()),
            dockerfile: Some("Dockerfile.x".into()),
            args: Some([("A".into(), "1".into())].into()),
            tags: Some(vec!["r/app:1".into()]),
            outputs: Some(vec!["type=image,push=true".into()]),
            cache_from: Some(vec!["r/cache".into()]),
            network: Some("host".into()),
            contexts: Some([("base".into(), "target:base".into())].into()),
            ..Default::default()
        };
        let plan =
            plan(dir.path(), "app", &target, &[("SOURCE_DATE_EPOCH".to_string(), "0".to_string())].into(), false)
                .unwrap();
        let Frontend::Daemon { attrs, .. } = &plan.request.frontend else { panic!() };
        assert_eq!(attrs["filename"], "Dockerfile.x");
        assert_eq!(attrs["build-arg:A"], "1");
        assert_eq!(attrs["build-arg:SOURCE_DATE_EPOCH"], "0");
        assert_eq!(attrs["force-network-mode"], "host");
        assert_eq!(plan.request.entitlements, ["network.host"]);
        assert_eq!(plan.request.exports[0].attrs["name"], "r/app:1");
        assert_eq!(plan.request.cache_imports.len(), 1);
        assert_eq!(plan.links, [("base".to_string(), "base".to_string())]);
    }

    #[test]
    fn inline_dockerfile_is_its_own_local() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target { dockerfile_inline: Some("FROM scratch\n".into()), ..Default::default() };
        let plan = plan(dir.path(), "app", &target, &Env::new(), false).unwrap();
        let folder = plan.request.local(LOCAL_DOCKERFILE).unwrap();
        assert_eq!(std::fs::read_to_string(folder.join("Dockerfile")).unwrap(), "FROM scratch\n");
        assert_eq!(plan.request.local(LOCAL_CONTEXT).unwrap(), dir.path());
    }

    #[test]
    fn oci_layout_contexts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM base\n").unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let target =
            Target { contexts: Some([("base".into(), "oci-layout://empty:v1".into())].into()), ..Default::default() };
        let err = plan(dir.path(), "app", &target, &Env::new(), false).unwrap_err().to_string();
        assert!(err.contains("context base") && err.contains("not an OCI layout folder"), "{err}");
    }

    #[test]
    fn missing_folders_name_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target { context: Some("nope".into()), ..Default::default() };
        let err = plan(dir.path(), "app", &target, &Env::new(), false).unwrap_err().to_string();
        assert!(err.contains("\"app\"") && err.contains("nope"), "{err}");
    }
}
