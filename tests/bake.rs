//! `fbuild bake` against the test daemon and registry: a compose file
//! pushed in one run and fully cached in the next, the same services as a
//! `docker-bake.hcl` giving the same image digests, a target built as
//! another's context, a failing target that does not stop the other,
//! `--print` against buildx's own output, and bad input refused before
//! anything is built.

use std::path::Path;

use crate::util::{self, registry_manifest, testenv, text, unique, write_files};

/// Two services in the shape of the example project: `api` imports and
/// exports a registry cache, `worker` takes a build arg from `.env`.
fn project(dir: &Path, repo: &str) {
    let busybox = &testenv().busybox;
    let registry = &testenv().registry;
    write_files(
        dir,
        &[
            ("api/Dockerfile", &format!("FROM {busybox}\nCOPY main.txt /app/\nRUN cat /app/main.txt > /app/copy\n")),
            ("api/main.txt", "api\n"),
            (
                "worker/Dockerfile",
                &format!(
                    "FROM {busybox}\nARG GREETING\nRUN test \"$GREETING\" = from-dotenv && echo \"$GREETING\" > /greeting\n"
                ),
            ),
            (".env", "GREETING=from-dotenv\n"),
            (
                "compose.yaml",
                &format!(
                    "services:\n\
                     \x20 api:\n\
                     \x20   image: {registry}/{repo}-api:1\n\
                     \x20   build:\n\
                     \x20     context: ./api\n\
                     \x20     cache_from: [\"type=registry,ref={registry}/{repo}-cache:api\"]\n\
                     \x20     cache_to: [\"type=registry,ref={registry}/{repo}-cache:api,mode=max\"]\n\
                     \x20 worker:\n\
                     \x20   image: {registry}/{repo}-worker:1\n\
                     \x20   build:\n\
                     \x20     context: worker\n\
                     \x20     args:\n\
                     \x20       GREETING: ${{GREETING}}\n\
                     \x20 db:\n\
                     \x20   image: postgres\n"
                ),
            ),
            (
                "docker-bake.hcl",
                &format!(
                    "variable \"GREETING\" {{\n  default = \"from-dotenv\"\n}}\n\
                     variable \"REPO\" {{\n  default = \"{registry}/{repo}\"\n}}\n\
                     group \"default\" {{\n  targets = [\"api\", \"worker\"]\n}}\n\
                     target \"_common\" {{\n  dockerfile = \"Dockerfile\"\n}}\n\
                     target \"api\" {{\n  inherits = [\"_common\"]\n  context = \"api\"\n  tags = [\"${{REPO}}-api:hcl\"]\n}}\n\
                     target \"worker\" {{\n  inherits = [\"_common\"]\n  context = \"worker\"\n  args = {{\n    GREETING = GREETING\n  }}\n  tags = [\"${{REPO}}-worker:hcl\"]\n}}\n"
                ),
            ),
        ],
    );
}

/// Every vertex whose name contains `needle`: (name, cached in any update).
fn steps(rawjson: &str, needle: &str) -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = Vec::new();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let name = vertex["name"].as_str().unwrap_or_default();
            if name.contains(needle) {
                let cached = vertex["cached"].as_bool().unwrap_or(false);
                match found.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 |= cached,
                    None => found.push((name.to_string(), cached)),
                }
            }
        }
    }
    found
}

#[test]
fn compose_pushes_both_services_then_is_fully_cached() {
    let dir = util::tempdir();
    let repo = format!("bake-{}", unique());
    project(dir.path(), &repo);
    let run = || {
        util::fbuild()
            .current_dir(dir.path())
            .args(["bake", "-f", "compose.yaml", "--push", "--progress", "rawjson", "-v"])
            .assert()
            .success()
    };
    let first = run();
    let stderr = text(&first.get_output().stderr);
    for service in ["api", "worker"] {
        let repo = format!("{repo}-{service}");
        assert!(registry_manifest(&repo, "1").is_some(), "{repo}:1 was not pushed\n{stderr}");
        assert!(stderr.contains(&format!("pushed {}/{repo}:1", testenv().registry)), "{stderr}");
    }
    assert!(registry_manifest(&format!("{repo}-cache"), "api").is_some(), "the api cache was not exported\n{stderr}");
    // The display labels each step with its target.
    assert!(!steps(&stderr, "[api] ").is_empty() && !steps(&stderr, "[worker] ").is_empty(), "{stderr}");
    assert!(stderr.contains("bake: 2 of 2 targets built"), "{stderr}");

    let second = run();
    let stderr = text(&second.get_output().stderr);
    let runs = steps(&stderr, "RUN ");
    assert_eq!(runs.len(), 2, "{stderr}");
    assert!(runs.iter().all(|(_, cached)| *cached), "not every step came from the cache: {runs:?}\n{stderr}");
}

