//! [`State`], the value every LLB builder method takes and returns, and the
//! [`Vertex`] trait each op kind implements.
//!
//! Go's `State` is a chain of lazily evaluated key/value closures; here the
//! few values ops read (directory, environment, user, platform) are plain
//! fields, resolved when the state is built. The graph itself is shared:
//! a state holds an [`Output`] (an op behind an `Arc` and which of its outputs
//! it is), so cloning a state never copies the graph.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::proto::pb;

use super::exec::{ExecOp, ExecState, Run};
use super::fileop::{FileAction, FileOp};
use super::marshal::Marshaller;
use super::path;
use super::MarshalError;

/// One op kind (source, file, exec): what it reads and how it encodes.
pub(crate) trait Vertex: fmt::Debug + Send + Sync {
    /// The outputs this op reads, in the order Go's marshaller visits them
    /// (which decides the order of ops in the definition).
    fn inputs(&self) -> Vec<Output>;

    /// The op and its metadata. Input digests come from `marshaller`, which
    /// encodes each input op once.
    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError>;

    /// Where in a source file the op comes from (its [`OpOptions`]'s).
    fn location(&self) -> Option<&Location>;

    /// Moves the outputs this op holds out of it (leaving it unusable), so
    /// that they are freed one after the other rather than inside this
    /// op's own drop (see [`Output`]'s `Drop`). Sources hold none.
    fn take_inputs(&mut self) -> Vec<Output> {
        Vec::new()
    }
}

/// One output of an op: what a state's filesystem is.
#[derive(Clone)]
pub(crate) struct Output {
    pub(crate) vertex: Arc<dyn Vertex>,
    /// Which of the op's outputs (exec ops have one per writable mount).
    pub(crate) index: i64,
}

impl Output {
    pub(crate) fn new(vertex: Arc<dyn Vertex>, index: i64) -> Self {
        Output { vertex, index }
    }

    /// Identity of the op object (not its content): two `image("busybox")`
    /// calls are two vertices that happen to encode alike.
    pub(crate) fn vertex_id(&self) -> usize {
        Arc::as_ptr(&self.vertex).cast::<()>() as usize
    }

    pub(crate) fn same_as(&self, other: &Output) -> bool {
        self.vertex_id() == other.vertex_id() && self.index == other.index
    }
}

thread_local! {
    /// Outputs whose ops are waiting to be freed by the drop that is
    /// running on this thread; `None` when no drop is running.
    static PENDING_DROPS: std::cell::RefCell<Option<Vec<Output>>> = const { std::cell::RefCell::new(None) };
}

/// Freeing a graph without recursion: a chain of 10,000 steps (a Dockerfile
/// of 10,000 `RUN` lines) would otherwise free each op inside the drop of
/// the one that reads it, 10,000 nested drops deep, beyond a thread's stack.
/// The last reference to an op takes the op's inputs out of it; the
/// outermost such drop on the thread frees them in a loop, and drops that
/// happen inside it hand theirs to the same loop.
impl Drop for Output {
    fn drop(&mut self) {
        let Some(vertex) = Arc::get_mut(&mut self.vertex) else { return };
        let inputs = vertex.take_inputs();
        if inputs.is_empty() {
            return;
        }
        let handed = PENDING_DROPS.try_with(|pending| match pending.borrow_mut().as_mut() {
            Some(queue) => {
                queue.extend(inputs);
                None
            }
            None => Some(inputs),
        });
        // `Err`: the thread is exiting; the inputs are freed as usual.
        let Ok(Some(inputs)) = handed else { return };
        let _ = PENDING_DROPS.try_with(|pending| *pending.borrow_mut() = Some(inputs));
        while let Some(next) = PENDING_DROPS.try_with(|p| p.borrow_mut().as_mut().and_then(Vec::pop)).ok().flatten() {
            drop(next);
        }
        let _ = PENDING_DROPS.try_with(|pending| *pending.borrow_mut() = None);
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").field("vertex", &self.vertex).field("index", &self.index).finish()
    }
}

/// Per-op settings that do not change what the op does, only how the daemon
/// shows, groups and caches it, and where in a source file it came from
/// (Go's `WithCustomName`, `WithDescription`, `IgnoreCache`, `ProgressGroup`
/// and `SourceMap.Location`). None of it is part of the op's bytes, so none
/// of it changes the op's digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpOptions {
    /// The name progress output shows for the op instead of its command.
    pub custom_name: Option<String>,
    /// Run the op even when its result is cached (`--no-cache` for one step).
    pub ignore_cache: bool,
    /// Extra `OpMetadata.description` entries (the Dockerfile frontend puts
    /// the instruction there as `com.docker.dockerfile.v1.command`).
    /// `custom_name` is written after these, so it wins for `llb.customname`.
    pub description: BTreeMap<String, String>,
    /// The heading progress output groups the op under.
    pub progress_group: Option<ProgressGroup>,
    /// The part of a source file (a Dockerfile) the op was built from; the
    /// daemon points errors there.
    pub location: Option<Location>,
    /// Cgroup limits for the op (Go's `WithLinuxResources`); in the
    /// metadata, so they do not change its cache key.
    pub linux_resources: Option<pb::LinuxResources>,
}

