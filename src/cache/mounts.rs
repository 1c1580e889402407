//! Cache mounts carried in a local cache folder (`mounts=true`): what no
//! cache exporter does. A cache mount (`RUN --mount=type=cache`) lives only
//! in the daemon that ran the step, so a fresh CI runner downloads every
//! package again even when its layers come from the cache.
//!
//! fbuild moves their contents with build graphs of its own, so any daemon
//! works and the user's cache keys never change:
//!
//! - **save** ([`save`]), after the build: a chain of exec ops in a helper
//!   image, each mounting one cache by the same id, sharing and base as the
//!   Dockerfile does (the daemon keys a cache by id and base), writing a tar
//!   of it into a scratch mount; that mount is exported as a local folder
//!   into the cache folder, each tar becomes a blob, and a list of them (a
//!   small JSON document) is recorded in `index.json` next to the tag's
//!   cache. Collection treats them like any other blob: the previous tars of
//!   the tag go once nothing reaches them.
//! - **restore** ([`restore`]), before the build: the tars are served as a
//!   local folder and an exec per mount unpacks its tar into the cache,
//!   **only when the cache is empty**. A daemon that already has contents
//!   for that cache keeps them: they come from a build on that daemon, at
//!   least as new as the folder's. The restore says which mounts it filled
//!   and which it kept.
//!
//! A cache folder is untrusted input (CI restores it from places a fork's
//! pull request can write), so a restore takes from the folder's list only
//! each tar's digest, checked to be `sha256:<hex>`, and only for ids the
//! Dockerfile declares: the mount itself (id, target, sharing, owner) is
//! the Dockerfile's, so a list can neither fill another project's cache on
//! the daemon nor put text of its own into the helper's shell script.
//!
//! The ops must run every time, but not through the op option that says so
//! (`ignore_cache`): the daemon empties the cache mounts of an op that
//! carries it (that is how `--no-cache` resets them). Each op gets a
//! one-time environment variable instead, so its cache key is new. They
//! never enter the user's graph.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::layout::{BlobDigest, LayoutError, OciLayout};
use crate::build::{build, BuildError, BuildRequest, Frontend};
use crate::dockerfile::compile;
use crate::llb::{self, Mount, OpOptions, Run};
use crate::output::{ExportEntry, ExporterType, OutputDest};
use crate::progress::ProgressSink;
use crate::proto::pb;

/// The image whose `sh` and `tar` move cache contents, unless the caller
/// names another (`helper-image=`, `FBUILD_CACHE_HELPER_IMAGE`).
pub const DEFAULT_HELPER_IMAGE: &str = "docker.io/library/busybox:latest";
/// The media type of the list of carried mounts.
const MOUNTS_MEDIA_TYPE: &str = "application/vnd.fbuild.cache-mounts.v1+json";
/// The `index.json` annotation that ties a mounts list to its tag.
const MOUNTS_TAG_ANNOTATION: &str = "dev.fbuild.cache-mounts.tag";
/// The local name under which the tars are served to a restore.
const MOUNTS_LOCAL: &str = "fbuild-cache-mounts";
/// The variable that makes each helper op new to the daemon's cache.
const NONCE_ENV: &str = "FBUILD_RUN";
/// Where the helper's ops put and find tars.
const TAR_DIR: &str = "/fbuild-tars";

/// How builds share a cache mount (`sharing=` of `RUN --mount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl Sharing {
    fn to_pb(self) -> pb::CacheSharingOpt {
        match self {
            Sharing::Shared => pb::CacheSharingOpt::Shared,
            Sharing::Private => pb::CacheSharingOpt::Private,
            Sharing::Locked => pb::CacheSharingOpt::Locked,
        }
    }
}

/// A cache mount as a Dockerfile declares it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheMount {
    /// `id=`, or the target as written when there is none.
    pub id: String,
    /// Where the step mounts it (absolute).
    pub target: String,
    pub sharing: Sharing,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits of the cache's root (`mode=`).
    pub mode: Option<u32>,
}

impl CacheMount {
    /// The id the daemon files the cache under.
    pub(crate) fn daemon_id(&self) -> String {
        compile::mounts::cache_id("", &self.id)
    }

