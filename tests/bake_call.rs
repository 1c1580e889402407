//! `fbuild bake --call`/`--check` and a target's `call` attribute, and
//! `fbuild bake --load`, side by side with buildx bake v0.38.2 on the test
//! daemon: the same answers on stdout, the same exit codes, the same
//! `--print`.

use std::path::Path;
use std::process::Command;

use crate::util::{self, testenv, text, write_files};

/// Three targets: one whose Dockerfile does not parse (`call = "check"` in
/// the file), one with a lint warning and a description, one plain build.
fn call_project(dir: &Path) {
    let busybox = &testenv().busybox;
    write_files(
        dir,
        &[
            ("sub/Dockerfile.bad", &format!("FROM {busybox}\nFORM x\n")),
            ("Dockerfile", &format!("FROM {busybox} AS base\nfrom base as other\nRUN true\n")),
            (
                "docker-bake.hcl",
                "group \"default\" { targets = [\"bad\", \"warned\", \"built\"] }\n\
                 target \"bad\" {\n  context = \"sub\"\n  dockerfile = \"Dockerfile.bad\"\n  call = \"check\"\n}\n\
                 target \"warned\" {\n  description = \"a Dockerfile with a lint warning\"\n  target = \"other\"\n}\n\
                 target \"built\" {\n  target = \"base\"\n}\n",
            ),
        ],
    );
}

/// Exit code, stdout and stderr of a bake run in `dir`.
fn run(mut command: assert_cmd::Command, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = command.current_dir(dir).arg("bake").args(args).output().unwrap();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn call_and_check_print_as_buildx_bake() {
    let dir = util::tempdir();
    call_project(dir.path());
    let cases: &[&[&str]] = &[
        // The file's `call` only: `bad` is checked, the others build.
        &[],
        &["--check"],
        &["--call", "outline"],
        &["--call", "targets,ignorestatus=true"],
        &["--call", "check,ignorestatus=true", "warned", "built"],
        &["--print", "--check"],
    ];
    for args in cases {
        let (buildx_code, buildx_out, buildx_err) = run(util::buildx(), dir.path(), args);
        let (code, out, err) = run(util::fbuild(), dir.path(), args);
        assert_eq!(out, buildx_out, "{args:?}: stdout\nfbuild stderr: {err}\nbuildx stderr: {buildx_err}");
        assert_eq!(code, buildx_code, "{args:?}: exit code\nfbuild stderr: {err}\nbuildx stderr: {buildx_err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Sanity: the cases show what they are about.
    let (_, out, _) = run(util::fbuild(), dir.path(), &["--check"]);
    assert!(out.contains("error: dockerfile parse error on line 2") && out.contains("sub/Dockerfile.bad:2"), "{out}");
    assert!(out.contains("warned\na Dockerfile with a lint warning\n\nCheck complete, 1 warning"), "{out}");
}

/// buildx's JSON document: each target as `--print` shows it under `build`,
/// its answer beside it. The answers' `definition`s name each run's session,
/// so they are left out of the comparison.
#[test]
fn call_json_is_buildx_bakes_document() {
    let dir = util::tempdir();
    call_project(dir.path());
    let strip = |json: &str| -> serde_json::Value {
        let mut value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
        for target in value["target"].as_object_mut().unwrap().values_mut() {
            for (key, answer) in target.as_object_mut().unwrap() {
                if key == "build" {
                    continue;
                }
                for source in answer.get_mut("sources").and_then(|s| s.as_array_mut()).into_iter().flatten() {
                    if let Some(source) = source.as_object_mut() {
                        source.remove("definition");
                    }
                }
            }
        }
        value
    };
    // `targets` cannot read the Dockerfile that does not parse: left out.
    let cases: &[&[&str]] = &[&["--call", "check,format=json"], &["--call", "targets,format=json", "warned", "built"]];
    for call in cases {
        let (buildx_code, buildx_out, buildx_err) = run(util::buildx(), dir.path(), call);
        let (code, out, err) = run(util::fbuild(), dir.path(), call);
        assert_eq!(strip(&out), strip(&buildx_out), "{call:?}\nfbuild stderr: {err}\nbuildx stderr: {buildx_err}");
        assert_eq!(code, buildx_code, "{call:?}: {err}");
    }
    // The frontend's answer keeps its fields' order, as Go's RawMessage.
    let (_, out, _) = run(util::fbuild(), dir.path(), &["--call", "check,format=json"]);
    let (filename, data) = (out.find("\"filename\"").unwrap(), out.find("\"data\"").unwrap());
    assert!(filename < data, "{out}");
}

#[test]
fn call_is_refused_with_target_contexts() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\n"),
            ("docker-bake.hcl", "target \"base\" {}\ntarget \"app\" {\n  contexts = { base = \"target:base\" }\n}\n"),
        ],
    );
    let (code, _, err) = run(util::fbuild(), dir.path(), &["--check", "app"]);
    assert_eq!(code, Some(1), "{err}");
    // buildx runs it and fails in the frontend ("unsupported context source target").
    assert!(err.contains("\"app\" uses as a context") && err.contains("not supported"), "{err}");
    assert!(!err.contains("#1 "), "nothing is built: {err}");
}

