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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

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
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

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

    fn hex(&self) -> &str {
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

/// An OCI layout folder.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

impl OciLayout {
    /// Opens `dir`, creating it and its `oci-layout` file when missing.
    pub fn create(dir: impl Into<PathBuf>) -> Result<OciLayout, LayoutError> {
        let layout = OciLayout { dir: dir.into() };
        let io = |source| LayoutError::Io { dir: layout.dir.clone(), source };
        std::fs::create_dir_all(layout.dir.join("blobs/sha256")).map_err(io)?;
        if !layout.dir.join(LAYOUT_FILE).exists() {
            layout.write_atomically(LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout folder: `Ok(None)` when `dir` does not
    /// exist or is empty (a cache not made yet), an error when it holds
    /// something that is not an OCI layout.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Option<OciLayout>, LayoutError> {
        let dir = dir.into();
        match std::fs::read_dir(&dir) {
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LayoutError::Io { dir, source }),
            Ok(mut entries) => {
                if entries.next().is_none() {
                    return Ok(None);
                }
            }
        }
        if !dir.join(LAYOUT_FILE).is_file() && !dir.join("index.json").is_file() {
            return Err(LayoutError::NotALayout { dir });
        }
        Ok(Some(OciLayout { dir }))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self) -> impl Fn(io::Error) -> LayoutError + '_ {
        move |source| LayoutError::Io { dir: self.dir.clone(), source }
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &BlobDigest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// The blob's size, or `None` when the folder does not have it.
    pub fn blob_size(&self, digest: &BlobDigest) -> Result<Option<u64>, LayoutError> {
        match std::fs::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io()(error)),
        }
    }

    /// Every blob in the folder with its size.
    pub fn blobs(&self) -> Result<BTreeMap<BlobDigest, u64>, LayoutError> {
        let mut blobs = BTreeMap::new();
        let entries = match std::fs::read_dir(self.dir.join("blobs/sha256")) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(blobs),
            Err(error) => return Err(self.io()(error)),
        };
        for entry in entries {
            let entry = entry.map_err(self.io())?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(|hex| BlobDigest::parse(&format!("sha256:{hex}")).ok()) else {
                continue;
            };
            let meta = entry.metadata().map_err(self.io())?;
            if meta.is_file() {
                blobs.insert(digest, meta.len());
            }
        }
        Ok(blobs)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &BlobDigest) -> Result<File, LayoutError> {
        File::open(self.blob_path(digest)).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => LayoutError::MissingBlob { dir: self.dir.clone(), digest: digest.to_string() },
            _ => self.io()(error),
        })
    }

    /// Reads a whole blob (a manifest or an index) and checks its digest.
    pub fn read_blob(&self, digest: &BlobDigest) -> Result<Vec<u8>, LayoutError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut bytes).map_err(self.io())?;
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
        let ingest = self.dir.join(INGEST_DIR);
        std::fs::create_dir_all(&ingest).map_err(self.io())?;
        let file = tempfile::Builder::new().prefix("blob-").tempfile_in(&ingest).map_err(self.io())?;
        Ok(BlobWriter { layout: self.clone(), file, hasher: Sha256::new(), written: 0 })
    }

    /// Stores `bytes` as a blob (a manifest, a config) and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<BlobDigest, LayoutError> {
        let mut writer = self.writer()?;
        writer.write_all(bytes).map_err(self.io())?;
        writer.commit(None, None).map_err(|source| LayoutError::Commit { dir: self.dir.clone(), source })
    }

    /// The folder's `index.json`; an empty index when there is none yet.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        match std::fs::read(self.dir.join("index.json")) {
            Ok(bytes) => ImageIndex::from_reader(bytes.as_slice())
                .map_err(|source| LayoutError::BadIndex { dir: self.dir.clone(), source }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(empty_index()),
            Err(error) => Err(self.io()(error)),
        }
    }

    /// The entry of `index.json` tagged `tag`.
    pub fn resolve_tag(&self, tag: &str) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let found = index.manifests().iter().find(|d| ref_name(d) == Some(tag)).cloned();
        found.ok_or_else(|| {
            let mut tags: Vec<&str> = index.manifests().iter().filter_map(ref_name).collect();
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
    /// entries `replaced` picks, under the index lock.
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
        self.write_atomically("index.json", &bytes)
    }

    /// The entry of `index.json` whose annotation `key` is `value`.
    pub fn entry(&self, key: &str, value: &str) -> Result<Option<Descriptor>, LayoutError> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .find(|d| d.annotations().as_ref().and_then(|a| a.get(key)).is_some_and(|v| v == value))
            .cloned())
    }

    /// Writes `name` in the folder by rename from a temporary file.
    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let mut file = tempfile::Builder::new().prefix(".fbuild-tmp-").tempfile_in(&self.dir).map_err(self.io())?;
        file.write_all(bytes).map_err(self.io())?;
        file.as_file().sync_all().map_err(self.io())?;
        file.persist(self.dir.join(name)).map_err(|error| self.io()(error.error))?;
        Ok(())
    }

    /// Takes the folder's lock shared, as a build that reads or writes
    /// blobs does ([`OciLayout::collect_garbage`] takes it exclusively).
    pub fn lock_shared(&self) -> Result<FolderLock, LayoutError> {
        let lock = self.lock(LOCK_FILE, nix::fcntl::FlockArg::LockShared)?;
        Ok(FolderLock(lock.expect("a blocking lock is always taken")))
    }

    /// Takes the lock file `name` as `arg` says; `None` when `arg` does not
    /// block and another process holds it.
    fn lock(&self, name: &str, arg: nix::fcntl::FlockArg) -> Result<Option<nix::fcntl::Flock<File>>, LayoutError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(name))
            .map_err(self.io())?;
        match nix::fcntl::Flock::lock(file, arg) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(self.io()(io::Error::from(errno))),
        }
    }

    /// Every blob that an entry of `index.json` reaches: the entries
    /// themselves and, through each manifest or index, its config, layers and
    /// manifests.
    pub fn referenced(&self) -> Result<BTreeSet<BlobDigest>, LayoutError> {
        let roots = self
            .index()?
            .manifests()
            .iter()
            .map(|descriptor| BlobDigest::parse(descriptor.digest().as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        self.reachable(roots)
    }

    /// `roots` and every blob they reach through JSON documents. A missing
    /// blob is not followed (it has no children to give).
    pub fn reachable(&self, roots: Vec<BlobDigest>) -> Result<BTreeSet<BlobDigest>, LayoutError> {
        let mut seen = BTreeSet::new();
        let mut pending = roots;
        while let Some(digest) = pending.pop() {
            if !seen.insert(digest.clone()) {
                continue;
            }
            // Only small JSON documents have children; a layer is never read.
            match self.blob_size(&digest)? {
                Some(size) if size <= MAX_DOCUMENT_SIZE => {}
                _ => continue,
            }
            let bytes = self.read_blob(&digest)?;
            pending.extend(children(&bytes).into_iter().map(|(digest, _)| digest));
        }
        Ok(seen)
    }

    /// How many layers the documents among `reachable` list (a set from
    /// [`OciLayout::reachable`]).
    pub fn layer_count(&self, reachable: &BTreeSet<BlobDigest>) -> Result<usize, LayoutError> {
        let mut count = 0;
        for digest in reachable {
            if self.blob_size(digest)?.is_some_and(|size| size <= MAX_DOCUMENT_SIZE) {
                let bytes = self.read_blob(digest)?;
                count += children(&bytes).iter().filter(|(_, kind)| *kind == ChildKind::Layer).count();
            }
        }
        Ok(count)
    }

    /// Removes every blob no entry of `index.json` reaches, and temporary
    /// files left by killed writers. Skipped (`Ok(None)`) while another
    /// process reads or writes the folder.
    pub fn collect_garbage(&self) -> Result<Option<Collected>, LayoutError> {
        let Some(_lock) = self.lock(LOCK_FILE, nix::fcntl::FlockArg::LockExclusiveNonblock)? else {
            return Ok(None);
        };
        let keep = self.referenced()?;
        let mut collected = Collected::default();
        for (digest, size) in self.blobs()? {
            if !keep.contains(&digest) {
                std::fs::remove_file(self.blob_path(&digest)).map_err(self.io())?;
                collected.blobs += 1;
                collected.bytes += size;
            }
        }
        // Nobody else holds the lock, so every file being ingested is a
        // killed writer's.
        if let Ok(entries) = std::fs::read_dir(self.dir.join(INGEST_DIR)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
            let _ = std::fs::remove_dir(self.dir.join(INGEST_DIR));
        }
        // Temporary files and folders (a killed save of cache mounts) of
        // ours; symbolic links are removed, never followed.
        for entry in std::fs::read_dir(&self.dir).map_err(self.io())?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".fbuild-tmp-") {
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                    _ => {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(Some(collected))
    }
}

/// The image `DIR[:TAG|@DIGEST]` names in an OCI layout folder (tag
/// `latest` when neither is given; a `:` or `@` after the last `/` starts
/// the tag or digest, as buildx reads `oci-layout://` references): the
/// folder and the digest, checked to be in it.
pub fn resolve_image(spec: &str) -> Result<(PathBuf, BlobDigest), String> {
    let last_slash = spec.rfind('/').map_or(0, |i| i + 1);
    let (dir, rest) = match spec[last_slash..].find(['@', ':']) {
        Some(at) => spec.split_at(last_slash + at),
        None => (spec, ""),
    };
    let layout = OciLayout::open_existing(dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{dir} is not an OCI layout folder (missing or empty)"))?;
    let digest = match rest.strip_prefix('@') {
        Some(digest) => BlobDigest::parse(digest).map_err(|e| e.to_string())?,
        None => {
            let tag = rest.strip_prefix(':').filter(|t| !t.is_empty()).unwrap_or("latest");
            let descriptor = layout.resolve_tag(tag).map_err(|e| e.to_string())?;
            BlobDigest::parse(descriptor.digest().as_ref()).map_err(|e| e.to_string())?
        }
    };
    if layout.blob_size(&digest).map_err(|e| e.to_string())?.is_none() {
        return Err(format!("{dir} has no blob {digest}"));
    }
    Ok((PathBuf::from(dir), digest))
}

/// What a collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: usize,
    pub bytes: u64,
}

/// The folder's lock, held shared by a build that uses the folder.
#[derive(Debug)]
pub struct FolderLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Manifests, indexes and cache configs are small; anything larger is a
/// layer and is not parsed for children.
const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

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

/// A blob being written: bytes go to a temporary file in the folder while
/// their digest is computed; [`BlobWriter::commit`] checks the digest (and
/// size) and renames the file into `blobs/`. Dropped without a commit, the
/// temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    layout: OciLayout,
    file: tempfile::NamedTempFile,
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
    /// to the writes to find out.
    pub fn preallocate(&self, size: u64) {
        use nix::fcntl::{fallocate, FallocateFlags};
        let Ok(size) = i64::try_from(size) else { return };
        let _ = fallocate(self.file.as_file(), FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, size);
    }

    /// Throws away what was written, to start again from the beginning.
    pub fn restart(&mut self) -> io::Result<()> {
        use std::io::Seek;
        self.file.as_file().set_len(0)?;
        self.file.as_file_mut().seek(io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Checks the bytes against `expected` digest and `size` (when given)
    /// and stores them under their digest.
    pub fn commit(self, expected: Option<&BlobDigest>, size: Option<u64>) -> Result<BlobDigest, CommitError> {
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
        self.file.as_file().sync_all().map_err(CommitError::Io)?;
        let target = self.layout.blob_path(&actual);
        self.file.persist(&target).map_err(|error| CommitError::Io(error.error))?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The file itself: NamedTempFile's own Write adds its temporary name
        // to errors, which would reach the user.
        let n = self.file.as_file_mut().write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    /// One `writev` for a message that arrived in many pieces.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.as_file_mut().write_vectored(bufs)?;
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
        self.file.as_file_mut().flush()
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
}
