//! The native compiler: a Dockerfile to an LLB graph and an image config,
//! the way BuildKit v0.32.2's `dockerfile2llb` does it, so that a graph from
//! here and one from the daemon's frontend have the same cache keys and give
//! the same image.
//!
//! The work happens in three steps, as in Go: link the stages (bases,
//! `COPY --from`, `RUN --mount=from=`) and pick the ones the target needs;
//! resolve the base images those stages start from (concurrently, through an
//! [`ImageResolver`], which is the gateway's `ResolveImageConfig` in a build);
//! then dispatch each needed stage's commands in Dockerfile order onto an
//! [`llb::State`] and an [`Image`]. The build context is a `local` source
//! whose `followpaths` list what the stages read from it, which is only known
//! after every stage is dispatched: stages read an [`llb::Deferred`] state
//! that is set to the source afterwards (Go's `mutableOutput`).
//!
//! What the compiler does not do yet ends in [`CompileError::Unsupported`]
//! with the line, so a caller can hand the Dockerfile to the daemon's
//! frontend instead (`--frontend auto`).

mod dispatch;
mod git_ref;
pub(crate) use git_ref::check_sources;
pub mod image;
pub(crate) mod mounts;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::dockerfile::instructions::{self, CommandKind, Stages};
use crate::dockerfile::shell::{Env, Lexer};
use crate::dockerfile::{parse, ParseError};
use crate::llb::{self, MarshalError, MarshalOptions};
use crate::proto::pb;

pub use image::Image;

/// What a compile needs besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// The stage to build; default: the last.
    pub target: Option<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--label`s, set on the result image.
    pub labels: BTreeMap<String, String>,
    /// `--platform` (one); default: the daemon's first platform, or the
    /// base image's when it is another platform the daemon builds.
    pub target_platform: Option<pb::Platform>,
    /// The platforms the daemon builds for, first the native one (from the
    /// gateway's worker records); default: this machine's.
    pub build_platforms: Vec<pb::Platform>,
    /// The session that serves the build context.
    pub session_id: String,
    /// The context's `.dockerignore` patterns.
    pub excludes: Vec<String>,
    /// The Dockerfile's name, for source maps and messages.
    pub filename: String,
    /// One of several platforms of a build: step names start with the
    /// platform (`[linux/arm64 deps 1/2]`), as the daemon's frontend shows them.
    pub multi_platform: bool,
    /// `--add-host`s for RUN steps (host, address).
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `--shm-size` of RUN steps in bytes; 0 keeps the daemon's.
    pub shm_size: i64,
    /// `--ulimit`s of RUN steps (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
    /// `--cgroup-parent` of RUN steps; empty keeps the daemon's.
    pub cgroup_parent: String,
    /// Resource limits of RUN steps (`memory`, `cpu*` frontend options).
    pub linux_resources: Option<pb::LinuxResources>,
    /// The hostname RUN steps see (`hostname`, `BUILDKIT_SANDBOX_HOSTNAME`).
    pub hostname: String,
    /// `BUILDKIT_CACHE_MOUNT_NS`: the namespace of cache mount ids.
    pub cache_namespace: String,
    /// `--network` for RUN steps that do not choose one.
    pub network: Option<pb::NetMode>,
    /// How base images are found: `pull` (`--pull`), `local`, or empty.
    pub resolve_mode: String,
    /// `--no-cache`: `Some` with no names for every stage, or the stages
    /// named (`--no-cache-filter`); their RUN and COPY steps run again.
    pub no_cache: Option<Vec<String>>,
    /// Named contexts (`--build-context`): the frontend attributes
    /// `context:NAME[::PLATFORM]`, by `NAME[::PLATFORM]`, with their values
    /// (`docker-image://REF`, `local:NAME`, `oci-layout://...`, `input:KEY`).
    pub named_contexts: BTreeMap<String, String>,
}

/// A base image's config, as a resolver found it.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference the registry answered for (may differ from the asked one).
    pub reference: String,
    /// The manifest digest the graph pins the image to; empty: not pinned.
    pub digest: String,
    /// The image config JSON.
    pub config: Vec<u8>,
}

/// What a compile asks an [`ImageResolver`] for.
#[derive(Debug, Clone)]
pub struct ResolveRequest<'a> {
    /// The full reference (`docker.io/library/busybox:latest`).
    pub reference: &'a str,
    pub platform: &'a pb::Platform,
    /// `pull`, `local`, or empty (see [`CompileOptions::resolve_mode`]).
    pub resolve_mode: &'a str,
    /// The name progress shows for the lookup, as the daemon's frontend names it.
    pub log_name: String,
}

/// A file of a client folder that a named context names, read as the
/// daemon's frontend reads a context's `.dockerignore`.
#[derive(Debug, Clone)]
pub struct LocalFileRequest<'a> {
    /// The local's name (`named-NAME`).
    pub local: &'a str,
    /// The session that serves it.
    pub session_id: &'a str,
    /// The file, relative to the folder.
    pub path: &'a str,
    /// The key the daemon keeps this load's upload under.
    pub shared_key_hint: String,
    /// The name progress shows for the load.
    pub log_name: String,
}

/// Finds base images' configs (in a build: `LLBBridge.ResolveImageConfig`).
#[tonic::async_trait]
pub trait ImageResolver: Send + Sync {
    /// The config of the image `request` names.
    async fn resolve(
        &self,
        request: ResolveRequest<'_>,
    ) -> Result<ResolvedImage, Box<dyn std::error::Error + Send + Sync>>;

