//! `fbuild solve` (alias `build`): build a Dockerfile project through the
//! daemon. The flags are buildx's, so a `docker buildx build` line works with
//! `fbuild solve` in its place. Turning flags into a build request lives in
//! [`plan`]; the build itself is the library's [`crate::build::build`]. This
//! command adds what belongs to a terminal: the progress renderer, Ctrl-C and
//! SIGTERM, the lines saying where outputs went, and `--metadata-file`.

pub(super) mod call;
mod carry;
// The flag encoders live in the library, shared with bake.
use crate::build::attrs as flags;
pub(crate) mod metadata;
pub(super) mod native;
pub(super) mod plan;
pub(super) mod record;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context as _;

use crate::build::{BuildError, CancellationToken, Frontend};
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
    /// Build context: a folder, a git or http URL, or `-` (a tarball or a Dockerfile on stdin)
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

    /// Import build cache: type=registry,ref=REF (or a bare REF), type=local,src=DIR, type=gha, type=s3,
    /// type=azblob (gha and s3 take GitHub's and AWS's credentials from the environment, as buildx does)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,

    /// Export build cache: type=registry,ref=REF, type=local,dest=DIR, type=inline, type=gha, type=s3,
    /// type=azblob; mode=max keeps every stage's layers
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,

    /// Write the build's result metadata (image digest, ...) to this JSON file
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Write the image id to this file (as `-q` prints it)
    #[arg(long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,

    /// Load the image into docker (or podman) with its `load` command
    #[arg(long)]
    pub load: bool,

    /// Add an annotation to the image (`[TYPE[,TYPE]:]KEY=VALUE`); repeatable
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Shared memory size for RUN steps (`64m`, `1g`)
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,

    /// Ulimit for RUN steps (`nofile=1024:2048`); repeatable
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,

    /// Parent cgroup of RUN steps
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,

    /// Resource limit for RUN steps (`memory=2g`, `cpu-quota=50000`, `cpuset-cpus=0-1`, ...); repeatable
    #[arg(long = "resource", value_name = "KEY=VALUE")]
    pub resources: Vec<String>,

    // buildx's hidden legacy spellings of --resource.
    #[arg(short = 'm', long = "memory", hide = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap", hide = true, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(short = 'c', long = "cpu-shares", hide = true)]
    pub cpu_shares: Option<String>,
    #[arg(long = "cpu-period", hide = true)]
    pub cpu_period: Option<String>,
    #[arg(long = "cpu-quota", hide = true)]
    pub cpu_quota: Option<String>,
    #[arg(long = "cpuset-cpus", hide = true)]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", hide = true)]
    pub cpuset_mems: Option<String>,

    /// Provenance attestation (`true`, `false`, `mode=min|max`); default mode=min on image outputs
    #[arg(long, value_name = "VALUE")]
    pub provenance: Option<String>,

    /// SBOM attestation (`true`, `false`, `generator=IMAGE`)
    #[arg(long, value_name = "VALUE")]
    pub sbom: Option<String>,

    /// Attestation (`type=provenance|sbom,...`); repeatable
    #[arg(long = "attest", value_name = "SPEC")]
    pub attests: Vec<String>,

    /// Run a frontend request instead of building: build, check, outline, targets
    #[arg(long, value_name = "NAME")]
    pub call: Option<String>,

    /// Shorthand for --call=check
    #[arg(long, conflicts_with = "call")]
    pub check: bool,

    /// Progress output: auto, tty, plain, rawjson (JSON lines only), quiet or none
    #[arg(long, env = "BUILDKIT_PROGRESS", value_name = "MODE", default_value = "auto")]
    pub progress: String,

    /// The frontend that turns the Dockerfile into a build graph: `auto` (compiled here, or by the daemon's
    /// dockerfile.v0 for what the native compiler does not support yet), `native` (compiled here or fail), or a
    /// frontend of the daemon by name (`dockerfile.v0`)
    #[arg(long, value_name = "NAME", env = "FBUILD_FRONTEND", default_value = "auto")]
    pub frontend: String,

    /// Print the build graph (`json`, or `dot` for Graphviz) as compiled natively, and build nothing
    // The format only with `=`: `--print-llb .` is the flag and the context.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "json")]
    pub print_llb: Option<String>,

    /// Extra frontend option (`K=V`), passed through as buildctl's --opt
    #[arg(long = "opt", value_name = "K=V")]
    pub frontend_opts: Vec<String>,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    // Everything the user typed is checked before the daemon hears of it.
    let mut plan = plan::SolvePlan::from_args(&args, &plan::ProcessEnv)?;
    let print_llb = match args.print_llb.as_deref() {
        None => None,
        Some(format @ ("json" | "dot")) => Some(format.to_owned()),
        Some(other) => anyhow::bail!("--print-llb={other}: the format must be json or dot"),
    };
    // The Dockerfile frontend's attributes, before the native frontend takes them.
    let frontend_attrs = match &plan.request.frontend {
        Frontend::Daemon { attrs, .. } => attrs.clone(),
        _ => BTreeMap::new(),
    };
    let native_mode =
        if print_llb.is_some() { Some(crate::dockerfile::NativeMode::Native) } else { native::mode(&args.frontend) };
    let native = match native_mode {
        Some(mode) => {
            let installed = native::install(&mut plan, mode, print_llb.is_some());
            if print_llb.is_some() {
                if installed.is_none() {
                    anyhow::bail!("--print-llb needs a local Dockerfile and no --call");
                }
                // Compile only: nothing is built or exported, so no warning
                // about outputs (and, below, no progress or summary).
                plan.warnings.retain(|warning| !warning.starts_with("No output specified"));
                plan.request.exports.clear();
                plan.request.cache_exports.clear();
                plan.metadata_file = None;
                plan.iidfile = None;
                plan.load = None;
            }
            installed
        }
        None => None,
    };
    let recording = match (&native, &print_llb, &plan.call) {
        (Some(_), None, None) => record::Recording::prepare(&plan, &frontend_attrs, &plan::ProcessEnv),
        _ => None,
    };
    let (mut carry, mut carry_notes) =
        carry::MountCarry::plan(&plan.request, &plan.dockerfile.text, &plan::ProcessEnv)?;
    // Only the cache mounts of the steps that will run are worth restoring.
    // (Compiling again reads the flags again: not with a Dockerfile or context on stdin.)
    let from_stdin = args.context.as_os_str() == "-" || args.file.as_ref().is_some_and(|f| f.as_os_str() == "-");
    if let (true, Some(recording), false) = (carry.restores_any(), &recording, from_stdin) {
        match running_mounts(&args, ctx, &recording.places).await {
            Ok(Some(wanted)) => {
                let skipped = carry.restore_only(&wanted);
                if !skipped.is_empty() {
                    carry_notes.push(format!(
                        "cache mounts not restored: {} (the steps using them are predicted cached; see fbuild plan)",
                        skipped.join(", ")
                    ));
                }
            }
            Ok(None) => {}
            Err(error) => tracing::debug!("no prediction, every carried cache mount is restored: {error:#}"),
        }
    }
    if let Some(load) = &plan.load {
        check_loader(load)?;
    }
    // Where it builds: one daemon, or on a builder of several nodes the
    // nodes routing chooses for this project and Dockerfile target (the
    // second is tried once if the first went away before the solve), or
    // one node per platform when no node builds them all.
    let mut split = None;
    let tries: Vec<(Option<String>, crate::connect::Connection)> = match ctx.pool().await? {
        Some(pool) => {
            // Routing reads the platforms from the daemon frontend's
            // attributes; the native compiler holds them inside itself. A
            // split build runs on the daemon's frontend: each part asks it
            // for its one platform.
            let mut daemon_request = plan.request.clone();
            if native.is_some() {
                daemon_request.frontend =
                    Frontend::Daemon { name: native::DAEMON_DOCKERFILE.to_owned(), attrs: frontend_attrs.clone() };
            }
            // (From the attributes kept before the native compiler took them.)
            let name = frontend_attrs.get("target").cloned().unwrap_or_default();
            let show = ctx.printer.verbosity != crate::printer::Verbosity::Quiet;
            match pool.split(&daemon_request, &name)? {
                Some(parts) if print_llb.is_none() => {
                    if show {
                        let nodes: Vec<String> = parts
                            .iter()
                            .map(|p| format!("{} on node {}", p.platform, pool.members[p.member].config.name))
                            .collect();
                        writeln!(ctx.printer.stderr(), "building {} of builder {}", nodes.join(", "), pool.name)?;
                    }
                    split = Some((pool, parts, name, daemon_request));
                    Vec::new()
                }
                _ => {
                    let ranking = pool.route(&daemon_request, &name)?;
                    if print_llb.is_none() {
                        let key = crate::pool::route_key(&plan.request, &name);
                        pool.add_shared_cache(&mut plan.request, &key);
                    }
                    let first = &pool.members[ranking[0]];
                    if show {
                        writeln!(
                            ctx.printer.stderr(),
                            "building on node {} of builder {}",
                            first.config.name,
                            pool.name
                        )?;
                    }
                    let retries = if print_llb.is_none() { 2 } else { 1 };
                    ranking
                        .iter()
                        .take(retries)
                        .map(|&i| {
                            let member = &pool.members[i];
                            let connection = member.connection().expect("only nodes that are up are ranked").clone();
                            (Some(member.config.name.clone()), connection)
                        })
                        .collect()
                }
            }
        }
        None => vec![(None, ctx.connect().await?)],
    };

    // As buildx: no stale image id survives a failed build.
    if let Some(path) = &plan.iidfile {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("cannot remove the old image id file {} (--iidfile)", path.display())))
            }
        }
    }
    for dir in &plan.create_dirs {
        fs_err::create_dir_all(dir)?;
    }

    // buildx's `-q` (and `--progress quiet`): no progress, the image id on stdout.
    let quiet =
        ctx.printer.verbosity == crate::printer::Verbosity::Quiet || matches!(args.progress.as_str(), "quiet" | "none");
    let mode = if quiet || print_llb.is_some() { ProgressMode::Quiet } else { plan.progress };
    // Buffered so a frame or a batch of lines reaches the terminal in one
    // write; the writer flushes after each.
    let mut progress = ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()))
        .with_dockerfile(SourceFile::new(plan.dockerfile.name.clone(), plan.dockerfile.text.clone()))
        .with_expanded_warnings(ctx.printer.is_verbose());
    // fbuild's own lines for people; rawjson carries JSON lines only (unless -v asks for more).
    let notes = shows_notes(mode, ctx.printer);
    for warning in &plan.warnings {
        progress.warn(warning);
    }
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
    // A subrequest runs the same frontend through the gateway.
    let call_frontend = match (&plan.call, &plan.request.frontend) {
        (Some(_), Frontend::Daemon { name, attrs }) => {
            let mut frontend = call::CallFrontend::new(name.clone(), attrs.clone());
            if native_mode.is_some() {
                frontend = native::with_native_check(frontend, &plan);
            }
            let frontend = Arc::new(frontend);
            plan.request.frontend = Frontend::Client(frontend.clone());
            Some(frontend)
        }
        _ => None,
    };
    let (result, connection) = match &split {
        // Cache mounts are carried to and from one daemon; the parts run on several.
        Some((pool, parts, name, daemon_request)) => {
            if carry.any() {
                progress.warn("cache mounts are not carried for a build split over several nodes");
            }
            carry = carry::MountCarry::default();
            let built = pool.build_split(daemon_request, name, parts, &mut progress, &cancel).await;
            (built.map(|b| b.report).map_err(anyhow::Error::from), None)
        }
        None => {
            let mut tries = tries.iter().peekable();
            loop {
                let (node, connection) = tries.next().expect("there is a daemon to try");
                let result = match carry.restore(&connection.channel, mode, ctx.printer, &cancel).await {
                    Ok(()) => {
                        let mut watched = crate::pool::Watched::holding(&mut progress);
                        let result =
                            crate::build::build(&connection.channel, plan.request.clone(), &mut watched, &cancel).await;
                        match (&result, node, tries.peek()) {
                            // Nothing reached the display yet: once more on the next node.
                            (Err(err), Some(node), Some((Some(next), _)))
                                if crate::pool::retries(err, watched.saw_status) =>
                            {
                                drop(watched);
                                progress.warn(&crate::pool::retry_line(node, next, err));
                                continue;
                            }
                            _ => watched.release(),
                        }
                        result.map_err(|source| match node {
                            Some(node) => crate::pool::PoolBuildError::Build { node: node.clone(), source }.into(),
                            None => anyhow::Error::from(source),
                        })
                    }
                    Err(error) if cancel.is_cancelled() => {
                        tracing::debug!("{error:#}");
                        Err(BuildError::Cancelled.into())
                    }
                    Err(error) => return Err(error),
                };
                break (result, Some(connection));
            }
        }
    };
    if let Some(reason) = native.as_ref().and_then(|n| n.fallback()).filter(|_| notes) {
        let _ = writeln!(ctx.printer.stderr(), "notice: {reason}; the daemon's Dockerfile frontend builds it instead");
    }
    let report = match result {
        Ok(report) => report,
        // (On a pool the build's error is inside the one naming the node.)
        Err(error) if error.chain().any(|e| matches!(e.downcast_ref::<BuildError>(), Some(BuildError::Cancelled))) => {
            return Err(crate::error::Cancelled.into())
        }
        Err(error) => return Err(error),
    };
    if let Some(native) = &native {
        if let Some(format) = &print_llb {
            let compiled = native.compiled().context("the native compiler returned no graph")?;
            let text = if format == "dot" {
                native::llb_dot(&compiled.definition)
            } else {
                serde_json::to_string_pretty(&native::llb_json(&compiled.definition))? + "\n"
            };
            ctx.printer.stdout().write_all(text.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    // The daemon keeps earlier uploads: say how much this build really sent.
    if notes {
        let files = report.transfer.files;
        let _ = writeln!(
            ctx.printer.stderr(),
            "context: {files} file{} sent, {} transferred",
            if files == 1 { "" } else { "s" },
            crate::units::human_size(report.transfer.bytes as i64)
        );
    }
    let saved = match connection {
        Some(connection) => carry.save(&connection.channel, mode, ctx.printer, &cancel).await,
        None => Ok(()),
    };
    on_signal.abort();
    match saved {
        Err(_) if cancel.is_cancelled() => return Err(crate::error::Cancelled.into()),
        other => other?,
    }
    // What ran and why, kept for the next build and `fbuild why`.
    if let (Some(recording), Some(native)) = (&recording, &native) {
        match native.built_definition().filter(|_| native.fallback().is_none()) {
            Some(definition) => recording.finish(
                &definition,
                &report.vertices,
                ctx.printer,
                notes,
                &mut |warning| progress.warn(&format!("build record: {warning}")),
                &plan::ProcessEnv,
            ),
            None => tracing::debug!("no build record: the daemon's frontend built it"),
        }
    }
    if let (Some(call), Some(frontend)) = (&plan.call, &call_frontend) {
        let answer = frontend.answer();
        if let Some(path) = &plan.metadata_file {
            let mut response = report.exporter_response.clone();
            response.extend(answer.clone());
            metadata::write(path, &response)?;
        }
        let dockerfile = (plan.dockerfile.name.as_str(), plan.dockerfile.display.as_str());
        let code = call::print(&mut ctx.printer.stdout(), call, &answer, dockerfile)?;
        return Ok(ExitCode::from(code));
    }
    if let Some(load) = &plan.load {
        load_image(load, ctx.printer, notes)?;
    }
    let image_id = image_id(&exports, &report.exporter_response);
    if let Some(path) = &plan.iidfile {
        // buildx writes whatever id there is, even none (an empty file).
        metadata::write_text(path, image_id.as_deref().unwrap_or_default(), "--iidfile")?;
    }
    if let Some(path) = &plan.metadata_file {
        metadata::write(path, &report.exporter_response)?;
    }
    // The --load archive is ours, not the user's: say where the image went instead.
    let user_exports: Vec<ExportEntry> = exports
        .iter()
        .filter(|e| {
            !matches!((&plan.load, &e.destination), (Some(load), Some(OutputDest::File(path))) if *path == load.archive)
        })
        .cloned()
        .collect();
    if notes {
        tell_where_outputs_went(&user_exports, &report.exporter_response, ctx.printer)?;
    }
    if quiet && !exports.iter().any(|e| e.destination == Some(OutputDest::Stdout)) {
        if let Some(id) = image_id {
            writeln!(ctx.printer.stdout(), "{id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The image id as buildx's `getImageID` picks it: the config digest when
/// the exporter reports one (a single-platform image without
/// attestations: what `docker images` shows), else the digest of what was
/// exported (an index, which with `--push` is what the registry serves).
/// `prefer-image-digest=true` on an output asks for the latter always.
fn image_id(exports: &[ExportEntry], response: &BTreeMap<String, String>) -> Option<String> {
    let prefer_digest = exports.iter().any(|e| e.attrs.get("prefer-image-digest").is_some_and(|v| v == "true"));
    let config = response.get("containerimage.config.digest").filter(|_| !prefer_digest);
    config.or_else(|| response.get("containerimage.digest")).filter(|id| !id.is_empty()).cloned()
}

/// `--load` needs somewhere to load into, checked before building as buildx
/// checks (it asks the Docker API first): `docker version` fails when no
/// Docker daemon answers; podman needs no daemon.
pub(super) fn check_loader(load: &plan::LoadPlan) -> anyhow::Result<()> {
    let output = std::process::Command::new(&load.program)
        .arg("version")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} version (--load)", load.program.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
        anyhow::bail!(
            "--load: {} cannot load images: `{} version` failed ({reason}); nothing was built",
            load.program.display(),
            load.program.display()
        );
    }
    Ok(())
}

/// `--load`: hands the docker archive to `docker load` (or podman's).
pub(super) fn load_image(load: &plan::LoadPlan, printer: crate::printer::Printer, notes: bool) -> anyhow::Result<()> {
    let output = std::process::Command::new(&load.program)
        .arg("load")
        .arg("-i")
        .arg(&load.archive)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} load (--load)", load.program.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{} load failed ({}) (--load): {}",
            load.program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if !notes {
        return Ok(());
    }
    let mut err = printer.stderr();
    err.write_all(&output.stdout)?;
    let name = load.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    writeln!(err, "loaded the image into {name}")?;
    Ok(())
}

/// Whether fbuild's own lines for people (what was sent, where outputs
/// went) go to stderr: not with `--progress quiet`/`none`, and not with
/// rawjson, whose stream scripts read as JSON lines (buildx adds nothing
/// after its rawjson stream either), unless `-v` asks for them.
fn shows_notes(mode: ProgressMode, printer: crate::printer::Printer) -> bool {
    match mode {
        ProgressMode::Quiet => false,
        ProgressMode::RawJson => printer.is_verbose(),
        _ => true,
    }
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

/// The cache mounts (by the daemon's id) of the steps predicted to run, or
/// `None` when there is no record to predict from.
async fn running_mounts(
    args: &Args,
    ctx: &Context,
    places: &crate::record::RecordPlaces,
) -> anyhow::Result<Option<std::collections::BTreeSet<String>>> {
    // Without a record there is nothing to predict from: no compile either.
    if places.previous(&mut |_| {}).is_none() {
        return Ok(None);
    }
    let connection = ctx.connect().await?;
    // The daemon is asked what its cache holds while the graph compiles:
    // `Control.DiskUsage` took seconds on a large cache, the compile a
    // round trip of its own.
    let (compiled, usage) = tokio::join!(
        compile_on(args, std::future::ready(Ok(connection.clone()))),
        crate::record::RecordPlaces::ask_daemon(&connection.channel)
    );
    let compiled = compiled?;
    let daemon = crate::record::daemon_cache(usage, &mut |_| {});
    let (record, _) =
        compiled.recording.places.predict_on(daemon, &compiled.definition, &compiled.recording.inputs, &mut |_| {});
    Ok(Some(record.running_cache_mounts()))
}

/// What `fbuild plan` needs of a build it does not run: the graph the
/// native compiler makes of these flags (base images resolved by the
/// daemon, as in the real build), and where the build's records are.
pub(super) struct Compiled {
    pub(super) definition: crate::proto::pb::Definition,
    pub(super) recording: record::Recording,
    pub(super) connection: crate::connect::Connection,
}

/// Compiles the build of `args` natively without building anything (as
/// `--print-llb` does).
pub(super) async fn compile_only(args: &Args, ctx: &Context) -> anyhow::Result<Compiled> {
    compile_on(args, ctx.connect()).await
}

/// [`compile_only`] on the daemon `connect` reaches, once the flags are
/// checked.
async fn compile_on(
    args: &Args,
    connect: impl std::future::Future<Output = anyhow::Result<crate::connect::Connection>>,
) -> anyhow::Result<Compiled> {
    let mut plan = plan::SolvePlan::from_args(args, &plan::ProcessEnv)?;
    let frontend_attrs = match &plan.request.frontend {
        Frontend::Daemon { attrs, .. } => attrs.clone(),
        _ => BTreeMap::new(),
    };
    let recording = record::Recording::prepare(&plan, &frontend_attrs, &plan::ProcessEnv)
        .context("fbuild plan needs a local context folder")?;
    let native = native::install(&mut plan, crate::dockerfile::NativeMode::Native, true)
        .context("fbuild plan needs a local Dockerfile and no --call")?;
    plan.request.exports.clear();
    plan.request.cache_exports.clear();
    let connection = connect.await?;
    let cancel = CancellationToken::new();
    let mut progress = crate::build::NoProgress;
    match crate::build::build(&connection.channel, plan.request, &mut progress, &cancel).await {
        Ok(_) => {}
        Err(error) => return Err(error.into()),
    }
    let compiled = native.compiled().context("the native compiler returned no graph")?;
    Ok(Compiled { definition: compiled.definition, recording, connection })
}
