//! `fbuild daemon start|stop|status`: a local buildkitd for this machine's
//! user. The work is in [`process`]; this file holds the flags and the
//! printing.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::table::{write_json, Fields};
use crate::cli::{Context, Format};
pub(crate) mod process;

use process::{self as daemon, DaemonOptions, Stopped};

/// Where `fbuild daemon` keeps a daemon, and what it needs for rootless mode.
const DAEMON_HELP: &str = "\
The daemon listens where fbuild looks by default, so `fbuild info` finds it with no flags:
  root:   unix:///run/buildkit/buildkitd.sock, state in /var/lib/fbuild/daemon
  others: unix://$XDG_RUNTIME_DIR/buildkit/buildkitd.sock, state in $XDG_DATA_HOME/fbuild/daemon
          (~/.local/share/fbuild/daemon)
The global --addr picks another address to listen on, --root another folder. The folder holds
buildkitd's state (buildkit/), its log (buildkitd.log) and its pid (buildkitd.pid).

Other users than root run buildkitd rootless, inside rootlesskit (`rootlesskit --net=host
--copy-up=/etc --disable-host-loopback buildkitd --oci-worker-no-process-sandbox ...`). That needs:
  - rootlesskit, and newuidmap/newgidmap (Debian and Ubuntu: apt-get install rootlesskit uidmap)
  - ranges for the user in /etc/subuid and /etc/subgid (useradd adds them; else, as root:
    usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER)
  - XDG_RUNTIME_DIR set to an existing folder of the user's (mode 0700), as a login session sets it
  - unprivileged user namespaces enabled in the kernel (the default on current distributions)";

#[derive(Debug, clap::Subcommand)]
#[command(after_long_help = DAEMON_HELP)]
pub enum Command {
    /// Start a local buildkitd in the background and wait until it answers
    #[command(after_long_help = DAEMON_HELP)]
    Start(StartArgs),
    /// Stop the buildkitd started by `fbuild daemon start` (SIGTERM, then SIGKILL after 10 s)
    Stop(FolderArgs),
    /// Tell whether the daemon answers: address, version, pid (exit code 3 when it does not)
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct FolderArgs {
    /// The daemon's folder: buildkitd state, log, pid file [default: per user, see `fbuild daemon start --help`]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    /// The buildkitd binary [default: buildkitd on PATH]
    #[arg(long, value_name = "PATH")]
    pub buildkitd: Option<PathBuf>,
    /// More buildkitd options, after `--` (e.g. `-- --debug --oci-worker-net=host`)
    #[arg(last = true, value_name = "BUILDKITD_ARGS")]
    pub extra: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    let options = |root: Option<PathBuf>| DaemonOptions {
        connect: ctx.connect.clone(),
        root,
        buildkitd: None,
        extra_args: Vec::new(),
    };
    match command {
        Command::Start(args) => {
            let opts = DaemonOptions { buildkitd: args.buildkitd, extra_args: args.extra, ..options(args.folder.root) };
            let started = daemon::start(&opts).await.map_err(daemon::DaemonError::into_hinted)?;
            let mode = if started.rootless { "rootless " } else { "" };
            let _ = writeln!(
                ctx.printer.stderr(),
                "started {mode}buildkitd {} (pid {}) at {}\nlog: {}",
                started.version.version,
                started.pid,
                started.address,
                started.layout.log_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop(args) => {
            let stopped = daemon::stop(&options(args.root)).await.map_err(daemon::DaemonError::into_hinted)?;
            let message = match stopped {
                Stopped::Terminated { pid } => format!("stopped buildkitd (pid {pid})"),
                Stopped::Killed { pid } => {
                    format!("buildkitd (pid {pid}) ignored SIGTERM; killed it")
                }
                Stopped::NotRunning { dir } => {
                    format!("no buildkitd started from {} is running", dir.display())
                }
            };
            let _ = writeln!(ctx.printer.stderr(), "{message}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            let status = daemon::status(&options(args.folder.root)).await.map_err(daemon::DaemonError::into_hinted)?;
            let mut out = ctx.printer.stdout();
            match args.format {
                Format::Table => render_status(&status, &mut out)?,
                Format::Json => write_json(&mut out, &StatusJson::from(&status))?,
            }
            // 3, like an LSB init script's "program is not running".
            Ok(if status.is_running() { ExitCode::SUCCESS } else { ExitCode::from(3) })
        }
    }
}

fn render_status(status: &daemon::Status, out: &mut dyn Write) -> std::io::Result<()> {
    let mut fields = Fields::new();
    fields.field("Status", if status.is_running() { "running" } else { "not running" });
    fields.field("Address", &status.address);
    if let Some(version) = &status.version {
        fields.field("Version", format!("{} {}", version.version, version.revision).trim_end());
    }
    if let Some(error) = &status.error {
        fields.field("Error", error);
    }
    match (status.pid, status.rootless) {
        (Some(pid), Some(true)) => fields.field("Pid", format!("{pid} (rootlesskit; started by fbuild)")),
        (Some(pid), _) => fields.field("Pid", format!("{pid} (started by fbuild)")),
        (None, _) if status.is_running() => fields.field("Pid", "- (not started by `fbuild daemon start`)"),
        (None, _) => fields.field("Pid", "-"),
    };
    fields.field("Folder", status.layout.dir.display());
    fields.field("Log", status.layout.log_file.display());
    fields.write_to(out)
}

#[derive(Debug, serde::Serialize)]
struct StatusJson<'a> {
    running: bool,
    address: &'a str,
    version: Option<&'a str>,
    revision: Option<&'a str>,
    error: Option<&'a str>,
    pid: Option<u32>,
    rootless: Option<bool>,
    folder: String,
    log: String,
}

impl<'a> From<&'a daemon::Status> for StatusJson<'a> {
    fn from(status: &'a daemon::Status) -> Self {
        StatusJson {
            running: status.is_running(),
            address: &status.address,
            version: status.version.as_ref().map(|v| v.version.as_str()),
            revision: status.version.as_ref().map(|v| v.revision.as_str()),
            error: status.error.as_deref(),
            pid: status.pid,
            rootless: status.rootless,
            folder: status.layout.dir.display().to_string(),
            log: status.layout.log_file.display().to_string(),
        }
    }
}
