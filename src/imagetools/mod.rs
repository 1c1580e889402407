//! `imagetools`: images in a registry joined into one index and inspected,
//! without a build — what CI does after building each platform on its own
//! runner. It follows buildx v0.38.2's `util/imagetools` so that the same
//! sources give the same index digest.
//!
//! [`create`] resolves each source (a reference, a digest in the target's
//! repository, or a descriptor as JSON), reads the platform of a bare
//! manifest from its config, combines them into one index (Go's bytes),
//! copies every manifest and blob the index names into each target
//! repository, and pushes the index under each tag. [`inspect`] reads what a
//! reference points at.

mod annotations;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

pub use crate::registry::RegistryError;
pub use annotations::AnnotationError;
pub(crate) use annotations::{parse_annotations, AnnotationKey, AnnotationKind};

use crate::llb::{parse_reference, Named, ReferenceError};
use crate::registry::oci::{self, Descriptor, Index, Platform};
use crate::registry::{Fetched, Registry, Repository, MAX_DOCUMENT};

/// What `imagetools` can fail on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagetoolsError {
    /// A source or tag that is not a reference, digest or descriptor.
    #[error("failed to parse source {source_text:?}, valid sources are digests, references and descriptors")]
    BadSource {
        source_text: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `-t` that is not a reference.
    #[error("invalid tag {tag:?}")]
    BadTag {
        tag: String,
        #[source]
        source: ReferenceError,
    },
    /// A bad `--annotation`.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// Nothing to combine.
    #[error("no sources specified")]
    NoSources,
    /// Neither `-t` nor `--dry-run`.
    #[error("can't push with no tags specified, please set --tag or --dry-run")]
    NoTags,
    /// A digest source when the tags and sources name several repositories.
    #[error("multiple repositories specified, cannot infer repository for {0:?}")]
    AmbiguousRepository(String),
    /// What buildx refuses while combining.
    #[error("{0}")]
    Refused(String),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    /// A document from the registry that is not what its media type says.
    #[error("{what} is not a valid {kind}: {reason}")]
    BadDocument { what: String, kind: &'static str, reason: String },
}

impl From<RegistryError> for ImagetoolsError {
    fn from(err: RegistryError) -> Self {
        ImagetoolsError::Registry(Box::new(err))
    }
}

/// One source of [`create`]: where it lives and what is known of it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The reference it is read from (filled in for digest sources).
    pub(crate) reference: Option<Named>,
    /// Known parts of its descriptor (a digest source has only the digest).
    pub(crate) descriptor: Descriptor,
}

/// `buildx imagetools create`'s options, as plain data.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Sources: references, digests, or descriptors as JSON.
    pub sources: Vec<String>,
    /// Where to push the index (`-t`).
    pub tags: Vec<String>,
    /// `--annotation` values (`index:KEY=VALUE`, `manifest-descriptor[PLATFORM]:KEY=VALUE`).
    pub annotations: Vec<String>,
    /// Add the manifests of the first tag's current image (`--append`).
    pub append: bool,
    /// Print the index instead of pushing it.
    pub dry_run: bool,
    /// With one source, make an index of it rather than copying it as it is
    /// (buildx's default is true).
    pub prefer_index: bool,
    /// Keep only these platforms (`os/arch[/variant]`).
    pub platforms: Vec<String>,
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The index (or, for one source without `prefer_index`, the manifest) as pushed.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// The repositories pushed to, sorted (buildx's `image.name` metadata).
    pub repositories: Vec<String>,
}

