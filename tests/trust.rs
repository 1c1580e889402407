//! Issue 9, "trust nothing": odd input, faults and a misbehaving daemon
//! must not crash fbuild, leak a credential or leave a half-written output.
//! Each test here reproduces a defect found in review; it failed before the
//! fix.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util;

/// A malformed `DOCKER_AUTH_CONFIG` or `config.json` is a warning (the build
/// may not need a login), and its text is a credential: serde_json's message
/// quoted the offending string (here a base64 `auth`) on stderr, even with
/// `-q`.
#[test]
fn a_broken_credential_file_is_reported_without_its_values() {
    const SECRET: &str = "c2VjcmV0LXBhc3N3b3JkLTEyMzQ1";
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let config = util::tempdir();
    util::write_files(config.path(), &[("config.json", &format!(r#"{{"auths": {{"127.0.0.1:5000": "{SECRET}"}}}}"#))]);

    for (docker_config, env_config) in [
        (config.path().to_path_buf(), String::new()),
        (project.path().join("no-config"), format!(r#"{{"auths": {{"127.0.0.1:5000": "{SECRET}"}}}}"#)),
    ] {
        let output = util::fbuild()
            .arg("-q")
            .arg("solve")
            .arg(project.path())
            .env("DOCKER_CONFIG", &docker_config)
            .env("DOCKER_AUTH_CONFIG", &env_config)
            .output()
            .expect("run fbuild");
        let stderr = util::text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains(SECRET) && !util::text(&output.stdout).contains(SECRET), "{stderr}");
        assert!(stderr.contains("continuing without registry credentials"), "{stderr}");
        assert!(stderr.contains("line 1 column"), "{stderr}");
    }
}

/// Every path below `root` with its type, size and a hash of its content
/// (folder times left out), to show a tree did not change.
pub fn tree_hash(root: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(root).expect("below root").to_string_lossy().into_owned();
        let meta = entry.path().symlink_metadata().expect("lstat");
        let what = if meta.is_dir() {
            format!("dir {:o}", meta.permissions().mode())
        } else if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(entry.path()).expect("readlink").display())
        } else {
            let content = std::fs::read(entry.path()).expect("read");
            format!("file {:o} {}", meta.permissions().mode(), hex::encode(sha2::Sha256::digest(&content)))
        };
        out.insert(rel, what);
    }
    out
}

/// Staging folders (`.fbuild-receive-…`) anywhere below `root`.
fn staging_folders(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".fbuild-receive-"))
        .map(|e| e.path().to_owned())
        .collect()
}

/// Bytes in the files below `root` (0 if it vanished meanwhile).
fn bytes_below(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Ctrl-C while a large local output is being written: fbuild exits 130
/// and leaves no staging folder (`.fbuild-receive-…`, hundreds of MB)
/// beside a new destination or inside an existing one, which is unchanged.
/// The interrupt path returned and the runtime shut down before the
/// receiver's cleanup ran, so they stayed.
#[test]
fn ctrl_c_during_a_local_export_leaves_nothing_behind() {
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {} AS gen\nRUN mkdir /out && for i in $(seq 1 300); do head -c 1048576 /dev/zero > /out/f$i; done\n\
                 FROM scratch\nCOPY --from=gen /out /\n",
                util::testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    // Left over by a killed fbuild: removed by the next output written here.
    let stale = out.path().join(format!(".fbuild-receive-{}", "0".repeat(32)));
    util::write_files(&stale, &[("tree/f1", "stale")]);

    for existing in [false, true] {
        let dest = out.path().join("dest");
        if existing {
            util::write_files(&dest, &[("f1", "mine"), ("keep/me", "mine too")]);
        }
        let before = tree_hash(&dest);
        let mut child = Command::new(util::fbuild_binary())
            .env("BUILDKIT_HOST", &util::testenv().addr)
            .args(["solve", "--progress", "plain", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(project.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fbuild");
        // Interrupt once the output is well under way.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let staged: u64 = staging_folders(out.path()).iter().map(|p| bytes_below(p)).sum();
            if staged > 20 << 20 {
                break;
            }
            assert!(child.try_wait().expect("wait").is_none(), "fbuild ended before it was interrupted");
            assert!(Instant::now() < deadline, "the export did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
            .expect("signal");
        let interrupted = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(interrupted.elapsed() < Duration::from_secs(30), "fbuild did not exit after Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(130), "existing destination: {existing}");
        assert_eq!(staging_folders(out.path()), Vec::<PathBuf>::new(), "existing destination: {existing}");
        assert_eq!(tree_hash(&dest), before, "existing destination: {existing}");
        assert_eq!(dest.exists(), existing);
        eprintln!("existing destination {existing}: exited {:?} after SIGINT", interrupted.elapsed());
    }
}

/// A file name that is not UTF-8 in the context folder: excluded by
/// `.dockerignore` it is never looked at, included it is sent as its bytes
/// (as fsutil, and so buildctl, sends it). It used to fail the whole upload,
/// and since the Dockerfile is read from the same folder, even loading the
/// Dockerfile failed.
#[test]
fn names_that_are_not_utf8_build_like_buildctl() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY . /\n"), (".dockerignore", "bad-*\n")]);
    std::fs::write(project.path().join(OsStr::from_bytes(b"bad-\xff")), "excluded").expect("write");
    std::fs::write(project.path().join(OsStr::from_bytes(b"ok-\xfe.txt")), "included").expect("write");
    let out = util::tempdir();

    let names = |tarball: &Path| -> BTreeMap<Vec<u8>, Vec<u8>> {
        use std::io::Read;
        let mut archive = tar::Archive::new(std::fs::File::open(tarball).expect("open the tarball"));
        let mut names = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read");
            names.insert(entry.path_bytes().into_owned(), content);
        }
        names
    };
    let ours = out.path().join("fbuild.tar");
    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("-o")
        .arg(format!("type=tar,dest={}", ours.display()))
        .assert()
        .success();
    let theirs = out.path().join("buildctl.tar");
    util::buildctl()
        .args(["build", "--frontend", "dockerfile.v0"])
        .arg(format!("--local=context={}", project.path().display()))
        .arg(format!("--local=dockerfile={}", project.path().display()))
        .arg(format!("--output=type=tar,dest={}", theirs.display()))
        .assert()
        .success();
    let ours = names(&ours);
    assert_eq!(ours.get(&b"ok-\xfe.txt"[..]).map(Vec::as_slice), Some(&b"included"[..]), "{ours:?}");
    assert!(!ours.keys().any(|name| name.starts_with(b"bad-")), "{ours:?}");
    assert_eq!(ours, names(&theirs));
}
