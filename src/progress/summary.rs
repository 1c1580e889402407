//! The end of a build's progress output: what failed and where, the
//! warnings, and the one-line summary (`Built in 12.3s: 14 steps, 9 cached
//! (64%)`).
//!
//! The failure report follows buildctl and buildx: for each failed step a
//! `------` block with its name and last log lines, then the source lines
//! around the failing instruction with `>>>` markers. The source comes from
//! the solve error's `errdefs.Source` details, or from the LLB definition's
//! source map when the caller built the graph itself.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use super::failure::{with_text, write_source_context, BuildFailure, SourceFile, SourceSnippet};
use super::model::Model;
use crate::proto::pb;

/// How many of a failed step's last log lines the report shows.
pub(crate) const FAILURE_LOG_LINES: usize = 20;

/// What the build did, counted at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Build steps that ran or were answered from cache (bookkeeping
    /// vertexes such as `[internal] load …` and exporters left out).
    pub steps: usize,
    /// How many of those steps came from the cache.
    pub cached: usize,
    /// The build failed (cancelled builds count as failed).
    pub failed: bool,
    /// The user cancelled the build.
    pub canceled: bool,
    /// From the first step's start to the last step's end, by the daemon's clock.
    pub duration: Duration,
    /// Warnings the frontend reported.
    pub warnings: usize,
}

impl Summary {
    pub(crate) fn from_model(model: &Model, failed: bool) -> Summary {
        let steps: Vec<_> = model.shown().filter(|(_, v)| is_build_step(&v.name)).collect();
        Summary {
            steps: steps.len(),
            cached: steps.iter().filter(|(_, v)| v.cached).count(),
            failed,
            canceled: false,
            duration: model.elapsed(),
            warnings: model.warnings.len(),
        }
    }

    /// The share of steps answered from cache, rounded to a whole percent.
    pub fn cache_hit_percent(&self) -> Option<usize> {
        (self.steps > 0).then(|| (self.cached * 100 + self.steps / 2) / self.steps)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        if self.canceled {
            write!(f, "Build cancelled after {secs:.1}s: ")?;
        } else if self.failed {
            write!(f, "Build failed after {secs:.1}s: ")?;
        } else {
            write!(f, "Built in {secs:.1}s: ")?;
        }
        let plural = if self.steps == 1 { "" } else { "s" };
        write!(f, "{} step{plural}, {} cached", self.steps, self.cached)?;
        if let Some(percent) = self.cache_hit_percent() {
            write!(f, " ({percent}%)")?;
        }
        Ok(())
    }
}

/// Vertexes the daemon never caches (loading the build definition and
/// context, registry auth, image metadata, exporters); counting them would
/// make a fully cached rebuild look partly cached.
fn is_build_step(name: &str) -> bool {
    const BOOKKEEPING: [&str; 7] = [
        "[internal]",
        "[auth]",
        "exporting ",
        "importing cache",
        "resolve image config",
        "load metadata for",
        "preparing build cache",
    ];
    // `fbuild bake` labels every vertex with its target (`[app] exporting
    // to image`); the label does not make a bookkeeping vertex a step.
    let unlabelled = match name.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
        Some((_, rest)) => rest,
        None => name,
    };
    !BOOKKEEPING.iter().any(|prefix| name.starts_with(prefix) || unlabelled.starts_with(prefix))
}

/// Where to find the source lines for a failed vertex or a warning.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceContext {
    /// The build file as the caller read it.
    pub(crate) file: Option<SourceFile>,
    /// Source locations by vertex digest, from an LLB definition's source map.
    pub(crate) locations: HashMap<String, Vec<SourceSnippet>>,
}

impl SourceContext {
    /// Adds the locations an LLB definition records for its ops.
    pub(crate) fn add_definition_source(&mut self, source: &pb::Source) {
        for (digest, locations) in &source.locations {
            for location in &locations.locations {
                let Some(info) = usize::try_from(location.source_index).ok().and_then(|i| source.infos.get(i)) else {
                    continue;
                };
                self.locations
                    .entry(digest.clone())
                    .or_default()
                    .push(SourceSnippet::from_proto(info, &location.ranges));
            }
        }
    }

    fn print(&self, out: &mut dyn Write, snippet: &SourceSnippet) -> io::Result<()> {
        match with_text(snippet, self.file.as_ref()) {
            Some(snippet) => write_source_context(out, &snippet),
            None => Ok(()),
        }
    }
}

/// Writes the failure blocks and the warnings list. `failure` is the solve's
/// error when the caller has it; without it the model's failed steps alone
/// are reported.
pub(crate) fn write_report(
    out: &mut dyn Write,
    model: &Model,
    failure: Option<&BuildFailure>,
    sources: &SourceContext,
    expand_warnings: bool,
) -> io::Result<()> {
    write_failure(out, model, failure, sources)?;
    write_warnings(out, model, sources, expand_warnings)
}

