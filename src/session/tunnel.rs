//! The byte pipe under the session: `Control.Session`'s message stream on one
//! side, an in-memory duplex that tonic's server treats as a socket on the
//! other. Two pump tasks copy bytes each way; neither looks inside them.

use super::{SessionError, SessionHeaders};
use crate::control::Control;
use crate::proto::moby::buildkit::v1::BytesMessage;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;

/// Bytes buffered in the in-memory pipe, each way. Large enough that a
/// transfer's HTTP/2 frames don't queue behind each other, small enough to
/// keep memory flat.
pub(crate) const PIPE_BUFFER: usize = 4 << 20;

/// Largest chunk put into one `BytesMessage`.
const CHUNK: usize = 1 << 20;

/// Creates the pipe: the returned half is for the gRPC server, the other half
/// for [`connect`].
pub(crate) fn pipe() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(PIPE_BUFFER)
}

/// The two pump tasks of a session's pipe. Aborting them ends the
/// `Control.Session` call and closes the pipe under the server's connection,
/// which then ends too. (tonic runs the connection in a task of its own, so
/// stopping the server's task alone left all of these running: eight tasks
/// and about 300 KB per build, for good.)
pub(crate) struct Pumps(Vec<tokio::task::AbortHandle>);

impl Pumps {
    pub(crate) fn abort(&self) {
        for pump in &self.0 {
            pump.abort();
        }
    }
}

/// Opens `Control.Session` with the session's headers and pumps bytes between
/// the call and `ours` until either side closes or the pumps are aborted.
pub(crate) async fn connect(
    control: &Control,
    headers: &SessionHeaders,
    ours: DuplexStream,
) -> Result<Pumps, SessionError> {
    let (mut from_server, mut to_server) = tokio::io::split(ours);
    let (outbound_tx, outbound_rx) = mpsc::channel::<BytesMessage>(16);

    // Server → daemon. Started before the call so the server's HTTP/2
    // preface is already queued when the daemon starts talking.
    let outbound = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match from_server.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // Take what else the server has already written, without
                    // waiting: one message for many small HTTP/2 frames
                    // means fewer messages and wake-ups on the way out.
                    while buf.len() < CHUNK {
                        buf.reserve(CHUNK - buf.len());
                        match futures::FutureExt::now_or_never(from_server.read_buf(&mut buf)) {
                            Some(Ok(n)) if n > 0 => {}
                            _ => break,
                        }
                    }
                    let data = buf.split().freeze();
                    if outbound_tx.send(BytesMessage { data }).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender ends the request stream: the daemon sees EOF.
    });

    let outbound = Pumps(vec![outbound.abort_handle()]);
    let mut request = tonic::Request::new(ReceiverStream::new(outbound_rx));
    let metadata = request.metadata_mut();
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

    let mut inbound = match control.session(request).await {
        Ok(inbound) => inbound,
        Err(error) => {
            outbound.abort();
            return Err(SessionError::Open(error));
        }
    };

    // Daemon → server.
    let inbound = tokio::spawn(async move {
        while let Ok(Some(message)) = inbound.message().await {
            if to_server.write_all(&message.data).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    });
    let mut pumps = outbound;
    pumps.0.push(inbound.abort_handle());
    Ok(pumps)
}
