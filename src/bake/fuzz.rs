//! Property tests ("fuzzing") of bake files as untrusted input, beside
//! `src/fuzz.rs` and `src/cache/fuzz.rs`: HCL, JSON and compose YAML files
//! built from the pieces bake gives meaning to (blocks, matrices, `inherits`,
//! `target:` links, groups, variables that use each other, user functions,
//! templates, YAML anchors and merge keys), and valid files mutated byte by
//! byte. Loading, resolving and printing must never panic, overflow the
//! stack or hang, whatever the file says; each case runs on a thread of its
//! own with a deadline.
//!
//! Case counts: 64 per property unless `PROPTEST_CASES` says otherwise
//! (`scripts/fuzz.sh` runs long).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

use super::{compose, hcl, resolve, Env};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Hcl,
    Json,
    Compose,
}

/// Loads, resolves (the default group, then every target by name, with a
/// `--set`) and prints, on a thread of its own: a panic there is re-raised
/// here with the input; a case still running after the deadline is a hang.
fn exercise(kind: Kind, text: String) {
    let (done, wait) = mpsc::channel();
    let input = text.clone();
    let runner = std::thread::Builder::new()
        .name("bake-fuzz".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(|| run(kind, &input));
            let _ = done.send(result.is_ok());
        })
        .expect("spawn");
    match wait.recv_timeout(Duration::from_secs(60)) {
        Ok(true) => {
            let _ = runner.join();
        }
        Ok(false) => panic!("{kind:?} file panicked:\n{text}"),
        Err(_) => panic!("{kind:?} file took over a minute:\n{text}"),
    }
}

fn run(kind: Kind, text: &str) {
    let env: Env = [("ENVV".to_string(), "from-env".to_string())].into();
    let dir = tempfile::tempdir().expect("temp dir");
    let definition = match kind {
        Kind::Hcl => hcl::load_hcl("docker-bake.hcl", text, &env),
        Kind::Json => hcl::load_json("docker-bake.json", text, &env),
        Kind::Compose => compose::load("compose.yaml", text, dir.path(), Path::new(""), &env),
    };
    let Ok(definition) = definition else { return };
    if let Ok(resolved) = resolve::resolve(&definition, &[], &[], false) {
        let _ = resolved.print_json();
    }
    let names: Vec<String> = definition.targets.iter().map(|(n, _)| n.clone()).take(50).collect();
    if let Ok(resolved) = resolve::resolve(&definition, &names, &["*.tags+=x".into(), "t?.args.A=1".into()], true) {
        let _ = resolved.print_json();
    }
}

/// Pieces of HCL bake files: joined in any order, most cases do not parse,
/// the rest reach evaluation and resolution in odd shapes.
const HCL_PIECES: &[&str] = &[
    "target \"t1\" {",
    "target \"t2\" {",
    "target \"t-${x}\" {",
    "group \"default\" {",
    "group \"g\" {",
    "variable \"V\" {",
    "variable \"W\" {",
    "function \"f\" {",
    "function \"g\" {",
    "validation {",
    "}",
    "{",
    "\n",
    "targets = [\"t1\", \"t2\", \"g\", \"default\"]",
    "targets = [\"nope\"]",
    "inherits = [\"t1\"]",
    "inherits = [\"t2\", \"t1\"]",
    "contexts = { up = \"target:t1\" }",
    "contexts = { up = \"target:t2\", x = \"target:../x\" }",
    "name = \"m-${a}-${b}\"",
    "name = a",
    "matrix = { a = [\"1\", \"2\"], b = [\"x\", \"y\"] }",
    "matrix = { a = [] }",
    "matrix = { a = range(1000), b = range(1000) }",
    "matrix = \"nope\"",
    "default = \"${W}x\"",
    "default = \"${V}${V}\"",
    "default = 3",
    "default = true",
    "params = [x]",
    "variadic_params = rest",
    "result = f(x)",
    "result = g(x, x)",
    "result = x > 0 ? f(x - 1) : x",
    "condition = V != \"\"",
    "error_message = \"bad\"",
    "tags = [\"r/${V}:${W}\", upper(V), f(1)]",
    "tags = [for v in range(5): \"t${v}\"]",
    "args = { A = V, B = null, C = \"${target.t1.args.A}\" }",
    "args = merge({A = 1}, {B = [1]})",
    "labels = { \"a.b\" = \"%{ if true }x%{ endif }\" }",
    "output = [{ type = \"local\", dest = \"out\" }]",
    "output = [\"type=local,dest=out\"]",
    "platforms = [\"linux/amd64\", \"linux/arm64\"]",
    "dockerfile-inline = <<EOT\nFROM scratch\nEOT\n",
    "no-cache = try(nope, true)",
    "shm-size = \"1g\"",
    "ulimits = [\"nofile=1024:2048\"]",
    "attest = [\"type=provenance,mode=max\"]",
    "secret = [\"id=a,env=ENVV\"]",
    "bogus = 1",
    "\"${",
    "%{ for x in [1] }",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    "# comment",
    "/*",
    "*/",
    "ENVV",
    "target.t1.tags",
    "formatdate(\"YYYY\", timestamp())",
    "regex_replace(\"a\", \"(\", \"b\")",
    "join(\",\", setproduct([1,2],[3,4]))",
    "\u{e9}\u{0}\t",
];

fn hcl_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(HCL_PIECES), 0..40).prop_map(|pieces| pieces.join("\n"))
}

