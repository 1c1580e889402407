//! `fbuild du`: what the daemon's build cache holds (like `buildctl du`).
//!
//! Records come sorted by size, then id, and the totals are summed the way
//! `buildctl du` sums them (see [`Totals`]), so the two tools print the same
//! `Reclaimable` and `Total` for the same daemon. Unlike buildctl, fbuild
//! prints the totals under a `--filter` too: they are then the totals of the
//! matching records. The JSON form is `buildctl du --format '{{json .}}'`'s
//! (Go's `client.UsageInfo` list).
//!
//! The record helpers here are shared with `fbuild prune`, which prints the
//! records it deletes the same way.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::cli::table::{self, Fields, Table};
use crate::cli::{Context, Format};
use crate::control::Control;
use crate::proto::moby::buildkit::v1::UsageRecord;
use crate::units::{human_duration, human_size, rfc3339_nano};

#[derive(Debug, clap::Args)]
#[command(after_help = "Filters use the daemon's syntax (`type==exec.cachemount`, `id~=PREFIX`,\n\
`description~=regex`, `type!=regular`) or buildx's (`type=exec.cachemount`, meaning ==;\n\
`id=X` meaning id~=X); commas join conditions that must all hold. Keys: id, parents,\n\
description, type, inuse, mutable, immutable, shared, private. Record types: regular,\n\
source.local, source.git.checkout, exec.cachemount, frontend, internal.\n\
The table fits the terminal's width ($COLUMNS); --verbose shows every field of each record.")]
pub struct Args {
    /// Only records matching a filter; repeatable (a record may match any)
    #[arg(long, short = 'f', value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let filters = args.filter.iter().map(|f| normalize_filter(f)).collect::<Result<Vec<_>, _>>()?;
    let control = Control::new(ctx.connect().await?.channel);
    let mut records = control.disk_usage(filters, None).await?;
    sort_records(&mut records);
    let mut out = ctx.printer.stdout();
    let now = SystemTime::now();
    match args.format {
        Format::Json => write_json(&records, &mut out)?,
        Format::Table if ctx.printer.is_verbose() => {
            render_verbose(&records, now, &mut out)?;
            Totals::of(&records).write_to(&mut out)?;
        }
        Format::Table => {
            render_table(&records, now, output_width(), &mut out)?;
            Totals::of(&records).write_to(&mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Smallest first, ties by id: the order buildctl's client library gives.
pub(crate) fn sort_records(records: &mut [UsageRecord]) {
    records.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.id.cmp(&b.id)));
}

/// The summary lines under the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) total: i64,
    pub(crate) reclaimable: i64,
    pub(crate) shared: i64,
}

impl Totals {
    /// Sums as `buildctl du` does: sizes the daemon could not compute are
    /// negative and count in neither total; a record is reclaimable when it
    /// is not in use; shared records count in `total` and, separately, in
    /// `shared` (so private = total - shared).
    pub(crate) fn of(records: &[UsageRecord]) -> Self {
        let mut totals = Self::default();
        for record in records {
            if record.size > 0 {
                totals.total += record.size;
                if !record.in_use {
                    totals.reclaimable += record.size;
                }
            }
            if record.shared {
                totals.shared += record.size;
            }
        }
        totals
    }

