//! Equivalence of fbuild's native Dockerfile compiler with the daemon's
//! Dockerfile frontend, on the corpus in `tests/dockerfiles/`.
//!
//! Each case is a folder with a `Dockerfile`, its context files and a
//! `case.json`:
//!
//! ```json
//! {"targets": [null, "stage"], "build_args": {"K": "V"},
//!  "secrets": [{"id": "token", "src": "file-in-the-case"}],
//!  "expect_error": false}
//! ```
//!
//! `targets` lists the builds of the case (`null`: the last stage);
//! `expect_error` is `false` or a substring both clients' error must hold;
//! `images` names build args that stand for an image built from a folder of
//! the case by the daemon's frontend and pushed to the test registry once
//! per run (a base image with ONBUILD triggers, say; `{ARG}` in a named
//! context stands for it too); `opts` are frontend
//! options both clients pass as `--opt K=V`
//! (`cgroup-parent`, `memory`, ...); `no_cache: true` builds with
//! `--no-cache` (for settings kept out of cache keys, which only a step that
//! runs again can show; such cases are left out of the cache check). In
//! a build arg, `{git}` stands for the loopback git daemon's URL (the
//! repository the corpus needs is created there on first use). Every build
//! gets `BASE` (the test registry's busybox, the only base image there is)
//! and `SOURCE_DATE_EPOCH=0`, and exports `type=oci,rewrite-timestamp=true`,
//! so an image's manifest digest depends on nothing but the build graph.
//!
//! Two checks, each comparing `buildctl build --frontend dockerfile.v0` (the
//! reference) with `fbuild solve --frontend $FBUILD_EQUIV_FRONTEND` (default
//! `native`):
//!
//! - [`corpus_builds_the_same_images_as_the_daemons_frontend`]: the same
//!   manifest digest for every case and target, or both fail on the error
//!   cases. A mismatch prints a diff of the two manifests, the two image
//!   configs and the files of the layers that differ.
//! - [`corpus_shares_cache_keys_with_the_daemons_frontend`]: after one client
//!   builds a case, the other's build of it is entirely cached (every vertex
//!   but `[internal]` loads, exporters and image sources, which the daemon
//!   never reports cached), in both orders. Each order runs on a private
//!   daemon of its own, so the first build of a case is never cached from an
//!   earlier run.
//!
//! `FBUILD_EQUIV_FRONTEND=dockerfile.v0` runs fbuild through the daemon's
//! frontend instead: the harness's own check, which passes without the
//! native compiler. `FBUILD_EQUIV_CASES=a,b` limits a run to some cases;
//! `FBUILD_EQUIV_FBUILD=PATH` tests another fbuild binary than this build's
//! (a release build, another branch's).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::util::{self, PrivateDaemon};

/// Threads building cases side by side: the daemon does the work, and the
/// machines that run the suite have few cores.
const THREADS: usize = 3;

/// The repository of the loopback git daemon the corpus reads
/// (`{git}/equiv-corpus-v1.git`), created on first use.
const GIT_REPO: &str = "equiv-corpus-v1.git";

#[derive(Debug, Clone, serde::Deserialize)]
struct Secret {
    id: String,
    /// A file of the case folder.
    src: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct CaseFile {
    targets: Vec<Option<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<Secret>,
    /// Named contexts: `NAME` = `docker-image://REF` (`{busybox}` is the
    /// test registry's busybox) or `local:DIR` (a folder of the case).
    #[serde(default)]
    contexts: BTreeMap<String, String>,
    #[serde(default)]
    expect_error: serde_json::Value,
    #[serde(default)]
    opts: BTreeMap<String, String>,
    #[serde(default)]
    no_cache: bool,
    /// Build arg → folder of the case, built and pushed as an image whose
    /// reference the build arg then holds.
    #[serde(default)]
    images: BTreeMap<String, String>,
}

/// One case of the corpus.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    dir: PathBuf,
    targets: Vec<Option<String>>,
    build_args: BTreeMap<String, String>,
    secrets: Vec<Secret>,
    contexts: BTreeMap<String, String>,
    /// The substring both errors hold, for a case that must fail.
    expect_error: Option<String>,
    /// Frontend options (`--opt K=V` for both clients).
    opts: BTreeMap<String, String>,
    /// Build with `--no-cache`.
    no_cache: bool,
}

