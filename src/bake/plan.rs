//! One resolved target to one [`BuildRequest`]: the target is mapped into
//! the library's [`BuildOptions`], the options `fbuild solve` maps its flags
//! into, so the same attribute gives the same request (and the same as
//! buildx's for the same target). Paths are read relative to `cwd`
//! (compose paths were already joined with the compose file's folder);
//! everything is checked before the daemon hears of it. Contexts naming
//! another target (`target:NAME`) are left as links, which [`super::run`]
//! hands to the dependent's frontend once that target is built.

use std::path::Path;

use super::{BakeError, Env, Target};
use crate::build::attrs::CallFunc;
use crate::build::{BuildContext, BuildOptions, BuildRequest, DockerfileSpec, OptionsError, PlanGuard, PlannedBuild};

/// A target ready to build.
#[derive(Debug)]
pub(crate) struct TargetPlan {
    pub(crate) name: String,
    pub(crate) request: BuildRequest,
    /// `(context name, target name)`: named contexts that are other targets' images.
    pub(crate) links: Vec<(String, String)>,
    /// The frontend subrequest the target's `call` asks for, instead of a build.
    pub(crate) call: Option<CallFunc>,
    /// The Dockerfile's name as the frontend reads it, and its path as the
    /// user knows it (lint results name it so).
    pub(crate) dockerfile: (String, String),
    /// Holds a `dockerfile-inline` Dockerfile for as long as the plan lives.
    _guard: PlanGuard,
}

pub(crate) fn plan(
    cwd: &Path,
    name: &str,
    target: &Target,
    env: &Env,
    stdout_is_terminal: bool,
) -> Result<TargetPlan, BakeError> {
    let fail = |reason: String| BakeError::Target { target: name.to_string(), reason };
    let context = target.context.as_deref().unwrap_or(".");
    if context.contains("://") || context.starts_with("git@") {
        return Err(fail(format!("context {context:?}: remote contexts are not supported by fbuild bake yet")));
    }
    let context_dir = cwd.join(context);
    if !context_dir.is_dir() {
        return Err(fail(format!("context folder {context_dir:?} does not exist")));
    }
    // buildx reads a relative Dockerfile path from the context folder.
    let dockerfile_path = context_dir.join(target.dockerfile.as_deref().unwrap_or("Dockerfile"));
    let dockerfile = match &target.dockerfile_inline {
        Some(text) => DockerfileSpec::Inline(text.clone()),
        None => DockerfileSpec::File(dockerfile_path),
    };
    let mut options = BuildOptions::new(BuildContext::Dir(context_dir), dockerfile);
    options.target = target.target.clone();
    options.build_args = target.args.clone().unwrap_or_default();
    options.labels = target.labels.clone().unwrap_or_default();
    options.platforms = target.platforms.clone().unwrap_or_default();
    options.no_cache = target.no_cache == Some(true);
    options.no_cache_filter = target.no_cache_filter.clone().unwrap_or_default();
    options.pull = target.pull == Some(true);
    options.network = target.network.clone();
    options.entitlements = target.entitlements.clone().unwrap_or_default();
    options.extra_hosts = target.extra_hosts.iter().flatten().map(|(host, ip)| format!("{host}={ip}")).collect();
    options.shm_size = target.shm_size.clone();
    options.ulimits = target.ulimits.clone().unwrap_or_default();
    options.attests = target.attest.clone().unwrap_or_default();
    options.annotations = target.annotations.clone().unwrap_or_default();
    options.call = target.call.clone();
    let mut links = Vec::new();
    for (ctx_name, value) in target.contexts.iter().flatten() {
        let value = if let Some(linked) = value.strip_prefix("target:") {
            links.push((ctx_name.clone(), linked.to_string()));
            continue;
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            format!("oci-layout://{}", cwd.join(layout).display())
        } else if value.contains("://") {
            value.clone()
        } else {
            cwd.join(value).to_string_lossy().into_owned()
        };
        options.named_contexts.push((ctx_name.clone(), value));
    }
    options.outputs = target.outputs.clone().unwrap_or_default();
    options.tags = target.tags.clone().unwrap_or_default();
    options.stdout_is_terminal = stdout_is_terminal;
    options.cache_from = target.cache_from.clone().unwrap_or_default();
    options.cache_to = target.cache_to.clone().unwrap_or_default();
    options.secrets = target.secrets.clone().unwrap_or_default();
    options.ssh = target.ssh.clone().unwrap_or_default();

    let planned = options.plan(&|key| env.get(key).cloned()).map_err(|error| fail(reason(error)))?;
    let PlannedBuild { request, dockerfile, call, guard } = planned;
    // buildx's DockerfileMappingSrc: a relative Dockerfile joined to the
    // context as written (`toBuildOpt`).
    let display = match (&target.dockerfile_inline, target.dockerfile.as_deref().unwrap_or("Dockerfile")) {
        (Some(_), _) => "inline".to_owned(),
        (None, file) if file.starts_with('/') => crate::gopath::clean(file),
        (None, file) => crate::gopath::join(&[context, file]),
    };
    Ok(TargetPlan {
        name: name.to_string(),
        request,
        links,
        call,
        dockerfile: (dockerfile.name, display),
        _guard: guard,
    })
}

/// The library's error in the target's terms: the attribute, not the flag.
fn reason(error: OptionsError) -> String {
    match error {
        OptionsError::Invalid { option, value, reason } => format!("{} {value:?}: {reason}", option.attribute()),
        OptionsError::MissingNamedContext { name, path } => format!("contexts {name}: folder {path:?} does not exist"),
        other => crate::error::error_chain(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{Frontend, LOCAL_CONTEXT, LOCAL_DOCKERFILE};

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
        assert!(err.contains("contexts \"base=") && err.contains("not an OCI layout folder"), "{err}");
    }

    #[test]
    fn missing_folders_name_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target { context: Some("nope".into()), ..Default::default() };
        let err = plan(dir.path(), "app", &target, &Env::new(), false).unwrap_err().to_string();
        assert!(err.contains("\"app\"") && err.contains("nope"), "{err}");
    }
}
