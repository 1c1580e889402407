//! Daemon addresses: parsing `unix://` and `tcp://` strings, printing them
//! back, and the default socket for the user running fbuild.
//!
//! Only the two transports buildkitd listens on are accepted. buildctl's
//! connection helpers (`docker-container://`, `kube-pod://`, `ssh://`, ...)
//! reach a daemon through another program; fbuild refuses them with a message
//! that says so, rather than calling them unknown.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The socket a root buildkitd listens on by default.
pub const ROOT_SOCKET: &str = "/run/buildkit/buildkitd.sock";

/// Where a buildkitd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// A unix socket, always an absolute path.
    Unix(PathBuf),
    /// A TCP listener; `host` is a name, an IPv4 address, or an IPv6 address
    /// without brackets.
    Tcp { host: String, port: u16 },
}

/// What is wrong with an address string; each variant names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("`{value}` has no scheme; write unix:///path/to/buildkitd.sock or tcp://host:port")]
    MissingScheme { value: String },
    #[error("unknown scheme `{scheme}://`; fbuild understands unix:// and tcp://")]
    UnknownScheme { scheme: String },
    #[error(
        "`{scheme}://` reaches buildkitd through another program (buildctl's connection helpers); \
         fbuild talks to buildkitd directly: expose the daemon on a unix socket or a tcp port"
    )]
    ConnectionHelper { scheme: String },
    #[error("the unix:// address has no socket path")]
    EmptyPath,
    #[error("the socket path `{path}` is relative; write unix:///absolute/path.sock (three slashes)")]
    RelativePath { path: String },
    #[error("the tcp:// address has no host; write tcp://host:port")]
    MissingHost,
    #[error("the tcp:// address `{authority}` has no port; write tcp://{authority}:PORT")]
    MissingPort { authority: String },
    #[error("the port `{port}` is not a number from 1 to 65535")]
    BadPort { port: String },
    #[error("the host `{host}` is not a valid host name or IP address")]
    BadHost { host: String },
    #[error("unexpected `{rest}` after host:port; a tcp:// address has no path, query or user")]
    TrailingJunk { rest: String },
}

/// Schemes of buildctl's connection helpers: they run `docker exec`, `kubectl
/// exec`, `ssh`, ... to reach a daemon, which fbuild deliberately does not.
const CONNECTION_HELPERS: &[&str] =
    &["docker-container", "podman-container", "nerdctl-container", "kube-pod", "ssh", "npipe"];

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(value: &str) -> Result<Self, AddressError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(AddressError::Empty);
        }
        let Some((scheme, rest)) = value.split_once("://") else {
            return Err(AddressError::MissingScheme { value: value.to_owned() });
        };
        // URL schemes are case-insensitive (Go's url.Parse lowercases them too).
        let scheme_lower = scheme.to_ascii_lowercase();
        match scheme_lower.as_str() {
            "unix" => parse_unix(rest),
            "tcp" => parse_tcp(rest),
            "" => Err(AddressError::MissingScheme { value: value.to_owned() }),
            s if CONNECTION_HELPERS.contains(&s) => Err(AddressError::ConnectionHelper { scheme: scheme.to_owned() }),
            _ => Err(AddressError::UnknownScheme { scheme: scheme.to_owned() }),
        }
    }
}

fn parse_unix(rest: &str) -> Result<Address, AddressError> {
    if rest.is_empty() {
        return Err(AddressError::EmptyPath);
    }
    if !rest.starts_with('/') {
        return Err(AddressError::RelativePath { path: rest.to_owned() });
    }
    Ok(Address::Unix(PathBuf::from(rest)))
}

