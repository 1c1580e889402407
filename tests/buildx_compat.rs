//! What a CI job expects from `docker buildx build`, end to end on the test
//! daemon and registry: `-q` and `--iidfile` (the digest the registry
//! serves), output paths checked before the build, buildx's default
//! provenance and the attestation flags, annotations, `--shm-size` and
//! `--ulimit` inside RUN, `--call`, stdin and git contexts, `--load`, and
//! the first-use messages (no output, secrets without an id, lint warnings,
//! failure context with `-q`, no colour in pipes).

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::util::{self, testenv};

/// `fbuild solve PROJECT ARGS…`: (exit code, stdout, stderr).
fn solve(project: &Path, args: &[&str]) -> (i32, String, String) {
    let output = util::fbuild().arg("solve").arg(project).args(args).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), util::text(&output.stdout), stderr)
}

/// `fbuild solve` that must succeed; (stdout, stderr).
fn solve_ok(project: &Path, args: &[&str]) -> (String, String) {
    let (code, stdout, stderr) = solve(project, args);
    assert_eq!(code, 0, "fbuild solve {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// `fbuild solve` that must fail with exit code 1; stderr.
fn solve_fails(project: &Path, args: &[&str]) -> String {
    let (code, _, stderr) = solve(project, args);
    assert_eq!(code, 1, "fbuild solve {args:?} should fail with exit code 1:\n{stderr}");
    stderr
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A project whose RUN step writes a marker: a build that ran shows it.
fn project_with_run() -> (tempfile::TempDir, String) {
    let project = util::tempdir();
    let marker = format!("ran-{}", util::unique());
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nARG FOO=default\nRUN echo {marker} $FOO > /marker\n", testenv().busybox))],
    );
    (project, marker)
}

/// A repository name of this test run in the test registry.
fn repo(name: &str) -> String {
    format!("h11/{name}-{}", util::unique())
}

/// The blob `digest` of `repo`, checked against its digest.
fn registry_blob(repo: &str, digest: &str) -> Vec<u8> {
    let (status, body) = util::registry_get(&format!("/v2/{repo}/blobs/{digest}"), "*/*");
    assert_eq!(status, 200, "blob {digest} of {repo}: {}", String::from_utf8_lossy(&body));
    assert_eq!(sha256(&body), digest, "blob {digest} does not match its digest");
    body
}

/// The in-toto statement of the attestation manifest in `index`.
fn provenance_statement(repo: &str, index: &serde_json::Value) -> Option<serde_json::Value> {
    let manifests = index["manifests"].as_array()?;
    let attestation =
        manifests.iter().find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")?;
    let digest = attestation["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&util::registry_manifest_bytes(repo, digest).expect("the attestation manifest"))
            .unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["in-toto.io/predicate-type"].as_str().is_some_and(|t| t.contains("provenance")))
        .expect("a provenance layer");
    Some(serde_json::from_slice(&registry_blob(repo, layer["digest"].as_str().unwrap())).unwrap())
}

#[test]
fn quiet_push_prints_the_digest_the_registry_serves() {
    let (project, _) = project_with_run();
    let repo = repo("quiet");
    let image = format!("{}/{repo}:1", testenv().registry);
    let iidfile = project.path().join("out/iid");
    // buildx writes the id file into an existing folder only.
    std::fs::create_dir(project.path().join("out")).unwrap();
    let (stdout, stderr) =
        solve_ok(project.path(), &["-q", "--push", "-t", &image, "--iidfile", iidfile.to_str().unwrap()]);
    assert_eq!(stderr, "", "-q prints nothing else");
    let printed = stdout.trim_end_matches('\n');
    assert_eq!(stdout, format!("{printed}\n"), "one line");
    let served = util::registry_manifest_bytes(&repo, "1").expect("the pushed tag");
    assert_eq!(printed, sha256(&served), "IMG=$(fbuild solve -q --push ...) is the digest the registry serves");
    assert_eq!(std::fs::read_to_string(&iidfile).unwrap(), printed, "--iidfile holds the same id, no newline");

    // buildx attaches a mode=min provenance by default: the pushed index
    // holds an attestation manifest whose predicate names the base image.
    let index: serde_json::Value = serde_json::from_slice(&served).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let statement = provenance_statement(&repo, &index).expect("a provenance attestation by default");
    let predicate = statement["predicate"].to_string();
    assert!(predicate.contains("busybox"), "the predicate names the build's sources: {predicate}");
    assert!(!predicate.contains("llbDefinition"), "mode=min records no build graph: {predicate}");
}

#[test]
fn provenance_false_pushes_a_single_manifest_and_prints_the_image_id() {
    let (project, _) = project_with_run();
    let repo = repo("noprov");
    let image = format!("{}/{repo}:1", testenv().registry);
    let (stdout, _) = solve_ok(project.path(), &["-q", "--push", "--provenance=false", "-t", &image]);
    let manifest = util::registry_manifest(&repo, "1").expect("the pushed tag");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json", "no index, no attestation");
    // Like buildx's getImageID: a single image's id is its config digest.
    assert_eq!(stdout.trim(), manifest["config"]["digest"].as_str().unwrap());

    // BUILDX_NO_DEFAULT_ATTESTATIONS turns the default off too.
    let repo2 = format!("{repo}-env");
    let image2 = format!("{}/{repo2}:1", testenv().registry);
    let output = util::fbuild()
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
        .args(["solve", "--push", "-t", &image2])
        .arg(project.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let manifest = util::registry_manifest(&repo2, "1").expect("the pushed tag");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
}

#[test]
fn provenance_max_records_the_build_args() {
    let (project, _) = project_with_run();
    let repo = repo("provmax");
    let image = format!("{}/{repo}:1", testenv().registry);
    let arg = format!("value-{}", util::unique());
    solve_ok(
        project.path(),
        &["--push", "--provenance", "mode=max", "--build-arg", &format!("FOO={arg}"), "-t", &image],
    );
    let index = util::registry_manifest(&repo, "1").expect("the pushed tag");
    let statement = provenance_statement(&repo, &index).expect("a provenance attestation");
    let args = &statement["predicate"]["buildDefinition"]["externalParameters"]["request"]["args"];
    assert_eq!(args["build-arg:FOO"], arg.as_str(), "{statement}");
    assert!(statement.to_string().contains("llbDefinition"), "mode=max records the build graph");
}

#[test]
fn attestation_flags_are_checked_and_sbom_asks_for_its_scanner() {
    let (project, marker) = project_with_run();
    for (flag, value, problem) in [
        ("--provenance", "mode=full", "mode=full is not min or max"),
        ("--attest", "type=vex", "unknown attestation type"),
        ("--attest", "mode=max", "attestation type not specified"),
    ] {
        let stderr = solve_fails(project.path(), &[flag, value]);
        assert!(stderr.contains(flag) && stderr.contains(problem), "{flag} {value}: {stderr}");
        assert!(!stderr.contains(&marker), "refused before the build: {stderr}");
    }
    // The SBOM generator is an image no registry here serves: the daemon's
    // attempt to resolve it is the proof the request went out, and the
    // build fails without pushing.
    let repo = repo("sbom");
    let image = format!("{}/{repo}:1", testenv().registry);
    let stderr = solve_fails(project.path(), &["--sbom=true", "--push", "-t", &image]);
    assert!(stderr.contains("buildkit-syft-scanner"), "{stderr}");
    let generator = format!("{}/h11/no-such-scanner:1", testenv().registry);
    let stderr =
        solve_fails(project.path(), &["--attest", &format!("type=sbom,generator={generator}"), "--push", "-t", &image]);
    assert!(stderr.contains("no-such-scanner"), "{stderr}");
    assert!(util::registry_manifest(&repo, "1").is_none(), "nothing was pushed");
}

#[test]
fn bad_output_files_fail_before_the_build() {
    let (project, marker) = project_with_run();
    let repo = repo("badpath");
    let image = format!("{}/{repo}:1", testenv().registry);
    let missing = project.path().join("missing-dir/m.json");
    let a_dir = project.path().to_str().unwrap().to_owned();
    let cases: Vec<(&str, String, &str)> = vec![
        ("--metadata-file", missing.display().to_string(), "does not exist"),
        ("--metadata-file", a_dir.clone(), "it is a folder"),
        ("--iidfile", missing.display().to_string(), "does not exist"),
        ("--iidfile", a_dir, "it is a folder"),
    ];
    for (flag, path, problem) in cases {
        let stderr = solve_fails(project.path(), &["--push", "-t", &image, flag, &path]);
        assert!(stderr.contains(flag) && stderr.contains(&path) && stderr.contains(problem), "{flag}: {stderr}");
        assert!(!stderr.contains("#1 ") && !stderr.contains(&marker), "no step ran: {stderr}");
        assert!(!stderr.contains(".tmp"), "no temp name: {stderr}");
    }
    // buildx refuses an image id file with a local or tar output.
    let out = util::tempdir();
    let iid = out.path().join("iid");
    let stderr = solve_fails(
        project.path(),
        &["-o", &format!("type=local,dest={}", out.path().join("o").display()), "--iidfile", iid.to_str().unwrap()],
    );
    assert!(stderr.contains("--iidfile") && stderr.contains("local and tar"), "{stderr}");
    assert!(util::registry_manifest(&repo, "1").is_none(), "nothing was pushed");
}

#[test]
fn file_outputs_create_their_folders_as_buildx() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", "x\n")]);
    let dest = project.path().join("new/deeper/out.tar");
    let metadata = project.path().join("meta.json");
    let (stdout, _) = solve_ok(
        project.path(),
        &["-q", "-o", &format!("type=tar,dest={}", dest.display()), "--metadata-file", metadata.to_str().unwrap()],
    );
    assert_eq!(stdout, "", "-q prints no id when there is no image");
    assert!(util::tar_entries(&std::fs::read(&dest).unwrap()).contains_key("x"));
    // A file where a folder should be is refused before the build, naming both.
    let blocked = project.path().join("x/out.tar");
    let stderr = solve_fails(project.path(), &["-o", &format!("type=tar,dest={}", blocked.display())]);
    assert!(stderr.contains(&blocked.display().to_string()) && stderr.contains("is not a folder"), "{stderr}");
}

#[test]
fn a_result_that_goes_nowhere_is_warned_about() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", "x\n")]);
    let (_, stderr) = solve_ok(project.path(), &["-t", "app:1"]);
    assert!(
        stderr.starts_with("WARNING: No output specified. Build result will only remain in the build cache."),
        "{stderr}"
    );
    let out = util::tempdir();
    let (_, stderr) = solve_ok(project.path(), &["-t", "app:1", "-o", out.path().join("o").to_str().unwrap()]);
    assert!(!stderr.contains("No output specified"), "{stderr}");
}

#[test]
fn a_secret_needs_an_id() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n"), ("token", "t\n")]);
    let src = project.path().join("token");
    let stderr = solve_fails(project.path(), &["--secret", &format!("src={}", src.display())]);
    assert!(stderr.contains("--secret") && stderr.contains("secret missing ID"), "{stderr}");
    assert!(!stderr.contains("#1 "), "refused before the build: {stderr}");
}

