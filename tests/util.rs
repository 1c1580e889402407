//! Shared helpers for the integration tests: where the test daemon and
//! registry are, commands pointed at them, and temp folders.
//!
//! The environment comes from `scripts/testenv.sh up` (and `scripts/rootless.sh
//! up` for the rootless daemon), through the variables it writes to
//! `.testenv/env`. When a variable is not set in the process environment it is
//! read from that file, so `cargo test` works without sourcing anything.
//! A missing or silent daemon fails the test that asked for it: these tests
//! exist to talk to a real buildkitd, and one that passes without it proves
//! nothing.
#![allow(dead_code)] // each test module uses a different subset

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test environment's addresses and binaries.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// `unix://…/buildkitd.sock` of the root daemon.
    pub addr: String,
    /// `tcp://127.0.0.1:PORT` of the same daemon (plain h2c).
    pub tcp_addr: String,
    /// `127.0.0.1:PORT` of the loopback registry (plain HTTP).
    pub registry: String,
    /// `REGISTRY/busybox:latest`.
    pub busybox: String,
    /// `REGISTRY/debian-python:bookworm` when `scripts/debian-base.sh` has run.
    pub debian: Option<String>,
    /// `git://127.0.0.1:PORT` of the loopback git daemon, serving the bare
    /// repositories in `git_root` (see [`git_daemon`]).
    pub git: Option<String>,
    pub git_root: Option<PathBuf>,
    pub buildctl: PathBuf,
    pub buildkitd: PathBuf,
    /// buildx v0.38.2 (scripts/buildx.sh, which scripts/testenv.sh runs).
    pub buildx: PathBuf,
    /// The state folder (`.testenv/` by default).
    pub root: PathBuf,
}

/// The rootless daemon (`scripts/rootless.sh up`).
#[derive(Debug, Clone)]
pub struct RootlessEnv {
    pub user: String,
    pub uid: u32,
    pub home: PathBuf,
    /// The user's XDG_RUNTIME_DIR; the daemon listens on `XDG/buildkit/buildkitd.sock`.
    pub xdg: PathBuf,
    pub addr: String,
    /// A buildctl the user can execute.
    pub buildctl: PathBuf,
}

const HINT: &str =
    "start it with `scripts/testenv.sh up` (the README's test command, scripts/test.sh, does it for you)";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `export K='V'` lines of an env file written by our scripts.
fn parse_env_file(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The state folder: `$FBUILD_TESTENV_DIR`, else `.testenv/` in the repo.
fn state_dir() -> PathBuf {
    match std::env::var_os("FBUILD_TESTENV_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest_dir().join(".testenv"),
    }
}

/// A variable from the process environment, else from the env file.
fn lookup(file: &BTreeMap<String, String>, key: &str) -> Option<String> {
    std::env::var(key).ok().or_else(|| file.get(key).cloned()).filter(|v| !v.is_empty())
}

fn require(file: &BTreeMap<String, String>, key: &str, env_file: &Path) -> String {
    lookup(file, key).unwrap_or_else(|| {
        panic!("the test environment is not set up: {key} is neither set nor in {}; {HINT}", env_file.display())
    })
}

/// The root test daemon and registry. Panics with instructions when they are
/// not configured or the daemon does not answer; the check runs once per test
/// binary.
pub fn testenv() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let env_file = state_dir().join("env");
        let file = parse_env_file(&env_file);
        let env = TestEnv {
            addr: require(&file, "FBUILD_TEST_ADDR", &env_file),
            tcp_addr: require(&file, "FBUILD_TEST_TCP_ADDR", &env_file),
            registry: require(&file, "FBUILD_TEST_REGISTRY", &env_file),
            busybox: require(&file, "FBUILD_TEST_BUSYBOX", &env_file),
            debian: lookup(&file, "FBUILD_TEST_DEBIAN"),
            git: lookup(&file, "FBUILD_TEST_GIT"),
            git_root: lookup(&file, "FBUILD_TEST_GIT_ROOT").map(PathBuf::from),
            buildctl: require(&file, "FBUILD_BUILDCTL", &env_file).into(),
            buildkitd: require(&file, "FBUILD_BUILDKITD", &env_file).into(),
            buildx: require(&file, "FBUILD_BUILDX", &env_file).into(),
            root: require(&file, "FBUILD_TEST_ROOT", &env_file).into(),
        };
        let out = std::process::Command::new(&env.buildctl)
            .args(["--addr", &env.addr, "debug", "workers"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HINT}", env.buildctl.display()));
        if !out.status.success() {
            let ci = if std::env::var("CI").as_deref() == Ok("true") { " (CI=true)" } else { "" };
            panic!(
                "the test buildkitd at {} does not answer{ci}: {}; {HINT}",
                env.addr,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        env
    })
}

/// The rootless test daemon. Panics with instructions when `scripts/rootless.sh
/// up` has not run.
pub fn rootless() -> &'static RootlessEnv {
    static ENV: OnceLock<RootlessEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let env_file = state_dir().join("rootless.env");
        let file = parse_env_file(&env_file);
        let hint = "start it with `scripts/rootless.sh up` (scripts/test.sh does it for you)";
        let get = |key: &str| {
            lookup(&file, key).unwrap_or_else(|| {
                panic!("the rootless daemon is not set up: {key} is not in {}; {hint}", env_file.display())
            })
        };
        RootlessEnv {
            user: get("FBUILD_TEST_ROOTLESS_USER"),
            uid: get("FBUILD_TEST_ROOTLESS_UID").parse().expect("FBUILD_TEST_ROOTLESS_UID is a number"),
            home: get("FBUILD_TEST_ROOTLESS_HOME").into(),
            xdg: get("FBUILD_TEST_ROOTLESS_XDG").into(),
            addr: get("FBUILD_TEST_ROOTLESS_ADDR"),
            buildctl: get("FBUILD_TEST_ROOTLESS_BUILDCTL").into(),
        }
    })
}

