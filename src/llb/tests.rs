//! Marshalling invariants, and digests pinned against Go's `client/llb`.

use prost::Message;

use super::*;
use crate::proto::pb;

fn amd64() -> MarshalOptions {
    MarshalOptions { platform: pb::Platform { architecture: "amd64".into(), os: "linux".into(), ..Default::default() } }
}

fn marshal(state: &State) -> pb::Definition {
    state.marshal_with(&amd64()).expect("the graph marshals")
}

/// Every op of a definition with its digest, in definition order.
fn ops(def: &pb::Definition) -> Vec<(String, pb::Op)> {
    def.def.iter().map(|bytes| (digest_of(bytes), pb::Op::decode(bytes.as_ref()).expect("an op decodes"))).collect()
}

/// The op the definition's result is (the terminal op's input).
fn head(def: &pb::Definition) -> pb::Input {
    let (_, terminal) = ops(def).pop().expect("a terminal op");
    terminal.inputs[0].clone()
}

fn op_by_digest(def: &pb::Definition, digest: &str) -> pb::Op {
    ops(def).into_iter().find(|(d, _)| d == digest).map(|(_, op)| op).expect("the digest is in the definition")
}

/// The graphs `tests/golden/llb/main.go` builds with Go's client/llb.
fn golden_graphs() -> Vec<(&'static str, State)> {
    let busybox = image("busybox");
    let exec = busybox.run(
        Run::new(["/bin/true"])
            .mount(Mount::tmpfs("/tmp", 0))
            .mount(Mount::bind("/data", &scratch()))
            .mount(Mount::bind("/etc/ro", &busybox).readonly())
            .mount(Mount::cache("/cache", "c1", pb::CacheSharingOpt::Locked)),
    );
    vec![
        ("image", busybox.clone()),
        ("mkfile", busybox.file(mkfile("/hello", 0o644, "hi\n"))),
        ("run", busybox.add_env("A", "1").dir("/work").run(Run::shell("echo hi > /hi")).root()),
        (
            "copy",
            scratch().file(
                FileAction::from(Mkdir::new("/out", 0o755).make_parents(true))
                    .then(Copy::new(&busybox.dir("/bin"), "busybox", "out/").create_dest_path(true)),
            ),
        ),
        ("mounts", exec.mount("/data").expect("a writable mount has an output")),
        (
            "local",
            local(
                "context",
                LocalOptions { include_patterns: vec!["a".into(), "b<c".into()], ..LocalOptions::new("s1") },
            ),
        ),
    ]
}

/// The same summary of a definition as `tests/golden/llb/main.go` prints:
/// every op's digest in definition order (which pins op bytes and order),
/// then per digest its metadata and source-map entry (when it has locations:
/// Go lists every op, fbuild only those with locations, see `marshal.rs`).
/// Definition bytes are
/// not compared: Go writes maps in random order (vtprotobuf) and writes
/// empty message values in map entries, which prost leaves out; both decode
/// to the same definition.
fn summary(def: &pb::Definition) -> String {
    let mut out = String::new();
    for bytes in &def.def {
        out += &format!("op {}\n", digest_of(bytes));
    }
    for (digest, metadata) in &def.metadata {
        let caps: Vec<&str> = metadata.caps.keys().map(String::as_str).collect();
        let description: Vec<String> = metadata.description.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!(
            "meta {digest} ignore-cache={} caps={} description={}\n",
            metadata.ignore_cache,
            caps.join(","),
            description.join(",")
        );
    }
    if let Some(source) = &def.source {
        for (digest, locations) in source.locations.iter().filter(|(_, l)| !l.locations.is_empty()) {
            out += &format!("source {digest} locations={}\n", locations.locations.len());
        }
        out += &format!("source infos={}\n", source.infos.len());
    }
    out
}

