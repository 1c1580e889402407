//! File sync against the test daemon, both directions at once: a context
//! full of awkward entries goes up through our DiffCopy sender, `COPY . /`
//! puts it into a scratch image, and `type=local` brings it back through our
//! receiver. buildctl does the same from the same folder; the two output
//! trees must be identical (names, types, permissions, times, symlink
//! targets, hard links, contents).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::util;

/// A context that exercises the walker: per-directory ordering (`a/b` vs
/// `a-b`), empty files and folders, executable bits, symlinks of all kinds,
/// hard links, non-ASCII names, a file spanning many DATA chunks, fixed
/// times, and a `.dockerignore` with `**` and an exception.
fn awkward_context(dir: &Path) {
    util::write_files(
        dir,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /\n"),
            (".dockerignore", "**/*.log\n!keep/important.log\nnode_modules\n!node_modules/kept\n"),
            ("a/b/deep.txt", "deep\n"),
            ("a-b", "dash\n"),
            ("a.b", "dot\n"),
            ("empty", ""),
            ("run.sh", "#!/bin/sh\necho hi\n"),
            ("ünïcödé/ñ.txt", "unicode\n"),
            ("debug.log", "ignored\n"),
            ("keep/important.log", "kept by the exception\n"),
            ("keep/other.log", "ignored\n"),
            ("node_modules/dep/index.js", "ignored\n"),
            ("node_modules/kept/index.js", "kept\n"),
        ],
    );
    std::fs::create_dir(dir.join("empty-dir")).expect("create a folder");
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir.join("a.b"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let big: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.join("big.bin"), big).expect("write a big file");
    std::os::unix::fs::symlink("a/b/deep.txt", dir.join("rel-link")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("abs-link")).expect("symlink");
    std::os::unix::fs::symlink("nowhere", dir.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink("a", dir.join("dir-link")).expect("symlink");
    std::fs::hard_link(dir.join("a/b/deep.txt"), dir.join("hard-link")).expect("hard link");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(dir.join("a-b"))
        .and_then(|f| f.set_modified(old))
        .expect("set a file's time");
}

/// What a tree looks like from outside: per path, its type and permission
/// bits, modification time, size, symlink target or content, and which
/// other paths share its inode.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walk the output");
        let rel = entry.path().strip_prefix(root).expect("below root").to_string_lossy().into_owned();
        let meta = entry.path().symlink_metadata().expect("lstat");
        let what = if meta.file_type().is_symlink() {
            format!("link -> {}", std::fs::read_link(entry.path()).expect("readlink").display())
        } else if meta.is_dir() {
            "dir".to_owned()
        } else {
            inodes.entry(meta.ino()).or_default().push(rel.clone());
            let content = std::fs::read(entry.path()).expect("read");
            format!("file {} bytes, sum {}", content.len(), content.iter().map(|&b| u64::from(b)).sum::<u64>())
        };
        let mtime = if meta.is_dir() {
            // Folder times change as the exporter fills them; not compared.
            String::new()
        } else {
            format!(" mtime {}.{:09}", meta.mtime(), meta.mtime_nsec())
        };
        out.insert(rel, format!("{what} mode {:o}{mtime}", meta.mode() & 0o7777));
    }
    for paths in inodes.values().filter(|p| p.len() > 1) {
        for path in paths {
            if let Some(line) = out.get_mut(path) {
                line.push_str(&format!(" linked with {paths:?}"));
            }
        }
    }
    out
}

#[test]
fn local_output_of_an_awkward_context_matches_buildctl() {
    let project = util::tempdir();
    awkward_context(project.path());
    let out = util::tempdir();
    let ours = out.path().join("fbuild");
    let theirs = out.path().join("buildctl");

    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", ours.display()))
        .assert()
        .success();
    util::buildctl()
        .args(["build", "--frontend", "dockerfile.v0", "--local"])
        .arg(format!("context={}", project.path().display()))
        .arg("--local")
        .arg(format!("dockerfile={}", project.path().display()))
        .arg("--output")
        .arg(format!("type=local,dest={}", theirs.display()))
        .assert()
        .success();

    let ours_tree = tree(&ours);
    assert_eq!(ours_tree, tree(&theirs));

    // And the tree is what the context and .dockerignore say it should be
    // (listed in plain string order).
    let paths: Vec<&str> = ours_tree.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            ".dockerignore",
            "Dockerfile",
            "a",
            "a-b",
            "a.b",
            "a/b",
            "a/b/deep.txt",
            "abs-link",
            "big.bin",
            "dangling",
            "dir-link",
            "empty",
            "empty-dir",
            "hard-link",
            "keep",
            "keep/important.log",
            "node_modules",
            "node_modules/kept",
            "node_modules/kept/index.js",
            "rel-link",
            "run.sh",
            "ünïcödé",
            "ünïcödé/ñ.txt",
        ]
    );
    assert!(ours_tree["hard-link"].contains("linked with"), "{}", ours_tree["hard-link"]);
    assert!(ours_tree["a-b"].ends_with("mtime 1000000000.123456789"), "{}", ours_tree["a-b"]);
    assert_eq!(
        std::fs::read(ours.join("big.bin")).expect("read"),
        std::fs::read(project.path().join("big.bin")).expect("read")
    );
    let leftovers: Vec<_> =
        std::fs::read_dir(out.path()).expect("list the output folder").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging folder left: {leftovers:?}");
}

/// Makes `depth` nested folders `d` below `root` and a file `d/…/d/f`
/// holding `content`, relative to each folder's descriptor: the full path
/// is longer than `PATH_MAX`.
fn make_deep(root: &Path, depth: usize, content: &[u8]) {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    let mut dir = nix::fcntl::open(root, dir_flags, Mode::empty()).expect("open the root");
    for _ in 0..depth {
        nix::sys::stat::mkdirat(&dir, "d", Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(&dir, "d", dir_flags, Mode::empty()).expect("open a deep folder");
    }
    let file = openat(&dir, "f", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644)).expect("create");
    std::fs::File::from(file).write_all(content).expect("write the deep file");
}

/// Follows `d` down from `root` as far as it goes; returns the depth and
/// the content of the `f` found there.
fn read_deep(root: &Path) -> (usize, Vec<u8>) {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    let mut dir = nix::fcntl::open(root, dir_flags, Mode::empty()).expect("open the output");
    let mut depth = 0;
    while let Ok(next) = openat(&dir, "d", dir_flags, Mode::empty()) {
        dir = next;
        depth += 1;
    }
    let file = openat(&dir, "f", OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty()).expect("open the deep file");
    let mut content = Vec::new();
    std::fs::File::from(file).read_to_end(&mut content).expect("read the deep file");
    (depth, content)
}

/// A context 2,000 folders deep (deepest path 4,001 bytes) goes up and
/// comes back through a local output. The walk used to recurse per level
/// and overflowed its thread's stack at about 1,650 (the process aborted
/// with exit 134); buildctl builds it.
#[test]
fn a_context_two_thousand_folders_deep_builds() {
    const DEPTH: usize = 2_000;
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY . /\n")]);
    make_deep(project.path(), DEPTH, b"bottom\n");
    let out = util::tempdir();
    let dest = out.path().join("out");

    util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.display()))
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success();

    assert_eq!(read_deep(&dest), (DEPTH, b"bottom\n".to_vec()));
}
