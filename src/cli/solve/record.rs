//! The build record of a native build (`crate::record`): where it is kept,
//! and the explanation printed after the build — one line per chain of
//! steps that ran, with its first cause.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use crate::build::VertexOutcome;
use crate::printer::Printer;
use crate::proto::pb;
use crate::record::{explain, BuildInputs, BuildRecord, RecordPlaces, RecordStore};

use super::plan::{Env, SolvePlan};

/// `FBUILD_SUMMARY=github`: append the explanation to `$GITHUB_STEP_SUMMARY`.
pub(crate) const SUMMARY_ENV: &str = "FBUILD_SUMMARY";

/// What a build's record needs besides the build's own report.
pub(crate) struct Recording {
    pub(crate) places: RecordPlaces,
    pub(crate) inputs: BuildInputs,
}

impl Recording {
    /// For a build from a local context folder; `attrs` are the Dockerfile
    /// frontend's attributes (build args, target, no-cache).
    pub(crate) fn prepare(plan: &SolvePlan, attrs: &BTreeMap<String, String>, env: &dyn Env) -> Option<Recording> {
        let context = plan.request.locals.get("context")?.clone();
        let dockerfile = plan.dockerfile.dir.join(&plan.dockerfile.name);
        let inputs = BuildInputs::from_frontend_attrs(attrs, &plan.request.cache_imports);
        let state = RecordStore::from_env(&|name| env.var(name)).ok();
        let mut places = RecordPlaces::new(context, dockerfile, inputs.target.clone(), state);
        let local = |entries: &[crate::cache::CacheEntry]| -> Vec<PathBuf> {
            entries.iter().filter_map(|e| e.local_dir()).map(PathBuf::from).collect()
        };
        places.imports = local(&plan.request.cache_imports);
        places.exports = local(&plan.request.cache_exports);
        Some(Recording { places, inputs })
    }

    /// Records the finished build, explains what ran against the previous
    /// record and, with `notes`, prints the explanation to stderr.
    pub(crate) fn finish(
        &self,
        definition: &pb::Definition,
        vertices: &[VertexOutcome],
        printer: Printer,
        notes: bool,
        warn: &mut dyn FnMut(String),
        env: &dyn Env,
    ) {
        let previous = self.places.previous(warn);
        let mut record = BuildRecord::new(definition, Some(vertices), Some(&self.places.context), &self.inputs);
        let verdicts = explain::explain(previous.as_ref(), &mut record);
        self.places.save(&record, warn);
        if notes {
            let _ = printer.stderr().write_all(explain::render_text(&verdicts, "ran", false).as_bytes());
        }
        if env.var(SUMMARY_ENV).as_deref() == Some("github") {
            if let Err(error) = github_summary(&verdicts, env) {
                warn(format!("cannot append to $GITHUB_STEP_SUMMARY: {error:#}"));
            }
        }
    }
}

/// Appends the Markdown explanation to the file `$GITHUB_STEP_SUMMARY` names.
pub(crate) fn github_summary(verdicts: &[explain::Verdict], env: &dyn Env) -> anyhow::Result<()> {
    let Some(path) = env.var("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        anyhow::bail!("GITHUB_STEP_SUMMARY is not set");
    };
    let mut file = fs_err::OpenOptions::new().append(true).create(true).open(path)?;
    file.write_all(explain::render_markdown(verdicts, "fbuild: cache hits and misses").as_bytes())?;
    Ok(())
}
