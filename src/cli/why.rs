//! `fbuild why [TARGET]`: why the last build of a project's target ran the
//! steps it ran, from its build record (`crate::record`): the state
//! folder's, or with `--cache-dir` the one carried in a local cache folder
//! (a fresh CI runner).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::solve::plan::ProcessEnv;
use super::Context;
use crate::record::{explain, RecordPlaces, RecordStore};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
fbuild why                           the last build of ./Dockerfile's last stage\n  \
fbuild why deps --format json        the last build of the `deps` stage, as JSON\n  \
fbuild why --cache-dir /tmp/cache    the record carried in a local cache folder (--cache-to type=local)")]
pub struct Args {
    /// The target stage that was built (default: the last stage)
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// The build context folder of the build
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub context: PathBuf,

    /// The Dockerfile of the build (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Read the record carried in this local cache folder instead of the state folder
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Output: `text` (a line per step) or `json`
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,

    /// Also append a Markdown summary (hit rate, misses and causes) to $GITHUB_STEP_SUMMARY
    #[arg(long, value_name = "KIND", value_parser = ["github"])]
    pub summary: Option<String>,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let target = args.target.clone().unwrap_or_default();
    let dockerfile = args.file.clone().unwrap_or_else(|| args.context.join("Dockerfile"));
    let record = match &args.cache_dir {
        Some(dir) => crate::record::load_from_cache_folder(dir, &target)?
            .with_context(|| format!("the cache folder {} carries no build record of this target", dir.display()))?,
        None => {
            let store = RecordStore::from_env(&|name| std::env::var(name).ok())?;
            let places = RecordPlaces::new(args.context.clone(), dockerfile.clone(), target.clone(), Some(store));
            let mut warnings = Vec::new();
            let found = places.previous(&mut |w| warnings.push(w));
            for warning in warnings {
                let _ = writeln!(ctx.printer.stderr(), "warning: {warning}");
            }
            found.with_context(|| {
                format!(
                    "no build of {} (context {}{}) is recorded; records are kept by `fbuild solve` with the native frontend",
                    dockerfile.display(),
                    args.context.display(),
                    if target.is_empty() { String::new() } else { format!(", target {target}") }
                )
            })?
        }
    };
    let verdicts = explain::verdicts(&record);
    let mut out = ctx.printer.stdout();
    if args.format == "json" {
        let value = serde_json::json!({
            "target": record.target,
            "created": record.created,
            "steps": verdicts,
            "cached": verdicts.iter().filter(|v| !v.runs).count(),
            "ran": verdicts.iter().filter(|v| v.runs).count(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        out.write_all(explain::render_text(&verdicts, "ran", true).as_bytes())?;
        let ran = verdicts.iter().filter(|v| v.runs).count();
        writeln!(out, "{} of {} steps cached, {ran} ran.", verdicts.len() - ran, verdicts.len())?;
    }
    if args.summary.is_some() {
        super::solve::record::github_summary(&verdicts, &ProcessEnv)?;
    }
    Ok(ExitCode::SUCCESS)
}