impl RootlessEnv {
    /// `program args…` run as the rootless user, with a clean environment:
    /// HOME, USER, PATH and the user's XDG_RUNTIME_DIR (no BUILDKIT_HOST).
    /// The program must be executable by that user; see [`RootlessEnv::fbuild`].
    pub fn command(&self, program: impl AsRef<Path>) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.user))
            .arg(format!("--regid={}", self.user))
            .arg("--init-groups")
            .arg("env")
            .arg("-i")
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.user))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .arg(program.as_ref());
        cmd
    }

    /// fbuild run as the rootless user. The test binary's fbuild lives in a
    /// target folder the user cannot read, so a copy goes into the user's
    /// XDG_RUNTIME_DIR first.
    pub fn fbuild(&self) -> assert_cmd::Command {
        let dest = self.xdg.join("bin").join("fbuild");
        static COPIED: OnceLock<()> = OnceLock::new();
        COPIED.get_or_init(|| {
            let dir = dest.parent().expect("a bin folder");
            std::fs::create_dir_all(dir).expect("create the rootless user's bin folder");
            std::os::unix::fs::chown(dir, Some(self.uid), Some(self.uid)).expect("chown the bin folder");
            let tmp = dir.join(".fbuild.tmp");
            std::fs::copy(fbuild_binary(), &tmp).expect("copy fbuild for the rootless user");
            std::fs::rename(&tmp, &dest).expect("move fbuild into place");
        });
        self.command(dest)
    }

    /// A temp folder owned by the rootless user, inside its XDG_RUNTIME_DIR.
    pub fn tempdir(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(&self.xdg)
            .expect("create a temp folder for the rootless user");
        std::os::unix::fs::chown(dir.path(), Some(self.uid), Some(self.uid)).expect("chown the temp folder");
        dir
    }
}

/// Path of the fbuild binary under test.
pub fn fbuild_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fbuild"))
}

/// Path of the buildkitd the test environment installed (for tests that start
/// their own daemon).
pub fn buildkitd_binary() -> PathBuf {
    testenv().buildkitd.clone()
}

/// A buildkitd of a test's own, beside the test environment's: its own
/// `--root`, address and OTEL socket (buildkitd otherwise listens on
/// /run/buildkit/otel-grpc.sock, which a second root daemon would take over
/// from the first), all in a temp folder. Stopped (SIGTERM, then SIGKILL) and
/// reaped on drop, even when an assertion failed half-way.
pub struct PrivateDaemon {
    child: Child,
    /// The address it listens on.
    pub addr: String,
    /// Its `--root` state folder.
    pub root: PathBuf,
    log: PathBuf,
    // Dropped after the daemon stops: it holds the daemon's state.
    _dir: tempfile::TempDir,
}

