//! An OCI image layout folder used as a content store: `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>`. The local cache (`type=local`),
//! OCI layout outputs (`type=oci,tar=false`) and `oci-layout://` build
//! contexts all live in one.
//!
//! Every change is atomic on its own: a blob is written to a temporary file
//! inside the folder and renamed into `blobs/` only once its digest checks;
//! `index.json` is replaced by rename. Collection (removing blobs no
//! `index.json` entry reaches) takes the folder's lock exclusively, and
//! every build that reads or writes the folder holds it shared, so a blob is
//! never removed while a build may still use it. A process killed at any
//! point leaves at worst an unreferenced blob or a stale temporary file,
//! both of which the next collection removes: `index.json` never names a
//! missing blob.
//!
//! A folder is untrusted input: CI restores cache folders from places a
//! fork's pull request can write. Nothing in one is followed outside it
//! (every entry is opened relative to the folder's descriptor, one
//! component at a time, without following links), documents are read only
//! from regular files and only up to a bound ([`MAX_INDEX_SIZE`],
//! [`MAX_DOCUMENT_SIZE`]), and collection removes names inside the folder,
//! never what a link points at.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use sha2::{Digest as _, Sha256};

/// The annotation that names an `index.json` entry (buildctl's tags).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for an image's full name in an OCI layout.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// Where a blob's bytes are written before they are checked and renamed.
const INGEST_DIR: &str = ".fbuild-ingest";
/// The lock shared by builds and taken exclusively by collection.
const LOCK_FILE: &str = ".fbuild-lock";
/// The lock held while `index.json` is read, changed and replaced.
const INDEX_LOCK_FILE: &str = ".fbuild-index-lock";
/// The prefix of our temporary files and folders in the folder.
const TEMP_PREFIX: &str = ".fbuild-tmp-";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
const INDEX_FILE: &str = "index.json";

/// The largest `index.json` read: 16 MiB, some 50,000 tags. A folder is
/// untrusted input, and a bigger one is not an index anyone wrote.
pub const MAX_INDEX_SIZE: u64 = 16 << 20;
/// The largest blob read as a document (a manifest, an image index, a
/// cache config, a list of carried mounts): 4 MiB. Anything larger is a
/// layer, which is never parsed; asked for as a document, it is refused.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// Flags for every file opened in a folder: never through a link at the
/// last component (each component is opened on its own, so that covers
/// all), and never blocking on a FIFO or a device.
const FILE_FLAGS: OFlag = OFlag::O_NOFOLLOW.union(OFlag::O_NONBLOCK).union(OFlag::O_CLOEXEC).union(OFlag::O_NOCTTY);
const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

/// What went wrong with an OCI layout folder. Every variant names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("{dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{dir} is not an OCI layout folder (no oci-layout or index.json)")]
    NotALayout { dir: PathBuf },
    /// A folder named as an image source (`oci-layout://DIR`) that is
    /// missing or holds nothing yet.
    #[error("{dir} is not an OCI layout folder (missing or empty)")]
    MissingLayout { dir: PathBuf },
    #[error("{dir}/index.json is not a valid image index")]
    BadIndex {
        dir: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("{dir}/index.json has no entry tagged {tag:?} (tags: {known})")]
    UnknownTag { dir: PathBuf, tag: String, known: String },
    #[error("{dir} has no blob {digest}")]
    MissingBlob { dir: PathBuf, digest: String },
    #[error("{dir}: blob {digest} is corrupt (its content hashes to {actual})")]
    CorruptBlob { dir: PathBuf, digest: String, actual: String },
    #[error("{dir}: cannot store a blob")]
    Commit {
        dir: PathBuf,
        #[source]
        source: CommitError,
    },
    #[error("{digest:?} is not a sha256 digest")]
    BadDigest { digest: String },
    /// An entry of the folder is a link, a FIFO, a device or a socket where
    /// a file or a folder belongs. Nothing in a folder is followed.
    #[error("{}/{name} is {found}, not {expected}: fbuild never follows or reads such entries in a layout folder", dir.display())]
    Untrusted { dir: PathBuf, name: String, found: &'static str, expected: &'static str },
    /// A document larger than any index or manifest.
    #[error("{}/{name} has {size} bytes, more than the {limit} bytes an index or manifest may have", dir.display())]
    TooLarge { dir: PathBuf, name: String, size: u64, limit: u64 },
}

/// A blob's digest, checked to be `sha256:` and 64 lowercase hex digits, so
/// it can name a file under `blobs/` and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobDigest(String);

impl BlobDigest {
    /// Checks `digest` (`sha256:<64 hex>`).
    pub fn parse(digest: &str) -> Result<BlobDigest, LayoutError> {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(BlobDigest(digest.to_string()))
        } else {
            Err(LayoutError::BadDigest { digest: digest.to_string() })
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobDigest {
        BlobDigest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// The 64 hex digits: the blob's file name under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a directory entry is, in words, for [`LayoutError::Untrusted`].
fn kind_name(stat: &FileStat) -> &'static str {
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a file",
        libc::S_IFDIR => "a folder",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR | libc::S_IFBLK => "a device",
        libc::S_IFSOCK => "a socket",
        _ => "an unknown kind of file",
    }
}

fn is_regular(stat: &FileStat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// A blob's size and modification time.
#[derive(Debug, Clone, Copy)]
pub struct BlobInfo {
    pub size: u64,
    pub modified: std::time::SystemTime,
}

/// An OCI layout folder.
///
/// The folder is opened once (following the path the caller gave: that is
/// the caller's choice) and everything inside it is reached relative to
/// that descriptor, one component at a time, never through a symbolic link:
/// a folder restored from an untrusted place can hold links, FIFOs or
/// devices where `blobs/`, `index.json` or our lock and staging files
/// belong, and none of them may make fbuild read, write or delete outside
/// the folder, or hang.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
    root: Arc<OwnedFd>,
}

impl OciLayout {
    /// Opens `dir`, creating it and its `oci-layout` file when missing.
    pub fn create(dir: impl Into<PathBuf>) -> Result<OciLayout, LayoutError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| LayoutError::Io { dir: dir.clone(), source })?;
        let layout = OciLayout::open_dir(dir)?;
        // `oci-layout` first, so a concurrent reader that finds `blobs/`
        // also finds it (see `open_existing` for the moment before).
        match layout.stat_entry(layout.root.as_fd(), LAYOUT_FILE)? {
            Some(stat) if is_regular(&stat) => {}
            Some(stat) => return Err(layout.untrusted(LAYOUT_FILE, &stat, "a file")),
            None => layout.write_atomically(LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?,
        }
        layout.blobs_dir(true)?;
        Ok(layout)
    }

