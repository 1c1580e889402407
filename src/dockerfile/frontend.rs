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

use super::compile::{self, CompileError, CompileOptions, Compiled, ImageResolver, ResolvedImage};

/// What to do with a Dockerfile the compiler does not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    fallback: Mutex<Option<String>>,
    compiled: Mutex<Option<Compiled>>,
}

/// Attributes the compiler reads or that only matter to the daemon.
const UNDERSTOOD: &[&str] = &["filename", "target", "platform", "dockerfilekey", "contextkey", "no-cache"];
const UNDERSTOOD_PREFIXES: &[&str] = &["build-arg:", "label:", "attest:", "local-sessionid:"];

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
            fallback: Mutex::new(None),
            compiled: Mutex::new(None),
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

    /// The compiled build, once compiled.
    pub fn compiled(&self) -> Option<Compiled> {
        self.compiled.lock().ok().and_then(|c| c.clone())
    }

    /// The compile options the attributes describe, or the attribute the
    /// compiler does not handle.
    fn options(&self, gateway: &Gateway) -> Result<CompileOptions, CompileError> {
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
            }
        }
        if let Some(stages) = self.attrs.get("no-cache") {
            options.no_cache =
                Some(stages.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase).collect());
        }
        if let Some(platforms) = self.attrs.get("platform").filter(|p| !p.is_empty()) {
            if platforms.contains(',') {
                return Err(unsupported("several platforms in one build".into()));
            }
            let platform = compile::parse_platform(platforms).map_err(|e| unsupported(format!("--platform {e}")))?;
            options.target_platform = Some(platform);
        }
        if let Some(caps) = gateway.capabilities() {
            if let Some(worker) = caps.workers().first() {
                options.build_platforms = worker
                    .platforms
                    .iter()
                    .map(|p| pb::Platform {
                        architecture: p.architecture.clone(),
                        os: p.os.clone(),
                        variant: p.variant.clone(),
                        os_version: p.os_version.clone(),
                        os_features: p.os_features.clone(),
                    })
                    .collect();
            }
        }
        Ok(options)
    }

    async fn compile(&self, gateway: &Gateway) -> Result<Compiled, CompileError> {
        let options = self.options(gateway)?;
        compile::compile(&self.dockerfile, &options, &GatewayResolver(gateway)).await
    }
}

#[tonic::async_trait]
impl ClientFrontend for NativeFrontend {
    async fn build(&self, gateway: &Gateway) -> Result<FrontendOutput, FrontendError> {
        let compiled = match self.compile(gateway).await {
            Ok(compiled) => compiled,
            Err(CompileError::Unsupported { line, feature }) if self.mode == NativeMode::Auto && !self.print_only => {
                let at = if line > 0 { format!("{}:{line}: ", self.filename) } else { String::new() };
                if let Ok(mut fallback) = self.fallback.lock() {
                    *fallback = Some(format!("{at}the native compiler does not support {feature} yet"));
                }
                return Ok(gateway.forward_frontend("dockerfile.v0", self.attrs.clone()).await?);
            }
            Err(error) => return Err(FrontendError::new(Located { filename: self.filename.clone(), error })),
        };
        if let Ok(mut slot) = self.compiled.lock() {
            *slot = Some(compiled.clone());
        }
        if self.print_only {
            return Ok(FrontendOutput::default());
        }
        let reference = gateway.solve_importing(compiled.definition.clone(), gateway.cache_imports()).await?;
        Ok(FrontendOutput { reference: Some(reference), metadata: compiled.exporter_metadata(), ..Default::default() })
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

/// Base images resolved by the daemon for this build (its registry access,
/// its credentials through the session).
struct GatewayResolver<'g>(&'g Gateway);

#[tonic::async_trait]
impl ImageResolver for GatewayResolver<'_> {
    async fn resolve(
        &self,
        reference: &str,
        platform: &pb::Platform,
    ) -> Result<ResolvedImage, Box<dyn std::error::Error + Send + Sync>> {
        let resolved = match self.0.resolve_image_config(reference, Some(platform.clone())).await {
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
}
