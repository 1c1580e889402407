//! The native compiler as a client-side frontend: compile in this process,
//! resolve base images and solve the graph through the build's gateway, and
//! return the result with its image config, as the daemon's `dockerfile.v0`
//! would. With [`NativeMode::Auto`], a Dockerfile the compiler cannot do yet
//! goes to the daemon's frontend inside the same build (same session, same
//! progress), and [`NativeFrontend::fallback`] says why.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::gateway::{ClientFrontend, FrontendError, FrontendOutput, Gateway};
use crate::proto::pb;

use super::compile::{
    self, CompileError, CompileOptions, Compiled, ImageResolver, LocalFileRequest, ResolveRequest, ResolvedImage,
};
use super::lint::{self, LintResults};

/// What to do with a Dockerfile the compiler does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NativeMode {
    /// Fail with the reason.
    Native,
    /// Hand it to the daemon's `dockerfile.v0` in the same build.
    Auto,
}

/// A Dockerfile build compiled natively. It takes the same attributes the
/// daemon's Dockerfile frontend takes (`target`, `build-arg:K`, `label:K`,
/// `platform`, ...), so a request is one or the other without translation.
pub struct NativeFrontend {
    dockerfile: String,
    filename: String,
    excludes: Vec<String>,
    attrs: BTreeMap<String, String>,
    mode: NativeMode,
    /// Compile and stop: return an empty result (for `--print-llb`).
    print_only: bool,
    /// The build has outputs (so attestations are written).
    exports: bool,
    fallback: Mutex<Option<String>>,
    compiled: Mutex<Option<Compiled>>,
    /// The graph a real build solved (the first platform's), for build
    /// records (`crate::record`).
    built: Mutex<Option<pb::Definition>>,
}

/// Attributes the compiler reads or that only matter to the daemon.
const UNDERSTOOD: &[&str] = &[
    "filename",
    "target",
    "platform",
    "dockerfilekey",
    "contextkey",
    "no-cache",
    "add-hosts",
    "shm-size",
    "ulimit",
    "force-network-mode",
    "image-resolve-mode",
    "cgroup-parent",
    "hostname",
    "memory",
    "memswap",
    "cpushares",
    "cpuperiod",
    "cpuquota",
    "cpusetcpus",
    "cpusetmems",
];
const UNDERSTOOD_PREFIXES: &[&str] =
    &["build-arg:", "label:", "attest:", "local-sessionid:", "context:", "input-metadata:", "vcs:"];

impl NativeFrontend {
    /// A build of `dockerfile` (its text, named `filename`) with the context's
    /// `.dockerignore` patterns and the Dockerfile frontend's attributes.
    pub fn new(
        dockerfile: String,
        filename: String,
        excludes: Vec<String>,
        attrs: BTreeMap<String, String>,
        mode: NativeMode,
    ) -> Self {
        NativeFrontend {
            dockerfile,
            filename,
            excludes,
            attrs,
            mode,
            print_only: false,
            exports: true,
            fallback: Mutex::new(None),
            compiled: Mutex::new(None),
            built: Mutex::new(None),
        }
    }

    /// Only compile (resolving base images through the build), build nothing.
    pub fn print_only(mut self) -> Self {
        self.print_only = true;
        self
    }

    /// Why the build went to the daemon's frontend, if it did.
    pub fn fallback(&self) -> Option<String> {
        self.fallback.lock().ok().and_then(|f| f.clone())
    }

    /// The compiled build of a [`NativeFrontend::print_only`] run (the first
    /// platform's), handed over once.
    pub fn compiled(&self) -> Option<Compiled> {
        self.compiled.lock().ok()?.take()
    }

    /// The graph the build solved natively (the first platform's), once it
    /// was compiled; `None` when the daemon's frontend built it.
    pub fn built_definition(&self) -> Option<pb::Definition> {
        self.built.lock().ok()?.clone()
    }

    /// Whether every lint rule is off (`# check=skip=all`, or the build arg
    /// `BUILDKIT_DOCKERFILE_CHECK=skip=all`, which wins): then the linter,
    /// which costs the daemon a parse of the whole Dockerfile, is not asked.
    fn checks_skipped(&self) -> bool {
        self.check_option("skip").is_some_and(|value| value == "all")
    }

    /// Whether lint findings fail the build (`# check=error=true`, or the
    /// build arg): then the daemon's frontend ends the conversion with "lint
    /// violation found for rules: ...".
    fn checks_are_errors(&self) -> bool {
        !self.checks_skipped()
            && self.check_option("error").is_some_and(|value| crate::gostrconv::parse_bool(&value) == Some(true))
    }

