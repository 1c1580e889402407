//! A set of buildkitd nodes used like one connection: a builder of several
//! nodes in buildx's store is a pool. Each build goes to one node, chosen
//! in this order:
//!
//! 1. **platform**: only nodes that build every platform the build asks for
//!    (the platforms the builder's file pins on the node, else its workers');
//! 2. **cache affinity**: weighted rendezvous hashing of the build's route
//!    key (the context's identity and the target) over the node names, so the
//!    same project and target go to the node that built them last, and
//!    adding a node moves only the keys it wins (about 1/n of them);
//! 3. **load**: the affinity choice is passed over when it runs more than
//!    [`LOAD_SLACK`] builds more than the least busy candidate (running
//!    builds as the daemons report them when the pool connects; a bake's own
//!    targets are not counted, or one bake would scatter its own cache).
//!
//! A node that does not answer its health check (connect and
//! `Control.Info` within the connect deadline) is skipped; the caller
//! retries a build whose node went away before its solve started on the
//! next node of the same ranking ([`ConnectedPool::ranking`]).
//!
//! fbuild schedules nothing beyond this choice: BuildKit on each node does
//! the work. The store side (creating, appending, removing nodes as buildx
//! does) is the `store` module.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sha2::Digest as _;

use crate::build::{BuildError, BuildReport, BuildRequest, CancellationToken, Frontend, ProgressSink};
use crate::connect::{builders, ConnectError, ConnectOptions, Connection};
use crate::control::Control;
use crate::proto::moby::buildkit::v1 as api;

pub mod split;
pub(crate) mod store;

pub use store::StoreError;

/// How many more running builds than the least busy candidate the affinity
/// choice may have before the build goes elsewhere: a cache miss costs
/// less than waiting behind that many builds on a node.
pub const LOAD_SLACK: usize = 4;

/// A pool that cannot be used, or a build no node can take.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The builder store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A builder file fbuild cannot use.
    #[error(transparent)]
    Builder(#[from] builders::BuilderError),
    /// Two nodes with one name.
    #[error("builder {builder:?} has two nodes named {node:?}")]
    DuplicateNode {
        /// The builder.
        builder: String,
        /// The name.
        node: String,
    },
    /// No node answered.
    #[error("no node of builder {builder:?} answers: {}", describe_down(.down))]
    AllDown {
        /// The builder.
        builder: String,
        /// Each node and why it is down.
        down: Vec<(String, String)>,
    },
    /// Nodes of different BuildKit versions: their cache keys and
    /// frontends may differ, so a build would depend on where it lands.
    #[error(
        "builder {builder:?} mixes BuildKit versions: node {node:?} runs {version}, node {first:?} runs {expected}"
    )]
    VersionMismatch {
        /// The builder.
        builder: String,
        /// The node that differs.
        node: String,
        /// Its version.
        version: String,
        /// The first node that answered.
        first: String,
        /// That node's version.
        expected: String,
    },
    /// A platform no healthy node builds.
    #[error("no node of builder {builder:?} builds {platform}{}", down_note(.down))]
    NoPlatform {
        /// The builder.
        builder: String,
        /// The platform.
        platform: String,
        /// Nodes that are down (one of them may build it).
        down: Vec<String>,
    },
}

fn describe_down(down: &[(String, String)]) -> String {
    down.iter().map(|(node, why)| format!("{node}: {why}")).collect::<Vec<_>>().join("; ")
}

fn down_note(down: &[String]) -> String {
    if down.is_empty() {
        String::new()
    } else {
        format!(" (down: {})", down.join(", "))
    }
}

/// One node as configured.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Its name in the builder.
    pub name: String,
    /// How to reach it.
    pub options: ConnectOptions,
    /// Platforms pinned on it (`linux/amd64`); empty: what its workers build.
    pub platforms: Vec<String>,
    /// Its share of route keys relative to the others (at least 1).
    pub weight: u32,
}