/// What Go's `client/llb` (BuildKit v0.32.2) marshals for [`golden_graphs`]
/// with `llb.LinuxAmd64`: the result op's digest, and the sha256 of the
/// definition's [`summary`].
///
/// Regenerate with `tests/golden/llb/run.sh` (needs Go, and BuildKit v0.32.2
/// with its dependencies in the Go module cache; no network). `run.sh -v`
/// prints the summaries, to compare with this test's output on failure.
const GOLDEN: &[(&str, &str, &str)] = &[
    (
        "image",
        "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0",
        "sha256:412dd114b4d9a520caf89c41a4930262a7ce08b4279977bbb98465d2d16c1945",
    ),
    (
        "mkfile",
        "sha256:df08320c34f2609aa6666ca0b351b2e6aaefb3e421c4894d64c8aa2742438351",
        "sha256:4fb2e462088b1fed99da184872641768872a92d07a3053c5a629ac3afc038242",
    ),
    (
        "run",
        "sha256:eba4f5552c9bd8ee26f9d2bb8922e879ea23dca491874d611d1b2962ddf2be9a",
        "sha256:89c9e52c609f67c835b33efe960c1f481dc537eb85c29b6964bf13c0ec99335e",
    ),
    (
        "copy",
        "sha256:b254d18284f1001333b59e8f5f63daaecf78569a8332569207ba6a87e578cf9a",
        "sha256:adc4390a90054cb9b55a02363a30df40b4d62a054e1131be87ff4fb9a8a6b08f",
    ),
    (
        "mounts",
        "sha256:868e926fcf5076f7510de33d85c8e98fdb1a78519a938653bf7eb08bfab10a00",
        "sha256:704786eb51e19914abccef9bb4466b6aeb2f1dd064947ad9ea69de928d98fdb4",
    ),
    (
        "local",
        "sha256:f21ce6feff06ab05e850825189037f5f1f0fd24074aca4780688ac9bb7398574",
        "sha256:ed5c7b70ee5219016400ce725abff800ddde5319c8e4b4826864654ce0fee7aa",
    ),
];

#[test]
fn digests_match_go_client_llb() {
    for (name, state) in golden_graphs() {
        let Some((_, want_head, want_summary)) = GOLDEN.iter().find(|(n, _, _)| *n == name) else {
            panic!("no golden value for {name}");
        };
        let def = marshal(&state);
        let summary = summary(&def);
        assert_eq!(head(&def).digest, *want_head, "{name}: result op digest");
        assert_eq!(digest_of(summary.as_bytes()), *want_summary, "{name}: definition summary:\n{summary}");
    }
}

#[test]
fn the_same_graph_marshals_to_the_same_bytes() {
    for ((name, first), (_, second)) in golden_graphs().into_iter().zip(golden_graphs()) {
        // Built twice from scratch, and one state marshalled twice.
        let a = marshal(&first).encode_to_vec();
        let b = marshal(&second).encode_to_vec();
        let c = marshal(&first).encode_to_vec();
        assert_eq!(a, b, "{name}");
        assert_eq!(a, c, "{name}");
    }
}

#[test]
fn digests_are_sha256_of_op_bytes_and_inputs_come_first() {
    for (name, state) in golden_graphs() {
        let def = marshal(&state);
        let mut earlier: Vec<String> = Vec::new();
        for (i, bytes) in def.def.iter().enumerate() {
            let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
            assert_eq!(digest, digest_of(bytes));
            assert!(def.metadata.contains_key(&digest), "{name}: op {i} has metadata under its digest");
            let op = pb::Op::decode(bytes.as_ref()).expect("an op decodes");
            for input in &op.inputs {
                assert!(earlier.contains(&input.digest), "{name}: op {i} reads {} before it is defined", input.digest);
            }
            assert!(!earlier.contains(&digest), "{name}: op {i} appears twice");
            earlier.push(digest);
        }
        assert_eq!(def.metadata.len(), def.def.len(), "{name}: one metadata entry per op");
    }
}

/// prost leaves empty message values out of map entries; Go then decodes
/// them as nil, and buildkitd v0.32.2 crashes on a nil source-map entry when
/// the op it names fails. No map value we send may be an empty message.
#[test]
fn no_map_value_is_an_empty_message() {
    for (name, state) in golden_graphs() {
        let def = marshal(&state);
        for (digest, metadata) in &def.metadata {
            assert_ne!(*metadata, pb::OpMetadata::default(), "{name}: metadata of {digest}");
        }
        let source = def.source.expect("a source map");
        for (digest, locations) in &source.locations {
            assert_ne!(*locations, pb::Locations::default(), "{name}: source locations of {digest}");
        }
    }
}

#[test]
fn the_terminal_op_is_last_and_points_at_the_result() {
    let state = image("busybox").file(mkdir("/x", 0o755));
    let def = marshal(&state);
    let all = ops(&def);
    let (terminal_digest, terminal) = all.last().expect("ops");
    assert_eq!(terminal.op, None, "the terminal op has no kind");
    assert_eq!(terminal.platform, None);
    assert_eq!(terminal.inputs.len(), 1);
    let (file_digest, file) = &all[all.len() - 2];
    assert_eq!(terminal.inputs[0], pb::Input { digest: file_digest.clone(), index: 0 });
    assert!(matches!(file.op, Some(pb::op::Op::File(_))));
    let caps: Vec<&str> = def.metadata[terminal_digest].caps.keys().map(String::as_str).collect();
    assert_eq!(caps, ["constraints", "platform"]);
}

