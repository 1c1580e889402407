//! `fbuild solve` flags end to end against the test daemon, each checked by
//! what it changes in the result: named contexts, several platforms, the
//! network of RUN steps, extra hosts, labels, entitlements and the inline
//! cache.

use std::ffi::OsStr;
use std::path::Path;

use oci_spec::image::{ImageIndex, MediaType};

use crate::util::{self, testenv, OciLayout, PrivateDaemon};

/// `fbuild solve PROJECT ARGS…`, which must succeed; returns stderr.
fn solve(project: &Path, args: &[&str]) -> String {
    let output = util::fbuild().arg("solve").arg(project).args(args).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "fbuild solve {args:?} failed:\n{stderr}");
    stderr
}

/// `fbuild solve PROJECT ARGS…`, which must fail; returns stderr.
fn solve_fails(project: &Path, args: &[&str]) -> String {
    let output = util::fbuild().arg("solve").arg(project).args(args).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "fbuild solve {args:?} should fail with exit code 1:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `type=local,dest=DIR`.
fn local_output(dir: &Path) -> String {
    format!("type=local,dest={}", dir.display())
}

#[test]
fn build_context_from_a_folder() {
    let project = util::tempdir();
    let unique = util::unique();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY --from=assets /x /x\n")]);
    // Outside the main context, so the file can only come from the named one.
    let assets = util::tempdir();
    util::write_files(assets.path(), &[("x", &format!("asset {unique}\n"))]);
    let out = util::tempdir();
    solve(
        project.path(),
        &["--build-context", &format!("assets={}", assets.path().display()), "-o", &local_output(out.path())],
    );
    assert_eq!(std::fs::read_to_string(out.path().join("x")).unwrap(), format!("asset {unique}\n"));
}

// Ignored: fbuild bug. The named context's folder is sent as the local named
// after the context, so `--build-context dockerfile=DIR` (or `context=DIR`)
// replaces the main Dockerfile's (or context's) folder: "failed to read
// dockerfile: open Dockerfile: no such file or directory". buildx names these
// two locals `_dockerfile` and `_context` to keep them apart.
#[test]
fn build_context_named_like_a_main_local() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY --from=dockerfile /x /named-dockerfile\n\
                 COPY --from=context /x /named-context\nCOPY main.txt /\n",
            ),
            ("main.txt", "main\n"),
        ],
    );
    let named_dockerfile = util::tempdir();
    util::write_files(named_dockerfile.path(), &[("x", "named dockerfile\n")]);
    let named_context = util::tempdir();
    util::write_files(named_context.path(), &[("x", "named context\n")]);
    let out = util::tempdir();
    solve(
        project.path(),
        &[
            "--build-context",
            &format!("dockerfile={}", named_dockerfile.path().display()),
            "--build-context",
            &format!("context={}", named_context.path().display()),
            "-o",
            &local_output(out.path()),
        ],
    );
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap();
    assert_eq!(read("named-dockerfile"), "named dockerfile\n");
    assert_eq!(read("named-context"), "named context\n");
    assert_eq!(read("main.txt"), "main\n", "the main context is still the project");
}

#[test]
fn build_context_from_an_image() {
    let project = util::tempdir();
    let unique = util::unique();
    // `base` names no image anywhere (and there is no Docker Hub here): only
    // the named context makes it the test registry's busybox.
    util::write_files(
        project.path(),
        &[("Dockerfile", "FROM base\nCOPY marker /marker\n"), ("marker", &format!("{unique}\n"))],
    );
    let out = util::tempdir();
    solve(
        project.path(),
        &["--build-context", &format!("base=docker-image://{}", testenv().busybox), "-o", &local_output(out.path())],
    );
    assert!(out.path().join("bin/busybox").is_file(), "busybox's files are in the result");
    assert!(std::fs::symlink_metadata(out.path().join("bin/sh")).is_ok(), "busybox's bin/sh is in the result");
    assert_eq!(std::fs::read_to_string(out.path().join("marker")).unwrap(), format!("{unique}\n"));
}