    /// A field of the lint settings (`skip`, `error`, `experimental`), trimmed:
    /// from the build arg `BUILDKIT_DOCKERFILE_CHECK` if given (it replaces
    /// the directive), else from `# check=` (Go's `ParseLintOptions`).
    fn check_option(&self, key: &str) -> Option<String> {
        let directive = crate::dockerfile::parse(&self.dockerfile).ok().and_then(|parsed| {
            parsed.directives.into_iter().find(|(name, _, _)| name == "check").map(|(_, value, _)| value)
        });
        let setting = self.attrs.get("build-arg:BUILDKIT_DOCKERFILE_CHECK").cloned().or(directive)?;
        setting.splitn(3, ';').find_map(|field| {
            let (k, v) = field.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    }

    /// With `check=error=true`: the daemon's lint subrequest before anything
    /// is solved, its findings shown as warnings, and the build failed as the
    /// daemon's frontend fails it when there are any. The subrequest lints
    /// the stages the build compiles: the target, or the last stage by name.
    /// A Dockerfile whose last stage has no name cannot be linted that
    /// way (without a target the subrequest lints every stage), so a finding
    /// there is handed to the daemon's frontend, or refused natively.
    async fn lint_as_errors(&self, gateway: &Gateway) -> Result<(), CompileError> {
        let mut attrs = self.attrs.clone();
        let stages = crate::dockerfile::parse(&self.dockerfile)
            .ok()
            .and_then(|parsed| crate::dockerfile::instructions::stages(&parsed).ok())
            .map(|stages| stages.stages)
            .unwrap_or_default();
        let mut every_stage = false;
        if attrs.get("target").is_none_or(String::is_empty) {
            match stages.last().and_then(|stage| stage.name.clone()) {
                Some(name) => {
                    attrs.insert("target".into(), name);
                }
                None => every_stage = stages.len() > 1,
            }
        }
        // Findings the daemon's frontend will report itself are not shown.
        let rules = self.lint(gateway, attrs, !every_stage).await;
        if rules.is_empty() {
            return Ok(());
        }
        if every_stage {
            return Err(CompileError::Unsupported {
                line: 0,
                feature: "`check=error=true` with lint findings in a Dockerfile whose last stage has no name".into(),
            });
        }
        Err(CompileError::Step { line: 0, message: format!("lint violation found for rules: {}", rules.join(", ")) })
    }

    /// `auto`'s way out: the daemon's frontend builds it, in this build, and
    /// [`NativeFrontend::fallback`] says why.
    async fn hand_over(&self, gateway: &Gateway, line: usize, feature: &str) -> Result<FrontendOutput, FrontendError> {
        let at = if line > 0 { format!("{}:{line}: ", self.filename) } else { String::new() };
        if let Ok(mut fallback) = self.fallback.lock() {
            *fallback = Some(format!("{at}the native compiler does not support {feature} yet"));
        }
        Ok(gateway.forward_frontend("dockerfile.v0", self.forwarded_attrs(gateway)).await?)
    }

    /// The attributes for the daemon's frontend when it takes over: ours,
    /// plus the cache imports, which it reads from its options (as the build
    /// runner sends them to a daemon frontend).
    fn forwarded_attrs(&self, gateway: &Gateway) -> BTreeMap<String, String> {
        let mut attrs = self.attrs.clone();
        if !gateway.cache_imports().is_empty() {
            attrs.insert("cache-imports".into(), crate::cache::imports_option(gateway.cache_imports()));
        }
        attrs
    }

    /// The build's exports write no attestation (there are none, or they
    /// take only inline attestations and none is an image): what an
    /// attestation would hold does not matter.
    pub fn without_exports(mut self) -> Self {
        self.exports = false;
        self
    }

    /// Whether the build asks for a provenance attestation that an export
    /// will write (buildx asks for one by default).
    fn wants_provenance(&self) -> bool {
        self.exports
            && self.attrs.get("attest:provenance").is_some_and(|value| {
                !value.split(',').any(|field| matches!(field.trim(), "disabled=true" | "false" | "mode=false"))
            })
    }

    /// Whether the provenance asked for is `mode=min` (the daemon's default
    /// is `max`; the last `mode=` wins, as in its CSV parse).
    fn provenance_is_min(&self) -> bool {
        let value = self.attrs.get("attest:provenance").map_or("", String::as_str);
        value.split(',').rev().find_map(|field| field.strip_prefix("mode=")) == Some("min")
    }

    /// Solves the local folder the Dockerfile comes from, as `dockerfile.v0`
    /// does to read it, so the daemon's provenance lists it among the
    /// build's locals (it records the local sources it builds). The lint
    /// subrequest reads it so too; this runs when no lint does. Best effort:
    /// a failure only leaves the local out of the provenance.
    async fn record_dockerfile_local(&self, gateway: &Gateway) {
        if let Err(error) = self.load_dockerfile_local(gateway).await {
            tracing::debug!(%error, "the Dockerfile's local was not loaded for the provenance");
        }
    }

    async fn load_dockerfile_local(&self, gateway: &Gateway) -> Result<(), FrontendError> {
        let name = self.attrs.get("dockerfilekey").filter(|k| !k.is_empty()).map_or("dockerfile", String::as_str);
        let filename = self.attrs.get("filename").map_or("Dockerfile", String::as_str);
        let mut options = crate::llb::LocalOptions::new(gateway.session_id());
        options.follow_paths = vec![filename.to_owned(), format!("{filename}.dockerignore")];
        // dockerui also tries the lower-case name (moby/moby#10858).
        if let Some(dir) = filename.strip_suffix("Dockerfile").filter(|d| d.is_empty() || d.ends_with('/')) {
            options.follow_paths.push(format!("{dir}dockerfile"));
        }
        options.shared_key_hint = Some(name.to_owned());
        options.op.custom_name = Some(format!("[internal] load build definition from {filename}"));
        let definition = crate::llb::local(name, options).marshal().map_err(FrontendError::new)?;
        let reference = gateway.solve(definition).await?;
        Ok(gateway.evaluate(&reference).await?)
    }

    /// The compile options the attributes describe, or the attribute the
    /// compiler does not handle.
    fn options(&self, gateway: &Gateway, targets: &mut Vec<pb::Platform>) -> Result<CompileOptions, CompileError> {
        let unsupported = |what: String| CompileError::Unsupported { line: 0, feature: what };
        if let Some(key) = self
            .attrs
            .keys()
            .find(|key| !UNDERSTOOD.contains(&key.as_str()) && !UNDERSTOOD_PREFIXES.iter().any(|p| key.starts_with(p)))
        {
            return Err(unsupported(format!("the frontend option {key:?}")));
        }
        let mut options = CompileOptions {
            target: self.attrs.get("target").filter(|t| !t.is_empty()).cloned(),
            session_id: gateway.session_id().to_owned(),
            excludes: self.excludes.clone(),
            filename: self.attrs.get("filename").cloned().unwrap_or_else(|| "Dockerfile".to_owned()),
            ..Default::default()
        };
        for (key, value) in &self.attrs {
            if let Some(name) = key.strip_prefix("build-arg:") {
                options.build_args.insert(name.to_owned(), value.clone());
            } else if let Some(name) = key.strip_prefix("label:") {
                options.labels.insert(name.to_owned(), value.clone());
            } else if let Some(name) = key.strip_prefix("context:") {
                options.named_contexts.insert(name.to_owned(), value.clone());
            }
        }
        let bad = |key: &str, value: &str, why: String| CompileError::Step {
            line: 0,
            message: format!("invalid frontend option {key}={value:?}: {why}"),
        };
        if let Some(hosts) = self.attrs.get("add-hosts").filter(|v| !v.is_empty()) {
            for field in hosts.split(',') {
                let lower = field.to_lowercase();
                let (host, ip) = lower.split_once('=').ok_or_else(|| bad("add-hosts", hosts, "not HOST=IP".into()))?;
                let ip = ip.parse().map_err(|e| bad("add-hosts", hosts, format!("{e}")))?;
                options.extra_hosts.push((host.to_owned(), ip));
            }
        }
        if let Some(size) = self.attrs.get("shm-size").filter(|v| !v.is_empty()) {
            options.shm_size = size.parse().map_err(|e| bad("shm-size", size, format!("{e}")))?;
        }
        if let Some(ulimits) = self.attrs.get("ulimit").filter(|v| !v.is_empty()) {
            for field in ulimits.split(',') {
                let (name, limits) =
                    field.split_once('=').ok_or_else(|| bad("ulimit", ulimits, "not NAME=SOFT[:HARD]".into()))?;
                let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
                let number = |v: &str| v.parse::<i64>().map_err(|e| bad("ulimit", ulimits, format!("{e}")));
                options.ulimits.push((name.to_owned(), number(soft)?, number(hard)?));
            }
        }
        options.linux_resources = linux_resources(&self.attrs)
            .map_err(|e| CompileError::Step { line: 0, message: format!("failed to parse resource limits: {e}") })?;
        options.cgroup_parent = self.attrs.get("cgroup-parent").cloned().unwrap_or_default();
        options.hostname = match self.attrs.get("build-arg:BUILDKIT_SANDBOX_HOSTNAME").filter(|v| !v.is_empty()) {
            Some(hostname) => hostname.clone(),
            None => self.attrs.get("hostname").cloned().unwrap_or_default(),
        };
        options.cache_namespace = self.attrs.get("build-arg:BUILDKIT_CACHE_MOUNT_NS").cloned().unwrap_or_default();
        options.network = match self.attrs.get("force-network-mode").map(String::as_str) {
            None | Some("" | "sandbox" | "default") => None,
            Some("none") => Some(pb::NetMode::None),
            Some("host") => Some(pb::NetMode::Host),
            Some(other) => return Err(bad("force-network-mode", other, "not none, host or default".into())),
        };
        options.resolve_mode = match self.attrs.get("image-resolve-mode").map(String::as_str) {
            None | Some("" | "default") => String::new(),
            Some(mode @ ("pull" | "local")) => mode.to_owned(),
            Some(other) => return Err(bad("image-resolve-mode", other, "not pull, local or default".into())),
        };
        if let Some(stages) = self.attrs.get("no-cache") {
            options.no_cache =
                Some(stages.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase).collect());
        }
        if let Some(platforms) = self.attrs.get("platform").filter(|p| !p.is_empty()) {
            for platform in platforms.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let platform = compile::parse_platform(platform).map_err(|e| unsupported(format!("--platform {e}")))?;
                options.target_platform.get_or_insert(platform.clone());
                targets.push(platform);
            }
        }
        if let Some(value) = self.attrs.get("build-arg:BUILDKIT_MULTI_PLATFORM").filter(|v| !v.is_empty()) {
            let Some(multi) = crate::gostrconv::parse_bool(value) else {
                let message = format!("invalid boolean value for multi-platform: {value}");
                return Err(CompileError::Step { line: 0, message });
            };
            if !multi && targets.len() > 1 {
                let message = "conflicting config: returning multiple target platforms is not allowed".to_owned();
                return Err(CompileError::Step { line: 0, message });
            }
            if multi && targets.len() < 2 {
                return Err(unsupported("BUILDKIT_MULTI_PLATFORM=true for one platform".into()));
            }
        }
        if let Some(caps) = gateway.capabilities() {
            if let Some(worker) = caps.workers().first() {
                options.build_platforms = worker.platforms.clone();
            }
        }
        Ok(options)
    }

