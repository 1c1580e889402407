//! Build records, explained misses and predicted rebuilds (`fbuild why`,
//! `fbuild plan`, the explanation after `fbuild solve`), against the real
//! daemon: a corpus of edit scenarios, each planned, then built, then
//! explained. The truth is the daemon's own status stream (rawjson): a step
//! ran when its vertex started and was never reported cached.
//!
//! `FROM` vertices are left out of the comparison: the daemon reports an
//! unchanged base image as not cached whenever it computes its cache key
//! for a step after it (see `record::StepState::Resolved`); a base image
//! that moved is checked by its own scenario through the explanation.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util;

/// A step as `fbuild plan` or `fbuild why` reports it.
#[derive(Debug, Clone)]
struct Verdict {
    runs: bool,
    cause: Option<String>,
}

/// A project built again and again with its own state folder.
struct Project {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    addr: Option<String>,
}

/// What the corpus found.
#[derive(Default)]
struct Tally {
    scenarios: usize,
    steps: usize,
    predicted_right: usize,
    ran: usize,
    explained_right: usize,
    failures: Vec<String>,
}

impl Project {
    fn new(addr: Option<String>) -> Project {
        Project { dir: util::tempdir(), state: util::tempdir(), addr }
    }

    fn fbuild(&self) -> assert_cmd::Command {
        let mut cmd = util::fbuild();
        cmd.current_dir(self.dir.path()).env("FBUILD_STATE_DIR", self.state.path()).env_remove("FBUILD_SUMMARY");
        if let Some(addr) = &self.addr {
            cmd.args(["--addr", addr]);
        }
        cmd
    }

    fn write(&self, files: &[(&str, &str)]) {
        util::write_files(self.dir.path(), files);
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn plan(&self, args: &[&str]) -> BTreeMap<String, Verdict> {
        let output = self.fbuild().args(["plan", "--format", "json"]).args(args).arg(".").output().unwrap();
        assert!(output.status.success(), "fbuild plan {args:?} failed:\n{}", util::text(&output.stderr));
        verdicts(&output.stdout)
    }

    /// Builds; the steps the daemon reported, by name: whether each ran.
    fn build(&self, args: &[&str]) -> BTreeMap<String, bool> {
        let output = self.fbuild().args(["solve", "--progress", "rawjson"]).args(args).arg(".").output().unwrap();
        let stderr = util::text(&output.stderr);
        assert!(output.status.success(), "fbuild solve {args:?} failed:\n{stderr}");
        ran_steps(&stderr)
    }

    fn why(&self, args: &[&str]) -> BTreeMap<String, Verdict> {
        let output = self.fbuild().args(["why", "--format", "json"]).args(args).output().unwrap();
        assert!(output.status.success(), "fbuild why failed:\n{}", util::text(&output.stderr));
        verdicts(&output.stdout)
    }
}

fn verdicts(json: &[u8]) -> BTreeMap<String, Verdict> {
    let value: serde_json::Value = serde_json::from_slice(json).expect("JSON from fbuild plan/why");
    value["steps"]
        .as_array()
        .expect("a steps list")
        .iter()
        .map(|step| {
            let verdict = Verdict {
                runs: step["runs"].as_bool().expect("runs"),
                cause: step["cause"]["kind"].as_str().map(str::to_owned),
            };
            (step["name"].as_str().expect("a name").to_owned(), verdict)
        })
        .collect()
}

/// Build steps of a rawjson stream (bookkeeping and `FROM` left out), by
/// name: whether the daemon ran it.
fn ran_steps(rawjson: &str) -> BTreeMap<String, bool> {
    let mut started: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut cached: BTreeMap<String, bool> = BTreeMap::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).expect("a rawjson line");
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let digest = vertex["digest"].as_str().unwrap_or_default().to_owned();
            let name = vertex["name"].as_str().unwrap_or_default().to_owned();
            if vertex["cached"].as_bool() == Some(true) {
                cached.insert(digest.clone(), true);
            }
            let entry = started.entry(digest).or_insert((name, false));
            entry.1 |= vertex.get("started").is_some_and(|s| !s.is_null());
        }
    }
    started
        .into_iter()
        .filter(|(_, (name, _))| is_build_step(name))
        .map(|(digest, (name, began))| {
            let ran = began && !cached.get(&digest).copied().unwrap_or(false);
            (name, ran)
        })
        .collect()
}