impl Case {
    /// `name` or `name@target`.
    fn label(&self, target: Option<&str>) -> String {
        match target {
            Some(target) => format!("{}@{target}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The frontend fbuild is asked for: `$FBUILD_EQUIV_FRONTEND`, else `native`.
fn frontend() -> String {
    std::env::var("FBUILD_EQUIV_FRONTEND").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "native".into())
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("dockerfiles")
}

/// Every case, sorted by name (or those `$FBUILD_EQUIV_CASES` names).
fn corpus() -> Vec<Case> {
    let only: Option<BTreeSet<String>> = std::env::var("FBUILD_EQUIV_CASES")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("tests/dockerfiles is readable") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.join("case.json").is_file() || only.as_ref().is_some_and(|only| !only.contains(&name)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("case.json")).unwrap();
        let file: CaseFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}/case.json is not a case: {e}", dir.display()));
        assert!(!file.targets.is_empty(), "{name}: `targets` is empty (use [null] for the last stage)");
        let expect_error = match file.expect_error {
            serde_json::Value::Bool(false) | serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            other => panic!("{name}: expect_error is false or a string, not {other}"),
        };
        let mut build_args = file.build_args;
        if build_args.values().any(|v| v.contains("{git}")) {
            let url = git_repository();
            for value in build_args.values_mut() {
                *value = value.replace("{git}", &url);
            }
        }
        let mut contexts: BTreeMap<String, String> =
            file.contexts.into_iter().map(|(k, v)| (k, v.replace("{busybox}", &util::testenv().busybox))).collect();
        for (arg, folder) in &file.images {
            let reference = pushed_image(&dir.join(folder));
            for value in contexts.values_mut() {
                *value = value.replace(&format!("{{{arg}}}"), &reference);
            }
            build_args.insert(arg.clone(), reference);
        }
        cases.push(Case {
            name,
            dir,
            targets: file.targets,
            build_args,
            secrets: file.secrets,
            contexts,
            expect_error,
            opts: file.opts,
            no_cache: file.no_cache,
        });
    }
    if let Some(only) = &only {
        let found: BTreeSet<String> = cases.iter().map(|c| c.name.clone()).collect();
        let missing: Vec<_> = only.difference(&found).collect();
        assert!(missing.is_empty(), "FBUILD_EQUIV_CASES names cases that do not exist: {missing:?}");
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!cases.is_empty(), "no cases in {}", corpus_dir().display());
    cases
}

/// The loopback git daemon's URL (`{git}`); [`GIT_REPO`] exists in its root (made
/// once, with fixed dates so its commit is the same on every machine).
fn git_repository() -> String {
    static ONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let (url, root) = util::git_daemon();
        let bare = root.join(GIT_REPO);
        if !bare.join("HEAD").exists() {
            let work = util::tempdir();
            util::write_files(
                work.path(),
                &[("README.md", "equivalence corpus repository\n"), ("sub/inner.txt", "inside sub\n")],
            );
            let git = |args: &[&str], dir: &Path| {
                let status = Command::new("git")
                    .args(["-c", "user.email=corpus@example.com", "-c", "user.name=corpus"])
                    .args(args)
                    .current_dir(dir)
                    .env("GIT_AUTHOR_DATE", "2000-01-01T00:00:00Z")
                    .env("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z")
                    .status()
                    .unwrap();
                assert!(status.success(), "git {args:?}");
            };
            git(&["init", "-q", "-b", "main"], work.path());
            git(&["add", "."], work.path());
            git(&["commit", "-qm", "corpus"], work.path());
            // Cloned beside, then renamed: another test process may race us.
            let tmp = root.join(format!(".{GIT_REPO}.{}", util::unique()));
            git(&["clone", "-q", "--bare", ".", tmp.to_str().unwrap()], work.path());
            if std::fs::rename(&tmp, &bare).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        url
    })
    .clone()
}

/// The image the Dockerfile in `folder` builds (with `BASE`), pushed to the
/// test registry by buildctl and the daemon's frontend, once per run.
fn pushed_image(folder: &Path) -> String {
    static PUSHED: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
    let mut pushed = PUSHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(reference) = pushed.get(folder) {
        return reference.clone();
    }
    let env = util::testenv();
    let name = folder.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy().replace('_', "-");
    let reference = format!("{}/fbuild-test/equiv-{name}:{}", env.registry, util::unique());
    let output = run({
        let mut cmd = Command::new(&env.buildctl);
        cmd.args(["--addr", &env.addr, "build", "--frontend", "dockerfile.v0"]);
        cmd.arg("--local").arg(format!("context={}", folder.display()));
        cmd.arg("--local").arg(format!("dockerfile={}", folder.display()));
        cmd.arg("--opt").arg(format!("build-arg:BASE={}", env.busybox));
        cmd.arg("--output").arg(format!("type=image,name={reference},push=true,registry.insecure=true"));
        cmd
    });
    assert!(output.status.success(), "pushing {reference}: {}", tail(&output.stderr, 20));
    pushed.insert(folder.to_owned(), reference.clone());
    reference
}