#[test]
fn scratch_marshals_to_an_empty_definition() {
    assert_eq!(marshal(&scratch()), pb::Definition::default());
}

#[test]
fn an_op_used_twice_is_defined_once() {
    // Two image() calls are two op objects with one encoding.
    let base = image("busybox");
    let other = image("docker.io/library/busybox:latest");
    let state = base.file(copy(&other, "/bin/sh", "/sh").then(Copy::new(&base, "/bin/ls", "/ls")));
    let def = marshal(&state);
    assert_eq!(def.def.len(), 3, "image, file op, terminal");
    let pb::op::Op::File(file) = op_by_digest(&def, &head(&def).digest).op.expect("a kind") else {
        panic!("the result is the file op");
    };
    let file_op = op_by_digest(&def, &head(&def).digest);
    // Equal edges collapse to one input.
    assert_eq!(file_op.inputs.len(), 1);
    assert_eq!(
        file.actions.iter().map(|a| (a.input, a.secondary_input, a.output)).collect::<Vec<_>>(),
        [
            (0, 0, -1),
            // The second action reads the first's result: inputs + action index.
            (1, 0, 0),
        ]
    );
}

#[test]
fn exec_mounts_are_sorted_with_outputs_for_writable_binds() {
    let busybox = image("busybox");
    let exec = busybox.run(
        Run::new(["true"])
            .mount(Mount::bind("/z", &scratch()))
            .mount(Mount::bind("/a", &busybox).readonly())
            .mount(Mount::bind("/m", &busybox)),
    );
    let def = marshal(&exec.root());
    let op = op_by_digest(&def, &head(&def).digest);
    let Some(pb::op::Op::Exec(exec_op)) = &op.op else { panic!("an exec op") };
    let mounts: Vec<(&str, i64, i64, bool)> =
        exec_op.mounts.iter().map(|m| (m.dest.as_str(), m.input, m.output, m.readonly)).collect();
    // busybox is one input for all three mounts that read it.
    assert_eq!(mounts, [("/", 0, 0, false), ("/a", 0, -1, true), ("/m", 0, 1, false), ("/z", -1, 2, false)]);
    assert_eq!(op.inputs.len(), 1);
    let meta = exec_op.meta.as_ref().expect("meta");
    assert_eq!(meta.cwd, "/");
    assert!(meta.remove_mount_stubs_recursive);

    // Each writable mount's state points at its output index.
    assert_eq!(head(&marshal(&exec.mount("/m").expect("writable"))).index, 1);
    assert_eq!(head(&marshal(&exec.mount("/z").expect("writable"))).index, 2);
    assert_eq!(head(&marshal(&exec.mount("/a").expect("read-only"))), head(&marshal(&busybox)));
    assert!(exec.mount("/nowhere").is_none());
}

#[test]
fn exec_takes_env_dir_and_user_from_the_state() {
    let state =
        image("busybox").add_env("A", "1").add_env("B", "2").add_env("A", "3").dir("/w").dir("sub").user("nobody");
    let def = marshal(&state.run(Run::shell("env").env("C", "4").cwd("x")).root());
    let Some(pb::op::Op::Exec(exec)) = op_by_digest(&def, &head(&def).digest).op else { panic!("an exec op") };
    let meta = exec.meta.expect("meta");
    // A key set again moves to the end, as in Go's EnvList.
    assert_eq!(meta.env, ["B=2", "A=3", "C=4"]);
    assert_eq!(meta.cwd, "/w/sub/x");
    assert_eq!(meta.user, "nobody");
    assert_eq!(meta.args, ["/bin/sh", "-c", "env"]);
}

#[test]
fn ops_encode_in_go_field_order() {
    let def = marshal(&image("busybox"));
    let bytes = &def.def[0];
    // platform (10) and constraints (11) before the oneof's source (3).
    assert_eq!(bytes[0], 0x52);
    let platform_len = usize::from(bytes[1]);
    assert_eq!(&bytes[2 + platform_len..4 + platform_len], [0x5a, 0x00]);
    assert_eq!(bytes[4 + platform_len], 0x1a);
    // And it still decodes to the same op.
    let op = pb::Op::decode(bytes.as_ref()).expect("decodes");
    assert!(
        matches!(op.op, Some(pb::op::Op::Source(ref s)) if s.identifier == "docker-image://docker.io/library/busybox:latest")
    );
}

