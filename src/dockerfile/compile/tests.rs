use super::*;

fn options() -> CompileOptions {
    CompileOptions {
        session_id: "session".into(),
        build_platforms: vec![pb::Platform { os: "linux".into(), architecture: "amd64".into(), ..Default::default() }],
        ..Default::default()
    }
}

fn compiled(dockerfile: &str, options: &CompileOptions) -> Compiled {
    compile_offline(dockerfile, options).unwrap_or_else(|e| panic!("{dockerfile}: {e}"))
}

#[test]
fn a_scratch_stage_compiles_to_a_graph_and_an_image_config() {
    let out = compiled(
        "FROM scratch AS base\nENV A=1 B=\"two words\"\nWORKDIR /app\nCOPY requirements.txt ./\nLABEL x=y\nCMD [\"run\"]\n",
        &options(),
    );
    assert_eq!(
        out.image.config.env,
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=two words"]
    );
    assert_eq!(out.image.config.working_dir, "/app");
    assert_eq!(out.image.config.cmd, ["run"]);
    let created_by: Vec<&str> = out.image.history.iter().map(|h| h.created_by.as_str()).collect();
    assert_eq!(
        created_by,
        ["ENV A=1 B=two words", "WORKDIR /app", "COPY requirements.txt ./ # buildkit", "LABEL x=y", "CMD [\"run\"]"]
    );
    // context, mkdir, copy, and the terminal op.
    assert_eq!(out.definition.def.len(), 4);
    let names: Vec<String> =
        out.definition.metadata.values().filter_map(|m| m.description.get("llb.customname").cloned()).collect();
    assert!(names.contains(&"[internal] load build context".to_string()), "{names:?}");
    assert!(names.contains(&"[2/2] COPY requirements.txt ./".to_string()), "{names:?}");
}

#[test]
fn a_target_compiles_only_the_stages_it_needs() {
    let text = "FROM scratch AS base\nFROM base AS deps\nCOPY a /a\nFROM scratch AS other\nCOPY b /b\nFROM deps\nCOPY --from=other /b /b\n";
    let mut opts = options();
    opts.target = Some("deps".into());
    assert_eq!(compiled(text, &opts).stages, ["base", "deps"]);
    opts.target = None;
    assert_eq!(compiled(text, &opts).stages, ["base", "deps", "other", "stage-3"]);
    opts.target = Some("dep".into());
    let error = compile_offline(text, &opts).unwrap_err();
    assert_eq!(error.to_string(), "target stage \"dep\" could not be found (did you mean deps?)");
}

#[test]
fn the_epoch_and_args_reach_history_and_run_steps() {
    let mut opts = options();
    opts.build_args.insert("SOURCE_DATE_EPOCH".into(), "0".into());
    opts.build_args.insert("V".into(), "2".into());
    let out = compiled("ARG V=1\nFROM scratch\nARG V\nARG W=${V}x\nRUN echo $V\n", &opts);
    assert!(out.image.history.iter().all(|h| h.created.as_deref() == Some("1970-01-01T00:00:00Z")));
    let created_by: Vec<&str> = out.image.history.iter().map(|h| h.created_by.as_str()).collect();
    assert_eq!(created_by, ["ARG V=2", "ARG W=2x", "RUN |2 V=2 W=2x /bin/sh -c echo $V # buildkit"]);
    assert_eq!(out.epoch, Some(0));
    let meta = out.exporter_metadata();
    assert_eq!(meta["source.date.epoch"], b"0");
    assert!(!String::from_utf8_lossy(&meta["containerimage.config"]).contains("\"ArgsEscaped\""));
}

