//! Connections to buildkitd: which address to use, how to reach it (unix
//! socket, h2c over TCP, TLS and mutual TLS), and what to tell the user when
//! that fails.
//!
//! [`connect`] hands back a tonic [`Channel`] that the rest of fbuild (the
//! Control wrapper, the session, the gateway) shares. Only connecting has a
//! deadline ([`CONNECT_TIMEOUT`]); calls on the channel have none, because
//! solves and status streams run for hours. Connecting is eager and ends with
//! one cheap call (`Control.Info`), so a dead daemon, a wrong certificate or a
//! refused client certificate is reported at once, not at the first real call.
//!
//! - [`address`]: parsing `unix://` and `tcp://`, the default sockets.
//! - [`tls`]: loading the TLS flags, classifying handshake failures.
//! - `transport`: the connector that dials and records what went wrong.
//! - `coalesce`: gathers h2's small frame writes into larger socket writes.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::proto::moby::buildkit::v1::control_client::ControlClient;
use crate::proto::moby::buildkit::v1::{InfoRequest, InfoResponse};

pub mod address;
pub(crate) mod builders;
mod coalesce;
pub mod tls;
mod transport;

pub use address::{default_address, Address, AddressError};
pub use tls::{TlsConfigError, TlsProblem};

pub use transport::Stage;
use transport::{lock, DialError, Dialer, SharedJournal};

/// How long connecting may take, from the first syscall to the answer of the
/// first call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings while calls are open. grpc-go servers (buildkitd sets no
/// keepalive policy) drop clients that ping more often than every 5 minutes,
/// so stay above that; the pings exist to notice a vanished daemon during a
/// long, silent solve.
/// The largest header block (headers or trailers) accepted from the daemon
/// and on sessions: grpc-go's own default (16 MiB,
/// `internal/transport/defaults.go`), which buildkitd and buildctl use.
pub(crate) const MAX_HEADER_LIST_SIZE: u32 = 16 << 20;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(6 * 60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS flags, with buildctl's names and meaning.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA certificate(s) to verify the daemon with (`--tlscacert`).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate for mutual TLS (`--tlscert`).
    pub cert: Option<PathBuf>,
    /// Client private key for mutual TLS (`--tlskey`).
    pub key: Option<PathBuf>,
    /// Name expected in the daemon's certificate (`--tlsservername`);
    /// defaults to the address' host.
    pub server_name: Option<String>,
}

/// Where the daemon is and how to talk to it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--addr` or `BUILDKIT_HOST`; `None` for the default socket.
    pub addr: Option<String>,
    /// The `--tls*` flags.
    pub tls: TlsOptions,
}

impl ConnectOptions {
    /// The address to use: the given one, parsed, or the default socket.
    pub fn address(&self) -> Result<Address, ConnectError> {
        match &self.addr {
            Some(text) => text.parse().map_err(|source| ConnectError::Address { addr: text.clone(), source }),
            None => Ok(default_address()),
        }
    }
}

/// A connected channel, with what the daemon said about itself.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The channel every service on this daemon shares.
    pub channel: Channel,
    /// The address it connected to.
    pub address: Address,
    /// The daemon's answer to `Control.Info` (its version).
    pub info: InfoResponse,
}

/// Why fbuild could not connect to buildkitd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("invalid buildkitd address `{addr}`")]
    Address {
        addr: String,
        #[source]
        source: AddressError,
    },
    #[error("invalid TLS settings")]
    TlsConfig(#[from] TlsConfigError),
    #[error("cannot connect to buildkitd at {addr}")]
    Connect {
        addr: Address,
        /// True when no address was given and fbuild tried the default socket.
        defaulted: bool,
        #[source]
        source: Box<ConnectFailure>,
    },
}

