//! Walking a local folder the way fsutil does, producing the `Stat` records
//! the DiffCopy sender streams.
//!
//! Order: depth-first, entries sorted by name (bytewise) within each
//! directory, a directory before its contents, the root itself never listed.
//! Because the sort is per directory, `a/b` comes before `a-b` although
//! `-` sorts before `/` in a plain string comparison.
//!
//! Filtering follows fsutil's `filterFS`: an entry is sent when it matches
//! the include patterns (if any) and does not match the exclude patterns; an
//! excluded directory is not even opened unless an exception (`!pattern`)
//! could match something inside it; a directory that is only walked through
//! is sent lazily, just before the first entry inside it that is sent.
//! `followpaths` name symlinks whose targets are added to the include
//! patterns.
//!
//! Safety: every directory is opened relative to its parent's descriptor
//! with `O_NOFOLLOW`, so a symlink (even one swapped in during the walk)
//! never leads outside the root; symlinks are reported, not followed.
//! `Root::open_file_cached` reads files the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};

use super::patterns::{go_match, MatchInfo, PatternError, PatternMatcher};
use crate::gopath;
use crate::proto::fsutil::types::Stat;

/// Go's `os.FileMode` bits, which `Stat.mode` carries on the wire.
pub mod file_mode {
    /// A directory.
    pub const DIR: u32 = 1 << 31;
    /// A symbolic link.
    pub const SYMLINK: u32 = 1 << 27;
    /// A device file (block, or character when [`CHAR_DEVICE`] is also set).
    pub const DEVICE: u32 = 1 << 26;
    /// A named pipe (FIFO).
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// A Unix domain socket (fsutil clears it before sending).
    pub const SOCKET: u32 = 1 << 24;
    /// The setuid bit.
    pub const SETUID: u32 = 1 << 23;
    /// The setgid bit.
    pub const SETGID: u32 = 1 << 22;
    /// A character device, together with [`DEVICE`].
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// The sticky bit.
    pub const STICKY: u32 = 1 << 20;
    /// A file of unknown type.
    pub const IRREGULAR: u32 = 1 << 19;
    /// All type bits; a mode without any of them is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;
    /// The permission bits.
    pub const PERM: u32 = 0o777;

    /// Converts a Unix `st_mode` into Go's representation (`os.FileMode`).
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut mode = st_mode & PERM;
        mode |= match st_mode & libc::S_IFMT {
            libc::S_IFBLK => DEVICE,
            libc::S_IFCHR => DEVICE | CHAR_DEVICE,
            libc::S_IFDIR => DIR,
            libc::S_IFIFO => NAMED_PIPE,
            libc::S_IFLNK => SYMLINK,
            libc::S_IFSOCK => SOCKET,
            _ => 0,
        };
        if st_mode & libc::S_ISUID != 0 {
            mode |= SETUID;
        }
        if st_mode & libc::S_ISGID != 0 {
            mode |= SETGID;
        }
        if st_mode & libc::S_ISVTX != 0 {
            mode |= STICKY;
        }
        mode
    }

    /// Whether the receiver may ask for this entry's content: regular files
    /// only. Sender and receiver must agree on it, since it decides which
    /// ids are valid.
    pub fn can_request_data(mode: u32) -> bool {
        mode & TYPE == 0
    }
}