/// A builder of one or more nodes, not yet connected.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The builder's name.
    pub name: String,
    /// Its nodes, in the builder's order.
    pub nodes: Vec<NodeConfig>,
    /// The registry repository every build imports cache from and exports
    /// it to (one tag per route key), if the builder names one.
    pub cache: Option<String>,
}

/// A node after its health check.
#[derive(Debug, Clone)]
pub struct Member {
    /// How it is configured.
    pub config: NodeConfig,
    /// Connected, or why not.
    pub state: NodeState,
}

/// What the health check found.
#[derive(Debug, Clone)]
pub enum NodeState {
    /// It answered.
    Up {
        /// The connection builds use.
        connection: Connection,
        /// The platforms it builds: pinned ones, else its workers'.
        platforms: Vec<String>,
        /// Builds running on it when the pool connected.
        running: usize,
    },
    /// It did not; the error's text.
    Down(String),
}

impl Member {
    /// The connection, when the node is up.
    pub fn connection(&self) -> Option<&Connection> {
        match &self.state {
            NodeState::Up { connection, .. } => Some(connection),
            NodeState::Down(_) => None,
        }
    }

    fn builds(&self, platform: &str) -> bool {
        match &self.state {
            NodeState::Up { platforms, .. } => platforms.iter().any(|p| p == platform),
            NodeState::Down(_) => false,
        }
    }

    fn running(&self) -> usize {
        match &self.state {
            NodeState::Up { running, .. } => *running,
            NodeState::Down(_) => 0,
        }
    }
}

impl Pool {
    /// A pool of these nodes; names must be unique.
    pub fn new(name: String, nodes: Vec<NodeConfig>, cache: Option<String>) -> Result<Pool, PoolError> {
        let mut seen = BTreeSet::new();
        for node in &nodes {
            if !seen.insert(node.name.as_str()) {
                return Err(PoolError::DuplicateNode { builder: name, node: node.name.clone() });
            }
        }
        Ok(Pool { name, nodes, cache })
    }

    /// Builder `name` of buildx's store at `dir`, with fbuild's weights and
    /// cache from beside it. Each node's TLS files come from its remote
    /// driver options (the `--tls*` flags do not apply to a pool's nodes).
    pub fn from_store(dir: &Path, name: &str) -> Result<Pool, PoolError> {
        let builder = builders::load(dir, name)?;
        let extras = store::read_extras(dir, &builder.name)?;
        let mut nodes = Vec::new();
        for node in &builder.nodes {
            nodes.push(NodeConfig {
                name: node.name.clone(),
                options: builder.node_connect_options(node)?,
                platforms: node.platforms.iter().map(|p| p.clone().normalize().format()).collect(),
                weight: extras.weights.get(&node.name).copied().unwrap_or(1).max(1),
            });
        }
        if nodes.is_empty() {
            return Err(builders::BuilderError::NoNodes { name: builder.name }.into());
        }
        Pool::new(builder.name, nodes, extras.cache)
    }

    /// Checks every node's health at once, each within the connect deadline.
    pub async fn connect(&self) -> ConnectedPool {
        let checks = self.nodes.iter().map(|node| async move {
            let state = match check(node).await {
                Ok(state) => state,
                Err(why) => NodeState::Down(why),
            };
            Member { config: node.clone(), state }
        });
        ConnectedPool {
            name: self.name.clone(),
            cache: self.cache.clone(),
            members: futures::future::join_all(checks).await,
        }
    }
}

/// Connects to one node and asks what it builds and runs.
async fn check(node: &NodeConfig) -> Result<NodeState, String> {
    let connection = crate::connect::connect(&node.options).await.map_err(|e: ConnectError| chain(&e))?;
    let control = Control::new(connection.channel.clone());
    let platforms = if node.platforms.is_empty() {
        let workers = control.list_workers(Vec::new()).await.map_err(|e| chain(&e))?;
        let mut platforms = Vec::new();
        for worker in &workers {
            for platform in &worker.platforms {
                let text = crate::registry::oci::Platform {
                    architecture: platform.architecture.clone(),
                    os: platform.os.clone(),
                    variant: platform.variant.clone(),
                    ..Default::default()
                }
                .normalize()
                .format();
                if !platforms.contains(&text) {
                    platforms.push(text);
                }
            }
        }
        platforms
    } else {
        node.platforms.clone()
    };
    let running = running_builds(&control).await.unwrap_or(0);
    Ok(NodeState::Up { connection, platforms, running })
}