fn parse_tcp(rest: &str) -> Result<Address, AddressError> {
    // A single trailing slash (`tcp://host:1234/`) is harmless; anything else
    // after the authority is a mistake worth naming.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, junk) = rest.split_at(authority_end);
    if !junk.is_empty() {
        return Err(AddressError::TrailingJunk { rest: junk.to_owned() });
    }
    if authority.contains('@') {
        return Err(AddressError::TrailingJunk { rest: authority.to_owned() });
    }
    if authority.is_empty() {
        return Err(AddressError::MissingHost);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        // IPv6: [addr]:port
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(AddressError::BadHost { host: authority.to_owned() });
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddressError::BadHost { host: format!("[{host}]") });
        }
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => return Err(AddressError::MissingPort { authority: authority.to_owned() }),
            None => return Err(AddressError::TrailingJunk { rest: after.to_owned() }),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                // More than one colon without brackets: an IPv6 literal written
                // the way URLs don't allow.
                return Err(AddressError::BadHost { host: authority.to_owned() });
            }
            Some((host, port)) => (host, port),
            None => return Err(AddressError::MissingPort { authority: authority.to_owned() }),
        }
    };
    if host.is_empty() {
        return Err(AddressError::MissingHost);
    }
    if !host.contains(':') && !is_host_name(host) {
        return Err(AddressError::BadHost { host: host.to_owned() });
    }
    if port.is_empty() {
        return Err(AddressError::MissingPort { authority: host_display(host) });
    }
    // All digits: u16's parser would also take a leading `+`.
    let number = match port.parse::<u16>() {
        Ok(number) if number != 0 && port.bytes().all(|b| b.is_ascii_digit()) => number,
        _ => return Err(AddressError::BadPort { port: port.to_owned() }),
    };
    Ok(Address::Tcp { host: host.to_owned(), port: number })
}

/// Letters, digits, `-`, `_` and dots: DNS names and IPv4 literals.
fn is_host_name(host: &str) -> bool {
    host.split('.')
        .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn host_display(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } => write!(f, "tcp://{}:{port}", host_display(host)),
        }
    }
}

impl Address {
    /// The socket path of a unix address.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Address::Unix(path) => Some(path),
            Address::Tcp { .. } => None,
        }
    }

    /// The host of a tcp address (the default TLS server name).
    pub fn host(&self) -> Option<&str> {
        match self {
            Address::Unix(_) => None,
            Address::Tcp { host, .. } => Some(host),
        }
    }

    /// `host:port` for tcp, the path for unix: what a dial error talks about.
    pub(crate) fn target(&self) -> String {
        match self {
            Address::Unix(path) => path.display().to_string(),
            Address::Tcp { host, port } => format!("{}:{port}", host_display(host)),
        }
    }
}

/// The address fbuild uses when neither `--addr` nor `BUILDKIT_HOST` is set:
/// the root daemon's socket for root, the rootless daemon's socket otherwise.
pub fn default_address() -> Address {
    let euid = nix::unistd::geteuid().as_raw();
    default_address_for(euid, std::env::var_os("XDG_RUNTIME_DIR").as_deref())
}

/// [`default_address`] for a given user and `XDG_RUNTIME_DIR`, so it can be tested.
pub(crate) fn default_address_for(euid: u32, xdg_runtime_dir: Option<&OsStr>) -> Address {
    if euid == 0 {
        return Address::Unix(PathBuf::from(ROOT_SOCKET));
    }
    Address::Unix(user_runtime_dir(euid, xdg_runtime_dir).join("buildkit").join("buildkitd.sock"))
}