/// The fbuild under test: `$FBUILD_EQUIV_FBUILD`, else this build's.
fn fbuild_binary() -> PathBuf {
    std::env::var_os("FBUILD_EQUIV_FBUILD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(util::fbuild_binary)
}

/// Which program builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// `buildctl build --frontend dockerfile.v0`: the reference.
    Buildctl,
    /// `fbuild solve --frontend $FBUILD_EQUIV_FRONTEND`.
    Fbuild,
    /// `fbuild solve --frontend dockerfile.v0`: the daemon's warnings as
    /// fbuild lists them (buildctl's plain progress loses a vertex's
    /// warnings when another build shares that vertex).
    FbuildDaemon,
}

impl Client {
    fn name(self) -> String {
        match self {
            Client::Buildctl => "buildctl --frontend dockerfile.v0".into(),
            Client::Fbuild => format!("fbuild --frontend {}", frontend()),
            Client::FbuildDaemon => "fbuild --frontend dockerfile.v0".into(),
        }
    }
}

/// The command line of one build of `case` at `target` by `client`: on the
/// test daemon, or on `addr`; progress `plain` or `rawjson`; the OCI
/// tarball written to `dest`.
fn build_command(
    client: Client,
    case: &Case,
    target: Option<&str>,
    addr: Option<&str>,
    progress: &str,
    dest: &Path,
) -> Command {
    let env = util::testenv();
    let mut args: Vec<(String, String)> =
        vec![("SOURCE_DATE_EPOCH".into(), "0".into()), ("BASE".into(), env.busybox.clone())];
    args.extend(case.build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    let output = format!("type=oci,dest={},rewrite-timestamp=true", dest.display());
    let secrets: Vec<String> =
        case.secrets.iter().map(|s| format!("id={},src={}", s.id, case.dir.join(&s.src).display())).collect();
    let mut cmd;
    match client {
        Client::Buildctl => {
            cmd = Command::new(&env.buildctl);
            cmd.args(["--addr", addr.unwrap_or(&env.addr), "build", "--frontend", "dockerfile.v0"]);
            cmd.arg("--local").arg(format!("context={}", case.dir.display()));
            cmd.arg("--local").arg(format!("dockerfile={}", case.dir.display()));
            for (k, v) in &args {
                cmd.arg("--opt").arg(format!("build-arg:{k}={v}"));
            }
            if let Some(target) = target {
                cmd.arg("--opt").arg(format!("target={target}"));
            }
            for secret in &secrets {
                cmd.args(["--secret", secret]);
            }
            for (name, value) in &case.contexts {
                match value.strip_prefix("local:") {
                    Some(dir) => {
                        cmd.arg("--local").arg(format!("{name}={}", case.dir.join(dir).display()));
                        cmd.arg("--opt").arg(format!("context:{name}=local:{name}"));
                    }
                    None => {
                        cmd.arg("--opt").arg(format!("context:{name}={value}"));
                    }
                }
            }
            for (key, value) in &case.opts {
                cmd.arg("--opt").arg(format!("{key}={value}"));
            }
            if case.no_cache {
                cmd.arg("--no-cache");
            }
            cmd.args(["--progress", progress, "--output", &output]);
        }
        Client::Fbuild | Client::FbuildDaemon => {
            let frontend = if client == Client::Fbuild { frontend() } else { "dockerfile.v0".into() };
            cmd = Command::new(fbuild_binary());
            cmd.env("BUILDKIT_HOST", addr.unwrap_or(&env.addr)).env("NO_COLOR", "1").env_remove("RUST_LOG");
            cmd.arg("solve").arg(&case.dir).args(["--frontend", &frontend]);
            for (k, v) in &args {
                cmd.arg("--build-arg").arg(format!("{k}={v}"));
            }
            if let Some(target) = target {
                cmd.args(["--target", target]);
            }
            for secret in &secrets {
                cmd.args(["--secret", secret]);
            }
            for (name, value) in &case.contexts {
                let value = match value.strip_prefix("local:") {
                    Some(dir) => case.dir.join(dir).display().to_string(),
                    None => value.clone(),
                };
                cmd.arg("--build-context").arg(format!("{name}={value}"));
            }
            for (key, value) in &case.opts {
                cmd.arg("--opt").arg(format!("{key}={value}"));
            }
            if case.no_cache {
                cmd.arg("--no-cache");
            }
            // buildctl attaches no provenance; buildx (and so fbuild) would.
            cmd.args(["--provenance=false", "--progress", progress, "-o", &output]);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The last `n` lines of a command's stderr.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = util::text(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `work` on every item from [`THREADS`] threads; the failures'
/// messages, in the items' order.
fn for_each_parallel<T: Sync>(items: &[T], work: impl Fn(&T) -> Result<(), String> + Sync) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item))).unwrap_or_else(|panic| {
                        let text = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(format!("panicked: {text}"))
                    });
                if let Err(message) = result {
                    failures.lock().unwrap().push((i, message));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures.into_iter().map(|(_, m)| m).collect()
}

/// Every (case, target) of the corpus.
fn builds(cases: &[Case]) -> Vec<(Case, Option<String>)> {
    cases.iter().flat_map(|case| case.targets.iter().map(move |t| (case.clone(), t.clone()))).collect()
}

fn report(what: &str, total: usize, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} of {total} builds {what} (fbuild with --frontend {}):\n\n{}",
            failures.len(),
            frontend(),
            failures.join("\n\n========================================\n\n")
        );
    }
}

