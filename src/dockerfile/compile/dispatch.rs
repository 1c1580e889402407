//! Dispatching stages: each command onto the stage's LLB state and image
//! config, as `dispatch*` in Go's `convert.go` does.

use std::collections::{BTreeMap, BTreeSet};

use super::git_ref::{check_sources, is_http, parse_git_ref};
use super::image::{self, epoch_time, go_list, go_quote_list, Image};
use super::mounts::{self, parse_mount, MountKind};
use super::{Base, CompileError, NamedBase, NamedLocal, Plan};
use crate::dockerfile::instructions::{Command, CommandKind, CommandLine, Transfer};
use crate::dockerfile::shell::{Env, Lexer};
use crate::gopath;
use crate::llb::{self, Chown, Copy, FileAction, Mkdir, Mkfile, Mount, OpOptions, Run, State};
use crate::proto::pb;

/// What dispatching the target gives.
pub(super) struct Dispatched {
    pub state: State,
    pub image: Image,
    pub base_image: Option<Image>,
    pub context_paths: BTreeSet<String>,
    pub stages: Vec<String>,
}

/// One stage while it is dispatched (Go's `dispatchState`).
#[derive(Clone)]
struct StageState {
    state: State,
    image: Image,
    base_image: Option<Image>,
    platform: pb::Platform,
    build_args: Vec<(String, Option<String>)>,
    steps_done: usize,
    cmd_set: bool,
}

pub(super) struct Dispatch<'p, 'a> {
    plan: &'p Plan<'a>,
    bases: &'p BTreeMap<usize, Base>,
    context: State,
    done: BTreeMap<usize, StageState>,
    context_paths: BTreeSet<String>,
    epoch: Option<String>,
    epoch_nanos: Option<i64>,
    /// `--no-cache` applies to the stage being dispatched.
    ignore_cache: bool,
    /// Paths the stages read from each chain of stages (a node and the
    /// stages built on it share one set, by the chain's first node; Go's
    /// `paths`): what a folder named as a context sends.
    paths: BTreeMap<usize, BTreeSet<String>>,
    /// Folders named as contexts, set once every stage is dispatched.
    named_locals: Vec<(usize, llb::Deferred, NamedLocal)>,
    /// How many stages not yet started build on each stage: the last one
    /// takes its base's image instead of copying it (a chain of 10,000
    /// stages would otherwise copy histories of every length up to 10,000).
    base_uses: BTreeMap<usize, usize>,
}

impl<'p, 'a> Dispatch<'p, 'a> {
    pub(super) fn new(plan: &'p Plan<'a>, bases: &'p BTreeMap<usize, Base>, context: State) -> Self {
        Dispatch {
            plan,
            bases,
            context,
            done: BTreeMap::new(),
            context_paths: BTreeSet::new(),
            epoch: plan.epoch.map(epoch_time),
            epoch_nanos: plan.epoch.map(|s| s.saturating_mul(1_000_000_000)),
            ignore_cache: false,
            paths: BTreeMap::new(),
            named_locals: Vec::new(),
            base_uses: BTreeMap::new(),
        }
    }

    pub(super) fn run(mut self) -> Result<Dispatched, CompileError> {
        let plan = self.plan;
        for node in plan.nodes.iter().filter(|n| plan.reachable.contains(&n.index)) {
            if let Some(base) = node.base_node {
                *self.base_uses.entry(base).or_default() += 1;
            }
        }
        // Pseudo-stages (images and scratch named by --from and mounts)
        // are ready as soon as they are resolved.
        for node in plan.nodes.iter().filter(|n| n.stage.is_none() && plan.reachable.contains(&n.index)) {
            let stage = self.start(node.index)?;
            self.done.insert(node.index, stage);
        }
        let mut names = Vec::new();
        for node in plan.nodes.iter().filter(|n| n.stage.is_some()) {
            if !plan.reachable.contains(&node.index) {
                continue;
            }
            let mut stage = self.start(node.index)?;
            let stage_index = node.stage.expect("a stage");
            // Go's `IsNoCache`: every stage, or the named ones.
            self.ignore_cache = match &plan.options.no_cache {
                None => false,
                Some(names) if names.is_empty() => true,
                Some(names) => plan.stages.stages[stage_index].name.as_ref().is_some_and(|n| names.contains(n)),
            };
            let triggers = node.triggers.iter().enumerate().map(|(i, c)| (node.trigger_sources.get(&i), c, true));
            let commands = plan.stages.stages[stage_index]
                .commands
                .iter()
                .enumerate()
                .map(|(i, c)| (node.sources.get(&i), c, false));
            for (sources, command, onbuild) in triggers.chain(commands) {
                let sources = sources.map_or(&[][..], Vec::as_slice);
                self.command(node.index, &mut stage, command, sources, onbuild)?;
            }
            names.push(plan.stages.stages[stage_index].name.clone().unwrap_or_else(|| format!("stage-{stage_index}")));
            self.done.insert(node.index, stage);
        }
        // The target is read whole; then each folder named as a context
        // sends what its chain's stages read (everything once one is "/").
        let root = self.chain_root(plan.target);
        self.paths.entry(root).or_default().insert("/".to_owned());
        for (node, deferred, named) in std::mem::take(&mut self.named_locals) {
            let root = self.chain_root(node);
            let paths = self.paths.get(&root).cloned().unwrap_or_default();
            let mut options = llb::LocalOptions::new(plan.options.session_id.clone());
            options.op.custom_name = Some(format!("[context {}] load from client", named.key));
            options.shared_key_hint = Some(format!("context:{}-", named.key));
            options.exclude_patterns = named.excludes;
            if !paths.contains("/") {
                options.follow_paths = paths.iter().map(|p| gopath::join(&[".", p])).collect();
            }
            deferred.set(&llb::local(&named.local, options))?;
        }
        let target = self.done.remove(&plan.target).expect("the target was dispatched");
        Ok(Dispatched {
            state: target.state,
            image: target.image,
            base_image: target.base_image,
            context_paths: self.context_paths,
            stages: names,
        })
    }

