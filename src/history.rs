//! The daemon's build history, read as `buildx history` reads it.
//!
//! BuildKit keeps a record of every build it ran (`Control.ListenBuildHistory`):
//! its frontend attributes, when it started and ended, its error, how many
//! steps ran and how many came from the cache, and its stored progress. This
//! module asks for those records and gives them the names, states and order
//! `buildx history ls` gives them, so the two tools list the same builds the
//! same way; `fbuild history` is its command line.
//!
//! Names follow buildx's `BuildName`: the `BUILDKIT_BUILD_NAME` build arg,
//! else the context and Dockerfile a build came from and its target. buildx
//! also remembers, for the builds it ran itself, the local folders they used
//! (its "local state", under `$DOCKER_CONFIG/buildx/refs`); [`LocalState`]
//! reads those files so a build that buildx ran has the same name in both
//! tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::control::{Control, ControlError};
use crate::proto::moby::buildkit::v1 as api;

/// How many records one query asks each daemon for: buildx's `recordsLimit`.
pub const RECORDS_LIMIT: i32 = 50;

/// The response header carrying the daemon's clock, which a running build's
/// duration is measured against (as buildx does: the client's clock may differ).
const CURRENT_TIMESTAMP_HEADER: &str = "buildkit-current-timestamp";

/// The largest local-state file read; buildx's are a few hundred bytes.
const LOCAL_STATE_LIMIT: u64 = 64 * 1024;

/// What went wrong reading the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A `--filter` that is not one of buildx's forms.
    #[error("invalid filter {0:?}")]
    InvalidFilter(String),
    /// A filter key buildx does not know.
    #[error("unsupported filter {0:?}")]
    UnsupportedFilter(String),
    /// A filter whose operator does not fit its key.
    #[error("invalid separator for {filter:?}, expected {expected}")]
    InvalidSeparator {
        /// The filter as given.
        filter: String,
        /// The operators the key takes.
        expected: &'static str,
    },
    /// A time or duration in a filter that neither Go's durations nor RFC 3339 read.
    #[error("invalid {what} {value}")]
    InvalidTime {
        /// `time` or `duration`.
        what: &'static str,
        /// The value as given.
        value: String,
    },
    /// `^N` with N not a number.
    #[error("invalid offset {0:?}")]
    InvalidOffset(String),
    /// `^N` past the records the daemon holds.
    #[error("no completed build found with offset {0}")]
    OffsetOutOfRange(usize),
    /// The daemon refused or broke the call.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The daemon's stream broke half-way.
    #[error("reading the build history: {0}")]
    Stream(tonic::Status),
    /// Reading one node of several failed.
    #[error("node {node}")]
    Node {
        /// The node's name.
        node: String,
        /// Why.
        #[source]
        source: Box<HistoryError>,
    },
}

/// One daemon of several whose records [`list_nodes`] reads.
#[derive(Debug, Clone, Copy)]
pub struct HistoryNode<'a> {
    /// Its name (in errors).
    pub name: &'a str,
    /// Its connection.
    pub control: &'a Control,
    /// buildx's local state of its builds, if any.
    pub local_state: Option<&'a LocalState>,
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// One build by its ref, or `^N` for the N-th newest (0 the newest); empty: all.
    pub reference: String,
    /// buildx's `--filter` forms: `status=error`, `ref!=x`, `repository=…`,
    /// `startedAt>1h`, `completedAt<=2026-01-02T00:00:00Z`, `duration>10s`.
    pub filters: Vec<String>,
    /// Only finished builds.
    pub completed_only: bool,
}

/// One build the daemon remembers, with what buildx shows of it.
#[derive(Debug, Clone)]
pub struct HistoryRecord {
    /// The daemon's record.
    pub record: api::BuildHistoryRecord,
    /// Its name as buildx derives it (may be empty).
    pub name: String,
    /// What buildx remembered of it, when buildx ran it.
    pub local_state: Option<BuildState>,
    /// The daemon's clock when the list was read, if it said.
    pub daemon_now: Option<SystemTime>,
    /// The daemon it came from: its index among [`list_nodes`]'s nodes (0 from [`list`]).
    pub node: usize,
}

/// A record's state, with buildx's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildStatus {
    /// Still running.
    Running,
    /// Finished without an error.
    Completed,
    /// Finished with an error.
    Error,
    /// Stopped by its client (an error whose code is `Canceled`).
    Canceled,
}

impl BuildStatus {
    /// The word `buildx history ls` prints (it shows a canceled build as `Error`).
    pub fn ls_word(self) -> &'static str {
        match self {
            BuildStatus::Running => "Running",
            BuildStatus::Completed => "Completed",
            BuildStatus::Error | BuildStatus::Canceled => "Error",
        }
    }
}

