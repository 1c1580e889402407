//! `fbuild daemon start|status|stop` with a real buildkitd, on a socket and a
//! folder of the test's own, so it never meets the test environment's daemon
//! or the machine's standard socket.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::util::{self, text, OnDrop};

/// Runs fbuild with the daemon address of this test and no BUILDKIT_HOST.
fn fbuild(addr: &str, args: &[&str]) -> Output {
    Command::new(util::fbuild_binary())
        .args(["--addr", addr])
        .args(args)
        .env_remove("BUILDKIT_HOST")
        .output()
        .expect("cannot run fbuild")
}

/// `fbuild daemon start --root ROOT --buildkitd BUILDKITD EXTRA…`.
fn daemon_start(addr: &str, root: &str, buildkitd: &str, extra: &[&str]) -> Output {
    let mut args = vec!["daemon", "start", "--root", root, "--buildkitd", buildkitd];
    args.extend_from_slice(extra);
    fbuild(addr, &args)
}

/// Stops the test's daemon (by its pid file, through `fbuild daemon stop`)
/// even when an assertion failed half-way.
fn stop_on_drop<'a>(addr: &'a str, root: &'a str) -> OnDrop<impl FnMut() + 'a> {
    OnDrop(move || {
        let _ = fbuild(addr, &["daemon", "stop", "--root", root]);
    })
}

fn pid_from(root: &Path) -> u32 {
    let text = std::fs::read_to_string(root.join("buildkitd.pid")).expect("no pid file after start");
    text.trim().parse().expect("pid file holds no number")
}

fn process_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by whoever adopted it) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

#[test]
fn start_info_status_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("buildkitd.sock");
    let addr = format!("unix://{}", sock.display());
    let root = tmp.path().join("daemon");
    let root_arg = root.to_string_lossy().into_owned();
    let buildkitd = util::buildkitd_binary().to_string_lossy().into_owned();

    // Nothing there yet: `info` fails, and says how to get a daemon.
    let out = fbuild(&addr, &["info"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("fbuild daemon start"), "{}", text(&out.stderr));

    let _guard = stop_on_drop(&addr, &root_arg);
    let started = std::time::Instant::now();
    let out = daemon_start(&addr, &root_arg, &buildkitd, &[]);
    assert!(out.status.success(), "daemon start failed: {}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("at {addr}")), "{stderr}");
    let pid = pid_from(&root);
    assert!(process_alive(pid));
    assert!(root.join("buildkit").is_dir(), "buildkitd's state is not in the daemon folder");
    assert!(root.join("buildkitd.log").is_file());

    // `start` returned only once the daemon answers.
    let out = fbuild(&addr, &["info"]);
    assert!(out.status.success(), "info failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("v0.32"), "{}", text(&out.stdout));

    let out = fbuild(&addr, &["daemon", "status", "--root", &root_arg, "--format", "json"]);
    assert!(out.status.success(), "status failed: {}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["pid"], pid, "{status}");
    assert_eq!(status["address"], addr.as_str(), "{status}");

    // A second start at the same address is refused, and names the running one.
    let out = daemon_start(&addr, &root_arg, &buildkitd, &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("already answers at"), "{stderr}");
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");

    let out = fbuild(&addr, &["daemon", "stop", "--root", &root_arg]);
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("stopped buildkitd (pid {pid})")), "{}", text(&out.stderr));
    assert!(!process_alive(pid), "buildkitd (pid {pid}) still runs after stop");
    assert!(!root.join("buildkitd.pid").exists());

    // Stopped: status says so with exit code 3, and stop again is harmless.
    let out = fbuild(&addr, &["daemon", "status", "--root", &root_arg]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("not running"), "{}", text(&out.stdout));
    let out = fbuild(&addr, &["daemon", "stop", "--root", &root_arg]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("no buildkitd started from"), "{}", text(&out.stderr));
}

#[test]
fn start_reports_a_daemon_that_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("unix://{}", tmp.path().join("buildkitd.sock").display());
    let root = tmp.path().join("daemon").to_string_lossy().into_owned();
    let buildkitd = util::buildkitd_binary().to_string_lossy().into_owned();
    let _guard = stop_on_drop(&addr, &root);

    let out = daemon_start(&addr, &root, &buildkitd, &["--", "--no-such-flag"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("buildkitd exited during startup"), "{stderr}");
    // The log's tail is shown: buildkitd's own complaint about the flag.
    assert!(stderr.contains("no-such-flag"), "{stderr}");
    assert!(!Path::new(&root).join("buildkitd.pid").exists());
}