    /// A node's state before its commands: its base, with the base image's
    /// environment, working directory and user.
    fn start(&mut self, n: usize) -> Result<StageState, CompileError> {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let mut stage = if let Some(base) = node.base_node {
            let uses = self.base_uses.get_mut(&base).map_or(0, |uses| {
                *uses = uses.saturating_sub(1);
                *uses
            });
            let Some(done) = self.done.get_mut(&base) else {
                return Err(CompileError::step(node.line, format!("base stage {:?} is not built yet", node.base)));
            };
            let mut stage = if uses == 0 && base != plan.target {
                // The last stage built on it: later commands only read its
                // filesystem (`COPY --from`), never its image.
                StageState {
                    image: std::mem::take(&mut done.image),
                    base_image: done.base_image.take(),
                    ..done.clone()
                }
            } else {
                done.clone()
            };
            stage.image.config.on_build.clear();
            stage.steps_done = 0;
            stage.cmd_set = false;
            stage
        } else if node.base.eq_ignore_ascii_case("scratch") {
            let platform = plan.target_platform.clone();
            StageState {
                state: llb::scratch(),
                image: image::empty_image(&platform),
                base_image: None,
                platform,
                build_args: Vec::new(),
                steps_done: 0,
                cmd_set: false,
            }
        } else {
            let base = self.bases.get(&n).ok_or_else(|| {
                CompileError::step(node.line, format!("the base image {:?} was not resolved", node.base))
            })?;
            if let Some(named) = &base.named {
                return self.start_named(n, base, named);
            }
            let mut image = base.image.clone();
            let base_image = Some(image.clone());
            image.created = None;
            // Its triggers run as the stage's first commands (the plan
            // parsed them); they do not carry over to this image.
            image.config.on_build.clear();
            let mut platform = base.platform.clone();
            if node.platform.is_none() && plan.implicit_platform {
                if let Some(p) = plan
                    .build_platforms
                    .iter()
                    .find(|p| p.os == image.os && p.architecture == image.architecture)
                    .filter(|_| !(platform.os == image.os && platform.architecture == image.architecture))
                {
                    platform = p.clone();
                }
            }
            let state = if base.scratch {
                llb::scratch()
            } else {
                let name = self.prefix(n, 0, &format!("FROM {}", base.reference), false, &platform);
                let (source_code, line) = match node.stage {
                    Some(index) => (plan.stages.stages[index].original.clone(), Some((node.line, node.line))),
                    None => (String::new(), node.from_command),
                };
                let op = self.op(name, line, Some(&source_code));
                let resolve_mode = Some(plan.options.resolve_mode.clone());
                llb::image_with(
                    &base.reference,
                    llb::ImageOptions { platform: Some(platform.clone()), resolve_mode, op },
                )
            };
            StageState {
                state,
                image,
                base_image,
                platform,
                build_args: Vec::new(),
                steps_done: usize::from(!base.scratch),
                cmd_set: false,
            }
        };
        self.finish_start(&mut stage);
        Ok(stage)
    }

    /// What every stage gets from its image before its commands
    /// (`dispatchStages`): `PATH`, the environment, the working directory
    /// and the user.
    fn finish_start(&self, stage: &mut StageState) {
        if stage.image.config.env.iter().all(|e| e.split('=').next() != Some("PATH")) && stage.platform.os != "windows"
        {
            stage.image.config.env.push(format!("PATH={}", image::DEFAULT_PATH));
        }
        stage.state = stage
            .state
            .add_envs(stage.image.config.env.iter().map(|entry| entry.split_once('=').unwrap_or((entry.as_str(), ""))));
        if !stage.image.config.working_dir.is_empty() {
            let dir = stage.image.config.working_dir.clone();
            let wd = normalize_path(&dir, &dir, false);
            stage.image.config.working_dir = wd.clone();
            stage.state = stage.state.dir(&wd);
        }
        if !stage.image.config.user.is_empty() {
            stage.state = stage.state.user(&stage.image.config.user);
        }
    }

    /// A node whose base is a named context: the context's state as
    /// dockerui makes it (the image with its config applied:
    /// `WithImageConfig`), set to the node's platform, then what every base
    /// gets.
    fn start_named(&mut self, n: usize, base: &Base, named: &NamedBase) -> Result<StageState, CompileError> {
        let platform = base.platform.clone();
        let mut state = if let Some(local) = &named.local {
            // Its follow paths are known once every stage is dispatched.
            let (deferred, state) = llb::Deferred::new();
            self.named_locals.push((n, deferred, local.clone()));
            state
        } else if base.scratch {
            llb::scratch()
        } else {
            let op = OpOptions::named(named.label.clone());
            llb::image_with(
                &base.reference,
                llb::ImageOptions { platform: Some(platform.clone()), resolve_mode: None, op },
            )
        };
        if let Some(config) = &named.config {
            state = state.add_envs(config.config.env.iter().filter_map(|entry| {
                let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
                (!key.is_empty()).then_some((key, value))
            }));
            state = state.dir(if config.config.working_dir.is_empty() { "/" } else { &config.config.working_dir });
        }
        state = state.platform(platform.clone());
        let mut image = base.image.clone();
        let base_image = Some(image.clone());
        image.created = None;
        // Its triggers run as the stage's first commands, as for any base.
        image.config.on_build.clear();
        let mut stage =
            StageState { state, image, base_image, platform, build_args: Vec::new(), steps_done: 0, cmd_set: false };
        self.finish_start(&mut stage);
        Ok(stage)
    }

    /// The first node of `n`'s chain of stages (`FROM stage` links them),
    /// whose paths the chain shares.
    fn chain_root(&self, mut n: usize) -> usize {
        while let Some(base) = self.plan.nodes[n].base_node {
            n = base;
        }
        n
    }

    /// Go's `prefixCommand`: `[stage 2/5] ` before a step's name.
    fn prefix(&self, n: usize, done: usize, name: &str, onbuild: bool, platform: &pb::Platform) -> String {
        let node = &self.plan.nodes[n];
        if node.steps_total == 0 {
            return name.to_owned();
        }
        let mut out = String::from("[");
        if self.plan.options.multi_platform {
            out.push_str(&super::format_platform(platform));
            out.push(' ');
        }
        if !node.display_name.is_empty() {
            out.push_str(&node.display_name);
            out.push(' ');
        }
        let width = node.steps_total.to_string().len();
        out.push_str(&format!("{:>width$}/{}] ", done + 1, node.steps_total));
        if onbuild {
            out.push_str("ONBUILD ");
        }
        out.push_str(name);
        out
    }

