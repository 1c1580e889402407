//! `fbuild solve` (alias `build`): build a Dockerfile project through the
//! daemon. The flags are buildx's, so a `docker buildx build` line works with
//! `fbuild solve` in its place. Turning flags into a plan lives in
//! [`crate::solve::plan`]; running it in [`crate::solve`].

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::Context;

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
    let plan = crate::solve::plan::SolvePlan::from_args(&args, &crate::solve::plan::ProcessEnv)?;
    let channel = ctx.connect().await?;
    crate::solve::execute(plan, channel, ctx.printer).await?;
    Ok(ExitCode::SUCCESS)
}