    fn open_dir(dir: PathBuf) -> Result<OciLayout, LayoutError> {
        let root = nix::fcntl::open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| LayoutError::Io { dir: dir.clone(), source: errno.into() })?;
        Ok(OciLayout { dir, root: Arc::new(root) })
    }

    /// Opens an existing layout folder: `Ok(None)` when `dir` does not
    /// exist or is empty (a cache not made yet), an error when it holds
    /// something that is not an OCI layout.
    ///
    /// A folder holding only what fbuild makes before `oci-layout` appears
    /// (its lock files and temporary files) is another build creating the
    /// cache at this moment: no cache yet, not an error.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Option<OciLayout>, LayoutError> {
        let dir = dir.into();
        let entries = match std::fs::read_dir(&dir) {
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LayoutError::Io { dir, source }),
            Ok(entries) => entries,
        };
        let being_made = |name: &std::ffi::OsStr| {
            let name = name.to_string_lossy();
            name == LOCK_FILE || name == INDEX_LOCK_FILE || name == INGEST_DIR || name.starts_with(TEMP_PREFIX)
        };
        let mut only_ours = true;
        for entry in entries {
            let entry = entry.map_err(|source| LayoutError::Io { dir: dir.clone(), source })?;
            if !being_made(&entry.file_name()) {
                only_ours = false;
                break;
            }
        }
        if only_ours {
            return Ok(None);
        }
        let layout = OciLayout::open_dir(dir)?;
        let has = |name| -> Result<bool, LayoutError> {
            Ok(layout.stat_entry(layout.root.as_fd(), name)?.is_some_and(|stat| is_regular(&stat)))
        };
        if !has(LAYOUT_FILE)? && !has(INDEX_FILE)? {
            return Err(LayoutError::NotALayout { dir: layout.dir });
        }
        Ok(Some(layout))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self) -> impl Fn(io::Error) -> LayoutError + '_ {
        move |source| LayoutError::Io { dir: self.dir.clone(), source }
    }

    fn untrusted(&self, name: &str, stat: &FileStat, expected: &'static str) -> LayoutError {
        LayoutError::Untrusted { dir: self.dir.clone(), name: name.to_string(), found: kind_name(stat), expected }
    }

    /// `lstat` of `name` in `parent`; `None` when it does not exist.
    fn stat_entry<P: ?Sized + nix::NixPath>(
        &self,
        parent: BorrowedFd<'_>,
        name: &P,
    ) -> Result<Option<FileStat>, LayoutError> {
        match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(self.io()(errno.into())),
        }
    }

    /// Opens the folder `name` in `parent` (`shown` is its path in the
    /// folder, for errors), creating it first when `create`; `None` when it
    /// does not exist. A link or anything but a folder is refused.
    fn subdir(
        &self,
        parent: BorrowedFd<'_>,
        shown: &str,
        name: &str,
        create: bool,
    ) -> Result<Option<OwnedFd>, LayoutError> {
        if create {
            match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(self.io()(errno.into())),
            }
        }
        match nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno @ (Errno::ELOOP | Errno::ENOTDIR)) => match self.stat_entry(parent, name)? {
                Some(stat) => Err(self.untrusted(shown, &stat, "a folder")),
                None => Err(self.io()(errno.into())),
            },
            Err(errno) => Err(self.io()(errno.into())),
        }
    }

    /// `blobs/sha256`, created when `create`; `None` when missing.
    fn blobs_dir(&self, create: bool) -> Result<Option<OwnedFd>, LayoutError> {
        let Some(blobs) = self.subdir(self.root.as_fd(), "blobs", "blobs", create)? else { return Ok(None) };
        self.subdir(blobs.as_fd(), "blobs/sha256", "sha256", create)
    }

    /// Opens the regular file `name` in `parent` for reading; `None` when
    /// it does not exist. Checked before and after opening, so neither a
    /// link nor a FIFO or device (which would block or never end) is read.
    fn open_regular(&self, parent: BorrowedFd<'_>, shown: &str, name: &str) -> Result<Option<File>, LayoutError> {
        match self.stat_entry(parent, name)? {
            None => return Ok(None),
            Some(stat) if !is_regular(&stat) => return Err(self.untrusted(shown, &stat, "a file")),
            Some(_) => {}
        }
        let fd = match nix::fcntl::openat(parent, name, OFlag::O_RDONLY | FILE_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(errno) => return Err(self.io()(errno.into())),
        };
        let stat = nix::sys::stat::fstat(&fd).map_err(|errno| self.io()(errno.into()))?;
        if !is_regular(&stat) {
            return Err(self.untrusted(shown, &stat, "a file"));
        }
        Ok(Some(File::from(fd)))
    }

    /// Reads the regular file `name` in `parent` whole, refusing more than
    /// `limit` bytes; `None` when it does not exist.
    fn read_bounded(
        &self,
        parent: BorrowedFd<'_>,
        shown: &str,
        name: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, LayoutError> {
        let Some(file) = self.open_regular(parent, shown, name)? else { return Ok(None) };
        let too_large = |size| LayoutError::TooLarge { dir: self.dir.clone(), name: shown.to_string(), size, limit };
        let size = file.metadata().map_err(self.io())?.len();
        if size > limit {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // The file may grow while read: never past the limit.
        file.take(limit + 1).read_to_end(&mut bytes).map_err(self.io())?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(Some(bytes))
    }

    /// Where the blob `digest` lives. For messages: nothing in the library
    /// opens a blob by this path (see [`OciLayout`]).
    pub fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// The blob's size and time, or `None` when the folder does not have
    /// it as a regular file.
    pub fn blob_info(&self, digest: &BlobDigest) -> Result<Option<BlobInfo>, LayoutError> {
        let Some(blobs) = self.blobs_dir(false)? else { return Ok(None) };
        Ok(self.stat_entry(blobs.as_fd(), digest.hex())?.filter(is_regular).map(|stat| {
            let modified = std::time::UNIX_EPOCH
                + std::time::Duration::new(
                    stat.st_mtime.max(0) as u64,
                    stat.st_mtime_nsec.clamp(0, 999_999_999) as u32,
                );
            BlobInfo { size: stat.st_size as u64, modified }
        }))
    }

    /// The blob's size, or `None` when the folder does not have it.
    pub fn blob_size(&self, digest: &BlobDigest) -> Result<Option<u64>, LayoutError> {
        Ok(self.blob_info(digest)?.map(|info| info.size))
    }

    /// Every blob in the folder with its size.
    pub fn blobs(&self) -> Result<BTreeMap<BlobDigest, u64>, LayoutError> {
        let mut blobs = BTreeMap::new();
        let Some(dir) = self.blobs_dir(false)? else { return Ok(blobs) };
        for (name, stat) in self.entries(dir)? {
            let Some(digest) = name.to_str().and_then(|hex| BlobDigest::parse(&format!("sha256:{hex}")).ok()) else {
                continue;
            };
            if is_regular(&stat) {
                blobs.insert(digest, stat.st_size as u64);
            }
        }
        Ok(blobs)
    }

    /// The entries of the folder `dir` with their `lstat`, `.` and `..` left out.
    fn entries(&self, dir: OwnedFd) -> Result<Vec<(std::ffi::OsString, FileStat)>, LayoutError> {
        use std::os::unix::ffi::OsStrExt;
        let mut dir = nix::dir::Dir::from_fd(dir).map_err(|errno| self.io()(errno.into()))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|errno| self.io()(errno.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(stat) = self.stat_entry(dir.as_fd(), name.as_os_str())? {
                out.push((name, stat));
            }
        }
        Ok(out)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &BlobDigest) -> Result<File, LayoutError> {
        let missing = || LayoutError::MissingBlob { dir: self.dir.clone(), digest: digest.to_string() };
        let blobs = self.blobs_dir(false)?.ok_or_else(missing)?;
        let shown = format!("blobs/sha256/{}", digest.hex());
        self.open_regular(blobs.as_fd(), &shown, digest.hex())?.ok_or_else(missing)
    }

    /// Reads a whole blob (a manifest or an index, at most
    /// [`MAX_DOCUMENT_SIZE`] bytes) and checks its digest.
    pub fn read_blob(&self, digest: &BlobDigest) -> Result<Vec<u8>, LayoutError> {
        let missing = || LayoutError::MissingBlob { dir: self.dir.clone(), digest: digest.to_string() };
        let blobs = self.blobs_dir(false)?.ok_or_else(missing)?;
        let shown = format!("blobs/sha256/{}", digest.hex());
        let bytes = self.read_bounded(blobs.as_fd(), &shown, digest.hex(), MAX_DOCUMENT_SIZE)?.ok_or_else(missing)?;
        let actual = BlobDigest::of(&bytes);
        if &actual != digest {
            return Err(LayoutError::CorruptBlob {
                dir: self.dir.clone(),
                digest: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Starts writing a blob; see [`BlobWriter`].
    pub fn writer(&self) -> Result<BlobWriter, LayoutError> {
        let ingest = self
            .subdir(self.root.as_fd(), INGEST_DIR, INGEST_DIR, true)?
            .ok_or_else(|| self.io()(io::Error::new(io::ErrorKind::NotFound, format!("{INGEST_DIR} vanished"))))?;
        let name = format!("blob-{}", uuid::Uuid::new_v4().simple());
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | FILE_FLAGS;
        let fd = nix::fcntl::openat(ingest.as_fd(), name.as_str(), flags, Mode::from_bits_truncate(0o644))
            .map_err(|errno| self.io()(errno.into()))?;
        let file = File::from(fd);
        // O_NONBLOCK means nothing to a regular file, but say what we mean.
        let _ = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
        Ok(BlobWriter { layout: self.clone(), file, ingest, name: Some(name), hasher: Sha256::new(), written: 0 })
    }

    /// Stores `bytes` as a blob (a manifest, a config) and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<BlobDigest, LayoutError> {
        let mut writer = self.writer()?;
        writer.write_all(bytes).map_err(self.io())?;
        writer.commit(None, None).map_err(|source| LayoutError::Commit { dir: self.dir.clone(), source })
    }

    /// Moves `file`, a file of ours inside the folder (a staging folder's),
    /// into `blobs/` as the blob `digest`.
    pub(crate) fn adopt(&self, file: &Path, digest: &BlobDigest) -> Result<(), LayoutError> {
        let blobs = self.blobs_dir(true)?.ok_or_else(|| LayoutError::NotALayout { dir: self.dir.clone() })?;
        nix::fcntl::renameat(nix::fcntl::AT_FDCWD, file, blobs.as_fd(), digest.hex())
            .map_err(|errno| self.io()(errno.into()))
    }

    /// Checks that `blobs/sha256` is a folder of the folder's own (no link
    /// on the way) and returns its path, for a reader that walks it by path
    /// (the file sync of a carried mounts restore, whose walk opens nothing
    /// through links below its root).
    pub(crate) fn checked_blobs_path(&self) -> Result<PathBuf, LayoutError> {
        self.blobs_dir(false)?.ok_or_else(|| LayoutError::NotALayout { dir: self.dir.clone() })?;
        Ok(self.dir.join("blobs/sha256"))
    }

    /// The folder's `index.json`; an empty index when there is none yet.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        match self.read_bounded(self.root.as_fd(), INDEX_FILE, INDEX_FILE, MAX_INDEX_SIZE)? {
            Some(bytes) => ImageIndex::from_reader(bytes.as_slice())
                .map_err(|source| LayoutError::BadIndex { dir: self.dir.clone(), source }),
            None => Ok(empty_index()),
        }
    }

    /// The entry of `index.json` tagged `tag`.
    pub fn resolve_tag(&self, tag: &str) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let found = index.manifests().iter().find(|d| ref_name(d) == Some(tag)).cloned();
        found.ok_or_else(|| {
            // Tags are the folder's text: escaped, as they reach a terminal.
            let mut tags: Vec<String> =
                index.manifests().iter().filter_map(ref_name).map(|t| t.escape_debug().to_string()).collect();
            tags.sort_unstable();
            let known = if tags.is_empty() { "none".to_string() } else { tags.join(", ") };
            LayoutError::UnknownTag { dir: self.dir.clone(), tag: tag.to_string(), known }
        })
    }

    /// Points each of `tags` at `descriptor` in `index.json` (replacing the
    /// entries those tags had), after checking the folder holds the blob.
    /// Concurrent writers are serialised by a lock; the file is replaced by
    /// rename, so a reader sees the old index or the new one.
    pub fn tag(&self, descriptor: &Descriptor, tags: &[&str]) -> Result<(), LayoutError> {
        self.put_entries(descriptor, REF_NAME_ANNOTATION, tags)
    }

    /// [`OciLayout::tag`] with another annotation than the tag's: an entry
    /// per value of `key`, replacing the entries with those values.
    pub fn put_entries(&self, descriptor: &Descriptor, key: &str, values: &[&str]) -> Result<(), LayoutError> {
        let entries = values.iter().map(|value| [(key.to_string(), (*value).to_string())].into()).collect();
        self.replace_entries(descriptor, entries, |d| annotation(d, key).is_some_and(|v| values.contains(&v)))
    }

    /// Names an image as buildctl's OCI layout output does: for each image
    /// name (`registry/app:1`), an entry with the full name
    /// (`io.containerd.image.name`) and its tag as the ref name; `latest`
    /// without names.
    pub fn put_image(&self, descriptor: &Descriptor, names: &[&str]) -> Result<(), LayoutError> {
        if names.is_empty() {
            return self.tag(descriptor, &["latest"]);
        }
        let pairs: Vec<(String, String)> =
            names.iter().map(|name| ((*name).to_string(), reference_object(name).to_string())).collect();
        let entries = pairs
            .iter()
            .map(|(name, tag)| {
                [(IMAGE_NAME_ANNOTATION.to_string(), name.clone()), (REF_NAME_ANNOTATION.to_string(), tag.clone())]
                    .into()
            })
            .collect();
        self.replace_entries(descriptor, entries, |d| {
            pairs.iter().any(|(name, tag)| {
                annotation(d, IMAGE_NAME_ANNOTATION) == Some(name) && annotation(d, REF_NAME_ANNOTATION) == Some(tag)
            })
        })
    }

    /// Adds an entry for `descriptor` per annotation set, dropping the
    /// entries `replaced` picks, under the index lock. Entries of other
    /// digest algorithms (`sha512:`) are kept as they are, as buildctl does.
    fn replace_entries(
        &self,
        descriptor: &Descriptor,
        annotation_sets: Vec<std::collections::HashMap<String, String>>,
        replaced: impl Fn(&Descriptor) -> bool,
    ) -> Result<(), LayoutError> {
        let digest = BlobDigest::parse(descriptor.digest().as_ref())?;
        if self.blob_size(&digest)?.is_none() {
            return Err(LayoutError::MissingBlob { dir: self.dir.clone(), digest: digest.to_string() });
        }
        let _lock = self.lock(INDEX_LOCK_FILE, nix::fcntl::FlockArg::LockExclusive)?;
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> = index.manifests().iter().filter(|d| !replaced(d)).cloned().collect();
        for set in annotation_sets {
            let mut entry = descriptor.clone();
            let mut annotations = entry.annotations().clone().unwrap_or_default();
            annotations.extend(set);
            entry.set_annotations(Some(annotations));
            manifests.push(entry);
        }
        index.set_manifests(manifests);
        let bytes = serde_json::to_vec(&index).expect("an image index serialises");
        self.write_atomically(INDEX_FILE, &bytes)
    }

    /// The entry of `index.json` whose annotation `key` is `value`.
    pub fn entry(&self, key: &str, value: &str) -> Result<Option<Descriptor>, LayoutError> {
        Ok(self.index()?.manifests().iter().find(|d| annotation(d, key) == Some(value)).cloned())
    }

    /// Writes `name` in the folder by rename from a temporary file (a link
    /// at `name` is replaced, never followed).
    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let temp = format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | FILE_FLAGS;
        let fd = nix::fcntl::openat(self.root.as_fd(), temp.as_str(), flags, Mode::from_bits_truncate(0o644))
            .map_err(|errno| self.io()(errno.into()))?;
        let mut file = File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| Ok(nix::fcntl::renameat(self.root.as_fd(), temp.as_str(), self.root.as_fd(), name)?));
        if let Err(error) = written {
            let _ = nix::unistd::unlinkat(self.root.as_fd(), temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.io()(error));
        }
        Ok(())
    }

    /// Takes the folder's lock shared, as a build that reads or writes
    /// blobs does ([`OciLayout::collect_garbage`] takes it exclusively).
    /// In a folder this process may not write (a read-only cache to import
    /// from), the lock is taken on the lock file when it exists, and
    /// skipped when it does not: nobody can collect such a folder.
    pub fn lock_shared(&self) -> Result<FolderLock, LayoutError> {
        match self.lock(LOCK_FILE, nix::fcntl::FlockArg::LockShared) {
            Ok(lock) => Ok(FolderLock(lock)),
            Err(LayoutError::Io { source, .. }) if read_only(&source) => {
                match self.open_regular(self.root.as_fd(), LOCK_FILE, LOCK_FILE)? {
                    None => Ok(FolderLock(None)),
                    Some(file) => match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockShared) {
                        Ok(lock) => Ok(FolderLock(Some(lock))),
                        Err((_, errno)) => Err(self.io()(errno.into())),
                    },
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Takes the lock file `name` as `arg` says; `None` when `arg` does not
    /// block and another process holds it.
    fn lock(&self, name: &str, arg: nix::fcntl::FlockArg) -> Result<Option<nix::fcntl::Flock<File>>, LayoutError> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | FILE_FLAGS;
        let fd = match nix::fcntl::openat(self.root.as_fd(), name, flags, Mode::from_bits_truncate(0o644)) {
            Ok(fd) => fd,
            Err(errno @ (Errno::ELOOP | Errno::ENXIO | Errno::EISDIR)) => {
                match self.stat_entry(self.root.as_fd(), name)? {
                    Some(stat) => return Err(self.untrusted(name, &stat, "a file")),
                    None => return Err(self.io()(errno.into())),
                }
            }
            Err(errno) => return Err(self.io()(errno.into())),
        };
        let stat = nix::sys::stat::fstat(&fd).map_err(|errno| self.io()(errno.into()))?;
        if !is_regular(&stat) {
            return Err(self.untrusted(name, &stat, "a file"));
        }
        match nix::fcntl::Flock::lock(File::from(fd), arg) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(self.io()(errno.into())),
        }
    }

    /// The digests of `index.json`'s entries that this folder can hold
    /// (`sha256`); entries of other algorithms reach nothing here.
    fn roots(index: &ImageIndex) -> Vec<BlobDigest> {
        index.manifests().iter().filter_map(|d| BlobDigest::parse(d.digest().as_ref()).ok()).collect()
    }

    /// Every blob that an entry of `index.json` reaches: the entries
    /// themselves and, through each manifest or index, its config, layers and
    /// manifests.
    pub fn referenced(&self) -> Result<BTreeSet<BlobDigest>, LayoutError> {
        let roots = OciLayout::roots(&self.index()?);
        self.reachable(roots)
    }

    /// `roots` and every blob they reach through JSON documents. A missing
    /// blob is not followed (it has no children to give).
    pub fn reachable(&self, roots: Vec<BlobDigest>) -> Result<BTreeSet<BlobDigest>, LayoutError> {
        Documents::new(self)?.reachable(roots)
    }

    /// How many layers the documents among `reachable` list (a set from
    /// [`OciLayout::reachable`]).
    pub fn layer_count(&self, reachable: &BTreeSet<BlobDigest>) -> Result<usize, LayoutError> {
        Documents::new(self)?.layer_count(reachable)
    }

    /// Removes every blob no entry of `index.json` reaches, and temporary
    /// files left by killed writers. Skipped (`Ok(None)`) while another
    /// process reads or writes the folder. Only names inside the folder
    /// are removed, through the folder's own descriptors: a link is
    /// removed, never followed.
    pub fn collect_garbage(&self) -> Result<Option<Collected>, LayoutError> {
        let Some(_lock) = self.lock(LOCK_FILE, nix::fcntl::FlockArg::LockExclusiveNonblock)? else {
            return Ok(None);
        };
        let keep = self.referenced()?;
        let mut collected = Collected::default();
        if let Some(blobs_dir) = self.blobs_dir(false)? {
            for (digest, size) in self.blobs()? {
                if !keep.contains(&digest) {
                    nix::unistd::unlinkat(blobs_dir.as_fd(), digest.hex(), UnlinkatFlags::NoRemoveDir)
                        .map_err(|errno| self.io()(errno.into()))?;
                    collected.blobs += 1;
                    collected.bytes += size;
                }
            }
        }
        // Nobody else holds the lock, so every file being ingested is a
        // killed writer's, and so is every temporary file or folder (a
        // killed save of cache mounts). Best effort: what cannot be removed
        // now is tried again next time.
        let root = self.root.as_fd();
        for (name, stat) in self.entries(self.reopen_root()?)? {
            let Some(name) = name.to_str() else { continue };
            if name == INGEST_DIR || name.starts_with(TEMP_PREFIX) {
                remove_entry(root, name, &stat, 0);
            }
        }
        Ok(Some(collected))
    }

    /// A second descriptor of the folder with its own read position.
    fn reopen_root(&self) -> Result<OwnedFd, LayoutError> {
        nix::fcntl::openat(self.root.as_fd(), ".", DIR_FLAGS, Mode::empty()).map_err(|errno| self.io()(errno.into()))
    }

    /// Disk space held by temporary files in the folder (blobs being
    /// written, or left by a killed writer until the next collection):
    /// blocks, not length, since a preallocated file holds more than its
    /// length says.
    pub fn temporary_bytes(&self) -> Result<u64, LayoutError> {
        let mut bytes = 0;
        for (name, stat) in self.entries(self.reopen_root()?)? {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TEMP_PREFIX) && is_regular(&stat) {
                bytes += stat.st_blocks as u64 * 512;
            }
        }
        if let Ok(Some(ingest)) = self.subdir(self.root.as_fd(), INGEST_DIR, INGEST_DIR, false) {
            bytes += self
                .entries(ingest)?
                .iter()
                .filter(|(_, s)| is_regular(s))
                .map(|(_, s)| s.st_blocks as u64 * 512)
                .sum::<u64>();
        }
        Ok(bytes)
    }
}

