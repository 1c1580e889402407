//! `fbuild history` against `buildx history` on one private daemon: the same
//! builds, the same names and states, the same inspect JSON, the same logs.
//!
//! A private daemon keeps the history to the builds this test makes (the
//! shared one sees every test's builds, which would come and go between the
//! two listings).

use std::path::Path;

use crate::util::{self, PrivateDaemon};

/// A remote-driver builder named `hist` on `daemon`, made by buildx in `config`.
fn buildx_builder(daemon: &PrivateDaemon, config: &Path) {
    let out = std::process::Command::new(&util::testenv().buildx)
        .env("DOCKER_CONFIG", config)
        .args(["create", "--name", "hist", "--driver", "remote", &daemon.addr])
        .output()
        .expect("run buildx create");
    assert!(out.status.success(), "buildx create: {}", String::from_utf8_lossy(&out.stderr));
}

fn buildx(config: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(&util::testenv().buildx);
    cmd.env("DOCKER_CONFIG", config)
        .env("BUILDX_BUILDER", "hist")
        .env_remove("BUILDKIT_HOST")
        .env("BUILDKIT_PROGRESS", "plain");
    cmd
}

fn fbuild(config: &Path) -> assert_cmd::Command {
    let mut cmd = util::fbuild();
    cmd.env("DOCKER_CONFIG", config).env_remove("BUILDKIT_HOST").args(["--builder", "hist"]);
    cmd
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    util::text(bytes).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn history_lists_inspects_and_replays_builds_as_buildx_does() {
    let env = util::testenv();
    let daemon = PrivateDaemon::start(std::iter::empty::<&str>());
    let config = util::tempdir();
    buildx_builder(&daemon, config.path());
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {} AS base\nRUN echo one > /one\nFROM base AS final\nARG NOTE\nRUN cat /one\n",
                    env.busybox
                ),
            ),
            ("bad.Dockerfile", &format!("FROM {}\nRUN exit 3\n", env.busybox)),
        ],
    );
    let dir = project.path().to_str().unwrap();
    // Builds by fbuild: a target with a build arg and settings, a failure.
    fbuild(config.path())
        .args(["solve", dir, "--target", "final", "--build-arg", "NOTE=hello", "--no-cache", "--shm-size", "64m"])
        .assert()
        .success();
    let bad = project.path().join("bad.Dockerfile");
    fbuild(config.path()).args(["solve", dir, "-f", bad.to_str().unwrap()]).assert().failure();
    // A build by buildx, which buildx names from its own local state.
    buildx(config.path()).args(["build", "--target", "base", dir]).assert().success();

    let ours = fbuild(config.path()).args(["history", "ls", "--format", "json"]).assert().success();
    let theirs = buildx(config.path()).args(["history", "ls", "--format", "json"]).assert().success();
    let (ours, theirs) = (json_lines(&ours.get_output().stdout), json_lines(&theirs.get_output().stdout));
    assert_eq!(ours.len(), 3, "three builds: {ours:#?}");
    assert_eq!(ours, theirs, "history ls --format json");
    let names: Vec<&str> = ours.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let project_name = project.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(names, [format!("{project_name} (base)").as_str(), "bad.Dockerfile", "final"]);
    let states: Vec<&str> = ours.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["Completed", "Error", "Completed"]);

    // The table has buildx's columns and rows (buildx pads with tabs' spaces to the line end).
    let table = |out: &[u8]| -> Vec<Vec<String>> {
        util::text(out)
            .lines()
            .map(|l| l.split("   ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect())
            .collect()
    };
    let ours_table = fbuild(config.path()).args(["history", "ls", "--filter", "status=error"]).assert().success();
    let theirs_table = buildx(config.path()).args(["history", "ls", "--filter", "status=error"]).assert().success();
    let ours_rows = table(&ours_table.get_output().stdout);
    assert_eq!(ours_rows.len(), 2, "a header and the failed build: {ours_rows:?}");
    assert_eq!(ours_rows[0], ["BUILD ID", "NAME", "STATUS", "CREATED AT", "DURATION"]);
    // CREATED AT moves with the clock; compare the rest.
    let stable = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter().map(|r| r.into_iter().enumerate().filter(|(i, _)| *i != 3).map(|(_, c)| c).collect()).collect()
    };
    assert_eq!(stable(ours_rows), stable(table(&theirs_table.get_output().stdout)));

    // inspect --format json is buildx's for every build, and logs replay the same lines.
    for record in &ours {
        let reference = record["ref"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let ours =
            fbuild(config.path()).args(["history", "inspect", &reference, "--format", "json"]).assert().success();
        let theirs =
            buildx(config.path()).args(["history", "inspect", &reference, "--format", "json"]).assert().success();
        let ours: serde_json::Value = serde_json::from_slice(&ours.get_output().stdout).unwrap();
        let mut theirs: serde_json::Value = serde_json::from_slice(&theirs.get_output().stdout).unwrap();
        // buildx's stack trace is mostly its own process's; fbuild leaves it out.
        if let Some(error) = theirs.get_mut("Error").and_then(|e| e.as_object_mut()) {
            error.remove("Stack");
        }
        assert_eq!(ours, theirs, "history inspect {reference} --format json");

        let ours = fbuild(config.path()).args(["history", "logs", &reference]).assert().success();
        let theirs = buildx(config.path()).args(["history", "logs", &reference]).assert().success();
        assert_eq!(
            util::text(&ours.get_output().stderr),
            util::text(&theirs.get_output().stderr),
            "history logs {reference}"
        );
    }
    let failed = &ours[1];
    let reference = failed["ref"].as_str().unwrap().rsplit('/').next().unwrap();
    let inspect = fbuild(config.path()).args(["history", "inspect", reference]).assert().success();
    let text = util::text(&inspect.get_output().stdout);
    assert!(text.contains("Error:") && text.contains("exit code: 3"), "the failure is shown: {text}");
    assert!(text.contains(">>> RUN exit 3"), "the failing line is shown: {text}");

    // ^N picks the N-th newest, as in buildx.
    let second = fbuild(config.path()).args(["history", "inspect", "^1", "--format", "json"]).assert().success();
    let second: serde_json::Value = serde_json::from_slice(&second.get_output().stdout).unwrap();
    assert_eq!(second["Dockerfile"], "bad.Dockerfile");
}

#[test]
fn bad_history_requests_are_refused_with_buildxs_words() {
    let daemon = PrivateDaemon::start(std::iter::empty::<&str>());
    let fbuild = || {
        let mut cmd = util::fbuild();
        cmd.env("BUILDKIT_HOST", &daemon.addr);
        cmd
    };
    for (args, want) in [
        (vec!["ls", "--filter", "nokey"], "invalid filter \"nokey\""),
        (vec!["ls", "--filter", "owner=me"], "unsupported filter \"owner=me\""),
        (vec!["ls", "--filter", "status>error"], "invalid separator for \"status>error\", expected = or !="),
        (vec!["ls", "--filter", "duration>soon"], "invalid duration soon"),
        (vec!["inspect"], "no records found"),
        (vec!["inspect", "nosuchref"], "no record found for ref \"nosuchref\""),
        (vec!["logs", "^x"], "invalid offset \"^x\""),
    ] {
        let out = fbuild().arg("history").args(&args).assert().failure();
        let stderr = util::text(&out.get_output().stderr);
        assert!(stderr.contains(want), "history {args:?}: want {want:?} in {stderr}");
    }
    // An empty history lists nothing but the header.
    let out = fbuild().args(["history", "ls"]).assert().success();
    assert_eq!(util::text(&out.get_output().stdout).trim(), "BUILD ID   NAME   STATUS   CREATED AT   DURATION");
}