/// Errors from opening or walking a local folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// The folder could not be resolved or opened.
    #[error("failed to open local folder {}", path.display())]
    OpenRoot {
        /// The folder as given.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The folder is not a directory.
    #[error("local folder {} is not a directory", path.display())]
    NotADirectory {
        /// The folder as given.
        path: PathBuf,
    },
    /// The include patterns do not parse.
    #[error("invalid include patterns")]
    IncludePatterns(#[source] PatternError),
    /// The exclude patterns do not parse.
    #[error("invalid exclude patterns")]
    ExcludePatterns(#[source] PatternError),
    /// A pattern failed while matching a path.
    #[error("failed to match patterns against {path}")]
    Match {
        /// The path being matched.
        path: String,
        /// The bad pattern.
        #[source]
        source: PatternError,
    },
    /// Reading an entry of the folder failed.
    #[error("failed to read {path}")]
    Io {
        /// The entry, relative to the folder.
        path: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A file name (or symlink target) is not UTF-8, which the wire format
    /// (protobuf strings) cannot carry.
    #[error("cannot send {path:?}: the name is not valid UTF-8")]
    NonUtf8 {
        /// The path, with invalid bytes replaced.
        path: String,
    },
    /// Resolving `followpaths` went through too many symlinks.
    #[error("too many levels of symbolic links resolving {path}")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
}

/// What to send from a folder: fsutil's `FilterOpt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// When non-empty, only paths matching one of these (or below a match).
    pub include_patterns: Vec<String>,
    /// Paths matching these are left out (`!` patterns re-include).
    pub exclude_patterns: Vec<String>,
    /// Symlinks whose targets are added to the include patterns.
    pub follow_paths: Vec<String>,
}

/// An open local folder. All access below it goes through its descriptor.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path` (resolving symlinks in `path` itself, as fsutil does).
    pub fn open(path: &Path) -> Result<Self, WalkError> {
        let open_err = |source| WalkError::OpenRoot { path: path.to_owned(), source };
        let resolved = std::fs::canonicalize(path).map_err(open_err)?;
        let fd = nix::fcntl::open(
            &resolved,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| open_err(e.into()))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| open_err(e.into()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(WalkError::NotADirectory { path: path.to_owned() });
        }
        Ok(Self { fd })
    }

    /// Opens the regular file at `rel` (a clean relative path) for reading,
    /// without following any symlink on the way, reusing the parent directory of the previous
    /// file opened with the same `cache`: files are requested in walk order,
    /// so most share their directory with the one before, and re-opening
    /// every component per file would cost a syscall per level.
    pub(crate) fn open_file_cached(&self, rel: &[u8], cache: &mut DirCache) -> io::Result<File> {
        let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&rel[..slash], &rel[slash + 1..]),
            None => (&b""[..], rel),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let name = OsStr::from_bytes(name);
        let parent = if dir.is_empty() {
            self.fd.as_fd()
        } else {
            if cache.0.as_ref().is_none_or(|(cached, _)| cached.as_slice() != dir) {
                cache.0 = Some((dir.to_owned(), self.open_dir_raw(dir)?));
            }
            match &cache.0 {
                Some((_, fd)) => fd.as_fd(),
                None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
            }
        };
        // O_NONBLOCK: if a FIFO was swapped in, opening must not hang.
        let fd = nix::fcntl::openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )?;
        let st = nix::sys::stat::fstat(&fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::other("not a regular file any more"));
        }
        Ok(File::from(fd))
    }

    /// [`Root::open_dir`] for a path given as bytes (file names need not be
    /// UTF-8).
    fn open_dir_raw(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let mut current: Option<OwnedFd> = None;
        for component in rel.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".") {
            if component == b".." {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let parent = current.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            current = Some(open_dir_at(parent, OsStr::from_bytes(component))?);
        }
        match current {
            Some(fd) => Ok(fd),
            None => Ok(self.fd.try_clone()?),
        }
    }

    /// Opens the directory at `rel` (clean, relative, `""` for the root)
    /// component by component, refusing symlinks and `..`.
    fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_dir_raw(rel.as_bytes())
    }

    /// `lstat` of `rel` below the root; `None` if it does not exist (or a
    /// parent is not a directory, or the path leaves the root).
    fn lstat(&self, rel: &str) -> io::Result<Option<(FileStat, OwnedFd, String)>> {
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() || name == "." || name == ".." {
            return Ok(None);
        }
        let dir_fd = match self.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match nix::sys::stat::fstatat(&dir_fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((st, dir_fd, name.to_owned()))),
            Err(e) if is_not_found(&e.into()) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The sorted entry names of the directory `rel`; `None` if missing.
    fn read_dir(&self, rel: &str) -> io::Result<Option<Vec<String>>> {
        let fd = match self.open_dir(rel) {
            Ok(fd) => fd,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let names = read_names(fd)?;
        // Names that are not UTF-8 cannot be matched by (string) patterns.
        Ok(Some(names.into_iter().filter_map(|n| n.into_string().ok()).collect()))
    }
}

/// Reopens the last cursor's directory (closed for the descriptor budget)
/// from its nearest open ancestor, one component at a time and never
/// through a symlink, as [`Root::open_dir`] does from the root.
fn reopen(cursors: &[Cursor]) -> io::Result<OwnedFd> {
    let not_found = || io::Error::from_raw_os_error(libc::ENOENT);
    let (top, ancestors) = cursors.split_last().ok_or_else(not_found)?;
    let (base, base_fd) =
        ancestors.iter().rev().find_map(|c| c.fd.as_ref().map(|fd| (c.raw.as_slice(), fd))).ok_or_else(not_found)?;
    let rest = match base {
        [] => top.raw.as_slice(),
        base => top.raw.strip_prefix(base).and_then(|r| r.strip_prefix(b"/")).ok_or_else(not_found)?,
    };
    let mut current: Option<OwnedFd> = None;
    for component in rest.split(|&b| b == b'/') {
        if component.is_empty() || component == b"." || component == b".." {
            return Err(not_found());
        }
        let parent = current.as_ref().map_or(base_fd.as_fd(), |d| d.as_fd());
        current = Some(open_dir_at(parent, OsStr::from_bytes(component))?);
    }
    current.ok_or_else(not_found)
}

fn set_top_fd(cursors: &mut [Cursor], fd: OwnedFd) {
    if let Some(top) = cursors.last_mut() {
        top.fd = Some(fd);
    }
}

/// The directory (relative path and descriptor, opened like
/// [`Root::open_dir`]) of the last file a reader opened.
#[derive(Debug, Default)]
pub(crate) struct DirCache(Option<(Vec<u8>, OwnedFd)>);

fn open_dir_at(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// All names in a directory except `.` and `..`, sorted bytewise (Go's
/// `os.ReadDir` order).
fn read_names(fd: OwnedFd) -> io::Result<Vec<OsString>> {
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(OsString::from_vec(name.to_vec()));
    }
    names.sort();
    Ok(names)
}

/// Vanished entries (or parents replaced by files or symlinks) are skipped,
/// as fsutil skips them.
fn is_not_found(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP))
}

/// A prepared walk: the folder plus compiled filters.
#[derive(Debug)]
pub struct Walker {
    root: Root,
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    only_prefix_includes: bool,
    only_prefix_exclude_exceptions: bool,
}

/// A directory on the path from the root to the current entry.
struct Frame {
    /// The directory's record while it has only been walked through; sent
    /// (and taken) before its first sent descendant.
    unsent: Option<Stat>,
    include_info: MatchInfo,
    exclude_info: MatchInfo,
}

/// How many directories a walk keeps open at once (the deepest ones);
/// shallower ones are reopened when the walk climbs back to them.
const MAX_OPEN_DIRS: usize = 64;