fn is_build_step(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('[') else { return false };
    let Some((label, text)) = rest.split_once("] ") else { return false };
    label.contains('/') && !text.starts_with("FROM ")
}

/// One scenario: plan, build, explain; every step's prediction compared
/// with what the daemon did, every step that ran checked for its cause.
/// `roots` names the steps that start a chain (a part of their name) and
/// the cause each must have; any other step that ran must be explained as
/// following its upstream.
fn scenario(tally: &mut Tally, project: &Project, label: &str, args: &[&str], roots: &[(&str, &str)]) {
    tally.scenarios += 1;
    let plan = project.plan(args);
    let built = project.build(args);
    let why = project.why(&[]);
    for (name, ran) in &built {
        tally.steps += 1;
        match plan.get(name) {
            Some(predicted) if predicted.runs == *ran => tally.predicted_right += 1,
            other => tally.failures.push(format!(
                "{label}: plan said {:?} for `{name}`, which {}",
                other,
                if *ran { "ran" } else { "was cached" }
            )),
        }
        if !ran {
            continue;
        }
        tally.ran += 1;
        let expected = roots.iter().find(|(part, _)| name.contains(part)).map_or("upstream", |(_, cause)| cause);
        match why.get(name) {
            Some(Verdict { runs: true, cause: Some(cause) }) if cause == expected => tally.explained_right += 1,
            other => tally.failures.push(format!("{label}: `{name}` ran, explained as {other:?}, expected {expected}")),
        }
    }
    // Each chain's first step (a `FROM` among them) with its cause.
    for (part, expected) in roots {
        let found = why.iter().any(|(name, v)| name.contains(part) && v.runs && v.cause.as_deref() == Some(*expected));
        if !found {
            tally.failures.push(format!("{label}: no step matching `{part}` ran because of {expected}: {why:?}"));
        }
    }
}

impl Tally {
    /// Every step that ran explained rightly; at least 95% of predictions right.
    fn check(&self, at_least: usize) {
        let report = format!(
            "{} scenarios, {} steps: {} predicted rightly; {} ran, {} explained rightly\n{}",
            self.scenarios,
            self.steps,
            self.predicted_right,
            self.ran,
            self.explained_right,
            self.failures.join("\n")
        );
        // The corpus's score, for `--nocapture` runs.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{report}");
        }
        assert!(self.scenarios >= at_least, "{report}");
        assert_eq!(self.ran, self.explained_right, "{report}");
        assert!(self.predicted_right * 100 >= self.steps * 95, "{report}");
    }
}

fn dockerfile(base: &str, unique: &str, extra_final: &str) -> String {
    let busybox = &util::testenv().busybox;
    // Each stage's output holds what went into it (the base image's file,
    // the build arg and ENV, the folder), as a build's artifacts do: a step
    // copying it from another stage then runs when its inputs changed.
    format!(
        "FROM {base} AS deps\n\
         ARG VERSION=1\n\
         WORKDIR /app\n\
         COPY requirements.txt .\n\
         RUN cat requirements.txt /base > /deps && echo {unique} >> /deps\n\
         FROM deps AS build\n\
         COPY src/ src/\n\
         RUN --mount=type=bind,source=tool.sh,target=/tool.sh cat /deps src/* /tool.sh > /built && echo $VERSION ${{MODE:-none}} >> /built && pwd >> /built\n\
         FROM {busybox}\n\
         COPY --from=build /built /built\n\
         COPY *.cfg /etc/\n\
         {extra_final}"
    )
}