    /// The mount in a helper op: same id, sharing and base as the
    /// Dockerfile frontend makes for it, so it is the same cache.
    fn to_llb(&self) -> Mount {
        if self.uid.is_none() && self.gid.is_none() && self.mode.is_none() {
            return Mount::cache(&self.target, &self.daemon_id(), self.sharing.to_pb());
        }
        let base =
            compile::mounts::owned_cache_base(&llb::scratch(), self.uid, self.gid, self.mode, OpOptions::default());
        Mount::cache_from(
            &self.target,
            &self.daemon_id(),
            self.sharing.to_pb(),
            &base,
            compile::mounts::OWNED_CACHE_DIR,
        )
    }
}

/// A cache mount saved in a cache folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CarriedMount {
    #[serde(flatten)]
    pub mount: CacheMount,
    /// The tar of its contents.
    pub digest: String,
    pub size: u64,
}

/// The list of a tag's carried mounts, as stored in the folder.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountsList {
    schema_version: u32,
    media_type: String,
    /// Each tar as a descriptor, so collection reaches it like a layer.
    blobs: Vec<TarDescriptor>,
    mounts: Vec<CarriedMount>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TarDescriptor {
    media_type: String,
    digest: String,
    size: u64,
}

/// Why cache mounts could not be saved or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountsError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot make the helper build graph")]
    Graph(#[source] crate::llb::MarshalError),
    #[error("the helper build failed (helper image {image})")]
    Build {
        image: String,
        #[source]
        source: Box<BuildError>,
    },
    #[error("{dir}: cannot read the saved mount {file}")]
    Read {
        dir: PathBuf,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: the list of carried cache mounts is not valid: {problem}")]
    BadList { dir: PathBuf, problem: ListProblem },
}

/// What is wrong with a folder's list of carried mounts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListProblem {
    /// Not the JSON document fbuild writes.
    #[error("{0}")]
    Json(serde_json::Error),
    /// A tar named by something other than a sha256 digest (it would
    /// reach a path and the restore script).
    #[error("the mount {id:?} names the tar {digest:?}, not a sha256 digest")]
    BadDigest { id: String, digest: String },
}

/// What a save stored.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// The mounts with contents, now in the folder.
    pub mounts: Vec<CarriedMount>,
    /// Mounts that were empty on the daemon, so nothing was stored.
    pub empty: Vec<String>,
}

/// What a restore did, by mount id.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Mounts the folder carried, unpacked into the daemon's empty caches.
    pub filled: Vec<String>,
    /// Mounts the daemon already had contents for (kept as they were).
    pub kept: Vec<String>,
    /// Ids the folder carries that the Dockerfile does not declare: never
    /// restored.
    pub ignored: Vec<String>,
}

/// The mounts carried for `tag` in `layout`, each tar's digest checked to
/// be `sha256:<hex>`.
pub fn carried(layout: &OciLayout, tag: &str) -> Result<Vec<CarriedMount>, MountsError> {
    let Some(digest) = list_digest(layout, tag)? else { return Ok(Vec::new()) };
    parse_list(&layout.read_blob(&digest)?)
        .map_err(|problem| MountsError::BadList { dir: layout.dir().to_path_buf(), problem })
}

/// Reads a list of carried mounts (a blob of an untrusted folder).
pub(crate) fn parse_list(bytes: &[u8]) -> Result<Vec<CarriedMount>, ListProblem> {
    let list: MountsList = serde_json::from_slice(bytes).map_err(ListProblem::Json)?;
    for mount in &list.mounts {
        BlobDigest::parse(&mount.digest)
            .map_err(|_| ListProblem::BadDigest { id: mount.mount.id.clone(), digest: mount.digest.clone() })?;
    }
    Ok(list.mounts)
}

/// The tag whose mounts list `entry` of `index.json` is, if it is one.
pub(crate) fn list_tag(entry: &Descriptor) -> Option<&str> {
    entry.annotations().as_ref()?.get(MOUNTS_TAG_ANNOTATION).map(String::as_str)
}

/// The digest of the list of mounts carried for `tag`.
pub(crate) fn list_digest(layout: &OciLayout, tag: &str) -> Result<Option<BlobDigest>, LayoutError> {
    match layout.entry(MOUNTS_TAG_ANNOTATION, tag)? {
        Some(descriptor) => Ok(Some(BlobDigest::parse(descriptor.digest().as_ref())?)),
        None => Ok(None),
    }
}

