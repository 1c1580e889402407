//! Builders of several nodes (issue 21), on private daemons of the test's
//! own: `fbuild builder` writes buildx's store (checked by running the real
//! buildx), bake spreads targets over the nodes by rendezvous hashing and
//! sends them back to the same node, a dead node is skipped, and bad
//! builders are refused naming the node.
//!
//! Which node a target goes to is decided by a hash of its context folder
//! (a temp folder, different every run) and its name. So that six targets
//! land two on each node, the test picks target names with
//! `fbuild::pool::rendezvous_score`, the library's own function, and then
//! checks that the real bake sent each target where the hash says; the
//! statistics of the hash (a fourth node takes about a quarter of the keys,
//! only keys it wins move) are `pool::tests` in the library.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{self, text, PrivateDaemon};

fn fbuild(config: &Path) -> assert_cmd::Command {
    util::fbuild_with_store(config)
}

/// The real buildx on the same store.
fn buildx(config: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(&util::testenv().buildx);
    cmd.env("DOCKER_CONFIG", config).env_remove("BUILDX_BUILDER").env_remove("BUILDKIT_HOST");
    cmd
}

fn run_ok(cmd: &mut assert_cmd::Command) -> String {
    let output = cmd.output().unwrap();
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{cmd:?} failed:\n{all}");
    all
}

/// Node names n1..nN on their daemons, made with `fbuild builder create/append`.
fn make_builder(config: &Path, name: &str, daemons: &[&PrivateDaemon]) {
    for (i, daemon) in daemons.iter().enumerate() {
        let verb = if i == 0 { "create" } else { "append" };
        run_ok(fbuild(config).args(["builder", verb, name, &daemon.addr, "--node", &format!("n{}", i + 1)]));
    }
}

/// The node rendezvous hashing gives `key` among `nodes` (all weight 1).
fn predicted(key: &str, nodes: &[&str]) -> String {
    nodes
        .iter()
        .max_by(|a, b| fbuild::pool::rendezvous_score(key, a, 1).total_cmp(&fbuild::pool::rendezvous_score(key, b, 1)))
        .unwrap()
        .to_string()
}

/// Six target names for a project at `dir`: two per node of n1..n3, of
/// which at most two move when n4 joins.
fn six_targets(dir: &Path) -> Vec<String> {
    let key = |name: &str| format!("{}\0{name}", dir.display());
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut moved = 0;
    for i in 0.. {
        let name = format!("t{i}");
        let three = predicted(&key(&name), &["n1", "n2", "n3"]);
        let moves = predicted(&key(&name), &["n1", "n2", "n3", "n4"]) != three;
        let slot = per_node.entry(three).or_default();
        if slot.len() < 2 && (!moves || moved < 2) {
            moved += usize::from(moves);
            slot.push(name);
        }
        if per_node.values().map(Vec::len).sum::<usize>() == 6 {
            break;
        }
    }
    per_node.into_values().flatten().collect()
}

/// A bake file of `targets` in a new folder.
fn project(targets: &[String]) -> tempfile::TempDir {
    let dir = util::tempdir();
    write_project(dir.path(), targets);
    dir
}

/// A bake file of `targets` in `dir`, each copying its own file from one context.
fn write_project(dir: &Path, targets: &[String]) {
    let stamp = util::unique();
    let mut hcl = format!("group \"default\" {{\n  targets = [{}]\n}}\n", {
        targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
    });
    for target in targets {
        hcl.push_str(&format!(
            "target \"{target}\" {{\n  context = \".\"\n  dockerfile-inline = \"FROM scratch\\nCOPY {target}.txt /{target}.txt\\n\"\n}}\n"
        ));
        std::fs::write(dir.join(format!("{target}.txt")), format!("{target} {stamp}")).unwrap();
    }
    std::fs::write(dir.join("docker-bake.hcl"), hcl).unwrap();
}

