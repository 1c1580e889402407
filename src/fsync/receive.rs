//! The DiffCopy receiver: writes a tree the daemon streams to us (the local
//! exporter, `-o type=local,dest=DIR`) into a destination folder.
//!
//! Here the daemon is the sender and cannot be trusted with the local file
//! system, so every record is checked before anything is created:
//! - paths must be clean and relative (no `/` prefix, no `.` or `..`
//!   element) and arrive in fsutil's order: depth-first, names strictly
//!   increasing within a directory, each entry's parent a directory received
//!   earlier. That rules out duplicates and any path below a symlink or a
//!   file, so nothing can be written through a link;
//! - a hard link must name a regular file received earlier;
//! - symlinks are created as links (their targets are data, never
//!   followed); device nodes are not created (counted as skipped);
//!   setuid, setgid and sticky bits are dropped; nothing is chowned, so the
//!   files belong to the user running fbuild; only `user.*` xattrs are kept.
//!
//! Everything is written into a staging folder and moved into place once
//! the listing and every file's content have arrived, before we send `FIN`
//! (fsutil too has the files on disk before its `FIN`, so the daemon's
//! export, and the solve, end only after the output is in place): a new
//! destination is the staged tree renamed; an existing one receives the staged entries merged over its
//! own (entries not in the output are kept, as buildctl does). The staging
//! folder sits beside a new destination and inside an existing one, so the
//! final renames never cross file systems (the destination may be a mount).
//!
//! A merge is all or nothing: every entry it replaces is first moved aside
//! into the staging folder, and if any step fails, the moves are undone in
//! reverse, so the destination holds exactly what it held before. (Only the
//! directories' permissions and times are applied after the swap.)
//!
//! A staging folder is locked (`flock`) while its receiver lives. One left
//! by a process that was killed is unlocked, and is removed by the next
//! receiver writing to the same destination.
//!
//! Memory: incoming packets wait in a queue bounded in bytes, and extended
//! attributes are applied as each entry is created, never held.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::walk::file_mode;
use crate::error::error_chain;
use crate::proto::fsutil::types::packet::PacketType;
use crate::proto::fsutil::types::{Packet, Stat};

/// Files requested at once. Kept below fsutil's sender queue (128) so its
/// request loop never blocks, and bounds the files we hold open.
const REQUEST_WINDOW: usize = 64;

/// Incoming packets buffered for the writer thread, at most.
const INCOMING_QUEUE: usize = 256;

/// Bytes of incoming packets buffered for the writer thread, at most (one
/// packet larger than this still passes, alone). 256 packets of up to the
/// 16 MiB a message may hold were 4 GiB.
const INCOMING_BYTES: usize = 32 << 20;

/// The largest extended attribute value Linux stores (`XATTR_SIZE_MAX`);
/// larger ones cannot be set, so they are dropped on arrival.
const XATTR_SIZE_MAX: usize = 64 << 10;

/// Names of staging folders: this prefix and 32 hex digits.
const STAGING_PREFIX: &str = ".fbuild-receive-";
/// How long a transfer may stay silent before it counts as stalled: the
/// exporter streams without pause once it has begun, so silence this long
/// is a daemon (or a tunnel) that has stopped, not a slow one.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a completed transfer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    /// Regular files written (hard links not included).
    pub files: u64,
    /// Directories created or merged.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Named pipes created.
    pub fifos: u64,
    /// Device nodes and other special files left out.
    pub skipped_special: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Why a transfer was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// A path that is empty, `.`, not in clean form, or holds a NUL byte.
    #[error("refusing path {path:?}: not a clean relative path")]
    UncleanPath {
        /// The path as sent.
        path: String,
    },
    /// An absolute path.
    #[error("refusing absolute path {path:?}")]
    AbsolutePath {
        /// The path as sent.
        path: String,
    },
    /// A path leaving the destination through `..`.
    #[error("refusing path {path:?}: it leaves the destination")]
    EscapingPath {
        /// The path as sent.
        path: String,
    },
    /// An entry whose parent is not the directory being filled.
    #[error("refusing {path:?}: its parent {parent:?} {reason}")]
    BadParent {
        /// The path as sent.
        path: String,
        /// Its parent directory.
        parent: String,
        /// What is wrong with the parent.
        reason: &'static str,
    },
    /// An entry that does not sort after its predecessor.
    #[error("refusing {path:?}: out of order after {previous:?}")]
    OutOfOrder {
        /// The path as sent.
        path: String,
        /// The entry before it in the same directory.
        previous: String,
    },
    /// A hard link to a path that was not received as a regular file.
    #[error("refusing hard link {path:?} to {target:?}: not a file received before it")]
    BadHardlink {
        /// The link.
        path: String,
        /// What it points to.
        target: String,
    },
    /// A symlink without a target.
    #[error("refusing symlink {path:?} without a target")]
    EmptySymlink {
        /// The link.
        path: String,
    },
    /// Content for a file that was not requested (or already complete).
    #[error("the sender sent data for unrequested file id {id}")]
    UnexpectedData {
        /// The id.
        id: u32,
    },
    /// A packet the sender must not send (`REQ`, unknown types, STATs after
    /// the end of the listing, `FIN` before ours).
    #[error("the sender broke the protocol: {0}")]
    Protocol(&'static str),
    /// The sender reported an error.
    #[error("error from sender: {0}")]
    Sender(String),
    /// The sender's stream ended before the transfer finished.
    #[error("the sender closed the stream before the transfer finished")]
    SenderClosed,
    #[error("the daemon sent nothing for {} s; the transfer is stalled", .0.as_secs())]
    Stalled(std::time::Duration),
    /// The sender's stream failed.
    #[error("receiving from the sender failed")]
    Stream(#[source] Status),
    /// Nobody reads our packets any more.
    #[error("the sender stopped reading")]
    OutputClosed,
    /// The destination exists and is not a directory.
    #[error("destination {} exists and is not a directory", path.display())]
    DestinationNotDirectory {
        /// The destination.
        path: PathBuf,
    },
    /// Creating the staging folder failed.
    #[error("failed to create a staging folder for {}", path.display())]
    Staging {
        /// The destination.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Writing an entry into the staging folder failed.
    #[error("failed to write {path}")]
    Write {
        /// The entry, relative to the destination.
        path: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// Moving the staged tree into the destination failed.
    #[error("failed to move the output into {}", path.display())]
    Finish {
        /// The path being placed.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A merge failed part-way, and putting the destination back as it
    /// was failed too.
    #[error(
        "failed to move the output into {}, and could not restore the destination ({rollback}): its previous content is in {}",
        path.display(),
        kept.display()
    )]
    MergeUndo {
        /// The path being placed when the merge failed.
        path: PathBuf,
        /// Why the merge failed.
        #[source]
        source: io::Error,
        /// Where the destination's replaced entries were left.
        kept: PathBuf,
        /// Why they could not be moved back.
        rollback: io::Error,
    },
    /// The writer thread died.
    #[error("the receiving task stopped unexpectedly")]
    TaskFailed,
}

/// Receives one DiffCopy transfer into `dest`: reads the sender's packets
/// from `stream_in`, sends our requests and `FIN` into `stream_out`, and
/// returns once the output is in place and the sender confirmed the end.
/// Needs a tokio runtime with blocking threads (file writes run on one).
///
/// On error, the sender is told why with an `ERR` packet (when it still
/// listens) and `dest` is left as it was.
pub async fn receive_diffcopy<S>(
    mut stream_in: S,
    stream_out: mpsc::Sender<Packet>,
    dest: &Path,
) -> Result<ReceiveStats, ReceiveError>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
    let budget = Arc::new(Semaphore::new(INCOMING_BYTES));
    let pump = tokio::spawn({
        let budget = Arc::clone(&budget);
        async move {
            loop {
                let item = match tokio::time::timeout(IDLE_TIMEOUT, stream_in.next()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(_silent) => {
                        let _ = tx.send((Err(Status::deadline_exceeded(STALLED)), stalled_permit(&budget).await)).await;
                        break;
                    }
                };
                let size = item.as_ref().map_or(0, prost::Message::encoded_len).clamp(1, INCOMING_BYTES);
                // The writer hands the permit back once it has handled the packet.
                let Ok(permit) = Arc::clone(&budget).acquire_many_owned(size as u32).await else { break };
                if tx.send((item, permit)).await.is_err() {
                    break;
                }
            }
        }
    });
    let dest = dest.to_owned();
    let out = stream_out.clone();
    let result = tokio::task::spawn_blocking(move || receive_blocking(rx, out, &dest))
        .await
        .unwrap_or(Err(ReceiveError::TaskFailed));
    pump.abort();
    if let Err(err) = &result {
        let packet = Packet {
            r#type: PacketType::PacketErr as i32,
            data: error_chain(err).into_bytes().into(),
            ..Packet::default()
        };
        let _ = stream_out.try_send(packet);
    }
    result
}

/// A failed incoming stream: the pump's stall notice, or the stream's error.
fn stream_error(status: Status) -> ReceiveError {
    if status.code() == tonic::Code::DeadlineExceeded && status.message() == STALLED {
        ReceiveError::Stalled(IDLE_TIMEOUT)
    } else {
        ReceiveError::Stream(status)
    }
}

/// The status the pump hands the writer when the sender goes silent.
const STALLED: &str = "fbuild: the transfer stalled";

/// A permit for the stall notice (it carries no bytes).
async fn stalled_permit(budget: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    Arc::clone(budget).acquire_many_owned(0).await.expect("the budget is never closed")
}

/// An incoming packet and its share of the queue's byte budget.
type Incoming = (Result<Packet, Status>, OwnedSemaphorePermit);

fn receive_blocking(
    mut rx: mpsc::Receiver<Incoming>,
    out: mpsc::Sender<Packet>,
    dest: &Path,
) -> Result<ReceiveStats, ReceiveError> {
    let staging = Staging::create(dest)?;
    let mut writer = Writer::new(staging.tree(), out);
    writer.receive_tree(&mut rx)?;
    // Like fsutil, have everything in place before sending FIN: the
    // daemon's export (and so the solve) completes only after our FIN.
    staging.finish(dest, &writer.dirs, &mut writer.stats)?;
    writer.send(Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() })?;
    writer.await_fin(&mut rx)?;
    Ok(writer.stats)
}

