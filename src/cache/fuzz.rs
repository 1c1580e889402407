//! Property tests ("fuzzing") of cache folders as untrusted input, beside
//! `src/fuzz.rs` (declared in `layout.rs`, so `cache/mod.rs` stays as it is): `index.json`, manifests and indexes, lists of carried
//! mounts, and what stands where the folder's own entries belong (links,
//! FIFOs, folders, files). Nothing may panic or hang, and nothing outside
//! the folder may change, whatever the folder holds.
//!
//! Case counts: 64 per property unless `PROPTEST_CASES` says otherwise
//! (`scripts/fuzz.sh` runs long).

use std::path::Path;

use proptest::prelude::*;

use crate::cache::layout::{BlobDigest, OciLayout, REF_NAME_ANNOTATION};
use crate::cache::{local, mounts};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Blobs every generated folder holds, so documents can point at real ones.
const SEEDS: &[&[u8]] = &[b"layer one", b"{}", b"[]", b"{\"layers\": 5}"];

fn seed_digests() -> Vec<String> {
    SEEDS.iter().map(|bytes| BlobDigest::of(bytes).to_string()).collect()
}

/// A digest as a folder may hold one: a real blob's, a missing one, another
/// algorithm, garbage, or shell text.
fn digest_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(seed_digests()),
        Just(format!("sha256:{}", "0".repeat(64))),
        Just(format!("sha512:{}", "a".repeat(128))),
        Just("sha256:x; id".to_string()),
        Just("sha256:../../etc/passwd".to_string()),
        "[ -~]{0,20}",
    ]
}

/// JSON shaped like the documents of a layout folder, with every field
/// free to be the wrong type.
fn document() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        digest_text().prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    let keys = proptest::sample::select(vec![
        "schemaVersion",
        "mediaType",
        "manifests",
        "layers",
        "config",
        "blobs",
        "digest",
        "size",
        "annotations",
        "mounts",
        "id",
        "target",
        "sharing",
        "uid",
        REF_NAME_ANNOTATION,
        "dev.fbuild.cache-mounts.tag",
    ]);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// An `index.json` with entries that are mostly valid descriptors (so the
/// walk goes on into the blobs), some not.
fn index_text() -> impl Strategy<Value = Vec<u8>> {
    let entry = (digest_text(), proptest::option::of("[a-z\\x1b\\r]{0,6}"), any::<bool>(), document());
    prop_oneof![
        4 => proptest::collection::vec(entry, 0..6).prop_map(|entries| {
            let manifests: Vec<serde_json::Value> = entries
                .into_iter()
                .map(|(digest, tag, mounts, extra)| {
                    let key = if mounts { "dev.fbuild.cache-mounts.tag" } else { REF_NAME_ANNOTATION };
                    let mut entry = serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest,
                        "size": 2,
                        "annotations": tag.map(|t| serde_json::json!({key: t})),
                        "extra": extra,
                    });
                    if entry["annotations"].is_null() {
                        entry.as_object_mut().map(|o| o.remove("annotations"));
                    }
                    entry
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
        }),
        1 => document().prop_map(|d| serde_json::to_vec(&d).unwrap()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Every operation a build, `cache ls` or `cache gc` does on a folder; the
/// results do not matter, only that each returns.
fn exercise(dir: &Path) {
    let _ = local::inspect(dir);
    if let Ok(Some(layout)) = OciLayout::open_existing(dir) {
        let _ = layout.index();
        let _ = layout.resolve_tag("latest");
        let _ = layout.referenced();
        let _ = mounts::carried(&layout, "latest");
        let _ = layout.temporary_bytes();
        let _ = layout.lock_shared();
        if let Ok(digest) = layout.write_blob(b"{}") {
            let descriptor = oci_spec::image::Descriptor::new(
                oci_spec::image::MediaType::ImageManifest,
                2,
                digest.as_str().parse::<oci_spec::image::Digest>().unwrap(),
            );
            let _ = layout.tag(&descriptor, &["fuzz"]);
        }
        let _ = layout.collect_garbage();
    }
    let _ = local::collect(dir);
}

/// A folder with the seed blobs and `index` as its `index.json`, one seed
/// replaced by `blob` when given.
fn folder(index: &[u8], blob: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    for seed in SEEDS {
        layout.write_blob(seed).unwrap();
    }
    if let Some(blob) = blob {
        // A document under a seed's name: its digest does not check, which
        // is one more thing the folder may do.
        std::fs::write(layout.blob_path(&BlobDigest::of(SEEDS[1])), blob).unwrap();
    }
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    dir
}

/// What may stand where a folder's own entry belongs.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Missing,
    File,
    Folder,
    LinkOutside,
    Fifo,
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        Just(Entry::Missing),
        Just(Entry::File),
        Just(Entry::Folder),
        Just(Entry::LinkOutside),
        Just(Entry::Fifo)
    ]
}

/// The names a folder's own entries have, deepest last.
const NAMES: &[&str] =
    &["index.json", "oci-layout", ".fbuild-lock", ".fbuild-index-lock", ".fbuild-ingest", ".fbuild-tmp-x", "blobs"];

fn place(dir: &Path, name: &str, entry: Entry, outside: &Path) {
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    match entry {
        Entry::Missing => {}
        Entry::File => std::fs::write(&path, b"{}").unwrap(),
        Entry::Folder => std::fs::create_dir(&path).unwrap(),
        Entry::LinkOutside => std::os::unix::fs::symlink(outside, &path).unwrap(),
        Entry::Fifo => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap(),
    }
}

/// Every file below `root` with its content, to show it did not change.
fn snapshot(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn index_files_never_panic(index in index_text()) {
        let dir = folder(&index, None);
        exercise(dir.path());
    }

    #[test]
    fn documents_never_panic(index in index_text(), blob in document()) {
        let dir = folder(&index, Some(&serde_json::to_vec(&blob).unwrap()));
        exercise(dir.path());
    }

    #[test]
    fn mounts_lists_never_panic_and_carry_only_digests(list in document(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for text in [serde_json::to_vec(&list).unwrap(), bytes] {
            if let Ok(carried) = mounts::parse_list(&text) {
                for mount in carried {
                    prop_assert!(BlobDigest::parse(&mount.digest).is_ok(), "{:?}", mount.digest);
                }
            }
        }
    }

    #[test]
    fn nothing_outside_the_folder_changes(entries in proptest::collection::vec(entry(), NAMES.len())) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("sha256")).unwrap();
        std::fs::write(outside.path().join("precious"), b"keep").unwrap();
        std::fs::write(outside.path().join("sha256").join("0".repeat(64)), b"keep").unwrap();
        let before = snapshot(outside.path());
        let dir = folder(b"{\"schemaVersion\":2,\"manifests\":[]}", None);
        for (name, entry) in NAMES.iter().zip(&entries) {
            place(dir.path(), name, *entry, outside.path());
        }
        exercise(dir.path());
        prop_assert_eq!(snapshot(outside.path()), before);
    }
}