#[test]
fn two_platforms_make_an_image_index() {
    let project = util::tempdir();
    let unique = util::unique();
    // busybox is linux/amd64 only: the RUN step runs on the build platform,
    // and writes the target platform it was asked for.
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM --platform=$BUILDPLATFORM {} AS build\nARG TARGETPLATFORM\n\
                 RUN echo \"$TARGETPLATFORM {unique}\" > /platform\n\
                 FROM scratch\nCOPY --from=build /platform /platform\n",
                testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    let dest = out.path().join("image.tar");
    solve(
        project.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            // Uncompressed layers: the tar crate can read them.
            &format!("type=oci,dest={},compression=uncompressed", dest.display()),
        ],
    );
    let layout = OciLayout::read(&dest);
    let top = layout.index();
    assert_eq!(top.manifests().len(), 1, "index.json points at one image index: {top:?}");
    assert_eq!(top.manifests()[0].media_type(), &MediaType::ImageIndex, "a multi-platform image: {top:?}");
    let index = ImageIndex::from_reader(layout.blob(&top.manifests()[0])).expect("an image index");
    let mut platforms = Vec::new();
    // buildx's default provenance adds one attestation manifest per image.
    let is_attestation = |d: &&oci_spec::image::Descriptor| {
        d.annotations().as_ref().is_some_and(|a| a.get("vnd.docker.reference.type").is_some())
    };
    assert_eq!(index.manifests().iter().filter(is_attestation).count(), 2, "one provenance per platform");
    for descriptor in index.manifests().iter().filter(|d| !is_attestation(d)) {
        let platform = descriptor.platform().as_ref().expect("each manifest names its platform");
        let name = format!("{}/{}", platform.os(), platform.architecture());
        let manifest = layout.manifest(descriptor);
        let config = layout.config(&manifest);
        assert_eq!(config.architecture().to_string(), platform.architecture().to_string(), "config of {name}");
        assert_eq!(manifest.layers().len(), 1, "{name}: one layer, the COPY");
        let files = util::tar_entries(layout.blob(&manifest.layers()[0]));
        assert_eq!(files.get("platform").map(|(_, c)| util::text(c)), Some(format!("{name} {unique}\n")), "{name}");
        platforms.push(name);
    }
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
}

// Ignored: fbuild bug. With several platforms the daemon's local exporter
// opens one stream per platform at once; each of fbuild's receivers sees that
// the destination does not exist yet and stages its tree beside it, the first
// renames its staging folder into place, and the second's rename fails with
// ENOTEMPTY ("failed to move the output into DEST: Directory not empty"),
// leaving one platform's folder behind. buildctl writes both. Into a folder
// that exists already both trees are merged and the build succeeds.
#[test]
fn two_platforms_into_a_new_local_folder() {
    let project = util::tempdir();
    let unique = util::unique();
    util::write_files(
        project.path(),
        &[("Dockerfile", "FROM scratch\nARG TARGETPLATFORM\nCOPY f /\n"), ("f", &unique)],
    );
    let out = util::tempdir();
    let dest = out.path().join("new");
    solve(project.path(), &["--platform", "linux/amd64,linux/arm64", "-o", &local_output(&dest)]);
    for platform in ["linux_amd64", "linux_arm64"] {
        assert_eq!(std::fs::read_to_string(dest.join(platform).join("f")).unwrap(), unique, "{platform}");
    }
}

/// A project whose RUN step records whether it reached the test registry,
/// and which network interfaces it saw.
fn network_probe_project(run_flags: &str) -> tempfile::TempDir {
    let project = util::tempdir();
    let (host, port) = testenv().registry.split_once(':').expect("the registry is HOST:PORT");
    // busybox's nc, not its wget: Debian's busybox 1.35 wget dies of a
    // segfault when given -T.
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {} AS probe\n\
                 RUN {run_flags} echo {unique} && \
                 (printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port} | grep -q '^HTTP/1.0 200' \
                 && echo reachable || echo unreachable) > /net && \
                 tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /ifaces\n\
                 FROM scratch\nCOPY --from=probe /net /ifaces /\n",
                testenv().busybox,
                unique = util::unique(),
            ),
        )],
    );
    project
}

