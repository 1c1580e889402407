//! Image references as `github.com/distribution/reference` (v0.6.0, the
//! version BuildKit v0.32.2 pins) reads them: the one grammar every
//! reference fbuild reads goes through. [`parse`] is its `Parse` (what
//! buildx checks `-t` with), [`parse_normalized`] its `ParseNormalizedNamed`
//! (base images, imagetools), [`normalize`] what `llb.Image` does.
//!
//! `busybox` becomes `docker.io/library/busybox:latest`; a reference whose
//! first component looks like a host (has a `.` or `:`, is `localhost`, or
//! has capitals) keeps it. The normalized string is part of the source op's
//! identifier, so it decides the op's digest: it must match Go's byte for byte.

use std::sync::LazyLock;

use regex::Regex;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// distribution's `RepositoryNameTotalLengthMax`.
const MAX_PATH_LEN: usize = 255;

/// Why an image reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("repository name must have at least one component")]
    Empty,
    /// A bare image id, which is not a name.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    Identifier(String),
    /// Capitals in the repository path of a name given without a host.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// Capitals where the grammar has none.
    #[error("repository name must be lowercase")]
    NameUppercase,
    /// Not `[host[:port]/]path[:tag][@digest]`.
    #[error("invalid reference format")]
    Format,
    /// A path over 255 characters.
    #[error("repository name must not be more than 255 characters")]
    TooLong,
    /// A digest of an unknown algorithm or the wrong length.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

/// The grammar of a reference (`REFERENCE`) and of its name (`NAME`,
/// distribution's `anchoredNameRegexp`: host and path), built the way
/// distribution's `regexp.go` builds them. `\w` is spelled out: Rust's is
/// Unicode-aware, Go's (RE2) is ASCII.
static GRAMMAR: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
    let alphanumeric = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    let host = format!("(?:{domain_name}|{ipv6})");
    let domain_and_port = format!("{host}(?::[0-9]+)?");
    let path_component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
    let remote_name = format!("{path_component}(?:/{path_component})*");
    let name = format!("(?:{domain_and_port}/)?{remote_name}");
    let tag = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
    let reference = Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$"));
    let name = Regex::new(&format!("^(?:({domain_and_port})/)?({remote_name})$"));
    (reference.expect("the reference grammar compiles"), name.expect("the name grammar compiles"))
});

static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| Regex::new("^[a-f0-9]{64}$").expect("compiles"));

/// A parsed, normalized reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub(crate) domain: String,
    /// The repository path in that registry (`library/busybox`).
    pub(crate) path: String,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<String>,
}

impl Named {
    /// `domain/path`, the repository's full name.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `reference.Parse(s)`: the reference as written, its host empty when it
/// names none.
pub(crate) fn parse(reference: &str) -> Result<Named, ReferenceError> {
    let (grammar, name_grammar) = &*GRAMMAR;
    let Some(captures) = grammar.captures(reference) else {
        return Err(if reference.is_empty() {
            ReferenceError::Empty
        } else if grammar.is_match(&reference.to_lowercase()) {
            ReferenceError::NameUppercase
        } else {
            ReferenceError::Format
        });
    };
    // The reference's name matches the name grammar, which it is part of.
    let Some(name) = name_grammar.captures(&captures[1]) else { return Err(ReferenceError::Format) };
    let domain = name.get(1).map_or("", |m| m.as_str());
    let path = name.get(2).map_or("", |m| m.as_str());
    // The length limit applies to the path, without the domain.
    if path.len() > MAX_PATH_LEN {
        return Err(ReferenceError::TooLong);
    }
    let digest = captures.get(3).map(|m| m.as_str().to_owned());
    if let Some(digest) = &digest {
        validate_digest(digest)?;
    }
    Ok(Named {
        domain: domain.to_owned(),
        path: path.to_owned(),
        tag: captures.get(2).map(|m| m.as_str().to_owned()),
        digest,
    })
}

/// `reference.ParseNormalizedNamed(s)`: the reference with its domain and
/// `library/` for official images, tag and digest as given.
pub(crate) fn parse_normalized(reference: &str) -> Result<Named, ReferenceError> {
    if IDENTIFIER.is_match(reference) {
        return Err(ReferenceError::Identifier(reference.to_owned()));
    }
    let (domain, remainder) = split_docker_domain(reference);
    let remote = remainder.split_once(':').map_or(remainder.as_str(), |(name, _)| name);
    if remote.to_lowercase() != remote {
        return Err(ReferenceError::Uppercase(remote.to_owned()));
    }
    parse(&format!("{domain}/{remainder}"))
}

/// `reference.TagNameOnly(reference.ParseNormalizedNamed(s)).String()`: the
/// full name with a domain, `library/` for official images, and `:latest`
/// when neither tag nor digest is given.
pub(crate) fn normalize(reference: &str) -> Result<String, ReferenceError> {
    let mut named = parse_normalized(reference)?;
    if named.tag.is_none() && named.digest.is_none() {
        named.tag = Some(DEFAULT_TAG.to_owned());
    }
    Ok(named.to_string())
}

/// distribution's `splitDockerDomain`: whether the first component is a
/// registry host, and `library/` for single-component Docker Hub names.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((first, rest)) = name.split_once('/') else {
        return (DEFAULT_DOMAIN.to_owned(), format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    // The cases in distribution's order: the legacy Hub name before the
    // "looks like a host" rules, since it has a `.` too.
    let (domain, remote) = if first == "localhost" {
        (first, rest)
    } else if first == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest)
    } else {
        (DEFAULT_DOMAIN, name)
    };
    let remote = if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{remote}")
    } else {
        remote.to_owned()
    };
    (domain.to_owned(), remote)
}

