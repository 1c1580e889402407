//! Running the planned targets together on one connection. Every target's
//! build is a future; all of them run concurrently on the caller's task. A
//! target another one uses as a context (`target:NAME`) hands its result's
//! graph over as a frontend input ([`super::link`]), as buildx does; its
//! dependents wait for that result, and it waits for them to finish. As in
//! buildx, a failed target cancels the others (fail-fast); with
//! [`Execution::DeferError`] it fails only the targets that need it and the
//! others finish. Folders are served by sessions shared across the targets
//! ([`FolderSessions`]), so a context folder several targets use is
//! uploaded once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::link::{self, LinkedFrontend, Publication, Publisher};
use super::plan::TargetPlan;
use crate::build::{BuildError, BuildReport, FolderSessions, Frontend};
use crate::progress::ProgressSink;

/// Why a target did not build.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("not built: it uses target {0:?} as a context, and that target failed")]
    DependencyFailed(String),
    #[error("a target linked by `target:` contexts must build with the Dockerfile frontend")]
    NotLinkable,
}

/// buildx's `--jobs` modes: what a failed target does to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Execution {
    /// The first failure cancels every other target (buildx's default).
    #[default]
    FailFast,
    /// Every target runs to its end; failures are reported together.
    DeferError,
}

/// How one target ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) name: String,
    pub(crate) result: Result<BuildReport, TargetError>,
}

/// Builds every plan (given in build order: a context target first), each
/// with the sink `sink_for(name)` makes. Returns one outcome per plan, in
/// the same order.
pub(crate) async fn run_all(
    channel: &tonic::transport::Channel,
    plans: Vec<TargetPlan>,
    sink_for: &dyn Fn(&str) -> Box<dyn ProgressSink>,
    cancel: &CancellationToken,
    execution: Execution,
) -> Result<Vec<Outcome>, std::io::Error> {
    // Cancelled by the caller, or by the first failure in fail-fast mode;
    // the caller's token stays as it was, so it still tells an interrupt.
    let stop = cancel.child_token();
    let stop = &stop;
    let used: BTreeSet<&str> = plans.iter().flat_map(|p| p.links.iter().map(|(_, t)| t.as_str())).collect();
    let publishers: BTreeMap<String, Publisher> = used
        .iter()
        .map(|name| (name.to_string(), Arc::new(tokio::sync::watch::channel(Publication::Pending).0)))
        .collect();
    // Cancelled when a target's build has ended, however it ended.
    let finished: BTreeMap<String, CancellationToken> =
        plans.iter().map(|p| (p.name.clone(), CancellationToken::new())).collect();
    let mut dependents: BTreeMap<String, Vec<CancellationToken>> = BTreeMap::new();
    for plan in &plans {
        for (_, target) in &plan.links {
            dependents.entry(target.clone()).or_default().push(finished[&plan.name].clone());
        }
    }
    // One session per folder for the whole bake: targets sharing a context
    // folder upload it once.
    let folders = FolderSessions::new();
    let folders = &folders;
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    let builds = plans.into_iter().map(|plan| {
        let publisher = publishers.get(&plan.name).cloned();
        let inputs: Vec<(String, String, Publisher)> = plan
            .links
            .iter()
            .map(|(context, target)| (context.clone(), target.clone(), publishers[target].clone()))
            .collect();
        let finished = finished[&plan.name].clone();
        let dependents = dependents.remove(&plan.name).unwrap_or_default();
        let mut sink = sink_for(&plan.name);
        async move {
            let _finished = finished.drop_guard();
            let result = build_target(channel, plan, inputs, publisher.clone(), dependents, &mut *sink, stop, folders);
            let result = result.await;
            if let Some(publisher) = &publisher {
                link::mark_failed(publisher);
            }
            let failed = matches!(&result, Err(e) if !matches!(e, TargetError::Build(BuildError::Cancelled)));
            if failed && execution == Execution::FailFast {
                stop.cancel();
            }
            result
        }
    });
    let results = futures::future::join_all(builds).await;
    folders.close().await;
    Ok(names.into_iter().zip(results).map(|(name, result)| Outcome { name, result }).collect())
}

/// One target's build, once the targets it uses have their results.
#[allow(clippy::too_many_arguments)]
async fn build_target(
    channel: &tonic::transport::Channel,
    plan: TargetPlan,
    inputs: Vec<(String, String, Publisher)>,
    publisher: Option<Publisher>,
    dependents: Vec<CancellationToken>,
    sink: &mut dyn ProgressSink,
    stop: &CancellationToken,
    folders: &FolderSessions,
) -> Result<BuildReport, TargetError> {
    // The whole plan lives until the build is done: it also holds the
    // folder of a `dockerfile-inline` Dockerfile.
    let mut plan = plan;
    let mut contexts = Vec::new();
    for (context, target, parent) in inputs {
        match link::wait_for(&parent).await {
            Some(linked) => contexts.push((context, target, linked)),
            None => return Err(TargetError::DependencyFailed(target)),
        }
    }
    if publisher.is_some() || !contexts.is_empty() {
        let Frontend::Daemon { name, attrs } = &plan.request.frontend else {
            // A subrequest (`call`) runs its own frontend; planning refuses
            // it on linked targets, so this is only a guard.
            return Err(TargetError::NotLinkable);
        };
        let frontend = LinkedFrontend::new(name.clone(), attrs.clone(), contexts, publisher, dependents);
        plan.request.frontend = Frontend::Client(Arc::new(frontend));
    }
    let request = plan.request.clone();
    Ok(crate::build::build_sharing_folders(channel, request, sink, stop, folders).await?)
}
