//! Exec ops: a command run in a container whose root filesystem is a state
//! (Go's `exec.go`).
//!
//! [`Run`] describes the command and its mounts up front (Go adds mounts to a
//! live op; here the op is immutable once built, so they are declared first).
//! Mounts are ordered by target, as Go sorts them, so the output index of each
//! writable mount is stable: the root's output, then one per writable bind
//! mount in target order. Secret and SSH mounts are not sorted with them:
//! Go appends them after the sorted mounts (secrets, then SSH sockets, each
//! in the order they were added), with no input and no output.

use std::net::IpAddr;
use std::sync::Arc;

use crate::proto::pb;

use super::marshal::Marshaller;
use super::path;
use super::state::{Location, OpOptions, Output, State, Vertex};
use super::MarshalError;

/// The command of an exec op and how it runs; pass it to [`State::run`].
#[derive(Debug, Clone)]
pub struct Run {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    user: Option<String>,
    mounts: Vec<Mount>,
    readonly_root: bool,
    network: pb::NetMode,
    security: pb::SecurityMode,
    hostname: String,
    cgroup_parent: String,
    extra_hosts: Vec<(String, IpAddr)>,
    ulimits: Vec<pb::Ulimit>,
    valid_exit_codes: Vec<i32>,
    proxy_env: Option<ProxyEnv>,
    /// Secret mounts and secret env vars, in the order they were added
    /// (which is the order of the op's secret mounts and of `secretenv`).
    secrets: Vec<Secret>,
    ssh: Vec<SshSocket>,
    options: OpOptions,
}

/// Proxy settings an exec gets as environment variables without them being
/// part of its cache key (Go's `llb.ProxyEnv`, `WithProxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTP_PROXY`.
    pub http_proxy: String,
    /// `HTTPS_PROXY`.
    pub https_proxy: String,
    /// `FTP_PROXY`.
    pub ftp_proxy: String,
    /// `NO_PROXY`.
    pub no_proxy: String,
    /// `ALL_PROXY`.
    pub all_proxy: String,
}

/// A secret the session serves, as a file or an environment variable (Go's
/// `SecretInfo`).
#[derive(Debug, Clone)]
enum Secret {
    File { target: String, opt: pb::SecretOpt },
    Env(pb::SecretEnv),
}

/// An SSH agent socket the session forwards (Go's `SSHInfo`).
#[derive(Debug, Clone)]
struct SshSocket {
    /// Empty: `/run/buildkit/ssh_agent.<n>`, decided when the op is built.
    target: String,
    opt: pb::SshOpt,
}

impl Run {
    /// Runs `args` (the first is the program) as is, without a shell.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Run {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            user: None,
            mounts: Vec::new(),
            readonly_root: false,
            network: pb::NetMode::Unset,
            security: pb::SecurityMode::Sandbox,
            hostname: String::new(),
            cgroup_parent: String::new(),
            extra_hosts: Vec::new(),
            ulimits: Vec::new(),
            valid_exit_codes: Vec::new(),
            proxy_env: None,
            secrets: Vec::new(),
            ssh: Vec::new(),
            options: OpOptions::default(),
        }
    }

    /// Runs `command` with `/bin/sh -c`, as Dockerfile's shell form of `RUN` does.
    pub fn shell(command: impl Into<String>) -> Self {
        Run::new(["/bin/sh".to_owned(), "-c".to_owned(), command.into()])
    }

    /// Sets an environment variable for this command only (the state's
    /// environment stays as it is for later ops).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The working directory for this command; relative to the state's.
    pub fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// The user for this command.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// Adds a mount; see [`ExecState::mount`] for its output. Secret and
    /// SSH mounts go to their own lists, as in Go, and have no output.
    pub fn mount(mut self, mount: Mount) -> Self {
        match mount.kind {
            MountKind::Secret(opt) => self.secrets.push(Secret::File { target: mount.target, opt }),
            MountKind::Ssh(opt) => self.ssh.push(SshSocket { target: mount.target, opt }),
            _ => self.mounts.push(mount),
        }
        self
    }

    /// The secret `id` as the environment variable `name` (`RUN
    /// --mount=type=secret,env=...`; Go's `SecretAsEnvName`).
    pub fn secret_env(mut self, name: &str, id: &str, optional: bool) -> Self {
        self.secrets.push(Secret::Env(pb::SecretEnv { id: id.to_owned(), name: name.to_owned(), optional }));
        self
    }

    /// The security mode; `Insecure` needs the `security.insecure`
    /// entitlement.
    pub fn security(mut self, security: pb::SecurityMode) -> Self {
        self.security = security;
        self
    }

    /// The container's hostname.
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = hostname.to_owned();
        self
    }

    /// The cgroup the container is made under (`--cgroup-parent`).
    pub fn cgroup_parent(mut self, parent: &str) -> Self {
        self.cgroup_parent = parent.to_owned();
        self
    }

    /// An `/etc/hosts` entry (`--add-host`), after those added before.
    pub fn extra_host(mut self, host: &str, ip: IpAddr) -> Self {
        self.extra_hosts.push((host.to_owned(), ip));
        self
    }

    /// A resource limit (`nofile`, `nproc`, ...), after those added before.
    pub fn ulimit(mut self, name: &str, soft: i64, hard: i64) -> Self {
        self.ulimits.push(pb::Ulimit { name: name.to_owned(), soft, hard });
        self
    }

    /// Exit codes that count as success (default: only 0); empty keeps the
    /// default.
    pub fn valid_exit_codes(mut self, codes: Vec<i32>) -> Self {
        self.valid_exit_codes = codes;
        self
    }

    /// Proxy variables for the command, kept out of its cache key.
    pub fn proxy_env(mut self, proxy: ProxyEnv) -> Self {
        self.proxy_env = Some(proxy);
        self
    }

    /// Mounts the root filesystem read-only; the exec then has no root output
    /// and its root state is the input's.
    pub fn readonly_root(mut self) -> Self {
        self.readonly_root = true;
        self
    }

    /// The network mode (`Unset` is the daemon's sandbox).
    pub fn network(mut self, network: pb::NetMode) -> Self {
        self.network = network;
        self
    }

    /// Progress name and cache settings of the op.
    pub fn options(mut self, options: OpOptions) -> Self {
        self.options = options;
        self
    }
}

