//! `fbuild bake`: build the targets of compose files and buildx bake files
//! (`docker-bake.hcl`, `.json`) together, on one connection, with one
//! progress display. The flags are buildx bake's. Files, resolution and
//! scheduling are the library's (`crate::bake`); this command adds what
//! belongs to a terminal: `--print` and `--list`, the progress renderer,
//! Ctrl-C, the per-target summary, `--metadata-file` and the exit code.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::solve::call::{self as solve_call, CallFrontend};
use super::solve::plan::LoadPlan;
use crate::bake::run::{Outcome, TargetError};
use crate::bake::{entitlements, files, plan, progress, resolve, run};
use crate::build::attrs::CallFunc;
use crate::build::{BuildError, CancellationToken};
use crate::cli::Context;
use crate::gojson::RawJson;
use crate::progress::{ProgressMode, ProgressSink, ProgressWriter, Summary};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
fbuild bake                                 build the default group of ./compose.yaml or ./docker-bake.hcl\n  \
fbuild bake app worker --push               build two targets and push their images\n  \
fbuild bake --set '*.platform=linux/arm64'  override an attribute of every target\n  \
fbuild bake --print                         show the resolved targets as JSON, build nothing")]
pub struct Args {
    /// Targets or groups to build (default: the group `default`)
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Bake or compose file; repeatable (default: compose.yaml, docker-bake.hcl, ... in this folder)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Override a target attribute (`TARGET.KEY=VALUE`; `*` matches any target)
    #[arg(long = "set", value_name = "TARGET.KEY=VALUE")]
    pub set: Vec<String>,

    /// Set a variable of the bake files (`NAME=VALUE`); beats the environment and `.env`
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Push every target's image (shorthand for --set '*.push=true')
    #[arg(long)]
    pub push: bool,

    /// Load every target's image into docker (shorthand for --set '*.load=true': a type=docker output)
    #[arg(long)]
    pub load: bool,

    /// Run a frontend request instead of building: build, check, outline, targets
    /// (`NAME[,format=json][,ignorestatus=true]`; shorthand for --set '*.call=NAME')
    #[arg(long, value_name = "NAME")]
    pub call: Option<String>,

    /// Shorthand for --call=check
    #[arg(long, conflicts_with = "call")]
    pub check: bool,

    /// Provenance attestation for every target (shorthand for --set '*.attest=type=provenance,...')
    #[arg(long, value_name = "SPEC")]
    pub provenance: Option<String>,

    /// SBOM attestation for every target (shorthand for --set '*.attest=type=sbom,...')
    #[arg(long, value_name = "SPEC")]
    pub sbom: Option<String>,

