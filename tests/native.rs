//! The native Dockerfile compiler from the CLI, on the test daemon: what it
//! prints without building (`--print-llb`), how it fails, what `auto` does
//! with a Dockerfile it cannot compile, and that a target builds only the
//! stages it needs. Image and cache equivalence with the daemon's frontend
//! over the corpus is `native_frontend.rs`.

use crate::util::*;

fn project(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempdir();
    write_files(
        dir.path(),
        &[("Dockerfile", dockerfile), ("requirements.txt", "flask==3.0\n"), ("app.py", "print('hi')\n")],
    );
    dir
}

const THREE_STAGES: &str = "ARG BASE\nFROM ${BASE} AS base\nWORKDIR /app\n\
    FROM base AS deps\nCOPY requirements.txt ./\nRUN cp requirements.txt /deps.txt\n\
    FROM base AS runner\nCOPY --from=deps /deps.txt /deps.txt\nCOPY app.py ./\nCMD [\"python3\", \"app.py\"]\n";

#[test]
fn print_llb_shows_the_graph_without_building() {
    let dir = project(THREE_STAGES);
    let base = format!("BASE={}", testenv().busybox);
    let print_llb =
        |flag: &str| fbuild().arg("solve").arg(dir.path()).args([flag, "--build-arg", &base]).output().unwrap();
    let out = print_llb("--print-llb");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A print-only run builds nothing: no warning about outputs, no summary.
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("No output specified") && !stderr.contains("Built in"), "{stderr}");
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--print-llb prints JSON");
    let ops = graph.as_array().expect("a list of ops");
    let names: Vec<&str> = ops.iter().filter_map(|op| op["name"].as_str()).collect();
    for expected in [
        "[internal] load build context",
        "[base 2/2] WORKDIR /app",
        "[deps 1/2] COPY requirements.txt ./",
        "[deps 2/2] RUN cp requirements.txt /deps.txt",
        "[runner 1/2] COPY --from=deps /deps.txt /deps.txt",
    ] {
        assert!(names.contains(&expected), "{expected:?} not in {names:?}");
    }
    // The base is pinned by digest, as the daemon's frontend pins it.
    let from = names.iter().find(|n| n.contains("FROM")).expect("a FROM op");
    assert!(from.contains("@sha256:"), "{from}");
    // Every input names an op of the graph.
    let digests: Vec<&str> = ops.iter().filter_map(|op| op["digest"].as_str()).collect();
    for op in ops {
        for input in op["inputs"].as_array().unwrap() {
            let digest = input.as_str().unwrap().rsplit_once(':').unwrap().0;
            assert!(digests.contains(&digest), "dangling input {digest}");
        }
    }
    assert!(!text(&out.stderr).contains("exporting"), "nothing is built or exported");

    let dot = print_llb("--print-llb=dot");
    assert!(dot.status.success(), "{}", text(&dot.stderr));
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph llb {") && dot.contains(" -> "), "{dot}");

    let bad = print_llb("--print-llb=yaml");
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("--print-llb=yaml: the format must be json or dot"), "{}", text(&bad.stderr));

    // The format only with `=`: the word after the flag is the context.
    let out =
        fbuild().current_dir(dir.path()).args(["solve", "--print-llb", ".", "--build-arg", &base]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON, the default format");
    assert_eq!(graph.as_array().map(Vec::len), Some(ops.len()), "the same graph");
}

/// Deep Dockerfiles compile and print without overflowing the stack (the
/// daemon's frontend takes them): 10,000 RUN lines in one stage, and 10,000
/// stages each built on the one before and copying from it.
#[test]
fn ten_thousand_steps_or_stages_print_their_graph() {
    let runs: String =
        std::iter::once("FROM scratch\n".to_owned()).chain((0..10_000).map(|i| format!("RUN true {i}\n"))).collect();
    let mut stages = String::from("FROM scratch AS s0\nCOPY app.py /a\n");
    for i in 1..10_000 {
        stages.push_str(&format!("FROM s{} AS s{i}\nCOPY --from=s{} /a /a{i}\n", i - 1, i - 1));
    }
    for (what, dockerfile, ops) in [("RUN lines", runs, 10_000), ("stages", stages, 10_001)] {
        let dir = project(&dockerfile);
        let out = fbuild().arg("solve").arg(dir.path()).arg("--print-llb").output().unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        let graph: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        // Every step, the context (for stages), and the terminal op.
        assert_eq!(graph.as_array().map(Vec::len), Some(ops + 1), "{what}");
    }
}