/// (what `/net` says, the interfaces) after building `project` with `args`.
fn probe(project: &Path, args: &[&str]) -> (String, Vec<String>) {
    let out = util::tempdir();
    let mut args = args.to_vec();
    let dest = local_output(out.path());
    args.extend(["-o", &dest]);
    solve(project, &args);
    let net = std::fs::read_to_string(out.path().join("net")).unwrap().trim().to_owned();
    let ifaces = std::fs::read_to_string(out.path().join("ifaces")).unwrap().lines().map(str::to_owned).collect();
    (net, ifaces)
}

#[test]
fn network_none_cuts_run_steps_off() {
    let project = network_probe_project("");
    // The daemons of the tests run RUN steps in the host's network
    // (--oci-worker-net=host): the loopback registry is reachable...
    let (net, ifaces) = probe(project.path(), &[]);
    assert_eq!(net, "reachable", "without --network the RUN step has the host's network");
    assert!(ifaces.len() > 1, "the host has more than lo: {ifaces:?}");
    // ...and with --network none the step has a namespace of its own with lo only.
    let (net, ifaces) = probe(project.path(), &["--network", "none"]);
    assert_eq!(net, "unreachable", "--network none isolates the RUN step");
    assert_eq!(ifaces, ["lo"]);
}

#[test]
fn add_host_writes_etc_hosts() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {} AS run\nRUN echo {} && cat /etc/hosts > /hosts\nFROM scratch\nCOPY --from=run /hosts /hosts\n",
                testenv().busybox,
                util::unique()
            ),
        )],
    );
    let out = util::tempdir();
    solve(
        project.path(),
        &[
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "cache=10.4.5.6",
            "--add-host",
            "v6:fd00::7",
            "-o",
            &local_output(out.path()),
        ],
    );
    let hosts = std::fs::read_to_string(out.path().join("hosts")).unwrap();
    let has = |ip: &str, host: &str| {
        hosts.lines().any(|line| {
            let mut fields = line.split_whitespace();
            fields.next() == Some(ip) && fields.any(|name| name == host)
        })
    };
    assert!(has("10.1.2.3", "db"), "db:10.1.2.3 in /etc/hosts:\n{hosts}");
    assert!(has("10.4.5.6", "cache"), "cache=10.4.5.6 in /etc/hosts:\n{hosts}");
    assert!(has("fd00::7", "v6"), "v6:fd00::7 (an IPv6 address, colons and all) in /etc/hosts:\n{hosts}");
}

#[test]
fn labels_reach_the_image_config() {
    let project = util::tempdir();
    let unique = util::unique();
    util::write_files(
        project.path(),
        &[("Dockerfile", "FROM scratch\nLABEL org.example.from-file=1\nCOPY f /\n"), ("f", &unique)],
    );
    let out = util::tempdir();
    let dest = out.path().join("image.tar");
    solve(
        project.path(),
        &[
            "--label",
            "org.example.x=y",
            "--label",
            &format!("org.example.unique={unique}"),
            "--label",
            "org.example.eq=a=b",
            "-o",
            &format!("type=oci,dest={}", dest.display()),
        ],
    );
    let layout = OciLayout::read(&dest);
    let index = layout.index();
    assert_eq!(index.manifests().len(), 1, "{index:?}");
    let config = layout.config(&layout.manifest(&index.manifests()[0]));
    let labels = config.labels_of_config().expect("the config has labels");
    assert_eq!(labels.get("org.example.x").map(String::as_str), Some("y"), "{labels:?}");
    assert_eq!(labels.get("org.example.unique"), Some(&unique), "{labels:?}");
    assert_eq!(labels.get("org.example.eq").map(String::as_str), Some("a=b"), "the value keeps its '=': {labels:?}");
    assert_eq!(labels.get("org.example.from-file").map(String::as_str), Some("1"), "the Dockerfile's own label stays");
}

// Entitlements. The test daemon runs with `--allow-insecure-entitlement
// network.host` and without security.insecure (scripts/testenv.sh), so:
// network.host works once the build asks for it; security.insecure is refused
// by the daemon however the build asks, and works on a private daemon that
// allows it.

