//! Why a step ran (after a build) or will run (`fbuild plan`), from the
//! record of the build before.
//!
//! Steps are matched with the previous build's by stage and instruction
//! text as written (so a line inserted above does not mismatch the steps
//! below), then by a text only one step had (a stage inserted above renames
//! the unnamed stages after it), then by position in the stage (so an
//! edited line is found as edited).
//!
//! The walk follows the daemon's cache keys: a step's key changes with its
//! own definition, the context files it reads, or the key of a step it
//! reads. `--no-cache` makes a step run with its key unchanged, so the steps
//! after it stay cached. A step that ran is explained by the first of: the
//! `--no-cache` flags (as the graph marks the step), a step it reads whose
//! key changed (the chain's first step is named), its own change (no
//! earlier record, a new or edited line, a base image that moved, a build
//! argument, an earlier `ENV`/`ARG`, context files); and when nothing
//! changed, the cache import that lacked it or the daemon's cache that lost
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::context::reads_path;
use super::{BuildRecord, StepRecord, StepState};

/// Why a step ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Cause {
    /// No earlier build of this project and target is recorded.
    FirstBuild,
    /// `--no-cache`.
    NoCache,
    /// `--no-cache-filter` names the step's stage.
    NoCacheFilter { stage: String },
    /// A step it reads changed (the chain's first cause is that step's).
    Upstream { step: String },
    /// The instruction is new (a new line or stage).
    NewStep,
    /// The instruction at this place of the stage changed.
    LineChanged { was: String },
    /// The base image's reference resolves to another digest.
    BaseImageMoved { image: String, old: String, new: String },
    /// A build argument the step sees changed (names only).
    BuildArgChanged { names: Vec<String> },
    /// The step's definition changed although its line did not: an earlier
    /// `ENV`/`ARG`/`WORKDIR`/`USER` of its stage, or a flag.
    DefinitionChanged,
    /// Context files it reads changed (added, removed or edited).
    ContextChanged {
        paths: Vec<String>,
        /// Changed files beyond those named.
        more: usize,
    },
    /// Nothing changed, and the build's cache imports did not have it.
    CacheImportMiss { imports: Vec<String> },
    /// Nothing changed: the daemon's cache no longer had it.
    Evicted,
}

/// How many changed paths a cause names.
const PATHS_SHOWN: usize = 5;

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::FirstBuild => write!(f, "no earlier build of this target is recorded"),
            Cause::NoCache => write!(f, "--no-cache"),
            Cause::NoCacheFilter { stage } => write!(f, "--no-cache-filter {stage}"),
            Cause::Upstream { step } => write!(f, "upstream step rebuilt: {step}"),
            Cause::NewStep => write!(f, "new step in the Dockerfile"),
            Cause::LineChanged { was } => {
                let first = was.lines().next().unwrap_or_default();
                let more = if was.lines().nth(1).is_some() { " ..." } else { "" };
                write!(f, "Dockerfile line changed (was `{first}{more}`)")
            }
            Cause::BaseImageMoved { image, old, new } => {
                write!(f, "base image {image} moved from {} to {}", short(old), short(new))
            }
            Cause::BuildArgChanged { names } => {
                let plural = if names.len() == 1 { "" } else { "s" };
                write!(f, "build arg{plural} {} changed", names.join(", "))
            }
            Cause::DefinitionChanged => {
                write!(f, "its definition changed (an earlier ENV, ARG, WORKDIR or USER of its stage, or a flag)")
            }
            Cause::ContextChanged { paths, more } => {
                if paths.is_empty() {
                    return write!(f, "context files changed (too many to compare)");
                }
                write!(f, "{} changed", paths.join(", "))?;
                if *more > 0 {
                    write!(f, " and {more} more")?;
                }
                Ok(())
            }
            Cause::CacheImportMiss { imports } => {
                write!(f, "nothing changed, and the cache import ({}) did not have it", imports.join("; "))
            }
            Cause::Evicted => write!(f, "nothing changed: evicted from the daemon's cache"),
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// A step's verdict: whether it ran (or will run) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    pub name: String,
    pub digest: String,
    pub lines: Vec<u32>,
    /// Ran (after a build) or will run (a plan).
    pub runs: bool,
    pub cause: Option<Cause>,
}

/// The previous build's steps, found by text and by position.
struct Previous<'a> {
    record: &'a BuildRecord,
    by_text: BTreeMap<(&'a str, &'a str, usize), &'a StepRecord>,
    by_position: BTreeMap<(&'a str, u32), &'a StepRecord>,
    /// Texts that only one step had, whatever its stage (an unnamed stage
    /// is named by its index, which a stage inserted above changes).
    unique_text: BTreeMap<&'a str, Option<&'a StepRecord>>,
}

