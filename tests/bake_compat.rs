//! `fbuild bake` resolving and building as buildx bake does, against the
//! test daemon and registry: compose files with YAML anchors and merge keys
//! build the right context, Dockerfile and args; what a bake file may read,
//! write and use beyond the current folder needs `--allow`; annotations,
//! attestations (buildx's default provenance included) reach the image;
//! a failing target cancels the others unless `--jobs defer-error`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{self, registry_manifest, testenv, text, unique, write_files};

/// Four services sharing build settings through anchors and merge keys,
/// the shape real compose files use: a merge under `build:`, a merge inside
/// `args:`, a plain alias as the whole `build:`, a list of merges (the
/// first mapping wins) and a merge of a mapping that itself merges.
fn merge_key_project(dir: &Path) {
    let busybox = &testenv().busybox;
    let dockerfile = |name: &str| {
        format!(
            "FROM {busybox}\nARG COMMON\nARG ROLE\nRUN echo \"dockerfile={name} common=$COMMON role=$ROLE\" > /result\n"
        )
    };
    write_files(
        dir,
        &[
            ("shared/Dockerfile.shared", &dockerfile("shared")),
            ("shared/Dockerfile.nested", &dockerfile("nested")),
            ("other/Dockerfile.shared", &dockerfile("other")),
            (
                "compose.yaml",
                "x-args: &args\n\
                 \x20 COMMON: from-anchor\n\
                 \x20 ROLE: default-role\n\
                 x-build: &default-build\n\
                 \x20 context: ./shared\n\
                 \x20 dockerfile: Dockerfile.shared\n\
                 \x20 args: *args\n\
                 x-other: &other-build\n\
                 \x20 context: ./other\n\
                 x-nested: &nested-build\n\
                 \x20 <<: *default-build\n\
                 \x20 dockerfile: Dockerfile.nested\n\
                 services:\n\
                 \x20 api:\n\
                 \x20   build:\n\
                 \x20     <<: *default-build\n\
                 \x20     args:\n\
                 \x20       <<: *args\n\
                 \x20       ROLE: api\n\
                 \x20 worker:\n\
                 \x20   build: *default-build\n\
                 \x20 web:\n\
                 \x20   build:\n\
                 \x20     <<: [*other-build, *default-build]\n\
                 \x20 nested:\n\
                 \x20   build:\n\
                 \x20     <<: *nested-build\n\
                 \x20     args:\n\
                 \x20       <<: *args\n\
                 \x20       ROLE: nested\n",
            ),
        ],
    );
}

#[test]
fn compose_merge_keys_build_the_right_context_dockerfile_and_args() {
    let dir = util::tempdir();
    merge_key_project(dir.path());
    let mut cmd = util::fbuild();
    cmd.current_dir(dir.path()).args(["bake", "-f", "compose.yaml"]);
    for service in ["api", "worker", "web", "nested"] {
        cmd.args(["--set", &format!("{service}.output=type=local,dest=out/{service}")]);
    }
    let assert = cmd.assert().success();
    let stderr = text(&assert.get_output().stderr);
    assert!(!stderr.contains("unknown build key"), "{stderr}");
    let result = |service: &str| {
        std::fs::read_to_string(dir.path().join(format!("out/{service}/result")))
            .unwrap_or_else(|e| panic!("{service} built nothing ({e})\n{stderr}"))
    };
    assert_eq!(result("api"), "dockerfile=shared common=from-anchor role=api\n");
    assert_eq!(result("worker"), "dockerfile=shared common=from-anchor role=default-role\n");
    // The first merged mapping wins: other's context, default's Dockerfile and args.
    assert_eq!(result("web"), "dockerfile=other common=from-anchor role=default-role\n");
    assert_eq!(result("nested"), "dockerfile=nested common=from-anchor role=nested\n");
    assert!(stderr.contains("bake: 4 of 4 targets built"), "{stderr}");
}

