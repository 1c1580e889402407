//! `fbuild plan [CONTEXT] [build flags]`: which steps a build would run and
//! which the cache would answer, and why, without building: the graph the
//! native compiler makes of the flags (the daemon resolves the base
//! images), compared with the last build's record (`crate::record`) and
//! the context as it is now. The daemon is asked whether its cache holds
//! anything at all; a step it evicted since the last build is not
//! foreseen.

use std::io::Write as _;
use std::process::ExitCode;

use super::Context;
use crate::record::explain::{self, DaemonCache};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
fbuild plan .                              the steps `fbuild solve .` would run, and why\n  \
fbuild plan --build-arg V=2 --format json  the same for other flags, as JSON")]
// The build flags are `fbuild solve`'s, whose group has the same name.
#[group(skip)]
pub struct Args {
    /// Output: `text` (a line per step) or `json`
    #[arg(long = "format", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,

    #[command(flatten)]
    pub build: super::solve::Args,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let compiled = super::solve::compile_only(&args.build, ctx).await?;
    let places = &compiled.recording.places;
    let mut warnings = Vec::new();
    let (record, verdicts, daemon) = places
        .predict(&compiled.connection.channel, &compiled.definition, &compiled.recording.inputs, &mut |w| {
            warnings.push(w)
        })
        .await;
    for warning in warnings {
        let _ = writeln!(ctx.printer.stderr(), "warning: {warning}");
    }
    let mut out = ctx.printer.stdout();
    if args.format == "json" {
        let value = serde_json::json!({
            "target": record.target,
            "daemon_cache": if daemon == DaemonCache::Empty { "empty" } else { "warm" },
            "steps": verdicts,
            "cached": verdicts.iter().filter(|v| !v.runs).count(),
            "run": verdicts.iter().filter(|v| v.runs).count(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        out.write_all(explain::render_text(&verdicts, "will run", true).as_bytes())?;
        let runs = verdicts.iter().filter(|v| v.runs).count();
        writeln!(out, "{} of {} steps cached, {runs} will run.", verdicts.len() - runs, verdicts.len())?;
    }
    Ok(ExitCode::SUCCESS)
}
