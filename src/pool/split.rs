//! A multi-platform build that no single node can take, split per platform
//! across the nodes that build each one natively and joined into one index,
//! as buildx does with a builder of several nodes (`build/build.go`): each
//! part pushes its image by digest (`push-by-digest=true`, the repository
//! without tag), then an index of the parts' manifests is pushed to every
//! tag (buildx's `imagetools.Combine` and `Push`; here
//! [`crate::imagetools::create`], which writes the index with Go's bytes).

use std::sync::Mutex;

use super::{route_key, ConnectedPool, PoolBuild, PoolBuildError, PoolError};
use crate::build::{BuildRequest, CancellationToken, Frontend, ProgressSink};
use crate::output::ExporterType;
use crate::progress::BuildEnd;
use crate::proto::moby::buildkit::v1::StatusResponse;

/// One platform of a split build and the node (index into
/// [`ConnectedPool::members`]) that builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The node.
    pub member: usize,
}

impl ConnectedPool {
    /// How to split `request` over the nodes when it asks for several
    /// platforms and no node builds them all: one part per platform, each on
    /// the node its ranking prefers. `Ok(None)` when one node can take the
    /// whole build (or it asks for one platform); the platform no node builds
    /// is the error.
    pub fn split(&self, request: &BuildRequest, name: &str) -> Result<Option<Vec<Part>>, PoolError> {
        let platforms = super::requested_platforms(request);
        let whole = self.route(request, name);
        if platforms.len() < 2 || whole.is_ok() {
            return whole.map(|_| None);
        }
        let key = route_key(request, name);
        let mut parts = Vec::new();
        for platform in &platforms {
            let ranking = self.ranking(&key, std::slice::from_ref(platform))?;
            parts.push(Part { platform: platform.clone(), member: ranking[0] });
        }
        Ok(Some(parts))
    }
}