impl PrivateDaemon {
    /// Starts one on a unix socket in its folder with `extra_args` added, and
    /// waits until it answers `buildctl debug workers`.
    pub fn start<I>(extra_args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        let dir = tempdir();
        let addr = format!("unix://{}", dir.path().join("buildkitd.sock").display());
        let mut daemon = Self::spawn(dir, addr, extra_args);
        daemon.wait_until_up(|daemon| {
            let out = daemon.buildctl().args(["debug", "workers"]).output();
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
                Err(e) => Err(e.to_string()),
            }
        });
        daemon
    }

    /// Starts one listening at `addr` with `extra_args` added, without
    /// waiting: for daemons that buildctl cannot reach as it is (TLS); call
    /// [`PrivateDaemon::wait_until_up`] with a check of the caller's own.
    pub fn spawn_at<I>(addr: String, extra_args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        Self::spawn(tempdir(), addr, extra_args)
    }

    fn spawn<I>(dir: tempfile::TempDir, addr: String, extra_args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("create the private daemon's root");
        let log = dir.path().join("buildkitd.log");
        let log_file = std::fs::File::create(&log).expect("create the private daemon's log");
        let child = Command::new(buildkitd_binary())
            .arg("--root")
            .arg(&root)
            .args(["--addr", &addr])
            .arg("--otel-socket-path")
            .arg(dir.path().join("otel.sock"))
            .args(["--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("share the log file"))
            .stderr(log_file)
            .spawn()
            .expect("cannot start buildkitd");
        PrivateDaemon { child, addr, root, log, _dir: dir }
    }

    /// The last 30 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Retries `answers` every 200 ms until it is Ok; panics with the log's
    /// tail when the daemon exits or 30 s pass.
    pub fn wait_until_up(&mut self, mut answers: impl FnMut(&Self) -> Result<(), String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the private buildkitd exited ({status}); its log:\n{}", self.log_tail());
            }
            match answers(self) {
                Ok(()) => return,
                Err(why) if Instant::now() > deadline => {
                    panic!("the private buildkitd did not answer within 30 s: {why}\nits log:\n{}", self.log_tail())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Kills it at once (SIGKILL), as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// buildctl with `--addr` set to this daemon.
    pub fn buildctl(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(&testenv().buildctl);
        cmd.args(["--addr", &self.addr]);
        cmd
    }

    /// [`fbuild`] with `--addr` set to this daemon.
    pub fn fbuild(&self) -> assert_cmd::Command {
        let mut cmd = fbuild();
        cmd.args(["--addr", &self.addr]);
        cmd
    }

    /// `fbuild solve PROJECT --progress rawjson ARGS` on this daemon, which
    /// must succeed; its stderr (the JSON status lines and messages).
    pub fn solve_rawjson(&self, project: &Path, args: &[&str]) -> String {
        let output =
            self.fbuild().arg("solve").arg(project).args(["--progress", "rawjson"]).args(args).output().unwrap();
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "fbuild solve {args:?} failed:\n{stderr}");
        stderr
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a closure when dropped: cleanup that must happen even when an
/// assertion fails half-way (stopping a daemon a test started).
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Bytes of a command's output as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// fbuild, pointed at the test daemon through BUILDKIT_HOST, with its progress
/// output plain (no terminal codes) and no colour.
pub fn fbuild() -> assert_cmd::Command {
    let env = testenv();
    let mut cmd = assert_cmd::Command::new(fbuild_binary());
    cmd.env("BUILDKIT_HOST", &env.addr).env("BUILDKIT_PROGRESS", "plain").env("NO_COLOR", "1").env_remove("RUST_LOG");
    // Build records go to a folder of the test run's, not the user's.
    static STATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    cmd.env("FBUILD_STATE_DIR", STATE.get_or_init(tempdir).path()).env_remove("FBUILD_SUMMARY");
    cmd
}

/// fbuild with only the builder store in `docker_config` to choose its
/// daemon: no BUILDKIT_HOST, no BUILDX_BUILDER, the default Docker endpoint.
pub fn fbuild_with_store(docker_config: &Path) -> assert_cmd::Command {
    let mut cmd = fbuild();
    cmd.env_remove("BUILDKIT_HOST")
        .env_remove("BUILDX_BUILDER")
        .env_remove("BUILDX_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", docker_config);
    cmd
}

/// buildx, the reference, with a remote-driver builder on the test daemon
/// (made once per test binary in a private DOCKER_CONFIG); add the command.
pub fn buildx() -> assert_cmd::Command {
    static CONFIG: OnceLock<tempfile::TempDir> = OnceLock::new();
    let env = testenv();
    let config = CONFIG.get_or_init(|| {
        let config = tempdir();
        let created = std::process::Command::new(&env.buildx)
            .env("DOCKER_CONFIG", config.path())
            .args(["create", "--name", "fbuild-test", "--driver", "remote", &env.addr])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HINT}", env.buildx.display()));
        assert!(created.status.success(), "buildx create: {}", String::from_utf8_lossy(&created.stderr));
        config
    });
    let mut cmd = assert_cmd::Command::new(&env.buildx);
    cmd.env("DOCKER_CONFIG", config.path())
        .env("BUILDX_BUILDER", "fbuild-test")
        .env_remove("BUILDKIT_HOST")
        .env("BUILDKIT_PROGRESS", "plain");
    cmd
}

/// buildctl with `--addr` set to the test daemon; add the subcommand.
pub fn buildctl() -> assert_cmd::Command {
    let env = testenv();
    let mut cmd = assert_cmd::Command::new(&env.buildctl);
    cmd.arg("--addr").arg(&env.addr);
    cmd
}

/// A fresh temp folder, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fbuild-test-").tempdir().expect("create a temp folder")
}

/// Write `files` (relative path, contents) under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a folder for a test file");
        }
        std::fs::write(&path, contents).expect("write a test file");
    }
}