    /// Runs the daemon frontend's lint subrequest with `attrs` and shows its
    /// findings as this build's warnings if `show`; the rules found, sorted,
    /// once each. Best effort: a failure only loses warnings.
    async fn lint(&self, gateway: &Gateway, mut attrs: BTreeMap<String, String>, show: bool) -> Vec<String> {
        if self.checks_skipped() {
            return Vec::new();
        }
        attrs.insert("requestid".into(), "frontend.lint".into());
        attrs.insert("frontend.caps".into(), "moby.buildkit.frontend.subrequests".into());
        let answer = match gateway.solve_frontend("dockerfile.v0", attrs).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%error, "the daemon's linter did not answer");
                return Vec::new();
            }
        };
        let Some(json) = answer.get("result.json") else { return Vec::new() };
        let (warnings, rules) = lint_warnings(json);
        for warning in warnings.into_iter().filter(|_| show) {
            if let Err(error) = gateway.warn(warning).await {
                tracing::debug!(%error, "a lint warning was not shown");
            }
        }
        rules
    }

    /// Lints the build natively, as the daemon's frontend lints while it
    /// converts: the stages the target needs, the first platform's build,
    /// the images the compiler resolved. `Err` says why the native linter
    /// cannot stand in for the daemon's here (then the daemon lints).
    fn native_lint(&self, gateway: &Gateway, build: &Compiled) -> Result<LintResults, String> {
        // Named contexts the compiler built stand in its resolved images
        // (one in place of a stage is not compiled natively).
        let build_args: BTreeMap<String, String> = self
            .attrs
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix("build-arg:")?.to_owned(), value.clone())))
            .collect();
        let build_platforms: Vec<String> = gateway
            .capabilities()
            .and_then(|caps| caps.workers().first().map(|w| w.platforms.iter().map(compile::format_platform).collect()))
            .unwrap_or_default();
        let platform = compile::format_platform(&build.requested_platform);
        let resolve = |name: &str, platform: &str| {
            let wanted = compile::parse_platform(platform).ok();
            build
                .resolved
                .iter()
                .find(|(base, resolved, _, _)| base == name && Some(resolved) == wanted.as_ref())
                .map(|(_, _, image, named)| lint::base_image_from_image(image, *named))
                .ok_or_else(|| {
                    lint::ResolveError::from(format!("{name} ({platform}) was not resolved by the compiler"))
                })
        };
        let filename = self.attrs.get("filename").filter(|f| !f.is_empty()).map_or("Dockerfile", String::as_str);
        let results = lint::lint(&lint::LintInput {
            dockerfile: &self.dockerfile,
            filename,
            build_args: &build_args,
            target: self.attrs.get("target").map(String::as_str).filter(|t| !t.is_empty()),
            all_stages: false,
            platform: &platform,
            build_platforms: &build_platforms,
            implicit_platform: self.attrs.get("platform").is_none_or(String::is_empty),
            check: self.attrs.get("build-arg:BUILDKIT_DOCKERFILE_CHECK").map(String::as_str),
            dockerignore: Some(self.excludes.as_slice()),
            base_image: &resolve,
        });
        let stopped = results
            .error
            .as_ref()
            .filter(|error| results.violation().is_none() && !is_check_setting_error(&error.message))
            .map(|error| error.message.clone());
        match stopped {
            Some(message) => Err(format!("the native linter stopped where the compiler did not: {message}")),
            None => Ok(results),
        }
    }

    /// The native linter's findings as this build's warnings, as the
    /// daemon's frontend shows them (`Rule: detail (line N)`, the rule's
    /// description, its URL, the Dockerfile and the lines).
    async fn show_lint(&self, gateway: &Gateway, results: &LintResults) {
        let source = results.sources.first().map(|source| pb::SourceInfo {
            filename: source.filename.clone(),
            data: self.dockerfile.clone().into_bytes().into(),
            language: source.language.clone(),
            definition: None,
        });
        for warning in results.warnings() {
            let ranges = warning
                .location
                .ranges
                .iter()
                .map(|range| pb::Range {
                    start: Some(pb::Position { line: range.start.line, character: range.start.character }),
                    end: Some(pb::Position { line: range.end.line, character: range.end.character }),
                })
                .collect();
            let shown = crate::gateway::Warning {
                digest: String::new(),
                level: 1,
                short: warning.short(),
                detail: vec![warning.description.clone()],
                url: warning.url.clone(),
                source: source.clone(),
                ranges,
            };
            if let Err(error) = gateway.warn(shown).await {
                tracing::debug!(%error, "a lint warning was not shown");
            }
        }
    }

    async fn compile(&self, gateway: &Gateway) -> Result<Vec<Compiled>, CompileError> {
        if self.mode == NativeMode::Auto && self.wants_provenance() && !self.provenance_is_min() {
            // The daemon records the build's request (frontend, arguments,
            // config source) in the provenance only for frontends it runs,
            // and no frontend may write a provenance of its own (BuildKit's
            // exporter refuses it). In mode=min, buildx's default, the
            // arguments are left out anyway; mode=max records them all.
            return Err(CompileError::Unsupported {
                line: 0,
                feature: "provenance attestations with mode=max (BuildKit records a build's arguments only \
                          for frontends it runs)"
                    .into(),
            });
        }
        let mut targets = Vec::new();
        let options = self.options(gateway, &mut targets)?;
        if targets.len() < 2 {
            return Ok(vec![compile::compile(&self.dockerfile, &options, &GatewayResolver(gateway)).await?]);
        }
        // One graph per platform, compiled side by side, as the daemon's
        // frontend builds them.
        let builds = targets.into_iter().map(|platform| {
            let options = CompileOptions { target_platform: Some(platform), multi_platform: true, ..options.clone() };
            async move { compile::compile(&self.dockerfile, &options, &GatewayResolver(gateway)).await }
        });
        futures::future::join_all(builds).await.into_iter().collect()
    }
}