/// Whether opening for writing failed because the folder is not ours to
/// write (a read-only mount, another user's cache).
fn read_only(error: &io::Error) -> bool {
    matches!(Errno::from_raw(error.raw_os_error().unwrap_or(0)), Errno::EROFS | Errno::EACCES | Errno::EPERM)
}

/// How deep a temporary folder is emptied; a deeper one (no save of ours
/// makes one) is left, rather than recursing without bound.
const MAX_REMOVE_DEPTH: usize = 64;

/// Removes `name` in `parent` (its `lstat` is `stat`): a folder with what
/// is in it, anything else by unlinking its name, links included (never
/// their targets). Best effort.
fn remove_entry<P: ?Sized + nix::NixPath>(parent: BorrowedFd<'_>, name: &P, stat: &FileStat, depth: usize) {
    if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
        let _ = nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir);
        return;
    }
    if depth >= MAX_REMOVE_DEPTH {
        return;
    }
    if let Ok(mut dir) = nix::fcntl::openat(parent, name, DIR_FLAGS, Mode::empty()).and_then(nix::dir::Dir::from_fd) {
        let names: Vec<std::ffi::CString> = dir
            .iter()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for child in names {
            if let Ok(stat) = nix::sys::stat::fstatat(dir.as_fd(), child.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                remove_entry(dir.as_fd(), child.as_c_str(), &stat, depth + 1);
            }
        }
    }
    let _ = nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir);
}

