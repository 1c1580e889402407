//! `fbuild check`: each cache-practice rule finds its case in a fixture
//! (`tests/check/bad.Dockerfile`, with a large context and no
//! `.dockerignore`), the daemon frontend's own rules come along, and a
//! Dockerfile that follows the practices (`good.Dockerfile`) has nothing.

use std::path::Path;

use crate::util::{self, testenv, text, write_files};

fn project(fixture: &str, large: bool) -> tempfile::TempDir {
    let dir = util::tempdir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check").join(fixture);
    let dockerfile = std::fs::read_to_string(source).unwrap().replace("{busybox}", &testenv().busybox);
    write_files(dir.path(), &[("Dockerfile", &dockerfile), ("requirements.txt", "flask\n")]);
    if large {
        // 11 MiB of data files the context sends for nothing.
        std::fs::write(dir.path().join("data.bin"), vec![7u8; 11 << 20]).unwrap();
    } else {
        write_files(dir.path(), &[(".dockerignore", ".git\n")]);
    }
    dir
}

#[test]
fn each_rule_finds_its_case_and_the_frontends_rules_come_along() {
    let dir = project("bad.Dockerfile", true);
    let output = util::fbuild().arg("check").arg(dir.path()).args(["--format", "json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<(String, u64)> =
        findings.iter().map(|f| (f["rule"].as_str().unwrap().to_string(), f["line"].as_u64().unwrap())).collect();
    let expected: &[(&str, u64)] = &[
        ("LargeContextWithoutDockerignore", 0),
        ("EarlyArg", 2),
        ("AptUpdateAlone", 3),
        ("AptCacheMountNotLocked", 4),
        ("AptDockerClean", 4),
        ("CopyAllBeforeInstall", 6),
        ("InstallWithoutCacheMount", 6),
        ("CopyAllBeforeInstall", 7),
        ("PipNoCacheDirUnderCacheMount", 7),
        ("CopyAllBeforeInstall", 8),
        ("InstallWithoutCacheMount", 8),
        ("RemoteAddWithoutChecksum", 9),
        // The daemon frontend's rule, from the native linter.
        ("ConsistentInstructionCasing", 11),
    ];
    let expected: Vec<(String, u64)> = expected.iter().map(|(r, l)| (r.to_string(), *l)).collect();
    assert_eq!(found, expected, "{}", text(&output.stdout));
    for finding in &findings {
        assert!(!finding["message"].as_str().unwrap().is_empty() && !finding["fix"].as_str().unwrap().is_empty());
    }
    assert!(findings[0]["message"].as_str().unwrap().contains("11.0 MiB"), "{}", findings[0]);

    // Text: a line per finding with its place, and the fix under it.
    let output = util::fbuild().arg("check").arg(dir.path()).output().unwrap();
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Dockerfile:6: CopyAllBeforeInstall: "), "{stdout}");
    assert!(stdout.contains("  fix: RUN --mount=type=cache,target=/root/.cache/pip"), "{stdout}");
    assert!(stdout.ends_with("13 findings.\n"), "{stdout}");
}

#[test]
fn a_dockerfile_that_follows_the_practices_has_no_findings() {
    let dir = project("good.Dockerfile", false);
    let output = util::fbuild().arg("check").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(text(&output.stdout), "No findings.\n");
}

#[test]
fn a_base_image_that_cannot_be_resolved_is_a_finding_and_bad_input_an_error() {
    let dir = util::tempdir();
    let missing = format!("{}/fbuild-test/no-such-image:{}", testenv().registry, util::unique());
    write_files(dir.path(), &[("Dockerfile", &format!("FROM {missing}\nRUN true\n")), (".dockerignore", "")]);
    let output = util::fbuild().arg("check").arg(dir.path()).args(["--format", "json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(findings.iter().any(|f| f["rule"] == "BuildError" && f["line"] == 1), "{findings:?}");

    write_files(dir.path(), &[("Dockerfile", "FROM\n")]);
    let output = util::fbuild().arg("check").arg(dir.path()).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Dockerfile") && !stderr.contains("panicked"), "{stderr}");
}
