//! File ops: mkdir, mkfile, copy and rm on a filesystem, done by the daemon
//! without running a container (Go's `fileop.go`).
//!
//! A [`FileAction`] is a list of actions applied in order to the state
//! [`State::file`] is called on; each action sees the previous one's result,
//! and only the last result is the op's output. Relative paths are taken from
//! that state's working directory (and a copy's source path from the source
//! state's), at the time the op is built.

use crate::proto::pb;

use super::marshal::Marshaller;
use super::path;
use super::state::{Location, OpOptions, Output, State, Vertex};
use super::MarshalError;

/// A user or group, by id or by name (names are looked up in the
/// filesystem the action writes to).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserOpt {
    /// A numeric uid or gid.
    Id(u32),
    /// A name from the target filesystem's `/etc/passwd` or `/etc/group`.
    Name(String),
}

/// Ownership for created or copied files (Go's `ChownOpt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chown {
    /// The owner; `None` keeps the default (root, or the source's for copies).
    pub user: Option<UserOpt>,
    /// The group; `None` keeps the default.
    pub group: Option<UserOpt>,
}

impl Chown {
    /// Numeric owner and group.
    pub fn ids(uid: u32, gid: u32) -> Self {
        Chown { user: Some(UserOpt::Id(uid)), group: Some(UserOpt::Id(gid)) }
    }

    /// `user[:group]` as Dockerfile's `--chown` writes it (Go's `WithUser`):
    /// 32-bit numbers (and `root`) are ids, anything else a name, which the
    /// daemon looks up in the filesystem the action writes to (its
    /// `/etc/passwd` and `/etc/group`).
    pub fn parse(spec: &str) -> Self {
        let one = |part: &str| match part {
            "root" => UserOpt::Id(0),
            part => part.parse::<i32>().map_or_else(|_| UserOpt::Name(part.to_owned()), |id| UserOpt::Id(id as u32)),
        };
        let mut parts = spec.splitn(2, ':');
        Chown { user: parts.next().map(one), group: parts.next().map(one) }
    }

    fn to_pb(&self, base: i64) -> pb::ChownOpt {
        // An empty name is uid 0 in Go (`WithUser(":1000")` gives that).
        let user = |opt: &UserOpt| pb::UserOpt {
            user: Some(match opt {
                UserOpt::Name(name) if !name.is_empty() => {
                    pb::user_opt::User::ByName(pb::NamedUserOpt { name: name.clone(), input: base })
                }
                UserOpt::Name(_) => pb::user_opt::User::ById(0),
                UserOpt::Id(id) => pb::user_opt::User::ById(*id),
            }),
        };
        pb::ChownOpt { user: self.user.as_ref().map(user), group: self.group.as_ref().map(user) }
    }
}

/// Creates a directory (Go's `Mkdir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkdir {
    /// Where; relative to the working directory of the state the op runs on.
    pub path: String,
    /// Permission bits (the file type bits are dropped).
    pub mode: u32,
    /// Create missing parents too (`mkdir -p`).
    pub make_parents: bool,
    /// Owner of the directory (and of parents it creates).
    pub owner: Option<Chown>,
    /// Modification time, in nanoseconds since the epoch; default: when the op runs.
    pub created: Option<i64>,
}

impl Mkdir {
    /// A directory at `path` with permissions `mode`.
    pub fn new(path: impl Into<String>, mode: u32) -> Self {
        Mkdir { path: path.into(), mode, make_parents: false, owner: None, created: None }
    }

    /// Also create missing parents.
    pub fn make_parents(mut self, make_parents: bool) -> Self {
        self.make_parents = make_parents;
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: Chown) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Sets the owner from `user[:group]` (see [`Chown::parse`]).
    pub fn user(self, spec: &str) -> Self {
        self.owner(Chown::parse(spec))
    }

    /// Sets the modification time, in nanoseconds since the epoch (Go's
    /// `WithCreatedTime`).
    pub fn created(mut self, nanos: i64) -> Self {
        self.created = Some(nanos);
        self
    }
}

/// Creates a file with the given contents (Go's `Mkfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkfile {
    /// Where; relative to the working directory of the state the op runs on.
    pub path: String,
    /// Permission bits (the file type bits are dropped).
    pub mode: u32,
    /// The file's contents.
    pub data: Vec<u8>,
    /// Owner of the file.
    pub owner: Option<Chown>,
    /// Modification time, in nanoseconds since the epoch; default: when the op runs.
    pub created: Option<i64>,
}

impl Mkfile {
    /// A file at `path` with permissions `mode` holding `data`.
    pub fn new(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Mkfile { path: path.into(), mode, data: data.into(), owner: None, created: None }
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: Chown) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Sets the owner from `user[:group]` (see [`Chown::parse`]).
    pub fn user(self, spec: &str) -> Self {
        self.owner(Chown::parse(spec))
    }

