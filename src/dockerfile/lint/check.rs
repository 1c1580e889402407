//! The walk of `dockerfile2llb.toDispatchState` in lint mode, keeping only
//! what the rules need: the environment of each stage (names in order, for
//! `UndefinedVar`'s suggestions), declared `ARG`s, `WORKDIR`/`SHELL`/`CMD`
//! state, and the global arguments of `FROM` lines.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use base64::Engine as _;

use super::rules::{self, Rule};
use super::{BuildError, CheckConfig, LintInput, LintResults, LintWarning, Location, SourceInfo};
use crate::dockerfile::instructions::{self, CommandKind};
use crate::dockerfile::parser::{self, Args, Instruction};
use crate::dockerfile::shell::{Env, Lexer};

/// Findings so far and the rules that reported (for `error=true`).
struct Report {
    warnings: Vec<LintWarning>,
    called: Vec<&'static str>,
}

impl Report {
    fn run(&mut self, config: &CheckConfig, rule: &Rule, location: Location, detail: String) {
        if !config.enabled(rule) {
            return;
        }
        self.called.push(rule.name);
        self.warnings.push(LintWarning {
            rule_name: rule.name.to_string(),
            description: rule.description.to_string(),
            url: rule.url.to_string(),
            detail,
            location,
        });
    }
}

/// An ordered environment (Go's `llb.EnvList`): later values replace
/// earlier ones in place.
#[derive(Debug, Clone, Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }
    fn keys(&self) -> Vec<String> {
        self.0.iter().map(|(k, _)| k.clone()).collect()
    }
    fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An environment that records which names a word looked up, found or
/// not (`ProcessWordWithMatches`' `Matched` / `Unmatched`), in order.
struct Recording<'a> {
    inner: &'a dyn Env,
    matched: RefCell<Vec<String>>,
    unmatched: RefCell<Vec<String>>,
}

impl<'a> Recording<'a> {
    fn new(inner: &'a dyn Env) -> Self {
        Recording { inner, matched: RefCell::default(), unmatched: RefCell::default() }
    }
}

impl Env for Recording<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let value = self.inner.get(name);
        let list = if value.is_some() { &self.matched } else { &self.unmatched };
        let mut list = list.borrow_mut();
        if !list.iter().any(|n| n == name) {
            list.push(name.to_string());
        }
        value
    }
}

/// A word expanded: the result and the names used.
struct Expanded {
    result: Result<String, String>,
    matched: Vec<String>,
    unmatched: Vec<String>,
}

fn expand(lexer: &Lexer, word: &str, env: &dyn Env) -> Expanded {
    let recording = Recording::new(env);
    let result = lexer.expand(word, &recording).map_err(|e| e.to_string());
    Expanded { result, matched: recording.matched.into_inner(), unmatched: recording.unmatched.into_inner() }
}

/// A stage being dispatched.
#[derive(Debug, Clone, Default)]
struct StageState {
    env: EnvList,
    /// `ARG`s declared in the stage (and its parent stage).
    args: Vec<String>,
    workdir_set: bool,
    shell: Vec<String>,
    cmd: Option<Location>,
    entrypoint: Option<Location>,
    healthcheck: Option<Location>,
    /// `ONBUILD` triggers the stage registers (run by stages built on it).
    onbuild: Vec<Instruction>,
}

/// One `FROM` and its instructions.
struct Stage<'a> {
    from: &'a Instruction,
    /// `AS name` lowercased.
    name: Option<String>,
    base: String,
    platform: Option<String>,
    instructions: Vec<&'a Instruction>,
}

pub(super) fn run(input: &LintInput<'_>) -> LintResults {
    let mut results = LintResults {
        warnings: None,
        sources: vec![SourceInfo {
            filename: input.filename.to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(input.dockerfile),
            language: "Dockerfile".to_string(),
        }],
        error: None,
    };
    let mut report = Report { warnings: Vec::new(), called: Vec::new() };
    let outcome = walk(input, &mut report);
    if !report.warnings.is_empty() {
        results.warnings = Some(report.warnings);
    }
    results.error = outcome.err();
    results
}

fn fail(message: impl Into<String>, location: Location) -> BuildError {
    BuildError { message: message.into(), location }
}