    /// A file of a client folder (`None` when it has none): a folder named
    /// as a context has its `.dockerignore` read this way. Without a build
    /// there is no folder to read.
    async fn read_local_file(
        &self,
        request: LocalFileRequest<'_>,
    ) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        let _ = request;
        Ok(None)
    }
}

/// The compiled build: the graph and what the exporter needs.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The LLB graph of the target stage.
    pub definition: pb::Definition,
    /// The target's image config.
    pub image: Image,
    /// The config of the image the target starts from, when from a registry.
    pub base_image: Option<Image>,
    /// `SOURCE_DATE_EPOCH`, when given.
    pub epoch: Option<i64>,
    /// The platform asked for (`--platform`), else the daemon's: what the
    /// result is exported as.
    pub requested_platform: pb::Platform,
    /// The names of the stages compiled, in Dockerfile order.
    pub stages: Vec<String>,
    /// The images resolved for the build: the name as the Dockerfile gives
    /// it (expanded), the platform asked for, the config, which the linter
    /// reads as the daemon's frontend would, and whether a named context
    /// stands for it.
    pub(crate) resolved: Vec<(String, pb::Platform, Image, bool)>,
}

impl Compiled {
    /// The metadata a frontend returns with the result, as the daemon's
    /// frontend writes it for a single-platform build.
    pub fn exporter_metadata(&self) -> BTreeMap<String, Vec<u8>> {
        let mut metadata = self.platform_metadata("");
        metadata.insert("refs.platforms".to_owned(), platforms_json(std::slice::from_ref(&self.requested_platform)));
        metadata
    }

    /// This platform's part of a multi-platform result's metadata: the
    /// keys of [`Compiled::exporter_metadata`] with `/PLATFORM` after them.
    pub fn platform_metadata(&self, suffix: &str) -> BTreeMap<String, Vec<u8>> {
        let mut metadata = BTreeMap::new();
        metadata.insert(format!("containerimage.config{suffix}"), image::go_json(&self.image));
        if let Some(base) = &self.base_image {
            metadata.insert(format!("containerimage.base.config{suffix}"), image::go_json(base));
        }
        if let Some(epoch) = self.epoch {
            metadata.insert(format!("source.date.epoch{suffix}"), epoch.to_string().into_bytes());
        }
        metadata
    }
}