    /// Sets the modification time, in nanoseconds since the epoch.
    pub fn created(mut self, nanos: i64) -> Self {
        self.created = Some(nanos);
        self
    }
}

/// Removes a path (Go's `Rm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rm {
    /// What; relative to the working directory of the state the op runs on.
    pub path: String,
    /// Succeed when there is nothing at `path`.
    pub allow_not_found: bool,
    /// Treat `path` as a glob.
    pub allow_wildcard: bool,
}

impl Rm {
    /// Removes `path`, which must exist.
    pub fn new(path: impl Into<String>) -> Self {
        Rm { path: path.into(), allow_not_found: false, allow_wildcard: false }
    }

    /// Succeed when there is nothing to remove.
    pub fn allow_not_found(mut self, allow: bool) -> Self {
        self.allow_not_found = allow;
        self
    }
}

/// Copies a path from another state's filesystem (Go's `Copy`).
#[derive(Debug, Clone)]
pub struct Copy {
    /// The filesystem to copy from.
    pub source: State,
    /// The path in `source`; relative to `source`'s working directory.
    pub src: String,
    /// Where to; relative to the working directory of the state the op runs
    /// on. A trailing `/` means "into this directory".
    pub dest: String,
    /// Permission bits for the copied files; default: keep the source's.
    pub mode: Option<u32>,
    /// Symbolic permissions (`u+x`, `go-w`), as `chmod` takes them (Go's
    /// `ChmodOpt.ModeStr`); when set, `mode` is not sent, as in Go.
    pub mode_str: Option<String>,
    /// Paths below `src` that must exist, or the copy fails.
    pub required_paths: Vec<String>,
    /// Owner of the copied files; default: root.
    pub owner: Option<Chown>,
    /// Copy what a symlink at `src` points to rather than the link.
    pub follow_symlinks: bool,
    /// Copy a directory's contents rather than the directory itself.
    pub dir_contents_only: bool,
    /// Unpack archives (Dockerfile `ADD`).
    pub attempt_unpack: bool,
    /// Create missing parents of the destination.
    pub create_dest_path: bool,
    /// Treat `src` as a glob.
    pub allow_wildcard: bool,
    /// With `allow_wildcard`, succeed when the glob matches nothing.
    pub allow_empty_wildcard: bool,
    /// Copy only paths below `src` matching these patterns.
    pub include_patterns: Vec<String>,
    /// Leave out paths below `src` matching these patterns.
    pub exclude_patterns: Vec<String>,
    /// Modification time, in nanoseconds since the epoch; default: the source's.
    pub created: Option<i64>,
}

impl Copy {
    /// Copies `src` of `source` to `dest`.
    pub fn new(source: &State, src: impl Into<String>, dest: impl Into<String>) -> Self {
        Copy {
            source: source.clone(),
            src: src.into(),
            dest: dest.into(),
            mode: None,
            mode_str: None,
            required_paths: Vec::new(),
            owner: None,
            follow_symlinks: false,
            dir_contents_only: false,
            attempt_unpack: false,
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            created: None,
        }
    }

    /// Create missing parents of the destination.
    pub fn create_dest_path(mut self, create: bool) -> Self {
        self.create_dest_path = create;
        self
    }

    /// Copy a directory's contents rather than the directory.
    pub fn dir_contents_only(mut self, only: bool) -> Self {
        self.dir_contents_only = only;
        self
    }

    /// Treat `src` as a glob.
    pub fn allow_wildcard(mut self, allow: bool) -> Self {
        self.allow_wildcard = allow;
        self
    }

    /// Copy what a symlink at `src` points to.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: Chown) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Permission bits for the copied files.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Symbolic permissions for the copied files (`u+x`).
    pub fn mode_str(mut self, mode: &str) -> Self {
        self.mode_str = Some(mode.to_owned());
        self
    }

    /// Sets the owner from `user[:group]` (see [`Chown::parse`]).
    pub fn user(self, spec: &str) -> Self {
        self.owner(Chown::parse(spec))
    }

    /// Sets the modification time of the copied files, in nanoseconds since
    /// the epoch (Go's `WithCreatedTime`).
    pub fn created(mut self, nanos: i64) -> Self {
        self.created = Some(nanos);
        self
    }
}

/// One file action.
#[derive(Debug, Clone)]
enum Action {
    Mkdir(Mkdir),
    Mkfile(Mkfile),
    Rm(Rm),
    Copy(Box<Copy>),
}

impl From<Mkdir> for Action {
    fn from(action: Mkdir) -> Self {
        Action::Mkdir(action)
    }
}

