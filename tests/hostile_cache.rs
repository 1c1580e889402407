//! Issue 20, "trust nothing, round 2": a cache folder is untrusted input (CI
//! restores it from places a fork's pull request can write), and an output
//! destination is the user's, not ours to replace. Each test reproduces a
//! defect found in review and failed before the fix; none reads, writes or
//! deletes anything outside the folders it makes.
#![allow(clippy::print_stderr)] // timings are printed for the notes (`--nocapture`)

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fbuild::cache::layout::{BlobDigest, OciLayout};
use oci_spec::image::{Descriptor, MediaType};

use crate::trust::tree_hash;
use crate::util;

/// How long a command may take before it counts as hung (a FIFO read).
const HANG: Duration = Duration::from_secs(60);

fn descriptor(digest: &BlobDigest, size: usize, media_type: MediaType) -> Descriptor {
    Descriptor::new(media_type, size as u64, digest.as_str().parse::<oci_spec::image::Digest>().unwrap())
}

/// A cache folder with `tags` tags, each on a manifest of its own with one
/// layer, and one blob no tag reaches. Written directly (one `index.json`,
/// no fsync per blob), so thousands of tags take no time to make.
fn cache_folder(dir: &Path, tags: usize) -> OciLayout {
    let layout = OciLayout::create(dir).unwrap();
    let put = |bytes: &[u8]| {
        let digest = BlobDigest::of(bytes);
        std::fs::write(layout.blob_path(&digest), bytes).unwrap();
        digest
    };
    let layer = put(b"a layer");
    let mut entries = Vec::with_capacity(tags);
    for i in 0..tags {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layer.as_str(), "size": 7},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.as_str(), "size": 7}],
            "annotations": {"n": i.to_string()},
        })
        .to_string();
        let digest = put(manifest.as_bytes());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.as_str(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": format!("tag-{i}")},
        }));
    }
    put(b"unreferenced");
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    layout
}

/// A folder outside the cache with a file in it, and its state.
fn outside() -> (tempfile::TempDir, std::collections::BTreeMap<String, String>) {
    let dir = util::tempdir();
    util::write_files(dir.path(), &[("precious", "keep me"), ("sha256/also-precious", "keep me too")]);
    let state = tree_hash(dir.path());
    (dir, state)
}

/// `CACHE/.fbuild-ingest -> DIR` made `fbuild cache gc` delete DIR's files;
/// `CACHE/blobs -> OTHER/blobs` deleted OTHER's unreferenced blobs;
/// `CACHE/.fbuild-lock -> PATH` created a file at PATH. Now nothing outside
/// the folder changes: a link is removed or refused, never followed.
#[test]
fn collection_never_touches_what_links_in_the_folder_point_at() {
    // The ingest folder as a link.
    let work = util::tempdir();
    let cache = work.path().join("cache");
    cache_folder(&cache, 1);
    let (target, before) = outside();
    let _ = std::fs::remove_dir(cache.join(".fbuild-ingest"));
    std::os::unix::fs::symlink(target.path(), cache.join(".fbuild-ingest")).unwrap();
    let output = util::fbuild().args(["cache", "gc"]).arg(&cache).output().unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(tree_hash(target.path()), before, "the linked folder's files are all there");

    // blobs/ as a link to another cache's.
    let other = work.path().join("other");
    cache_folder(&other, 1);
    let other_before = tree_hash(&other);
    let cache = work.path().join("cache2");
    cache_folder(&cache, 1);
    std::fs::remove_dir_all(cache.join("blobs")).unwrap();
    std::os::unix::fs::symlink(other.join("blobs"), cache.join("blobs")).unwrap();
    let output = util::fbuild().args(["cache", "gc"]).arg(&cache).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blobs is a symbolic link, not a folder"), "{stderr}");
    assert_eq!(tree_hash(&other), other_before, "the other folder keeps its unreferenced blob");

    // The lock file as a link to a path that does not exist yet.
    let cache = work.path().join("cache3");
    cache_folder(&cache, 1);
    let (target, before) = outside();
    let planted = target.path().join("planted");
    std::fs::remove_file(cache.join(".fbuild-lock")).ok();
    std::os::unix::fs::symlink(&planted, cache.join(".fbuild-lock")).unwrap();
    let output = util::fbuild().args(["cache", "gc"]).arg(&cache).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(".fbuild-lock is a symbolic link, not a file"), "{stderr}");
    assert!(!planted.exists(), "no file is created where the link points");
    assert_eq!(tree_hash(target.path()), before);
}