#[test]
fn quiet_failures_keep_the_dockerfile_lines() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo about-to-fail && exit 7\n", testenv().busybox))],
    );
    let (code, stdout, stderr) = solve(project.path(), &["-q", "--no-cache"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("about-to-fail"), "the step's log: {stderr}");
    assert!(stderr.contains("Dockerfile:2") && stderr.contains(">>> RUN echo about-to-fail"), "{stderr}");
    assert!(stderr.contains("exit code: 7"), "{stderr}");
    assert!(!stderr.contains("#1 "), "no progress in quiet mode: {stderr}");
}

/// Four lint warnings (FromAsCasing, ConsistentInstructionCasing x2,
/// JSONArgsRecommended) in a Dockerfile that builds.
const LINTED: &str = "FROM scratch as base\ncopy x /x\ncopy x /y\nCMD echo hi\n";

#[test]
fn lint_warnings_are_summarised_and_expanded_with_verbose() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", LINTED), ("x", "x\n")]);
    let (_, stderr) = solve_ok(project.path(), &[]);
    let summary: Vec<&str> = stderr.lines().skip_while(|l| !l.contains("warnings found")).collect();
    assert!(summary.first().is_some_and(|l| l.ends_with("warnings found (use -v to expand):")), "{stderr}");
    assert!(summary.iter().filter(|l| l.starts_with(" - ")).count() >= 3, "{stderr}");
    assert!(!stderr.contains("More info"), "no detail by default: {stderr}");
    let output = util::fbuild().args(["-v", "solve"]).arg(project.path()).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("More info: https://docs.docker.com/go/dockerfile/rule/"), "{stderr}");
    // -v turns on debug logs; into a pipe they carry no colour codes.
    assert!(stderr.contains("DEBUG"), "debug logs with -v: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI codes in a pipe: {stderr:?}");
}