/// Builds the daemon is running now (`ListenBuildHistory`, active only).
pub(crate) async fn running_builds(control: &Control) -> Result<usize, crate::control::ControlError> {
    use futures::StreamExt as _;
    let request = api::BuildHistoryRequest { active_only: true, early_exit: true, ..Default::default() };
    let mut stream = control.list_history(request).await?.into_inner();
    let mut refs = BTreeSet::new();
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(event)) => {
                    if let Some(record) = event.record {
                        refs.insert(record.r#ref);
                    }
                }
                Some(Err(status)) => return Err(crate::control::ControlError::new("ListenBuildHistory", status)),
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    Ok(refs.len())
}

fn chain(err: &dyn std::error::Error) -> String {
    crate::error::error_chain(err)
}

/// A pool whose nodes were checked.
#[derive(Debug, Clone)]
pub struct ConnectedPool {
    /// The builder's name.
    pub name: String,
    /// The shared registry cache, if any.
    pub cache: Option<String>,
    /// Every node, up or down, in the builder's order.
    pub members: Vec<Member>,
}

impl ConnectedPool {
    /// Fails when no node is up, or the nodes that are up run different
    /// BuildKit versions.
    pub fn usable(&self) -> Result<(), PoolError> {
        let up: Vec<(&Member, &Connection)> =
            self.members.iter().filter_map(|m| m.connection().map(|c| (m, c))).collect();
        let Some((first, first_connection)) = up.first() else {
            return Err(self.all_down());
        };
        let version = |c: &Connection| c.info.buildkit_version.as_ref().map(|v| v.version.clone()).unwrap_or_default();
        let expected = version(first_connection);
        for (member, connection) in &up[1..] {
            let found = version(connection);
            if found != expected {
                return Err(PoolError::VersionMismatch {
                    builder: self.name.clone(),
                    node: member.config.name.clone(),
                    version: found,
                    first: first.config.name.clone(),
                    expected,
                });
            }
        }
        Ok(())
    }

    fn all_down(&self) -> PoolError {
        PoolError::AllDown {
            builder: self.name.clone(),
            down: self.down().map(|(node, why)| (node.to_string(), why.to_string())).collect(),
        }
    }

    /// Nodes that are down, with why.
    pub fn down(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().filter_map(|m| match &m.state {
            NodeState::Down(why) => Some((m.config.name.as_str(), why.as_str())),
            NodeState::Up { .. } => None,
        })
    }

    /// The nodes that can take a build of `platforms` (all of them; empty:
    /// any platform), best first: by rendezvous score of `key`, the first
    /// moved behind others when it is busier than [`LOAD_SLACK`] allows.
    /// Indexes into [`ConnectedPool::members`].
    pub fn ranking(&self, key: &str, platforms: &[String]) -> Result<Vec<usize>, PoolError> {
        let mut candidates: Vec<usize> =
            (0..self.members.len()).filter(|&i| self.members[i].connection().is_some()).collect();
        for platform in platforms {
            candidates.retain(|&i| self.members[i].builds(platform));
            if candidates.is_empty() {
                return Err(PoolError::NoPlatform {
                    builder: self.name.clone(),
                    platform: platform.clone(),
                    down: self.down().map(|(n, _)| n.to_string()).collect(),
                });
            }
        }
        if candidates.is_empty() {
            // No node is up (a platform filter reports itself above).
            self.usable()?;
            return Err(self.all_down());
        }
        let score = |i: usize| rendezvous_score(key, &self.members[i].config.name, self.members[i].config.weight);
        candidates.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        let least = candidates.iter().map(|&i| self.members[i].running()).min().unwrap_or(0);
        if let Some(pos) = candidates.iter().position(|&i| self.members[i].running() <= least + LOAD_SLACK) {
            let chosen = candidates.remove(pos);
            candidates.insert(0, chosen);
        }
        Ok(candidates)
    }
}

