//! `fbuild builder create|append|rm|ls|inspect`: builders of several
//! buildkitd nodes in buildx's own store, so `docker buildx ls` lists what
//! fbuild makes and fbuild uses what `docker buildx create --append` made.
//! The library does the work (`crate::pool`, `crate::pool::store`); this
//! file maps flags and prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::table::{self, Fields, Table};
use crate::cli::{Context, Format};
use crate::connect::{builders, TlsOptions};
use crate::control::Control;
use crate::pool::store::{self, NodeSpec, Store};
use crate::pool::{ConnectedPool, NodeState, Pool};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a builder of one node (add more with `append`)
    Create(CreateArgs),
    /// Add a node to a builder
    Append(NodeArgs),
    /// Remove a builder, or one node of it with --node
    Rm(RmArgs),
    /// List the builders and the health of their nodes
    Ls(LsArgs),
    /// Show each node of a builder: health, BuildKit version, platforms, cache size, running builds
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The builder's name (or `--name NAME`, as buildx spells it), then the node's buildkitd address
    /// (unix:///path/to.sock or tcp://host:port)
    #[arg(value_names = ["NAME", "ENDPOINT"], num_args = 1..=2, required = true)]
    pub positionals: Vec<String>,
    /// The builder's name, as `docker buildx create --name NAME ENDPOINT` takes it
    #[arg(long = "name", value_name = "NAME")]
    pub name_flag: Option<String>,
    /// The node's name (default: the builder's name and a number, as buildx names nodes)
    #[arg(long = "node", value_name = "NODE")]
    pub node: Option<String>,
    /// Platforms the node builds (default: what its workers report); repeatable or comma-separated
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// The node's share of builds relative to the other nodes (default 1)
    #[arg(long, value_name = "N")]
    pub weight: Option<u32>,
    /// TLS for the node as buildx's remote driver takes it: cacert=FILE, cert=FILE, key=FILE, servername=NAME
    #[arg(long = "driver-opt", value_name = "KEY=VALUE")]
    pub driver_opt: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Add the node to an existing builder instead (buildx's `create --append`)
    #[arg(long)]
    pub append: bool,
    /// The driver: only `remote` (buildx's remote driver) makes a builder fbuild can use
    #[arg(long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// A registry repository every build on the builder imports cache from and exports it to
    #[arg(long, value_name = "REPOSITORY")]
    pub cache: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The builder's name
    pub name: String,
    /// Remove only this node
    #[arg(long = "node", value_name = "NODE")]
    pub node: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The builder (default: the one --builder, BUILDX_BUILDER or buildx's current builder names)
    pub name: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    let env = |key: &str| std::env::var(key).ok();
    let dir = builders::store_dir(&env)
        .ok_or_else(|| anyhow::anyhow!("cannot find buildx's builder store: HOME is not set"))?;
    let store = Store::new(&dir);
    let mut err = ctx.printer.stderr();
    match command {
        Command::Create(args) => {
            if let Some(driver) = args.driver.as_deref().filter(|d| *d != "remote") {
                anyhow::bail!(
                    "--driver {driver}: fbuild makes builders of running buildkitd daemons only (--driver remote)"
                );
            }
            let (name, spec) = node_spec(&args.node)?;
            if args.append {
                append(&store, &name, &spec, &mut err)?;
                return Ok(ExitCode::SUCCESS);
            }
            let group = store::create(&store, &name, &spec, args.cache)?;
            writeln!(err, "created builder {} with node {} ({})", group.name, group.nodes[0].name, spec.endpoint)?;
        }
        Command::Append(args) => {
            let (name, spec) = node_spec(&args)?;
            append(&store, &name, &spec, &mut err)?;
        }
        Command::Rm(args) => {
            store::remove(&store, &args.name, args.node.as_deref())?;
            match &args.node {
                Some(node) => writeln!(err, "removed node {node} from builder {}", args.name)?,
                None => writeln!(err, "removed builder {}", args.name)?,
            }
        }
        Command::Ls(args) => ls(&store, args, ctx).await?,
        Command::Inspect(args) => {
            let name = match args.name {
                Some(name) => name,
                None => ctx.builder_name()?.ok_or_else(|| {
                    anyhow::anyhow!("no builder named; give one, or choose one with --builder or BUILDX_BUILDER")
                })?,
            };
            inspect(&dir, &name, args.format, ctx).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The node the flags describe.
/// Adds a node and says so.
fn append(store: &Store, name: &str, spec: &NodeSpec, err: &mut dyn Write) -> anyhow::Result<()> {
    let group = store::append(store, name, spec)?;
    let node = group.nodes.last().map(|n| n.name.as_str()).unwrap_or_default();
    writeln!(err, "added node {node} ({}) to builder {}: {} nodes", spec.endpoint, group.name, group.nodes.len())?;
    Ok(())
}

/// The builder's name and the node: `NAME ENDPOINT`, or buildx's `--name NAME ENDPOINT`.
fn node_spec(args: &NodeArgs) -> anyhow::Result<(String, NodeSpec)> {
    let (name, endpoint) = match (&args.name_flag, args.positionals.as_slice()) {
        (Some(name), [endpoint]) => (name.clone(), endpoint.clone()),
        (None, [name, endpoint]) => (name.clone(), endpoint.clone()),
        (Some(_), [_, _]) => anyhow::bail!("the builder's name is given twice (--name and NAME); give one"),
        (None, _) => anyhow::bail!("missing the node's ENDPOINT (NAME ENDPOINT, or --name NAME ENDPOINT)"),
        (Some(_), _) => anyhow::bail!("missing the node's ENDPOINT"),
    };
    let mut tls = TlsOptions::default();
    for opt in &args.driver_opt {
        let (key, value) =
            opt.split_once('=').ok_or_else(|| anyhow::anyhow!("--driver-opt {opt:?}: expected KEY=VALUE"))?;
        match key {
            "cacert" => tls.ca_cert = Some(PathBuf::from(value)),
            "cert" => tls.cert = Some(PathBuf::from(value)),
            "key" => tls.key = Some(PathBuf::from(value)),
            "servername" => tls.server_name = Some(value.to_string()),
            _ => {
                anyhow::bail!("--driver-opt {key}: not an option of the remote driver (cacert, cert, key, servername)")
            }
        }
    }
    Ok((
        name,
        NodeSpec { name: args.node.clone(), endpoint, tls, platforms: args.platform.clone(), weight: args.weight },
    ))
}

/// One line per builder, then one per node with its health.
async fn ls(store: &Store, args: LsArgs, ctx: &Context) -> anyhow::Result<()> {
    let groups = store.lock()?.list()?;
    let mut rows = Vec::new();
    for group in &groups {
        let connected = match Pool::from_store(store.dir(), &group.name) {
            Ok(pool) => Some(pool.connect().await),
            Err(_) => None,
        };
        rows.push((group, connected));
    }
    let mut out = ctx.printer.stdout();
    if args.format == Format::Json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(group, connected)| match connected {
                Some(pool) => pool_json(pool, None),
                None => serde_json::json!({ "name": group.name, "driver": group.driver }),
            })
            .collect();
        table::write_json(&mut out, &list)?;
        return Ok(());
    }
    let mut table = Table::new(["name/node", "driver/endpoint", "status", "buildkit", "platforms"]);
    for (group, connected) in &rows {
        table.row([group.name.clone(), group.driver.clone()]);
        match connected {
            Some(pool) => {
                for member in &pool.members {
                    let (status, version, platforms) = member_cells(member);
                    table.row([
                        format!(" \\_ {}", member.config.name),
                        member.config.options.addr.clone().unwrap_or_default(),
                        status,
                        version,
                        platforms,
                    ]);
                }
            }
            None => {
                for node in &group.nodes {
                    table.row([format!(" \\_ {}", node.name), node.endpoint.clone(), "not reachable by fbuild".into()]);
                }
            }
        }
    }
    table.write_to(&mut out)?;
    Ok(())
}

fn member_cells(member: &crate::pool::Member) -> (String, String, String) {
    match &member.state {
        NodeState::Up { connection, platforms, .. } => (
            "running".into(),
            connection.info.buildkit_version.as_ref().map(|v| v.version.clone()).unwrap_or_default(),
            platforms.join(", "),
        ),
        NodeState::Down(why) => (format!("down: {why}"), String::new(), member.config.platforms.join(", ")),
    }
}

/// What `inspect` asks a node that is up (`None`: the call failed).
struct NodeDetail {
    /// Bytes of build cache (`Control.DiskUsage`, summed as `fbuild du`).
    cache: Option<i64>,
    /// Builds running (`Control.ListenBuildHistory`, active only).
    running: Option<usize>,
}

/// What each node holds and runs.
async fn inspect(dir: &std::path::Path, name: &str, format: Format, ctx: &Context) -> anyhow::Result<()> {
    let pool = Pool::from_store(dir, name)?.connect().await;
    let mut details = Vec::new();
    for member in &pool.members {
        let detail = match member.connection() {
            Some(connection) => {
                let control = Control::new(connection.channel.clone());
                let records = control.disk_usage(Vec::new(), None).await;
                let cache = records.map(|r| super::du::Totals::of(&r).total).ok();
                let running = crate::pool::running_builds(&control).await.ok();
                Some(NodeDetail { cache, running })
            }
            None => None,
        };
        details.push(detail);
    }
    let mut out = ctx.printer.stdout();
    if format == Format::Json {
        table::write_json(&mut out, &pool_json(&pool, Some(&details)))?;
        return Ok(());
    }
    let mut fields = Fields::new();
    fields.field("Name", &pool.name);
    fields.field("Driver", "remote");
    if let Some(cache) = &pool.cache {
        fields.field("Shared cache", cache);
    }
    fields.write_to(&mut out)?;
    for (member, detail) in pool.members.iter().zip(&details) {
        writeln!(out)?;
        let mut fields = Fields::new();
        fields.field("Node", &member.config.name);
        fields.field("Endpoint", member.config.options.addr.clone().unwrap_or_default());
        let (status, version, platforms) = member_cells(member);
        fields.field("Status", status);
        if !version.is_empty() {
            fields.field("BuildKit", version);
        }
        fields.field("Platforms", platforms);
        fields.field("Weight", member.config.weight);
        if let Some(NodeDetail { cache, running }) = detail {
            let cache = cache.map(crate::units::human_size).unwrap_or_else(|| "unknown".into());
            fields.field("Cache", cache);
            fields.field("Running builds", running.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into()));
        }
        fields.write_to(&mut out)?;
    }
    Ok(())
}

/// The builder as JSON: each node with what the health check found.
fn pool_json(pool: &ConnectedPool, details: Option<&[Option<NodeDetail>]>) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = pool
        .members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let mut node = serde_json::json!({
                "name": member.config.name,
                "endpoint": member.config.options.addr,
                "weight": member.config.weight,
            });
            match &member.state {
                NodeState::Up { connection, platforms, running } => {
                    node["status"] = "running".into();
                    node["buildkit"] =
                        connection.info.buildkit_version.as_ref().map(|v| v.version.clone()).unwrap_or_default().into();
                    node["platforms"] = platforms.clone().into();
                    node["running"] = (*running).into();
                }
                NodeState::Down(why) => {
                    node["status"] = "down".into();
                    node["error"] = why.clone().into();
                    node["platforms"] = member.config.platforms.clone().into();
                }
            }
            if let Some(Some(detail)) = details.and_then(|d| d.get(i)) {
                node["cache_bytes"] = detail.cache.into();
                node["running"] = detail.running.into();
            }
            node
        })
        .collect();
    serde_json::json!({ "name": pool.name, "driver": "remote", "cache": pool.cache, "nodes": nodes })
}