/// go-digest's `Digest.Validate` for the algorithms it registers by default.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::Digest(digest.to_owned());
    let (algorithm, encoded) = digest.split_once(':').ok_or_else(invalid)?;
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(invalid()),
    };
    if encoded.len() != hex_len || !encoded.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_get_domain_library_and_tag() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
            ("index.docker.io/user/app", "docker.io/user/app:latest"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "normalize({input:?})");
        }
    }

    #[test]
    fn registry_hosts_are_kept() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (input, want) in [
            ("127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest".to_owned()),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest".to_owned()),
            ("localhost/app", "localhost/app:latest".to_owned()),
            ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1".to_owned()),
            ("ghcr.io/owner/app", "ghcr.io/owner/app:latest".to_owned()),
            ("Registry/app", "Registry/app:latest".to_owned()),
            ("[::1]:5000/app", "[::1]:5000/app:latest".to_owned()),
            // A digest alone gets no tag; tag and digest are both kept.
            (&format!("busybox@{digest}"), format!("docker.io/library/busybox@{digest}")),
            (&format!("r.io/a:v@{digest}"), format!("r.io/a:v@{digest}")),
        ] {
            assert_eq!(normalize(input), Ok(want), "normalize({input:?})");
        }
    }

    #[test]
    fn invalid_references_are_refused() {
        assert_eq!(normalize(""), Err(ReferenceError::Format));
        assert_eq!(normalize("Busybox"), Err(ReferenceError::Uppercase("library/Busybox".into())));
        assert_eq!(normalize(&"a".repeat(64)), Err(ReferenceError::Identifier("a".repeat(64))));
        assert_eq!(normalize("busybox:"), Err(ReferenceError::Format));
        assert_eq!(normalize("a b"), Err(ReferenceError::Format));
        assert_eq!(normalize(&format!("x/{}", "a".repeat(255))), Err(ReferenceError::TooLong));
        assert!(matches!(normalize("busybox@sha256:abc"), Err(ReferenceError::Format)));
        assert!(matches!(normalize(&format!("busybox@sha256:{}", "A".repeat(64))), Err(ReferenceError::Digest(_))));
        // Non-ASCII word characters are not tag characters in Go.
        assert_eq!(normalize("busybox:é"), Err(ReferenceError::Format));
    }

    #[test]
    fn parse_keeps_the_reference_as_written() {
        let named = parse("r.io:5000/a/b:v1").unwrap();
        assert_eq!(
            (named.domain.as_str(), named.path.as_str(), named.tag.as_deref()),
            ("r.io:5000", "a/b", Some("v1"))
        );
        let named = parse("app:1").unwrap();
        assert_eq!((named.domain.as_str(), named.path.as_str()), ("", "app"));
        // Unlike ParseNormalizedNamed: a 64-hex name is a name, and the first
        // component of a long path is a host.
        assert!(parse(&"a".repeat(64)).is_ok());
        assert!(parse(&format!("x/{}", "a".repeat(255))).is_ok());
        assert_eq!(parse(&"a".repeat(256)), Err(ReferenceError::TooLong));
        assert_eq!(parse("App:1"), Err(ReferenceError::NameUppercase));
        assert_eq!(parse(""), Err(ReferenceError::Empty));
        for bad in ["app:tág", "app:", "a b", "app@sha256:abc", "-app", "app:1:2"] {
            assert_eq!(parse(bad), Err(ReferenceError::Format), "{bad}");
        }
    }
}
