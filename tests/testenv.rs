//! The test environment itself: the daemons answer and the base image is in
//! the registry. When these fail, every other integration test fails too, and
//! these say why.

use crate::util;

#[test]
fn daemon_answers_and_registry_has_busybox() {
    let env = util::testenv();

    // Both listeners of the root daemon answer and report a worker.
    for addr in [&env.addr, &env.tcp_addr] {
        let out = util::buildctl().arg("--addr").arg(addr).args(["debug", "workers"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "buildctl debug workers at {addr}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("linux/amd64"), "no linux/amd64 worker at {addr}: {stdout}");
    }

    // The busybox base image the tests build FROM is pushed and readable.
    let (repo, tag) = env
        .busybox
        .strip_prefix(&format!("{}/", env.registry))
        .and_then(|rest| rest.rsplit_once(':'))
        .expect("FBUILD_TEST_BUSYBOX is REGISTRY/REPO:TAG");
    let manifest = util::registry_manifest(repo, tag).expect("busybox is in the test registry");
    assert_eq!(manifest["schemaVersion"], 2, "{manifest}");
    assert!(
        manifest.get("layers").is_some() || manifest.get("manifests").is_some(),
        "neither a manifest nor an index: {manifest}"
    );
    assert!(util::registry_manifest(repo, "no-such-tag").is_none());
}

#[test]
fn rootless_daemon_answers_its_user() {
    let rootless = util::rootless();
    let out =
        rootless.command(&rootless.buildctl).args(["--addr", &rootless.addr, "debug", "workers"]).output().unwrap();
    assert!(out.status.success(), "buildctl as {}: {}", rootless.user, String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("linux/amd64"));
}
