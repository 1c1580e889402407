//! A local buildkitd for a developer's machine: `fbuild daemon start|stop|status`.
//!
//! Each daemon lives in one folder (the *daemon folder*): buildkitd's state in
//! `buildkit/`, its pid in `buildkitd.pid`, its output in `buildkitd.log`, and
//! the address it listens on in `daemon.json`. The default folder is
//! `/var/lib/fbuild/daemon` for root and `$XDG_DATA_HOME/fbuild/daemon`
//! (`~/.local/share/fbuild/daemon`) for other users; `--root` picks another,
//! so several daemons never share state.
//!
//! Root runs buildkitd directly on the standard socket
//! (`/run/buildkit/buildkitd.sock`); other users run it rootless, inside
//! `rootlesskit`, on `$XDG_RUNTIME_DIR/buildkit/buildkitd.sock`. Both are the
//! sockets [`crate::connect`] tries by default, so `fbuild info` finds the
//! daemon with no flags.
//!
//! A pid counts as ours only when that process is alive and its command line
//! names our folder, so a stale pid file whose number was reused by another
//! process is never signalled.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::connect::{self, Address, ConnectError, ConnectOptions};
use crate::error::Hinted;
use crate::proto::moby::buildkit::v1::types::BuildkitVersion;

/// How long `start` waits for the new daemon to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// One probe's deadline while a daemon starts, or for `status`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Unix socket paths longer than this are refused by buildkitd (containerd's
/// limit, kept for the BSDs).
const MAX_SOCKET_PATH: usize = 104;
/// Lines of the log shown when the daemon does not come up.
const LOG_TAIL_LINES: usize = 25;

/// What the daemon commands need to know.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Where the daemon listens (`--addr`/`BUILDKIT_HOST`; default: this user's
    /// default socket), and the TLS flags used to talk to it.
    pub connect: ConnectOptions,
    /// The daemon folder (`--root`); default: the per-user folder.
    pub root: Option<PathBuf>,
    /// The buildkitd binary (`--buildkitd`); default: `buildkitd` on PATH.
    pub buildkitd: Option<PathBuf>,
    /// Arguments passed on to buildkitd (after `--`).
    pub extra_args: Vec<OsString>,
}

/// The files of one daemon folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The daemon folder itself.
    pub dir: PathBuf,
    /// buildkitd's `--root`.
    pub buildkit_root: PathBuf,
    /// The daemon's pid as plain text, for people and scripts.
    pub pid_file: PathBuf,
    /// buildkitd's output, appended to by every start.
    pub log_file: PathBuf,
    /// [`DaemonState`] as JSON.
    pub state_file: PathBuf,
    /// Held (flock) while `start` runs, so two starts cannot race for the folder.
    pub lock_file: PathBuf,
    /// rootlesskit's `--state-dir` (rootless only).
    pub rootlesskit_dir: PathBuf,
    /// buildkitd's trace socket. Its default, /run/buildkit/otel-grpc.sock,
    /// would be shared with (and taken from) any other root buildkitd.
    pub otel_socket: PathBuf,
}

impl Layout {
    /// The files of the daemon folder `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Layout {
            buildkit_root: dir.join("buildkit"),
            pid_file: dir.join("buildkitd.pid"),
            log_file: dir.join("buildkitd.log"),
            state_file: dir.join("daemon.json"),
            lock_file: dir.join("start.lock"),
            rootlesskit_dir: dir.join("rootlesskit"),
            otel_socket: dir.join("otel-grpc.sock"),
            dir,
        }
    }
}

/// What `start` records for `status` and `stop`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonState {
    /// The process started: buildkitd, or rootlesskit around it.
    pub pid: u32,
    /// Where buildkitd listens.
    pub address: String,
    /// Started inside rootlesskit.
    pub rootless: bool,
}

