//! Paths inside LLB ops: the daemon's (always `/`-separated, whatever the
//! client's OS), cleaned and joined as Go's `client/llb` does before they are
//! encoded (see [`crate::gopath`]), so the same graph gives the same bytes
//! from either client.

pub(crate) use crate::gopath::{clean, join};

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
        crate::gopath::keep_trailing_slash(path, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