/// The user's runtime folder: the first entry of `XDG_RUNTIME_DIR` (BuildKit
/// splits it on `:` too), else `/run/user/UID`, where pam_systemd puts it.
/// A relative `XDG_RUNTIME_DIR` is invalid per the XDG spec and ignored.
pub(crate) fn user_runtime_dir(euid: u32, xdg_runtime_dir: Option<&OsStr>) -> PathBuf {
    let from_env = xdg_runtime_dir
        .and_then(|value| value.to_str())
        .and_then(|value| value.split(':').next())
        .filter(|first| first.starts_with('/'));
    match from_env {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(format!("/run/user/{euid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Address, AddressError> {
        s.parse()
    }

    #[test]
    fn parses_unix_sockets() {
        assert_eq!(
            parse("unix:///run/buildkit/buildkitd.sock"),
            Ok(Address::Unix("/run/buildkit/buildkitd.sock".into()))
        );
        assert_eq!(parse("  UNIX:///tmp/x.sock "), Ok(Address::Unix("/tmp/x.sock".into())));
        assert_eq!(parse("unix://"), Err(AddressError::EmptyPath));
        assert_eq!(parse("unix://run/x.sock"), Err(AddressError::RelativePath { path: "run/x.sock".into() }));
    }

    #[test]
    fn parses_tcp() {
        assert_eq!(parse("tcp://127.0.0.1:1234"), Ok(Address::Tcp { host: "127.0.0.1".into(), port: 1234 }));
        assert_eq!(
            parse("tcp://build-host.example:1234/"),
            Ok(Address::Tcp { host: "build-host.example".into(), port: 1234 })
        );
        assert_eq!(parse("tcp://[::1]:8080"), Ok(Address::Tcp { host: "::1".into(), port: 8080 }));
    }

    #[test]
    fn names_the_bad_part() {
        assert_eq!(parse(""), Err(AddressError::Empty));
        assert_eq!(
            parse("/run/buildkit/buildkitd.sock"),
            Err(AddressError::MissingScheme { value: "/run/buildkit/buildkitd.sock".into() })
        );
        assert_eq!(parse("localhost:1234"), Err(AddressError::MissingScheme { value: "localhost:1234".into() }));
        assert_eq!(parse("foo://bar"), Err(AddressError::UnknownScheme { scheme: "foo".into() }));
        assert_eq!(parse("https://host:1234"), Err(AddressError::UnknownScheme { scheme: "https".into() }));
        assert_eq!(
            parse("docker-container://buildx_buildkit_default"),
            Err(AddressError::ConnectionHelper { scheme: "docker-container".into() })
        );
        assert_eq!(parse("tcp://"), Err(AddressError::MissingHost));
        assert_eq!(parse("tcp://:1234"), Err(AddressError::MissingHost));
        assert_eq!(parse("tcp://localhost"), Err(AddressError::MissingPort { authority: "localhost".into() }));
        assert_eq!(parse("tcp://localhost:"), Err(AddressError::MissingPort { authority: "localhost".into() }));
        assert_eq!(parse("tcp://[::1]"), Err(AddressError::MissingPort { authority: "[::1]".into() }));
        assert_eq!(parse("tcp://localhost:http"), Err(AddressError::BadPort { port: "http".into() }));
        assert_eq!(parse("tcp://localhost:0"), Err(AddressError::BadPort { port: "0".into() }));
        assert_eq!(parse("tcp://localhost:70000"), Err(AddressError::BadPort { port: "70000".into() }));
        assert_eq!(parse("tcp://localhost:+80"), Err(AddressError::BadPort { port: "+80".into() }));
        assert_eq!(parse("tcp://::1:80"), Err(AddressError::BadHost { host: "::1:80".into() }));
        assert_eq!(parse("tcp://[zz]:80"), Err(AddressError::BadHost { host: "[zz]".into() }));
        assert_eq!(parse("tcp://bad host:80"), Err(AddressError::BadHost { host: "bad host".into() }));
        assert_eq!(parse("tcp://localhost:1234/x"), Err(AddressError::TrailingJunk { rest: "/x".into() }));
        assert_eq!(parse("tcp://localhost:1234?a=b"), Err(AddressError::TrailingJunk { rest: "?a=b".into() }));
        assert_eq!(
            parse("tcp://user@localhost:1234"),
            Err(AddressError::TrailingJunk { rest: "user@localhost:1234".into() })
        );
    }

    #[test]
    fn error_messages_name_the_part() {
        let msg = parse("foo://bar").unwrap_err().to_string();
        assert!(msg.contains("`foo://`"), "{msg}");
        let msg = parse("docker-container://x").unwrap_err().to_string();
        assert!(msg.contains("fbuild talks to buildkitd directly"), "{msg}");
        let msg = parse("tcp://host").unwrap_err().to_string();
        assert!(msg.contains("tcp://host:PORT"), "{msg}");
    }

    #[test]
    fn prints_back_what_it_parsed() {
        for text in
            ["unix:///run/buildkit/buildkitd.sock", "tcp://127.0.0.1:1234", "tcp://[::1]:80", "tcp://example.com:9"]
        {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn default_for_root_is_the_system_socket() {
        assert_eq!(default_address_for(0, Some(OsStr::new("/run/user/0"))), Address::Unix(ROOT_SOCKET.into()));
        assert_eq!(default_address_for(0, None), Address::Unix(ROOT_SOCKET.into()));
    }

    #[test]
    fn default_for_users_is_the_rootless_socket() {
        assert_eq!(
            default_address_for(1000, Some(OsStr::new("/run/user/1000"))),
            Address::Unix("/run/user/1000/buildkit/buildkitd.sock".into())
        );
        // Like BuildKit, only the first entry of a list counts.
        assert_eq!(
            default_address_for(1000, Some(OsStr::new("/tmp/xdg:/other"))),
            Address::Unix("/tmp/xdg/buildkit/buildkitd.sock".into())
        );
        assert_eq!(default_address_for(1001, None), Address::Unix("/run/user/1001/buildkit/buildkitd.sock".into()));
        assert_eq!(
            default_address_for(1001, Some(OsStr::new("relative"))),
            Address::Unix("/run/user/1001/buildkit/buildkitd.sock".into())
        );
    }
}