/// Why a split build cannot be made or joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// Parts built on several nodes meet only in a registry.
    #[error(
        "its platforms {platforms} are built on different nodes, so its image must be pushed to be joined \
         (an image output with a name and push=true, or --push)"
    )]
    NotPushed {
        /// The platforms, comma-separated.
        platforms: String,
    },
    /// A part's response has no image digest.
    #[error("the {platform} part on node {node} returned no image digest")]
    NoDigest {
        /// The part's platform.
        platform: String,
        /// Its node.
        node: String,
    },
    /// The index could not be made or pushed.
    #[error("cannot join the platforms into one index")]
    Join(#[source] crate::imagetools::ImagetoolsError),
    /// The docker config (registry credentials for the index) is unreadable.
    #[error("cannot read the docker config for the registry credentials to push the index")]
    Credentials(#[source] crate::services::auth::AuthError),
}

/// The image names (`name=a,b`) a request pushes, when it pushes exactly
/// one image output; `None` otherwise.
pub fn pushed_names(request: &BuildRequest) -> Option<Vec<String>> {
    let pushing: Vec<_> =
        request.exports.iter().filter(|e| matches!(e.exporter, ExporterType::Image) && e.pushes()).collect();
    match pushing.as_slice() {
        [export] => {
            let names: Vec<String> = export
                .attrs
                .get("name")?
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            (!names.is_empty()).then_some(names)
        }
        _ => None,
    }
}

/// The request of one part: the one platform, and the image pushed by
/// digest to the repositories of its names (no tags: the index gets them).
pub fn part_request(request: &BuildRequest, platform: &str) -> Result<BuildRequest, SplitError> {
    let mut part = request.clone();
    if let Frontend::Daemon { attrs, .. } = &mut part.frontend {
        attrs.insert("platform".into(), platform.to_string());
    }
    let not_pushed = || SplitError::NotPushed { platforms: super::requested_platforms(request).join(", ") };
    let names = pushed_names(request).ok_or_else(not_pushed)?;
    let mut repositories = Vec::new();
    for name in &names {
        let repository = crate::llb::parse_reference(name).map_err(|_| not_pushed())?.name();
        if !repositories.contains(&repository) {
            repositories.push(repository);
        }
    }
    for export in &mut part.exports {
        if matches!(export.exporter, ExporterType::Image) && export.pushes() {
            export.attrs.insert("name".into(), repositories.join(","));
            export.attrs.insert("push-by-digest".into(), "true".into());
        }
    }
    Ok(part)
}

/// Pushes one index of the parts' images (`digests`, in platform order) to
/// every name of the original request; its digest.
pub async fn join(
    names: &[String],
    digests: &[String],
    registry: crate::services::auth::DockerConfig,
    log: &mut dyn FnMut(String),
) -> Result<String, SplitError> {
    let Some(first) = names.first() else {
        return Err(SplitError::NotPushed { platforms: String::new() });
    };
    let repository = crate::llb::parse_reference(first).map(|r| r.name()).unwrap_or_else(|_| first.clone());
    let request = crate::imagetools::CreateRequest {
        sources: digests.iter().map(|d| format!("{repository}@{d}")).collect(),
        tags: names.to_vec(),
        prefer_index: true,
        ..Default::default()
    };
    let created = crate::imagetools::create(registry, &request, log).await.map_err(SplitError::Join)?;
    Ok(created.digest)
}

impl ConnectedPool {
    /// Runs a split build ([`ConnectedPool::split`]'s `parts`): each part on
    /// its node at once, with the pool's shared cache, its steps on `sink`
    /// labelled `[NODE PLATFORM]`, then one index of the parts' images
    /// pushed under the request's names. The report is the first part's,
    /// with the index's digest and every part's step counts; the node is
    /// the parts' nodes joined by `+`. A part is not retried elsewhere: the
    /// node was chosen for its platform.
    pub async fn build_split(
        &self,
        request: &BuildRequest,
        name: &str,
        parts: &[Part],
        sink: &mut dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<PoolBuild, PoolBuildError> {
        let key = route_key(request, name);
        let names = pushed_names(request);
        let mut requests = Vec::new();
        for part in parts {
            let mut part_request = part_request(request, &part.platform)?;
            self.add_shared_cache(&mut part_request, &key);
            requests.push(part_request);
        }
        let node_of = |part: &Part| self.members[part.member].config.name.clone();
        let all = parts.iter().map(node_of).collect::<Vec<_>>().join("+");
        let shared = Mutex::new(SharedEnd { sink, running: parts.len(), ended: false });
        let builds = parts.iter().zip(requests).map(|(part, request)| {
            let mut part_sink = PartSink { prefix: format!("[{} {}] ", node_of(part), part.platform), shared: &shared };
            let channel = &self.members[part.member].connection().expect("only nodes that are up are ranked").channel;
            async move { crate::build::build(channel, request, &mut part_sink, cancel).await }
        });
        let results = futures::future::join_all(builds).await;
        let mut reports = Vec::new();
        for (result, part) in results.into_iter().zip(parts) {
            match result {
                Ok(report) => reports.push(report),
                Err(source) => return Err(PoolBuildError::Build { node: node_of(part), source }),
            }
        }
        let mut digests = Vec::new();
        for (part, report) in parts.iter().zip(&reports) {
            match report.exporter_response.get("containerimage.digest") {
                Some(digest) => digests.push(digest.clone()),
                None => {
                    return Err(SplitError::NoDigest { platform: part.platform.clone(), node: node_of(part) }.into())
                }
            }
        }
        let names = names.unwrap_or_default();
        let registry = crate::services::auth::DockerConfig::load().map_err(SplitError::Credentials)?;
        let digest = join(&names, &digests, registry, &mut |_| {}).await?;
        let mut report = reports.swap_remove(0);
        for other in &reports {
            report.summary.steps += other.summary.steps;
            report.summary.cached += other.summary.cached;
            report.transfer.files += other.transfer.files;
            report.transfer.bytes += other.transfer.bytes;
        }
        report.exporter_response.insert("containerimage.digest".into(), digest);
        report.exporter_response.insert("image.name".into(), names.join(","));
        report.exporter_response.remove("containerimage.descriptor");
        report.exporter_response.remove("containerimage.config.digest");
        Ok(PoolBuild { node: all, report })
    }
}

/// The one sink the parts of a split build share, and how many still run:
/// it ends once, at the first failure or when the last part succeeded.
struct SharedEnd<'s> {
    sink: &'s mut dyn ProgressSink,
    running: usize,
    ended: bool,
}

/// One part's view of the shared sink: its steps labelled with its node and platform.
struct PartSink<'m, 's> {
    prefix: String,
    shared: &'m Mutex<SharedEnd<'s>>,
}

impl PartSink<'_, '_> {
    fn with(&self, f: impl FnOnce(&mut SharedEnd<'_>)) {
        // A panic in another part while drawing must not silence this one.
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut shared);
    }
}

impl ProgressSink for PartSink<'_, '_> {
    fn on_status(&mut self, status: &StatusResponse) {
        let mut status = status.clone();
        for vertex in &mut status.vertexes {
            if !vertex.name.starts_with(&self.prefix) {
                vertex.name.insert_str(0, &self.prefix);
            }
        }
        self.with(|shared| shared.sink.on_status(&status));
    }

    fn on_tick(&mut self) {
        self.with(|shared| shared.sink.on_tick());
    }

    fn on_warning(&mut self, message: &str) {
        let message = format!("{}{message}", self.prefix);
        self.with(|shared| shared.sink.on_warning(&message));
    }

    fn on_end(&mut self, end: BuildEnd<'_>) {
        self.with(|shared| {
            if shared.ended {
                return;
            }
            match end {
                BuildEnd::Succeeded => {
                    shared.running = shared.running.saturating_sub(1);
                    if shared.running == 0 {
                        shared.ended = true;
                        shared.sink.on_end(BuildEnd::Succeeded);
                    }
                }
                end => {
                    shared.ended = true;
                    shared.sink.on_end(end);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::BuildFailure;

    #[derive(Default)]
    struct Ends(Vec<String>);

    impl ProgressSink for Ends {
        fn on_status(&mut self, _: &StatusResponse) {}
        fn on_end(&mut self, end: BuildEnd<'_>) {
            self.0.push(match end {
                BuildEnd::Succeeded => "ok".into(),
                BuildEnd::Failed(failure) => failure.message.clone(),
                BuildEnd::Cancelled => "cancelled".into(),
            });
        }
    }

    #[test]
    fn the_shared_display_ends_once_at_the_first_failure_or_the_last_success() {
        let mut ends = Ends::default();
        {
            let shared = Mutex::new(SharedEnd { sink: &mut ends, running: 2, ended: false });
            let mut a = PartSink { prefix: "[a] ".into(), shared: &shared };
            let mut b = PartSink { prefix: "[b] ".into(), shared: &shared };
            a.on_end(BuildEnd::Succeeded);
            b.on_end(BuildEnd::Succeeded);
        }
        assert_eq!(ends.0, ["ok"]);
        let mut ends = Ends::default();
        {
            let shared = Mutex::new(SharedEnd { sink: &mut ends, running: 2, ended: false });
            let mut a = PartSink { prefix: "[a] ".into(), shared: &shared };
            let mut b = PartSink { prefix: "[b] ".into(), shared: &shared };
            a.on_end(BuildEnd::Failed(&BuildFailure::new("boom")));
            b.on_end(BuildEnd::Succeeded);
        }
        assert_eq!(ends.0, ["boom"]);
    }
}
