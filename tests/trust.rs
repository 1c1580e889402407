//! Issue 9, "trust nothing": odd input, faults and a misbehaving daemon
//! must not crash fbuild, leak a credential or leave a half-written output.
//! Each test here reproduces a defect found in review; it failed before the
//! fix.
#![allow(clippy::print_stderr)] // timings and figures are printed for the notes (`--nocapture`)

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

/// Ctrl-C (and a CI runner's SIGTERM) while a large local output is being
/// written: fbuild exits 130 and leaves no staging folder
/// (`.fbuild-receive-…`, hundreds of MB) beside a new destination or inside
/// an existing one, which is unchanged; within 2 s the daemon has no build
/// running. The interrupt path returned and the runtime shut down before
/// the receiver's cleanup ran, so the staging folders stayed.
#[test]
fn ctrl_c_during_a_local_export_leaves_nothing_behind() {
    use nix::sys::signal::Signal;
    // A daemon of our own, so that its build history holds only ours.
    let config = util::testenv().root.join("buildkitd.toml");
    let daemon = util::PrivateDaemon::start([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    let project = util::tempdir();
    large_output_project(project.path());
    let out = util::tempdir();
    // Left over by a killed fbuild: removed by the next output written here.
    let stale = out.path().join(format!(".fbuild-receive-{}", "0".repeat(32)));
    util::write_files(&stale, &[("tree/f1", "stale")]);

    for (signal, existing) in [(Signal::SIGINT, false), (Signal::SIGTERM, true)] {
        let dest = out.path().join("dest");
        if existing {
            util::write_files(&dest, &[("f1", "mine"), ("keep/me", "mine too")]);
        }
        let before = tree_hash(&dest);
        let mut child = Command::new(util::fbuild_binary())
            .args(["--addr", &daemon.addr, "solve", "--progress", "plain", "-o"])
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(project.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fbuild");
        wait_for_staged_output(out.path(), &mut child);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("signal");
        let interrupted = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(interrupted.elapsed() < Duration::from_secs(30), "fbuild did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let exited = interrupted.elapsed();
        assert_eq!(status.code(), Some(130), "{signal}");
        assert_eq!(staging_folders(out.path()), Vec::<PathBuf>::new(), "{signal}");
        assert_eq!(tree_hash(&dest), before, "{signal}");
        assert_eq!(dest.exists(), existing);
        // The daemon stops the build: no record of it is left running.
        let running = loop {
            let histories = daemon.buildctl().args(["debug", "histories"]).output().expect("buildctl");
            let text = util::text(&histories.stdout);
            let running: Vec<String> = text.lines().filter(|l| l.starts_with("STARTED")).map(str::to_owned).collect();
            // Waits for the event; 30 s only bounds a daemon that never stops it.
            if running.is_empty() || interrupted.elapsed() > Duration::from_secs(30) {
                break running;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(running.is_empty(), "still running 30 s after {signal}: {running:?}");
        eprintln!("{signal}: exited {exited:?} after the signal, no build running after {:?}", interrupted.elapsed());
    }
}

/// A project whose output is 300 files of 1 MiB, made by a RUN step.
fn large_output_project(dir: &Path) {
    util::write_files(
        dir,
        &[(
            "Dockerfile",
            &format!(
                "FROM {} AS gen\nRUN mkdir /out && for i in $(seq 1 300); do head -c 1048576 /dev/zero > /out/f$i; done\n\
                 FROM scratch\nCOPY --from=gen /out /\n",
                util::testenv().busybox
            ),
        )],
    );
}

/// Waits until more than 20 MiB are staged below `parent`, the child still
/// running.
fn wait_for_staged_output(parent: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let staged: u64 = staging_folders(parent).iter().map(|p| bytes_below(p)).sum();
        if staged > 20 << 20 {
            return;
        }
        assert!(child.try_wait().expect("wait").is_none(), "fbuild ended before the fault");
        assert!(Instant::now() < deadline, "the export did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon dies (SIGKILL) while a local output is being written:
/// fbuild exits non-zero within 2 s saying the daemon went away, and
/// leaves neither a partial output nor a staging folder.
#[test]
fn a_daemon_killed_mid_export_leaves_no_partial_output() {
    let config = util::testenv().root.join("buildkitd.toml");
    let mut daemon = util::PrivateDaemon::start([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    let project = util::tempdir();
    large_output_project(project.path());
    let out = util::tempdir();
    util::write_files(out.path(), &[("mine/file", "the user's")]);
    let before = tree_hash(out.path());
    let dest = out.path().join("dest");

    let mut child = Command::new(util::fbuild_binary())
        .args(["--addr", &daemon.addr, "solve", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(project.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fbuild");
    wait_for_staged_output(out.path(), &mut child);
    daemon.kill();
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "fbuild did not notice the daemon died");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = killed.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    // No tighter bound than the loop's 30 s: the point is that fbuild
    // notices, and a loaded machine may take seconds.
    assert!(stderr.contains("lost the connection to buildkitd"), "{stderr}");
    assert_eq!(tree_hash(out.path()), before, "no partial output, no staging folder");
    eprintln!("exited {took:?} after the daemon was killed");
}

/// The cache registry is down during the cache export: the build fails
/// saying so; with `ignore-error=true` it succeeds, the failure shown on
/// the export's step.
#[test]
fn a_cache_registry_that_is_down_fails_the_export_unless_ignored() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n")]);
    let out = util::tempdir();
    let before = tree_hash(project.path());
    let run = |cache_to: &str| {
        util::fbuild()
            .current_dir(out.path())
            .arg("solve")
            .arg(project.path())
            .args(["--cache-to", cache_to])
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run fbuild")
    };
    let failed = run("type=registry,ref=127.0.0.1:1/fbuild-cache");
    let stderr = util::text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: the build failed") && stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");

    let ignored = run("type=registry,ref=127.0.0.1:1/fbuild-cache,ignore-error=true");
    let stderr = util::text(&ignored.stderr);
    assert!(ignored.status.success(), "{stderr}");
    assert!(stderr.contains("exporting cache to registry") && stderr.contains("connection refused"), "{stderr}");
    assert_eq!(tree_hash(project.path()), before);
    assert_eq!(std::fs::read_dir(out.path()).expect("list").count(), 0, "nothing written where fbuild ran");
}

/// A file name that is not UTF-8 in the context folder: excluded by
/// `.dockerignore` it is never looked at, included it is sent as its bytes
/// (as fsutil, and so buildctl, sends it), and comes back through a local
/// output. It used to fail the whole upload,
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

    // And back through a local output, whose receiver takes the name as
    // bytes too.
    let dest = out.path().join("local");
    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.display()))
        .assert()
        .success();
    let mut landed: Vec<Vec<u8>> =
        std::fs::read_dir(&dest).expect("list").map(|e| e.expect("entry").file_name().as_bytes().to_vec()).collect();
    landed.sort();
    assert_eq!(landed, [&b".dockerignore"[..], b"Dockerfile", b"ok-\xfe.txt"]);
    assert_eq!(std::fs::read(dest.join(OsStr::from_bytes(b"ok-\xfe.txt"))).expect("read"), b"included");
}

/// A local output onto a full disk (a 4 MB tmpfs, 8 MB of output) fails
/// with the reason and the folder, and leaves an existing destination and
/// everything beside it as they were: no partial output, no staging folder.
#[test]
fn a_full_disk_fails_a_local_output_and_leaves_dest_untouched() {
    let disk = util::SmallDisk::mount("4m");
    let dest = disk.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), "the user's file").unwrap();
    let before = tree_hash(disk.path());
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN head -c 8000000 /dev/urandom > /big\n", util::testenv().busybox))],
    );
    let output = util::fbuild()
        .arg("solve")
        .arg(project.path())
        .args(["-o", &format!("type=local,dest={}", dest.display())])
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let reason = format!("error: the build failed: cannot write the output into {}: ", dest.display());
    assert!(stderr.contains(&reason) && stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(tree_hash(disk.path()), before, "the disk holds what it held before");
    assert!(staging_folders(disk.path()).is_empty());
}

/// The daemon health-checks every session; one that does not answer in time
/// is closed and the build fails. With checks every second, one missed
/// answer fatal (FBUILD_SESSION_HEALTH_MS, BuildKit's own test header), a
/// 200 MB context upload that fills the link for seconds still succeeds:
/// health answers get through while the transfer saturates the session.
#[test]
fn health_checks_are_answered_while_a_large_upload_saturates_the_session() {
    let project = util::tempdir();
    let mut data = vec![0u8; 200 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(project.path().join("big.bin"), &data).unwrap();
    drop(data);
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY big.bin /\n")]);
    let started = Instant::now();
    let output = util::fbuild()
        .env("FBUILD_SESSION_HEALTH_MS", "1000")
        .arg("solve")
        .arg(project.path())
        .args(["--progress", "plain"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "a health check went unanswered: {stderr}");
    assert!(stderr.contains("transferring context: 209."), "the whole context went: {stderr}");
    eprintln!("200 MB uploaded in {took:?} with health checks every second");
}
