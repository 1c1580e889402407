//! The client's side of `type=local` cache folders during one build, as
//! buildctl's `client/solve.go` does it, plus collection:
//!
//! - before the solve, each folder is opened and locked (shared), an
//!   import's tag is resolved to its manifest digest from `index.json` (a
//!   folder with no cache yet is a warning and the import is dropped), and
//!   each folder is registered as a content store `local:<dir>` on the
//!   session;
//! - after a successful solve, the exported cache manifest
//!   (`cache.manifest` in the exporter response) is tagged in each export
//!   folder's `index.json`, and blobs no tag reaches any more are removed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::image::Descriptor;

use super::layout::{BlobDigest, FolderLock, LayoutError, OciLayout};
use super::{CacheEntry, CLIENT_ATTRS};
use crate::output::OutputDest;
use crate::services::ContentStore;

/// The exporter response key that holds the exported cache's manifest
/// descriptor (BuildKit's `ExporterResponseManifestDesc`).
const CACHE_MANIFEST_KEY: &str = "cache.manifest";
const DEFAULT_TAG: &str = "latest";
/// The exporter response key with the image's descriptor, base64 JSON.
const IMAGE_DESCRIPTOR_KEY: &str = "containerimage.descriptor";

/// A local cache folder that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalCacheError {
    #[error("cache folder {dir:?} is not a valid path")]
    BadPath { dir: String },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Mounts(#[from] super::mounts::MountsError),
    #[error("only one output can write an OCI layout folder (tar=false)")]
    TwoLayoutOutputs,
    #[error("the daemon did not describe the exported image ({IMAGE_DESCRIPTOR_KEY} is {0})")]
    NoImageDescriptor(String),
    #[error("the daemon did not describe the exported cache ({CACHE_MANIFEST_KEY} is {0})")]
    NoManifest(String),
}

/// A local cache export: the folder, the tag, and whether a failure to
/// record it is only a warning (`ignore-error=true`, as the daemon treats
/// its own part of the export).
#[derive(Debug)]
struct LocalExport {
    layout: OciLayout,
    tag: String,
    ignore_error: bool,
}

/// The build's local cache folders: what the session serves and what to do
/// once the solve is done.
#[derive(Debug, Default)]
pub(crate) struct LocalCaches {
    stores: BTreeMap<String, ContentStore>,
    exports: Vec<LocalExport>,
    /// The OCI layout folder an image output writes (`tar=false`).
    image_layout: Option<OciLayout>,
    // Held for the whole build, so no collection removes a blob in use.
    locks: Vec<FolderLock>,
}