fn walk(input: &LintInput<'_>, report: &mut Report) -> Result<(), BuildError> {
    // dockerui reads the build argument before anything else, and it
    // replaces the directive.
    let overriding = match input.check {
        Some(value) => Some(CheckConfig::parse(value).map_err(|e| {
            fail(format!("failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: {e}"), Location::default())
        })?),
        None => None,
    };
    if input.dockerfile.is_empty() {
        return Err(fail("the Dockerfile cannot be empty", Location::default()));
    }
    let dockerfile =
        parser::parse(input.dockerfile).map_err(|e| fail(e.message.clone(), Location::lines(e.line, e.end_line)))?;
    let directive = dockerfile.directives.iter().find(|(name, _, _)| name == "check");
    let config = match (overriding, directive) {
        (Some(config), _) => config,
        (None, Some((_, value, _))) => CheckConfig::parse(value)
            .map_err(|e| fail(format!("failed to parse check options: {e}"), Location::default()))?,
        (None, None) => CheckConfig::default(),
    };

    for warning in &dockerfile.warnings {
        if warning.message.starts_with("Empty continuation line") {
            let location = Location::lines(warning.line, warning.line);
            report.run(&config, &rules::NO_EMPTY_CONTINUATION, location, "Empty continuation line".into());
        }
    }

    // instructions.Parse: the parse-time rules, then the stages.
    let mut global_args: Vec<(String, Option<String>)> = Vec::new();
    let mut stages: Vec<Stage<'_>> = Vec::new();
    for instruction in &dockerfile.instructions {
        let here = config.with_comments(&instruction.comments);
        let location = Location::lines(instruction.start_line, instruction.end_line);
        let keyword = instruction.keyword.to_ascii_uppercase();
        let parse_error = |message: String| {
            fail(format!("dockerfile parse error on line {}: {message}", instruction.start_line), location.clone())
        };
        match keyword.as_str() {
            "MAINTAINER" => report.run(
                &here,
                &rules::MAINTAINER_DEPRECATED,
                location.clone(),
                "Maintainer instruction is deprecated in favor of using label".into(),
            ),
            "FROM" => {
                let args = match &instruction.args {
                    Args::Words(words) => words.clone(),
                    Args::Text(text) => vec![text.clone()],
                    _ => Vec::new(),
                };
                if args.len() == 3 && args[2] != args[2].to_lowercase() {
                    let detail = format!("Stage name '{}' should be lowercase", args[2]);
                    report.run(&here, &rules::STAGE_NAME_CASING, location.clone(), detail);
                }
                if args.len() >= 3 && !from_matches_as(&instruction.keyword, &args[1]) {
                    let detail = format!("'{}' and '{}' keywords' casing do not match", args[1], instruction.keyword);
                    report.run(&here, &rules::FROM_AS_CASING, location.clone(), detail);
                }
            }
            _ => {}
        }
        if keyword == "FROM" {
            // The stage's own checks (flags, arguments, its name) are the
            // instructions module's.
            let one = parser::Dockerfile {
                instructions: vec![instruction.clone()],
                directives: Vec::new(),
                escape: dockerfile.escape,
                warnings: Vec::new(),
            };
            let parsed = instructions::stages(&one).map_err(|e| parse_error(e.message))?;
            let stage = parsed.stages.into_iter().next().ok_or_else(|| parse_error("FROM".into()))?;
            if let Some(name) = &stage.name {
                definition_description("FROM", std::slice::from_ref(name), instruction, &here, report);
            }
            stages.push(Stage {
                from: instruction,
                name: stage.name,
                base: stage.base,
                platform: stage.platform,
                instructions: Vec::new(),
            });
            continue;
        }
        let kind = instructions::command(instruction, &keyword).map_err(parse_error)?;
        if let CommandKind::Arg(pairs) = &kind {
            let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
            definition_description("ARG", &keys, instruction, &here, report);
        }
        match stages.last_mut() {
            None => match kind {
                CommandKind::Arg(pairs) => global_args.extend(pairs),
                _ => return Err(parse_error("no build stage in current context".into())),
            },
            Some(stage) => stage.instructions.push(instruction),
        }
    }
    if stages.is_empty() {
        return Err(fail("dockerfile contains no stages to build", Location::default()));
    }

    validate_stage_names(&stages, &config, report);
    validate_command_casing(&stages, &config, report);

    let lexer = Lexer::new(dockerfile.escape);
    let target = input.target.map(str::to_string).or_else(|| stages.last().and_then(|s| s.name.clone()));
    let build_platform = input.build_platforms.first().map_or(input.platform, String::as_str);
    let defaults = default_args(build_platform, input.platform, input.build_args, target.as_deref());

    validate_base_images_with_default_args(&stages, &lexer, &defaults, &global_args, &config, report);

    let (global_env, all_args) =
        meta_args(&defaults, &lexer, &global_args, Some(input.build_args)).map_err(|e| fail(e, Location::default()))?;

    // buildDispatchStates: FROM lines expanded with the global arguments.
    let mut arg_keys: Vec<String> = all_args.clone();
    for key in global_env.keys() {
        if !arg_keys.contains(&key) {
            arg_keys.push(key);
        }
    }
    let mut bases = Vec::new();
    let mut platforms = Vec::new();
    for stage in &stages {
        let here = config.with_comments(&stage.from.comments);
        let location = Location::lines(stage.from.start_line, stage.from.end_line);
        let name = expand(&lexer, &stage.base, &global_env);
        report_unused_from_args(&arg_keys, &name.unmatched, &location, &here, report);
        let base = name.result.map_err(|e| fail(e, location.clone()))?;
        if base.is_empty() {
            return Err(fail(format!("base name ({}) should not be blank", stage.base), location));
        }
        let mut platform = None;
        if let Some(flag) = &stage.platform {
            let expanded = expand(&lexer, flag, &global_env);
            report_unused_from_args(&arg_keys, &expanded.unmatched, &location, &here, report);
            let result = expanded.result.clone().unwrap_or_default();
            if expanded.matched.len() == 1
                && expanded.unmatched.is_empty()
                && expanded.matched[0] == "TARGETPLATFORM"
                && global_env.get("TARGETPLATFORM") == Some(result.as_str())
            {
                let detail = format!(
                    "Setting platform to predefined {flag} in FROM is redundant as this is the default behavior"
                );
                report.run(&here, &rules::REDUNDANT_TARGET_PLATFORM, location.clone(), detail);
            }
            if expanded.matched.is_empty() && expanded.unmatched.is_empty() {
                if let Some((os, arch)) = parse_platform(&result) {
                    let name = stage.name.clone().unwrap_or_default();
                    if !name.contains(&os) && !name.contains(&arch) {
                        let detail =
                            format!("FROM --platform flag should not use constant value {}", go_quote(&result));
                        report.run(&here, &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED, location.clone(), detail);
                    }
                }
            }
            let result = expanded.result.map_err(|e| {
                fail(format!("failed to process arguments for platform {}: {e}", flag), location.clone())
            })?;
            if result.is_empty() {
                return Err(fail(format!("empty platform value from expression {flag}"), location));
            }
            platform = Some(result);
        }
        // dockerui's `NamedContext` parses every stage name as an image
        // reference (with no line), named contexts given or not.
        if let Some(name) = stage.name.as_deref() {
            if !name.eq_ignore_ascii_case("scratch") && !name.eq_ignore_ascii_case("context") {
                crate::llb::normalize_reference(name)
                    .map_err(|e| fail(format!("invalid context name {name}: {e}"), Location::default()))?;
            }
        }
        bases.push(base);
        platforms.push(platform);
    }

    // resolveTarget: a target that names no stage ends the conversion.
    if let Some(target) = input.target {
        let lower = target.to_lowercase();
        if !stages.iter().any(|s| s.name.as_deref() == Some(lower.as_str())) {
            let names: Vec<String> = stages
                .iter()
                .enumerate()
                .map(|(i, stage)| stage.name.clone().unwrap_or_else(|| format!("stage-{i}")))
                .collect();
            let mut message = format!("target stage {} could not be found", go_quote(target));
            if let Some(similar) = suggest(target, &names, true) {
                message.push_str(&format!(" (did you mean {similar}?)"));
            }
            return Err(fail(message, Location::default()));
        }
    }

    // Which stage each stage starts from (only earlier ones count).
    let parents: Vec<Option<usize>> = bases
        .iter()
        .enumerate()
        .map(|(i, base)| stages[..i].iter().position(|s| s.name.as_deref() == Some(base.to_lowercase().as_str())))
        .collect();

    // buildStageDependencyGraph: `COPY --from` and `RUN --mount=from=`
    // name stages or images (which the frontend resolves like bases).
    let mut images_from: Vec<(String, Location)> = Vec::new();
    let mut deps: Vec<Vec<(usize, Location)>> = vec![Vec::new(); stages.len()];
    // A source's node: a stage by index or name, else an image (a node of
    // its own, after the stages, made once per name).
    let mut node_of = |source: &str, location: &Location| -> usize {
        let lower = source.to_lowercase();
        match source.parse::<usize>() {
            Ok(index) if index < stages.len() => index,
            _ => match stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
                Some(index) => index,
                None => match images_from.iter().position(|(name, _)| name == source) {
                    Some(k) => stages.len() + k,
                    None => {
                        images_from.push((source.to_string(), location.clone()));
                        stages.len() + images_from.len() - 1
                    }
                },
            },
        }
    };
    for (i, stage) in stages.iter().enumerate() {
        for instruction in &stage.instructions {
            let location = Location::lines(instruction.start_line, instruction.end_line);
            for source in command_sources(instruction, &lexer)? {
                let target = node_of(&source, &location);
                if !deps[i].iter().any(|(t, _)| *t == target) {
                    deps[i].push((target, location.clone()));
                }
            }
        }
    }
    if let Some((stage, path)) = find_cycle(&deps) {
        let name = stages[stage].name.clone().unwrap_or_else(|| format!("stage-{stage}"));
        let ranges = path.into_iter().flat_map(|l| l.ranges).collect();
        return Err(fail(
            format!("circular dependency detected on stage: {name}"),
            Location { source_index: 0, ranges },
        ));
    }

    // ONBUILD triggers of a parent stage read from other nodes too
    // (`initOnBuildTriggers`, after the cycle check).
    let mut trigger_deps: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for i in 0..stages.len() {
        let Some(parent) = parents[i] else { continue };
        for instruction in &stages[parent].instructions {
            let Args::Sub(inner) = &instruction.args else { continue };
            if !instruction.keyword.eq_ignore_ascii_case("ONBUILD") {
                continue;
            }
            let location = Location::lines(instruction.start_line, instruction.end_line);
            for source in command_sources(inner, &lexer)? {
                trigger_deps[i].push(node_of(&source, &location));
            }
        }
    }

    // The stages (and images) the target needs (`allReachableStages`).
    let target_index = match input.target {
        Some(target) => {
            let lower = target.to_lowercase();
            stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())).unwrap_or(stages.len() - 1)
        }
        None => stages.len() - 1,
    };
    let mut reachable = BTreeSet::new();
    let mut pending = vec![target_index];
    while let Some(i) = pending.pop() {
        if !reachable.insert(i) || i >= stages.len() {
            continue;
        }
        pending.extend(parents[i]);
        pending.extend(deps[i].iter().map(|(t, _)| *t));
        pending.extend(trigger_deps[i].iter().copied());
    }
    // Lint mode (`AllStages`) treats every stage as reachable.
    let needed = |i: usize| input.all_stages || reachable.contains(&i);

    // resolveReachableStages: every name is parsed, and the images of the
    // needed stages resolved.
    let mut images = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let location = Location::lines(stage.from.start_line, stage.from.end_line);
        if parents[i].is_some() || bases[i].eq_ignore_ascii_case("scratch") {
            images.push(None);
            continue;
        }
        if let Some(error) = reference_error(&bases[i]) {
            return Err(fail(format!("failed to parse stage name {}: {error}", go_quote(&bases[i])), location));
        }
        if !needed(i) {
            images.push(None);
            continue;
        }
        let platform = platforms[i].clone().unwrap_or_else(|| input.platform.to_string());
        let image = (input.base_image)(&bases[i], &platform)
            .map_err(|e| fail(resolve_error(&bases[i], &e.message, &stages), location.clone()))?;
        if let Some(actual) = image.platform.as_deref().filter(|_| !image.named_context) {
            // Without any `--platform`, an image of a platform the worker
            // runs is built as it is (`autoDetectPlatform`).
            let expected = match (&platforms[i], input.implicit_platform) {
                (None, true) => auto_detect_platform(actual, &platform, input.build_platforms),
                _ => platform.clone(),
            };
            if let (Some(got), Some(want)) = (parse_platform(actual), parse_platform(&expected)) {
                if got != want {
                    let detail = format!(
                        "Base image {} was pulled with platform {}, expected {} for current build",
                        bases[i],
                        go_quote(&format_platform(actual)),
                        go_quote(&format_platform(&expected))
                    );
                    report.run(&config, &rules::INVALID_BASE_IMAGE_PLATFORM, location, detail);
                }
            }
        }
        images.push(Some(image));
    }

    for (k, (name, location)) in images_from.iter().enumerate() {
        if name == "scratch" {
            continue;
        }
        if let Some(error) = reference_error(name) {
            return Err(fail(format!("failed to parse stage name {}: {error}", go_quote(name)), location.clone()));
        }
        if needed(stages.len() + k) {
            (input.base_image)(name, input.platform)
                .map_err(|e| fail(resolve_error(name, &e.message, &stages), location.clone()))?;
        }
    }

    // dispatchStages: every stage in file order.
    let matcher = match input.dockerignore {
        Some(patterns) if !patterns.is_empty() => crate::fsync::patterns::PatternMatcher::new(patterns).ok(),
        _ => None,
    };
    // ONBUILD triggers are set up only for the stages the target needs
    // (`resolveStages` walks `allReachableStages(target)`), even when lint
    // dispatches every stage.
    let stage_names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let mut states: Vec<StageState> = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        if !needed(i) {
            states.push(StageState::default());
            continue;
        }
        let mut state = match parents[i] {
            Some(parent) => {
                let parent = &states[parent];
                StageState {
                    env: parent.env.clone(),
                    args: parent.args.clone(),
                    workdir_set: parent.workdir_set,
                    shell: parent.shell.clone(),
                    ..StageState::default()
                }
            }
            None => {
                let mut state = StageState::default();
                if let Some(image) = &images[i] {
                    for kv in &image.env {
                        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                        state.env.set(k, v);
                    }
                    state.shell = image.shell.clone();
                }
                if !state.env.contains("PATH") {
                    state.env.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
                }
                state
            }
        };
        // The image's triggers, then the parent stage's (`resolveStages`).
        let mut triggers: Vec<Instruction> = Vec::new();
        if let Some(image) = images[i].as_ref().filter(|_| reachable.contains(&i)) {
            for text in &image.onbuild {
                let parsed = parser::parse(text)
                    .map_err(|e| fail(e.message, Location::lines(stage.from.start_line, stage.from.end_line)))?;
                triggers.extend(parsed.instructions.into_iter().take(1));
            }
        }
        if reachable.contains(&i) {
            triggers.extend(parents[i].map(|p| states[p].onbuild.clone()).unwrap_or_default());
        }
        let dispatch = Dispatch {
            stage: i,
            stage_names: &stage_names,
            lexer: &lexer,
            config: &config,
            global_env: &global_env,
            build_args: input.build_args,
            matcher: matcher.as_ref(),
        };
        for trigger in &triggers {
            // A trigger runs (and reports) at the FROM of the stage built on
            // the one that registered it.
            let mut trigger = trigger.clone();
            trigger.start_line = stage.from.start_line;
            trigger.end_line = stage.from.end_line;
            dispatch.instruction(&mut state, &trigger, report)?;
        }
        for instruction in &stage.instructions {
            dispatch.instruction(&mut state, instruction, report)?;
        }
        states.push(state);
    }

    if config.error && !report.called.is_empty() {
        let mut unique: Vec<&str> = Vec::new();
        for rule in &report.called {
            if !unique.contains(rule) {
                unique.push(rule);
            }
        }
        return Err(fail(format!("lint violation found for rules: {}", unique.join(", ")), Location::default()));
    }
    Ok(())
}

