//! The command line, one thin client of the library: global flags, the
//! subcommand list, and the shared `Context` every command receives. One
//! command per file, each with the same shape: `pub struct Args` (clap) and
//! `pub async fn run(args, ctx)` returning an exit code. Flags become library
//! requests here (`solve/plan.rs`); printing, signals and exit codes stay
//! here. Errors bubble up to `main()`, which renders them once (`error:`,
//! `Caused by:`, `hint:`) and maps them to exit codes: 0 success, 1 a failed
//! build or request, 130 cancelled.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::connect::{ConnectOptions, TlsOptions};
use crate::printer::{Printer, Verbosity};

mod bake;
mod builder;
mod cache;
mod check;
pub(crate) mod connect;
mod daemon;
mod du;
mod history;
mod imagetools;
mod info;
mod plan;
mod prune;
mod solve;
pub(crate) mod table;
mod why;
mod workers;

/// A native BuildKit client: build Dockerfile projects, move build cache,
/// watch progress and manage the daemon's cache.
#[derive(Debug, Parser)]
#[command(name = "fbuild", version, propagate_version = true, max_term_width = 110)]
#[command(
    after_help = "The daemon is the first of: --addr or --builder (not both), $BUILDKIT_HOST, $BUILDX_BUILDER,\n\
buildx's current builder (`docker buildx use`), the default socket (/run/buildkit/buildkitd.sock for\n\
root, $XDG_RUNTIME_DIR/buildkit/buildkitd.sock otherwise). Builders are read from buildx's store\n\
($BUILDX_CONFIG, else $DOCKER_CONFIG/buildx, else ~/.docker/buildx); only remote-driver builders\n\
(`docker buildx create --driver remote ADDR`) can be used. Flags beat variables.\n\
No daemon yet? `fbuild daemon start` runs one for you."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts (the same names as buildctl's).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// buildkitd address: unix:///path/to.sock or tcp://host:port
    #[arg(long, global = true, env = "BUILDKIT_HOST", value_name = "ADDR")]
    pub addr: Option<String>,
    /// buildx builder to build on (remote driver), from buildx's builder store
    #[arg(long, global = true, env = "BUILDX_BUILDER", value_name = "NAME")]
    pub builder: Option<String>,
    /// Where --addr and --builder came from (filled in by `main` from clap's matches).
    #[arg(skip)]
    pub sources: Sources,
    /// CA certificate to verify the daemon's certificate (enables TLS)
    #[arg(long = "tlscacert", global = true, value_name = "FILE")]
    pub tls_ca_cert: Option<PathBuf>,
    /// Client certificate for mutual TLS
    #[arg(long = "tlscert", global = true, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Client private key for mutual TLS
    #[arg(long = "tlskey", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Server name expected in the daemon's certificate (default: the address' host)
    #[arg(long = "tlsservername", global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail, and debug logs with RUST_LOG
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
}

/// Whether `--addr` and `--builder` were given as flags or came from
/// their environment variables: flags beat variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources {
    pub addr_flag: bool,
    pub builder_flag: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile project (alias: build)
    #[command(alias = "build")]
    Solve(Box<solve::Args>),
    /// Build the targets of compose and bake files together (docker-bake.hcl, compose.yaml)
    Bake(Box<bake::Args>),
    /// Lint a Dockerfile project's cache practices and the frontend's rules
    Check(check::Args),
    /// Show which steps a build would run, and why, without building
    Plan(Box<plan::Args>),
    /// Explain why the last build of a target ran its steps
    Why(why::Args),
    /// Show the daemon's version
    Info(info::Args),
    /// List the daemon's workers and their platforms
    Workers(workers::Args),
    /// Show what the build cache holds (cache statistics)
    Du(du::Args),
    /// Remove build cache
    Prune(prune::Args),
    /// Inspect and tidy a local cache folder (--cache-to type=local)
    #[command(subcommand)]
    Cache(cache::Command),
    /// Builders of several buildkitd nodes, in buildx's builder store
    #[command(subcommand)]
    Builder(builder::Command),
    /// Run a local buildkitd for this machine
    #[command(subcommand)]
    Daemon(daemon::Command),
    /// Join images in a registry into one index, and inspect them (buildx imagetools)
    #[command(subcommand)]
    Imagetools(imagetools::Command),
    /// The builds the daemon remembers: list, inspect, replay their logs (buildx history)
    #[command(subcommand)]
    History(history::Command),
}

/// What every command gets: how to reach the daemon, and where to print.
pub struct Context {
    /// `--addr`/`BUILDKIT_HOST` and the `--tls*` flags as given.
    pub connect: ConnectOptions,
    pub printer: Printer,
    builder: Option<String>,
    sources: Sources,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Self {
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Context {
            connect: ConnectOptions {
                addr: global.addr.clone().filter(|a| !a.is_empty()),
                tls: TlsOptions {
                    ca_cert: global.tls_ca_cert.clone(),
                    cert: global.tls_cert.clone(),
                    key: global.tls_key.clone(),
                    server_name: global.tls_server_name.clone(),
                },
            },
            printer: Printer::new(verbosity),
            builder: global.builder.clone().filter(|b| !b.is_empty()),
            sources: global.sources,
        }
    }

