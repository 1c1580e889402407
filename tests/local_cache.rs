//! Local cache folders (`--cache-to/--cache-from type=local`) on real
//! daemons: a cache survives a pruned (or a fresh) daemon, the folder stays
//! bounded across rebuilds, tags share a folder, and a killed export leaves
//! the previous cache usable.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{self, PrivateDaemon};

/// A private daemon with the test environment's config (the loopback
/// registry is plain HTTP), so `prune --all` and fresh state touch no one else.
fn start_daemon() -> PrivateDaemon {
    let config = util::testenv().root.join("buildkitd.toml");
    PrivateDaemon::start([OsStr::new("--config"), config.as_os_str()])
}

/// A three-stage project whose steps all produce layers; `requirements`
/// feeds the deps stage.
fn project(dir: &Path, requirements: &str) {
    let dockerfile = format!(
        "FROM {base} AS base\n\
         WORKDIR /app\n\
         FROM base AS deps\n\
         COPY requirements.txt .\n\
         RUN cp requirements.txt deps.lock && head -c 300000 /dev/urandom > deps.bin\n\
         FROM base AS runner\n\
         COPY --from=deps /app/deps.lock /app/deps.bin ./\n\
         COPY app.py .\n\
         RUN echo built > built.txt\n",
        base = util::testenv().busybox
    );
    util::write_files(
        dir,
        &[("Dockerfile", dockerfile.as_str()), ("requirements.txt", requirements), ("app.py", "print('hi')\n")],
    );
}

/// The Dockerfile steps (`[stage n/m] ...`) that ran rather than came from
/// the cache, from rawjson progress.
fn steps_not_cached(rawjson: &str) -> Vec<String> {
    let mut steps: std::collections::BTreeMap<String, bool> = Default::default();
    for line in rawjson.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        for vertex in value["vertexes"].as_array().into_iter().flatten() {
            let name = vertex["name"].as_str().unwrap_or_default();
            let is_step = name.starts_with('[')
                && !name.starts_with("[internal]")
                && !name.starts_with("[fbuild]")
                && !name.contains(" FROM ");
            if is_step {
                let cached = vertex["cached"].as_bool().unwrap_or(false);
                *steps.entry(name.to_string()).or_default() |= cached;
            }
        }
    }
    assert!(!steps.is_empty(), "no Dockerfile steps in the progress:\n{rawjson}");
    steps.into_iter().filter(|(_, cached)| !cached).map(|(name, _)| name).collect()
}

fn folder_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| if m.is_file() { m.len() } else { 0 })
        .sum()
}

fn prune_all(daemon: &PrivateDaemon) {
    daemon.fbuild().args(["prune", "--all"]).assert().success();
}