/// Pushes a one-layer image saying `what` to `reference`.
fn push_base(reference: &str, what: &str) {
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {what} > /base\n", util::testenv().busybox))],
    );
    let output = util::fbuild()
        .args(["solve", "--progress", "quiet", "--provenance", "false", "-t", reference, "--push"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "pushing {reference} failed:\n{}", util::text(&output.stderr));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn edits_are_foreseen_by_plan_and_explained_after_the_build() {
    let unique = util::unique();
    let base = format!("{}/why-{unique}:base", util::testenv().registry);
    push_base(&base, &format!("one-{unique}"));
    let p = Project::new(None);
    p.write(&[
        ("Dockerfile", &dockerfile(&base, &unique, "")),
        (".dockerignore", "*.log\n"),
        ("requirements.txt", "flask\n"),
        ("src/a.py", "print(1)\n"),
        ("tool.sh", "echo tool\n"),
        ("app.cfg", "debug=false\n"),
        ("notes.log", "x\n"),
        ("docs/readme.md", "hello\n"),
    ]);
    let mut t = Tally::default();
    // The first build's chain starts at the (new) base image.
    scenario(&mut t, &p, "first build", &[], &[("[deps 1/", "first_build")]);
    scenario(&mut t, &p, "nothing changed", &[], &[]);
    p.write(&[("src/a.py", "print(2)\n")]);
    scenario(&mut t, &p, "a source file", &[], &[("COPY src/", "context_changed")]);
    p.write(&[("requirements.txt", "flask\nrequests\n")]);
    scenario(&mut t, &p, "the dependency manifest", &[], &[("COPY requirements.txt", "context_changed")]);
    p.write(&[("notes.log", "changed\n")]);
    scenario(&mut t, &p, "an ignored file", &[], &[]);
    p.write(&[("docs/readme.md", "changed\n")]);
    scenario(&mut t, &p, "a file no step reads", &[], &[]);
    p.write(&[("src/b.py", "print(3)\n")]);
    scenario(&mut t, &p, "a new source file", &[], &[("COPY src/", "context_changed")]);
    std::fs::remove_file(p.path("src/a.py")).unwrap();
    scenario(&mut t, &p, "a removed source file", &[], &[("COPY src/", "context_changed")]);
    p.write(&[("tool.sh", "echo tool 2\n")]);
    scenario(&mut t, &p, "a file bind-mounted into RUN", &[], &[("RUN --mount", "context_changed")]);
    p.write(&[("extra.cfg", "x=1\n")]);
    scenario(&mut t, &p, "a new file a wildcard COPY reads", &[], &[("COPY *.cfg", "context_changed")]);
    p.write(&[("app.cfg", "debug=true\n")]);
    scenario(&mut t, &p, "a config file of the last stage", &[], &[("COPY *.cfg", "context_changed")]);
    set_mode(&p.path("app.cfg"), 0o600);
    scenario(&mut t, &p, "a file's mode", &[], &[("COPY *.cfg", "context_changed")]);
    // The ARG is declared in the first stage: every RUN after it sees it.
    let arg_root = [("RUN cat requirements.txt", "build_arg_changed")];
    scenario(&mut t, &p, "a build arg", &["--build-arg", "VERSION=2"], &arg_root);
    scenario(&mut t, &p, "the same build arg again", &["--build-arg", "VERSION=2"], &[]);
    scenario(&mut t, &p, "a build arg no step reads", &["--build-arg", "VERSION=2", "--build-arg", "UNUSED=1"], &[]);
    scenario(&mut t, &p, "a build arg changed again", &["--build-arg", "VERSION=4"], &arg_root);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[(
        "Dockerfile",
        &text.replace(&format!("echo {unique} >> /deps"), &format!("echo {unique} edited >> /deps")),
    )]);
    scenario(
        &mut t,
        &p,
        "a Dockerfile line",
        &["--build-arg", "VERSION=4"],
        &[("RUN cat requirements.txt", "line_changed")],
    );
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &format!("# a comment\n{text}"))]);
    scenario(&mut t, &p, "a comment", &["--build-arg", "VERSION=4"], &[]);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &text.replace("COPY src/ src/\n", "COPY src/ src/\nENV MODE=fast\n"))]);
    scenario(&mut t, &p, "an ENV above a RUN", &["--build-arg", "VERSION=4"], &[("RUN --mount", "definition_changed")]);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &text.replace("ARG VERSION=1", "ARG VERSION=3"))]);
    scenario(&mut t, &p, "an ARG default", &[], &[("RUN cat requirements.txt", "build_arg_changed")]);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &text.replace("ARG VERSION=3", "ARG VERSION=5"))]);
    scenario(
        &mut t,
        &p,
        "an ARG default with no build arg given",
        &[],
        &[("RUN cat requirements.txt", "definition_changed")],
    );
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &text.replace("WORKDIR /app", "WORKDIR /srv"))]);
    scenario(&mut t, &p, "a WORKDIR line", &[], &[("WORKDIR", "line_changed")]);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    p.write(&[("Dockerfile", &format!("{text}RUN echo {unique} > /new\n"))]);
    scenario(&mut t, &p, "a new step", &[], &[("RUN echo", "new_step")]);
    let text = std::fs::read_to_string(p.path("Dockerfile")).unwrap();
    let busybox = &util::testenv().busybox;
    let staged = text.replace(
        &format!("FROM {busybox}\n"),
        &format!("FROM deps AS extra\nRUN cat /deps > /extra\nFROM {busybox}\nCOPY --from=extra /extra /extra\n"),
    );
    p.write(&[("Dockerfile", &staged)]);
    scenario(&mut t, &p, "a new stage", &[], &[("> /extra", "new_step")]);
    // The frontend leaves WORKDIR's folder op cached even then.
    scenario(
        &mut t,
        &p,
        "--no-cache",
        &["--no-cache"],
        &[
            ("COPY requirements.txt", "no_cache"),
            ("RUN cat", "no_cache"),
            ("COPY src/", "no_cache"),
            ("RUN --mount", "no_cache"),
            ("RUN echo", "no_cache"),
            ("COPY --from", "no_cache"),
            ("COPY *.cfg", "no_cache"),
        ],
    );
    // The stage runs again with its keys unchanged: the steps after it stay cached.
    scenario(
        &mut t,
        &p,
        "--no-cache-filter",
        &["--no-cache-filter", "build"],
        &[("COPY src/", "no_cache_filter"), ("RUN --mount", "no_cache_filter")],
    );
    push_base(&base, &format!("two-{unique}"));
    scenario(&mut t, &p, "the base image retagged", &[], &[("[deps 1/", "base_image_moved")]);
    p.write(&[("src/c.py", "print(5)\n"), ("app.cfg", "debug=1\n")]);
    scenario(&mut t, &p, "a source file and a config file together", &[], &[("COPY src/", "context_changed")]);
    // The `extra` stage's file does not hold the build arg: the daemon
    // answers `COPY --from=extra` from the cache by its contents, which the
    // plan cannot know (it says the step runs).
    p.write(&[("src/c.py", "print(6)\n")]);
    scenario(&mut t, &p, "a source file and a build arg together", &["--build-arg", "VERSION=9"], &arg_root);
    t.check(25);
}