#[test]
fn corpus_builds_the_same_images_as_the_daemons_frontend() {
    let cases = corpus();
    let builds = builds(&cases);
    let failures = for_each_parallel(&builds, |(case, target)| compare_images(case, target.as_deref()));
    report("differ", builds.len(), failures);
}

/// Builds `case` at `target` with both clients on the test daemon; Err with
/// what differs.
fn compare_images(case: &Case, target: Option<&str>) -> Result<(), String> {
    let label = case.label(target);
    let dir = util::tempdir();
    let (ref_tar, our_tar) = (dir.path().join("buildctl.tar"), dir.path().join("fbuild.tar"));
    let reference = run(build_command(Client::Buildctl, case, target, None, "plain", &ref_tar));
    let ours = run(build_command(Client::Fbuild, case, target, None, "plain", &our_tar));
    let (ref_ok, our_ok) = (reference.status.success(), ours.status.success());
    let messages = || {
        format!(
            "--- {} ({}):\n{}\n--- {} ({}):\n{}",
            Client::Buildctl.name(),
            reference.status,
            tail(&reference.stderr, 15),
            Client::Fbuild.name(),
            ours.status,
            tail(&ours.stderr, 15)
        )
    };
    if let Some(expected) = &case.expect_error {
        let mut problems = Vec::new();
        for (client, output) in [(Client::Buildctl, &reference), (Client::Fbuild, &ours)] {
            if output.status.success() {
                problems.push(format!("{} succeeded", client.name()));
            } else if !util::text(&output.stderr).contains(expected.as_str()) {
                problems.push(format!("{}'s error does not say {expected:?}", client.name()));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        return Err(format!("{label}: must fail with {expected:?}: {}\n{}", problems.join("; "), messages()));
    }
    match (ref_ok, our_ok) {
        (true, true) => {}
        (false, false) => return Err(format!("{label}: both builds failed\n{}", messages())),
        (true, false) => return Err(format!("{label}: only fbuild failed\n{}", messages())),
        (false, true) => return Err(format!("{label}: only buildctl failed\n{}", messages())),
    }
    // The frontend's conversion warnings (its lint findings) are the same.
    let (mut ref_warnings, our_warnings) = (buildctl_warnings(&reference.stderr), fbuild_warnings(&ours.stderr));
    if ref_warnings != our_warnings {
        let daemon = run(build_command(Client::FbuildDaemon, case, target, None, "plain", &dir.path().join("v0.tar")));
        ref_warnings = fbuild_warnings(&daemon.stderr);
    }
    if ref_warnings != our_warnings {
        return Err(format!(
            "{label}: the warnings differ\n--- the daemon's frontend:\n{}\n--- fbuild:\n{}",
            ref_warnings.join("\n"),
            our_warnings.join("\n")
        ));
    }
    let (ref_layout, our_layout) = (util::OciLayout::read(&ref_tar), util::OciLayout::read(&our_tar));
    let (ref_digest, our_digest) = (top_digest(&ref_layout), top_digest(&our_layout));
    if ref_digest == our_digest {
        return Ok(());
    }
    Err(format!(
        "{label}: manifest digest {our_digest} (fbuild) is not {ref_digest} (buildctl)\n{}",
        explain(&ref_layout, &our_layout)
    ))
}

/// The warnings of buildctl's plain progress (`#N WARN: Rule: message`),
/// sorted.
fn buildctl_warnings(stderr: &[u8]) -> Vec<String> {
    let text = util::text(stderr);
    let mut warnings: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix('#')?.split_once(" WARN: ").map(|(_, w)| w.trim().to_owned()))
        .collect();
    warnings.sort();
    warnings
}

/// The warnings fbuild lists after a build (`N warning(s) found`, then one
/// ` - Rule: message` line each), sorted.
fn fbuild_warnings(stderr: &[u8]) -> Vec<String> {
    let text = util::text(stderr);
    let mut warnings = Vec::new();
    let mut listing = false;
    for line in text.lines() {
        if line.contains(" found (use -v to expand)") {
            listing = true;
        } else if let Some(warning) = line.strip_prefix(" - ").filter(|_| listing) {
            warnings.push(warning.trim().to_owned());
        } else {
            listing = false;
        }
    }
    warnings.sort();
    warnings
}

/// The digest index.json names (the image manifest: no attestations).
fn top_digest(layout: &util::OciLayout) -> String {
    let index = layout.index();
    let digests: Vec<String> = index.manifests().iter().map(|d| d.digest().to_string()).collect();
    assert_eq!(digests.len(), 1, "index.json names one manifest: {digests:?}");
    digests[0].clone()
}

/// The image manifest of a layout (through a nested index, if any).
fn image_manifest(layout: &util::OciLayout) -> serde_json::Value {
    let index = layout.index();
    let mut descriptor = index.manifests()[0].clone();
    loop {
        let value: serde_json::Value = serde_json::from_slice(layout.blob(&descriptor)).expect("a JSON manifest");
        if value.get("manifests").is_none() {
            return value;
        }
        let nested = oci_spec::image::ImageIndex::from_reader(layout.blob(&descriptor)).expect("an image index");
        descriptor = nested.manifests()[0].clone();
    }
}

/// A blob of a layout by its digest string.
fn blob<'a>(layout: &'a util::OciLayout, digest: &str, size: u64) -> &'a [u8] {
    let descriptor = oci_spec::image::DescriptorBuilder::default()
        .media_type(oci_spec::image::MediaType::Other("application/octet-stream".into()))
        .digest(digest.parse::<oci_spec::image::Digest>().expect("a digest"))
        .size(size)
        .build()
        .unwrap();
    layout.blob(&descriptor)
}