#[test]
fn bad_dockerfiles_fail_with_the_frontends_messages_and_lines() {
    for (text, line, message) in [
        ("FROM scratch AS a\nCOPY --from=b /x /x\nFROM a AS b\nCOPY --from=a /y /y\n", Some(2), "circular dependency detected on stage: a"),
        ("FROM scratch\nCOPY --from=$X /a /b\n", Some(2), "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"),
        ("FROM scratch\nRUN --mount=type=nfs,target=/x true\n", Some(2), "unsupported mount type \"nfs\""),
        ("FROM scratch\nEXPOSE 99999\n", Some(2), "invalid containerPort: 99999"),
        ("FROM scratch\nSTOPSIGNAL SIGNOPE\n", Some(2), "invalid signal: SIGNOPE"),
        ("", None, "the Dockerfile cannot be empty"),
    ] {
        let error = compile_offline(text, &options()).unwrap_err();
        assert_eq!((error.line(), error.to_string().as_str()), (line, message), "{text:?}");
    }
}

#[test]
fn unsupported_features_name_their_line() {
    let error = compile_offline("# syntax=docker/dockerfile:1\nFROM scratch\n", &options()).unwrap_err();
    assert!(matches!(error, CompileError::Unsupported { line: 1, .. }), "{error}");
}

#[test]
fn two_hundred_stages_compile_quickly() {
    let mut text = String::from("FROM scratch AS s0\nCOPY f0 /f0\n");
    for i in 1..200 {
        text.push_str(&format!("FROM s{} AS s{i}\nENV N={i}\nCOPY f{i} /f{i}\nRUN echo {i}\n", i - 1));
    }
    let out = compiled(&text, &options());
    assert_eq!(out.stages.len(), 200);
}

/// Runs `work` on a thread with a small stack (a tokio worker's is 2 MiB):
/// a compile whose depth grows with the Dockerfile overflows it.
fn on_a_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(1 << 20).spawn(work).unwrap().join().expect("no overflow")
}

#[test]
fn ten_thousand_steps_in_a_chain_compile_marshal_and_free_without_recursion() {
    let runs: String =
        std::iter::once("FROM scratch\n".to_owned()).chain((0..10_000).map(|i| format!("RUN true {i}\n"))).collect();
    let ops = on_a_small_stack(move || compiled(&runs, &options()).definition.def.len());
    assert_eq!(ops, 10_001, "10,000 execs and the terminal op");

    // Stages built on the one before, each copying from it too: the
    // cycle check and the stage chain walk 10,000 deep.
    let mut stages = String::from("FROM scratch AS s0\nCOPY a /a\n");
    for i in 1..10_000 {
        stages.push_str(&format!("FROM s{} AS s{i}\nCOPY --from=s{} /a /a{i}\nENV N={i}\n", i - 1, i - 1));
    }
    let out = on_a_small_stack(move || {
        let out = compiled(&stages, &options());
        (out.stages.len(), out.image.history.len(), out.image.config.env.len())
    });
    assert_eq!(out, (10_000, 1 + 2 * 9_999, 2), "every stage, every stage's history, PATH and N");
}

