//! Slash-separated path arithmetic with Go's `path` semantics (`path.Clean`,
//! `path.Join`), shared by the file sync (fsutil's paths, `.dockerignore`
//! patterns) and the LLB builder (paths inside ops): both must match what Go
//! computes, byte for byte, and `std::path` keeps `..` and trailing slashes.

/// Go's `path.Clean`: the shortest equivalent path, purely lexical.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    // A relative path keeps leading `..`; a rooted one drops them.
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`: the non-empty elements joined with `/`, then cleaned.
pub(crate) fn join(elements: &[&str]) -> String {
    let non_empty: Vec<&str> = elements.iter().copied().filter(|e| !e.is_empty()).collect();
    if non_empty.is_empty() {
        return String::new();
    }
    clean(&non_empty.join("/"))
}

/// The last element of `path` (Go's `path.Base`): trailing slashes dropped,
/// `.` for an empty path, `/` for a path of slashes.
pub(crate) fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Puts back a trailing `/` or `/.` of `original` that cleaning `out`
/// dropped: for a copy destination it means "into this directory", not
/// "as this name" (Go's `normalizePath` with `keepSlash`).
pub(crate) fn keep_trailing_slash(original: &str, out: &mut String) {
    if original.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    } else if original.ends_with("/.") {
        if out != "/" {
            out.push('/');
        }
        out.push('.');
    }
}

/// `path` relative to `base` when it is `base` or inside it (`.` for `base`
/// itself), as Go's `filepath.Rel` gives it where the result does not climb
/// out; `None` otherwise, and for an empty `base`. Compared by components.
pub(crate) fn relative_inside(base: &std::path::Path, path: &std::path::Path) -> Option<String> {
    if base.as_os_str().is_empty() {
        return None;
    }
    let relative = path.strip_prefix(base).ok()?.to_string_lossy().into_owned();
    Some(if relative.is_empty() { ".".to_owned() } else { relative })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_follows_go() {
        // Cases from Go's path.Clean documentation and tests.
        for (input, want) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn join_skips_empty_elements() {
        assert_eq!(join(&["/", "a", "b"]), "/a/b");
        assert_eq!(join(&["a", "", "b"]), "a/b");
        assert_eq!(join(&["", ""]), "");
        assert_eq!(join(&["/", "/work", "./x/../y"]), "/work/y");
    }
}