/// What differs between two layouts: the manifests, the image configs (JSON
/// paths, the history aligned), and the files of each layer pair that
/// differs.
fn explain(reference: &util::OciLayout, ours: &util::OciLayout) -> String {
    let (ref_manifest, our_manifest) = (image_manifest(reference), image_manifest(ours));
    let mut out = String::new();
    out += &format!(
        "index.json:\n{}",
        json_diff(
            &serde_json::from_slice(reference.file("index.json")).unwrap(),
            &serde_json::from_slice(ours.file("index.json")).unwrap()
        )
    );
    out += &format!("manifest:\n{}", json_diff(&ref_manifest, &our_manifest));
    let config = |layout: &util::OciLayout, manifest: &serde_json::Value| -> serde_json::Value {
        let c = &manifest["config"];
        serde_json::from_slice(blob(layout, c["digest"].as_str().unwrap(), c["size"].as_u64().unwrap()))
            .expect("a JSON config")
    };
    let (ref_config, our_config) = (config(reference, &ref_manifest), config(ours, &our_manifest));
    out += &format!("image config:\n{}", json_diff(&ref_config, &our_config));
    out += &format!(
        "full image config (buildctl):\n{}\nfull image config (fbuild):\n{}\n",
        serde_json::to_string_pretty(&ref_config).unwrap(),
        serde_json::to_string_pretty(&our_config).unwrap()
    );
    let layers = |m: &serde_json::Value| m["layers"].as_array().cloned().unwrap_or_default();
    let (ref_layers, our_layers) = (layers(&ref_manifest), layers(&our_manifest));
    if ref_layers.len() != our_layers.len() {
        out += &format!("layer count: {} (buildctl) vs {} (fbuild)\n", ref_layers.len(), our_layers.len());
    }
    for (i, (a, b)) in ref_layers.iter().zip(&our_layers).enumerate() {
        if a["digest"] == b["digest"] {
            continue;
        }
        let files = |layout: &util::OciLayout, d: &serde_json::Value| {
            let bytes = blob(layout, d["digest"].as_str().unwrap(), d["size"].as_u64().unwrap());
            layer_files(bytes, d["mediaType"].as_str().unwrap_or_default())
        };
        let (fa, fb) = (files(reference, a), files(ours, b));
        out += &format!("layer {i} ({} vs {}) files:\n", a["digest"], b["digest"]);
        let mut any = false;
        for path in fa.keys().chain(fb.keys()).collect::<BTreeSet<_>>() {
            match (fa.get(path), fb.get(path)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => {
                    any = true;
                    out += &format!(
                        "  {path}\n    buildctl: {}\n    fbuild:   {}\n",
                        x.map_or("(absent)", String::as_str),
                        y.map_or("(absent)", String::as_str)
                    );
                }
            }
        }
        if !any {
            out +=
                "  (the same files: the difference is in tar headers not listed, the entry order or the compression)\n";
        }
    }
    out
}