/// What went wrong while connecting, from the socket up to the first call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    #[error("no socket at {path}")]
    NoSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no permission to use the socket {path}")]
    SocketPermission {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing listens on the socket {path} (left behind by a daemon that stopped?)")]
    StaleSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve the host `{host}`")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing accepts connections at {target}")]
    Refused {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a connection to {target}")]
    Dial {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {problem}")]
    Tls {
        problem: TlsProblem,
        #[source]
        source: rustls::Error,
    },
    #[error("the daemon closed the connection during the TLS handshake; it may not serve TLS at this address")]
    TlsClosed {
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within {}s {}", .after.as_secs(), stage_text(.stage))]
    Timeout { after: Duration, stage: Stage },
    #[error("cannot set up the gRPC connection")]
    Transport(#[source] tonic::transport::Error),
    #[error("the daemon did not answer the first call (Control.Info)")]
    FirstCall(#[source] StatusError),
}

fn stage_text(stage: &Stage) -> &'static str {
    match stage {
        Stage::Dialing => "while opening the connection",
        Stage::Handshaking => "during the TLS handshake",
        Stage::Connected => "to the first call (Control.Info); is this a buildkitd address?",
    }
}

/// A gRPC status, printed for people: `unavailable: message`, with the
/// status' own cause (hyper's, h2's) as the source.
#[derive(Debug)]
pub struct StatusError(pub tonic::Status);

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = format!("{:?}", self.0.code()).to_lowercase();
        if self.0.message().is_empty() {
            write!(f, "{code}")
        } else {
            write!(f, "{code}: {}", self.0.message())
        }
    }
}

impl std::error::Error for StatusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl ConnectError {
    /// What failed while connecting (not for address or TLS setting errors).
    pub fn failure(&self) -> Option<&ConnectFailure> {
        match self {
            ConnectError::Connect { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Which part of the TLS setup the daemon or fbuild rejected, if that was the failure.
    pub fn tls_problem(&self) -> Option<&TlsProblem> {
        match self.failure() {
            Some(ConnectFailure::Tls { problem, .. }) => Some(problem),
            _ => None,
        }
    }
}

/// Connects to the daemon `opts` names, within [`CONNECT_TIMEOUT`].
pub async fn connect(opts: &ConnectOptions) -> Result<Connection, ConnectError> {
    open(opts, CONNECT_TIMEOUT).await
}

/// Connects with a deadline of `timeout`, returning the structured error.
pub async fn open(opts: &ConnectOptions, timeout: Duration) -> Result<Connection, ConnectError> {
    let address = opts.address()?;
    let tls = tls::load(&opts.tls, address.host())?;
    let journal = SharedJournal::default();
    let dialer = Dialer { address: address.clone(), tls: tls.clone(), journal: journal.clone() };
    let fail = |source| ConnectError::Connect {
        addr: address.clone(),
        defaulted: opts.addr.is_none(),
        source: Box::new(source),
    };

    // The URI only names the :authority; the connector decides where bytes go.
    let uri = match &address {
        Address::Unix(_) => "http://localhost".to_owned(),
        Address::Tcp { .. } => format!("http://{}", address.target()),
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|err| fail(ConnectFailure::Transport(err)))?
        // Applies to reconnects too (tonic reconnects a dropped channel lazily).
        .connect_timeout(timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        // The daemon sends a failed call's details (the process, the
        // command, the stack) in trailers; past h2's 16 KiB default they
        // would be lost to "h2 protocol error".
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false);

    let attempt = async {
        let connector = tower::service_fn(move |_: http::Uri| dialer.clone().dial());
        let channel = match endpoint.connect_with_connector(connector).await {
            Ok(channel) => channel,
            Err(err) => return Err(dial_failure(&journal, &address, tls.as_ref(), err)),
        };
        // Every buildkitd since v0.11 serves Info. Any other answer, even
        // `unimplemented`, means something else listens there: tonic reads a
        // plain HTTP 404 as `unimplemented`.
        match ControlClient::new(channel.clone()).info(InfoRequest {}).await {
            Ok(response) => Ok((channel, response.into_inner())),
            Err(status) => Err(call_failure(&journal, tls.as_ref(), status)),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((channel, info))) => Ok(Connection { channel, address: address.clone(), info }),
        Ok(Err(failure)) => Err(fail(failure)),
        Err(_elapsed) => {
            let stage = lock(&journal).stage;
            Err(fail(ConnectFailure::Timeout { after: timeout, stage }))
        }
    }
}

/// Why the connector (or tonic's HTTP/2 setup) failed.
fn dial_failure(
    journal: &SharedJournal,
    address: &Address,
    tls: Option<&tls::TlsSettings>,
    err: tonic::transport::Error,
) -> ConnectFailure {
    let Some(dial_error) = lock(journal).dial_error.take() else {
        return ConnectFailure::Transport(err);
    };
    classify_dial(dial_error, address, tls)
}

fn classify_dial(err: DialError, address: &Address, tls: Option<&tls::TlsSettings>) -> ConnectFailure {
    use std::io::ErrorKind;
    match (err, address) {
        (DialError::Tls(source), _) => match tls {
            Some(tls) => ConnectFailure::Tls { problem: tls::classify(&source, tls), source },
            None => ConnectFailure::Tls { problem: TlsProblem::Other, source },
        },
        (DialError::TlsClosed(source), _) => ConnectFailure::TlsClosed { source },
        (DialError::Resolve(source), Address::Tcp { host, .. }) => {
            ConnectFailure::Resolve { host: host.clone(), source }
        }
        (DialError::Io(source) | DialError::Resolve(source), Address::Unix(path)) => {
            let path = path.clone();
            match source.kind() {
                ErrorKind::NotFound => ConnectFailure::NoSocket { path, source },
                ErrorKind::PermissionDenied => ConnectFailure::SocketPermission { path, source },
                ErrorKind::ConnectionRefused => ConnectFailure::StaleSocket { path, source },
                _ => ConnectFailure::Dial { target: path.display().to_string(), source },
            }
        }
        (DialError::Io(source), Address::Tcp { .. }) => match source.kind() {
            ErrorKind::ConnectionRefused => ConnectFailure::Refused { target: address.target(), source },
            _ => ConnectFailure::Dial { target: address.target(), source },
        },
    }
}

/// Why the first call failed: a TLS alert seen on the stream (a refused
/// client certificate, with TLS 1.3), or the call's own status.
fn call_failure(journal: &SharedJournal, tls: Option<&tls::TlsSettings>, status: tonic::Status) -> ConnectFailure {
    let stream_error = lock(journal).stream_tls_error.take();
    match (stream_error, tls) {
        (Some(source), Some(tls)) => ConnectFailure::Tls { problem: tls::classify(&source, tls), source },
        _ => ConnectFailure::FirstCall(StatusError(status)),
    }
}