/// The default daemon folder for the user running fbuild.
pub fn default_dir() -> Result<PathBuf, DaemonError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/fbuild/daemon"));
    }
    let data_home = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let data_home = match data_home {
        Some(dir) => dir,
        None => match std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
            Some(home) => home.join(".local").join("share"),
            None => return Err(DaemonError::NoHome),
        },
    };
    Ok(data_home.join("fbuild").join("daemon"))
}

/// Why a daemon command failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("neither XDG_DATA_HOME nor HOME is set, so there is no default daemon folder")]
    NoHome,
    #[error("`{name}` is not on PATH")]
    NotOnPath { name: &'static str },
    #[error("{path} is not an executable file")]
    NotExecutable { path: PathBuf },
    #[error("{} has no range for user {user}; a rootless daemon needs subordinate ids", .file.display())]
    NoSubids { user: String, file: PathBuf },
    #[error("the runtime folder {path} does not exist (XDG_RUNTIME_DIR is {})", .xdg.as_deref().unwrap_or("unset"))]
    NoRuntimeDir { path: PathBuf, xdg: Option<String> },
    #[error("the socket path {path} is longer than {MAX_SOCKET_PATH} bytes, which buildkitd refuses")]
    SocketPathTooLong { path: PathBuf },
    #[error(transparent)]
    Address(Box<ConnectError>),
    #[error("a buildkitd {version} already answers at {addr}{}", pid_note(.pid))]
    AlreadyRunning { addr: Address, version: String, pid: Option<u32> },
    #[error("the buildkitd started from {} runs already (pid {pid}) but does not answer at {addr}", .dir.display())]
    AlreadyStarted { dir: PathBuf, pid: u32, addr: String },
    #[error("another `fbuild daemon start` is starting a daemon in {}", .dir.display())]
    StartRunning { dir: PathBuf },
    #[error("cannot create {}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the log {}", .path.display())]
    OpenLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {}", .program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("buildkitd exited during startup ({status}); the end of its log ({}):\n{tail}", .log.display())]
    Exited { status: String, log: PathBuf, tail: String },
    #[error(
        "buildkitd did not answer at {addr} within {}s and was stopped; the end of its log ({}):\n{tail}",
        START_TIMEOUT.as_secs(),
        .log.display()
    )]
    NotAnswering {
        addr: Address,
        log: PathBuf,
        tail: String,
        #[source]
        last_error: Box<ConnectError>,
    },
    #[error("cannot write {}", .path.display())]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot signal buildkitd (pid {pid})")]
    Signal {
        pid: u32,
        #[source]
        source: nix::Error,
    },
    #[error("buildkitd (pid {pid}) did not exit after SIGKILL")]
    DidNotStop { pid: u32 },
}

fn pid_note(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid}, started by fbuild)"),
        None => String::new(),
    }
}

impl DaemonError {
    /// What the user can do about it.
    pub fn hints(&self) -> Vec<String> {
        match self {
            DaemonError::NotOnPath { name: "buildkitd" } => {
                vec!["install BuildKit (the buildkitd binary from https://github.com/moby/buildkit/releases), or pass \
                 --buildkitd PATH"
                    .into()]
            }
            DaemonError::NotOnPath { name: "rootlesskit" } => {
                vec!["a rootless daemon needs rootlesskit: `sudo apt-get install rootlesskit` on Debian and Ubuntu"
                    .into()]
            }
            DaemonError::NotOnPath { .. } => vec![
                "a rootless daemon needs newuidmap and newgidmap: `sudo apt-get install uidmap` on Debian and Ubuntu"
                    .into(),
            ],
            DaemonError::NoSubids { user, .. } => vec![format!(
                "add ranges as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`"
            )],
            DaemonError::NoRuntimeDir { .. } => vec![
                "log in through a session that sets XDG_RUNTIME_DIR (systemd-logind does), or set it to a folder you \
                 own with mode 0700"
                    .into(),
            ],
            DaemonError::SocketPathTooLong { .. } => vec!["pass a shorter unix:// path with --addr".into()],
            DaemonError::Address(err) => crate::cli::connect::hints(err),
            DaemonError::AlreadyRunning { pid: Some(_), .. } => {
                vec!["`fbuild daemon stop` stops it; `fbuild daemon status` shows it".into()]
            }
            DaemonError::AlreadyRunning { pid: None, .. } => {
                vec!["it was not started by `fbuild daemon start`; use it as it is, or listen elsewhere with --addr"
                    .into()]
            }
            DaemonError::AlreadyStarted { .. } => vec!["stop it first with `fbuild daemon stop`".into()],
            DaemonError::Exited { .. } | DaemonError::NotAnswering { .. } => {
                vec!["for more detail in the log, start it with `fbuild daemon start -- --debug`".into()]
            }
            _ => Vec::new(),
        }
    }

