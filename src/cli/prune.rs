//! `fbuild prune`: delete build cache (like `buildctl prune`).
//!
//! The daemon streams each record as it deletes it; fbuild prints it at once
//! (a line, a `--verbose` block, or a JSON object per line with `--format
//! json`), then the total reclaimed. Sizes take buildctl's numbers (a bare
//! number is megabytes) or a unit (`10GB`); see [`crate::units::parse_size`].

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::cli::du::{clip_description, record_fields, UsageJson};
use crate::cli::table;
use crate::cli::{Context, Format};
use crate::control::{Control, ControlError, PruneOptions};
use crate::proto::moby::buildkit::v1::UsageRecord;
use crate::units::{human_size, parse_size};

#[derive(Debug, clap::Args)]
#[command(after_help = "With no limits every matching record that is not in use is deleted.\n\
Sizes: a bare number is megabytes (as in buildctl), or give a unit: 500MB, 10GB, 2GiB.")]
pub struct Args {
    /// Also delete internal and frontend records
    #[arg(long)]
    pub all: bool,
    /// Keep records used within this long (e.g. 24h, 7days)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub keep_duration: Option<Duration>,
    /// Keep up to this much cache, deleting least recently used first (e.g. 10GB)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub keep_storage: Option<i64>,
    /// Always allow the cache this much, whatever the other limits
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub keep_storage_min: Option<i64>,
    /// Delete until the daemon's disk has this much free
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub free_storage: Option<i64>,
    /// Only records matching a filter (`type==exec.cachemount`, or buildx's `type=exec.cachemount`); repeatable, any may match
    #[arg(long, short = 'f', value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

impl Args {
    fn options(&self) -> PruneOptions {
        PruneOptions {
            all: self.all,
            filters: self.filter.clone(),
            keep_duration: self.keep_duration,
            reserved_space: self.keep_storage_min.unwrap_or(0),
            max_used_space: self.keep_storage.unwrap_or(0),
            min_free_space: self.free_storage.unwrap_or(0),
        }
    }
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut options = args.options();
    // The same filter spellings as `fbuild du`; a typo deletes nothing rather than everything, but still says so.
    options.filters =
        options.filters.iter().map(|f| crate::cli::du::normalize_filter(f)).collect::<Result<Vec<_>, _>>()?;
    let control = Control::new(ctx.connect().await?.channel);
    let mut deleted = control.prune(options).await?;
    let mut printer = PrunePrinter::new(args.format, ctx.printer.is_verbose());
    let mut out = ctx.printer.stdout();
    while let Some(record) = deleted.message().await.map_err(|status| ControlError::new("Prune", status))? {
        printer.record(&record, SystemTime::now(), &mut out)?;
    }
    printer.finish(&mut out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints deleted records one by one; a stream cannot be measured for
/// column widths first, so lines use fixed widths (ids are 25 characters).
struct PrunePrinter {
    format: Format,
    verbose: bool,
    count: usize,
    reclaimed: i64,
}

impl PrunePrinter {
    fn new(format: Format, verbose: bool) -> Self {
        Self { format, verbose, count: 0, reclaimed: 0 }
    }

    fn record(&mut self, record: &UsageRecord, now: SystemTime, out: &mut dyn Write) -> std::io::Result<()> {
        self.count += 1;
        // Unknown sizes are negative; they free nothing we can count.
        self.reclaimed += record.size.max(0);
        match self.format {
            Format::Json => table::write_json(out, &UsageJson::from(record))?,
            Format::Table if self.verbose => {
                record_fields(record, now).write_to(out)?;
                writeln!(out)?;
            }
            Format::Table => {
                if self.count == 1 {
                    writeln!(out, "{:<25}   {:>10}   {:<19}   DESCRIPTION", "ID", "SIZE", "TYPE")?;
                }
                let line = format!(
                    "{:<25}   {:>10}   {:<19}   {}",
                    record.id,
                    human_size(record.size),
                    record.record_type,
                    clip_description(&record.description)
                );
                writeln!(out, "{}", line.trim_end())?;
            }
        }
        // Show progress as it happens even when stdout is a pipe.
        out.flush()
    }

    fn finish(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            // One object per record and nothing else, so each line parses.
            Format::Json => Ok(()),
            Format::Table => {
                let mut fields = table::Fields::new();
                fields.field("Total", human_size(self.reclaimed));
                fields.write_to(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::du::tests::{now, records};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("prune").chain(argv.iter().copied())).map(|cli| cli.args)
    }

    #[test]
    fn flags_become_prune_options() {
        let args = parse(&[
            "--all",
            "--keep-duration",
            "24h",
            "--keep-storage",
            "10GB",
            "--keep-storage-min",
            "512",
            "--free-storage",
            "1GiB",
            "-f",
            "type==exec.cachemount",
            "--filter",
            "type==regular",
        ])
        .unwrap();
        assert_eq!(
            args.options(),
            PruneOptions {
                all: true,
                filters: vec!["type==exec.cachemount".into(), "type==regular".into()],
                keep_duration: Some(Duration::from_secs(86_400)),
                reserved_space: 512_000_000,
                max_used_space: 10_000_000_000,
                min_free_space: 1 << 30,
            }
        );
        assert_eq!(parse(&[]).unwrap().options(), PruneOptions::default());
    }

    #[test]
    fn bad_sizes_and_durations_are_rejected() {
        assert!(parse(&["--keep-storage", "lots"]).is_err());
        assert!(parse(&["--keep-duration", "soon"]).is_err());
    }

    fn printed(format: Format, verbose: bool) -> String {
        let mut printer = PrunePrinter::new(format, verbose);
        let mut out = Vec::new();
        let mut records = records();
        records.push(UsageRecord { id: "unknownsize".into(), size: -1, ..Default::default() });
        for record in &records {
            printer.record(record, now(), &mut out).unwrap();
        }
        printer.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streams_lines_and_total() {
        insta::assert_snapshot!(printed(Format::Table, false), @r"
        ID                                SIZE   TYPE                  DESCRIPTION
        wyx6wmen4e6teqve7n17qfwlx       3.08MB   regular               [1/1] COPY rootfs/ /
        39cgn7gm7mkt0zqm37uldl2s9       2.01MB   source.local          local source for context
        pbu4t059ydrkzo6hkvhlefep9       8.19kB   source.local          local source for dockerfile
        waqyd1g3w3zmdxjiy0z7mdelu       4.10kB   source.local          local source for context
        unknownsize                        -1B
        Total: 5.10MB
        ");
    }

    #[test]
    fn json_is_one_record_per_line() {
        let text = printed(Format::Json, false);
        let lines: Vec<serde_json::Value> =
            text.lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["id"], "wyx6wmen4e6teqve7n17qfwlx");
        assert_eq!(lines[0]["size"], 3_075_665);
        assert_eq!(lines[4]["lastUsedAt"], serde_json::Value::Null);
    }

    #[test]
    fn nothing_deleted_prints_a_zero_total() {
        let printer = PrunePrinter::new(Format::Table, false);
        let mut out = Vec::new();
        printer.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "Total: 0B\n");
    }
}
