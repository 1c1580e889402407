//! The Dockerfile parser and instruction layer (`fbuild::dockerfile`) say
//! what the daemon's Dockerfile frontend says about the same bad
//! Dockerfiles: the same message, the same line.

use crate::util;

#[test]
fn bad_dockerfiles_fail_as_the_daemons_frontend_fails_them() {
    let cases = [
        "FROM a\nCOPY --form=x a b\n",
        "FROM a\nCOPY onlyone\n",
        "FROM a AS 1x\n",
        "FROM a\nFOO bar\n",
        "FROM a\nCOPY --link=maybe a b\n",
        "FROM a\nHEALTHCHECK NONE x\n",
        "FROM a\nONBUILD ONBUILD RUN x\n",
        "FROM a\nRUN <<EOF\nnever ends\n",
        "# escape=x\nFROM a\n",
        "FROM a\nENV\tONLYKEY\n",
    ];
    let project = util::tempdir();
    for text in cases {
        util::write_files(project.path(), &[("Dockerfile", text)]);
        let ours = fbuild::dockerfile::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|parsed| fbuild::dockerfile::instructions::stages(&parsed).map_err(|e| e.to_string()))
            .expect_err("the Dockerfile is bad");
        let output = util::fbuild().arg("solve").arg(project.path()).output().unwrap();
        let stderr = util::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text:?}: {stderr}");
        assert!(stderr.contains(&ours), "{text:?}: ours {ours:?}, the daemon's:\n{stderr}");
    }
}