/// The documents of one folder as a walk reads them: each blob is read and
/// parsed once, however many tags reach it (`fbuild cache ls` walks every
/// tag).
pub(crate) struct Documents<'a> {
    layout: &'a OciLayout,
    blobs_dir: Option<OwnedFd>,
    children: HashMap<BlobDigest, Vec<(BlobDigest, ChildKind)>>,
}

impl<'a> Documents<'a> {
    pub(crate) fn new(layout: &'a OciLayout) -> Result<Documents<'a>, LayoutError> {
        Ok(Documents { layout, blobs_dir: layout.blobs_dir(false)?, children: HashMap::new() })
    }

    /// The children of `digest` when it is a document (a regular file of at
    /// most [`MAX_DOCUMENT_SIZE`] bytes); none for a layer or a missing blob.
    fn children(&mut self, digest: &BlobDigest) -> Result<&[(BlobDigest, ChildKind)], LayoutError> {
        if !self.children.contains_key(digest) {
            let mut found = Vec::new();
            if let Some(dir) = &self.blobs_dir {
                let stat = self.layout.stat_entry(dir.as_fd(), digest.hex())?;
                if stat.is_some_and(|s| is_regular(&s) && s.st_size as u64 <= MAX_DOCUMENT_SIZE) {
                    found = children(&self.layout.read_blob(digest)?);
                }
            }
            self.children.insert(digest.clone(), found);
        }
        Ok(&self.children[digest])
    }

    /// `roots` and every blob they reach.
    pub(crate) fn reachable(&mut self, roots: Vec<BlobDigest>) -> Result<BTreeSet<BlobDigest>, LayoutError> {
        let mut seen = BTreeSet::new();
        let mut pending = roots;
        while let Some(digest) = pending.pop() {
            if !seen.insert(digest.clone()) {
                continue;
            }
            pending.extend(self.children(&digest)?.iter().map(|(digest, _)| digest.clone()));
        }
        Ok(seen)
    }

    /// How many layers the documents among `reachable` list.
    pub(crate) fn layer_count(&mut self, reachable: &BTreeSet<BlobDigest>) -> Result<usize, LayoutError> {
        let mut count = 0;
        for digest in reachable {
            count += self.children(digest)?.iter().filter(|(_, kind)| *kind == ChildKind::Layer).count();
        }
        Ok(count)
    }
}

/// The image `DIR[:TAG|@DIGEST]` names in an OCI layout folder (tag
/// `latest` when neither is given; a `:` or `@` after the last `/` starts
/// the tag or digest, as buildx reads `oci-layout://` references): the
/// folder and the digest, checked to be in it.
pub fn resolve_image(spec: &str) -> Result<(PathBuf, BlobDigest), LayoutError> {
    let last_slash = spec.rfind('/').map_or(0, |i| i + 1);
    let (dir, rest) = match spec[last_slash..].find(['@', ':']) {
        Some(at) => spec.split_at(last_slash + at),
        None => (spec, ""),
    };
    let layout = OciLayout::open_existing(dir)?.ok_or_else(|| LayoutError::MissingLayout { dir: dir.into() })?;
    let digest = match rest.strip_prefix('@') {
        Some(digest) => BlobDigest::parse(digest)?,
        None => {
            let tag = rest.strip_prefix(':').filter(|t| !t.is_empty()).unwrap_or("latest");
            BlobDigest::parse(layout.resolve_tag(tag)?.digest().as_ref())?
        }
    };
    if layout.blob_size(&digest)?.is_none() {
        return Err(LayoutError::MissingBlob { dir: dir.into(), digest: digest.to_string() });
    }
    Ok((PathBuf::from(dir), digest))
}

/// What a collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: usize,
    pub bytes: u64,
}

