//! Where a single-file output (tar, oci, docker) is written as it arrives.
//!
//! A file output appears at its destination only when complete: bytes go to
//! a temporary file in the destination's folder, which is renamed over the
//! destination once the daemon has sent everything. Dropping a sink before
//! [`Sink::commit`] leaves nothing behind. Where the kernel allows it the
//! temporary file is unnamed (`O_TMPFILE`), so even a killed fbuild leaves
//! no stray file; otherwise it is a hidden `.NAME.fbuild-*` file removed on
//! drop.
//!
//! A destination that is not a regular file (a character device such as
//! `/dev/null`, a FIFO, a socket) is written into, as buildctl does:
//! replacing it would destroy it (as root, `dest=/dev/null` would break the
//! machine), and a FIFO's reader waits for the bytes. Only regular files
//! (and missing ones) get the temporary file and the rename.
//!
//! Symbolic links: a sink never writes through a link at its destination.
//! The file is written under a fresh name, and `rename(2)` replaces a path
//! without following it. A link found at the destination when committing is
//! refused (not replaced): the user named a link, and silently turning it
//! into a file would lose where it pointed. `--output` parsing refuses such
//! a destination before the build already; the check here covers a link
//! created during the build.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufWriter};

/// Bytes buffered before a write reaches the file: the daemon sends chunks
/// of tens of KiB, and every write of a tokio file is a blocking-pool hop.
const WRITE_BUFFER: usize = 1 << 20;

/// A failed file output. The messages name the destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("cannot create a temporary file next to {}", dest.display())]
    Create {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the output for {}", dest.display())]
    Write {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing to replace the symbolic link at {}: outputs never write through links", dest.display())]
    Symlink { dest: PathBuf },
    #[error("cannot move the finished output into place at {}", dest.display())]
    Commit {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the output to standard output")]
    Stdout(#[source] io::Error),
}

/// The folder a file destination lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A single-file output being received.
#[non_exhaustive]
pub enum Sink {
    /// A file, renamed into place on commit.
    File(FileSink),
    /// Our standard output, written as the bytes arrive.
    Stdout(tokio::io::Stdout),
    /// A device, FIFO or socket at the destination, written into as the
    /// bytes arrive.
    Node { dest: PathBuf, writer: BufWriter<tokio::fs::File> },
}

impl Sink {
    /// The sink for the file destination `dest`: written into when it is a
    /// device, FIFO or socket (opening a FIFO waits for its reader, as
    /// buildctl does), else a [`FileSink`].
    pub async fn for_path(dest: &Path) -> Result<Sink, SinkError> {
        let create_err = |source| SinkError::Create { dest: dest.to_owned(), source };
        match std::fs::symlink_metadata(dest) {
            Ok(meta) if is_node(&meta) => {}
            _ => return Ok(Sink::File(FileSink::create(dest)?)),
        }
        // Never through a link: one swapped in since the check fails here.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(dest)
            .await
            .map_err(create_err)?;
        let meta = file.metadata().await.map_err(create_err)?;
        if !is_node(&meta) {
            // A regular file replaced the node meanwhile: it gets the
            // temporary file and the rename like any other.
            return Ok(Sink::File(FileSink::create(dest)?));
        }
        Ok(Sink::Node { dest: dest.to_owned(), writer: BufWriter::with_capacity(WRITE_BUFFER, file) })
    }

    /// Appends `data` to the output.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SinkError> {
        match self {
            Sink::File(file) => file.write(data).await,
            Sink::Stdout(stdout) => stdout.write_all(data).await.map_err(SinkError::Stdout),
            Sink::Node { dest, writer } => {
                writer.write_all(data).await.map_err(|source| SinkError::Write { dest: dest.clone(), source })
            }
        }
    }

    /// Finishes the output: a file moves into place, stdout or a device is
    /// flushed.
    pub async fn commit(self) -> Result<(), SinkError> {
        match self {
            Sink::File(file) => file.commit().await,
            Sink::Stdout(mut stdout) => stdout.flush().await.map_err(SinkError::Stdout),
            Sink::Node { dest, mut writer } => {
                writer.flush().await.map_err(|source| SinkError::Write { dest: dest.clone(), source })?;
                writer.into_inner().shutdown().await.map_err(|source| SinkError::Write { dest, source })
            }
        }
    }
}

/// Whether `meta` (not following links) is a character or block device, a
/// FIFO or a socket: something to write into, never to replace.
fn is_node(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket()
}

/// How the bytes are kept until commit.
enum Staging {
    /// An `O_TMPFILE` file: no name until it is linked in at commit.
    Unnamed,
    /// A hidden temporary file, deleted when dropped.
    Named(tempfile::TempPath),
}

/// A file output written to a temporary file and renamed into place.
pub struct FileSink {
    dest: PathBuf,
    staging: Staging,
    writer: BufWriter<tokio::fs::File>,
}

impl FileSink {
    /// Starts a file output for `dest`; nothing appears at `dest` yet.
    pub fn create(dest: &Path) -> Result<FileSink, SinkError> {
        let dir = parent_dir(dest);
        let create_err = |source| SinkError::Create { dest: dest.to_owned(), source };
        let (file, staging) = match open_unnamed(dir) {
            Some(file) => (file, Staging::Unnamed),
            None => {
                let prefix = format!(".{}.fbuild-", file_name(dest));
                // 0o666 before the umask, like any file a program creates.
                let named = tempfile::Builder::new()
                    .prefix(&prefix)
                    .suffix(".tmp")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                    .tempfile_in(dir)
                    .map_err(create_err)?;
                let (file, path) = named.into_parts();
                (file, Staging::Named(path))
            }
        };
        Ok(FileSink {
            dest: dest.to_owned(),
            staging,
            writer: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file)),
        })
    }

    /// Appends `data` to the temporary file.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SinkError> {
        self.writer.write_all(data).await.map_err(|source| SinkError::Write { dest: self.dest.clone(), source })
    }

    /// Moves the complete file into place at the destination.
    ///
    /// No fsync, as with buildctl: the rename makes the output appear whole
    /// to other processes, which is the promise; crash durability is not.
    pub async fn commit(self) -> Result<(), SinkError> {
        let FileSink { dest, staging, mut writer } = self;
        let write_err = |source| SinkError::Write { dest: dest.clone(), source };
        writer.flush().await.map_err(write_err)?;
        let file = writer.into_inner().into_std().await;
        let for_task = dest.clone();
        tokio::task::spawn_blocking(move || commit_blocking(&for_task, &file, staging))
            .await
            .map_err(|join| SinkError::Commit { dest, source: io::Error::other(join) })?
    }
}

