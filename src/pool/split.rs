//! A multi-platform build that no single node can take, split per platform
//! across the nodes that build each one natively and joined into one index,
//! as buildx does with a builder of several nodes (`build/build.go`): each
//! part pushes its image by digest (`push-by-digest=true`, the repository
//! without tag), then an index of the parts' manifests is pushed to every
//! tag (buildx's `imagetools.Combine` and `Push`; here
//! [`crate::imagetools::create`], which writes the index with Go's bytes).

use super::{route_key, ConnectedPool, PoolError};
use crate::build::{BuildRequest, Frontend};
use crate::output::ExporterType;

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