/// What failed: each failed step's last log lines and its Dockerfile lines,
/// or the failure's own lines when no step ran.
pub(crate) fn write_failure(
    out: &mut dyn Write,
    model: &Model,
    failure: Option<&BuildFailure>,
    sources: &SourceContext,
) -> io::Result<()> {
    let mut failure_sources_shown = false;
    for (_, v) in model.shown().filter(|(_, v)| v.has_failed()) {
        writeln!(out, "------")?;
        writeln!(out, " > {}:", v.name)?;
        for line in v.logs.tail(FAILURE_LOG_LINES) {
            writeln!(out, "{}", line.render())?;
        }
        writeln!(out, "------")?;
        // The solve error's source belongs to this step when it names this
        // step or names none (the daemon then reports the first failure).
        let owns_failure = failure.is_some_and(|f| {
            f.vertex.as_deref().is_none_or(|d| model.vertex_index(d) == model.vertex_index(&v.digest))
        });
        match failure.filter(|f| owns_failure && !f.sources.is_empty() && !failure_sources_shown) {
            Some(f) => {
                for snippet in &f.sources {
                    sources.print(out, snippet)?;
                }
                failure_sources_shown = true;
            }
            None => {
                for snippet in sources.locations.get(&v.digest).into_iter().flatten() {
                    sources.print(out, snippet)?;
                }
            }
        }
    }
    // A failure before any step ran (a Dockerfile syntax error) still has a place.
    if let Some(f) = failure.filter(|_| !failure_sources_shown) {
        for snippet in &f.sources {
            sources.print(out, snippet)?;
        }
    }

    Ok(())
}

/// The build's warnings (lint rules, deprecated options). Like buildx, a
/// short list by default (`N warnings found (use -v to expand):` and one
/// line each); `expand` adds each warning's detail, link and Dockerfile
/// lines (buildx's `--debug`).
pub(crate) fn write_warnings(
    out: &mut dyn Write,
    model: &Model,
    sources: &SourceContext,
    expand: bool,
) -> io::Result<()> {
    if !model.warnings.is_empty() {
        let n = model.warnings.len();
        let hint = if expand { "" } else { " (use -v to expand)" };
        writeln!(out, "{n} warning{} found{hint}:", if n == 1 { "" } else { "s" })?;
        for w in &model.warnings {
            writeln!(out, " - {}", w.short)?;
            if !expand {
                continue;
            }
            for detail in &w.detail {
                writeln!(out, "   {detail}")?;
            }
            if !w.url.is_empty() {
                writeln!(out, "   More info: {}", w.url)?;
            }
            if let Some(snippet) = &w.source {
                sources.print(out, snippet)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::failure::LineRange;
    use crate::progress::model::tests::range;

    fn summary(steps: usize, cached: usize, failed: bool, ms: u64) -> Summary {
        Summary { steps, cached, failed, canceled: false, duration: Duration::from_millis(ms), warnings: 0 }
    }

    #[test]
    fn summary_line() {
        assert_eq!(summary(14, 9, false, 12_340).to_string(), "Built in 12.3s: 14 steps, 9 cached (64%)");
        assert_eq!(summary(1, 1, false, 40).to_string(), "Built in 0.0s: 1 step, 1 cached (100%)");
        assert_eq!(summary(3, 0, true, 2_000).to_string(), "Build failed after 2.0s: 3 steps, 0 cached (0%)");
        assert_eq!(summary(0, 0, false, 0).to_string(), "Built in 0.0s: 0 steps, 0 cached");
        let canceled = Summary { canceled: true, ..summary(2, 1, true, 1_000) };
        assert_eq!(canceled.to_string(), "Build cancelled after 1.0s: 2 steps, 1 cached (50%)");
        assert_eq!(summary(3, 2, false, 0).cache_hit_percent(), Some(67));
    }

    #[test]
    fn bookkeeping_vertexes_are_not_steps() {
        assert!(!is_build_step("[internal] load build definition from Dockerfile"));
        assert!(!is_build_step("exporting to image"));
        assert!(is_build_step("[2/4] RUN echo hi"));
        assert!(is_build_step("[stage-1 1/2] FROM docker.io/library/busybox"));
    }

    #[test]
    fn definition_source_map_gives_vertex_locations() {
        let mut ctx = SourceContext::default();
        let source = pb::Source {
            locations: [(
                "sha256:op".to_string(),
                pb::Locations { locations: vec![pb::Location { source_index: 0, ranges: vec![range(2, 0, 0)] }] },
            )]
            .into_iter()
            .collect(),
            infos: vec![pb::SourceInfo {
                filename: "Dockerfile".into(),
                data: "FROM a\nRUN b\n".into(),
                ..Default::default()
            }],
        };
        ctx.add_definition_source(&source);
        let snippets = &ctx.locations["sha256:op"];
        assert_eq!(snippets[0].ranges, vec![LineRange { start: 2, end: 2 }]);
        assert_eq!(snippets[0].text, "FROM a\nRUN b\n");
    }
}