    /// Connects to the daemon (only connecting has a deadline); a failure
    /// carries hints naming the flags, and the builder when one chose it.
    pub async fn connect(&self) -> anyhow::Result<crate::connect::Connection> {
        let env = |key: &str| std::env::var(key).ok();
        let (options, builder) = connect::choose_daemon(&self.connect, self.builder.as_deref(), self.sources, &env)?;
        crate::connect::connect(&options).await.map_err(|err| match builder {
            Some(from) => connect::into_hinted_from_builder(err, &from),
            None => connect::into_hinted(err),
        })
    }
}

impl Context {
    /// The buildx builder this run uses, if one is chosen (`--builder`,
    /// `BUILDX_BUILDER`, buildx's current builder) and no address wins.
    pub(crate) fn builder_name(&self) -> anyhow::Result<Option<String>> {
        let env = |key: &str| std::env::var(key).ok();
        Ok(connect::chosen_builder(&self.connect, self.builder.as_deref(), self.sources, &env)?.map(|o| o.name))
    }

    /// The chosen builder as a pool, checked, when it has several nodes or
    /// a shared cache; `None` for everything else, which [`Context::connect`]
    /// reaches (and reports on) as one daemon. Nodes that are down are
    /// printed and skipped.
    pub(crate) async fn pool(&self) -> anyhow::Result<Option<crate::pool::ConnectedPool>> {
        let Some(name) = self.builder_name()? else {
            return Ok(None);
        };
        let env = |key: &str| std::env::var(key).ok();
        let Some(dir) = crate::connect::builders::store_dir(&env) else {
            return Ok(None);
        };
        let pool = match crate::pool::Pool::from_store(&dir, &name) {
            Ok(pool) if pool.nodes.len() > 1 || pool.cache.is_some() => pool,
            _ => return Ok(None),
        };
        let connected = pool.connect().await;
        connected.usable()?;
        let mut err = self.printer.stderr();
        for (node, why) in connected.down() {
            let _ = writeln!(err, "builder {}: node {node} is down, skipped: {why}", connected.name);
        }
        Ok(Some(connected))
    }
}

/// The whole program: parse, run, render errors, map to exit codes
/// (0 success, 1 a bad command line or a failed build or request, 130
/// cancelled).
pub fn main() -> ExitCode {
    let cli = parse();
    crate::logging::init(cli.global.verbose);
    // One thread: a client's work is waiting on the daemon, and what it does
    // with the bytes (a blob to hash and write, a file to send) is cheaper
    // than handing them between threads. Measured on a 200 MB cache export,
    // a worker pool spent a tenth more CPU (wakeups, futexes) for no shorter
    // wall time; context uploads were no slower. Blocking file work still
    // goes to tokio's blocking threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::error::render(
                &anyhow::Error::new(err).context("cannot start the async runtime"),
                &mut std::io::stderr(),
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait for background tasks (session pumps, signal handlers) to notice the end.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            if crate::error::is_stdout_closed(&err) {
                // `fbuild du | head` closing stdout early is not a failure.
                return ExitCode::SUCCESS;
            }
            crate::error::render(&err, &mut std::io::stderr());
            crate::error::exit_code(&err)
        }
    }
}

/// Parses the command line, noting which daemon choices were flags.
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches().unwrap_or_else(|err| exit_on_bad_flags(err));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| exit_on_bad_flags(err));
    let from_flag = |id: &str| matches!(matches.value_source(id), Some(clap::parser::ValueSource::CommandLine));
    cli.global.sources = Sources { addr_flag: from_flag("addr"), builder_flag: from_flag("builder") };
    cli
}

/// `--help` and `--version` print and exit 0; a bad command line exits 1,
/// as buildx does (clap's own code, 2, is not what CI scripts written for
/// buildx expect).
fn exit_on_bad_flags(err: clap::Error) -> ! {
    let _ = err.print();
    std::process::exit(if err.use_stderr() { 1 } else { 0 })
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::new(&cli.global);
    match cli.command {
        Command::Solve(args) => solve::run(*args, &ctx).await,
        Command::Bake(args) => bake::run(*args, &ctx).await,
        Command::Info(args) => info::run(args, &ctx).await,
        Command::Workers(args) => workers::run(args, &ctx).await,
        Command::Du(args) => du::run(args, &ctx).await,
        Command::History(command) => history::run(command, &ctx).await,
        Command::Check(args) => check::run(args, &ctx).await,
        Command::Plan(args) => plan::run(*args, &ctx).await,
        Command::Why(args) => why::run(args, &ctx).await,
        Command::Prune(args) => prune::run(args, &ctx).await,
        Command::Cache(command) => cache::run(command, &ctx),
        Command::Daemon(command) => daemon::run(command, &ctx).await,
        Command::Builder(command) => builder::run(command, &ctx).await,
        Command::Imagetools(command) => imagetools::run(command, &ctx).await,
    }
}

/// A connection failure as the CLI prints it, hints included (for the
/// integration tests of TLS failures).
#[doc(hidden)]
pub fn render_connect_error(err: crate::connect::ConnectError) -> String {
    let mut out = Vec::new();
    crate::error::render(&connect::into_hinted(err), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `--format` for commands that print data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people
    #[default]
    Table,
    /// JSON for machines
    Json,
}