#[test]
fn hcl_file_gives_the_same_digests_as_the_compose_file() {
    let dir = util::tempdir();
    let repo = format!("bake-same-{}", unique());
    project(dir.path(), &repo);
    let digests = |file: &str| {
        let metadata = dir.path().join(format!("{file}.metadata.json"));
        util::fbuild()
            .current_dir(dir.path())
            .env("SOURCE_DATE_EPOCH", "0")
            // The default provenance records which file said what; the images are the same.
            .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
            .args(["bake", "-f", file, "--push", "--progress", "quiet", "--metadata-file"])
            .arg(&metadata)
            // Both files' cache settings aside, the images are the same builds.
            .args(["--set", "*.cache-from=", "--set", "*.cache-to=", "api", "worker"])
            .assert()
            .success();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
        ["api", "worker"]
            .map(|t| json[t]["containerimage.digest"].as_str().unwrap_or_else(|| panic!("{json}")).to_string())
    };
    let compose = digests("compose.yaml");
    let hcl = digests("docker-bake.hcl");
    assert_eq!(compose, hcl);
    assert!(registry_manifest(&format!("{repo}-worker"), "hcl").is_some());
}

#[test]
fn a_target_used_as_a_context_is_built_first() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    write_files(
        dir.path(),
        &[
            ("base/Dockerfile", &format!("FROM {busybox}\nRUN echo {} > /from-base\n", unique())),
            ("app/Dockerfile", "FROM base\nRUN test -s /from-base && cp /from-base /copied\n"),
            (
                "docker-bake.hcl",
                "target \"base\" {\n  context = \"base\"\n}\n\
                 target \"app\" {\n  context = \"app\"\n  contexts = {\n    base = \"target:base\"\n  }\n  output = [\"type=local,dest=out\"]\n}\n",
            ),
        ],
    );
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "app"]).assert().success();
    let stderr = text(&assert.get_output().stderr);
    assert!(dir.path().join("out/copied").is_file(), "{stderr}");
    assert!(std::fs::read(dir.path().join("out/copied")).unwrap().len() > 1);
    assert!(stderr.contains("bake: 2 of 2 targets built"), "{stderr}");
}