impl<'a> Previous<'a> {
    /// The previous build's step matching `step`.
    fn matching(&self, step: &StepRecord, nth: usize) -> Option<&'a StepRecord> {
        self.by_text
            .get(&(step.stage.as_str(), step.text.as_str(), nth))
            .copied()
            .or_else(|| self.unique_text.get(step.text.as_str()).copied().flatten())
    }
}

impl<'a> Previous<'a> {
    fn new(record: &'a BuildRecord) -> Self {
        let mut by_text = BTreeMap::new();
        let mut by_position = BTreeMap::new();
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for step in &record.steps {
            let n = seen.entry((step.stage.as_str(), step.text.as_str())).or_default();
            by_text.insert((step.stage.as_str(), step.text.as_str(), *n), step);
            *n += 1;
            by_position.entry((step.stage.as_str(), step.position)).or_insert(step);
        }
        let mut unique_text: BTreeMap<&str, Option<&StepRecord>> = BTreeMap::new();
        for step in &record.steps {
            unique_text.entry(step.text.as_str()).and_modify(|seen| *seen = None).or_insert(Some(step));
        }
        Previous { record, by_text, by_position, unique_text }
    }
}

/// Occurrence numbers of each (stage, text) in `record`, step by step.
fn occurrences(record: &BuildRecord) -> Vec<usize> {
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    record
        .steps
        .iter()
        .map(|step| {
            let n = seen.entry((step.stage.as_str(), step.text.as_str())).or_default();
            *n += 1;
            *n - 1
        })
        .collect()
}

/// Why `step` must run whatever the daemon's cache holds, compared with the
/// previous build; `None` when nothing it depends on changed.
/// `--no-cache` or `--no-cache-filter` making `step` run. Such a step runs
/// with its cache key unchanged, so the steps after it keep theirs.
fn flags(current: &BuildRecord, step: &StepRecord) -> Option<Cause> {
    if !step.ignore_cache {
        return None;
    }
    if current.no_cache || current.no_cache_filter.is_empty() {
        return Some(Cause::NoCache);
    }
    Some(Cause::NoCacheFilter { stage: step.stage.clone() })
}

/// Why `step`'s cache key changed since the previous build (its own
/// definition or the context files it reads); `None` when it did not.
fn changed(previous: Option<&Previous<'_>>, current: &BuildRecord, step: &StepRecord, nth: usize) -> Option<Cause> {
    let previous = match previous {
        Some(previous) => previous,
        None => return Some(Cause::FirstBuild),
    };
    let changed_args = |before: &StepRecord| {
        let differs = |name: &String| previous.record.build_args.get(name) != current.build_args.get(name);
        let mut names: Vec<String> =
            step.args.iter().chain(before.args.iter()).filter(|n| differs(n)).cloned().collect();
        names.sort();
        names.dedup();
        names
    };
    let Some(before) = previous.matching(step, nth) else {
        // A step's name shows build arguments expanded: one the step sees
        // changed, and its text with it.
        return Some(match previous.by_position.get(&(step.stage.as_str(), step.position)) {
            Some(before) => match changed_args(before) {
                names if names.is_empty() => Cause::LineChanged { was: before.text.clone() },
                names => Cause::BuildArgChanged { names },
            },
            None => Cause::NewStep,
        });
    };
    if let (Some(old), Some(new)) = (&before.base_image, &step.base_image) {
        if old.digest != new.digest {
            return Some(Cause::BaseImageMoved {
                image: new.reference.clone(),
                old: old.digest.clone(),
                new: new.digest.clone(),
            });
        }
    }
    if before.own != step.own {
        let names = changed_args(before);
        return Some(if names.is_empty() { Cause::DefinitionChanged } else { Cause::BuildArgChanged { names } });
    }
    if !step.reads.is_empty() {
        let reads = |path: &str| step.reads.iter().any(|read| reads_path(read, path));
        if !(previous.record.files_complete && current.files_complete) {
            return Some(Cause::ContextChanged { paths: Vec::new(), more: 0 });
        }
        let paths: BTreeSet<&String> = previous
            .record
            .files
            .iter()
            .filter(|(path, digest)| reads(path) && current.files.get(*path) != Some(*digest))
            .map(|(path, _)| path)
            .chain(
                current
                    .files
                    .iter()
                    .filter(|(path, _)| reads(path) && !previous.record.files.contains_key(*path))
                    .map(|(path, _)| path),
            )
            .collect();
        if !paths.is_empty() {
            let more = paths.len().saturating_sub(PATHS_SHOWN);
            return Some(Cause::ContextChanged { paths: paths.into_iter().take(PATHS_SHOWN).cloned().collect(), more });
        }
    }
    None
}

