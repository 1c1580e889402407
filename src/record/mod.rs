//! Build records: what each build of a project and target was made of and
//! what it did, kept so the next build (or `fbuild plan` before it) can say
//! why a step runs.
//!
//! A record holds, per step of the graph the native compiler solved: the
//! vertex digest (the LLB op's, which is the daemon's vertex digest), the
//! op's own digest without its inputs (the context's local source carries
//! the session id, so a step reading the context changes digest every
//! build while its meaning does not), name, Dockerfile lines, cached or
//! ran, duration, the base image digest of a `FROM`, the context paths the
//! step reads and the build arguments it sees; and for the build, the
//! content digests of the context files the steps read (hashed here, never
//! their contents), the build arguments (values hashed, secrets never
//! seen: `--secret` values do not pass through here), the cache imports
//! and `--no-cache` flags.
//!
//! ```text
//!  BuildReport.vertices + the solved pb::Definition + the context folder
//!        │  BuildRecord::new            (graph.rs: steps; context.rs: files)
//!        ▼
//!  explain::explain(previous, &mut record)   causes of the steps that ran
//!  explain::predict(previous, &record, ...)  `fbuild plan`: steps that will run
//!        │
//!  store.rs: the user's state folder (bounded, oldest go) and the local
//!            cache folder of `--cache-to type=local` (travels to the next runner)
//! ```

mod context;
pub mod explain;
mod graph;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::VertexOutcome;
use crate::proto::pb;

pub use explain::{Cause, Verdict};
pub use store::{
    cache_folder_path, load_from_cache_folder, save_to_cache_folder, RecordError, RecordStore, STATE_DIR_ENV,
};

/// The record format's version: a record of another version is ignored
/// (with a warning), never read as this one.
pub const RECORD_VERSION: u32 = 1;