    pub(crate) fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut fields = Fields::new();
        if self.shared > 0 {
            fields.field("Shared", human_size(self.shared));
            fields.field("Private", human_size(self.total - self.shared));
        }
        fields.field("Reclaimable", human_size(self.reclaimable));
        fields.field("Total", human_size(self.total));
        fields.write_to(out)
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// When the record was last used, in words relative to `now`.
fn last_used(record: &UsageRecord, now: SystemTime) -> String {
    let Some(at) = &record.last_used_at else {
        return "never".to_owned();
    };
    let at = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(at.seconds).unwrap_or(0))
        + Duration::from_nanos(u64::try_from(at.nanos).unwrap_or(0));
    // A clock behind the daemon's would make this negative; call it "just now".
    let ago = now.duration_since(at).unwrap_or(Duration::ZERO);
    format!("{} ago", human_duration(ago).to_lowercase())
}

/// Keys the daemon's cache records can be filtered on
/// (`cache/manager.go` adaptUsageInfo); any other key matches nothing.
const FILTER_KEYS: &[&str] =
    &["id", "parents", "description", "type", "inuse", "mutable", "immutable", "shared", "private"];

/// A `--filter` that cannot be sent.
#[derive(Debug, thiserror::Error)]
#[error("invalid --filter {filter:?}: {problem}")]
pub(crate) struct FilterError {
    filter: String,
    problem: String,
}

/// One `--filter` in the daemon's syntax. buildx's spelling `KEY=VALUE` is
/// turned into what buildx sends for it (`commands/prune.go`): `KEY==VALUE`,
/// or `id~=VALUE` for an id; the daemon's own operators (`==`, `!=`, `~=`)
/// pass through. An unknown key is refused: the daemon would silently match
/// nothing.
pub(crate) fn normalize_filter(filter: &str) -> Result<String, FilterError> {
    let fail = |problem: String| FilterError { filter: filter.to_owned(), problem };
    let mut conditions = Vec::new();
    for condition in filter.split(',') {
        let condition = condition.trim();
        if condition.is_empty() {
            return Err(fail("an empty condition".into()));
        }
        let key_end = condition.find(['=', '!', '~']).unwrap_or(condition.len());
        let (key, rest) = condition.split_at(key_end);
        if !FILTER_KEYS.contains(&key) {
            return Err(fail(format!("unknown key {key:?} (known keys: {})", FILTER_KEYS.join(", "))));
        }
        let normalized = if rest.is_empty() || ["==", "!=", "~="].iter().any(|op| rest.starts_with(op)) {
            condition.to_owned()
        } else if let Some(value) = rest.strip_prefix('=') {
            if key == "id" {
                format!("id~={value}")
            } else {
                format!("{key}=={value}")
            }
        } else {
            return Err(fail(format!("{condition:?} is not KEY=VALUE, KEY==VALUE, KEY!=VALUE or KEY~=REGEX")));
        };
        conditions.push(normalized);
    }
    Ok(conditions.join(","))
}

/// How wide the table may be: `$COLUMNS`, else the terminal's width when
/// stdout is one; `None` (no limit) for a pipe.
pub(crate) fn output_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()) {
        return Some(columns).filter(|&c| c > 0);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        if let Some((terminal_size::Width(columns), _)) = terminal_size::terminal_size_of(std::io::stdout()) {
            return Some(usize::from(columns)).filter(|&c| c > 0);
        }
    }
    None
}

/// The narrowest a description is cut to before whole columns go.
const MIN_DESCRIPTION: usize = 20;

fn render_table(
    records: &[UsageRecord],
    now: SystemTime,
    width: Option<usize>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let headers = ["ID", "TYPE", "SIZE", "RECLAIMABLE", "SHARED", "LAST USED", "USAGE", "DESCRIPTION"];
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|record| {
            [
                record.id.clone(),
                record.record_type.clone(),
                human_size(record.size),
                yes_no(!record.in_use),
                yes_no(record.shared),
                last_used(record, now),
                record.usage_count.to_string(),
                clip_description(&record.description),
            ]
        })
        .collect();
    // Columns shown, and how wide a description may be, to fit `width`:
    // the least useful columns go first (buildx's own table has only ID,
    // RECLAIMABLE, SIZE and LAST ACCESSED), then descriptions are cut.
    let mut shown: Vec<usize> = (0..headers.len()).collect();
    let column_width =
        |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0);
    let fixed =
        |shown: &[usize]| -> usize { shown.iter().filter(|&&i| i != 7).map(|&i| column_width(i) + table::GAP).sum() };
    let mut description_width = DESCRIPTION_WIDTH;
    if let Some(width) = width {
        for droppable in [6, 4, 1, 5] {
            if fixed(&shown) + MIN_DESCRIPTION <= width {
                break;
            }
            shown.retain(|&i| i != droppable);
        }
        description_width =
            width.saturating_sub(fixed(&shown)).clamp(MIN_DESCRIPTION.min(DESCRIPTION_WIDTH), DESCRIPTION_WIDTH);
    }
    let mut table = Table::from_headers(shown.iter().map(|&i| headers[i]));
    for row in &rows {
        table.row(shown.iter().map(|&i| if i == 7 { clip_to(&row[i], description_width) } else { row[i].clone() }));
    }
    table.write_to(out)?;
    writeln!(out)
}