impl HistoryRecord {
    /// Running, completed, failed or canceled.
    pub fn status(&self) -> BuildStatus {
        if self.record.completed_at.is_none() {
            return BuildStatus::Running;
        }
        match &self.record.error {
            None => BuildStatus::Completed,
            Some(status) if status.code == tonic::Code::Cancelled as i32 => BuildStatus::Canceled,
            Some(_) => BuildStatus::Error,
        }
    }

    /// When it started.
    pub fn created_at(&self) -> Option<SystemTime> {
        self.record.created_at.as_ref().map(system_time)
    }

    /// When it ended, if it did.
    pub fn completed_at(&self) -> Option<SystemTime> {
        self.record.completed_at.as_ref().map(system_time)
    }

    /// How long it took, or has taken so far by the daemon's clock (`None`
    /// when it is running and the daemon did not say what time it is).
    pub fn duration(&self) -> Option<Duration> {
        let start = self.created_at()?;
        let end = self.completed_at().or(self.daemon_now)?;
        Some(end.duration_since(start).unwrap_or_default())
    }
}

/// Reads the records a query asks for, newest first, from one daemon.
///
/// As buildx does, filters go to the daemon (which v0.32.2 applies) and are
/// applied again here (older daemons ignore them), and the records come back
/// with running builds first, then by start time, newest first.
pub async fn list(
    control: &Control,
    query: &HistoryQuery,
    local_state: Option<&LocalState>,
) -> Result<Vec<HistoryRecord>, HistoryError> {
    let (reference, offset) = split_offset(&query.reference)?;
    let filters = Filters::parse(&query.filters)?;
    let mut out = fetch(control, query, &reference, &filters, local_state, 0).await?;
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at()));
    pick_offset(out, offset)
}

/// As [`list`], over several daemons at once (the nodes of a builder, as
/// `buildx history` reads them): every node's records merged, newest first;
/// `^N` counts over the merged list, and each record's
/// [`HistoryRecord::node`] is its node's index in `nodes`. A node that
/// fails fails the whole, naming the node (as buildx).
pub async fn list_nodes(nodes: &[HistoryNode<'_>], query: &HistoryQuery) -> Result<Vec<HistoryRecord>, HistoryError> {
    let (reference, offset) = split_offset(&query.reference)?;
    let filters = Filters::parse(&query.filters)?;
    let reads = nodes.iter().enumerate().map(|(index, node)| {
        let (reference, filters) = (&reference, &filters);
        async move {
            fetch(node.control, query, reference, filters, node.local_state, index)
                .await
                .map_err(|source| HistoryError::Node { node: node.name.to_owned(), source: Box::new(source) })
        }
    });
    let mut out = Vec::new();
    for records in futures::future::join_all(reads).await {
        out.extend(records?);
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at()));
    pick_offset(out, offset)
}

/// `^N` as an offset; any other reference as it is.
fn split_offset(reference: &str) -> Result<(String, Option<usize>), HistoryError> {
    match reference.strip_prefix('^') {
        Some(n) => Ok((String::new(), Some(n.parse().map_err(|_| HistoryError::InvalidOffset(reference.to_owned()))?))),
        None => Ok((reference.to_owned(), None)),
    }
}

/// buildx counts the offset down over the newest-first list and keeps the next record.
fn pick_offset(out: Vec<HistoryRecord>, offset: Option<usize>) -> Result<Vec<HistoryRecord>, HistoryError> {
    let Some(mut skip) = offset else { return Ok(out) };
    let mut picked = Vec::new();
    for record in out {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        picked.push(record);
        break;
    }
    if skip > 0 {
        return Err(HistoryError::OffsetOutOfRange(skip));
    }
    Ok(picked)
}

/// One daemon's records for `query` (without its offset), unsorted.
async fn fetch(
    control: &Control,
    query: &HistoryQuery,
    reference: &str,
    filters: &Filters,
    local_state: Option<&LocalState>,
    node: usize,
) -> Result<Vec<HistoryRecord>, HistoryError> {
    let reference = reference.to_owned();
    let request = api::BuildHistoryRequest {
        early_exit: true,
        r#ref: reference,
        limit: RECORDS_LIMIT,
        filter: filters.for_daemon(),
        ..Default::default()
    };
    let response = control.list_history(request).await?;
    let daemon_now = response
        .metadata()
        .get(CURRENT_TIMESTAMP_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| humantime::parse_rfc3339_weak(text).ok().or_else(|| parse_rfc3339(text)));
    let mut events = response.into_inner();
    let mut out = Vec::new();
    while let Some(event) = events.message().await.map_err(HistoryError::Stream)? {
        if event.r#type == api::BuildHistoryEventType::Deleted as i32 {
            continue;
        }
        let Some(record) = event.record else { continue };
        if query.completed_only && event.r#type != api::BuildHistoryEventType::Complete as i32 {
            continue;
        }
        if !filters.matches(&record, SystemTime::now()) {
            continue;
        }
        let state = local_state.and_then(|ls| ls.read(&record.r#ref));
        let name = build_name(&record.frontend_attrs, state.as_ref());
        out.push(HistoryRecord { record, name, local_state: state, daemon_now, node });
    }
    Ok(out)
}

