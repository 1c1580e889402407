//! `fbuild solve` end to end against the test daemon: multi-stage builds with
//! cache mounts and `.dockerignore`, pushes, incremental context sync,
//! Ctrl-C, and image digests identical to buildctl's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, testenv};

/// A multi-stage project (base → deps → builder → runner) with a cache mount,
/// and a `.dockerignore` using `**` and a `!` exception.
fn multistage_project(dir: &Path) {
    let base = &testenv().busybox;
    util::write_files(
        dir,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {base} AS base\nWORKDIR /app\n\
                     FROM base AS deps\nCOPY requirements.txt .\n\
                     RUN --mount=type=cache,target=/cache,sharing=locked \\\n    \
                     echo run >> /cache/runs && cp requirements.txt deps.lock\n\
                     FROM deps AS builder\nCOPY . ./all/\nRUN find all | sort > manifest.txt\n\
                     FROM scratch AS runner\nCOPY --from=builder /app /app\n"
                ),
            ),
            ("requirements.txt", "flask==3.0.0\n"),
            ("src/app.py", "print('hi')\n"),
            ("src/keep.log", "kept by the ! exception\n"),
            ("src/debug.log", "ignored by **/*.log\n"),
            ("src/deep/er/x.log", "ignored too\n"),
            ("notes/secret.txt", "ignored folder\n"),
            (".dockerignore", "**/*.log\n!src/keep.log\nnotes\n"),
        ],
    );
}

#[test]
fn multistage_target_and_full_build_with_dockerignore() {
    let project = util::tempdir();
    multistage_project(project.path());
    let out = util::tempdir();

    // --target deps stops at the deps stage.
    let deps_out = out.path().join("deps");
    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["--target", "deps", "-o"])
        .arg(format!("type=local,dest={}", deps_out.display()))
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(deps_out.join("app/deps.lock")).unwrap(), "flask==3.0.0\n");
    assert!(!deps_out.join("app/all").exists(), "the deps stage has no sources");

    // The full build: .dockerignore applied, with the ! exception honoured.
    let full_out = out.path().join("full");
    let output = util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", full_out.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let manifest = std::fs::read_to_string(full_out.join("app/manifest.txt")).unwrap();
    assert!(manifest.contains("all/src/app.py"), "{manifest}");
    assert!(manifest.contains("all/src/keep.log"), "the ! exception keeps src/keep.log: {manifest}");
    assert!(!manifest.contains("debug.log"), "**/*.log excludes src/debug.log: {manifest}");
    assert!(!manifest.contains("x.log"), "**/*.log excludes nested logs: {manifest}");
    assert!(!manifest.contains("notes"), "the notes folder is excluded: {manifest}");
    // The deps stage was built by the first run: the second one reuses it.
    assert!(stderr.contains("CACHED"), "expected cached steps in:\n{stderr}");
}

#[test]
fn push_to_registry() {
    let project = util::tempdir();
    multistage_project(project.path());
    let env = testenv();
    let tag = format!("{}/fbuild-test/push:{}", env.registry, std::process::id());
    let meta = project.path().join("meta.json");
    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["-t", &tag, "--push", "--metadata-file"])
        .arg(&meta)
        .args(["--opt", "build-arg:UNUSED=1"])
        .assert()
        .success();
    // buildkitd.toml marks the registry insecure (plain HTTP).
    let manifest = util::registry_manifest("fbuild-test/push", &std::process::id().to_string())
        .expect("the pushed manifest is in the registry");
    assert!(manifest.get("mediaType").is_some() || manifest.get("schemaVersion").is_some(), "{manifest}");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().expect("metadata has the image digest");
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(meta["image.name"], tag.as_str());
}