impl LocalCaches {
    /// Opens the folders of `imports` and `exports`' local entries, fills in
    /// what the daemon needs (absolute folders as store ids, the import's
    /// manifest digest) and drops imports with nothing to import, telling
    /// `warn` why.
    pub(crate) fn prepare(
        request: &mut crate::build::BuildRequest,
        warn: &mut dyn FnMut(String),
    ) -> Result<LocalCaches, LocalCacheError> {
        let mut caches = LocalCaches::default();
        let imports = &mut request.cache_imports;
        let exports = &mut request.cache_exports;
        for (id, dir) in &request.oci_layouts {
            let layout = OciLayout::open_existing(dir)?.ok_or_else(|| LayoutError::NotALayout { dir: dir.clone() })?;
            caches.lock(&layout)?;
            caches.stores.insert(format!("oci:{id}"), ContentStore { layout, writable: false });
        }
        for output in &request.exports {
            if let Some(OutputDest::Layout(dir)) = &output.destination {
                if caches.image_layout.is_some() {
                    return Err(LocalCacheError::TwoLayoutOutputs);
                }
                let layout = OciLayout::create(dir)?;
                // buildctl's store id for an image output (client/solve.go).
                caches.stores.insert("export".into(), ContentStore { layout: layout.clone(), writable: true });
                caches.image_layout = Some(layout);
            }
        }
        // Imports first: an export to the same folder creates it.
        let mut kept = Vec::with_capacity(imports.len());
        for mut entry in imports.drain(..) {
            if entry.kind != "local" {
                kept.push(entry);
                continue;
            }
            let given = entry.attrs.get("src").cloned().unwrap_or_default();
            let dir = absolute(&given)?;
            let Some(layout) = OciLayout::open_existing(&dir)? else {
                warn(format!("no cache in {given} yet (the folder is missing or empty); building without it"));
                continue;
            };
            let digest = match entry.attrs.get("digest") {
                Some(digest) => BlobDigest::parse(digest)?,
                None => {
                    let tag = entry.attrs.get("tag").map(String::as_str).unwrap_or(DEFAULT_TAG);
                    match layout.resolve_tag(tag) {
                        Ok(descriptor) => BlobDigest::parse(descriptor.digest().as_ref())?,
                        Err(error @ LayoutError::UnknownTag { .. }) => {
                            warn(format!("{error}; building without it"));
                            continue;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            };
            // The manifest is read (and its digest checked) now, so a corrupt
            // or missing cache fails before anything is sent.
            layout.read_blob(&digest)?;
            let id = store_id(&dir)?;
            entry.attrs.insert("src".into(), id["local:".len()..].to_string());
            entry.attrs.insert("digest".into(), digest.to_string());
            entry.attrs.remove("tag");
            strip_client_attrs(&mut entry);
            caches.lock(&layout)?;
            caches.stores.entry(id).or_insert(ContentStore { layout, writable: false });
            kept.push(entry);
        }
        *imports = kept;
        for entry in exports.iter_mut().filter(|e| e.kind == "local") {
            let dir = absolute(entry.attrs.get("dest").map(String::as_str).unwrap_or_default())?;
            let layout = OciLayout::create(&dir)?;
            let id = store_id(&dir)?;
            entry.attrs.insert("dest".into(), id["local:".len()..].to_string());
            let tag = entry.attrs.get("tag").cloned().unwrap_or_else(|| DEFAULT_TAG.into());
            let ignore_error =
                entry.attrs.get("ignore-error").is_some_and(|v| crate::gostrconv::parse_bool(v) == Some(true));
            caches.lock(&layout)?;
            caches.exports.push(LocalExport { layout: layout.clone(), tag, ignore_error });
            caches.stores.insert(id, ContentStore { layout, writable: true });
            strip_client_attrs(entry);
        }
        Ok(caches)
    }

    fn lock(&mut self, layout: &OciLayout) -> Result<(), LayoutError> {
        self.locks.push(layout.lock_shared()?);
        Ok(())
    }

    /// The content stores to serve on the session.
    pub(crate) fn stores(&self) -> &BTreeMap<String, ContentStore> {
        &self.stores
    }

    /// Tags the exported cache in every export folder, then collects what
    /// no tag reaches. Collection is skipped (with a debug note) while
    /// another build uses a folder. For an export with `ignore-error=true`
    /// a failure is told to `warn` and the build goes on, as buildctl's.
    pub(crate) fn finish(
        mut self,
        exporter_response: &BTreeMap<String, String>,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), LocalCacheError> {
        if let Some(layout) = &self.image_layout {
            let raw = exporter_response.get(IMAGE_DESCRIPTOR_KEY).map(String::as_str).unwrap_or("missing");
            let descriptor: Descriptor = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, raw)
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok())
                .ok_or_else(|| LocalCacheError::NoImageDescriptor(raw.to_string()))?;
            let names: Vec<&str> = exporter_response
                .get("image.name")
                .map(|names| names.split(',').filter(|n| !n.is_empty()).collect())
                .unwrap_or_default();
            layout.put_image(&descriptor, &names)?;
        }
        if self.exports.is_empty() {
            return Ok(());
        }
        let raw = exporter_response.get(CACHE_MANIFEST_KEY).map(String::as_str).unwrap_or("missing");
        let descriptor: Result<Descriptor, LocalCacheError> =
            serde_json::from_str(raw).map_err(|_| LocalCacheError::NoManifest(raw.to_string()));
        let mut tagged = Vec::with_capacity(self.exports.len());
        for export in &self.exports {
            let result = descriptor
                .as_ref()
                .map_err(|error| LocalCacheError::NoManifest(error.to_string()))
                .and_then(|descriptor| Ok(export.layout.tag(descriptor, &[&export.tag])?));
            match result {
                Ok(()) => tagged.push(export),
                Err(error) if export.ignore_error => warn(format!(
                    "the cache export to {} failed, ignored (ignore-error=true): {}",
                    export.layout.dir().display(),
                    crate::error::error_chain(&error)
                )),
                Err(error) => return Err(error),
            }
        }
        // Our shared locks would block our own collection.
        self.locks.clear();
        for export in tagged {
            let layout = &export.layout;
            match layout.collect_garbage() {
                Ok(Some(collected)) => tracing::debug!(
                    dir = %layout.dir().display(),
                    blobs = collected.blobs,
                    bytes = collected.bytes,
                    "collected unreferenced cache blobs"
                ),
                Ok(None) => {
                    tracing::debug!(dir = %layout.dir().display(), "another build uses the folder; not collected")
                }
                Err(error) if export.ignore_error => warn(format!(
                    "cannot collect the cache folder {}, ignored (ignore-error=true): {}",
                    layout.dir().display(),
                    crate::error::error_chain(&error)
                )),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn strip_client_attrs(entry: &mut CacheEntry) {
    for key in CLIENT_ATTRS {
        entry.attrs.remove(*key);
    }
}

fn absolute(dir: &str) -> Result<PathBuf, LocalCacheError> {
    std::path::absolute(dir).map_err(|_| LocalCacheError::BadPath { dir: dir.to_string() })
}

/// The store id the daemon will ask for: `local:` and the folder, which is
/// what it sends back from the entry's `dest`/`src`.
fn store_id(dir: &std::path::Path) -> Result<String, LocalCacheError> {
    let text = dir.to_str().ok_or_else(|| LocalCacheError::BadPath { dir: dir.display().to_string() })?;
    Ok(format!("local:{text}"))
}

/// One tag of a local cache folder, as `fbuild cache ls` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TagSummary {
    /// The tag (`latest` unless `tag=` named another).
    pub tag: String,
    /// The cache manifest's digest.
    pub digest: String,
    /// The layers the cache holds.
    pub layers: usize,
    /// Bytes of every blob the tag reaches (blobs shared with other tags
    /// count for each).
    pub bytes: u64,
    /// Cache mounts carried with the tag (`mounts=true`), by id.
    pub mounts: Vec<super::mounts::CarriedMount>,
}

/// What a local cache folder holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FolderSummary {
    /// Every tag, sorted.
    pub tags: Vec<TagSummary>,
    /// Bytes of every blob in the folder.
    pub total_bytes: u64,
    /// Bytes of blobs no tag reaches (what `fbuild cache gc` would remove).
    pub unreferenced_bytes: u64,
    /// Disk space held by temporary files: blobs being written, or left by
    /// a killed export until the next collection removes them.
    pub temporary_bytes: u64,
}

/// Reads what the local cache folder `dir` holds. Linear in the folder's
/// size: `index.json` is read once and each document parsed once, however
/// many tags share it.
pub fn inspect(dir: &std::path::Path) -> Result<FolderSummary, LocalCacheError> {
    let layout = OciLayout::open_existing(dir)?.ok_or_else(|| LayoutError::NotALayout { dir: dir.to_path_buf() })?;
    let blobs = layout.blobs()?;
    let index = layout.index()?;
    let mut documents = super::layout::Documents::new(&layout)?;
    let size_of = |set: &std::collections::BTreeSet<BlobDigest>| set.iter().filter_map(|d| blobs.get(d)).sum::<u64>();
    let lists: std::collections::HashMap<&str, BlobDigest> = index
        .manifests()
        .iter()
        .filter_map(|d| {
            let tag = super::mounts::list_tag(d)?;
            Some((tag, BlobDigest::parse(d.digest().as_ref()).ok()?))
        })
        .collect();
    let mut tags = Vec::new();
    for descriptor in index.manifests() {
        let Some(tag) = super::layout::ref_name(descriptor) else { continue };
        // An entry of another algorithm (`sha512:`) is listed; this folder
        // holds nothing it reaches.
        let Ok(digest) = BlobDigest::parse(descriptor.digest().as_ref()) else {
            tags.push(TagSummary {
                tag: tag.to_string(),
                digest: descriptor.digest().to_string(),
                layers: 0,
                bytes: 0,
                mounts: Vec::new(),
            });
            continue;
        };
        let cache = documents.reachable(vec![digest.clone()])?;
        let layers = documents.layer_count(&cache)?;
        let mut reach = cache;
        let mut mounts = Vec::new();
        if let Some(list) = lists.get(tag) {
            mounts = super::mounts::parse_list(&layout.read_blob(list)?)
                .map_err(|problem| super::mounts::MountsError::BadList { dir: dir.to_path_buf(), problem })?;
            reach.extend(documents.reachable(vec![list.clone()])?);
        }
        tags.push(TagSummary {
            tag: tag.to_string(),
            digest: digest.to_string(),
            layers,
            bytes: size_of(&reach),
            mounts,
        });
    }
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    let roots = index.manifests().iter().filter_map(|d| BlobDigest::parse(d.digest().as_ref()).ok()).collect();
    let referenced = documents.reachable(roots)?;
    let total_bytes = blobs.values().sum();
    let unreferenced_bytes = blobs.iter().filter(|(d, _)| !referenced.contains(d)).map(|(_, s)| s).sum();
    let temporary_bytes = layout.temporary_bytes()?;
    Ok(FolderSummary { tags, total_bytes, unreferenced_bytes, temporary_bytes })
}

/// Removes the blobs no tag of `dir` reaches; `None` while a build uses the
/// folder.
pub fn collect(dir: &std::path::Path) -> Result<Option<super::layout::Collected>, LocalCacheError> {
    let layout = OciLayout::open_existing(dir)?.ok_or_else(|| LayoutError::NotALayout { dir: dir.to_path_buf() })?;
    Ok(layout.collect_garbage()?)
}
