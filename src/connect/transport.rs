//! The byte streams under the HTTP/2 connection: a unix socket, a TCP socket,
//! or TLS over TCP, dialed by a tower service that tonic calls as its connector.
//!
//! tonic and hyper flatten transport failures into generic "transport error"
//! texts, and h2 hides the I/O error it saw from the error source chain. So
//! the connector keeps its own [`Journal`]: how far dialing got, the dial
//! error itself, and the first TLS error seen on the stream afterwards. With
//! TLS 1.3 the daemon's refusal of a client certificate arrives only after
//! the handshake, so the dialer also waits for the daemon's first record
//! before handing the stream over. [`super::connect`] reads the journal to say
//! what failed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::address::Address;
use super::coalesce::Coalesce;
use super::tls::TlsSettings;

/// How far the last dial got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the socket.
    #[default]
    Dialing,
    /// The TCP connection is up; the TLS handshake runs.
    Handshaking,
    /// The stream is up; HTTP/2 and gRPC run over it.
    Connected,
}

/// A failure to open the stream.
#[derive(Debug)]
pub(crate) enum DialError {
    Io(io::Error),
    /// The host name did not resolve.
    Resolve(io::Error),
    /// The TLS handshake failed with this rustls error.
    Tls(rustls::Error),
    /// The daemon closed or reset the connection during the TLS handshake.
    TlsClosed(io::Error),
}

/// What the connector saw; shared between the connector and `connect`.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) stage: Stage,
    pub(crate) dial_error: Option<DialError>,
    /// The first TLS error seen reading or writing after the handshake.
    pub(crate) stream_tls_error: Option<rustls::Error>,
}

pub(crate) type SharedJournal = Arc<Mutex<Journal>>;

/// Locks the journal. A poisoned lock only means another thread panicked
/// while recording; the diagnostics are best effort, so carry on with what
/// is there.
pub(crate) fn lock(journal: &SharedJournal) -> std::sync::MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn with_journal(journal: &SharedJournal, f: impl FnOnce(&mut Journal)) {
    f(&mut lock(journal));
}

/// The error tonic receives from the connector. The real cause is in the
/// journal; this only has to say that dialing failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a connection to the daemon")]
pub(crate) struct DialFailed;

/// Dials `address` (with TLS when `tls` is set) and records what happened.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) address: Address,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) journal: SharedJournal,
}

impl Dialer {
    pub(crate) async fn dial(self) -> Result<TokioIo<Coalesce<Stream>>, DialFailed> {
        with_journal(&self.journal, |j| {
            j.stage = Stage::Dialing;
            j.dial_error = None;
        });
        match self.open().await {
            Ok(stream) => {
                with_journal(&self.journal, |j| j.stage = Stage::Connected);
                Ok(TokioIo::new(Coalesce::new(stream)))
            }
            Err(err) => {
                tracing::debug!(address = %self.address, error = ?err, "dialing buildkitd failed");
                with_journal(&self.journal, |j| j.dial_error = Some(err));
                Err(DialFailed)
            }
        }
    }