/// What the walk over the steps knows of each step so far.
#[derive(Clone, Default)]
struct Walked {
    /// Its cache key changed (so the keys of the steps reading it change).
    key_changed: bool,
    /// The first step of the chain of key changes it belongs to.
    root: String,
}

/// The chain a step's key changed by: the first input whose key changed.
fn upstream(step: &StepRecord, walked: &BTreeMap<String, Walked>) -> Option<String> {
    step.inputs.iter().find_map(|input| walked.get(input).filter(|w| w.key_changed).map(|w| w.root.clone()))
}

/// Walks the steps in graph order: whether each one's key changed and, for
/// the steps `runs` says run, their cause. `runs` gets the step and its
/// own change (flags aside); it answers whether the step ran (or will).
/// Returns the causes, and the `FROM` steps that were only resolved.
fn walk(
    previous: Option<&BuildRecord>,
    current: &BuildRecord,
    mut runs: impl FnMut(&StepRecord, usize, bool) -> bool,
) -> (Vec<Option<Cause>>, BTreeSet<String>) {
    let previous = previous.map(Previous::new);
    let nths = occurrences(current);
    let mut walked: BTreeMap<String, Walked> = BTreeMap::new();
    let mut causes = Vec::with_capacity(current.steps.len());
    let mut resolved = BTreeSet::new();
    for (step, nth) in current.steps.iter().zip(nths) {
        let own = changed(previous.as_ref(), current, step, nth);
        let chain = upstream(step, &walked);
        let key_changed = own.is_some() || chain.is_some();
        let flag = flags(current, step);
        let root = match (&chain, &own) {
            (Some(root), _) => root.clone(),
            _ => step.name.clone(),
        };
        walked.insert(step.digest.clone(), Walked { key_changed, root });
        if !runs(step, nth, key_changed || flag.is_some()) {
            causes.push(None);
            continue;
        }
        // An unchanged base image is only resolved (`StepState::Resolved`).
        if step.base_image.is_some() && !key_changed && flag.is_none() {
            resolved.insert(step.digest.clone());
            causes.push(None);
            continue;
        }
        let cause = flag.or_else(|| chain.map(|step| Cause::Upstream { step })).or(own).unwrap_or_else(|| {
            if current.cache_imports.is_empty() {
                Cause::Evicted
            } else {
                Cause::CacheImportMiss { imports: current.cache_imports.clone() }
            }
        });
        causes.push(Some(cause));
    }
    (causes, resolved)
}

/// Explains the steps of a finished build that ran, setting each one's
/// cause, and returns the verdicts of the steps the daemon reported.
pub fn explain(previous: Option<&BuildRecord>, current: &mut BuildRecord) -> Vec<Verdict> {
    let (causes, resolved) = walk(previous, current, |step, _, _| step.state == StepState::Ran);
    for (step, cause) in current.steps.iter_mut().zip(causes) {
        step.cause = cause;
        if resolved.contains(&step.digest) {
            step.state = StepState::Resolved;
        }
    }
    verdicts(current)
}

/// What the daemon can answer from its cache, for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonCache {
    /// It may hold what the last build left (its records are not asked for
    /// step by step: a step evicted since is not foreseen).
    Warm,
    /// It holds nothing (fresh or pruned): only cache imports can answer.
    Empty,
}