/// Descriptions quote whole commands (heredocs included); the table shows
/// one line of at most [`DESCRIPTION_WIDTH`] characters, `--verbose` and
/// JSON show all of it.
const DESCRIPTION_WIDTH: usize = 60;

pub(crate) fn clip_description(description: &str) -> String {
    let one_line = description.split_whitespace().collect::<Vec<_>>().join(" ");
    clip_to(&one_line, DESCRIPTION_WIDTH)
}

/// `text` cut to `width` characters, the last one an ellipsis when cut.
fn clip_to(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// Every field of one record, as `Key: value` lines.
pub(crate) fn record_fields(record: &UsageRecord, now: SystemTime) -> Fields {
    let mut fields = Fields::new();
    fields.field("ID", &record.id);
    if !record.parents.is_empty() {
        fields.field("Parents", record.parents.join(";"));
    }
    fields.field("Type", &record.record_type);
    if let Some(created) = &record.created_at {
        fields.field("Created at", rfc3339_nano(created));
    }
    fields.field("Mutable", record.mutable);
    fields.field("In use", record.in_use);
    fields.field("Reclaimable", !record.in_use);
    fields.field("Shared", record.shared);
    fields.field("Size", human_size(record.size));
    if !record.description.is_empty() {
        fields.field("Description", &record.description);
    }
    fields.field("Usage count", record.usage_count);
    if let Some(used) = &record.last_used_at {
        fields.field("Last used", format!("{} ({})", rfc3339_nano(used), last_used(record, now)));
    }
    fields
}

fn render_verbose(records: &[UsageRecord], now: SystemTime, out: &mut dyn Write) -> std::io::Result<()> {
    for record in records {
        record_fields(record, now).write_to(out)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Go's `client.UsageInfo`, field for field.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageJson<'a> {
    id: &'a str,
    mutable: bool,
    in_use: bool,
    size: i64,
    created_at: String,
    last_used_at: Option<String>,
    usage_count: i64,
    /// Go writes an empty list as `null`.
    parents: Option<&'a [String]>,
    description: &'a str,
    record_type: &'a str,
    shared: bool,
}

impl<'a> From<&'a UsageRecord> for UsageJson<'a> {
    fn from(record: &'a UsageRecord) -> Self {
        Self {
            id: &record.id,
            mutable: record.mutable,
            in_use: record.in_use,
            size: record.size,
            // Go turns a missing timestamp into the Unix epoch.
            created_at: rfc3339_nano(&record.created_at.unwrap_or_default()),
            last_used_at: record.last_used_at.as_ref().map(rfc3339_nano),
            usage_count: record.usage_count,
            parents: (!record.parents.is_empty()).then_some(record.parents.as_slice()),
            description: &record.description,
            record_type: &record.record_type,
            shared: record.shared,
        }
    }
}

fn write_json(records: &[UsageRecord], out: &mut dyn Write) -> std::io::Result<()> {
    let records: Vec<UsageJson<'_>> = records.iter().map(UsageJson::from).collect();
    table::write_json(out, &records)
}

#[cfg(test)]
pub(crate) mod tests {
    use prost_types::Timestamp;

    use super::*;

    /// 2026-11-24T21:48:44Z plus `nanos`.
    fn at(nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds: 1_795_556_924, nanos })
    }

    pub(crate) fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_556_924 + 2 * 3600)
    }

    /// The records of the test daemon after one small build, as
    /// `buildctl du --format '{{json .}}'` showed them.
    pub(crate) fn records() -> Vec<UsageRecord> {
        let record = |id: &str, mutable, size, description: &str, record_type: &str| UsageRecord {
            id: id.into(),
            mutable,
            size,
            created_at: at(264_159_257),
            last_used_at: at(481_240_000),
            usage_count: 1,
            description: description.into(),
            record_type: record_type.into(),
            ..Default::default()
        };
        vec![
            record("wyx6wmen4e6teqve7n17qfwlx", false, 3_075_665, "[1/1] COPY rootfs/ /", "regular"),
            record("39cgn7gm7mkt0zqm37uldl2s9", true, 2_011_136, "local source for context", "source.local"),
            record("pbu4t059ydrkzo6hkvhlefep9", true, 8192, "local source for dockerfile", "source.local"),
            record("waqyd1g3w3zmdxjiy0z7mdelu", true, 4096, "local source for context", "source.local"),
        ]
    }

    fn sorted_records() -> Vec<UsageRecord> {
        let mut records = records();
        sort_records(&mut records);
        records
    }

    #[test]
    fn filters_take_buildx_spelling_and_refuse_unknown_keys() {
        assert_eq!(normalize_filter("type=exec.cachemount").unwrap(), "type==exec.cachemount");
        assert_eq!(normalize_filter("type==regular").unwrap(), "type==regular");
        assert_eq!(normalize_filter("id=abc").unwrap(), "id~=abc");
        assert_eq!(normalize_filter("description~=^local,type!=regular").unwrap(), "description~=^local,type!=regular");
        assert_eq!(normalize_filter("inuse,shared").unwrap(), "inuse,shared");
        let err = normalize_filter("typo=regular").unwrap_err().to_string();
        assert!(err.starts_with("invalid --filter \"typo=regular\": unknown key \"typo\""), "{err}");
        assert!(normalize_filter("type=a,").is_err());
        assert!(normalize_filter("type~x").is_err());
    }

    #[test]
    fn the_table_fits_the_width() {
        let mut records = sorted_records();
        records[0].description =
            "mount / from exec /bin/sh -c apt-get update && apt-get install -y build-essential".into();
        let widest = |width: Option<usize>| {
            let text = table::rendered(|out| render_table(&records, now(), width, out));
            text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
        };
        assert!(widest(None) > 120, "unlimited: every column, descriptions up to 60 characters");
        for width in [80, 100, 120] {
            assert!(widest(Some(width)) <= width, "{width} columns");
        }
        let narrow = table::rendered(|out| render_table(&records, now(), Some(80), out));
        assert!(narrow.starts_with("ID "), "{narrow}");
        assert!(!narrow.contains("USAGE") && narrow.contains("DESCRIPTION"), "{narrow}");
        assert!(narrow.contains('…'), "descriptions are cut: {narrow}");
    }

    #[test]
    fn sorts_by_size_then_id() {
        let mut records = records();
        records.push(UsageRecord { id: "aaa".into(), size: 4096, ..Default::default() });
        sort_records(&mut records);
        let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "aaa",
                "waqyd1g3w3zmdxjiy0z7mdelu",
                "pbu4t059ydrkzo6hkvhlefep9",
                "39cgn7gm7mkt0zqm37uldl2s9",
                "wyx6wmen4e6teqve7n17qfwlx"
            ]
        );
    }

    #[test]
    fn totals_are_summed_like_buildctl() {
        // buildctl printed Reclaimable 5.10MB, Total 5.10MB for these.
        let totals = Totals::of(&records());
        assert_eq!(totals, Totals { total: 5_099_089, reclaimable: 5_099_089, shared: 0 });
        assert_eq!(table::rendered(|out| totals.write_to(out)), "Reclaimable: 5.10MB\nTotal:       5.10MB\n");

        let mut records = records();
        records[0].in_use = true;
        records[1].shared = true;
        // Unknown sizes (-1) count nowhere, even when not in use.
        records.push(UsageRecord { id: "unknown".into(), size: -1, ..Default::default() });
        let totals = Totals::of(&records);
        assert_eq!(totals, Totals { total: 5_099_089, reclaimable: 2_023_424, shared: 2_011_136 });
        insta::assert_snapshot!(table::rendered(|out| totals.write_to(out)), @r"
        Shared:      2.01MB
        Private:     3.09MB
        Reclaimable: 2.02MB
        Total:       5.10MB
        ");
    }

    #[test]
    fn table_shows_every_record() {
        insta::assert_snapshot!(table::rendered(|out| render_table(&sorted_records(), now(), None, out)), @r"
        ID                          TYPE           SIZE     RECLAIMABLE   SHARED   LAST USED     USAGE   DESCRIPTION
        waqyd1g3w3zmdxjiy0z7mdelu   source.local   4.10kB   yes           no       2 hours ago   1       local source for context
        pbu4t059ydrkzo6hkvhlefep9   source.local   8.19kB   yes           no       2 hours ago   1       local source for dockerfile
        39cgn7gm7mkt0zqm37uldl2s9   source.local   2.01MB   yes           no       2 hours ago   1       local source for context
        wyx6wmen4e6teqve7n17qfwlx   regular        3.08MB   yes           no       2 hours ago   1       [1/1] COPY rootfs/ /
        ");
    }

    #[test]
    fn verbose_shows_every_field() {
        let mut records = sorted_records();
        records.truncate(1);
        records[0].parents = vec!["p1".into(), "p2".into()];
        insta::assert_snapshot!(table::rendered(|out| render_verbose(&records, now(), out)), @r"
        ID:          waqyd1g3w3zmdxjiy0z7mdelu
        Parents:     p1;p2
        Type:        source.local
        Created at:  2026-11-24T21:48:44.264159257Z
        Mutable:     true
        In use:      false
        Reclaimable: true
        Shared:      false
        Size:        4.10kB
        Description: local source for context
        Usage count: 1
        Last used:   2026-11-24T21:48:44.48124Z (2 hours ago)
        ");
    }

    #[test]
    fn json_matches_buildctl() {
        // The exact output of `buildctl du --format '{{json .}}'`.
        let buildctl = r#"[{"id":"waqyd1g3w3zmdxjiy0z7mdelu","mutable":true,"inUse":false,"size":4096,"createdAt":"2026-11-24T21:48:44.264159257Z","lastUsedAt":"2026-11-24T21:48:44.48124Z","usageCount":1,"parents":null,"description":"local source for context","recordType":"source.local","shared":false}]"#;
        let mut records = sorted_records();
        records.truncate(1);
        assert_eq!(table::rendered(|out| write_json(&records, out)), format!("{buildctl}\n"));
    }

    #[test]
    fn long_descriptions_are_clipped_to_one_line() {
        assert_eq!(clip_description("[1/1] COPY rootfs/ /"), "[1/1] COPY rootfs/ /");
        let heredoc = format!("mount / from exec /bin/sh -c <<EOF\n{}\nEOF", "echo é; ".repeat(20));
        let clipped = clip_description(&heredoc);
        assert_eq!(clipped.chars().count(), DESCRIPTION_WIDTH);
        assert!(clipped.ends_with('…'), "{clipped}");
        assert!(!clipped.contains('\n'));
    }

    #[test]
    fn last_used_is_relative() {
        let mut record = records().remove(0);
        assert_eq!(last_used(&record, now()), "2 hours ago");
        record.last_used_at = None;
        assert_eq!(last_used(&record, now()), "never");
    }
}