/// The loopback git daemon: its `git://` base URL and the folder whose bare
/// repositories it serves. Panics (a failure, not a skip) when
/// `scripts/testenv.sh up` has not started it.
pub fn git_daemon() -> (String, PathBuf) {
    let env = testenv();
    match (&env.git, &env.git_root) {
        (Some(url), Some(root)) => (url.clone(), root.clone()),
        _ => panic!("the test git daemon is not set up (FBUILD_TEST_GIT, FBUILD_TEST_GIT_ROOT); {HINT}"),
    }
}

/// Media types a manifest request accepts: image indexes and single manifests,
/// OCI and Docker.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The manifest (or index) of `repo:tag` in the test registry, or None when
/// the registry answers 404. Panics on any other answer or a broken registry.
pub fn registry_manifest(repo: &str, tag: &str) -> Option<serde_json::Value> {
    registry_manifest_bytes(repo, tag)
        .map(|body| serde_json::from_slice(&body).expect("the registry's manifest is JSON"))
}

/// The digest the registry holds for `repo:tag` (the sha256 of the bytes it serves).
pub fn registry_digest(repo: &str, tag: &str) -> String {
    use sha2::Digest;
    let bytes = registry_manifest_bytes(repo, tag).unwrap_or_else(|| panic!("{repo}:{tag} was not pushed"));
    format!("sha256:{:x}", sha2::Sha256::digest(&bytes))
}

/// The bytes the registry serves for `repo:tag` (or `repo@digest`), whose
/// sha256 is the manifest's digest; None on 404.
pub fn registry_manifest_bytes(repo: &str, reference: &str) -> Option<Vec<u8>> {
    let (status, body) = registry_get(&format!("/v2/{repo}/manifests/{reference}"), MANIFEST_ACCEPT);
    match status {
        200 => Some(body),
        404 => None,
        other => {
            panic!("the test registry answered {other} for {repo}:{reference}: {}", String::from_utf8_lossy(&body))
        }
    }
}

/// A plain HTTP/1.0 GET against the test registry (so no chunked encoding):
/// the status code and the body.
pub fn registry_get(path: &str, accept: &str) -> (u16, Vec<u8>) {
    let registry = &testenv().registry;
    let mut stream = TcpStream::connect(registry)
        .unwrap_or_else(|e| panic!("cannot connect to the test registry at {registry}: {e}; {HINT}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {registry}\r\nAccept: {accept}\r\n\r\n").expect("send the request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the registry's answer");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("the registry's answer has a header");
    let head = String::from_utf8_lossy(&response[..split]);
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("the registry's answer has a status code");
    (status, response[split + 4..].to_vec())
}

/// A name no other test run uses: the process id and the current time in
/// nanoseconds.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// Whether the build step whose name contains `needle` was cached, from
/// `--progress rawjson` output: Some(true) when any update of that vertex
/// says `"cached":true`, Some(false) when it ran, None when no vertex has
/// that name.
pub fn rawjson_step_cached(rawjson: &str, needle: &str) -> Option<bool> {
    let mut found = None;
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a rawjson line that is not JSON ({e}): {line}"));
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            if vertex["name"].as_str().is_some_and(|name| name.contains(needle)) {
                let cached = vertex["cached"].as_bool().unwrap_or(false);
                found = Some(found.unwrap_or(false) || cached);
            }
        }
    }
    found
}

