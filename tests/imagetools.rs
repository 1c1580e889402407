//! `fbuild imagetools` against the loopback registry, compared with what
//! buildx v0.38.2 made of the same images (`tests/imagetools/expected/`,
//! written by `tests/imagetools/make-expected.sh`). The images are
//! reproducible, so the indexes must be byte for byte buildx's.

use std::path::PathBuf;

use crate::util::{self, fbuild, testenv, text};

fn expected(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/imagetools/expected").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Builds the two reproducible single-platform images into a repository of
/// this run and checks they are the images buildx built.
fn push_images(repo: &str) {
    let context = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/imagetools/context");
    for arch in ["amd64", "arm64"] {
        let out = fbuild()
            .env("SOURCE_DATE_EPOCH", "0")
            .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
            .args(["solve", "--platform", &format!("linux/{arch}"), "-o"])
            .arg(format!("type=image,name={repo}:{arch},push=true,rewrite-timestamp=true"))
            .arg(&context)
            .output()
            .unwrap();
        assert!(out.status.success(), "build {arch}: {}", text(&out.stderr));
        let manifest = util::registry_manifest_bytes(repo.split_once('/').unwrap().1, arch).expect("pushed");
        let digest = sha256_hex(&manifest);
        assert_eq!(
            digest,
            text(&expected(&format!("{arch}.digest"))).trim(),
            "the {arch} image is not the one buildx built, so the indexes cannot match"
        );
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn imagetools(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = fbuild().arg("imagetools").args(args).output().unwrap();
    (out.status.success(), out.stdout, text(&out.stderr))
}

#[test]
fn create_gives_buildx_index_bytes_and_digests() {
    let env = testenv();
    let repo = format!("{}/fbuild-imagetools-{}", env.registry, util::unique());
    push_images(&repo);
    let amd64 = format!("{repo}:amd64");
    let arm64 = format!("{repo}:arm64");

    // Dry runs print the index as buildx does (the same bytes, newline included).
    let (ok, stdout, stderr) = imagetools(&["create", "--dry-run", &amd64, &arm64]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("two.json")));
    let (ok, stdout, stderr) = imagetools(&[
        "create",
        "--dry-run",
        "--annotation",
        "index:org.opencontainers.image.title=app <&>",
        "--annotation",
        "manifest-descriptor[linux/arm64]:com.example.note=arm",
        &amd64,
        &arm64,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("annotated.json")));
    let (ok, stdout, stderr) = imagetools(&["create", "--dry-run", &amd64]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("one.json")));
    let (ok, stdout, stderr) = imagetools(&["create", "--dry-run", "--prefer-index=false", &amd64]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("one-as-is.json")));

    // Pushed, appended to, filtered: the registry holds buildx's bytes.
    let joined = format!("{repo}:joined");
    let (ok, _, stderr) = imagetools(&["create", "-t", &joined, &amd64]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = imagetools(&["create", "--append", "-t", &joined, &arm64]);
    assert!(ok, "{stderr}");
    let path = repo.split_once('/').unwrap().1;
    let pushed = util::registry_manifest_bytes(path, "joined").expect("the index was pushed");
    assert_eq!(text(&pushed), text(&expected("appended.json")));
    let (ok, raw, stderr) = imagetools(&["inspect", "--raw", &joined]);
    assert!(ok, "{stderr}");
    assert_eq!(raw, pushed, "--raw prints the registry's bytes, no newline");
    let (ok, stdout, stderr) = imagetools(&["create", "--dry-run", "--platform", "linux/arm64", &joined]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("filtered.json")));

    // inspect's text and template views.
    let (ok, stdout, stderr) = imagetools(&["inspect", &joined]);
    assert!(ok, "{stderr}");
    let shown = text(&stdout).replace(&repo, "REGISTRY/fbuild-imagetools-ref");
    assert_eq!(shown, text(&expected("inspect.txt")));
    let (ok, stdout, stderr) = imagetools(&["inspect", "--format", "{{json .Manifest}}", &joined]);
    assert!(ok, "{stderr}");
    assert_eq!(text(&stdout), text(&expected("inspect-manifest.json")));
}

#[test]
fn create_copies_manifests_and_blobs_into_another_repository() {
    let env = testenv();
    let repo = format!("{}/fbuild-imagetools-{}", env.registry, util::unique());
    push_images(&repo);
    let other = format!("{}/fbuild-imagetools-copy-{}", env.registry, util::unique());
    let target = format!("{other}:v1");
    let (ok, _, stderr) = imagetools(&["create", "-t", &target, &format!("{repo}:amd64"), &format!("{repo}:arm64")]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("copying sha256:"), "one line per copy: {stderr}");
    let (ok, _, stderr) =
        imagetools(&["create", "--progress", "rawjson", "-t", &format!("{other}:v2"), &format!("{repo}:amd64")]);
    assert!(ok, "{stderr}");
    assert!(stderr.is_empty(), "no human lines in a rawjson stream: {stderr}");
    let index: serde_json::Value =
        serde_json::from_slice(&util::registry_manifest_bytes(other.split_once('/').unwrap().1, "v1").unwrap())
            .unwrap();
    // Every manifest, config and layer is readable in the new repository.
    let other_path = other.split_once('/').unwrap().1;
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&util::registry_manifest_bytes(other_path, digest).expect("manifest copied"))
                .unwrap();
        let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
        blobs.extend(manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()));
        for blob in blobs {
            let (status, _) = util::registry_get(&format!("/v2/{other_path}/blobs/{blob}"), "*/*");
            assert_eq!(status, 200, "blob {blob} in {other_path}");
        }
    }
}

#[test]
fn create_refuses_bad_input_before_pushing() {
    let env = testenv();
    let repo = format!("{}/fbuild-imagetools-{}", env.registry, util::unique());
    let (ok, _, stderr) = imagetools(&["create", &format!("{repo}:x")]);
    assert!(!ok);
    assert!(stderr.contains("can't push with no tags specified, please set --tag or --dry-run"), "{stderr}");
    let (ok, _, stderr) = imagetools(&["create", "--dry-run"]);
    assert!(!ok);
    assert!(stderr.contains("no sources specified"), "{stderr}");
    let (ok, _, stderr) = imagetools(&["create", "--dry-run", "sha256:nothex"]);
    assert!(!ok);
    assert!(stderr.contains("valid sources are digests, references and descriptors"), "{stderr}");
    let (ok, _, stderr) = imagetools(&["create", "--dry-run", "--annotation", "novalue", &format!("{repo}:x")]);
    assert!(!ok);
    assert!(stderr.contains("expected key=value"), "{stderr}");
    let (ok, _, stderr) = imagetools(&["create", "--dry-run", &format!("{repo}:missing")]);
    assert!(!ok);
    assert!(stderr.contains("not found"), "{stderr}");
    let (ok, _, stderr) = imagetools(&["inspect", "--format", "{{.Image.Os}}", &format!("{repo}:missing")]);
    assert!(!ok, "an unknown template or a missing image fails: {stderr}");
}
