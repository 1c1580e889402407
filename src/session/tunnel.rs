//! The byte pipe under the session: `Control.Session`'s message stream on one
//! side, and on the other an in-memory connection that tonic's server treats
//! as a socket ([`SessionIo`]). Bytes the server writes are gathered into
//! `BytesMessage`s and sent as they are flushed; messages from the daemon are
//! cut from the DATA frames that brought them ([`super::frame::Messages`])
//! and read by the server straight from those frames. Nothing looks inside.
//!
//! The outgoing messages are framed here ([`SessionBody`], [`super::frame`]), not by tonic's
//! encoder: a `BytesMessage` is one length-delimited field, so its gRPC
//! frame is a few header bytes followed by the payload as it is, and h2
//! sends the payload without the copy into an encode buffer that tonic
//! makes (a tenth of the client's CPU on a large cache import). The
//! incoming ones are not decoded by tonic either: its decoder copies every
//! frame into a buffer it reallocates for each message (most of a cache
//! export's memmove).
//!
//! An earlier version put a `tokio::io::duplex` between the server and two
//! pump tasks: every byte was copied once more each way and took one more
//! task hop, a third of the client's CPU on a large cache import.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use tonic::metadata::{MetadataMap, MetadataValue};

use super::frame::{split_field, Messages, Pieces};
use super::{SessionError, SessionHeaders};
use crate::control::Control;

/// Largest chunk put into one `BytesMessage`: a write that fills it is sent
/// without waiting for the flush.
const CHUNK: usize = 1 << 20;
/// Room for the write that crosses `CHUNK`: h2 writes a frame (at most
/// 16 KiB, the daemon's limit) with the small frames buffered before it.
const FRAME: usize = 64 << 10;
/// Messages queued each way: with `CHUNK`-sized messages, a few MiB.
const QUEUE: usize = 4;

/// The server's side of the session's connection.
pub(crate) struct SessionIo {
    inbound: mpsc::Receiver<Pieces>,
    /// What is left of the last message from the daemon.
    reading: Pieces,
    outbound: PollSender<Bytes>,
    /// Written by the server, not yet sent.
    writing: BytesMut,
    /// Bytes were written since the last flush.
    wrote_since_flush: bool,
}

/// The call's side: where the daemon's messages go and where the server's
/// come from.
pub(crate) struct CallSide {
    inbound: mpsc::Sender<Pieces>,
    outbound: mpsc::Receiver<Bytes>,
}

/// Creates the connection: the server's half and the call's half.
pub(crate) fn pipe() -> (SessionIo, CallSide) {
    let (inbound_tx, inbound_rx) = mpsc::channel(QUEUE);
    let (outbound_tx, outbound_rx) = mpsc::channel(QUEUE);
    let io = SessionIo {
        inbound: inbound_rx,
        reading: Pieces::default(),
        outbound: PollSender::new(outbound_tx),
        writing: BytesMut::with_capacity(CHUNK + FRAME),
        wrote_since_flush: false,
    };
    (io, CallSide { inbound: inbound_tx, outbound: outbound_rx })
}

impl SessionIo {
    /// Sends what was written so far as one message.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.writing.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.outbound.poll_reserve(cx)).map_err(|_| closed())?;
        let data = self.writing.split().freeze();
        // A fresh buffer of the full size: grown from empty by h2's 16 KiB
        // writes, it was reallocated (and copied) five times per message.
        self.writing.reserve(CHUNK + FRAME);
        self.outbound.send_item(data).map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the session's call has ended")
}

impl AsyncRead for SessionIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        while !self.reading.has_remaining() {
            match ready!(self.inbound.poll_recv(cx)) {
                Some(data) => self.reading = data,
                // The daemon hung up: end of stream.
                None => return Poll::Ready(Ok(())),
            }
        }
        while buf.remaining() > 0 && self.reading.has_remaining() {
            let chunk = self.reading.chunk();
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            self.reading.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.writing.len() >= CHUNK {
            ready!(self.poll_send(cx))?;
        }
        self.writing.extend_from_slice(buf);
        self.wrote_since_flush = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.writing.len() >= CHUNK {
            ready!(self.poll_send(cx))?;
        }
        let mut n = 0;
        for buf in bufs {
            self.writing.extend_from_slice(buf);
            n += buf.len();
        }
        self.wrote_since_flush = true;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// h2 flushes after every frame, which made each 16 KiB frame a
    /// message of its own (and two DATA frames on the outer connection, and
    /// one more gRPC message for the daemon to take apart). As in
    /// `connect::coalesce`, a flush that follows new writes only makes sure
    /// another flush comes; the message goes at the first flush with no
    /// write since the one before (h2 has nothing more to send), or once it
    /// reaches `CHUNK`.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if std::mem::take(&mut self.wrote_since_flush) {
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        self.poll_send(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.as_mut().poll_send(cx))?;
        self.outbound.close();
        Poll::Ready(Ok(()))
    }
}