/// Why a Dockerfile did not compile. Lines are 1-based; 0 when the error
/// belongs to no line (an unknown target).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The text does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction is malformed (unknown, bad flags, arguments).
    #[error(transparent)]
    Instruction(#[from] instructions::InstructionError),
    /// A step cannot be compiled: the frontend's message and the line.
    #[error("{message}")]
    Step { line: usize, message: String },
    /// A base image could not be resolved.
    #[error("{image}")]
    Resolve {
        line: usize,
        image: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Something the native compiler does not do yet; the daemon's frontend can.
    #[error("the native compiler does not support {feature} yet")]
    Unsupported { line: usize, feature: String },
    /// The graph could not be marshalled.
    #[error(transparent)]
    Marshal(#[from] MarshalError),
}

impl CompileError {
    /// The Dockerfile line the error is on, when it is on one.
    pub fn line(&self) -> Option<usize> {
        let line = match self {
            CompileError::Parse(error) => error.line,
            CompileError::Instruction(error) => error.line,
            CompileError::Step { line, .. }
            | CompileError::Resolve { line, .. }
            | CompileError::Unsupported { line, .. } => *line,
            CompileError::Marshal(_) => 0,
        };
        (line > 0).then_some(line)
    }

    fn step(line: usize, message: impl Into<String>) -> Self {
        CompileError::Step { line, message: message.into() }
    }

    fn unsupported(line: usize, feature: impl Into<String>) -> Self {
        CompileError::Unsupported { line, feature: feature.into() }
    }
}

/// Compiles `dockerfile` (its text) for a build.
pub async fn compile(
    dockerfile: &str,
    options: &CompileOptions,
    resolver: &dyn ImageResolver,
) -> Result<Compiled, CompileError> {
    let mut plan = Plan::new(dockerfile, options)?;
    // Go's `resolveStages`: a base image's ONBUILD triggers can read other
    // stages or images (`COPY --from`), which are then resolved in turn.
    let mut bases = BTreeMap::new();
    loop {
        let more = plan.resolve_bases(resolver, &bases).await?;
        bases.extend(more);
        if !plan.add_image_triggers(&bases)? {
            break;
        }
    }
    plan.build(&bases)
}

/// Compiles without resolving: every base must be `scratch` or a stage.
/// For benchmarks and tests of the graph alone.
pub fn compile_offline(dockerfile: &str, options: &CompileOptions) -> Result<Compiled, CompileError> {
    let plan = Plan::new(dockerfile, options)?;
    if let Some(node) = plan.nodes.iter().find(|n| plan.reachable.contains(&n.index) && n.needs_resolve()) {
        return Err(CompileError::unsupported(node.line, format!("resolving the image {:?} offline", node.base)));
    }
    plan.build(&BTreeMap::new())
}

/// A stage or a pseudo-stage (an image or `scratch` that `COPY --from` or
/// `RUN --mount=from=` names), as Go's `dispatchState` before dispatch.
#[derive(Debug, Clone)]
struct Node {
    index: usize,
    /// Index into `Stages::stages`, `None` for pseudo-stages.
    stage: Option<usize>,
    /// The name progress shows: the stage's name, `stage-N`, or empty when
    /// the Dockerfile has a single stage.
    display_name: String,
    /// The base, expanded: an image reference, `scratch`, or a stage name.
    base: String,
    /// The node this one starts from, when its base is an earlier stage.
    base_node: Option<usize>,
    platform: Option<pb::Platform>,
    /// Nodes this one's commands read from, by command index.
    sources: BTreeMap<usize, Vec<usize>>,
    /// ONBUILD triggers inherited from a base stage, parsed.
    triggers: Vec<instructions::Command>,
    /// Nodes the triggers read from, by trigger index.
    trigger_sources: BTreeMap<usize, Vec<usize>>,
    /// Steps that show a `[n/m]` counter.
    steps_total: usize,
    line: usize,
    /// For an image named by `COPY --from`: that command's lines.
    from_command: Option<(usize, usize)>,
}

impl Node {
    fn needs_resolve(&self) -> bool {
        self.base_node.is_none() && !self.base.eq_ignore_ascii_case("scratch")
    }
}

/// The linked stages of one Dockerfile and everything known before
/// resolving images.
struct Plan<'a> {
    options: &'a CompileOptions,
    stages: Stages,
    lexer: Lexer,
    nodes: Vec<Node>,
    target: usize,
    reachable: BTreeSet<usize>,
    /// Nodes whose base image's ONBUILD triggers were looked at.
    image_triggers_done: BTreeSet<usize>,
    /// Automatic platform args and the ARGs before the first FROM.
    global_args: EnvList,
    target_platform: pb::Platform,
    build_platforms: Vec<pb::Platform>,
    implicit_platform: bool,
    epoch: Option<i64>,
    build_args: BTreeMap<String, String>,
    /// The Dockerfile as a source map, for ops' locations.
    source_map: Arc<llb::SourceMap>,
}

/// Variables as an ordered list (Go's `EnvList`), for expansion.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvList(pub Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, key: &str, value: &str) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.to_owned()));
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl<'a> Plan<'a> {
    fn new(dockerfile: &str, options: &'a CompileOptions) -> Result<Plan<'a>, CompileError> {
        if dockerfile.is_empty() {
            return Err(CompileError::step(0, "the Dockerfile cannot be empty"));
        }
        let parsed = parse(dockerfile)?;
        if let Some((_, value, line)) = parsed.directives.iter().find(|(name, _, _)| name == "syntax") {
            return Err(CompileError::unsupported(*line, format!("the frontend image {value:?} (# syntax=)")));
        }
        let stages = instructions::stages(&parsed)?;
        if stages.stages.is_empty() {
            return Err(CompileError::step(0, "dockerfile contains no stages to build"));
        }
        let lexer = Lexer::new(parsed.escape);

        let build_platforms = if options.build_platforms.is_empty() {
            vec![options.target_platform.clone().unwrap_or_else(llb::default_platform)]
        } else {
            options.build_platforms.clone()
        };
        let implicit_platform = options.target_platform.is_none();
        let target_platform = options.target_platform.clone().unwrap_or_else(|| build_platforms[0].clone());
        let target_name = match &options.target {
            Some(target) => target.clone(),
            None => stages.stages.last().and_then(|s| s.name.clone()).unwrap_or_default(),
        };

        // Automatic platform args, then the global ARGs (build args win).
        let mut global = EnvList::default();
        let build = &build_platforms[0];
        let automatic = [
            ("BUILDPLATFORM", format_platform(build)),
            ("BUILDOS", build.os.clone()),
            ("BUILDOSVERSION", build.os_version.clone()),
            ("BUILDARCH", build.architecture.clone()),
            ("BUILDVARIANT", build.variant.clone()),
            ("TARGETPLATFORM", format_platform(&target_platform)),
            ("TARGETOS", target_platform.os.clone()),
            ("TARGETOSVERSION", target_platform.os_version.clone()),
            ("TARGETARCH", target_platform.architecture.clone()),
            ("TARGETVARIANT", target_platform.variant.clone()),
            ("TARGETSTAGE", if target_name.is_empty() { "default".to_owned() } else { target_name }),
        ];
        for (key, value) in automatic {
            let value = options.build_args.get(key).cloned().unwrap_or(value);
            global.set(key, &value);
        }
        for (key, default) in &stages.global_args {
            let value = match (options.build_args.get(key), default) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(default)) => Some(
                    lexer
                        .expand(default, &global)
                        .map_err(|e| CompileError::step(global_arg_line(&parsed, key), e.to_string()))?,
                ),
                (None, None) => None,
            };
            if let Some(value) = value {
                global.set(key, &value);
            }
        }

        let mut build_args = options.build_args.clone();
        let epoch_value = build_args
            .get("SOURCE_DATE_EPOCH")
            .cloned()
            .or_else(|| global.get("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()).map(str::to_owned));
        let epoch = match epoch_value {
            None => None,
            Some(value) if value.is_empty() => None,
            Some(value) => match value.parse::<i64>() {
                Ok(seconds) => Some(seconds),
                Err(_) => return Err(CompileError::unsupported(0, format!("SOURCE_DATE_EPOCH={value:?}"))),
            },
        };
        if let Some(seconds) = epoch {
            if build_args.contains_key("SOURCE_DATE_EPOCH") {
                build_args.insert("SOURCE_DATE_EPOCH".into(), seconds.to_string());
            }
            if global.get("SOURCE_DATE_EPOCH").is_some() {
                global.set("SOURCE_DATE_EPOCH", &seconds.to_string());
            }
        }

        let mut plan = Plan {
            options,
            stages,
            lexer,
            nodes: Vec::new(),
            target: 0,
            reachable: BTreeSet::new(),
            image_triggers_done: BTreeSet::new(),
            global_args: global,
            target_platform,
            build_platforms,
            implicit_platform,
            epoch,
            build_args,
            source_map: llb::SourceMap::new(
                if options.filename.is_empty() { "Dockerfile".to_owned() } else { options.filename.clone() },
                "Dockerfile",
                dockerfile.as_bytes().to_vec(),
            ),
        };
        plan.link()?;
        Ok(plan)
    }

    /// Go's `buildDispatchStates`, `resolveTarget` and
    /// `buildStageDependencyGraph`: nodes for stages and the images they
    /// name, the target, and which nodes it reaches.
    fn link(&mut self) -> Result<(), CompileError> {
        let globals = &self.global_args;
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for (i, stage) in self.stages.stages.iter().enumerate() {
            let base =
                self.lexer.expand(&stage.base, globals).map_err(|e| CompileError::step(stage.line, e.to_string()))?;
            if base.is_empty() {
                return Err(CompileError::step(stage.line, format!("base name ({}) should not be blank", stage.base)));
            }
            let platform = match &stage.platform {
                None => None,
                Some(raw) => {
                    let value = self.lexer.expand(raw, globals).map_err(|e| {
                        CompileError::step(stage.line, format!("failed to process arguments for platform {raw}: {e}"))
                    })?;
                    if value.is_empty() {
                        return Err(CompileError::step(
                            stage.line,
                            format!("empty platform value from expression {raw}"),
                        ));
                    }
                    Some(
                        parse_platform(&value).map_err(|e| {
                            CompileError::step(stage.line, format!("failed to parse platform {raw}: {e}"))
                        })?,
                    )
                }
            };
            // The daemon's frontend looks every stage name up among the
            // named contexts, given or not, and that lookup parses it as an
            // image reference: `a..b` passes the stage-name grammar but is
            // refused here, with no line (dockerui's `NamedContext`).
            if let Some(name) = &stage.name {
                if !name.eq_ignore_ascii_case("scratch") && !name.eq_ignore_ascii_case("context") {
                    normalize_reference(name)
                        .map_err(|e| CompileError::step(0, format!("invalid context name {name}: {e}")))?;
                }
            }
            let base_node = by_name.get(&base).copied();
            let mut steps_total = usize::from(!base.eq_ignore_ascii_case("scratch") && base_node.is_none());
            steps_total += stage
                .commands
                .iter()
                .filter(|c| {
                    matches!(
                        c.kind,
                        CommandKind::Add { .. }
                            | CommandKind::Copy { .. }
                            | CommandKind::Run { .. }
                            | CommandKind::Workdir(_)
                    )
                })
                .count();
            let node = Node {
                index: self.nodes.len(),
                stage: Some(i),
                display_name: stage.name.clone().unwrap_or_else(|| format!("stage-{i}")),
                base,
                base_node,
                platform,
                sources: BTreeMap::new(),
                triggers: Vec::new(),
                trigger_sources: BTreeMap::new(),
                steps_total,
                line: stage.line,
                from_command: None,
            };
            if let Some(name) = &stage.name {
                by_name.insert(name.clone(), node.index);
            }
            self.nodes.push(node);
        }
        let stage_count = self.nodes.len();

        self.target = match &self.options.target {
            None => stage_count - 1,
            Some(name) => *by_name.get(&name.to_lowercase()).ok_or_else(|| {
                let mut message = format!("target stage {name:?} could not be found");
                let names: Vec<&String> = by_name.keys().collect();
                if let Some(similar) = names.iter().find(|n| instructions::similar(n, &name.to_lowercase())) {
                    message.push_str(&format!(" (did you mean {similar}?)"));
                }
                CompileError::step(0, message)
            })?,
        };

        // Sources of COPY --from and RUN --mount, per command.
        let mut pseudo: BTreeMap<String, usize> = BTreeMap::new();
        for n in 0..stage_count {
            let stage_index = self.nodes[n].stage.expect("a stage");
            for (ci, command) in self.stages.stages[stage_index].commands.iter().enumerate() {
                let names = self.command_sources(command)?;
                let sources = link_sources(&mut self.nodes, names, command, stage_count, &by_name, &mut pseudo)?;
                if !sources.is_empty() {
                    self.nodes[n].sources.insert(ci, sources);
                }
            }
        }
        self.check_cycles()?;
        if self.nodes.len() == 1 {
            self.nodes[0].display_name.clear();
        }

        // ONBUILD triggers of base stages.
        for n in 0..stage_count {
            let Some(base) = self.nodes[n].base_node else { continue };
            let base_stage = self.nodes[base].stage.expect("a stage");
            let triggers: Vec<String> = self.stages.stages[base_stage]
                .commands
                .iter()
                .filter_map(|c| match &c.kind {
                    CommandKind::Onbuild(expression) => Some(expression.clone()),
                    _ => None,
                })
                .collect();
            if !triggers.is_empty() {
                let line = self.nodes[n].line;
                let parsed = self.parse_triggers(&triggers, line)?;
                for (ti, trigger) in parsed.iter().enumerate() {
                    let names = self.command_sources(trigger)?;
                    let sources = link_sources(&mut self.nodes, names, trigger, stage_count, &by_name, &mut pseudo)?;
                    if !sources.is_empty() {
                        self.nodes[n].trigger_sources.insert(ti, sources);
                    }
                }
                self.nodes[n].steps_total += parsed.len();
                self.nodes[n].triggers = parsed;
            }
        }

        self.mark_reachable();
        Ok(())
    }

    /// The nodes `command` reads from: stages by name or index, or a
    /// pseudo-stage for an image (or `scratch`), made once per name.
    fn parse_triggers(&self, triggers: &[String], line: usize) -> Result<Vec<instructions::Command>, CompileError> {
        let mut out = Vec::new();
        for trigger in triggers {
            let parsed = parse(trigger)?;
            let [instruction] = parsed.instructions.as_slice() else {
                return Err(CompileError::step(line, "onbuild trigger should be a single expression"));
            };
            let keyword = instruction.keyword.to_ascii_uppercase();
            let kind =
                instructions::command(instruction, &keyword).map_err(|message| CompileError::step(line, message))?;
            out.push(instructions::Command {
                line,
                end_line: line,
                original: instruction.original.trim().to_owned(),
                kind,
            });
        }
        Ok(out)
    }

    /// What a command reads from other nodes: `COPY --from`, and every
    /// `RUN --mount` (`scratch` when it names none).
    fn command_sources(&self, command: &instructions::Command) -> Result<Vec<Source>, CompileError> {
        match &command.kind {
            CommandKind::Copy { from: Some(from), .. } => {
                let unexpanded = self.lexer.expand(from, &EnvList::default()).ok();
                if unexpanded.as_deref() != Some(from.as_str()) {
                    return Err(CompileError::step(
                        command.line,
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    ));
                }
                Ok(vec![match from.parse::<usize>() {
                    Ok(index) => Source::Index(index),
                    Err(_) => Source::Name(from.clone()),
                }])
            }
            CommandKind::Run { mounts, .. } => Ok(mounts
                .iter()
                .map(|m| Source::Name(mounts::mount_from(m).unwrap_or_else(|| "scratch".to_owned())))
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// Go's `validateCircularDependency`: a cycle through `COPY --from` and
    /// `RUN --mount=from=` (bases are not followed), reported for the first
    /// stage on it at the first command of the cycle.
    fn check_cycles(&self) -> Result<(), CompileError> {
        // A node's edges: (the line of the command, the node it reads).
        let edges = |n: usize| -> Vec<(usize, usize)> {
            let node = &self.nodes[n];
            node.sources
                .iter()
                .flat_map(|(command, sources)| {
                    let line = node.stage.map_or(node.line, |s| self.stages.stages[s].commands[*command].line);
                    sources.iter().map(move |next| (line, *next))
                })
                .collect()
        };
        // Depth first with a stack of our own (a chain of 10,000 stages is
        // 10,000 levels deep): each frame is a node, its edges and how many
        // of them are done. `path` marks the nodes on the stack.
        type Frame = (usize, Vec<(usize, usize)>, usize);
        let mut visited = vec![false; self.nodes.len()];
        let mut path = vec![false; self.nodes.len()];
        for n in 0..self.nodes.len() {
            if std::mem::replace(&mut visited[n], true) {
                continue;
            }
            path[n] = true;
            let mut stack: Vec<Frame> = vec![(n, edges(n), 0)];
            while let Some((node, node_edges, next)) = stack.last_mut() {
                let Some(&(_, to)) = node_edges.get(*next) else {
                    path[*node] = false;
                    stack.pop();
                    continue;
                };
                *next += 1;
                if path[to] {
                    // Reported at the root's command that leads into the cycle.
                    let (_, root_edges, root_next) = &stack[0];
                    let line = root_edges[root_next - 1].0;
                    let name = &self.nodes[n].display_name;
                    return Err(CompileError::step(line, format!("circular dependency detected on stage: {name}")));
                }
                if !std::mem::replace(&mut visited[to], true) {
                    path[to] = true;
                    stack.push((to, edges(to), 0));
                }
            }
        }
        Ok(())
    }

    /// The platform a node's base image is resolved for.
    fn node_platform(&self, node: &Node) -> pb::Platform {
        node.platform.clone().unwrap_or_else(|| self.target_platform.clone())
    }

    /// The named context `name` stands for, as dockerui's `NamedContext`
    /// finds it: by its familiar name (`busybox`, not
    /// `docker.io/library/busybox:latest`) with the platform
    /// (`NAME::linux/amd64`), then without; `(NAME[::PLATFORM], value)`.
    fn named_context(&self, name: &str, platform: &pb::Platform) -> Result<Option<(String, String)>, String> {
        if name.eq_ignore_ascii_case("scratch") || name.eq_ignore_ascii_case("context") {
            return Ok(None);
        }
        let full = normalize_reference(name).map_err(|e| format!("invalid context name {name}: {e}"))?;
        let familiar = familiar_name(&full);
        let with_platform = format!("{familiar}::{}", format_platform(platform));
        for key in [with_platform, familiar] {
            if let Some(value) = self.options.named_contexts.get(&key) {
                return Ok(Some((key, value.clone())));
            }
        }
        Ok(None)
    }

    /// Whether named contexts can stand for any node: with none given,
    /// nothing is looked up (the lookups only fail on names the daemon's
    /// frontend refuses anyway).
    fn has_named_contexts(&self) -> bool {
        !self.options.named_contexts.is_empty()
    }

    /// A named context standing for a base: loaded as dockerui loads it
    /// (`docker-image://` resolved through `resolver`); the rest is not
    /// compiled natively yet.
    async fn load_named(
        &self,
        node: &Node,
        key: &str,
        value: &str,
        platform: pb::Platform,
        resolver: &dyn ImageResolver,
    ) -> Result<Base, CompileError> {
        let (kind, rest) = value.split_once(':').unwrap_or((value, ""));
        let kind = if kind.starts_with("git@") { "git" } else { kind };
        if kind == "local" {
            let request = LocalFileRequest {
                local: rest,
                session_id: &self.options.session_id,
                path: ".dockerignore",
                shared_key_hint: format!("context:{key}-.dockerignore"),
                log_name: format!("[context {key}] load .dockerignore"),
            };
            let ignore = resolver.read_local_file(request).await.map_err(|source| CompileError::Resolve {
                line: node.line,
                image: node.base.clone(),
                source,
            })?;
            let excludes = ignore.map(|text| crate::fsync::patterns::parse_dockerignore(&text)).unwrap_or_default();
            let local = Some(NamedLocal { local: rest.to_owned(), key: key.to_owned(), excludes });
            let named = Some(NamedBase { label: String::new(), config: None, local });
            let image = image::empty_image(&platform);
            return Ok(Base { reference: String::new(), image, scratch: false, platform, named });
        }
        if kind != "docker-image" {
            let what = match kind {
                "local" => "a folder",
                "oci-layout" => "an OCI layout",
                "input" => "a frontend input (bake's target:)",
                "git" | "http" | "https" => "a git or http source",
                _ => "this kind",
            };
            return Err(CompileError::unsupported(node.line, format!("the named context {key} ({what}: {value})")));
        }
        let shown = rest.strip_prefix("//").unwrap_or(rest);
        let label = format!("[context {key}] {shown}");
        if shown == "scratch" {
            let image = image::empty_image(&platform);
            let named = Some(NamedBase { label, config: None, local: None });
            return Ok(Base { reference: String::new(), image, scratch: true, platform, named });
        }
        let reference = normalize_reference(shown).map_err(|e| CompileError::step(node.line, e))?;
        let log_name = format!("[context {key}] load metadata for {shown}");
        let (resolved, image) = self.resolve_config(node, resolver, &reference, &platform, log_name).await?;
        // The image is used as the resolver named it, not pinned to the
        // digest (dockerui's `llb.Image(ref)`).
        let reference = if resolved.reference.is_empty() { reference } else { resolved.reference };
        let named = Some(NamedBase { label, config: Some(image.clone()), local: None });
        Ok(Base { reference, image, scratch: false, platform, named })
    }

    /// Resolves `reference` for `node`'s `FROM` and reads its config: the
    /// resolver's answer (name and digest it gave) and the image.
    async fn resolve_config(
        &self,
        node: &Node,
        resolver: &dyn ImageResolver,
        reference: &str,
        platform: &pb::Platform,
        log_name: String,
    ) -> Result<(ResolvedImage, Image), CompileError> {
        let request = ResolveRequest { reference, platform, resolve_mode: &self.options.resolve_mode, log_name };
        let resolved = resolver.resolve(request).await.map_err(|source| CompileError::Resolve {
            line: node.line,
            image: node.base.clone(),
            source,
        })?;
        let image: Image = serde_json::from_slice(&resolved.config)
            .map_err(|e| CompileError::step(node.line, format!("failed to parse image config: {e}")))?;
        Ok((resolved, image))
    }

    /// The ONBUILD triggers of the resolved base images of reachable
    /// stages (Go's `initOnBuildTriggers` for image configs): parsed at the
    /// stage's `FROM` line and run before its commands. `true` when a
    /// trigger reads another node, which then became reachable and may need
    /// resolving.
    fn add_image_triggers(&mut self, bases: &BTreeMap<usize, Base>) -> Result<bool, CompileError> {
        let stage_count = self.stages.stages.len();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for (i, stage) in self.stages.stages.iter().enumerate() {
            if let Some(name) = &stage.name {
                by_name.insert(name.clone(), i);
            }
        }
        let mut pseudo: BTreeMap<String, usize> =
            self.nodes.iter().filter(|n| n.stage.is_none()).map(|n| (n.base.clone(), n.index)).collect();
        let mut new_sources = false;
        let pending: Vec<usize> =
            self.reachable.iter().copied().filter(|n| !self.image_triggers_done.contains(n)).collect();
        for n in pending {
            let Some(base) = bases.get(&n) else { continue };
            self.image_triggers_done.insert(n);
            let triggers = &base.image.config.on_build;
            if triggers.is_empty() {
                continue;
            }
            let line = self.nodes[n].line;
            if self.nodes[n].stage.is_none() {
                // Go parses them and never runs them (the image is only
                // read from); not worth a path of its own.
                return Err(CompileError::unsupported(line, "ONBUILD triggers of an image read by COPY --from"));
            }
            let parsed = self.parse_triggers(&triggers.clone(), line)?;
            for (ti, trigger) in parsed.iter().enumerate() {
                let names = self.command_sources(trigger)?;
                let sources = link_sources(&mut self.nodes, names, trigger, stage_count, &by_name, &mut pseudo)?;
                if !sources.is_empty() {
                    new_sources = true;
                    self.nodes[n].trigger_sources.insert(ti, sources);
                }
            }
            self.nodes[n].steps_total += parsed.len();
            self.nodes[n].triggers = parsed;
        }
        if new_sources {
            self.mark_reachable();
        }
        Ok(new_sources)
    }

    /// The nodes the target reads, through bases, `COPY --from`, mounts and
    /// triggers.
    fn mark_reachable(&mut self) {
        self.reachable.clear();
        let mut pending = vec![self.target];
        while let Some(n) = pending.pop() {
            if !self.reachable.insert(n) {
                continue;
            }
            pending.extend(self.nodes[n].base_node);
            pending.extend(self.nodes[n].sources.values().flatten().copied());
            pending.extend(self.nodes[n].trigger_sources.values().flatten().copied());
        }
    }

    /// Resolves the base images of reachable nodes not in `known`,
    /// concurrently.
    async fn resolve_bases(
        &self,
        resolver: &dyn ImageResolver,
        known: &BTreeMap<usize, Base>,
    ) -> Result<BTreeMap<usize, Base>, CompileError> {
        if self.has_named_contexts() {
            // A stage a named context replaces (`FROM x AS NAME` with a
            // context NAME) is not compiled natively yet.
            for node in self.nodes.iter().filter(|n| self.reachable.contains(&n.index)) {
                let Some(stage) = node.stage else { continue };
                let Some(name) = &self.stages.stages[stage].name else { continue };
                let platform = node
                    .platform
                    .clone()
                    .or_else(|| self.options.target_platform.clone())
                    .unwrap_or_else(|| self.build_platforms[0].clone());
                let found = self.named_context(name, &platform).map_err(|e| CompileError::step(0, e))?;
                if let Some((key, value)) = found {
                    return Err(CompileError::unsupported(
                        node.line,
                        format!("the named context {key} ({value}) in place of the stage {name}"),
                    ));
                }
            }
        }
        let jobs = self
            .nodes
            .iter()
            .filter(|n| self.reachable.contains(&n.index) && n.needs_resolve() && !known.contains_key(&n.index))
            .map(|node| {
                let platform = self.node_platform(node);
                async move {
                    if self.has_named_contexts() {
                        let full = normalize_reference(&node.base).unwrap_or_else(|_| node.base.clone());
                        if let Some((key, value)) =
                            self.named_context(&full, &platform).map_err(|e| CompileError::step(node.line, e))?
                        {
                            let base = self.load_named(node, &key, &value, platform, resolver).await?;
                            return Ok::<_, CompileError>((node.index, base));
                        }
                    }
                    let name = normalize_reference(&node.base).map_err(|message| {
                        CompileError::step(node.line, format!("failed to parse stage name {:?}: {message}", node.base))
                    })?;
                    // `[linux/arm64 internal] load metadata for ...` in multi-platform builds.
                    let prefix = if self.options.multi_platform {
                        format!("{} internal", format_platform(&platform))
                    } else {
                        "internal".to_owned()
                    };
                    let log_name = format!("[{prefix}] load metadata for {name}");
                    let (resolved, image) = self.resolve_config(node, resolver, &name, &platform, log_name).await?;
                    let mut name = if resolved.reference != name && !resolved.reference.is_empty() {
                        normalize_reference(&resolved.reference).unwrap_or(resolved.reference.clone())
                    } else {
                        name
                    };
                    if !resolved.digest.is_empty() {
                        // Go's `reference.WithDigest` on the tagged name.
                        if let Some(at) = name.find('@') {
                            name.truncate(at);
                        }
                        name = format!("{name}@{}", resolved.digest);
                    }
                    let scratch = image.rootfs.diff_ids.is_empty() && image.history.iter().all(|h| h.empty_layer);
                    Ok::<_, CompileError>((node.index, Base { reference: name, image, scratch, platform, named: None }))
                }
            });
        let results = futures::future::join_all(jobs).await;
        let mut bases = BTreeMap::new();
        for result in results {
            let (index, base) = result?;
            bases.insert(index, base);
        }
        Ok(bases)
    }

    fn build(&self, bases: &BTreeMap<usize, Base>) -> Result<Compiled, CompileError> {
        // The context's source says which paths the stages read, known only
        // once they are compiled: they read a deferred state, set after.
        let (context, state) = llb::Deferred::new();
        let result = dispatch::Dispatch::new(self, bases, state).run()?;
        context.set(&self.context(&result.context_paths))?;
        let mut image = result.image;
        for (key, value) in &self.options.labels {
            image.config.labels.insert(key.clone(), value.clone());
        }
        if !self.implicit_platform {
            let target = &self.target_platform;
            let same = target.os == image.os && target.architecture == image.architecture;
            image.os = target.os.clone();
            image.architecture = target.architecture.clone();
            if !target.variant.is_empty() || !same {
                image.variant = target.variant.clone();
            }
            if !target.os_version.is_empty() || !same {
                image.os_version = target.os_version.clone();
            }
        }
        let marshal = MarshalOptions { platform: self.target_platform.clone() };
        let definition = result.state.marshal_with(&marshal)?;
        Ok(Compiled {
            definition,
            image,
            base_image: result.base_image,
            epoch: self.epoch,
            requested_platform: self.target_platform.clone(),
            stages: result.stages,
            resolved: bases
                .iter()
                .map(|(index, base)| {
                    let named = base.named.is_some();
                    (self.nodes[*index].base.clone(), base.platform.clone(), base.image.clone(), named)
                })
                .collect(),
        })
    }

    /// The build context source, reading only `paths` when the stages need
    /// no more (Go's `filterPaths`).
    fn context(&self, paths: &BTreeSet<String>) -> llb::State {
        let follow_paths: Vec<String> = if paths.contains("/") {
            Vec::new()
        } else {
            paths.iter().map(|p| crate::gopath::join(&[".", p])).collect()
        };
        let mut options = llb::LocalOptions::new(self.options.session_id.clone());
        options.exclude_patterns = self.options.excludes.clone();
        options.follow_paths = follow_paths;
        options.shared_key_hint = Some("context".to_owned());
        options.op.custom_name = Some("[internal] load build context".to_owned());
        llb::local("context", options)
    }
}

/// A source a command names: a stage index or a name (stage or image).
enum Source {
    Index(usize),
    Name(String),
}

/// A resolved base image.
#[derive(Debug, Clone)]
struct Base {
    /// Normalized and pinned reference (`host/repo:tag@sha256:...`).
    reference: String,
    image: Image,
    /// An image without layers: the stage starts from scratch.
    scratch: bool,
    platform: pb::Platform,
    /// The base is a named context (`--build-context NAME=docker-image://REF`)
    /// rather than the image the Dockerfile names.
    named: Option<NamedBase>,
}

/// A named context standing for a base image, as dockerui loads it.
#[derive(Debug, Clone)]
struct NamedBase {
    /// The op's progress name: `[context NAME] REF`.
    label: String,
    /// The image's config (`WithImageConfig`); `None` for `scratch`.
    config: Option<Image>,
    /// A client folder instead of an image.
    local: Option<NamedLocal>,
}

/// A client folder named as a context: read (as dockerui's
/// `asyncLocalOutput`) only where the stages read it, less its
/// `.dockerignore`.
#[derive(Debug, Clone)]
struct NamedLocal {
    /// The local's name (`named-NAME`).
    local: String,
    /// `NAME[::PLATFORM]`.
    key: String,
    /// The folder's `.dockerignore` patterns.
    excludes: Vec<String>,
}

fn global_arg_line(parsed: &crate::dockerfile::Dockerfile, key: &str) -> usize {
    parsed
        .instructions
        .iter()
        .find(|i| i.keyword.eq_ignore_ascii_case("ARG") && i.original.contains(key))
        .map_or(0, |i| i.start_line)
}

/// An image reference in full (`docker.io/library/busybox:latest`).
fn normalize_reference(reference: &str) -> Result<String, String> {
    crate::llb::normalize_reference(reference).map_err(|e| e.to_string())
}

/// distribution's `FamiliarString` of a normalized reference, without
/// `:latest` (how dockerui names contexts): `docker.io/library/busybox:latest`
/// is `busybox`, `docker.io/me/app:1` is `me/app:1`.
fn familiar_name(full: &str) -> String {
    let short = match full.strip_prefix("docker.io/") {
        Some(rest) => match rest.strip_prefix("library/") {
            Some(name) if !name.split(['@', ':']).next().unwrap_or_default().contains('/') => name,
            _ => rest,
        },
        None => full,
    };
    short.strip_suffix(":latest").unwrap_or(short).to_owned()
}

/// `os/arch[/variant]` (containerd's `platforms.Format`).
pub fn format_platform(platform: &pb::Platform) -> String {
    let mut out = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        out.push('/');
        out.push_str(&platform.variant);
    }
    out
}

/// `refs.platforms`: the platforms of a result, in order (Go's
/// `exptypes.Platforms`).
pub fn platforms_json(platforms: &[pb::Platform]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = platforms
        .iter()
        .map(|p| serde_json::json!({"id": format_platform(p), "platform": llb_platform_json(p)}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "platforms": list })).expect("json")
}

fn llb_platform_json(platform: &pb::Platform) -> serde_json::Value {
    let mut value = serde_json::json!({"architecture": platform.architecture, "os": platform.os});
    if !platform.os_version.is_empty() {
        value["os.version"] = platform.os_version.clone().into();
    }
    if !platform.variant.is_empty() {
        value["variant"] = platform.variant.clone().into();
    }
    value
}

/// A platform specifier containerd's `platforms.Parse` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: invalid platform specifier")]
pub struct PlatformError(pub String);

/// `os[/arch[/variant]]` or `arch` as containerd's `platforms.Parse` reads it.
pub(crate) fn parse_platform(text: &str) -> Result<pb::Platform, PlatformError> {
    let parts: Vec<&str> = text.split('/').collect();
    let known_os = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix"];
    let platform = match parts.as_slice() {
        [one] if known_os.contains(&one.to_lowercase().as_str()) => pb::Platform {
            os: one.to_lowercase(),
            architecture: llb::default_platform().architecture,
            ..Default::default()
        },
        [one] => pb::Platform { os: "linux".into(), architecture: one.to_lowercase(), ..Default::default() },
        [os, arch] => pb::Platform { os: os.to_lowercase(), architecture: arch.to_lowercase(), ..Default::default() },
        [os, arch, variant] => pb::Platform {
            os: os.to_lowercase(),
            architecture: arch.to_lowercase(),
            variant: variant.to_lowercase(),
            ..Default::default()
        },
        _ => return Err(PlatformError(text.to_owned())),
    };
    if platform.os.is_empty() || platform.architecture.is_empty() {
        return Err(PlatformError(text.to_owned()));
    }
    Ok(crate::llb::normalize_platform_spec(platform))
}

/// The nodes `names` (a command's `--from` sources) stand for: stages by
/// index or name, and for any other name a node of its own (an image),
/// made once per name.
fn link_sources(
    nodes: &mut Vec<Node>,
    names: Vec<Source>,
    command: &instructions::Command,
    stage_count: usize,
    by_name: &BTreeMap<String, usize>,
    pseudo: &mut BTreeMap<String, usize>,
) -> Result<Vec<usize>, CompileError> {
    let is_copy = matches!(command.kind, CommandKind::Copy { .. });
    let mut sources = Vec::new();
    for name in names {
        let node = match name {
            Source::Index(index) if index >= stage_count => {
                return Err(CompileError::step(command.line, format!("invalid stage index {index}")));
            }
            Source::Index(index) => index,
            Source::Name(name) => match by_name.get(&name.to_lowercase()) {
                Some(index) => *index,
                None => *pseudo.entry(name.clone()).or_insert_with(|| {
                    let index = nodes.len();
                    nodes.push(Node {
                        index,
                        stage: None,
                        display_name: String::new(),
                        base: name.clone(),
                        base_node: None,
                        platform: None,
                        sources: BTreeMap::new(),
                        triggers: Vec::new(),
                        trigger_sources: BTreeMap::new(),
                        steps_total: 0,
                        line: command.line,
                        from_command: is_copy.then_some((command.line, command.end_line)),
                    });
                    index
                }),
            },
        };
        sources.push(node);
    }
    Ok(sources)
}

#[cfg(test)]
mod tests;
