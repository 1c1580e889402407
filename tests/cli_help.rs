//! The help text people read, snapshotted: a flag renamed or a line lost
//! shows up as a diff. (No daemon needed.)

use crate::util;

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(util::fbuild_binary())
        .args(args)
        .env_remove("BUILDKIT_HOST")
        .env_remove("BUILDKIT_PROGRESS")
        .env("COLUMNS", "110")
        .output()
        .expect("run fbuild");
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn solve_help() {
    insta::assert_snapshot!(help(&["solve", "--help"]));
}

#[test]
fn du_and_prune_help() {
    insta::assert_snapshot!(help(&["du", "--help"]));
    insta::assert_snapshot!(help(&["prune", "--help"]));
}

#[test]
fn builder_help() {
    insta::assert_snapshot!(help(&["builder", "--help"]));
    insta::assert_snapshot!(help(&["builder", "create", "--help"]));
}