#[test]
fn a_value_that_doubles_itself_stops_at_the_bound_with_its_line() {
    for (keyword, line) in [("ARG", 23), ("ENV", 23)] {
        let mut text = String::from("FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n");
        for i in 1..=40 {
            text.push_str(&format!("{keyword} A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        let Err(error) = compile_offline(&text, &options()) else { panic!("{keyword}: compiled") };
        assert_eq!(error.line(), Some(line), "{keyword}: {error}");
        assert!(error.to_string().contains("over the limit of 16777216 (16 MiB"), "{keyword}: {error}");
    }
    // A LABEL of an ARG that has reached the bound.
    let mut text = String::from("FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n");
    for i in 1..=20 {
        text.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    text.push_str("LABEL big=\"$A20$A20\"\n");
    let Err(error) = compile_offline(&text, &options()) else { panic!("LABEL: compiled") };
    assert_eq!(error.line(), Some(23), "{error}");
}

/// The exec ops of a compiled graph.
fn execs(out: &Compiled) -> Vec<(pb::ExecOp, pb::OpMetadata)> {
    use prost::Message;
    out.definition
        .def
        .iter()
        .filter_map(|bytes| {
            let op = pb::Op::decode(bytes.as_ref()).ok()?;
            let Some(pb::op::Op::Exec(exec)) = op.op else { return None };
            let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)));
            Some((exec, out.definition.metadata.get(&digest).cloned().unwrap_or_default()))
        })
        .collect()
}

#[test]
fn run_steps_get_the_frontend_options_for_them() {
    let mut opts = options();
    opts.cgroup_parent = "parent".into();
    opts.hostname = "host".into();
    opts.cache_namespace = "ns".into();
    opts.linux_resources = Some(pb::LinuxResources { memory: 1 << 30, cpuset_cpus: "0".into(), ..Default::default() });
    let out = compiled("FROM scratch AS a\nRUN true\nFROM a\nRUN --mount=type=cache,target=/c true\n", &opts);
    let execs = execs(&out);
    assert_eq!(execs.len(), 2);
    for (exec, metadata) in &execs {
        let meta = exec.meta.as_ref().expect("exec meta");
        assert_eq!((meta.cgroup_parent.as_str(), meta.hostname.as_str()), ("parent", "host"));
        assert_eq!(metadata.linux_resources, opts.linux_resources);
        assert!(metadata.caps.contains_key("exec.meta.linux.resources"), "{:?}", metadata.caps);
    }
    let cache_ids: Vec<String> = execs
        .iter()
        .flat_map(|(e, _)| e.mounts.iter().filter_map(|m| m.cache_opt.as_ref().map(|c| c.id.clone())))
        .collect();
    assert_eq!(cache_ids, ["ns//c"]);
}

/// The source ops of a compiled graph: identifier and attributes.
fn sources(out: &Compiled) -> Vec<pb::SourceOp> {
    use prost::Message;
    out.definition
        .def
        .iter()
        .filter_map(|bytes| match pb::Op::decode(bytes.as_ref()).ok()?.op {
            Some(pb::op::Op::Source(source)) => Some(source),
            _ => None,
        })
        .collect()
}

#[test]
fn add_sources_carry_the_options_of_their_urls() {
    let sum = "sha256:".to_owned() + &"a".repeat(64);
    let text = format!(
        "FROM scratch\nADD --checksum={sum} https://example.com/f.tgz /f\n\
         ADD git://h/r.git?branch=dev&subdir=docs/&commit=abc&fetch-by-commit&submodules=false /g\n\
         ADD --keep-git-dir=true https://h/r.git#v1:sub /k\n"
    );
    let out = compiled(&text, &options());
    let by_id: BTreeMap<String, BTreeMap<String, String>> =
        sources(&out).into_iter().map(|s| (s.identifier, s.attrs.into_iter().collect())).collect();
    assert_eq!(by_id["https://example.com/f.tgz"].get("http.checksum"), Some(&sum));
    let git = &by_id["git://h/r.git#refs/heads/dev:docs/"];
    assert_eq!(git.get("git.checksum").map(String::as_str), Some("abc"));
    assert_eq!(git.get("git.fetchbycommit").map(String::as_str), Some("true"));
    assert_eq!(git.get("git.skipsubmodules").map(String::as_str), Some("true"));
    assert_eq!(git.get("git.fullurl").map(String::as_str), Some("git://h/r.git"));
    let kept = &by_id["git://h/r.git#v1:sub"];
    assert_eq!(kept.get("git.keepgitdir").map(String::as_str), Some("true"));
    assert_eq!(kept.get("git.fullurl").map(String::as_str), Some("https://h/r.git"));

    for (text, message) in [
        ("FROM scratch\nADD --checksum=sha256:abc https://example.com/f /f\n", "invalid checksum digest length"),
        ("FROM scratch\nADD --checksum=md5:abc https://example.com/f /f\n", "unsupported digest algorithm"),
        ("FROM scratch\nADD --checksum=x https://example.com/f /f\n", "invalid checksum digest format"),
        ("FROM scratch\nADD --checksum=sha256:abc a b /f/\n", "checksum can't be specified for multiple sources"),
        ("FROM scratch\nCOPY https://example.com/f /f\n", "source can't be a URL for COPY"),
    ] {
        let error = compile_offline(text, &options()).unwrap_err();
        assert_eq!((error.line(), error.to_string().as_str()), (Some(2), message), "{text:?}");
    }
}
