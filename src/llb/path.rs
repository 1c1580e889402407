//! Slash-separated path arithmetic with Go's `path` semantics.
//!
//! Paths inside LLB ops are the daemon's (always `/`-separated, whatever the
//! client's OS), and Go's `client/llb` cleans and joins them with Go's
//! `path.Clean`/`path.Join` before they are encoded. The same graph must give
//! the same bytes from either client, so these follow Go's rules exactly
//! rather than `std::path`'s (which keeps `..` and trailing slashes).

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

/// `path` made absolute against `dir` (the state's working directory).
///
/// This is `normalizePath` in Go's `fileop.go`. With `keep_slash` (copy
/// destinations) a trailing `/` or `/.` survives cleaning, because it changes
/// the meaning: "into this directory" rather than "as this name".
pub(crate) fn absolute(dir: &str, path: &str, keep_slash: bool) -> String {
    let mut out = clean(path);
    if !out.starts_with('/') {
        out = join(&["/", dir, &out]);
    }
    if keep_slash {
        if path.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if path.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
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

    #[test]
    fn absolute_keeps_meaningful_trailing_slashes() {
        assert_eq!(absolute("/work", "out", false), "/work/out");
        assert_eq!(absolute("/work", "/etc/x/", false), "/etc/x");
        assert_eq!(absolute("/work", "dir/", true), "/work/dir/");
        assert_eq!(absolute("/", "./", true), "/");
        assert_eq!(absolute("/work", "dir/.", true), "/work/dir/.");
        assert_eq!(absolute("/", "/.", true), "/.");
    }
}
