//! `docs/buildx-parity.md`, generated from a run: the flags come from the
//! real buildx's help (and its hidden flags from buildx accepting them),
//! whether fbuild takes each from fbuild's own parser, and the "compared"
//! column from building the same project with both on the test daemon,
//! fbuild first: an image digest equal to buildx's means fbuild sent the
//! very graph buildx sent (a different one would run its steps again and
//! give other layers). Only the notes are written by hand, in
//! `tests/parity/notes.md`. The page must equal what the run gives;
//! `FBUILD_BLESS=1 cargo test --test tests parity` rewrites it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{self, testenv, text, unique, write_files};

/// A flag of a buildx command, as its help lists it.
#[derive(Debug, Clone)]
struct Flag {
    long: String,
    short: Option<char>,
    /// Whether it takes a value (the help names its type).
    takes_value: bool,
    hidden: bool,
}

/// buildx's hidden flags of `build` (commands/build.go marks them so):
/// `(name, takes a value)`. The test checks that buildx accepts each.
const HIDDEN_BUILD_FLAGS: &[(&str, bool)] = &[
    ("print", true),
    ("memory", true),
    ("memory-swap", true),
    ("cpu-shares", true),
    ("cpu-period", true),
    ("cpu-quota", true),
    ("cpuset-cpus", true),
    ("cpuset-mems", true),
    ("compress", false),
    ("isolation", true),
    ("security-opt", true),
    ("squash", false),
    ("rm", false),
    ("force-rm", false),
];

/// A value each flag parses, for asking a parser whether it knows the flag.
fn example_value(flag: &str) -> &'static str {
    match flag {
        "add-host" => "host:10.0.0.1",
        "allow" => "network.host",
        "annotation" | "label" => "k=v",
        "attest" => "type=provenance",
        "build-arg" => "A=1",
        "build-context" => "extra=.",
        "cache-from" => "type=local,src=cache",
        "cache-to" => "type=local,dest=cache",
        "call" => "check",
        "print" => "outline",
        "file" => "Dockerfile",
        "network" => "default",
        "output" => "type=local,dest=out",
        "platform" => "linux/amd64",
        "progress" => "plain",
        "provenance" | "sbom" => "false",
        "resource" => "memory=1g",
        "secret" => "id=s,src=secret",
        "shm-size" => "64m",
        "ssh" => "default",
        "tag" => "app:test",
        "ulimit" => "nofile=1024:1024",
        "memory" | "memory-swap" => "1g",
        "cpu-shares" => "2",
        "cpu-period" => "100000",
        "cpu-quota" => "50000",
        "cpuset-cpus" | "cpuset-mems" => "0",
        "isolation" => "default",
        "set" => "app.tags=app:test",
        "var" => "A=1",
        "jobs" => "fail-fast",
        "list" => "targets",
        _ => "x",
    }
}

/// The flags buildx's help lists for `command` (`build` or `bake`), both
/// its own and the global ones, in the help's order.
fn buildx_flags(command: &str) -> Vec<Flag> {
    let output = util::buildx().args([command, "--help"]).output().unwrap();
    assert!(output.status.success(), "buildx {command} --help: {}", text(&output.stderr));
    let mut flags = Vec::new();
    for line in text(&output.stdout).lines() {
        let line = line.trim_start();
        let (short, rest) = match line.strip_prefix('-').and_then(|l| l.split_once(", --")) {
            Some((short, rest)) if short.len() == 1 => (short.chars().next(), rest),
            _ => match line.strip_prefix("--") {
                Some(rest) => (None, rest),
                None => continue,
            },
        };
        let mut words = rest.split_whitespace();
        let long = words.next().unwrap_or_default().to_string();
        if long == "help" {
            continue;
        }
        // pflag names the value's type right after the flag; a boolean has none.
        let kind = words.next().unwrap_or_default();
        let takes_value = matches!(kind, "string" | "stringArray" | "strings" | "bytes" | "ulimit" | "int");
        flags.push(Flag { long, short, takes_value, hidden: false });
    }
    assert!(flags.len() > 10, "buildx {command} --help listed {} flags", flags.len());
    flags
}

/// Whether `program command FLAG [VALUE] --help` parses: the parser knows
/// the flag (an unknown one is an error before the help is printed).
fn accepts(mut cmd: assert_cmd::Command, command: &str, flag: &Flag) -> bool {
    cmd.arg(command).arg(format!("--{}", flag.long));
    if flag.takes_value {
        cmd.arg(example_value(&flag.long));
    }
    cmd.arg("--help").output().unwrap().status.success()
}