/// `index.json` or a manifest that is a FIFO or `/dev/zero` hung or grew
/// without bound (`cache ls`, `--cache-from`). Now each is refused at once,
/// naming the entry.
#[test]
fn documents_that_never_end_are_refused_not_read() {
    let work = util::tempdir();
    let cache = work.path().join("cache");
    let layout = cache_folder(&cache, 1);
    let manifest = layout.resolve_tag("tag-0").unwrap();
    let manifest = BlobDigest::parse(manifest.digest().as_ref()).unwrap();
    let blob = layout.blob_path(&manifest);
    std::fs::remove_file(&blob).unwrap();
    nix::unistd::mkfifo(&blob, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    util::write_files(work.path(), &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let from = format!("type=local,src={},tag=tag-0", cache.display());
    let output =
        util::fbuild().timeout(HANG).arg("solve").arg(work.path()).args(["--cache-from", &from]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "blobs/sha256/{} is a FIFO, not a file",
            manifest.as_str().trim_start_matches("sha256:")
        )),
        "{stderr}"
    );

    let index = cache.join("index.json");
    for (make, found) in [
        (
            Box::new(|p: &Path| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap())
                as Box<dyn Fn(&Path)>,
            "a FIFO",
        ),
        (Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()), "a symbolic link"),
    ] {
        std::fs::remove_file(&index).unwrap();
        make(&index);
        let started = Instant::now();
        let output = util::fbuild().timeout(HANG).args(["cache", "ls"]).arg(&cache).output().unwrap();
        let stderr = util::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("index.json is {found}, not a file")), "{stderr}");
        assert!(started.elapsed() < HANG / 2, "refused, not read: {:?}", started.elapsed());
    }
}

/// `fbuild cache ls` read `index.json` again for every tag: 4,000 tags took
/// 67 s. It reads it once now; the bound leaves room for a loaded machine.
#[test]
fn listing_is_linear_in_tags() {
    let work = util::tempdir();
    let cache = work.path().join("cache");
    cache_folder(&cache, 4000);
    let started = Instant::now();
    let output = util::fbuild().timeout(HANG).args(["cache", "ls", "--format", "json"]).arg(&cache).output().unwrap();
    let took = started.elapsed();
    eprintln!("cache ls, 4000 tags: {took:?}");
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["tags"].as_array().unwrap().len(), 4000);
    assert!(took < Duration::from_secs(20), "cache ls of 4000 tags took {took:?}");
}

/// A tag is text from the folder: printed raw, `\x1b]0;...` retitles the
/// terminal and `\r` hides what came before. The table escapes them; JSON
/// escapes them already.
#[test]
fn tags_with_terminal_escapes_are_printed_escaped() {
    let work = util::tempdir();
    let cache = work.path().join("cache");
    let layout = cache_folder(&cache, 0);
    let manifest = layout.write_blob(b"{}").unwrap();
    layout.tag(&descriptor(&manifest, 2, MediaType::ImageManifest), &["evil\x1b[31m\r\x07"]).unwrap();
    let output = util::fbuild().args(["cache", "ls"]).arg(&cache).output().unwrap();
    let stdout = util::text(&output.stdout);
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert!(!stdout.contains('\x1b') && !stdout.contains('\r') && !stdout.contains('\x07'), "{stdout:?}");
    assert!(stdout.contains("evil\\u{1b}[31m\\r\\u{7}"), "{stdout}");
}

/// A tar (uncompressed) with one file, `planted`.
fn planted_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "planted", &b"from"[..]).unwrap();
    builder.into_inner().unwrap()
}