#[test]
fn rebuild_sends_only_the_changed_file() {
    let project = util::tempdir();
    let dir = project.path();
    for i in 0..10_000 {
        let sub = dir.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(sub.join(format!("f{i:05}.txt")), format!("file {i:05} {}\n", "x".repeat(200))).unwrap();
    }
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /ctx\n").unwrap();
    let out = util::tempdir();
    let build = |name: &str| {
        let dest = out.path().join(name);
        let output = util::fbuild()
            .arg("solve")
            .arg(dir)
            .args(["--progress", "rawjson", "-v", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        (dest, util::context_bytes(&stderr), stderr)
    };
    let (_, first, first_log) = build("first");
    assert!(first > 2_000_000, "the first build sends the whole context, sent {first}");
    assert!(util::files_sent(&first_log) >= 10_001, "every file is sent the first time:\n{first_log}");

    // Change one file, keeping its size: only it is sent again.
    let changed = dir.join("d042/f04242.txt");
    let old = std::fs::read_to_string(&changed).unwrap();
    let new = old.replace("file 04242", "FILE 04242");
    assert_eq!(old.len(), new.len());
    std::fs::write(&changed, &new).unwrap();
    let (dest, second, second_log) = build("second");
    // The daemon counts every entry's metadata (a STAT each) plus the data it asked for.
    assert!(second < first / 4, "only the changed file should be sent: {second} bytes after {first}");
    // The changed file, and the Dockerfile when the daemon's Dockerfile
    // frontend reads it (its local uses llb.DiffNone, so it asks for it in
    // full); a native build lints without that subrequest and sends one.
    let sent = util::files_sent(&second_log);
    assert!((1..=2).contains(&sent), "only the changed file's data is sent, {sent} were:\n{second_log}");
    assert_eq!(std::fs::read_to_string(dest.join("ctx/d042/f04242.txt")).unwrap(), new);
    assert_eq!(std::fs::read_dir(dest.join("ctx")).unwrap().count(), 101, "100 folders and the Dockerfile");
}

#[test]
fn ctrl_c_cancels_the_build() {
    cancel_with(nix::sys::signal::Signal::SIGINT, "int");
}

#[test]
fn sigterm_cancels_the_build() {
    // CI runners stop a job with SIGTERM.
    cancel_with(nix::sys::signal::Signal::SIGTERM, "term");
}

/// Sends `signal` to fbuild during a long RUN: it exits 130 long before the
/// step would end (no tight wall-clock bound: a loaded machine is slow) and
/// the daemon stops the step.
fn cancel_with(signal: nix::sys::signal::Signal, name: &str) {
    let project = util::tempdir();
    let marker = format!("fbuild-cancel-{name}-{}", std::process::id());
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {marker} && sleep 120\n", testenv().busybox))],
    );
    let mut child = Command::new(util::fbuild_binary())
        .env("BUILDKIT_HOST", &testenv().addr)
        .args(["solve", "--no-cache", "--progress", "plain"])
        .arg(project.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the RUN step prints, so the daemon is really running it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("RUN step started");
        if line.contains(&marker) && !line.contains("RUN") {
            break;
        }
    }
    let interrupted = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // The step sleeps 120 s: an exit within 60 s did not wait for it.
        assert!(interrupted.elapsed() < Duration::from_secs(60), "fbuild did not exit after Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    // The running step ends marked CANCELED, as buildctl shows it.
    let rest: Vec<String> = rx.iter().collect();
    let run_step = rest
        .iter()
        .chain([&String::new()])
        .rev()
        .find_map(|l| l.strip_suffix(" CANCELED").filter(|number| number.starts_with('#')).map(str::to_owned));
    assert!(run_step.is_some(), "no step marked CANCELED:\n{}", rest.join("\n"));

    // The daemon stops the build: no process of it is left running.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let running = String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains(&marker) && l.contains("sleep"));
        if !running {
            break;
        }
        assert!(Instant::now() < deadline, "the RUN step is still running in the daemon");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn same_image_digest_as_buildctl() {
    let project = util::tempdir();
    multistage_project(project.path());
    let out = util::tempdir();
    let fbuild_meta = out.path().join("fbuild.json");
    let buildctl_meta = out.path().join("buildctl.json");
    util::fbuild()
        .env("SOURCE_DATE_EPOCH", "0")
        .arg("solve")
        .arg(project.path())
        .args(["--frontend", "dockerfile.v0", "-o"])
        .arg(format!("type=oci,dest={},rewrite-timestamp=true", out.path().join("f.tar").display()))
        .arg("--metadata-file")
        .arg(&fbuild_meta)
        .assert()
        .success();
    util::buildctl()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["build", "--frontend", "dockerfile.v0", "--progress", "plain"])
        .arg(format!("--local=context={}", project.path().display()))
        .arg(format!("--local=dockerfile={}", project.path().display()))
        .arg(format!("--output=type=oci,dest={},rewrite-timestamp=true", out.path().join("b.tar").display()))
        .arg("--metadata-file")
        .arg(&buildctl_meta)
        .assert()
        .success();
    let digest = |path: &Path| {
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        meta["containerimage.digest"].as_str().expect("a digest in the metadata").to_string()
    };
    assert_eq!(digest(&fbuild_meta), digest(&buildctl_meta));
}

#[test]
fn bad_input_is_refused_before_connecting() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n")]);
    let cases: &[(&[&str], &str)] = &[
        (&["-o", "type=nope"], "--output"),
        (&["--secret", "id=x,src=/nonexistent/secret"], "--secret"),
        (&["--build-arg", "=x"], "--build-arg"),
        (&["-f", "missing.Dockerfile"], "missing.Dockerfile"),
    ];
    for (args, needle) in cases {
        let output = Command::new(util::fbuild_binary())
            // An address nobody listens on: the error must come before connecting.
            .env("BUILDKIT_HOST", "unix:///nonexistent/fbuild.sock")
            .arg("solve")
            .arg(project.path())
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("nonexistent/fbuild.sock"), "{args:?} reached the connection: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn dockerfile_from_stdin() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("greeting.txt", "hello from the context\n")]);
    let out = util::tempdir();
    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["-f", "-", "-o"])
        .arg(format!("type=local,dest={}", out.path().display()))
        .write_stdin("FROM scratch\nCOPY greeting.txt /\n")
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(out.path().join("greeting.txt")).unwrap(), "hello from the context\n");
}