/// A pruned daemon, and a fresh one with the cache folder (and its record)
/// carried from the first: what runs, and why.
#[test]
fn pruned_and_fresh_daemons_are_foreseen_and_explained() {
    let unique = util::unique();
    let busybox = &util::testenv().busybox;
    let mut t = Tally::default();
    let first = util::PrivateDaemon::start(Vec::<&str>::new());
    let p = Project::new(Some(first.addr.clone()));
    p.write(&[
        (
            "Dockerfile",
            &format!(
                "FROM {busybox}\nCOPY req.txt /req.txt\nRUN cat /req.txt > /deps && echo {unique}\nCOPY src/ /src/\nRUN ls /src > /list\n"
            ),
        ),
        ("req.txt", "a\n"),
        ("src/a.py", "1\n"),
    ]);
    let cache = util::tempdir();
    let cache_to = format!("type=local,dest={},mode=max", cache.path().display());
    let cache_from = format!("type=local,src={}", cache.path().display());
    scenario(&mut t, &p, "first build on a private daemon", &["--cache-to", &cache_to], &[("FROM", "first_build")]);
    let pruned = p.fbuild().args(["prune", "--all"]).output().unwrap();
    assert!(pruned.status.success(), "{}", util::text(&pruned.stderr));
    // Nothing changed: every step was evicted (the keys are the same).
    let evicted =
        [("COPY req.txt", "evicted"), ("RUN cat", "evicted"), ("COPY src/", "evicted"), ("RUN ls", "evicted")];
    scenario(&mut t, &p, "a pruned daemon", &[], &evicted);
    drop(first);

    // A fresh runner: a new daemon, an empty state folder, the cache folder.
    let second = util::PrivateDaemon::start(Vec::<&str>::new());
    let fresh = Project { dir: p.dir, state: util::tempdir(), addr: Some(second.addr.clone()) };
    let why = fresh.why(&["--cache-dir", &cache.path().display().to_string()]);
    // The record the first build left in the folder, explained on the new runner.
    assert!(why.values().any(|v| v.cause.as_deref() == Some("first_build")), "{why:?}");
    assert_eq!(why.len(), 5, "{why:?}");
    scenario(&mut t, &fresh, "a fresh daemon with the carried cache folder", &["--cache-from", &cache_from], &[]);
    drop(second);

    let third = util::PrivateDaemon::start(Vec::<&str>::new());
    let fresh = Project { dir: fresh.dir, state: util::tempdir(), addr: Some(third.addr.clone()) };
    fresh.write(&[("src/a.py", "2\n")]);
    scenario(
        &mut t,
        &fresh,
        "a code change on a fresh daemon with the carried folder",
        &["--cache-from", &cache_from],
        &[("COPY src/", "context_changed")],
    );
    let again = Project { dir: fresh.dir, state: fresh.state, addr: Some(third.addr.clone()) };
    let pruned = again.fbuild().args(["prune", "--all"]).output().unwrap();
    assert!(pruned.status.success(), "{}", util::text(&pruned.stderr));
    scenario(
        &mut t,
        &again,
        "a pruned daemon whose import lacks the changed steps",
        &["--cache-from", &cache_from],
        &[("COPY src/", "cache_import_miss"), ("RUN ls", "cache_import_miss")],
    );
    t.check(5);
}