/// fbuild with only `dir` on PATH.
fn with_path(dir: &Path) -> assert_cmd::Command {
    let mut command = util::fbuild();
    command.env("PATH", dir);
    command
}

fn executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    Command::new("chmod").arg("755").arg(path).status().unwrap();
}

#[test]
fn load_hands_each_image_to_docker_load() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nARG NAME\nCOPY x /x\n"),
            ("x", "x\n"),
            (
                "docker-bake.hcl",
                "group \"default\" { targets = [\"one\", \"two\"] }\n\
                 target \"one\" {\n  tags = [\"app-one:1\"]\n}\n\
                 target \"two\" {\n  tags = [\"app-two:1\"]\n  output = [\"type=local,dest=out\"]\n}\n",
            ),
        ],
    );
    // `--print --load` is buildx's: a docker output where nothing else is written.
    let (_, buildx_print, _) = run(util::buildx(), dir.path(), &["--print", "--load"]);
    let (_, print, _) = run(util::fbuild(), dir.path(), &["--print", "--load"]);
    assert_eq!(print, buildx_print);
    assert!(print.contains("\"type\": \"docker\""), "{print}");

    // No docker or podman on PATH: refused before anything is built.
    let empty = util::tempdir();
    let (code, _, err) = run(with_path(empty.path()), dir.path(), &["--load"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("docker") && err.contains("podman"), "{err}");
    assert!(!err.contains("#1 "), "{err}");

    // A docker without a daemon: refused before the build too.
    let bin = util::tempdir();
    executable(
        &bin.path().join("docker"),
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n",
    );
    let (code, _, err) = run(with_path(bin.path()), dir.path(), &["--load"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Cannot connect to the Docker daemon") && err.contains("nothing was built"), "{err}");
    assert!(!err.contains("#1 "), "{err}");

    // A docker that keeps each archive `docker load -i FILE` was given.
    let kept = bin.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    executable(
        &bin.path().join("docker"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = version ] && exit 0\n[ \"$1 $2\" = \"load -i\" ] || exit 3\n\
             /bin/cp \"$3\" \"$(/bin/mktemp -p {})\"\necho Loaded image\n",
            kept.display()
        ),
    );
    let (code, _, err) = run(with_path(bin.path()), dir.path(), &["--load", "--provenance=false"]);
    assert_eq!(code, Some(0), "{err}");
    // `two` writes its folder and is not loaded (buildx loads only where
    // nothing but images is written); `one` is loaded with its tag.
    assert_eq!(std::fs::read_to_string(dir.path().join("out/x")).unwrap(), "x\n");
    let archives: Vec<_> = std::fs::read_dir(&kept).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(archives.len(), 1, "{err}");
    let entries = util::tar_entries(&std::fs::read(&archives[0]).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].1).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "app-one:1", "{manifest}");
}