/// Writes a carried-mounts list for tag `latest` into `layout`: each mount
/// `(id, target, digest)`, with the tar blob it names when the digest is a
/// real one.
fn plant_mounts_list(layout: &OciLayout, mounts: &[(&str, &str, &str)]) {
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.fbuild.cache-mounts.v1+json",
        "blobs": [],
        "mounts": mounts.iter().map(|(id, target, digest)| serde_json::json!({
            "id": id, "target": target, "sharing": "shared", "uid": null, "gid": null, "mode": null,
            "digest": digest, "size": 1,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let digest = layout.write_blob(list.as_bytes()).unwrap();
    layout
        .put_entries(
            &descriptor(&digest, list.len(), MediaType::Other("application/vnd.fbuild.cache-mounts.v1+json".into())),
            "dev.fbuild.cache-mounts.tag",
            &["latest"],
        )
        .unwrap();
}

/// A carried mount's digest was pasted into the restore script unquoted:
/// `sha256:x; echo ...` ran in the build. Now a digest that is not one fails
/// the restore before anything runs.
#[test]
fn a_mounts_list_cannot_put_commands_into_the_restore_script() {
    let work = util::tempdir();
    let id = format!("pip-{}", util::unique());
    let dockerfile =
        format!("FROM {}\nRUN --mount=type=cache,id={id},target=/cache ls /cache\n", util::testenv().busybox);
    util::write_files(work.path(), &[("Dockerfile", &dockerfile)]);
    let cache = work.path().join("cache");
    let layout = cache_folder(&cache, 0);
    plant_mounts_list(&layout, &[(&id, "/cache", "sha256:x; echo INJECTED-$((6*7)) #")]);
    let output = util::fbuild()
        .env("FBUILD_CACHE_HELPER_IMAGE", &util::testenv().busybox)
        .arg("solve")
        .arg(work.path())
        .args(["--progress", "plain", "--cache-from", &format!("type=local,src={}", cache.display())])
        .output()
        .unwrap();
    let stderr = util::text(&output.stderr);
    assert!(!stderr.contains("INJECTED-42"), "the folder's text ran as a command: {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a sha256 digest") || stderr.contains("not a sha256 digest"), "{stderr}");
}

/// A list could fill any cache id on the daemon (another project's), not
/// only those the Dockerfile declares. Now only declared ids are restored.
#[test]
fn a_mounts_list_cannot_fill_caches_the_dockerfile_does_not_declare() {
    let work = util::tempdir();
    let declared = format!("declared-{}", util::unique());
    let foreign = format!("foreign-{}", util::unique());
    let busybox = &util::testenv().busybox;
    util::write_files(
        work.path(),
        &[("Dockerfile", &format!("FROM {busybox}\nRUN --mount=type=cache,id={declared},target=/cache true\n"))],
    );
    let cache = work.path().join("cache");
    let layout = cache_folder(&cache, 0);
    let tar = planted_tar();
    let tar_digest = layout.write_blob(&tar).unwrap();
    plant_mounts_list(&layout, &[(&foreign, "/elsewhere", tar_digest.as_str())]);
    let output = util::fbuild()
        .env("FBUILD_CACHE_HELPER_IMAGE", busybox)
        .arg("solve")
        .arg(work.path())
        .args(["--progress", "plain", "--cache-from", &format!("type=local,src={}", cache.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));

    // What the daemon's cache `foreign` holds now: nothing. (The command
    // names the id: cache mounts are not in a step's cache key, so the same
    // text from an earlier run would come from the cache, seeing nothing.)
    let probe = util::tempdir();
    util::write_files(
        probe.path(),
        &[(
            "Dockerfile",
            &format!("FROM {busybox}\nRUN --mount=type=cache,id={foreign},target=/c echo {foreign} && ls -A /c > /seen\nFROM scratch\nCOPY --from=0 /seen /\n"),
        )],
    );
    let out = probe.path().join("out");
    let output = util::fbuild()
        .arg("solve")
        .arg(probe.path())
        .args(["-o", &format!("type=local,dest={}", out.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "", "the undeclared cache was filled");
}

fn busybox_project(dir: &Path) {
    let dockerfile = format!("FROM {}\nRUN echo built > /built\n", util::testenv().busybox);
    util::write_files(dir, &[("Dockerfile", &dockerfile)]);
}

/// `-o type=tar,dest=FIFO` replaced the FIFO with a regular file (and
/// `dest=/dev/null`, as root, the machine's /dev/null); buildctl writes into
/// it. `dest=/dev/stdout` was refused as a symbolic link.
#[test]
fn outputs_write_into_fifos_and_standard_output() {
    let work = util::tempdir();
    busybox_project(work.path());
    let fifo = work.path().join("out.pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (sent, received) = mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::fs::File::open(fifo).and_then(|mut f| f.read_to_end(&mut bytes));
            let _ = sent.send(bytes);
        });
    }
    let output = util::fbuild()
        .timeout(HANG)
        .arg("solve")
        .arg(work.path())
        .args(["-o", &format!("type=tar,dest={}", fifo.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    let bytes = received.recv_timeout(HANG).expect("the FIFO's reader got the output");
    assert!(util::tar_entries(&bytes).contains_key("built"), "a tar of the result came through the FIFO");

    let output =
        util::fbuild().arg("solve").arg(work.path()).args(["-o", "type=tar,dest=/dev/stdout"]).output().unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
    assert!(util::tar_entries(&output.stdout).contains_key("built"), "the tar went to standard output");
}

/// The daemon puts a failed call's details in gRPC trailers; past h2's
/// 16 KiB default header list they were lost ("h2 protocol error"). A RUN
/// whose command is long enough shows its process and exit code, as
/// buildctl does.
#[test]
fn a_failure_with_large_details_is_shown_whole() {
    let work = util::tempdir();
    let long = "x".repeat(24 << 10);
    let dockerfile = format!("FROM {}\nRUN false && echo {long}\n", util::testenv().busybox);
    util::write_files(work.path(), &[("Dockerfile", &dockerfile)]);
    let output = util::fbuild().arg("solve").arg(work.path()).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("h2 protocol error"), "{}", &stderr[stderr.len().saturating_sub(2000)..]);
    assert!(
        stderr.contains("did not complete successfully: exit code: 1"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
}

/// A cache folder on a read-only file system imports (buildctl's does);
/// taking the folder's lock needed to create a file in it.
#[test]
fn a_read_only_cache_folder_imports() {
    let disk = util::SmallDisk::mount("16m");
    let cache = disk.path().join("cache");
    let work = util::tempdir();
    busybox_project(work.path());
    let to = format!("type=local,dest={},mode=max", cache.display());
    util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).assert().success();
    let status = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(disk.path()).status().unwrap();
    assert!(status.success(), "remounting read-only needs root, as the tests run");
    let from = format!("type=local,src={}", cache.display());
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-from", &from]).output().unwrap();
    assert!(output.status.success(), "{}", util::text(&output.stderr));
}

/// Builds starting at once on a cache folder that does not exist yet: one
/// creates it while the others look; a folder holding only the first one's
/// lock was "not an OCI layout folder" (9 of 24 failed).
#[test]
fn builds_starting_together_on_a_missing_folder_all_succeed() {
    let work = util::tempdir();
    busybox_project(work.path());
    for round in 0..3 {
        let cache: PathBuf = work.path().join(format!("cache-{round}"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut command = std::process::Command::new(util::fbuild_binary());
                command
                    .env("BUILDKIT_HOST", &util::testenv().addr)
                    .env("BUILDKIT_PROGRESS", "quiet")
                    .arg("solve")
                    .arg(work.path())
                    .args(["--cache-from", &format!("type=local,src={}", cache.display())])
                    .args(["--cache-to", &format!("type=local,dest={}", cache.display())])
                    .stderr(std::process::Stdio::piped());
                command.spawn().unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "round {round}: {}", util::text(&output.stderr));
        }
    }
}

/// `ignore-error=true` on a local cache export: buildctl exits 0 when the
/// export fails (a full disk); fbuild failed the build.
#[test]
fn ignore_error_lets_a_failed_local_export_pass() {
    let disk = util::SmallDisk::mount("3m");
    let cache = disk.path().join("cache");
    let work = util::tempdir();
    util::write_files(
        work.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN head -c 8000000 /dev/urandom > /big\n", util::testenv().busybox))],
    );
    let to = format!("type=local,dest={},mode=max,ignore-error=true", cache.display());
    let output = util::fbuild().arg("solve").arg(work.path()).args(["--cache-to", &to]).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}