/// One build of a project's target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BuildRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    /// The fbuild that wrote it.
    pub fbuild: String,
    /// The target stage (empty: the last stage).
    pub target: String,
    /// When the build ended, seconds since the Unix epoch.
    pub created: i64,
    /// The graph's steps, inputs before the steps reading them.
    pub steps: Vec<StepRecord>,
    /// Build arguments by name: a digest of the value, never the value.
    pub build_args: BTreeMap<String, String>,
    /// Content digests of the context files the steps read, by path.
    pub files: BTreeMap<String, String>,
    /// Every file the steps read is in `files` (false when the context was
    /// too large to hash within the bounds).
    pub files_complete: bool,
    /// The cache imports the build used (`type=local,src=DIR`, a registry
    /// reference, a backend's type), without credentials.
    pub cache_imports: Vec<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`'s stages.
    pub no_cache_filter: Vec<String>,
}

/// One step of a build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StepRecord {
    /// The vertex digest.
    pub digest: String,
    /// The op's digest with its inputs left out.
    pub own: String,
    /// The vertex name (`[deps 3/3] RUN pip install ...`).
    pub name: String,
    /// The stage label of the name (`deps`, `stage-1`, empty for a
    /// one-stage Dockerfile).
    pub stage: String,
    /// The step's position in its stage (the `3` of `3/3`).
    pub position: u32,
    /// The instruction as named, image digests left out.
    pub text: String,
    /// Dockerfile lines (1-based) the step comes from.
    pub lines: Vec<u32>,
    /// The steps whose results it reads (by vertex digest).
    pub inputs: Vec<String>,
    /// For a `FROM` of a registry image: the reference and its digest.
    pub base_image: Option<BaseImage>,
    /// The context paths it reads (`/requirements.txt`, `/` for `COPY . .`).
    pub reads: Vec<String>,
    /// The build arguments it sees (names).
    pub args: Vec<String>,
    /// The graph tells the daemon not to use the cache for it (how the
    /// frontend applies `--no-cache` and `--no-cache-filter`; not every
    /// instruction gets it).
    #[serde(default)]
    pub ignore_cache: bool,
    /// The cache mounts of a `RUN`, by the id the daemon files them under.
    #[serde(default)]
    pub cache_mounts: Vec<String>,
    /// What the build did with it.
    pub state: StepState,
    /// Time it ran, in milliseconds.
    pub duration_ms: u64,
    /// Why it ran (set once explained).
    pub cause: Option<Cause>,
}

/// A `FROM` image: its reference as written and the digest it resolved to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    pub reference: String,
    pub digest: String,
}

/// What a build did with a step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Answered from the cache.
    Cached,
    /// Ran.
    Ran,
    /// Not needed: a later step was cached (or the build failed first).
    Skipped,
    /// Not built (a plan).
    Planned,
    /// A base image the daemon resolved again with nothing changed: the
    /// daemon reports such a `FROM` as not cached whenever it computes its
    /// cache key for a step after it, so it is not counted as a step that
    /// ran (its layers are fetched only if a step that runs needs them).
    Resolved,
}

/// What a build was asked for, besides its graph.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildInputs {
    /// The target stage (empty: the last).
    pub target: String,
    /// Build arguments (`--build-arg`): only their digests are kept.
    pub build_args: BTreeMap<String, String>,
    /// The cache imports, described without credentials.
    pub cache_imports: Vec<String>,
    pub no_cache: bool,
    pub no_cache_filter: Vec<String>,
}

impl BuildInputs {
    /// Reads the Dockerfile frontend's attributes (`build-arg:K`,
    /// `no-cache`, `target`) as the daemon's frontend reads them.
    pub fn from_frontend_attrs(attrs: &BTreeMap<String, String>, cache_imports: &[crate::cache::CacheEntry]) -> Self {
        let build_args = attrs
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix("build-arg:")?.to_owned(), value.clone())))
            .collect();
        let (no_cache, no_cache_filter) = match attrs.get("no-cache") {
            None => (false, Vec::new()),
            Some(value) if value.is_empty() => (true, Vec::new()),
            Some(value) => (false, value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()),
        };
        BuildInputs {
            target: attrs.get("target").cloned().unwrap_or_default(),
            build_args,
            cache_imports: cache_imports.iter().map(describe_import).collect(),
            no_cache,
            no_cache_filter,
        }
    }
}

/// A cache import as a record may hold it: its type and where, never its
/// other attributes (tokens, keys).
fn describe_import(entry: &crate::cache::CacheEntry) -> String {
    let place = ["src", "ref", "name"].iter().find_map(|key| entry.attrs.get(*key).map(|v| format!(",{key}={v}")));
    format!("type={}{}", entry.kind, place.unwrap_or_default())
}

/// A build argument's value, as kept in a record: a digest under a domain
/// of our own, so it tells whether the value changed and nothing else.
pub(crate) fn arg_digest(name: &str, value: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"fbuild build-arg\0");
    hasher.update(name.as_bytes());
    hasher.update(b"\0");
    hasher.update(value.as_bytes());
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

impl BuildRecord {
    /// The record of a build (`outcomes` from its report) or, with no
    /// outcomes, of a plan: the steps of `definition`, the digests of the
    /// context files they read (from `context`, the folder sent as the
    /// build's context), and `inputs`.
    pub fn new(
        definition: &pb::Definition,
        outcomes: Option<&[VertexOutcome]>,
        context: Option<&Path>,
        inputs: &BuildInputs,
    ) -> BuildRecord {
        let graph = graph::Graph::new(definition, &inputs.build_args);
        let by_digest: BTreeMap<&str, &VertexOutcome> =
            outcomes.unwrap_or_default().iter().map(|o| (o.digest.as_str(), o)).collect();
        let steps: Vec<StepRecord> = graph
            .steps
            .into_iter()
            .map(|mut step| {
                match outcomes {
                    None => step.state = StepState::Planned,
                    Some(_) => match by_digest.get(step.digest.as_str()) {
                        Some(o) if o.cached => step.state = StepState::Cached,
                        Some(o) if o.started => {
                            step.state = StepState::Ran;
                            step.duration_ms = o.duration.as_millis().min(u64::MAX as u128) as u64;
                        }
                        _ => step.state = StepState::Skipped,
                    },
                }
                step
            })
            .collect();
        let reads: Vec<&str> = steps.iter().flat_map(|s| s.reads.iter().map(String::as_str)).collect();
        let (files, files_complete) = match (context, &graph.context) {
            (Some(dir), Some(local)) if !reads.is_empty() => context::hash_files(dir, local, &reads),
            _ => (BTreeMap::new(), true),
        };
        BuildRecord {
            version: RECORD_VERSION,
            fbuild: env!("CARGO_PKG_VERSION").to_owned(),
            target: inputs.target.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default(),
            steps,
            build_args: inputs.build_args.iter().map(|(k, v)| (k.clone(), arg_digest(k, v))).collect(),
            files,
            files_complete,
            cache_imports: inputs.cache_imports.clone(),
            no_cache: inputs.no_cache,
            no_cache_filter: inputs.no_cache_filter.clone(),
        }
    }

    /// The cache mounts (by the daemon's id) of the steps that run: after
    /// [`explain::predict`], the mounts worth restoring before the build.
    pub fn running_cache_mounts(&self) -> std::collections::BTreeSet<String> {
        self.steps.iter().filter(|s| s.cause.is_some()).flat_map(|s| s.cache_mounts.iter().cloned()).collect()
    }

    /// Steps the daemon reported: ran, cached or resolved.
    pub fn reported(&self) -> impl Iterator<Item = &StepRecord> {
        self.steps.iter().filter(|s| matches!(s.state, StepState::Ran | StepState::Cached | StepState::Resolved))
    }
}

/// Where one project's target keeps its records: the state folder (keyed
/// by the context folder, the Dockerfile and the target) and the local
/// cache folders the build imports from and exports to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordPlaces {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub target: String,
    /// `None` when there is no state folder (no `HOME`).
    pub state: Option<RecordStore>,
    /// Local cache folders the build imports (`--cache-from type=local`).
    pub imports: Vec<PathBuf>,
    /// Local cache folders the build exports to (`--cache-to type=local`).
    pub exports: Vec<PathBuf>,
}

impl RecordPlaces {
    pub fn new(context: PathBuf, dockerfile: PathBuf, target: String, state: Option<RecordStore>) -> Self {
        RecordPlaces { context, dockerfile, target, state, imports: Vec::new(), exports: Vec::new() }
    }

    /// The last record of this target: the state folder's, else the one
    /// carried in an imported cache folder (a fresh runner). A record that
    /// cannot be read is passed over, and `warn` told why.
    pub fn previous(&self, warn: &mut dyn FnMut(String)) -> Option<BuildRecord> {
        let state = self.state.as_ref().and_then(|store| {
            store.load(&self.context, &self.dockerfile, &self.target).unwrap_or_else(|error| {
                warn(format!("ignored: {}", crate::error::error_chain(&error)));
                None
            })
        });
        state.or_else(|| self.imported(warn))
    }

    /// The record carried in the first imported cache folder that has one.
    pub fn imported(&self, warn: &mut dyn FnMut(String)) -> Option<BuildRecord> {
        self.imports.iter().find_map(|dir| {
            load_from_cache_folder(dir, &self.target).unwrap_or_else(|error| {
                warn(format!("ignored: {}", crate::error::error_chain(&error)));
                None
            })
        })
    }

    /// Predicts the build of `definition` with `inputs` (`fbuild plan`):
    /// against the last record, the context as it is now, the record the
    /// imported cache folder carries, and whether the daemon's cache holds
    /// anything at all (asked on `channel`).
    pub async fn predict(
        &self,
        channel: &tonic::transport::Channel,
        definition: &pb::Definition,
        inputs: &BuildInputs,
        warn: &mut dyn FnMut(String),
    ) -> (BuildRecord, Vec<Verdict>, explain::DaemonCache) {
        let daemon = daemon_cache(Self::ask_daemon(channel).await, warn);
        let (record, verdicts) = self.predict_on(daemon, definition, inputs, warn);
        (record, verdicts, daemon)
    }

    /// Asks the daemon what its cache holds; apart from [`Self::predict`]
    /// so that a caller can ask while it compiles (`Control.DiskUsage` can
    /// take seconds on a large cache), then [`daemon_cache`] reads the answer.
    pub async fn ask_daemon(
        channel: &tonic::transport::Channel,
    ) -> Result<Vec<crate::proto::moby::buildkit::v1::UsageRecord>, crate::control::ControlError> {
        crate::control::Control::new(channel.clone()).disk_usage(Vec::new(), None).await
    }

    /// [`Self::predict`] with the daemon's cache already known.
    pub fn predict_on(
        &self,
        daemon: explain::DaemonCache,
        definition: &pb::Definition,
        inputs: &BuildInputs,
        warn: &mut dyn FnMut(String),
    ) -> (BuildRecord, Vec<Verdict>) {
        let previous = self.previous(warn);
        let imported = self.imported(warn);
        let mut record = BuildRecord::new(definition, None, Some(&self.context), inputs);
        let verdicts = explain::predict(previous.as_ref(), &mut record, daemon, imported.as_ref());
        (record, verdicts)
    }

    /// Keeps `record` in the state folder and the exported cache folders;
    /// a failure is a warning (the build itself succeeded).
    pub fn save(&self, record: &BuildRecord, warn: &mut dyn FnMut(String)) {
        if let Some(store) = &self.state {
            if let Err(error) = store.save(&self.context, &self.dockerfile, &self.target, record) {
                warn(crate::error::error_chain(&error));
            }
        }
        for dir in &self.exports {
            if let Err(error) = save_to_cache_folder(dir, record) {
                warn(crate::error::error_chain(&error));
            }
        }
    }
}

/// What the daemon's answer to [`RecordPlaces::ask_daemon`] says of its
/// cache; a failed call is a warning and taken as warm (the last build's
/// steps still there).
pub fn daemon_cache(
    usage: Result<Vec<crate::proto::moby::buildkit::v1::UsageRecord>, crate::control::ControlError>,
    warn: &mut dyn FnMut(String),
) -> explain::DaemonCache {
    match usage {
        Ok(usage) if usage.is_empty() => explain::DaemonCache::Empty,
        Ok(_) => explain::DaemonCache::Warm,
        Err(error) => {
            warn(format!(
                "cannot ask the daemon what its cache holds ({}); assuming it holds the last build's steps",
                crate::error::error_chain(&error)
            ));
            explain::DaemonCache::Warm
        }
    }
}

#[cfg(test)]
mod tests;
