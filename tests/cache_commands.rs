//! `fbuild info`, `workers`, `du` and `prune` against real daemons, checked
//! against buildctl's answers on the same daemon.
//!
//! `info` and `workers` only read, so they use the shared test daemon. `du`
//! and `prune` need a cache nobody else touches while they compare and
//! delete, so they run against a private buildkitd started here (its own
//! root, socket and OTEL socket; the test environment's registry config).

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, PrivateDaemon};

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    let output = cmd.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("output is UTF-8")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn info_shows_the_daemon_version() {
    let text = stdout(util::fbuild().arg("info"));
    assert!(text.starts_with("BuildKit:"), "{text}");
    assert!(text.contains("github.com/moby/buildkit v0.32.2"), "{text}");

    let ours = json(&stdout(util::fbuild().args(["info", "--format", "json"])));
    assert_eq!(ours["buildkitVersion"]["version"], "v0.32.2");
    let theirs = json(&stdout(util::buildctl().args(["debug", "info", "--format", "{{json .}}"])));
    assert_eq!(ours, theirs);
}

#[test]
fn workers_lists_the_worker_and_platforms() {
    let theirs = json(&stdout(util::buildctl().args(["debug", "workers", "--format", "{{json .}}"])));
    let ids: Vec<&str> = theirs.as_array().expect("a list").iter().filter_map(|w| w["id"].as_str()).collect();
    assert!(!ids.is_empty(), "buildctl lists no worker: {theirs}");

    let table = stdout(util::fbuild().arg("workers"));
    let mut lines = table.lines();
    assert_eq!(lines.next().map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["ID", "PLATFORMS"]));
    for id in &ids {
        let row = table.lines().find(|line| line.starts_with(id)).unwrap_or_else(|| panic!("{id} missing:\n{table}"));
        assert!(row.contains("linux/amd64"), "{row}");
    }

    // The JSON form is buildctl's, value for value.
    let ours = json(&stdout(util::fbuild().args(["workers", "--format", "json"])));
    assert_eq!(ours, theirs);

    let verbose = stdout(util::fbuild().args(["workers", "--verbose"]));
    for expected in ["Labels:", "org.mobyproject.buildkit.worker.executor:", "GC Policy rule#0:", "Keep duration:"] {
        assert!(verbose.contains(expected), "no {expected:?} in:\n{verbose}");
    }

    // Filters reach the daemon.
    let oci = r#"labels."org.mobyproject.buildkit.worker.executor"==oci"#;
    assert!(stdout(util::fbuild().args(["workers", "--filter", oci])).contains(ids[0]));
    let none = r#"labels."org.mobyproject.buildkit.worker.executor"==no-such-executor"#;
    assert_eq!(stdout(util::fbuild().args(["workers", "--filter", none])).lines().count(), 1);
}

/// A private buildkitd with the shared daemon's config (the loopback
/// registry speaks HTTP).
fn start_daemon() -> PrivateDaemon {
    let config = util::testenv().root.join("buildkitd.toml");
    PrivateDaemon::start([OsStr::new("--config"), config.as_os_str()])
}

impl PrivateDaemon {
    /// Builds `dockerfile` with buildctl (no output): fills the cache.
    fn build(&self, context: &Path, dockerfile: &str) {
        util::write_files(context, &[("Dockerfile", dockerfile)]);
        let context = context.display().to_string();
        stdout(self.buildctl().args([
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            &format!("context={context}"),
            "--local",
            &format!("dockerfile={context}"),
            "--progress",
            "plain",
        ]));
    }

    /// The records once the daemon has finished releasing a build's
    /// references (it updates usage counts and times just after the solve
    /// returns): two buildctl listings in a row agree.
    fn settled_records(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut previous = self.records();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let current = self.records();
            if current == previous {
                return current;
            }
            assert!(Instant::now() < deadline, "the daemon's records keep changing: {current:?}");
            previous = current;
        }
    }

    /// `buildctl du --format '{{json .}}'`.
    fn records(&self) -> Vec<Value> {
        let text = stdout(self.buildctl().args(["du", "--format", "{{json .}}"]));
        match json(&text) {
            Value::Array(records) => records,
            // Go encodes an empty list as null.
            Value::Null => Vec::new(),
            other => panic!("unexpected du JSON: {other}"),
        }
    }
}