    /// What a failed target does to the others: fail-fast (cancel them) or defer-error (let them finish)
    #[arg(short = 'j', long = "jobs", value_name = "MODE", default_value = "fail-fast",
          value_parser = ["fail-fast", "defer-error", "mode=fail-fast", "mode=defer-error"])]
    pub jobs: String,

    /// Do not use the cache (shorthand for --set '*.no-cache=true')
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Always check the registry for newer base images (--set '*.pull=true')
    #[arg(long)]
    pub pull: bool,

    /// Import build cache for every target (--set '*.cache-from=SPEC'; registry, local, gha, s3, azblob)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,

    /// Export build cache for every target (--set '*.cache-to=SPEC'; registry, local, inline, gha, s3, azblob)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,

    /// Grant a privilege the bake files ask for: network.host, security.insecure, ssh,
    /// fs.read=PATH, fs.write=PATH, fs=PATH (`*` for any path); repeatable
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,

    /// Print the resolved targets as JSON (buildx's shape) and build nothing
    #[arg(long)]
    pub print: bool,

    /// List the files' targets or variables and build nothing
    /// (`targets`, `variables`, or `type=targets|variables[,format=table|json]`)
    #[arg(long, value_name = "TYPE")]
    pub list: Option<String>,

    /// Write each target's result metadata (image digest, ...) to this JSON file, keyed by target
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Progress output: auto, tty, plain, rawjson (JSON lines only), quiet or none
    #[arg(long, env = "BUILDKIT_PROGRESS", value_name = "MODE", default_value = "auto")]
    pub progress: String,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let file_names = files::find(&cwd, &args.files)?;
    // `--var` values are seen by the files only (variables, compose
    // interpolation), not by what fbuild reads from its own environment.
    let mut file_env = env.clone();
    file_env.extend(parse_vars(&args.vars)?);
    let definition = files::load(&cwd, &file_names, &file_env)?;
    // rawjson: standard error carries JSON lines only; the warnings go into
    // the stream once it starts (unless -v, which prints the human lines).
    let raw_json = args.progress.parse::<ProgressMode>().is_ok_and(|m| m == ProgressMode::RawJson);
    let json_warnings = raw_json && !ctx.printer.is_verbose();
    if !json_warnings {
        for warning in &definition.warnings {
            let _ = writeln!(ctx.printer.stderr(), "WARNING: {warning}");
        }
    }
    if let Some(value) = &args.list {
        if args.print {
            anyhow::bail!("--print and --list are mutually exclusive");
        }
        let (what, format) = parse_list(value)?;
        return list(&definition, &what, &format, ctx);
    }

    // The shorthand flags are `--set` entries for every target, before the user's own.
    let mut sets = Vec::new();
    if args.no_cache {
        sets.push("*.no-cache=true".to_string());
    }
    if args.pull {
        sets.push("*.pull=true".to_string());
    }
    sets.extend(args.cache_from.iter().map(|spec| format!("*.cache-from={spec}")));
    sets.extend(args.cache_to.iter().map(|spec| format!("*.cache-to={spec}")));
    // buildx: the user's --set first, then the shorthands that follow it.
    sets.extend(args.set.iter().cloned());
    let call = match (&args.call, args.check) {
        (_, true) => Some("check"),
        (Some(value), false) => Some(value.as_str()),
        (None, false) => None,
    };
    let call = match call {
        Some(value) => crate::build::attrs::parse_call(value)
            .map_err(|reason| anyhow::anyhow!("invalid --call value {value:?}: {reason}"))?,
        None => None,
    };
    if args.load {
        sets.push("*.load=true".to_string());
    }
    if let Some(call) = &call {
        sets.push(format!("*.call={}", call.name));
    }
    for (kind, value) in [("sbom", &args.sbom), ("provenance", &args.provenance)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            sets.push(format!("*.attest={}", crate::build::attrs::canonical_attest(kind, value)));
        }
    }
    let allowed = entitlements::Allowed::parse(&args.allow)?;
    let resolved = resolve::resolve(&definition, &args.targets, &sets, args.push)?;
    if args.print {
        let mut out = ctx.printer.stdout();
        writeln!(out, "{}", resolved.print_json()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // What the files ask for beyond the current folder needs --allow, as in
    // buildx; checked for every target before any is built.
    let fs_checks = entitlements::fs_checks_from_env(env.get("BUILDX_BAKE_ENTITLEMENTS_FS").map(String::as_str))?;
    if let Err(error) = entitlements::check(&cwd, &resolved.targets, &allowed, fs_checks) {
        if let crate::bake::BakeError::Privileges { lines, .. } = &error {
            let mut err = ctx.printer.stderr();
            writeln!(err, "Your build is requesting privileges for following possibly insecure capabilities:\n")?;
            for line in lines {
                writeln!(err, "{line}")?;
            }
            writeln!(err)?;
        }
        return Err(error.into());
    }

    // Every target is checked before the daemon hears of any.
    let stdout_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut loads: BTreeMap<String, Vec<LoadPlan>> = BTreeMap::new();
    let mut plans = Vec::new();
    for (name, target) in &resolved.targets {
        let mut target = target.clone();
        // A `type=docker` output without a destination (what `--load` adds)
        // loads the image: it is written into a private archive and handed
        // to `docker load`, as `fbuild solve --load` does.
        for output in target.outputs.iter_mut().flatten() {
            if is_load(output) {
                let load = super::solve::plan::load_plan(&env)
                    .map_err(|e| anyhow::Error::new(e).context(format!("target {name:?}: output {output:?}")))?;
                output.push_str(&format!(",\"dest={}\"", load.archive.display()));
                loads.entry(name.clone()).or_default().push(load);
            }
        }
        plans.push(plan::plan(&cwd, name, &target, &env, stdout_is_terminal)?);
    }
    check_calls(&plans)?;
    // Somewhere to load into, checked before building (as buildx asks the Docker API first).
    for load in loads.values().flatten() {
        super::solve::check_loader(load)?;
    }
    // A subrequest runs the target's frontend through the gateway, as `fbuild solve --call`.
    let mut calls: BTreeMap<String, (CallFunc, Arc<CallFrontend>)> = BTreeMap::new();
    for plan in &mut plans {
        let (Some(call), crate::build::Frontend::Daemon { name, attrs }) = (&plan.call, &plan.request.frontend) else {
            continue;
        };
        let frontend = Arc::new(CallFrontend::new(name.clone(), attrs.clone()));
        calls.insert(plan.name.clone(), (call.clone(), frontend.clone()));
        plan.request.frontend = crate::build::Frontend::Client(frontend);
    }
    let dockerfiles: BTreeMap<String, (String, String)> =
        plans.iter().map(|p| (p.name.clone(), p.dockerfile.clone())).collect();
    // Where the metadata goes is checked now, not after every target has built.
    if let Some(path) = &args.metadata_file {
        crate::cli::solve::plan::check_output_file("--metadata-file", path)?;
    }
    let mode: ProgressMode = args
        .progress
        .parse()
        .map_err(|e: crate::progress::ParseModeError| anyhow::anyhow!("invalid --progress value: {e}"))?;
    let mode = if ctx.printer.verbosity == crate::printer::Verbosity::Quiet { ProgressMode::Quiet } else { mode };
    let exports: BTreeMap<String, Vec<crate::output::ExportEntry>> =
        plans.iter().map(|p| (p.name.clone(), p.request.exports.clone())).collect();

    // A builder of several nodes spreads the targets over them.
    let placement = match ctx.pool().await? {
        Some(pool) => crate::bake::pool::place(&pool, &mut plans)?,
        None => run::Placement::single(ctx.connect().await?.channel),
    };
    let writer = Arc::new(Mutex::new(ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()))));
    if json_warnings {
        let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
        for warning in &definition.warnings {
            writer.warn(warning);
        }
    }
    let cancel = CancellationToken::new();
    let on_signal = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            super::solve::interrupted().await;
            cancel.cancel();
        }
    });
    let started = Instant::now();
    // On a pool, each target's steps name the node it builds on (the label).
    let sink_for =
        |label: &str| -> Box<dyn ProgressSink> { Box::new(progress::TargetSink::new(label, writer.clone())) };
    let execution =
        if args.jobs.ends_with("defer-error") { run::Execution::DeferError } else { run::Execution::FailFast };
    let outcomes = run::run_all(&placement, plans, &sink_for, &cancel, execution).await?;
    on_signal.abort();
    let elapsed = started.elapsed();

    // The shared display ends once: with the first step failure's details.
    let first_failure = outcomes.iter().find_map(|o| match &o.result {
        Err(TargetError::Build(BuildError::Failed(failed))) => Some(failed.failure.clone()),
        _ => None,
    });
    {
        let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
        match (&first_failure, cancel.is_cancelled()) {
            (_, true) => {
                writer.finish_cancelled();
            }
            (Some(failure), false) => {
                writer.finish(&Err::<(), _>(failure.clone()));
            }
            (None, false) => {
                writer.finish(&Ok::<(), crate::progress::BuildFailure>(()));
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(crate::error::Cancelled.into());
    }
    // rawjson: JSON lines only, unless -v asks for the summary too.
    if mode != ProgressMode::RawJson || ctx.printer.is_verbose() {
        report(&outcomes, &exports, elapsed, mode, ctx)?;
    }

    let answers: BTreeMap<String, BTreeMap<String, String>> =
        calls.iter().map(|(name, (_, frontend))| (name.clone(), frontend.answer())).collect();
    if let Some(path) = &args.metadata_file {
        write_metadata(path, &outcomes, &answers)?;
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| o.result.is_err()).map(|o| o.name.as_str()).collect();
    if !failed.is_empty() {
        anyhow::bail!("{} of {} targets failed: {}", failed.len(), outcomes.len(), failed.join(", "));
    }
    let notes = mode != ProgressMode::Quiet && (mode != ProgressMode::RawJson || ctx.printer.is_verbose());
    for (name, loads) in &loads {
        for load in loads {
            super::solve::load_image(load, ctx.printer, notes)
                .map_err(|e| e.context(format!("target {name:?}: cannot load its image")))?;
        }
    }
    if calls.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let code = print_calls(&resolved, call.as_ref(), &calls, &answers, &dockerfiles, ctx)?;
    Ok(ExitCode::from(code))
}

/// Whether an output is a `type=docker` one without a destination: the
/// image is loaded into docker (buildx's default for that exporter).
fn is_load(output: &str) -> bool {
    let fields = crate::output::csv_fields(output).unwrap_or_default();
    let value =
        |key: &str| fields.iter().find_map(|f| f.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v));
    value("type") == Some("docker") && value("dest").is_none_or(str::is_empty)
}

