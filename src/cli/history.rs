//! `fbuild history ls|inspect|logs`: the builds the daemon remembers, as
//! `buildx history` shows them (the library's [`crate::history`] reads them).
//!
//! The JSON of `ls` is buildx's (`ref` is `BUILDER/NODE/REF` when a buildx
//! builder chose the daemon, as in buildx, else the bare build ref); the table
//! has buildx's columns without its Docker Desktop link.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::cli::table::{self, Table};
use crate::cli::{Context, Format};
use crate::control::Control;
use crate::history::{self, format_duration, BuildStatus, HistoryNode, HistoryQuery, HistoryRecord, LocalState};
use crate::progress::{ProgressMode, ProgressWriter};
use crate::units::human_duration;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the builds the daemon remembers (buildx history ls)
    Ls(LsArgs),
    /// Show one build: its source, state, build args and settings (buildx history inspect)
    Inspect(InspectArgs),
    /// Replay one build's progress (buildx history logs)
    Logs(LogsArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Filters are buildx's: status=completed|error|canceled|running, ref=PART, ref!=REF,\n\
repository=PART (a build's vcs:source or git context), startedAt>1h, completedAt<2026-01-02T00:00:00Z,\n\
duration>30s; all must hold. Running builds come first, then the newest.")]
pub struct LsArgs {
    /// Only builds matching a filter; repeatable
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Do not shorten long names
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The build: its ref, or ^N for the N-th newest (default: the newest)
    pub reference: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The build: its ref, or ^N for the N-th newest (default: the newest)
    pub reference: Option<String>,
    /// How to show it: plain (default), rawjson or tty
    #[arg(long, default_value = "plain")]
    pub progress: String,
}

pub async fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ls(args) => ls(args, ctx).await,
        Command::Inspect(args) => inspect(args, ctx).await,
        Command::Logs(args) => logs(args, ctx).await,
    }
}

/// The builder and node that chose the daemon, and buildx's local state of
/// that node (the names of builds buildx ran there).
struct Origin {
    full_ref_prefix: Option<String>,
    local_state: Option<LocalState>,
}

fn origin(ctx: &Context) -> Origin {
    let env = |key: &str| std::env::var(key).ok();
    let none = Origin { full_ref_prefix: None, local_state: None };
    let Ok((_, Some(builder))) = super::connect::choose_daemon(&ctx.connect, ctx.builder.as_deref(), ctx.sources, &env)
    else {
        return none;
    };
    let Some(dir) = crate::connect::builders::store_dir(&env) else { return none };
    let Ok(loaded) = crate::connect::builders::load(&dir, &builder.name) else { return none };
    let Some(node) = loaded.nodes.first() else { return none };
    Origin {
        full_ref_prefix: Some(format!("{}/{}", loaded.name, node.name)),
        local_state: LocalState::new(&dir, &loaded.name, &node.name),
    }
}

/// A daemon whose records are read: the `BUILDER/NODE` its refs carry when
/// a buildx builder chose it, and buildx's local state of that node.
struct Node {
    name: String,
    full_ref_prefix: Option<String>,
    control: Control,
    local_state: Option<LocalState>,
}

/// The daemons to read: every node of a builder of several nodes that is
/// up (buildx reads them all), else the one daemon.
async fn nodes(ctx: &Context) -> anyhow::Result<Vec<Node>> {
    if let Some(pool) = ctx.pool().await? {
        let env = |key: &str| std::env::var(key).ok();
        let dir = crate::connect::builders::store_dir(&env);
        return Ok(pool
            .members
            .iter()
            .filter_map(|member| {
                let connection = member.connection()?;
                let node = &member.config.name;
                Some(Node {
                    name: node.clone(),
                    full_ref_prefix: Some(format!("{}/{node}", pool.name)),
                    control: Control::new(connection.channel.clone()),
                    local_state: dir.as_deref().and_then(|dir| LocalState::new(dir, &pool.name, node)),
                })
            })
            .collect());
    }
    let origin = origin(ctx);
    let control = Control::new(ctx.connect().await?.channel);
    Ok(vec![Node {
        name: String::new(),
        full_ref_prefix: origin.full_ref_prefix,
        control,
        local_state: origin.local_state,
    }])
}