/// Builds the index `request` asks for and, unless it is a dry run, copies
/// what it names into each tag's repository and pushes it there. `log`
/// hears one line per copy and push.
pub async fn create(
    registry_config: crate::services::auth::DockerConfig,
    request: &CreateRequest,
    log: &mut dyn FnMut(String),
) -> Result<Created, ImagetoolsError> {
    let registry = Registry::new(registry_config)?;
    let mut args = request.sources.clone();
    if args.is_empty() {
        return Err(ImagetoolsError::NoSources);
    }
    if !request.dry_run && request.tags.is_empty() {
        return Err(ImagetoolsError::NoTags);
    }
    let tags = request
        .tags
        .iter()
        .map(|t| parse_reference(t).map_err(|source| ImagetoolsError::BadTag { tag: t.clone(), source }))
        .collect::<Result<Vec<_>, _>>()?;
    if request.append && !request.tags.is_empty() {
        args.insert(0, request.tags[0].clone());
    }
    let mut sources = args.iter().map(|a| parse_source(a)).collect::<Result<Vec<_>, _>>()?;
    let platforms = request.platforms.iter().map(|p| parse_platform(p)).collect::<Result<Vec<_>, _>>()?;
    // Checked before the registry is asked anything (buildx parses them
    // after resolving the sources).
    let annotations = parse_annotations(&request.annotations)?;

    let mut repositories: Vec<String> = tags.iter().map(Named::name).collect();
    repositories.sort();
    repositories.dedup();
    let mut all_repos: Vec<String> = repositories.clone();
    for source in &sources {
        if let Some(r) = &source.reference {
            all_repos.push(r.name());
        }
    }
    all_repos.sort();
    all_repos.dedup();
    if all_repos.is_empty() {
        return Err(ImagetoolsError::Refused(
            "no repositories specified, please set a reference in tag or source".into(),
        ));
    }
    let default_repo = if all_repos.len() == 1 {
        sources.iter().find_map(|s| s.reference.clone()).or_else(|| tags.first().cloned())
    } else {
        None
    };
    for (source, arg) in sources.iter_mut().zip(&args) {
        if source.reference.is_some() {
            continue;
        }
        let Some(default_repo) = &default_repo else {
            return Err(ImagetoolsError::AmbiguousRepository(arg.clone()));
        };
        let mut named = default_repo.clone();
        if source.descriptor.media_type.is_empty() && !source.descriptor.digest.is_empty() {
            named.tag = None;
            named.digest = Some(source.descriptor.digest.clone());
        } else if named.tag.is_none() && named.digest.is_none() {
            named.tag = Some("latest".into());
        }
        source.reference = Some(named);
    }

    // Resolve each source to its descriptor and bytes (and platform).
    let mut documents = Vec::with_capacity(sources.len());
    for source in &mut sources {
        let named = source.reference.as_ref().expect("every source has a reference by now");
        let repo = Repository::of(named);
        let reference = named.digest.clone().or_else(|| named.tag.clone()).unwrap_or_else(|| "latest".into());
        let fetched = registry.manifest(&repo, &reference).await?;
        let resolved = Descriptor {
            media_type: media_type_of(&fetched)?,
            digest: fetched.digest.clone(),
            size: fetched.bytes.len() as i64,
            ..Default::default()
        };
        source.descriptor = if source.descriptor.digest.is_empty() {
            resolved
        } else {
            merge_descriptor(resolved, std::mem::take(&mut source.descriptor))?
        };
        let media_type = source.descriptor.media_type.clone();
        if media_type == oci::MANIFEST || media_type == oci::DOCKER_MANIFEST {
            let mut platform = source.descriptor.platform.take().unwrap_or_default();
            if platform.os.is_empty() || platform.architecture.is_empty() {
                let from_config = config_platform(&registry, &repo, &fetched).await?;
                if platform.architecture.is_empty() {
                    platform.architecture = from_config.architecture;
                    if platform.variant.is_empty() {
                        platform.variant = from_config.variant;
                    }
                }
                if platform.os.is_empty() {
                    platform.os = from_config.os;
                }
            }
            source.descriptor.platform = Some(platform);
        } else if media_type == oci::DOCKER_SCHEMA1 {
            return Err(ImagetoolsError::Refused("schema1 manifests are not allowed in manifest lists".into()));
        }
        documents.push(fetched.bytes);
    }

    let combined = combine(&sources, &documents, &annotations, request.prefer_index)?;
    let combined = filter_platforms(&registry, combined, &sources, &platforms).await?;
    let Combined { bytes, descriptor, manifests } = combined;
    if request.dry_run {
        return Ok(Created { bytes, media_type: descriptor.media_type, digest: descriptor.digest, repositories });
    }
    let manifests = if manifests.is_empty() { vec![(descriptor.clone(), 0)] } else { manifests };

    let mut by_repo: BTreeMap<String, Vec<&Named>> = BTreeMap::new();
    for tag in &tags {
        by_repo.entry(tag.name()).or_default().push(tag);
    }
    let bytes = Bytes::from(bytes);
    for tags in by_repo.values() {
        let target = Repository::of(tags[0]);
        for (manifest, source_index) in &manifests {
            let source = sources[*source_index].reference.as_ref().expect("resolved above");
            log(format!("copying {} from {source} to {target}", manifest.digest));
            copy_chain(&registry, &Repository::of(source), &target, manifest).await?;
        }
        for tag in tags {
            log(format!("pushing {} to {tag}", descriptor.digest));
            let reference = tag.digest.clone().or_else(|| tag.tag.clone()).unwrap_or_else(|| "latest".into());
            registry.put_manifest(&target, &reference, &descriptor.media_type, bytes.clone()).await?;
        }
    }
    Ok(Created { bytes: bytes.to_vec(), media_type: descriptor.media_type, digest: descriptor.digest, repositories })
}