/// Every entry of a layer: path → `type mode uid:gid size mtime link sha256`.
fn layer_files(bytes: &[u8], media_type: &str) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let tar = if media_type.contains("gzip") || bytes.starts_with(&[0x1f, 0x8b]) {
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip decompresses a layer");
        let mut stdin = child.stdin.take().unwrap();
        let input = bytes.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        let _ = writer.join();
        output.stdout
    } else {
        bytes.to_vec()
    };
    let mut files = BTreeMap::new();
    for (path, (header, content)) in util::tar_entries(&tar) {
        let link = header.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        files.insert(
            path,
            format!(
                "type={:?} mode={:o} uid={}:{} size={} mtime={} link={link:?} sha256={}",
                header.entry_type(),
                header.mode().unwrap_or(0),
                header.uid().unwrap_or(0),
                header.gid().unwrap_or(0),
                content.len(),
                header.mtime().unwrap_or(0),
                &hex::encode(Sha256::digest(&content))[..16]
            ),
        );
    }
    files
}

/// Leaf values of a JSON document by path (`/config/Env/0`).
fn flatten(value: &serde_json::Value, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.is_empty() {
                out.insert(path.clone(), "{}".into());
            }
            for (k, v) in map {
                flatten(v, format!("{path}/{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                out.insert(path.clone(), "[]".into());
            }
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{path}/{i}"), out);
            }
        }
        leaf => {
            out.insert(path, leaf.to_string());
        }
    }
}

/// `- path: value` (buildctl's) and `+ path: value` (fbuild's) lines for
/// every leaf that differs, or `(the same)`.
fn json_diff(reference: &serde_json::Value, ours: &serde_json::Value) -> String {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(reference, String::new(), &mut a);
    flatten(ours, String::new(), &mut b);
    let mut out = String::new();
    for path in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (a.get(path), b.get(path));
        if x == y {
            continue;
        }
        if let Some(x) = x {
            out += &format!("  - {path}: {x}   (buildctl)\n");
        }
        if let Some(y) = y {
            out += &format!("  + {path}: {y}   (fbuild)\n");
        }
    }
    if out.is_empty() {
        out = "  (the same)\n".into();
    }
    out
}

/// One vertex of a build, from rawjson progress.
#[derive(Debug, Default)]
struct Vertex {
    name: String,
    cached: bool,
    /// Digests of the vertices it reads; none for a source.
    inputs: usize,
}

/// Every vertex of a rawjson progress stream by digest.
fn vertexes(rawjson: &str) -> BTreeMap<String, Vertex> {
    let mut found: BTreeMap<String, Vertex> = BTreeMap::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let digest = vertex["digest"].as_str().unwrap_or_default().to_owned();
            let entry = found.entry(digest).or_default();
            if let Some(name) = vertex["name"].as_str() {
                entry.name = name.to_owned();
            }
            entry.inputs = entry.inputs.max(vertex["inputs"].as_array().map_or(0, Vec::len));
            entry.cached |= vertex["cached"].as_bool().unwrap_or(false);
        }
    }
    found
}

