//! `fbuild solve` (alias `build`): build a Dockerfile project through the
//! daemon. The flags are buildx's, so a `docker buildx build` line works with
//! `fbuild solve` in its place. Turning flags into a build request lives in
//! [`plan`]; the build itself is the library's [`crate::build::build`]. This
//! command adds what belongs to a terminal: the progress renderer, Ctrl-C and
//! SIGTERM, the lines saying where outputs went, and `--metadata-file`.

mod carry;
pub(super) mod metadata;
mod plan;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::build::{BuildError, CancellationToken};
use crate::cli::Context;
use crate::output::{ExportEntry, ExporterType, OutputDest};
use crate::progress::{ProgressMode, ProgressWriter, SourceFile};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
fbuild solve .                                  build ./Dockerfile, keep the result in the daemon's cache\n  \
fbuild solve --target deps .                    build only up to the `deps` stage\n  \
fbuild solve -t registry:5000/app:1 --push .    build and push an image\n  \
fbuild solve -o type=local,dest=out .           copy the result's files into ./out\n  \
fbuild solve --secret id=pip,src=pip.conf .     make a secret available to RUN --mount=type=secret,id=pip")]
pub struct Args {
    /// Build context folder
    #[arg(value_name = "PATH", default_value = ".")]
    pub context: PathBuf,

    /// Dockerfile (default: PATH/Dockerfile); `-` reads it from stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Build up to this stage only
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Set a build argument (`K=V`, or `K` to take it from the environment)
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Extra named context (`NAME=PATH`, or `NAME=docker-image://REF`)
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// Set image metadata (`K=V`)
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,

    /// Name and tag the image (`name:tag`); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,

    /// Target platform(s), e.g. linux/amd64; repeatable or comma-separated
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,

    /// Do not use the cache
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Do not use the cache for these stages; repeatable
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,

    /// Always check the registry for newer base images
    #[arg(long)]
    pub pull: bool,

    /// Network mode for RUN steps (default, none, host)
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,

    /// Add a host to /etc/hosts of RUN steps (`host:ip`); repeatable
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,

    /// Grant an entitlement (network.host, security.insecure); repeatable
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,

    /// Expose a secret to RUN --mount=type=secret (`id=X,src=FILE` or `id=X,env=VAR`)
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,

    /// Forward an SSH agent to RUN --mount=type=ssh (`default` or `id=path`)
    #[arg(long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,

    /// Output destination (`type=local,dest=DIR`, `type=oci,dest=FILE`, `type=image,name=...`, ...)
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,

    /// Push the image named with -t (shorthand for --output=type=registry)
    #[arg(long)]
    pub push: bool,

    /// Import build cache (`type=registry,ref=...`, or a bare registry ref)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,

    /// Export build cache (`type=registry,ref=...[,mode=max]`, `type=inline`)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,

    /// Write the build's result metadata (image digest, ...) to this JSON file
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Progress output: auto, tty, plain, rawjson, quiet
    #[arg(long, env = "BUILDKIT_PROGRESS", value_name = "MODE", default_value = "auto")]
    pub progress: String,

    /// The frontend that turns the Dockerfile into a build graph
    #[arg(long, value_name = "NAME", default_value = "dockerfile.v0")]
    pub frontend: String,

    /// Extra frontend option (`K=V`), passed through as buildctl's --opt
    #[arg(long = "opt", value_name = "K=V")]
    pub frontend_opts: Vec<String>,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    // Everything the user typed is checked before the daemon hears of it.
    let plan = plan::SolvePlan::from_args(&args, &plan::ProcessEnv)?;
    let (carry, carry_notes) = carry::MountCarry::plan(&plan.request, &plan.dockerfile.text, &plan::ProcessEnv)?;
    let connection = ctx.connect().await?;

    let mode =
        if ctx.printer.verbosity == crate::printer::Verbosity::Quiet { ProgressMode::Quiet } else { plan.progress };
    // Buffered so a frame or a batch of lines reaches the terminal in one
    // write; the writer flushes after each.
    let mut progress = ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()))
        .with_dockerfile(SourceFile::new(plan.dockerfile.name.clone(), plan.dockerfile.text.clone()));
    let cancel = CancellationToken::new();
    let on_signal = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            interrupted().await;
            cancel.cancel();
        }
    });
    for note in &carry_notes {
        progress.warn(note);
    }
    let exports = plan.request.exports.clone();
    let result = match carry.restore(&connection.channel, mode, ctx.printer, &cancel).await {
        Ok(()) => crate::build::build(&connection.channel, plan.request, &mut progress, &cancel).await,
        Err(error) if cancel.is_cancelled() => {
            tracing::debug!("{error:#}");
            Err(BuildError::Cancelled)
        }
        Err(error) => return Err(error),
    };
    let report = match result {
        Ok(report) => report,
        Err(BuildError::Cancelled) => return Err(crate::error::Cancelled.into()),
        Err(error) => return Err(error.into()),
    };
    // The daemon keeps earlier uploads: say how much this build really sent.
    if mode != ProgressMode::Quiet {
        let files = report.transfer.files;
        let _ = writeln!(
            ctx.printer.stderr(),
            "context: {files} file{} sent, {} transferred",
            if files == 1 { "" } else { "s" },
            crate::units::human_size(report.transfer.bytes as i64)
        );
    }
    let saved = carry.save(&connection.channel, mode, ctx.printer, &cancel).await;
    on_signal.abort();
    match saved {
        Err(_) if cancel.is_cancelled() => return Err(crate::error::Cancelled.into()),
        other => other?,
    }
    if let Some(path) = &plan.metadata_file {
        metadata::write(path, &report.exporter_response)?;
    }
    tell_where_outputs_went(&exports, &report.exporter_response, ctx.printer)?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or a SIGTERM from a CI runner cancelling the job.
pub(super) async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Tells the user where the outputs went: files and folders written, images
/// named and pushed (with the digest the daemon reports in
/// `containerimage.digest`). Messages go to stderr, so a tarball on stdout
/// stays clean.
fn tell_where_outputs_went(
    exports: &[ExportEntry],
    exporter_response: &BTreeMap<String, String>,
    printer: crate::printer::Printer,
) -> std::io::Result<()> {
    let mut err = printer.stderr();
    let digest = exporter_response.get("containerimage.digest");
    for export in exports {
        match (&export.destination, export.exporter) {
            (Some(OutputDest::File(path)), exporter) => {
                writeln!(err, "wrote the {exporter} output to {}", path.display())?
            }
            (Some(OutputDest::Dir(path)), _) => writeln!(err, "wrote the build result to {}", path.display())?,
            (Some(OutputDest::Layout(path)), exporter) => {
                writeln!(err, "wrote the {exporter} image to the OCI layout folder {}", path.display())?
            }
            (Some(OutputDest::Stdout), exporter) => writeln!(err, "wrote the {exporter} output to standard output")?,
            (None, ExporterType::Image) => {
                let Some(names) = export.attrs.get("name").filter(|names| !names.is_empty()) else { continue };
                let verb = if export.pushes() { "pushed" } else { "stored" };
                match digest {
                    Some(digest) => writeln!(err, "{verb} {names} ({digest})")?,
                    None => writeln!(err, "{verb} {names}")?,
                }
            }
            (None, _) => {}
        }
    }
    Ok(())
}