/// A heading that groups ops in progress output (Go's `llb.ProgressGroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressGroup {
    /// Ops with the same id share a group.
    pub id: String,
    /// What the heading says.
    pub name: String,
    /// A weak group is only shown when an op of it is shown anyway.
    pub weak: bool,
}

/// A source file ops can point into (Go's `llb.NewSourceMap` with no state):
/// the definition carries it once, however many ops point into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// The file's name as the user knows it (`Dockerfile`).
    pub filename: String,
    /// Its language, by linguist's names (`Dockerfile`).
    pub language: String,
    /// The file's contents, for the daemon to quote in errors.
    pub data: Vec<u8>,
}

impl SourceMap {
    /// A source map of `data`, shared by the ops that point into it.
    pub fn new(filename: impl Into<String>, language: impl Into<String>, data: impl Into<Vec<u8>>) -> Arc<Self> {
        Arc::new(SourceMap { filename: filename.into(), language: language.into(), data: data.into() })
    }

    /// A location in this file (Go's `SourceMap.Location`).
    pub fn location(self: &Arc<Self>, ranges: Vec<pb::Range>) -> Location {
        Location { source: self.clone(), ranges }
    }
}

/// Where in a [`SourceMap`] an op comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub source: Arc<SourceMap>,
    /// The lines and columns, as the daemon's `pb.Range` counts them.
    pub ranges: Vec<pb::Range>,
}

impl OpOptions {
    /// Options that only name the op in progress output.
    pub fn named(name: impl Into<String>) -> Self {
        OpOptions { custom_name: Some(name.into()), ..Default::default() }
    }

    /// The op's metadata with these options applied; `caps` are the
    /// capabilities the op itself needs.
    pub(crate) fn metadata(&self, caps: &[&str]) -> pb::OpMetadata {
        let mut metadata = pb::OpMetadata {
            ignore_cache: self.ignore_cache,
            caps: caps.iter().map(|cap| ((*cap).to_owned(), true)).collect(),
            progress_group: self.progress_group.as_ref().map(|group| pb::ProgressGroup {
                id: group.id.clone(),
                name: group.name.clone(),
                weak: group.weak,
            }),
            description: self.description.clone(),
            linux_resources: self.linux_resources.clone(),
            ..Default::default()
        };
        if let Some(name) = &self.custom_name {
            metadata.description.insert("llb.customname".to_owned(), name.clone());
        }
        metadata
    }
}

/// A filesystem and the settings later ops inherit. Immutable: every method
/// returns a new state.
#[derive(Clone, Debug)]
pub struct State {
    pub(crate) output: Option<Output>,
    pub(crate) dir: String,
    /// In Go's `EnvList` order: by when each key was last set.
    /// Shared between states until one changes it: every op keeps the state
    /// it was built on, and copying a large environment into each of
    /// 10,000 steps would cost its size 10,000 times.
    pub(crate) env: Arc<Vec<(String, String)>>,
    pub(crate) user: String,
    /// Set by image options or [`State::platform`]; ops without one use the
    /// marshal-time default.
    pub(crate) platform: Option<pb::Platform>,
}

impl State {
    /// A state for `output` with Go's `NewState` defaults (working directory `/`).
    pub(crate) fn from_output(output: Option<Output>) -> Self {
        State { output, dir: "/".to_owned(), env: Arc::default(), user: String::new(), platform: None }
    }

    /// This state's settings (directory, environment, user, platform) on
    /// `other`'s filesystem (Go's `s.WithOutput(other.Output())`).
    pub fn with_output_of(&self, other: &State) -> State {
        self.with_output(other.output.clone())
    }

    /// The same settings on another filesystem (Go's `WithOutput`).
    pub(crate) fn with_output(&self, output: Option<Output>) -> Self {
        State { output, ..self.clone() }
    }

    /// Whether this is the empty filesystem ([`scratch`](super::scratch)).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The working directory for later ops; a relative `dir` is taken from
    /// the current one.
    pub fn dir(&self, dir: &str) -> State {
        let dir = if dir.starts_with('/') { path::clean(dir) } else { path::join(&[&self.dir, dir]) };
        State { dir, ..self.clone() }
    }

    /// The current working directory.
    pub fn get_dir(&self) -> &str {
        &self.dir
    }

    /// Sets an environment variable for later exec ops; a key set again moves
    /// to the end, as in Go's `EnvList`.
    pub fn add_env(&self, key: &str, value: &str) -> State {
        let mut state = self.clone();
        let env = Arc::make_mut(&mut state.env);
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
        state
    }

