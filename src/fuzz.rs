//! Property tests ("fuzzing") of the parsers that take untrusted or
//! hand-written input: `.dockerignore` patterns, the CSV option syntaxes
//! (`-o`, `--cache-to`/`--cache-from`, `--secret`, `--ssh`), the
//! credential files, and Dockerfiles (parser, instructions, shell lexer). None may panic; patterns must agree with a simple
//! reference where one exists; credential errors must never echo a value.
//!
//! Case counts: 64 per property unless `PROPTEST_CASES` says otherwise
//! (`scripts/fuzz.sh` runs long). Failures found are kept in
//! `proptest-regressions/fuzz.txt` and replayed first on every run; the
//! hand-picked corpus below runs every time too.

use std::ffi::OsString;

use proptest::prelude::*;

use crate::fsync::patterns::{go_match, parse_dockerignore, PatternMatcher};
use crate::services::auth::DockerConfig;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Text drawn mostly from the characters patterns and paths give meaning to.
fn pattern_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r"(!|\*\*|\*|\?|\[|\]|\^|-|\\|/|\.|\.\.|a|b|é|/|[ -~]){0,16}").expect("regex")
}

/// A clean relative path of literal names (no pattern characters).
fn literal_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::string::string_regex(r"[ab]{1,2}|c\.d").expect("regex"), 1..4)
        .prop_map(|parts| parts.join("/"))
}

/// moby's rule for literal patterns, written plainly: a path is excluded
/// when the last pattern that names it or one of its parents is not an
/// exception.
fn reference_excluded(patterns: &[(bool, String)], path: &str) -> bool {
    let mut excluded = false;
    for (exception, pattern) in patterns {
        let hit = path == pattern || path.starts_with(&format!("{pattern}/"));
        if hit {
            excluded = !exception;
        }
    }
    excluded
}

/// Hand-picked inputs that once broke pattern code somewhere (Go's or
/// ours): they run on every test run.
const PATTERN_CORPUS: &[&str] = &[
    "",
    "!",
    "!!",
    "[",
    "]",
    "[]",
    "[^]",
    "[a-]",
    "[-a]",
    "[\\",
    "\\",
    "a\\",
    "**",
    "**/",
    "/**",
    "***",
    "a/**/b",
    "[z-a]",
    "[a-z",
    "?",
    "!**",
    "../a",
    "./a/../..",
    "a[",
    "\\[",
    "[[]",
    "[!a]",
    "é*",
    "*é",
    "[é-a]",
];