#[tonic::async_trait]
impl ClientFrontend for NativeFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let compiled = match self.compile(gateway).await {
            Ok(compiled) => compiled,
            Err(CompileError::Unsupported { line, feature }) if self.mode == NativeMode::Auto && !self.print_only => {
                return self.hand_over(gateway, line, &feature).await;
            }
            Err(error) => {
                if !self.print_only && !matches!(error, CompileError::Unsupported { .. }) {
                    // The daemon's frontend shows what it found before it
                    // failed: the linter stops where the conversion does.
                    match lint_through(gateway, &self.dockerfile, &self.excludes, &self.attrs, false).await {
                        Ok(results) => self.show_lint(gateway, &results).await,
                        Err(reason) => tracing::debug!(%reason, "no lint findings for a failed build"),
                    }
                }
                return Err(FrontendError::new(Located { filename: self.filename.clone(), error }));
            }
        };
        if self.print_only {
            // Kept for `--print-llb`, which builds nothing.
            if let Ok(mut slot) = self.compiled.lock() {
                *slot = compiled.into_iter().next();
            }
            return Ok(FrontendOutput::default());
        }
        if let Ok(mut slot) = self.built.lock() {
            *slot = compiled.first().map(|build| build.definition.clone());
        }
        // The native linter, when it can stand in for the daemon's: its
        // findings are the build's warnings, and with `check=error=true`
        // they fail the build before anything runs, as in the daemon's
        // frontend (which fails once the conversion is done).
        let linted = self.native_lint(gateway, &compiled[0]);
        match &linted {
            Ok(results) => {
                if let Some(error) = &results.error {
                    if results.violation().is_some() {
                        self.show_lint(gateway, results).await;
                    }
                    return Err(FrontendError::new(error.message.clone()));
                }
            }
            Err(reason) => tracing::debug!(%reason, "the daemon's frontend lints this build"),
        }
        // Otherwise the daemon's lint subrequest: with `check=error=true`,
        // findings fail the build before it runs.
        let fatal_lint = linted.is_err() && self.checks_are_errors();
        if fatal_lint {
            match self.lint_as_errors(gateway).await {
                Ok(()) => {}
                Err(CompileError::Unsupported { line, feature }) if self.mode == NativeMode::Auto => {
                    return self.hand_over(gateway, line, &feature).await;
                }
                Err(error) => return Err(FrontendError::new(Located { filename: self.filename.clone(), error })),
            }
        }
        // The build and the daemon's linter side by side: lint findings are
        // the frontend's warnings, and the rules (and `# check=`) are the
        // daemon's own, so they read as with `dockerfile.v0`.
        let solves = compiled
            .iter()
            .map(|build| gateway.solve_with(build.definition.clone(), gateway.cache_imports(), &self.attrs));
        let record_dockerfile = async {
            if self.wants_provenance() && (linted.is_ok() || self.checks_skipped()) {
                self.record_dockerfile_local(gateway).await;
            }
        };
        let lint = async {
            match &linted {
                Ok(results) => self.show_lint(gateway, results).await,
                Err(_) if !fatal_lint => {
                    self.lint(gateway, self.attrs.clone(), true).await;
                }
                Err(_) => {}
            }
        };
        let (references, (), ()) = tokio::join!(futures::future::join_all(solves), lint, record_dockerfile);
        let references = references.into_iter().collect::<Result<Vec<_>, _>>()?;
        if let ([build], [reference]) = (compiled.as_slice(), references.as_slice()) {
            let metadata = build.exporter_metadata();
            return Ok(FrontendOutput { reference: Some(reference.clone()), metadata, ..Default::default() });
        }
        // Several platforms: a reference and an image config per platform,
        // and their list in `refs.platforms` (dockerui's `ResultBuilder`).
        let mut output = FrontendOutput::default();
        let platforms: Vec<pb::Platform> = compiled.iter().map(|b| b.requested_platform.clone()).collect();
        for (build, reference) in compiled.iter().zip(references) {
            let id = compile::format_platform(&build.requested_platform);
            output.metadata.extend(build.platform_metadata(&format!("/{id}")));
            output.references.insert(id, reference);
        }
        output.metadata.insert("refs.platforms".to_owned(), compile::platforms_json(&platforms));
        Ok(output)
    }

    fn solve_attrs(&self) -> BTreeMap<String, String> {
        self.attrs.clone()
    }
}