#[test]
fn a_local_cache_survives_a_pruned_daemon() {
    let daemon = start_daemon();
    let work = util::tempdir();
    let cache = work.path().join("cache");
    project(work.path(), "flask==3.0\n");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let from = format!("type=local,src={}", cache.display());

    // The first CI run: nothing to import yet is a warning, not a failure.
    let first = daemon.solve_rawjson(work.path(), &["--cache-from", &from, "--cache-to", &to]);
    assert!(util::rawjson_warnings(&first).iter().any(|w| w.starts_with("no cache in")), "{first}");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "latest");

    prune_all(&daemon);
    let second = daemon.solve_rawjson(work.path(), &["--cache-from", &from]);
    assert_eq!(steps_not_cached(&second), Vec::<String>::new(), "{second}");

    // buildctl reads the folder fbuild wrote.
    prune_all(&daemon);
    let dir = work.path().display().to_string();
    let output = daemon
        .buildctl()
        .args(["build", "--frontend", "dockerfile.v0", "--progress", "rawjson"])
        .args(["--local", &format!("context={dir}"), "--local", &format!("dockerfile={dir}")])
        .args(["--import-cache", &format!("type=local,src={}", cache.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(steps_not_cached(&util::text(&output.stderr)), Vec::<String>::new());
}

#[test]
fn a_local_cache_stays_bounded_and_keeps_every_tag() {
    let daemon = start_daemon();
    let work = util::tempdir();
    let cache = work.path().join("cache");
    let to = |tag: &str| format!("type=local,dest={},mode=max,tag={tag}", cache.display());
    let from = |tag: &str| format!("type=local,src={},tag={tag}", cache.display());

    project(work.path(), "requests==1\n");
    daemon.solve_rawjson(work.path(), &["--cache-to", &to("main")]);
    let single = folder_size(&cache);
    for round in 2..=5 {
        project(work.path(), &format!("requests=={round}\n"));
        daemon.solve_rawjson(work.path(), &["--cache-from", &from("main"), "--cache-to", &to("main")]);
        let size = folder_size(&cache);
        assert!(size as f64 <= single as f64 * 1.2, "round {round}: {size} bytes, one export is {single}");
    }
    prune_all(&daemon);
    let last = daemon.solve_rawjson(work.path(), &["--cache-from", &from("main")]);
    assert_eq!(steps_not_cached(&last), Vec::<String>::new(), "the last export imports fully");

    // A second tag in the same folder: exporting one never drops the other's blobs.
    let pr = util::tempdir();
    project(pr.path(), "requests==pr\n");
    daemon.solve_rawjson(pr.path(), &["--cache-to", &to("pr")]);
    project(work.path(), "requests==6\n");
    daemon.solve_rawjson(work.path(), &["--cache-to", &to("main")]);
    prune_all(&daemon);
    for (dir, tag) in [(pr.path(), "pr"), (work.path(), "main")] {
        let out = daemon.solve_rawjson(dir, &["--cache-from", &from(tag)]);
        assert_eq!(steps_not_cached(&out), Vec::<String>::new(), "tag {tag}:\n{out}");
    }

    // fbuild cache ls shows both tags; gc has nothing left to collect.
    let ls = daemon.fbuild().args(["cache", "ls"]).arg(&cache).output().unwrap();
    let listing = util::text(&ls.stdout);
    assert!(ls.status.success() && listing.contains("main") && listing.contains("pr"), "{listing}");
    let gc = daemon.fbuild().args(["cache", "gc"]).arg(&cache).output().unwrap();
    assert!(util::text(&gc.stderr).contains("removed 0 blobs"), "{}", util::text(&gc.stderr));
}

#[test]
fn an_export_killed_half_way_leaves_the_previous_cache_usable() {
    let daemon = start_daemon();
    let work = util::tempdir();
    let cache = work.path().join("cache");
    project(work.path(), "a\n");
    let to = format!("type=local,dest={},mode=max", cache.display());
    daemon.solve_rawjson(work.path(), &["--cache-to", &to]);
    let before = std::fs::read(cache.join("index.json")).unwrap();

    // A 40 MB layer takes long enough to send that the kill lands mid-blob.
    util::write_files(
        work.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN head -c 40000000 /dev/urandom > /big\n", util::testenv().busybox))],
    );
    let mut child = std::process::Command::new(util::fbuild_binary())
        .args(["--addr", &daemon.addr, "solve", "--progress", "plain", "--cache-to", &to])
        .arg(work.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ingest = cache.join(".fbuild-ingest");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_mid_blob = false;
    while Instant::now() < deadline {
        let writing = std::fs::read_dir(&ingest)
            .map(|entries| entries.flatten().any(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false)))
            .unwrap_or(false);
        if writing {
            child.kill().unwrap();
            killed_mid_blob = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    assert!(killed_mid_blob, "the export never started writing a large blob");
    assert_eq!(std::fs::read(cache.join("index.json")).unwrap(), before, "index.json is the previous one");

    project(work.path(), "a\n");
    prune_all(&daemon);
    let from = format!("type=local,src={}", cache.display());
    let out = daemon.solve_rawjson(work.path(), &["--cache-from", &from, "--cache-to", &to]);
    assert_eq!(steps_not_cached(&out), Vec::<String>::new(), "{out}");
    // That export collected the killed one's leftovers.
    assert!(std::fs::read_dir(&ingest).map_or(true, |mut e| e.next().is_none()));
}

#[test]
fn bad_local_cache_folders_are_refused_before_the_build() {
    let work = util::tempdir();
    project(work.path(), "a\n");
    let not_a_cache = work.path().join("notes");
    std::fs::create_dir(&not_a_cache).unwrap();
    std::fs::write(not_a_cache.join("readme.txt"), "x").unwrap();
    let digest = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--cache-to".into(), "type=local".into()], "type=local needs dest=DIR"),
        (vec!["--cache-from".into(), "type=local,dest=x".into()], "type=local needs src=DIR"),
        (vec!["--cache-to".into(), "type=local,dest=x,colour=red".into()], "unknown attribute \"colour\""),
        (
            vec!["--cache-from".into(), format!("type=local,src={}", not_a_cache.display())],
            "is not an OCI layout folder",
        ),
    ];
    for (args, problem) in cases {
        let output = util::fbuild().arg("solve").arg(work.path()).args(&args).output().unwrap();
        let stderr = util::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
        assert!(!stderr.contains("#1 "), "nothing was built: {stderr}");
    }
    // An explicit digest the folder does not have.
    let cache = work.path().join("cache");
    let to = format!("type=local,dest={}", cache.display());
    util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).assert().success();
    let from = format!("type=local,src={},digest={digest}", cache.display());
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-from", &from]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("has no blob {digest}")), "{stderr}");
    assert!(stderr.contains(&cache.display().to_string()), "the folder is named: {stderr}");

    // A corrupt cache manifest (its bytes no longer hash to its name).
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    std::fs::write(cache.join("blobs/sha256").join(&manifest), b"{}").unwrap();
    let from = format!("type=local,src={}", cache.display());
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-from", &from]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("blob sha256:{manifest} is corrupt")), "{stderr}");
    assert!(!stderr.contains("#1 "), "nothing was built: {stderr}");
}

/// A project whose RUN step "downloads" each requirement into two cache
/// mounts (one plain, one owned by uid 1000) unless a file for it is there
/// already, and records what it found there before.
fn mounts_project(dir: &Path, requirements: &str) {
    let dockerfile = format!(
        "FROM {base}\n\
         COPY requirements.txt /req\n\
         RUN --mount=type=cache,target=/root/.cache/pip \\\n\
         \x20   --mount=type=cache,id=wheels,target=/wheels,uid=1000,gid=1000,mode=0750 \\\n\
         \x20   ls /root/.cache/pip > /seen && ls -ln /wheels | tail -n +2 | awk '{{print $3, $9}}' > /seen-wheels && \\\n\
         \x20   for p in $(cat /req); do [ -f /root/.cache/pip/$p ] || echo downloaded > /root/.cache/pip/$p; \\\n\
         \x20   [ -f /wheels/$p ] || {{ echo wheel > /wheels/$p; chown 1000:1000 /wheels/$p; }}; done\n",
        base = util::testenv().busybox
    );
    util::write_files(dir, &[("Dockerfile", dockerfile.as_str()), ("requirements.txt", requirements)]);
}

/// A helper image the daemon cannot pull fails the save with the image's
/// name and a hint naming the attribute and variable that pick another.
#[test]
fn a_helper_image_that_cannot_be_pulled_is_named_with_a_hint() {
    let work = util::tempdir();
    mounts_project(work.path(), "flask\n");
    let helper = format!("{}/fbuild-no-such-helper:latest", util::testenv().registry);
    let to = format!("type=local,dest={},mounts=true,helper-image={helper}", work.path().join("cache").display());
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the helper build failed (helper image {helper})")), "{stderr}");
    assert!(
        stderr.contains(&format!("hint: cache mounts are copied in the helper image {helper}"))
            && stderr.contains("FBUILD_CACHE_HELPER_IMAGE=IMAGE"),
        "{stderr}"
    );
}

#[test]
fn cache_mounts_travel_to_a_fresh_runner() {
    let work = util::tempdir();
    let cache = work.path().join("cache");
    let helper = ("FBUILD_CACHE_HELPER_IMAGE", util::testenv().busybox.clone());

    // Runner 1: builds, exports layers and cache mounts.
    mounts_project(work.path(), "flask\nrequests\n");
    let runner1 = start_daemon();
    let to = format!("type=local,dest={},mode=max,mounts=true", cache.display());
    let output = runner1
        .fbuild()
        .env(helper.0, &helper.1)
        .arg("solve")
        .arg(work.path())
        .args(["--progress", "plain", "--cache-to", &to])
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("cache mounts saved to"), "{stderr}");
    drop(runner1);
    let listing = util::fbuild().args(["cache", "ls", "--format", "json"]).arg(&cache).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let carried: Vec<&str> =
        listing["tags"][0]["mounts"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(carried, ["/root/.cache/pip", "wheels"], "{listing}");

    // Runner 2, fresh: the same inputs are fully cached; after a dependency
    // change the RUN step finds runner 1's downloads in its cache mounts,
    // with their owners.
    let runner2 = start_daemon();
    let from = format!("type=local,src={}", cache.display());
    let same = runner2
        .fbuild()
        .env(helper.0, &helper.1)
        .arg("solve")
        .arg(work.path())
        .args(["--progress", "rawjson", "-v", "--cache-from", &from])
        .output()
        .unwrap();
    let same_err = util::text(&same.stderr);
    assert!(same.status.success(), "{same_err}");
    assert_eq!(steps_not_cached(&same_err), Vec::<String>::new(), "{same_err}");
    // The record carried in the folder foresees every step cached: no cache
    // mount is worth restoring.
    let warnings = util::rawjson_warnings(&same_err);
    assert!(
        warnings.iter().any(|w| w.contains("cache mounts not restored: /root/.cache/pip, wheels")),
        "{warnings:?}\n{same_err}"
    );
    assert!(!same_err.contains("restored /root/.cache/pip"), "{same_err}");

    mounts_project(work.path(), "flask\nrequests\nnumpy\n");
    let out = work.path().join("out");
    let changed = runner2
        .fbuild()
        .env(helper.0, &helper.1)
        .arg("solve")
        .arg(work.path())
        .args([
            "--progress",
            "rawjson",
            "-v",
            "--cache-from",
            &from,
            "-o",
            &format!("type=local,dest={}", out.display()),
        ])
        .output()
        .unwrap();
    let changed_err = util::text(&changed.stderr);
    assert!(changed.status.success(), "{changed_err}");
    assert_eq!(util::rawjson_step_cached(&changed_err, "RUN --mount"), Some(false), "the dependency change reruns it");
    // The step that runs gets its mounts (the unchanged build restored none).
    assert!(changed_err.contains("restored /root/.cache/pip, wheels"), "{changed_err}");
    assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "flask\nrequests\n");
    assert_eq!(std::fs::read_to_string(out.join("seen-wheels")).unwrap(), "1000 flask\n1000 requests\n");

    // What buildctl lacks: the same story with its local cache gives a
    // fresh runner's RUN step an empty cache mount.
    mounts_project(work.path(), "flask\nrequests\n");
    let theirs = work.path().join("buildctl-cache");
    let dir = work.path().display().to_string();
    let buildctl_build = |daemon: &PrivateDaemon, extra: &[String]| {
        let output = daemon
            .buildctl()
            .args(["build", "--frontend", "dockerfile.v0", "--progress", "plain"])
            .args(["--local", &format!("context={dir}"), "--local", &format!("dockerfile={dir}")])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", util::text(&output.stderr));
    };
    let runner3 = start_daemon();
    buildctl_build(&runner3, &["--export-cache".into(), format!("type=local,dest={},mode=max", theirs.display())]);
    drop(runner3);
    let runner4 = start_daemon();
    mounts_project(work.path(), "flask\nrequests\nnumpy\n");
    let their_out = work.path().join("their-out");
    buildctl_build(
        &runner4,
        &[
            "--import-cache".into(),
            format!("type=local,src={}", theirs.display()),
            "--output".into(),
            format!("type=local,dest={}", their_out.display()),
        ],
    );
    assert_eq!(std::fs::read_to_string(their_out.join("seen")).unwrap(), "", "buildctl carries no cache mounts");
}

/// Every blob of an OCI layout folder hashes to its name, and every
/// descriptor reachable from index.json points at a blob of its size.
pub(crate) fn assert_valid_layout(dir: &Path) {
    use sha2::Digest as _;
    let layout: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), entry.file_name().to_str().unwrap());
    }
    let mut pending: Vec<serde_json::Value> =
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
            ["manifests"]
            .as_array()
            .unwrap()
            .clone();
    let mut seen = 0;
    while let Some(descriptor) = pending.pop() {
        let hex = descriptor["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        let bytes = std::fs::read(dir.join("blobs/sha256").join(&hex)).unwrap_or_else(|_| panic!("missing blob {hex}"));
        assert_eq!(bytes.len() as u64, descriptor["size"].as_u64().unwrap(), "size of {hex}");
        seen += 1;
        // Manifests and indexes have children; image configs do not.
        let document =
            serde_json::from_slice::<serde_json::Value>(&bytes).ok().filter(|d| d.get("schemaVersion").is_some());
        if let Some(document) = document {
            pending.extend(document.get("config").cloned());
            for key in ["layers", "manifests"] {
                pending.extend(document[key].as_array().into_iter().flatten().cloned());
            }
        }
    }
    assert!(seen >= 3, "an index entry, a manifest's config and a layer at least");
}