/// The order `buildx history ls` prints: running builds first, then newest first.
pub fn sort_for_listing(records: &mut [HistoryRecord]) {
    records.sort_by(|a, b| {
        let running = |r: &HistoryRecord| r.record.completed_at.is_some();
        running(a).cmp(&running(b)).then_with(|| b.created_at().cmp(&a.created_at()))
    });
}

fn system_time(timestamp: &prost_types::Timestamp) -> SystemTime {
    let nanos = Duration::new(timestamp.seconds.max(0) as u64, timestamp.nanos.clamp(0, 999_999_999) as u32);
    SystemTime::UNIX_EPOCH + nanos
}

/// RFC 3339 with an offset other than `Z` (humantime reads only UTC).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let utc = parsed.with_timezone(&chrono::Utc);
    let secs = u64::try_from(utc.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, utc.timestamp_subsec_nanos()))
}

// ---------------------------------------------------------------------------
// Filters

/// buildx's `--filter` forms, as sent to the daemon and as matched here.
#[derive(Debug, Default)]
struct Filters {
    for_daemon: Vec<String>,
    matchers: Vec<Matcher>,
}

#[derive(Debug)]
enum Matcher {
    /// `ref`, `repository` or `status`, `=` (contains; equals for status) or `!=`.
    Value { key: ValueKey, value: String, negated: bool },
    /// `startedAt`, `completedAt` (Unix seconds) or `duration` (nanoseconds) against a bound.
    Time { key: TimeKey, bound: TimeBound, op: Comparison },
}

#[derive(Debug, Clone, Copy)]
enum ValueKey {
    Ref,
    Repository,
    Status,
}

#[derive(Debug, Clone, Copy)]
enum TimeKey {
    StartedAt,
    CompletedAt,
    Duration,
}

/// What a time filter compares with. A relative time (`1h`) is resolved when
/// matching, against the clock then, as buildx resolves it when it parses.
#[derive(Debug, Clone, Copy)]
enum TimeBound {
    Ago(Duration),
    At(i64),
    Nanos(i64),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

impl Filters {
    fn parse(filters: &[String]) -> Result<Self, HistoryError> {
        let mut out = Filters::default();
        for filter in filters {
            // buildx tries the operators in this order, so `startedAt<=1h` is cut at
            // its `=` and refused as an unknown key `startedAt<`: the same here.
            let (key, value, op) = cut_any(filter, &["!=", "=", "<=", "<", ">=", ">"])
                .ok_or_else(|| HistoryError::InvalidFilter(filter.clone()))?;
            let daemon_op = match key {
                "ref" | "repository" | "status" => {
                    let negated = match op {
                        "=" => false,
                        "!=" => true,
                        _ => {
                            return Err(HistoryError::InvalidSeparator { filter: filter.clone(), expected: "= or !=" })
                        }
                    };
                    let key = match key {
                        "ref" => ValueKey::Ref,
                        "repository" => ValueKey::Repository,
                        _ => ValueKey::Status,
                    };
                    out.matchers.push(Matcher::Value { key, value: value.to_owned(), negated });
                    match (op, key) {
                        ("=", ValueKey::Status) => "==",
                        ("=", _) => "~=",
                        _ => op,
                    }
                }
                "startedAt" | "completedAt" | "duration" => {
                    let op_kind = match op {
                        "<" => Comparison::Less,
                        "<=" => Comparison::LessEqual,
                        ">" => Comparison::Greater,
                        ">=" => Comparison::GreaterEqual,
                        _ => {
                            return Err(HistoryError::InvalidSeparator {
                                filter: filter.clone(),
                                expected: "<=, <, >= or >",
                            })
                        }
                    };
                    let (time_key, bound) = match key {
                        "duration" => {
                            let d = go_duration(value).ok_or_else(|| HistoryError::InvalidTime {
                                what: "duration",
                                value: value.to_owned(),
                            })?;
                            (TimeKey::Duration, TimeBound::Nanos(d))
                        }
                        _ => {
                            let bound = match go_duration(value) {
                                Some(nanos) => TimeBound::Ago(Duration::from_nanos(nanos.max(0).unsigned_abs())),
                                None => {
                                    let at = chrono::DateTime::parse_from_rfc3339(value).map_err(|_| {
                                        HistoryError::InvalidTime { what: "time", value: value.to_owned() }
                                    })?;
                                    TimeBound::At(at.timestamp())
                                }
                            };
                            let k = if key == "startedAt" { TimeKey::StartedAt } else { TimeKey::CompletedAt };
                            (k, bound)
                        }
                    };
                    out.matchers.push(Matcher::Time { key: time_key, bound, op: op_kind });
                    op
                }
                _ => return Err(HistoryError::UnsupportedFilter(filter.clone())),
            };
            out.for_daemon.push(format!("{key}{daemon_op}{value}"));
        }
        Ok(out)
    }