/// The staging folder: the received tree in `tree/`, and what a merge
/// replaced in `old/` until the merge is complete. Locked while it lives;
/// removed on drop (after a merge that could not be undone, kept: it then
/// holds the user's files).
struct Staging {
    path: PathBuf,
    /// Whether the destination existed (then `path` is inside it).
    merge: bool,
    armed: bool,
    /// Holds the `flock` that tells other receivers this folder is in use.
    _lock: File,
}

impl Staging {
    fn create(dest: &Path) -> Result<Self, ReceiveError> {
        let staging_err = |source| ReceiveError::Staging { path: dest.to_owned(), source };
        let name = format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let (parent, merge) = match fs::metadata(dest) {
            Ok(meta) if meta.is_dir() => (dest.to_owned(), true),
            Ok(_) => return Err(ReceiveError::DestinationNotDirectory { path: dest.to_owned() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = match dest.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                    _ => PathBuf::from("."),
                };
                fs::create_dir_all(&parent).map_err(staging_err)?;
                (parent, false)
            }
            Err(e) => return Err(staging_err(e)),
        };
        // Created under a name the cleanup below never matches, and renamed
        // once locked, so no other receiver takes it for a stale one.
        let unlocked = parent.join(format!("{name}.new"));
        let path = parent.join(&name);
        fs::DirBuilder::new().mode(0o700).create(&unlocked).map_err(staging_err)?;
        let lock = open_dir_nofollow(&unlocked).inspect(|dir| {
            // A file system without flock (some network ones) only loses
            // the cleanup of stale folders: one that cannot be locked is
            // never taken for stale either.
            if let Err(error) = lock(dir, libc::LOCK_EX) {
                tracing::debug!(%error, path = %unlocked.display(), "cannot lock a staging folder");
            }
        });
        let lock = match lock.and_then(|dir| fs::rename(&unlocked, &path).map(|()| dir)) {
            Ok(dir) => dir,
            Err(e) => {
                let _ = fs::remove_dir(&unlocked);
                return Err(staging_err(e));
            }
        };
        let staging = Self { path, merge, armed: true, _lock: lock };
        // 0o777 less the umask, like mkdir(1): this becomes a new destination.
        fs::DirBuilder::new().mode(0o777).create(staging.tree()).map_err(staging_err)?;
        fs::DirBuilder::new().mode(0o700).create(staging.old()).map_err(staging_err)?;
        remove_stale_staging(&parent, &staging.path);
        Ok(staging)
    }

    /// Where the received tree is written.
    fn tree(&self) -> PathBuf {
        self.path.join("tree")
    }

    /// Where a merge moves what it replaces.
    fn old(&self) -> PathBuf {
        self.path.join("old")
    }

    /// Moves the staged tree into `dest`, then applies the directories'
    /// permissions and times (last, so read-only directories do not get in
    /// the way and their times stay as sent).
    fn finish(self, dest: &Path, dirs: &[EntryMeta], stats: &mut ReceiveStats) -> Result<(), ReceiveError> {
        self.finish_with(dest, dirs, stats, &mut |_| Ok(()))
    }

    /// [`Staging::finish`], calling `before_move` before each rename of the
    /// merge (tests inject failures there).
    fn finish_with(
        mut self,
        dest: &Path,
        dirs: &[EntryMeta],
        stats: &mut ReceiveStats,
        before_move: &mut dyn FnMut(&Path) -> io::Result<()>,
    ) -> Result<(), ReceiveError> {
        let finish_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ReceiveError::Finish { path, source }
        };
        let mut merge = self.merge;
        if !merge {
            if let Err(error) = fs::rename(self.tree(), dest) {
                // Another receiver of the same build (the daemon sends one stream
                // per platform of a multi-platform build) created the destination
                // meanwhile: merge into it, as if it had been there from the start.
                let taken = matches!(error.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST));
                if !(taken && fs::symlink_metadata(dest).is_ok_and(|meta| meta.is_dir())) {
                    return Err(finish_err(dest)(error));
                }
                merge = true;
            }
        }
        if merge {
            let mut merger = Merger { old: self.old(), journal: Vec::new(), before_move };
            if let Err((path, source)) = merger.merge(&self.tree(), dest) {
                if let Err((kept, rollback)) = merger.undo() {
                    // What could not be put back is in the staging folder,
                    // which therefore stays.
                    self.armed = false;
                    return Err(ReceiveError::MergeUndo { path, source, kept, rollback });
                }
                return Err(ReceiveError::Finish { path, source });
            }
        }
        for dir in dirs.iter().rev() {
            let path = dest.join(&dir.path);
            open_dir_nofollow(&path).and_then(|dir_file| dir.apply(&dir_file)).map_err(finish_err(&path))?;
        }
        stats.dirs = dirs.len() as u64;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `flock(2)` on an open directory.