/// The folder's lock, held shared by a build that uses the folder;
/// `None` in a read-only folder without a lock file (see
/// [`OciLayout::lock_shared`]).
#[derive(Debug)]
pub struct FolderLock(#[allow(dead_code)] Option<nix::fcntl::Flock<File>>);

/// What a document's child is to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildKind {
    Layer,
    Other,
}

/// The digests a JSON document points at: `config`, `layers[]`,
/// `manifests[]`, `blobs[]` (an image, an index, a cache manifest, carried
/// cache mounts). A blob that is not JSON has none. BuildKit's cache index
/// (without `image-manifest`) lists its layers under `manifests`, told by
/// their media type.
fn children(bytes: &[u8]) -> Vec<(BlobDigest, ChildKind)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Vec::new() };
    let digest_of = |v: &serde_json::Value| v.get("digest")?.as_str().and_then(|d| BlobDigest::parse(d).ok());
    let is_layer =
        |v: &serde_json::Value| v.get("mediaType").and_then(|m| m.as_str()).is_some_and(|m| m.contains("layer"));
    let mut out = Vec::new();
    if let Some(config) = value.get("config") {
        out.extend(digest_of(config).map(|d| (d, ChildKind::Other)));
    }
    for key in ["layers", "manifests", "blobs"] {
        for item in value.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
            let kind = if key == "layers" || is_layer(item) { ChildKind::Layer } else { ChildKind::Other };
            out.extend(digest_of(item).map(|d| (d, kind)));
        }
    }
    out
}

