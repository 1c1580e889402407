//! What scripts read: `--progress rawjson` carries JSON lines only (fbuild's
//! own warnings included, as warnings of no vertex), `--progress none` is
//! quiet, a bad command line exits 1 as buildx's does, and `--help` lists
//! every cache type.

use crate::util::{self, text};

#[test]
fn rawjson_carries_only_json_lines() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &util::unique())]);
    let out = util::tempdir();
    // With an output (fbuild would say where it went) and without one (a warning).
    for extra in [vec!["-o".to_string(), out.path().join("o").display().to_string()], vec![]] {
        let output = util::fbuild()
            .arg("solve")
            .arg(project.path())
            .args(["--progress", "rawjson"])
            .args(&extra)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.is_empty());
        for line in stderr.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"));
            assert!(value.is_object(), "{line}");
        }
        if extra.is_empty() {
            let warnings = util::rawjson_warnings(&stderr);
            assert!(warnings.iter().any(|w| w.starts_with("No output specified")), "{warnings:?}");
        }
    }
}

#[test]
fn progress_none_prints_no_progress() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &util::unique())]);
    let out = util::tempdir();
    let output = util::fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["--progress", "none", "-o"])
        .arg(out.path().join("o"))
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("#1 ") && !stderr.contains("Built in"), "{stderr}");
    assert!(out.path().join("o/x").is_file());
}

#[test]
fn a_bad_command_line_exits_1_as_buildx() {
    for args in [&["solve", "--no-such-flag", "."][..], &["no-such-command"], &["solve", "--progress"]] {
        let output = util::fbuild().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).starts_with("error:"), "{args:?}: {}", text(&output.stderr));
    }
    for args in [&["--help"][..], &["solve", "--help"], &["--version"]] {
        let output = util::fbuild().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_lists_every_cache_type() {
    for command in ["solve", "bake"] {
        let output = util::fbuild().args([command, "--help"]).output().unwrap();
        let help = text(&output.stdout);
        for kind in ["registry", "local", "inline", "gha", "s3", "azblob"] {
            assert!(help.contains(kind), "`fbuild {command} --help` does not name cache type {kind}:\n{help}");
        }
    }
}

#[test]
fn bake_rawjson_carries_only_json_lines_with_the_files_warnings() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY x /x\n"),
            ("x", &util::unique()),
            ("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      isolation: default\n"),
        ],
    );
    let output = util::fbuild()
        .current_dir(project.path())
        .args(["bake", "--progress", "rawjson", "--set", "*.output=type=cacheonly"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"));
        assert!(value.is_object(), "{line}");
    }
    let warnings = util::rawjson_warnings(&stderr);
    assert!(warnings.iter().any(|w| w.contains("build.isolation is ignored")), "{warnings:?}");
}