    /// buildx joins the filters into one CSV record, the daemon's form for
    /// conditions that must all hold.
    fn for_daemon(&self) -> Vec<String> {
        if self.for_daemon.is_empty() {
            return Vec::new();
        }
        vec![self.for_daemon.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",")]
    }

    fn matches(&self, record: &api::BuildHistoryRecord, now: SystemTime) -> bool {
        self.matchers.iter().all(|m| m.matches(record, now))
    }
}

/// Go's `encoding/csv` quoting of one field.
fn csv_field(field: &str) -> String {
    let needs_quotes = field == "\\."
        || field.contains([',', '"', '\r', '\n'])
        || field.chars().next().is_some_and(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn cut_any<'a>(s: &'a str, seps: &[&'static str]) -> Option<(&'a str, &'a str, &'static str)> {
    seps.iter().find_map(|sep| s.split_once(sep).map(|(k, v)| (k, v, *sep)))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn go_duration(text: &str) -> Option<i64> {
    crate::dockerfile::compile::image::parse_go_duration(text).ok()
}

impl Matcher {
    fn matches(&self, record: &api::BuildHistoryRecord, now: SystemTime) -> bool {
        match self {
            Matcher::Value { key, value, negated } => {
                let actual = match key {
                    ValueKey::Ref => record.r#ref.clone(),
                    ValueKey::Repository => repository_of(record),
                    ValueKey::Status => status_word(record).to_owned(),
                };
                match (negated, key) {
                    (true, _) => actual != *value,
                    (false, ValueKey::Status) => actual == *value,
                    (false, _) => actual.contains(value.as_str()),
                }
            }
            Matcher::Time { key, bound, op } => {
                let actual: i64 = match key {
                    TimeKey::StartedAt => record.created_at.as_ref().map_or(0, |t| t.seconds),
                    TimeKey::CompletedAt => record.completed_at.as_ref().map_or(0, |t| t.seconds),
                    TimeKey::Duration => match (&record.created_at, &record.completed_at) {
                        (Some(a), Some(b)) => (b.seconds - a.seconds) * 1_000_000_000 + i64::from(b.nanos - a.nanos),
                        _ => 0,
                    },
                };
                let bound = match bound {
                    TimeBound::Ago(d) => {
                        let at = now.checked_sub(*d).unwrap_or(SystemTime::UNIX_EPOCH);
                        at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
                    }
                    TimeBound::At(secs) | TimeBound::Nanos(secs) => *secs,
                };
                match op {
                    Comparison::Less => actual < bound,
                    Comparison::LessEqual => actual <= bound,
                    Comparison::Greater => actual > bound,
                    Comparison::GreaterEqual => actual >= bound,
                }
            }
        }
    }
}

/// buildx's status words for filters: `running`, `completed`, `error`, `canceled`
/// (a build whose error message says "context canceled").
fn status_word(record: &api::BuildHistoryRecord) -> &'static str {
    match (&record.completed_at, &record.error) {
        (None, _) => "running",
        (Some(_), None) => "completed",
        (Some(_), Some(e)) if e.message.contains("context canceled") => "canceled",
        (Some(_), Some(_)) => "error",
    }
}

/// The repository a build came from: its `vcs:source`, or the remote of a git context.
fn repository_of(record: &api::BuildHistoryRecord) -> String {
    if let Some(source) = record.frontend_attrs.get("vcs:source") {
        return source.clone();
    }
    record.frontend_attrs.get("context").and_then(|c| git_remote(c)).unwrap_or_default()
}

/// The remote of a context that is a git URL (dfgitutil's `ParseGitRef`'s
/// `Remote`: the URL without its `#fragment`), `None` for anything else.
fn git_remote(context: &str) -> Option<String> {
    let is_git = context.starts_with("git://")
        || context.starts_with("git@")
        || context.starts_with("github.com/")
        || ((context.starts_with("https://") || context.starts_with("http://") || context.starts_with("ssh://"))
            && (context.split(['#', '?']).next().is_some_and(|u| u.ends_with(".git")) || context.contains(".git#")));
    is_git.then(|| context.split('#').next().unwrap_or(context).to_owned())
}

// ---------------------------------------------------------------------------
// Names

/// What buildx remembered of a build it ran itself (its `localstate.State`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct BuildState {
    /// The invoked target.
    #[serde(rename = "Target", default)]
    pub target: String,
    /// The context folder (absolute) or remote context.
    #[serde(rename = "LocalPath", default)]
    pub local_path: String,
    /// The Dockerfile (absolute, or relative for a remote context).
    #[serde(rename = "DockerfilePath", default)]
    pub dockerfile_path: String,
}

/// buildx's local state of one builder node: `$DOCKER_CONFIG/buildx/refs/BUILDER/NODE/REF`.
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

impl LocalState {
    /// The state of `node` of `builder` under buildx's config folder (`$BUILDX_CONFIG`,
    /// or `$DOCKER_CONFIG/buildx`, or `~/.docker/buildx`).
    pub fn new(buildx_dir: &Path, builder: &str, node: &str) -> Option<Self> {
        if !valid_name(builder) || !valid_name(node) {
            return None;
        }
        Some(LocalState { dir: buildx_dir.join("refs").join(builder).join(node) })
    }

    /// The state of one build; `None` when buildx did not run it (or the file
    /// is not one buildx wrote: too large, a link, not JSON).
    pub fn read(&self, reference: &str) -> Option<BuildState> {
        if !valid_name(reference) {
            return None;
        }
        let path = self.dir.join(reference);
        // The folder is the user's own, but a link or a huge file is still not ours to follow.
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > LOCAL_STATE_LIMIT {
            return None;
        }
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    }
}

/// buildx's `localstate` accepts only names matching `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A build's name as buildx's `BuildName` derives it from its frontend
/// attributes and, for builds buildx ran, its local state.
pub fn build_name(attrs: &BTreeMap<String, String>, state: Option<&BuildState>) -> String {
    if let Some(name) = attrs.get("build-arg:BUILDKIT_BUILD_NAME").filter(|v| !v.is_empty()) {
        return name.clone();
    }
    let target = attrs.get("target").cloned().unwrap_or_default();
    let context_path = match (attrs.get("context"), attrs.get("vcs:localdir:context")) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) if c != "." => c.clone(),
        _ => String::new(),
    };
    let vcs_source = match (attrs.get("vcs:source"), attrs.get("input:context")) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) if git_remote(c).is_some() => c.clone(),
        _ => String::new(),
    };
    let mut dockerfile_path = attrs.get("filename").filter(|f| *f != "Dockerfile").cloned().unwrap_or_default();
    if let Some(dir) = attrs.get("vcs:localdir:dockerfile").filter(|d| *d != ".") {
        dockerfile_path = crate::gopath::join(&[dir, &dockerfile_path]);
    }

    let mut local_path = String::new();
    if let Some(state) = state.filter(|s| !is_remote_url(&s.local_path)) {
        if !state.local_path.is_empty() && state.local_path != "-" {
            local_path = state.local_path.clone();
        }
        if !state.dockerfile_path.is_empty() && state.dockerfile_path != "-" && state.dockerfile_path != "Dockerfile" {
            dockerfile_path = state.dockerfile_path.clone();
        }
    }

    const DEFAULT_FILENAME: &str = "/Dockerfile";
    let has_default_filename = dockerfile_path.ends_with(DEFAULT_FILENAME) || dockerfile_path.is_empty();
    let dockerfile_path = dockerfile_path.strip_suffix(DEFAULT_FILENAME).unwrap_or(&dockerfile_path).to_owned();

    let mut name = String::new();
    if dockerfile_path.starts_with(&local_path) && dockerfile_path.len() > local_path.len() {
        let from = local_path.rfind('/').map_or(0, |i| i + 1);
        name = dockerfile_path[from..].to_owned();
    } else {
        let base_path = if dockerfile_path.is_empty() { &local_path } else { &dockerfile_path };
        if !base_path.is_empty() {
            let last = base_path.rfind('/');
            name = base_path[last.map_or(0, |i| i + 1)..].to_owned();
            if !has_default_filename {
                let parent = match last {
                    Some(i) => crate::gopath::base(&base_path[..i]),
                    None => crate::gopath::base(base_path),
                };
                name = crate::gopath::join(&[&parent, &name]);
            }
        }
    }
    if !context_path.is_empty() {
        name = context_path;
    }
    if !target.is_empty() {
        name = if name.is_empty() { target } else { format!("{name} ({target})") };
    }
    if name.is_empty() && !vcs_source.is_empty() {
        return vcs_source;
    }
    name
}