    /// Records a step in the image's history, dated `SOURCE_DATE_EPOCH`
    /// when given.
    fn commit(&self, stage: &mut StageState, message: String, with_layer: bool, buildkit: bool) {
        stage.image.commit(message, with_layer, buildkit, self.epoch.as_deref());
    }

    /// A step's text as progress shows it: variables expanded (unset ones
    /// left as written), the instruction in capitals.
    fn shown_name(&self, state: &State, text: &str) -> String {
        let env = StateEnv(state);
        let mut lexer = self.plan.lexer.clone();
        lexer.raw_quotes = true;
        lexer.skip_unset_env = true;
        let expanded = lexer.expand(text, &env).unwrap_or_else(|_| text.to_owned());
        uppercase_command(&expanded)
    }

    fn step_name(&self, n: usize, stage: &mut StageState, text: &str, onbuild: bool) -> String {
        let shown = self.shown_name(&stage.state, text);
        self.numbered(n, stage, &shown, onbuild)
    }

    /// `shown` (a step's name as expanded) numbered as the stage's next
    /// step, which it counts.
    fn numbered(&self, n: usize, stage: &mut StageState, shown: &str, onbuild: bool) -> String {
        let out = self.prefix(n, stage.steps_done, shown, onbuild, &stage.platform);
        stage.steps_done += 1;
        out
    }

    /// Op options of a step: its progress name, the Dockerfile lines it
    /// comes from, and (for RUN and FROM) the instruction as a description.
    fn op(&self, name: String, lines: Option<(usize, usize)>, command: Option<&str>) -> OpOptions {
        let mut options = OpOptions::named(name);
        if let Some((start, end)) = lines {
            options.location = Some(self.plan.source_map.location(vec![range(start, end)]));
        }
        if let Some(command) = command {
            options.description.insert("com.docker.dockerfile.v1.command".to_owned(), command.to_owned());
        }
        options
    }

    /// A command's lines; ONBUILD triggers point at their stage's FROM.
    fn lines(&self, n: usize, command: &Command, onbuild: bool) -> (usize, usize) {
        if onbuild {
            let line = self.plan.nodes[n].line;
            (line, line)
        } else {
            (command.line, command.end_line)
        }
    }

    /// `KEY=VALUE` words of ENV or LABEL, all expanded against the
    /// environment before the instruction (`ENV A=1 B=$A` does not see this
    /// A), as Go expands a whole command before dispatching it.
    fn expand_pairs(
        &self,
        stage: &StageState,
        pairs: &[(String, String)],
        line: usize,
    ) -> Result<Vec<(String, String)>, CompileError> {
        pairs.iter().map(|(k, v)| Ok((self.expand(stage, k, line)?, self.expand(stage, v, line)?))).collect()
    }

    fn expand(&self, stage: &StageState, word: &str, line: usize) -> Result<String, CompileError> {
        self.plan.lexer.expand(word, &StateEnv(&stage.state)).map_err(|e| CompileError::step(line, e.to_string()))
    }