/// A subrequest hands nothing to other targets and takes no target's
/// graph: refused where targets are linked, before anything is built.
fn check_calls(plans: &[plan::TargetPlan]) -> anyhow::Result<()> {
    for plan in plans.iter().filter(|p| p.call.is_some()) {
        let call = plan.call.as_ref().map(|c| c.name.as_str()).unwrap_or_default();
        if let Some((context, linked)) = plan.links.first() {
            anyhow::bail!(
                "target {:?}: call {call:?} with a target: context ({context} = target:{linked}) is not supported by fbuild bake yet",
                plan.name
            );
        }
        if let Some(user) = plans.iter().find(|p| p.links.iter().any(|(_, t)| *t == plan.name)) {
            anyhow::bail!(
                "target {:?}: call {call:?} on a target that {:?} uses as a context is not supported by fbuild bake yet",
                plan.name,
                user.name
            );
        }
    }
    Ok(())
}

/// The subrequests' answers on stdout, as buildx bake prints them: by
/// target name, each under its name (and description), or with
/// `format=json` one document of the resolved targets and their answers.
/// The exit code is the first non-zero status, 1 for a failed check.
fn print_calls(
    resolved: &resolve::Resolved,
    flag: Option<&CallFunc>,
    calls: &BTreeMap<String, (CallFunc, Arc<CallFrontend>)>,
    answers: &BTreeMap<String, BTreeMap<String, String>>,
    dockerfiles: &BTreeMap<String, (String, String)>,
    ctx: &Context,
) -> anyhow::Result<u8> {
    let json = flag.is_some_and(|f| f.format.as_deref() == Some("json"));
    let mut out = ctx.printer.stdout();
    let mut code = 0;
    let mut results = BTreeMap::new();
    for (index, (name, (call, _))) in calls.iter().enumerate() {
        // The flag's format and ignorestatus win over the target's.
        let mut call = call.clone();
        if let Some(flag) = flag {
            call.format.clone_from(&flag.format);
            call.ignore_status = flag.ignore_status;
        }
        let answer = answers.get(name).cloned().unwrap_or_default();
        let (dockerfile, display) = &dockerfiles[name];
        let mut text = Vec::new();
        let printed = solve_call::print(&mut text, &call, &answer, (dockerfile, display));
        if json {
            let mut result = resolve::RawAnswer::new();
            match printed {
                Ok(status) if code == 0 => code = status,
                Ok(_) => {}
                Err(error) => {
                    result.insert("error".into(), RawJson::String(solve_call::CheckFailed::go_text(&error)));
                    code = 1;
                }
            }
            // An object's fields join the answer; anything else goes under the call's name.
            match serde_json::from_slice::<RawJson>(&text) {
                Ok(RawJson::Object(fields)) => result.extend(fields),
                Ok(other) => {
                    result.insert(call.name.clone(), other);
                }
                Err(_) => {
                    result.insert(call.name.clone(), RawJson::String(String::from_utf8_lossy(&text).into_owned()));
                }
            }
            let shown = if call.name == "lint" { "check".to_owned() } else { call.name.clone() };
            results.insert(name.clone(), (shown, result));
            continue;
        }
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{name}")?;
        if let Some(description) =
            resolved.target(name).and_then(|t| t.description.as_deref()).filter(|d| !d.is_empty())
        {
            writeln!(out, "{description}")?;
        }
        writeln!(out)?;
        out.write_all(&text)?;
        match printed {
            Ok(status) if code == 0 => code = status,
            Ok(_) => {}
            Err(error) => {
                writeln!(out, "error: {}", solve_call::CheckFailed::go_text(&error))?;
                code = 1;
            }
        }
    }
    if json {
        writeln!(out, "{}", resolved.call_json(&results))?;
    }
    out.flush()?;
    Ok(code)
}