    /// Wraps the error with its hints, for the CLI's error renderer.
    pub fn into_hinted(self) -> anyhow::Error {
        let hints = self.hints();
        Hinted::wrap(self, hints)
    }
}

/// A daemon `start` brought up.
#[derive(Debug, Clone)]
pub struct Started {
    /// The process started (rootlesskit's pid for a rootless daemon).
    pub pid: u32,
    /// Where it answers.
    pub address: Address,
    /// What it said it is.
    pub version: BuildkitVersion,
    /// Runs inside rootlesskit.
    pub rootless: bool,
    /// Its folder.
    pub layout: Layout,
}

/// Starts a buildkitd in the background and waits until it answers.
pub async fn start(opts: &DaemonOptions) -> Result<Started, DaemonError> {
    let layout = layout_for(opts)?;
    let address = opts.connect.address().map_err(|err| DaemonError::Address(Box::new(err)))?;
    let rootless = !nix::unistd::geteuid().is_root();
    let buildkitd = match &opts.buildkitd {
        Some(path) => executable(path)?,
        None => on_path("buildkitd")?,
    };
    if let Some(socket) = address.socket_path() {
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(DaemonError::SocketPathTooLong { path: socket.to_owned() });
        }
    }
    let rootlesskit = if rootless { Some(check_rootless(&address)?) } else { None };

    create_dir(&layout.dir)?;
    let _lock = lock_folder(&layout)?;
    // Never start a second daemon on top of one that works, or of ours.
    if let Ok(conn) = connect::open(&opts.connect, PROBE_TIMEOUT).await {
        let pid = read_state(&layout).map(|state| state.pid).filter(|pid| is_ours(*pid, &layout));
        return Err(DaemonError::AlreadyRunning {
            addr: conn.address,
            version: conn.info.buildkit_version.map(|v| v.version).unwrap_or_default(),
            pid,
        });
    }
    if let Some(state) = read_state(&layout).filter(|state| is_ours(state.pid, &layout)) {
        return Err(DaemonError::AlreadyStarted { dir: layout.dir.clone(), pid: state.pid, addr: state.address });
    }
    create_dir(&layout.buildkit_root)?;
    if rootless {
        // rootlesskit makes its state folder itself; a leftover one from a
        // killed run would be in the way.
        let _ = std::fs::remove_dir_all(&layout.rootlesskit_dir);
    }

    let mut buildkitd_args: Vec<OsString> =
        vec!["--root".into(), layout.buildkit_root.clone().into(), "--addr".into(), address.to_string().into()];
    if layout.otel_socket.as_os_str().len() <= MAX_SOCKET_PATH {
        buildkitd_args.extend(["--otel-socket-path".into(), layout.otel_socket.clone().into()]);
    }
    if rootless {
        // Without a process sandbox (PID namespace per step): rootless
        // buildkitd inside rootlesskit cannot mount a new /proc otherwise.
        buildkitd_args.push("--oci-worker-no-process-sandbox".into());
    }
    buildkitd_args.extend(opts.extra_args.iter().cloned());

    let (program, args) = match &rootlesskit {
        Some(rootlesskit) => {
            let mut args: Vec<OsString> = vec![
                "--net=host".into(),
                "--copy-up=/etc".into(),
                "--disable-host-loopback".into(),
                "--state-dir".into(),
                layout.rootlesskit_dir.clone().into(),
                buildkitd.clone().into(),
            ];
            args.extend(buildkitd_args);
            (rootlesskit.clone(), args)
        }
        None => (buildkitd.clone(), buildkitd_args),
    };

    let (mut log, log_start) = open_log(&layout.log_file)?;
    let _ = writeln!(
        log,
        "--- fbuild daemon start, {}: {} {}",
        chrono::Local::now().to_rfc3339(),
        program.display(),
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let log_err = log.try_clone().map_err(|source| DaemonError::OpenLog { path: layout.log_file.clone(), source })?;
    let mut command = Command::new(&program);
    command.args(&args).stdin(Stdio::null()).stdout(log).stderr(log_err).current_dir(&layout.dir);
    // SAFETY: between fork and exec only setsid(2) runs, which is
    // async-signal-safe. It detaches the daemon from our session and
    // terminal, so it outlives this process and ignores a Ctrl-C meant for us.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let mut child = command.spawn().map_err(|source| DaemonError::Spawn { program: program.clone(), source })?;
    let pid = child.id();
    let state = DaemonState { pid, address: address.to_string(), rootless };
    write_state(&layout, &state)?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            remove_state(&layout);
            return Err(DaemonError::Exited {
                status: status.to_string(),
                log: layout.log_file.clone(),
                tail: log_tail(&layout.log_file, log_start),
            });
        }
        match connect::open(&opts.connect, PROBE_TIMEOUT).await {
            Ok(conn) => {
                return Ok(Started {
                    pid,
                    address,
                    version: conn.info.buildkit_version.unwrap_or_default(),
                    rootless,
                    layout,
                });
            }
            Err(err) if Instant::now() >= deadline => {
                // A daemon that never answered is no use; don't leave it behind.
                let _ = signal(pid, Signal::SIGTERM);
                let stopped = tokio::time::timeout(STOP_TIMEOUT, async {
                    while !matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
                if stopped.await.is_err() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                remove_state(&layout);
                return Err(DaemonError::NotAnswering {
                    addr: address,
                    log: layout.log_file.clone(),
                    tail: log_tail(&layout.log_file, log_start),
                    last_error: Box::new(err),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Stopped with SIGTERM.
    Terminated { pid: u32 },
    /// Ignored SIGTERM for [`STOP_TIMEOUT`] and was killed.
    Killed { pid: u32 },
    /// No daemon started from this folder runs.
    NotRunning { dir: PathBuf },
}

/// Stops the daemon started from the folder: SIGTERM, then SIGKILL after
/// [`STOP_TIMEOUT`]. Only ever signals the recorded pid, and only when that
/// process is ours.
pub async fn stop(opts: &DaemonOptions) -> Result<Stopped, DaemonError> {
    let layout = layout_for(opts)?;
    let Some(state) = read_state(&layout).filter(|state| is_ours(state.pid, &layout)) else {
        remove_state(&layout);
        return Ok(Stopped::NotRunning { dir: layout.dir });
    };
    let pid = state.pid;
    signal(pid, Signal::SIGTERM)?;
    if wait_gone(pid, &layout, STOP_TIMEOUT).await {
        remove_state(&layout);
        return Ok(Stopped::Terminated { pid });
    }
    signal(pid, Signal::SIGKILL)?;
    if wait_gone(pid, &layout, Duration::from_secs(5)).await {
        remove_state(&layout);
        return Ok(Stopped::Killed { pid });
    }
    Err(DaemonError::DidNotStop { pid })
}

/// What `status` found.
#[derive(Debug, Clone)]
pub struct Status {
    /// The address probed: `--addr`, else the one `start` recorded, else the default.
    pub address: String,
    /// The daemon's version when it answered.
    pub version: Option<BuildkitVersion>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// The pid of the daemon started from the folder, if it is alive.
    pub pid: Option<u32>,
    /// Whether that daemon runs inside rootlesskit (known only with `pid`).
    pub rootless: Option<bool>,
    /// The daemon folder looked at.
    pub layout: Layout,
}

impl Status {
    /// A daemon answered at the address.
    pub fn is_running(&self) -> bool {
        self.version.is_some()
    }
}

/// Tells whether a daemon answers, and whether fbuild started it.
pub async fn status(opts: &DaemonOptions) -> Result<Status, DaemonError> {
    let layout = layout_for(opts)?;
    let state = read_state(&layout);
    let alive = state.as_ref().filter(|state| is_ours(state.pid, &layout));
    let mut probe = opts.connect.clone();
    if probe.addr.is_none() {
        probe.addr = alive.map(|state| state.address.clone());
    }
    let address = match probe.address() {
        Ok(address) => address.to_string(),
        Err(err) => return Err(DaemonError::Address(Box::new(err))),
    };
    let (version, error) = match connect::open(&probe, PROBE_TIMEOUT).await {
        Ok(conn) => (Some(conn.info.buildkit_version.unwrap_or_default()), None),
        Err(err) => (None, Some(crate::error::error_chain(&err))),
    };
    Ok(Status {
        address,
        version,
        error,
        pid: alive.map(|state| state.pid),
        rootless: alive.map(|state| state.rootless),
        layout,
    })
}

/// The folder `--root` names, else the user's default one.
fn layout_for(opts: &DaemonOptions) -> Result<Layout, DaemonError> {
    let dir = match &opts.root {
        Some(dir) => absolute(dir),
        None => default_dir()?,
    };
    Ok(Layout::new(dir))
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

/// Checks what a rootless daemon needs; returns rootlesskit's path.
fn check_rootless(address: &Address) -> Result<PathBuf, DaemonError> {
    let rootlesskit = on_path("rootlesskit")?;
    on_path("newuidmap")?;
    on_path("newgidmap")?;
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string());
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !has_subid_range(&text, &user, uid.as_raw()) {
            return Err(DaemonError::NoSubids { user, file: file.into() });
        }
    }
    // The socket's folder is made by buildkitd, but its parent (the runtime
    // folder) must exist and belong to the user.
    if let Some(socket) = address.socket_path() {
        let runtime = connect::address::user_runtime_dir(uid.as_raw(), std::env::var_os("XDG_RUNTIME_DIR").as_deref());
        if socket.starts_with(&runtime) && !runtime.is_dir() {
            return Err(DaemonError::NoRuntimeDir { path: runtime, xdg: std::env::var("XDG_RUNTIME_DIR").ok() });
        }
    }
    Ok(rootlesskit)
}

/// True when `/etc/subuid`-style `text` has a non-empty range for the user
/// (by name or uid).
pub(crate) fn has_subid_range(text: &str, user: &str, uid: u32) -> bool {
    let uid = uid.to_string();
    text.lines().any(|line| {
        let mut parts = line.trim().split(':');
        let (Some(name), Some(_start), Some(count)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        (name == user || name == uid) && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
    })
}

/// `name` found on PATH, as an absolute path.
fn on_path(name: &'static str) -> Result<PathBuf, DaemonError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .map(|found| absolute(&found))
        .ok_or(DaemonError::NotOnPath { name })
}

fn executable(path: &Path) -> Result<PathBuf, DaemonError> {
    if is_executable(path) {
        Ok(absolute(path))
    } else {
        Err(DaemonError::NotExecutable { path: path.to_owned() })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Takes the folder's start lock; released when the returned file is dropped.
fn lock_folder(layout: &Layout) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&layout.lock_file)
        .map_err(|source| DaemonError::CreateDir { path: layout.lock_file.clone(), source })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| DaemonError::StartRunning { dir: layout.dir.clone() })
}

fn create_dir(path: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(path).map_err(|source| DaemonError::CreateDir { path: path.to_owned(), source })
}

/// Opens the log for appending; returns it and its length before this run.
fn open_log(path: &Path) -> Result<(std::fs::File, u64), DaemonError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| DaemonError::OpenLog { path: path.to_owned(), source })?;
    let start = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    Ok((file, start))
}

/// The last lines the log got since `start`, indented.
fn log_tail(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.read_to_string(&mut text);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        return "  (empty)".into();
    }
    tail.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
}

fn read_state(layout: &Layout) -> Option<DaemonState> {
    let text = std::fs::read_to_string(&layout.state_file).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(layout: &Layout, state: &DaemonState) -> Result<(), DaemonError> {
    let write = |path: &Path, text: String| {
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| DaemonError::WriteState { path: path.to_owned(), source })
    };
    let json = serde_json::to_string_pretty(state).unwrap_or_default();
    write(&layout.state_file, json + "\n")?;
    // The plain pid file is for people and scripts (`kill $(cat ...)`).
    write(&layout.pid_file, format!("{}\n", state.pid))
}

fn remove_state(layout: &Layout) {
    let _ = std::fs::remove_file(&layout.state_file);
    let _ = std::fs::remove_file(&layout.pid_file);
    // buildkitd leaves its trace socket behind; nobody listens on it any more.
    let _ = std::fs::remove_file(&layout.otel_socket);
}

/// True when `pid` is alive (not a zombie) and its command line names our folder.
fn is_ours(pid: u32, layout: &Layout) -> bool {
    if pid <= 1 || !is_alive(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // Our folder appears as buildkitd's --root (inside it).
    let needle = layout.buildkit_root.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == needle)
}

/// Alive and not a zombie: a daemon whose parent exited is reparented to a
/// process that may never reap it, and a zombie answers kill(pid, 0).
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may hold spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

fn signal(pid: u32, signal: Signal) -> Result<(), DaemonError> {
    let raw = i32::try_from(pid).map_err(|_| DaemonError::Signal { pid, source: nix::Error::EINVAL })?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(DaemonError::Signal { pid, source }),
    }
}