#[test]
fn call_check_outline_and_targets_print_as_buildx() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", LINTED), ("x", "x\n")]);
    let dockerfile = project.path().join("Dockerfile");
    let (code, stdout, stderr) = solve(project.path(), &["--call", "check"]);
    assert_eq!(code, 1, "check exits 1 on warnings, as buildx: {stderr}");
    assert!(stdout.starts_with("Check complete, 4 warnings have been found!\n"), "{stdout}");
    assert!(stdout.contains("WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/"));
    assert!(stdout.contains(&format!("{}:1\n", dockerfile.display())), "the user's path: {stdout}");
    // --check is the same; ignorestatus keeps the exit code at 0.
    let (code, again, _) = solve(project.path(), &["--check"]);
    assert_eq!((code, again), (1, stdout.clone()));
    let (code, _, _) = solve(project.path(), &["--call", "check,ignorestatus=true"]);
    assert_eq!(code, 0);

    // A Dockerfile that cannot be parsed: the error with its lines, exit 1.
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nFORM x\n")]);
    let stderr = solve_fails(project.path(), &["--check"]);
    assert!(stderr.contains("unknown instruction: FORM"), "{stderr}");
    assert!(stderr.contains(&format!("{}:2\n", dockerfile.display())) && stderr.contains(">>> FORM x"), "{stderr}");
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n")]);
    let (stdout, _) = solve_ok(project.path(), &["--check"]);
    assert_eq!(stdout, "Check complete, no warnings found.\n");

    // Outline and targets: what buildx v0.38.2 printed for this Dockerfile
    // on the same daemon.
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            "FROM scratch AS base\nARG FOO=1\n# the build stage\nFROM base AS build\nARG BAR\nCOPY x /x\nFROM base\nCOPY --from=build /x /p\n",
        )],
    );
    let (stdout, _) = solve_ok(project.path(), &["--call", "outline"]);
    assert_eq!(stdout, "BUILD ARG   VALUE   DESCRIPTION\nFOO         1       \nBAR                 \n\n");
    let (stdout, _) = solve_ok(project.path(), &["--call", "targets"]);
    assert_eq!(stdout, "TARGET    DESCRIPTION\nbase      \nbuild     \n(default) \n");
    let (stdout, _) = solve_ok(project.path(), &["--call", "targets,format=json"]);
    let targets: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(targets["targets"][1]["name"], "build");
    assert!(solve_fails(project.path(), &["--call", "nope"]).contains("--call"));
}

