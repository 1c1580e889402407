//! Build outputs end to end against the test daemon: the OCI, docker and tar
//! tarballs, local folders, standard output, and flag values refused before
//! a build starts.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout, Os};

use crate::util::{self, testenv};

/// A project whose result has a file with an unusual mode, a symlink and a
/// nested folder.
fn project() -> tempfile::TempDir {
    let dir = util::tempdir();
    util::write_files(
        dir.path(),
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nCOPY hello.txt /out/hello.txt\n\
                     RUN ln -s hello.txt /out/link && chmod 0750 /out/hello.txt \
                     && mkdir -p /out/sub && echo deep > /out/sub/deep.txt\n",
                    testenv().busybox
                ),
            ),
            ("hello.txt", "hello from fbuild\n"),
        ],
    );
    dir
}

/// `fbuild solve PROJECT ARGS…`, which must succeed; returns stdout and stderr.
fn solve(project: &Path, args: &[String]) -> (Vec<u8>, String) {
    let output = util::fbuild().arg("solve").arg(project).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "fbuild solve {args:?} failed:\n{stderr}");
    (output.stdout, stderr)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Checks the result's files inside a tarball of the root file system.
fn assert_result_files(entries: &BTreeMap<String, (tar::Header, Vec<u8>)>) {
    let (header, content) = &entries["out/hello.txt"];
    assert_eq!(content, b"hello from fbuild\n");
    assert_eq!(header.mode().unwrap() & 0o7777, 0o750);
    let (header, _) = &entries["out/link"];
    assert!(header.entry_type().is_symlink());
    assert_eq!(header.link_name().unwrap().unwrap(), Path::new("hello.txt"));
    assert_eq!(entries["out/sub/deep.txt"].1, b"deep\n");
}

#[test]
fn oci_output_is_a_valid_oci_layout() {
    let project = project();
    let out = util::tempdir();
    let dest = out.path().join("image.tar");
    solve(
        project.path(),
        &["-t".into(), "fbuild-test/outputs:oci".into(), "-o".into(), format!("type=oci,dest={}", dest.display())],
    );
    assert_eq!(names(out.path()), ["image.tar"], "only the finished tarball is left");

    let oci = util::OciLayout::read(&dest);
    let layout = OciLayout::from_reader(oci.file("oci-layout")).expect("a valid oci-layout file");
    assert_eq!(layout.image_layout_version(), "1.0.0");
    let index = ImageIndex::from_reader(oci.file("index.json")).expect("a valid index.json");
    assert_eq!(index.schema_version(), 2);
    let manifests = index.manifests();
    assert_eq!(manifests.len(), 1, "{index:?}");
    let ref_name = manifests[0].annotations().as_ref().and_then(|a| a.get("org.opencontainers.image.ref.name"));
    assert_eq!(ref_name.map(String::as_str), Some("oci"), "the tag names the image");

    let manifest = ImageManifest::from_reader(oci.blob(&manifests[0])).expect("a valid image manifest");
    assert_eq!(manifest.media_type(), &Some(MediaType::ImageManifest));
    let config = ImageConfiguration::from_reader(oci.blob(manifest.config())).expect("a valid image config");
    assert_eq!(config.os(), &Os::Linux);
    assert_eq!(manifest.layers().len(), config.rootfs().diff_ids().len());
    for layer in manifest.layers() {
        oci.blob(layer);
    }
}

#[test]
fn docker_output_is_loadable() {
    let project = project();
    let out = util::tempdir();
    let dest = out.path().join("docker.tar");
    solve(
        project.path(),
        &[
            "-t".into(),
            "fbuild-test/outputs:docker".into(),
            "-o".into(),
            format!("type=docker,dest={}", dest.display()),
        ],
    );
    let entries = util::tar_entries(&std::fs::read(&dest).unwrap());
    // `docker load` reads manifest.json: the config, the layers, the tags.
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].1).unwrap();
    let image = &manifest[0];
    assert_eq!(image["RepoTags"], serde_json::json!(["fbuild-test/outputs:docker"]));
    for path in std::iter::once(&image["Config"]).chain(image["Layers"].as_array().unwrap()) {
        let path = path.as_str().unwrap();
        assert!(entries.contains_key(path), "{path} is in the tarball");
    }
}

#[test]
fn tar_output_holds_the_files_with_modes_and_links() {
    let project = project();
    let out = util::tempdir();
    let dest = out.path().join("rootfs.tar");
    solve(project.path(), &["-o".into(), format!("type=tar,dest={}", dest.display())]);
    assert_result_files(&util::tar_entries(&std::fs::read(&dest).unwrap()));
}

#[test]
fn local_output_merges_into_an_existing_folder() {
    let project = project();
    let out = util::tempdir();
    let dest = out.path().join("result");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine.txt"), "kept").unwrap();
    solve(project.path(), &["-o".into(), format!("type=local,dest={}", dest.display())]);

    assert_eq!(std::fs::read_to_string(dest.join("out/hello.txt")).unwrap(), "hello from fbuild\n");
    assert_eq!(std::fs::metadata(dest.join("out/hello.txt")).unwrap().permissions().mode() & 0o7777, 0o750);
    assert_eq!(std::fs::read_link(dest.join("out/link")).unwrap(), Path::new("hello.txt"));
    assert_eq!(std::fs::read_to_string(dest.join("out/sub/deep.txt")).unwrap(), "deep\n");
    assert_eq!(std::fs::read_to_string(dest.join("mine.txt")).unwrap(), "kept", "files already there are kept");
    assert!(names(&dest).iter().all(|name| !name.starts_with(".fbuild")), "no staging folder left: {:?}", names(&dest));
}

#[test]
fn dash_streams_a_tarball_to_stdout() {
    let project = project();
    let (stdout, stderr) = solve(project.path(), &["-o".into(), "-".into()]);
    assert_result_files(&util::tar_entries(&stdout));
    assert!(!stderr.contains("hello from fbuild"), "the tarball goes to stdout only");
}

#[test]
fn bad_outputs_are_refused_before_the_build() {
    let project = project();
    let out = util::tempdir();
    let precious = out.path().join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let link = out.path().join("link.tar");
    std::os::unix::fs::symlink(&precious, &link).unwrap();

    let cases = [
        ("type=zip,dest=x".to_owned(), "unknown output type \"zip\""),
        ("type=local".to_owned(), "type=local needs dest=<folder>"),
        ("type=image,push=maybe".to_owned(), "push=maybe is not a boolean"),
        (format!("type=tar,dest={}", link.display()), "is a symbolic link"),
        // Missing folders are created (as buildx), but not under a file.
        (format!("type=oci,dest={}", precious.join("x.tar").display()), "is not a folder"),
    ];
    for (value, problem) in &cases {
        let output = util::fbuild().arg("solve").arg(project.path()).args(["-o", value]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{value} was accepted");
        assert!(stderr.contains(&format!("invalid --output {value:?}")), "{value}: {stderr}");
        assert!(stderr.contains(problem), "{value}: {stderr}");
        assert!(!stderr.contains("#1 "), "{value}: no build step may start:\n{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
    assert_eq!(names(out.path()), ["link.tar", "precious"]);
}