impl From<Mkfile> for Action {
    fn from(action: Mkfile) -> Self {
        Action::Mkfile(action)
    }
}

impl From<Rm> for Action {
    fn from(action: Rm) -> Self {
        Action::Rm(action)
    }
}

impl From<Copy> for Action {
    fn from(action: Copy) -> Self {
        Action::Copy(Box::new(action))
    }
}

/// File actions applied in order; pass it to [`State::file`].
#[derive(Debug, Clone)]
pub struct FileAction {
    actions: Vec<Action>,
}

macro_rules! one_action {
    ($($kind:ident),*) => {$(
        impl From<$kind> for FileAction {
            fn from(action: $kind) -> Self {
                FileAction { actions: vec![action.into()] }
            }
        }
    )*};
}
one_action!(Mkdir, Mkfile, Rm, Copy);

impl FileAction {
    /// This action list followed by `next`'s: a [`Mkdir`], [`Mkfile`],
    /// [`Rm`] or [`Copy`](struct@Copy) with its options set, or another list.
    pub fn then(mut self, next: impl Into<FileAction>) -> Self {
        self.actions.extend(next.into().actions);
        self
    }

    /// Then a directory.
    pub fn mkdir(self, path: &str, mode: u32) -> Self {
        self.then(Mkdir::new(path, mode))
    }

    /// Then a file.
    pub fn mkfile(self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        self.then(Mkfile::new(path, mode, data))
    }

    /// Then a copy from `source`.
    pub fn copy(self, source: &State, src: &str, dest: &str) -> Self {
        self.then(Copy::new(source, src, dest))
    }

    /// Then a removal.
    pub fn rm(self, path: &str) -> Self {
        self.then(Rm::new(path))
    }
}

/// Creates a directory (see [`Mkdir`] for options).
pub fn mkdir(path: &str, mode: u32) -> FileAction {
    Mkdir::new(path, mode).into()
}

/// Creates a file with `data` (see [`Mkfile`] for options).
pub fn mkfile(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> FileAction {
    Mkfile::new(path, mode, data).into()
}

/// Copies `src` of `source` to `dest` (see [`Copy`](struct@Copy) for options).
pub fn copy(source: &State, src: &str, dest: &str) -> FileAction {
    Copy::new(source, src, dest).into()
}

/// Removes `path` (see [`Rm`] for options).
pub fn rm(path: &str) -> FileAction {
    Rm::new(path).into()
}

/// Go's `-1` for "no timestamp given".
fn timestamp(created: Option<i64>) -> i64 {
    created.unwrap_or(-1)
}

/// A file op: the actions bound to the state they apply to.
#[derive(Debug)]
pub(crate) struct FileOp {
    base: State,
    actions: Vec<Action>,
    options: OpOptions,
}

impl FileOp {
    pub(crate) fn new(base: State, action: FileAction, options: OpOptions) -> Self {
        FileOp { base, actions: action.actions, options }
    }

    fn to_proto_action(&self, action: &Action, base: i64) -> pb::file_action::Action {
        let dir = &self.base.dir;
        match action {
            Action::Mkdir(a) => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                path: path::absolute(dir, &a.path, false),
                mode: (a.mode & 0o777) as i32,
                make_parents: a.make_parents,
                owner: a.owner.as_ref().map(|o| o.to_pb(base)),
                timestamp: timestamp(a.created),
            }),
            Action::Mkfile(a) => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                path: path::absolute(dir, &a.path, false),
                mode: (a.mode & 0o777) as i32,
                data: a.data.clone().into(),
                owner: a.owner.as_ref().map(|o| o.to_pb(base)),
                timestamp: timestamp(a.created),
            }),
            Action::Rm(a) => pb::file_action::Action::Rm(pb::FileActionRm {
                path: path::absolute(dir, &a.path, false),
                allow_not_found: a.allow_not_found,
                allow_wildcard: a.allow_wildcard,
            }),
            Action::Copy(a) => {
                let src = path::clean(&a.src);
                // The source path is relative to the *source* state's directory.
                let src = if src.starts_with('/') { src } else { path::join(&[&a.source.dir, &src]) };
                // A symbolic mode replaces the numeric one, which Go then
                // leaves at 0 (not -1).
                let (mode, mode_str) = match (&a.mode_str, a.mode) {
                    (Some(mode_str), _) if !mode_str.is_empty() => (0, mode_str.clone()),
                    (_, Some(mode)) => (mode as i32, String::new()),
                    // -1 keeps the source's permissions.
                    (_, None) => (-1, String::new()),
                };
                pb::file_action::Action::Copy(pb::FileActionCopy {
                    src,
                    dest: path::absolute(dir, &a.dest, true),
                    owner: a.owner.as_ref().map(|o| o.to_pb(base)),
                    mode,
                    mode_str,
                    required_paths: a.required_paths.clone(),
                    follow_symlink: a.follow_symlinks,
                    dir_copy_contents: a.dir_contents_only,
                    attempt_unpack_docker_compatibility: a.attempt_unpack,
                    create_dest_path: a.create_dest_path,
                    allow_wildcard: a.allow_wildcard,
                    allow_empty_wildcard: a.allow_empty_wildcard,
                    timestamp: timestamp(a.created),
                    include_patterns: a.include_patterns.clone(),
                    exclude_patterns: a.exclude_patterns.clone(),
                    ..Default::default()
                })
            }
        }
    }
}

