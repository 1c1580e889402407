//! Which cache mounts a Dockerfile's `RUN --mount=type=cache,...` steps use,
//! read from its text, so `mounts=true` knows what to carry.
//!
//! The Dockerfile is parsed ([`crate::dockerfile`]) and the `--mount` flags
//! of its `RUN` instructions read. Flags whose values use build arguments
//! (`$VAR`) cannot be known without evaluating the Dockerfile and are
//! reported as skipped; the native compiler will give the exact list.

use super::mounts::{CacheMount, Sharing};

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
    for instruction in &parsed.instructions {
        if !instruction.keyword.eq_ignore_ascii_case("RUN") {
            continue;
        }
        for flag in &instruction.flags {
            let Some(spec) = flag.strip_prefix("--mount=") else { continue };
            match parse_mount(spec) {
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

/// One `--mount` value: `Ok(None)` for mounts other than caches.
fn parse_mount(spec: &str) -> Result<Option<CacheMount>, String> {
    if spec.contains('$') {
        if spec.contains("type=cache") {
            return Err("it uses a build argument".into());
        }
        return Ok(None);
    }
    let mut kind = "bind";
    let (mut id, mut target, mut sharing) = (None, None, Sharing::Shared);
    let (mut uid, mut gid, mut mode) = (None, None, None);
    for field in spec.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        let number =
            |radix: u32| u32::from_str_radix(value, radix).map_err(|_| format!("{key}={value:?} is not a number"));
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = value,
            "id" => id = Some(value.to_string()),
            "target" | "dst" | "destination" => target = Some(value.to_string()),
            "sharing" => {
                sharing = match value {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(format!("unknown sharing {other:?}")),
                }
            }
            "uid" => uid = Some(number(10)?),
            "gid" => gid = Some(number(10)?),
            "mode" => mode = Some(number(8)?),
            "from" | "source" | "src" => {
                return Err(format!("{key}= (a cache seeded from another stage) is not carried"))
            }
            _ => {}
        }
    }
    if kind != "cache" {
        return Ok(None);
    }
    let target = target.ok_or("no target")?;
    // The frontend's default id is the target as written, cleaned.
    let id = id.filter(|id| !id.is_empty()).unwrap_or_else(|| crate::gopath::clean(&target));
    let absolute_target = if target.starts_with('/') { target.clone() } else { format!("/{target}") };
    Ok(Some(CacheMount { id, target: crate::gopath::clean(&absolute_target), sharing, uid, gid, mode }))
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

    #[test]
    fn the_escape_directive_changes_continuations() {
        let dockerfile = "# escape=`\nFROM base\nRUN --mount=type=cache,target=C:/cache `\n    build\n";
        let (mounts, _) = cache_mounts(dockerfile);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].id, "C:/cache");
    }
}