/// The warnings of a rawjson stream (the daemon's and fbuild's own, which
/// come as warnings of no vertex), decoded.
pub fn rawjson_warnings(rawjson: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut warnings = Vec::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a rawjson line that is not JSON ({e}): {line}"));
        for warning in value["warnings"].as_array().into_iter().flatten() {
            let short =
                base64::engine::general_purpose::STANDARD.decode(warning["short"].as_str().unwrap_or("")).unwrap();
            warnings.push(String::from_utf8_lossy(&short).into_owned());
        }
    }
    warnings
}

/// Bytes the daemon reports for "transferring context", from rawjson progress.
pub fn context_bytes(rawjson: &str) -> u64 {
    let mut max = 0;
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for status in value["statuses"].as_array().into_iter().flatten() {
            if status["id"].as_str().unwrap_or_default().starts_with("transferring context") {
                max = max.max(status["current"].as_u64().unwrap_or(0));
            }
        }
    }
    max
}

/// N from fbuild's "context: N files sent" line.
pub fn files_sent(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.starts_with("context: ")).expect("a context transfer line");
    line["context: ".len()..].split(' ').next().unwrap().parse().unwrap()
}

/// Every entry of a tarball: path (without a leading `./`) → (header, content).
pub fn tar_entries(bytes: &[u8]) -> BTreeMap<String, (tar::Header, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("a tarball") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().unwrap().to_string_lossy().trim_start_matches("./").to_owned();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        entries.insert(path, (entry.header().clone(), content));
    }
    entries
}

/// An OCI layout tarball, every blob checked against its name when read.
pub struct OciLayout {
    entries: BTreeMap<String, (tar::Header, Vec<u8>)>,
}

impl OciLayout {
    pub fn read(path: &Path) -> Self {
        Self::from_tar(&std::fs::read(path).unwrap())
    }

    pub fn from_tar(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let entries = tar_entries(bytes);
        let mut blobs = 0;
        for (name, (_, content)) in &entries {
            if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|hex| !hex.is_empty()) {
                assert_eq!(hex::encode(Sha256::digest(content)), hex, "blob {name} does not match its digest");
                blobs += 1;
            }
        }
        assert!(blobs > 0, "no blobs in the layout: {:?}", entries.keys().collect::<Vec<_>>());
        OciLayout { entries }
    }

    /// A file of the layout by its path (`oci-layout`, `index.json`).
    pub fn file(&self, name: &str) -> &[u8] {
        &self.entries.get(name).unwrap_or_else(|| panic!("{name} is missing from the layout")).1
    }

    pub fn index(&self) -> oci_spec::image::ImageIndex {
        oci_spec::image::ImageIndex::from_reader(self.file("index.json")).expect("index.json is an image index")
    }

    /// The blob a descriptor points at, checked against its size (the digest
    /// was checked by [`OciLayout::read`]).
    pub fn blob(&self, descriptor: &oci_spec::image::Descriptor) -> &[u8] {
        let hex = descriptor.as_digest_sha256().expect("a sha256 digest");
        let (_, content) = self
            .entries
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("blob {} is missing", descriptor.digest()));
        assert_eq!(content.len() as u64, descriptor.size(), "blob {} has another size", descriptor.digest());
        content
    }

    pub fn manifest(&self, descriptor: &oci_spec::image::Descriptor) -> oci_spec::image::ImageManifest {
        oci_spec::image::ImageManifest::from_reader(self.blob(descriptor)).expect("an image manifest")
    }

    pub fn config(&self, manifest: &oci_spec::image::ImageManifest) -> oci_spec::image::ImageConfiguration {
        oci_spec::image::ImageConfiguration::from_reader(self.blob(manifest.config())).expect("an image config")
    }
}

/// A small tmpfs, unmounted on drop.
pub struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempdir();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root, as the tests run");
        SmallDisk(dir)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}