/// The value after `key:` in `Key: value` summary lines.
fn summary(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

#[test]
fn du_and_prune_agree_with_buildctl() {
    let daemon = start_daemon();
    let context = util::tempdir();
    util::write_files(context.path(), &[("data.txt", &"cache me\n".repeat(2000))]);
    let busybox = &util::testenv().busybox;
    daemon.build(
        context.path(),
        &format!(
            "FROM {busybox}\n\
             RUN --mount=type=cache,target=/cache echo filled > /cache/marker && echo built > /built\n\
             COPY data.txt /data.txt\n"
        ),
    );
    let before = daemon.settled_records();
    assert!(before.iter().any(|r| r["recordType"] == "exec.cachemount"), "the build left no cache mount: {before:?}");

    // Same records, same totals.
    let ours = json(&stdout(daemon.fbuild().args(["du", "--format", "json"])));
    assert_eq!(ours, Value::Array(before.clone()));
    let buildctl_du = stdout(daemon.buildctl().arg("du"));
    let fbuild_du = stdout(daemon.fbuild().arg("du"));
    assert_eq!(summary(&fbuild_du, "Total"), summary(&buildctl_du, "Total"));
    assert_eq!(summary(&fbuild_du, "Reclaimable"), summary(&buildctl_du, "Reclaimable"));
    assert_ne!(summary(&fbuild_du, "Total"), "0B");
    for record in &before {
        let id = record["id"].as_str().unwrap();
        assert!(fbuild_du.lines().any(|line| line.starts_with(id)), "{id} missing:\n{fbuild_du}");
    }

    // A filter reaches the daemon.
    let mounts = json(&stdout(daemon.fbuild().args(["du", "--filter", "type==exec.cachemount", "--format", "json"])));
    let mounts = mounts.as_array().expect("a list");
    assert!(!mounts.is_empty());
    assert!(mounts.iter().all(|r| r["recordType"] == "exec.cachemount"), "{mounts:?}");

    // Pruning only the cache mounts keeps the rest.
    let pruned = stdout(daemon.fbuild().args(["prune", "--filter", "type==exec.cachemount"]));
    for mount in mounts {
        assert!(pruned.contains(mount["id"].as_str().unwrap()), "{pruned}");
    }
    let after_mounts = daemon.settled_records();
    assert!(after_mounts.iter().all(|r| r["recordType"] != "exec.cachemount"), "{after_mounts:?}");
    assert!(!after_mounts.is_empty(), "a filtered prune deleted everything");

    // prune --all streams every record it deletes and the total; afterwards
    // buildctl sees nothing reclaimable.
    let reclaimable_before = summary(&stdout(daemon.buildctl().arg("du")), "Reclaimable");
    let pruned = stdout(daemon.fbuild().args(["prune", "--all"]));
    for record in after_mounts.iter().filter(|r| r["inUse"] == false) {
        assert!(pruned.contains(record["id"].as_str().unwrap()), "{record} not reported:\n{pruned}");
    }
    assert_eq!(summary(&pruned, "Total"), reclaimable_before, "{pruned}");
    let after = stdout(daemon.buildctl().arg("du"));
    assert_eq!(summary(&after, "Reclaimable"), "0B", "{after}");
    assert!(daemon.records().iter().all(|r| r["inUse"] == true), "{after}");
}

#[test]
fn prune_rejects_bad_sizes_before_connecting() {
    let output = util::fbuild()
        .args(["--addr", "unix:///nonexistent/buildkitd.sock", "prune", "--keep-storage", "ten"])
        .output()
        .unwrap();
    // A bad flag value exits 1, as buildx does.
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid size \"ten\""), "{stderr}");
}
