//! A build from a git checkout carries buildx's git facts (`vcs:source`,
//! `vcs:revision`, `vcs:localdir:*`): the daemon writes them into the
//! provenance, so without them a CI build's attestation (and the pushed
//! index) is not buildx's. Compared with the real buildx on the same
//! checkout, through the daemon's frontend (the daemon records them only for
//! frontends it runs; a native build stays native and its provenance has
//! no `vcs`, as README says).

use std::path::Path;
use std::process::Command;

use crate::util;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", util::text(&out.stderr));
}

/// A checkout with the project in `app/` and a remote with credentials in its URL.
fn checkout() -> tempfile::TempDir {
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[("app/Dockerfile", &format!("FROM {}\nCOPY a /a\n", util::testenv().busybox)), ("app/a", "hi\n")],
    );
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one"]);
    git(dir.path(), &["remote", "add", "origin", "https://ci:token@example.com/org/app.git"]);
    dir
}

fn vcs_of(dest: &Path) -> serde_json::Value {
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("provenance.json")).expect("provenance.json")).unwrap();
    statement["predicate"]["runDetails"]["metadata"]["buildkit_metadata"]["vcs"].clone()
}

#[test]
fn a_build_from_a_checkout_records_the_git_facts_buildx_records() {
    let repo = checkout();
    let ours = util::tempdir();
    let out = util::fbuild()
        .current_dir(repo.path())
        .args(["solve", "app", "--frontend", "dockerfile.v0", "--provenance", "mode=min", "-o"])
        .arg(format!("type=local,dest={}", ours.path().display()))
        .assert()
        .success();
    let stderr = util::text(&out.get_output().stderr);
    assert!(!stderr.contains("notice:"), "{stderr}");
    let theirs = util::tempdir();
    util::buildx()
        .current_dir(repo.path())
        .args(["build", "app", "--provenance", "mode=min", "-o"])
        .arg(format!("type=local,dest={}", theirs.path().display()))
        .assert()
        .success();
    let vcs = vcs_of(ours.path());
    assert_eq!(vcs["source"], "https://xxxxx:xxxxx@example.com/org/app.git", "credentials masked: {vcs}");
    assert_eq!(vcs["localdir:context"], "app");
    assert_eq!(vcs, vcs_of(theirs.path()), "the same git facts as buildx");

    // BUILDX_GIT_INFO=false leaves them out, as in buildx.
    let off = util::tempdir();
    util::fbuild()
        .current_dir(repo.path())
        .env("BUILDX_GIT_INFO", "false")
        .args(["solve", "app", "--frontend", "dockerfile.v0", "--provenance", "mode=min", "-o"])
        .arg(format!("type=local,dest={}", off.path().display()))
        .assert()
        .success();
    assert!(vcs_of(off.path()).is_null(), "no git facts when asked not to");

    // The default build compiles natively, even with a provenance asked for.
    let plain = util::tempdir();
    let out = util::fbuild()
        .current_dir(repo.path())
        .args(["solve", "app", "--provenance", "mode=min", "-o"])
        .arg(format!("type=local,dest={}", plain.path().display()))
        .assert()
        .success();
    let stderr = util::text(&out.get_output().stderr);
    assert!(!stderr.contains("notice:"), "compiled natively: {stderr}");
    assert_eq!(std::fs::read_to_string(plain.path().join("a")).unwrap(), "hi\n");
}