/// The combined document and, per manifest it names, the source it comes
/// from (empty when one source is copied as it is).
struct Combined {
    bytes: Vec<u8>,
    descriptor: Descriptor,
    manifests: Vec<(Descriptor, usize)>,
}

/// buildx's `combine`: one index of every source's manifests (an index's
/// own manifests are taken one by one), duplicates merged, a Docker list
/// when every entry is a Docker type, annotations applied.
fn combine(
    sources: &[Source],
    documents: &[Bytes],
    annotations: &BTreeMap<AnnotationKey, String>,
    prefer_index: bool,
) -> Result<Combined, ImagetoolsError> {
    if sources.len() == 1 && annotations.is_empty() {
        let only = &sources[0].descriptor;
        if oci::is_index(&only.media_type) {
            let index = parse_index(&documents[0], &only.digest)?;
            let manifests = index.manifests.into_iter().map(|d| (d, 0)).collect();
            return Ok(Combined { bytes: documents[0].to_vec(), descriptor: only.clone(), manifests });
        }
        if !prefer_index {
            return Ok(Combined { bytes: documents[0].to_vec(), descriptor: only.clone(), manifests: Vec::new() });
        }
    }

    let mut descriptors: Vec<Descriptor> = Vec::with_capacity(sources.len());
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut source_of: HashMap<String, usize> = HashMap::new();
    let mut add = |descriptor: Descriptor, source: usize, descriptors: &mut Vec<Descriptor>| {
        source_of.insert(descriptor.digest.clone(), source);
        match position.get(&descriptor.digest) {
            Some(&at) => {
                let old = &mut descriptors[at];
                if old.media_type.is_empty() {
                    old.media_type = descriptor.media_type;
                }
                if descriptor.platform.is_some() {
                    old.platform = descriptor.platform;
                }
                old.annotations.extend(descriptor.annotations);
            }
            None => {
                position.insert(descriptor.digest.clone(), descriptors.len());
                descriptors.push(descriptor);
            }
        }
    };
    for (i, source) in sources.iter().enumerate() {
        if oci::is_index(&source.descriptor.media_type) {
            for descriptor in parse_index(&documents[i], &source.descriptor.digest)?.manifests {
                add(descriptor, i, &mut descriptors);
            }
        } else {
            add(source.descriptor.clone(), i, &mut descriptors);
        }
    }

    let all_docker = descriptors.iter().all(|d| d.media_type.starts_with("application/vnd.docker."));
    let media_type = if all_docker { oci::DOCKER_LIST } else { oci::INDEX };
    let mut index_annotations = BTreeMap::new();
    if media_type == oci::INDEX {
        for (key, value) in annotations {
            match key.kind {
                AnnotationKind::Index => {
                    index_annotations.insert(key.key.clone(), value.clone());
                }
                AnnotationKind::ManifestDescriptor => {
                    for descriptor in &mut descriptors {
                        let matches = match (&key.platform, &descriptor.platform) {
                            (None, _) => true,
                            (Some(wanted), Some(platform)) => parse_platform(wanted)?.format() == platform.format(),
                            (Some(_), None) => false,
                        };
                        if matches {
                            descriptor.annotations.insert(key.key.clone(), value.clone());
                        }
                    }
                }
                AnnotationKind::Manifest | AnnotationKind::Unspecified => {
                    return Err(ImagetoolsError::Refused(format!(
                        "{:?} annotations are not supported yet",
                        key.kind.as_str()
                    )));
                }
                AnnotationKind::IndexDescriptor => {
                    return Err(ImagetoolsError::Refused(format!(
                        "{:?} annotations are invalid while creating an image",
                        key.kind.as_str()
                    )));
                }
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: media_type.into(),
        manifests: descriptors,
        annotations: index_annotations,
        ..Default::default()
    };
    let bytes = oci::go_marshal_indent(&index);
    let descriptor = Descriptor {
        media_type: media_type.into(),
        digest: sha256(&bytes),
        size: bytes.len() as i64,
        ..Default::default()
    };
    let manifests = index.manifests.iter().map(|d| (d.clone(), source_of[&d.digest])).collect();
    Ok(Combined { bytes, descriptor, manifests })
}

/// The attestation manifests BuildKit puts in an index name their subject
/// with these annotations.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
const ATTESTATION_MANIFEST: &str = "attestation-manifest";
const ATTESTATION_ARTIFACT: &str = "application/vnd.docker.attestation.manifest.v1+json";

/// buildx's `filterPlatforms`: keep the manifests of the platforms asked
/// for (all when none), with their attestations, and add an attestation
/// found through the referrers API to a manifest that has none.
async fn filter_platforms(
    registry: &Registry,
    combined: Combined,
    sources: &[Source],
    platforms: &[Platform],
) -> Result<Combined, ImagetoolsError> {
    let matches = |p: &Platform| platforms.is_empty() || platforms.iter().any(|want| platform_matches(want, p));
    if !oci::is_index(&combined.descriptor.media_type) {
        if !platforms.is_empty() {
            let Some(platform) = &combined.descriptor.platform else {
                return Err(ImagetoolsError::Refused(
                    "cannot filter platforms from a manifest without platform information".into(),
                ));
            };
            if !matches(platform) {
                return Err(ImagetoolsError::Refused(format!(
                    "input platform {} does not match any of the provided platforms",
                    platform.format()
                )));
            }
        }
        return Ok(combined);
    }
    let mut index = parse_index(&combined.bytes, &combined.descriptor.digest)?;
    let by_digest: HashMap<&str, &Descriptor> = index.manifests.iter().map(|d| (d.digest.as_str(), d)).collect();
    let source_of: HashMap<String, usize> = combined.manifests.iter().map(|(d, s)| (d.digest.clone(), *s)).collect();
    let mut references: HashMap<String, String> = HashMap::new(); // attestation -> subject
    let mut matched: Vec<String> = Vec::new();
    for m in &index.manifests {
        if m.platform.as_ref().is_none_or(&matches) {
            matched.push(m.digest.clone());
        }
        if m.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some(ATTESTATION_MANIFEST) {
            let Some(subject) = m.annotations.get(REFERENCE_DIGEST) else { continue };
            let Some(subject) = by_digest.get(subject.as_str()) else { continue };
            if subject.platform.as_ref().is_none_or(&matches) {
                references.insert(m.digest.clone(), subject.digest.clone());
            }
        }
    }
    let mut kept: Vec<(Descriptor, usize)> = Vec::new();
    for m in &index.manifests {
        if references.contains_key(&m.digest) || m.platform.as_ref().is_none_or(&matches) {
            kept.push((m.clone(), source_of.get(&m.digest).copied().unwrap_or(0)));
        }
    }
    if kept.is_empty() {
        return Err(ImagetoolsError::Refused("none of the manifests match the provided platforms".into()));
    }
    // A matched manifest with no attestation in the index: ask the referrers
    // API, as buildx does (the first one found is added).
    let mut added = false;
    for digest in &matched {
        if references.contains_key(digest) || references.values().any(|subject| subject == digest) {
            continue;
        }
        let source = source_of.get(digest).copied().unwrap_or(0);
        let Some(named) = &sources[source].reference else { continue };
        let found = match registry.referrers(&Repository::of(named), digest, ATTESTATION_ARTIFACT).await {
            Ok(found) => found,
            Err(RegistryError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(mut reference) = found.into_iter().find(|r| !references.contains_key(&r.digest)) {
            reference.platform =
                Some(Platform { os: "unknown".into(), architecture: "unknown".into(), ..Default::default() });
            reference.annotations.insert(REFERENCE_TYPE.into(), ATTESTATION_MANIFEST.into());
            reference.annotations.insert(REFERENCE_DIGEST.into(), digest.clone());
            reference.artifact_type = None;
            kept.push((reference, source));
            added = true;
        }
    }
    if kept.len() == index.manifests.len() && !added {
        return Ok(Combined { manifests: kept, ..combined });
    }
    index.manifests = kept.iter().map(|(d, _)| d.clone()).collect();
    let bytes = oci::go_marshal_indent(&index);
    let descriptor = Descriptor {
        media_type: combined.descriptor.media_type.clone(),
        digest: sha256(&bytes),
        size: bytes.len() as i64,
        annotations: combined.descriptor.annotations.clone(),
        ..Default::default()
    };
    Ok(Combined { bytes, descriptor, manifests: kept })
}

/// containerd's matcher for a platform asked for by name: OS and
/// architecture equal, and the variant when one was given.
fn platform_matches(want: &Platform, have: &Platform) -> bool {
    let have = have.clone().normalize();
    want.os == have.os
        && want.architecture == have.architecture
        && (want.variant.is_empty() || want.variant == have.variant)
}

/// Copies `descriptor` (a manifest or an index and everything under it)
/// from `from` to `to`; what `to` has already is not sent again.
async fn copy_chain(
    registry: &Registry,
    from: &Repository,
    to: &Repository,
    descriptor: &Descriptor,
) -> Result<(), ImagetoolsError> {
    // An explicit stack, so a hostile index nesting indexes cannot recurse
    // without bound; each digest is copied once.
    let mut pending = vec![descriptor.clone()];
    let mut seen = std::collections::HashSet::new();
    let mut to_push: Vec<(Descriptor, Bytes)> = Vec::new();
    while let Some(descriptor) = pending.pop() {
        if !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        if seen.len() > 10_000 {
            return Err(ImagetoolsError::Refused(format!(
                "{from}@{} names more than 10000 manifests",
                descriptor.digest
            )));
        }
        if from == to && registry.exists(to, &descriptor.digest, true).await? {
            continue;
        }
        let fetched = registry.manifest(from, &descriptor.digest).await?;
        if oci::is_index(&descriptor.media_type) {
            pending.extend(parse_index(&fetched.bytes, &descriptor.digest)?.manifests);
        } else {
            let manifest: oci::Manifest =
                serde_json::from_slice(&fetched.bytes).map_err(|e| ImagetoolsError::BadDocument {
                    what: format!("{from}@{}", descriptor.digest),
                    kind: "manifest",
                    reason: e.to_string(),
                })?;
            for blob in manifest.config.iter().chain(&manifest.layers) {
                check_digest(&blob.digest)?;
                let size = u64::try_from(blob.size).unwrap_or(0);
                registry.copy_blob(from, to, &blob.digest, size).await?;
            }
        }
        to_push.push((descriptor, fetched.bytes));
    }
    // Children before their index, as a registry may check references.
    for (descriptor, bytes) in to_push.into_iter().rev() {
        if !registry.exists(to, &descriptor.digest, true).await? {
            let media_type = if descriptor.media_type.is_empty() { oci::MANIFEST } else { &descriptor.media_type };
            registry.put_manifest(to, &descriptor.digest, media_type, bytes).await?;
        }
    }
    Ok(())
}

/// What `imagetools inspect` shows.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The reference as given, normalized.
    pub name: String,
    /// The document's bytes, as the registry sent them.
    pub raw: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// The manifests of an index (empty for a manifest).
    pub manifests: Vec<InspectedManifest>,
    /// The index's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One entry of an inspected index.
#[derive(Debug, Clone)]
pub struct InspectedManifest {
    /// `name@digest`.
    pub name: String,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: i64,
    /// `os/arch[/variant]`, if the index says.
    pub platform: Option<String>,
    /// OS version and features, if any.
    pub os_version: String,
    /// OS features.
    pub os_features: Vec<String>,
    /// URLs of a foreign layer.
    pub urls: Vec<String>,
    /// Descriptor annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Reads what `reference` names.
pub async fn inspect(
    registry_config: crate::services::auth::DockerConfig,
    reference: &str,
) -> Result<Inspected, ImagetoolsError> {
    let registry = Registry::new(registry_config)?;
    let named =
        parse_reference(reference).map_err(|source| ImagetoolsError::BadTag { tag: reference.to_owned(), source })?;
    let mut shown = named.clone();
    if shown.tag.is_none() && shown.digest.is_none() {
        shown.tag = Some("latest".into());
    }
    let repo = Repository::of(&named);
    let wanted = shown.digest.clone().or_else(|| shown.tag.clone()).expect("set above");
    let fetched = registry.manifest(&repo, &wanted).await?;
    let media_type = media_type_of(&fetched)?;
    let mut inspected = Inspected {
        name: shown.to_string(),
        raw: fetched.bytes.to_vec(),
        media_type: media_type.clone(),
        digest: fetched.digest.clone(),
        manifests: Vec::new(),
        annotations: BTreeMap::new(),
    };
    if oci::is_index(&media_type) {
        let index = parse_index(&fetched.bytes, &fetched.digest)?;
        inspected.annotations = index.annotations;
        for m in index.manifests {
            let mut name = named.clone();
            name.tag = shown.tag.clone();
            name.digest = Some(m.digest.clone());
            let platform = m.platform.as_ref();
            inspected.manifests.push(InspectedManifest {
                name: name.to_string(),
                media_type: m.media_type,
                digest: m.digest,
                size: m.size,
                platform: platform.map(Platform::format),
                os_version: platform.map(|p| p.os_version.clone()).unwrap_or_default(),
                os_features: platform.map(|p| p.os_features.clone()).unwrap_or_default(),
                urls: m.urls,
                annotations: m.annotations,
            });
        }
    }
    Ok(inspected)
}

impl Inspected {
    /// buildx's text view (`Name:`, `MediaType:`, `Digest:`, the manifests
    /// of an index), aligned as Go's tabwriter aligns it.
    pub fn render_text(&self) -> String {
        let mut out = align(&[("Name:", &self.name), ("MediaType:", &self.media_type), ("Digest:", &self.digest)], "");
        if !oci::is_index(&self.media_type) {
            return out;
        }
        out.push_str(&align(&[("", ""), ("Manifests:", "")], ""));
        let mut rows: Vec<(String, String)> = Vec::new();
        for (i, m) in self.manifests.iter().enumerate() {
            if i != 0 {
                rows.push((String::new(), String::new()));
            }
            rows.push(("  Name:".into(), m.name.clone()));
            rows.push(("  MediaType:".into(), m.media_type.clone()));
            if let Some(platform) = &m.platform {
                rows.push(("  Platform:".into(), platform.clone()));
                if !m.os_version.is_empty() {
                    rows.push(("  OSVersion:".into(), m.os_version.clone()));
                }
                if !m.os_features.is_empty() {
                    rows.push(("  OSFeatures:".into(), m.os_features.join(", ")));
                }
                if !m.urls.is_empty() {
                    rows.push(("  URLs:".into(), m.urls.join(", ")));
                }
                if !m.annotations.is_empty() {
                    rows.push(("  Annotations:".into(), String::new()));
                    let rows_ref: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                    out.push_str(&align(&rows_ref, ""));
                    rows.clear();
                    let keys: Vec<(String, &str)> =
                        m.annotations.iter().map(|(k, v)| (format!("    {k}:"), v.as_str())).collect();
                    let keys_ref: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (a.as_str(), *b)).collect();
                    out.push_str(&align(&keys_ref, ""));
                }
            }
        }
        let rows_ref: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        out.push_str(&align(&rows_ref, ""));
        out
    }

    /// The `.Manifest` of buildx's templates as JSON (`{{json .Manifest}}`).
    pub fn manifest_json(&self) -> Result<String, ImagetoolsError> {
        if oci::is_index(&self.media_type) {
            let index = parse_index(&self.raw, &self.digest)?;
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct IndexView<'a> {
                schema_version: i64,
                #[serde(skip_serializing_if = "str::is_empty")]
                media_type: &'a str,
                digest: &'a str,
                size: usize,
                manifests: &'a [Descriptor],
                #[serde(skip_serializing_if = "BTreeMap::is_empty")]
                annotations: &'a BTreeMap<String, String>,
            }
            let view = IndexView {
                schema_version: index.schema_version,
                media_type: &index.media_type,
                digest: &self.digest,
                size: self.raw.len(),
                manifests: &index.manifests,
                annotations: &index.annotations,
            };
            return Ok(String::from_utf8(oci::go_marshal_indent(&view)).expect("UTF-8"));
        }
        let descriptor = Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.raw.len() as i64,
            ..Default::default()
        };
        Ok(String::from_utf8(oci::go_marshal_indent(&descriptor)).expect("UTF-8"))
    }
}

/// Go's `tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)` for two columns: the
/// first padded to the widest cell of the block plus one space. A row whose
/// cells are both empty still gets the padding, as Go's writer pads it.
fn align(rows: &[(&str, &str)], _prefix: &str) -> String {
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(key);
        for _ in key.chars().count()..width {
            out.push(' ');
        }
        out.push_str(value);
        out.push('\n');
    }
    out
}

fn parse_source(text: &str) -> Result<Source, ImagetoolsError> {
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| ImagetoolsError::BadSource {
        source_text: text.to_owned(),
        source: e,
    };
    if text.starts_with("sha256") {
        check_digest(text).map_err(|e| bad(Box::new(e)))?;
        return Ok(Source {
            reference: None,
            descriptor: Descriptor { digest: text.to_owned(), ..Default::default() },
        });
    }
    match parse_reference(text) {
        Ok(named) => Ok(Source { reference: Some(named), descriptor: Descriptor::default() }),
        Err(e) if !text.starts_with('{') => Err(bad(Box::new(e))),
        Err(_) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct WithVersion {
                #[serde(default)]
                schema_version: i64,
                #[serde(flatten)]
                descriptor: Descriptor,
            }
            let parsed: WithVersion = serde_json::from_str(text).map_err(|e| bad(Box::new(e)))?;
            if parsed.schema_version != 0 {
                return Err(bad(format!(
                    "expected an OCI content descriptor, got a manifest or index (schemaVersion {})",
                    parsed.schema_version
                )
                .into()));
            }
            check_digest(&parsed.descriptor.digest).map_err(|e| bad(Box::new(e)))?;
            Ok(Source { reference: None, descriptor: parsed.descriptor })
        }
    }
}