/// A compile error with the Dockerfile's name and line in front, the way
/// the daemon's errors point at `Dockerfile:LINE`, and its causes after.
#[derive(Debug)]
pub struct Located {
    filename: String,
    error: CompileError,
}

impl Located {
    /// The Dockerfile line the error is on, when it is on one.
    pub fn line(&self) -> Option<usize> {
        self.error.line()
    }
}

// Not an `Error::source` chain: a frontend's error travels as one message
// (the daemon shows it as the build's error), so the causes are written out.
impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.filename)?;
        if let Some(line) = self.error.line() {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.error)?;
        let mut cause = std::error::Error::source(&self.error);
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for Located {}

/// `--call check` (the lint subrequest) answered natively: the Dockerfile
/// linted as `dockerfile.v0`'s `DockerfileLint` does, with the base images
/// resolved through the build's gateway, and the answer in the metadata the
/// daemon's frontend returns (`result.json`, `result.txt`,
/// `result.statuscode`). `Err` says why the daemon's frontend must answer
/// instead: a `# syntax=` frontend image, or named contexts.
pub(crate) async fn check(
    gateway: &Gateway,
    dockerfile: &str,
    excludes: &[String],
    attrs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let results = lint_through(gateway, dockerfile, excludes, attrs, true).await?;
    Ok(results.answer(dockerfile))
}