/// A build that ran on a pool.
#[derive(Debug)]
pub struct PoolBuild {
    /// The node it ran on (the second choice after a retry).
    pub node: String,
    /// What the build returned there.
    pub report: BuildReport,
}

/// A build that failed on a pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolBuildError {
    /// No node can take it.
    #[error(transparent)]
    Route(#[from] PoolError),
    /// A split build's parts cannot be made or joined.
    #[error(transparent)]
    Split(#[from] split::SplitError),
    /// It failed on a node.
    #[error("on node {node}")]
    Build {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: BuildError,
    },
}

impl ConnectedPool {
    /// The nodes that can take `request`, best first: by its route key
    /// ([`route_key`]) and the platforms its frontend asks for.
    pub fn route(&self, request: &BuildRequest, name: &str) -> Result<Vec<usize>, PoolError> {
        self.ranking(&route_key(request, name), &requested_platforms(request))
    }

    /// Adds the pool's shared registry cache, if it has one, to `request`
    /// under `key`'s tag: imported before the solve, exported after it.
    pub fn add_shared_cache(&self, request: &mut BuildRequest, key: &str) {
        if let Some(repository) = &self.cache {
            let (import, export) = shared_cache(repository, key);
            request.cache_imports.push(import);
            request.cache_exports.push(export);
        }
    }

    /// Runs `request` on the pool as [`crate::build::build`] runs it on one
    /// connection: on the node [`ConnectedPool::route`] chooses, with the
    /// shared cache, and once more on the next node if the first went away
    /// before its solve started (a warning on `sink` says so). `name` is
    /// the build's name in the route key (a bake target's, or the
    /// Dockerfile target).
    pub async fn build(
        &self,
        mut request: BuildRequest,
        name: &str,
        sink: &mut dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<PoolBuild, PoolBuildError> {
        let ranking = self.route(&request, name)?;
        let key = route_key(&request, name);
        self.add_shared_cache(&mut request, &key);
        let mut tries = ranking.iter().take(2).map(|&i| &self.members[i]).peekable();
        loop {
            let member = tries.next().expect("a ranking has at least one node");
            let channel = &member.connection().expect("only nodes that are up are ranked").channel;
            let mut watched = Watched::new(sink);
            let result = crate::build::build(channel, request.clone(), &mut watched, cancel).await;
            let started = watched.saw_status;
            match (result, tries.peek()) {
                (Ok(report), _) => return Ok(PoolBuild { node: member.config.name.clone(), report }),
                (Err(err), Some(next)) if !started && went_away(&err) => {
                    sink.on_warning(&retry_line(&member.config.name, &next.config.name, &err));
                }
                (Err(source), _) => return Err(PoolBuildError::Build { node: member.config.name.clone(), source }),
            }
        }
    }
}

/// The line a retried build shows.
pub(crate) fn retry_line(node: &str, next: &str, err: &BuildError) -> String {
    format!(
        "node {node} went away before the solve started ({}); retrying once on node {next}",
        crate::error::error_chain(err)
    )
}

/// Whether a build failed because its daemon could not be reached, not
/// because of the build.
pub(crate) fn went_away(err: &BuildError) -> bool {
    use std::error::Error as _;
    match err {
        BuildError::DaemonLost(_) | BuildError::Session(_) => true,
        BuildError::Rejected(e) => {
            matches!(e.status().code(), tonic::Code::Unavailable | tonic::Code::Unknown)
                && e.status().source().is_some()
        }
        _ => false,
    }
}

/// Whether a build that failed with `err` is tried once more on the next
/// node: its node went away, and no status came (the solve had not started,
/// so nothing of it ran or was pushed).
pub(crate) fn retries(err: &BuildError, saw_status: bool) -> bool {
    !saw_status && went_away(err)
}

/// Passes everything on, noting whether the daemon sent any status (then
/// the solve had started, and the build is not run again elsewhere).
pub(crate) struct Watched<'a> {
    sink: &'a mut dyn ProgressSink,
    pub(crate) saw_status: bool,
    /// With [`Watched::holding`]: the end of a build that failed before any
    /// status, kept back until [`Watched::release`].
    held: Option<Option<crate::progress::BuildFailure>>,
    holding: bool,
}

impl<'a> Watched<'a> {
    pub(crate) fn new(sink: &'a mut dyn ProgressSink) -> Self {
        Watched { sink, saw_status: false, held: None, holding: false }
    }

    /// As [`Watched::new`], but a failure before any status is not passed on
    /// until [`Watched::release`]: a sink that draws one display (`fbuild
    /// solve`'s) ends it once, and a retried build must not end it first.
    pub(crate) fn holding(sink: &'a mut dyn ProgressSink) -> Self {
        Watched { holding: true, ..Watched::new(sink) }
    }

    /// Passes on the end it held back (the build is not retried).
    pub(crate) fn release(self) {
        match self.held {
            Some(Some(failure)) => self.sink.on_end(crate::progress::BuildEnd::Failed(&failure)),
            Some(None) => self.sink.on_end(crate::progress::BuildEnd::Cancelled),
            None => {}
        }
    }
}

impl ProgressSink for Watched<'_> {
    fn on_status(&mut self, status: &api::StatusResponse) {
        self.saw_status = true;
        self.sink.on_status(status);
    }

    fn on_tick(&mut self) {
        self.sink.on_tick();
    }

    fn on_warning(&mut self, message: &str) {
        self.sink.on_warning(message);
    }

    fn on_end(&mut self, end: crate::progress::BuildEnd<'_>) {
        use crate::progress::BuildEnd;
        match end {
            BuildEnd::Failed(failure) if self.holding && !self.saw_status => self.held = Some(Some(failure.clone())),
            BuildEnd::Cancelled if self.holding && !self.saw_status => self.held = Some(None),
            end => self.sink.on_end(end),
        }
    }
}