/// Saves the contents of `mounts` from the daemon into the cache folder
/// `dir` under `tag`, replacing what the tag carried; unreferenced blobs
/// are collected afterwards.
pub async fn save(
    channel: &Channel,
    mounts: &[CacheMount],
    dir: &Path,
    tag: &str,
    helper_image: &str,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<Saved, MountsError> {
    let layout = OciLayout::create(dir)?;
    let lock = layout.lock_shared()?;
    // The helper writes tar i for mount i, only when the cache has contents.
    let mut out = llb::scratch();
    let mut base = helper(helper_image);
    let nonce = crate::session::new_id();
    for (index, mount) in mounts.iter().enumerate() {
        let target = shell_quote(&mount.target);
        let script = format!("if [ -n \"$(ls -A {target})\" ]; then tar -C {target} -cf {TAR_DIR}/{index}.tar .; fi");
        let options = OpOptions {
            custom_name: Some(format!("[fbuild] save cache mount {}", mount.id)),
            ignore_cache: false,
            ..Default::default()
        };
        let run = Run::shell(script).env(NONCE_ENV, &nonce).mount(mount.to_llb()).mount(Mount::bind(TAR_DIR, &out));
        let exec = base.run(run.options(options));
        out = exec.mount(TAR_DIR).expect("a writable bind mount has an output");
        base = exec.root();
    }
    let definition = out.marshal().map_err(MountsError::Graph)?;
    let staging = tempfile::Builder::new()
        .prefix(".fbuild-tmp-mounts-")
        .tempdir_in(dir)
        .map_err(|source| MountsError::Layout(LayoutError::Io { dir: dir.to_path_buf(), source }))?;
    let export = ExportEntry {
        exporter: ExporterType::Local,
        attrs: BTreeMap::new(),
        destination: Some(OutputDest::Dir(staging.path().to_path_buf())),
    };
    let request = BuildRequest::new(Frontend::Definition(definition)).export(export);
    build(channel, request, progress, cancel)
        .await
        .map_err(|error| MountsError::Build { image: helper_image.to_string(), source: Box::new(error) })?;

    let mut saved = Saved::default();
    let mut blobs = Vec::new();
    for (index, mount) in mounts.iter().enumerate() {
        let file = staging.path().join(format!("{index}.tar"));
        if !file.exists() {
            saved.empty.push(mount.id.clone());
            continue;
        }
        let (digest, size) = store_file(&layout, &file)?;
        blobs.push(TarDescriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: digest.to_string(),
            size,
        });
        saved.mounts.push(CarriedMount { mount: mount.clone(), digest: digest.to_string(), size });
    }
    let list =
        MountsList { schema_version: 2, media_type: MOUNTS_MEDIA_TYPE.into(), blobs, mounts: saved.mounts.clone() };
    let bytes = serde_json::to_vec(&list).expect("the mounts list serialises");
    let digest = layout.write_blob(&bytes)?;
    let descriptor = Descriptor::new(
        MediaType::Other(MOUNTS_MEDIA_TYPE.into()),
        bytes.len() as u64,
        digest.as_str().parse::<oci_spec::image::Digest>().expect("a checked digest parses"),
    );
    layout.put_entries(&descriptor, MOUNTS_TAG_ANNOTATION, &[tag])?;
    drop(staging);
    drop(lock);
    layout.collect_garbage()?;
    Ok(saved)
}

/// Moves a file the helper exported into `blobs/` under its digest.
fn store_file(layout: &OciLayout, file: &Path) -> Result<(BlobDigest, u64), MountsError> {
    use sha2::Digest as _;
    let read = |source| MountsError::Read { dir: layout.dir().to_path_buf(), file: file.display().to_string(), source };
    let mut hasher = sha2::Sha256::new();
    // Never through a link, though our receiver made the file.
    let mut reader = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(file).map_err(read)?
    };
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buffer).map_err(read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    let digest = BlobDigest::parse(&format!("sha256:{}", hex::encode(hasher.finalize())))?;
    // Same folder, same file system: a rename, never a copy.
    layout.adopt(file, &digest)?;
    Ok((digest, size))
}