#[test]
fn with_deferred_errors_a_failing_target_does_not_stop_the_other() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    write_files(
        dir.path(),
        &[
            ("bad/Dockerfile", &format!("FROM {busybox}\nRUN echo {} && exit 7\n", unique())),
            ("good/Dockerfile", &format!("FROM {busybox}\nRUN sleep 2 && echo {} > /done\n", unique())),
            (
                "docker-bake.hcl",
                "group \"default\" {\n  targets = [\"bad\", \"good\"]\n}\n\
                 target \"bad\" {\n  context = \"bad\"\n}\n\
                 target \"good\" {\n  context = \"good\"\n  output = [\"type=local,dest=out\"]\n}\n",
            ),
        ],
    );
    // buildx's `--jobs defer-error`: the others finish (fail-fast, the
    // default, is in bake_compat.rs).
    let assert =
        util::fbuild().current_dir(dir.path()).args(["bake", "--jobs", "defer-error"]).assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(dir.path().join("out/done").is_file(), "the good target did not finish\n{stderr}");
    assert!(stderr.contains("1 of 2 targets failed: bad"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("bad ") && l.contains("FAILED")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn print_matches_buildx() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/print");
    let assert = util::fbuild()
        .current_dir(&fixture)
        .env("TAG", "2.0")
        .args([
            "bake",
            "--print",
            "--set",
            "api.args.EXTRA=yes",
            "--set",
            "*.labels.team=build",
            "--set",
            "worker.platform=linux/arm64",
            "--set",
            "api.cache-to=type=inline",
        ])
        .assert()
        .success();
    let expected = std::fs::read_to_string(fixture.join("expected.json")).unwrap();
    assert_eq!(text(&assert.get_output().stdout), expected);
}

#[test]
fn compose_print_matches_buildx() {
    let dir = util::tempdir();
    project(dir.path(), "r");
    let assert =
        util::fbuild().current_dir(dir.path()).args(["bake", "-f", "compose.yaml", "--print"]).assert().success();
    let printed: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let registry = &testenv().registry;
    // As buildx prints it: .env fills the arg, `db` (no build:) is left out.
    let expected = serde_json::json!({
        "group": {"default": {"targets": ["api", "worker"]}},
        "target": {
            "api": {
                "context": "api",
                "dockerfile": "Dockerfile",
                "tags": [format!("{registry}/r-api:1")],
                "cache-from": [{"ref": format!("{registry}/r-cache:api"), "type": "registry"}],
                "cache-to": [{"mode": "max", "ref": format!("{registry}/r-cache:api"), "type": "registry"}],
            },
            "worker": {
                "context": "worker",
                "dockerfile": "Dockerfile",
                "args": {"GREETING": "from-dotenv"},
                "tags": [format!("{registry}/r-worker:1")],
            },
        },
    });
    assert_eq!(printed, expected);
}

#[test]
fn bad_input_is_refused_before_building() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\n"),
            ("ok.hcl", "target \"a\" {}\n"),
            ("broken.hcl", "target \"a\" {\n  tags = [\"x\"\n}\n"),
            ("cycle.hcl", "target \"a\" {\n  contexts = { x = \"target:b\" }\n}\ntarget \"b\" {\n  contexts = { y = \"target:a\" }\n}\n"),
            ("required.yaml", "services:\n  a:\n    build:\n      context: .\n      args:\n        TOKEN: ${TOKEN_FOR_BAKE_TEST?set TOKEN first}\n"),
            ("no-build.yaml", "services:\n  db:\n    image: postgres\n"),
            ("unknown-key.yaml", "services:\n  a:\n    build:\n      context: .\n      frobnicate: yes\n"),
        ],
    );
    let cases: &[(&[&str], &str)] = &[
        (&["-f", "ok.hcl", "nope"], "unknown target or group \"nope\""),
        (&["-f", "broken.hcl"], "broken.hcl:3:"),
        (&["-f", "cycle.hcl", "a"], "cycle: a -> b -> a"),
        (
            &["-f", "required.yaml"],
            "required.yaml:6: required variable TOKEN_FOR_BAKE_TEST is missing a value: set TOKEN first",
        ),
        (&["-f", "ok.hcl", "--set", "a.bogus=1", "a"], "--set \"a.bogus=1\": unknown key"),
        (&["-f", "missing.hcl"], "missing.hcl"),
        (&["-f", "no-build.yaml"], "nothing to build: default names no target"),
    ];
    for (args, message) in cases {
        let assert = util::fbuild().current_dir(dir.path()).arg("bake").args(*args).assert().failure().code(1);
        let stderr = text(&assert.get_output().stderr);
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // An unknown build: key is refused with buildx's words (compose-go's
    // schema), never built without it.
    let assert =
        util::fbuild().current_dir(dir.path()).args(["bake", "-f", "unknown-key.yaml", "--print"]).assert().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(stderr.contains("build additional properties 'frobnicate' not allowed"), "{stderr}");
}

#[test]
fn compose_fixture_print_matches_buildx() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/compose-print");
    let assert = util::fbuild()
        .current_dir(&fixture)
        .env_remove("TAG")
        .env_remove("MODE")
        .args(["bake", "--print"])
        .assert()
        .success();
    let expected = std::fs::read_to_string(fixture.join("expected.json")).unwrap();
    assert_eq!(text(&assert.get_output().stdout), expected);
}