#[test]
fn annotations_reach_the_pushed_manifest() {
    let (project, _) = project_with_run();
    let repo = repo("annot");
    let image = format!("{}/{repo}:1", testenv().registry);
    solve_ok(
        project.path(),
        &["--push", "-t", &image, "--annotation", "org.example.plain=p", "--annotation", "index:org.example.idx=i"],
    );
    let index = util::registry_manifest(&repo, "1").expect("the pushed tag");
    assert_eq!(index["annotations"]["org.example.idx"], "i", "{index}");
    let image_manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"].is_null())
        .expect("the image manifest");
    let manifest = util::registry_manifest(&repo, image_manifest["digest"].as_str().unwrap()).unwrap();
    assert_eq!(manifest["annotations"]["org.example.plain"], "p", "{manifest}");
    let stderr = solve_fails(project.path(), &["--annotation", "layer:k=v"]);
    assert!(stderr.contains("--annotation") && stderr.contains("unknown annotation type"), "{stderr}");
}

#[test]
fn shm_size_and_ulimit_reach_run_steps() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {}\nRUN df -k /dev/shm | tail -n 1 > /shm && ulimit -n > /nofile && ulimit -Hn > /nofile-hard\n",
                testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    solve_ok(
        project.path(),
        &["--no-cache", "--shm-size", "96m", "--ulimit", "nofile=1234:2345", "-o", out.path().to_str().unwrap()],
    );
    let shm = std::fs::read_to_string(out.path().join("shm")).unwrap();
    let blocks: u64 = shm.split_whitespace().nth(1).and_then(|b| b.parse().ok()).unwrap_or_else(|| panic!("{shm}"));
    assert_eq!(blocks, 96 * 1024, "96m of shared memory: {shm}");
    assert_eq!(std::fs::read_to_string(out.path().join("nofile")).unwrap().trim(), "1234");
    assert_eq!(std::fs::read_to_string(out.path().join("nofile-hard")).unwrap().trim(), "2345");
    for (flag, value) in [("--shm-size", "lots"), ("--ulimit", "nofile=2:1"), ("--ulimit", "bogus=1")] {
        let stderr = solve_fails(project.path(), &[flag, value]);
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[test]
fn a_git_context_is_fetched_by_the_daemon() {
    let (url, root) = util::git_daemon();
    let work = util::tempdir();
    let marker = format!("from git {}", util::unique());
    util::write_files(
        work.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("docker/other.Dockerfile", "FROM scratch\nCOPY hello.txt /other.txt\n"),
            ("hello.txt", &marker),
        ],
    );
    let git = |args: &[&str], dir: &Path| {
        let status = Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"], work.path());
    git(&["add", "."], work.path());
    git(&["commit", "-qm", "init"], work.path());
    let name = format!("h11-{}.git", util::unique());
    let bare = root.join(&name);
    git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()], work.path());
    let _cleanup = util::OnDrop(|| {
        let _ = std::fs::remove_dir_all(&bare);
    });
    let out = util::tempdir();
    let output = util::fbuild().args(["solve", &format!("{url}/{name}"), "-o"]).arg(out.path()).output().unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("hello.txt")).unwrap(), marker);
    // A relative --file is a path in the repository, as with buildx.
    let out = util::tempdir();
    let output = util::fbuild()
        .args(["solve", &format!("{url}/{name}"), "-f", "docker/other.Dockerfile", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("other.txt")).unwrap(), marker);
}

