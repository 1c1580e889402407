//! `fbuild workers`: the daemon's workers and their platforms (like
//! `buildctl debug workers`); `--verbose` adds labels, devices and GC policy.
//!
//! The JSON form has the shape of `buildctl debug workers --format
//! '{{json .}}'` (Go's `client.WorkerInfo`), so scripts work with either.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::info::{version_fields, VersionJson};
use crate::cli::table::{self, Fields, Table};
use crate::cli::{Context, Format};
use crate::control::Control;
use crate::proto::moby::buildkit::v1::types::{GcPolicy, WorkerRecord};
use crate::proto::pb::Platform;
use crate::units::{go_duration, human_size_short};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only workers matching a containerd-style filter (e.g.
    /// `labels."org.mobyproject.buildkit.worker.executor"==oci`); repeatable, any may match
    #[arg(long, short = 'f', value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<ExitCode> {
    let control = Control::new(ctx.connect().await?.channel);
    let workers = control.list_workers(args.filter).await?;
    let mut out = ctx.printer.stdout();
    match args.format {
        Format::Json => write_json(&workers, &mut out)?,
        Format::Table if ctx.printer.is_verbose() => render_verbose(&workers, &mut out)?,
        Format::Table => render_table(&workers, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A platform as containerd's `platforms.Format(platforms.Normalize(p))`
/// writes it: `linux/amd64`, `linux/arm/v7`, `linux/arm64`.
pub(crate) fn format_platform(platform: &Platform) -> String {
    let os = match platform.os.to_ascii_lowercase() {
        os if os.is_empty() => std::env::consts::OS.to_owned(),
        os if os == "macos" => "darwin".to_owned(),
        os => os,
    };
    let (arch, variant) = normalize_arch(&platform.architecture, &platform.variant);
    [os, arch, variant].into_iter().filter(|part| !part.is_empty()).collect::<Vec<_>>().join("/")
}

/// containerd's architecture aliases and default variants.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = (arch.to_ascii_lowercase(), variant.to_ascii_lowercase());
    let owned = |a: &str, v: &str| (a.to_owned(), v.to_owned());
    match arch.as_str() {
        "i386" => owned("386", ""),
        "x86_64" | "x86-64" | "amd64" => owned("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => match variant.as_str() {
            "8" | "v8" | "v8.0" => owned("arm64", ""),
            "9" | "9.0" | "v9.0" => owned("arm64", "v9"),
            _ => owned("arm64", &variant),
        },
        "armhf" => owned("arm", "v7"),
        "armel" => owned("arm", "v6"),
        "arm" => match variant.as_str() {
            "" | "7" => owned("arm", "v7"),
            "5" | "6" | "8" => (arch.clone(), format!("v{variant}")),
            _ => owned("arm", &variant),
        },
        _ => (arch.clone(), variant),
    }
}

fn platforms(worker: &WorkerRecord) -> String {
    worker.platforms.iter().map(format_platform).collect::<Vec<_>>().join(",")
}

fn render_table(workers: &[WorkerRecord], out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new(["ID", "PLATFORMS"]);
    for worker in workers {
        table.row([worker.id.clone(), platforms(worker)]);
    }
    table.write_to(out)
}

fn render_verbose(workers: &[WorkerRecord], out: &mut dyn Write) -> std::io::Result<()> {
    for (index, worker) in workers.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        let mut fields = Fields::new();
        fields.field("ID", &worker.id).field("Platforms", platforms(worker));
        if let Some(version) = &worker.buildkit_version {
            version_fields(version, &mut fields);
        }
        fields.heading("Labels");
        for (key, value) in &worker.labels {
            fields.nested(key, value);
        }
        if !worker.cdi_devices.is_empty() {
            fields.heading("Devices");
            for device in &worker.cdi_devices {
                fields.nested("Name", &device.name);
                if device.on_demand {
                    fields.nested("OnDemand", true);
                } else {
                    fields.nested("AutoAllow", device.auto_allow);
                }
                for (key, value) in &device.annotations {
                    fields.nested("Annotation", format!("{key}: {value}"));
                }
            }
        }
        for (number, rule) in worker.gc_policy.iter().enumerate() {
            fields.heading(&format!("GC Policy rule#{number}"));
            gc_rule_fields(rule, &mut fields);
        }
        fields.write_to(out)?;
    }
    Ok(())
}

/// One GC rule; zero limits are omitted, as buildctl does.
fn gc_rule_fields(rule: &GcPolicy, fields: &mut Fields) {
    fields.nested("All", rule.all);
    if !rule.filters.is_empty() {
        fields.nested("Filters", rule.filters.join(" "));
    }
    if rule.keep_duration > 0 {
        fields.nested("Keep duration", go_duration(nanos(rule.keep_duration)));
    }
    let limits = [
        ("Reserved space", rule.reserved_space),
        ("Minimum free space", rule.min_free_space),
        ("Maximum used space", rule.max_used_space),
    ];
    for (name, bytes) in limits {
        if bytes > 0 {
            fields.nested(name, human_size_short(bytes));
        }
    }
}

fn nanos(value: i64) -> Duration {
    Duration::from_nanos(u64::try_from(value).unwrap_or(0))
}

/// Go's `client.WorkerInfo`, field for field.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerJson<'a> {
    id: &'a str,
    /// Go writes an empty map as `null`.
    labels: Option<&'a BTreeMap<String, String>>,
    platforms: Vec<PlatformJson<'a>>,
    gc_policy: Vec<GcPolicyJson<'a>>,
    buildkit_version: VersionJson<'a>,
    cdi_devices: Option<Vec<CdiDeviceJson<'a>>>,
}

