//! The Dockerfile parser and instruction layer (`fbuild::dockerfile`) say
//! what the daemon's Dockerfile frontend says about the same bad
//! Dockerfiles: the same message, the same line. The reference is
//! `dockerfile.v0` itself (`--frontend dockerfile.v0`), not fbuild's
//! default frontend, which compiles natively.

use crate::util;

#[test]
fn bad_dockerfiles_fail_as_the_daemons_frontend_fails_them() {
    let cases = [
        ("FROM a\nCOPY --form=x a b\n", 2),
        ("FROM a\nCOPY onlyone\n", 2),
        ("FROM a AS 1x\n", 1),
        ("FROM a\nFOO bar\n", 2),
        ("FROM a\nCOPY --link=maybe a b\n", 2),
        ("FROM a\nHEALTHCHECK NONE x\n", 2),
        ("FROM a\nONBUILD ONBUILD RUN x\n", 2),
        ("FROM a\nRUN <<EOF\nnever ends\n", 2),
        // The daemon places a directive's error at the line before it.
        ("# escape=x\nFROM a\n", 0),
        ("# check=skip=all\n# check=error=true\nFROM a\n", 1),
        ("FROM a\nENV\tONLYKEY\n", 2),
        // An empty CSV value: Go's reader answers io.EOF ("EOF").
        ("FROM a\nRUN --device= true\n", 2),
    ];
    let project = util::tempdir();
    for (text, line) in cases {
        util::write_files(project.path(), &[("Dockerfile", text)]);
        let ours = fbuild::dockerfile::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|parsed| fbuild::dockerfile::instructions::stages(&parsed).map_err(|e| e.to_string()))
            .expect_err("the Dockerfile is bad");
        let output =
            util::fbuild().arg("solve").arg(project.path()).args(["--frontend", "dockerfile.v0"]).output().unwrap();
        let stderr = util::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text:?}: {stderr}");
        // The instruction layer puts "dockerfile parse error on line N: "
        // before its message, as the daemon's does; the parser's message
        // is bare and the daemon points at the line beside it.
        let message = ours.rsplit_once(&format!("line {line}: ")).map_or(ours.as_str(), |(_, m)| m);
        assert!(stderr.contains(message), "{text:?}: ours {ours:?}, the daemon's:\n{stderr}");
        let at_line = |stderr: &str| {
            if line == 0 {
                !stderr.contains("Dockerfile:") && !stderr.contains("on line ")
            } else {
                stderr.contains(&format!("Dockerfile:{line}")) || stderr.contains(&format!("on line {line}:"))
            }
        };
        assert!(at_line(&stderr), "{text:?}: the daemon's line is not {line}:\n{stderr}");
        // Natively, the same words at the same line.
        let native = util::fbuild().arg("solve").arg(project.path()).args(["--frontend", "native"]).output().unwrap();
        let native_stderr = util::text(&native.stderr);
        assert_eq!(native.status.code(), Some(1), "{text:?}: {native_stderr}");
        assert!(native_stderr.contains(message), "{text:?}: native:\n{native_stderr}");
        let native_line = if line == 0 { "Dockerfile: ".to_owned() } else { format!("Dockerfile:{line}: ") };
        assert!(native_stderr.contains(&native_line), "{text:?}: native, not at {line}:\n{native_stderr}");
    }
}
