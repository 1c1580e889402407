//! Rootless: fbuild run as an unprivileged user finds that user's rootless
//! buildkitd at the default socket (`$XDG_RUNTIME_DIR/buildkit/buildkitd.sock`)
//! with no --addr and no BUILDKIT_HOST; and `fbuild daemon start` run as that
//! user brings up a rootless daemon of its own, which `stop` ends.
//!
//! The daemon and the user come from `scripts/rootless.sh up`, which writes
//! `.testenv/rootless.env`; these tests only read that file.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::util::{self, text, OnDrop, RootlessEnv};

/// Runs an `assert_cmd` command to completion.
fn run(mut cmd: assert_cmd::Command) -> Output {
    cmd.output().expect("cannot run a command as the rootless user")
}

/// The worker ids in `buildctl debug workers` / `fbuild workers` table output.
fn worker_ids(table: &str) -> Vec<String> {
    table.lines().skip(1).filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

#[test]
fn finds_the_rootless_daemon_at_the_default_socket() {
    let env = util::rootless();

    // What the daemon itself says, through buildctl at its explicit address.
    let mut buildctl = env.command(&env.buildctl);
    buildctl.args(["--addr", &env.addr, "debug", "workers"]);
    let out = run(buildctl);
    assert!(out.status.success(), "buildctl cannot reach the rootless daemon: {}", text(&out.stderr));
    let expected = worker_ids(&text(&out.stdout));
    assert!(!expected.is_empty(), "the rootless daemon lists no worker: {}", text(&out.stdout));

    // fbuild with no address at all.
    let mut fbuild = env.fbuild();
    fbuild.arg("workers");
    let out = run(fbuild);
    assert!(out.status.success(), "fbuild workers as {} failed: {}", env.user, text(&out.stderr));
    let listed = worker_ids(&text(&out.stdout));
    assert_eq!(listed, expected, "fbuild listed {:?}:\n{}", listed, text(&out.stdout));

    // Without XDG_RUNTIME_DIR pointing at it, the default is elsewhere and fbuild says where it looked.
    let elsewhere = RootlessEnv { xdg: "/nonexistent-xdg".into(), ..env.clone() };
    let mut fbuild = elsewhere.command(fbuild_copy(env));
    fbuild.arg("workers");
    let out = run(fbuild);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unix:///nonexistent-xdg/buildkit/buildkitd.sock"), "{stderr}");
    assert!(stderr.contains("no --addr or BUILDKIT_HOST was given"), "{stderr}");
}

/// Where [`RootlessEnv::fbuild`] put the user's copy of fbuild.
fn fbuild_copy(env: &RootlessEnv) -> std::path::PathBuf {
    let _ = env.fbuild();
    env.xdg.join("bin").join("fbuild")
}

/// Runs fbuild as the user, with `env`'s XDG_RUNTIME_DIR.
fn fbuild_as(env: &RootlessEnv, fbuild: &Path, args: &[&str]) -> Output {
    let mut cmd = env.command(fbuild);
    cmd.args(args);
    run(cmd)
}

#[test]
fn daemon_start_runs_rootless_for_a_user() {
    let shared = util::rootless();
    let fbuild = fbuild_copy(shared);
    // The buildkitd that rootless.sh gave the user sits next to its buildctl.
    let buildkitd = shared.buildctl.with_file_name("buildkitd");
    assert!(buildkitd.is_file(), "no buildkitd next to {}", shared.buildctl.display());
    let buildkitd = buildkitd.to_string_lossy().into_owned();

    // A runtime folder of the user's own (mode 0700), so this daemon's default
    // socket is not the one rootless.sh's daemon listens on.
    let tmp = shared.tempdir();
    let env = RootlessEnv { xdg: tmp.path().to_owned(), ..shared.clone() };
    let xdg = env.xdg.to_string_lossy().into_owned();
    let root = format!("{xdg}/daemon");
    // Stops the user's test daemon even when an assertion failed.
    let _guard = OnDrop(|| {
        let _ = fbuild_as(&env, &fbuild, &["daemon", "stop", "--root", &root]);
    });

    let started = std::time::Instant::now();
    let out = fbuild_as(&env, &fbuild, &["daemon", "start", "--root", &root, "--buildkitd", &buildkitd]);
    assert!(out.status.success(), "rootless daemon start failed: {}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("started rootless buildkitd"), "{stderr}");
    assert!(stderr.contains(&format!("unix://{xdg}/buildkit/buildkitd.sock")), "{stderr}");

    let pid: u32 = std::fs::read_to_string(format!("{root}/buildkitd.pid")).unwrap().trim().parse().unwrap();
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap();
    assert_eq!(owner, env.uid, "the daemon does not run as {}", env.user);

    // fbuild, as the user and with no address, reaches it.
    let out = fbuild_as(&env, &fbuild, &["workers"]);
    assert!(out.status.success(), "fbuild workers failed: {}", text(&out.stderr));
    assert_eq!(worker_ids(&text(&out.stdout)).len(), 1, "{}", text(&out.stdout));

    let out = fbuild_as(&env, &fbuild, &["daemon", "stop", "--root", &root]);
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("stopped buildkitd (pid {pid})")), "{}", text(&out.stderr));
    // rootlesskit passes SIGTERM on to buildkitd: soon no daemon answers
    // (waited for, not guessed: a loaded machine takes its time).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = fbuild_as(&env, &fbuild, &["workers"]);
        if !out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a daemon still answers after stop: {}", text(&out.stdout));
        std::thread::sleep(Duration::from_millis(100));
    }
}
