//! Git sources of `ADD` as the Dockerfile frontend reads them
//! (BuildKit v0.32.2's `frontend/dockerfile/dfgitutil.ParseGitRef`): which
//! sources are git repositories, and the options in their URL —
//! `#ref:subdir` and the query (`ref`, `tag`, `branch`, `subdir`,
//! `checksum`/`commit`, `keep-git-dir`, `submodules`, `mtime`,
//! `fetch-by-commit`), with the frontend's words for what it refuses.
//!
//! The remote itself (scheme, host, path) is read by
//! [`crate::llb::git_url`], as `llb.Git` reads it again.

use std::collections::BTreeMap;

use crate::llb::git_url;

/// A git source and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GitRef {
    /// The remote without query and fragment.
    pub(crate) remote: String,
    /// Commit, tag or branch; `refs/tags/` or `refs/heads/` for `?tag=` and
    /// `?branch=`.
    pub(crate) reference: String,
    /// `?checksum=` / `?commit=`: the commit the reference must be.
    pub(crate) checksum: String,
    /// The folder of the repository to use; cleaned when it comes from the
    /// fragment, as given when it comes from `?subdir=`.
    pub(crate) subdir: String,
    /// `github.com/...` without a scheme: a local path for `ADD`.
    pub(crate) indistinguishable_from_local: bool,
    pub(crate) keep_git_dir: Option<bool>,
    pub(crate) submodules: Option<bool>,
    /// Checked, not used: the frontend does not pass it on.
    pub(crate) mtime: String,
    pub(crate) fetch_by_commit: bool,
}