#[test]
fn a_bad_merge_key_names_its_line_and_builds_nothing() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\n"),
            ("scalar.yaml", "services:\n  app:\n    build:\n      context: .\n      <<: not-a-map\n"),
            ("list.yaml", "x-a: &a [1, 2]\nservices:\n  app:\n    build:\n      <<: [*a]\n"),
            ("cycle.yaml", "services: &s\n  app:\n    build:\n      <<: *s\n"),
        ],
    );
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "-f", "cycle.yaml"]).assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("cycle.yaml:3:") && stderr.contains("the anchors form a cycle"), "{stderr}");
    for (file, line) in [("scalar.yaml", 5), ("list.yaml", 5)] {
        let assert = util::fbuild()
            .current_dir(dir.path())
            .args(["bake", "-f", file, "--set", "*.output=type=local,dest=out"])
            .assert()
            .failure()
            .code(1);
        let stderr = text(&assert.get_output().stderr);
        assert!(
            stderr.contains(&format!("{file}:{line}: map merge requires map or sequence of maps as the value")),
            "{stderr}"
        );
        assert!(!dir.path().join("out").exists(), "{stderr}");
    }
}

/// A project in `dir/proj` whose bake file reads `dir/outside` as a named context.
fn outside_project(dir: &Path) -> std::path::PathBuf {
    let secret = unique();
    write_files(
        dir,
        &[
            ("outside/secret.txt", &secret),
            (
                "proj/docker-bake.hcl",
                "target \"default\" {\n\
                 \x20 contexts = { x = \"../outside\" }\n\
                 \x20 dockerfile-inline = \"FROM scratch\\nCOPY --from=x secret.txt /\\n\"\n\
                 \x20 output = [\"type=local,dest=out\"]\n\
                 }\n",
            ),
        ],
    );
    dir.join("proj")
}

#[test]
fn reading_outside_the_folder_needs_allow_fs_read() {
    let dir = util::tempdir();
    let proj = outside_project(dir.path());
    let outside = std::fs::canonicalize(dir.path().join("outside")).unwrap();
    let assert = util::fbuild().current_dir(&proj).arg("bake").assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    // buildx's words, and the path as buildx shows it (one `..` at most, else absolute).
    assert!(stderr.contains(" - Read access to path ../outside"), "{stderr}");
    assert!(
        stderr.contains(
            "additional privileges requested: pass \"--allow=fs.read=../outside\" to grant requested privileges"
        ),
        "{stderr}"
    );
    assert!(!proj.join("out").exists(), "something was built\n{stderr}");

    // Granted by the path buildx names, by an absolute path, or by `fs=*`.
    for allow in ["fs.read=../outside".to_string(), format!("fs.read={}", outside.display()), "fs=*".to_string()] {
        let _ = std::fs::remove_dir_all(proj.join("out"));
        let assert = util::fbuild().current_dir(&proj).args(["bake", "--allow", &allow]).assert().success();
        let copied = std::fs::read(proj.join("out/secret.txt"));
        assert!(copied.is_ok(), "--allow {allow}: {}", text(&assert.get_output().stderr));
    }
    // Granting another folder is not enough.
    util::fbuild().current_dir(&proj).args(["bake", "--allow", "fs.read=/nonexistent/x"]).assert().failure();
}

#[test]
fn writing_outside_and_the_host_network_need_allow() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    write_files(
        dir.path(),
        &[
            ("proj/Dockerfile", &format!("FROM {busybox}\nRUN echo {} > /done\n", unique())),
            (
                "proj/docker-bake.hcl",
                "target \"default\" {\n  network = \"host\"\n  output = [\"type=local,dest=../written\"]\n}\n",
            ),
        ],
    );
    let proj = dir.path().join("proj");
    let assert = util::fbuild().current_dir(&proj).arg("bake").assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains(" - Running build containers that can access host network"), "{stderr}");
    assert!(stderr.contains(" - Write access to path .."), "{stderr}");
    assert!(stderr.contains("pass \"--allow=network.host --allow=fs.write=..\" to grant"), "{stderr}");
    assert!(!dir.path().join("written").exists(), "{stderr}");

    // Without the network grant, still refused.
    util::fbuild().current_dir(&proj).args(["bake", "--allow", "fs.write=.."]).assert().failure();
    let assert =
        util::fbuild().current_dir(&proj).args(["bake", "--allow", "fs.write=..", "--allow", "network.host"]).assert();
    let stderr = text(&assert.get_output().stderr);
    assert.success();
    assert!(dir.path().join("written/done").is_file(), "{stderr}");
}

