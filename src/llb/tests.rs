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
        ("sourcemap", sourcemap_graph()),
        ("exec-ext", exec_ext_graph(&busybox)),
        (
            "http",
            http(
                "https://example.com/a.tar.gz",
                HttpOptions {
                    filename: Some("a.tgz".into()),
                    checksum: Some(format!("sha256:{}", "ab".repeat(32))),
                    chmod: Some(0o755),
                    uid: Some(1000),
                    gid: Some(1001),
                    ..Default::default()
                },
            ),
        ),
        (
            "git-https",
            git(
                "https://github.com/moby/buildkit.git",
                "v0.12.0:docs/",
                GitOptions {
                    keep_git_dir: true,
                    checksum: Some("0123456789abcdef0123456789abcdef01234567".into()),
                    skip_submodules: true,
                    ..Default::default()
                },
            ),
        ),
        (
            "git-scp",
            git(
                "git@github.com:moby/buildkit.git",
                "main",
                GitOptions {
                    known_ssh_hosts: Some(
                        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
                            .into(),
                    ),
                    mount_ssh_sock: Some("deploy".into()),
                    ..Default::default()
                },
            ),
        ),
        (
            "git-bare",
            git(
                "github.com/moby/buildkit",
                "",
                GitOptions { auth_token_secret: Some("MY_TOKEN".into()), ..Default::default() },
            ),
        ),
        (
            "copy-ext",
            scratch().file(
                FileAction::from(Copy {
                    required_paths: vec!["passwd".into()],
                    include_patterns: vec!["p*".into()],
                    ..Copy::new(&busybox, "/etc/passwd", "/x/")
                        .mode_str("u+x")
                        .user("app:grp")
                        .created(1_700_000_000_000_000_005)
                })
                .then(Copy::new(&busybox, "/bin/sh", "/y").user("1000:1000").mode(0o755))
                .then(Mkdir::new("/d", 0o700).user("app").created(1_600_000_000_000_000_000))
                .then(Mkdir::new("/e", 0o700).user(":1000")),
            ),
        ),
        ("merge", merge_graph(&busybox)),
        ("merge-one", merge(&[scratch(), busybox.clone()], OpOptions::default())),
        ("diff", diff(&busybox, &busybox.file(mkfile("/new", 0o644, "n")), OpOptions::named("diff"))),
        ("diff-to-scratch", diff(&busybox, &scratch(), OpOptions::default())),
        ("diff-from-scratch", diff(&scratch(), &busybox.file(mkfile("/u", 0o644, "")), OpOptions::default())),
        (
            "git-ssh-url",
            git(
                "ssh://git@github.com:22/moby/buildkit.git",
                "refs/heads/main:/a/../b",
                GitOptions { known_ssh_hosts: Some("h1\n".into()), subdir: Some("sub".into()), ..Default::default() },
            ),
        ),
        (
            "git-upper",
            git(
                "HTTPS://user@GitHub.com/Moby/BuildKit?x=1#frag",
                "",
                GitOptions { keep_git_dir: true, ..Default::default() },
            ),
        ),
        ("git-invalid", git("ftp://example.com/repo.git", "v1", GitOptions::default())),
        (
            "exec-hosts",
            busybox
                .run(
                    Run::new(["true"])
                        .extra_host("mapped", "::ffff:1.2.3.4".parse().expect("an address"))
                        .extra_host("v6", "2001:db8:0:0:1:0:0:1".parse().expect("an address"))
                        .secret_env("ONLY", "only-env", true)
                        .env("SSH_AUTH_SOCK", "/mine")
                        .mount(Mount::ssh("", "", 0, 0, 0o600, false)),
                )
                .root(),
        ),
    ]
}

/// A range over columns 0-8 of line `l`.
fn line(l: i32) -> Vec<pb::Range> {
    vec![pb::Range {
        start: Some(pb::Position { line: l, character: 0 }),
        end: Some(pb::Position { line: l, character: 8 }),
    }]
}