/// An `ADD`/`COPY` source the frontend refuses before building: a git
/// URL's options, checksums, or a source the instruction cannot take, in
/// the frontend's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("query {0:?} has multiple values")]
    QueryMultipleValues(String),
    #[error("query {0:?} has no value")]
    QueryNoValue(String),
    #[error("unexpected query {0:?}")]
    UnexpectedQuery(String),
    #[error("invalid {option} value: {value:?}")]
    InvalidBool { option: &'static str, value: String },
    #[error("invalid mtime value: {0:?} (must be \"checkout\" or \"commit\")")]
    InvalidMtime(String),
    /// Two options of the URL name different refs (or subdirectories).
    #[error("{what} conflicts: {first:?} vs {second:?}")]
    Conflict { what: &'static str, first: String, second: String },
    #[error("branch conflicts with tag")]
    BranchAndTag,
    #[error("checksum can't be specified for multiple sources")]
    ChecksumForMultipleSources,
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumNeedsRemote,
    #[error("source can't be a git ref for COPY")]
    GitForCopy,
    #[error("source can't be a URL for COPY")]
    UrlForCopy,
    #[error("inconsistent keep-git-dir configuration")]
    InconsistentKeepGitDir,
    #[error("checksum mismatch {0:?} != {1:?}")]
    ChecksumMismatch(String, String),
    /// go-digest's `Validate`: "invalid checksum digest format", "…
    /// length" or "unsupported digest algorithm".
    #[error("{0}")]
    Digest(&'static str),
}

/// `ParseGitRef`: `Ok(None)` when `src` is not a git source (a local path or
/// an HTTP URL), `Err` with the frontend's message when it is one whose
/// options are wrong.
pub(crate) fn parse_git_ref(src: &str) -> Result<Option<GitRef>, SourceError> {
    if src.starts_with("./") || src.starts_with("../") {
        return Ok(None);
    }
    let mut git = GitRef::default();
    let (query, fragment) = if src.starts_with("github.com/") {
        // Parsed as a URL without a scheme, then given `https`; the remote
        // keeps no scheme.
        git.indistinguishable_from_local = true;
        if has_control_characters(src) {
            return Ok(None);
        }
        let (rest, fragment) = split_fragment(src);
        let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
        let Some(fragment) = fragment.map(percent_decode).transpose().ok() else { return Ok(None) };
        let Ok(remote) = git_url::parse(&format!("https://{path}")) else { return Ok(None) };
        git.remote = remote.remote.trim_start_matches("https://").to_owned();
        (query.map(|q| parse_query(q, false)), fragment)
    } else {
        let Ok(remote) = git_url::parse(src) else { return Ok(None) };
        if matches!(remote.scheme.as_str(), "http" | "https") && !remote.path.ends_with(".git") {
            return Ok(None);
        }
        git.remote = remote.remote.clone();
        if has_scheme(src) {
            if has_control_characters(src) {
                return Ok(None);
            }
            let (rest, fragment) = split_fragment(src);
            let query = rest.split_once('?').map(|(_, q)| q);
            let Some(fragment) = fragment.map(percent_decode).transpose().ok() else { return Ok(None) };
            (query.map(|q| parse_query(q, false)), fragment)
        } else {
            // scp-style: a query Go cannot parse makes it no remote at all.
            let (rest, fragment) = split_fragment(src);
            let query = rest.split_once('?').map(|(_, q)| q).filter(|q| !q.is_empty());
            let query = match query.map(|q| parse_query(q, true)) {
                Some(None) => return Ok(None),
                other => other,
            };
            (query, fragment.map(str::to_owned))
        }
    };
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        let (reference, subdir) = fragment.split_once(':').unwrap_or((&fragment, ""));
        git.reference = reference.to_owned();
        git.subdir = crate::gopath::join(&["/", subdir]).trim_start_matches('/').to_owned();
    }
    if let Some(query) = query.flatten() {
        git.load_query(&query)?;
    }
    Ok(Some(git))
}

impl GitRef {
    /// `loadQuery`. Go walks the query as a map, in random order, so which
    /// of two bad options it names varies; here the first by name.
    fn load_query(&mut self, query: &BTreeMap<String, Vec<String>>) -> Result<(), SourceError> {
        let (mut tag, mut branch) = (String::new(), String::new());
        for (key, values) in query {
            let value: Option<&str> = match values.as_slice() {
                [] => None,
                [value] if value.is_empty() => None,
                [value] => Some(value),
                _ => return Err(SourceError::QueryMultipleValues(key.clone())),
            };
            let flag = |option: &'static str| match value {
                None => Ok(true),
                Some(value) => crate::gostrconv::parse_bool(value)
                    .ok_or_else(|| SourceError::InvalidBool { option, value: value.to_owned() }),
            };
            if value.is_none() && !matches!(key.as_str(), "submodules" | "keep-git-dir" | "fetch-by-commit") {
                return Err(SourceError::QueryNoValue(key.clone()));
            }
            let text = value.unwrap_or_default().to_owned();
            match key.as_str() {
                "ref" => {
                    if !self.reference.is_empty() && self.reference != text {
                        return Err(conflict("ref", &self.reference, &text));
                    }
                    self.reference = text;
                }
                "tag" => tag = text,
                "branch" => branch = text,
                "subdir" => {
                    if !self.subdir.is_empty() && self.subdir != text {
                        return Err(conflict("subdir", &self.subdir, &text));
                    }
                    self.subdir = text;
                }
                "checksum" | "commit" => self.checksum = text,
                "keep-git-dir" => self.keep_git_dir = Some(flag("keep-git-dir")?),
                "submodules" => self.submodules = Some(flag("submodules")?),
                "mtime" => match text.as_str() {
                    "checkout" | "commit" => self.mtime = text,
                    _ => return Err(SourceError::InvalidMtime(text)),
                },
                "fetch-by-commit" => self.fetch_by_commit = flag("fetch-by-commit")?,
                _ => return Err(SourceError::UnexpectedQuery(key.clone())),
            }
        }
        if !tag.is_empty() {
            if !tag.starts_with("refs/tags/") {
                tag = format!("refs/tags/{tag}");
            }
            if !self.reference.is_empty() && self.reference != tag {
                return Err(conflict("ref", &self.reference, &tag));
            }
            self.reference = tag.clone();
        }
        if !branch.is_empty() {
            if !tag.is_empty() {
                return Err(SourceError::BranchAndTag);
            }
            if !branch.starts_with("refs/heads/") {
                branch = format!("refs/heads/{branch}");
            }
            if !self.reference.is_empty() && self.reference != branch {
                return Err(conflict("ref", &self.reference, &branch));
            }
            self.reference = branch;
        }
        Ok(())
    }
}