    fn command(
        &mut self,
        n: usize,
        stage: &mut StageState,
        command: &Command,
        sources: &[usize],
        onbuild: bool,
    ) -> Result<(), CompileError> {
        let line = command.line;
        match &command.kind {
            CommandKind::Env(pairs) => {
                let mut message = String::from("ENV");
                for (key, value) in self.expand_pairs(stage, pairs, line)? {
                    message.push_str(&format!(" {key}={value}"));
                    stage.state = stage.state.add_env(&key, &value);
                    stage.image.add_env(&key, &value);
                }
                self.commit(stage, message, false, false);
            }
            CommandKind::Label(pairs) => {
                let mut message = String::from("LABEL");
                for (key, value) in self.expand_pairs(stage, pairs, line)? {
                    message.push_str(&format!(" {key}={value}"));
                    stage.image.config.labels.insert(key, value);
                }
                self.commit(stage, message, false, false);
            }
            CommandKind::Maintainer(name) => {
                stage.image.author = name.clone();
                self.commit(stage, format!("MAINTAINER {name}"), false, false);
            }
            CommandKind::Workdir(path) => {
                let path = self.expand(stage, path, line)?;
                self.workdir(n, stage, &path, command, onbuild)?;
            }
            CommandKind::User(user) => {
                let user = self.expand(stage, user, line)?;
                stage.state = stage.state.user(&user);
                stage.image.config.user = user.clone();
                self.commit(stage, format!("USER {user}"), false, false);
            }
            CommandKind::Cmd(cmd) => {
                let args = self.with_shell(stage, cmd);
                stage.image.config.cmd = args.clone();
                stage.image.config.args_escaped = true;
                stage.cmd_set = true;
                self.commit(stage, format!("CMD {}", go_quote_list(&args)), false, false);
            }
            CommandKind::Entrypoint(cmd) => {
                let args = self.with_shell(stage, cmd);
                stage.image.config.entrypoint = args.clone();
                if !stage.cmd_set {
                    stage.image.config.cmd.clear();
                }
                self.commit(stage, format!("ENTRYPOINT {}", go_quote_list(&args)), false, false);
            }
            CommandKind::Shell(shell) => {
                stage.image.config.shell = shell.clone();
                self.commit(stage, format!("SHELL {}", go_list(shell)), false, false);
            }
            CommandKind::Expose(ports) => {
                // The frontend sorts the words as written (instructions'
                // `parseExpose`), before expanding them.
                let mut ports = ports.clone();
                ports.sort();
                let mut words = Vec::new();
                for port in &ports {
                    words.extend(
                        self.plan
                            .lexer
                            .expand_words(port, &StateEnv(&stage.state))
                            .map_err(|e| CompileError::step(line, e.to_string()))?,
                    );
                }
                let mut specs = Vec::new();
                for word in &words {
                    specs.extend(parse_port(word).map_err(|m| CompileError::step(line, m))?);
                }
                for spec in &specs {
                    stage.image.config.exposed_ports.insert(spec.clone(), image::Empty {});
                }
                self.commit(stage, format!("EXPOSE {}", go_list(&specs)), false, false);
            }
            CommandKind::Volume(volumes) => {
                let mut expanded = Vec::new();
                for volume in volumes {
                    let volume = self.expand(stage, volume, line)?;
                    if volume.is_empty() {
                        return Err(CompileError::step(line, "VOLUME specified can not be an empty string"));
                    }
                    expanded.push(volume);
                }
                for volume in &expanded {
                    stage.image.config.volumes.insert(volume.clone(), image::Empty {});
                }
                self.commit(stage, format!("VOLUME {}", go_list(&expanded)), false, false);
            }
            CommandKind::StopSignal(signal) => {
                let signal = self.expand(stage, signal, line)?;
                if !crate::dockerfile::instructions::is_signal(&signal) {
                    return Err(CompileError::step(line, format!("invalid signal: {signal}")));
                }
                stage.image.config.stop_signal = signal.clone();
                self.commit(stage, format!("STOPSIGNAL {signal}"), false, false);
            }
            CommandKind::Healthcheck { test, flags } => {
                let health = healthcheck(test.as_ref(), flags).map_err(|m| CompileError::step(line, m))?;
                let message = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_list(&health.test),
                    image::format_go_duration(health.interval),
                    image::format_go_duration(health.timeout),
                    image::format_go_duration(health.start_period),
                    image::format_go_duration(health.start_interval),
                    health.retries
                );
                stage.image.config.healthcheck = Some(health);
                self.commit(stage, message, false, false);
            }
            CommandKind::Onbuild(expression) => stage.image.config.on_build.push(expression.clone()),
            CommandKind::Arg(pairs) => self.arg(stage, pairs, line)?,
            CommandKind::Run { command: cmd, mounts, network, security, devices, heredocs } => {
                let flags = RunFlags { mounts, network, security, devices };
                self.run_command(n, stage, command, cmd, flags, heredocs, sources, onbuild)?;
            }
            CommandKind::Copy { transfer, from, parents } => {
                let source = match (from, sources.first()) {
                    (Some(from), Some(source)) => match self.done.get(source) {
                        Some(done) => Some(done.state.clone()),
                        None => {
                            let current = &self.plan.nodes[n].display_name;
                            return Err(CompileError::step(
                                line,
                                format!(
                                    "cannot copy from stage {from:?}, it needs to be defined before current stage {current:?}"
                                ),
                            ));
                        }
                    },
                    _ => None,
                };
                let transfer = self.expand_transfer(stage, transfer, line)?;
                let read_from = source.as_ref().and(sources.first()).map(|s| self.chain_root(*s));
                self.copy(n, stage, command, &transfer, source, *parents, None, onbuild)?;
                if let Some(root) = read_from {
                    let paths = self.paths.entry(root).or_default();
                    paths.extend(transfer.sources.iter().map(|src| gopath::join(&["/", src])));
                }
            }
            CommandKind::Add { transfer, keep_git_dir, checksum, unpack } => {
                let transfer = self.expand_transfer(stage, transfer, line)?;
                let checksum = match checksum {
                    Some(checksum) => self.expand(stage, checksum, line)?,
                    None => String::new(),
                };
                let add = AddOptions { unpack: *unpack, keep_git_dir: *keep_git_dir, checksum };
                self.copy(n, stage, command, &transfer, None, false, Some(add), onbuild)?;
            }
        }
        Ok(())
    }

    fn expand_transfer(&self, stage: &StageState, transfer: &Transfer, line: usize) -> Result<Transfer, CompileError> {
        let mut out = transfer.clone();
        for source in &mut out.sources {
            *source = self.expand(stage, source, line)?;
        }
        out.dest = self.expand(stage, &transfer.dest, line)?;
        if let Some(chown) = &transfer.chown {
            out.chown = Some(self.expand(stage, chown, line)?).filter(|c| !c.is_empty());
        }
        if let Some(chmod) = &transfer.chmod {
            out.chmod = Some(self.expand(stage, chmod, line)?).filter(|c| !c.is_empty());
        }
        for (_, content, expand) in &mut out.inline {
            if *expand {
                // Go's `ExpandRaw`: a lexer of its own with the default
                // escape, quotes ordinary characters (`'${A}'` is expanded),
                // escapes consumed as in a word.
                let mut lexer = Lexer::new('\\');
                lexer.skip_process_quotes = true;
                *content = lexer
                    .expand(content, &StateEnv(&stage.state))
                    .map_err(|e| CompileError::step(line, e.to_string()))?;
            }
        }
        Ok(out)
    }

    fn with_shell(&self, stage: &StageState, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(text) => {
                let mut shell = if stage.image.config.shell.is_empty() {
                    vec!["/bin/sh".to_owned(), "-c".to_owned()]
                } else {
                    stage.image.config.shell.clone()
                };
                shell.push(text.clone());
                shell
            }
        }
    }

    fn arg(
        &mut self,
        stage: &mut StageState,
        pairs: &[(String, Option<String>)],
        line: usize,
    ) -> Result<(), CompileError> {
        let globals = &self.plan.global_args;
        let mut parts = Vec::new();
        for (key, default) in pairs {
            let given = self.plan.build_args.get(key);
            let mut value = default.clone();
            if default.is_none() && given.is_none() {
                if let Some(global) = globals.get(key) {
                    value = Some(global.to_owned());
                }
            }
            if let Some(given) = given {
                value = Some(given.clone());
            } else if let Some(default) = default {
                value = Some(self.expand(stage, default, line)?);
            }
            if let Some(value) = &value {
                if !key.starts_with("BUILDKIT_SBOM_SCAN_") {
                    stage.state = stage.state.add_env(key, value);
                }
            }
            stage.build_args.push((key.clone(), value.clone()));
            parts.push(match &value {
                Some(value) => format!("{key}={value}"),
                None => key.clone(),
            });
        }
        self.commit(stage, format!("ARG {}", parts.join(" ")), false, false);
        Ok(())
    }

    fn workdir(
        &mut self,
        n: usize,
        stage: &mut StageState,
        path: &str,
        command: &Command,
        onbuild: bool,
    ) -> Result<(), CompileError> {
        let wd = normalize_path(&stage.image.config.working_dir, path, false);
        stage.image.config.working_dir = wd.clone();
        stage.state = stage.state.dir(&wd);
        let with_layer = wd != "/";
        if with_layer {
            let mut mkdir = Mkdir::new(wd.clone(), 0o755).make_parents(true);
            if !stage.image.config.user.is_empty() {
                mkdir = mkdir.owner(Chown::parse(&stage.image.config.user));
            }
            mkdir.created = self.epoch_nanos;
            let name = self.step_name(n, stage, &command.original, onbuild);
            let options = self.op(name, Some(self.lines(n, command, onbuild)), None);
            stage.state = stage.state.platform(stage.platform.clone()).file_with(FileAction::from(mkdir), options);
        }
        self.commit(stage, format!("WORKDIR {wd}"), with_layer, false);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_command(
        &mut self,
        n: usize,
        stage: &mut StageState,
        command: &Command,
        cmd: &CommandLine,
        flags: RunFlags<'_>,
        heredocs: &[crate::dockerfile::Heredoc],
        sources: &[usize],
        onbuild: bool,
    ) -> Result<(), CompileError> {
        let RunFlags { mounts, network, security, devices } = flags;
        let line = command.line;
        // A command may read any file of the stage.
        let root = self.chain_root(n);
        self.paths.entry(root).or_default().insert("/".to_owned());
        let mut custom = command.original.clone();
        let (mut args, prepend_shell) = match cmd {
            CommandLine::Exec(args) => (args.clone(), false),
            CommandLine::Shell(text) => (vec![text.clone()], true),
        };
        let mut extra_mounts = Vec::new();
        if !heredocs.is_empty() {
            if args.len() != 1 || !prepend_shell {
                return Err(CompileError::step(line, format!("parsing produced an invalid run command: {args:?}")));
            }
            if let Some(_name) = single_heredoc(&args[0]) {
                let file = &heredocs[0];
                let data = if file.chomp { chomp_heredoc(&file.content) } else { file.content.clone() };
                if data.starts_with("#!") && stage.image.os != "windows" {
                    let script = llb::scratch().dir("/").platform(stage.platform.clone()).file_with(
                        FileAction::from(Mkfile::new(file.name.clone(), 0o755, data.clone().into_bytes())),
                        OpOptions {
                            custom_name: Some("[internal] preparing inline document".into()),
                            ..Default::default()
                        },
                    );
                    extra_mounts.push(Mount::bind("/dev/pipes/", &script).source_path("/").readonly());
                    args = vec![gopath::join(&["/dev/pipes/", &file.name])];
                } else {
                    args = vec![data];
                }
                custom.push_str(&format!(" ({})", summarize_heredoc(&file.content)));
            } else {
                let mut text = args[0].clone();
                for file in heredocs {
                    text.push('\n');
                    text.push_str(&file.content);
                    text.push_str(&file.name);
                }
                args = vec![text];
            }
        }
        if prepend_shell {
            args = self.with_shell(stage, &CommandLine::Shell(args.join(" ")));
        }

        let mut run = Run::new(args.clone());
        // Mounts, in the order written.
        let env_before = StateEnv(&stage.state);
        let mut masked: Vec<String> = Vec::new();
        for (i, value) in mounts.iter().enumerate() {
            let mut mount = parse_mount(value, &self.plan.lexer, &env_before)
                .map_err(|m| CompileError::step(line, m.to_string()))?;
            if mount.from.is_empty() && mount.kind == MountKind::Cache {
                mount.from = "scratch".into();
            }
            match mount.kind {
                MountKind::Secret => {
                    let id = if !mount.source.is_empty() { mount.source.clone() } else { mount.id.clone() };
                    let id = if id.is_empty() {
                        if mount.target.is_empty() {
                            return Err(CompileError::step(line, "one of source, target required"));
                        }
                        gopath::base(&mount.target)
                    } else {
                        id
                    };
                    let target = match (&mount.env, mount.target.is_empty()) {
                        (Some(_), true) => None,
                        (_, false) => Some(mount.target.clone()),
                        (None, true) => Some(format!("/run/secrets/{}", gopath::base(&id))),
                    };
                    let (uid, gid, mode) =
                        (mount.uid.unwrap_or(0), mount.gid.unwrap_or(0), mount.mode.unwrap_or(0o400));
                    if let Some(target) = target {
                        run = run.mount(Mount::secret(&target, &id, uid, gid, mode, !mount.required));
                    }
                    if let Some(env) = &mount.env {
                        run = run.secret_env(env, &id, !mount.required);
                        masked.push(env.clone());
                    }
                    continue;
                }
                MountKind::Ssh => {
                    if !mount.source.is_empty() {
                        return Err(CompileError::step(line, "ssh does not support source"));
                    }
                    let (uid, gid, mode) =
                        (mount.uid.unwrap_or(0), mount.gid.unwrap_or(0), mount.mode.unwrap_or(0o600));
                    run = run.mount(Mount::ssh(&mount.target, &mount.id, uid, gid, mode, !mount.required));
                    continue;
                }
                _ => {}
            }
            let mut source = self.context.clone();
            if !mount.from.is_empty() {
                let node = sources.get(i).copied();
                match node.and_then(|node| self.done.get(&node)) {
                    Some(done) => source = done.state.clone(),
                    None => {
                        return Err(CompileError::step(
                            line,
                            format!(
                            "cannot mount from stage {:?} to {:?}, stage needs to be defined before current command",
                            mount.from, mount.target
                        ),
                        ))
                    }
                }
            }
            let mut target = mount.target.clone();
            if !gopath::clean(&target).starts_with('/') {
                target = gopath::join(&["/", stage.state.get_dir(), &mount.target]);
            }
            if target == "/" {
                return Err(CompileError::step(line, format!("invalid mount target {target:?}")));
            }
            let selector = gopath::join(&["/", &mount.source]);
            let built = match mount.kind {
                MountKind::Tmpfs => Mount::tmpfs(&target, mount.size),
                MountKind::Cache => {
                    let id = if mount.id.is_empty() { gopath::clean(&mount.target) } else { mount.id.clone() };
                    let id = mounts::cache_id(&self.plan.options.cache_namespace, &id);
                    let sharing = match mount.sharing.as_str() {
                        "private" => pb::CacheSharingOpt::Private,
                        "locked" => pb::CacheSharingOpt::Locked,
                        _ => pb::CacheSharingOpt::Shared,
                    };
                    let cache = if selector != "/" {
                        Mount::cache_from(&target, &id, sharing, &source, &selector)
                    } else if mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some() {
                        let base = mounts::owned_cache_base(
                            &source,
                            mount.uid,
                            mount.gid,
                            mount.mode,
                            OpOptions::named("[internal] setting cache mount permissions"),
                        );
                        Mount::cache_from(&target, &id, sharing, &base, mounts::OWNED_CACHE_DIR)
                    } else if source.is_scratch() {
                        Mount::cache(&target, &id, sharing)
                    } else {
                        Mount::cache_from(&target, &id, sharing, &source, "")
                    };
                    if mount.readonly {
                        cache.readonly()
                    } else {
                        cache
                    }
                }
                MountKind::Bind => {
                    let mut bind = Mount::bind(&target, &source);
                    if selector != "/" {
                        bind = bind.source_path(&selector);
                    }
                    if mount.readonly {
                        bind.readonly()
                    } else {
                        bind.force_no_output()
                    }
                }
                MountKind::Secret | MountKind::Ssh => unreachable!("handled above"),
            };
            if mount.from.is_empty() {
                self.context_paths.insert(selector);
            }
            run = run.mount(built);
        }
        for mount in extra_mounts {
            run = run.mount(mount);
        }
        match network.as_deref() {
            None | Some("default") => {
                if let Some(forced) = self.plan.options.network {
                    run = run.network(forced);
                }
            }
            Some("none") => run = run.network(pb::NetMode::None),
            Some("host") => run = run.network(pb::NetMode::Host),
            Some(other) => return Err(CompileError::step(line, format!("unsupported network mode {other:?}"))),
        }
        match security.as_deref() {
            None | Some("sandbox") => {}
            Some("insecure") => run = run.security(pb::SecurityMode::Insecure),
            Some(other) => return Err(CompileError::step(line, format!("unsupported security mode {other:?}"))),
        }
        for (name, soft, hard) in &self.plan.options.ulimits {
            run = run.ulimit(name, *soft, *hard);
        }
        // The daemon's built-in frontend is built without the `dfrundevice`
        // tag: it refuses devices here, after the mounts, on reachable
        // stages only (their syntax was checked while parsing).
        if !devices.is_empty() {
            return Err(CompileError::step(
                line,
                "device feature is only supported in Dockerfile frontend 1.14.0-labs or later",
            ));
        }
        for (host, ip) in &self.plan.options.extra_hosts {
            run = run.extra_host(host, *ip);
        }
        if self.plan.options.shm_size > 0 {
            run = run.mount(Mount::tmpfs("/dev/shm", self.plan.options.shm_size));
        }
        if !self.plan.options.cgroup_parent.is_empty() {
            run = run.cgroup_parent(&self.plan.options.cgroup_parent);
        }
        // The frontend sets the hostname on every stage's state, so every
        // RUN of the build has it.
        if !self.plan.options.hostname.is_empty() {
            run = run.hostname(&self.plan.options.hostname);
        }

        // Secrets given as variables show as `****` in the step's name.
        let name = if masked.is_empty() {
            self.step_name(n, stage, &custom, onbuild)
        } else {
            let masked_state = masked.iter().fold(stage.state.clone(), |state, key| state.add_env(key, "****"));
            let shown = self.shown_name(&masked_state, &custom);
            self.numbered(n, stage, &shown, onbuild)
        };
        let mut options = self.op(name, Some(self.lines(n, command, onbuild)), Some(&command.original));
        options.ignore_cache = self.ignore_cache;
        options.linux_resources = self.plan.options.linux_resources.clone();
        run = run.options(options);
        let history = format!("RUN {}", run_command_string(&args, &stage.build_args, &StateEnv(&stage.state)));
        stage.state = stage.state.run(run).root();
        self.commit(stage, history, true, true);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        n: usize,
        stage: &mut StageState,
        command: &Command,
        transfer: &Transfer,
        from: Option<State>,
        parents: bool,
        add: Option<AddOptions>,
        onbuild: bool,
    ) -> Result<(), CompileError> {
        let line = command.line;
        let is_add = add.is_some();
        let unpack = add.as_ref().and_then(|a| a.unpack);
        // Both can be set by one git source's URL for the sources after it,
        // as the frontend's `copyConfig` is.
        let mut keep_git_dir = add.as_ref().and_then(|a| a.keep_git_dir);
        let mut checksum = add.as_ref().map(|a| a.checksum.clone()).unwrap_or_default();
        let dest = relative_to_workdir(stage.state.get_dir(), &transfer.dest);
        let (mode, mode_str) = match &transfer.chmod {
            None => (None, None),
            Some(chmod) => parse_chmod(chmod).map_err(|m| CompileError::step(line, m))?,
        };
        let owner = transfer.chown.as_deref().map(Chown::parse);
        check_sources(is_add, &transfer.sources, &checksum, keep_git_dir)
            .map_err(|m| CompileError::step(line, m.to_string()))?;
        // What every copy of the instruction shares, whatever its source.
        let copy_of = |source: &State, src: String| {
            let mut copy = Copy::new(source, src, dest.clone());
            copy.mode = mode;
            copy.mode_str = mode_str.clone();
            copy.owner = owner.clone();
            copy.create_dest_path = true;
            copy.exclude_patterns = transfer.exclude.clone();
            copy
        };

        let mut message = String::from(if is_add { "ADD" } else { "COPY" });
        if parents {
            message.push_str(" --parents");
        }
        if let Some(chown) = &transfer.chown {
            message.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = &transfer.chmod {
            message.push_str(&format!(" --chmod={chmod}"));
        }

        let from_context = from.is_none();
        let source = from.unwrap_or_else(|| self.context.clone());
        let shown = self.shown_name(&stage.state, &command.original);
        let index_before = stage.steps_done;
        let pending_name = self.numbered(n, stage, &shown, onbuild);
        let mut copies: Vec<Copy> = Vec::new();
        for src in &transfer.sources {
            message.push_str(&format!(" {src}"));
            // As the frontend: every source but an http(s) URL counts as a
            // context path (a git URL too, harmlessly).
            if from_context && !src.starts_with("http://") && !src.starts_with("https://") {
                self.context_paths.insert(gopath::join(&["/", src]));
            }
            // Checked above, with the frontend's words.
            let git = parse_git_ref(src).ok().flatten();
            if let Some(git) = git.filter(|g| !g.indistinguishable_from_local) {
                keep_git_dir = git.keep_git_dir.or(keep_git_dir);
                if !git.checksum.is_empty() {
                    checksum = git.checksum.clone();
                }
                if git.reference.contains(':') {
                    // `llb::git` reads `:` as the start of the folder.
                    return Err(CompileError::unsupported(line, "a git reference holding ':'"));
                }
                let options = llb::GitOptions {
                    keep_git_dir: keep_git_dir == Some(true),
                    subdir: Some(git.subdir.clone()).filter(|s| !s.is_empty()),
                    checksum: Some(checksum.clone()).filter(|c| !c.is_empty()),
                    skip_submodules: git.submodules == Some(false),
                    fetch_by_commit: git.fetch_by_commit,
                    op: self.op(pending_name.clone(), None, None),
                    ..Default::default()
                };
                copies.push(copy_of(&llb::git(&git.remote, &git.reference, options), "/".to_owned()));
                continue;
            }
            let mut src = src.clone();
            let mut include_patterns = Vec::new();
            let mut required_paths = Vec::new();
            if parents {
                let (parent, pattern) = match src.split_once("/./") {
                    Some((parent, pattern)) => (parent.to_owned(), pattern.to_owned()),
                    None => ("/".to_owned(), src.clone()),
                };
                let pattern = normalize_path("/", &pattern, false);
                include_patterns.push(pattern.trim_start_matches('/').to_owned());
                if !contains_wildcards(&parent) && !contains_wildcards(&pattern) {
                    required_paths.push(normalize_path("/", &gopath::join(&[&parent, &pattern]), false));
                }
                src = parent;
            }
            if is_http(&src) {
                // A download: the file named after the URL's last element.
                let name = url_file_name(&src);
                let http = llb::http(
                    &src,
                    llb::HttpOptions {
                        filename: Some(name.clone()),
                        checksum: Some(checksum.clone()).filter(|c| !c.is_empty()),
                        op: self.op(pending_name.clone(), None, Some("")),
                        ..Default::default()
                    },
                );
                let mut copy = copy_of(&http, name);
                copy.attempt_unpack = unpack.unwrap_or(false);
                copies.push(copy);
                continue;
            }
            let mut copy = copy_of(&source, normalize_path("/", &src, false));
            copy.required_paths = required_paths;
            copy.follow_symlinks = true;
            copy.dir_contents_only = true;
            copy.include_patterns = include_patterns;
            copy.attempt_unpack = if is_add { unpack.unwrap_or(true) } else { false };
            copy.allow_wildcard = true;
            copy.allow_empty_wildcard = true;
            copies.push(copy);
        }
        for (name, content, _) in &transfer.inline {
            message.push_str(&format!(" <<{name}"));
            let file = llb::scratch().platform(stage.platform.clone()).file_with(
                FileAction::from(Mkfile::new(name.clone(), 0o644, content.clone().into_bytes())),
                OpOptions { custom_name: Some("[internal] preparing inline document".into()), ..Default::default() },
            );
            copies.push(copy_of(&file, name.clone()));
        }
        message.push_str(&format!(" {}", transfer.dest));

        let mut copies = copies.into_iter();
        let Some(first) = copies.next() else {
            return Err(CompileError::step(line, "no source files were specified"));
        };
        let mut action = FileAction::from(first);
        for copy in copies {
            action = action.then(copy);
        }
        let lines = Some(self.lines(n, command, onbuild));
        if transfer.link && transfer.chmod.is_none() {
            // `--link`: the copy lands on an empty filesystem and is merged
            // onto the stage, so it does not depend on (or invalidate with)
            // what is below it. Both ops share one progress group.
            let group = uuid::Uuid::new_v4().simple().to_string();
            let mut copy_options = self.op(pending_name.clone(), lines, None);
            copy_options.ignore_cache = self.ignore_cache;
            copy_options.progress_group =
                Some(llb::ProgressGroup { id: group.clone(), name: pending_name.clone(), weak: true });
            let layer = llb::scratch().platform(stage.platform.clone()).file_with(action, copy_options);
            let link_name = self.prefix(n, index_before, &format!("LINK {shown}"), onbuild, &stage.platform);
            let mut merge_options = self.op(link_name, lines, None);
            merge_options.ignore_cache = self.ignore_cache;
            merge_options.progress_group = Some(llb::ProgressGroup { id: group, name: pending_name, weak: false });
            let merged = llb::merge(&[stage.state.clone(), layer], merge_options);
            stage.state = stage.state.with_output_of(&merged);
        } else {
            let mut options = self.op(pending_name, lines, None);
            options.ignore_cache = self.ignore_cache;
            stage.state = stage.state.file_with(action, options);
        }
        self.commit(stage, message, true, true);
        Ok(())
    }
}

/// Lines `start..=end` as a source map range (columns are not tracked, as
/// in the frontend's parser).
fn range(start: usize, end: usize) -> pb::Range {
    let position = |line: usize| Some(pb::Position { line: line as i32, character: 0 });
    pb::Range { start: position(start), end: position(end) }
}

/// A stage's environment as a variable source for expansion.
struct StateEnv<'s>(&'s State);