impl Vertex for FileOp {
    fn location(&self) -> Option<&Location> {
        self.options.location.as_ref()
    }

    fn take_inputs(&mut self) -> Vec<Output> {
        let mut taken: Vec<Output> = self.base.output.take().into_iter().collect();
        for action in &mut self.actions {
            if let Action::Copy(copy) = action {
                taken.extend(copy.source.output.take());
            }
        }
        taken
    }

    /// Go's `FileAction.allOutputs`: the base filesystem, then copy sources
    /// from the last action back to the first.
    fn inputs(&self) -> Vec<Output> {
        let mut outputs: Vec<Output> = Vec::new();
        let mut add = |output: &Option<Output>| {
            if let Some(output) = output {
                if !outputs.iter().any(|seen| seen.same_as(output)) {
                    outputs.push(output.clone());
                }
            }
        };
        add(&self.base.output);
        for action in self.actions.iter().rev() {
            if let Action::Copy(copy) = action {
                add(&copy.source.output);
            }
        }
        outputs
    }

    fn to_op(&self, marshaller: &mut Marshaller) -> Result<(pb::Op, pb::OpMetadata), MarshalError> {
        // Inputs in the order actions first use them, each edge once.
        let mut inputs: Vec<pb::Input> = Vec::new();
        let mut add_input = |marshaller: &mut Marshaller, output: &Output| -> Result<i64, MarshalError> {
            let input = marshaller.input(output)?;
            if let Some(index) = inputs.iter().position(|seen| *seen == input) {
                return Ok(index as i64);
            }
            inputs.push(input);
            Ok(inputs.len() as i64 - 1)
        };
        let base = match &self.base.output {
            Some(output) => add_input(marshaller, output)?,
            None => -1,
        };
        // (input, secondary input) per action. The first action reads the
        // base; later ones read the previous action's result, which Go
        // numbers after all inputs (`len(inputs) + action index`) and so
        // can only be resolved once every input is known.
        enum Edge {
            Input(i64),
            Action(usize),
        }
        let mut edges = Vec::with_capacity(self.actions.len());
        for (i, action) in self.actions.iter().enumerate() {
            let input = if i == 0 { Edge::Input(base) } else { Edge::Action(i - 1) };
            let secondary = match action {
                Action::Copy(copy) => match &copy.source.output {
                    Some(output) => add_input(marshaller, output)?,
                    None => -1,
                },
                _ => -1,
            };
            edges.push((input, secondary));
        }
        let resolve = |edge: &Edge| match edge {
            Edge::Input(index) => *index,
            Edge::Action(action) => (inputs.len() + action) as i64,
        };
        let actions = self
            .actions
            .iter()
            .zip(&edges)
            .enumerate()
            .map(|(i, (action, (input, secondary)))| pb::FileAction {
                input: resolve(input),
                secondary_input: *secondary,
                // Only the last action's result leaves the op.
                output: if i + 1 == self.actions.len() { 0 } else { -1 },
                action: Some(self.to_proto_action(action, base)),
            })
            .collect();

        let mut op = marshaller.base_op(None);
        // A file op does the same on every platform.
        op.platform = None;
        op.inputs = inputs;
        op.op = Some(pb::op::Op::File(pb::FileOp { actions }));
        // Only `file.base`: Go's `FileOp.Marshal` asks each action for its
        // capabilities (`file.copy.includeexcludepatterns`,
        // `file.copy.requiredpaths`, `file.copy.modestring`) before it has
        // collected the actions, so none is ever added, and pinning Go's
        // digests means doing the same.
        Ok((op, self.options.metadata(&["file.base"])))
    }
}

impl State {
    /// Shorthand for `self.file(mkdir(path, mode))`.
    pub fn mkdir(&self, path: &str, mode: u32) -> State {
        self.file(mkdir(path, mode))
    }

    /// Shorthand for `self.file(mkfile(path, mode, data))`.
    pub fn mkfile(&self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> State {
        self.file(mkfile(path, mode, data))
    }
}
