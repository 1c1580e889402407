//! The CI recipes in examples/ci/ run as written: actionlint finds nothing
//! in the GitHub workflow, and each recipe's build commands, taken from the
//! file itself, play the story of two CI runs on two fresh daemons (the
//! second run, on another branch, finds every step in the first run's cache
//! folder).

use std::path::{Path, PathBuf};

use crate::util::{self, testenv, text, PrivateDaemon};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci").join(name)
}

fn yaml(name: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap()
}

/// actionlint from `scripts/testenv.sh up` (`FBUILD_ACTIONLINT` in the env file).
fn actionlint() -> PathBuf {
    let env_file = std::env::var_os("FBUILD_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".testenv"))
        .join("env");
    let from_file = || {
        let text = std::fs::read_to_string(&env_file).ok()?;
        text.lines().find_map(|l| l.strip_prefix("export FBUILD_ACTIONLINT=")).map(|v| v.trim_matches('\'').to_string())
    };
    let path =
        std::env::var("FBUILD_ACTIONLINT").ok().or_else(from_file).filter(|p| !p.is_empty()).unwrap_or_else(|| {
            panic!("FBUILD_ACTIONLINT is neither set nor in {}; run `scripts/testenv.sh up`", env_file.display())
        });
    PathBuf::from(path)
}

#[test]
fn actionlint_finds_nothing_in_the_github_workflow() {
    let output = std::process::Command::new(actionlint())
        .args(["-no-color", "-oneline"])
        .arg(example("github-actions.yml"))
        .output()
        .expect("run actionlint");
    let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success() && report.trim().is_empty(), "actionlint:\n{report}");
}

/// The GitHub workflow's Build step, as written.
fn github_build_script() -> String {
    let workflow = yaml("github-actions.yml");
    let steps = workflow["jobs"]["image"]["steps"].as_sequence().expect("jobs.image.steps");
    let build = steps.iter().find(|s| s["name"].as_str() == Some("Build")).expect("a step named Build");
    build["run"].as_str().expect("the Build step's run").to_string()
}

/// The GitLab job's script, as written, without `fbuild daemon start` (the
/// test starts the daemon itself).
fn gitlab_build_script() -> String {
    let pipeline = yaml("gitlab-ci.yml");
    let script = pipeline["build-image"]["script"].as_sequence().expect("build-image.script");
    let lines: Vec<&str> =
        script.iter().filter_map(|l| l.as_str()).filter(|l| !l.starts_with("fbuild daemon")).collect();
    assert!(lines.iter().any(|l| l.contains("fbuild solve")), "{lines:?}");
    lines.join("\n")
}

/// A small service with the recipes' shape: a `runner` target, a deps stage
/// with a cache mount.
fn project(dir: &Path) {
    let dockerfile = format!(
        "FROM {base} AS base\n\
         WORKDIR /app\n\
         FROM base AS deps\n\
         COPY requirements.txt .\n\
         RUN --mount=type=cache,target=/root/.cache/pip cp requirements.txt /root/.cache/pip/seen && \
         cp requirements.txt deps.lock\n\
         FROM base AS runner\n\
         COPY --from=deps /app/deps.lock ./\n\
         COPY app.py .\n\
         RUN echo built > built.txt\n",
        base = testenv().busybox
    );
    util::write_files(
        dir,
        &[("Dockerfile", &dockerfile), ("requirements.txt", &format!("flask # {}\n", util::unique())), ("app.py", "")],
    );
}

/// The Dockerfile steps that ran rather than came from the cache.
fn steps_not_cached(rawjson: &str) -> Vec<String> {
    let mut steps = std::collections::BTreeMap::<String, bool>::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let name = vertex["name"].as_str().unwrap_or_default();
            // The base image is resolved anew by each daemon, never "cached".
            let stage = name.starts_with("[runner") || name.starts_with("[deps") || name.starts_with("[base");
            if stage && !name.contains(" FROM ") {
                *steps.entry(name.to_string()).or_default() |= vertex["cached"].as_bool().unwrap_or(false);
            }
        }
    }
    assert!(!steps.is_empty(), "no Dockerfile steps in the progress:\n{rawjson}");
    steps.into_iter().filter(|(_, cached)| !cached).map(|(name, _)| name).collect()
}

/// Runs `script` as the CI runner would (bash, the project as the working
/// folder) on a fresh daemon, with `vars` as the CI's variables.
fn run_on_fresh_daemon(script: &str, project: &Path, cache_dir: &Path, vars: &[(&str, &str)]) -> String {
    let config = testenv().root.join("buildkitd.toml");
    let daemon = PrivateDaemon::start([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    let bin = util::fbuild_binary();
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let output = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(project)
        .env("PATH", path)
        .env("BUILDKIT_HOST", &daemon.addr)
        .env("BUILDKIT_PROGRESS", "rawjson")
        .env("NO_COLOR", "1")
        .env("CACHE_DIR", cache_dir)
        .env("FBUILD_CACHE_HELPER_IMAGE", &testenv().busybox)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{script}\n{stderr}\n{}", daemon.log_tail());
    assert!(project.join("build.json").is_file(), "--metadata-file build.json");
    assert!(!output.stdout.is_empty(), "`fbuild cache ls` printed nothing:\n{stderr}");
    stderr
}

fn play(script: &str, main: &[(&str, &str)], branch: &[(&str, &str)]) {
    let project_dir = util::tempdir();
    project(project_dir.path());
    let cache = util::tempdir();
    let cache_dir = cache.path().join("fbuild-cache");
    // Runner 1, main: nothing to import yet; everything runs and is exported.
    let first = run_on_fresh_daemon(script, project_dir.path(), &cache_dir, main);
    assert!(!steps_not_cached(&first).is_empty(), "{first}");
    // Runner 2, a branch: a fresh daemon finds every step in main's tag.
    let second = run_on_fresh_daemon(script, project_dir.path(), &cache_dir, branch);
    assert_eq!(steps_not_cached(&second), Vec::<String>::new(), "{second}");
}

#[test]
fn the_github_recipe_plays_on_two_fresh_daemons() {
    play(&github_build_script(), &[("GITHUB_REF_NAME", "main")], &[("GITHUB_REF_NAME", "feature/x")]);
}

#[test]
fn the_gitlab_recipe_plays_on_two_fresh_daemons() {
    play(
        &gitlab_build_script(),
        &[("CI_DEFAULT_BRANCH", "main"), ("CI_COMMIT_REF_SLUG", "main")],
        &[("CI_DEFAULT_BRANCH", "main"), ("CI_COMMIT_REF_SLUG", "feature-x")],
    );
}