/// Bad records are warnings, never failures, and `fbuild why` with none
/// says so.
#[test]
fn a_corrupt_record_is_a_warning_and_a_missing_one_an_error() {
    let p = Project::new(None);
    p.write(&[("Dockerfile", &format!("FROM {}\nRUN echo {}\n", util::testenv().busybox, util::unique()))]);
    let missing = p.fbuild().arg("why").output().unwrap();
    assert!(!missing.status.success());
    assert!(util::text(&missing.stderr).contains("is recorded"), "{}", util::text(&missing.stderr));
    p.build(&[]);
    let records: Vec<_> =
        std::fs::read_dir(p.state.path().join("records")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(records.len(), 1);
    std::fs::write(&records[0], b"{\"version\": 1, \"steps\": 7}").unwrap();
    let output = p.fbuild().args(["solve", "--progress", "plain", "."]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("is corrupt"), "{stderr}");
    // The build wrote a good record again.
    let why = p.why(&[]);
    assert!(!why.is_empty());

    // A Markdown summary for GitHub, after a build and from `fbuild why`.
    let summary = p.dir.path().join("summary.md");
    let output = p
        .fbuild()
        .env("FBUILD_SUMMARY", "github")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["solve", "--progress", "quiet", "."])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("### fbuild: cache hits and misses") && text.contains("steps cached (100%)"), "{text}");
    let output = p.fbuild().env("GITHUB_STEP_SUMMARY", &summary).args(["why", "--summary", "github"]).output().unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(&summary).unwrap().matches("### fbuild").count(), 2);
}

