//! `fbuild cache ls DIR` and `fbuild cache gc DIR`: a local cache folder
//! (`--cache-to type=local,dest=DIR`) seen and tidied from the client; no
//! daemon is involved.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cache::local;
use crate::cli::table::Table;
use crate::cli::{Context, Format};
use crate::units::human_size;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List a local cache folder's tags: digest, layers, size and carried cache mounts
    #[command(after_help = "Example:\n  fbuild cache ls /tmp/.buildx-cache")]
    Ls(LsArgs),
    /// Remove the blobs no tag of a local cache folder reaches (fbuild does this after each export)
    #[command(after_help = "Example:\n  fbuild cache gc /tmp/.buildx-cache")]
    Gc(GcArgs),
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// The cache folder (the `dest=` of `--cache-to type=local`)
    pub dir: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// The cache folder (the `dest=` of `--cache-to type=local`)
    pub dir: PathBuf,
}

pub fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ls(args) => ls(args, ctx),
        Command::Gc(args) => gc(args, ctx),
    }
}

fn ls(args: LsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let summary =
        local::inspect(&args.dir).with_context(|| format!("cannot read the cache folder {}", args.dir.display()))?;
    let mut out = ctx.printer.stdout();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &summary)?;
            writeln!(out)?;
        }
        Format::Table => {
            let mut table = Table::new(["TAG", "DIGEST", "LAYERS", "SIZE", "CACHE MOUNTS"]);
            for tag in &summary.tags {
                let mounts = if tag.mounts.is_empty() {
                    "-".to_string()
                } else {
                    tag.mounts
                        .iter()
                        .map(|m| format!("{} ({})", printable(&m.mount.id), human_size(m.size as i64)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let short = tag.digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
                table.row([printable(&tag.tag), short, tag.layers.to_string(), human_size(tag.bytes as i64), mounts]);
            }
            table.write_to(&mut out)?;
            write!(
                out,
                "Total: {}, of which {} unreferenced",
                human_size(summary.total_bytes as i64),
                human_size(summary.unreferenced_bytes as i64)
            )?;
            if summary.temporary_bytes > 0 {
                // A killed export's file, until the next collection.
                write!(out, "; {} in temporary files", human_size(summary.temporary_bytes as i64))?;
            }
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` from a cache folder (untrusted) as it may reach a terminal:
/// control characters (escape sequences, carriage returns) escaped as
/// `\u{1b}`, the rest as it is.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn gc(args: GcArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let collected =
        local::collect(&args.dir).with_context(|| format!("cannot collect the cache folder {}", args.dir.display()))?;
    let Some(collected) = collected else {
        anyhow::bail!("{} is in use by a running build; try again when it has finished", args.dir.display());
    };
    let _ = writeln!(
        ctx.printer.stderr(),
        "removed {} blob{} ({}) from {}",
        collected.blobs,
        if collected.blobs == 1 { "" } else { "s" },
        human_size(collected.bytes as i64),
        args.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