#[test]
fn local_sources_carry_session_and_patterns_and_no_platform() {
    let state = local(
        "context",
        LocalOptions {
            exclude_patterns: vec!["*.tmp".into()],
            shared_key_hint: Some("key".into()),
            ..LocalOptions::new("session-1")
        },
    );
    let def = marshal(&state);
    let (digest, op) = ops(&def).remove(0);
    assert_eq!(op.platform, None);
    let Some(pb::op::Op::Source(source)) = op.op else { panic!("a source op") };
    assert_eq!(source.identifier, "local://context");
    assert_eq!(source.attrs["local.session"], "session-1");
    assert_eq!(source.attrs["local.excludepatterns"], r#"["*.tmp"]"#);
    assert_eq!(source.attrs["local.sharedkeyhint"], "key");
    let caps: Vec<&str> = def.metadata[&digest].caps.keys().map(String::as_str).collect();
    assert_eq!(
        caps,
        ["source.local", "source.local.excludepatterns", "source.local.sessionid", "source.local.sharedkeyhint"]
    );
}

#[test]
fn image_platform_and_names() {
    let arm =
        pb::Platform { architecture: "aarch64".into(), os: "Linux".into(), variant: "v8".into(), ..Default::default() };
    let state =
        image_with("127.0.0.1:5000/busybox", ImageOptions { platform: Some(arm), op: OpOptions::named("base") });
    let want = pb::Platform { architecture: "arm64".into(), os: "linux".into(), ..Default::default() };
    assert_eq!(state.get_platform(), Some(&want));
    let def = marshal(&state.run(Run::new(["true"])).root());
    let all = ops(&def);
    let (image_digest, image_op) = &all[0];
    assert_eq!(image_op.platform.as_ref(), Some(&want));
    let Some(pb::op::Op::Source(source)) = &image_op.op else { panic!("a source op") };
    assert_eq!(source.identifier, "docker-image://127.0.0.1:5000/busybox:latest");
    assert_eq!(def.metadata[image_digest].description["llb.customname"], "base");
    // The exec follows the state's platform; the terminal op asks for the
    // description capability because an op has one.
    assert_eq!(all[1].1.platform.as_ref(), Some(&want));
    assert!(def.metadata[&all[2].0].caps.contains_key("meta.description"));
}

#[test]
fn mistakes_surface_when_marshalling() {
    let err = image("Busybox").marshal_with(&amd64()).expect_err("an invalid reference");
    assert!(matches!(err, MarshalError::ImageReference { ref reference, .. } if reference == "Busybox"));
    assert_eq!(err.to_string(), r#"invalid image reference "Busybox""#);
    let err = image("busybox").run(Run::new(Vec::<String>::new())).root().marshal_with(&amd64());
    assert_eq!(err, Err(MarshalError::NoArgs));
}

#[test]
fn file_paths_are_resolved_against_the_state_directory() {
    let src = image("busybox").dir("/bin");
    let state = scratch()
        .dir("/work")
        .file(mkdir("out", 0o40755).mkfile("./out/../f", 0o644, "x").copy(&src, "sh", "out/").rm("/gone"));
    let def = marshal(&state);
    let Some(pb::op::Op::File(file)) = op_by_digest(&def, &head(&def).digest).op else { panic!("a file op") };
    let actions: Vec<String> = file
        .actions
        .iter()
        .map(|a| match a.action.as_ref().expect("an action") {
            pb::file_action::Action::Mkdir(m) => format!("mkdir {} {:o}", m.path, m.mode),
            pb::file_action::Action::Mkfile(m) => format!("mkfile {} {:o} {}", m.path, m.mode, m.timestamp),
            pb::file_action::Action::Copy(c) => format!("copy {} {} {}", c.src, c.dest, c.mode),
            pb::file_action::Action::Rm(r) => format!("rm {}", r.path),
            pb::file_action::Action::Symlink(_) => unreachable!(),
        })
        .collect();
    // Type bits are dropped from modes; -1 means "no timestamp"/"keep mode".
    assert_eq!(actions, ["mkdir /work/out 755", "mkfile /work/f 644 -1", "copy /bin/sh /work/out/ -1", "rm /gone"]);
    // Scratch base: the first action has no input; the copy source is input 0.
    assert_eq!(file.actions[0].input, -1);
    assert_eq!(file.actions[2].secondary_input, 0);
    assert_eq!(file.actions[3].input, 1 + 2);
}

#[test]
fn chown_parses_like_go_with_user() {
    assert_eq!(
        Chown::parse("root:staff"),
        Chown { user: Some(UserOpt::Id(0)), group: Some(UserOpt::Name("staff".into())) }
    );
    assert_eq!(Chown::parse("1000"), Chown { user: Some(UserOpt::Id(1000)), group: None });
    assert_eq!(Chown::parse("app:1"), Chown { user: Some(UserOpt::Name("app".into())), group: Some(UserOpt::Id(1)) });
}