/// `fbuild bake` on builder `name`: the node each target built on (from its
/// summary line) and the whole output.
fn bake(config: &Path, name: &str, dir: &Path) -> (BTreeMap<String, String>, String) {
    let output =
        fbuild(config).current_dir(dir).args(["--builder", name, "bake", "--progress", "plain"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "bake on {name} failed:\n{stderr}");
    (nodes_of(&stderr), stderr)
}

/// `TARGET  Built in …: … on node NODE; context: …` lines.
fn nodes_of(stderr: &str) -> BTreeMap<String, String> {
    stderr
        .lines()
        .filter_map(|line| {
            let (target, rest) = line.split_once("  ")?;
            let node = rest.split(" on node ").nth(1)?.split(';').next()?;
            Some((target.trim().to_string(), node.trim().to_string()))
        })
        .collect()
}

/// `bake: 6 of 6 targets built in …: S steps, C cached` → (S, C).
fn steps_and_cached(stderr: &str) -> (u64, u64) {
    let line = stderr.lines().find(|l| l.starts_with("bake: ")).expect("the bake's closing line");
    let tail = line.rsplit(": ").next().unwrap();
    let numbers: Vec<u64> = tail.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn buildx_lists_a_builder_fbuild_made_and_fbuild_builds_on_one_buildx_made() {
    let daemons =
        [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    make_builder(config.path(), "trio", &[&daemons[0], &daemons[1], &daemons[2]]);

    // buildx reads what fbuild wrote: the builder, its three nodes, each up.
    let ls = run_ok(buildx(config.path()).arg("ls"));
    assert!(ls.contains("trio"), "{ls}");
    for (i, daemon) in daemons.iter().enumerate() {
        let line = ls.lines().find(|l| l.contains(&daemon.addr)).unwrap_or_else(|| panic!("node {i}:\n{ls}"));
        assert!(line.contains("running"), "{ls}");
    }
    let inspect = run_ok(buildx(config.path()).args(["inspect", "trio"]));
    for node in ["n1", "n2", "n3"] {
        assert!(inspect.contains(&format!("Name:             {node}")), "{inspect}");
    }

    // fbuild's own view: every node up, with its version and platforms.
    let inspect = run_ok(fbuild(config.path()).args(["builder", "inspect", "trio", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(inspect.lines().next().unwrap()).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{inspect}");
    for node in nodes {
        assert_eq!(node["status"], "running", "{inspect}");
        assert!(node["buildkit"].as_str().unwrap().starts_with('v'), "{inspect}");
        assert!(!node["platforms"].as_array().unwrap().is_empty(), "{inspect}");
        assert!(node["cache_bytes"].is_number() && node["running"].is_number(), "{inspect}");
    }

    // A builder buildx made with --append is one fbuild builds on, on both nodes.
    run_ok(buildx(config.path()).args([
        "create",
        "--name",
        "bx",
        "--node",
        "bx0",
        "--driver",
        "remote",
        &daemons[0].addr,
    ]));
    run_ok(buildx(config.path()).args([
        "create",
        "--name",
        "bx",
        "--append",
        "--node",
        "bx1",
        "--driver",
        "remote",
        &daemons[1].addr,
    ]));
    let targets: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    let dir = project(&targets);
    let (nodes, stderr) = bake(config.path(), "bx", dir.path());
    assert_eq!(nodes.len(), 6, "{stderr}");
    let key = |t: &str| format!("{}\0{t}", dir.path().display());
    for (target, node) in &nodes {
        assert_eq!(node, &predicted(&key(target), &["bx0", "bx1"]), "{target}:\n{stderr}");
    }
}

#[test]
fn bake_spreads_targets_over_the_nodes_and_sends_them_back_to_the_same_node() {
    let mut daemons =
        vec![PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    make_builder(config.path(), "pool", &[&daemons[0], &daemons[1], &daemons[2]]);
    let dir = util::tempdir();
    let targets = six_targets(dir.path());
    write_project(dir.path(), &targets);
    let key = |t: &str| format!("{}\0{t}", dir.path().display());

    // Two targets on each node, as the hash says, steps labelled with the node.
    let (first, stderr) = bake(config.path(), "pool", dir.path());
    assert_eq!(first.len(), 6, "{stderr}");
    for (target, node) in &first {
        assert_eq!(node, &predicted(&key(target), &["n1", "n2", "n3"]), "{target}:\n{stderr}");
        assert!(stderr.contains(&format!("[{target} on {node}]")), "{stderr}");
    }
    for node in ["n1", "n2", "n3"] {
        assert_eq!(first.values().filter(|n| *n == node).count(), 2, "{stderr}");
    }

    // Again: every target on the node that built it, every step cached.
    let (second, stderr) = bake(config.path(), "pool", dir.path());
    assert_eq!(second, first, "{stderr}");
    let (steps, cached) = steps_and_cached(&stderr);
    assert!(steps >= 6 && cached == steps, "{steps} steps, {cached} cached:\n{stderr}");

    // A fourth node: only targets it wins move, at most a third of them.
    daemons.push(PrivateDaemon::start(["--debug"]));
    run_ok(fbuild(config.path()).args(["builder", "append", "pool", &daemons[3].addr, "--node", "n4"]));
    let (third, stderr) = bake(config.path(), "pool", dir.path());
    let moved: Vec<&String> = third.iter().filter(|(t, n)| first[*t] != **n).map(|(t, _)| t).collect();
    for target in &moved {
        assert_eq!(third[*target], "n4", "{target} moved between old nodes:\n{stderr}");
    }
    assert!(moved.len() <= 2, "{moved:?} moved:\n{stderr}");

    // One node killed before the bake: it is skipped, every target builds.
    daemons[1].kill();
    let (fourth, stderr) = bake(config.path(), "pool", dir.path());
    assert_eq!(fourth.len(), 6, "{stderr}");
    assert!(stderr.contains("node n2 is down, skipped"), "{stderr}");
    assert!(fourth.values().all(|n| n != "n2"), "{stderr}");
    for (target, node) in &fourth {
        if third[target] != "n2" {
            assert_eq!(node, &third[target], "{target} moved though its node is up:\n{stderr}");
        }
    }
}

#[test]
fn bad_builders_and_builds_no_node_can_take_are_refused_naming_the_node() {
    let daemon = PrivateDaemon::start(["--debug"]);
    let config = util::tempdir();
    make_builder(config.path(), "duo", &[&daemon]);

    // Two nodes with one name, two nodes at one address.
    let output =
        fbuild(config.path()).args(["builder", "append", "duo", "tcp://127.0.0.1:1", "--node", "n1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("builder \"duo\" has a node named \"n1\" already"),
        "{}",
        text(&output.stderr)
    );
    let output =
        fbuild(config.path()).args(["builder", "append", "duo", &daemon.addr, "--node", "n9"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(&format!("node \"n1\" is at {} already", daemon.addr)),
        "{}",
        text(&output.stderr)
    );

    // An unreachable node: named in `ls`, skipped by a build, and when no node
    // answers, the error names each.
    run_ok(fbuild(config.path()).args(["builder", "append", "duo", "tcp://127.0.0.1:1", "--node", "dead"]));
    let ls = run_ok(fbuild(config.path()).args(["builder", "ls"]));
    let line = ls.lines().find(|l| l.contains("dead")).unwrap();
    assert!(line.contains("down: cannot connect to buildkitd at tcp://127.0.0.1:1"), "{ls}");
    let targets = vec!["a".to_string()];
    let dir = project(&targets);
    let (nodes, stderr) = bake(config.path(), "duo", dir.path());
    assert_eq!(nodes["a"], "n1", "{stderr}");
    assert!(
        stderr.contains("builder duo: node dead is down, skipped: cannot connect to buildkitd at tcp://127.0.0.1:1"),
        "{stderr}"
    );

    // A platform no node builds.
    let hcl = "target \"a\" {\n  dockerfile-inline = \"FROM scratch\\n\"\n  platforms = [\"linux/s390x\"]\n}\n";
    std::fs::write(dir.path().join("docker-bake.hcl"), hcl).unwrap();
    let output =
        fbuild(config.path()).current_dir(dir.path()).args(["--builder", "duo", "bake", "a"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no node of builder \"duo\" builds linux/s390x (down: dead)"), "{stderr}");

    // No node answers.
    run_ok(fbuild(config.path()).args(["builder", "rm", "duo", "--node", "n1"]));
    run_ok(fbuild(config.path()).args(["builder", "append", "duo", "tcp://127.0.0.1:2", "--node", "dead2"]));
    let output =
        fbuild(config.path()).current_dir(dir.path()).args(["--builder", "duo", "bake", "a"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no node of builder \"duo\" answers: dead: cannot connect"), "{stderr}");
    assert!(stderr.contains("dead2: cannot connect"), "{stderr}");
    run_ok(fbuild(config.path()).args(["builder", "rm", "duo"]));
    assert!(!config.path().join("buildx/instances/duo").exists());
}

/// Keeps the warnings and whether any status came.
#[derive(Default)]
struct Warnings(Vec<String>, bool);

impl fbuild::build::ProgressSink for Warnings {
    fn on_status(&mut self, _: &fbuild::proto::moby::buildkit::v1::StatusResponse) {
        self.1 = true;
    }

    fn on_warning(&mut self, message: &str) {
        self.0.push(message.to_string());
    }
}

#[test]
fn a_program_builds_on_a_pool_and_a_node_gone_before_the_solve_is_retried_once() {
    use fbuild::build::{BuildRequest, CancellationToken};
    use fbuild::connect::ConnectOptions;
    use fbuild::pool::{NodeConfig, Pool};

    let mut daemons = [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let node = |name: &str, daemon: &PrivateDaemon| NodeConfig {
        name: name.into(),
        options: ConnectOptions { addr: Some(daemon.addr.clone()), ..Default::default() },
        platforms: vec![],
        weight: 1,
    };
    let pool = Pool::new("lib".into(), vec![node("a", &daemons[0]), node("b", &daemons[1])], None).unwrap();
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &util::unique())]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pool = pool.connect().await;
        pool.usable().unwrap();
        let request = BuildRequest::dockerfile(project.path());
        let ranking = pool.route(&request, "app").unwrap();
        assert_eq!(ranking.len(), 2);
        let (first, second) = (ranking[0], ranking[1]);

        // Both up: it builds where the route says, with no warning.
        let mut sink = Warnings::default();
        let built = pool.build(request.clone(), "app", &mut sink, &CancellationToken::new()).await.unwrap();
        assert_eq!(built.node, pool.members[first].config.name);
        assert!(sink.0.is_empty(), "{:?}", sink.0);

        // The chosen node dies after the health check, before the solve:
        // once more on the other node, with a line saying so.
        daemons[first].kill();
        let mut sink = Warnings::default();
        let built = pool.build(request.clone(), "app", &mut sink, &CancellationToken::new()).await.unwrap();
        assert_eq!(built.node, pool.members[second].config.name);
        let gone = &pool.members[first].config.name;
        assert_eq!(sink.0.len(), 1, "{:?}", sink.0);
        assert!(sink.0[0].starts_with(&format!("node {gone} went away before the solve started (")), "{:?}", sink.0);

        // Both gone: the error names the node it last tried.
        daemons[second].kill();
        let err = pool.build(request, "app", &mut Warnings::default(), &CancellationToken::new()).await.unwrap_err();
        let text = fbuild_error_chain(&err);
        assert!(text.starts_with(&format!("on node {}", pool.members[second].config.name)), "{text}");
    });
}

fn fbuild_error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_two_platform_target_on_two_single_platform_nodes_is_one_index_with_both_images() {
    let daemons = [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    run_ok(fbuild(config.path()).args([
        "builder",
        "create",
        "two",
        &daemons[0].addr,
        "--node",
        "amd",
        "--platform",
        "linux/amd64",
    ]));
    run_ok(fbuild(config.path()).args([
        "builder",
        "append",
        "two",
        &daemons[1].addr,
        "--node",
        "x86",
        "--platform",
        "linux/386",
    ]));
    let repo = format!("pool-split-{}", util::unique());
    let name = format!("{}/{repo}:v1", util::testenv().registry);
    let dir = util::tempdir();
    let hcl = format!(
        "target \"app\" {{\n  dockerfile-inline = \"FROM scratch\\nARG TARGETPLATFORM\\nCOPY x /x\\n\"\n  \
         platforms = [\"linux/amd64\", \"linux/386\"]\n  \
         output = [\"type=image,name={name},push=true,registry.insecure=true\"]\n}}\n"
    );
    util::write_files(dir.path(), &[("docker-bake.hcl", &hcl), ("x", &util::unique())]);
    let output = fbuild(config.path())
        .current_dir(dir.path())
        .args(["--builder", "two", "bake", "app", "--progress", "plain"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Each platform built on its node, labelled so.
    assert!(stderr.contains("[app on amd linux/amd64]"), "{stderr}");
    assert!(stderr.contains("[app on x86 linux/386]"), "{stderr}");
    assert!(stderr.contains("on node amd+x86"), "{stderr}");

    // One index under the tag, with one image per platform (and each
    // image's provenance attestation, as buildx joins them).
    let index = util::registry_manifest(&repo, "v1").expect("the tag was pushed");
    let manifests = index["manifests"].as_array().expect("an index");
    let attestations =
        manifests.iter().filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest").count();
    assert_eq!(attestations, 2, "{index}");
    let mut platforms: Vec<String> = manifests
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"].is_null())
        .map(|m| {
            format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap())
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/386", "linux/amd64"], "{index}");
    let digest = util::registry_digest(&repo, "v1");
    assert!(stderr.contains(&format!("({digest})")), "the summary names the index:\n{stderr}");

    // The same index buildx makes of the same builder (without attestations,
    // which record each run's own build).
    let bake_to = |tag: &str, program: &mut assert_cmd::Command| {
        let hcl = hcl.replace(":v1,", &format!(":{tag},"));
        std::fs::write(dir.path().join("docker-bake.hcl"), hcl).unwrap();
        run_ok(program.current_dir(dir.path()).env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1").args([
            "--builder",
            "two",
            "bake",
            "app",
        ]));
    };
    bake_to("fbuild", &mut fbuild(config.path()));
    bake_to("buildx", &mut buildx(config.path()));
    let ours = util::registry_manifest(&repo, "fbuild").unwrap();
    assert_eq!(ours["manifests"].as_array().unwrap().len(), 2, "{ours}");
    assert_eq!(util::registry_digest(&repo, "fbuild"), util::registry_digest(&repo, "buildx"));

    // A platform no node builds is refused before anything is built.
    let hcl = "target \"app\" {\n  dockerfile-inline = \"FROM scratch\\n\"\n  platforms = [\"linux/amd64\", \"linux/arm64\"]\n}\n";
    std::fs::write(dir.path().join("docker-bake.hcl"), hcl).unwrap();
    let output =
        fbuild(config.path()).current_dir(dir.path()).args(["--builder", "two", "bake", "app"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no node of builder \"two\" builds linux/arm64"), "{stderr}");
}

#[test]
fn a_node_killed_mid_bake_fails_the_targets_on_it_naming_the_node() {
    let config_file = util::testenv().root.join("buildkitd.toml");
    let with_config = || PrivateDaemon::start([std::ffi::OsStr::new("--config"), config_file.as_os_str()]);
    let mut daemons = [with_config(), with_config()];
    let config = util::tempdir();
    make_builder(config.path(), "mid", &[&daemons[0], &daemons[1]]);
    let dir = util::tempdir();
    // A target the hash sends to n2 (the one to kill) and one it sends to n1.
    let key = |t: &str| format!("{}\0{t}", dir.path().display());
    let on = |node: &str| (0..).map(|i| format!("t{i}")).find(|t| predicted(&key(t), &["n1", "n2"]) == node).unwrap();
    let (slow, quick) = (on("n2"), on("n1"));
    let busybox = &util::testenv().busybox;
    let hcl = format!(
        "group \"default\" {{\n  targets = [\"{slow}\", \"{quick}\"]\n}}\n\
         target \"{slow}\" {{\n  dockerfile-inline = \"FROM {busybox}\\nRUN echo {stamp} && sleep 60\\n\"\n}}\n\
         target \"{quick}\" {{\n  dockerfile-inline = \"FROM {busybox}\\nRUN echo {stamp}\\n\"\n}}\n",
        stamp = util::unique()
    );
    util::write_files(dir.path(), &[("docker-bake.hcl", &hcl)]);
    let log = dir.path().join("bake.log");
    let mut bake = std::process::Command::new(util::fbuild_binary())
        .current_dir(dir.path())
        .env_remove("BUILDKIT_HOST")
        .env_remove("BUILDX_BUILDER")
        .env("DOCKER_CONFIG", config.path())
        .env("NO_COLOR", "1")
        .args(["--builder", "mid", "bake", "--progress", "plain"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Kill n2 once its target's slow step runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let running = format!("[{slow} on n2] [2/2] RUN echo");
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&running) {
            break;
        }
        assert!(bake.try_wait().unwrap().is_none(), "the bake ended before the slow step ran:\n{text}");
        assert!(std::time::Instant::now() < deadline, "the slow step never started:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    daemons[1].kill();
    let status = bake.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let failed = stderr.lines().find(|l| l.starts_with(&format!("{slow} ")) && l.contains("FAILED"));
    assert!(failed.is_some_and(|l| l.contains(" FAILED on node n2: ")), "{stderr}");
    // Not retried elsewhere: its solve had started.
    assert!(!stderr.contains("went away before the solve started"), "{stderr}");
}

#[test]
fn the_shared_cache_lets_a_cold_node_hit_and_solve_routes_on_the_pool() {
    let config_file = util::testenv().root.join("buildkitd.toml");
    let with_config = || PrivateDaemon::start([std::ffi::OsStr::new("--config"), config_file.as_os_str()]);
    let (warm, cold) = (with_config(), with_config());
    let config = util::tempdir();
    let cache = format!("{}/pool-cache-{}", util::testenv().registry, util::unique());
    run_ok(fbuild(config.path()).args(["builder", "create", "first", &warm.addr, "--node", "warm", "--cache", &cache]));
    run_ok(
        fbuild(config.path()).args(["builder", "create", "second", &cold.addr, "--node", "cold", "--cache", &cache]),
    );
    let dir = util::tempdir();
    let busybox = &util::testenv().busybox;
    let hcl = format!(
        "group \"default\" {{\n  targets = [\"app\"]\n}}\n\
         target \"app\" {{\n  dockerfile-inline = \"FROM {busybox}\\nRUN echo {} > /stamp\\n\"\n}}\n",
        util::unique()
    );
    util::write_files(dir.path(), &[("docker-bake.hcl", &hcl)]);

    // Built on one node, exported to the shared cache...
    let (_, stderr) = bake(config.path(), "first", dir.path());
    let (_, cached) = steps_and_cached(&stderr);
    assert_eq!(cached, 0, "{stderr}");
    // ...and a node that never built it imports it: the RUN step is cached.
    let (nodes, stderr) = bake(config.path(), "second", dir.path());
    assert_eq!(nodes["app"], "cold", "{stderr}");
    assert!(stderr.contains(&format!("importing cache manifest from {cache}:fbuild-")), "{stderr}");
    // (The FROM step is the cold node's own pull, never from a cache.)
    let run = stderr
        .lines()
        .find(|l| l.contains("[app on cold] [2/2] RUN echo"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no RUN step:\n{stderr}"));
    assert!(stderr.lines().any(|l| l == format!("{run} CACHED")), "the RUN step was not cached:\n{stderr}");

    // `fbuild solve` routes on a pool too, and names the node.
    util::write_files(dir.path(), &[("Dockerfile", "FROM scratch\nCOPY docker-bake.hcl /\n")]);
    let solved = run_ok(fbuild(config.path()).args(["--builder", "second", "solve"]).arg(dir.path()));
    assert!(solved.contains("building on node cold of builder second"), "{solved}");
}

#[test]
fn targets_linked_by_target_contexts_stay_on_one_node() {
    let daemons = [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    make_builder(config.path(), "linked", &[&daemons[0], &daemons[1]]);
    let dir = util::tempdir();
    // Names the hash alone would send to different nodes.
    let key = |t: &str| format!("{}\0{t}", dir.path().display());
    let base = "base".to_string();
    let base_node = predicted(&key(&base), &["n1", "n2"]);
    let app = (0..).map(|i| format!("app{i}")).find(|t| predicted(&key(t), &["n1", "n2"]) != base_node).unwrap();
    let hcl = format!(
        "group \"default\" {{\n  targets = [\"{app}\"]\n}}\n\
         target \"{base}\" {{\n  dockerfile-inline = \"FROM scratch\\nCOPY x /x\\n\"\n}}\n\
         target \"{app}\" {{\n  contexts = {{ base = \"target:{base}\" }}\n  \
         dockerfile-inline = \"FROM base\\nCOPY y /y\\n\"\n}}\n"
    );
    util::write_files(dir.path(), &[("docker-bake.hcl", &hcl), ("x", &util::unique()), ("y", "y")]);
    let (nodes, stderr) = bake(config.path(), "linked", dir.path());
    assert_eq!(nodes.get(&base), Some(&base_node), "{stderr}");
    assert_eq!(nodes.get(&app), Some(&base_node), "{stderr}");
}

#[test]
fn solve_splits_a_two_platform_build_over_two_single_platform_nodes() {
    let daemons = [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    for (verb, daemon, node, platform) in
        [("create", &daemons[0], "amd", "linux/amd64"), ("append", &daemons[1], "x86", "linux/386")]
    {
        run_ok(fbuild(config.path()).args([
            "builder",
            verb,
            "two",
            &daemon.addr,
            "--node",
            node,
            "--platform",
            platform,
        ]));
    }
    let repo = format!("pool-solve-split-{}", util::unique());
    let name = format!("{}/{repo}:v1", util::testenv().registry);
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nARG TARGETPLATFORM\nCOPY x /x\n"), ("x", &util::unique())],
    );
    let output = fbuild(config.path())
        .args(["--builder", "two", "solve", "--platform", "linux/amd64,linux/386", "--progress", "plain", "-o"])
        .arg(format!("type=image,name={name},push=true,registry.insecure=true"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("building linux/amd64 on node amd, linux/386 on node x86 of builder two"), "{stderr}");
    // Each part's steps are labelled with its node and platform.
    assert!(stderr.contains("[amd linux/amd64] "), "{stderr}");
    assert!(stderr.contains("[x86 linux/386] "), "{stderr}");

    // One index under the tag, one image per platform.
    let index = util::registry_manifest(&repo, "v1").expect("the tag was pushed");
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"].is_null())
        .map(|m| {
            format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap())
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/386", "linux/amd64"], "{index}");

    // One platform goes to the node that builds it (the native compiler
    // holds the platform; routing must still see it).
    for (platform, node) in [("linux/386", "x86"), ("linux/amd64", "amd")] {
        let solved =
            run_ok(fbuild(config.path()).args(["--builder", "two", "solve", "--platform", platform]).arg(dir.path()));
        assert!(solved.contains(&format!("building on node {node} of builder two")), "{platform}: {solved}");
    }

    // Without a push the parts cannot meet: refused before anything builds, saying why.
    let output = fbuild(config.path())
        .args(["--builder", "two", "solve", "--platform", "linux/amd64,linux/386"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("must be pushed to be joined"), "{stderr}");
}

#[test]
fn history_reads_every_node_of_a_builder_as_buildx_does() {
    let daemons = [PrivateDaemon::start(["--debug"]), PrivateDaemon::start(["--debug"])];
    let config = util::tempdir();
    make_builder(config.path(), "hist2", &[&daemons[0], &daemons[1]]);
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY x /x\n"), ("x", &util::unique())]);
    // One build straight on each node (n2's first, so the newest is n1's).
    for daemon in [&daemons[1], &daemons[0]] {
        run_ok(util::fbuild().env("BUILDKIT_HOST", &daemon.addr).arg("solve").arg(project.path()));
    }
    let json_lines = |out: &str| -> Vec<serde_json::Value> {
        out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
    };
    let ls = |cmd: &mut assert_cmd::Command| {
        let output = cmd.args(["--builder", "hist2", "history", "ls", "--format", "json"]).output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        json_lines(&text(&output.stdout))
    };
    let ours = ls(&mut fbuild(config.path()));
    let theirs = ls(&mut buildx(config.path()));
    assert_eq!(ours.len(), 2, "a build on each node: {ours:#?}");
    assert_eq!(ours, theirs, "history ls --format json");
    let refs: Vec<&str> = ours.iter().map(|r| r["ref"].as_str().unwrap()).collect();
    assert!(refs[0].starts_with("hist2/n1/") && refs[1].starts_with("hist2/n2/"), "{refs:?}");

    // inspect and logs find each build on the node that holds it.
    for full in &refs {
        let reference = full.rsplit('/').next().unwrap();
        let inspect = |cmd: &mut assert_cmd::Command| -> serde_json::Value {
            let output =
                cmd.args(["--builder", "hist2", "history", "inspect", reference, "--format", "json"]).output().unwrap();
            assert!(output.status.success(), "{}", text(&output.stderr));
            serde_json::from_slice(&output.stdout).unwrap()
        };
        assert_eq!(inspect(&mut fbuild(config.path())), inspect(&mut buildx(config.path())), "inspect {reference}");
        let output = fbuild(config.path()).args(["--builder", "hist2", "history", "logs", reference]).output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stderr).contains("COPY x /x"), "{}", text(&output.stderr));
    }
    // ^1 counts over both nodes: the older build, on n2.
    let output = fbuild(config.path())
        .args(["--builder", "hist2", "history", "inspect", "^1", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let second: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(second["Ref"].as_str().unwrap(), refs[1].rsplit('/').next().unwrap());
}