impl Env for StateEnv<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get_env(name)
    }
}

/// Go's `system.NormalizePath` for Linux: `new` against `parent` unless
/// absolute (an absolute path is kept as written), a meaningful trailing
/// slash kept with `keep_slash`.
fn normalize_path(parent: &str, new: &str, keep_slash: bool) -> String {
    let parent = if parent.is_empty() { "/".to_owned() } else { parent.to_owned() };
    let parent = if parent.starts_with('/') { parent } else { gopath::join(&["/", &parent]) };
    let original = new;
    let mut out = if new.is_empty() { parent.clone() } else { new.to_owned() };
    if !out.starts_with('/') {
        out = gopath::join(&[&parent, &out]);
    }
    if keep_slash {
        gopath::keep_trailing_slash(original, &mut out);
    }
    out
}

/// Go's `pathRelativeToWorkingDir` for a copy destination.
fn relative_to_workdir(dir: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return normalize_path("/", dest, true);
    }
    let dest = if dest == "." || dest.is_empty() { "./" } else { dest };
    normalize_path(dir, dest, true)
}

fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The flags of a `RUN`, as parsed.
struct RunFlags<'c> {
    mounts: &'c [String],
    network: &'c Option<String>,
    security: &'c Option<String>,
    devices: &'c [String],
}

