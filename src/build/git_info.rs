//! The git facts buildx adds to every build whose context is in a git work
//! tree (its `getGitAttributes`): `vcs:source` and `vcs:revision`, and
//! `vcs:localdir:NAME` for each local folder inside the work tree; with
//! `BUILDX_GIT_LABELS`, the OCI source and revision labels too.
//!
//! The daemon writes the `vcs:` attributes into the build's provenance
//! (`buildkit_metadata.vcs`) and its history record, so a build from a CI
//! checkout must send them for its attestation, and the pushed index, to be
//! buildx's. Controlled by buildx's variables: `BUILDX_GIT_INFO` (default
//! true), `BUILDX_GIT_LABELS` (`true` or `full`), `BUILDX_GIT_CHECK_DIRTY`.
//!
//! git is run as buildx runs it (the `git` on `PATH`, in the context folder,
//! no terminal prompts); a folder that is not in a work tree adds nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What went wrong asking git, in buildx's words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitInfoError {
    /// The context has a `.git` folder but there is no `git` to read it.
    #[error("git was not found in the system")]
    NoGit,
    /// The context has a `.git` folder that git does not take as a work tree.
    #[error("failed to read current commit information with git rev-parse --is-inside-work-tree")]
    NotAWorkTree,
    /// `git rev-parse --show-toplevel` failed.
    #[error("failed to get git root dir: {0}")]
    Root(String),
    /// `git show HEAD` failed for another reason than an empty repository.
    #[error("failed to get git commit: {0}")]
    Commit(String),
}

/// The OCI labels buildx sets with `BUILDX_GIT_LABELS`.
const LABEL_REVISION: &str = "label:org.opencontainers.image.revision";
const LABEL_SOURCE: &str = "label:org.opencontainers.image.source";
const LABEL_DOCKERFILE: &str = "label:com.docker.image.source.entrypoint";

