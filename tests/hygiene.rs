//! Issue 20, "code that says what it means": RSA keys signed by ring
//! through a real `RUN --mount=type=ssh`, and library types callers can name.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, testenv};

/// `fbuild solve PROJECT ARGS…` against the test daemon; (exit code, stderr).
fn solve(project: &Path, args: &[&str]) -> (i32, String) {
    let output = util::fbuild().arg("solve").args(args).arg(project).output().unwrap();
    let stderr = util::text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}

/// A key made now by ssh-keygen.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "fbuild-rsa-key"])
        .args(args)
        .arg("-f")
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(status.success());
    key
}

/// The agent of our own signs with an RSA key (ring, not the `rsa` crate):
/// `ssh-keygen -Y sign` in the build asks it through SSH_AUTH_SOCK for an
/// rsa-sha2-512 signature, and the host's ssh-keygen verifies it.
#[test]
fn an_rsa_key_file_signs_through_the_agent_in_a_run_step() {
    let keys = util::tempdir();
    let key = keygen(keys.path(), "id_rsa", &["-t", "rsa", "-b", "3072"]);

    // busybox has no ssh-keygen: the host's, with the libraries it loads.
    let project = util::tempdir();
    let root = project.path().join("sshroot");
    let ssh_keygen = PathBuf::from("/usr/bin/ssh-keygen");
    let ldd = util::text(&Command::new("ldd").arg(&ssh_keygen).output().unwrap().stdout);
    let libraries = ldd.split_whitespace().filter(|word| word.starts_with('/')).map(PathBuf::from);
    for file in std::iter::once(ssh_keygen.clone()).chain(libraries) {
        let dest = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
    }
    std::fs::copy(key.with_extension("pub"), project.path().join("id_rsa.pub")).unwrap();
    let run = "cd /out && echo 'signed in the build' > data \
               && /usr/bin/ssh-keygen -Y sign -f /id_rsa.pub -n fbuild-test data > log 2>&1 || (cat log; exit 1)";
    util::write_files(
        project.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {}\nCOPY sshroot/ /\nCOPY id_rsa.pub /\nRUN mkdir /out\nRUN --mount=type=ssh,id=deploy {run}\nFROM scratch\nCOPY --from=0 /out/ /\n",
                testenv().busybox
            ),
        )],
    );
    let out = util::tempdir();
    let (code, stderr) = solve(
        project.path(),
        &["--no-cache", "--ssh", &format!("deploy={}", key.display()), "-o", out.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");

    let signature = out.path().join("data.sig");
    let armored = std::fs::read_to_string(&signature).unwrap();
    assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----"), "{armored}");
    let check = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "fbuild-test", "-s"])
        .arg(&signature)
        .stdin(std::fs::File::open(out.path().join("data")).unwrap())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}{}", util::text(&check.stdout), util::text(&check.stderr));
    assert!(util::text(&check.stdout).contains("RSA"), "{}", util::text(&check.stdout));

    // A key ring does not sign with (1024 bits): refused before the build,
    // naming the file and what to do.
    let small = keygen(keys.path(), "id_rsa_1024", &["-t", "rsa", "-b", "1024"]);
    let (code, stderr) = solve(project.path(), &["--ssh", &format!("deploy={}", small.display())]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&small.display().to_string()) && stderr.contains("its modulus has 1024 bits"), "{stderr}");
}

/// `BuildError::Session` holds a type callers can name and match.
#[test]
fn a_session_error_can_be_named() {
    use fbuild::build::{BuildError, SessionError};
    fn describe(error: &BuildError) -> Option<String> {
        match error {
            BuildError::Session(SessionError::InvalidHeader(value)) => Some(value.clone()),
            BuildError::Session(other) => Some(other.to_string()),
            _ => None,
        }
    }
    let error = BuildError::Session(SessionError::InvalidHeader("é".into()));
    assert_eq!(describe(&error).as_deref(), Some("é"));
    assert_eq!(describe(&BuildError::Cancelled), None);
}