/// The native linter with its base images resolved through the gateway:
/// as the lint subrequest lints (`check`: every stage without a target,
/// the worker's platform), or as a build's conversion does. `Err` says why
/// the daemon's frontend must lint instead.
async fn lint_through(
    gateway: &Gateway,
    dockerfile: &str,
    excludes: &[String],
    attrs: &BTreeMap<String, String>,
    check: bool,
) -> Result<LintResults, String> {
    if let Some(key) = attrs.keys().find(|key| key.starts_with("context:")) {
        return Err(format!("the build has a named context ({key})"));
    }
    if attrs.keys().any(|key| key == "build-arg:BUILDKIT_SYNTAX" || key == "cmdline") {
        return Err("a frontend image is named (BUILDKIT_SYNTAX)".into());
    }
    // Frontend options the daemon's frontend refuses before it parses the
    // Dockerfile: it lints nothing then, and its answer is the error.
    if let Some(value) = attrs.get("build-arg:BUILDKIT_MULTI_PLATFORM").filter(|v| !v.is_empty()) {
        if crate::gostrconv::parse_bool(value).is_none() {
            return Err(format!("invalid boolean value for multi-platform: {value}"));
        }
    }
    linux_resources(attrs).map_err(|e| format!("failed to parse resource limits: {e}"))?;
    if crate::dockerfile::parse(dockerfile)
        .is_ok_and(|parsed| parsed.directives.iter().any(|(name, _, _)| name == "syntax"))
    {
        return Err("the Dockerfile names a frontend image (# syntax=)".into());
    }
    let build_args: BTreeMap<String, String> = attrs
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("build-arg:")?.to_owned(), value.clone())))
        .collect();
    let mut build_platforms: Vec<String> = gateway
        .capabilities()
        .and_then(|caps| caps.workers().first().map(|w| w.platforms.iter().map(compile::format_platform).collect()))
        .unwrap_or_default();
    if build_platforms.is_empty() {
        build_platforms.push(compile::format_platform(&crate::llb::default_platform()));
    }
    let target = attrs.get("target").map(String::as_str).filter(|t| !t.is_empty());
    let filename = attrs.get("filename").filter(|f| !f.is_empty()).map_or("Dockerfile", String::as_str);
    // The lint subrequest converts with no target platform: the worker's;
    // a build converts for its first platform.
    let requested = attrs.get("platform").and_then(|p| p.split(',').map(str::trim).find(|p| !p.is_empty()));
    let (platform, implicit_platform) = match requested {
        Some(platform) if !check => {
            let parsed = compile::parse_platform(platform).map_err(|e| format!("--platform {e}"))?;
            (compile::format_platform(&parsed), false)
        }
        _ => (build_platforms[0].clone(), true),
    };
    let run = |base_image: &dyn Fn(&str, &str) -> Result<lint::BaseImage, lint::ResolveError>| {
        lint::lint(&lint::LintInput {
            dockerfile,
            filename,
            build_args: &build_args,
            target,
            // Without a target, lint dispatches every stage.
            all_stages: check && target.is_none(),
            platform: &platform,
            build_platforms: &build_platforms,
            implicit_platform,
            check: attrs.get("build-arg:BUILDKIT_DOCKERFILE_CHECK").map(String::as_str),
            dockerignore: Some(excludes),
            base_image,
        })
    };
    // Which images the walk resolves depends on the Dockerfile alone: a
    // first walk lists them, the gateway resolves them side by side, a
    // second walk lints with them.
    let wanted = std::sync::Mutex::new(Vec::<(String, String)>::new());
    run(&|name: &str, platform: &str| {
        if let Ok(mut wanted) = wanted.lock() {
            let key = (name.to_owned(), platform.to_owned());
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
        Ok::<_, lint::ResolveError>(lint::BaseImage::default())
    });
    let wanted = wanted.into_inner().unwrap_or_default();
    let resolve_mode = attrs
        .get("image-resolve-mode")
        .map(String::as_str)
        .filter(|m| matches!(*m, "pull" | "local"))
        .unwrap_or_default();
    let lookups = wanted.iter().map(|(name, platform)| resolve_for_lint(gateway, name, platform, resolve_mode));
    let answers = futures::future::join_all(lookups).await;
    Ok(run(&|name: &str, platform: &str| {
        let at = wanted.iter().position(|(n, p)| n == name && p == platform);
        match at.and_then(|i| answers.get(i)) {
            Some(answer) => answer.clone(),
            None => Err(lint::ResolveError::from(format!("{name} ({platform}) was not resolved"))),
        }
    }))
}

/// A base image's config for the linter, resolved as the daemon's frontend
/// resolves it; `Err` is the daemon's message.
async fn resolve_for_lint(
    gateway: &Gateway,
    name: &str,
    platform: &str,
    resolve_mode: &str,
) -> Result<lint::BaseImage, lint::ResolveError> {
    let reference = crate::llb::normalize_reference(name).map_err(|e| lint::ResolveError::from(e.to_string()))?;
    let platform = compile::parse_platform(platform).ok();
    let log_name = format!("[internal] load metadata for {reference}");
    match gateway.resolve_image_config_with(&reference, platform, resolve_mode, &log_name).await {
        Ok(resolved) => Ok(lint::base_image_from_config(&String::from_utf8_lossy(&resolved.config))),
        Err(error) => {
            Err(lint::ResolveError::from(error.status().map_or_else(|| error.to_string(), |s| s.message().to_owned())))
        }
    }
}