fn commit_blocking(dest: &Path, file: &File, staging: Staging) -> Result<(), SinkError> {
    let commit_err = |source| SinkError::Commit { dest: dest.to_owned(), source };
    // Give an unnamed file a hidden name beside the destination first:
    // linkat cannot replace an existing file, rename can.
    let temp = match staging {
        Staging::Named(path) => path,
        Staging::Unnamed => {
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let name =
                parent_dir(dest).join(format!(".{}.fbuild-{}.tmp", file_name(dest), uuid::Uuid::new_v4().simple()));
            nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                proc_path.as_str(),
                nix::fcntl::AT_FDCWD,
                &name,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(|errno| commit_err(io::Error::from(errno)))?;
            // Removed on every path below unless persisted.
            tempfile::TempPath::try_from_path(&name).map_err(commit_err)?
        }
    };
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(SinkError::Symlink { dest: dest.to_owned() }),
        _ => {}
    }
    temp.persist(dest).map_err(|err| commit_err(err.error))?;
    Ok(())
}

/// Opens an `O_TMPFILE` file in `dir`, or `None` when the kernel, the file
/// system or a missing `/proc` (needed to link it in) rules it out.
fn open_unnamed(dir: &Path) -> Option<File> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
    // The mode goes through the umask, like any created file.
    let mode = Mode::from_bits_truncate(0o666);
    nix::fcntl::open(dir, flags, mode).ok().map(File::from)
}

fn file_name(dest: &Path) -> String {
    dest.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "output".to_owned())
}

