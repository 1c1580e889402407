//! Git remotes as BuildKit's `util/gitutil.ParseURL` reads them, for the
//! identifier and `git.fullurl` of [`git`](super::git) sources.
//!
//! Two forms are remotes: `scheme://[user@]host/path` with a scheme git
//! speaks (`http`, `https`, `ssh`, `git`), and scp-style `user@host:path`
//! (SSH). Anything else without a scheme is an unknown protocol, which
//! `llb.Git` retries as `https://`. Only what the identifier needs is kept:
//! the scheme, the host, the path, and the remote without query and
//! fragment.
//!
//! Go rebuilds the remote with `net/url`'s `URL.String`, which re-escapes
//! it; here the remote is the given text minus query and fragment (the
//! scheme lowercased), which is the same for every remote that is already
//! escaped the way `net/url` writes it (all ordinary ones).

use std::sync::OnceLock;

use regex::Regex;

/// A parsed remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitUrl {
    /// Lowercase; `ssh` for scp-style remotes.
    pub(crate) scheme: String,
    /// With the port, if one is given.
    pub(crate) host: String,
    /// Unescaped, as `net/url`'s `URL.Path`.
    pub(crate) path: String,
    /// The remote without query and fragment.
    pub(crate) remote: String,
}

/// Why a remote is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// No scheme and not scp-style (`gitutil.ErrUnknownProtocol`).
    UnknownProtocol,
    /// A scheme git does not speak (`gitutil.ErrInvalidProtocol`).
    InvalidProtocol,
    /// A URL `net/url` would reject (a bad `%` escape).
    Invalid,
}

/// `gitutil.ParseURL`.
pub(crate) fn parse(remote: &str) -> Result<GitUrl, Error> {
    static SCHEME: OnceLock<Regex> = OnceLock::new();
    static SCP: OnceLock<Regex> = OnceLock::new();
    let scheme = SCHEME.get_or_init(|| Regex::new(r"^[a-zA-Z0-9]+://").expect("a valid pattern"));
    if let Some(found) = scheme.find(remote) {
        let name = remote[..found.end() - 3].to_lowercase();
        if !matches!(name.as_str(), "http" | "https" | "ssh" | "git") {
            return Err(Error::InvalidProtocol);
        }
        return parse_url(&name, &remote[found.end()..]);
    }
    // gitutil's pattern, with `-` moved to the end of the first class
    // (where both regex dialects read it as a plain character).
    let scp = SCP.get_or_init(|| {
        Regex::new(r"^([a-zA-Z0-9_-]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$").expect("a valid pattern")
    });
    if let Some(captures) = scp.captures(remote) {
        let user = &captures[1];
        let host = &captures[2];
        let path = &captures[3];
        return Ok(GitUrl {
            scheme: "ssh".to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            remote: format!("{user}@{host}:{path}"),
        });
    }
    Err(Error::UnknownProtocol)
}

/// The part of `net/url`'s parse that matters here, for `rest` after
/// `scheme://`.
fn parse_url(scheme: &str, rest: &str) -> Result<GitUrl, Error> {
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let (authority, raw_path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let path = unescape(raw_path)?;
    Ok(GitUrl { scheme: scheme.to_owned(), host: unescape(host)?, path, remote: format!("{scheme}://{rest}") })
}

/// Percent-decoding; a `%` without two hex digits is an error, as in Go.
fn unescape(text: &str) -> Result<String, Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(Error::Invalid)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Error::Invalid)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_parse_like_gitutil() {
        let https = parse("HTTPS://user@github.com/moby/buildkit.git?x=1#v1").expect("a remote");
        assert_eq!(https.scheme, "https");
        assert_eq!(https.host, "github.com");
        assert_eq!(https.path, "/moby/buildkit.git");
        assert_eq!(https.remote, "https://user@github.com/moby/buildkit.git");

        let scp = parse("git@github.com:moby/buildkit.git#main").expect("a remote");
        assert_eq!(scp.scheme, "ssh");
        assert_eq!(scp.path, "moby/buildkit.git");
        assert_eq!(scp.remote, "git@github.com:moby/buildkit.git");

        assert_eq!(parse("github.com/moby/buildkit"), Err(Error::UnknownProtocol));
        assert_eq!(parse("ftp://host/x"), Err(Error::InvalidProtocol));
        assert_eq!(parse("https://host/a%zz"), Err(Error::Invalid));
    }
}