#[test]
fn build_error_shows_the_dockerfile_line() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo before\nRUN echo failing-step && exit 3\n", testenv().busybox))],
    );
    let output = util::fbuild().arg("solve").arg(project.path()).arg("--no-cache").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failing-step"), "the failing step's log: {stderr}");
    assert!(stderr.contains("exit code: 3"), "the daemon's message: {stderr}");
    assert!(stderr.contains(">>> RUN echo failing-step"), "the Dockerfile line, marked: {stderr}");
    assert!(stderr.contains("Dockerfile:3"), "file:line of the error: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn registry_cache_export_and_import() {
    // A daemon of the test's own: the import must find nothing in the daemon's
    // cache, and pruning the shared daemon would break the tests running beside.
    let daemon = util::PrivateDaemon::start([
        std::ffi::OsStr::new("--config"),
        testenv().root.join("buildkitd.toml").as_os_str(),
    ]);
    let project = util::tempdir();
    let unique = util::unique();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {unique} > /stamp\n", testenv().busybox))],
    );
    let tag = format!("cache-{unique}");
    let cache_ref = format!("{}/fbuild-test/cache:{tag}", testenv().registry);
    let step = format!("RUN echo {unique}");
    let build = |args: &[&str]| daemon.solve_rawjson(project.path(), args);
    let first = build(&["--cache-to", &format!("type=registry,ref={cache_ref},mode=max")]);
    assert_eq!(util::rawjson_step_cached(&first, &step), Some(false), "the first build runs the step:\n{first}");
    let manifest = util::registry_manifest("fbuild-test/cache", &tag).expect("the cache manifest was pushed");
    let layers = manifest["layers"].as_array().or_else(|| manifest["manifests"].as_array());
    assert!(layers.is_some_and(|l| !l.is_empty()), "the cache holds layers: {manifest}");

    // Nothing of the first build is left in the daemon...
    daemon.fbuild().args(["prune", "--all"]).assert().success();
    // ...so a cached step can only come from the registry (a bare value means
    // type=registry,ref=VALUE).
    let second = build(&["--cache-from", &cache_ref]);
    assert_eq!(
        util::rawjson_step_cached(&second, &step),
        Some(true),
        "the step comes from the imported cache:\n{second}"
    );
}