#[test]
fn a_context_tarball_or_a_dockerfile_on_stdin() {
    let project = util::tempdir();
    let marker = format!("from stdin {}", util::unique());
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"), ("hello.txt", &marker)]);
    let mut tarball = tar::Builder::new(Vec::new());
    tarball.append_dir_all(".", project.path()).unwrap();
    let tarball = tarball.into_inner().unwrap();

    let run = |stdin: &[u8], out: &Path| {
        util::fbuild().args(["solve", "-", "-o"]).arg(out).write_stdin(stdin.to_vec()).output().unwrap()
    };
    let out = util::tempdir();
    let output = run(&tarball, out.path());
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("hello.txt")).unwrap(), marker);

    // A Dockerfile on stdin builds with an empty context, as in buildx.
    let out = util::tempdir();
    let output = run(b"FROM scratch\nLABEL x=y\n", out.path());
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let output = run(b"FROM scratch\nCOPY hello.txt /\n", out.path());
    assert!(!output.status.success());
    assert!(util::text(&output.stderr).contains("hello.txt"), "the context is empty");
}

#[test]
fn load_hands_a_docker_archive_to_docker_load() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", "x\n")]);
    // No docker or podman on PATH: refused before the build.
    let empty = util::tempdir();
    let output = util::fbuild()
        .env("PATH", empty.path())
        .args(["solve", "--load", "-t", "app:1"])
        .arg(project.path())
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--load") && stderr.contains("docker") && stderr.contains("podman"), "{stderr}");
    assert!(!stderr.contains("#1 "), "{stderr}");

    // A `docker` without a daemon (as buildx, which asks the Docker API
    // first): refused before the build too.
    let bin = util::tempdir();
    std::fs::write(
        bin.path().join("docker"),
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(bin.path().join("docker")).status().unwrap();
    let output = util::fbuild()
        .env("PATH", bin.path())
        .args(["solve", "--load", "-t", "app:1"])
        .arg(project.path())
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Cannot connect to the Docker daemon") && stderr.contains("nothing was built"), "{stderr}");
    assert!(!stderr.contains("#1 "), "{stderr}");

    // A `docker` that keeps what `docker load -i FILE` was given.
    let kept = bin.path().join("loaded.tar");
    // PATH holds only this folder: the script names its tools by full path.
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = version ] && exit 0\n[ \"$1 $2\" = \"load -i\" ] || exit 3\n/bin/cp \"$3\" {}\n\
         echo Loaded image: app:1\n",
        kept.display()
    );
    std::fs::write(bin.path().join("docker"), script).unwrap();
    Command::new("chmod").arg("755").arg(bin.path().join("docker")).status().unwrap();
    let output = util::fbuild()
        .env("PATH", bin.path())
        .args(["solve", "--load", "--provenance=false", "-t", "app:1", "-q"])
        .arg(project.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let entries = util::tar_entries(&std::fs::read(&kept).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].1).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "app:1", "{manifest}");
    assert!(util::text(&output.stdout).starts_with("sha256:"), "-q prints the image id");
}

