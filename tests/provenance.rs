//! Provenance of native builds (issue 18, scope 1): with buildx's default
//! attestation a build compiles natively (no notice), and the predicate the
//! daemon writes for it equals the one it writes for the same build through
//! `dockerfile.v0`, but for the fields README's "Building" lists. Each test
//! builds the same project both ways on the test daemon and compares the
//! two predicates field by field; the reference is the daemon's own output
//! in the same run, so there are no fixtures.

use std::path::Path;

use crate::util::{self, testenv};

/// What a native build's predicate lacks, because BuildKit records the
/// build's request only for frontends it runs itself (README, "Building"):
/// the pointer, and what `dockerfile.v0`'s predicate holds there.
const REQUEST_FIELDS: &[&str] = &[
    "/buildDefinition/externalParameters/configSource/path",
    "/buildDefinition/externalParameters/request/frontend",
    "/buildDefinition/externalParameters/request/args",
    "/buildDefinition/internalParameters/dockerfileVersion",
    "/runDetails/metadata/buildkit_completeness/request",
];

/// Fields every build has its own of: the daemon's job id and clock.
const PER_BUILD_FIELDS: &[&str] =
    &["/runDetails/metadata/invocationId", "/runDetails/metadata/startedOn", "/runDetails/metadata/finishedOn"];

/// A project with a base image, a build argument, a RUN step and a COPY
/// from the context: every kind of material and local a predicate records.
fn project(directive: &str) -> tempfile::TempDir {
    let dir = util::tempdir();
    let dockerfile = format!(
        "{directive}FROM {}\nARG FOO=default\nRUN echo ran $FOO > /marker\nCOPY a.txt /a.txt\n",
        testenv().busybox
    );
    util::write_files(dir.path(), &[("Dockerfile", &dockerfile), ("a.txt", "from the context\n")]);
    dir
}