/// The attributes to add for a build of `context` (a folder) with the
/// Dockerfile at `dockerfile` (if it is a file here) and these local folders
/// by name.
pub(crate) fn git_attributes(
    context: &Path,
    dockerfile: Option<&Path>,
    locals: &BTreeMap<String, PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, GitInfoError> {
    let mut out = BTreeMap::new();
    let set_labels =
        env("BUILDX_GIT_LABELS").is_some_and(|v| v == "full" || crate::gostrconv::parse_bool(&v) == Some(true));
    let set_info = env("BUILDX_GIT_INFO").and_then(|v| crate::gostrconv::parse_bool(&v)).unwrap_or(true);
    if !set_labels && !set_info {
        return Ok(out);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let wd = absolute(&cwd, context);
    let has_git_dir = wd.join(".git").is_dir();
    let Some(git) = Git::find(&wd) else {
        return if has_git_dir { Err(GitInfoError::NoGit) } else { Ok(out) };
    };
    if git.run(&["rev-parse", "--is-inside-work-tree"]).ok().as_deref() != Some("true") {
        return if has_git_dir { Err(GitInfoError::NotAWorkTree) } else { Ok(out) };
    }
    let root = git.run(&["rev-parse", "--show-toplevel"]).map_err(GitInfoError::Root)?;

    match git.run(&["show", "--format=%H", "HEAD", "--quiet", "--"]) {
        Ok(sha) if !sha.is_empty() => {
            let check_dirty =
                env("BUILDX_GIT_CHECK_DIRTY").and_then(|v| crate::gostrconv::parse_bool(&v)).unwrap_or(false);
            let sha = if check_dirty && git.is_dirty() { format!("{sha}-dirty") } else { sha };
            if set_labels {
                out.insert(LABEL_REVISION.to_owned(), sha.clone());
            }
            if set_info {
                out.insert("vcs:revision".to_owned(), sha);
            }
        }
        Ok(_) => {}
        Err(message) if is_unknown_revision(&message) => {}
        Err(message) => return Err(GitInfoError::Commit(message)),
    }
    if let Some(remote) = git.remote_url() {
        if set_labels {
            out.insert(LABEL_SOURCE.to_owned(), remote.clone());
        }
        if set_info {
            out.insert("vcs:source".to_owned(), remote);
        }
    }
    let root = PathBuf::from(&root);
    if set_labels {
        let dockerfile = match dockerfile {
            Some(path) => absolute(&cwd, path),
            None => wd.join("Dockerfile"),
        };
        if let Some(relative) = crate::gopath::relative_inside(&root, &dockerfile) {
            out.insert(LABEL_DOCKERFILE.to_owned(), relative);
        }
    }
    if set_info {
        for (name, dir) in locals {
            // As fsutil opens a folder: its links resolved, then made absolute.
            let Ok(dir) = std::fs::canonicalize(absolute(&cwd, dir)) else { continue };
            if let Some(relative) = crate::gopath::relative_inside(&root, &dir) {
                out.insert(format!("vcs:localdir:{name}"), relative);
            }
        }
    }
    Ok(out)
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    // Go's filepath.Abs cleans the path lexically.
    PathBuf::from(crate::gopath::clean(&joined.to_string_lossy()))
}

/// git's words for a repository without commits.
fn is_unknown_revision(message: &str) -> bool {
    let message = message.to_lowercase();
    message.contains("unknown revision or path not in the working tree") || message.contains("bad revision")
}

/// buildkit's `RedactCredentials`: a URL's user and password masked.
fn redact_credentials(url: &str) -> String {
    const MASK: &str = "xxxxx";
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() => format!("{MASK}:{MASK}"),
        Some((_, _)) => format!(":{MASK}"),
        None if !userinfo.is_empty() => MASK.to_owned(),
        None => String::new(),
    };
    format!("{scheme}://{masked}@{host}{tail}")
}

/// The `git` command, run in one folder as buildx runs it.
struct Git {
    binary: PathBuf,
    dir: PathBuf,
}

impl Git {
    fn find(dir: &Path) -> Option<Git> {
        let path = std::env::var_os("PATH")?;
        let binary = std::env::split_paths(&path).map(|p| p.join("git")).find(|p| p.is_file())?;
        Some(Git { binary, dir: dir.to_path_buf() })
    }

    /// The first line of the output with `'` removed (buildx's `clean`), or the error's text.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .current_dir(&self.dir)
            .args(["-c", "log.showSignature=false"])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(stderr.trim_end_matches('\n').to_owned());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout.split('\n').next().unwrap_or_default().replace('\'', ""))
    }

    fn is_dirty(&self) -> bool {
        match Command::new(&self.binary)
            .current_dir(&self.dir)
            .args(["status", "--porcelain", "--ignored"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => !output.status.success() || !String::from_utf8_lossy(&output.stdout).trim().is_empty(),
            Err(_) => true,
        }
    }

    /// The remote of the branch's upstream, else `origin`, else `upstream`.
    fn remote_url(&self) -> Option<String> {
        let get_url = |remote: &str| self.run(&["remote", "get-url", remote]).ok().filter(|u| !u.is_empty());
        let tracking = self
            .run(&["symbolic-ref", "-q", "HEAD"])
            .ok()
            .filter(|r| !r.is_empty())
            .and_then(|symref| self.run(&["for-each-ref", "--format=%(upstream:remotename)", &symref]).ok())
            .filter(|r| !r.is_empty());
        tracking
            .and_then(|remote| get_url(&remote))
            .or_else(|| get_url("origin"))
            .or_else(|| get_url("upstream"))
            .map(|url| redact_credentials(&url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "one"]);
        git(dir.path(), &["remote", "add", "origin", "https://user:secret@example.com/org/app.git"]);
        std::fs::create_dir_all(dir.path().join("svc")).unwrap();
        dir
    }

    #[test]
    fn a_context_in_a_work_tree_gets_buildxs_attributes() {
        let repo = repo();
        let root = std::fs::canonicalize(repo.path()).unwrap();
        let context = root.join("svc");
        let locals = BTreeMap::from([("context".to_owned(), context.clone()), ("dockerfile".to_owned(), root.clone())]);
        let attrs = git_attributes(&context, None, &locals, &|_| None).unwrap();
        assert_eq!(attrs["vcs:source"], "https://xxxxx:xxxxx@example.com/org/app.git");
        assert_eq!(attrs["vcs:revision"].len(), 40);
        assert_eq!(attrs["vcs:localdir:context"], "svc");
        assert_eq!(attrs["vcs:localdir:dockerfile"], ".");
        assert!(!attrs.contains_key(LABEL_SOURCE));

        let labels = |k: &str| (k == "BUILDX_GIT_LABELS").then(|| "true".to_owned());
        let attrs = git_attributes(&context, None, &locals, &labels).unwrap();
        assert_eq!(attrs[LABEL_DOCKERFILE], "svc/Dockerfile");
        assert_eq!(attrs[LABEL_REVISION], attrs["vcs:revision"]);

        let off = |k: &str| (k == "BUILDX_GIT_INFO").then(|| "false".to_owned());
        assert!(git_attributes(&context, None, &locals, &off).unwrap().is_empty());

        std::fs::write(context.join("new"), "x").unwrap();
        let dirty = |k: &str| (k == "BUILDX_GIT_CHECK_DIRTY").then(|| "1".to_owned());
        assert!(git_attributes(&context, None, &locals, &dirty).unwrap()["vcs:revision"].ends_with("-dirty"));
    }

    #[test]
    fn a_folder_outside_any_work_tree_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(git_attributes(dir.path(), None, &BTreeMap::new(), &|_| None).unwrap().is_empty());
    }

    #[test]
    fn an_empty_repository_has_no_revision() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let attrs = git_attributes(dir.path(), None, &BTreeMap::new(), &|_| None).unwrap();
        assert!(!attrs.contains_key("vcs:revision"), "{attrs:?}");
    }

    #[test]
    fn credentials_are_masked_as_buildkit_masks_them() {
        assert_eq!(redact_credentials("https://u:p@h/x.git"), "https://xxxxx:xxxxx@h/x.git");
        assert_eq!(redact_credentials("https://token@h/x.git"), "https://xxxxx@h/x.git");
        assert_eq!(redact_credentials("https://h/x.git"), "https://h/x.git");
        assert_eq!(redact_credentials("git@github.com:o/r.git"), "git@github.com:o/r.git");
    }
}