    async fn open(&self) -> Result<Stream, DialError> {
        let inner = match &self.address {
            Address::Unix(path) => return UnixStream::connect(path).await.map(Stream::unix).map_err(DialError::Io),
            Address::Tcp { host, port } => {
                // Resolve first, so a bad name is told apart from a closed port.
                let targets: Vec<_> =
                    tokio::net::lookup_host((host.as_str(), *port)).await.map_err(DialError::Resolve)?.collect();
                let tcp = TcpStream::connect(targets.as_slice()).await.map_err(DialError::Io)?;
                // gRPC's small frames (Status updates, session pings) must not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                tcp
            }
        };
        let Some(tls) = &self.tls else {
            return Ok(Stream::tcp(inner));
        };
        with_journal(&self.journal, |j| j.stage = Stage::Handshaking);
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let mut stream = connector.connect(tls.server_name.clone(), inner).await.map_err(tls_dial_error)?;
        // With TLS 1.3 the client's handshake ends before the daemon has
        // looked at our certificate; its verdict comes as the first record.
        // Wait for that record here (grpc-go servers speak first: their
        // SETTINGS frame), so a refusal is an alert read now, not a broken
        // pipe on some later write that hides it.
        let mut first = vec![0; FIRST_READ_BUF];
        let prefix = match tokio::time::timeout(FIRST_READ_WAIT, stream.read(&mut first)).await {
            Ok(Ok(0)) => {
                return Err(DialError::TlsClosed(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(Ok(n)) => {
                first.truncate(n);
                first
            }
            Ok(Err(err)) => return Err(tls_dial_error(err)),
            // A server that waits for the client to speak first: carry on.
            Err(_elapsed) => Vec::new(),
        };
        Ok(Stream::tls(stream, prefix, self.journal.clone()))
    }
}

/// How long to wait for the daemon's first TLS record after the handshake.
const FIRST_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
const FIRST_READ_BUF: usize = 16 * 1024;

fn tls_dial_error(err: io::Error) -> DialError {
    match rustls_error(&err) {
        Some(tls_err) => DialError::Tls(tls_err.clone()),
        None if matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ) =>
        {
            DialError::TlsClosed(err)
        }
        None => DialError::Io(err),
    }
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
pub(crate) fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// One connection's byte stream.
pub(crate) struct Stream {
    kind: StreamKind,
}

enum StreamKind {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls {
        stream: Box<tokio_rustls::client::TlsStream<TcpStream>>,
        /// Bytes read while waiting for the daemon's first record, replayed first.
        prefix: Vec<u8>,
        journal: SharedJournal,
    },
}

impl Stream {
    fn unix(stream: UnixStream) -> Self {
        Stream { kind: StreamKind::Unix(stream) }
    }
    fn tcp(stream: TcpStream) -> Self {
        Stream { kind: StreamKind::Tcp(stream) }
    }
    fn tls(stream: tokio_rustls::client::TlsStream<TcpStream>, prefix: Vec<u8>, journal: SharedJournal) -> Self {
        Stream { kind: StreamKind::Tls { stream: Box::new(stream), prefix, journal } }
    }
}

/// Notes the first TLS error of a finished handshake's stream in the journal.
fn note_tls<T>(journal: &SharedJournal, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    if let Poll::Ready(Err(err)) = &poll {
        if let Some(tls_err) = rustls_error(err) {
            with_journal(journal, |j| {
                j.stream_tls_error.get_or_insert_with(|| tls_err.clone());
            });
        }
    }
    poll
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.kind {
            StreamKind::Unix(s) => Pin::new(s).poll_read(cx, buf),
            StreamKind::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            StreamKind::Tls { stream, prefix, journal } => {
                if !prefix.is_empty() {
                    let n = prefix.len().min(buf.remaining());
                    buf.put_slice(&prefix[..n]);
                    prefix.drain(..n);
                    return Poll::Ready(Ok(()));
                }
                let poll = Pin::new(stream.as_mut()).poll_read(cx, buf);
                note_tls(journal, poll)
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.kind {
            StreamKind::Unix(s) => Pin::new(s).poll_write(cx, buf),
            StreamKind::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            StreamKind::Tls { stream, journal, .. } => {
                let poll = Pin::new(stream.as_mut()).poll_write(cx, buf);
                note_tls(journal, poll)
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.kind {
            StreamKind::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            StreamKind::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            StreamKind::Tls { stream, journal, .. } => {
                let poll = Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs);
                note_tls(journal, poll)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.kind {
            StreamKind::Unix(s) => s.is_write_vectored(),
            StreamKind::Tcp(s) => s.is_write_vectored(),
            StreamKind::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.kind {
            StreamKind::Unix(s) => Pin::new(s).poll_flush(cx),
            StreamKind::Tcp(s) => Pin::new(s).poll_flush(cx),
            StreamKind::Tls { stream, journal, .. } => {
                let poll = Pin::new(stream.as_mut()).poll_flush(cx);
                note_tls(journal, poll)
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.kind {
            StreamKind::Unix(s) => Pin::new(s).poll_shutdown(cx),
            StreamKind::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            StreamKind::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
