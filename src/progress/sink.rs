//! Where a build reports its progress: the [`ProgressSink`] trait, the
//! renderers' implementation of it, and the build's own bookkeeping of steps
//! ([`StepTracker`]), which the report is made from whatever sink the caller
//! chose.

use std::io::Write;

use super::failure::BuildFailure;
use super::model::Model;
use super::summary::{Summary, FAILURE_LOG_LINES};
use super::ProgressWriter;
use crate::proto::moby::buildkit::v1::StatusResponse;

/// How a build ended, as told to a [`ProgressSink`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum BuildEnd<'a> {
    /// The build succeeded.
    Succeeded,
    /// The build failed; the daemon's error and where.
    Failed(&'a BuildFailure),
    /// The caller cancelled the build.
    Cancelled,
}

/// Receives a build's progress while it runs.
///
/// [`ProgressWriter`] draws it for people (tty, plain, rawjson, quiet); a
/// program can implement the trait to collect the daemon's status messages
/// instead. Methods are called from the task running the build and should
/// return quickly.
pub trait ProgressSink: Send {
    /// One message of the daemon's status stream (vertexes, byte progress,
    /// logs, warnings), in arrival order.
    fn on_status(&mut self, status: &StatusResponse);

    /// Called about every 100 ms while the build runs, so live views can
    /// advance their timers.
    fn on_tick(&mut self) {}

    /// Something the client noticed that does not stop the build (a cache
    /// folder with nothing to import yet).
    fn on_warning(&mut self, message: &str) {
        let _ = message;
    }

    /// The build ended; no more calls follow.
    fn on_end(&mut self, end: BuildEnd<'_>) {
        let _ = end;
    }
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn on_status(&mut self, _: &StatusResponse) {}
}

impl<S: ProgressSink + ?Sized> ProgressSink for &mut S {
    fn on_status(&mut self, status: &StatusResponse) {
        (**self).on_status(status)
    }
    fn on_tick(&mut self) {
        (**self).on_tick()
    }
    fn on_warning(&mut self, message: &str) {
        (**self).on_warning(message)
    }
    fn on_end(&mut self, end: BuildEnd<'_>) {
        (**self).on_end(end)
    }
}

impl<W: Write + Send> ProgressSink for ProgressWriter<W> {
    fn on_status(&mut self, status: &StatusResponse) {
        self.update(status);
    }

    fn on_tick(&mut self) {
        self.tick();
    }

    fn on_warning(&mut self, message: &str) {
        self.warn(message);
    }

    fn on_end(&mut self, end: BuildEnd<'_>) {
        match end {
            BuildEnd::Succeeded => {
                self.finish(&Ok::<(), BuildFailure>(()));
            }
            BuildEnd::Failed(failure) => {
                self.finish(&Err::<(), _>(failure.clone()));
            }
            BuildEnd::Cancelled => {
                self.finish_cancelled();
            }
        }
    }
}

/// The build's own record of its steps, kept whatever the sink: the
/// report's step counts and a failed step's name and log come from it.
#[derive(Debug, Default)]
pub(crate) struct StepTracker {
    model: Model,
}

impl StepTracker {
    pub(crate) fn apply(&mut self, status: &StatusResponse) {
        self.model.apply(status);
    }

    /// Steps, cached steps, warnings and duration so far.
    pub(crate) fn summary(&self, failed: bool) -> Summary {
        Summary::from_model(&self.model, failed)
    }

    /// Every vertex reported (progress groups aside), cached or not.
    pub(crate) fn outcomes(&self) -> Vec<crate::build::VertexOutcome> {
        let now = self.model.latest().unwrap_or(super::model::Ts(0));
        self.model
            .vertexes
            .iter()
            .filter(|v| v.digest.starts_with("sha256:"))
            .map(|v| crate::build::VertexOutcome {
                digest: v.digest.clone(),
                name: v.name.clone(),
                cached: v.cached,
                started: v.is_started(),
                duration: v.duration(now),
            })
            .collect()
    }

    /// Whether any vertex was reported at all.
    pub(crate) fn any_started(&self) -> bool {
        self.model.shown().next().is_some()
    }

    /// Whether a step has failed (a cancelled step does not count).
    pub(crate) fn any_failed(&self) -> bool {
        self.model.shown().any(|(_, v)| v.has_failed())
    }

    /// The failed step's name and last log lines: the vertex `digest` when
    /// known, else the first step that failed.
    pub(crate) fn failed_step(&self, digest: Option<&str>) -> Option<(String, Vec<String>)> {
        let vertex = match digest.and_then(|d| self.model.vertex_index(d)) {
            Some(index) => self.model.shown().find(|(i, _)| *i == index).map(|(_, v)| v),
            None => None,
        }
        .or_else(|| self.model.shown().map(|(_, v)| v).find(|v| v.has_failed()))?;
        let log = vertex.logs.tail(FAILURE_LOG_LINES).into_iter().map(|line| line.render()).collect();
        Some((vertex.name.clone(), log))
    }
}