/// Restores the mounts carried for `tag` in `dir` into the daemon's caches
/// that are empty, for the mounts of `declared` (the Dockerfile's) only:
/// carried mounts with other ids are left alone ([`Restored::ignored`]).
pub async fn restore(
    channel: &Channel,
    dir: &Path,
    tag: &str,
    declared: &[CacheMount],
    helper_image: &str,
    progress: &mut dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<Restored, MountsError> {
    let mut restored = Restored::default();
    let Some(layout) = OciLayout::open_existing(dir)? else { return Ok(restored) };
    let _lock = layout.lock_shared()?;
    // What to restore: the Dockerfile's mount, the folder's tar.
    let mut mounts: Vec<(&CacheMount, BlobDigest)> = Vec::new();
    for carried in carried(&layout, tag)? {
        match declared.iter().find(|m| m.id == carried.mount.id) {
            Some(mount) if !mounts.iter().any(|(m, _)| m.id == mount.id) => {
                mounts.push((mount, BlobDigest::parse(&carried.digest)?));
            }
            Some(_) => {}
            None => restored.ignored.push(carried.mount.id),
        }
    }
    if mounts.is_empty() {
        return Ok(restored);
    }
    let patterns = mounts.iter().map(|(_, digest)| digest.hex().to_string()).collect();
    let tars = llb::local(MOUNTS_LOCAL, llb::LocalOptions { include_patterns: patterns, ..Default::default() });
    let mut state = helper(helper_image);
    let nonce = crate::session::new_id();
    for (index, (mount, digest)) in mounts.iter().enumerate() {
        let target = shell_quote(&mount.target);
        let tar = shell_quote(&format!("{TAR_DIR}/{}", digest.hex()));
        // The log line says which way it went; it names the mount by its
        // place in the list, so no name reaches the script.
        let script = format!(
            "if [ -z \"$(ls -A {target})\" ]; then tar -C {target} -xpf {tar} && echo 'fbuild: filled {index}'; \
             else echo 'fbuild: kept {index} (the daemon has contents)'; fi"
        );
        let options = OpOptions {
            custom_name: Some(format!("[fbuild] restore cache mount {}", mount.id)),
            ignore_cache: false,
            ..Default::default()
        };
        state = state
            .run(
                Run::shell(script)
                    .env(NONCE_ENV, &nonce)
                    .mount(mount.to_llb())
                    .mount(Mount::bind(TAR_DIR, &tars).readonly())
                    .options(options),
            )
            .root();
    }
    let definition = state.marshal().map_err(MountsError::Graph)?;
    let mut request = BuildRequest::new(Frontend::Definition(definition));
    request.locals.insert(MOUNTS_LOCAL.into(), layout.checked_blobs_path()?);
    let mut logs = LogWatcher { inner: progress, lines: String::new() };
    build(channel, request, &mut logs, cancel)
        .await
        .map_err(|error| MountsError::Build { image: helper_image.to_string(), source: Box::new(error) })?;
    for (index, (mount, _)) in mounts.iter().enumerate() {
        if logs.lines.contains(&format!("fbuild: filled {index}\n")) {
            restored.filled.push(mount.id.clone());
        } else {
            restored.kept.push(mount.id.clone());
        }
    }
    Ok(restored)
}

/// Passes progress on and keeps the steps' log text, where the restore
/// script says what it did.
struct LogWatcher<'a> {
    inner: &'a mut dyn ProgressSink,
    lines: String,
}

impl ProgressSink for LogWatcher<'_> {
    fn on_status(&mut self, status: &crate::proto::moby::buildkit::v1::StatusResponse) {
        for log in &status.logs {
            self.lines.push_str(&String::from_utf8_lossy(&log.msg));
        }
        self.inner.on_status(status);
    }
    fn on_tick(&mut self) {
        self.inner.on_tick();
    }
    fn on_warning(&mut self, message: &str) {
        self.inner.on_warning(message);
    }
    fn on_end(&mut self, end: crate::progress::BuildEnd<'_>) {
        self.inner.on_end(end);
    }
}

/// The helper image, named as ours in the progress output.
fn helper(image: &str) -> llb::State {
    let op = OpOptions {
        custom_name: Some(format!("[fbuild] helper image {image}")),
        ignore_cache: false,
        ..Default::default()
    };
    llb::image_with(image, llb::ImageOptions { op, ..Default::default() })
}

/// `text` as one word for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