/// A line per target (its summary or its error), where its image went, and a total.
fn report(
    outcomes: &[Outcome],
    exports: &BTreeMap<String, Vec<crate::output::ExportEntry>>,
    elapsed: std::time::Duration,
    mode: ProgressMode,
    ctx: &Context,
) -> std::io::Result<()> {
    let mut err = ctx.printer.stderr();
    let width = outcomes.iter().map(|o| o.name.len()).max().unwrap_or(0);
    let (mut steps, mut cached) = (0, 0);
    for outcome in outcomes {
        match &outcome.result {
            Ok(report) => {
                steps += report.summary.steps;
                cached += report.summary.cached;
                if mode != ProgressMode::Quiet {
                    let files = report.transfer.files;
                    let on = outcome.node.as_ref().map(|n| format!(" on node {n}")).unwrap_or_default();
                    writeln!(
                        err,
                        "{:width$}  {}{on}; context: {files} file{} sent",
                        outcome.name,
                        report.summary,
                        if files == 1 { "" } else { "s" }
                    )?;
                }
                let digest = report.exporter_response.get("containerimage.digest");
                for export in exports.get(&outcome.name).into_iter().flatten() {
                    let Some(names) = export.attrs.get("name").filter(|n| !n.is_empty()) else { continue };
                    if export.destination.is_some() {
                        continue;
                    }
                    let verb = if export.pushes() { "pushed" } else { "stored" };
                    match digest {
                        Some(digest) => writeln!(err, "{:width$}  {verb} {names} ({digest})", outcome.name)?,
                        None => writeln!(err, "{:width$}  {verb} {names}", outcome.name)?,
                    }
                }
            }
            Err(error) => {
                let on = outcome.node.as_ref().map(|n| format!(" on node {n}")).unwrap_or_default();
                writeln!(err, "{:width$}  FAILED{on}: {}", outcome.name, crate::error::error_chain(error))?;
                if let TargetError::Build(BuildError::Failed(failed)) = error {
                    if let Some(step) = &failed.step {
                        writeln!(err, "{:width$}  failed step: {step}", outcome.name)?;
                    }
                }
            }
        }
    }
    if mode != ProgressMode::Quiet {
        let built = outcomes.iter().filter(|o| o.result.is_ok()).count();
        let total = Summary { steps, cached, failed: false, canceled: false, duration: elapsed, warnings: 0 };
        let hit = total.cache_hit_percent().map(|p| format!(" ({p}%)")).unwrap_or_default();
        writeln!(
            err,
            // Each target counts its own steps, so a step that two targets share (a
            // common base stage, a `target:` link) counts twice here, while the display's
            // `Built in` line above counts it once: say which count this is.
            "bake: {built} of {} targets built in {:.1}s: {steps} steps summed over targets, {cached} cached{hit}",
            outcomes.len(),
            elapsed.as_secs_f64()
        )?;
    }
    Ok(())
}