/// The OCI image-spec platform.
#[derive(Debug, serde::Serialize)]
struct PlatformJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(rename = "os.version", skip_serializing_if = "str::is_empty")]
    os_version: &'a str,
    #[serde(rename = "os.features", skip_serializing_if = "<[String]>::is_empty")]
    os_features: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    variant: &'a str,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct GcPolicyJson<'a> {
    all: bool,
    filter: Option<&'a [String]>,
    /// Nanoseconds, as Go encodes a `time.Duration`.
    keep_duration: i64,
    reserved_space: i64,
    max_used_space: i64,
    min_free_space: i64,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CdiDeviceJson<'a> {
    name: &'a str,
    auto_allow: bool,
    annotations: Option<&'a BTreeMap<String, String>>,
    on_demand: bool,
}

fn non_empty_map(map: &BTreeMap<String, String>) -> Option<&BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn worker_json(worker: &WorkerRecord) -> WorkerJson<'_> {
    WorkerJson {
        id: &worker.id,
        labels: non_empty_map(&worker.labels),
        platforms: worker
            .platforms
            .iter()
            .map(|p| PlatformJson {
                architecture: &p.architecture,
                os: &p.os,
                os_version: &p.os_version,
                os_features: &p.os_features,
                variant: &p.variant,
            })
            .collect(),
        gc_policy: worker
            .gc_policy
            .iter()
            .map(|rule| GcPolicyJson {
                all: rule.all,
                filter: (!rule.filters.is_empty()).then_some(rule.filters.as_slice()),
                keep_duration: rule.keep_duration,
                reserved_space: rule.reserved_space,
                max_used_space: rule.max_used_space,
                min_free_space: rule.min_free_space,
            })
            .collect(),
        buildkit_version: worker.buildkit_version.as_ref().map(VersionJson::from).unwrap_or_default(),
        cdi_devices: (!worker.cdi_devices.is_empty()).then(|| {
            worker
                .cdi_devices
                .iter()
                .map(|d| CdiDeviceJson {
                    name: &d.name,
                    auto_allow: d.auto_allow,
                    annotations: non_empty_map(&d.annotations),
                    on_demand: d.on_demand,
                })
                .collect()
        }),
    }
}