/// The hand-written parts of the page: the introduction, one note per
/// row (`## FLAG` sections, `bake FLAG` for bake's), and the end.
struct Notes {
    intro: String,
    by_flag: BTreeMap<String, Note>,
    after: String,
}

#[derive(Default)]
struct Note {
    /// `partly` or `no`, where the parser's answer alone would mislead.
    status: Option<String>,
    text: String,
}

fn notes() -> Notes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/notes.md");
    let source = std::fs::read_to_string(&path).unwrap();
    let source = source.split_once("-->").map(|(_, rest)| rest).unwrap_or(&source);
    let mut sections = source.split("\n## ");
    let intro = sections.next().unwrap().trim().to_string();
    let mut by_flag = BTreeMap::new();
    let mut after = String::new();
    for section in sections {
        let (name, body) = section.split_once('\n').unwrap_or((section, ""));
        if name == "after" {
            after = body.trim().to_string();
            continue;
        }
        let mut note = Note::default();
        let mut lines = Vec::new();
        for line in body.trim().lines() {
            match line.strip_prefix("status: ") {
                Some(status) => note.status = Some(status.to_string()),
                None => lines.push(line),
            }
        }
        note.text = lines.join(" ").trim().to_string();
        by_flag.insert(name.trim().to_string(), note);
    }
    Notes { intro, by_flag, after }
}

/// How fbuild's result was compared with buildx's for a flag.
#[derive(Debug, Clone, Copy)]
enum Compare {
    /// Pushed with `-t … --push`: the same manifest digest.
    Image,
    /// The same manifest digest for the image, and both push an index that
    /// carries an attestation manifest.
    Attested,
    /// `-o type=local`: the same files with the same contents.
    Files,
    /// The same standard output and exit code.
    Output,
    /// The files written by the flag hold the same image id.
    IdFile,
}

impl Compare {
    fn describe(self) -> &'static str {
        match self {
            Compare::Image => "same image digest",
            Compare::Attested => "same image digest; both push the same kind of attestation",
            Compare::Files => "same files",
            Compare::Output => "same output and exit code",
            Compare::IdFile => "same image id written",
        }
    }
}

/// One behaviour compared: the flag it is listed under, the arguments
/// (after `fbuild solve .` / `buildx build .`, where `{out}` is a fresh
/// folder and `{image}` the image name), and how results are compared.
struct Case {
    flag: &'static str,
    args: &'static [&'static str],
    compare: Compare,
}

