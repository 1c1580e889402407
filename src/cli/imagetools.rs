//! `fbuild imagetools create|inspect`: buildx's commands for images already
//! in a registry (joining per-runner images into one multi-platform index,
//! reading what a tag points at). Registry credentials come from the docker
//! config, as for pushes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Context;
use crate::imagetools::{self, CreateRequest};
use crate::services::auth::DockerConfig;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create an image index from images in a registry (one per platform, say)
    #[command(after_help = "Examples:\n  \
        fbuild imagetools create -t reg.example/app:1 reg.example/app:1-amd64 reg.example/app:1-arm64\n  \
        fbuild imagetools create --append -t reg.example/app:1 reg.example/app:1-riscv64\n  \
        fbuild imagetools create --dry-run reg.example/app@sha256:...")]
    Create(CreateArgs),
    /// Show what an image reference points at
    #[command(after_help = "Examples:\n  \
        fbuild imagetools inspect reg.example/app:1\n  \
        fbuild imagetools inspect --raw reg.example/app:1 | sha256sum\n  \
        fbuild imagetools inspect --format '{{json .Manifest}}' reg.example/app:1")]
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Sources: image references, digests (in the tag's repository) or descriptors as JSON
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Read a source descriptor from a file
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to push the new image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Show the final image instead of pushing it
    #[arg(long)]
    pub dry_run: bool,
    /// Add the manifests of the first tag's current image
    #[arg(long)]
    pub append: bool,
    /// Add an annotation: index:KEY=VALUE or manifest-descriptor[PLATFORM]:KEY=VALUE
    #[arg(long = "annotation", value_name = "ANNOTATION")]
    pub annotations: Vec<String>,
    /// With one source, make an index of it rather than copying it as it is
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub prefer_index: bool,
    /// Keep only these platforms of the sources (repeatable, or comma-separated)
    #[arg(short = 'p', long = "platform", value_name = "PLATFORM", value_delimiter = ',')]
    pub platforms: Vec<String>,
    /// Write the result's descriptor and name to this JSON file
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Progress output: auto, plain, tty (a line per copy and push on stderr), or quiet, none, rawjson (nothing)
    #[arg(long, default_value = "auto", value_name = "MODE")]
    pub progress: String,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The image reference
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Show the original, unformatted JSON manifest
    #[arg(long, conflicts_with = "format")]
    pub raw: bool,
    /// Format the output with one of buildx's templates: {{.Manifest}}, {{json .Manifest}}, {{.Name}}, {{.Manifest.Digest}}
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
}

pub async fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create(args) => create(args, ctx).await,
        Command::Inspect(args) => inspect(args, ctx).await,
    }
}

async fn create(args: CreateArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if !matches!(args.progress.as_str(), "auto" | "plain" | "tty" | "quiet" | "none" | "rawjson") {
        anyhow::bail!("--progress: unknown mode {:?} (auto, plain, tty, quiet, none, rawjson)", args.progress);
    }
    let mut sources = Vec::with_capacity(args.files.len() + args.sources.len());
    for file in &args.files {
        // A descriptor is a few hundred bytes; a bound keeps a FIFO or a
        // device named by mistake from being read forever.
        let text = read_bounded(file, 1 << 20).with_context(|| format!("--file {}", file.display()))?;
        sources.push(text);
    }
    sources.extend(args.sources);
    let request = CreateRequest {
        sources,
        tags: args.tags,
        annotations: args.annotations,
        append: args.append,
        dry_run: args.dry_run,
        prefer_index: args.prefer_index,
        platforms: args.platforms,
    };
    let config = DockerConfig::load().context("cannot read the docker config for registry credentials")?;
    // The copy and push lines are for people: none under rawjson, whose
    // stream carries JSON lines only.
    let quiet = matches!(args.progress.as_str(), "quiet" | "none" | "rawjson");
    let mut stderr = ctx.printer.stderr();
    let mut log = |line: String| {
        if !quiet {
            let _ = writeln!(stderr, "{line}");
        }
    };
    let created = imagetools::create(config, &request, &mut log).await?;
    if request.dry_run {
        let mut out = ctx.printer.stdout();
        out.write_all(&created.bytes)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(file) = &args.metadata_file {
        let metadata = serde_json::json!({
            "containerimage.descriptor": {
                "mediaType": created.media_type,
                "digest": created.digest,
                "size": created.bytes.len(),
            },
            "image.name": created.repositories.join(","),
        });
        let text = serde_json::to_string_pretty(&metadata)?;
        crate::cli::solve::metadata::write_text(file, &text, "--metadata-file")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn inspect(args: InspectArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = DockerConfig::load().context("cannot read the docker config for registry credentials")?;
    let inspected = imagetools::inspect(config, &args.name).await?;
    let mut out = ctx.printer.stdout();
    if args.raw {
        // No newline: the bytes are the digest's.
        out.write_all(&inspected.raw)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(format) = args.format else {
        out.write_all(inspected.render_text().as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    };
    // buildx takes any Go template; fbuild knows the common ones and refuses
    // the others rather than printing something else.
    let compact: String = format.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "{{.Manifest}}" => out.write_all(inspected.render_text().as_bytes())?,
        // A template's output ends where the template does: no newline.
        "{{json.Manifest}}" => write!(out, "{}", inspected.manifest_json()?)?,
        "{{.Name}}" => write!(out, "{}", args.name)?,
        "{{.Manifest.Digest}}" => write!(out, "{}", inspected.digest)?,
        "{{.Manifest.MediaType}}" => write!(out, "{}", inspected.media_type)?,
        _ => anyhow::bail!(
            "--format: fbuild knows the templates {{{{.Manifest}}}}, {{{{json .Manifest}}}}, {{{{.Name}}}}, \
             {{{{.Manifest.Digest}}}} and {{{{.Manifest.MediaType}}}}, not {format:?}"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a regular file of at most `limit` bytes.
fn read_bounded(path: &std::path::Path, limit: u64) -> anyhow::Result<String> {
    use std::io::Read as _;
    let file = fs_err::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        anyhow::bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(text)
}