fn check_digest(digest: &str) -> Result<(), ImagetoolsError> {
    let ok = digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(())
    } else {
        Err(ImagetoolsError::Refused(format!("invalid digest {digest:?}")))
    }
}

fn parse_platform(text: &str) -> Result<Platform, ImagetoolsError> {
    let parts: Vec<&str> = text.split('/').collect();
    let platform = match parts.as_slice() {
        [os, arch] => Platform { os: (*os).into(), architecture: (*arch).into(), ..Default::default() },
        [os, arch, variant] => Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: (*variant).into(),
            ..Default::default()
        },
        _ => return Err(ImagetoolsError::Refused(format!("invalid platform {text:?}: expected OS/ARCH[/VARIANT]"))),
    };
    Ok(platform.normalize())
}

/// buildx's `mergeDesc`: what a descriptor source says wins over what was
/// resolved, except the size, which must agree.
fn merge_descriptor(mut resolved: Descriptor, given: Descriptor) -> Result<Descriptor, ImagetoolsError> {
    if given.size != 0 && given.size != resolved.size {
        return Err(ImagetoolsError::Refused(format!(
            "invalid size mismatch for {}, {} != {}",
            resolved.digest, given.size, resolved.size
        )));
    }
    if !given.media_type.is_empty() {
        resolved.media_type = given.media_type;
    }
    if !given.annotations.is_empty() {
        resolved.annotations = given.annotations;
    }
    if given.platform.is_some() {
        resolved.platform = given.platform;
    }
    Ok(resolved)
}