/// `fbuild solve PROJECT --frontend FRONTEND ARGS…`, which must succeed;
/// its stderr.
fn solve(project: &Path, frontend: &str, args: &[&str]) -> String {
    let out = util::fbuild()
        .arg("solve")
        .arg(project)
        .args(["--progress", "plain", "--frontend", frontend])
        .args(args)
        .output()
        .unwrap();
    let stderr = util::text(&out.stderr);
    assert!(out.status.success(), "fbuild solve --frontend {frontend} {args:?} failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The provenance predicate of the image `repo:1` in the test registry: the
/// index's attestation manifest, then its in-toto layer.
fn pushed_predicate(repo: &str) -> serde_json::Value {
    let index = util::registry_manifest(repo, "1").expect("the pushed tag");
    let attestation = index["manifests"]
        .as_array()
        .expect("an index (the attestation makes one)")
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .unwrap_or_else(|| panic!("no attestation manifest in {index}"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &util::registry_manifest_bytes(repo, attestation["digest"].as_str().unwrap())
            .expect("the attestation manifest"),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one statement, the daemon's provenance: {manifest}");
    assert_eq!(layers[0]["annotations"]["in-toto.io/predicate-type"], "https://slsa.dev/provenance/v1");
    let (status, body) =
        util::registry_get(&format!("/v2/{repo}/blobs/{}", layers[0]["digest"].as_str().unwrap()), "*/*");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let statement: serde_json::Value = serde_json::from_slice(&body).unwrap();
    statement["predicate"].clone()
}

/// `value` without the fields at `pointers` (JSON pointers), and what was
/// there (`None` where there was nothing).
fn without(mut value: serde_json::Value, pointers: &[&str]) -> (serde_json::Value, Vec<Option<serde_json::Value>>) {
    let removed = pointers
        .iter()
        .map(|pointer| {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            value.pointer_mut(parent).and_then(|p| p.as_object_mut()).and_then(|p| p.remove(key))
        })
        .collect();
    (value, removed)
}

/// Compares a native build's predicate with `dockerfile.v0`'s: equal but
/// for the request fields (which the native one lacks, and the daemon's
/// holds as described) and the per-build ones.
fn assert_same_but_the_request(daemon: &serde_json::Value, native: &serde_json::Value) {
    let (daemon_rest, daemon_request) = without(daemon.clone(), REQUEST_FIELDS);
    let (native_rest, native_request) = without(native.clone(), REQUEST_FIELDS);
    let (daemon_rest, _) = without(daemon_rest, PER_BUILD_FIELDS);
    let (native_rest, _) = without(native_rest, PER_BUILD_FIELDS);
    assert_eq!(
        serde_json::to_string_pretty(&native_rest).unwrap(),
        serde_json::to_string_pretty(&daemon_rest).unwrap(),
        "the native build's predicate differs from dockerfile.v0's beyond the fields README lists"
    );
    // What README says of those fields: the daemon's frontend records the
    // request, a native build's predicate has none (so a change in BuildKit
    // that records it shows here, and README needs a word).
    let [path, frontend, _args, version, complete] = &daemon_request[..] else { unreachable!() };
    assert_eq!(path.as_ref().and_then(|p| p.as_str()), Some("Dockerfile"), "{daemon}");
    assert_eq!(frontend.as_ref().and_then(|f| f.as_str()), Some("dockerfile.v0"), "{daemon}");
    assert!(version.as_ref().is_some_and(|v| v.as_str().is_some_and(|v| !v.is_empty())), "{daemon}");
    assert!(complete.is_some(), "{daemon}");
    let [path, frontend, args, version, complete] = &native_request[..] else { unreachable!() };
    assert_eq!((path, frontend, args, version), (&None, &None, &None, &None), "{native}");
    assert_eq!(complete, &Some(serde_json::Value::Bool(false)), "a native build's request is never complete");
}

/// The locals and base images a predicate lists.
fn locals_and_materials(predicate: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let names = |value: &serde_json::Value, key: &str| -> Vec<String> {
        value.as_array().into_iter().flatten().map(|v| v[key].as_str().unwrap_or_default().to_owned()).collect()
    };
    (
        names(&predicate["buildDefinition"]["externalParameters"]["request"]["locals"], "name"),
        names(&predicate["buildDefinition"]["resolvedDependencies"], "uri"),
    )
}

/// buildx's default (`mode=min,inline-only=true`) on a pushed image: no
/// notice, and the daemon's predicate but for the request. The lint
/// subrequest is on (the default) in one build and off in the other: the
/// Dockerfile's local is listed either way, as `dockerfile.v0` lists it.
#[test]
fn default_provenance_builds_natively_and_matches_the_daemons_frontend() {
    for directive in ["", "# check=skip=all\n"] {
        let project = project(directive);
        let repo = |frontend: &str| format!("prov/{frontend}-{}", util::unique());
        let (native_repo, daemon_repo) = (repo("native"), repo("daemon"));
        let push = |repo: &str| format!("{}/{repo}:1", testenv().registry);
        let build_arg = ["--build-arg", "FOO=bar", "--push", "-t"];
        let stderr = solve(project.path(), "auto", &[&build_arg[..], &[&push(&native_repo)]].concat());
        assert!(!stderr.contains("notice:"), "built natively ({directive:?}): {stderr}");
        solve(project.path(), "dockerfile.v0", &[&build_arg[..], &[&push(&daemon_repo)]].concat());

        let (native, daemon) = (pushed_predicate(&native_repo), pushed_predicate(&daemon_repo));
        assert_same_but_the_request(&daemon, &native);
        let (locals, materials) = locals_and_materials(&native);
        assert_eq!(locals, ["context", "dockerfile"], "{directive:?}: {native}");
        assert_eq!(materials.len(), 1, "{native}");
        assert!(materials[0].contains("busybox") && materials[0].contains("platform="), "{native}");
        assert!(native["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"].is_string(), "{native}");
    }
}

/// A local output: buildx's default provenance is for image indexes only
/// (`inline-only`), so neither build writes one, and neither goes to the
/// daemon's frontend; with `--provenance mode=min` both write
/// `provenance.json` next to the files, with the same subjects and, but for
/// the request, the same predicate.
#[test]
fn a_local_output_gets_the_daemons_provenance_file() {
    let project = project("");
    for provenance in [None, Some("mode=min")] {
        let mut statements = Vec::new();
        for frontend in ["auto", "dockerfile.v0"] {
            let dest = util::tempdir();
            let output = format!("type=local,dest={}", dest.path().display());
            let mut args = vec!["-o", &output];
            if let Some(mode) = provenance {
                args.extend(["--provenance", mode]);
            }
            let stderr = solve(project.path(), frontend, &args);
            assert!(!stderr.contains("notice:"), "{frontend}: {stderr}");
            assert_eq!(std::fs::read_to_string(dest.path().join("marker")).unwrap(), "ran default\n");
            let file = dest.path().join("provenance.json");
            assert_eq!(file.exists(), provenance.is_some(), "{frontend} with {provenance:?}");
            if file.exists() {
                statements.push(serde_json::from_slice::<serde_json::Value>(&std::fs::read(file).unwrap()).unwrap());
            }
        }
        if let [native, daemon] = &statements[..] {
            assert_eq!(native["subject"], daemon["subject"], "the same files");
            assert_same_but_the_request(&daemon["predicate"], &native["predicate"]);
        }
    }
}

/// `mode=max` records the request's arguments, which only the daemon's
/// frontend can: `auto` hands such a build to it and says so. Forced
/// native, the build graph and the layers are recorded exactly as for
/// `dockerfile.v0`.
#[test]
fn mode_max_goes_to_the_daemons_frontend_unless_native_is_forced() {
    let project = project("");
    let repo = format!("prov/max-{}", util::unique());
    let image = format!("{}/{repo}:1", testenv().registry);
    let stderr = solve(project.path(), "auto", &["--provenance", "mode=max", "--push", "-t", &image]);
    assert!(
        stderr.contains("notice: the native compiler does not support provenance attestations with mode=max"),
        "{stderr}"
    );
    let predicate = pushed_predicate(&repo);
    assert_eq!(predicate["buildDefinition"]["externalParameters"]["request"]["frontend"], "dockerfile.v0");

    let mut predicates = Vec::new();
    for frontend in ["native", "dockerfile.v0"] {
        let repo = format!("prov/max-{frontend}-{}", util::unique());
        let image = format!("{}/{repo}:1", testenv().registry);
        let stderr = solve(project.path(), frontend, &["--provenance", "mode=max", "--push", "-t", &image]);
        assert!(!stderr.contains("notice:"), "{stderr}");
        predicates.push(pushed_predicate(&repo));
    }
    let [native, daemon] = &predicates[..] else { unreachable!() };
    for pointer in [
        "/buildDefinition/internalParameters/buildConfig/llbDefinition",
        "/runDetails/metadata/buildkit_metadata/layers",
        "/buildDefinition/resolvedDependencies",
        "/buildDefinition/externalParameters/request/locals",
    ] {
        let (native, daemon) = (native.pointer(pointer), daemon.pointer(pointer));
        assert!(daemon.is_some(), "{pointer} missing in {daemon:?}");
        assert_eq!(native, daemon, "{pointer}");
    }
}