/// A failure of the lint settings themselves (a bad `# check=` directive or
/// `BUILDKIT_DOCKERFILE_CHECK`), which fails the daemon's frontend before
/// it converts anything.
fn is_check_setting_error(message: &str) -> bool {
    message.starts_with("failed to parse check options: ")
        || message.starts_with("failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: ")
}

/// The warnings of a lint subrequest's `result.json`, as the daemon's
/// frontend reports each finding (`Rule: message (line N)`, the rule's
/// description as detail, its URL, the Dockerfile and the lines).
fn lint_warnings(json: &[u8]) -> (Vec<crate::gateway::Warning>, Vec<String>) {
    use base64::Engine as _;
    let Ok(results) = serde_json::from_slice::<serde_json::Value>(json) else { return (Vec::new(), Vec::new()) };
    let rules: std::collections::BTreeSet<String> = results["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|warning| warning["ruleName"].as_str().map(str::to_owned))
        .collect();
    let sources: Vec<pb::SourceInfo> = results["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|source| pb::SourceInfo {
            filename: source["filename"].as_str().unwrap_or_default().to_owned(),
            data: base64::engine::general_purpose::STANDARD
                .decode(source["data"].as_str().unwrap_or_default())
                .unwrap_or_default()
                .into(),
            language: source["language"].as_str().unwrap_or_default().to_owned(),
            definition: None,
        })
        .collect();
    let position = |value: &serde_json::Value| {
        Some(pb::Position {
            line: value["line"].as_i64().unwrap_or(0) as i32,
            character: value["character"].as_i64().unwrap_or(0) as i32,
        })
    };
    let warnings = results["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|warning| {
            let location = &warning["location"];
            let ranges: Vec<pb::Range> = location["ranges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|range| pb::Range { start: position(&range["start"]), end: position(&range["end"]) })
                .collect();
            let line = ranges.first().and_then(|r| r.start.as_ref()).map_or(0, |p| p.line);
            let rule = warning["ruleName"].as_str().unwrap_or_default();
            let message = warning["detail"].as_str().unwrap_or_default();
            crate::gateway::Warning {
                digest: String::new(),
                level: 1,
                short: format!("{rule}: {message} (line {line})"),
                detail: vec![warning["description"].as_str().unwrap_or_default().to_owned()],
                url: warning["url"].as_str().unwrap_or_default().to_owned(),
                source: location["sourceIndex"].as_u64().and_then(|i| sources.get(i as usize).cloned()),
                ranges,
            }
        })
        .collect();
    (warnings, rules.into_iter().collect())
}

/// Base images resolved by the daemon for this build (its registry access,
/// its credentials through the session).
struct GatewayResolver<'g>(&'g Gateway);

#[tonic::async_trait]
impl ImageResolver for GatewayResolver<'_> {
    async fn resolve(
        &self,
        request: ResolveRequest<'_>,
    ) -> Result<ResolvedImage, Box<dyn std::error::Error + Send + Sync>> {
        let platform = Some(request.platform.clone());
        let lookup =
            self.0.resolve_image_config_with(request.reference, platform, request.resolve_mode, &request.log_name);
        let resolved = match lookup.await {
            Ok(resolved) => resolved,
            // The daemon's words ("failed to resolve source metadata for
            // ...: not found") say it all; our call's name adds nothing.
            Err(error) => match error.status() {
                Some(status) => return Err(status.message().to_owned().into()),
                None => return Err(error.into()),
            },
        };
        Ok(ResolvedImage { reference: resolved.reference, digest: resolved.digest, config: resolved.config })
    }

    /// dockerui's read of a context folder's `.dockerignore`: the folder's
    /// one file solved, evaluated and read (a missing file is none).
    async fn read_local_file(
        &self,
        request: LocalFileRequest<'_>,
    ) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        let mut options = crate::llb::LocalOptions::new(request.session_id);
        options.follow_paths = vec![request.path.to_owned()];
        options.shared_key_hint = Some(request.shared_key_hint);
        options.op.custom_name = Some(request.log_name);
        let definition = crate::llb::local(request.local, options).marshal()?;
        let reference = self.0.solve(definition).await?;
        self.0.evaluate(&reference).await?;
        Ok(self.0.read_file(&reference, request.path).await.ok())
    }
}

/// dockerui's `parseLinuxResources`: the resource limits of RUN steps from
/// the frontend options, `None` when none is set; Go's words when one is
/// wrong.
/// A resource limit (`memory`, `cpuquota`, `cpusetcpus`, ...) the
/// frontend refuses, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} value: {value}: {problem}")]
pub(crate) struct ResourceError {
    key: &'static str,
    value: String,
    problem: ResourceProblem,
}