/// The `Control.Session` request body: each payload from the server as a
/// gRPC message holding one `BytesMessage`, the payload itself untouched.
struct SessionBody {
    outbound: mpsc::Receiver<Bytes>,
    /// The payload whose header went out last.
    payload: Option<Bytes>,
}

impl http_body::Body for SessionBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(payload) = self.payload.take() {
            return Poll::Ready(Some(Ok(Frame::data(payload))));
        }
        let Some(payload) = ready!(self.outbound.poll_recv(cx)) else {
            // The server's side closed: the request ends.
            return Poll::Ready(None);
        };
        // `BytesMessage` has one field, `data = 1`.
        let (header, payload) = super::frame::message(&[], 1, payload);
        self.payload = payload;
        Poll::Ready(Some(Ok(Frame::data(header))))
    }
}

impl tonic::transport::server::Connected for SessionIo {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Opens `Control.Session` with the session's headers and connects it to the
/// server's half until either side closes or the returned pump is aborted.
///
/// The pump is the task that moves the daemon's messages to the server.
/// Aborting it ends the `Control.Session` call and the server's connection,
/// which then ends too. (tonic runs the connection in a task of its own, so
/// stopping the server's task alone left it running: tasks and memory per
/// build, for good.)
pub(crate) async fn connect(
    control: &Control,
    headers: &SessionHeaders,
    call: CallSide,
) -> Result<tokio::task::AbortHandle, SessionError> {
    let CallSide { inbound: to_server, outbound } = call;
    let mut metadata = MetadataMap::new();
    let ascii = |value: &str| MetadataValue::try_from(value).map_err(|_| SessionError::InvalidHeader(value.into()));
    metadata.insert("x-docker-expose-session-uuid", ascii(&headers.id)?);
    metadata.insert("x-docker-expose-session-name", ascii(&headers.name)?);
    metadata.insert("x-docker-expose-session-sharedkey", ascii(&headers.shared_key)?);
    for method in &headers.methods {
        metadata.append("x-docker-expose-session-grpc-method", ascii(method)?);
    }
    // BuildKit's own tests tighten the daemon's health checks of a session
    // with this header (every N ms, N ms to answer, one miss ends it; at
    // least 1 s). FBUILD_SESSION_HEALTH_MS sets it: a stress test for the
    // session under load, and a way to find a link too slow for the checks.
    if let Some(ms) = std::env::var("FBUILD_SESSION_HEALTH_MS").ok().filter(|v| v.parse::<u32>().is_ok()) {
        metadata.insert("x-buildkit-session-health-custom-timeout", ascii(&ms)?);
    }

    // The server's messages are the call's request body; its HTTP/2
    // preface is already queued when the daemon starts talking.
    let body = SessionBody { outbound, payload: None };
    let inbound = control.session(metadata, tonic::body::Body::new(body)).await.map_err(SessionError::Open)?;

    // Daemon → server. Dropping `to_server` ends the server's reads.
    let inbound = tokio::spawn(async move {
        let mut messages = Messages::new(inbound);
        while let Some(message) = std::future::poll_fn(|cx| messages.poll_message(cx)).await {
            // `BytesMessage` has one field, `data = 1`.
            let data = match message
                .map_err(|status| status.message().to_string())
                .and_then(|m| split_field(m, 1).map_err(|e| e.to_string()))
            {
                Ok((_, data)) => data,
                Err(error) => {
                    tracing::debug!("the session's call ended: {error}");
                    break;
                }
            };
            if to_server.send(data).await.is_err() {
                break;
            }
        }
    });
    Ok(inbound.abort_handle())
}