/// What a mount attaches at its target.
#[derive(Debug, Clone)]
enum MountKind {
    /// A state's filesystem (or an empty one for scratch).
    Bind { source: Box<State>, readonly: bool, selector: String },
    /// A persistent cache directory shared between builds by id; created
    /// from `base` (at `selector`) on first use, empty without one.
    Cache { id: String, sharing: pb::CacheSharingOpt, base: Option<Box<State>>, selector: String, readonly: bool },
    /// An in-memory filesystem; `size` in bytes, 0 for the default.
    Tmpfs { size: i64 },
    /// A secret from the session, as a file.
    Secret(pb::SecretOpt),
    /// An SSH agent socket from the session.
    Ssh(pb::SshOpt),
}

/// An extra mount of an exec op.
#[derive(Debug, Clone)]
pub struct Mount {
    target: String,
    kind: MountKind,
    /// A writable bind mount whose result is thrown away (Go's `ForceNoOutput`).
    no_output: bool,
}

impl Mount {
    /// `source`'s filesystem at `target`, writable (its result is an output
    /// of the exec).
    pub fn bind(target: &str, source: &State) -> Self {
        Mount::new(
            target,
            MountKind::Bind { source: Box::new(source.clone()), readonly: false, selector: String::new() },
        )
    }

    /// A cache mount (`RUN --mount=type=cache`), shared by `id`.
    pub fn cache(target: &str, id: &str, sharing: pb::CacheSharingOpt) -> Self {
        Mount::new(
            target,
            MountKind::Cache { id: id.to_owned(), sharing, base: None, selector: String::new(), readonly: false },
        )
    }

    /// A cache mount whose first use starts from `base`'s `path` (how the
    /// Dockerfile frontend gives a cache mount its `uid`, `gid` and `mode`:
    /// a directory made in scratch). The daemon keys the cache by id and
    /// base, so the same id with another base is another cache.
    pub fn cache_from(target: &str, id: &str, sharing: pb::CacheSharingOpt, base: &State, path: &str) -> Self {
        Mount::new(
            target,
            MountKind::Cache {
                id: id.to_owned(),
                sharing,
                base: Some(Box::new(base.clone())),
                selector: path.to_owned(),
                readonly: false,
            },
        )
    }

    /// A tmpfs of `size` bytes (0: the daemon's default).
    pub fn tmpfs(target: &str, size: i64) -> Self {
        Mount::new(target, MountKind::Tmpfs { size })
    }