/// buildx bake's metadata file: one object per target, each what `fbuild
/// solve --metadata-file` writes for it.
/// A subrequest's answer is part of its target's (as for `fbuild solve --call`).
fn write_metadata(
    path: &std::path::Path,
    outcomes: &[Outcome],
    answers: &BTreeMap<String, BTreeMap<String, String>>,
) -> anyhow::Result<()> {
    let mut document = serde_json::Map::new();
    for outcome in outcomes {
        if let Ok(report) = &outcome.result {
            let mut response = report.exporter_response.clone();
            response.extend(answers.get(&outcome.name).cloned().unwrap_or_default());
            document.insert(outcome.name.clone(), super::solve::metadata::to_json(&response));
        }
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(document))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    let context = || format!("cannot write the metadata file {path:?} (--metadata-file)");
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| anyhow::Error::new(e).context(context()))?;
    temp.write_all(text.as_bytes()).map_err(|e| anyhow::Error::new(e).context(context()))?;
    temp.persist(path).map_err(|e| anyhow::Error::new(e.error).context(context()))?;
    Ok(())
}

/// buildx's `--list` value: `targets`, `variables`, or
/// `type=TYPE[,format=table|json]`.
fn parse_list(value: &str) -> anyhow::Result<(String, String)> {
    let mut kind = String::new();
    let mut format = String::new();
    if !value.contains('=') && !value.contains(',') {
        kind = value.to_string();
    } else {
        for field in crate::output::csv_fields(value).map_err(|e| anyhow::anyhow!("--list {value:?}: {e}"))? {
            let (key, val) =
                field.split_once('=').ok_or_else(|| anyhow::anyhow!("--list {value:?}: invalid value {field}"))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => kind = val.to_string(),
                "format" => format = val.to_string(),
                other => anyhow::bail!("--list {value:?}: unexpected key '{other}' in '{field}'"),
            }
        }
    }
    if format.is_empty() {
        format = "table".into();
    }
    if !matches!(kind.as_str(), "targets" | "variables") {
        anyhow::bail!("--list {value:?}: invalid list type {kind:?} (targets or variables)");
    }
    if !matches!(format.as_str(), "table" | "json") {
        anyhow::bail!("--list {value:?}: invalid list format {format:?} (table or json)");
    }
    Ok((kind, format))
}

