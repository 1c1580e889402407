//! The native linter against the daemon's: for every Dockerfile of the
//! equivalence corpus (`tests/dockerfiles/*/Dockerfile`) and every lint
//! fixture (`tests/lint/*.Dockerfile`, with `NAME.dockerignore` beside it
//! when the case needs one), the daemon's `--call check,format=json`
//! (`dockerfile.v0`'s lint subrequest) and `fbuild::dockerfile::lint`
//! must give the same findings and the same build error.
//!
//! Compared: each warning whole (rule, description, URL, detail, ranges),
//! the build error's message and location, and the source's name, bytes
//! and language. Not compared: the source's LLB definition (the daemon's
//! `dockerfile` local, which only it makes) and the order of findings,
//! because Go reports several undefined names of one word, and the rules
//! of `error=true`'s message, in map order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

struct LintCase {
    name: String,
    dockerfile: String,
    dockerignore: Option<String>,
    build_args: BTreeMap<String, String>,
    /// `--build-context` values of a corpus case (`NAME=VALUE`), which only
    /// builds read.
    contexts: Vec<String>,
    /// A build arg names the git daemon (`{git}`), which lint does not read
    /// and builds here point at nothing.
    reads_git: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The corpus' Dockerfiles and the lint fixtures, with the build
/// arguments the corpus gives every build.
fn cases() -> Vec<LintCase> {
    let env = util::testenv();
    let common: BTreeMap<String, String> =
        [("BASE".to_string(), env.busybox.clone()), ("SOURCE_DATE_EPOCH".to_string(), "0".to_string())].into();
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(root().join("dockerfiles")).expect("tests/dockerfiles is readable") {
        let dir = entry.unwrap().path();
        let (Some(dockerfile), Some(case)) = (read(&dir.join("Dockerfile")), read(&dir.join("case.json"))) else {
            continue;
        };
        let case: serde_json::Value = serde_json::from_str(&case).expect("case.json is JSON");
        if case.get("images").is_some() || case["build_args"].get("BUILDKIT_MULTI_PLATFORM").is_some() {
            // Base images the equivalence test builds and pushes, or a
            // frontend option the daemon refuses before it lints (its
            // `--call check` answers with that error, no findings).
            continue;
        }
        let contexts = case["contexts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| {
                let value = value.as_str().unwrap_or_default().replace("{busybox}", &env.busybox);
                match value.strip_prefix("local:") {
                    Some(folder) => format!("{name}={}", dir.join(folder).display()),
                    None => format!("{name}={value}"),
                }
            })
            .collect();
        let mut build_args = common.clone();
        let mut reads_git = false;
        if let Some(args) = case["build_args"].as_object() {
            for (k, v) in args {
                // The git daemon's URL only matters to a build, not to lint.
                reads_git |= v.as_str().unwrap_or_default().contains("{git}");
                let value = v.as_str().unwrap_or_default().replace("{git}", "git://127.0.0.1:9/none");
                build_args.insert(k.clone(), value);
            }
        }
        cases.push(LintCase {
            name: format!("dockerfiles/{}", dir.file_name().unwrap().to_string_lossy()),
            dockerfile,
            dockerignore: read(&dir.join(".dockerignore")),
            build_args,
            contexts,
            reads_git,
        });
    }
    for entry in std::fs::read_dir(root().join("lint")).expect("tests/lint is readable") {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_name().unwrap().to_string_lossy().strip_suffix(".Dockerfile").map(String::from)
        else {
            continue;
        };
        cases.push(LintCase {
            name: format!("lint/{stem}"),
            // Fixtures name the test registry's busybox as {busybox}: its
            // address differs between checkouts (the port is picked free).
            dockerfile: read(&path).expect("a lint fixture is readable").replace("{busybox}", &util::testenv().busybox),
            dockerignore: read(&path.with_file_name(format!("{stem}.dockerignore"))),
            build_args: common.clone(),
            contexts: Vec::new(),
            reads_git: false,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() > 40, "the corpus and the fixtures hold {} cases", cases.len());
    cases
}

/// The config of `reference` (`REGISTRY/repo:tag`) in the test registry.
fn image_config(reference: &str) -> String {
    let (repo, tag) = reference.split_once('/').unwrap().1.rsplit_once(':').unwrap();
    let manifest = util::registry_manifest(repo, tag).unwrap_or_else(|| panic!("{reference} is in the registry"));
    let manifest = match manifest["manifests"].as_array() {
        Some(list) => {
            let digest = list[0]["digest"].as_str().unwrap();
            util::registry_manifest(repo, digest).expect("the index's manifest")
        }
        None => manifest,
    };
    let digest = manifest["config"]["digest"].as_str().expect("a manifest names its config");
    let (status, body) = util::registry_get(&format!("/v2/{repo}/blobs/{digest}"), "*/*");
    assert_eq!(status, 200, "the config blob of {reference}");
    String::from_utf8(body).expect("the config is JSON text")
}

/// An image with `ONBUILD` triggers, pushed to the test registry, whose
/// triggers lint (as the daemon runs them) at the `FROM` of a stage built
/// on it.
fn onbuild_image() -> String {
    let env = util::testenv();
    let reference = format!("{}/fbuild-test/lint-onbuild:{}", env.registry, util::unique());
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[("Dockerfile", "ARG BASE\nFROM ${BASE}\nONBUILD COPY $UNDEFINED_IN_IMAGE_TRIGGER /x\nONBUILD ENV K v\n")],
    );
    let output = Command::new(util::fbuild_binary())
        .env("BUILDKIT_HOST", &env.addr)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .arg("solve")
        .arg(dir.path())
        .args(["--frontend", "dockerfile.v0", "--provenance=false", "--progress", "plain"])
        .arg("--build-arg")
        .arg(format!("BASE={}", env.busybox))
        .arg("-o")
        .arg(format!("type=image,name={reference},push=true,registry.insecure=true"))
        .output()
        .expect("run fbuild");
    assert!(output.status.success(), "pushing {reference}: {}", util::text(&output.stderr));
    reference
}

/// The daemon's answer: `fbuild solve --frontend dockerfile.v0 --call
/// check,format=json` prints `lint.LintResults` as the frontend made it.
fn daemon_check(case: &LintCase) -> Result<serde_json::Value, String> {
    let dir = util::tempdir();
    std::fs::write(dir.path().join("Dockerfile"), &case.dockerfile).unwrap();
    if let Some(ignore) = &case.dockerignore {
        std::fs::write(dir.path().join(".dockerignore"), ignore).unwrap();
    }
    let env = util::testenv();
    let mut cmd = Command::new(util::fbuild_binary());
    cmd.env("BUILDKIT_HOST", &env.addr).env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd.arg("solve").arg(dir.path()).args(["--frontend", "dockerfile.v0", "--call", "check,format=json"]);
    cmd.args(["--progress", "quiet"]);
    for (k, v) in &case.build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    let output = cmd.output().map_err(|e| format!("cannot run fbuild: {e}"))?;
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "{}: the daemon's check printed no JSON ({e}); stdout: {}; stderr: {}",
            case.name,
            util::text(&output.stdout),
            util::text(&output.stderr)
        )
    })
}

