//! The parser against BuildKit's own parser corpus (read from the pinned
//! BuildKit source in Go's module cache at test time, not copied here):
//! every `testfiles/*/Dockerfile` dumps to its `result`, and every
//! `testfiles-negative/*/Dockerfile` fails.

use super::*;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let output = std::process::Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go is installed (the test environment builds buildkitd with it)");
    let cache = String::from_utf8(output.stdout).unwrap();
    let dir = PathBuf::from(cache.trim()).join("github.com/moby/buildkit@v0.32.2/frontend/dockerfile/parser");
    assert!(dir.is_dir(), "{} is missing: scripts/testenv.sh up brings BuildKit's source", dir.display());
    dir
}

fn dump(dockerfile: &Dockerfile) -> String {
    dockerfile.instructions.iter().map(Instruction::dump).collect::<Vec<_>>().join("\n")
}

#[test]
fn buildkits_parser_corpus_dumps_the_same() {
    let dir = corpus().join("testfiles");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        let Ok(text) = std::fs::read(case.join("Dockerfile")) else { continue };
        let expected = std::fs::read_to_string(case.join("result")).unwrap();
        let text = String::from_utf8_lossy(&text);
        match parse(&text) {
            Ok(parsed) => {
                let ours = dump(&parsed);
                if ours.trim() != expected.trim() {
                    failures.push(format!("{}:\n--- ours\n{ours}\n--- buildkit\n{expected}", case.display()));
                }
            }
            Err(error) => failures.push(format!("{}: {error}", case.display())),
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} cases found in {}", dir.display());
    assert!(failures.is_empty(), "{} of {checked} differ:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn buildkits_negative_corpus_fails() {
    let dir = corpus().join("testfiles-negative");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(case.join("Dockerfile")) else { continue };
        assert!(parse(&text).is_err(), "{} parsed", case.display());
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn heredocs_continuations_and_directives() {
    let text = "# syntax=docker/dockerfile:1\n# escape=\\\n\nFROM busybox AS base\n\
        # about the run\n\
        RUN --mount=type=cache,target=/root/.cache \\\n\
        \x20   # a comment inside\n\
        \x20   echo one && \\\n\
        \n\
        \x20   echo two\n\
        COPY <<EOF /a <<-\"END\" /b\n\
        hello $NAME\n\
        EOF\n\
        \tworld\n\
        \tEND\n\
        CMD [\"sh\", \"-c\", \"echo\"]\n";
    let parsed = parse(text).unwrap();
    assert_eq!(parsed.directives.len(), 2);
    let run = &parsed.instructions[1];
    assert_eq!((run.start_line, run.end_line), (6, 10));
    assert_eq!(run.flags, ["--mount=type=cache,target=/root/.cache"]);
    assert_eq!(run.args, Args::Text("echo one &&     echo two".into()));
    assert_eq!(run.comments, ["about the run"]);
    assert_eq!(parsed.warnings.len(), 1, "the empty continuation line");
    let copy = &parsed.instructions[2];
    assert_eq!(copy.heredocs.len(), 2);
    assert_eq!((copy.heredocs[0].name.as_str(), copy.heredocs[0].expand), ("EOF", true));
    assert_eq!(copy.heredocs[0].content, "hello $NAME\n");
    assert_eq!((copy.heredocs[1].name.as_str(), copy.heredocs[1].expand, copy.heredocs[1].chomp), ("END", false, true));
    assert_eq!(copy.heredocs[1].content, "\tworld\n");
    assert_eq!((copy.start_line, copy.end_line), (11, 15));
    assert!(parsed.instructions[3].json);
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("FROM a\nRUN <<EOF\nno end\n", 2, "unterminated heredoc"),
        // Directive errors at the line before, as Go's scanner counts.
        ("# escape=x\nFROM a\n", 0, "invalid escape token 'x' does not match ` or \\"),
        ("# syntax=a\n# syntax=b\nFROM a\n", 1, "only one syntax parser directive can be used"),
        ("FROM a\nENV\tONLYKEY\n", 2, "ENV must have two arguments"),
        ("FROM a\nCMD [\"a\", 1]\n", 2, "when using JSON array syntax, arrays must be comprised of strings only"),
        ("# only a comment\n\n", 2, "file with no instructions"),
    ];
    for (text, line, message) in cases {
        let error = parse(text).unwrap_err();
        assert_eq!((error.line, error.to_string().as_str()), (line, message), "{text:?}");
    }
}

/// Go's scanner stops at a line over 65,535 bytes: what comes before is
/// parsed as a whole file, then the scan's error is reported at the last
/// line read.
#[test]
fn lines_over_the_scanners_limit_end_the_file() {
    let long = "b".repeat(MAX_LINE + 1 - "LABEL a=".len());
    let text = format!("FROM a\nLABEL x=1\nLABEL a={long}\nLABEL y=2\n");
    let Err(error) = parse(&text) else { panic!("parsed") };
    assert_eq!((error.line, error.message.as_str()), (2, "dockerfile line greater than max allowed size of 65535"));
    // One byte shorter is a line like any other.
    assert!(parse(&format!("FROM a\nLABEL a={}\n", &long[1..])).is_ok());
    // A heredoc cut short by it is unterminated; nothing before it, no instructions.
    let longer = "b".repeat(MAX_LINE + 1);
    let Err(error) = parse(&format!("FROM a\nRUN <<EOF\n{longer}\nEOF\n")) else { panic!("parsed") };
    assert_eq!((error.line, error.message.as_str()), (2, "unterminated heredoc"));
    let Err(error) = parse(&format!("{longer}\nFROM a\n")) else { panic!("parsed") };
    assert_eq!((error.line, error.message.as_str()), (0, "file with no instructions"));
}