/// `repo:tag`'s manifest and, when it is an index, the manifests it lists.
fn pushed(repo: &str, tag: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let top = registry_manifest(repo, tag).unwrap_or_else(|| panic!("{repo}:{tag} was not pushed"));
    let listed = top["manifests"].as_array().cloned().unwrap_or_default();
    (top, listed)
}

#[test]
fn default_provenance_annotations_and_attest_reach_the_image() {
    let dir = util::tempdir();
    let registry = &testenv().registry;
    let repo = format!("bake-attest-{}", unique());
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY marker /\n"),
            ("marker", &unique()),
            (
                "docker-bake.hcl",
                &format!(
                    "target \"plain\" {{\n  tags = [\"{registry}/{repo}:plain\"]\n  annotations = [\"org.example.note=hello\"]\n}}\n\
                     target \"noprov\" {{\n  tags = [\"{registry}/{repo}:noprov\"]\n  attest = [\"type=provenance,disabled=true\"]\n}}\n"
                ),
            ),
        ],
    );
    // Default attestations: an index carrying an attestation manifest.
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "--push", "plain", "noprov"]).assert();
    let stderr = text(&assert.get_output().stderr);
    assert.success();
    let (index, listed) = pushed(&repo, "plain");
    let kinds: Vec<&str> =
        listed.iter().map(|m| m["annotations"]["vnd.docker.reference.type"].as_str().unwrap_or("image")).collect();
    assert_eq!(kinds, ["image", "attestation-manifest"], "{index}\n{stderr}");
    // The annotation is on the image manifest.
    let image = listed[0]["digest"].as_str().unwrap();
    let manifest = util::registry_manifest(&repo, image).unwrap();
    assert_eq!(manifest["annotations"]["org.example.note"], "hello", "{manifest}");
    // `attest` of the file turns the default provenance off: a plain manifest.
    // (An SBOM needs the scanner image from Docker Hub, out of reach here.)
    let (noprov, listed) = pushed(&repo, "noprov");
    assert!(listed.is_empty() && noprov["layers"].is_array(), "{noprov}");

    // BUILDX_NO_DEFAULT_ATTESTATIONS=1: a plain manifest, as buildx pushes it.
    let assert = util::fbuild()
        .current_dir(dir.path())
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
        .args(["bake", "--push", "--set", &format!("plain.tags={registry}/{repo}:bare"), "plain"])
        .assert();
    let stderr = text(&assert.get_output().stderr);
    assert.success();
    let (bare, listed) = pushed(&repo, "bare");
    assert!(listed.is_empty() && bare["layers"].is_array(), "{bare}\n{stderr}");
}

#[test]
fn a_failing_target_cancels_the_others() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    write_files(
        dir.path(),
        &[
            ("bad/Dockerfile", &format!("FROM {busybox}\nRUN echo {} && sleep 1 && exit 7\n", unique())),
            ("slow/Dockerfile", &format!("FROM {busybox}\nRUN sleep 40 && echo {} > /done\n", unique())),
            (
                "docker-bake.hcl",
                "group \"default\" {\n  targets = [\"bad\", \"slow\"]\n}\n\
                 target \"bad\" {\n  context = \"bad\"\n}\n\
                 target \"slow\" {\n  context = \"slow\"\n  output = [\"type=local,dest=out\"]\n}\n",
            ),
        ],
    );
    let started = Instant::now();
    let assert = util::fbuild().current_dir(dir.path()).arg("bake").assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(started.elapsed() < Duration::from_secs(35), "the slow target was not cancelled\n{stderr}");
    assert!(!dir.path().join("out/done").exists(), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("bad ") && l.contains("FAILED")), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("slow ") && l.contains("cancel")), "{stderr}");
}