/// What both sides must agree on (see the module's documentation).
fn comparable(results: &serde_json::Value) -> serde_json::Value {
    let mut warnings: Vec<String> = results["warnings"]
        .as_array()
        .map(|w| w.iter().map(|w| serde_json::to_string(w).unwrap()).collect())
        .unwrap_or_default();
    warnings.sort();
    let mut error = results["buildError"].clone();
    if let Some(message) = error["message"].as_str() {
        if let Some(rules) = message.strip_prefix("lint violation found for rules: ") {
            let mut rules: Vec<&str> = rules.split(", ").collect();
            rules.sort();
            error["message"] = format!("lint violation found for rules: {}", rules.join(", ")).into();
        }
    }
    // An image the daemon cannot resolve: its resolver's own words follow.
    if let Some(message) = error["message"].as_str() {
        const RESOLVE: &str = "failed to resolve source metadata for ";
        if let Some(at) = message.find(RESOLVE) {
            let rest = &message[at + RESOLVE.len()..];
            let reference = rest.split(": ").next().unwrap_or_default();
            error["message"] = format!("{}{RESOLVE}{reference}", &message[..at]).into();
        }
    }
    let source = &results["sources"][0];
    serde_json::json!({
        "warnings": warnings,
        "warnings_null": results["warnings"].is_null(),
        "buildError": error,
        "source": [&source["filename"], &source["data"], &source["language"]],
    })
}