/// A blob being written: bytes go to a temporary file in the folder's
/// `.fbuild-ingest/` while their digest is computed; [`BlobWriter::commit`]
/// checks the digest (and size) and renames the file into `blobs/`. Dropped
/// without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    layout: OciLayout,
    file: File,
    /// The ingest folder, and the file's name in it until committed.
    ingest: OwnedFd,
    name: Option<String>,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> BlobDigest {
        BlobDigest(format!("sha256:{}", hex::encode(self.hasher.clone().finalize())))
    }

    /// Reserves disk blocks for a blob of `size` bytes, leaving the file's
    /// length alone. Filesystems with delayed allocation (ext4, xfs) then
    /// map the blocks once rather than reserving them page by page as the
    /// writes come, which was a sixth of a cache export's CPU. A hint: a
    /// filesystem that cannot do it, or a size that does not fit, is left
    /// to the writes to find out. A killed writer's reservation is counted
    /// by [`OciLayout::temporary_bytes`] and freed by the next collection.
    pub fn preallocate(&self, size: u64) {
        use nix::fcntl::{fallocate, FallocateFlags};
        let Ok(size) = i64::try_from(size) else { return };
        let _ = fallocate(&self.file, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, size);
    }

    /// Throws away what was written, to start again from the beginning.
    pub fn restart(&mut self) -> io::Result<()> {
        use std::io::Seek;
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Checks the bytes against `expected` digest and `size` (when given)
    /// and stores them under their digest.
    pub fn commit(mut self, expected: Option<&BlobDigest>, size: Option<u64>) -> Result<BlobDigest, CommitError> {
        let actual = self.digest();
        if let Some(size) = size {
            if size != self.written {
                return Err(CommitError::Size { expected: size, actual: self.written });
            }
        }
        if let Some(expected) = expected {
            if expected != &actual {
                return Err(CommitError::Digest { expected: expected.to_string(), actual: actual.to_string() });
            }
        }
        self.file.sync_all().map_err(CommitError::Io)?;
        let blobs = match self.layout.blobs_dir(true) {
            Ok(Some(blobs)) => blobs,
            Ok(None) => return Err(CommitError::Io(io::ErrorKind::NotFound.into())),
            Err(error) => return Err(CommitError::Folder(Box::new(error))),
        };
        let name = self.name.as_deref().expect("named until committed");
        nix::fcntl::renameat(self.ingest.as_fd(), name, blobs.as_fd(), actual.hex())
            .map_err(|errno| CommitError::Io(errno.into()))?;
        self.name = None;
        Ok(actual)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = nix::unistd::unlinkat(self.ingest.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    /// One `writev` for a message that arrived in many pieces.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        let mut left = n;
        for buf in bufs {
            let take = left.min(buf.len());
            self.hasher.update(&buf[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A blob that does not match what its writer said it would be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    #[error("the blob has {actual} bytes, {expected} were announced")]
    Size { expected: u64, actual: u64 },
    #[error("the blob's content hashes to {actual}, {expected} was announced")]
    Digest { expected: String, actual: String },
    #[error("cannot store the blob")]
    Io(#[source] io::Error),
    #[error("cannot store the blob")]
    Folder(#[source] Box<LayoutError>),
}

/// The tag of an `index.json` entry.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    annotation(descriptor, REF_NAME_ANNOTATION)
}

/// The tag (or digest) part of an image reference, which OCI layouts use as
/// the ref name (containerd's `reference.Parse(name).Object`).
fn reference_object(name: &str) -> &str {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find(['@', ':']) {
        Some(at) => &name[last_slash + at + 1..],
        None => name,
    }
}

fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor.annotations().as_ref()?.get(key).map(String::as_str)
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .expect("an empty index is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(digest: &BlobDigest, size: u64) -> Descriptor {
        Descriptor::new(MediaType::ImageManifest, size, digest.as_str().parse::<oci_spec::image::Digest>().unwrap())
    }

    #[test]
    fn digests_name_blobs_and_nothing_else() {
        assert!(BlobDigest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        for bad in ["sha256:../../etc/passwd", "sha512:aa", "sha256:ABC", &format!("sha256:{}", "A".repeat(64))] {
            assert!(matches!(BlobDigest::parse(bad), Err(LayoutError::BadDigest { .. })), "{bad}");
        }
    }

    #[test]
    fn a_blob_lands_only_when_its_digest_checks() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let good = BlobDigest::of(b"hello");
        let mut writer = layout.writer().unwrap();
        writer.write_all(b"hellx").unwrap();
        assert!(matches!(writer.commit(Some(&good), None), Err(CommitError::Digest { .. })));
        assert_eq!(layout.blob_size(&good).unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join(INGEST_DIR)).unwrap().count(), 0, "the temp file is gone");

        let mut writer = layout.writer().unwrap();
        writer.write_all(b"hel").unwrap();
        writer.restart().unwrap();
        writer.write_all(b"hello").unwrap();
        assert_eq!(writer.commit(Some(&good), Some(5)).unwrap(), good);
        assert_eq!(layout.read_blob(&good).unwrap(), b"hello");
    }

    #[test]
    fn a_preallocated_blob_is_only_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let good = BlobDigest::of(b"hello");
        let mut writer = layout.writer().unwrap();
        // More than will come (a daemon's `total` can be wrong), and more than
        // any disk has: both leave the blob's bytes and size as written.
        writer.preallocate(1 << 20);
        writer.preallocate(u64::MAX);
        writer.write_all(b"hello").unwrap();
        assert!(matches!(writer.commit(Some(&good), Some(1 << 20)), Err(CommitError::Size { .. })));
        let mut writer = layout.writer().unwrap();
        writer.preallocate(1 << 20);
        writer.write_all(b"hello").unwrap();
        assert_eq!(writer.commit(Some(&good), Some(5)).unwrap(), good);
        assert_eq!(layout.blob_size(&good).unwrap(), Some(5));
        assert_eq!(layout.read_blob(&good).unwrap(), b"hello");
    }

    #[test]
    fn tags_replace_their_entries_and_collection_keeps_what_they_reach() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let layer_a = layout.write_blob(b"layer a").unwrap();
        let layer_b = layout.write_blob(b"layer b").unwrap();
        let manifest = |layer: &BlobDigest| {
            serde_json::json!({"schemaVersion": 2, "layers": [{"digest": layer.as_str(), "size": 7}]}).to_string()
        };
        let m1 = layout.write_blob(manifest(&layer_a).as_bytes()).unwrap();
        let m2 = layout.write_blob(manifest(&layer_b).as_bytes()).unwrap();
        layout.tag(&descriptor(&m1, 1), &["main"]).unwrap();
        layout.tag(&descriptor(&m2, 1), &["pr"]).unwrap();
        assert_eq!(layout.collect_garbage().unwrap(), Some(Collected::default()), "both tags keep their blobs");

        // "main" moves on: its old layer goes, "pr"'s stays.
        let layer_c = layout.write_blob(b"layer c").unwrap();
        let m3 = layout.write_blob(manifest(&layer_c).as_bytes()).unwrap();
        layout.tag(&descriptor(&m3, 1), &["main"]).unwrap();
        let collected = layout.collect_garbage().unwrap().unwrap();
        assert_eq!(collected.blobs, 2, "m1 and layer a");
        let left: BTreeSet<BlobDigest> = layout.blobs().unwrap().into_keys().collect();
        assert_eq!(left, BTreeSet::from([layer_b, m2, layer_c, m3.clone()]));
        assert_eq!(layout.index().unwrap().manifests().len(), 2);
        assert_eq!(layout.resolve_tag("main").unwrap().digest().as_ref(), m3.as_str());
        let err = layout.resolve_tag("nope").unwrap_err().to_string();
        assert!(err.contains("no entry tagged \"nope\" (tags: main, pr)"), "{err}");
    }

    #[test]
    fn collection_waits_for_no_one_and_skips_while_a_build_holds_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let orphan = layout.write_blob(b"orphan").unwrap();
        std::fs::create_dir_all(dir.path().join(".fbuild-tmp-mounts-x/inside")).unwrap();
        let held = layout.lock_shared().unwrap();
        assert_eq!(layout.collect_garbage().unwrap(), None);
        assert!(layout.blob_size(&orphan).unwrap().is_some());
        drop(held);
        assert_eq!(layout.collect_garbage().unwrap().unwrap().blobs, 1);
        assert!(!dir.path().join(".fbuild-tmp-mounts-x").exists(), "a killed save's staging folder goes too");
    }

    #[test]
    fn tagging_a_missing_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let err = layout.tag(&descriptor(&BlobDigest::of(b"x"), 1), &["latest"]).unwrap_err();
        assert!(matches!(err, LayoutError::MissingBlob { .. }), "{err}");
        assert!(!dir.path().join("index.json").exists());
    }

    #[test]
    fn only_layouts_open() {
        let dir = tempfile::tempdir().unwrap();
        assert!(OciLayout::open_existing(dir.path().join("missing")).unwrap().is_none());
        assert!(OciLayout::open_existing(dir.path()).unwrap().is_none(), "an empty folder has no cache yet");
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let err = OciLayout::open_existing(dir.path()).unwrap_err();
        assert!(err.to_string().ends_with("is not an OCI layout folder (no oci-layout or index.json)"), "{err}");
    }

    /// A layout with one tagged manifest and one unreferenced blob.
    fn tagged_layout(dir: &Path) -> (OciLayout, BlobDigest) {
        let layout = OciLayout::create(dir).unwrap();
        let layer = layout.write_blob(b"layer").unwrap();
        let manifest = serde_json::json!({"schemaVersion": 2, "layers": [{"digest": layer.as_str(), "size": 5}]});
        let m = layout.write_blob(manifest.to_string().as_bytes()).unwrap();
        layout.tag(&descriptor(&m, 1), &["latest"]).unwrap();
        let orphan = layout.write_blob(b"orphan").unwrap();
        (layout, orphan)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_linked_ingest_folder_loses_the_link_not_the_files_it_points_at() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"keep").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = tagged_layout(dir.path());
        let _ = std::fs::remove_dir(dir.path().join(INGEST_DIR));
        std::os::unix::fs::symlink(outside.path(), dir.path().join(INGEST_DIR)).unwrap();
        layout.collect_garbage().unwrap().unwrap();
        assert_eq!(names(outside.path()), ["precious"], "nothing outside the folder is removed");
        assert!(!dir.path().join(INGEST_DIR).exists(), "the link itself goes");
        // A writer refuses the link rather than writing through it.
        std::os::unix::fs::symlink(outside.path(), dir.path().join(INGEST_DIR)).unwrap();
        let err = layout.writer().unwrap_err();
        assert!(matches!(err, LayoutError::Untrusted { found: "a symbolic link", .. }), "{err}");
        assert!(err.to_string().contains(".fbuild-ingest is a symbolic link, not a folder"), "{err}");
        assert_eq!(names(outside.path()), ["precious"]);
    }

    #[test]
    fn a_linked_blobs_folder_is_refused_and_left_alone() {
        let other = tempfile::tempdir().unwrap();
        let (elsewhere, _) = tagged_layout(other.path());
        let before = names(&other.path().join("blobs/sha256"));
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        std::fs::remove_dir_all(dir.path().join("blobs")).unwrap();
        std::os::unix::fs::symlink(other.path().join("blobs"), dir.path().join("blobs")).unwrap();
        let err = layout.collect_garbage().unwrap_err();
        assert!(err.to_string().contains("/blobs is a symbolic link, not a folder"), "{err}");
        assert!(layout.blobs().is_err());
        assert!(layout.write_blob(b"x").is_err(), "no blob is written through the link");
        assert_eq!(names(&other.path().join("blobs/sha256")), before, "no blob of the other folder is removed");
        assert!(elsewhere.resolve_tag("latest").is_ok());
        // blobs/sha256 as a link, one level down, is refused the same way.
        std::fs::remove_file(dir.path().join("blobs")).unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::os::unix::fs::symlink(other.path().join("blobs/sha256"), dir.path().join("blobs/sha256")).unwrap();
        let err = layout.collect_garbage().unwrap_err();
        assert!(err.to_string().contains("/blobs/sha256 is a symbolic link, not a folder"), "{err}");
        assert_eq!(names(&other.path().join("blobs/sha256")), before);
    }

    #[test]
    fn a_linked_lock_file_creates_nothing_where_it_points() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        for name in [LOCK_FILE, INDEX_LOCK_FILE] {
            let _ = std::fs::remove_file(dir.path().join(name));
            std::os::unix::fs::symlink(outside.path().join(name), dir.path().join(name)).unwrap();
        }
        let err = layout.lock_shared().unwrap_err();
        assert!(err.to_string().contains(".fbuild-lock is a symbolic link, not a file"), "{err}");
        assert!(layout.collect_garbage().is_err());
        let blob = layout.write_blob(b"m").unwrap();
        assert!(layout.tag(&descriptor(&blob, 1), &["x"]).is_err());
        assert!(names(outside.path()).is_empty(), "no file appears outside: {:?}", names(outside.path()));
    }

    #[test]
    fn fifos_devices_and_huge_documents_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = tagged_layout(dir.path());
        let index = dir.path().join("index.json");
        let manifest = BlobDigest::parse(layout.resolve_tag("latest").unwrap().digest().as_ref()).unwrap();
        let blob = layout.blob_path(&manifest);

        // A FIFO with no writer would block a plain read forever.
        std::fs::remove_file(&index).unwrap();
        nix::unistd::mkfifo(&index, Mode::from_bits_truncate(0o600)).unwrap();
        let err = layout.index().unwrap_err();
        assert!(err.to_string().contains("index.json is a FIFO, not a file"), "{err}");
        // /dev/zero never ends.
        std::fs::remove_file(&index).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
        let err = layout.index().unwrap_err();
        assert!(err.to_string().contains("index.json is a symbolic link, not a file"), "{err}");
        // A sparse file bigger than the bound is refused by its size.
        std::fs::remove_file(&index).unwrap();
        File::create(&index).unwrap().set_len(MAX_INDEX_SIZE + 1).unwrap();
        let err = layout.index().unwrap_err();
        assert!(matches!(err, LayoutError::TooLarge { limit: MAX_INDEX_SIZE, .. }), "{err}");

        std::fs::remove_file(&blob).unwrap();
        nix::unistd::mkfifo(&blob, Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(layout.read_blob(&manifest), Err(LayoutError::Untrusted { found: "a FIFO", .. })));
        assert!(matches!(layout.open_blob(&manifest), Err(LayoutError::Untrusted { .. })));
        std::fs::remove_file(&blob).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
        assert!(matches!(layout.read_blob(&manifest), Err(LayoutError::Untrusted { found: "a symbolic link", .. })));
        assert_eq!(layout.blob_size(&manifest).unwrap(), None, "a link is no blob");
        std::fs::remove_file(&blob).unwrap();
        File::create(&blob).unwrap().set_len(MAX_DOCUMENT_SIZE + 1).unwrap();
        assert!(matches!(layout.read_blob(&manifest), Err(LayoutError::TooLarge { .. })));
    }

    #[test]
    fn collection_removes_links_in_temporary_folders_not_their_targets() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"keep").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (layout, orphan) = tagged_layout(dir.path());
        let staging = dir.path().join(".fbuild-tmp-mounts-x/deeper");
        std::fs::create_dir_all(&staging).unwrap();
        std::os::unix::fs::symlink(outside.path(), staging.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(".fbuild-tmp-link")).unwrap();
        let collected = layout.collect_garbage().unwrap().unwrap();
        assert_eq!(collected.blobs, 1);
        assert_eq!(layout.blob_size(&orphan).unwrap(), None);
        assert_eq!(names(outside.path()), ["precious"]);
        assert!(!dir.path().join(".fbuild-tmp-mounts-x").exists());
        assert!(std::fs::symlink_metadata(dir.path().join(".fbuild-tmp-link")).is_err());
    }

    #[test]
    fn other_digest_algorithms_in_the_index_are_kept_and_do_not_fail_collection() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, orphan) = tagged_layout(dir.path());
        let mut index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha512:{}", "a".repeat(128)),
            "size": 1,
            "annotations": {REF_NAME_ANNOTATION: "other"}
        }));
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        assert_eq!(layout.collect_garbage().unwrap().unwrap().blobs, 1);
        assert_eq!(layout.blob_size(&orphan).unwrap(), None);
        let blob = layout.write_blob(b"new").unwrap();
        layout.tag(&descriptor(&blob, 3), &["new"]).unwrap();
        let tags: Vec<String> =
            layout.index().unwrap().manifests().iter().filter_map(ref_name).map(String::from).collect();
        assert_eq!(tags, ["latest", "other", "new"], "the sha512 entry is kept");
    }

    #[test]
    fn unknown_tag_errors_escape_the_folders_tags() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = tagged_layout(dir.path());
        let blob = layout.write_blob(b"m").unwrap();
        layout.tag(&descriptor(&blob, 1), &["evil\x1b]0;title\x07"]).unwrap();
        let err = layout.resolve_tag("nope").unwrap_err().to_string();
        assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
        assert!(err.contains("evil\\u{1b}]0;title\\u{7}, latest"), "{err}");
    }

    #[test]
    fn a_folder_another_build_is_creating_is_no_cache_yet() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        std::fs::write(dir.path().join(".fbuild-tmp-0123"), b"{").unwrap();
        assert!(OciLayout::open_existing(dir.path()).unwrap().is_none());
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        assert!(OciLayout::open_existing(dir.path()).is_err(), "a folder with other things is not a layout");
    }

    #[test]
    fn a_killed_writers_preallocation_is_counted_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = tagged_layout(dir.path());
        assert_eq!(layout.temporary_bytes().unwrap(), 0);
        let writer = layout.writer().unwrap();
        writer.preallocate(8 << 20);
        // What a killed process leaves: the file, never committed or removed.
        std::mem::forget(writer);
        assert!(layout.temporary_bytes().unwrap() >= 8 << 20, "{}", layout.temporary_bytes().unwrap());
        layout.collect_garbage().unwrap().unwrap();
        assert_eq!(layout.temporary_bytes().unwrap(), 0);
    }
}

/// Cache folders as untrusted input, fuzzed (beside `src/fuzz.rs`).
#[cfg(test)]
#[path = "fuzz.rs"]
mod fuzz;