#[test]
fn an_oci_layout_folder_is_written_and_read_back_as_a_build_context() {
    let work = util::tempdir();
    util::write_files(
        work.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo from-the-layout > /marker\n", util::testenv().busybox))],
    );
    let layout = work.path().join("layout");
    let output = util::fbuild()
        .arg("solve")
        .arg(work.path())
        .args(["-t", "example.com/app:v1", "-o", &format!("type=oci,dest={},tar=false", layout.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_valid_layout(&layout);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v1");
    assert_eq!(annotations["io.containerd.image.name"], "example.com/app:v1");
    let ours = util::tempdir();
    util::write_files(ours.path(), &[("Dockerfile", "FROM base\nRUN cat /marker > /seen\n")]);
    let out = work.path().join("out");
    for (i, reference) in [
        format!("{}:v1", layout.display()),
        layout.display().to_string() + "@" + index["manifests"][0]["digest"].as_str().unwrap(),
    ]
    .iter()
    .enumerate()
    {
        let dest = out.join(i.to_string());
        let output = util::fbuild()
            .arg("solve")
            .arg(ours.path())
            .args(["--build-context", &format!("base=oci-layout://{reference}")])
            .args(["-o", &format!("type=local,dest={}", dest.display())])
            .output()
            .unwrap();
        assert!(output.status.success(), "{reference}: {}", util::text(&output.stderr));
        assert_eq!(std::fs::read_to_string(dest.join("seen")).unwrap(), "from-the-layout\n");
    }
    // An unknown tag is refused before the build, naming the tags there.
    let output = util::fbuild()
        .arg("solve")
        .arg(ours.path())
        .args(["--build-context", &format!("base=oci-layout://{}:v2", layout.display())])
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no entry tagged \"v2\" (tags: v1)"), "{stderr}");
}

#[test]
fn a_full_disk_fails_the_export_and_leaves_the_folder_as_it_was() {
    let disk = util::SmallDisk::mount("3m");
    let cache = disk.path().join("cache");
    let work = util::tempdir();
    project(work.path(), "a\n");
    let to = format!("type=local,dest={},mode=max", cache.display());
    util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).assert().success();
    let index = std::fs::read(cache.join("index.json")).unwrap();
    let blobs_before: Vec<_> =
        std::fs::read_dir(cache.join("blobs/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();

    util::write_files(
        work.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN head -c 8000000 /dev/urandom > /big\n", util::testenv().busybox))],
    );
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot write a blob into {}: No space left on device", cache.display())),
        "{stderr}"
    );
    assert!(!stderr.contains(".fbuild-ingest"), "no staging names: {stderr}");
    assert_eq!(std::fs::read(cache.join("index.json")).unwrap(), index, "index.json is untouched");
    let ingest = cache.join(".fbuild-ingest");
    assert!(std::fs::read_dir(&ingest).map_or(true, |mut e| e.next().is_none()), "no partial blob is left");
    // Blobs that landed before the disk filled are unreferenced: the next
    // collection removes them, and what index.json names is all there.
    util::fbuild().args(["cache", "gc"]).arg(&cache).assert().success();
    let blobs_after: Vec<_> =
        std::fs::read_dir(cache.join("blobs/sha256")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(blobs_after.len(), blobs_before.len());
}
