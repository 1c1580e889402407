//! Which cache mounts a Dockerfile's `RUN --mount=type=cache,...` steps use,
//! read from its text, so `mounts=true` knows what to carry.
//!
//! The Dockerfile is parsed ([`crate::dockerfile`]) and the `--mount` flags
//! of its `RUN` instructions read. Flags whose values use build arguments
//! (`$VAR`) cannot be known without evaluating the Dockerfile and are
//! reported as skipped; the native compiler will give the exact list.

use std::collections::BTreeMap;

use super::mounts::{CacheMount, Sharing};
use crate::dockerfile::compile::mounts::{self, MountKind};
use crate::dockerfile::shell::Lexer;

/// The cache mounts of `dockerfile`, each id once (the first use wins), and
/// a note for each `type=cache` mount that could not be read.
pub fn cache_mounts(dockerfile: &str) -> (Vec<CacheMount>, Vec<String>) {
    let mut mounts: Vec<CacheMount> = Vec::new();
    let mut skipped = Vec::new();
    let parsed = match crate::dockerfile::parse(dockerfile) {
        Ok(parsed) => parsed,
        // The daemon's frontend reports the error itself.
        Err(error) => return (mounts, vec![format!("no cache mounts carried: {error}")]),
    };
    let lexer = Lexer::new(parsed.escape);
    for instruction in &parsed.instructions {
        if !instruction.keyword.eq_ignore_ascii_case("RUN") {
            continue;
        }
        for flag in &instruction.flags {
            let Some(spec) = flag.strip_prefix("--mount=") else { continue };
            match parse_mount(spec, &lexer) {
                Ok(Some(mount)) => {
                    if !mounts.iter().any(|m| m.id == mount.id) {
                        mounts.push(mount);
                    }
                }
                Ok(None) => {}
                Err(why) => skipped
                    .push(format!("Dockerfile:{}: cache mount {spec:?} not carried: {why}", instruction.start_line)),
            }
        }
    }
    (mounts, skipped)
}

/// Why a cache mount is not carried (the words of a skip note).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotCarried {
    #[error("it uses a build argument")]
    BuildArgument,
    /// The compiler's parser refuses it, in the frontend's words.
    #[error(transparent)]
    Invalid(mounts::MountError),
    #[error("from= or source= (a cache seeded from another stage) is not carried")]
    Seeded,
    #[error("no target")]
    NoTarget,
}

/// One `--mount` value: `Ok(None)` for mounts other than caches. Read by
/// the compiler's own parser ([`crate::dockerfile::compile::mounts`]), so
/// ids, defaults and errors are the ones a build uses; a mount that is not
/// a cache and does not parse is the build's to report, not ours.
fn parse_mount(spec: &str, lexer: &Lexer) -> Result<Option<CacheMount>, NotCarried> {
    if spec.contains('$') {
        if spec.contains("type=cache") {
            return Err(NotCarried::BuildArgument);
        }
        return Ok(None);
    }
    let no_variables = BTreeMap::new();
    let mount = match mounts::parse_mount(spec, lexer, &no_variables) {
        Ok(mount) => mount,
        Err(why) if spec.to_ascii_lowercase().contains("type=cache") => return Err(NotCarried::Invalid(why)),
        Err(_) => return Ok(None),
    };
    if mount.kind != MountKind::Cache {
        return Ok(None);
    }
    if !mount.from.is_empty() || !mount.source.is_empty() {
        return Err(NotCarried::Seeded);
    }
    if mount.target.is_empty() {
        return Err(NotCarried::NoTarget);
    }
    let sharing = match mount.sharing.as_str() {
        "private" => Sharing::Private,
        "locked" => Sharing::Locked,
        _ => Sharing::Shared,
    };
    // The frontend's default id is the target as written, cleaned (as the compiler files it).
    let id = if mount.id.is_empty() { crate::gopath::clean(&mount.target) } else { mount.id };
    let absolute_target = if mount.target.starts_with('/') { mount.target } else { format!("/{}", mount.target) };
    Ok(Some(CacheMount {
        id,
        target: crate::gopath::clean(&absolute_target),
        sharing,
        uid: mount.uid,
        gid: mount.gid,
        mode: mount.mode,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mounts_are_read_from_run_flags() {
        let dockerfile = "# syntax=docker/dockerfile:1\n\
            FROM base AS deps\n\
            # a comment --mount=type=cache,target=/nope\n\
            RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \\\n\
            \x20   # a comment inside\n\
            \x20   --mount=type=secret,id=ca \\\n\
            \x20   pip install -r requirements.txt\n\
            RUN --mount=type=cache,id=apt,target=/var/cache/apt,uid=1000,gid=1000,mode=0700 apt-get update\n\
            RUN <<EOF\n\
            RUN --mount=type=cache,target=/in-a-heredoc true\n\
            EOF\n\
            run --mount=type=cache,target=/root/.cache/pip echo again\n\
            RUN --mount=type=cache,target=$HOME/.cache true\n\
            RUN echo --mount=type=cache,target=/not-a-flag\n";
        let (mounts, skipped) = cache_mounts(dockerfile);
        let ids: Vec<&str> = mounts.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["/root/.cache/pip", "apt"]);
        assert_eq!(mounts[0].sharing, Sharing::Locked);
        assert_eq!((mounts[1].uid, mounts[1].gid, mounts[1].mode), (Some(1000), Some(1000), Some(0o700)));
        assert_eq!(mounts[1].target, "/var/cache/apt");
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].starts_with("Dockerfile:13: cache mount"), "{skipped:?}");
    }

    /// One parser for `--mount`: the scan reads values with the compiler's,
    /// so its defaults and errors are a build's.
    #[test]
    fn mounts_are_read_by_the_compilers_parser() {
        let dockerfile = "FROM base\n\
            RUN --mount=type=cache,target=/a,sharing=bogus true\n\
            RUN --mount=TYPE=CACHE,Target=rel/dir,SHARING=Private,mode=755 true\n\
            RUN --mount=type=bind,bogus=1 true\n\
            RUN --mount=type=cache,from=deps,target=/c true\n\
            RUN --mount=type=cache,target=/b,size=1g true\n";
        let (mounts, skipped) = cache_mounts(dockerfile);
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!((mounts[0].id.as_str(), mounts[0].target.as_str()), ("rel/dir", "/rel/dir"));
        assert_eq!((mounts[0].sharing, mounts[0].mode), (Sharing::Private, Some(0o755)));
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(
            skipped[0].starts_with("Dockerfile:2: ") && skipped[0].ends_with("unsupported sharing value \"bogus\"")
        );
        assert!(skipped[1].starts_with("Dockerfile:5: ") && skipped[1].contains("not carried"), "{skipped:?}");
        assert!(skipped[2].ends_with("unexpected key 'size' for mount type 'cache'"), "{skipped:?}");
    }

    #[test]
    fn the_escape_directive_changes_continuations() {
        let dockerfile = "# escape=`\nFROM base\nRUN --mount=type=cache,target=C:/cache `\n    build\n";
        let (mounts, _) = cache_mounts(dockerfile);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].id, "C:/cache");
    }
}