    /// The session's secret `id` as a file at `target` (`RUN
    /// --mount=type=secret`; Go's `AddSecret` with `SecretFileOpt`; Go's
    /// default mode is `0o400`).
    pub fn secret(target: &str, id: &str, uid: u32, gid: u32, mode: u32, optional: bool) -> Self {
        Mount::new(target, MountKind::Secret(pb::SecretOpt { id: id.to_owned(), uid, gid, mode, optional }))
    }

    /// The session's SSH agent `id` as a socket at `target`; an empty target
    /// is `/run/buildkit/ssh_agent.<n>` (`RUN --mount=type=ssh`; Go's
    /// `AddSSHSocket`, whose default mode is `0o600`). The first SSH socket
    /// also sets `SSH_AUTH_SOCK` unless the environment has it.
    pub fn ssh(target: &str, id: &str, uid: u32, gid: u32, mode: u32, optional: bool) -> Self {
        Mount::new(target, MountKind::Ssh(pb::SshOpt { id: id.to_owned(), uid, gid, mode, optional }))
    }

    fn new(target: &str, kind: MountKind) -> Self {
        Mount { target: target.to_owned(), kind, no_output: false }
    }

    /// A writable bind mount whose changes are dropped: it gets no output
    /// index (Go's `ForceNoOutput`).
    pub fn force_no_output(mut self) -> Self {
        self.no_output = true;
        self
    }

    /// A bind mount made read-only (it then has no output), or a cache
    /// mount the command cannot change.
    pub fn readonly(mut self) -> Self {
        if let MountKind::Bind { readonly, .. } | MountKind::Cache { readonly, .. } = &mut self.kind {
            *readonly = true;
        }
        self
    }

    /// Mounts only `path` of the bind source (Go's `SourcePath`).
    pub fn source_path(mut self, path: &str) -> Self {
        if let MountKind::Bind { selector, .. } = &mut self.kind {
            *selector = path.to_owned();
        }
        self
    }

    /// Whether the mount's result is an output of the exec.
    fn has_output(&self) -> bool {
        !self.no_output && matches!(self.kind, MountKind::Bind { readonly: false, .. })
    }

    fn source(&self) -> Option<&Output> {
        match &self.kind {
            MountKind::Bind { source, .. } => source.output.as_ref(),
            MountKind::Cache { base: Some(base), .. } => base.output.as_ref(),
            _ => None,
        }
    }
}

/// The result of [`State::run`]: the root filesystem after the command, and
/// the outputs of its writable mounts.
#[derive(Debug, Clone)]
pub struct ExecState {
    root: State,
    op: Arc<ExecOp>,
}

impl ExecState {
    /// The root filesystem after the command (with the settings of the state
    /// the command ran on).
    pub fn root(&self) -> State {
        self.root.clone()
    }

    /// The filesystem of the mount at `target` after the command: `None` if
    /// there is no such mount or it is a cache or tmpfs (those have no
    /// output); a read-only mount gives its unchanged source. The state keeps
    /// the mount source's settings.
    pub fn mount(&self, target: &str) -> Option<State> {
        let (position, mount) = self.op.mounts.iter().enumerate().find(|(_, m)| m.target == target)?;
        let MountKind::Bind { source, readonly, .. } = &mount.kind else { return None };
        if *readonly {
            // Nothing can change a read-only mount: it is its source (as in Go).
            return Some(State::clone(source));
        }
        let index = self.op.output_index(position)?;
        let vertex: Arc<dyn Vertex> = self.op.clone();
        Some(source.with_output(Some(Output::new(vertex, index))))
    }
}

impl From<ExecState> for State {
    fn from(exec: ExecState) -> State {
        exec.root
    }
}

/// An exec op with everything it reads from its base state resolved.
#[derive(Debug)]
pub(crate) struct ExecOp {
    meta: pb::Meta,
    /// Sorted by target; the root mount (`/`) is among them.
    mounts: Vec<Mount>,
    network: pb::NetMode,
    security: pb::SecurityMode,
    secrets: Vec<Secret>,
    /// With their default targets filled in.
    ssh: Vec<SshSocket>,
    /// The base state's platform, if it set one.
    platform: Option<pb::Platform>,
    options: OpOptions,
}