#[test]
fn ssh_key_files_are_served_by_an_agent_of_our_own() {
    // The key, made now; `ssh-add -l` inside the build must list it.
    let keys = util::tempdir();
    let key = keys.path().join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "fbuild-deploy-key", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(status.success());
    let fingerprint = util::text(&Command::new("ssh-keygen").arg("-lf").arg(&key).output().unwrap().stdout);

    // busybox has no ssh-add: the host's, with the libraries it loads.
    let project = util::tempdir();
    let root = project.path().join("sshroot");
    let ssh_add = std::path::PathBuf::from("/usr/bin/ssh-add");
    let ldd = util::text(&Command::new("ldd").arg(&ssh_add).output().unwrap().stdout);
    let libraries = ldd.split_whitespace().filter(|word| word.starts_with('/')).map(std::path::PathBuf::from);
    for file in std::iter::once(ssh_add.clone()).chain(libraries) {
        let dest = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
    }
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {}\nCOPY sshroot/ /\nRUN --mount=type=ssh,id=deploy /usr/bin/ssh-add -l > /keys 2>&1 || (cat /keys; exit 1)\n",
                testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    solve_ok(
        project.path(),
        &["--no-cache", "--ssh", &format!("deploy={}", key.display()), "-o", out.path().to_str().unwrap()],
    );
    let listed = std::fs::read_to_string(out.path().join("keys")).unwrap();
    assert_eq!(listed.trim(), fingerprint.trim(), "the agent lists the key file's key");

    // Not a key, not a socket: refused before the build, naming the file.
    let junk = keys.path().join("junk");
    std::fs::write(&junk, "not a key").unwrap();
    let stderr = solve_fails(project.path(), &["--ssh", &format!("deploy={}", junk.display())]);
    assert!(stderr.contains("--ssh") && stderr.contains(&junk.display().to_string()), "{stderr}");
    assert!(stderr.contains("not an OpenSSH private key"), "{stderr}");
}

#[test]
fn du_takes_buildx_filters_and_fits_the_width() {
    let types = |filter: &str| -> Vec<String> {
        let output = util::fbuild().args(["du", "--format", "json", "--filter", filter]).output().unwrap();
        assert!(output.status.success(), "du --filter {filter}: {}", util::text(&output.stderr));
        let records: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        records.as_array().unwrap().iter().map(|r| r["recordType"].as_str().unwrap().to_owned()).collect()
    };
    // buildx's spelling means ==, as the daemon's own does.
    let regular = types("type=regular");
    assert!(!regular.is_empty(), "the test daemon has built something");
    assert!(regular.iter().all(|t| t == "regular"), "{regular:?}");
    assert!(types("type==source.local").iter().all(|t| t == "source.local"));
    assert!(types("type!=regular").iter().all(|t| t != "regular"));

    // A typo is refused before connecting (no daemon at this address).
    let output =
        util::fbuild().args(["--addr", "unix:///nonexistent.sock", "du", "--filter", "typ=regular"]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid --filter \"typ=regular\": unknown key \"typ\""), "{stderr}");

    for columns in ["80", "100"] {
        let output = util::fbuild().env("COLUMNS", columns).arg("du").output().unwrap();
        assert!(output.status.success(), "{}", util::text(&output.stderr));
        let text = util::text(&output.stdout);
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= columns.parse().unwrap(), "COLUMNS={columns}, a line of {widest}:\n{text}");
        assert!(text.starts_with("ID ") && text.lines().next().unwrap().contains("DESCRIPTION"), "{text}");
    }
}