fn write_json(workers: &[WorkerRecord], out: &mut dyn Write) -> std::io::Result<()> {
    let workers: Vec<_> = workers.iter().map(worker_json).collect();
    table::write_json(out, &workers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::moby::buildkit::v1::types::BuildkitVersion;

    fn platform(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform { os: os.into(), architecture: architecture.into(), variant: variant.into(), ..Default::default() }
    }

    /// The worker of the test daemon (buildkitd v0.32.2, OCI worker), as
    /// `buildctl debug workers -v` showed it.
    fn oci_worker() -> WorkerRecord {
        let labels = [
            ("org.mobyproject.buildkit.worker.executor", "oci"),
            ("org.mobyproject.buildkit.worker.hostname", "vm"),
            ("org.mobyproject.buildkit.worker.network", "host"),
            ("org.mobyproject.buildkit.worker.oci.process-mode", "sandbox"),
            ("org.mobyproject.buildkit.worker.selinux.enabled", "false"),
            ("org.mobyproject.buildkit.worker.snapshotter", "overlayfs"),
        ];
        let limits = |keep_hours: i64| GcPolicy {
            keep_duration: keep_hours * 3_600_000_000_000,
            reserved_space: 10_000_000_000,
            max_used_space: 100_000_000_000,
            min_free_space: 51_000_000_000,
            ..Default::default()
        };
        WorkerRecord {
            id: "gdxweitklo4pubcj8rgr7f40y".into(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            platforms: vec![
                platform("linux", "amd64", ""),
                platform("linux", "amd64", "v2"),
                platform("linux", "amd64", "v3"),
                platform("linux", "amd64", "v4"),
                platform("linux", "386", ""),
            ],
            gc_policy: vec![
                GcPolicy {
                    filters: vec![
                        "type==source.local".into(),
                        "type==exec.cachemount".into(),
                        "type==source.git.checkout".into(),
                    ],
                    keep_duration: 48 * 3_600_000_000_000,
                    max_used_space: 512_000_000,
                    ..Default::default()
                },
                limits(1440),
                limits(0),
                GcPolicy { all: true, ..limits(0) },
            ],
            buildkit_version: Some(BuildkitVersion {
                package: "github.com/moby/buildkit".into(),
                version: "v0.32.2".into(),
                revision: String::new(),
                dockerfile_version: "1.26.0".into(),
            }),
            cdi_devices: Vec::new(),
        }
    }

    fn rendered(render: fn(&[WorkerRecord], &mut dyn Write) -> std::io::Result<()>) -> String {
        table::rendered(|out| render(&[oci_worker()], out))
    }

    #[test]
    fn platforms_are_normalized_like_containerd() {
        assert_eq!(format_platform(&platform("linux", "amd64", "")), "linux/amd64");
        assert_eq!(format_platform(&platform("Linux", "x86_64", "v1")), "linux/amd64");
        assert_eq!(format_platform(&platform("linux", "aarch64", "v8")), "linux/arm64");
        assert_eq!(format_platform(&platform("linux", "arm", "")), "linux/arm/v7");
        assert_eq!(format_platform(&platform("linux", "arm", "6")), "linux/arm/v6");
        assert_eq!(format_platform(&platform("linux", "armel", "")), "linux/arm/v6");
        assert_eq!(format_platform(&platform("windows", "i386", "x")), "windows/386");
        assert_eq!(format_platform(&platform("linux", "riscv64", "")), "linux/riscv64");
    }

    #[test]
    fn table_lists_ids_and_platforms() {
        insta::assert_snapshot!(rendered(render_table), @r"
        ID                          PLATFORMS
        gdxweitklo4pubcj8rgr7f40y   linux/amd64,linux/amd64/v2,linux/amd64/v3,linux/amd64/v4,linux/386
        ");
    }

    #[test]
    fn verbose_shows_labels_and_gc_policy() {
        insta::assert_snapshot!(rendered(render_verbose), @r"
        ID:         gdxweitklo4pubcj8rgr7f40y
        Platforms:  linux/amd64,linux/amd64/v2,linux/amd64/v3,linux/amd64/v4,linux/386
        BuildKit:   github.com/moby/buildkit v0.32.2
        Dockerfile: 1.26.0
        Labels:
          org.mobyproject.buildkit.worker.executor:         oci
          org.mobyproject.buildkit.worker.hostname:         vm
          org.mobyproject.buildkit.worker.network:          host
          org.mobyproject.buildkit.worker.oci.process-mode: sandbox
          org.mobyproject.buildkit.worker.selinux.enabled:  false
          org.mobyproject.buildkit.worker.snapshotter:      overlayfs
        GC Policy rule#0:
          All:                false
          Filters:            type==source.local type==exec.cachemount type==source.git.checkout
          Keep duration:      48h0m0s
          Maximum used space: 512MB
        GC Policy rule#1:
          All:                false
          Keep duration:      1440h0m0s
          Reserved space:     10GB
          Minimum free space: 51GB
          Maximum used space: 100GB
        GC Policy rule#2:
          All:                false
          Reserved space:     10GB
          Minimum free space: 51GB
          Maximum used space: 100GB
        GC Policy rule#3:
          All:                true
          Reserved space:     10GB
          Minimum free space: 51GB
          Maximum used space: 100GB
        ");
    }

    #[test]
    fn json_matches_buildctl() {
        // The exact output of `buildctl debug workers --format '{{json .}}'`
        // against the same daemon.
        let buildctl = r#"[{"id":"gdxweitklo4pubcj8rgr7f40y","labels":{"org.mobyproject.buildkit.worker.executor":"oci","org.mobyproject.buildkit.worker.hostname":"vm","org.mobyproject.buildkit.worker.network":"host","org.mobyproject.buildkit.worker.oci.process-mode":"sandbox","org.mobyproject.buildkit.worker.selinux.enabled":"false","org.mobyproject.buildkit.worker.snapshotter":"overlayfs"},"platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"amd64","os":"linux","variant":"v2"},{"architecture":"amd64","os":"linux","variant":"v3"},{"architecture":"amd64","os":"linux","variant":"v4"},{"architecture":"386","os":"linux"}],"gcPolicy":[{"all":false,"filter":["type==source.local","type==exec.cachemount","type==source.git.checkout"],"keepDuration":172800000000000,"reservedSpace":0,"maxUsedSpace":512000000,"minFreeSpace":0},{"all":false,"filter":null,"keepDuration":5184000000000000,"reservedSpace":10000000000,"maxUsedSpace":100000000000,"minFreeSpace":51000000000},{"all":false,"filter":null,"keepDuration":0,"reservedSpace":10000000000,"maxUsedSpace":100000000000,"minFreeSpace":51000000000},{"all":true,"filter":null,"keepDuration":0,"reservedSpace":10000000000,"maxUsedSpace":100000000000,"minFreeSpace":51000000000}],"buildkitVersion":{"package":"github.com/moby/buildkit","version":"v0.32.2","revision":"","dockerfileVersion":"1.26.0"},"cdiDevices":null}]"#;
        assert_eq!(rendered(write_json), format!("{buildctl}\n"));
    }
}