struct Dispatch<'a> {
    /// The stage's index, and every stage's name.
    stage: usize,
    stage_names: &'a [Option<String>],
    lexer: &'a Lexer,
    config: &'a CheckConfig,
    global_env: &'a EnvList,
    build_args: &'a BTreeMap<String, String>,
    matcher: Option<&'a crate::fsync::patterns::PatternMatcher>,
}

impl Dispatch<'_> {
    /// `dispatch`: one instruction of a stage.
    fn instruction(
        &self,
        state: &mut StageState,
        instruction: &Instruction,
        report: &mut Report,
    ) -> Result<(), BuildError> {
        let config = self.config.with_comments(&instruction.comments);
        let location = Location::lines(instruction.start_line, instruction.end_line);
        let keyword = instruction.keyword.to_ascii_uppercase();
        let kind = instructions::command(instruction, &keyword).map_err(|e| {
            fail(format!("dockerfile parse error on line {}: {e}", instruction.start_line), location.clone())
        })?;

        // The words the frontend expands before dispatching (Go's
        // `SupportsSingleWordExpansion`), each reporting undefined names.
        let mut words: Vec<String> = Vec::new();
        let mut raw_words: Vec<String> = Vec::new();
        match &kind {
            CommandKind::Env(_) | CommandKind::Label(_) => {
                if let Args::KeyValues(pairs) = &instruction.args {
                    for (k, v, _) in pairs {
                        words.push(k.clone());
                        words.push(v.clone());
                    }
                }
            }
            CommandKind::Copy { transfer, .. } | CommandKind::Add { transfer, .. } => {
                words.push(transfer.chown.clone().unwrap_or_default());
                words.push(transfer.chmod.clone().unwrap_or_default());
                if let CommandKind::Add { checksum, .. } = &kind {
                    words.push(checksum.clone().unwrap_or_default());
                }
                words.extend(transfer.sources.iter().cloned());
                words.push(transfer.dest.clone());
                raw_words.extend(transfer.inline.iter().filter(|(_, _, expand)| *expand).map(|(_, c, _)| c.clone()));
            }
            CommandKind::Workdir(path) => words.push(path.clone()),
            CommandKind::User(user) => words.push(user.clone()),
            CommandKind::Volume(paths) => words.extend(paths.iter().cloned()),
            CommandKind::StopSignal(signal) => words.push(signal.clone()),
            CommandKind::Run { mounts, .. } => {
                for mount in mounts {
                    let recording = Recording::new(&state.env);
                    let parsed = crate::dockerfile::compile::mounts::parse_mount(mount, self.lexer, &recording);
                    let unmatched = recording.unmatched.into_inner();
                    self.report_unmatched(state, &unmatched, &location, &config, report);
                    parsed.map_err(|e| fail(e.to_string(), location.clone()))?;
                }
            }
            _ => {}
        }
        let mut expanded = Vec::new();
        for word in &words {
            let result = expand(self.lexer, word, &state.env);
            self.report_unmatched(state, &result.unmatched, &location, &config, report);
            expanded.push(result.result.map_err(|e| fail(e, location.clone()))?);
        }
        if !raw_words.is_empty() {
            let raw = Lexer {
                escape: '\\',
                raw_quotes: true,
                raw_escapes: false,
                skip_unset_env: false,
                skip_process_quotes: false,
            };
            for word in &raw_words {
                let result = expand(&raw, word, &state.env);
                self.report_unmatched(state, &result.unmatched, &location, &config, report);
                result.result.map_err(|e| fail(e, location.clone()))?;
            }
        }

        let name = &instruction.keyword;
        match &kind {
            CommandKind::Run { devices, .. } if !devices.is_empty() => {
                // The daemon's built-in frontend has no CDI devices (see
                // the compiler's RUN).
                return Err(fail(
                    "device feature is only supported in Dockerfile frontend 1.14.0-labs or later",
                    location,
                ));
            }
            CommandKind::Add { transfer, keep_git_dir, .. } => {
                // The words are chown, chmod, checksum, the sources, dest.
                let sources = &expanded[3..3 + transfer.sources.len()];
                crate::dockerfile::compile::check_sources(true, sources, &expanded[2], *keep_git_dir)
                    .map_err(|e| fail(e.to_string(), location.clone()))?;
            }
            CommandKind::Copy { transfer, .. } => {
                // The words are chown, chmod, the sources, dest.
                let sources = &expanded[2..2 + transfer.sources.len()];
                crate::dockerfile::compile::check_sources(false, sources, "", None)
                    .map_err(|e| fail(e.to_string(), location.clone()))?;
            }
            _ => {}
        }
        match &kind {
            CommandKind::Env(_) | CommandKind::Label(_) => {
                let Args::KeyValues(pairs) = &instruction.args else { return Ok(()) };
                let is_env = matches!(kind, CommandKind::Env(_));
                for (index, (_, _, delim)) in pairs.iter().enumerate() {
                    if delim.is_empty() {
                        let detail = format!(
                            "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
                        );
                        report.run(&config, &rules::LEGACY_KEY_VALUE_FORMAT, location.clone(), detail);
                    }
                    if is_env {
                        let key = &expanded[2 * index];
                        validate_no_secret_key("ENV", key, &location, &config, report);
                        state.env.set(key, &expanded[2 * index + 1]);
                    }
                }
            }
            CommandKind::Cmd(line) | CommandKind::Entrypoint(line) => {
                let tracker = if matches!(kind, CommandKind::Cmd(_)) { &mut state.cmd } else { &mut state.entrypoint };
                if let Some(previous) = tracker.replace(location.clone()) {
                    let detail = format!(
                        "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                    );
                    report.run(&config, &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED, previous, detail);
                }
                if matches!(line, instructions::CommandLine::Shell(_)) && state.shell.is_empty() {
                    let detail = format!(
                        "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                    );
                    report.run(&config, &rules::JSON_ARGS_RECOMMENDED, location.clone(), detail);
                }
            }
            CommandKind::Healthcheck { .. } => {
                if let Some(previous) = state.healthcheck.replace(location.clone()) {
                    let detail = format!(
                        "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                    );
                    report.run(&config, &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED, previous, detail);
                }
            }
            CommandKind::Shell(shell) => state.shell = shell.clone(),
            CommandKind::StopSignal(_) if !crate::dockerfile::instructions::is_signal(&expanded[0]) => {
                return Err(fail(format!("invalid signal: {}", expanded[0]), location));
            }
            CommandKind::Workdir(_) => {
                let path = &expanded[0];
                if !state.workdir_set && !path.starts_with('/') {
                    let detail = format!(
                        "Relative workdir {} can have unexpected results if the base image changes",
                        go_quote(path)
                    );
                    report.run(&config, &rules::WORKDIR_RELATIVE_PATH, location.clone(), detail);
                }
                state.workdir_set = true;
            }
            CommandKind::Expose(ports) => {
                for port in ports {
                    let words =
                        self.lexer.expand_words(port, &state.env).map_err(|e| fail(e.to_string(), location.clone()))?;
                    for raw in words {
                        check_port(&raw, &location, &config, report);
                    }
                }
            }
            CommandKind::Arg(pairs) => self.arg(state, pairs, &location, &config, report)?,
            CommandKind::Onbuild(_) => {
                if let Args::Sub(inner) = &instruction.args {
                    let mut trigger = (**inner).clone();
                    trigger.comments = Vec::new();
                    state.onbuild.push(trigger);
                }
            }
            CommandKind::Copy { from: Some(from), .. } => {
                let lower = from.to_lowercase();
                let source = match from.parse::<usize>() {
                    Ok(index) if index < self.stage_names.len() => Some(index),
                    _ => self.stage_names.iter().position(|n| n.as_deref() == Some(lower.as_str())),
                };
                if source.is_some_and(|source| source >= self.stage) {
                    let current =
                        self.stage_names[self.stage].clone().unwrap_or_else(|| format!("stage-{}", self.stage));
                    let message = format!(
                        "cannot copy from stage {}, it needs to be defined before current stage {}",
                        go_quote(from),
                        go_quote(&current)
                    );
                    return Err(fail(message, location));
                }
            }
            CommandKind::Copy { transfer, .. } => {
                self.copy_ignored("Copy", &expanded, transfer.sources.len(), &location, &config, report);
            }
            CommandKind::Add { transfer, .. } => {
                self.copy_ignored("Add", &expanded, transfer.sources.len(), &location, &config, report);
            }
            _ => {}
        }
        Ok(())
    }

    /// `reportUnmatchedVariables`.
    fn report_unmatched(
        &self,
        state: &StageState,
        unmatched: &[String],
        location: &Location,
        config: &CheckConfig,
        report: &mut Report,
    ) {
        let keys = state.env.keys();
        for name in unmatched {
            if state.args.contains(name) || name == "BUILDKIT_SBOM_SCAN_CONTEXT" || name == "BUILDKIT_SBOM_SCAN_STAGE" {
                continue;
            }
            let suggestion = suggest(name, &keys, true);
            let mut detail = format!("Usage of undefined variable '${name}'");
            if let Some(s) = suggestion {
                detail.push_str(&format!(" (did you mean ${s}?)"));
            }
            report.run(config, &rules::UNDEFINED_VAR, location.clone(), detail);
        }
    }

    /// `dispatchArg`.
    fn arg(
        &self,
        state: &mut StageState,
        pairs: &[(String, Option<String>)],
        location: &Location,
        config: &CheckConfig,
        report: &mut Report,
    ) -> Result<(), BuildError> {
        for (key, default) in pairs {
            validate_no_secret_key("ARG", key, location, config, report);
            let mut value = default.clone();
            let given = self.build_args.get(key);
            if value.is_none() && given.is_none() {
                if let Some(global) = self.global_env.get(key) {
                    value = Some(global.to_string());
                }
            } else if let Some(given) = given {
                value = Some(given.clone());
            } else if let Some(default) = default {
                let result = expand(self.lexer, default, &state.env);
                self.report_unmatched(state, &result.unmatched, location, config, report);
                value = Some(result.result.map_err(|e| fail(e, location.clone()))?);
            }
            if let Some(value) = &value {
                if key != "BUILDKIT_SBOM_SCAN_CONTEXT" && key != "BUILDKIT_SBOM_SCAN_STAGE" {
                    state.env.set(key, value);
                }
            }
            state.args.push(key.clone());
        }
        Ok(())
    }

    /// `validateCopySourcePath` for each source of `COPY`/`ADD`.
    fn copy_ignored(
        &self,
        cmd: &str,
        expanded: &[String],
        sources: usize,
        location: &Location,
        config: &CheckConfig,
        report: &mut Report,
    ) {
        let Some(matcher) = self.matcher else { return };
        if matcher.patterns().iter().any(|p| p.exclusion()) {
            return;
        }
        let skip = if cmd == "Add" { 3 } else { 2 };
        for source in expanded.iter().skip(skip).take(sources) {
            // Git and HTTP sources are not in the context.
            if source.contains("://") || source.starts_with("git@") {
                continue;
            }
            let src = crate::gopath::clean(source);
            if src == "." || src == "/" {
                let root_ignored =
                    matcher.patterns().iter().any(|p| !p.exclusion() && matches!(p.as_str(), "*" | "**" | "**/*"));
                if !root_ignored {
                    continue;
                }
            }
            if matcher.matches_or_parent_matches(&src).unwrap_or(false) {
                let detail = format!("Attempting to {cmd} file {} that is excluded by .dockerignore", go_quote(&src));
                report.run(config, &rules::COPY_IGNORED_FILE, location.clone(), detail);
            }
        }
    }
}

/// A base image the daemon could not resolve: the name, its error, and a
/// name close to the given one, from the stages and common images
/// (`suggest.WrapError` with `commonImageNames`).
fn resolve_error(name: &str, error: &str, stages: &[Stage<'_>]) -> String {
    let mut options: Vec<String> = stages
        .iter()
        .enumerate()
        .map(|(i, stage)| stage.name.clone().unwrap_or_else(|| format!("stage-{i}")))
        .collect();
    for repo in ["alpine", "busybox", "centos", "debian", "golang", "ubuntu", "fedora"] {
        // Go's list joins "docker.io/library" and the name with no slash.
        options.extend([
            repo.to_string(),
            format!("docker.io/library{repo}"),
            format!("{repo}:latest"),
            format!("docker.io/library{repo}:latest"),
        ]);
    }
    let mut message = format!("{name}: {error}");
    if let Some(similar) = suggest(name, &options, true) {
        message.push_str(&format!(" (did you mean {similar}?)"));
    }
    message
}

/// What an instruction reads from other stages or images: `COPY --from`
/// and `RUN --mount=from=` (`toCommand`'s sources).
fn command_sources(instruction: &Instruction, lexer: &Lexer) -> Result<Vec<String>, BuildError> {
    let keyword = instruction.keyword.to_ascii_uppercase();
    match instructions::command(instruction, &keyword) {
        Ok(CommandKind::Copy { from: Some(from), .. }) => {
            let empty = EnvList::default();
            if lexer.expand(&from, &empty).ok().as_deref() != Some(from.as_str()) {
                return Err(fail(
                    "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    Location::default(),
                ));
            }
            Ok(vec![from])
        }
        Ok(CommandKind::Run { mounts, .. }) => {
            Ok(mounts.iter().filter_map(|m| crate::dockerfile::compile::mounts::mount_from(m)).collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// `autoDetectPlatform`: the image's own platform when it is the target's
/// or one the worker builds, else the target.
fn auto_detect_platform(image: &str, target: &str, build_platforms: &[String]) -> String {
    let Some(own) = parse_platform(image) else { return target.to_string() };
    if parse_platform(target).as_ref() == Some(&own) {
        return target.to_string();
    }
    match build_platforms.iter().find(|p| parse_platform(p).as_ref() == Some(&own)) {
        Some(platform) => platform.clone(),
        None => target.to_string(),
    }
}

fn go_quote(text: &str) -> String {
    parser::go_quote(text)
}

/// `validateCircularDependency`: the first stage (in order) on a cycle
/// and the commands along it.
fn find_cycle(deps: &[Vec<(usize, Location)>]) -> Option<(usize, Vec<Location>)> {
    fn visit(
        state: usize,
        deps: &[Vec<(usize, Location)>],
        visited: &mut BTreeSet<usize>,
        path: &mut BTreeSet<usize>,
        current: Vec<Location>,
    ) -> Option<Vec<Location>> {
        if !visited.insert(state) {
            return None;
        }
        path.insert(state);
        for (dep, location) in deps.get(state).map(Vec::as_slice).unwrap_or_default() {
            let mut next = current.clone();
            next.push(location.clone());
            if path.contains(dep) {
                return Some(next);
            }
            if let Some(found) = visit(*dep, deps, visited, path, next) {
                return Some(found);
            }
        }
        path.remove(&state);
        None
    }
    let mut visited = BTreeSet::new();
    let mut path = BTreeSet::new();
    (0..deps.len()).find_map(|state| visit(state, deps, &mut visited, &mut path, Vec::new()).map(|p| (state, p)))
}

/// `validateDefinitionDescription`: the comment right above a stage or
/// an `ARG` should start with its name.
fn definition_description(
    instruction: &str,
    keys: &[String],
    node: &Instruction,
    config: &CheckConfig,
    report: &mut Report,
) {
    let (Some(last), Some(first)) = (node.comments.last(), keys.first()) else { return };
    let word = last.split(' ').next().unwrap_or_default();
    if keys.iter().any(|k| k == word) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { first.as_str() };
    let detail = format!("Comment for {instruction} should follow the format: `# {example} <description>`");
    let location = Location::lines(node.start_line, node.end_line);
    report.run(config, &rules::INVALID_DEFINITION_DESCRIPTION, location, detail);
}

fn from_matches_as(from: &str, r#as: &str) -> bool {
    let lower = from == from.to_lowercase();
    let upper = from == from.to_uppercase();
    if !lower && !upper {
        return true;
    }
    if lower {
        r#as == r#as.to_lowercase()
    } else {
        r#as == r#as.to_uppercase()
    }
}

fn validate_stage_names(stages: &[Stage<'_>], config: &CheckConfig, report: &mut Report) {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for stage in stages {
        let Some(name) = stage.name.as_deref() else { continue };
        let location = Location::lines(stage.from.start_line, stage.from.end_line);
        if name == "context" || name == "scratch" {
            let detail = format!("Stage name should not use the same name as reserved stage {}", go_quote(name));
            report.run(config, &rules::RESERVED_STAGE_NAME, location.clone(), detail);
        }
        if !seen.insert(name) {
            let detail = format!("Duplicate stage name {}, stage names should be unique", go_quote(name));
            report.run(config, &rules::DUPLICATE_STAGE_NAME, location, detail);
        }
    }
}

fn validate_command_casing(stages: &[Stage<'_>], config: &CheckConfig, report: &mut Report) {
    let consistent = |s: &str| s == s.to_lowercase() || s == s.to_uppercase();
    let (mut lower, mut upper) = (0, 0);
    let all = stages.iter().flat_map(|s| std::iter::once(s.from).chain(s.instructions.iter().copied()));
    for instruction in all.clone() {
        let name = &instruction.keyword;
        if consistent(name) {
            if *name == name.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for instruction in all {
        let name = &instruction.keyword;
        let casing = if majority_lower && name.to_lowercase() != *name {
            "lowercase"
        } else if !majority_lower && name.to_uppercase() != *name {
            "uppercase"
        } else {
            continue;
        };
        let detail = format!("Command '{name}' should match the case of the command majority ({casing})");
        let location = Location::lines(instruction.start_line, instruction.end_line);
        report.run(config, &rules::CONSISTENT_INSTRUCTION_CASING, location, detail);
    }
}

/// `defaultArgs`: the platform arguments and `TARGETSTAGE`.
fn default_args(build: &str, platform: &str, overrides: &BTreeMap<String, String>, target: Option<&str>) -> EnvList {
    let parts = |text: &str| -> (String, String, String) {
        let parts: Vec<&str> = text.split('/').collect();
        (
            parts.first().copied().unwrap_or("linux").to_string(),
            parts.get(1).copied().unwrap_or("amd64").to_string(),
            parts.get(2).copied().unwrap_or("").to_string(),
        )
    };
    let (build_os, build_arch, build_variant) = parts(build);
    let (os, arch, variant) = parts(platform);
    let mut env = EnvList::default();
    for (key, value) in [
        ("BUILDPLATFORM", build),
        ("BUILDOS", build_os.as_str()),
        ("BUILDOSVERSION", ""),
        ("BUILDARCH", build_arch.as_str()),
        ("BUILDVARIANT", build_variant.as_str()),
        ("TARGETPLATFORM", platform),
        ("TARGETOS", os.as_str()),
        ("TARGETOSVERSION", ""),
        ("TARGETARCH", arch.as_str()),
        ("TARGETVARIANT", variant.as_str()),
        ("TARGETSTAGE", target.unwrap_or("default")),
    ] {
        let value = overrides.get(key).map(String::as_str).unwrap_or(value);
        env.set(key, value);
    }
    env
}

/// `buildMetaArgs`: the global `ARG`s applied to the defaults; also the
/// names of every global `ARG`.
fn meta_args(
    defaults: &EnvList,
    lexer: &Lexer,
    args: &[(String, Option<String>)],
    build_args: Option<&BTreeMap<String, String>>,
) -> Result<(EnvList, Vec<String>), String> {
    let mut env = defaults.clone();
    let mut names = Vec::new();
    for (key, default) in args {
        let value = match build_args.and_then(|b| b.get(key)) {
            Some(given) => Some(given.clone()),
            None => match default {
                Some(default) => Some(lexer.expand(default, &env).map_err(|e| e.to_string())?),
                None => None,
            },
        };
        if let Some(value) = value {
            env.set(key, &value);
        }
        if !names.contains(key) {
            names.push(key.clone());
        }
    }
    Ok((env, names))
}

fn validate_base_images_with_default_args(
    stages: &[Stage<'_>],
    lexer: &Lexer,
    defaults: &EnvList,
    global_args: &[(String, Option<String>)],
    config: &CheckConfig,
    report: &mut Report,
) {
    let Ok((env, _)) = meta_args(defaults, lexer, global_args, None) else { return };
    for stage in stages {
        let Ok(name) = lexer.expand(&stage.base, &env) else { return };
        if reference_error(&name).is_some() {
            let detail = format!("Default value for ARG {} results in empty or invalid base image name", stage.base);
            let location = Location::lines(stage.from.start_line, stage.from.end_line);
            report.run(config, &rules::INVALID_DEFAULT_ARG_IN_FROM, location, detail);
        }
    }
}

/// Why `reference.ParseNormalizedNamed` refuses `name`, in distribution's
/// words, or `None` when it accepts it.
fn reference_error(name: &str) -> Option<String> {
    crate::llb::parse_reference(name).err().map(|error| error.to_string())
}

fn report_unused_from_args(
    declared: &[String],
    unmatched: &[String],
    location: &Location,
    config: &CheckConfig,
    report: &mut Report,
) {
    for arg in unmatched {
        if declared.contains(arg) {
            continue;
        }
        let mut detail = format!("FROM argument '{arg}' is not declared");
        if let Some(s) = suggest(arg, declared, true) {
            detail.push_str(&format!(" (did you mean {s}?)"));
        }
        report.run(config, &rules::UNDEFINED_ARG_IN_FROM, location.clone(), detail);
    }
}

fn validate_no_secret_key(
    instruction: &str,
    key: &str,
    location: &Location,
    config: &CheckConfig,
    report: &mut Report,
) {
    static PATTERNS: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    let (deny, allow) = PATTERNS.get_or_init(|| {
        let deny = "(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)";
        let allow = "(?i)(?:_|^)(?:public|file|version)(?:_|$)";
        (regex::Regex::new(deny).expect("a valid pattern"), regex::Regex::new(allow).expect("a valid pattern"))
    });
    if deny.is_match(key) && !allow.is_match(key) {
        let detail = format!("Do not use ARG or ENV instructions for sensitive data ({instruction} {})", go_quote(key));
        report.run(config, &rules::SECRETS_USED_IN_ARG_OR_ENV, location.clone(), detail);
    }
}

/// `suggest.Search`: the closest option within an edit distance of 2.
fn suggest(value: &str, options: &[String], case_sensitive: bool) -> Option<String> {
    let value_cmp = if case_sensitive { value.to_string() } else { value.to_lowercase() };
    let mut best: Option<String> = None;
    let mut min = 3;
    for option in options {
        let option_cmp = if case_sensitive { option.clone() } else { option.to_lowercase() };
        if option_cmp == value_cmp {
            return None;
        }
        let distance = strsim::levenshtein(&value_cmp, &option_cmp);
        if distance < min {
            best = Some(option_cmp);
            min = distance;
        }
    }
    best
}

/// containerd's `platforms.Parse`, reduced to what the rules compare:
/// the normalised OS and architecture.
fn parse_platform(text: &str) -> Option<(String, String)> {
    let lower = text.to_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let known_os = |os: &str| {
        matches!(
            os,
            "aix"
                | "android"
                | "darwin"
                | "dragonfly"
                | "freebsd"
                | "hurd"
                | "illumos"
                | "ios"
                | "js"
                | "linux"
                | "nacl"
                | "netbsd"
                | "openbsd"
                | "plan9"
                | "solaris"
                | "windows"
                | "zos"
                | "wasip1"
        )
    };
    let arch = |arch: &str| -> Option<String> {
        let normal = match arch {
            "i386" => "386",
            "x86_64" | "x86-64" | "amd64" => "amd64",
            "aarch64" | "arm64" => "arm64",
            "armhf" | "armel" | "arm" => "arm",
            other => other,
        };
        let known = [
            "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le",
            "riscv64", "s390x", "wasm", "sparc64",
        ];
        known.contains(&normal).then(|| normal.to_string())
    };
    match parts.as_slice() {
        [one] if known_os(one) => Some((one.to_string(), "amd64".to_string())),
        [one] => arch(one).map(|a| ("linux".to_string(), a)),
        [os, a] | [os, a, _] if known_os(os) => arch(a).map(|a| (os.to_string(), a)),
        _ => None,
    }
}

/// `platforms.FormatAll(platforms.Normalize(p))` for `os/arch[/variant]`.
fn format_platform(text: &str) -> String {
    let parts: Vec<&str> = text.split('/').collect();
    match parse_platform(text) {
        Some((os, arch)) => match parts.get(2) {
            Some(variant) if !variant.is_empty() => format!("{os}/{arch}/{variant}"),
            _ => format!("{os}/{arch}"),
        },
        None => text.to_string(),
    }
}

/// `parsePort`'s lint checks: `[ip:][hostPort:]containerPort[/proto]`.
fn check_port(raw: &str, location: &Location, config: &CheckConfig, report: &mut Report) {
    let (ip, host_port, container_port) = split_port_parts(raw);
    let proto = match container_port.split_once('/') {
        Some((_, proto)) => proto.to_string(),
        None => String::new(),
    };
    if proto != proto.to_lowercase() {
        let detail = format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase");
        report.run(config, &rules::EXPOSE_PROTO_CASING, location.clone(), detail);
    }
    if !ip.is_empty() || !host_port.is_empty() {
        let detail = format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'");
        report.run(config, &rules::EXPOSE_INVALID_FORMAT, location.clone(), detail);
    }
}

/// `splitParts`: the last colon-separated part is the container port;
/// before it the host port, and before that the IP (which may hold
/// colons).
fn split_port_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => (String::new(), String::new(), parts[0].to_string()),
        2 => (String::new(), parts[0].to_string(), parts[1].to_string()),
        3 => (parts[0].to_string(), parts[1].to_string(), parts[2].to_string()),
        n => (parts[..n - 2].join(":"), parts[n - 2].to_string(), parts[n - 1].to_string()),
    }
}