/// A build's route key: its context's identity (the folder, absolute,
/// without `.` parts, or the remote context's URL) and its name. The same
/// project and target give the same key on every run.
pub fn route_key(request: &BuildRequest, name: &str) -> String {
    let context = match request.locals.get("context") {
        Some(folder) => folder.components().collect::<std::path::PathBuf>().display().to_string(),
        None => match &request.frontend {
            Frontend::Daemon { attrs, .. } => attrs.get("context").cloned().unwrap_or_default(),
            _ => String::new(),
        },
    };
    format!("{context}\0{name}")
}

/// The platforms a request's frontend is asked to build (its `platform`
/// attribute), normalized as containerd formats them.
pub fn requested_platforms(request: &BuildRequest) -> Vec<String> {
    let Frontend::Daemon { attrs, .. } = &request.frontend else {
        return Vec::new();
    };
    let Some(list) = attrs.get("platform") else {
        return Vec::new();
    };
    list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(normalize_platform).collect()
}

fn normalize_platform(platform: &str) -> String {
    match crate::dockerfile::compile::parse_platform(platform) {
        Ok(p) => crate::registry::oci::Platform {
            architecture: p.architecture,
            os: p.os,
            variant: p.variant,
            ..Default::default()
        }
        .normalize()
        .format(),
        Err(_) => platform.to_string(),
    }
}

/// Weighted rendezvous (highest random weight) hashing: each node's score
/// for a key is `-weight / ln(u)`, `u` in (0, 1) from SHA-256 of the key and
/// the node's name. The highest score wins; a node's share of keys is its
/// weight over the total, and adding a node takes keys only to it.
pub fn rendezvous_score(key: &str, node: &str, weight: u32) -> f64 {
    let mut hasher = sha2::Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(node.as_bytes());
    let digest = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // 53 bits, as many as an f64 holds exactly; never 0 or 1.
    let bits = u64::from_be_bytes(head) >> 11;
    let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight.max(1)) / u.ln()
}

/// The tag of a route key in the shared cache repository: the same key
/// imports and exports the same cache, whichever node builds it.
pub fn cache_tag(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("fbuild-{}", &hex::encode(digest)[..16])
}