/// What is wrong with a resource limit's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResourceProblem {
    /// Go's `strconv` error for a number it cannot read.
    #[error("{0}")]
    Number(String),
    /// The bound the value breaks (`must be > 0`).
    #[error("{0}")]
    Range(&'static str),
    #[error(transparent)]
    Cpuset(#[from] CpusetError),
}

fn linux_resources(attrs: &BTreeMap<String, String>) -> Result<Option<pb::LinuxResources>, ResourceError> {
    let get = |key: &str| attrs.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let fail = |key: &'static str, value: &str, problem| ResourceError { key, value: value.to_owned(), problem };
    let range = |key: &'static str, value: &str, bound| fail(key, value, ResourceProblem::Range(bound));
    let signed = |key: &'static str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|e| fail(key, value, ResourceProblem::Number(go_parse_error("ParseInt", value, &e))))
    };
    let unsigned = |key: &'static str, value: &str| {
        // Go's `ParseUint` takes no sign; Rust's takes `+`.
        let parsed = if value.starts_with('+') { "-".parse::<u64>() } else { value.parse::<u64>() };
        parsed.map_err(|e| fail(key, value, ResourceProblem::Number(go_parse_error("ParseUint", value, &e))))
    };
    let mut res = pb::LinuxResources::default();
    if let Some(value) = get("memory") {
        res.memory = signed("memory", value)?;
        if res.memory <= 0 {
            return Err(range("memory", value, "must be > 0"));
        }
    }
    if let Some(value) = get("memswap") {
        res.memory_swap = signed("memswap", value)?;
        if res.memory_swap < -1 || res.memory_swap == 0 {
            return Err(range("memswap", value, "must be -1 (unlimited) or > 0"));
        }
    }
    if let Some(value) = get("cpushares") {
        res.cpu_shares = unsigned("cpushares", value)?;
        if res.cpu_shares == 0 {
            return Err(range("cpushares", value, "must be > 0"));
        }
    }
    if let Some(value) = get("cpuperiod") {
        res.cpu_period = unsigned("cpuperiod", value)?;
        if res.cpu_period == 0 {
            return Err(range("cpuperiod", value, "must be > 0"));
        }
    }
    if let Some(value) = get("cpuquota") {
        res.cpu_quota = signed("cpuquota", value)?;
        if res.cpu_quota <= 0 {
            return Err(range("cpuquota", value, "must be > 0"));
        }
    }
    for key in ["cpusetcpus", "cpusetmems"] {
        if let Some(value) = get(key) {
            validate_cpuset(value).map_err(|e| fail(key, value, e.into()))?;
            if key == "cpusetcpus" {
                res.cpuset_cpus = value.to_owned();
            } else {
                res.cpuset_mems = value.to_owned();
            }
        }
    }
    Ok((res != pb::LinuxResources::default()).then_some(res))
}

/// How Go's `strconv` reports a number it cannot read.
fn go_parse_error(function: &str, value: &str, error: &std::num::ParseIntError) -> String {
    let why = match error.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("strconv.{function}: parsing {value:?}: {why}")
}

/// BuildKit's `cpuset.Validate`: comma-separated CPUs and ranges, at most
/// CPU 8192.
/// A cpuset BuildKit's `cpuset.Validate` refuses, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CpusetError {
    #[error("invalid cpuset element {0:?}")]
    Element(String),
    #[error("cpuset element {0:?} exceeds maximum {max}", max = MAX_CPU)]
    ElementTooLarge(String),
    #[error("invalid cpuset range {0:?}")]
    Range(String),
    #[error("cpuset range {0:?} exceeds maximum {max}", max = MAX_CPU)]
    RangeTooLarge(String),
}

/// The highest CPU number a cpuset may name.
const MAX_CPU: i64 = 8192;

fn validate_cpuset(value: &str) -> Result<(), CpusetError> {
    let atoi = |text: &str| text.parse::<i64>().ok();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            None => {
                let n = atoi(part).filter(|n| *n >= 0).ok_or_else(|| CpusetError::Element(part.to_owned()))?;
                if n > MAX_CPU {
                    return Err(CpusetError::ElementTooLarge(part.to_owned()));
                }
            }
            Some((lo, hi)) => {
                let hi = match (atoi(lo.trim()), atoi(hi.trim())) {
                    (Some(lo), Some(hi)) if lo >= 0 && hi >= lo => hi,
                    _ => return Err(CpusetError::Range(part.to_owned())),
                };
                if hi > MAX_CPU {
                    return Err(CpusetError::RangeTooLarge(part.to_owned()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_limits_are_refused_in_the_frontends_words() {
        let refused = |key: &str, value: &str| {
            let attrs = BTreeMap::from([(key.to_owned(), value.to_owned())]);
            linux_resources(&attrs).unwrap_err()
        };
        assert_eq!(refused("memory", "0").to_string(), "invalid memory value: 0: must be > 0");
        assert_eq!(
            refused("cpushares", "+1").to_string(),
            "invalid cpushares value: +1: strconv.ParseUint: parsing \"+1\": invalid syntax"
        );
        assert_eq!(
            refused("cpusetcpus", "0-9000").to_string(),
            "invalid cpusetcpus value: 0-9000: cpuset range \"0-9000\" exceeds maximum 8192"
        );
        let error = refused("cpusetmems", "x");
        assert_eq!(error.problem, ResourceProblem::Cpuset(CpusetError::Element("x".into())));
        assert_eq!(error.to_string(), "invalid cpusetmems value: x: invalid cpuset element \"x\"");
    }

    fn with_provenance(value: &str) -> NativeFrontend {
        let attrs = BTreeMap::from([("attest:provenance".to_owned(), value.to_owned())]);
        NativeFrontend::new(String::new(), "Dockerfile".into(), Vec::new(), attrs, NativeMode::Auto)
    }

    #[test]
    fn only_a_mode_min_provenance_builds_natively() {
        assert!(with_provenance("mode=min,inline-only=true").provenance_is_min(), "buildx's default");
        assert!(!with_provenance("type=provenance").provenance_is_min(), "BuildKit's default mode is max");
        assert!(!with_provenance("mode=max").provenance_is_min());
        assert!(!with_provenance("mode=min,mode=full").provenance_is_min(), "the last mode wins");
        assert!(with_provenance("mode=max,mode=min").provenance_is_min());
        assert!(with_provenance("mode=min").wants_provenance());
        assert!(
            !with_provenance("mode=min").without_exports().wants_provenance(),
            "nothing exported, nothing attested"
        );
    }
}
