//! Gathers the HTTP/2 connection's writes into fewer, larger socket writes.
//!
//! buildkitd's grpc-go accepts DATA frames of at most 16 KiB, and h2 writes
//! each frame with its own `writev` and flushes after each one. Sending a
//! large blob to the daemon (a cache import serves every layer through the
//! session) then costs one system call and one wakeup of the daemon's reader
//! per 16 KiB: on a 200 MB import that was a fifth of the client's CPU, more
//! than the copies it saves. [`Coalesce`] copies small writes into a buffer
//! and writes it out when it is full, or when the connection has nothing
//! more to send.
//!
//! "Nothing more to send" is told by h2's flushes: h2 flushes after every
//! frame, so a flush that follows new writes is only noted (and the task
//! woken, so that it will be polled again), and the buffer goes out at the
//! first flush with no write since the one before: when h2 has run out of
//! frames. A burst of frames costs one system call per [`BUFFER`] bytes and
//! one extra poll of the connection's task at its end.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The size of the write buffer: 16 frames of grpc-go's size.
const BUFFER: usize = 256 << 10;

/// A byte stream whose writes are gathered (see the module docs).
pub(crate) struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    sent: usize,
    /// Bytes were buffered since the last flush.
    wrote_since_flush: bool,
}

impl<S> Coalesce<S> {
    pub(crate) fn new(inner: S) -> Self {
        Coalesce { inner, buf: Vec::with_capacity(BUFFER), sent: 0, wrote_since_flush: false }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.len() + len > BUFFER {
            ready!(self.poll_drain(cx))?;
        }
        if len >= BUFFER {
            // Too big to gather: straight through.
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            self.buf.extend_from_slice(b);
        }
        self.wrote_since_flush = true;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if std::mem::take(&mut self.wrote_since_flush) {
            // More frames may follow in this same poll: wait for the next
            // flush, and make sure there is one.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_arrive_in_order_after_a_second_flush() {
        let (a, mut b) = tokio::io::duplex(4 << 20);
        let mut io = Coalesce::new(a);
        let big = vec![7u8; BUFFER + 10];
        io.write_all(b"head").await.unwrap();
        io.flush().await.unwrap();
        io.write_all(&big).await.unwrap();
        io.write_all(b"tail").await.unwrap();
        io.flush().await.unwrap();
        // Nothing written since: this flush sends the rest.
        io.flush().await.unwrap();
        let mut got = vec![0; 4 + big.len() + 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..4 + big.len()], &big[..]);
        assert_eq!(&got[4 + big.len()..], b"tail");
    }
}