fn lock(dir: &File, operation: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `dir` keeps open.
    match unsafe { libc::flock(dir.as_raw_fd(), operation) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Removes staging folders in `parent` that no receiver holds locked (left
/// by a process that was killed), except `ours`. Best effort: a folder that
/// cannot be removed is left for next time.
fn remove_stale_staging(parent: &Path, ours: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_staging = name
            .to_str()
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        let path = entry.path();
        if !is_staging || path == ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(dir) = open_dir_nofollow(&path) else { continue };
        if lock(&dir, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
            tracing::debug!(path = %path.display(), "removing a stale staging folder");
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// One step of a merge, undone in reverse on failure.
enum Moved {
    /// A staged entry moved to `to`, where nothing was.
    Placed { from: PathBuf, to: PathBuf },
    /// The destination's entry at `to` moved to `backup`, so that `from`
    /// could take its place.
    Replaced { from: PathBuf, to: PathBuf, backup: PathBuf, placed: bool },
}

/// Moves every entry of a staged tree into the destination, merging
/// directories that exist on both sides and replacing anything else, and
/// can undo it all.
struct Merger<'a> {
    old: PathBuf,
    journal: Vec<Moved>,
    before_move: &'a mut dyn FnMut(&Path) -> io::Result<()>,
}

impl Merger<'_> {
    fn merge(&mut self, src: &Path, dst: &Path) -> Result<(), (PathBuf, io::Error)> {
        let entries = fs::read_dir(src).map_err(|e| (src.to_owned(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (src.to_owned(), e))?;
            let from = entry.path();
            let to = dst.join(entry.file_name());
            let from_is_dir = entry.file_type().map_err(|e| (from.clone(), e))?.is_dir();
            match fs::symlink_metadata(&to) {
                // Never descend into (or through) a symlink of the destination.
                Ok(existing) if existing.is_dir() && from_is_dir => self.merge(&from, &to)?,
                Ok(_) => {
                    // Moved aside first (never deleted), so a failure can put it back.
                    let backup = self.old.join(self.journal.len().to_string());
                    self.rename(&to, &backup)?;
                    self.journal.push(Moved::Replaced { from: from.clone(), to: to.clone(), backup, placed: false });
                    self.rename(&from, &to)?;
                    if let Some(Moved::Replaced { placed, .. }) = self.journal.last_mut() {
                        *placed = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.rename(&from, &to)?;
                    self.journal.push(Moved::Placed { from, to });
                }
                Err(e) => return Err((to, e)),
            }
        }
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), (PathBuf, io::Error)> {
        (self.before_move)(to).and_then(|()| fs::rename(from, to)).map_err(|e| (to.to_owned(), e))
    }

    /// Puts everything back as it was, newest move first. On failure,
    /// returns where the remaining original content is and why.
    fn undo(&mut self) -> Result<(), (PathBuf, io::Error)> {
        while let Some(moved) = self.journal.pop() {
            let undone = match &moved {
                Moved::Placed { from, to } => fs::rename(to, from),
                Moved::Replaced { from, to, backup, placed } => {
                    (if *placed { fs::rename(to, from) } else { Ok(()) }).and_then(|()| fs::rename(backup, to))
                }
            };
            if let Err(e) = undone {
                return Err((self.old.clone(), e));
            }
        }
        Ok(())
    }
}

fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(File::from(nix::fcntl::open(path, flags, Mode::empty())?))
}

/// The metadata of a received directory or regular file, applied once its
/// content is complete (a directory's after the whole tree is in place).
struct EntryMeta {
    /// Relative to the destination.
    path: PathBuf,
    perm: libc::mode_t,
    mod_time: i64,
}

impl EntryMeta {
    /// The path for messages.
    fn shown(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Sets the permissions and times on the open entry.
    fn apply(&self, file: &File) -> io::Result<()> {
        nix::sys::stat::fchmod(file, Mode::from_bits_truncate(self.perm))?;
        let time = timespec(self.mod_time);
        nix::sys::stat::futimens(file, &time, &time)?;
        Ok(())
    }
}

/// fsutil's ordering rule: each path's parent is a directory on the chain
/// currently being filled, and names increase within a directory.
#[derive(Default)]
struct OrderValidator {
    /// (directory, last name seen in it); the first is the root, `""`.
    stack: Vec<(Vec<u8>, Vec<u8>)>,
}

impl OrderValidator {
    /// Checks `path` (bytes: names need not be UTF-8, as fsutil's are Go
    /// strings) and records it.
    fn check(
        &mut self,
        path: &[u8],
        is_dir: bool,
        non_dir_kind: impl Fn(&[u8]) -> Option<&'static str>,
    ) -> Result<(), ReceiveError> {
        let shown = || String::from_utf8_lossy(path).into_owned();
        if path.starts_with(b"/") {
            return Err(ReceiveError::AbsolutePath { path: shown() });
        }
        // Go's path.Clean would change a path with an empty, `.` or
        // (after the start) `..` element: such a path is not clean.
        let mut components = path.split(|&b| b == b'/');
        let leading_dotdot = components.clone().take_while(|c| *c == b"..").count();
        let unclean = components.by_ref().skip(leading_dotdot).any(|c| c.is_empty() || c == b"." || c == b"..");
        if path.is_empty() || path.contains(&0) || unclean {
            return Err(ReceiveError::UncleanPath { path: shown() });
        }
        if leading_dotdot > 0 {
            return Err(ReceiveError::EscapingPath { path: shown() });
        }
        if self.stack.is_empty() {
            self.stack.push((Vec::new(), Vec::new()));
        }
        let (dir, base) = match path.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&path[..slash], &path[slash + 1..]),
            None => (&b""[..], path),
        };
        while self.stack.len() > 1 && self.stack.last().is_some_and(|(d, _)| d != dir) {
            self.stack.pop();
        }
        let Some((current, last)) = self.stack.last_mut() else {
            return Err(ReceiveError::Protocol("validator lost its root"));
        };
        if current != dir {
            let reason =
                non_dir_kind(dir).unwrap_or("was not received as a directory just before (out of order or missing)");
            let parent = String::from_utf8_lossy(dir).into_owned();
            return Err(ReceiveError::BadParent { path: shown(), parent, reason });
        }
        // Bytewise, as fsutil sorts names.
        if base <= last.as_slice() {
            let last = String::from_utf8_lossy(last);
            let previous =
                if dir.is_empty() { last.into_owned() } else { format!("{}/{last}", String::from_utf8_lossy(dir)) };
            return Err(ReceiveError::OutOfOrder { path: shown(), previous });
        }
        *last = base.to_owned();
        if is_dir {
            self.stack.push((path.to_owned(), Vec::new()));
        }
        Ok(())
    }
}

/// The writer's state; runs on a blocking thread.
struct Writer {
    root: PathBuf,
    out: mpsc::Sender<Packet>,
    validator: OrderValidator,
    /// Regular files received (valid hard-link targets).
    regular: HashSet<Vec<u8>>,
    /// Other non-directories, for clear errors about bad parents.
    others: HashMap<Vec<u8>, &'static str>,
    next_id: u32,
    listing_done: bool,
    /// Regular files waiting to be requested, and those being received.
    waiting: VecDeque<(u32, EntryMeta)>,
    open: HashMap<u32, (File, EntryMeta)>,
    dirs: Vec<EntryMeta>,
    stats: ReceiveStats,
}

impl Writer {
    fn new(root: PathBuf, out: mpsc::Sender<Packet>) -> Self {
        Self {
            root,
            out,
            validator: OrderValidator::default(),
            regular: HashSet::new(),
            others: HashMap::new(),
            next_id: 0,
            listing_done: false,
            waiting: VecDeque::new(),
            open: HashMap::new(),
            dirs: Vec::new(),
            stats: ReceiveStats::default(),
        }
    }

    /// Receives the listing and the content of every file; returns when
    /// the tree is complete in the staging folder.
    fn receive_tree(&mut self, rx: &mut mpsc::Receiver<Incoming>) -> Result<(), ReceiveError> {
        loop {
            if self.listing_done && self.waiting.is_empty() && self.open.is_empty() {
                return Ok(());
            }
            let (packet, _permit) = rx.blocking_recv().ok_or(ReceiveError::SenderClosed)?;
            let packet = packet.map_err(stream_error)?;
            match PacketType::try_from(packet.r#type) {
                Ok(PacketType::PacketStat) => {
                    if self.listing_done {
                        return Err(ReceiveError::Protocol("STAT after the end of the listing"));
                    }
                    match packet.stat {
                        None => self.listing_done = true,
                        Some(stat) => self.add_entry(stat)?,
                    }
                }
                Ok(PacketType::PacketData) => self.add_data(packet.id, &packet.data)?,
                other => return Err(unexpected(other, &packet)),
            }
            self.request_more()?;
        }
    }

    /// Waits for the sender's `FIN` answering ours.
    fn await_fin(&mut self, rx: &mut mpsc::Receiver<Incoming>) -> Result<(), ReceiveError> {
        let (packet, _permit) = rx.blocking_recv().ok_or(ReceiveError::SenderClosed)?;
        let packet = packet.map_err(stream_error)?;
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketFin) => Ok(()),
            Ok(PacketType::PacketStat | PacketType::PacketData) => {
                Err(ReceiveError::Protocol("packets after the transfer was complete"))
            }
            other => Err(unexpected(other, &packet)),
        }
    }

    fn send(&self, packet: Packet) -> Result<(), ReceiveError> {
        self.out.blocking_send(packet).map_err(|_| ReceiveError::OutputClosed)
    }

    fn add_entry(&mut self, mut stat: Stat) -> Result<(), ReceiveError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mode = stat.mode;
        let is_dir = mode & file_mode::DIR != 0;
        // Paths are bytes throughout (a name need not be UTF-8); text only
        // in messages.
        let raw = std::mem::take(&mut stat.path).to_vec();
        let linkname = std::mem::take(&mut stat.linkname).to_vec();
        let others = &self.others;
        let regular = &self.regular;
        self.validator.check(&raw, is_dir, |parent| {
            others.get(parent).copied().or_else(|| regular.contains(parent).then_some("is a file"))
        })?;

        let path = String::from_utf8_lossy(&raw).into_owned();
        let rel = PathBuf::from(OsStr::from_bytes(&raw));
        let target = self.root.join(&rel);
        let write_err = |source| ReceiveError::Write { path: path.clone(), source };
        let perm = (mode & file_mode::PERM) as libc::mode_t;
        // Applied as the entry is created rather than held until its
        // metadata is (a directory's at the very end): a daemon could
        // otherwise make us hold megabytes per folder for the whole transfer.
        let xattrs: Vec<_> =
            stat.xattrs.into_iter().filter(|(k, v)| k.starts_with("user.") && v.len() <= XATTR_SIZE_MAX).collect();
        let meta = |path| EntryMeta { path, perm, mod_time: stat.mod_time };

        if is_dir {
            // Owner-writable while filling; the sent mode is applied at the end.
            fs::DirBuilder::new().mode(0o700).create(&target).map_err(write_err)?;
            set_user_xattrs(&open_dir_nofollow(&target).map_err(write_err)?, &xattrs);
            self.dirs.push(meta(rel));
        } else if mode & file_mode::SYMLINK != 0 {
            if linkname.is_empty() {
                return Err(ReceiveError::EmptySymlink { path });
            }
            std::os::unix::fs::symlink(OsStr::from_bytes(&linkname), &target).map_err(write_err)?;
            set_times_nofollow(&target, stat.mod_time).map_err(write_err)?;
            self.others.insert(raw, "is a symlink");
            self.stats.symlinks += 1;
        } else if mode & file_mode::NAMED_PIPE != 0 {
            nix::unistd::mkfifo(&target, Mode::from_bits_truncate(perm)).map_err(|e| write_err(e.into()))?;
            set_times_nofollow(&target, stat.mod_time).map_err(write_err)?;
            self.others.insert(raw, "is a named pipe");
            self.stats.fifos += 1;
        } else if !file_mode::can_request_data(mode) {
            // Devices, sockets and unknown types: never created.
            self.others.insert(raw, "is a special file");
            self.stats.skipped_special += 1;
        } else if !linkname.is_empty() {
            if !self.regular.contains(&linkname) {
                let target = String::from_utf8_lossy(&linkname).into_owned();
                return Err(ReceiveError::BadHardlink { path, target });
            }
            fs::hard_link(self.root.join(OsStr::from_bytes(&linkname)), &target).map_err(write_err)?;
            self.others.insert(raw, "is a file");
            self.stats.hardlinks += 1;
        } else {
            // Created now so hard links can point at it; filled on request.
            set_user_xattrs(&create_file(&target).map_err(write_err)?, &xattrs);
            self.regular.insert(raw);
            self.stats.files += 1;
            self.waiting.push_back((id, meta(rel)));
        }
        Ok(())
    }

    fn request_more(&mut self) -> Result<(), ReceiveError> {
        while self.open.len() < REQUEST_WINDOW {
            let Some((id, pending)) = self.waiting.pop_front() else {
                break;
            };
            let file = fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(self.root.join(&pending.path))
                .map_err(|source| ReceiveError::Write { path: pending.shown(), source })?;
            self.open.insert(id, (file, pending));
            self.send(Packet { r#type: PacketType::PacketReq as i32, id, ..Packet::default() })?;
        }
        Ok(())
    }

    fn add_data(&mut self, id: u32, data: &[u8]) -> Result<(), ReceiveError> {
        if !data.is_empty() {
            let Some((file, pending)) = self.open.get_mut(&id) else {
                return Err(ReceiveError::UnexpectedData { id });
            };
            file.write_all(data).map_err(|source| ReceiveError::Write { path: pending.shown(), source })?;
            self.stats.bytes += data.len() as u64;
            return Ok(());
        }
        let Some((file, pending)) = self.open.remove(&id) else {
            return Err(ReceiveError::UnexpectedData { id });
        };
        pending.apply(&file).map_err(|source| ReceiveError::Write { path: pending.shown(), source })
    }
}

/// The error for a packet type that is wrong where it arrived.
fn unexpected(kind: Result<PacketType, prost::UnknownEnumValue>, packet: &Packet) -> ReceiveError {
    match kind {
        Ok(PacketType::PacketErr) => ReceiveError::Sender(String::from_utf8_lossy(&packet.data).into_owned()),
        Ok(PacketType::PacketFin) => ReceiveError::Protocol("FIN before the transfer was complete"),
        Ok(PacketType::PacketReq) => ReceiveError::Protocol("REQ sent to the receiver"),
        Ok(PacketType::PacketStat | PacketType::PacketData) => {
            ReceiveError::Protocol("packets after the transfer was complete")
        }
        Err(_) => ReceiveError::Protocol("unknown packet type"),
    }
}

/// Creates a new, empty, owner-only file (never through a symlink).
fn create_file(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Applies `user.*` extended attributes; failures (file systems without
/// xattrs) are ignored, as fsutil ignores them.
fn set_user_xattrs(file: &File, xattrs: &[(String, bytes::Bytes)]) {
    use xattr::FileExt;
    for (key, value) in xattrs {
        let _ = file.set_xattr(key, value);
    }
}

fn set_times_nofollow(path: &Path, mod_time: i64) -> io::Result<()> {
    let time = timespec(mod_time);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &time, &time, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// Nanoseconds since the epoch as a `timespec` (atime and mtime both get it,
/// as fsutil does).
fn timespec(nanos: i64) -> TimeSpec {
    TimeSpec::new(nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsync::send::{send_diffcopy, SendError, TransferProgress, CHUNK_SIZE};
    use crate::fsync::test_support::write;
    use crate::fsync::walk::{FilterOptions, Walker};
    use std::collections::BTreeMap;
    use std::ops::ControlFlow;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::sync::Arc;
    use tokio_stream::wrappers::ReceiverStream;

    /// Sender and receiver connected in-process.
    async fn transfer(src: &Path, dest: &Path) -> (Result<(), SendError>, Result<ReceiveStats, ReceiveError>, u64) {
        let walker = Walker::new(src, &FilterOptions::default()).expect("walker");
        let (to_receiver, from_sender) = mpsc::channel(16);
        let (to_sender, from_receiver) = mpsc::channel(16);
        let progress = Arc::new(TransferProgress::default());
        let sender = tokio::spawn(send_diffcopy(
            walker,
            ReceiverStream::new(from_receiver).map(Ok),
            to_receiver,
            Arc::clone(&progress),
        ));
        let received = receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, dest).await;
        let sent = sender.await.expect("sender task");
        (sent, received, progress.bytes())
    }

    /// Everything the walker reports about a tree, keyed by path, with
    /// file contents; the fields the receiver deliberately changes are
    /// normalised.
    fn snapshot(root: &Path) -> BTreeMap<String, (Stat, Vec<u8>)> {
        let walker = Walker::new(root, &FilterOptions::default()).expect("walker");
        let mut out = BTreeMap::new();
        walker
            .walk(&mut |mut stat| {
                let content = if stat.mode & file_mode::TYPE == 0 && stat.linkname.is_empty() {
                    fs_err::read(root.join(std::ffi::OsStr::from_bytes(&stat.path))).expect("read")
                } else {
                    Vec::new()
                };
                stat.mode &= !(file_mode::SETUID | file_mode::SETGID | file_mode::STICKY);
                stat.xattrs.retain(|k, _| k.starts_with("user."));
                out.insert(String::from_utf8_lossy(&stat.path).into_owned(), (stat, content));
                ControlFlow::Continue(())
            })
            .expect("walk");
        out
    }

    fn build_tree(root: &Path) {
        write(root, "a/b/deep.txt", b"deep");
        write(root, "a-b", b"dash");
        write(root, "empty", b"");
        let big: Vec<u8> = (0..CHUNK_SIZE * 3 + 7).map(|i| (i % 251) as u8).collect();
        write(root, "big.bin", &big);
        for i in 0..150 {
            // More files than the request window.
            write(root, &format!("many/{i:03}"), format!("file {i}").as_bytes());
        }
        fs_err::create_dir_all(root.join("emptydir")).expect("mkdir");
        symlink("a/b/deep.txt", root.join("rel-link")).expect("symlink");
        symlink("/etc/passwd", root.join("abs-link")).expect("symlink");
        symlink("nowhere", root.join("dangling")).expect("symlink");
        std::fs::hard_link(root.join("a/b/deep.txt"), root.join("hard")).expect("link");
        std::fs::hard_link(root.join("a/b/deep.txt"), root.join("many/hard")).expect("link");
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).expect("mkfifo");
        write(root, "suid", b"s");
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        write(root, "ro/inside", b"r");
        std::fs::set_permissions(root.join("ro/inside"), std::fs::Permissions::from_mode(0o444)).expect("chmod");
        std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let _ = xattr::set(root.join("empty"), "user.note", b"kept");
    }

    fn staging_leftovers(dir: &Path) -> Vec<String> {
        fs_err::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".fbuild-receive-"))
            .collect()
    }

    #[tokio::test]
    async fn round_trip_copies_the_tree() {
        let src = tempfile::tempdir().expect("tempdir");
        build_tree(src.path());
        let out = tempfile::tempdir().expect("tempdir");
        let dest = out.path().join("dest");

        let (sent, received, bytes) = transfer(src.path(), &dest).await;
        sent.expect("sender succeeds");
        let stats = received.expect("receiver succeeds");

        let want = snapshot(src.path());
        let got = snapshot(&dest);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (path, (want_stat, want_content)) in &want {
            let (got_stat, got_content) = &got[path];
            assert_eq!(got_stat, want_stat, "metadata of {path}");
            assert_eq!(got_content, want_content, "content of {path}");
        }
        // The setuid bit is dropped.
        let suid = fs_err::metadata(dest.join("suid")).expect("stat");
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&suid.permissions()) & 0o7777, 0o755);
        assert_eq!(
            stats,
            ReceiveStats {
                // big.bin, deep.txt, a-b, empty, suid, ro/inside and 150 more.
                files: 156,
                // a, a/b, emptydir, many, ro.
                dirs: 5,
                symlinks: 3,
                hardlinks: 2,
                fifos: 1,
                skipped_special: 0,
                bytes: (CHUNK_SIZE * 3 + 7 + 4 + 4 + 1 + 1) as u64
                    + (0..150).map(|i| format!("file {i}").len() as u64).sum::<u64>(),
            }
        );
        assert!(bytes > stats.bytes, "progress counts STATs and DATA");
        assert!(staging_leftovers(out.path()).is_empty());
    }

    #[tokio::test]
    async fn merges_into_an_existing_destination() {
        let src = tempfile::tempdir().expect("tempdir");
        write(src.path(), "a/new", b"new");
        write(src.path(), "f", b"file now");
        write(src.path(), "d/inside", b"in");
        write(src.path(), "same", b"replaced");

        let outside = tempfile::tempdir().expect("tempdir");
        let dest = tempfile::tempdir().expect("tempdir");
        write(dest.path(), "keep", b"untouched");
        write(dest.path(), "a/old", b"old");
        write(dest.path(), "f/was-a-dir", b"x");
        write(dest.path(), "same", b"before");
        // A symlink where the output has a directory must be replaced, not
        // followed.
        symlink(outside.path(), dest.path().join("d")).expect("symlink");

        let (sent, received, _) = transfer(src.path(), dest.path()).await;
        sent.expect("sender succeeds");
        received.expect("receiver succeeds");

        let read = |rel: &str| fs_err::read(dest.path().join(rel)).expect("read");
        assert_eq!(read("keep"), b"untouched");
        assert_eq!(read("a/old"), b"old");
        assert_eq!(read("a/new"), b"new");
        assert_eq!(read("f"), b"file now");
        assert_eq!(read("same"), b"replaced");
        assert_eq!(read("d/inside"), b"in");
        assert!(fs_err::symlink_metadata(dest.path().join("d")).expect("stat").is_dir());
        assert_eq!(fs_err::read_dir(outside.path()).expect("read dir").count(), 0);
        assert!(staging_leftovers(dest.path()).is_empty());
    }

    /// The destination as a user sees it: every path with its type,
    /// permissions, content or link target (directory times are left out:
    /// moving entries in and out of a folder changes its time).
    fn contents(root: &Path) -> BTreeMap<String, (u32, Vec<u8>, String)> {
        snapshot(root)
            .into_iter()
            .filter(|(path, _)| !path.starts_with(STAGING_PREFIX))
            .map(|(path, (stat, content))| {
                (path, (stat.mode, content, String::from_utf8_lossy(&stat.linkname).into_owned()))
            })
            .collect()
    }

    /// A destination and a staged output that overlap in every way a merge
    /// handles: a file over a file, a file over a folder, a folder over a
    /// file and over a symlink, folders merged, new entries.
    fn merge_case() -> (tempfile::TempDir, tempfile::TempDir, Staging) {
        let outside = tempfile::tempdir().expect("tempdir");
        let dest = tempfile::tempdir().expect("tempdir");
        write(dest.path(), "keep", b"untouched");
        write(dest.path(), "a/old", b"old");
        write(dest.path(), "f/was-a-dir", b"x");
        write(dest.path(), "same", b"before");
        write(dest.path(), "x", b"was a file");
        symlink(outside.path(), dest.path().join("d")).expect("symlink");
        let staging = Staging::create(dest.path()).expect("staging");
        let tree = staging.tree();
        write(&tree, "a/new", b"new");
        write(&tree, "f", b"file now");
        write(&tree, "d/inside", b"in");
        write(&tree, "same", b"replaced");
        write(&tree, "x/y", b"folder now");
        write(&tree, "z", b"new file");
        (outside, dest, staging)
    }

    /// A merge that fails at any of its renames leaves the destination as
    /// it was: nothing of the output, nothing of the user's lost, no
    /// staging folder. (The old merge moved entries one by one and deleted
    /// a replaced folder before renaming its replacement in.)
    #[test]
    fn a_merge_that_fails_part_way_changes_nothing() {
        let (_outside, dest, staging) = merge_case();
        let mut renames = 0;
        staging
            .finish_with(dest.path(), &[], &mut ReceiveStats::default(), &mut |_| {
                renames += 1;
                Ok(())
            })
            .expect("the merge succeeds");
        let merged = contents(dest.path());
        assert_eq!(merged["f"].1, b"file now");
        assert_eq!(merged["x/y"].1, b"folder now");
        assert_eq!(merged["keep"].1, b"untouched");
        assert_eq!(merged["a/old"].1, b"old");
        assert!(staging_leftovers(dest.path()).is_empty());
        assert!(renames >= 9, "{renames} renames");

        for fail_at in 0..renames {
            let (outside, dest, staging) = merge_case();
            let before = contents(dest.path());
            let mut calls = 0;
            let result = staging.finish_with(dest.path(), &[], &mut ReceiveStats::default(), &mut |to| {
                calls += 1;
                match calls > fail_at {
                    true => Err(io::Error::other(format!("injected failure at {}", to.display()))),
                    false => Ok(()),
                }
            });
            let err = result.expect_err("the injected failure fails the merge");
            assert!(matches!(err, ReceiveError::Finish { .. }), "{err}");
            assert_eq!(contents(dest.path()), before, "after a failure at rename {fail_at}");
            assert!(staging_leftovers(dest.path()).is_empty(), "after a failure at rename {fail_at}");
            assert_eq!(fs_err::read_dir(outside.path()).expect("read dir").count(), 0);
        }
    }

    /// A staging folder left by a killed process (no lock held) is removed
    /// by the next receiver writing there; one in use is not.
    #[tokio::test]
    async fn stale_staging_folders_are_removed() {
        let out = tempfile::tempdir().expect("tempdir");
        let dest = out.path().join("dest");
        let stale_beside = out.path().join(format!("{STAGING_PREFIX}{}", "0".repeat(32)));
        write(&stale_beside, "tree/big", b"left by a killed fbuild");
        let user_folder = out.path().join(format!("{STAGING_PREFIX}mine"));
        write(&user_folder, "f", b"not ours: the name does not match");
        let in_use = Staging::create(&out.path().join("other")).expect("staging");

        let src = tempfile::tempdir().expect("tempdir");
        write(src.path(), "f", b"x");
        let (sent, received, _) = transfer(src.path(), &dest).await;
        sent.expect("sender succeeds");
        received.expect("receiver succeeds");
        assert!(!stale_beside.exists());
        assert!(user_folder.exists() && in_use.path.exists());

        // Inside an existing destination too (where a merge stages).
        let stale_inside = dest.join(format!("{STAGING_PREFIX}{}", "a".repeat(32)));
        write(&stale_inside, "tree/f", b"stale");
        let (sent, received, _) = transfer(src.path(), &dest).await;
        sent.expect("sender succeeds");
        received.expect("receiver succeeds");
        assert!(staging_leftovers(&dest).is_empty());
        drop(in_use);
        assert_eq!(staging_leftovers(out.path()), [format!("{STAGING_PREFIX}mine")]);
    }

    /// The daemon's packets wait for the writer in a queue bounded in
    /// bytes: with the writer stuck, the pump stops taking packets once
    /// INCOMING_BYTES are queued (it took 256 packets of any size, up to
    /// 4 GiB).
    #[tokio::test]
    async fn the_incoming_queue_is_bounded_in_bytes() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const MIB: usize = 1 << 20;
        let out = tempfile::tempdir().expect("tempdir");
        let taken = Arc::new(AtomicUsize::new(0));
        // Two files, then 1 MiB DATA packets for the first, forever.
        let listing = vec![stat_packet(file("a")), stat_packet(file("b")), stat_packet_end()];
        let data =
            Packet { r#type: PacketType::PacketData as i32, id: 0, data: vec![7; MIB].into(), ..Packet::default() };
        let source = futures::stream::iter(listing).chain(futures::stream::repeat(data)).map({
            let taken = Arc::clone(&taken);
            move |packet| {
                taken.fetch_add(1, Ordering::SeqCst);
                Ok(packet)
            }
        });
        // Nobody reads our requests: the writer blocks on its second REQ
        // (the first fills this one-packet queue) and reads nothing more.
        let (to_sender, _requests) = mpsc::channel(1);
        let dest = out.path().join("dest");
        let receiver = tokio::spawn(async move { receive_diffcopy(source, to_sender, &dest).await });
        // Wait until the pump has run and then stalled (the count holds for
        // 300 ms), however slow the machine; the upper bound below holds at
        // any moment, so a stall that is not final cannot hide a breach.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (mut queued, mut steady) = (0, 0);
        while queued <= 8 || steady < 30 {
            assert!(std::time::Instant::now() < deadline, "the pump runs ({queued} packets taken)");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let now = taken.load(Ordering::SeqCst);
            steady = if now == queued { steady + 1 } else { 0 };
            queued = now;
        }
        receiver.abort();
        // The budget, one packet that waits for it, and the listing.
        assert!(queued <= INCOMING_BYTES / MIB + 1 + 3, "{queued} packets of 1 MiB taken");
    }

    /// `user.*` attributes are set as each entry is created (nothing is
    /// held until the end of the transfer), and values too large for Linux
    /// to store are dropped on arrival.
    #[tokio::test]
    async fn xattrs_are_applied_at_once_and_oversized_ones_dropped() {
        let mut small = dir("d");
        small.xattrs.insert("user.small".into(), vec![1; 100].into());
        small.xattrs.insert("user.huge".into(), vec![2; 2 << 20].into());
        small.xattrs.insert("trusted.x".into(), vec![3; 10].into());
        let mut inner = file("d/f");
        inner.xattrs.insert("user.on-file".into(), b"v".to_vec().into());
        let (result, out, _outside) = receive_from(vec![small, inner], b"content").await;
        result.expect("receiver succeeds");
        let dest = out.path().join("dest");
        let names = |path: &Path| {
            let mut names: Vec<String> =
                xattr::list(path).expect("list").map(|n| n.to_string_lossy().into_owned()).collect();
            names.sort();
            names
        };
        if xattr::set(out.path(), "user.probe", b"1").is_err() {
            return; // no user xattrs on this file system
        }
        assert_eq!(names(&dest.join("d")), ["user.small"]);
        assert_eq!(xattr::get(dest.join("d"), "user.small").expect("get"), Some(vec![1; 100]));
        assert_eq!(names(&dest.join("d/f")), ["user.on-file"]);
    }

    /// A folder's attributes are on disk while the transfer is still
    /// running: the receiver does not hold them (it held every folder's
    /// until the end: 64 folders with a 2 MiB attribute were +134 MiB).
    #[tokio::test]
    async fn folder_xattrs_are_not_held_until_the_end() {
        let out = tempfile::tempdir().expect("tempdir");
        if xattr::set(out.path(), "user.probe", b"1").is_err() {
            return; // no user xattrs on this file system
        }
        let mut folder = dir("d");
        folder.xattrs.insert("user.note".into(), vec![1; 1000].into());
        let (to_receiver, from_sender) = mpsc::channel(8);
        let (to_sender, _requests) = mpsc::channel(8);
        to_receiver.send(stat_packet(folder)).await.expect("queue");
        let dest = out.path().join("dest");
        let receiver =
            tokio::spawn(
                async move { receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, &dest).await },
            );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let on_disk = loop {
            let staged = staging_leftovers(out.path()).first().map(|name| out.path().join(name).join("tree/d"));
            if let Some(Ok(Some(value))) = staged.map(|d| xattr::get(d, "user.note")) {
                break value;
            }
            assert!(std::time::Instant::now() < deadline, "the attribute is still held");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(on_disk, vec![1; 1000]);
        drop(to_receiver);
        assert!(matches!(receiver.await.expect("task"), Err(ReceiveError::SenderClosed)));
    }

    #[tokio::test]
    async fn refuses_a_file_as_destination() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "file", b"x");
        let (to_receiver, from_sender) = mpsc::channel(1);
        drop(to_receiver);
        let (to_sender, _from_receiver) = mpsc::channel(4);
        let result =
            receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, &dir.path().join("file")).await;
        assert!(matches!(result, Err(ReceiveError::DestinationNotDirectory { .. })), "{result:?}");
    }

    fn stat(path: &str, mode: u32) -> Stat {
        Stat { path: path.to_owned().into(), mode, ..Stat::default() }
    }

    fn dir(path: &str) -> Stat {
        stat(path, file_mode::DIR | 0o755)
    }

    fn file(path: &str) -> Stat {
        stat(path, 0o644)
    }

    fn link(path: &str, target: &str) -> Stat {
        Stat { linkname: target.to_owned().into(), ..stat(path, file_mode::SYMLINK | 0o777) }
    }

    fn stat_packet(stat: Stat) -> Packet {
        Packet { r#type: PacketType::PacketStat as i32, stat: Some(stat), ..Packet::default() }
    }

    /// A scripted (possibly hostile) sender: sends `stats`, then answers
    /// every request with `content` and the final FIN.
    async fn receive_from(
        stats: Vec<Stat>,
        content: &'static [u8],
    ) -> (Result<ReceiveStats, ReceiveError>, tempfile::TempDir, tempfile::TempDir) {
        let out = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let dest = out.path().join("dest");
        let (to_receiver, from_sender) = mpsc::channel(stats.len() + 8);
        let (to_sender, mut from_receiver) = mpsc::channel::<Packet>(256);
        for stat in stats {
            to_receiver.send(stat_packet(stat)).await.expect("queue");
        }
        to_receiver.send(stat_packet_end()).await.expect("queue");
        let responder = tokio::spawn(async move {
            while let Some(packet) = from_receiver.recv().await {
                let reply = match PacketType::try_from(packet.r#type) {
                    Ok(PacketType::PacketReq) => vec![
                        Packet {
                            r#type: PacketType::PacketData as i32,
                            id: packet.id,
                            data: content.into(),
                            ..Packet::default()
                        },
                        Packet { r#type: PacketType::PacketData as i32, id: packet.id, ..Packet::default() },
                    ],
                    Ok(PacketType::PacketFin) => {
                        vec![Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() }]
                    }
                    _ => return,
                };
                for p in reply {
                    if to_receiver.send(p).await.is_err() {
                        return;
                    }
                }
            }
        });
        let result = receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, &dest).await;
        responder.abort();
        if result.is_err() {
            assert!(!dest.exists(), "a refused transfer leaves no destination");
        }
        assert!(staging_leftovers(out.path()).is_empty(), "staging folder removed");
        (result, out, outside)
    }

    fn stat_packet_end() -> Packet {
        Packet { r#type: PacketType::PacketStat as i32, ..Packet::default() }
    }

    #[tokio::test]
    async fn hostile_paths_are_refused() {
        let cases: Vec<(Vec<Stat>, &str)> = vec![
            (vec![file("/etc/passwd")], "AbsolutePath"),
            (vec![file("..")], "EscapingPath"),
            (vec![file("../x")], "EscapingPath"),
            (vec![dir("a"), file("a/../../x")], "UncleanPath"),
            (vec![file(".")], "UncleanPath"),
            (vec![file("")], "UncleanPath"),
            (vec![file("a//b")], "UncleanPath"),
            (vec![file("a/")], "UncleanPath"),
            (vec![file("a\0b")], "UncleanPath"),
            (vec![link("l", "/tmp"), file("l/x")], "BadParent"),
            (vec![file("f"), file("f/x")], "BadParent"),
            (vec![file("a/b")], "BadParent"),
            (vec![dir("a"), file("b"), file("a/c")], "BadParent"),
            (vec![file("b"), file("a")], "OutOfOrder"),
            (vec![file("a"), file("a")], "OutOfOrder"),
            (vec![dir("a"), dir("a")], "OutOfOrder"),
            (vec![Stat { linkname: "missing".into(), ..file("h") }], "BadHardlink"),
            (vec![dir("d"), Stat { linkname: "d".into(), ..file("h") }], "BadHardlink"),
            (vec![link("l", "x"), Stat { linkname: "l".into(), ..file("m") }], "BadHardlink"),
            (vec![Stat { linkname: "../../etc/passwd".into(), ..file("h") }], "BadHardlink"),
            (vec![link("l", "")], "EmptySymlink"),
        ];
        for (stats, want) in cases {
            let paths: Vec<String> = stats.iter().map(|s| String::from_utf8_lossy(&s.path).into_owned()).collect();
            let (result, _out, _outside) = receive_from(stats, b"").await;
            let err = result.expect_err("must be refused");
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "{paths:?}: expected {want}, got {got} ({err})");
        }
    }

    #[tokio::test]
    async fn refusal_messages_say_what_is_wrong() {
        let (result, _o, _x) = receive_from(vec![link("l", "/tmp"), file("l/x")], b"").await;
        assert_eq!(result.expect_err("refused").to_string(), "refusing \"l/x\": its parent \"l\" is a symlink");
        let (result, _o, _x) = receive_from(vec![file("b"), file("a")], b"").await;
        assert_eq!(result.expect_err("refused").to_string(), "refusing \"a\": out of order after \"b\"");
    }

    #[tokio::test]
    async fn special_bits_and_devices_are_not_created() {
        let stats = vec![
            stat("dev", file_mode::DEVICE | file_mode::CHAR_DEVICE | 0o666),
            stat("sticky", file_mode::DIR | file_mode::STICKY | 0o777),
            stat("suid", file_mode::SETUID | file_mode::SETGID | 0o755),
        ];
        let (result, out, _outside) = receive_from(stats, b"payload").await;
        let stats = result.expect("accepted");
        assert_eq!((stats.files, stats.skipped_special, stats.dirs), (1, 1, 1));
        let dest = out.path().join("dest");
        assert!(!dest.join("dev").exists());
        let mode = |rel: &str| fs_err::metadata(dest.join(rel)).expect("stat").permissions().mode();
        assert_eq!(mode("suid") & 0o7777, 0o755);
        assert_eq!(mode("sticky") & 0o7777, 0o777);
        assert_eq!(fs_err::read(dest.join("suid")).expect("read"), b"payload");
    }

    #[tokio::test]
    async fn protocol_violations_are_errors() {
        async fn run(packets: Vec<Packet>) -> ReceiveError {
            let out = tempfile::tempdir().expect("tempdir");
            let (to_receiver, from_sender) = mpsc::channel(packets.len() + 1);
            let (to_sender, _from_receiver) = mpsc::channel::<Packet>(256);
            for p in packets {
                to_receiver.send(p).await.expect("queue");
            }
            drop(to_receiver);
            receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, &out.path().join("d"))
                .await
                .expect_err("must fail")
        }
        let data =
            |id| Packet { r#type: PacketType::PacketData as i32, id, data: b"x"[..].into(), ..Packet::default() };
        assert!(matches!(run(vec![stat_packet(file("f")), data(7)]).await, ReceiveError::UnexpectedData { id: 7 }));
        assert!(matches!(run(vec![stat_packet_end(), stat_packet(file("f"))]).await, ReceiveError::Protocol(_)));
        assert!(matches!(
            run(vec![Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() }]).await,
            ReceiveError::Protocol(_)
        ));
        assert!(matches!(
            run(vec![Packet { r#type: PacketType::PacketErr as i32, data: b"boom"[..].into(), ..Packet::default() }]).await,
            ReceiveError::Sender(msg) if msg == "boom"
        ));
        assert!(matches!(run(vec![stat_packet(file("f"))]).await, ReceiveError::SenderClosed));
    }

    /// A `FileSend` service shaped like the one the output module needs: the
    /// method is declared with `BytesMessage`, but for a local-directory
    /// target the daemon sends fsutil packets, so the codec is chosen per
    /// call (a real service looks up `buildkit-attachable-exporter-id`).
    #[derive(Clone)]
    struct LocalExportTarget {
        dest: PathBuf,
        done: Arc<std::sync::Mutex<Option<DoneSender>>>,
    }

    type DoneSender = tokio::sync::oneshot::Sender<Result<ReceiveStats, String>>;

    impl tonic::server::NamedService for LocalExportTarget {
        const NAME: &'static str = "moby.filesync.v1.FileSend";
    }

    impl tower::Service<http::Request<tonic::body::Body>> for LocalExportTarget {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let target = self.clone();
            Box::pin(async move {
                assert_eq!(req.uri().path(), "/moby.filesync.v1.FileSend/DiffCopy");
                assert_eq!(req.headers().get("buildkit-attachable-exporter-id").map(|v| v.as_bytes()), Some(&b"0"[..]));
                let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
                let mut grpc = tonic::server::Grpc::new(codec).apply_max_message_size_config(
                    Some(crate::session::MAX_MESSAGE_SIZE),
                    Some(crate::session::MAX_MESSAGE_SIZE),
                );
                Ok(grpc.streaming(target, req).await)
            })
        }
    }

    type PacketResponse = std::pin::Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

    impl tonic::server::StreamingService<Packet> for LocalExportTarget {
        type Response = Packet;
        type ResponseStream = PacketResponse;
        type Future = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<tonic::Response<PacketResponse>, Status>> + Send>,
        >;

        fn call(&mut self, request: tonic::Request<tonic::Streaming<Packet>>) -> Self::Future {
            let (tx, rx) = mpsc::channel(16);
            let dest = self.dest.clone();
            let done = self.done.lock().expect("lock").take();
            tokio::spawn(async move {
                let result = receive_diffcopy(request.into_inner(), tx, &dest).await;
                if let Some(done) = done {
                    let _ = done.send(result.map_err(|e| error_chain(&e)));
                }
            });
            let stream: PacketResponse = Box::pin(ReceiverStream::new(rx).map(Ok));
            Box::pin(async move { Ok(tonic::Response::new(stream)) })
        }
    }

    #[tokio::test]
    async fn filesend_packets_over_grpc() {
        let src = tempfile::tempdir().expect("tempdir");
        build_tree(src.path());
        let out = tempfile::tempdir().expect("tempdir");
        let dest = out.path().join("dest");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let target = LocalExportTarget { dest: dest.clone(), done: Arc::new(std::sync::Mutex::new(Some(done_tx))) };
        let channel =
            crate::fsync::test_support::serve_in_memory(tonic::transport::Server::builder().add_service(target)).await;

        // The daemon's side: fsutil packets on FileSend.DiffCopy.
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let (tx, rx) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert("buildkit-attachable-exporter-id", "0".parse().expect("value"));
        let response = grpc
            .streaming(
                request,
                http::uri::PathAndQuery::from_static("/moby.filesync.v1.FileSend/DiffCopy"),
                tonic_prost::ProstCodec::<Packet, Packet>::default(),
            )
            .await
            .expect("call");
        let walker = Walker::new(src.path(), &FilterOptions::default()).expect("walker");
        // Keep the call open until the receiver is done: dropping a tonic
        // client's response resets the HTTP/2 stream, which could discard
        // our queued FIN (grpc-go writes it out before returning).
        let mut incoming = response.into_inner();
        send_diffcopy(walker, &mut incoming, tx, Arc::default()).await.expect("send");

        let stats = done_rx.await.expect("receiver finished").expect("receiver succeeded");
        drop(incoming);
        assert_eq!(stats.files, 156);
        assert_eq!(snapshot(&dest), snapshot(src.path()));
    }
}

#[cfg(test)]
mod path_form {
    use super::*;
    use crate::gopath;
    use proptest::prelude::*;

    /// The form checks on bytes, as the text-based ones before them
    /// (Go's `path.Clean` as the authority) classify a path.
    fn by_text(path: &str) -> &'static str {
        if path.starts_with('/') {
            "absolute"
        } else if path.is_empty() || path == "." || path.contains('\0') || gopath::clean(path) != path {
            "unclean"
        } else if path == ".." || path.starts_with("../") {
            "escaping"
        } else {
            "ok"
        }
    }

    fn by_bytes(path: &str) -> &'static str {
        match OrderValidator::default().check(path.as_bytes(), false, |_| None) {
            Err(ReceiveError::AbsolutePath { .. }) => "absolute",
            Err(ReceiveError::UncleanPath { .. }) => "unclean",
            Err(ReceiveError::EscapingPath { .. }) => "escaping",
            _ => "ok",
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn byte_checks_agree_with_path_clean(path in r"(/|\.|\.\.|a|b|\x00){0,8}") {
            prop_assert_eq!(by_bytes(&path), by_text(&path), "{:?}", path);
        }
    }
}