#[test]
fn cgroup_parent_reaches_run_steps() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN cat /proc/self/cgroup > /cgroup\n", testenv().busybox))],
    );
    let parent = format!("fbuild-test-{}", std::process::id());
    let out = util::tempdir();
    solve_ok(project.path(), &["--no-cache", "--cgroup-parent", &parent, "-o", out.path().to_str().unwrap()]);
    let cgroup = std::fs::read_to_string(out.path().join("cgroup")).unwrap();
    assert!(cgroup.contains(&parent), "the step runs under the parent cgroup: {cgroup}");
}

#[test]
fn resource_limits_reach_run_steps() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                // cgroup v2 files, else v1's (this machine has v1).
                "FROM {}\nRUN cd /sys/fs/cgroup && (cat memory.max || cat memory/memory.limit_in_bytes) > /memory \
                 && (cut -d' ' -f1 cpu.max || cat cpu/cpu.cfs_quota_us) > /cpu\n",
                testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    solve_ok(
        project.path(),
        &["--no-cache", "--resource", "memory=256m", "--cpu-quota", "50000", "-o", out.path().to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(out.path().join("memory")).unwrap().trim(), (256u64 << 20).to_string());
    assert_eq!(std::fs::read_to_string(out.path().join("cpu")).unwrap().trim(), "50000");
    let stderr = solve_fails(project.path(), &["--resource", "gpus=1"]);
    assert!(stderr.contains("--resource") && stderr.contains("unknown resource"), "{stderr}");
}

#[test]
fn load_into_podman() {
    // Debian's podman (scripts/testenv.sh installs it), with a storage of
    // this test's own (vfs: no kernel features needed) and nothing else on
    // PATH, so docker (a CLI without a daemon here) is not found first.
    let podman = which("podman").expect("podman is installed by scripts/testenv.sh up");
    let state = util::tempdir();
    let conf = state.path().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
            state.path().display()
        ),
    )
    .unwrap();
    let bin = util::tempdir();
    std::os::unix::fs::symlink(&podman, bin.path().join("podman")).unwrap();

    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &util::unique())]);
    let output = util::fbuild()
        .env("PATH", bin.path())
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .args(["solve", "-q", "--load", "-t", "localhost/h11-load:1"])
        .arg(project.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let id = util::text(&output.stdout).trim().to_owned();
    let images = Command::new(&podman)
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .args(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .output()
        .unwrap();
    let images = util::text(&images.stdout);
    assert!(images.contains("localhost/h11-load:1"), "podman has the image: {images}");
    assert!(images.contains(id.trim_start_matches("sha256:")), "-q printed podman's image id {id}: {images}");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// `-t` goes through the one reference grammar (distribution's
/// `reference.Parse`, what buildx checks tags with): buildx's verdict and
/// words for each, before anything is built.
#[test]
fn tags_are_checked_as_buildx_checks_them() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n")]);
    let long_path = format!("x/{}", "a".repeat(255));
    for (tag, refused) in [
        ("app:tág", Some("invalid reference format")),
        ("App:1", Some("repository name must be lowercase")),
        ("app:", Some("invalid reference format")),
        ("app@sha256:abc", Some("invalid reference format")),
        // A 64-hex name, and a host before a 255-character path: both fine for Parse.
        (&"a".repeat(64), None),
        (&long_path, None),
    ] {
        let buildx = util::buildx().args(["build", "-t", tag]).arg(project.path()).output().unwrap();
        let buildx_err = util::text(&buildx.stderr);
        let fbuild = util::fbuild().args(["solve", "-t", tag]).arg(project.path()).output().unwrap();
        let err = util::text(&fbuild.stderr);
        assert_eq!(fbuild.status.success(), buildx.status.success(), "{tag}: fbuild {err}\nbuildx {buildx_err}");
        if let Some(words) = refused {
            assert!(buildx_err.contains(&format!("invalid tag {tag:?}: {words}")), "{tag}: {buildx_err}");
            assert!(err.contains(&format!("invalid --tag {tag:?}: {words}")), "{tag}: {err}");
            assert!(!err.contains("#1 "), "nothing is built: {err}");
        }
    }
}