/// Waits until `pid` is gone (or no longer ours); true when it went in time.
async fn wait_gone(pid: u32, layout: &Layout, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !is_ours(pid, layout) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    !is_ours(pid, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keeps_everything_in_the_folder() {
        let layout = Layout::new("/d".into());
        assert_eq!(layout.buildkit_root, Path::new("/d/buildkit"));
        assert_eq!(layout.pid_file, Path::new("/d/buildkitd.pid"));
        assert_eq!(layout.log_file, Path::new("/d/buildkitd.log"));
        assert_eq!(layout.state_file, Path::new("/d/daemon.json"));
    }

    #[test]
    fn subid_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:65536\nempty:300000:0\n";
        assert!(has_subid_range(text, "alice", 1000));
        assert!(has_subid_range(text, "bob", 1001));
        assert!(!has_subid_range(text, "carol", 1002));
        assert!(!has_subid_range(text, "empty", 1003));
        assert!(!has_subid_range("", "alice", 1000));
    }

    #[test]
    fn our_process_is_recognised_by_its_folder() {
        let me = std::process::id();
        let layout = Layout::new("/nonexistent/fbuild-daemon".into());
        assert!(is_alive(me));
        // This test process does not name the folder on its command line.
        assert!(!is_ours(me, &layout));
        assert!(!is_ours(0, &layout));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn log_tail_shows_only_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "old run\n").unwrap();
        let start = std::fs::metadata(&log).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(file, "level=fatal msg=boom").unwrap();
        assert_eq!(log_tail(&log, start), "  level=fatal msg=boom");
        assert_eq!(log_tail(&log, start + 100), "  (empty)");
    }

    #[tokio::test]
    async fn stop_without_a_daemon_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        // A stale record naming our own pid must not make us signal ourselves.
        let layout = Layout::new(dir.path().to_owned());
        write_state(&layout, &DaemonState { pid: std::process::id(), address: "unix:///x".into(), rootless: false })
            .unwrap();
        let opts = DaemonOptions { root: Some(dir.path().to_owned()), ..Default::default() };
        let stopped = stop(&opts).await.unwrap();
        assert_eq!(stopped, Stopped::NotRunning { dir: dir.path().to_owned() });
        assert!(!layout.pid_file.exists());
    }
}