fn sourcemap_graph() -> State {
    let dockerfile = "FROM alpine\nRUN echo hi\nCOPY a b\n";
    let sm1 = SourceMap::new("Dockerfile", "Dockerfile", dockerfile);
    // The same file as another object: one info for both.
    let sm1b = SourceMap::new("Dockerfile", "Dockerfile", dockerfile);
    let sm2 = SourceMap::new("docker-bake.hcl", "HCL", "target {}");
    let base = image_with(
        "alpine",
        ImageOptions {
            op: OpOptions { location: Some(sm2.location(line(1))), ..Default::default() },
            ..Default::default()
        },
    );
    let run = base
        .run(Run::new(["/bin/sh", "-c", "echo hi"]).options(OpOptions {
            custom_name: Some("RUN echo hi".into()),
            description: [("com.docker.dockerfile.v1.command".to_owned(), "RUN echo hi".to_owned())].into(),
            progress_group: Some(ProgressGroup { id: "stage-0".into(), name: "build".into(), weak: false }),
            location: Some(sm1.location(line(2))),
            ..Default::default()
        }))
        .root();
    let mut ranges = line(3);
    ranges.extend(line(4));
    run.file_with(
        mkfile("/b", 0o644, "b"),
        OpOptions {
            location: Some(sm1b.location(ranges)),
            progress_group: Some(ProgressGroup { id: "stage-0".into(), name: "build".into(), weak: true }),
            ..Default::default()
        },
    )
}

fn exec_ext_graph(busybox: &State) -> State {
    let cache_base = scratch().file(Mkdir::new("/c", 0o755).owner(Chown::ids(1000, 1000)).into());
    let exec = busybox.run(
        Run::new(["/bin/sh", "-c", "true"])
            .mount(Mount::secret("/run/secrets/tok", "tok", 1000, 1000, 0o400, true))
            .secret_env("TOKEN", "envsec", false)
            .mount(Mount::ssh("", "default", 0, 0, 0o600, false))
            .mount(Mount::ssh("/tmp/ssh.sock", "deploy", 1000, 1000, 0o600, true))
            .security(pb::SecurityMode::Insecure)
            .hostname("builder")
            .extra_host("db", "10.0.0.2".parse().expect("an address"))
            .extra_host("v6", "fe80::1".parse().expect("an address"))
            .ulimit("nofile", 1024, 2048)
            .valid_exit_codes(vec![0, 1])
            .proxy_env(ProxyEnv {
                http_proxy: "http://proxy:3128".into(),
                no_proxy: "localhost".into(),
                ..Default::default()
            })
            .network(pb::NetMode::Host)
            .mount(Mount::tmpfs("/tmp", 1 << 20))
            .mount(Mount::bind("/out", &scratch()).force_no_output())
            .mount(Mount::cache_from("/cache", "c2", pb::CacheSharingOpt::Shared, &cache_base, "/c"))
            .mount(Mount::bind("/src", busybox).readonly().source_path("/etc"))
            .mount(Mount::bind("/data", &scratch())),
    );
    exec.mount("/data").expect("a writable mount has an output")
}