/// The media type of a fetched document: the registry's `Content-Type`,
/// else what the document says, else what its shape says (buildx's
/// `detectMediaType`).
fn media_type_of(fetched: &Fetched) -> Result<String, ImagetoolsError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        #[serde(default)]
        media_type: String,
        config: Option<serde_json::Value>,
        fs_layers: Option<serde_json::Value>,
    }
    if !fetched.media_type.is_empty() && fetched.media_type != "application/json" {
        return Ok(fetched.media_type.clone());
    }
    let shape: Shape = serde_json::from_slice(&fetched.bytes).map_err(|e| ImagetoolsError::BadDocument {
        what: fetched.digest.clone(),
        kind: "manifest",
        reason: e.to_string(),
    })?;
    Ok(if !shape.media_type.is_empty() {
        shape.media_type
    } else if shape.config.is_some() {
        oci::DOCKER_MANIFEST.into()
    } else if shape.fs_layers.is_some() {
        oci::DOCKER_SCHEMA1.into()
    } else {
        oci::DOCKER_LIST.into()
    })
}

/// The platform in a manifest's config (buildx's `loadPlatform`).
async fn config_platform(
    registry: &Registry,
    repo: &Repository,
    fetched: &Fetched,
) -> Result<Platform, ImagetoolsError> {
    let manifest: oci::Manifest = serde_json::from_slice(&fetched.bytes).map_err(|e| ImagetoolsError::BadDocument {
        what: format!("{repo}@{}", fetched.digest),
        kind: "manifest",
        reason: e.to_string(),
    })?;
    let Some(config) = manifest.config else {
        return Err(ImagetoolsError::BadDocument {
            what: format!("{repo}@{}", fetched.digest),
            kind: "manifest",
            reason: "it has no config".into(),
        });
    };
    check_digest(&config.digest)?;
    let bytes = registry.blob(repo, &config.digest, MAX_DOCUMENT).await?;
    let platform: Platform = serde_json::from_slice(&bytes).map_err(|e| ImagetoolsError::BadDocument {
        what: format!("{repo}@{}", config.digest),
        kind: "image config",
        reason: e.to_string(),
    })?;
    Ok(platform.normalize())
}