/// `--var NAME=VALUE` values, checked as buildx checks them (an empty
/// value is skipped).
fn parse_vars(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for value in values.iter().filter(|v| !v.is_empty()) {
        let Some((key, val)) = value.split_once('=') else {
            anyhow::bail!("--var {value:?}: invalid variable, expected key=value");
        };
        if key.is_empty() {
            anyhow::bail!("--var {value:?}: invalid variable, key is empty");
        }
        vars.insert(key.to_string(), val.to_string());
    }
    Ok(vars)
}

/// Go's `text/tabwriter` as buildx configures it (minwidth 1, tabwidth 8,
/// padding 1, padded with tabs): each column as wide as its widest cell
/// plus one, rounded up to a tab stop; the last cell of a line is not padded.
fn tab_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0).saturating_sub(1);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count() + 1).max().unwrap_or(1))
        .map(|w| w.div_ceil(8) * 8)
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count();
                out.push_str(&"\t".repeat(pad.div_ceil(8)));
            }
        }
        out.push('\n');
    }
    out
}

/// `--list targets|variables` as buildx prints them, on stdout: sorted by
/// name, targets and groups together, `_private` names left out, a group
/// described by its (sorted) members.
fn list(definition: &crate::bake::Definition, what: &str, format: &str, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut out = ctx.printer.stdout();
    if what == "variables" {
        let mut variables = definition.variables.clone();
        variables.sort_by(|a, b| a.name.cmp(&b.name));
        if format == "json" {
            let json =
                if definition.has_variable_files { serde_json::to_string_pretty(&variables)? } else { "null".into() };
            writeln!(out, "{json}")?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut rows = vec![vec!["VARIABLE".to_string(), "TYPE".into(), "VALUE".into(), "DESCRIPTION".into()]];
        for v in &variables {
            rows.push(vec![
                v.name.clone(),
                v.kind.clone().unwrap_or_default(),
                v.value.clone().unwrap_or_else(|| "<null>".into()),
                v.description.clone().unwrap_or_default(),
            ]);
        }
        write!(out, "{}", tab_table(&rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    #[derive(serde::Serialize)]
    struct Entry {
        name: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        description: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        group: bool,
    }
    let mut entries: Vec<Entry> = definition
        .targets
        .iter()
        .map(|(name, t)| Entry {
            name: name.clone(),
            description: t.description.clone().unwrap_or_default(),
            group: false,
        })
        .chain(definition.groups.iter().map(|(name, members)| {
            let mut members = members.clone();
            members.sort();
            Entry { name: name.clone(), description: members.join(", "), group: true }
        }))
        .filter(|e| !e.name.starts_with('_'))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if format == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec!["TARGET".to_string(), "DESCRIPTION".into()]];
    rows.extend(entries.into_iter().map(|e| vec![e.name, e.description]));
    write!(out, "{}", tab_table(&rows))?;
    Ok(ExitCode::SUCCESS)
}