/// buildx's `urlutil.IsRemoteURL`: an http(s) URL or a git address.
fn is_remote_url(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://") || git_remote(path).is_some()
}

// ---------------------------------------------------------------------------
// Attachments (attestations and results kept with the record)

/// The largest attachment read (a provenance predicate, an index); the daemon's are kilobytes.
const ATTACHMENT_LIMIT: usize = 16 * 1024 * 1024;

/// Something the daemon kept with a build: a result (image manifest, index)
/// or an attestation, as `buildx history inspect` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its digest in the daemon's content store.
    pub digest: String,
    /// The platform it belongs to, as containerd formats platforms (empty: all).
    pub platform: String,
    /// Its in-toto predicate type, else its media type.
    pub kind: String,
}

/// One input a provenance attestation names (a base image, a git source).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Material {
    /// Its package URL or address.
    #[serde(rename = "URI")]
    pub uri: String,
    /// `alg:hex` digests.
    pub digests: Vec<String>,
}

/// The daemon's content store as the control connection serves it (read-only;
/// its history namespace holds what records point at).
struct HistoryContent {
    client: crate::proto::containerd::services::content::v1::content_client::ContentClient<tonic::transport::Channel>,
}

impl HistoryContent {
    async fn exists(&mut self, digest: &str) -> bool {
        use crate::proto::containerd::services::content::v1::InfoRequest;
        self.client.info(InfoRequest { digest: digest.to_owned() }).await.is_ok()
    }

