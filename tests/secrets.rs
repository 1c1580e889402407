//! Build secrets end to end: readable in `RUN --mount=type=secret`, and found
//! in no layer of the result and nowhere in fbuild's output.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::util::{self, testenv};

/// A secret value no test or image contains by chance.
fn unique_secret(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("fbuild-{label}-secret-{}-{nanos}", std::process::id())
}

/// Every file of every layer tarball in an OCI layout tarball whose layers
/// are uncompressed: path → content.
fn layer_files(oci_tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(oci_tar);
    for blob in archive.entries().unwrap() {
        let mut blob = blob.unwrap();
        let mut content = Vec::new();
        blob.read_to_end(&mut content).unwrap();
        // Layers are tarballs; manifests and configs are JSON and fail here.
        let mut layer = tar::Archive::new(content.as_slice());
        let Ok(entries) = layer.entries() else { continue };
        for entry in entries {
            let Ok(mut entry) = entry else { break };
            let path = entry.path().unwrap().to_string_lossy().trim_start_matches("./").to_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.push((path, data));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn secrets_are_readable_and_never_stored_or_logged() {
    let file_secret = unique_secret("file");
    let env_secret = unique_secret("env");
    let project = util::tempdir();
    let secrets = util::tempdir();
    let secret_file = secrets.path().join("token.txt");
    std::fs::write(&secret_file, &file_secret).unwrap();
    util::write_files(
        project.path(),
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\n\
                     RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok.sha256\n\
                     RUN --mount=type=secret,id=envtok,env=TOKEN sh -c 'printf %s \"$TOKEN\" | sha256sum | cut -d\" \" -f1 > /env.sha256'\n\
                     RUN --mount=type=secret,id=absent,required=false sh -c 'test ! -e /run/secrets/absent && echo ok > /absent'\n\
                     RUN --mount=type=secret,id=tok echo \"secret has $(wc -c < /run/secrets/tok) bytes\"\n",
                    testenv().busybox
                ),
            ),
        ],
    );
    let out = util::tempdir();
    let dest = out.path().join("image.tar");
    let output = util::fbuild()
        .arg("solve")
        .arg(project.path())
        .arg("--secret")
        .arg(format!("id=tok,src={}", secret_file.display()))
        .args(["--secret", "id=envtok,env=FBUILD_TEST_SECRET", "--no-cache", "-o"])
        // Uncompressed layers, so a byte search covers their content.
        .arg(format!("type=oci,dest={},compression=uncompressed,force-compression=true", dest.display()))
        .env("FBUILD_TEST_SECRET", &env_secret)
        // Debug logging on: secrets must not reach fbuild's own logs either.
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    // The build read both secrets.
    let files = layer_files(&std::fs::read(&dest).unwrap());
    let file_of = |name: &str| {
        files
            .iter()
            .rev()
            .find(|(path, _)| path == name)
            .map(|(_, data)| String::from_utf8_lossy(data).trim().to_owned())
    };
    assert_eq!(file_of("tok.sha256").as_deref(), Some(hex::encode(Sha256::digest(&file_secret)).as_str()));
    assert_eq!(file_of("env.sha256").as_deref(), Some(hex::encode(Sha256::digest(&env_secret)).as_str()));
    assert_eq!(file_of("absent").as_deref(), Some("ok"), "a missing optional secret is simply absent");
    assert!(stderr.contains(&format!("secret has {} bytes", file_secret.len())), "the RUN step ran:\n{stderr}");

    // …and neither secret is in any blob (layers, config, manifests) or in
    // what fbuild printed.
    let image = std::fs::read(&dest).unwrap();
    for secret in [&file_secret, &env_secret] {
        assert!(!contains(&image, secret), "a secret is stored in the image");
        assert!(!files.iter().any(|(_, data)| contains(data, secret)), "a secret is in a layer");
        assert!(!stderr.contains(secret.as_str()), "a secret is in the progress output:\n{stderr}");
        assert!(!contains(&output.stdout, secret), "a secret is on stdout");
    }
    assert!(files.iter().all(|(path, _)| !path.starts_with("run/secrets/")), "secret mounts leave no files");
}

#[test]
fn bad_secrets_are_refused_before_the_build() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", &format!("FROM {}\n", testenv().busybox))]);
    let missing = project.path().join("nope.txt");
    let cases = [
        (format!("id=x,src={}", missing.display()), "cannot read secret file"),
        ("id=x,type=vault".to_owned(), "unsupported secret type \"vault\""),
        ("id=x,path=/etc/passwd".to_owned(), "unexpected key \"path\""),
    ];
    for (value, problem) in &cases {
        let output = util::fbuild().arg("solve").arg(project.path()).args(["--secret", value]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{value} was accepted");
        assert!(stderr.contains("--secret") && stderr.contains(value.as_str()), "{value}: {stderr}");
        assert!(stderr.contains(problem), "{value}: {stderr}");
        assert!(!stderr.contains("#1 "), "{value}: no build step may start:\n{stderr}");
    }
    // Checked with a real daemon in reach, so a pass means the flag was
    // refused, not that nothing could connect.
    assert!(Path::new(&testenv().root).exists());
}