#[test]
fn native_lint_findings_equal_the_daemons_on_every_corpus_dockerfile() {
    // Named contexts are the build's: linted alone, their names are images
    // the daemon resolves in an order it leaves to chance.
    let mut cases: Vec<LintCase> = cases().into_iter().filter(|c| c.contexts.is_empty()).collect();
    let busybox = util::testenv().busybox.clone();
    let onbuild = onbuild_image();
    let mut images = BTreeMap::from([(busybox.clone(), image_config(&busybox))]);
    images.insert(onbuild.clone(), image_config(&onbuild));
    cases.push(LintCase {
        name: "registry/onbuild".into(),
        dockerfile: format!("FROM {onbuild}\nRUN true\n\nFROM {onbuild} AS two\nENV K=1\n\nFROM {onbuild} AS three\nCOPY --from=0 /x /x\n"),
        dockerignore: None,
        build_args: BTreeMap::new(),
        contexts: Vec::new(),
        reads_git: false,
    });
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let result = daemon_check(case).and_then(|daemon| {
                    let ours = fbuild::dockerfile::lint::lint_json(
                        &case.dockerfile,
                        &case.build_args,
                        case.dockerignore.as_deref(),
                        &images,
                    );
                    let ours: serde_json::Value = serde_json::from_str(&ours).map_err(|e| e.to_string())?;
                    let (want, got) = (comparable(&daemon), comparable(&ours));
                    if want == got {
                        Ok(())
                    } else {
                        Err(format!(
                            "{}:\n  daemon: {}\n  native: {}",
                            case.name,
                            serde_json::to_string(&want).unwrap(),
                            serde_json::to_string(&got).unwrap()
                        ))
                    }
                });
                if let Err(e) = result {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} Dockerfiles lint differently:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The folder a case builds in: the corpus case's own (its context files
/// included), or a fresh one with the fixture and its `.dockerignore`.
fn case_dir(case: &LintCase) -> (Option<tempfile::TempDir>, PathBuf) {
    if let Some(name) = case.name.strip_prefix("dockerfiles/") {
        return (None, root().join("dockerfiles").join(name));
    }
    let dir = util::tempdir();
    std::fs::write(dir.path().join("Dockerfile"), &case.dockerfile).unwrap();
    if let Some(ignore) = &case.dockerignore {
        std::fs::write(dir.path().join(".dockerignore"), ignore).unwrap();
    }
    let path = dir.path().to_path_buf();
    (Some(dir), path)
}

/// `fbuild solve` of a case with `frontend` and `extra` arguments.
fn solve(case: &LintCase, dir: &Path, frontend: &str, extra: &[&str]) -> std::process::Output {
    let env = util::testenv();
    let mut cmd = Command::new(util::fbuild_binary());
    cmd.env("BUILDKIT_HOST", &env.addr).env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd.arg("solve").arg(dir).args(["--frontend", frontend]).args(extra);
    for (k, v) in &case.build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    for context in &case.contexts {
        cmd.arg("--build-context").arg(context);
    }
    cmd.output().expect("run fbuild")
}

/// The warnings of a rawjson stream, whole but for what names this build
/// (the vertex they hang on, the Dockerfile local's definition), sorted.
fn build_warnings(rawjson: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).expect("rawjson lines are JSON");
        for warning in value["warnings"].as_array().into_iter().flatten() {
            let mut warning = warning.clone();
            if let Some(object) = warning.as_object_mut() {
                object.remove("vertex");
            }
            if let Some(info) = warning.get_mut("sourceInfo").and_then(|i| i.as_object_mut()) {
                info.remove("definition");
            }
            warnings.push(serde_json::to_string(&warning).unwrap());
        }
    }
    warnings.sort();
    warnings
}

/// The line of a failed build that says why, with a lint failure's rules
/// sorted (Go names them in map order).
fn failure(stderr: &str) -> Option<String> {
    let line =
        stderr.lines().find(|l| l.contains("lint violation found for rules: ") || l.contains("failed to parse"))?;
    let at = line.find("lint violation found for rules: ").or_else(|| line.find("failed to parse"))?;
    let message = &line[at..];
    Some(match message.strip_prefix("lint violation found for rules: ") {
        Some(rules) => {
            let mut rules: Vec<&str> = rules.split(", ").collect();
            rules.sort();
            format!("lint violation found for rules: {}", rules.join(", "))
        }
        None => message.to_string(),
    })
}