/// A directory being listed: its descriptor (`None` once closed for the
/// budget), its path from the root and the names still to visit.
struct Cursor {
    fd: Option<OwnedFd>,
    /// The path as text (invalid UTF-8 replaced), for patterns and errors.
    rel: String,
    /// The path's bytes, as on disk and on the wire.
    raw: Vec<u8>,
    names: std::vec::IntoIter<OsString>,
}

struct WalkState<'a> {
    frames: Vec<Frame>,
    /// (device, inode) of multiply-linked files already sent, to their path.
    hardlinks: HashMap<(u64, u64), bytes::Bytes>,
    emit: &'a mut dyn FnMut(Stat) -> ControlFlow<()>,
    stopped: bool,
}

enum Decision {
    /// Leave the entry out and, for a directory, do not look inside.
    SkipDir,
    /// Leave the entry out but look inside (a directory an include or an
    /// exception may still reach).
    WalkThrough,
    /// Send the entry.
    Send,
}

impl Walker {
    /// Opens `root` and compiles `opts` (resolving `followpaths` now, as
    /// fsutil does when the filter is created).
    pub fn new(root: &Path, opts: &FilterOptions) -> Result<Self, WalkError> {
        let root = Root::open(root)?;
        let mut includes = opts.include_patterns.clone();
        if !opts.follow_paths.is_empty() {
            if let Some(targets) = follow_links(&root, &opts.follow_paths)? {
                includes.extend(targets);
                includes = dedupe_paths(&includes).unwrap_or_default();
            }
        }
        let include = match includes.is_empty() {
            true => None,
            false => Some(PatternMatcher::new(&includes).map_err(WalkError::IncludePatterns)?),
        };
        let exclude = match opts.exclude_patterns.is_empty() {
            true => None,
            false => Some(PatternMatcher::new(&opts.exclude_patterns).map_err(WalkError::ExcludePatterns)?),
        };
        // When the relevant patterns are plain paths, a directory can be
        // skipped unless one of them points inside it.
        let plain = |p: &str| !without_trailing_glob(p).contains(['*', '[', ']', '?', '^', '\\']);
        let only_prefix_includes =
            include.as_ref().is_none_or(|m| m.patterns().iter().all(|p| p.exclusion() || plain(p.as_str())));
        let only_prefix_exclude_exceptions =
            exclude.as_ref().is_none_or(|m| m.patterns().iter().all(|p| !p.exclusion() || plain(p.as_str())));
        Ok(Self { root, include, exclude, only_prefix_includes, only_prefix_exclude_exceptions })
    }

    /// The opened folder.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Walks the folder, calling `emit` with each entry to send, in order.
    /// `emit` returns `Break` to stop early (then the walk returns `Ok`).
    ///
    /// The walk keeps its own stack of open directories instead of
    /// recursing: it runs on a thread with a fixed stack, and a context a few
    /// thousand folders deep (which buildctl sends) must not overflow it.
    pub fn walk(&self, emit: &mut dyn FnMut(Stat) -> ControlFlow<()>) -> Result<(), WalkError> {
        let mut state = WalkState { frames: Vec::new(), hardlinks: HashMap::new(), emit, stopped: false };
        let root = self.root.fd.try_clone().map_err(io_at("."))?;
        let names = read_names(root.try_clone().map_err(io_at("."))?).map_err(io_at("."))?;
        // `cursors[0]` is the root; `cursors[i]` (i >= 1) is the directory
        // whose filter state is `state.frames[i - 1]`.
        let mut cursors =
            vec![Cursor { fd: Some(root), rel: String::new(), raw: Vec::new(), names: names.into_iter() }];
        while let Some(top) = cursors.last_mut() {
            if state.stopped {
                return Ok(());
            }
            let Some(name) = top.names.next() else {
                cursors.pop();
                if !cursors.is_empty() {
                    state.frames.pop();
                }
                continue;
            };
            if top.fd.is_none() {
                match reopen(&cursors) {
                    Ok(fd) => set_top_fd(&mut cursors, fd),
                    Err(e) if is_not_found(&e) => {
                        if let Some(top) = cursors.last_mut() {
                            top.names = Vec::new().into_iter();
                        }
                        continue;
                    }
                    Err(source) => {
                        let path = cursors.last().map(|c| c.rel.clone()).unwrap_or_default();
                        return Err(WalkError::Io { path, source });
                    }
                }
            }
            let Some(top) = cursors.last_mut() else { break };
            let Some(dir) = &top.fd else { break };
            // A name that is not UTF-8 is matched against the patterns with
            // its invalid bytes as U+FFFD (as Go's regexp reads them) and
            // sent as its bytes, as fsutil sends it.
            let path = join_rel(&top.rel, &name.to_string_lossy());
            let mut raw = top.raw.clone();
            if !raw.is_empty() {
                raw.push(b'/');
            }
            raw.extend_from_slice(name.as_bytes());
            let Some(child) = self.visit(dir, &name, path, raw, &mut state)? else {
                continue;
            };
            cursors.push(child.0);
            state.frames.push(child.1);
            // A deep tree would hold one descriptor per level: keep the
            // deepest MAX_OPEN_DIRS open, and above them one in every
            // MAX_OPEN_DIRS levels, from which a closed one is reopened.
            if let Some(index) = cursors.len().checked_sub(MAX_OPEN_DIRS + 1) {
                if index % MAX_OPEN_DIRS != 0 {
                    cursors[index].fd = None;
                }
            }
        }
        Ok(())
    }