/// How an `ADD` differs from a `COPY`.
#[derive(Debug, Clone)]
struct AddOptions {
    unpack: Option<bool>,
    keep_git_dir: Option<bool>,
    /// `--checksum`, expanded; empty when not given.
    checksum: String,
}

/// The file name a download gets: the URL path's last element, else
/// `__unnamed__` (Go's rule in `dispatchCopy`).
fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let base = gopath::base(path);
    if base == "." || base == "/" || path.is_empty() {
        "__unnamed__".to_owned()
    } else {
        base
    }
}

/// `--chmod`: octal bits up to 07777, or a symbolic mode (`u+x`) passed on
/// as a string, with the frontend's message for anything else.
fn parse_chmod(chmod: &str) -> Result<(Option<u32>, Option<String>), String> {
    let invalid = || format!("invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777");
    match u32::from_str_radix(chmod, 8) {
        Ok(mode) if mode <= 0o7777 => Ok((Some(mode), None)),
        Ok(_) => Err(invalid()),
        Err(_) if chmod.chars().all(|c| c.is_ascii_digit()) => Err(invalid()),
        Err(_) => check_symbolic_mode(chmod).map(|()| (None, Some(chmod.to_owned()))),
    }
}

/// A symbolic mode (`u+x`, `go-w,a+r`) as tonistiigi/dchapes-mode accepts it.
fn check_symbolic_mode(mode: &str) -> Result<(), String> {
    let valid = mode.split(',').all(|clause| {
        let who_end = clause.find(|c: char| !"ugoa".contains(c)).unwrap_or(clause.len());
        let rest = &clause[who_end..];
        !rest.is_empty() && rest.starts_with(['+', '-', '=']) && rest.chars().all(|c| "+-=rwxXstugo".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(format!("invalid chmod parameter: '{mode}'. it should be octal string and between 0 and 07777"))
    }
}

fn uppercase_command(text: &str) -> String {
    match text.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => text.to_uppercase(),
    }
}

/// The heredoc name when the whole command is one heredoc marker
/// (`<<EOF`, `<<-"EOF"`), as Go's `MustParseHeredoc`.
fn single_heredoc(text: &str) -> Option<String> {
    let rest = text.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest.contains('<') {
        return None;
    }
    let word = rest.trim_matches(['"', '\'']);
    if word.is_empty() || word.chars().any(char::is_whitespace) {
        return None;
    }
    Some(word.to_owned())
}

fn chomp_heredoc(content: &str) -> String {
    content.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
}

fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let doc = doc.replace("\r\n", "\n");
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// Go's `runCommandString`: the build args a RUN sees, then its command.
fn run_command_string(args: &[String], build_args: &[(String, Option<String>)], env: &dyn Env) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, value) in build_args {
        let value = env.get(key).map(str::to_owned).unwrap_or_else(|| value.clone().unwrap_or_default());
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key.clone(), value)),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    if !entries.is_empty() {
        parts.push(format!("|{}", entries.len()));
        parts.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let container = parts.last().copied().unwrap_or_default();
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    let invalid = |why: String| format!("invalid port: {raw:?}: {why}");
    if port.is_empty() {
        return Err(invalid("no port specified".into()));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_owned(),
        "tcp" | "udp" | "sctp" => proto.to_ascii_lowercase(),
        _ => return Err(invalid(format!("invalid proto: {proto}"))),
    };
    let number = |s: &str| -> Result<u32, String> {
        let value: i64 = s.parse().map_err(|_| format!("invalid containerPort: {port}"))?;
        if !(0..=65535).contains(&value) {
            return Err(format!("invalid containerPort: {port}"));
        }
        Ok(value as u32)
    };
    let (start, end) = match port.split_once('-') {
        Some((a, b)) if a != b => (number(a)?, number(b)?),
        Some((a, _)) => (number(a)?, number(a)?),
        None => (number(port)?, number(port)?),
    };
    if end < start {
        return Err(format!("invalid containerPort: {port}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn healthcheck(test: Option<&CommandLine>, flags: &BTreeMap<String, String>) -> Result<image::Healthcheck, String> {
    let test = match test {
        None => vec!["NONE".to_owned()],
        Some(CommandLine::Exec(args)) => std::iter::once("CMD".to_owned()).chain(args.iter().cloned()).collect(),
        Some(CommandLine::Shell(text)) => vec!["CMD-SHELL".to_owned(), text.clone()],
    };
    let mut health = image::Healthcheck { test, ..Default::default() };
    let duration = |name: &str| -> Result<i64, String> {
        match flags.get(name) {
            None => Ok(0),
            Some(value) if value.is_empty() => Ok(0),
            Some(value) => {
                let d = image::parse_go_duration(value).map_err(|e| e.to_string())?;
                if d < 0 {
                    return Err(format!("Interval {name:?} cannot be negative"));
                }
                if d != 0 && d < 1_000_000 {
                    return Err(format!("Interval {name:?} cannot be less than 1ms"));
                }
                Ok(d)
            }
        }
    };
    health.interval = duration("interval")?;
    health.timeout = duration("timeout")?;
    health.start_period = duration("start-period")?;
    health.start_interval = duration("start-interval")?;
    if let Some(retries) = flags.get("retries").filter(|v| !v.is_empty()) {
        let retries: i64 =
            retries.parse().map_err(|_| format!("strconv.ParseInt: parsing {retries:?}: invalid syntax"))?;
        if retries < 0 {
            return Err(format!("--retries cannot be negative ({retries})"));
        }
        health.retries = retries;
    }
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::compile::EnvList;

    #[test]
    fn paths_normalize_as_go_does() {
        assert_eq!(relative_to_workdir("/app", "./"), "/app/");
        assert_eq!(relative_to_workdir("/app", "."), "/app/");
        assert_eq!(relative_to_workdir("/app", "x"), "/app/x");
        assert_eq!(relative_to_workdir("/app", "/etc/"), "/etc/");
        assert_eq!(normalize_path("/", "requirements.txt", false), "/requirements.txt");
        assert_eq!(normalize_path("/", ".", false), "/");
        assert_eq!(normalize_path("/app", "../x", false), "/x");
    }

    #[test]
    fn ports_and_run_strings() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(parse_port("8000-8002").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert!(parse_port("x").is_err());
        let env = EnvList(vec![("A".into(), "1".into())]);
        let args = ["/bin/sh".to_owned(), "-c".to_owned(), "true".to_owned()];
        assert_eq!(
            run_command_string(&args, &[("A".into(), Some("0".into())), ("B".into(), None)], &env),
            "|2 A=1 B= /bin/sh -c true"
        );
        assert_eq!(single_heredoc("<<-\"EOF\"").as_deref(), Some("EOF"));
        assert_eq!(single_heredoc("python3 <<EOF"), None);
    }
}
