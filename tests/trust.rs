//! Issue 9, "trust nothing": odd input, faults and a misbehaving daemon
//! must not crash fbuild, leak a credential or leave a half-written output.
//! Each test here reproduces a defect found in review; it failed before the
//! fix.

use crate::util;

/// A malformed `DOCKER_AUTH_CONFIG` or `config.json` is a warning (the build
/// may not need a login), and its text is a credential: serde_json's message
/// quoted the offending string (here a base64 `auth`) on stderr, even with
/// `-q`.
#[test]
fn a_broken_credential_file_is_reported_without_its_values() {
    const SECRET: &str = "c2VjcmV0LXBhc3N3b3JkLTEyMzQ1";
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let config = util::tempdir();
    util::write_files(config.path(), &[("config.json", &format!(r#"{{"auths": {{"127.0.0.1:5000": "{SECRET}"}}}}"#))]);

    for (docker_config, env_config) in [
        (config.path().to_path_buf(), String::new()),
        (project.path().join("no-config"), format!(r#"{{"auths": {{"127.0.0.1:5000": "{SECRET}"}}}}"#)),
    ] {
        let output = util::fbuild()
            .arg("-q")
            .arg("solve")
            .arg(project.path())
            .env("DOCKER_CONFIG", &docker_config)
            .env("DOCKER_AUTH_CONFIG", &env_config)
            .output()
            .expect("run fbuild");
        let stderr = util::text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains(SECRET) && !util::text(&output.stdout).contains(SECRET), "{stderr}");
        assert!(stderr.contains("continuing without registry credentials"), "{stderr}");
        assert!(stderr.contains("line 1 column"), "{stderr}");
    }
}