/// `ARG`, `ENV` and `LABEL` values that double themselves 40 times (a
/// terabyte) are refused at the line that passes 16 MiB, in little memory,
/// before anything reaches the daemon.
#[test]
fn self_doubling_values_are_refused_at_their_line() {
    for keyword in ["ARG", "ENV"] {
        let mut dockerfile = String::from("FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n");
        for i in 1..=40 {
            dockerfile.push_str(&format!("{keyword} A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        dockerfile.push_str("LABEL big=$A40\n");
        let dir = project(&dockerfile);
        // A bound on the address space: without the limit, the process
        // would grow until the kernel stopped it.
        let out = std::process::Command::new("bash")
            .args(["-c", "ulimit -v 4000000; exec \"$0\" solve \"$1\" --frontend native"])
            .arg(fbuild_binary())
            .arg(dir.path())
            .env("BUILDKIT_HOST", &testenv().addr)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{keyword}: {stderr}");
        assert!(
            stderr.contains("Dockerfile:23: failed to process \"${A20}${A20}\": the expanded text would be 33554432 bytes, over the limit of 16777216"),
            "{keyword}: {stderr}"
        );
    }
}

/// `fbuild solve DIR --frontend native --target deps` on busybox: its
/// plain progress, once the build succeeded.
fn native_deps_build(dir: &std::path::Path) -> String {
    let out = fbuild()
        .arg("solve")
        .arg(dir)
        .args(["--frontend", "native", "--target", "deps", "--progress", "plain"])
        .args(["--build-arg", &format!("BASE={}", testenv().busybox)])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_target_builds_only_the_stages_it_needs() {
    let dir = project(&format!("{THREE_STAGES}FROM base AS tests\nRUN exit 3\n"));
    let stderr = native_deps_build(dir.path());
    assert!(stderr.contains("[deps 2/2] RUN cp requirements.txt /deps.txt"), "{stderr}");
    assert!(!stderr.contains("[runner") && !stderr.contains("[tests") && !stderr.contains("exit 3"), "{stderr}");
}

#[test]
fn native_errors_name_the_file_and_line_and_exit_1() {
    let dir = project("FROM scratch AS first\nCOPY --from=later /a /b\nFROM scratch AS later\nFROM first\n");
    let out = fbuild().arg("solve").arg(dir.path()).args(["--frontend", "native"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "Dockerfile:2: cannot copy from stage \"later\", it needs to be defined before current stage \"first\""
        ),
        "{stderr}"
    );

    let dir = project("FROM scratch\nRUN --mount=type=cache,target=/x,sharing=bogus true\n");
    let out = fbuild().arg("solve").arg(dir.path()).args(["--frontend", "native"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Dockerfile:2: unsupported sharing value \"bogus\""), "{stderr}");
}

#[test]
fn auto_hands_what_it_cannot_compile_to_the_daemon_with_a_notice() {
    // A named context in place of a stage (whose own RUN would fail).
    let dir =
        project("ARG BASE\nFROM ${BASE} AS assets\nRUN false\nFROM scratch\nCOPY --from=assets /bin/busybox /bb\n");
    let dest = tempdir();
    let busybox = crate::util::testenv().busybox.clone();
    let named = format!("assets=docker-image://{busybox}");
    let base = format!("BASE={busybox}");
    // `native` refuses, naming what it cannot do.
    let out = fbuild()
        .arg("solve")
        .arg(dir.path())
        .args(["--frontend", "native", "--build-context", &named, "--build-arg", &base])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let refusal = format!(
        "Dockerfile:2: the native compiler does not support the named context assets (docker-image://{busybox}) in place of the stage assets yet"
    );
    assert!(stderr.contains(&refusal), "{stderr}");
    // `auto` builds it with the daemon's frontend, in the same build, and says why in one line.
    let out = fbuild()
        .arg("solve")
        .arg(dir.path())
        .args(["--frontend", "auto", "--provenance=false", "--build-context", &named, "--build-arg", &base, "-o"])
        .arg(format!("type=local,dest={}", dest.path().display()))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let notices: Vec<&str> = stderr.lines().filter(|l| l.starts_with("notice: ")).collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].ends_with(&format!("{refusal}; the daemon's Dockerfile frontend builds it instead")),
        "{stderr}"
    );
    assert!(dest.path().join("bb").is_file());
}

/// `fbuild solve DIR --frontend FRONTEND ARGS...` into a reproducible OCI
/// tarball (`SOURCE_DATE_EPOCH=0`, timestamps rewritten, no provenance):
/// the build's stderr and the digests `index.json` lists. Fails the test if
/// the build fails.
fn reproducible_build(dir: &std::path::Path, frontend: &str, args: &[&str]) -> (String, Vec<String>) {
    let out_dir = tempdir();
    let dest = out_dir.path().join("image.tar");
    let out = fbuild()
        .arg("solve")
        .arg(dir)
        .args(["--frontend", frontend, "--provenance=false", "--build-arg", "SOURCE_DATE_EPOCH=0"])
        .args(args)
        .arg("-o")
        .arg(format!("type=oci,dest={},rewrite-timestamp=true", dest.display()))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{frontend}: {stderr}");
    let digests = OciLayout::read(&dest).index().manifests().iter().map(|m| m.digest().to_string()).collect();
    (stderr, digests)
}

/// Several platforms in one build: one graph per platform, one index with
/// both, the same index the daemon's frontend makes.
#[test]
fn several_platforms_make_the_daemons_index() {
    let dir = project("FROM scratch\nARG TARGETARCH\nCOPY app.py /app-${TARGETARCH}.py\nENV ARCH=$TARGETARCH\n");
    let args = ["--platform", "linux/amd64,linux/arm64", "--progress", "plain"];
    let (stderr, native) = reproducible_build(dir.path(), "native", &args);
    assert!(!stderr.contains("notice:"), "built natively: {stderr}");
    assert!(stderr.contains("[linux/arm64 1/1] COPY app.py /app-arm64.py"), "{stderr}");
    let (_, daemon) = reproducible_build(dir.path(), "dockerfile.v0", &args);
    assert_eq!(native, daemon, "native and the daemon's frontend index the same images");
}

#[test]
fn the_example_projects_deps_target_builds_base_and_deps_only() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-service");
    let stderr = native_deps_build(&example);
    assert!(stderr.contains("[base 2/2] WORKDIR /app"), "{stderr}");
    assert!(stderr.contains("[deps 1/2] COPY requirements.txt ."), "{stderr}");
    assert!(stderr.contains("[deps 2/2] RUN --mount=type=cache,target=/root/.cache/pip"), "{stderr}");
    for other in ["[builder", "[runner"] {
        assert!(!stderr.contains(other), "{other} in a deps build:\n{stderr}");
    }
}

/// `--add-host`, `--ulimit`, `--shm-size` and `--network` reach RUN steps as
/// the daemon's frontend puts them there: the same image, and a native
/// build after the daemon's is fully cached.
#[test]
fn run_options_from_flags_match_the_daemons_frontend() {
    let env = testenv();
    let dir = project(&format!(
        "FROM {}\nRUN grep db /etc/hosts > /hosts; ulimit -n > /nofile; df -k /dev/shm | tail -1 | awk '{{print $2}}' > /shm; echo {} > /nonce\n",
        env.busybox,
        unique()
    ));
    let args = [
        "--add-host",
        "db=10.0.0.2",
        "--ulimit",
        "nofile=1024:2048",
        "--shm-size",
        "64m",
        "--network",
        "host",
        "--progress",
        "rawjson",
    ];
    let (_, daemon) = reproducible_build(dir.path(), "dockerfile.v0", &args);
    let (stderr, native) = reproducible_build(dir.path(), "native", &args);
    assert_eq!(rawjson_step_cached(&stderr, "RUN grep db"), Some(true), "{stderr}");
    assert_eq!(native[0], daemon[0]);
}

/// `# check=error=true` with a finding in a Dockerfile whose last stage has
/// no name: the native linter lints the stages the build needs, as the
/// daemon's frontend does while it converts, so both `native` and `auto`
/// fail it natively with the daemon's words (no hand-over, no notice), after
/// showing the finding as a warning.
#[test]
fn fatal_lint_findings_are_never_built_silently() {
    let dir = project("# check=error=true\nFROM scratch AS dup\nFROM scratch AS dup\nFROM scratch\nCOPY app.py /\n");
    for frontend in ["native", "auto"] {
        let out = fbuild()
            .arg("solve")
            .arg(dir.path())
            .args(["--frontend", frontend, "--provenance=false"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("lint violation found for rules: DuplicateStageName"), "{stderr}");
        assert!(stderr.contains("DuplicateStageName: Duplicate stage name \"dup\""), "{stderr}");
        assert!(!stderr.contains("notice:"), "{stderr}");
        assert!(!stderr.contains("COPY app.py"), "nothing is built: {stderr}");
    }
}

/// A folder named as a context builds natively (the corpus case
/// `named_context_local` compares its image with the daemon's); one the
/// Dockerfile never names changes nothing either.
#[test]
fn folder_contexts_build_natively() {
    let dir = project("ARG BASE\nFROM ${BASE}\nCOPY --from=assets /file.txt /copied.txt\n");
    let assets = tempdir();
    write_files(assets.path(), &[("file.txt", "asset\n")]);
    let context = format!("assets={}", assets.path().display());
    let busybox = format!("BASE={}", crate::util::testenv().busybox);
    let dest = tempdir();
    for dockerfile in [None, Some("ARG BASE\nFROM ${BASE}\nRUN true\n")] {
        if let Some(text) = dockerfile {
            std::fs::write(dir.path().join("Dockerfile"), text).unwrap();
        }
        let out = fbuild()
            .arg("solve")
            .arg(dir.path())
            .args(["--frontend", "native", "--provenance=false", "--build-context", &context, "--build-arg", &busybox])
            .arg("-o")
            .arg(format!("type=local,dest={}", dest.path().display()))
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("notice:"), "{stderr}");
        if dockerfile.is_none() {
            assert_eq!(std::fs::read_to_string(dest.path().join("copied.txt")).unwrap(), "asset\n");
        }
    }
}