#[test]
fn list_shows_targets_and_variables() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/print");
    let assert =
        util::fbuild().current_dir(&fixture).env_remove("TAG").args(["bake", "--list", "targets"]).assert().success();
    let out = text(&assert.get_output().stdout);
    for name in ["api", "worker", "shared", "all", "default"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{name}\t"))), "{name} missing:\n{out}");
    }
    let assert =
        util::fbuild().current_dir(&fixture).env("TAG", "9").args(["bake", "--list", "variables"]).assert().success();
    let out = text(&assert.get_output().stdout);
    // buildx's columns: VARIABLE, TYPE, VALUE, DESCRIPTION (tabwriter-aligned).
    assert!(out.lines().any(|l| l.starts_with("TAG\t") && l.contains("\t9\t")), "{out}");
}

#[test]
fn print_of_named_targets_matches_buildx() {
    // expected-named.json: `buildx bake --print worker api` with TAG unset.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/print");
    let assert = util::fbuild()
        .current_dir(&fixture)
        .env_remove("TAG")
        .args(["bake", "--print", "worker", "api"])
        .assert()
        .success();
    let expected = std::fs::read_to_string(fixture.join("expected-named.json")).unwrap();
    assert_eq!(text(&assert.get_output().stdout), expected);
}

#[test]
fn a_file_from_stdin() {
    let dir = util::tempdir();
    let assert = util::fbuild()
        .current_dir(dir.path())
        .args(["bake", "-f", "-", "--print", "a"])
        .write_stdin("target \"a\" {\n  tags = [\"r/a:${upper(\"x\")}\"]\n}\n")
        .assert()
        .success();
    let printed: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(printed["target"]["a"]["tags"][0], "r/a:X");
}

#[test]
fn compose_services_link_through_additional_contexts() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    let stamp = unique();
    write_files(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM base\nRUN cp /from-base /copied\n"),
            (
                "compose.yaml",
                &format!(
                    "services:\n\
                     \x20 base:\n\
                     \x20   build:\n\
                     \x20     context: .\n\
                     \x20     dockerfile_inline: |\n\
                     \x20       FROM {busybox}\n\
                     \x20       RUN echo {stamp} > /from-base\n\
                     \x20 app:\n\
                     \x20   build:\n\
                     \x20     context: app\n\
                     \x20     additional_contexts:\n\
                     \x20       base: target:base\n\
                     \x20     x-bake:\n\
                     \x20       output: [\"type=local,dest=out\"]\n"
                ),
            ),
        ],
    );
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "app"]).assert().success();
    let stderr = text(&assert.get_output().stderr);
    let copied = std::fs::read_to_string(dir.path().join("out/copied")).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    assert_eq!(copied.trim(), stamp);
}

/// Bytes the daemon reports for "transferring context" across the whole
/// run, each vertex counted once (its largest figure): what crossed the wire.
fn context_bytes_sent(rawjson: &str) -> u64 {
    let mut per_vertex: std::collections::BTreeMap<String, u64> = Default::default();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for status in value["statuses"].as_array().into_iter().flatten() {
            if status["id"].as_str().unwrap_or_default().starts_with("transferring context") {
                let vertex = status["vertex"].as_str().unwrap_or_default().to_string();
                let current = status["current"].as_u64().unwrap_or(0);
                let entry = per_vertex.entry(vertex).or_default();
                *entry = (*entry).max(current);
            }
        }
    }
    per_vertex.values().sum()
}

