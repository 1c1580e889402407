//! Which cache mounts a Dockerfile's `RUN --mount=type=cache,...` steps use,
//! read from its text, so `mounts=true` knows what to carry.
//!
//! This is a scan, not a Dockerfile parser: it joins continuation lines,
//! skips comments and heredoc bodies, and reads the `--mount` flags of `RUN`
//! instructions. Flags whose values use build arguments (`$VAR`) cannot be
//! known without evaluating the Dockerfile and are reported as skipped; the
//! native compiler will give the exact list.

use super::mounts::{CacheMount, Sharing};

/// The cache mounts of `dockerfile`, each id once (the first use wins), and
/// a note for each `type=cache` mount that could not be read.
pub fn cache_mounts(dockerfile: &str) -> (Vec<CacheMount>, Vec<String>) {
    let mut mounts: Vec<CacheMount> = Vec::new();
    let mut skipped = Vec::new();
    for (line, instruction) in instructions(dockerfile) {
        let Some(rest) = strip_keyword(&instruction, "RUN") else { continue };
        for flag in leading_flags(rest) {
            let Some(spec) = flag.strip_prefix("--mount=") else { continue };
            match parse_mount(spec) {
                Ok(Some(mount)) => {
                    if !mounts.iter().any(|m| m.id == mount.id) {
                        mounts.push(mount);
                    }
                }
                Ok(None) => {}
                Err(why) => skipped.push(format!("Dockerfile:{line}: cache mount {spec:?} not carried: {why}")),
            }
        }
    }
    (mounts, skipped)
}

/// The instructions of a Dockerfile with the line each starts on:
/// continuation lines joined, comments and blank lines dropped, heredoc
/// bodies skipped.
fn instructions(text: &str) -> Vec<(usize, String)> {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut heredoc: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(delimiter) = &heredoc {
            if raw.trim_start_matches('\t') == delimiter {
                heredoc = None;
            }
            continue;
        }
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_some()) {
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let body = raw.trim_end();
        let (piece, continues) = match body.strip_suffix(escape) {
            Some(piece) => (piece, true),
            None => (body, false),
        };
        let entry = current.get_or_insert_with(|| (number, String::new()));
        entry.1.push_str(piece);
        entry.1.push(' ');
        if !continues {
            let (line, instruction) = current.take().expect("just set");
            heredoc = heredoc_delimiter(&instruction);
            out.push((line, instruction));
        }
    }
    out.extend(current);
    out
}

/// `# escape=X` among the parser directives at the top.
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else { break };
        let directive = directive.trim();
        if let Some((key, value)) = directive.split_once('=') {
            if key.trim().eq_ignore_ascii_case("escape") {
                return value.trim().chars().next().unwrap_or('\\');
            }
        } else {
            break;
        }
    }
    '\\'
}

/// The delimiter of the first heredoc an instruction opens (`<<EOF`,
/// `<<-"EOF"`), whose body lines follow it.
fn heredoc_delimiter(instruction: &str) -> Option<String> {
    let at = instruction.find("<<")?;
    let rest = instruction[at + 2..].trim_start_matches('-');
    let rest = rest.trim_start_matches(['"', '\'']);
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!word.is_empty()).then_some(word)
}

fn strip_keyword<'a>(instruction: &'a str, keyword: &str) -> Option<&'a str> {
    let trimmed = instruction.trim_start();
    let (word, rest) = trimmed.split_at(trimmed.find(char::is_whitespace).unwrap_or(trimmed.len()));
    word.eq_ignore_ascii_case(keyword).then_some(rest)
}

/// The `--flag=value` words before the command.
fn leading_flags(rest: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut words = rest.split_whitespace();
    for word in words.by_ref() {
        if !word.starts_with("--") {
            break;
        }
        flags.push(word.trim_matches(['"', '\'']).to_string());
    }
    flags
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