/// `--print` of every case in `tests/bake/corpus` equals buildx v0.38.2's
/// (each case's `expected.json`, written by `tests/bake/corpus/regenerate.sh`),
/// groups and targets compared as JSON, then as text (field order and all).
#[test]
fn print_corpus_matches_buildx() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/corpus");
    let mut cases: Vec<_> =
        std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 6, "{cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let args = std::fs::read_to_string(case.join("args")).unwrap();
        let assert = util::fbuild()
            .current_dir(case)
            .env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS")
            .arg("bake")
            .arg("--print")
            .args(args.lines())
            .assert();
        let output = assert.get_output();
        let stdout = text(&output.stdout);
        let expected = std::fs::read_to_string(case.join("expected.json")).unwrap();
        let same_json = serde_json::from_str::<serde_json::Value>(&stdout).ok()
            == Some(serde_json::from_str::<serde_json::Value>(&expected).unwrap());
        if !output.status.success() || !same_json || stdout != expected {
            failures.push(format!(
                "{}: json equal {same_json}\n--- buildx\n{expected}\n--- fbuild\n{stdout}{}",
                case.display(),
                text(&output.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--list targets|variables`, as a table and as JSON, equal to buildx's
/// on every case of the corpus (`list-*.txt`, `list-*.json`).
#[test]
fn list_corpus_matches_buildx() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/corpus");
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        let args = std::fs::read_to_string(case.join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        let files: &[&str] = if args.first() == Some(&"-f") { &args[..2] } else { &[] };
        for (kind, value, file) in [
            ("targets", "targets", "list-targets.txt"),
            ("targets", "type=targets,format=json", "list-targets.json"),
            ("variables", "variables", "list-variables.txt"),
            ("variables", "type=variables,format=json", "list-variables.json"),
        ] {
            let expected = std::fs::read_to_string(case.join(file)).unwrap();
            let output =
                util::fbuild().current_dir(&case).arg("bake").args(files).args(["--list", value]).output().unwrap();
            compared += 1;
            if text(&output.stdout) != expected {
                failures.push(format!(
                    "{} --list {value} ({kind}):\n--- buildx\n{expected}--- fbuild\n{}{}",
                    case.display(),
                    text(&output.stdout),
                    text(&output.stderr)
                ));
            }
        }
    }
    assert!(compared >= 28, "{compared}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_names_and_a_missing_metadata_folder_are_refused_before_building() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n"),
            ("names.hcl", "target \"../../x\" {}\ntarget \"app\" {\n  contexts = { x = \"target:../../x\" }\n}\n"),
            ("dots.yaml", "services:\n  web.app:\n    build: .\n"),
            ("ok.hcl", "target \"default\" {\n  output = [\"type=local,dest=out\"]\n}\n"),
        ],
    );
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "-f", "names.hcl", "app"]).assert().failure();
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("target \"../../x\"") && stderr.contains("Invalid name"), "{stderr}");
    // Compose service names lose their dots, as in buildx.
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "-f", "dots.yaml", "--print"]).assert().success();
    let printed: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert!(printed["target"]["web_app"].is_object(), "{printed}");
    // --metadata-file into a folder that does not exist: refused before the build.
    let assert = util::fbuild()
        .current_dir(dir.path())
        .args(["bake", "-f", "ok.hcl", "--metadata-file", "missing/meta.json"])
        .assert()
        .failure()
        .code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("--metadata-file") && stderr.contains("does not exist"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "{stderr}");
}

/// `shm-size` and `ulimits` of a bake target (and a compose service) reach
/// RUN steps, encoded as `fbuild solve --shm-size/--ulimit` encode them.
#[test]
fn shm_size_and_ulimits_of_a_target_reach_run_steps() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nRUN echo {} && df -k /dev/shm | tail -n 1 > /shm && ulimit -n > /nofile && ulimit -Hn > /nofile-hard\n",
                    testenv().busybox,
                    unique()
                ),
            ),
            (
                "docker-bake.hcl",
                "target \"default\" {\n  shm-size = \"96m\"\n  ulimits = [\"nofile=1000:1500\", \"nofile=1234:2345\"]\n  output = [\"type=local,dest=out\"]\n}\n",
            ),
            (
                "compose.yaml",
                "services:\n  app:\n    build:\n      context: .\n      shm_size: 64m\n      ulimits:\n        nofile:\n          soft: 1111\n          hard: 2222\n",
            ),
        ],
    );
    let check = |out: &str, shm_mib: u64, soft: &str, hard: &str| {
        let shm = std::fs::read_to_string(dir.path().join(out).join("shm")).unwrap();
        let blocks: u64 = shm.split_whitespace().nth(1).and_then(|b| b.parse().ok()).unwrap_or_else(|| panic!("{shm}"));
        assert_eq!(blocks, shm_mib * 1024, "{shm}");
        assert_eq!(std::fs::read_to_string(dir.path().join(out).join("nofile")).unwrap().trim(), soft);
        assert_eq!(std::fs::read_to_string(dir.path().join(out).join("nofile-hard")).unwrap().trim(), hard);
    };
    util::fbuild().current_dir(dir.path()).args(["bake", "-f", "docker-bake.hcl"]).assert().success();
    // One ulimit per name, the last one winning, as docker's UlimitOpt.
    check("out", 96, "1234", "2345");
    util::fbuild()
        .current_dir(dir.path())
        .args(["bake", "-f", "compose.yaml", "--set", "app.output=type=local,dest=out-compose"])
        .assert()
        .success();
    check("out-compose", 64, "1111", "2222");
    // A bad value names the target and the attribute, before anything is built.
    let assert = util::fbuild()
        .current_dir(dir.path())
        .args(["bake", "-f", "docker-bake.hcl", "--set", "default.ulimits=nofile=2:1"])
        .assert()
        .failure();
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("target \"default\"") && stderr.contains("ulimits"), "{stderr}");
}

/// A compose project as teams write them: four services sharing build
/// settings through anchors and merge keys, three of them built on the
/// image of the fourth through `target:` contexts.
fn linked_compose_project(dir: &Path) {
    let busybox = &testenv().busybox;
    write_files(
        dir,
        &[
            ("svc/Dockerfile.base", &format!("FROM {busybox}\nARG COMMON\nRUN echo \"base $COMMON\" > /base.txt\n")),
            (
                "svc/Dockerfile.app",
                "FROM base\nARG ROLE\nCOPY stamp /stamp\nRUN cat /base.txt /stamp > /role && echo \"$ROLE\" >> /role\n",
            ),
            ("svc/stamp", &unique()),
            (
                "compose.yaml",
                "x-args: &args\n\
                 \x20 COMMON: shared\n\
                 x-build: &default-build\n\
                 \x20 context: ./svc\n\
                 \x20 dockerfile: Dockerfile.app\n\
                 \x20 args: *args\n\
                 \x20 additional_contexts:\n\
                 \x20   base: target:base\n\
                 services:\n\
                 \x20 base:\n\
                 \x20   image: ${REGISTRY}/${REPO}-base:${SIDE}\n\
                 \x20   build:\n\
                 \x20     context: ./svc\n\
                 \x20     dockerfile: Dockerfile.base\n\
                 \x20     args: *args\n\
                 \x20 api:\n\
                 \x20   image: ${REGISTRY}/${REPO}-api:${SIDE}\n\
                 \x20   build:\n\
                 \x20     <<: *default-build\n\
                 \x20     args:\n\
                 \x20       <<: *args\n\
                 \x20       ROLE: api\n\
                 \x20 worker:\n\
                 \x20   image: ${REGISTRY}/${REPO}-worker:${SIDE}\n\
                 \x20   build: *default-build\n\
                 \x20 web:\n\
                 \x20   image: ${REGISTRY}/${REPO}-web:${SIDE}\n\
                 \x20   build:\n\
                 \x20     <<: *default-build\n\
                 \x20     args:\n\
                 \x20       <<: *args\n\
                 \x20       ROLE: web\n",
            ),
        ],
    );
}

/// `target:` contexts reach the frontend as buildx hands them (the linked
/// target's graph as a frontend input), so the images equal buildx's to the
/// digest; round-tripping the base through an OCI layout (as fbuild did)
/// gave the dependents other layers.
#[test]
fn a_linked_compose_project_pushes_the_digests_buildx_bake_pushes() {
    let dir = util::tempdir();
    linked_compose_project(dir.path());
    let registry = &testenv().registry;
    let repo = format!("bake-linked-{}", unique());
    let services = ["base", "api", "worker", "web"];
    let run = |side: &str, fbuild: bool, attestations: bool| {
        let mut cmd = if fbuild { util::fbuild() } else { util::buildx() };
        cmd.current_dir(dir.path()).env("REGISTRY", registry).env("REPO", &repo).env("SIDE", side);
        if attestations {
            cmd.env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS");
        } else {
            cmd.env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
        }
        // A repository per service: the loopback registry can fail two
        // uploads of one blob into one repository at once ("provided digest
        // did not match uploaded content"), whichever client pushes.
        let output = cmd.args(["bake", "--push"]).output().unwrap();
        let who = if fbuild { "fbuild" } else { "buildx" };
        assert!(output.status.success(), "{who} bake ({side}): {}", text(&output.stderr));
    };
    // fbuild first: buildx then reuses the daemon's cache only where the
    // graphs are the same.
    run("fb", true, false);
    run("bx", false, false);
    for service in services {
        let fbuild = util::registry_digest(&format!("{repo}-{service}"), "fb");
        assert_eq!(fbuild, util::registry_digest(&format!("{repo}-{service}"), "bx"), "{service}");
    }
    // The dependents hold the base's layers and their own.
    let api = registry_manifest(&format!("{repo}-api"), "fb").unwrap();
    let base = registry_manifest(&format!("{repo}-base"), "fb").unwrap();
    let layers = |m: &serde_json::Value| m["layers"].as_array().unwrap().len();
    assert_eq!(layers(&api), layers(&base) + 2, "{api}");

    // Default attestations: both push an index with an attestation manifest
    // beside the same image.
    run("fba", true, true);
    run("bxa", false, true);
    for service in services {
        let (fbuild, fbuild_listed) = pushed(&format!("{repo}-{service}"), "fba");
        let (buildx, buildx_listed) = pushed(&format!("{repo}-{service}"), "bxa");
        let kinds = |listed: &[serde_json::Value]| -> Vec<String> {
            listed
                .iter()
                .map(|m| m["annotations"]["vnd.docker.reference.type"].as_str().unwrap_or("image").to_string())
                .collect()
        };
        assert_eq!(kinds(&fbuild_listed), ["image", "attestation-manifest"], "{service}: {fbuild}");
        assert_eq!(kinds(&fbuild_listed), kinds(&buildx_listed), "{service}: {buildx}");
        assert_eq!(fbuild_listed[0]["digest"], buildx_listed[0]["digest"], "{service}");
        assert_eq!(
            fbuild_listed[0]["digest"].as_str().unwrap(),
            util::registry_digest(&format!("{repo}-{service}"), "fb")
        );
    }
}

/// Typed variables read `--var` and the environment as buildx does (JSON
/// from `NAME_JSON`, CSV for collections, Go's parsers for primitives, and
/// `--var` over the environment), compared live with buildx's `--print`.
#[test]
fn typed_variables_and_var_overrides_print_as_buildx() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/corpus/typed-variables");
    type Run<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let runs: &[Run] = &[
        (&[("L", "3,4"), ("M", "b:2,a:1"), ("SE", "b,a,b"), ("T", "x,9")], &[]),
        (&[("L", "1"), ("L_JSON", "[5,6]"), ("BO", "0"), ("N", "1e3")], &[]),
        (&[("S", "from-env"), ("N", "2")], &["--var", "S=from-var", "--var", "UN=7.25"]),
        (
            &[],
            &[
                "--var",
                "O_JSON={\"name\":\"n\",\"n\":1}",
                "--var",
                "A_JSON={\"value\":[\"z\"],\"type\":[\"tuple\",[\"string\"]]}",
            ],
        ),
    ];
    for (env, args) in runs {
        let mut outputs = Vec::new();
        for mut cmd in [util::fbuild(), util::buildx()] {
            cmd.current_dir(&case).env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS");
            for (key, value) in *env {
                cmd.env(key, value);
            }
            let output = cmd.args(["bake", "--print"]).args(*args).output().unwrap();
            assert!(output.status.success(), "{env:?} {args:?}: {}", text(&output.stderr));
            outputs.push(serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap());
        }
        assert_eq!(outputs[0], outputs[1], "{env:?} {args:?}: fbuild, then buildx");
    }
    // A bad value fails both, fbuild naming the variable and its line.
    let output = util::fbuild().current_dir(&case).env("BO", "yes").args(["bake", "--print"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("docker-bake.hcl:9: variable \"BO\"") && stderr.contains("failed to parse BO as bool"),
        "{stderr}"
    );
    // `any` in JSON needs its type beside it, in both.
    for mut cmd in [util::fbuild(), util::buildx()] {
        let output = cmd.current_dir(&case).args(["bake", "--print", "--var", "A_JSON=[1]"]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    }
    let output = util::fbuild().current_dir(&case).args(["bake", "--print", "--var", "=x"]).output().unwrap();
    assert!(text(&output.stderr).contains("invalid variable, key is empty"), "{}", text(&output.stderr));
}
