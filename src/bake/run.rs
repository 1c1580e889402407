//! Running the planned targets together, on one connection or spread over
//! the nodes of a pool ([`Placement`], made by [`super::pool`]). Every target's
//! build is a future; all of them run concurrently on the caller's task. A
//! target another one uses as a context (`target:NAME`) hands its result's
//! graph over as a frontend input ([`super::link`]), as buildx does; its
//! dependents wait for that result, and it waits for them to finish. As in
//! buildx, a failed target cancels the others (fail-fast); with
//! [`Execution::DeferError`] it fails only the targets that need it and the
//! others finish. Folders are served by sessions shared across the targets
//! ([`FolderSessions`], one set per node), so a context folder several
//! targets on a node use is uploaded to it once. On a pool, a target whose
//! node went away before its solve started (nothing came back from it) is
//! retried once on the next node of its ranking, with a warning saying so.

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
    #[error(transparent)]
    Split(#[from] crate::pool::split::SplitError),
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
    /// The pool node it built on last (`None` on a plain connection).
    pub(crate) node: Option<String>,
    pub(crate) result: Result<BuildReport, TargetError>,
}

/// Where the targets build: every target on one connection, or each on a
/// node of a pool ([`crate::pool`]), with the nodes to try in order.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    nodes: Vec<PlacedNode>,
    /// Per target, indexes into `nodes`: where it builds first, then where it
    /// is retried once if that node goes away before the solve starts.
    targets: BTreeMap<String, Vec<usize>>,
    /// Targets built per platform on several nodes and joined into one
    /// index: each platform and its node.
    splits: BTreeMap<String, Vec<(String, usize)>>,
}

/// One daemon of a placement.
#[derive(Debug, Clone)]
pub(crate) struct PlacedNode {
    /// The node's name in its pool; `None` for a plain connection.
    pub(crate) name: Option<String>,
    pub(crate) channel: tonic::transport::Channel,
}

impl Placement {
    /// Every target on one connection.
    pub(crate) fn single(channel: tonic::transport::Channel) -> Placement {
        Placement { nodes: vec![PlacedNode { name: None, channel }], targets: BTreeMap::new(), splits: BTreeMap::new() }
    }

    /// Targets on the nodes given: `targets[name]` lists indexes into `nodes`,
    /// best first (at least one each).
    pub(crate) fn spread(
        nodes: Vec<PlacedNode>,
        targets: BTreeMap<String, Vec<usize>>,
        splits: BTreeMap<String, Vec<(String, usize)>>,
    ) -> Placement {
        Placement { nodes, targets, splits }
    }

    fn ranking(&self, target: &str) -> &[usize] {
        self.targets.get(target).map(Vec::as_slice).filter(|r| !r.is_empty()).unwrap_or(&[0])
    }

    /// A target's label in the progress display: `NAME on NODE` on a pool.
    fn label(&self, target: &str, node: usize) -> String {
        match &self.nodes[node].name {
            Some(node) => format!("{target} on {node}"),
            None => target.to_string(),
        }
    }
}

/// Builds every plan (given in build order: a context target first), each
/// with the sink `sink_for(label)` makes (the label is the target's name, and
/// on a pool `NAME on NODE`). Returns one outcome per plan, in
/// the same order.
pub(crate) async fn run_all(
    placement: &Placement,
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
    // (A session lives on one daemon, so each node has its own.)
    let folders: Vec<FolderSessions> = placement.nodes.iter().map(|_| FolderSessions::new()).collect();
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
        async move {
            let _finished = finished.drop_guard();
            let (node, result) = match placement.splits.get(&plan.name) {
                // Its parts have sinks of their own.
                Some(parts) => build_split(placement, parts, folders, plan, sink_for, stop).await,
                None => {
                    let ranking = placement.ranking(&plan.name);
                    let mut sink = sink_for(&placement.label(&plan.name, ranking[0]));
                    let nodes: Vec<(&PlacedNode, &FolderSessions)> =
                        ranking.iter().map(|&i| (&placement.nodes[i], &folders[i])).collect();
                    build_target(&nodes, plan, inputs, publisher.clone(), dependents, &mut *sink, stop).await
                }
            };
            if let Some(publisher) = &publisher {
                link::mark_failed(publisher);
            }
            let failed = matches!(&result, Err(e) if !matches!(e, TargetError::Build(BuildError::Cancelled)));
            if failed && execution == Execution::FailFast {
                stop.cancel();
            }
            (node, result)
        }
    });
    let results = futures::future::join_all(builds).await;
    for folders in folders {
        folders.close().await;
    }
    Ok(names.into_iter().zip(results).map(|(name, (node, result))| Outcome { name, node, result }).collect())
}

/// One target's build, once the targets it uses have their results, and
/// the node it ran on last.
async fn build_target(
    nodes: &[(&PlacedNode, &FolderSessions)],
    plan: TargetPlan,
    inputs: Vec<(String, String, Publisher)>,
    publisher: Option<Publisher>,
    dependents: Vec<CancellationToken>,
    sink: &mut dyn ProgressSink,
    stop: &CancellationToken,
) -> (Option<String>, Result<BuildReport, TargetError>) {
    let linked = publisher.is_some() || !inputs.is_empty();
    let first = nodes[0].0.name.clone();
    let (node, result) = build_on(nodes, plan, inputs, publisher, dependents, sink, stop, linked).await;
    (node.or(first), result)
}

