//! buildx's builder store, as `docker buildx create --driver remote` writes
//! it (`tests/fixtures/buildx-store`, from `scripts/builder-fixtures.sh`,
//! which runs the real buildx): `--builder`, `BUILDX_BUILDER` and buildx's
//! current builder reach the test daemon through it, for every command that
//! connects; other drivers are refused with what to do; flags beat
//! variables.

use std::path::Path;

use crate::util::{self, testenv, text};

/// A `DOCKER_CONFIG` folder holding the fixture store, with the remote
/// builder pointed at the test daemon's TCP address.
fn docker_config() -> tempfile::TempDir {
    let config = util::tempdir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildx-store");
    let store = config.path().join("buildx");
    std::fs::create_dir_all(store.join("instances")).unwrap();
    for entry in std::fs::read_dir(fixtures.join("instances")).unwrap() {
        let entry = entry.unwrap();
        let mut builder: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        if builder["Name"] == "fixture-remote" {
            builder["Nodes"][0]["Endpoint"] = testenv().tcp_addr.clone().into();
        }
        std::fs::write(store.join("instances").join(entry.file_name()), builder.to_string()).unwrap();
    }
    std::fs::copy(fixtures.join("current"), store.join("current")).unwrap();
    config
}

fn fbuild(config: &Path) -> assert_cmd::Command {
    util::fbuild_with_store(config)
}

#[test]
fn a_remote_builder_made_by_buildx_builds() {
    let config = docker_config();
    let project = util::tempdir();
    let stamp = util::unique();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &stamp)]);
    let out = util::tempdir();
    let output = fbuild(config.path())
        .args(["--builder", "fixture-remote", "solve"])
        .arg(project.path())
        .arg("-o")
        .arg(out.path().join("o"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("o/x")).unwrap(), stamp);

    // Every command that connects: by variable, and by buildx's current builder.
    // (prune is left out: it would prune the shared test daemon.)
    for command in [&["info"][..], &["workers"], &["du"]] {
        let by_variable = fbuild(config.path()).env("BUILDX_BUILDER", "fixture-remote").args(command).output().unwrap();
        assert!(by_variable.status.success(), "{command:?}: {}", text(&by_variable.stderr));
        let by_current = fbuild(config.path()).args(command).output().unwrap();
        assert!(by_current.status.success(), "{command:?} (current builder): {}", text(&by_current.stderr));
    }
}

#[test]
fn other_drivers_and_unknown_builders_say_what_to_do() {
    let config = docker_config();
    let output = fbuild(config.path()).args(["--builder", "fixture-container", "info"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("buildx builder \"fixture-container\" uses the docker-container driver"), "{stderr}");
    assert!(stderr.contains("docker buildx create --driver remote"), "{stderr}");
    assert!(stderr.contains("comes from --builder"), "{stderr}");

    let output = fbuild(config.path()).env("BUILDX_BUILDER", "nope").arg("info").output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no buildx builder named \"nope\" in"), "{stderr}");
    assert!(stderr.contains("comes from BUILDX_BUILDER"), "{stderr}");

    let output = fbuild(config.path())
        .args(["--builder", "fixture-remote", "--addr", &testenv().addr, "info"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--addr and --builder both choose the daemon"), "{stderr}");
}

#[test]
fn flags_beat_variables_and_buildkit_host_beats_buildx_builder() {
    let config = docker_config();
    // BUILDKIT_HOST is used, so the docker-container builder is never read.
    let output = fbuild(config.path())
        .env("BUILDKIT_HOST", &testenv().addr)
        .env("BUILDX_BUILDER", "fixture-container")
        .arg("info")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // --builder beats a BUILDKIT_HOST that goes nowhere.
    let output = fbuild(config.path())
        .env("BUILDKIT_HOST", "unix:///nonexistent/buildkitd.sock")
        .args(["--builder", "fixture-remote", "info"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // --addr beats BUILDX_BUILDER.
    let output = fbuild(config.path())
        .env("BUILDX_BUILDER", "fixture-container")
        .args(["--addr", &testenv().addr, "info"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // A builder's daemon that does not answer is named in the error.
    let output = fbuild(config.path()).args(["--builder", "fixture-tls", "info"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("buildx builder \"fixture-tls\""), "{stderr}");
}

/// `fbuild builder create` takes buildx's own spelling too (`--name NAME
/// --driver remote ENDPOINT`, `--append`), so a buildx user's command works;
/// other drivers are refused, and buildx lists what was made.
#[test]
fn builders_are_made_with_buildxs_create_flags() {
    let config = util::tempdir();
    let env = testenv();
    let run = |args: &[&str]| fbuild(config.path()).arg("builder").args(args).output().unwrap();
    let made = run(&["create", "--name", "bx", "--driver", "remote", &env.addr]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let appended = run(&["create", "--append", "--name", "bx", "--node", "second", &env.tcp_addr]);
    assert!(appended.status.success(), "{}", text(&appended.stderr));
    assert!(text(&appended.stderr).contains("added node second"), "{}", text(&appended.stderr));
    let refused = run(&["create", "--name", "other", "--driver", "docker-container", &env.addr]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--driver docker-container"), "{}", text(&refused.stderr));
    let twice = run(&["create", "--name", "a", "b", &env.addr]);
    assert!(text(&twice.stderr).contains("given twice"), "{}", text(&twice.stderr));

    let listed = std::process::Command::new(&env.buildx)
        .env("DOCKER_CONFIG", config.path())
        .args(["inspect", "bx"])
        .output()
        .unwrap();
    let listed = text(&listed.stdout);
    assert!(listed.contains("bx0") && listed.contains("second"), "buildx sees both nodes: {listed}");
}