/// Valid files, to mutate: most mutations keep them nearly valid, so the
/// loader's deeper paths run on odd values.
const HCL_SEEDS: &[&str] = &[r#"variable "V" { default = "v" }
variable "W" { default = "${V}-w" }
function "f" {
  params = [x]
  result = "${x}-${W}"
}
group "default" { targets = ["app", "m"] }
target "base" {
  args = { A = "1" }
  tags = [f("base")]
}
target "app" {
  inherits = ["base"]
  contexts = { b = "target:base" }
  tags = ["${target.base.tags[0]}-app"]
}
target "m" {
  name = "m-${a}-${b}"
  matrix = { a = ["1", "2"], b = ["x", "y"] }
  args = { A = a, B = b }
}
"#];

const JSON_SEED: &str = r#"{"variable": {"V": {"default": "v"}},
 "group": {"default": {"targets": ["app", "m"]}},
 "target": {"base": {"args": {"A": "${V}"}},
            "app": {"inherits": ["base"], "contexts": {"b": "target:base"}, "tags": ["r/app:${V}"]},
            "m": {"name": "m-${a}", "matrix": {"a": ["1", "2"]}}}}"#;

const COMPOSE_SEED: &str = "x-common: &common
  context: .
  args:
    A: ${ENVV:-d}
services:
  app:
    build:
      <<: *common
      dockerfile: Dockerfile
      additional_contexts:
        base: service:base
      tags: [\"r/app\"]
  base:
    build: *common
";

/// A valid text with a few edits: bytes replaced, runs deleted or repeated,
/// pieces inserted, the end cut off.
fn mutated(seed: &'static str, pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    let edit = (0usize..4, any::<prop::sample::Index>(), 0usize..16, proptest::sample::select(pieces));
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut bytes = seed.as_bytes().to_vec();
        for (how, at, len, piece) in edits {
            let at = at.index(bytes.len() + 1);
            let end = (at + len).min(bytes.len());
            match how {
                0 => {
                    bytes.splice(at..end, piece.bytes());
                }
                1 => {
                    bytes.drain(at..end);
                }
                2 => {
                    let run = bytes[at..end].to_vec();
                    bytes.splice(at..at, run.iter().chain(run.iter()).copied());
                }
                _ => bytes.truncate(at),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Pieces of compose files, YAML's own shapes included (anchors, merge
/// keys, flow collections, tags).
const COMPOSE_PIECES: &[&str] = &[
    "services:",
    "  app:",
    "  base:",
    "    build:",
    "    build: .",
    "    build: *common",
    "    image: r/app",
    "      context: .",
    "      dockerfile: Dockerfile",
    "      <<: *common",
    "      <<: [*common, *common]",
    "      args:",
    "        A: ${ENVV}",
    "        B: ${NOPE:?required}",
    "        C: $${x}",
    "      - A=1",
    "      additional_contexts:",
    "        base: service:base",
    "        self: service:app",
    "      tags: [\"r/app\"]",
    "      target: t",
    "      platforms: [linux/amd64]",
    "      shm_size: 1g",
    "      ulimits: {nproc: 64}",
    "x-common: &common",
    "x-loop: &loop [*loop]",
    "&a",
    "*a",
    "!!binary aGk=",
    "{",
    "}",
    "[",
    "]",
    "- ",
    ": ",
    "'",
    "\"",
    "#",
    "---",
    "...",
    "\t",
];

fn compose_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(COMPOSE_PIECES), 0..30).prop_map(|pieces| pieces.join("\n"))
}

/// JSON documents in the shape of bake files, every field free to be the
/// wrong type.
fn json_text() -> impl Strategy<Value = String> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(vec!["t1", "target:t1", "${V}", "${", "m-${a}", "type=local,dest=o", "linux/amd64"])
            .prop_map(|s| Value::String(s.to_string())),
    ];
    let keys = proptest::sample::select(vec![
        "target", "group", "variable", "t1", "t2", "default", "targets", "inherits", "contexts", "matrix", "name",
        "args", "tags", "output", "a", "V",
    ]);
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
    .prop_map(|value| value.to_string())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hcl_pieces_never_panic_or_hang(text in hcl_text()) {
        exercise(Kind::Hcl, text);
    }

    #[test]
    fn mutated_hcl_never_panics_or_hangs(text in mutated(HCL_SEEDS[0], HCL_PIECES)) {
        exercise(Kind::Hcl, text);
    }

    #[test]
    fn json_bake_files_never_panic_or_hang(text in json_text()) {
        exercise(Kind::Json, text);
    }

    #[test]
    fn mutated_json_never_panics_or_hangs(text in mutated(JSON_SEED, &["{", "}", "[", "]", ",", ":", "\"${", "null", "\"target:m\""])) {
        exercise(Kind::Json, text);
    }

    #[test]
    fn compose_pieces_never_panic_or_hang(text in compose_text()) {
        exercise(Kind::Compose, text);
    }

    #[test]
    fn mutated_compose_never_panics_or_hangs(text in mutated(COMPOSE_SEED, COMPOSE_PIECES)) {
        exercise(Kind::Compose, text);
    }
}

/// Inputs that once broke the loader: they run on every test run.
#[test]
fn known_bad_files() {
    for (kind, text) in [
        (Kind::Hcl, "function \"f\" {\n  params = [x]\n  result = f(x)\n}\ntarget \"t\" {\n  tags = [f(1)]\n}\n"),
        (Kind::Hcl, "target \"m\" {\n  name = \"m\"\n  matrix = { a = range(1000), b = range(1000) }\n}\n"),
        (Kind::Compose, "x-loop: &loop [*loop]\nservices: *loop\n"),
    ] {
        exercise(kind, text.to_string());
    }
}
