//! What the command line adds to a connection failure: hints naming the
//! flags and environment variables (`--addr`, `BUILDKIT_HOST`, `--tls*`) and
//! `fbuild daemon start`. The library's [`ConnectError`] says what failed in
//! terms of the address and certificates; only here do flags appear.

use crate::connect::{
    builders, Address, AddressError, ConnectError, ConnectFailure, ConnectOptions, Stage, StatusError, TlsOptions,
};
use crate::error::Hinted;

/// The error with its hints, for the CLI's error renderer.
pub(crate) fn into_hinted(err: ConnectError) -> anyhow::Error {
    let hints = hints(&err);
    Hinted::wrap(err, hints)
}

/// Where a buildx builder chosen for this run came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuilderOrigin {
    pub(crate) name: String,
    /// `--builder`, `BUILDX_BUILDER`, or buildx's current builder.
    pub(crate) how: &'static str,
}

/// The daemon to connect to, in this order: `--addr` or `--builder` (both
/// is an error), `BUILDKIT_HOST`, `BUILDX_BUILDER`, buildx's current
/// builder when it is a remote-driver one, the default socket. A flag beats
/// a variable, and fbuild's own variable beats buildx's. `--tls*` flags
/// override a builder's TLS files one by one.
pub(crate) fn choose_daemon(
    given: &ConnectOptions,
    builder: Option<&str>,
    sources: super::Sources,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(ConnectOptions, Option<BuilderOrigin>)> {
    let Some(origin) = chosen_builder(given, builder, sources, env)? else {
        return Ok((given.clone(), None));
    };
    let in_context = |err: builders::BuilderError| {
        let hint = format!(
            "the builder {:?} comes from {}; use --addr (or BUILDKIT_HOST) to give fbuild the daemon's address instead",
            origin.name, origin.how
        );
        Hinted::wrap(err, vec![hint])
    };
    let dir = builders::store_dir(env).ok_or_else(|| {
        anyhow::anyhow!("cannot find buildx's builder store for builder {:?}: HOME is not set", origin.name)
    })?;
    let from_store = builders::load(&dir, &origin.name).and_then(|b| b.connect_options()).map_err(in_context)?;
    let tls = TlsOptions {
        ca_cert: given.tls.ca_cert.clone().or(from_store.tls.ca_cert),
        cert: given.tls.cert.clone().or(from_store.tls.cert),
        key: given.tls.key.clone().or(from_store.tls.key),
        server_name: given.tls.server_name.clone().or(from_store.tls.server_name),
    };
    tracing::debug!(builder = origin.name, how = origin.how, addr = ?from_store.addr, "using a buildx builder");
    Ok((ConnectOptions { addr: from_store.addr, tls }, Some(origin)))
}

/// The buildx builder this run uses, if any (see [`choose_daemon`] for the
/// order); `None` when an address wins or nothing names a builder.
pub(crate) fn chosen_builder(
    given: &ConnectOptions,
    builder: Option<&str>,
    sources: super::Sources,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<BuilderOrigin>> {
    if sources.addr_flag && sources.builder_flag && given.addr.is_some() && builder.is_some() {
        anyhow::bail!("--addr and --builder both choose the daemon; give one of them");
    }
    let named = match (given.addr.is_some(), builder) {
        (true, Some(_)) if sources.addr_flag || !sources.builder_flag => None,
        (_, Some(name)) => Some(BuilderOrigin {
            name: name.into(),
            how: if sources.builder_flag { "--builder" } else { "BUILDX_BUILDER" },
        }),
        (_, None) => None,
    };
    Ok(match named {
        Some(origin) => Some(origin),
        None if given.addr.is_some() => None,
        None => current_builder(env),
    })
}

/// buildx's current builder, when it is a remote-driver one; others are
/// for buildx alone and leave fbuild on its default socket. Nobody asked
/// for this one by name, so a store fbuild cannot read is passed over (with
/// a debug log) rather than failing every command.
fn current_builder(env: &dyn Fn(&str) -> Option<String>) -> Option<BuilderOrigin> {
    let dir = builders::store_dir(env)?;
    let current = builders::current(&dir, &builders::docker_endpoint(env))
        .map_err(|err| tracing::debug!(error = %crate::error::error_chain(&err), "buildx's current builder is ignored"))
        .ok()??;
    match builders::load(&dir, &current) {
        Ok(builder) if builder.driver == "remote" => {
            Some(BuilderOrigin { name: current, how: "buildx's current builder (`docker buildx use`)" })
        }
        Ok(builder) => {
            tracing::debug!(builder = current, driver = builder.driver, "buildx's current builder is not a remote one");
            None
        }
        Err(err) => {
            tracing::debug!(error = %crate::error::error_chain(&err), "buildx's current builder is ignored");
            None
        }
    }
}

/// A connection failure to a builder's daemon, with the builder named.
pub(crate) fn into_hinted_from_builder(err: ConnectError, origin: &BuilderOrigin) -> anyhow::Error {
    let mut hints = vec![format!("the address is buildx builder {:?}'s, chosen by {}", origin.name, origin.how)];
    hints.extend(self::hints(&err).into_iter().filter(|h| !h.contains("BUILDKIT_HOST")));
    Hinted::wrap(err, hints)
}

/// What the user can do about it, most useful first.
pub(crate) fn hints(err: &ConnectError) -> Vec<String> {
    let mut hints = Vec::new();
    match err {
        ConnectError::Address { addr, source } => {
            if matches!(source, AddressError::MissingScheme { .. }) && addr.trim().starts_with('/') {
                hints.push(format!("for a unix socket, write unix://{}", addr.trim()));
            }
            hints.push("the address comes from --addr, else BUILDKIT_HOST".into());
        }
        ConnectError::TlsConfig(_) => {}
        ConnectError::Connect { addr, defaulted, source } => {
            let source = source.as_ref();
            let no_daemon = matches!(
                source,
                ConnectFailure::NoSocket { .. }
                    | ConnectFailure::StaleSocket { .. }
                    | ConnectFailure::Refused { .. }
                    | ConnectFailure::Timeout { stage: Stage::Dialing, .. }
            );
            match source {
                ConnectFailure::Tls { problem, .. } => hints.extend(problem.hint()),
                ConnectFailure::TlsClosed { .. } => {
                    hints.push("if the daemon serves plain gRPC, drop the --tls* flags".into())
                }
                ConnectFailure::SocketPermission { .. } => hints.push(
                    "the socket belongs to another user: run fbuild as that user (for a root daemon, with sudo), \
                     or run your own daemon with `fbuild daemon start`"
                        .into(),
                ),
                ConnectFailure::Transport(_)
                | ConnectFailure::FirstCall(_)
                | ConnectFailure::Timeout { stage: Stage::Connected, .. }
                    if matches!(addr, Address::Tcp { .. }) =>
                {
                    hints.push(
                        "if the daemon serves TLS at this address, pass --tlscacert (and --tlscert/--tlskey for \
                         mutual TLS)"
                            .into(),
                    )
                }
                _ => {}
            }
            if let ConnectFailure::FirstCall(StatusError(status)) = source {
                if status.code() == tonic::Code::Unimplemented {
                    hints.push(format!("is a buildkitd (v0.11 or newer) listening at {addr}?"));
                }
            }
            if no_daemon {
                hints.push("is buildkitd running? `fbuild daemon start` runs one for this user".into());
                if *defaulted {
                    hints.push(format!(
                        "no --addr or BUILDKIT_HOST was given, so fbuild tried the default {addr}; point it at \
                         another daemon with --addr or BUILDKIT_HOST"
                    ));
                } else {
                    hints.push("or point fbuild at another daemon with --addr or BUILDKIT_HOST".into());
                }
            }
        }
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{connect, open, ConnectOptions, TlsConfigError, TlsOptions, CONNECT_TIMEOUT};
    use std::time::Duration;

    fn render(err: anyhow::Error) -> String {
        let mut out = Vec::new();
        crate::error::render(&err, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn missing_socket_is_reported_with_hints() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nothing.sock");
        let opts = ConnectOptions { addr: Some(format!("unix://{}", sock.display())), ..Default::default() };
        let started = std::time::Instant::now();
        let err = into_hinted(connect(&opts).await.unwrap_err());
        assert!(started.elapsed() < CONNECT_TIMEOUT);
        let found = err.downcast_ref::<Hinted>().and_then(|h| h.error.downcast_ref::<ConnectError>()).unwrap();
        assert!(matches!(found, ConnectError::Connect { defaulted: false, .. }));
        assert!(matches!(found.failure(), Some(ConnectFailure::NoSocket { .. })), "{found:?}");
        let text = render(err);
        assert!(
            text.starts_with(&format!("error: cannot connect to buildkitd at unix://{}\n", sock.display())),
            "{text}"
        );
        assert!(text.contains(&format!("Caused by: no socket at {}", sock.display())), "{text}");
        assert!(text.contains("hint: is buildkitd running? `fbuild daemon start`"), "{text}");
        assert!(text.contains("--addr or BUILDKIT_HOST"), "{text}");
    }

    #[tokio::test]
    async fn stale_socket_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("stale.sock");
        // Bind and close: the file stays, nobody listens.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let opts = ConnectOptions { addr: Some(format!("unix://{}", sock.display())), ..Default::default() };
        let err = open(&opts, CONNECT_TIMEOUT).await.unwrap_err();
        assert!(matches!(err.failure(), Some(ConnectFailure::StaleSocket { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn refused_tcp_port_is_named() {
        // Bind a port and free it, so that (very likely) nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = ConnectOptions { addr: Some(format!("tcp://127.0.0.1:{port}")), ..Default::default() };
        let err = open(&opts, CONNECT_TIMEOUT).await.unwrap_err();
        assert!(matches!(err.failure(), Some(ConnectFailure::Refused { .. })), "{err:?}");
        assert!(err.source().unwrap().to_string().contains(&format!("127.0.0.1:{port}")));
    }

    #[tokio::test]
    async fn silent_listener_times_out_at_the_deadline() {
        // Accepts TCP but never speaks HTTP/2: the first call cannot finish.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let opts = ConnectOptions { addr: Some(format!("tcp://127.0.0.1:{port}")), ..Default::default() };
        let started = std::time::Instant::now();
        let err = open(&opts, Duration::from_millis(500)).await.unwrap_err();
        // Far below "forever", far above the deadline: a loaded machine
        // cannot make it fail.
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(matches!(err.failure(), Some(ConnectFailure::Timeout { stage: Stage::Connected, .. })), "{err:?}");
        assert!(hints(&err).iter().any(|h| h.contains("--tlscacert")));
    }

    #[tokio::test]
    async fn bad_address_fails_before_dialing() {
        let opts = ConnectOptions { addr: Some("/run/buildkit/buildkitd.sock".into()), ..Default::default() };
        let text = render(into_hinted(connect(&opts).await.unwrap_err()));
        assert!(text.contains("invalid buildkitd address `/run/buildkit/buildkitd.sock`"), "{text}");
        assert!(text.contains("hint: for a unix socket, write unix:///run/buildkit/buildkitd.sock"), "{text}");
    }

    #[tokio::test]
    async fn tls_on_a_unix_socket_is_refused() {
        let opts = ConnectOptions {
            addr: Some("unix:///tmp/x.sock".into()),
            tls: TlsOptions { ca_cert: Some("/tmp/ca.pem".into()), ..Default::default() },
        };
        let err = open(&opts, CONNECT_TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ConnectError::TlsConfig(TlsConfigError::UnixWithTls)), "{err:?}");
    }

    #[test]
    fn defaulted_address_says_so() {
        let err = ConnectError::Connect {
            addr: "unix:///run/buildkit/buildkitd.sock".parse().unwrap(),
            defaulted: true,
            source: Box::new(ConnectFailure::NoSocket {
                path: "/run/buildkit/buildkitd.sock".into(),
                source: std::io::ErrorKind::NotFound.into(),
            }),
        };
        let hints = hints(&err);
        assert!(hints.iter().any(|h| h.contains("no --addr or BUILDKIT_HOST was given")), "{hints:?}");
    }

    /// A store with a remote builder `r` (current, for Docker's default
    /// endpoint) and a docker-container builder `c`.
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let instances = dir.path().join("buildx/instances");
        std::fs::create_dir_all(&instances).unwrap();
        let builder = |name: &str, driver: &str, endpoint: &str| {
            format!(r#"{{"Name":"{name}","Driver":"{driver}","Nodes":[{{"Name":"{name}0","Endpoint":"{endpoint}"}}]}}"#)
        };
        std::fs::write(instances.join("r"), builder("r", "remote", "tcp://remote:1234")).unwrap();
        std::fs::write(instances.join("c"), builder("c", "docker-container", "")).unwrap();
        std::fs::write(dir.path().join("buildx/current"), r#"{"Key":"unix:///var/run/docker.sock","Name":"r"}"#)
            .unwrap();
        dir
    }

    fn choose(
        store: &std::path::Path,
        addr: Option<&str>,
        builder: Option<&str>,
        sources: (bool, bool),
    ) -> anyhow::Result<(Option<String>, Option<&'static str>)> {
        let given = ConnectOptions { addr: addr.map(String::from), ..Default::default() };
        let config = store.display().to_string();
        let env = move |key: &str| (key == "DOCKER_CONFIG").then(|| config.clone());
        let sources = super::super::Sources { addr_flag: sources.0, builder_flag: sources.1 };
        let (options, origin) = choose_daemon(&given, builder, sources, &env)?;
        Ok((options.addr, origin.map(|o| o.how)))
    }

    #[test]
    fn the_daemon_is_chosen_flags_first_then_fbuilds_variable() {
        let dir = store();
        let store = dir.path();
        let remote = Some("tcp://remote:1234".to_string());
        // Nothing given: buildx's current builder.
        assert_eq!(choose(store, None, None, (false, false)).unwrap().0, remote);
        // --addr, or BUILDKIT_HOST, beats the current builder.
        assert_eq!(choose(store, Some("unix:///a"), None, (true, false)).unwrap(), (Some("unix:///a".into()), None));
        assert_eq!(choose(store, Some("unix:///a"), None, (false, false)).unwrap().0.as_deref(), Some("unix:///a"));
        // --builder beats BUILDKIT_HOST; BUILDKIT_HOST beats BUILDX_BUILDER; --addr beats BUILDX_BUILDER.
        assert_eq!(
            choose(store, Some("unix:///a"), Some("r"), (false, true)).unwrap(),
            (remote.clone(), Some("--builder"))
        );
        assert_eq!(
            choose(store, Some("unix:///a"), Some("c"), (false, false)).unwrap().0.as_deref(),
            Some("unix:///a")
        );
        assert_eq!(choose(store, Some("unix:///a"), Some("c"), (true, false)).unwrap().0.as_deref(), Some("unix:///a"));
        assert_eq!(choose(store, None, Some("r"), (false, false)).unwrap(), (remote, Some("BUILDX_BUILDER")));
        // Both flags: refused.
        let err = choose(store, Some("unix:///a"), Some("r"), (true, true)).unwrap_err();
        assert!(err.to_string().contains("--addr and --builder both choose the daemon"), "{err}");
        // A builder fbuild cannot use, asked for by name: an error naming where the name came from.
        let err = render(choose(store, None, Some("c"), (false, true)).unwrap_err());
        assert!(err.contains("docker-container driver") && err.contains("comes from --builder"), "{err}");
    }

    #[test]
    fn a_current_builder_fbuild_cannot_use_leaves_the_default() {
        let dir = store();
        std::fs::write(dir.path().join("buildx/current"), r#"{"Key":"unix:///var/run/docker.sock","Name":"c"}"#)
            .unwrap();
        assert_eq!(choose(dir.path(), None, None, (false, false)).unwrap(), (None, None));
        std::fs::write(dir.path().join("buildx/current"), "not json").unwrap();
        assert_eq!(choose(dir.path(), None, None, (false, false)).unwrap(), (None, None));
    }

    use std::error::Error as _;
}