    /// Decides about and (when sent) emits one entry of `dir`; for a
    /// directory that must be looked into, returns its cursor and frame.
    fn visit(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        path: String,
        raw: Vec<u8>,
        state: &mut WalkState<'_>,
    ) -> Result<Option<(Cursor, Frame)>, WalkError> {
        let lst = match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) if is_not_found(&e.into()) => return Ok(None),
            Err(e) => return Err(WalkError::Io { path, source: e.into() }),
        };
        let is_dir = lst.st_mode & libc::S_IFMT == libc::S_IFDIR;

        let (decision, include_info, exclude_info) = self.decide(&path, is_dir, state)?;
        let send = match decision {
            Decision::SkipDir => return Ok(None),
            // Only directories are worth looking into; a file that is not
            // sent must not even be stat'ed into the hard-link table, or
            // a later link to it would name a path the receiver never saw.
            Decision::WalkThrough if !is_dir => return Ok(None),
            Decision::WalkThrough => false,
            Decision::Send => true,
        };
        let stat = build_stat(dir, name, &path, &raw, &lst, &mut state.hardlinks)?;
        let unsent = if send {
            // Directories walked through so far are sent before their
            // first sent descendant.
            let parents = state.frames.iter_mut().filter_map(|frame| frame.unsent.take());
            for record in parents.chain(std::iter::once(stat)) {
                if (state.emit)(record).is_break() {
                    state.stopped = true;
                    return Ok(None);
                }
            }
            if !is_dir {
                return Ok(None);
            }
            None
        } else {
            Some(stat)
        };

        let opened = open_dir_at(dir, name).and_then(|fd| {
            let names = read_names(fd.try_clone()?)?;
            Ok((fd, names))
        });
        match opened {
            Ok((fd, names)) => Ok(Some((
                Cursor { fd: Some(fd), rel: path, raw, names: names.into_iter() },
                Frame { unsent, include_info, exclude_info },
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            // An unreadable directory that is only walked through (its own
            // entry is not sent) is ignored, as fsutil does.
            Err(e) if !send && e.kind() == io::ErrorKind::PermissionDenied => Ok(None),
            Err(source) => Err(WalkError::Io { path, source }),
        }
    }

    /// fsutil's include/exclude decision for one entry.
    fn decide(
        &self,
        path: &str,
        is_dir: bool,
        state: &WalkState<'_>,
    ) -> Result<(Decision, MatchInfo, MatchInfo), WalkError> {
        let parent = state.frames.last();
        let mut skip = false;
        let mut include_info = MatchInfo::default();
        let mut exclude_info = MatchInfo::default();
        let match_err = |source| WalkError::Match { path: path.to_owned(), source };

        if let Some(include) = &self.include {
            let empty = MatchInfo::default();
            let parent_info = parent.map_or(&empty, |f| &f.include_info);
            let (matched, info) = include.matches_using_parent_results(path, parent_info).map_err(match_err)?;
            include_info = info;
            if !matched {
                if is_dir && self.only_prefix_includes && !reaches_into(include, false, path) {
                    return Ok((Decision::SkipDir, include_info, exclude_info));
                }
                skip = true;
            }
        }

        if let Some(exclude) = &self.exclude {
            let empty = MatchInfo::default();
            let parent_info = parent.map_or(&empty, |f| &f.exclude_info);
            let (matched, info) = exclude.matches_using_parent_results(path, parent_info).map_err(match_err)?;
            exclude_info = info;
            if matched {
                if is_dir && self.only_prefix_exclude_exceptions && !reaches_into(exclude, true, path) {
                    return Ok((Decision::SkipDir, include_info, exclude_info));
                }
                skip = true;
            }
        }

        let decision = if skip { Decision::WalkThrough } else { Decision::Send };
        Ok((decision, include_info, exclude_info))
    }
}

fn io_at(path: &str) -> impl Fn(io::Error) -> WalkError + '_ {
    move |source| WalkError::Io { path: path.to_owned(), source }
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether one of `matcher`'s plain patterns (its exceptions when
/// `exceptions`, else its inclusions) names `dir` or a path below it, so
/// the directory must be walked.
fn reaches_into(matcher: &PatternMatcher, exceptions: bool, dir: &str) -> bool {
    matcher.patterns().iter().any(|p| {
        // `{pattern}/` starts with `{dir}/`, without building either string.
        let rest = without_trailing_glob(p.as_str()).strip_prefix(dir);
        p.exclusion() == exceptions && rest.is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A pattern without a trailing `/**` or `/*`, as fsutil compares it.
fn without_trailing_glob(pattern: &str) -> &str {
    let p = pattern.strip_suffix("/**").unwrap_or(pattern);
    p.strip_suffix("/*").unwrap_or(p)
}

/// Builds the wire record for one entry, as fsutil's `mkstat` does, except
/// that uid and gid are 0: buildctl and buildx send them so, and image
/// digests depend on it.
fn build_stat(
    dir: &OwnedFd,
    name: &OsStr,
    path: &str,
    raw: &[u8],
    st: &FileStat,
    hardlinks: &mut HashMap<(u64, u64), bytes::Bytes>,
) -> Result<Stat, WalkError> {
    let io_err = |source: io::Error| WalkError::Io { path: path.to_owned(), source };
    let st_mode = st.st_mode;
    let kind = st_mode & libc::S_IFMT;
    let mut stat = Stat {
        path: bytes::Bytes::copy_from_slice(raw),
        // fsutil clears the socket bit (Go's tar writer cannot represent it).
        mode: file_mode::from_unix(st_mode) & !file_mode::SOCKET,
        uid: 0,
        gid: 0,
        size: 0,
        mod_time: st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec),
        linkname: bytes::Bytes::new(),
        devmajor: 0,
        devminor: 0,
        xattrs: BTreeMap::new(),
    };
    if kind != libc::S_IFDIR {
        stat.size = st.st_size;
        let rdev = st.st_rdev;
        // Go's (old-style) major/minor split, kept for identical records.
        stat.devmajor = ((rdev >> 8) & 0xfff) as i64;
        stat.devminor = ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as i64;
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            match hardlinks.get(&key) {
                Some(first) => stat.linkname = first.clone(),
                None => {
                    hardlinks.insert(key, stat.path.clone());
                }
            }
        }
        if kind == libc::S_IFLNK {
            let target = nix::fcntl::readlinkat(dir, name).map_err(|e| io_err(e.into()))?;
            stat.linkname = target.into_vec().into();
        }
    }
    stat.xattrs = read_xattrs(dir, name).map_err(io_err)?;
    Ok(stat)
}

/// The entry's extended attributes (fsutil skips `com.apple.*`). Read
/// through `/proc/self/fd/<dir>/<name>` so the directory is the one the walk
/// opened and the entry itself is not followed.
fn read_xattrs(dir: &OwnedFd, name: &OsStr) -> io::Result<BTreeMap<String, bytes::Bytes>> {
    use std::os::fd::AsRawFd;
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    path.push(name);
    let names = match xattr::list(&path) {
        Ok(names) => names,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOENT)) => {
            // No xattr support, or no /proc: nothing to send.
            return Ok(BTreeMap::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for key in names {
        let Some(key_str) = key.to_str() else {
            continue;
        };
        if key_str.starts_with("com.apple.") {
            continue;
        }
        // Attributes that vanish or cannot be read are left out, as in fsutil.
        if let Ok(Some(value)) = xattr::get(&path, &key) {
            out.insert(key_str.to_owned(), bytes::Bytes::from(value));
        }
    }
    Ok(out)
}

/// fsutil's `FollowLinks`: resolves symlinks along each path (with shell
/// wildcards allowed in the last component of each step) and returns the
/// symlinks and their targets as include patterns. `None` means one of them
/// is the root, so there is no include filter at all.
fn follow_links(root: &Root, paths: &[String]) -> Result<Option<Vec<String>>, WalkError> {
    let mut resolver = Resolver { root, resolved: BTreeSet::new() };
    for p in paths {
        resolver.append(p, 0)?;
    }
    let sorted: Vec<String> = resolver.resolved.into_iter().collect();
    Ok(dedupe_paths(&sorted))
}

struct Resolver<'a> {
    root: &'a Root,
    resolved: BTreeSet<String>,
}

/// Deeper than this, a chain of symlinks is a loop.
const MAX_LINK_DEPTH: usize = 255;

impl Resolver<'_> {
    fn append(&mut self, p: &str, depth: usize) -> Result<(), WalkError> {
        if depth > MAX_LINK_DEPTH {
            return Err(WalkError::SymlinkLoop { path: p.to_owned() });
        }
        let mut rest = gopath::join(&[".", p]);
        let mut current = ".".to_owned();
        loop {
            let (first, tail) = match rest.split_once('/') {
                Some((first, tail)) => (first.to_owned(), Some(tail.to_owned())),
                None => (rest.clone(), None),
            };
            current = gopath::join(&[&current, &first]);
            let targets = self.read_symlink(&current, true)?;
            rest = tail.unwrap_or_default();
            if (rest.is_empty() || targets.is_some()) && self.resolved.contains(&current) {
                return Ok(());
            }
            if let Some(targets) = targets {
                self.resolved.insert(current);
                for target in targets {
                    self.append(&gopath::join(&[&target, &rest]), depth + 1)?;
                }
                return Ok(());
            }
            if rest.is_empty() {
                self.resolved.insert(current);
                return Ok(());
            }
        }
    }

    /// The root-relative targets of the symlink(s) at `p` (absolute paths,
    /// `/` meaning the root); `None` if `p` is not a symlink.
    fn read_symlink(&self, p: &str, allow_wildcard: bool) -> Result<Option<Vec<String>>, WalkError> {
        let io_err = |source| WalkError::Io { path: p.to_owned(), source };
        let (dir, base) = p.rsplit_once('/').unwrap_or((".", p));
        if allow_wildcard && contains_wildcards(base) {
            let Some(names) = self.root.read_dir(dir).map_err(io_err)? else {
                return Ok(None);
            };
            let mut out = Vec::new();
            for name in names {
                if go_match(base, &name).unwrap_or(false) {
                    if let Some(targets) = self.read_symlink(&gopath::join(&[dir, &name]), false)? {
                        out.extend(targets);
                    }
                }
            }
            return Ok(if out.is_empty() { None } else { Some(out) });
        }
        if p == "." || p == "/" {
            return Ok(None);
        }
        let Some((st, dir_fd, name)) = self.root.lstat(p).map_err(io_err)? else {
            return Ok(None);
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(None);
        }
        let target = nix::fcntl::readlinkat(&dir_fd, name.as_str()).map_err(|e| io_err(e.into()))?;
        let Ok(target) = target.into_string() else {
            return Err(WalkError::NonUtf8 { path: format!("{p} (symlink target)") });
        };
        let link = gopath::clean(&target);
        if link.starts_with('/') {
            return Ok(Some(vec![link]));
        }
        let parent = p.rsplit_once('/').map_or(".", |(d, _)| d);
        Ok(Some(vec![gopath::join(&["/", &gopath::join(&[parent, &link])])]))
    }
}

/// Whether a path component holds shell wildcards (`\` escapes one byte).
fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// fsutil's `dedupePaths`: drops paths below the previously kept one (the
/// input is expected sorted); `None` if any path is the root.
fn dedupe_paths(paths: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    let mut last = String::new();
    for p in paths {
        if p == "." {
            return None;
        }
        if p.starts_with(&format!("{last}/")) {
            continue;
        }
        out.push(p.clone());
        last = p.clone();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs_err::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs_err::write(path, content).expect("write");
    }

    fn walk_with(root: &Path, opts: &FilterOptions) -> Vec<Stat> {
        let walker = Walker::new(root, opts).expect("walker");
        let mut out = Vec::new();
        walker
            .walk(&mut |stat| {
                out.push(stat);
                ControlFlow::Continue(())
            })
            .expect("walk");
        out
    }

    fn paths(stats: &[Stat]) -> Vec<&str> {
        stats.iter().map(|s| std::str::from_utf8(&s.path).expect("UTF-8")).collect()
    }

    fn excluding(patterns: &[&str]) -> FilterOptions {
        FilterOptions { exclude_patterns: patterns.iter().map(|p| p.to_string()).collect(), ..FilterOptions::default() }
    }

    fn including(patterns: &[&str]) -> FilterOptions {
        FilterOptions { include_patterns: patterns.iter().map(|p| p.to_string()).collect(), ..FilterOptions::default() }
    }

    #[test]
    fn order_is_per_directory_not_plain_string_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rel in ["a/b", "a b", "a-b", "a.b", "a0", "B", "a/c/d"] {
            write(dir.path(), rel, "x");
        }
        let stats = walk_with(dir.path(), &FilterOptions::default());
        // `a/...` before `a b` and `a-b`, although '/' sorts after ' ' and '-'.
        assert_eq!(paths(&stats), ["B", "a", "a/b", "a/c", "a/c/d", "a b", "a-b", "a.b", "a0"]);
    }

    #[test]
    fn go_file_modes() {
        use file_mode::*;
        assert_eq!(from_unix(libc::S_IFDIR | 0o755), DIR | 0o755);
        assert_eq!(from_unix(libc::S_IFLNK | 0o777), SYMLINK | 0o777);
        assert_eq!(from_unix(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(from_unix(libc::S_IFIFO | 0o600), NAMED_PIPE | 0o600);
        assert_eq!(from_unix(libc::S_IFSOCK | 0o755), SOCKET | 0o755);
        assert_eq!(from_unix(libc::S_IFBLK | 0o660), DEVICE | 0o660);
        assert_eq!(from_unix(libc::S_IFCHR | 0o666), DEVICE | CHAR_DEVICE | 0o666);
        assert_eq!(from_unix(libc::S_IFREG | 0o4755), SETUID | 0o755);
        assert_eq!(from_unix(libc::S_IFDIR | 0o2775), DIR | SETGID | 0o775);
        assert_eq!(from_unix(libc::S_IFDIR | 0o1777), DIR | STICKY | 0o777);
        assert!(can_request_data(0o644 | SETUID));
        assert!(!can_request_data(DIR | 0o755));
        assert!(!can_request_data(SYMLINK));
        assert!(!can_request_data(DEVICE | CHAR_DEVICE));
    }

    #[test]
    fn stats_carry_fsutil_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "file", "hello");
        write(root, "empty", "");
        symlink("file", root.join("link")).expect("symlink");
        std::fs::hard_link(root.join("file"), root.join("zlink")).expect("hard link");
        nix::unistd::mkfifo(&root.join("pipe"), Mode::from_bits_truncate(0o640)).expect("mkfifo");
        write(root, "suid", "s");
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        std::fs::DirBuilder::new().mode(0o755).create(root.join("sticky")).expect("mkdir");
        std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).expect("bind socket");
        let time = nix::sys::time::TimeSpec::new(1_000_000_000, 123_456_789);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &root.join("file"),
            &time,
            &time,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .expect("utimensat");
        let has_xattrs = xattr::set(root.join("empty"), "user.test", b"v").is_ok();

        let stats = walk_with(root, &FilterOptions::default());
        assert_eq!(paths(&stats), ["empty", "file", "link", "pipe", "sock", "sticky", "suid", "zlink"]);
        let by_path: HashMap<&str, &Stat> =
            stats.iter().map(|s| (std::str::from_utf8(&s.path).expect("UTF-8"), s)).collect();

        let file = by_path["file"];
        assert_eq!((file.mode, file.size, file.uid, file.gid), (0o644 & !umask(), 5, 0, 0));
        assert_eq!(file.mod_time, 1_000_000_000_123_456_789);
        assert_eq!(file.linkname, "");
        // The second path of a hard-linked inode names the first, full size.
        assert_eq!((&by_path["zlink"].linkname[..], by_path["zlink"].size), (&b"file"[..], 5));
        let link = by_path["link"];
        assert_eq!((link.mode & !file_mode::PERM, &link.linkname[..]), (file_mode::SYMLINK, &b"file"[..]));
        assert_eq!(by_path["pipe"].mode, file_mode::NAMED_PIPE | 0o640);
        // Sockets lose their type bit, as in fsutil: they look like empty files.
        assert_eq!(by_path["sock"].mode & file_mode::TYPE, 0);
        assert_eq!(by_path["suid"].mode, file_mode::SETUID | 0o755);
        assert_eq!(by_path["sticky"].mode, file_mode::DIR | file_mode::STICKY | 0o777);
        assert_eq!(by_path["sticky"].size, 0);
        if has_xattrs {
            assert_eq!(by_path["empty"].xattrs.get("user.test").map(|v| &v[..]), Some(&b"v"[..]));
        }
    }

    fn umask() -> u32 {
        // Read the process umask without changing it for other threads.
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
    }

    #[test]
    fn excluded_dirs_are_skipped_unless_an_exception_reaches_inside() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rel in ["bar", "foo/bar2", "foo/other", "foo2", "node_modules/keep/k", "node_modules/drop/d"] {
            write(dir.path(), rel, "x");
        }
        let stats = walk_with(dir.path(), &excluding(&["foo*", "!foo/bar2"]));
        assert_eq!(
            paths(&stats),
            [
                "bar",
                "foo",
                "foo/bar2",
                "node_modules",
                "node_modules/drop",
                "node_modules/drop/d",
                "node_modules/keep",
                "node_modules/keep/k"
            ]
        );

        let stats = walk_with(dir.path(), &excluding(&["node_modules", "!node_modules/keep"]));
        assert_eq!(
            paths(&stats),
            ["bar", "foo", "foo/bar2", "foo/other", "foo2", "node_modules", "node_modules/keep", "node_modules/keep/k"]
        );

        // A wildcard exception can match anywhere: walk through everything.
        let stats = walk_with(dir.path(), &excluding(&["**", "!**/k"]));
        assert_eq!(paths(&stats), ["node_modules", "node_modules/keep", "node_modules/keep/k"]);
    }

    #[test]
    fn includes_send_parents_lazily() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rel in ["bar/foo", "foo2", "x/a.txt", "y/b.txt", "y/c.md"] {
            write(dir.path(), rel, "x");
        }
        assert_eq!(paths(&walk_with(dir.path(), &including(&["bar"]))), ["bar", "bar/foo"]);
        assert_eq!(paths(&walk_with(dir.path(), &including(&["bar/foo"]))), ["bar", "bar/foo"]);
        assert_eq!(paths(&walk_with(dir.path(), &including(&["b*/"]))), ["bar", "bar/foo"]);
        assert!(walk_with(dir.path(), &including(&["bar/g*"])).is_empty());
        assert_eq!(paths(&walk_with(dir.path(), &including(&["**/*.txt"]))), ["x", "x/a.txt", "y", "y/b.txt"]);
    }

    #[test]
    fn hard_links_to_unsent_files_are_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a/h1", "h");
        std::fs::hard_link(dir.path().join("a/h1"), dir.path().join("a/h2")).expect("link");
        std::fs::hard_link(dir.path().join("a/h1"), dir.path().join("z")).expect("link");
        let stats = walk_with(dir.path(), &excluding(&["a/h1"]));
        assert_eq!(paths(&stats), ["a", "a/h2", "z"]);
        assert_eq!(stats[1].linkname, "", "first sent path becomes the link target");
        assert_eq!(stats[2].linkname, "a/h2");
    }

    #[test]
    fn followpaths_add_symlink_targets_to_the_includes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for rel in ["bar", "baz/one", "bax", "bay"] {
            write(root, rel, "x");
        }
        fs_err::create_dir(root.join("foo")).expect("mkdir");
        symlink("/baz/one", root.join("foo/l1")).expect("symlink");
        symlink("/baz/two", root.join("foo/l2")).expect("symlink");
        symlink("../bax", root.join("baz/two")).expect("symlink");
        let opts = FilterOptions { follow_paths: vec!["foo/l*".into(), "bar".into()], ..FilterOptions::default() };
        assert_eq!(
            paths(&walk_with(root, &opts)),
            ["bar", "bax", "baz", "baz/one", "baz/two", "foo", "foo/l1", "foo/l2"]
        );

        // A link to the root means no include filter at all.
        symlink(".", root.join("self")).expect("symlink");
        let opts = FilterOptions { follow_paths: vec!["self".into()], ..FilterOptions::default() };
        assert_eq!(walk_with(root, &opts).len(), 10);

        // Targets outside the root resolve to nothing.
        let opts = FilterOptions { follow_paths: vec!["../etc".into()], ..FilterOptions::default() };
        assert!(walk_with(root, &opts).is_empty());
    }

    #[test]
    fn symlinks_are_never_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret", "s");
        let dir = tempfile::tempdir().expect("tempdir");
        symlink(outside.path(), dir.path().join("out")).expect("symlink");
        symlink(outside.path().join("secret"), dir.path().join("secret")).expect("symlink");
        write(dir.path(), "d/f", "f");

        let stats = walk_with(dir.path(), &FilterOptions::default());
        assert_eq!(paths(&stats), ["d", "d/f", "out", "secret"]);

        let walker = Walker::new(dir.path(), &FilterOptions::default()).expect("walker");
        let root = walker.root();
        assert!(root.open_file_cached(b"d/f", &mut DirCache::default()).is_ok());
        for bad in ["secret", "out/secret", "../secret", "d/../d/f", "d", ""] {
            assert!(root.open_file_cached(bad.as_bytes(), &mut DirCache::default()).is_err(), "{bad:?} must not open");
        }

        // A reader's directory cache changes nothing about what opens.
        write(dir.path(), "d/g", "g");
        let mut cache = DirCache::default();
        for (rel, ok) in [("d/f", true), ("d/g", true), ("out/secret", false), ("d/f", true), ("secret", false)] {
            assert_eq!(root.open_file_cached(rel.as_bytes(), &mut cache).is_ok(), ok, "{rel:?}");
        }
        let mut content = String::new();
        io::Read::read_to_string(&mut root.open_file_cached(b"d/g", &mut cache).expect("open"), &mut content)
            .expect("read");
        assert_eq!(content, "g");
    }

    #[test]
    fn root_may_be_a_symlink_but_must_be_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "real/f", "x");
        symlink(dir.path().join("real"), dir.path().join("alias")).expect("symlink");
        assert_eq!(paths(&walk_with(&dir.path().join("alias"), &FilterOptions::default())), ["f"]);
        assert!(matches!(
            Walker::new(&dir.path().join("real/f"), &FilterOptions::default()),
            Err(WalkError::NotADirectory { .. })
        ));
        assert!(matches!(
            Walker::new(&dir.path().join("missing"), &FilterOptions::default()),
            Err(WalkError::OpenRoot { .. })
        ));
        assert!(matches!(
            Walker::new(dir.path(), &excluding(&["!"])),
            Err(WalkError::ExcludePatterns(PatternError::IllegalExclusion))
        ));
    }

    /// Makes `depth` nested folders `d` below `root` (with `mkdirat`, since
    /// the full path is longer than `PATH_MAX`), a file `f` at the bottom
    /// and a file `z` beside every folder, so the walk must come back up.
    pub(crate) fn make_deep(root: &Path, depth: usize) {
        let mut dir = nix::fcntl::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).expect("open root");
        for _ in 0..depth {
            nix::sys::stat::mkdirat(&dir, "d", Mode::from_bits_truncate(0o755)).expect("mkdirat");
            let z = nix::fcntl::openat(&dir, "z", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644));
            drop(z.expect("create z"));
            dir = open_dir_at(&dir, OsStr::new("d")).expect("open d");
        }
        let f = nix::fcntl::openat(&dir, "f", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644));
        drop(f.expect("create f"));
    }

    #[test]
    fn a_deep_tree_is_walked_without_recursion() {
        const DEPTH: usize = 2_000;
        let dir = tempfile::tempdir().expect("tempdir");
        make_deep(dir.path(), DEPTH);
        let walker = Walker::new(dir.path(), &FilterOptions::default()).expect("walker");
        // A small stack: the recursive walk overflowed a 2 MiB one (tokio's
        // blocking threads) at about 1,650 levels and aborted the process.
        let stats = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut stats = Vec::new();
                walker
                    .walk(&mut |stat| {
                        stats.push(stat.path);
                        ControlFlow::Continue(())
                    })
                    .map(|()| stats)
            })
            .expect("spawn")
            .join()
            .expect("the walk panicked")
            .expect("walk");
        // Expected order: d, d/d, ..., the bottom file, then every `z` on the
        // way back up (deepest first, as fsutil's per-directory order gives).
        let level = |n: usize| vec!["d"; n].join("/");
        let mut expected: Vec<String> = (1..=DEPTH).map(level).collect();
        expected.push(format!("{}/f", level(DEPTH)));
        expected.extend((0..DEPTH).rev().map(|n| match n {
            0 => "z".to_owned(),
            n => format!("{}/z", level(n)),
        }));
        assert_eq!(stats.len(), expected.len());
        assert!(stats == expected, "the deep walk's order differs from fsutil's");
        const { assert!(MAX_OPEN_DIRS < DEPTH, "the test must close and reopen directories") };
    }

    /// Names that are not UTF-8: matched against the patterns first (an
    /// excluded one is never looked at further), sent as their bytes when
    /// included, and readable by those bytes. One used to fail the whole
    /// walk, even excluded.
    #[test]
    fn names_that_are_not_utf8_are_excluded_or_sent_as_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = |name: &[u8]| dir.path().join(OsStr::from_bytes(name));
        fs_err::write(raw(b"bad-\xff"), "excluded").expect("write");
        fs_err::write(raw(b"ok-\xfe.txt"), "included").expect("write");
        fs_err::create_dir(raw(b"d\xfd")).expect("mkdir");
        fs_err::write(raw(b"d\xfd/f"), "inside").expect("write");
        std::os::unix::fs::symlink(OsStr::from_bytes(b"ok-\xfe.txt"), raw(b"link")).expect("symlink");
        let walker = Walker::new(dir.path(), &excluding(&["bad-*"])).expect("walker");
        let mut stats = Vec::new();
        walker
            .walk(&mut |stat| {
                stats.push(stat);
                ControlFlow::Continue(())
            })
            .expect("walk");
        let paths: Vec<&[u8]> = stats.iter().map(|s| &s.path[..]).collect();
        assert_eq!(paths, [&b"d\xfd"[..], b"d\xfd/f", b"link", b"ok-\xfe.txt"]);
        assert_eq!(&stats[2].linkname[..], b"ok-\xfe.txt");
        let mut content = String::new();
        let mut file = walker.root().open_file_cached(b"d\xfd/f", &mut DirCache::default()).expect("open");
        io::Read::read_to_string(&mut file, &mut content).expect("read");
        assert_eq!(content, "inside");

        // Patterns see invalid bytes as U+FFFD, as Go's regexp does.
        let walker = Walker::new(dir.path(), &excluding(&["d\u{fffd}", "*.txt", "link"])).expect("walker");
        let mut paths = Vec::new();
        walker
            .walk(&mut |stat| {
                paths.push(stat.path);
                ControlFlow::Continue(())
            })
            .expect("walk");
        assert_eq!(paths, [&b"bad-\xff"[..]]);
    }

    #[test]
    fn walk_stops_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rel in ["a/1", "a/2", "b"] {
            write(dir.path(), rel, "x");
        }
        let walker = Walker::new(dir.path(), &FilterOptions::default()).expect("walker");
        let mut seen = Vec::new();
        walker
            .walk(&mut |stat| {
                seen.push(stat.path);
                if seen.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("walk");
        assert_eq!(seen, ["a", "a/1"]);
    }
}