fn conflict(what: &'static str, first: &str, second: &str) -> SourceError {
    SourceError::Conflict { what, first: first.to_owned(), second: second.to_owned() }
}

/// The checks the frontend's `dispatchCopy` makes of an `ADD`'s or
/// `COPY`'s sources (expanded) before it builds anything, in its order and
/// with its words: `--checksum` with one HTTP or git source, git sources'
/// options, and URLs only for `ADD`. A git source's URL options hold for
/// the sources after it, as in the frontend.
pub(crate) fn check_sources(
    is_add: bool,
    sources: &[String],
    checksum: &str,
    keep_git_dir: Option<bool>,
) -> Result<(), SourceError> {
    if !checksum.is_empty() {
        // COPY has no --checksum flag; heredoc sources do not count.
        if sources.len() != 1 {
            return Err(SourceError::ChecksumForMultipleSources);
        }
        if !is_http(&sources[0]) && !is_git_source(&sources[0]) {
            return Err(SourceError::ChecksumNeedsRemote);
        }
    }
    let (mut keep_git_dir, mut checksum) = (keep_git_dir, checksum.to_owned());
    for src in sources {
        match parse_git_ref(src)? {
            Some(git) if !git.indistinguishable_from_local => {
                if !is_add {
                    return Err(SourceError::GitForCopy);
                }
                if let (Some(given), Some(from_url)) = (keep_git_dir, git.keep_git_dir) {
                    if given != from_url {
                        return Err(SourceError::InconsistentKeepGitDir);
                    }
                }
                keep_git_dir = git.keep_git_dir.or(keep_git_dir);
                if !checksum.is_empty() && !git.checksum.is_empty() && checksum != git.checksum {
                    return Err(SourceError::ChecksumMismatch(checksum, git.checksum));
                }
                if !git.checksum.is_empty() {
                    checksum = git.checksum;
                }
            }
            _ if is_http(src) => {
                if !is_add {
                    return Err(SourceError::UrlForCopy);
                }
                if !checksum.is_empty() {
                    validate_digest(&checksum)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// An HTTP(S) URL that is not a git repository (the frontend's
/// `isHTTPSource`).
pub(crate) fn is_http(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git_source(src)
}

/// The frontend's `isGitSource`: a git source, `github.com/...` included.
fn is_git_source(src: &str) -> bool {
    matches!(parse_git_ref(src), Ok(Some(_)))
}

/// go-digest's `Digest.Validate`, with its words, for `ADD --checksum` of
/// a download (sha256, sha384 and sha512 are the algorithms it knows).
fn validate_digest(digest: &str) -> Result<(), SourceError> {
    const FORMAT: SourceError = SourceError::Digest("invalid checksum digest format");
    let Some((algorithm, encoded)) = digest.split_once(':').filter(|(a, e)| !a.is_empty() && !e.is_empty()) else {
        return Err(FORMAT);
    };
    let size = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => {
            static ANY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
                regex::Regex::new("^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$").expect("a valid pattern")
            });
            return Err(if ANY.is_match(digest) {
                SourceError::Digest("unsupported digest algorithm")
            } else {
                FORMAT
            });
        }
    };
    if encoded.len() != size * 2 {
        return Err(SourceError::Digest("invalid checksum digest length"));
    }
    if !encoded.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(FORMAT);
    }
    Ok(())
}

/// `^[a-zA-Z0-9]+://`, gitutil's test for a URL with a scheme.
fn has_scheme(src: &str) -> bool {
    src.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `net/url` refuses ASCII control characters anywhere in a URL.
fn has_control_characters(src: &str) -> bool {
    src.bytes().any(|b| b < 0x20 || b == 0x7f)
}

/// The text before the first `#` and the fragment after it.
fn split_fragment(src: &str) -> (&str, Option<&str>) {
    src.split_once('#').map_or((src, None), |(rest, fragment)| (rest, Some(fragment)))
}

/// `%XX` decoding as `net/url` unescapes a fragment (no `+` rule).
fn percent_decode(text: &str) -> Result<String, ()> {
    decode(text, false).ok_or(())
}

fn decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `url.ParseQuery`: values by key. A pair Go cannot read (a `;` in it, a
/// bad escape) is skipped, as `URL.Query` does; with `strict` (scp-style
/// remotes, which check the error) the whole query is `None`.
fn parse_query(query: &str, strict: bool) -> Option<BTreeMap<String, Vec<String>>> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&') {
        if pair.contains(';') {
            if strict {
                return None;
            }
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (decode(key, true), decode(value, true)) {
            (Some(key), Some(value)) => values.entry(key).or_default().push(value),
            _ if strict => return None,
            _ => {}
        }
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(src: &str) -> GitRef {
        parse_git_ref(src).unwrap_or_else(|e| panic!("{src}: {e}")).unwrap_or_else(|| panic!("{src}: not git"))
    }

    #[test]
    fn sources_are_git_as_parse_git_ref_says() {
        for src in ["https://host/a/b", "https://host/b#main", "./x", "../x", "ftp://h/x.git", "dir/file", "a@b"] {
            assert_eq!(parse_git_ref(src), Ok(None), "{src}");
        }
        let r = git("https://host/r.git#v1:sub/../dir/");
        assert_eq!((r.remote.as_str(), r.reference.as_str(), r.subdir.as_str()), ("https://host/r.git", "v1", "dir"));
        let r = git("git@host:org/r.git?branch=dev&subdir=docs/&keep-git-dir&submodules=0");
        assert_eq!(
            (r.remote.as_str(), r.reference.as_str(), r.subdir.as_str()),
            ("git@host:org/r.git", "refs/heads/dev", "docs/")
        );
        assert_eq!((r.keep_git_dir, r.submodules), (Some(true), Some(false)));
        let r = git("git://host/r?tag=v1&commit=abc&fetch-by-commit=&mtime=commit");
        assert_eq!((r.reference.as_str(), r.checksum.as_str(), r.fetch_by_commit), ("refs/tags/v1", "abc", true));
        assert!(git("github.com/org/r").indistinguishable_from_local);
        assert_eq!(git("github.com/org/r").remote, "github.com/org/r");
        // A query Go cannot parse: no scp-style remote at all.
        assert_eq!(parse_git_ref("git@host:r?a;b"), Ok(None));
        // A bad pair of a URL's query is skipped.
        assert_eq!(git("https://host/r.git?a;b&ref=x").reference, "x");
    }

    #[test]
    fn bad_options_get_the_frontends_words() {
        for (src, message) in [
            ("https://h/r.git?ref=a&ref=b", "query \"ref\" has multiple values"),
            ("https://h/r.git?ref=", "query \"ref\" has no value"),
            ("https://h/r.git?bogus=1", "unexpected query \"bogus\""),
            ("https://h/r.git?ref=dev#main", "ref conflicts: \"main\" vs \"dev\""),
            ("https://h/r.git?tag=v1&branch=main", "branch conflicts with tag"),
            ("https://h/r.git?subdir=b#:a", "subdir conflicts: \"a\" vs \"b\""),
            ("https://h/r.git?keep-git-dir=maybe", "invalid keep-git-dir value: \"maybe\""),
            ("https://h/r.git?mtime=now", "invalid mtime value: \"now\" (must be \"checkout\" or \"commit\")"),
            ("github.com/o/r?x=1", "unexpected query \"x\""),
        ] {
            assert_eq!(parse_git_ref(src).map_err(|e| e.to_string()), Err(message.to_owned()), "{src}");
        }
    }
}