#[test]
fn a_context_folder_shared_by_two_targets_is_sent_once() {
    let dir = util::tempdir();
    let busybox = &testenv().busybox;
    // Random bytes, so nothing compresses, and a folder no other test has
    // uploaded, so the daemon has no earlier copy.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("ctx/big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("ctx/token"), unique()).unwrap();
    write_files(
        dir.path(),
        &[
            ("ctx/a.Dockerfile", &format!("FROM {busybox}\nCOPY big.bin token /a/\nRUN wc -c /a/big.bin\n")),
            ("ctx/b.Dockerfile", &format!("FROM {busybox}\nCOPY big.bin token /b/\nRUN md5sum /b/big.bin\n")),
            (
                "docker-bake.hcl",
                "group \"default\" {\n  targets = [\"a\", \"b\"]\n}\n\
                 target \"a\" {\n  context = \"ctx\"\n  dockerfile = \"a.Dockerfile\"\n}\n\
                 target \"b\" {\n  context = \"ctx\"\n  dockerfile = \"b.Dockerfile\"\n}\n",
            ),
        ],
    );
    let output = util::fbuild()
        .current_dir(dir.path())
        .args(["bake", "-f", "docker-bake.hcl", "--progress", "rawjson"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let sent = context_bytes_sent(&stderr);
    assert!(sent >= big.len() as u64, "the context was not sent at all? {sent} bytes\n{stderr}");
    assert!(
        sent < big.len() as u64 * 3 / 2,
        "the context went more than once: {sent} bytes for a {} byte file",
        big.len()
    );
}

/// The example project's own compose file: both services pushed in one
/// run, the second run fully cached, and APP_VERSION taken from its `.env`.
#[test]
fn the_example_projects_compose_file_builds_with_one_bake() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-service");
    let repo = format!("example-{}", unique());
    let bake = |args: &[&str]| {
        let output = util::fbuild()
            .current_dir(&example)
            .env("REGISTRY", &testenv().registry)
            .env("REPO", &repo)
            .env("BASE", &testenv().busybox)
            .env_remove("APP_VERSION")
            .arg("bake")
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        stderr
    };
    let first = bake(&["--push", "--progress", "rawjson"]);
    for name in [repo.clone(), format!("{repo}-deps")] {
        assert!(registry_manifest(&name, "latest").is_some(), "{name} was not pushed\n{first}");
    }
    let second = bake(&["--push", "--progress", "rawjson"]);
    let runs = steps(&second, "RUN ");
    assert!(!runs.is_empty() && runs.iter().all(|(_, cached)| *cached), "not all cached: {runs:?}\n{second}");
    let out = util::tempdir();
    // Writing outside the project needs a grant, as in buildx.
    let dest = out.path().display().to_string();
    bake(&["app", "--allow", &format!("fs.write={dest}"), "--set", &format!("app.output=type=local,dest={dest}")]);
    let info = std::fs::read_to_string(out.path().join("app/BUILD-INFO")).unwrap();
    assert!(info.contains("version=1.0.0"), "APP_VERSION from .env: {info}");
}

#[test]
fn functions_print_matches_buildx() {
    // tests/bake/functions: every function of buildx's HCL library, several
    // cases each; expected.json is `buildx bake --print` of the same file
    // (scripts/bake_reference.sh tests/bake/functions), HOME as given here.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bake/functions");
    let assert = util::fbuild()
        .current_dir(&fixture)
        .env("HOME", "/fbuild-home")
        .env_remove("NAME")
        .env_remove("EMPTY")
        .env_remove("NUMS")
        .env_remove("OBJ")
        .env_remove("KEY")
        .args(["bake", "--print"])
        .assert()
        .success();
    let printed: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap()).unwrap();
    let (printed_targets, expected_targets) = (&printed["target"], &expected["target"]);
    // One assertion per attribute, so a failure names the function's case.
    for (name, target) in expected_targets.as_object().unwrap() {
        for (key, value) in target.as_object().unwrap() {
            if let (Some(want), Some(got)) = (value.as_object(), printed_targets[name][key].as_object()) {
                for (case, want) in want {
                    assert_eq!(got.get(case), Some(want), "target {name}: {key}.{case}");
                }
            }
            assert_eq!(&printed_targets[name][key], value, "target {name}: {key}");
        }
    }
    assert_eq!(printed_targets, expected_targets);
    // buildx lists a group's members sorted; which order fbuild prints is
    // the --print ordering work's, so members are compared as sets here.
    let members = |v: &serde_json::Value| {
        let mut names: Vec<String> = v["group"]["default"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(members(&printed), members(&expected));
}

#[test]
fn function_errors_name_the_function_and_line() {
    let dir = util::tempdir();
    write_files(
        dir.path(),
        &[
            (
                "undefined.hcl",
                "target \"a\" {\n  tags = [\"x\"]\n}\n\ntarget \"b\" {\n  args = {\n    X = nosuchfn(\"a\")\n  }\n}\n",
            ),
            ("arity.hcl", "target \"a\" {\n  tags = [md5()]\n}\n"),
            ("type.hcl", "target \"a\" {\n  tags = [upper([\"list\"])]\n}\n"),
            ("try.hcl", "target \"a\" {\n  tags = [try(nope1, nope2)]\n}\n"),
        ],
    );
    let cases: &[(&str, &[&str])] = &[
        ("undefined.hcl", &["undefined.hcl:7", "nosuchfn"]),
        ("arity.hcl", &["arity.hcl:2", "md5", "expected 1 positional arguments, got 0"]),
        ("type.hcl", &["type.hcl:2", "upper", "string is required"]),
        ("try.hcl", &["try.hcl:2", "try", "no expression succeeded", "nope1", "nope2"]),
    ];
    for (file, wanted) in cases {
        let assert =
            util::fbuild().current_dir(dir.path()).args(["bake", "-f", file, "--print"]).assert().failure().code(1);
        let stderr = text(&assert.get_output().stderr);
        for want in *wanted {
            assert!(stderr.contains(want), "{file}: expected {want:?} in\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Issue 20: a 1000×1000×1000 matrix took buildx-like memory (21 GB)
/// before anything was printed. It is refused at the matrix's line, from
/// its size alone, before one combination is made.
#[test]
fn a_matrix_past_the_bound_is_refused_with_its_size() {
    let dir = util::tempdir();
    let list = |p: &str| (0..1000).map(|i| format!("\"{p}{i}\"")).collect::<Vec<_>>().join(", ");
    let file = format!(
        "target \"small\" {{}}\n\ntarget \"big\" {{\n  name = \"big-${{x}}-${{y}}-${{z}}\"\n  matrix = {{\n    x = [{}]\n    y = [{}]\n    z = [{}]\n  }}\n}}\n",
        list("x"),
        list("y"),
        list("z")
    );
    write_files(dir.path(), &[("docker-bake.hcl", &file)]);
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "--print", "big"]).assert().failure().code(1);
    let stderr = text(&assert.get_output().stderr);
    assert!(
        stderr.contains(
            "docker-bake.hcl:5: target \"big\": matrix of 1000×1000×1000 expands to 1000000000 targets; the limit is 100000"
        ),
        "{stderr}"
    );
    assert!(assert.get_output().stdout.is_empty());
}

/// Issue 20: `--print` of a 200×200 matrix took 40 s (the time grew with
/// the square of the targets). All 40,000 targets print, in buildx's
/// order, each with its own values.
#[test]
fn a_200_by_200_matrix_prints_every_target() {
    let dir = util::tempdir();
    let list = |p: &str| (0..200).map(|i| format!("\"{p}{i}\"")).collect::<Vec<_>>().join(", ");
    let file = format!(
        "target \"m\" {{\n  name = \"m-${{a}}-${{b}}\"\n  matrix = {{\n    a = [{}]\n    b = [{}]\n  }}\n  args = {{ A = a, B = b }}\n  tags = [\"r/${{a}}:${{b}}\"]\n}}\n",
        list("a"),
        list("b")
    );
    write_files(dir.path(), &[("docker-bake.hcl", &file)]);
    let assert = util::fbuild().current_dir(dir.path()).args(["bake", "--print", "m"]).assert().success();
    let printed: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).expect("JSON");
    let targets = printed["target"].as_object().expect("targets");
    assert_eq!(targets.len(), 40_000);
    let members: Vec<&str> =
        printed["group"]["m"]["targets"].as_array().expect("group m").iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(members.len(), 40_000);
    assert_eq!(members[..3], ["m-a0-b0", "m-a0-b1", "m-a0-b2"]);
    assert_eq!(members[39_999], "m-a199-b199");
    for (a, b) in [(0, 0), (17, 123), (199, 199)] {
        let target = &targets[&format!("m-a{a}-b{b}")];
        assert_eq!(target["args"], serde_json::json!({"A": format!("a{a}"), "B": format!("b{b}")}));
        assert_eq!(target["tags"], serde_json::json!([format!("r/a{a}:b{b}")]));
    }
}