fn merge_graph(busybox: &State) -> State {
    let sm = SourceMap::new("Dockerfile", "Dockerfile", "FROM busybox\n");
    let located = || OpOptions { location: Some(sm.location(line(1))), ..Default::default() };
    // The same op twice, as two objects: both locations are kept.
    let a = image_with("busybox", ImageOptions { op: located(), ..Default::default() });
    let b = image_with("busybox", ImageOptions { op: located(), ..Default::default() });
    merge(&[a, scratch(), b, busybox.file(mkfile("/m", 0o644, "m"))], OpOptions::named("merge"))
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
        if let Some(group) = &metadata.progress_group {
            out += &format!("progress {digest} id={} name={} weak={}\n", group.id, group.name, group.weak);
        }
    }
    if let Some(source) = &def.source {
        for (digest, locations) in source.locations.iter().filter(|(_, l)| !l.locations.is_empty()) {
            out += &format!("source {digest} locations={}\n", locations.locations.len());
            for location in &locations.locations {
                let ranges: Vec<String> = location
                    .ranges
                    .iter()
                    .map(|r| {
                        let (start, end) = (r.start.unwrap_or_default(), r.end.unwrap_or_default());
                        format!("{}:{}-{}:{}", start.line, start.character, end.line, end.character)
                    })
                    .collect();
                out += &format!("location {digest} index={} ranges={}\n", location.source_index, ranges.join(","));
            }
        }
        out += &format!("source infos={}\n", source.infos.len());
        for (i, info) in source.infos.iter().enumerate() {
            out += &format!(
                "info {i} filename={} language={} data={} definition={}\n",
                info.filename,
                info.language,
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&info.data)),
                info.definition.is_some()
            );
        }
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
    (
        "sourcemap",
        "sha256:4d9414c42f0c41da38e8d68d1a63bb79867b77e16f9fcf1ad336c00519f40af6",
        "sha256:d52759958ebedc9ae81f88ef2b4497e12e926866578b111a007ea527b6a395cb",
    ),
    (
        "exec-ext",
        "sha256:b0d5d6299ef3e4ed5e1afc15352e35d0c1c0e5bccf28d275287ceaea2cd9861c",
        "sha256:8e88f682d2f2daf0794c5ed8a24e44793064321bf7368a3033355a162cdf3b7e",
    ),
    (
        "http",
        "sha256:0827982de889a1c00f26ce26b1306de161bd06e1ed295d7b68451deac10c3939",
        "sha256:542a6513dde7c0c79223f2c8b1e5079c9d56c7eee3c14ef9ffa49b9e47561551",
    ),
    (
        "git-https",
        "sha256:d2d0d3b070a25a2ded904730eda99cf9297a6204b08a11ca2c11b2b41e3821c2",
        "sha256:058008051f236aefc5d8888464566c4fada2ee28f2f58eed36e107890b4158d9",
    ),
    (
        "git-scp",
        "sha256:531ad7997b92b374ef7fe464da4e8fd7f43539a7231c257eac80de33aaf86c40",
        "sha256:769b820c26fd9277d5f8209589df847120aa4ba641837f9aec231e693bebdba1",
    ),
    (
        "git-bare",
        "sha256:4aed030d79fac7e2b795e47ee937229dd09b70950454066b4d9263156697f5f4",
        "sha256:d57a5b006f03d0dc2e15ec16b5206e8c37661b30210b6d06c1b9b9aae60955aa",
    ),
    (
        "copy-ext",
        "sha256:c2c05af49e191c776c20add06e224a6b2bb8a218c7badc533a32d9559c12b99b",
        "sha256:59dd8bfb063c6cf1bdf4885f28a2f694b2ed8549ede0907fe4a4192b522e1597",
    ),
    (
        "merge",
        "sha256:b999f37b87d0a87246f97650b6faa850778a0b52cb8d1b42bee072932f155deb",
        "sha256:1584dfeddf41888f1826b6d1dfbd3a81b9e2b53c2e43a8335a311daee8f3af97",
    ),
    (
        "merge-one",
        "sha256:e1432b8e2054abb034451c15f0a8ad49d07f5892ca266016226fec77e95d20a0",
        "sha256:412dd114b4d9a520caf89c41a4930262a7ce08b4279977bbb98465d2d16c1945",
    ),
    (
        "diff",
        "sha256:2c1916ec2286006f8f2af1d27afd6d6d6625250ef17093e68000c66c4dc1f87f",
        "sha256:543dd9f9219dd5440193037003a5b2cb482827fa01a61b6da13c7f7da9e74742",
    ),
    (
        "diff-to-scratch",
        "sha256:7107e6c39ad9b57605a2951a3345537f0530b22c4fedc7a529f245d6da40acaf",
        "sha256:9527b86214b93d5696b72a9e9762ab0e793a8e342adaca25e36c53b8e2069d20",
    ),
    (
        "diff-from-scratch",
        "sha256:1e96ebc3bcfc0d4e24c88216cb40c57fffd4f6981e58bb3ab3d061f6c1bbe115",
        "sha256:9c8c7e46f52472b21feeb3e4cad04c21d556eb78d763698d446a255367cc67d6",
    ),
    (
        "git-ssh-url",
        "sha256:5424d598dd186fb38a6e3c7dc32c752c4eed6b1789c551900de25d73ceb46d83",
        "sha256:70a570b251d18e2719399979eeece80de2e1acecca3c79ee588c7d56aaa0e1c9",
    ),
    (
        "git-upper",
        "sha256:da45d10fd77e6d9e05cd34f2eea87cbf2ab02338fa319d107ae6b213d6d3aa05",
        "sha256:374ca4c3f708d56a57811fc8db45fa7e6dfd051415f357d9be4d920d265e4868",
    ),
    (
        "git-invalid",
        "sha256:0519d745385e20e44a1c8aeae51b8268e29be0b5c65987eeae46e0c47b11e518",
        "sha256:8bf4e827c917252a89db5866b526169e813c29340af92d3e52d5f31a2644500b",
    ),
    (
        "exec-hosts",
        "sha256:ed49b545b76f805e0f9ff170bdabc08883b75b63508410a6b9631306391766ee",
        "sha256:a48cb6f782289ad1de454cf071f8febd1494f02cd46a47f51e39ebce9a7019ef",
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
    let state = image_with(
        "127.0.0.1:5000/busybox",
        ImageOptions { platform: Some(arm), op: OpOptions::named("base"), ..Default::default() },
    );
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

#[test]
fn secret_and_ssh_mounts_come_after_the_sorted_mounts_without_outputs() {
    let busybox = image("busybox");
    let exec = busybox.run(
        Run::new(["true"])
            .mount(Mount::ssh("", "agent", 0, 0, 0o600, false))
            .mount(Mount::secret("/a-secret", "s1", 0, 0, 0o400, false))
            .mount(Mount::bind("/z", &scratch()))
            .mount(Mount::bind("/m", &scratch()).force_no_output())
            .mount(Mount::bind("/b", &scratch())),
    );
    let def = marshal(&exec.root());
    let Some(pb::op::Op::Exec(exec_op)) = op_by_digest(&def, &head(&def).digest).op else { panic!("an exec op") };
    let mounts: Vec<(&str, i64, i64, i32)> =
        exec_op.mounts.iter().map(|m| (m.dest.as_str(), m.input, m.output, m.mount_type)).collect();
    let (bind, secret, ssh) = (pb::MountType::Bind as i32, pb::MountType::Secret as i32, pb::MountType::Ssh as i32);
    assert_eq!(
        mounts,
        [
            ("/", 0, 0, bind),
            ("/b", -1, 1, bind),
            ("/m", -1, -1, bind),
            ("/z", -1, 2, bind),
            // Go leaves the output of these unset.
            ("/a-secret", -1, 0, secret),
            ("/run/buildkit/ssh_agent.0", -1, 0, ssh),
        ]
    );
    let meta = exec_op.meta.expect("meta");
    assert_eq!(meta.env, ["SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"]);
    assert!(exec.mount("/a-secret").is_none());
    assert!(exec.mount("/m").is_none(), "a no-output mount has no state");
    assert_eq!(head(&marshal(&exec.mount("/z").expect("writable"))).index, 2);
}

#[test]
fn merge_and_diff_skip_scratch_as_go_does() {
    let a = image("busybox").dir("/a");
    let b = image("alpine");
    assert!(merge(&[], OpOptions::default()).is_scratch());
    assert!(merge(&[scratch(), scratch()], OpOptions::default()).is_scratch());
    let one = merge(&[scratch(), a.clone()], OpOptions::default());
    assert!(one.output.as_ref().expect("an output").same_as(a.output.as_ref().expect("an output")));
    let both = merge(&[a.clone(), b.clone()], OpOptions::default());
    assert_eq!(both.get_dir(), "/a", "the first input's settings");
    let def = marshal(&both);
    let op = op_by_digest(&def, &head(&def).digest);
    assert_eq!(op.platform, None);
    let Some(pb::op::Op::Merge(merge_op)) = op.op else { panic!("a merge op") };
    assert_eq!(merge_op.inputs.iter().map(|i| i.input).collect::<Vec<_>>(), [0, 1]);

    assert!(diff(&scratch(), &scratch(), OpOptions::default()).is_scratch());
    let upper = diff(&scratch(), &b, OpOptions::default());
    assert!(upper.output.as_ref().expect("an output").same_as(b.output.as_ref().expect("an output")));
}

#[test]
fn a_symbolic_copy_mode_replaces_the_numeric_one() {
    let src = image("busybox");
    let state = scratch().file(Copy::new(&src, "/bin/sh", "/sh").mode(0o755).mode_str("u+x").into());
    let def = marshal(&state);
    let Some(pb::op::Op::File(file)) = op_by_digest(&def, &head(&def).digest).op else { panic!("a file op") };
    let Some(pb::file_action::Action::Copy(copy)) = &file.actions[0].action else { panic!("a copy") };
    assert_eq!((copy.mode, copy.mode_str.as_str()), (0, "u+x"));
}

#[test]
fn git_identifiers_are_the_same_across_remote_forms() {
    let identifier = |remote: &str| {
        let def = marshal(&git(remote, "main", GitOptions::default()));
        let Some(pb::op::Op::Source(source)) = ops(&def).remove(0).1.op else { panic!("a source op") };
        (source.identifier, source.attrs.get("git.fullurl").cloned())
    };
    let want = "git://github.com/moby/buildkit.git#main";
    for (remote, full) in [
        ("https://github.com/moby/buildkit.git", "https://github.com/moby/buildkit.git"),
        ("git@github.com:moby/buildkit.git", "git@github.com:moby/buildkit.git"),
        ("ssh://git@github.com/moby/buildkit.git", "ssh://git@github.com/moby/buildkit.git"),
        ("github.com/moby/buildkit.git", "https://github.com/moby/buildkit.git"),
    ] {
        assert_eq!(identifier(remote), (want.to_owned(), Some(full.to_owned())), "{remote}");
    }
}

/// `--pull`: Go's `ResolveModeForcePull` sets the attribute and asks for
/// the capability; `local` only sets the attribute.
#[test]
fn an_image_resolve_mode_is_an_attribute() {
    use prost::Message as _;
    for (mode, cap) in [("pull", true), ("local", false)] {
        let options = ImageOptions { resolve_mode: Some(mode.into()), ..Default::default() };
        let definition = image_with("busybox", options).marshal().unwrap();
        let op = crate::proto::pb::Op::decode(&definition.def[0][..]).unwrap();
        let Some(crate::proto::pb::op::Op::Source(source)) = op.op else { panic!("a source op") };
        assert_eq!(source.attrs.get("image.resolvemode").map(String::as_str), Some(mode));
        let digest = crate::llb::digest_of(&definition.def[0]);
        assert_eq!(definition.metadata[&digest].caps.contains_key("source.image.resolvemode"), cap, "{mode}");
    }
}

#[test]
fn states_share_their_environment_until_one_changes_it() {
    let base = scratch().add_env("BIG", &"x".repeat(1 << 20));
    let moved = base.dir("/app").user("1000");
    assert!(std::sync::Arc::ptr_eq(&base.env, &moved.env), "the same environment, not a copy");
    let changed = moved.add_env("A", "1");
    assert!(!std::sync::Arc::ptr_eq(&base.env, &changed.env));
    assert_eq!((base.get_env("A"), changed.get_env("A")), (None, Some("1")));
}