/// Runs `check` on every case, four at a time; the failures' texts.
fn each_case(cases: &[LintCase], check: impl Fn(&LintCase) -> Result<(), String> + Sync) -> Vec<String> {
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if let Err(e) = check(case) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

/// A native build shows the linter's findings as the daemon's frontend
/// shows them while it converts (same warnings, word for word, with their
/// lines and source), and fails where `# check=error=true` (or a bad
/// `# check=`) makes the daemon's fail, with its words: every corpus
/// Dockerfile (at each target its case builds) and every lint fixture,
/// `--frontend native` against `--frontend dockerfile.v0`. Dockerfiles the
/// native compiler refuses are counted, not compared; the test wants most
/// of them compared.
#[test]
fn native_builds_warn_and_fail_as_the_daemons_frontend() {
    let cases = cases();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let failures = each_case(&cases, |case| {
        if case.reads_git {
            // Not built: buildkitd v0.32.2 dereferences nil and dies when one
            // build resolves an unreachable git remote twice (its git
            // resolver cache keeps a nil after a failure), and the corpus
            // builds these against the real git daemon anyway.
            return Ok(());
        }
        let (_keep, dir) = case_dir(case);
        let mut targets: Vec<Option<String>> = vec![None];
        if let Some(spec) = read(&dir.join("case.json")) {
            let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
            targets = spec["targets"].as_array().unwrap().iter().map(|t| t.as_str().map(String::from)).collect();
        }
        for target in targets {
            let mut args = vec!["--progress", "rawjson", "--provenance=false"];
            if let Some(target) = &target {
                args.extend(["--target", target.as_str()]);
            }
            let native = solve(case, &dir, "native", &args);
            let stderr = util::text(&native.stderr);
            if stderr.contains("the native compiler does not support") {
                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                continue;
            }
            let daemon = solve(case, &dir, "dockerfile.v0", &args);
            let theirs = util::text(&daemon.stderr);
            let label = format!("{} (target {target:?})", case.name);
            if build_warnings(&stderr) != build_warnings(&theirs) {
                return Err(format!(
                    "{label}: warnings differ\n  daemon: {:?}\n  native: {:?}",
                    build_warnings(&theirs),
                    build_warnings(&stderr)
                ));
            }
            if (native.status.success(), failure(&stderr)) != (daemon.status.success(), failure(&theirs)) {
                return Err(format!(
                    "{label}: the builds end differently\n  daemon ({}): {:?}\n  native ({}): {:?}",
                    daemon.status,
                    failure(&theirs),
                    native.status,
                    failure(&stderr)
                ));
            }
        }
        Ok(())
    });
    let refused = refused.into_inner();
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(refused * 4 < cases.len(), "{refused} of {} builds refused by the native compiler", cases.len());
}

/// A check's text as sets of findings: the header and each finding's block
/// (Go orders findings of one line as it found them, some in map order).
fn check_blocks(text: &str) -> Vec<String> {
    let mut blocks: Vec<String> = text.split("\nWARNING: ").map(str::to_string).collect();
    blocks.sort();
    blocks
}

/// `--call check` answered by the native linter prints what the daemon's
/// frontend answers: the same JSON (but for the Dockerfile local's LLB
/// definition, which only the daemon makes), the same text and the same
/// exit code, on every corpus Dockerfile and lint fixture.
#[test]
fn native_check_prints_what_the_daemons_check_prints() {
    let cases: Vec<LintCase> = cases().into_iter().filter(|c| c.contexts.is_empty()).collect();
    let failures = each_case(&cases, |case| {
        let (_keep, dir) = case_dir(case);
        let mut answers = Vec::new();
        for frontend in ["native", "dockerfile.v0"] {
            let json = solve(case, &dir, frontend, &["--call", "check,format=json", "--progress", "quiet"]);
            let text = solve(case, &dir, frontend, &["--call", "check", "--progress", "quiet"]);
            let value: serde_json::Value = serde_json::from_slice(&json.stdout).map_err(|e| {
                format!("{}: {frontend}'s check printed no JSON ({e}): {}", case.name, util::text(&json.stderr))
            })?;
            let error = util::text(&text.stderr);
            let error = error.lines().skip_while(|l| !l.starts_with("error:")).collect::<Vec<_>>().join("\n");
            // The daemon names the violated rules in Go's map order (random
            // run to run), as `comparable` knows: compared sorted.
            let error = match error.split_once("lint violation found for rules: ") {
                Some((head, rules)) => {
                    let (rules, rest) = rules.split_once('\n').map_or((rules, ""), |(r, rest)| (r, rest));
                    let mut rules: Vec<&str> = rules.split(", ").collect();
                    rules.sort();
                    format!("{head}lint violation found for rules: {}\n{rest}", rules.join(", "))
                }
                None => error,
            };
            answers.push((
                comparable(&value),
                json.status.code(),
                check_blocks(&util::text(&text.stdout)),
                text.status.code(),
                error,
            ));
        }
        if answers[0] == answers[1] {
            Ok(())
        } else {
            Err(format!("{}:\n  native: {:?}\n  daemon: {:?}", case.name, answers[0], answers[1]))
        }
    });
    assert!(failures.is_empty(), "{} of {} checks differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