    /// A blob's bytes, at most [`ATTACHMENT_LIMIT`]; `None` when it is missing or larger.
    async fn read(&mut self, digest: &str) -> Option<Vec<u8>> {
        use crate::proto::containerd::services::content::v1::ReadContentRequest;
        let request = ReadContentRequest { digest: digest.to_owned(), offset: 0, size: 0 };
        let mut stream = self.client.read(request).await.ok()?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.ok()? {
            if out.len() + chunk.data.len() > ATTACHMENT_LIMIT {
                return None;
            }
            out.extend_from_slice(&chunk.data);
        }
        Some(out)
    }
}

/// The results and attestations a record keeps, sorted as buildx sorts them
/// (no platform first, then by platform, then by type).
pub async fn attachments(channel: &tonic::transport::Channel, record: &api::BuildHistoryRecord) -> Vec<Attachment> {
    let mut content = HistoryContent {
        client: crate::proto::containerd::services::content::v1::content_client::ContentClient::new(channel.clone()),
    };
    let mut out = Vec::new();
    let mut visit = Vec::new();
    if let Some(result) = &record.result {
        out.extend(result.attestations.iter().map(|a| attachment(a, "")));
        visit.extend(result.results.values().map(|r| (r.clone(), String::new())));
    }
    for (platform, result) in &record.results {
        out.extend(result.attestations.iter().map(|a| attachment(a, platform)));
        visit.extend(result.results.values().map(|r| (r.clone(), platform.clone())));
    }
    // An index's manifests are walked as buildx walks them, one level at a time,
    // never more than a bounded number of descriptors (a record is the daemon's,
    // but the walk must end whatever it holds).
    let mut budget = 10_000usize;
    while let Some((descriptor, platform)) = visit.pop() {
        budget = match budget.checked_sub(1) {
            Some(b) => b,
            None => break,
        };
        if !content.exists(&descriptor.digest).await {
            continue;
        }
        if descriptor.annotations.get("vnd.docker.reference.type").map(String::as_str) != Some("attestation-manifest") {
            out.push(attachment(&descriptor, &platform));
        }
        let is_index = matches!(
            descriptor.media_type.as_str(),
            "application/vnd.oci.image.index.v1+json" | "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        if !is_index {
            continue;
        }
        let Some(bytes) = content.read(&descriptor.digest).await else { continue };
        let Ok(index) = serde_json::from_slice::<IndexJson>(&bytes) else { continue };
        for child in index.manifests {
            let child_platform = child.platform.as_ref().map_or_else(|| platform.clone(), PlatformJson::format);
            let descriptor = api::Descriptor {
                media_type: child.media_type,
                digest: child.digest,
                size: child.size,
                annotations: child.annotations,
            };
            visit.push((descriptor, child_platform));
        }
    }
    out.sort_by(|a, b| {
        (!a.platform.is_empty())
            .cmp(&!b.platform.is_empty())
            .then_with(|| a.platform.cmp(&b.platform))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    out
}

fn attachment(descriptor: &api::Descriptor, platform: &str) -> Attachment {
    let kind = descriptor
        .annotations
        .get("in-toto.io/predicate-type")
        .cloned()
        .unwrap_or_else(|| descriptor.media_type.clone());
    Attachment { digest: descriptor.digest.clone(), platform: platform.to_owned(), kind }
}

#[derive(serde::Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<DescriptorJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    platform: Option<PlatformJson>,
}

#[derive(serde::Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: String,
}

