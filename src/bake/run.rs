//! Running the planned targets together on one connection. Every target's
//! build is a future; all of them run concurrently on the caller's task, a
//! target waiting only for the targets it uses as contexts. Such a target
//! is also exported to an OCI layout folder in a temporary directory, and
//! its dependents get it as the named context `oci-layout://ID@DIGEST`
//! served from that folder: the simplest way to hand one build's result to
//! another without a registry or the daemon's image store. As in buildx,
//! a failed target cancels the others (fail-fast); with
//! [`Execution::DeferError`] it fails only the targets that need it and the
//! others finish. Folders are
//! served by sessions shared across the targets ([`FolderSessions`]), so a
//! context folder several targets use is uploaded once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};

use super::plan::TargetPlan;
use crate::build::{BuildError, BuildReport, CancellationToken, FolderSessions};
use crate::cache::layout::OciLayout;
use crate::progress::ProgressSink;

/// Why a target did not build.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("not built: it uses target {0:?} as a context, and that target failed")]
    DependencyFailed(String),
    #[error("cannot prepare the image of target {target:?} for its dependents in {dir:?}: {reason}")]
    Link { target: String, dir: PathBuf, reason: String },
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

/// A built image other targets use: the layout folder and the digest in it.
#[derive(Debug, Clone)]
struct LinkedImage {
    dir: PathBuf,
    digest: String,
}

type Done = Arc<(Result<BuildReport, TargetError>, Option<LinkedImage>)>;

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
    let linked: Vec<String> = plans.iter().flat_map(|p| p.links.iter().map(|(_, t)| t.clone())).collect();
    // Removed when the bake ends, built images and all.
    let scratch = tempfile::Builder::new().prefix("fbuild-bake-").tempdir()?;
    // One session per folder for the whole bake: targets sharing a context
    // folder upload it once.
    let folders = FolderSessions::new();
    let folders = &folders;
    let mut started: BTreeMap<String, Shared<BoxFuture<'_, Done>>> = BTreeMap::new();
    let mut order = Vec::new();
    for (index, mut plan) in plans.into_iter().enumerate() {
        let name = plan.name.clone();
        // Numbered, not named after the target: a target may be called
        // `/abs/path` or `../../x`, which must not lead outside the folder.
        let layout_dir = linked.contains(&name).then(|| scratch.path().join(format!("target-{index}")));
        if let Some(dir) = &layout_dir {
            let spec = format!("type=oci,dest={},tar=false", dir.display());
            let export = crate::output::parse_output(&spec).map_err(std::io::Error::other)?;
            plan.request.exports.push(export);
        }
        let deps: Vec<(String, String, usize, Shared<BoxFuture<'_, Done>>)> = plan
            .links
            .iter()
            .map(|(context, target)| {
                let future = started.get(target).cloned().expect("context targets are planned first");
                let position = order.iter().position(|n| n == target).expect("context targets are planned first");
                (context.clone(), target.clone(), position, future)
            })
            .collect();
        let mut sink = sink_for(&name);
        let future = async move {
            // The whole plan, not only the fields used below: it also holds
            // the folder of a `dockerfile-inline` Dockerfile, which must
            // live until the build is done.
            let mut plan = plan;
            for (context, target, position, dep) in deps {
                let done = dep.await;
                match &done.1 {
                    Some(image) => {
                        // By position: a target's name may hold `/` or `@`,
                        // which do not belong in an `oci-layout://` reference.
                        let id = format!("fbuild-bake-target-{position}");
                        plan.request = plan
                            .request
                            .attr(format!("context:{context}"), format!("oci-layout://{id}@{}", image.digest));
                        plan.request.oci_layouts.insert(id, image.dir.clone());
                    }
                    None => {
                        let done: Done = Arc::new((Err(TargetError::DependencyFailed(target)), None));
                        return done;
                    }
                }
            }
            let result = crate::build::build_sharing_folders(channel, plan.request, &mut *sink, stop, folders).await;
            let result = result.map_err(TargetError::from);
            let failed = matches!(&result, Err(e) if !matches!(e, TargetError::Build(BuildError::Cancelled)));
            if failed && execution == Execution::FailFast {
                stop.cancel();
            }
            let image = match (&result, layout_dir) {
                (Ok(_), Some(dir)) => match image_in(&dir) {
                    Ok(digest) => Some(LinkedImage { dir, digest }),
                    Err(reason) => {
                        return Arc::new((Err(TargetError::Link { target: plan.name, dir, reason }), None));
                    }
                },
                _ => None,
            };
            Arc::new((result, image))
        }
        .boxed()
        .shared();
        started.insert(name.clone(), future);
        order.push(name);
    }
    let all: Vec<_> = order.iter().map(|name| started[name].clone()).collect();
    let results = futures::future::join_all(all).await;
    drop(started);
    folders.close().await;
    Ok(order
        .into_iter()
        .zip(results)
        .map(|(name, done)| {
            let result = match Arc::try_unwrap(done) {
                Ok((result, _)) => result,
                // Still shared: cannot happen once every future is done and dropped.
                Err(shared) => match &shared.0 {
                    Ok(report) => Ok(report.clone()),
                    Err(e) => {
                        Err(TargetError::Link { target: name.clone(), dir: PathBuf::new(), reason: e.to_string() })
                    }
                },
            };
            Outcome { name, result }
        })
        .collect())
}

/// The digest of the image the OCI exporter wrote into `dir`.
fn image_in(dir: &std::path::Path) -> Result<String, String> {
    let layout = OciLayout::open_existing(dir).map_err(|e| e.to_string())?.ok_or("the folder holds no image")?;
    let index = layout.index().map_err(|e| e.to_string())?;
    let descriptor = index.manifests().first().ok_or("index.json lists no image")?;
    Ok(descriptor.digest().to_string())
}