fn parse_index(bytes: &[u8], what: &str) -> Result<Index, ImagetoolsError> {
    serde_json::from_slice(bytes).map_err(|e| ImagetoolsError::BadDocument {
        what: what.to_owned(),
        kind: "index",
        reason: e.to_string(),
    })
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_source(digest: &str, arch: &str) -> Source {
        Source {
            reference: parse_reference("127.0.0.1:5555/it:x").ok(),
            descriptor: Descriptor {
                media_type: oci::MANIFEST.into(),
                digest: digest.into(),
                size: 475,
                platform: Some(Platform { os: "linux".into(), architecture: arch.into(), ..Default::default() }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn two_manifests_combine_into_an_oci_index() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let sources = [manifest_source(&a, "amd64"), manifest_source(&b, "arm64")];
        let documents = [Bytes::new(), Bytes::new()];
        let combined = combine(&sources, &documents, &BTreeMap::new(), true).unwrap();
        let index: Index = serde_json::from_slice(&combined.bytes).unwrap();
        assert_eq!(index.media_type, oci::INDEX);
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(combined.descriptor.digest, sha256(&combined.bytes));
        assert_eq!(combined.manifests.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn one_manifest_without_prefer_index_is_copied_as_it_is() {
        let a = format!("sha256:{}", "a".repeat(64));
        let documents = [Bytes::from_static(b"{}")];
        let combined = combine(&[manifest_source(&a, "amd64")], &documents, &BTreeMap::new(), false).unwrap();
        assert_eq!(combined.bytes, b"{}");
        assert_eq!(combined.descriptor.digest, a);
    }

    #[test]
    fn manifest_annotations_are_refused_as_buildx_refuses_them() {
        let a = format!("sha256:{}", "a".repeat(64));
        let annotations = parse_annotations(&["manifest:k=v".to_owned()]).unwrap();
        let err = combine(&[manifest_source(&a, "amd64")], &[Bytes::new()], &annotations, true).err().unwrap();
        assert_eq!(err.to_string(), "\"manifest\" annotations are not supported yet");
    }

    #[test]
    fn sources_parse_as_digests_references_and_descriptors() {
        let digest = format!("sha256:{}", "c".repeat(64));
        assert!(parse_source(&digest).unwrap().reference.is_none());
        assert_eq!(parse_source("busybox").unwrap().reference.unwrap().to_string(), "docker.io/library/busybox");
        let json = format!(r#"{{"mediaType":"{}","digest":"{digest}","size":3}}"#, oci::MANIFEST);
        assert_eq!(parse_source(&json).unwrap().descriptor.size, 3);
        let err = parse_source("sha256:nothex").unwrap_err().to_string();
        assert!(err.contains("valid sources are digests, references and descriptors"), "{err}");
    }

    #[test]
    fn text_view_is_aligned_like_gos_tabwriter() {
        let inspected = Inspected {
            name: "r/x:1".into(),
            raw: Vec::new(),
            media_type: oci::MANIFEST.into(),
            digest: "sha256:d".into(),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            inspected.render_text(),
            "Name:      r/x:1\nMediaType: application/vnd.oci.image.manifest.v1+json\nDigest:    sha256:d\n"
        );
    }
}