/// With a carried cache folder, only the cache mounts of the steps that
/// will run are restored on a fresh runner: none after a code change, the
/// dependency step's after a manifest change.
#[test]
fn only_the_cache_mounts_of_steps_that_run_are_restored() {
    let unique = util::unique();
    let busybox = &util::testenv().busybox;
    let helper = ("FBUILD_CACHE_HELPER_IMAGE", busybox.clone());
    let first = util::PrivateDaemon::start(Vec::<&str>::new());
    let p = Project::new(Some(first.addr.clone()));
    p.write(&[
        (
            "Dockerfile",
            &format!(
                "FROM {busybox}\n\
                 RUN --mount=type=cache,id=apt-{unique},target=/var/cache/apt echo apt > /var/cache/apt/x && cp /var/cache/apt/x /apt\n\
                 COPY requirements.txt /req\n\
                 RUN --mount=type=cache,id=pip-{unique},target=/root/.cache/pip cat /req >> /root/.cache/pip/seen && cp /root/.cache/pip/seen /deps\n\
                 COPY src/ /src/\n"
            ),
        ),
        ("requirements.txt", "flask\n"),
        ("src/a.py", "1\n"),
    ]);
    let cache = util::tempdir();
    let to = format!("type=local,dest={},mode=max,mounts=true", cache.path().display());
    let from = format!("type=local,src={}", cache.path().display());
    let built = p
        .fbuild()
        .env(helper.0, &helper.1)
        .args(["solve", "--progress", "plain", "--cache-to", &to, "."])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", util::text(&built.stderr));
    drop(first);

    let second = util::PrivateDaemon::start(Vec::<&str>::new());
    let fresh = Project { dir: p.dir, state: util::tempdir(), addr: Some(second.addr.clone()) };
    let build = |project: &Project| {
        let output = project
            .fbuild()
            .env(helper.0, &helper.1)
            .args(["solve", "--progress", "rawjson", "-v", "--cache-from", &from, "."])
            .output()
            .unwrap();
        let stderr = util::text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        (util::rawjson_warnings(&stderr), stderr)
    };
    fresh.write(&[("src/a.py", "2\n")]);
    let (warnings, stderr) = build(&fresh);
    let skipped = format!("cache mounts not restored: apt-{unique}, pip-{unique}");
    assert!(warnings.iter().any(|w| w.contains(&skipped)), "{warnings:?}\n{stderr}");
    assert!(!stderr.contains(": restored"), "{stderr}");

    fresh.write(&[("requirements.txt", "flask\nrequests\n")]);
    let (warnings, stderr) = build(&fresh);
    let skipped = format!("cache mounts not restored: apt-{unique} ");
    assert!(warnings.iter().any(|w| w.contains(&skipped)), "{warnings:?}\n{stderr}");
    assert!(stderr.contains(&format!(": restored pip-{unique}\n")), "{stderr}");
    // The folder carries the apt mount the prediction left out: that is
    // no mount "not declared by the Dockerfile" (it was warned as one).
    assert!(!warnings.iter().any(|w| w.contains("not declared")), "{warnings:?}");
    // The restored pip cache held the first runner's download.
    let out = util::tempdir();
    let output = fresh
        .fbuild()
        .args(["solve", "--progress", "quiet", "-o", &format!("type=local,dest={}", out.path().display()), "."])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("deps")).unwrap(), "flask\nflask\nrequests\n");
}