impl ExecOp {
    pub(crate) fn build(base: &State, run: Run) -> ExecState {
        let mut env = (*base.env).clone();
        for (key, value) in run.env {
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        let mut ssh = run.ssh;
        for (i, socket) in ssh.iter_mut().enumerate() {
            if socket.target.is_empty() {
                socket.target = format!("/run/buildkit/ssh_agent.{i}");
            }
        }
        // Go points SSH_AUTH_SOCK at the first socket unless it is set.
        if let Some(first) = ssh.first() {
            if !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
                env.push(("SSH_AUTH_SOCK".to_owned(), first.target.clone()));
            }
        }
        let cwd = match &run.cwd {
            Some(dir) if dir.starts_with('/') => path::clean(dir),
            Some(dir) => path::join(&[&base.dir, dir]),
            None => base.dir.clone(),
        };
        let meta = pb::Meta {
            args: run.args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
            user: run.user.unwrap_or_else(|| base.user.clone()),
            hostname: run.hostname,
            cgroup_parent: run.cgroup_parent,
            // Go always asks the daemon to clean up mount stubs recursively.
            remove_mount_stubs_recursive: true,
            valid_exit_codes: run.valid_exit_codes,
            extra_hosts: run
                .extra_hosts
                .into_iter()
                .map(|(host, ip)| pb::HostIp { host, ip: go_ip_string(ip) })
                .collect(),
            ulimit: run.ulimits,
            proxy_env: run.proxy_env.map(|p| pb::ProxyEnv {
                http_proxy: p.http_proxy,
                https_proxy: p.https_proxy,
                ftp_proxy: p.ftp_proxy,
                no_proxy: p.no_proxy,
                all_proxy: p.all_proxy,
            }),
        };
        let root = Mount::new(
            "/",
            MountKind::Bind { source: Box::new(base.clone()), readonly: run.readonly_root, selector: String::new() },
        );
        let mut mounts = vec![root];
        mounts.extend(run.mounts);
        // Stable, so two mounts at one target keep their order.
        mounts.sort_by(|a, b| a.target.cmp(&b.target));
        let op = Arc::new(ExecOp {
            meta,
            mounts,
            network: run.network,
            security: run.security,
            secrets: run.secrets,
            ssh,
            platform: base.platform.clone(),
            options: run.options,
        });
        let root_output = if run.readonly_root {
            base.output.clone()
        } else {
            let position = op.mounts.iter().position(|m| m.target == "/").expect("the root mount is there");
            let vertex: Arc<dyn Vertex> = op.clone();
            Some(Output::new(vertex, op.output_index(position).expect("a writable root has an output")))
        };
        ExecState { root: base.with_output(root_output), op }
    }

    /// Output index of the mount at `position`: its rank among the mounts
    /// that have outputs.
    fn output_index(&self, position: usize) -> Option<i64> {
        if !self.mounts[position].has_output() {
            return None;
        }
        Some(self.mounts[..position].iter().filter(|m| m.has_output()).count() as i64)
    }

    /// The capabilities Go's `ExecOp.Marshal` adds for what this op uses.
    fn caps(&self) -> Vec<&'static str> {
        let mut caps = vec!["exec.meta.base"];
        if !self.meta.valid_exit_codes.is_empty() {
            caps.push("exec.validexitcode");
        }
        if !self.meta.ulimit.is_empty() {
            caps.push("exec.meta.ulimit");
        }
        if self.options.linux_resources.is_some() {
            caps.push("exec.meta.linux.resources");
        }
        if self.network != pb::NetMode::Unset {
            caps.push("exec.meta.network");
        }
        if self.security == pb::SecurityMode::Insecure {
            caps.push("exec.meta.security");
        }
        if self.meta.proxy_env.is_some() {
            caps.push("exec.meta.proxyenv");
        }
        for mount in &self.mounts {
            match &mount.kind {
                MountKind::Bind { source, selector, .. } => {
                    if !selector.is_empty() {
                        caps.push("exec.mount.selector");
                    }
                    if source.output.is_some() {
                        caps.push("exec.mount.bind");
                    }
                }
                MountKind::Cache { selector, .. } => {
                    if !selector.is_empty() {
                        caps.push("exec.mount.selector");
                    }
                    caps.extend(["exec.mount.cache", "exec.mount.cache.sharing"])
                }
                MountKind::Tmpfs { size } => {
                    caps.push("exec.mount.tmpfs");
                    if *size > 0 {
                        caps.push("exec.mount.tmpfs.size");
                    }
                }
                // Never among `mounts` (see `Run::mount`).
                MountKind::Secret(_) | MountKind::Ssh(_) => {}
            }
        }
        if !self.secrets.is_empty() {
            // Also for secrets only used as env vars, as in Go.
            caps.push("exec.mount.secret");
            if self.secrets.iter().any(|s| matches!(s, Secret::Env(_))) {
                caps.push("exec.secretenv");
            }
        }
        if !self.ssh.is_empty() {
            caps.push("exec.mount.ssh");
        }
        caps
    }
}