/// The records `query` asks for from every node, merged newest first; each
/// record's `node` indexes the nodes returned.
async fn query(ctx: &Context, query: HistoryQuery) -> anyhow::Result<(Vec<Node>, Vec<HistoryRecord>)> {
    let nodes = nodes(ctx).await?;
    let records = match nodes.as_slice() {
        [node] => history::list(&node.control, &query, node.local_state.as_ref()).await?,
        many => {
            let reading: Vec<HistoryNode<'_>> = many
                .iter()
                .map(|n| HistoryNode { name: &n.name, control: &n.control, local_state: n.local_state.as_ref() })
                .collect();
            history::list_nodes(&reading, &query).await?
        }
    };
    Ok((nodes, records))
}

async fn ls(args: LsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let (nodes, mut records) = query(ctx, HistoryQuery { filters: args.filter, ..Default::default() }).await?;
    history::sort_for_listing(&mut records);
    let mut out = ctx.printer.stdout();
    match args.format {
        Format::Json => {
            for record in &records {
                let prefix = nodes.get(record.node).and_then(|n| n.full_ref_prefix.as_deref());
                table::write_json(&mut out, &ls_json(record, prefix))?;
            }
        }
        Format::Table => {
            let now = SystemTime::now();
            let mut table = Table::new(["BUILD ID", "NAME", "STATUS", "CREATED AT", "DURATION"]);
            for record in &records {
                let name = if args.no_trunc { record.name.clone() } else { trim_beginning(&record.name, 36) };
                let created = record
                    .created_at()
                    .map(|at| format!("{} ago", human_duration(now.duration_since(at).unwrap_or_default())))
                    .unwrap_or_default();
                let duration = match record.duration() {
                    Some(d) if record.status() == BuildStatus::Running => format!("{}+", format_duration(d)),
                    Some(d) => format_duration(d),
                    None => String::new(),
                };
                table.row([record.record.r#ref.clone(), name, record.status().ls_word().to_owned(), created, duration]);
            }
            table.write_to(&mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// buildx's `trimBeginning`: `..` and the last `n - 2` bytes.
fn trim_beginning(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut start = s.len() - (n - 2);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("..{}", &s[start..])
}

/// One line of `buildx history ls --format json` (Go marshals the map with sorted keys).
fn ls_json(record: &HistoryRecord, prefix: Option<&str>) -> BTreeMap<&'static str, serde_json::Value> {
    let r = &record.record;
    let full_ref = match prefix {
        Some(prefix) => format!("{prefix}/{}", r.r#ref),
        None => r.r#ref.clone(),
    };
    let mut map = BTreeMap::from([
        ("ref", full_ref.into()),
        ("name", record.name.clone().into()),
        ("status", record.status().ls_word().into()),
        ("created_at", r.created_at.as_ref().map(crate::units::rfc3339_nano).unwrap_or_default().into()),
        ("total_steps", r.num_total_steps.into()),
        ("completed_steps", r.num_completed_steps.into()),
        ("cached_steps", r.num_cached_steps.into()),
    ]);
    if let Some(done) = &r.completed_at {
        map.insert("completed_at", crate::units::rfc3339_nano(done).into());
    }
    map
}

fn no_record(reference: &str) -> anyhow::Error {
    if reference.is_empty() {
        anyhow::anyhow!("no records found")
    } else {
        anyhow::anyhow!("no record found for ref {reference:?}")
    }
}

async fn inspect(args: InspectArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let reference = args.reference.unwrap_or_default();
    let (nodes, records) = query(ctx, HistoryQuery { reference: reference.clone(), ..Default::default() }).await?;
    let record = records.into_iter().next().ok_or_else(|| no_record(&reference))?;
    // The node that holds the build.
    let control = &nodes[record.node].control;
    let attachments = history::attachments(control.channel(), &record.record).await;
    let materials = history::materials(control.channel(), &attachments).await;
    let stored_error = history::stored_error(control, &record.record).await;
    let mut view = InspectView::of(&record, materials, &attachments);
    if let Some(stored) = stored_error {
        let error = view.error.get_or_insert_with(ErrorView::default);
        error.sources = stored.sources;
        error.name = stored.step;
        error.logs = stored.logs;
    }
    let mut out = ctx.printer.stdout();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &view)?;
            writeln!(out)?;
        }
        Format::Table => view.write_pretty(&mut out, reference.is_empty())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn is_empty_str(s: &str) -> bool {
    s.is_empty()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What `buildx history inspect` shows of a build (its `inspectOutput`, the
/// same JSON field names and order), from the record's frontend attributes.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectView {
    #[serde(skip_serializing_if = "is_empty_str")]
    name: String,
    #[serde(rename = "Ref")]
    reference: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    context: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    dockerfile: String,
    #[serde(rename = "VCSRepository", skip_serializing_if = "is_empty_str")]
    vcs_repository: String,
    #[serde(rename = "VCSRevision", skip_serializing_if = "is_empty_str")]
    vcs_revision: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    platform: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    keep_git_dir: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    named_contexts: Vec<KeyValue>,
    #[serde(skip_serializing_if = "is_empty_str")]
    started_at: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    completed_at: String,
    /// Nanoseconds, as Go marshals a `time.Duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView>,
    num_completed_steps: i32,
    num_total_steps: i32,
    num_cached_steps: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_args: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<KeyValue>,
    config: ConfigView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    materials: Vec<history::Material>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<AttachmentView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyValue {
    name: String,
    value: String,
}

/// buildx's `errorOutput` without `Stack` (buildx's is mostly its own process's stack).
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorView {
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
    #[serde(skip_serializing_if = "is_empty_str")]
    message: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logs: Vec<String>,
    /// Go marshals `[]byte` as base64.
    #[serde(skip_serializing_if = "is_empty_str", serialize_with = "as_base64")]
    sources: String,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn as_base64<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(text))
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct AttachmentView {
    digest: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    platform: String,
    #[serde(rename = "Type")]
    kind: String,
}

/// buildx's `configOutput`: the settings it shows under their own labels, then the rest.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigView {
    #[serde(skip_serializing_if = "is_empty_str")]
    network: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    hostname: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    cgroup_parent: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    image_resolve_mode: String,
    #[serde(skip_serializing_if = "is_false")]
    multi_platform: bool,
    #[serde(skip_serializing_if = "is_false")]
    no_cache: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    no_cache_filter: Vec<String>,
    #[serde(skip_serializing_if = "is_empty_str")]
    shm_size: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    ulimit: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    memory: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    memory_swap: String,
    #[serde(rename = "CPUShares", skip_serializing_if = "is_empty_str")]
    cpu_shares: String,
    #[serde(rename = "CPUPeriod", skip_serializing_if = "is_empty_str")]
    cpu_period: String,
    #[serde(rename = "CPUQuota", skip_serializing_if = "is_empty_str")]
    cpu_quota: String,
    #[serde(rename = "CPUSetCPUs", skip_serializing_if = "is_empty_str")]
    cpu_set_cpus: String,
    #[serde(rename = "CPUSetMems", skip_serializing_if = "is_empty_str")]
    cpu_set_mems: String,
    #[serde(rename = "CacheMountNS", skip_serializing_if = "is_empty_str")]
    cache_mount_ns: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    dockerfile_check_config: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    source_date_epoch: String,
    #[serde(skip_serializing_if = "is_empty_str")]
    sandbox_hostname: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rest_raw: Vec<KeyValue>,
}

impl ConfigView {
    /// Takes the attributes buildx shows under their own labels out of `attrs`.
    fn take(attrs: &mut BTreeMap<String, String>, errors: &mut Vec<String>) -> Self {
        let mut take = |key: &str| attrs.remove(key).unwrap_or_default();
        let parse_bool = |value: String, errors: &mut Vec<String>| -> bool {
            if value.is_empty() {
                return false;
            }
            crate::gostrconv::parse_bool(&value).unwrap_or_else(|| {
                errors.push(format!("strconv.ParseBool: parsing {value:?}: invalid syntax"));
                false
            })
        };
        let network = take("force-network-mode");
        let hostname = take("hostname");
        let cgroup_parent = take("cgroup-parent");
        let image_resolve_mode = take("image-resolve-mode");
        let multi_platform_arg = take("build-arg:BUILDKIT_MULTI_PLATFORM");
        let multi_platform_attr = take("multi-platform");
        let mut multi_platform = parse_bool(multi_platform_arg, errors);
        if !multi_platform_attr.is_empty() {
            multi_platform = parse_bool(multi_platform_attr, errors);
        }
        let (no_cache, no_cache_filter) = match attrs.remove("no-cache") {
            Some(v) if v.is_empty() => (true, Vec::new()),
            Some(v) => (false, v.split(',').map(str::to_owned).collect()),
            None => (false, Vec::new()),
        };
        let mut take = |key: &str| attrs.remove(key).unwrap_or_default();
        let extra_hosts = take("add-hosts");
        let extra_hosts = if extra_hosts.is_empty() {
            Vec::new()
        } else {
            extra_hosts.split(',').map(|h| h.trim_matches('"').to_owned()).collect()
        };
        ConfigView {
            network,
            extra_hosts,
            hostname,
            cgroup_parent,
            image_resolve_mode,
            multi_platform,
            no_cache,
            no_cache_filter,
            shm_size: take("shm-size"),
            ulimit: take("ulimit"),
            memory: take("memory"),
            memory_swap: take("memswap"),
            cpu_shares: take("cpushares"),
            cpu_period: take("cpuperiod"),
            cpu_quota: take("cpuquota"),
            cpu_set_cpus: take("cpusetcpus"),
            cpu_set_mems: take("cpusetmems"),
            cache_mount_ns: take("build-arg:BUILDKIT_CACHE_MOUNT_NS"),
            dockerfile_check_config: take("build-arg:BUILDKIT_DOCKERFILE_CHECK"),
            source_date_epoch: take("build-arg:SOURCE_DATE_EPOCH"),
            sandbox_hostname: take("build-arg:SANDBOX_HOSTNAME"),
            rest_raw: Vec::new(),
        }
    }

    /// `Label:<value>` lines in buildx's order.
    fn fields(&self) -> Vec<(String, String)> {
        let humanize = |v: &str| match v.parse::<i64>() {
            Ok(n) if n >= 0 => bytes_size(n),
            _ => v.to_owned(),
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |label: &str, value: String| {
            if !value.is_empty() {
                out.push((label.to_owned(), value));
            }
        };
        push("Network", self.network.clone());
        push("Hostname", self.hostname.clone());
        push("Extra Hosts", self.extra_hosts.join(", "));
        push("Cgroup Parent", self.cgroup_parent.clone());
        push("Image Resolve Mode", self.image_resolve_mode.clone());
        push("Multi-Platform", if self.multi_platform { "true".into() } else { String::new() });
        push("No Cache", if self.no_cache { "true".into() } else { String::new() });
        push("No Cache Filter", self.no_cache_filter.join(", "));
        push("Shm Size", self.shm_size.clone());
        push("Resource Limits", self.ulimit.clone());
        push("Memory", if self.memory.is_empty() { String::new() } else { humanize(&self.memory) });
        push("Memory Swap", if self.memory_swap.is_empty() { String::new() } else { humanize(&self.memory_swap) });
        push("CPU Shares", self.cpu_shares.clone());
        push("CPU Period", self.cpu_period.clone());
        push("CPU Quota", self.cpu_quota.clone());
        push("CPUSet CPUs", self.cpu_set_cpus.clone());
        push("CPUSet Mems", self.cpu_set_mems.clone());
        push("Cache Mount Namespace", self.cache_mount_ns.clone());
        push("Dockerfile Check Config", self.dockerfile_check_config.clone());
        push("Source Date Epoch", self.source_date_epoch.clone());
        push("Sandbox Hostname", self.sandbox_hostname.clone());
        for kv in &self.rest_raw {
            out.push((kv.name.clone(), kv.value.clone()));
        }
        out
    }
}

impl InspectView {
    fn of(record: &HistoryRecord, materials: Vec<history::Material>, attachments: &[history::Attachment]) -> Self {
        let r = &record.record;
        let mut attrs = r.frontend_attrs.clone();
        attrs.remove("frontend.caps");
        let mut errors = Vec::new();
        // buildx's own builds: the folders it remembered, relative where they are inside
        // (the Dockerfile to the context, the context to the working folder).
        let (mut context, mut dockerfile) = match &record.local_state {
            Some(state) => {
                let cwd = std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
                let mut dockerfile = state.dockerfile_path.clone();
                if !dockerfile.is_empty() && dockerfile != "-" {
                    dockerfile = crate::gopath::relative_inside(Path::new(&state.local_path), Path::new(&dockerfile))
                        .unwrap_or(dockerfile);
                }
                let context = crate::gopath::relative_inside(Path::new(&cwd), Path::new(&state.local_path))
                    .unwrap_or_else(|| state.local_path.clone());
                (context, dockerfile)
            }
            None => (String::new(), String::new()),
        };
        match attrs.remove("context") {
            Some(v) if context.is_empty() => context = v,
            _ => {}
        }
        if dockerfile.is_empty() {
            if let Some(name) = attrs.get("filename") {
                dockerfile = match attrs.get("vcs:localdir:dockerfile") {
                    Some(dir) => crate::gopath::join(&[dir, name]),
                    None => name.clone(),
                };
            }
        }
        attrs.remove("filename");
        // buildx names the build after taking `context` and `filename` out of the
        // very map it names it from (a Go map is shared), so inspect's name can
        // be shorter than ls's: the same here.
        let name = history::build_name(&attrs, record.local_state.as_ref());
        let (vcs_repository, vcs_revision) = if context.is_empty() {
            (
                attrs.get("vcs:source").cloned().unwrap_or_default(),
                attrs.get("vcs:revision").cloned().unwrap_or_default(),
            )
        } else {
            Default::default()
        };
        let target = attrs.remove("target").unwrap_or_default();
        let platform = attrs
            .remove("platform")
            .map(|p| p.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let keep_git_dir =
            attrs.remove("build-arg:BUILDKIT_CONTEXT_KEEP_GIT_DIR").is_some_and(|v| v == "true" || v == "1");
        let prefixed = |attrs: &BTreeMap<String, String>, prefix: &str| -> Vec<KeyValue> {
            attrs
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(prefix).map(|name| KeyValue { name: name.into(), value: v.clone() })
                })
                .collect()
        };
        let named_contexts = prefixed(&attrs, "context:");
        let mut config = ConfigView::take(&mut attrs, &mut errors);
        let build_args = prefixed(&attrs, "build-arg:");
        let labels = prefixed(&attrs, "label:");
        config.rest_raw = attrs
            .iter()
            .filter(|(k, _)| !["vcs:", "build-arg:", "label:", "context:", "attest:"].iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| KeyValue { name: k.clone(), value: v.clone() })
            .collect();
        let status = match record.status() {
            BuildStatus::Running => "running",
            BuildStatus::Completed => "completed",
            BuildStatus::Canceled => "canceled",
            _ => "failed",
        };
        InspectView {
            name,
            reference: r.r#ref.clone(),
            context,
            dockerfile,
            vcs_repository,
            vcs_revision,
            target,
            platform,
            keep_git_dir,
            named_contexts,
            started_at: r.created_at.as_ref().map(crate::units::rfc3339_nano).unwrap_or_default(),
            completed_at: r.completed_at.as_ref().map(crate::units::rfc3339_nano).unwrap_or_default(),
            duration: record.duration().map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            status,
            error: r.error.as_ref().map(|e| ErrorView {
                code: e.code,
                message: e.message.clone(),
                ..Default::default()
            }),
            num_completed_steps: r.num_completed_steps,
            num_total_steps: r.num_total_steps,
            num_cached_steps: r.num_cached_steps,
            build_args,
            labels,
            config,
            materials,
            attachments: attachments
                .iter()
                .map(|a| AttachmentView {
                    digest: a.digest.clone(),
                    platform: a.platform.clone(),
                    kind: a.kind.clone(),
                })
                .collect(),
            errors,
        }
    }

    /// buildx's pretty form: blocks of `Key: value` lines, then tables.
    fn write_pretty(&self, out: &mut dyn Write, show_ref: bool) -> std::io::Result<()> {
        let mut head = table::Fields::new();
        let mut any = false;
        let mut field = |fields: &mut table::Fields, key: &str, value: &str| {
            if !value.is_empty() {
                fields.field(key, value);
                any = true;
            }
        };
        field(&mut head, "Name", &self.name);
        if show_ref {
            field(&mut head, "Ref", &self.reference);
        }
        field(&mut head, "Context", &self.context);
        field(&mut head, "Dockerfile", &self.dockerfile);
        field(&mut head, "VCS Repository", &self.vcs_repository);
        field(&mut head, "VCS Revision", &self.vcs_revision);
        field(&mut head, "Target", &self.target);
        field(&mut head, "Platforms", &self.platform.join(", "));
        if self.keep_git_dir {
            field(&mut head, "Keep Git Dir", "true");
        }
        head.write_to(out)?;
        writeln!(out)?;
        write_key_values(out, "NAMED CONTEXT", &self.named_contexts)?;

        let mut state = table::Fields::new();
        let started = self
            .started_at
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        state.field("Started", started);
        let running = if self.status == "running" { " (running)" } else { "" };
        let duration = format_duration(std::time::Duration::from_nanos(self.duration.unwrap_or(0)));
        state.field("Duration", format!("{duration}{running}"));
        match (&self.error, self.status) {
            (_, "canceled") => {
                state.field("Status", "Canceled");
            }
            (Some(error), _) => {
                state.field("Error", format!("{} {}", grpc_code_name(error.code), error.message));
            }
            _ => {}
        }
        let cached = f64::from(self.num_cached_steps) / f64::from(self.num_total_steps) * 100.0;
        let cached = if cached.is_nan() { "NaN".to_owned() } else { format!("{cached:.0}") };
        state.field("Build Steps", format!("{}/{} ({cached}% cached)", self.num_completed_steps, self.num_total_steps));
        state.write_to(out)?;
        writeln!(out)?;

        let mut config = table::Fields::new();
        for (label, value) in self.config.fields() {
            config.field(&label, value);
        }
        config.write_to(out)?;
        writeln!(out)?;
        write_key_values(out, "BUILD ARG", &self.build_args)?;
        write_key_values(out, "LABEL", &self.labels)?;

        if !self.materials.is_empty() {
            writeln!(out, "Materials:")?;
            let mut t = Table::new(["URI", "DIGEST"]);
            for m in &self.materials {
                t.row([m.uri.clone(), m.digests.join(", ")]);
            }
            t.write_to(out)?;
            writeln!(out)?;
        }
        if !self.attachments.is_empty() {
            writeln!(out, "Attachments:")?;
            let mut t = Table::new(["DIGEST", "PLATFORM", "TYPE"]);
            for a in &self.attachments {
                t.row([a.digest.clone(), a.platform.clone(), a.kind.clone()]);
            }
            t.write_to(out)?;
            writeln!(out)?;
        }
        if let Some(error) = &self.error {
            write!(out, "{}", error.sources)?;
            if !error.logs.is_empty() {
                writeln!(out, "Logs:")?;
                writeln!(out, "> => {}:", error.name)?;
                for line in &error.logs {
                    writeln!(out, "> {line}")?;
                }
                writeln!(out)?;
            }
        }
        writeln!(out, "Print build logs: fbuild history logs {}", self.reference)
    }
}

/// go-units' `BytesSize`: binary units, four significant digits (`512MiB`, `1.5GiB`).
fn bytes_size(n: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    // %.4g below 10000: four significant digits, trailing zeros dropped.
    let decimals = 3usize.saturating_sub(if size >= 1.0 { size.log10().floor() as usize } else { 0 });
    let text = format!("{size:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text };
    format!("{text}{}", UNITS[unit])
}

fn write_key_values(out: &mut dyn Write, title: &str, list: &[KeyValue]) -> std::io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let mut t = Table::new([title, "VALUE"]);
    for kv in list {
        t.row([kv.name.clone(), kv.value.clone()]);
    }
    t.write_to(out)?;
    writeln!(out)
}

/// gRPC's code names as Go's `codes.Code.String()` writes them.
fn grpc_code_name(code: i32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code).ok().and_then(|i| NAMES.get(i)).map_or_else(|| format!("Code({code})"), |s| (*s).to_owned())
}

async fn logs(args: LogsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mode: ProgressMode = args.progress.parse()?;
    let mode = if mode == ProgressMode::Auto { ProgressMode::Plain } else { mode };
    let reference = args.reference.unwrap_or_default();
    let (nodes, records) = query(ctx, HistoryQuery { reference: reference.clone(), ..Default::default() }).await?;
    let record = records.into_iter().next().ok_or_else(|| no_record(&reference))?;
    // The node that holds the build.
    let control = &nodes[record.node].control;
    let stream = control.status(&record.record.r#ref).await?;
    let mut progress = ProgressWriter::new(mode, std::io::BufWriter::new(std::io::stderr()));
    progress.follow(stream).await?;
    progress.finish_replay();
    if let Some(err) = progress.write_error() {
        return Err(anyhow::anyhow!("cannot write the progress: {err}"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_lose_their_beginning_as_in_buildx() {
        assert_eq!(trim_beginning("short", 36), "short");
        let long = "a/very/long/path/to/a/project/with/a/dockerfile (target)";
        let trimmed = trim_beginning(long, 36);
        assert_eq!(trimmed.len(), 36);
        assert!(trimmed.starts_with("..") && long.ends_with(&trimmed[2..]));
    }

    #[test]
    fn sizes_print_as_go_units_bytes_size() {
        assert_eq!(bytes_size(536_870_912), "512MiB");
        assert_eq!(bytes_size(1_610_612_736), "1.5GiB");
        assert_eq!(bytes_size(1000), "1000B");
        assert_eq!(bytes_size(1_234_567), "1.177MiB");
    }

    #[test]
    fn grpc_codes_have_gos_names() {
        assert_eq!(grpc_code_name(1), "Canceled");
        assert_eq!(grpc_code_name(2), "Unknown");
        assert_eq!(grpc_code_name(99), "Code(99)");
    }
}