const CASES: &[Case] = &[
    Case { flag: "tag", args: &["-t", "{image}", "--push"], compare: Compare::Image },
    Case { flag: "push", args: &["-t", "{image}", "--push"], compare: Compare::Image },
    Case { flag: "build-arg", args: &["--build-arg", "A=one", "-t", "{image}", "--push"], compare: Compare::Image },
    Case { flag: "label", args: &["--label", "org.example.k=v", "-t", "{image}", "--push"], compare: Compare::Image },
    Case { flag: "target", args: &["--target", "base", "-t", "{image}", "--push"], compare: Compare::Image },
    Case { flag: "file", args: &["-f", "Dockerfile.alt", "-t", "{image}", "--push"], compare: Compare::Image },
    Case {
        flag: "build-context",
        args: &["-f", "Dockerfile.ctx", "--build-context", "extra=extra", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case { flag: "platform", args: &["--platform", "linux/amd64", "-t", "{image}", "--push"], compare: Compare::Image },
    Case {
        flag: "annotation",
        args: &["--annotation", "org.example.note=hi", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "secret",
        args: &["-f", "Dockerfile.secret", "--secret", "id=s,src=secret.txt", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "ulimit",
        args: &["-f", "Dockerfile.run", "--ulimit", "nofile=1024:2048", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "shm-size",
        args: &["-f", "Dockerfile.run", "--shm-size", "128m", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "add-host",
        args: &["-f", "Dockerfile.run", "--add-host", "myhost:10.0.0.7", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "network",
        args: &["-f", "Dockerfile.run", "--network", "none", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case {
        flag: "cgroup-parent",
        args: &["-f", "Dockerfile.run", "--cgroup-parent", "fbuild-parity", "-t", "{image}", "--push"],
        compare: Compare::Image,
    },
    Case { flag: "pull", args: &["--pull", "-t", "{image}", "--push"], compare: Compare::Image },
    Case {
        flag: "provenance",
        args: &["--provenance", "mode=min", "-t", "{image}", "--push"],
        compare: Compare::Attested,
    },
    Case {
        flag: "attest",
        args: &["--attest", "type=provenance,mode=min", "-t", "{image}", "--push"],
        compare: Compare::Attested,
    },
    Case {
        flag: "sbom",
        args: &["--sbom", "generator={scanner}", "-t", "{image}", "--push"],
        compare: Compare::Attested,
    },
    Case { flag: "output", args: &["-o", "type=local,dest={out}"], compare: Compare::Files },
    Case { flag: "iidfile", args: &["-t", "{image}", "--push", "--iidfile", "{out}"], compare: Compare::IdFile },
    Case { flag: "quiet", args: &["-q", "-t", "{image}", "--push"], compare: Compare::Output },
    Case { flag: "call", args: &["--call", "outline"], compare: Compare::Output },
    Case { flag: "call", args: &["--call", "targets"], compare: Compare::Output },
    Case { flag: "check", args: &["-f", "Dockerfile.lint", "--check"], compare: Compare::Output },
];

/// The project every case builds.
fn project(dir: &Path) {
    let busybox = &testenv().busybox;
    write_files(
        dir,
        &[
            (
                "Dockerfile",
                &format!(
                    "# A project for comparing fbuild with buildx.\n\
                     FROM {busybox} AS base\n\
                     # A build argument.\n\
                     ARG A=unset\n\
                     RUN echo \"a=$A\" > /a\n\
                     \n\
                     FROM base AS final\n\
                     COPY f /f\n"
                ),
            ),
            ("Dockerfile.alt", &format!("FROM {busybox}\nCOPY f /alt\n")),
            ("Dockerfile.ctx", &format!("FROM {busybox}\nCOPY --from=extra e /e\n")),
            ("Dockerfile.secret", &format!("FROM {busybox}\nRUN --mount=type=secret,id=s cp /run/secrets/s /s\n")),
            (
                "Dockerfile.run",
                &format!(
                    "FROM {busybox}\nRUN ulimit -n > /ulimit && df -k /dev/shm | tail -n 1 | awk '{{print $2}}' > /shm \
                     && (grep myhost /etc/hosts || true) > /hosts\n"
                ),
            ),
            ("Dockerfile.lint", &format!("from {busybox} as base\nCOPY f /f\n")),
            ("f", &unique()),
            ("extra/e", &unique()),
            ("secret.txt", "a secret for the parity test\n"),
        ],
    );
}

/// An SBOM generator of our own (Docker Hub's syft scanner is out of
/// reach): it writes one SPDX in-toto statement where BuildKit asks, as
/// BuildKit's generator protocol (`frontend/attestations/sbom`) wants.
fn push_scanner(repo: &str) {
    let dir = util::tempdir();
    let statement = r#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","predicate":{"spdxVersion":"SPDX-2.3","name":"fbuild-parity"}}"#;
    let script = format!("printf '%s' '{statement}' > \"$BUILDKIT_SCAN_DESTINATION/sbom.spdx.json\"\n");
    let dockerfile = format!("FROM {}\nCOPY scan.sh /scan.sh\nCMD [\"/bin/sh\", \"/scan.sh\"]\n", testenv().busybox);
    write_files(dir.path(), &[("Dockerfile", &dockerfile), ("scan.sh", &script)]);
    let image = format!("{}/{repo}:scanner", testenv().registry);
    let output = util::fbuild()
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
        .arg("solve")
        .arg(dir.path())
        .args(["-t", &image, "--push"])
        .output()
        .unwrap();
    assert!(output.status.success(), "the scanner image: {}", text(&output.stderr));
}

/// What one side produced for a case.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs one case with fbuild or buildx in `dir`; `{image}` is
/// `REGISTRY/repo:TAG`, `{out}` a folder or file in `out`.
fn run_case(dir: &Path, case: &Case, fbuild: bool, repo: &str, tag: &str, out: &Path) -> Run {
    let registry = &testenv().registry;
    let mut cmd = if fbuild { util::fbuild() } else { util::buildx() };
    cmd.current_dir(dir).env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
    cmd.arg(if fbuild { "solve" } else { "build" }).arg(".");
    for arg in case.args {
        let arg = arg
            .replace("{image}", &format!("{registry}/{repo}:{tag}"))
            .replace("{out}", &out.to_string_lossy())
            .replace("{scanner}", &format!("{registry}/{repo}:scanner"));
        cmd.arg(arg);
    }
    let output = cmd.output().unwrap();
    Run { status: output.status.code(), stdout: text(&output.stdout), stderr: text(&output.stderr) }
}

/// Every file under `dir` with its contents, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                found.insert(rel, std::fs::read(&path).unwrap());
            } else {
                found.insert(
                    rel,
                    std::fs::read_link(&path)
                        .map(|l| l.to_string_lossy().into_owned().into_bytes())
                        .unwrap_or_default(),
                );
            }
        }
    }
    found
}

/// Runs `case` with fbuild, then buildx, and checks they agree.
fn compare(dir: &Path, index: usize, case: &Case, repo: &str) {
    let scratch = util::tempdir();
    let (fb_out, bx_out) = (scratch.path().join("fb"), scratch.path().join("bx"));
    let (fb_tag, bx_tag) = (format!("case{index}-fb"), format!("case{index}-bx"));
    let fbuild = run_case(dir, case, true, repo, &fb_tag, &fb_out);
    let buildx = run_case(dir, case, false, repo, &bx_tag, &bx_out);
    let context = format!(
        "--{} {:?}\nfbuild ({:?}):\n{}\n{}\nbuildx ({:?}):\n{}\n{}",
        case.flag, case.args, fbuild.status, fbuild.stdout, fbuild.stderr, buildx.status, buildx.stdout, buildx.stderr
    );
    match case.compare {
        Compare::Output => {
            assert_eq!(fbuild.status, buildx.status, "{context}");
            assert_eq!(fbuild.stdout, buildx.stdout, "{context}");
            return;
        }
        _ => assert!(fbuild.status == Some(0) && buildx.status == Some(0), "{context}"),
    }
    match case.compare {
        Compare::Image => {
            assert_eq!(util::registry_digest(repo, &fb_tag), util::registry_digest(repo, &bx_tag), "{context}")
        }
        Compare::Attested => {
            let listed = |tag: &str| {
                let index = util::registry_manifest(repo, tag).unwrap();
                let listed = index["manifests"].as_array().cloned().unwrap_or_default();
                let kinds: Vec<String> = listed
                    .iter()
                    .map(|m| m["annotations"]["vnd.docker.reference.type"].as_str().unwrap_or("image").to_string())
                    .collect();
                assert_eq!(kinds, ["image", "attestation-manifest"], "{tag}: {index}\n{context}");
                // What the attestations are: their in-toto predicate types.
                let attestation = util::registry_manifest(repo, listed[1]["digest"].as_str().unwrap()).unwrap();
                let mut predicates: Vec<String> = attestation["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["annotations"]["in-toto.io/predicate-type"].as_str().unwrap_or("").to_string())
                    .collect();
                predicates.sort();
                (listed[0]["digest"].as_str().unwrap().to_string(), predicates)
            };
            let (fbuild, buildx) = (listed(&fb_tag), listed(&bx_tag));
            assert_eq!(fbuild, buildx, "{context}");
            let expected =
                if case.flag == "sbom" { "https://spdx.dev/Document" } else { "https://slsa.dev/provenance/v1" };
            assert_eq!(fbuild.1, [expected], "{context}");
        }
        Compare::Files => assert_eq!(files(&fb_out), files(&bx_out), "{context}"),
        Compare::IdFile => {
            let (fb, bx) = (std::fs::read_to_string(&fb_out).unwrap(), std::fs::read_to_string(&bx_out).unwrap());
            assert!(fb.starts_with("sha256:"), "{fb}\n{context}");
            assert_eq!(fb, bx, "{context}");
        }
        Compare::Output => unreachable!(),
    }
}

/// A table row's first cell: `` `-f`, `--file` ``.
fn flag_cell(flag: &Flag) -> String {
    let hidden = if flag.hidden { " (hidden)" } else { "" };
    match flag.short {
        Some(short) => format!("`-{short}`, `--{}`{hidden}", flag.long),
        None => format!("`--{}`{hidden}", flag.long),
    }
}

fn status(takes: bool, note: Option<&Note>, row: &str) -> String {
    match note.and_then(|n| n.status.clone()) {
        Some(status) => {
            assert!(status == "partly" || status == "no", "{row}: notes may say partly or no, not {status:?}");
            assert!(takes || status == "no" || status == "partly", "{row}");
            status
        }
        None => (if takes { "yes" } else { "no" }).to_string(),
    }
}

fn render(build_rows: &[(Flag, bool, Vec<Compare>)], bake_rows: &[(Flag, bool)], notes: &Notes) -> String {
    let mut page = String::new();
    page.push_str("<!-- Generated by tests/parity.rs from a run of buildx v0.38.2 and fbuild on the test daemon;\n");
    page.push_str(
        "     notes in tests/parity/notes.md. Regenerate: FBUILD_BLESS=1 cargo test --test tests parity -->\n",
    );
    page.push_str("# `docker buildx build` flags in `fbuild solve`\n\n");
    page.push_str(&notes.intro);
    page.push_str("\n\n| buildx flag | fbuild | compared with buildx | notes |\n|---|---|---|---|\n");
    let note_text = |key: &str| notes.by_flag.get(key).map(|n| n.text.clone()).unwrap_or_default();
    page.push_str(&format!("| `PATH` \\| `URL` \\| `-` | yes | | {} |\n", note_text("PATH")));
    for (flag, takes, compared) in build_rows {
        let key = format!("--{}", flag.long);
        let status = status(*takes, notes.by_flag.get(&key), &key);
        let mut compared: Vec<&str> = compared.iter().map(|c| c.describe()).collect();
        compared.dedup();
        page.push_str(&format!("| {} | {status} | {} | {} |\n", flag_cell(flag), compared.join("; "), note_text(&key)));
    }
    page.push('\n');
    page.push_str(&notes.after);
    page.push_str(
        "\n\n## `docker buildx bake` flags in `fbuild bake`\n\n| buildx bake flag | fbuild | notes |\n|---|---|---|\n",
    );
    for (flag, takes) in bake_rows {
        let key = format!("bake --{}", flag.long);
        let status = status(*takes, notes.by_flag.get(&key), &key);
        page.push_str(&format!("| {} | {status} | {} |\n", flag_cell(flag), note_text(&key)));
    }
    page
}

#[test]
fn buildx_parity_page_is_what_a_run_gives() {
    let notes = notes();
    // The flags, and which of them fbuild takes.
    let mut build_flags = buildx_flags("build");
    for (name, takes_value) in HIDDEN_BUILD_FLAGS {
        let flag = Flag { long: name.to_string(), short: None, takes_value: *takes_value, hidden: true };
        assert!(accepts(util::buildx(), "build", &flag), "buildx no longer has the hidden flag --{name}");
        build_flags.push(flag);
    }
    for flag in &build_flags {
        let key = format!("--{}", flag.long);
        assert!(notes.by_flag.contains_key(&key), "tests/parity/notes.md has no `## {key}` section");
    }
    let bake_flags = buildx_flags("bake");

    // The behaviours, compared on the test daemon.
    let dir = util::tempdir();
    project(dir.path());
    let repo = format!("parity-{}", unique());
    push_scanner(&repo);
    let mut compared: BTreeMap<&str, Vec<Compare>> = BTreeMap::new();
    for (index, case) in CASES.iter().enumerate() {
        assert!(build_flags.iter().any(|f| f.long == case.flag), "a case for --{}, which buildx lacks", case.flag);
        compare(dir.path(), index, case, &repo);
        compared.entry(case.flag).or_default().push(case.compare);
    }

    let build_rows: Vec<(Flag, bool, Vec<Compare>)> = build_flags
        .into_iter()
        .map(|flag| {
            let takes = accepts(util::fbuild(), "solve", &flag);
            let compared = compared.remove(flag.long.as_str()).unwrap_or_default();
            assert!(compared.is_empty() || takes, "--{} was compared but fbuild does not take it", flag.long);
            (flag, takes, compared)
        })
        .collect();
    let bake_rows: Vec<(Flag, bool)> = bake_flags
        .into_iter()
        .map(|flag| {
            let takes = accepts(util::fbuild(), "bake", &flag);
            (flag, takes)
        })
        .collect();
    let page = render(&build_rows, &bake_rows, &notes);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/buildx-parity.md");
    if std::env::var_os("FBUILD_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "docs/buildx-parity.md is not what this run gives; regenerate it with \
         `FBUILD_BLESS=1 cargo test --test tests parity` and review the diff.\n--- generated ---\n{page}"
    );
}