impl PlatformJson {
    fn format(&self) -> String {
        [self.os.as_str(), self.architecture.as_str(), self.variant.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The materials of the first provenance attestation among `attachments`
/// (SLSA v1's resolved dependencies, or v0.2's materials).
pub async fn materials(channel: &tonic::transport::Channel, attachments: &[Attachment]) -> Vec<Material> {
    let Some(provenance) = attachments.iter().find(|a| a.kind.starts_with("https://slsa.dev/provenance/")) else {
        return Vec::new();
    };
    let mut content = HistoryContent {
        client: crate::proto::containerd::services::content::v1::content_client::ContentClient::new(channel.clone()),
    };
    let Some(bytes) = content.read(&provenance.digest).await else { return Vec::new() };
    let Ok(predicate) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Vec::new() };
    let list = if provenance.kind == "https://slsa.dev/provenance/v0.2" {
        predicate.get("materials")
    } else {
        predicate.get("buildDefinition").and_then(|d| d.get("resolvedDependencies"))
    };
    let Some(list) = list.and_then(serde_json::Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|m| {
            let uri = m.get("uri").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            let mut digests: Vec<String> = m
                .get("digest")
                .and_then(serde_json::Value::as_object)
                .map(|set| set.iter().map(|(alg, v)| format!("{alg}:{}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            digests.sort();
            Material { uri, digests }
        })
        .collect()
}

/// A failed build's error as the daemon stored it (`externalError`): where
/// in the Dockerfile it failed, and the last lines the failing step printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredError {
    /// The source locations, printed as BuildKit prints them (`Dockerfile:2`,
    /// a ruler, the lines with `>>>` on the failing one), one after another.
    pub sources: String,
    /// The failing step's name.
    pub step: String,
    /// Its last lines of output (at most 16, as buildx shows).
    pub logs: Vec<String>,
}

/// How many lines of the failing step `inspect` shows: buildx's limit.
const ERROR_LOG_LINES: usize = 16;

/// Reads a failed record's stored error, and the failing step's last lines
/// from the record's progress; `None` when the record has none or it cannot
/// be read.
pub async fn stored_error(control: &Control, record: &api::BuildHistoryRecord) -> Option<StoredError> {
    use prost::Message as _;
    let descriptor = record.external_error.as_ref()?;
    let mut content = HistoryContent {
        client: crate::proto::containerd::services::content::v1::content_client::ContentClient::new(
            control.channel().clone(),
        ),
    };
    let bytes = content.read(&descriptor.digest).await?;
    let status = crate::proto::google::rpc::Status::decode(bytes.as_slice()).ok()?;
    let failure = crate::progress::BuildFailure::from_rpc_status(&status);
    let mut sources = Vec::new();
    for snippet in &failure.sources {
        crate::progress::write_source_context(&mut sources, snippet).ok()?;
        sources.push(b'\n');
    }
    let mut out = StoredError { sources: String::from_utf8_lossy(&sources).into_owned(), ..Default::default() };
    if let Some(vertex) = &failure.vertex {
        if let Ok(stream) = control.status(&record.r#ref).await {
            let (step, logs) = vertex_logs(stream, vertex).await;
            out.step = step;
            out.logs = logs;
        }
    }
    Some(out)
}

/// One step's name and output lines from a build's progress, lines joined
/// across messages per stream as buildx joins them.
async fn vertex_logs(mut stream: tonic::Streaming<api::StatusResponse>, vertex: &str) -> (String, Vec<String>) {
    let mut name = String::new();
    let mut logs: Vec<String> = Vec::new();
    // Per stream, the index of a line still open (no newline yet).
    let mut open: BTreeMap<i64, usize> = BTreeMap::new();
    while let Ok(Some(status)) = stream.message().await {
        if let Some(v) = status.vertexes.iter().find(|v| v.digest == vertex) {
            name = v.name.clone();
        }
        for log in status.logs.iter().filter(|l| l.vertex == vertex) {
            let text = String::from_utf8_lossy(&log.msg);
            let parts: Vec<&str> = text.split('\n').collect();
            let stream_id = log.stream;
            for (i, part) in parts.iter().enumerate() {
                let continued = i == 0
                    && open.get(&stream_id).is_some_and(|&idx| {
                        logs[idx].push_str(part);
                        true
                    });
                if !continued {
                    if !part.is_empty() {
                        logs.push((*part).to_owned());
                    }
                    match logs.len().checked_sub(1) {
                        Some(idx) => open.insert(stream_id, idx),
                        None => open.remove(&stream_id),
                    };
                }
                if i == parts.len() - 1 && part.is_empty() {
                    open.remove(&stream_id);
                }
            }
        }
    }
    if logs.len() > ERROR_LOG_LINES {
        logs.drain(..logs.len() - ERROR_LOG_LINES);
    }
    (name, logs)
}

/// A duration as `buildx history` prints it: `1.4s` under a minute, else `2m  5s`.
pub fn format_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(60) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}m {:2}s", duration.as_secs() / 60, duration.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn names_follow_buildx() {
        // Cases from buildx's util/history/name_test.go shapes, checked against `buildx history ls`.
        assert_eq!(build_name(&attrs(&[]), None), "");
        assert_eq!(build_name(&attrs(&[("target", "deps")]), None), "deps");
        assert_eq!(build_name(&attrs(&[("build-arg:BUILDKIT_BUILD_NAME", "mine"), ("target", "x")]), None), "mine");
        assert_eq!(build_name(&attrs(&[("filename", "docker/app.Dockerfile")]), None), "docker/app.Dockerfile");
        assert_eq!(build_name(&attrs(&[("context", "https://x/y.git"), ("target", "t")]), None), "https://x/y.git (t)");
        let state = BuildState {
            target: String::new(),
            local_path: "/home/me/project".into(),
            dockerfile_path: "/home/me/project/Dockerfile".into(),
        };
        assert_eq!(build_name(&attrs(&[("target", "final")]), Some(&state)), "project (final)");
        let nested = BuildState { dockerfile_path: "/home/me/project/sub/Dockerfile".into(), ..state.clone() };
        assert_eq!(build_name(&attrs(&[]), Some(&nested)), "project/sub");
        let named = BuildState { dockerfile_path: "/elsewhere/app.Dockerfile".into(), ..state };
        assert_eq!(build_name(&attrs(&[]), Some(&named)), "elsewhere/app.Dockerfile");
    }

    #[test]
    fn durations_print_as_buildx_prints_them() {
        assert_eq!(format_duration(Duration::from_millis(1449)), "1.4s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m  5s");
        assert_eq!(format_duration(Duration::from_secs(3600 + 61)), "61m  1s");
    }

    #[test]
    fn filters_become_the_daemons_and_match_locally() {
        let f = Filters::parse(&["status=error".into(), "ref!=abc".into(), "repository=github.com/x".into()]).unwrap();
        assert_eq!(f.for_daemon(), vec!["status==error,ref!=abc,repository~=github.com/x".to_string()]);
        let mut record = api::BuildHistoryRecord {
            r#ref: "r1".into(),
            completed_at: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            error: Some(crate::proto::google::rpc::Status { code: 2, message: "boom".into(), details: vec![] }),
            ..Default::default()
        };
        record.frontend_attrs.insert("vcs:source".into(), "https://github.com/x/y".into());
        assert!(f.matches(&record, SystemTime::now()));
        record.error = None;
        assert!(!f.matches(&record, SystemTime::now()));

        for (bad, want) in [
            ("nokey", "invalid filter \"nokey\""),
            ("foo=bar", "unsupported filter \"foo=bar\""),
            ("status>x", "invalid separator for \"status>x\", expected = or !="),
            ("duration=1s", "invalid separator for \"duration=1s\", expected <=, <, >= or >"),
            ("duration>soon", "invalid duration soon"),
            ("startedAt>yesterday", "invalid time yesterday"),
        ] {
            assert_eq!(Filters::parse(&[bad.into()]).unwrap_err().to_string(), want, "{bad}");
        }
        let d = Filters::parse(&["duration>1s".into()]).unwrap();
        record.created_at = Some(prost_types::Timestamp { seconds: 8, nanos: 0 });
        assert!(d.matches(&record, SystemTime::now()));
        record.created_at = Some(prost_types::Timestamp { seconds: 9, nanos: 500_000_000 });
        assert!(!d.matches(&record, SystemTime::now()));
    }

    #[test]
    fn local_state_refuses_names_that_leave_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LocalState::new(dir.path(), "../x", "n").is_none());
        let ls = LocalState::new(dir.path(), "b", "n0").unwrap();
        std::fs::create_dir_all(dir.path().join("refs/b/n0")).unwrap();
        std::fs::write(dir.path().join("refs/b/n0/r1"), r#"{"LocalPath":"/p","DockerfilePath":"/p/Dockerfile"}"#)
            .unwrap();
        assert_eq!(ls.read("r1").unwrap().local_path, "/p");
        assert!(ls.read("../n0/r1").is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", dir.path().join("refs/b/n0/r2")).unwrap();
            assert!(ls.read("r2").is_none());
        }
    }
}