/// Writes `chunks` into `sink`, then commits it.
#[cfg(test)]
pub(crate) async fn write_all_and_commit(mut sink: Sink, chunks: &[&[u8]]) -> Result<(), SinkError> {
    for chunk in chunks {
        sink.write(chunk).await?;
    }
    sink.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let mut sink = FileSink::create(&dest).unwrap();
        sink.write(b"hello ").await.unwrap();
        sink.write(b"world").await.unwrap();
        assert!(!dest.exists(), "nothing at dest before commit");
        sink.commit().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        assert_eq!(entries(dir.path()), ["out.tar"], "no temporary file left");
    }

    #[tokio::test]
    async fn commit_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        std::fs::write(&dest, b"old content that is longer").unwrap();
        write_all_and_commit(Sink::File(FileSink::create(&dest).unwrap()), &[b"new"]).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[tokio::test]
    async fn dropping_before_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let mut sink = FileSink::create(&dest).unwrap();
        sink.write(&vec![7u8; 3 << 20]).await.unwrap();
        drop(sink);
        assert!(entries(dir.path()).is_empty(), "left behind: {:?}", entries(dir.path()));
    }

    #[tokio::test]
    async fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        std::fs::write(&dest, b"previous build").unwrap();
        let mut sink = FileSink::create(&dest).unwrap();
        sink.write(b"half of the new").await.unwrap();
        drop(sink); // what an interrupted stream does
        assert_eq!(std::fs::read(&dest).unwrap(), b"previous build");
        assert_eq!(entries(dir.path()), ["out.tar"]);
    }

    #[tokio::test]
    async fn never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        let dest = dir.path().join("out.tar");
        let mut sink = FileSink::create(&dest).unwrap();
        sink.write(b"output").await.unwrap();
        // A link appears at dest while the build runs.
        std::os::unix::fs::symlink(&target, &dest).unwrap();
        let err = sink.commit().await.unwrap_err();
        assert!(matches!(err, SinkError::Symlink { .. }), "{err:?}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&dest).unwrap().file_type().is_symlink(), "the link is left alone");
        assert_eq!(entries(dir.path()), ["out.tar", "precious"], "no temporary file left");
    }

    #[tokio::test]
    async fn missing_folder_fails_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileSink::create(&dir.path().join("no/such/out.tar")).err().expect("create fails");
        assert!(matches!(err, SinkError::Create { .. }));
        assert!(err.to_string().contains("no/such/out.tar"), "{err}");
    }

    #[tokio::test]
    async fn file_mode_follows_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        write_all_and_commit(Sink::File(FileSink::create(&dest).unwrap()), &[b"x"]).await.unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        // Whatever the umask, the owner can read and write, nobody executes,
        // and it is not the 0600 of a private temporary file unless the
        // umask says so.
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(mode & 0o111, 0);
    }

    #[tokio::test]
    async fn a_fifo_at_dest_is_written_into_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pipe");
        nix::unistd::mkfifo(&dest, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = {
            let dest = dest.clone();
            std::thread::spawn(move || std::fs::read(dest).unwrap())
        };
        let sink = Sink::for_path(&dest).await.unwrap();
        write_all_and_commit(sink, &[b"hello ", b"fifo"]).await.unwrap();
        assert_eq!(reader.join().unwrap(), b"hello fifo", "the reader got the bytes");
        assert!(std::fs::symlink_metadata(&dest).unwrap().file_type().is_fifo(), "still a FIFO");
        assert_eq!(entries(dir.path()), ["pipe"], "no temporary file left");
    }

    /// A device node of our own with `/dev/null`'s numbers (1, 3): what
    /// `dest=/dev/null` does, without risking the machine's `/dev/null`.
    /// Needs root (mknod), as the test environment runs.
    #[tokio::test]
    async fn a_device_at_dest_is_written_into_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("null");
        nix::sys::stat::mknod(
            &dest,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod (the tests run as root)");
        let sink = Sink::for_path(&dest).await.unwrap();
        write_all_and_commit(sink, &[&vec![1u8; 3 << 20]]).await.unwrap();
        assert!(std::fs::symlink_metadata(&dest).unwrap().file_type().is_char_device(), "still the device");
        assert_eq!(entries(dir.path()), ["null"], "no temporary file left");
    }

    #[tokio::test]
    async fn a_regular_or_missing_dest_gets_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let sink = Sink::for_path(&dest).await.unwrap();
        assert!(matches!(sink, Sink::File(_)));
        write_all_and_commit(sink, &[b"x"]).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");
    }

    #[test]
    fn parent_of_a_bare_name_is_the_current_folder() {
        assert_eq!(parent_dir(Path::new("out.tar")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/out.tar")), Path::new("a"));
    }
}