#[test]
fn pattern_corpus_never_panics() {
    for pattern in PATTERN_CORPUS {
        for path in ["", "a", "a/b", "é", "[", "a/[/b", "..", "a b"] {
            let _ = go_match(pattern, path);
            if let Ok(matcher) = PatternMatcher::new(&[*pattern]) {
                let _ = matcher.matches_or_parent_matches(path);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn patterns_never_panic(patterns in proptest::collection::vec(pattern_text(), 0..4), path in pattern_text()) {
        for pattern in &patterns {
            let _ = go_match(pattern, &path);
        }
        if let Ok(matcher) = PatternMatcher::new(&patterns) {
            let _ = matcher.matches_or_parent_matches(&path);
        }
    }

    #[test]
    fn dockerignore_files_never_panic(content in proptest::collection::vec(any::<u8>(), 0..200)) {
        let patterns = parse_dockerignore(&content);
        let _ = PatternMatcher::new(&patterns);
    }

    #[test]
    fn literal_patterns_agree_with_the_reference(
        patterns in proptest::collection::vec((any::<bool>(), literal_path()), 1..5),
        path in literal_path(),
    ) {
        // A list may not start with an exception for the reference's sake
        // (moby accepts it, and so does the reference: it excludes nothing).
        let texts: Vec<String> =
            patterns.iter().map(|(exception, p)| if *exception { format!("!{p}") } else { p.clone() }).collect();
        let matcher = PatternMatcher::new(&texts).expect("literal patterns parse");
        let ours = matcher.matches_or_parent_matches(&path).expect("literal patterns match");
        prop_assert_eq!(ours, reference_excluded(&patterns, &path), "patterns {:?}, path {:?}", texts, path);
    }

    #[test]
    fn option_parsers_never_panic(spec in "([a-z-]{0,8}(=[^,]{0,8})?,?){0,5}|[ -~]{0,40}") {
        let _ = crate::output::parse_output(&spec);
        let _ = crate::output::csv_fields(&spec);
        let _ = crate::cache::CacheEntry::parse(&spec, crate::cache::CacheDirection::Import);
        let _ = crate::cache::CacheEntry::parse(&spec, crate::cache::CacheDirection::Export);
        // No file or variable is read: `src=` names are kept out.
        if !spec.contains("src") && !spec.contains("source") {
            let _ = crate::services::secrets::SecretSource::parse_with_env(&spec, |_| None);
        }
        let _ = crate::services::AgentSpec::parse_with_auth_sock(&spec, None);
    }
}

const SECRET: &str = "c2VjcmV0LXZhbHVl";

/// Valid configs holding [`SECRET`], mutated by the strategy below.
const CONFIGS: &[&str] = &[
    r#"{"auths": {"r.example.com": {"auth": "c2VjcmV0LXZhbHVl"}}}"#,
    r#"{"auths": {"r.example.com": {"username": "u", "password": "c2VjcmV0LXZhbHVl"}}, "credsStore": "x"}"#,
    r#"{"auths": {"r.example.com": {"identitytoken": "c2VjcmV0LXZhbHVl"}}, "credHelpers": {"h": "c2VjcmV0LXZhbHVl"}}"#,
];

/// A config with a few random edits (deleting, inserting or replacing
/// characters, JSON punctuation favoured).
fn mutated_config() -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0..3u8,
        prop::sample::select(vec!['"', ':', ',', '{', '}', '[', ']', '1', 'x', ' ', '\\']),
    );
    (prop::sample::select(CONFIGS), proptest::collection::vec(edit, 1..4)).prop_map(|(config, edits)| {
        let mut chars: Vec<char> = config.chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(chars.len().max(1)).min(chars.len());
            match kind {
                0 if i < chars.len() => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// Whether `text`, read as JSON, uses something holding part of the secret
/// as an object key under `auths`/`credHelpers` (a registry host, which
/// errors name on purpose).
fn secret_as_host(text: &str) -> bool {
    fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, value) in map {
                out.push(key.clone());
                keys(value, out);
            }
        }
    }
    let mut found = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        keys(&value, &mut found);
    }
    found.iter().any(|k| SECRET.as_bytes().windows(6).any(|w| k.as_bytes().windows(6).any(|kw| kw == w)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn credential_errors_never_echo_values(text in mutated_config()) {
        prop_assume!(!secret_as_host(&text));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.json"), &text).expect("write");
        let no_helpers = Some(OsString::new());
        for result in [
            DockerConfig::load_from(dir.path(), None, no_helpers.clone()),
            DockerConfig::load_from(tempfile::tempdir().expect("tempdir").path(), Some(&text), no_helpers.clone()),
        ] {
            if let Err(err) = result {
                let chain = crate::error::error_chain(&err);
                // No six characters of the secret in a row.
                let leaked = SECRET.as_bytes().windows(6).any(|w| chain.as_bytes().windows(6).any(|c| c == w));
                prop_assert!(!leaked, "{}\n{}", text, chain);
            }
        }
    }
}

/// Dockerfile-shaped text: keywords, flags, quotes, escapes, heredoc
/// markers, continuations, JSON brackets and variables, in any order.
fn dockerfile_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r#"(FROM |RUN |COPY |ADD |ENV |ARG |LABEL |ONBUILD |HEALTHCHECK |CMD |# escape=`|# syntax=x|--mount=|--from=| AS |<<EOF|<<-'E'|EOF|\|`|
|	| |"|'|\[|\]|,|=|\$|\{|\}|:-|#|a|b|/){0,40}"#,
    )
    .expect("regex")
}

proptest! {
    #![proptest_config(config())]

    /// The Dockerfile parser, the instruction layer and the shell lexer take
    /// any text without panicking.
    #[test]
    fn dockerfiles_never_panic(text in dockerfile_text()) {
        if let Ok(parsed) = crate::dockerfile::parse(&text) {
            if let Ok(stages) = crate::dockerfile::instructions::stages(&parsed) {
                let _ = stages.needed_by(None);
            }
        }
        let env: std::collections::BTreeMap<String, String> = [("a".to_string(), "x y".to_string())].into();
        let lexer = crate::dockerfile::shell::Lexer::new('\\');
        let _ = lexer.expand(&text, &env);
        let _ = lexer.expand_words(&text, &env);
    }

    /// The native compiler takes any Dockerfile-shaped text (with bases
    /// that need no registry) and ends in a graph or an error, never a panic.
    #[test]
    fn the_compiler_never_panics(text in compilable_text()) {
        let options = crate::dockerfile::compile::CompileOptions { session_id: "s".into(), ..Default::default() };
        let _ = crate::dockerfile::compile::compile_offline(&text, &options);
    }
}

/// Dockerfiles from scratch and stages with commands built from pieces the
/// compiler branches on.
fn compilable_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r#"FROM scratch( AS [ab])?
((RUN|COPY|ADD|ENV|ARG|WORKDIR|USER|EXPOSE|VOLUME|LABEL|CMD|ENTRYPOINT|SHELL|STOPSIGNAL|HEALTHCHECK|ONBUILD RUN|FROM) ( |--mount=type=(cache|bind|tmpfs|secret|ssh),(target|from|source|id|env|mode|uid|sharing)=[a-z/$]{0,4}|--from=[ab0-9]|--link|--chmod=[0-7u+x]{1,4}|--parents|--chown=[a-z0-9:]{0,4}|<<EOF|\[|\]|"[a-z]*"|,|=|\$[A-Z]|\$\{A:-b\}|[a-z./*]{1,6}|[0-9]{1,5}(/udp)?|AS [ab]|scratch){0,6}
(EOF
)?){0,8}"#,
    )
    .expect("regex")
}

mod receiver {
    use std::path::Path;

    use proptest::prelude::*;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tokio_stream::StreamExt;

    use crate::fsync::receive::receive_diffcopy;
    use crate::fsync::walk::file_mode;
    use crate::proto::fsutil::types::packet::PacketType;
    use crate::proto::fsutil::types::{Packet, Stat};

    /// Paths a hostile sender might try: clean and not, escaping, absolute,
    /// repeated, through earlier entries.
    fn path() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r"(a|b|\.\.|\.|/|l|f|d)(/?(a|b|\.\.|l|f|d|x)){0,3}").expect("regex")
    }

    fn packet() -> impl Strategy<Value = Packet> {
        let stat = (path(), 0..6u8, prop::option::of(path())).prop_map(|(path, kind, link)| {
            let mode = match kind {
                0 => file_mode::DIR | 0o755,
                1 => file_mode::SYMLINK | 0o777,
                2 => file_mode::NAMED_PIPE | 0o644,
                3 => file_mode::DEVICE | 0o644,
                4 => 0o4755,
                _ => 0o644,
            };
            let linkname = link.map(|l| if kind == 1 { format!("/{l}") } else { l }).unwrap_or_default();
            let stat = Stat { path: path.into(), mode, linkname: linkname.into(), ..Stat::default() };
            Packet { r#type: PacketType::PacketStat as i32, stat: Some(stat), ..Packet::default() }
        });
        prop_oneof![
            6 => stat,
            2 => Just(Packet { r#type: PacketType::PacketStat as i32, ..Packet::default() }),
            2 => (0..4u32, prop::bool::ANY).prop_map(|(id, empty)| Packet {
                r#type: PacketType::PacketData as i32,
                id,
                data: if empty { Default::default() } else { b"data".to_vec().into() },
                ..Packet::default()
            }),
            1 => (0..6i32).prop_map(|t| Packet { r#type: t, ..Packet::default() }),
        ]
    }

    /// Every path below `root`, with symlinks not followed.
    fn listing(root: &Path) -> Vec<String> {
        let mut out: Vec<String> = walkdir::WalkDir::new(root)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| e.path().display().to_string())
            .collect();
        out.sort();
        out
    }

    proptest! {
        #![proptest_config(super::config())]

        /// Whatever the packets, the receiver ends (no panic, no hang),
        /// writes nothing outside the destination's folder, and leaves no
        /// staging folder.
        #[test]
        fn the_receiver_survives_any_packets(packets in proptest::collection::vec(packet(), 0..12)) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            let base = tempfile::tempdir().expect("tempdir");
            let outside = base.path().join("outside");
            std::fs::create_dir(&outside).expect("mkdir");
            std::fs::write(outside.join("keep"), "x").expect("write");
            let out = base.path().join("out");
            std::fs::create_dir(&out).expect("mkdir");
            let before = listing(&outside);
            let dest = out.join("dest");
            let result = runtime.block_on(async {
                let (to_receiver, from_sender) = mpsc::channel(packets.len() + 1);
                for packet in packets.clone() {
                    to_receiver.send(packet).await.expect("queue");
                }
                drop(to_receiver);
                let (to_sender, mut requests) = mpsc::channel(64);
                let drain = tokio::spawn(async move { while requests.recv().await.is_some() {} });
                let result = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    receive_diffcopy(ReceiverStream::new(from_sender).map(Ok), to_sender, &dest),
                )
                .await;
                drain.abort();
                result
            });
            let result = result.expect("the receiver ends");
            prop_assert_eq!(listing(&outside), before);
            let names: Vec<String> = std::fs::read_dir(&out)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            // No staging folder is ever left. A refused transfer leaves no
            // destination, except when the sender fails after the tree was
            // complete and in place (before the closing FIN exchange, which
            // fsutil too does only once the files are on disk).
            prop_assert!(!names.iter().any(|n| n.starts_with(".fbuild-receive-")), "left {:?}", names);
            if result.is_ok() {
                prop_assert_eq!(names, vec!["dest".to_owned()]);
            }
        }
    }
}