/// Whether a vertex is a build step the cache check holds to account: not an
/// `[internal]` load (context, Dockerfile, image metadata), not an exporter,
/// and not a source (a vertex without inputs: `FROM ref@sha256:…`, the git
/// source of `ADD git://…`, the context). The daemon resolves sources again
/// on every build and often reports them as run, not cached, even when
/// buildctl builds the same thing twice; their cache keys are checked
/// through the steps that read them.
fn is_step(vertex: &Vertex) -> bool {
    let name = &vertex.name;
    vertex.inputs > 0
        && !(name.starts_with("[internal]") || name.starts_with("exporting ") || name.starts_with("[auth]"))
}

#[test]
fn corpus_shares_cache_keys_with_the_daemons_frontend() {
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.expect_error.is_none() && !c.no_cache).collect();
    assert!(!cases.is_empty(), "FBUILD_EQUIV_CASES selects no case that builds");
    let total: usize = cases.iter().map(|c| c.targets.len()).sum::<usize>() * 2;
    let cold = AtomicUsize::new(0);
    let mut failures = Vec::new();
    for (first, second) in [(Client::Buildctl, Client::Fbuild), (Client::Fbuild, Client::Buildctl)] {
        // A daemon of this order's own: nothing is cached from earlier runs
        // or from the other order.
        let config = util::testenv().root.join("buildkitd.toml");
        let daemon = PrivateDaemon::start([OsStr::new("--config"), config.as_os_str()]);
        // The targets of a case one after the other: two builds of the same
        // step at once share one vertex on the daemon, and the later one
        // then reports it as run.
        failures.extend(for_each_parallel(&cases, |case| {
            let mut problems = Vec::new();
            for target in &case.targets {
                match cache_shared(&daemon, first, second, case, target.as_deref()) {
                    Ok(ran) => {
                        cold.fetch_add(usize::from(ran > 0), Ordering::SeqCst);
                    }
                    Err(problem) => problems.push(problem),
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("\n\n"))
            }
        }));
    }
    report("are not cached across clients", total, failures);
    // The check proves something only if first builds ran steps.
    let cold = cold.into_inner();
    assert!(cold * 2 >= total, "only {cold} of {total} first builds ran a step: the daemons were not cold");
}

/// `first` builds `case` on `daemon`, then `second` must find every step
/// cached. Ok with the number of steps the first build ran.
fn cache_shared(
    daemon: &PrivateDaemon,
    first: Client,
    second: Client,
    case: &Case,
    target: Option<&str>,
) -> Result<usize, String> {
    let label = format!("{} ({} then {})", case.label(target), first.name(), second.name());
    let dir = util::tempdir();
    let build = |client: Client, name: &str| {
        let output = run(build_command(client, case, target, Some(&daemon.addr), "rawjson", &dir.path().join(name)));
        if output.status.success() {
            Ok(util::text(&output.stderr))
        } else {
            Err(format!("{label}: {} failed ({}):\n{}", client.name(), output.status, tail(&output.stderr, 20)))
        }
    };
    let before = vertexes(&build(first, "first.tar")?);
    let after = vertexes(&build(second, "second.tar")?);
    let list = |vs: &mut dyn Iterator<Item = &Vertex>| {
        vs.map(|v| {
            let kind = if !is_step(v) {
                "(not a step)"
            } else if v.cached {
                "CACHED"
            } else {
                "ran"
            };
            format!("    {kind:<12} {}", v.name)
        })
        .collect::<Vec<_>>()
        .join("\n")
    };
    if after.is_empty() {
        return Err(format!("{label}: no vertex in the second build's rawjson progress"));
    }
    let ran = before.values().filter(|v| is_step(v) && !v.cached).count();
    let steps = after.values().filter(|v| is_step(v)).count();
    let not_cached: Vec<&Vertex> = after.values().filter(|v| is_step(v) && !v.cached).collect();
    if !not_cached.is_empty() {
        return Err(format!(
            "{label}: {} of {steps} steps ran again:\n{}\nthe first build ({ran} steps ran):\n{}\nthe second build:\n{}",
            not_cached.len(),
            list(&mut not_cached.iter().copied()),
            list(&mut before.values()),
            list(&mut after.values())
        ));
    }
    Ok(ran)
}