/// [`build_target`]'s work; the node is `Some` only after a retry.
#[allow(clippy::too_many_arguments)]
async fn build_on(
    nodes: &[(&PlacedNode, &FolderSessions)],
    plan: TargetPlan,
    inputs: Vec<(String, String, Publisher)>,
    publisher: Option<Publisher>,
    dependents: Vec<CancellationToken>,
    sink: &mut dyn ProgressSink,
    stop: &CancellationToken,
    linked: bool,
) -> (Option<String>, Result<BuildReport, TargetError>) {
    // The whole plan lives until the build is done: it also holds the
    // folder of a `dockerfile-inline` Dockerfile.
    let mut plan = plan;
    let mut contexts = Vec::new();
    for (context, target, parent) in inputs {
        match link::wait_for(&parent).await {
            Some(linked) => contexts.push((context, target, linked)),
            None => return (None, Err(TargetError::DependencyFailed(target))),
        }
    }
    if publisher.is_some() || !contexts.is_empty() {
        let Frontend::Daemon { name, attrs } = &plan.request.frontend else {
            // A subrequest (`call`) runs its own frontend; planning refuses
            // it on linked targets, so this is only a guard.
            return (None, Err(TargetError::NotLinkable));
        };
        let frontend = LinkedFrontend::new(name.clone(), attrs.clone(), contexts, publisher, dependents);
        plan.request.frontend = Frontend::Client(Arc::new(frontend));
    }
    let (first, first_folders) = nodes[0];
    let mut watched = crate::pool::Watched::new(sink);
    let result =
        crate::build::build_sharing_folders(&first.channel, plan.request.clone(), &mut watched, stop, first_folders)
            .await;
    let retry = match (&result, nodes.get(1)) {
        // A linked target's frontend hands its result to others once; it is
        // not run twice.
        (Err(err), Some(next)) if !linked && !watched.saw_status && crate::pool::went_away(err) => Some(*next),
        _ => None,
    };
    let Some((next, next_folders)) = retry else {
        return (None, result.map_err(TargetError::from));
    };
    if let Err(err) = &result {
        sink.on_warning(&crate::pool::retry_line(
            first.name.as_deref().unwrap_or_default(),
            next.name.as_deref().unwrap_or_default(),
            err,
        ));
    }
    let result =
        crate::build::build_sharing_folders(&next.channel, plan.request.clone(), sink, stop, next_folders).await;
    (next.name.clone(), result.map_err(TargetError::from))
}

/// A target split per platform over several nodes: the parts build at once,
/// each pushing its image by digest, then one index joins them under the
/// target's names ([`crate::pool::split`]). Returns the nodes, joined by `+`.
async fn build_split(
    placement: &Placement,
    parts: &[(String, usize)],
    folders: &[FolderSessions],
    plan: TargetPlan,
    sink_for: &dyn Fn(&str) -> Box<dyn ProgressSink>,
    stop: &CancellationToken,
) -> (Option<String>, Result<BuildReport, TargetError>) {
    use crate::pool::split;
    let node_names: Vec<String> =
        parts.iter().map(|(_, node)| placement.nodes[*node].name.clone().unwrap_or_default()).collect();
    let all = Some(node_names.join("+"));
    let names = split::pushed_names(&plan.request);
    let mut requests = Vec::new();
    for (platform, _) in parts {
        match split::part_request(&plan.request, platform) {
            Ok(request) => requests.push(request),
            Err(err) => return (all, Err(err.into())),
        }
    }
    let builds = parts.iter().zip(requests).map(|((platform, node), request)| {
        let mut sink = sink_for(&format!("{} {platform}", placement.label(&plan.name, *node)));
        async move {
            crate::build::build_sharing_folders(
                &placement.nodes[*node].channel,
                request,
                &mut *sink,
                stop,
                &folders[*node],
            )
            .await
        }
    });
    let results = futures::future::join_all(builds).await;
    let mut reports = Vec::new();
    for (result, name) in results.into_iter().zip(&node_names) {
        match result {
            Ok(report) => reports.push(report),
            Err(err) => return (Some(name.clone()), Err(err.into())),
        }
    }
    let mut digests = Vec::new();
    for ((platform, _), (report, node)) in parts.iter().zip(reports.iter().zip(&node_names)) {
        match report.exporter_response.get("containerimage.digest") {
            Some(digest) => digests.push(digest.clone()),
            None => {
                let err = split::SplitError::NoDigest { platform: platform.clone(), node: node.clone() };
                return (all, Err(err.into()));
            }
        }
    }
    let names = names.unwrap_or_default();
    let registry = match crate::services::auth::DockerConfig::load() {
        Ok(config) => config,
        Err(err) => return (all, Err(split::SplitError::Credentials(err).into())),
    };
    let digest = match split::join(&names, &digests, registry, &mut |_| {}).await {
        Ok(digest) => digest,
        Err(err) => return (all, Err(err.into())),
    };
    let mut report = reports.swap_remove(0);
    for other in &reports {
        report.summary.steps += other.summary.steps;
        report.summary.cached += other.summary.cached;
    }
    report.exporter_response.insert("containerimage.digest".into(), digest);
    report.exporter_response.insert("image.name".into(), names.join(","));
    report.exporter_response.remove("containerimage.descriptor");
    report.exporter_response.remove("containerimage.config.digest");
    (all, Ok(report))
}
