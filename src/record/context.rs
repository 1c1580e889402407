//! Content digests of the context files the steps read, hashed here as the
//! daemon would see them: the context's own walk (`fsync::walk`, with the
//! local source's follow paths and `.dockerignore` patterns), nothing
//! opened through a symlink, bounded in files and bytes. Records keep the
//! digests, never the contents.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::ops::ControlFlow;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::graph::ContextSource;
use crate::fsync::walk::{file_mode, DirCache, FilterOptions, Walker};

/// At most this many files are hashed; beyond, the record says it is
/// incomplete and a changed file can no longer be named.
pub(super) const MAX_FILES: usize = 20_000;
/// At most this many bytes are read in all.
pub(super) const MAX_BYTES: u64 = 1 << 30;

/// The digests of the files under `reads` (context paths from the root,
/// wildcards allowed), and whether every such file was hashed.
pub(super) fn hash_files(dir: &Path, source: &ContextSource, reads: &[&str]) -> (BTreeMap<String, String>, bool) {
    let options = FilterOptions {
        include_patterns: source.include_patterns.clone(),
        exclude_patterns: source.exclude_patterns.clone(),
        follow_paths: source.follow_paths.clone(),
    };
    let walker = match Walker::new(dir, &options) {
        Ok(walker) => walker,
        Err(error) => {
            tracing::debug!(%error, "cannot walk the context to record its files");
            return (BTreeMap::new(), false);
        }
    };
    let mut files = BTreeMap::new();
    let mut complete = true;
    let mut bytes = 0u64;
    let mut dirs = DirCache::default();
    let walked = walker.walk(&mut |stat| {
        let path = String::from_utf8_lossy(&stat.path).into_owned();
        if stat.mode & file_mode::DIR != 0 || !reads.iter().any(|read| reads_path(read, &path)) {
            return ControlFlow::Continue(());
        }
        if files.len() >= MAX_FILES || bytes.saturating_add(stat.size.max(0) as u64) > MAX_BYTES {
            complete = false;
            return ControlFlow::Break(());
        }
        let digest = if stat.mode & file_mode::SYMLINK != 0 {
            // A link's target is what the copy keeps.
            let mut hasher = Sha256::new();
            hasher.update(b"symlink\0");
            hasher.update(&stat.linkname);
            Some(hex::encode(hasher.finalize()))
        } else if stat.mode & file_mode::TYPE == 0 {
            bytes += stat.size.max(0) as u64;
            match walker.root().open_file_cached(&stat.path, &mut dirs) {
                Ok(file) => hash_reader(file).ok().map(hex::encode),
                Err(_) => None,
            }
        } else {
            None
        };
        match digest {
            // The mode matters too: a copy keeps it.
            Some(digest) => {
                files.insert(path, format!("sha256:{digest}:{:o}", stat.mode & 0o7777));
            }
            None => complete = false,
        }
        ControlFlow::Continue(())
    });
    if walked.is_err() {
        complete = false;
    }
    (files, complete)
}

fn hash_reader(mut file: std::fs::File) -> std::io::Result<impl AsRef<[u8]>> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// Whether a step reading `read` (a cleaned context path from the root,
/// maybe with wildcards) reads the file `path` (relative, as walked).
pub(super) fn reads_path(read: &str, path: &str) -> bool {
    let read = read.trim_start_matches('/');
    if read.is_empty() || read == "." {
        return true;
    }
    if path == read || path.strip_prefix(read).is_some_and(|rest| rest.starts_with('/')) {
        return true;
    }
    if read.contains(['*', '?', '[']) {
        // The file, or a folder above it, matches the wildcard.
        let mut prefix = path;
        loop {
            if crate::fsync::patterns::go_match(read, prefix).unwrap_or(false) {
                return true;
            }
            match prefix.rsplit_once('/') {
                Some((parent, _)) => prefix = parent,
                None => return false,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_reads_what_its_source_names() {
        assert!(reads_path("/", "src/a.py"));
        assert!(reads_path("/requirements.txt", "requirements.txt"));
        assert!(!reads_path("/requirements.txt", "requirements.txt.bak"));
        assert!(reads_path("/src", "src/a/b.py"));
        assert!(!reads_path("/src", "srcs/b.py"));
        assert!(reads_path("/*.txt", "a.txt"));
        assert!(reads_path("/sr*", "src/a.py"));
        assert!(!reads_path("/*.txt", "a.py"));
    }

    #[test]
    fn files_are_hashed_without_following_links_and_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let source = ContextSource { exclude_patterns: vec!["ignored.txt".into()], ..Default::default() };
        let (files, complete) = hash_files(dir.path(), &source, &["/"]);
        assert!(complete);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a.txt", "link"]);
        let before = files["a.txt"].clone();
        std::fs::write(dir.path().join("a.txt"), "two").unwrap();
        let (files, _) = hash_files(dir.path(), &source, &["/a.txt"]);
        assert_ne!(files["a.txt"], before);
        assert_eq!(files.len(), 1);
    }
}
