//! Load: many builds at once, and many builds in one process. Figures are
//! printed (`--nocapture`) for the notes.
#![allow(clippy::print_stderr)] // timings and figures are printed for the notes (`--nocapture`)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fbuild::build::{build, BuildRequest, CancellationToken, NoProgress};
use fbuild::connect::{connect, ConnectOptions};
use fbuild::output::parse_output;

use crate::util::{self, testenv};

/// 20 `fbuild solve` runs at once against the one test daemon, each with
/// its own context and local output: all succeed, each output is its own.
#[test]
fn twenty_concurrent_solves_are_all_correct() {
    const RUNS: usize = 20;
    let token = util::unique();
    let projects: Vec<tempfile::TempDir> = (0..RUNS)
        .map(|i| {
            let project = util::tempdir();
            util::write_files(
                project.path(),
                &[
                    ("Dockerfile", "FROM scratch\nCOPY . /\n"),
                    ("id.txt", &format!("{token} run {i}\n")),
                    ("shared/big.bin", &"x".repeat(200_000)),
                ],
            );
            project
        })
        .collect();
    let out = util::tempdir();
    let start = Instant::now();
    let children: Vec<_> = projects
        .iter()
        .enumerate()
        .map(|(i, project)| {
            Command::new(util::fbuild_binary())
                .env("BUILDKIT_HOST", &testenv().addr)
                .args(["-q", "solve", "-o"])
                .arg(format!("type=local,dest={}", out.path().join(i.to_string()).display()))
                .arg(project.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start fbuild")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "run {i}: {}", util::text(&output.stderr));
        let dest = out.path().join(i.to_string());
        assert_eq!(std::fs::read_to_string(dest.join("id.txt")).expect("read"), format!("{token} run {i}\n"));
        assert_eq!(std::fs::metadata(dest.join("shared/big.bin")).expect("stat").len(), 200_000);
    }
    eprintln!("{RUNS} concurrent solves: {:?}", start.elapsed());
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd").count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// 200 builds through the library on one connection, each with a context
/// and a local output: the process does not grow in open descriptors, tasks
/// or memory. (Every session left eight tasks running, about 300 KB per
/// build: 28 -> 86 MiB over 200 builds.) Runs in a process of its own (this test binary again, with only
/// the child test), so other tests' descriptors and memory do not count.
#[test]
fn two_hundred_library_builds_on_one_connection_do_not_leak() {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "load::library_builds_child", "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env("FBUILD_LOAD_CHILD", "1")
        .output()
        .expect("run the child");
    let stderr = util::text(&output.stderr);
    eprintln!("{}", stderr.lines().filter(|l| l.starts_with("load:")).collect::<Vec<_>>().join("\n"));
    assert!(output.status.success(), "{}\n{stderr}", util::text(&output.stdout));
    assert!(util::text(&output.stdout).contains("1 passed"), "{}", util::text(&output.stdout));
}

#[test]
#[ignore = "run by two_hundred_library_builds_on_one_connection_do_not_leak in a process of its own"]
fn library_builds_child() {
    assert_eq!(std::env::var("FBUILD_LOAD_CHILD").as_deref(), Ok("1"), "run through its parent test");
    const WARMUP: usize = 20;
    const BUILDS: usize = 200;
    let project = util::tempdir();
    util::write_files(
        project.path(),
        &[("Dockerfile", "FROM scratch\nCOPY . /\n"), ("a.txt", "a\n"), ("dir/b.bin", &"b".repeat(100_000))],
    );
    let out = util::tempdir();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let opts = ConnectOptions { addr: Some(testenv().addr.clone()), ..Default::default() };
        let connection = connect(&opts).await.expect("the test daemon answers");
        let one = |i: usize, dir: &Path| {
            let dest = dir.join(format!("out-{i}"));
            let export = parse_output(&format!("type=local,dest={}", dest.display())).expect("output");
            let request = BuildRequest::dockerfile(project.path()).export(export);
            let channel = connection.channel.clone();
            async move {
                build(&channel, request, &mut NoProgress, &CancellationToken::new()).await.expect("build");
                assert_eq!(std::fs::read_to_string(dest.join("a.txt")).expect("read"), "a\n");
                std::fs::remove_dir_all(&dest).expect("remove the output");
            }
        };
        for i in 0..WARMUP {
            one(i, out.path()).await;
        }
        let (fds, rss) = (open_fds(), rss_kib());
        let start = Instant::now();
        let mut trace = Vec::new();
        for i in 0..BUILDS {
            one(WARMUP + i, out.path()).await;
            if (i + 1) % 50 == 0 {
                let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
                trace.push(format!("{}: {} MiB {tasks} tasks", i + 1, rss_kib() / 1024));
            }
        }
        eprintln!("load: RSS after builds {}", trace.join(", "));
        let took = start.elapsed();
        let (fds_after, rss_after) = (open_fds(), rss_kib());
        eprintln!(
            "load: {BUILDS} builds in {took:.1?} ({:.1?} each); open fds {fds} -> {fds_after}; RSS {} -> {} MiB",
            took / BUILDS as u32,
            rss / 1024,
            rss_after / 1024
        );
        assert!(fds_after <= fds + 2, "open descriptors grew from {fds} to {fds_after}");
        assert!(rss_after <= rss + 16 * 1024, "memory grew from {rss} KiB to {rss_after} KiB");
        // A session's tasks (the server's connection, the pipe's pumps) ended
        // with it: only the runtime's own and the connection's remain.
        let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        assert!(tasks < 20, "{tasks} tasks alive after {BUILDS} builds");
        assert!(took < Duration::from_secs(600));
    });
}

/// Issue 20's load acceptance, CI-sized: eight builds at once sharing one
/// cache folder, each importing from it and exporting to it under its own
/// tag (every export collects the folder). Two rounds: every build's
/// output is its own, and after each round `cache ls` lists every tag,
/// `cache gc` passes and every blob in the folder matches its digest.
/// `scripts/load.py` runs the full-size version and reports memory.
#[test]
fn eight_concurrent_builds_share_one_cache_folder() {
    const BUILDS: usize = 8;
    let token = util::unique();
    let work = util::tempdir();
    let cache = work.path().join("cache");
    let projects: Vec<std::path::PathBuf> = (0..BUILDS)
        .map(|i| {
            let project = work.path().join(format!("p{i}"));
            util::write_files(
                &project,
                &[
                    (
                        "Dockerfile",
                        &format!(
                            "FROM {}\nCOPY id.txt /id.txt\nRUN cat /id.txt /id.txt > /made.txt\n",
                            testenv().busybox
                        ),
                    ),
                    ("id.txt", &format!("{token} build {i}\n")),
                ],
            );
            project
        })
        .collect();
    for round in 0..2 {
        let children: Vec<_> = projects
            .iter()
            .enumerate()
            .map(|(i, project)| {
                Command::new(util::fbuild_binary())
                    .env("BUILDKIT_HOST", &testenv().addr)
                    .args(["-q", "solve"])
                    .arg(project)
                    .args(["--cache-from", &format!("type=local,src={},tag=b{i}", cache.display())])
                    .args(["--cache-to", &format!("type=local,dest={},mode=max,tag=b{i}", cache.display())])
                    .arg("-o")
                    .arg(format!("type=local,dest={}", work.path().join(format!("out-{round}-{i}")).display()))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start fbuild")
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let output = child.wait_with_output().expect("wait");
            assert!(output.status.success(), "round {round} build {i}: {}", util::text(&output.stderr));
            let made = std::fs::read_to_string(work.path().join(format!("out-{round}-{i}/made.txt"))).expect("read");
            assert_eq!(made, format!("{token} build {i}\n").repeat(2), "round {round} build {i}");
        }
        let listed = util::fbuild().args(["cache", "ls", "--format", "json"]).arg(&cache).assert().success();
        let listed = util::text(&listed.get_output().stdout);
        for i in 0..BUILDS {
            assert!(listed.contains(&format!("\"b{i}\"")), "round {round}: tag b{i} missing from\n{listed}");
        }
        util::fbuild().args(["cache", "gc"]).arg(&cache).assert().success();
        crate::local_cache::assert_valid_layout(&cache);
    }
}