/// Predicts which steps of a planned build will run: those whose cache key
/// changed since `previous` (their own definition, the files they read, or
/// a step they read whose key changed), those `--no-cache` names and, on an
/// empty daemon, those no cache import holds (`imported`: the record that
/// travelled with the imported cache folder, if any).
///
/// A step copying from another stage is keyed by the copied files'
/// contents: when a change upstream leaves them as they were, the daemon
/// answers it from the cache although this predicts it runs.
pub fn predict(
    previous: Option<&BuildRecord>,
    current: &mut BuildRecord,
    daemon: DaemonCache,
    imported: Option<&BuildRecord>,
) -> Vec<Verdict> {
    let imported = imported.map(|record| (record, Previous::new(record)));
    // Whether the imported cache holds the step as it is now: the same
    // instruction, and the same contents of the files it reads.
    let importable = |step: &StepRecord, nth: usize| {
        let Some((record, steps)) = &imported else { return false };
        let Some(before) = steps.matching(step, nth) else { return false };
        let reads = |path: &str| step.reads.iter().any(|read| reads_path(read, path));
        let same_files = step.reads.is_empty()
            || record.files_complete
                && current.files_complete
                && record.files.iter().filter(|(p, _)| reads(p)).eq(current.files.iter().filter(|(p, _)| reads(p)));
        before.own == step.own && before.state != StepState::Planned && same_files
    };
    // The steps the import holds: a step is held when it and every step it
    // reads are (the keys of the steps after a changed one differ too).
    let mut held: BTreeSet<String> = BTreeSet::new();
    let (causes, _) = walk(previous, current, |step, nth, changed| {
        if importable(step, nth) && step.inputs.iter().all(|input| held.contains(input)) {
            held.insert(step.digest.clone());
        }
        // The daemon resolves an unchanged base image whatever it holds.
        changed
            || step.base_image.is_none()
                && match daemon {
                    DaemonCache::Warm => false,
                    DaemonCache::Empty => !held.contains(&step.digest),
                }
    });
    for (step, cause) in current.steps.iter_mut().zip(causes) {
        step.cause = cause;
    }
    current
        .steps
        .iter()
        .map(|s| Verdict {
            name: s.name.clone(),
            digest: s.digest.clone(),
            lines: s.lines.clone(),
            runs: s.cause.is_some(),
            cause: s.cause.clone(),
        })
        .collect()
}

/// The verdicts of a built record's reported steps.
pub fn verdicts(record: &BuildRecord) -> Vec<Verdict> {
    record
        .reported()
        .map(|s| Verdict {
            name: s.name.clone(),
            digest: s.digest.clone(),
            lines: s.lines.clone(),
            runs: s.state == StepState::Ran,
            cause: s.cause.clone(),
        })
        .collect()
}

/// The chains of steps that ran: each first step with its cause and how
/// many steps ran after it because of it.
pub fn chains(verdicts: &[Verdict]) -> Vec<(&Verdict, usize)> {
    let mut out: Vec<(&Verdict, usize)> = Vec::new();
    for verdict in verdicts.iter().filter(|v| v.runs) {
        match &verdict.cause {
            Some(Cause::Upstream { step }) => {
                if let Some(chain) = out.iter_mut().find(|(root, _)| root.name == *step) {
                    chain.1 += 1;
                }
            }
            _ => out.push((verdict, 0)),
        }
    }
    out
}

/// The explanation for people: one line per chain
/// (`[deps 3/3] RUN pip install ... ran: requirements.txt changed`), or
/// with `all`, one line per step.
pub fn render_text(verdicts: &[Verdict], verb: &str, all: bool) -> String {
    let mut out = String::new();
    if all {
        for verdict in verdicts {
            match &verdict.cause {
                Some(cause) if verdict.runs => out.push_str(&format!("{} {verb}: {cause}\n", verdict.name)),
                _ => out.push_str(&format!("{} cached\n", verdict.name)),
            }
        }
        return out;
    }
    for (root, after) in chains(verdicts) {
        let cause = root.cause.as_ref().map(|c| c.to_string()).unwrap_or_default();
        out.push_str(&format!("{} {verb}: {cause}", root.name));
        if after > 0 {
            out.push_str(&format!(" (and {after} step{} after it)", if after == 1 { "" } else { "s" }));
        }
        out.push('\n');
    }
    out
}

/// A Markdown summary for `$GITHUB_STEP_SUMMARY`: the hit rate, then each
/// step that ran and why.
pub fn render_markdown(verdicts: &[Verdict], title: &str) -> String {
    let total = verdicts.len();
    let cached = verdicts.iter().filter(|v| !v.runs).count();
    let rate = (cached * 100 + total / 2).checked_div(total).unwrap_or(100);
    let mut out = format!("### {title}\n\n{cached} of {total} steps cached ({rate}%).\n");
    let ran: Vec<&Verdict> = verdicts.iter().filter(|v| v.runs).collect();
    if !ran.is_empty() {
        out.push_str("\n| step | cause |\n|---|---|\n");
        for verdict in ran {
            let cause = verdict.cause.as_ref().map(|c| c.to_string()).unwrap_or_default();
            out.push_str(&format!("| `{}` | {} |\n", markdown_cell(&verdict.name), markdown_cell(&cause)));
        }
    }
    out
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'").replace('\n', " ")
}