#[test]
fn allow_network_host_grants_run_network_host() {
    let project = network_probe_project("--network=host");
    let stderr = solve_fails(project.path(), &[]);
    assert!(stderr.contains("network.host is not allowed"), "without --allow the daemon refuses:\n{stderr}");

    let (net, ifaces) = probe(project.path(), &["--allow", "network.host"]);
    assert_eq!(net, "reachable", "RUN --network=host has the host's network");
    assert!(ifaces.len() > 1, "the host has more than lo: {ifaces:?}");

    // --network host grants the entitlement by itself, as in buildx.
    let plain = network_probe_project("");
    let (net, _) = probe(plain.path(), &["--network", "host"]);
    assert_eq!(net, "reachable", "--network host gives RUN steps the host's network");
}

/// `RUN --security=insecure` writing the step's effective capabilities.
fn insecure_project() -> tempfile::TempDir {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {} AS run\nRUN --security=insecure echo {} && grep CapEff /proc/self/status > /caps\n\
                 FROM scratch\nCOPY --from=run /caps /caps\n",
                testenv().busybox,
                util::unique()
            ),
        )],
    );
    project
}

#[test]
fn security_insecure_needs_allow_and_a_daemon_that_grants_it() {
    let project = insecure_project();
    let stderr = solve_fails(project.path(), &[]);
    assert!(stderr.contains("security.insecure is not allowed"), "without --allow:\n{stderr}");
    // The shared daemon was not started with --allow-insecure-entitlement security.insecure.
    let stderr = solve_fails(project.path(), &["--allow", "security.insecure"]);
    assert!(
        stderr.contains("granting entitlement security.insecure is not allowed by build daemon configuration"),
        "the daemon refuses what it does not allow:\n{stderr}"
    );
}

#[test]
fn security_insecure_runs_privileged_on_a_daemon_that_allows_it() {
    let daemon = PrivateDaemon::start([
        OsStr::new("--config"),
        testenv().root.join("buildkitd.toml").as_os_str(),
        OsStr::new("--allow-insecure-entitlement"),
        OsStr::new("security.insecure"),
    ]);
    let project = insecure_project();
    let output = daemon.fbuild().arg("solve").arg(project.path()).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "without --allow even this daemon refuses:\n{stderr}");
    assert!(stderr.contains("security.insecure is not allowed"), "{stderr}");

    let out = util::tempdir();
    let output = daemon
        .fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["--allow", "security.insecure", "-o", &local_output(out.path())])
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "{stderr}\ndaemon log:\n{}", daemon.log_tail());
    // A privileged step has every capability (CAP_SYS_ADMIN among them);
    // buildkitd's default set leaves CAP_SYS_ADMIN (bit 21) out.
    let caps = std::fs::read_to_string(out.path().join("caps")).unwrap();
    let mask = u64::from_str_radix(caps.trim().trim_start_matches("CapEff:").trim(), 16).expect("a hex mask");
    assert_ne!(mask & (1 << 21), 0, "CAP_SYS_ADMIN in a RUN --security=insecure step: {caps}");
}

#[test]
fn inline_cache_is_imported_by_a_pruned_daemon() {
    let daemon = PrivateDaemon::start([OsStr::new("--config"), testenv().root.join("buildkitd.toml").as_os_str()]);
    let project = util::tempdir();
    let unique = util::unique();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {unique} > /stamp\n", testenv().busybox))],
    );
    let image = format!("{}/fbuild-test/inline:{unique}", testenv().registry);
    let build = |args: &[&str]| daemon.solve_rawjson(project.path(), args);
    let first = build(&["--cache-to", "type=inline", "-t", &image, "--push"]);
    let step = format!("RUN echo {unique}");
    assert_eq!(util::rawjson_step_cached(&first, &step), Some(false), "the first build runs the step:\n{first}");
    let manifest = util::registry_manifest("fbuild-test/inline", &unique).expect("the image was pushed");
    assert!(manifest.get("layers").is_some() || manifest.get("manifests").is_some(), "{manifest}");

    daemon.fbuild().args(["prune", "--all"]).assert().success();
    let left = util::text(&daemon.buildctl().args(["du"]).output().unwrap().stdout);
    let total = left.lines().find_map(|line| line.strip_prefix("Total:")).map(str::trim);
    assert_eq!(total, Some("0B"), "the daemon's cache is empty after prune --all:\n{left}");

    let second = build(&["--cache-from", &image]);
    assert_eq!(
        util::rawjson_step_cached(&second, &step),
        Some(true),
        "the step comes from the image's inline cache:\n{second}"
    );
}
