//! `fbuild check [CONTEXT]`: the cache practices of a Dockerfile project
//! (`dockerfile::practices`) and the daemon frontend's own lint rules (the
//! native `dockerfile::lint`), as text or JSON, exit 1 when anything is
//! found. Base images are read from their registries for the frontend's
//! rules (their environment and platform), as the daemon would.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;
use crate::dockerfile::lint::{BaseImage, LintInput, ResolveError};
use crate::dockerfile::practices::{self, Finding};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The build context folder
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,

    /// Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// A build argument, as the build would get it (`K=V`); repeatable
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// The platform the frontend's rules check base images against
    #[arg(long, value_name = "PLATFORM", default_value = "linux/amd64")]
    pub platform: String,

    /// Output: `text` (a finding and its fix per line pair) or `json`
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let dockerfile_path = args.file.clone().unwrap_or_else(|| args.context.join("Dockerfile"));
    let filename = dockerfile_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = read_dockerfile(&dockerfile_path)
        .with_context(|| format!("cannot read the Dockerfile {}", dockerfile_path.display()))?;
    let parsed = crate::dockerfile::parse(&text).map_err(|e| anyhow::anyhow!("{filename}: {e}"))?;
    let stages = crate::dockerfile::instructions::stages(&parsed)
        .map_err(|e| anyhow::anyhow!("{filename}:{}: {}", e.line, e.message))?;
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        let (key, value) = arg.split_once('=').with_context(|| format!("--build-arg {arg:?}: expected K=V"))?;
        build_args.insert(key.to_string(), value.to_string());
    }

    let mut findings = practices::check_stages(&stages);
    findings.extend(practices::check_context(&args.context, &filename));

    // The frontend's rules, with the base images resolved beforehand (the
    // linter asks synchronously).
    let images = resolve_bases(&stages, &build_args, &args.platform).await;
    let dockerignore = std::fs::read(args.context.join(".dockerignore"))
        .ok()
        .map(|bytes| crate::fsync::patterns::parse_dockerignore(&bytes));
    let resolve = |name: &str, _: &str| match images.get(name) {
        Some(result) => result.clone(),
        None => Err(ResolveError::from("not resolved".to_string())),
    };
    let results = crate::dockerfile::lint::lint(&LintInput {
        dockerfile: &text,
        filename: &filename,
        build_args: &build_args,
        target: None,
        // As `--call check` without a target: every stage.
        all_stages: true,
        platform: &args.platform,
        build_platforms: std::slice::from_ref(&args.platform),
        implicit_platform: true,
        check: build_args.get("BUILDKIT_DOCKERFILE_CHECK").map(String::as_str),
        dockerignore: dockerignore.as_deref(),
        base_image: &resolve,
    });
    for warning in results.warnings() {
        let line = warning.location.ranges.first().map(|r| r.start.line.max(0) as usize).unwrap_or(0);
        findings.push(Finding {
            rule: warning.rule_name.clone(),
            line,
            message: warning.detail.clone(),
            fix: if warning.url.is_empty() { warning.description.clone() } else { format!("see {}", warning.url) },
        });
    }
    // A Dockerfile the frontend cannot build (`# check=error=true` aside,
    // whose findings are listed above).
    if let Some(error) = results.error.as_ref().filter(|_| results.violation().is_none()) {
        let line = error.location.ranges.first().map(|r| r.start.line.max(0) as usize).unwrap_or(0);
        findings.push(Finding {
            rule: "BuildError".into(),
            line,
            message: error.message.clone(),
            fix: "the build fails here".into(),
        });
    }
    findings.sort_by_key(|f| f.line);

    let mut out = ctx.printer.stdout();
    if args.format == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&findings)?)?;
    } else {
        for finding in &findings {
            let at = if finding.line == 0 { "context".to_string() } else { format!("{filename}:{}", finding.line) };
            writeln!(out, "{at}: {}: {}", finding.rule, finding.message)?;
            writeln!(out, "  fix: {}", finding.fix)?;
        }
        let summary = match findings.len() {
            0 => "No findings.".to_string(),
            1 => "1 finding.".to_string(),
            n => format!("{n} findings."),
        };
        writeln!(out, "{summary}")?;
    }
    Ok(if findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The Dockerfile's text: a regular file of at most 16 MiB (the bound of
/// one expansion in the compiler).
fn read_dockerfile(path: &std::path::Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > 16 << 20 {
        return Err(std::io::Error::other("not a regular file of at most 16 MiB"));
    }
    std::fs::read_to_string(path)
}

/// The base images the stages name (expanded with the global arguments'
/// defaults and the build arguments), read from their registries: by
/// expanded name, the image's lint view or the error the daemon would give.
async fn resolve_bases(
    stages: &crate::dockerfile::instructions::Stages,
    build_args: &BTreeMap<String, String>,
    platform: &str,
) -> BTreeMap<String, Result<BaseImage, ResolveError>> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (name, default) in &stages.global_args {
        match build_args.get(name) {
            Some(value) => env.insert(name.clone(), value.clone()),
            None => env.insert(name.clone(), default.clone().unwrap_or_default()),
        };
    }
    let lexer = crate::dockerfile::shell::Lexer::new('\\');
    let stage_names: Vec<&str> = stages.stages.iter().filter_map(|s| s.name.as_deref()).collect();
    let mut images = BTreeMap::new();
    let registry =
        crate::services::auth::DockerConfig::load().ok().and_then(|config| crate::registry::Registry::new(config).ok());
    for stage in &stages.stages {
        let Ok(name) = lexer.expand(&stage.base, &env) else { continue };
        if name == "scratch" || stage_names.contains(&name.to_lowercase().as_str()) || images.contains_key(&name) {
            continue;
        }
        let result = match &registry {
            Some(registry) => crate::registry::image_config(registry, &name, platform)
                .await
                .map(|config| crate::dockerfile::lint::base_image_from_config(&config))
                .map_err(|error| ResolveError::from(error.to_string())),
            None => Err(ResolveError::from("cannot read the docker config for registry credentials".to_string())),
        };
        images.insert(name, result);
    }
    images
}