/// The registry cache import and export of `key` in the pool's shared
/// cache, as `--cache-from type=registry,ref=R:TAG` and
/// `--cache-to type=registry,ref=R:TAG,mode=max` would add them.
pub fn shared_cache(repository: &str, key: &str) -> (crate::cache::CacheEntry, crate::cache::CacheEntry) {
    let reference = format!("{repository}:{}", cache_tag(key));
    let entry = |attrs: &[(&str, &str)]| crate::cache::CacheEntry {
        kind: "registry".into(),
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    (entry(&[("ref", &reference)]), entry(&[("ref", &reference), ("mode", "max")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Ends(Vec<String>);

    impl ProgressSink for Ends {
        fn on_status(&mut self, _: &api::StatusResponse) {}
        fn on_end(&mut self, end: crate::progress::BuildEnd<'_>) {
            self.0.push(match end {
                crate::progress::BuildEnd::Failed(failure) => failure.message.clone(),
                _ => "other".into(),
            });
        }
    }

    #[test]
    fn a_held_early_failure_reaches_the_sink_only_when_released() {
        use crate::progress::{BuildEnd, BuildFailure};
        let failure = BuildFailure::new("gone");
        let mut ends = Ends::default();
        // Retried: the first attempt's end never reaches the display.
        let mut watched = Watched::holding(&mut ends);
        watched.on_end(BuildEnd::Failed(&failure));
        drop(watched);
        assert!(ends.0.is_empty());
        // Not retried: released, it does.
        let mut watched = Watched::holding(&mut ends);
        watched.on_end(BuildEnd::Failed(&failure));
        watched.release();
        assert_eq!(ends.0, ["gone"]);
        // After a status the end passes at once (such a build is never retried).
        let mut watched = Watched::holding(&mut ends);
        watched.on_status(&api::StatusResponse::default());
        watched.on_end(BuildEnd::Failed(&BuildFailure::new("failed")));
        watched.release();
        assert_eq!(ends.0, ["gone", "failed"]);
    }

    fn winner(key: &str, nodes: &[(&str, u32)]) -> String {
        nodes
            .iter()
            .max_by(|a, b| rendezvous_score(key, a.0, a.1).total_cmp(&rendezvous_score(key, b.0, b.1)))
            .unwrap()
            .0
            .to_string()
    }

    #[test]
    fn adding_a_node_moves_only_its_share() {
        let three = [("n1", 1), ("n2", 1), ("n3", 1)];
        let four = [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)];
        let keys: Vec<String> = (0..3000).map(|i| format!("/project\0target{i}")).collect();
        let mut moved = 0;
        for key in &keys {
            let before = winner(key, &three);
            let after = winner(key, &four);
            if before != after {
                assert_eq!(after, "n4", "a key moved between old nodes");
                moved += 1;
            }
        }
        // A quarter in expectation; far from it means a bad hash.
        assert!((600..900).contains(&moved), "{moved} of 3000 moved");
    }

    #[test]
    fn weights_set_shares() {
        let nodes = [("a", 1), ("b", 3)];
        let b = (0..4000).filter(|i| winner(&format!("k{i}"), &nodes) == "b").count();
        assert!((2800..3200).contains(&b), "b won {b} of 4000");
    }

    /// A pool whose nodes are "up" with these versions, platforms and
    /// running builds (channels that are never dialled).
    fn pool_of(nodes: &[(&str, &str, &[&str], usize)]) -> ConnectedPool {
        let members = nodes
            .iter()
            .map(|(name, version, platforms, running)| {
                let connection = Connection {
                    channel: tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy(),
                    address: "tcp://127.0.0.1:1".parse().unwrap(),
                    info: api::InfoResponse {
                        buildkit_version: Some(crate::proto::moby::buildkit::v1::types::BuildkitVersion {
                            version: version.to_string(),
                            ..Default::default()
                        }),
                    },
                };
                Member {
                    config: NodeConfig {
                        name: name.to_string(),
                        options: ConnectOptions::default(),
                        platforms: vec![],
                        weight: 1,
                    },
                    state: if version.is_empty() {
                        NodeState::Down("refused".into())
                    } else {
                        NodeState::Up {
                            connection,
                            platforms: platforms.iter().map(|p| p.to_string()).collect(),
                            running: *running,
                        }
                    },
                }
            })
            .collect();
        ConnectedPool { name: "p".into(), cache: None, members }
    }

    #[tokio::test]
    async fn platform_first_then_affinity_then_load() {
        let amd = &["linux/amd64"][..];
        let pool = pool_of(&[("a", "v1", amd, 0), ("b", "v1", amd, 0), ("arm", "v1", &["linux/arm64"], 0)]);
        pool.usable().unwrap();
        // Platform: only the arm64 node builds arm64.
        assert_eq!(pool.ranking("k", &["linux/arm64".into()]).unwrap(), [2]);
        let err = pool.ranking("k", &["linux/s390x".into()]).unwrap_err();
        assert_eq!(err.to_string(), r#"no node of builder "p" builds linux/s390x"#);
        // Affinity: the rendezvous winner first, for every key.
        for key in ["k1", "k2", "k3", "k4"] {
            let ranking = pool.ranking(key, &["linux/amd64".into()]).unwrap();
            assert_eq!(pool.members[ranking[0]].config.name, winner(key, &[("a", 1), ("b", 1)]));
        }
        // Load: the winner is passed over only when it runs more than
        // LOAD_SLACK builds beyond the least busy.
        let key = "k1";
        let first = winner(key, &[("a", 1), ("b", 1)]);
        let busy = |running: usize| {
            let (a, b) = if first == "a" { (running, 0) } else { (0, running) };
            pool_of(&[("a", "v1", amd, a), ("b", "v1", amd, b)])
        };
        let at_slack = busy(LOAD_SLACK);
        assert_eq!(at_slack.members[at_slack.ranking(key, &[]).unwrap()[0]].config.name, first);
        let over = busy(LOAD_SLACK + 1);
        assert_ne!(over.members[over.ranking(key, &[]).unwrap()[0]].config.name, first);
    }

    #[tokio::test]
    async fn mixed_versions_and_no_node_up_are_refused_naming_nodes() {
        let amd = &["linux/amd64"][..];
        let err = pool_of(&[("a", "v0.32.2", amd, 0), ("b", "v0.31.0", amd, 0)]).usable().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"builder "p" mixes BuildKit versions: node "b" runs v0.31.0, node "a" runs v0.32.2"#
        );
        let down = pool_of(&[("a", "", amd, 0), ("b", "", amd, 0)]);
        let err = down.ranking("k", &[]).unwrap_err();
        assert_eq!(err.to_string(), r#"no node of builder "p" answers: a: refused; b: refused"#);
        let one_down = pool_of(&[("a", "", amd, 0), ("b", "v1", amd, 0)]);
        assert_eq!(one_down.ranking("k", &[]).unwrap(), [1]);
        let err = one_down.ranking("k", &["linux/arm64".into()]).unwrap_err();
        assert_eq!(err.to_string(), r#"no node of builder "p" builds linux/arm64 (down: a)"#);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let node = |name: &str| NodeConfig {
            name: name.into(),
            options: ConnectOptions::default(),
            platforms: vec![],
            weight: 1,
        };
        let err = Pool::new("p".into(), vec![node("a"), node("a")], None).unwrap_err();
        assert_eq!(err.to_string(), r#"builder "p" has two nodes named "a""#);
    }

    #[test]
    fn the_shared_cache_tag_follows_the_key() {
        let (import, export) = shared_cache("127.0.0.1:5000/cache", "/p\0app");
        assert_eq!(import.attrs["ref"], export.attrs["ref"]);
        assert!(import.attrs["ref"].starts_with("127.0.0.1:5000/cache:fbuild-"));
        assert_eq!(export.attrs["mode"], "max");
        assert_ne!(cache_tag("/p\0app"), cache_tag("/p\0api"));
    }
}