    /// [`State::add_env`] for each pair in order, with one copy of the state.
    pub fn add_envs<'e>(&self, pairs: impl IntoIterator<Item = (&'e str, &'e str)>) -> State {
        let mut state = self.clone();
        let env = Arc::make_mut(&mut state.env);
        for (key, value) in pairs {
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value.to_owned()));
        }
        state
    }

    /// Removes an environment variable.
    pub fn del_env(&self, key: &str) -> State {
        let mut state = self.clone();
        Arc::make_mut(&mut state.env).retain(|(k, _)| k != key);
        state
    }

    /// The value of an environment variable, if set.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The environment as `KEY=value` strings, in the order exec ops get it.
    pub fn env_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The user later exec ops run as (`name`, `uid`, `uid:gid`, ...).
    pub fn user(&self, user: &str) -> State {
        State { user: user.to_owned(), ..self.clone() }
    }

    /// The platform later exec and file ops are built for.
    pub fn platform(&self, platform: pb::Platform) -> State {
        State { platform: Some(normalize_platform(platform)), ..self.clone() }
    }

    /// The platform set on this state, if any.
    pub fn get_platform(&self) -> Option<&pb::Platform> {
        self.platform.as_ref()
    }

    /// Applies file actions to this filesystem (Go's `State.File`).
    pub fn file(&self, action: FileAction) -> State {
        self.file_with(action, OpOptions::default())
    }

    /// [`State::file`] with a progress name or cache setting for the op.
    pub fn file_with(&self, action: FileAction, options: OpOptions) -> State {
        let op = Arc::new(FileOp::new(self.clone(), action, options));
        self.with_output(Some(Output::new(op, 0)))
    }

    /// Runs a command with this state as the root filesystem (Go's
    /// `State.Run`). Its environment, directory and user come from this state
    /// unless `run` overrides them.
    pub fn run(&self, run: Run) -> ExecState {
        ExecOp::build(self, run)
    }
}

/// containerd's `platforms.Normalize`, which Go's `client/llb` applies to
/// every platform it is given: lowercase names, canonical architectures, and
/// no variant where the architecture implies it.
pub(crate) fn normalize_platform(mut platform: pb::Platform) -> pb::Platform {
    platform.os = match platform.os.to_lowercase().as_str() {
        "" => "linux".to_owned(),
        "macos" => "darwin".to_owned(),
        os => os.to_owned(),
    };
    let arch = platform.architecture.to_lowercase();
    let variant = platform.variant.to_lowercase();
    let (arch, variant) = match arch.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_owned(), if variant == "v1" { String::new() } else { variant }),
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_owned(), variant)
        }
        _ => (arch, variant),
    };
    platform.architecture = arch;
    platform.variant = variant;
    platform.os_features.sort();
    platform.os_features.dedup();
    platform
}

/// The platform ops get when nothing sets one: the client machine's, as Go's
/// `platforms.DefaultSpec()` reports it (Linux, with Go's architecture names).
pub fn default_platform() -> pb::Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    let variant = if architecture == "arm" { "v7" } else { "" };
    pb::Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        variant: variant.to_owned(),
        ..Default::default()
    }
}

/// A filesystem that ops can read before it is known (Go's
/// `mutableOutput`): [`Deferred::new`] gives a state to build on now, and
/// [`Deferred::set`] says, before the graph is marshalled, which source it
/// is. The Dockerfile compiler needs this for the build context, whose
/// `followpaths` are known only once every stage has been compiled.
#[derive(Debug, Clone)]
pub struct Deferred {
    slot: Arc<std::sync::OnceLock<Output>>,
}

impl Deferred {
    /// The handle, and the state that stands for the filesystem.
    pub fn new() -> (Deferred, State) {
        let slot = Arc::new(std::sync::OnceLock::new());
        let vertex = DeferredVertex { slot: slot.clone() };
        (Deferred { slot }, State::from_output(Some(Output::new(Arc::new(vertex), 0))))
    }

    /// Makes the deferred filesystem `state`'s, which must be an op's first
    /// output (a source, say). Only the first call counts.
    pub fn set(&self, state: &State) -> Result<(), MarshalError> {
        match &state.output {
            Some(output) if output.index == 0 => {
                let _ = self.slot.set(output.clone());
                Ok(())
            }
            _ => Err(MarshalError::Deferred("only an op's first output can fill a deferred state")),
        }
    }
}

/// The op a [`Deferred`] stands for, once set.
#[derive(Debug)]
struct DeferredVertex {
    slot: Arc<std::sync::OnceLock<Output>>,
}

impl Vertex for DeferredVertex {
    fn inputs(&self) -> Vec<Output> {
        self.slot.get().map(|output| output.vertex.inputs()).unwrap_or_default()
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        match self.slot.get() {
            Some(output) => output.vertex.to_op(marshaller),
            None => Err(MarshalError::Deferred("a deferred state was never set")),
        }
    }

    fn location(&self) -> Option<&Location> {
        self.slot.get().and_then(|output| output.vertex.location())
    }

    fn take_inputs(&mut self) -> Vec<Output> {
        Arc::get_mut(&mut self.slot).and_then(std::sync::OnceLock::take).into_iter().collect()
    }
}