/// Go's `net.IP.String`: an IPv4-mapped IPv6 address prints as IPv4 (Go
/// keeps every IPv4 address in that form); the rest as RFC 5952, which
/// Rust's formatting follows too.
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

impl Vertex for ExecOp {
    /// Mount sources in target order, each once.
    fn inputs(&self) -> Vec<Output> {
        let mut outputs: Vec<Output> = Vec::new();
        for source in self.mounts.iter().filter_map(Mount::source) {
            if !outputs.iter().any(|seen| seen.same_as(source)) {
                outputs.push(source.clone());
            }
        }
        outputs
    }

    fn location(&self) -> Option<&Location> {
        self.options.location.as_ref()
    }

    fn take_inputs(&mut self) -> Vec<Output> {
        let mut taken = Vec::new();
        for mount in &mut self.mounts {
            match &mut mount.kind {
                MountKind::Bind { source, .. } => taken.extend(source.output.take()),
                MountKind::Cache { base: Some(base), .. } => taken.extend(base.output.take()),
                _ => {}
            }
        }
        taken
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        if self.meta.args.is_empty() {
            return Err(MarshalError::NoArgs);
        }
        let mut op = marshaller.base_op(self.platform.as_ref());
        let mut mounts = Vec::with_capacity(self.mounts.len() + self.secrets.len() + self.ssh.len());
        let mut next_output = 0;
        for mount in &self.mounts {
            // Equal edges share one input, as in Go.
            let input = match mount.source() {
                Some(source) => {
                    let input = marshaller.input(source)?;
                    match op.inputs.iter().position(|seen| *seen == input) {
                        Some(index) => index as i64,
                        None => {
                            op.inputs.push(input);
                            op.inputs.len() as i64 - 1
                        }
                    }
                }
                None => -1,
            };
            let output = if mount.has_output() {
                next_output += 1;
                next_output - 1
            } else {
                -1
            };
            let mut pb_mount = pb::Mount { input, dest: mount.target.clone(), output, ..Default::default() };
            match &mount.kind {
                MountKind::Bind { readonly, selector, .. } => {
                    pb_mount.readonly = *readonly;
                    pb_mount.selector = selector.clone();
                }
                MountKind::Cache { id, sharing, selector, readonly, .. } => {
                    pb_mount.selector = selector.clone();
                    pb_mount.readonly = *readonly;
                    if id.is_empty() {
                        return Err(MarshalError::InvalidMount {
                            target: mount.target.clone(),
                            reason: "a cache mount needs an id",
                        });
                    }
                    pb_mount.mount_type = pb::MountType::Cache as i32;
                    pb_mount.cache_opt = Some(pb::CacheOpt { id: id.clone(), sharing: *sharing as i32 });
                }
                MountKind::Tmpfs { size } => {
                    pb_mount.mount_type = pb::MountType::Tmpfs as i32;
                    pb_mount.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                }
                MountKind::Secret(_) | MountKind::Ssh(_) => unreachable!("kept apart by Run::mount"),
            }
            mounts.push(pb_mount);
        }
        // Secret and SSH mounts: after the others, unsorted, no input, and
        // (as Go leaves the field unset) output 0, which the daemon ignores
        // for these mount types.
        let mut secret_env = Vec::new();
        for secret in &self.secrets {
            match secret {
                Secret::Env(env) => secret_env.push(env.clone()),
                Secret::File { target, opt } => mounts.push(pb::Mount {
                    input: -1,
                    dest: target.clone(),
                    mount_type: pb::MountType::Secret as i32,
                    secret_opt: Some(opt.clone()),
                    ..Default::default()
                }),
            }
        }
        for socket in &self.ssh {
            mounts.push(pb::Mount {
                input: -1,
                dest: socket.target.clone(),
                mount_type: pb::MountType::Ssh as i32,
                ssh_opt: Some(socket.opt.clone()),
                ..Default::default()
            });
        }
        op.op = Some(pb::op::Op::Exec(pb::ExecOp {
            meta: Some(self.meta.clone()),
            mounts,
            network: self.network as i32,
            security: self.security as i32,
            secretenv: secret_env,
            ..Default::default()
        }));
        Ok((op, self.options.metadata(&self.caps())))
    }
}
