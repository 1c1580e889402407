//! The session's `moby.filesync.v1.FileSend` service: the daemon hands each
//! file or folder output back to us through `FileSend/DiffCopy`, one call per
//! output.
//!
//! Which output a call carries comes in the request metadata
//! `buildkit-attachable-exporter-id`: the output's index in
//! `SolveRequest.exporters` (the daemon resolves exporter `i` with id `i`,
//! `control/control.go`). As in Go's `filesync.SyncTarget`, a missing or
//! unreadable id means 0.
//!
//! One method, two wire formats: tar, oci and docker exporters stream
//! `BytesMessage` chunks of the file; the local exporter speaks fsutil's
//! packet protocol (`fsutil.types.Packet`) on the same method. Go picks the
//! message type per call; so does this hand-written service (a generated
//! server is bound to the schema's `BytesMessage` and would fail to decode
//! packets): it looks at the exporter id before choosing the codec.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::TaskTracker;
use tonic::body::Body;
use tonic::codegen::Body as HttpBody;
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::sink::Sink;
use super::{ExportEntry, OutputDest};
use crate::error::error_chain;
use crate::proto::fsutil::types::Packet;
use crate::proto::moby::filesync::v1::BytesMessage;

/// The gRPC service name.
pub const SERVICE_NAME: &str = "moby.filesync.v1.FileSend";
const DIFF_COPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";
/// Request metadata naming the output a call carries.
pub const EXPORTER_ID_KEY: &str = "buildkit-attachable-exporter-id";

/// Receives the outputs of one build.
#[derive(Clone, Debug)]
pub struct FileSendService {
    targets: Arc<BTreeMap<usize, OutputDest>>,
    /// The folder receivers still running (each cleans up its staging
    /// folder when it ends, on a thread of its own).
    receivers: TaskTracker,
    /// Why receivers failed: the daemon only learns that the stream broke
    /// (it reports `EOF`), so the build reports these instead.
    failures: Arc<std::sync::Mutex<Vec<OutputFailure>>>,
}

/// A folder output that could not be written, and why.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot write the output into {}: {reason}", .dest.display())]
pub struct OutputFailure {
    pub dest: PathBuf,
    pub reason: String,
}

/// The folder outputs of a build that may still be writing or cleaning up.
/// A build waits for them before it returns, cancelled or not: otherwise a
/// program that exits right after (the CLI on Ctrl-C) kills a receiver
/// before it removes its staging folder.
#[derive(Clone, Debug, Default)]
pub struct PendingOutputs(TaskTracker, Arc<std::sync::Mutex<Vec<OutputFailure>>>);

impl PendingOutputs {
    /// Waits until every receiver started so far has ended (new calls are
    /// still accepted; they are waited for if they start before the end).
    pub async fn wait(&self) {
        self.0.close();
        self.0.wait().await;
    }

    /// The first receiver failure, once they have ended.
    pub fn failure(&self) -> Option<OutputFailure> {
        self.1.lock().expect("not poisoned").first().cloned()
    }
}

impl FileSendService {
    /// A service for `exports`, which must be the list sent as
    /// `SolveRequest.exporters`, in the same order.
    pub fn new(exports: &[ExportEntry]) -> FileSendService {
        let targets = exports
            .iter()
            .enumerate()
            .filter_map(|(id, export)| export.destination.clone().map(|dest| (id, dest)))
            .collect();
        FileSendService { targets: Arc::new(targets), receivers: TaskTracker::new(), failures: Arc::default() }
    }

    /// What to wait for before the build is over.
    pub fn pending(&self) -> PendingOutputs {
        PendingOutputs(self.receivers.clone(), self.failures.clone())
    }

    /// Whether no output comes back to us (then the service need not be
    /// registered at all).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The full gRPC method names this service serves.
    pub fn methods() -> &'static [&'static str] {
        &[DIFF_COPY]
    }

    async fn diff_copy<B>(self, request: http::Request<B>) -> http::Response<Body>
    where
        B: HttpBody + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        let id = exporter_id(request.headers());
        match self.targets.get(&id).cloned() {
            Some(OutputDest::Dir(dir)) => {
                let receivers = self.receivers.clone();
                let failures = self.failures.clone();
                let service = tower::service_fn(move |call: Request<Streaming<Packet>>| {
                    let dir = dir.clone();
                    let receivers = receivers.clone();
                    let failures = failures.clone();
                    async move { Ok::<_, Status>(Response::new(receive_dir(dir, call.into_inner(), &receivers, failures))) }
                });
                grpc::<Packet>().streaming(service, request).await
            }
            Some(OutputDest::File(path)) => serve_file(request, Some(path)).await,
            Some(OutputDest::Stdout) => serve_file(request, None).await,
            // A layout folder is written through the content store.
            Some(OutputDest::Layout(_)) | None => {
                let status = Status::not_found(format!("exporter {id} not found: no output of this build comes back"));
                status.into_http()
            }
        }
    }
}

/// Serves one tar/oci/docker output call: into the file at `path`, or to
/// stdout when `None`.
async fn serve_file<B>(request: http::Request<B>, path: Option<PathBuf>) -> http::Response<Body>
where
    B: HttpBody + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    let reset = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| WatchedBody { inner: Box::pin(body), reset: Arc::clone(&reset) });
    let service = tower::service_fn(move |call: Request<Streaming<BytesMessage>>| {
        let path = path.clone();
        let reset = Arc::clone(&reset);
        async move {
            receive_file(path, call.into_inner(), &reset).await?;
            Ok::<_, Status>(Response::new(tokio_stream::empty::<Result<BytesMessage, Status>>()))
        }
    });
    grpc::<BytesMessage>().streaming(service, request).await
}

/// The codec for one call, with the session's message limits.
fn grpc<M>() -> Grpc<ProstCodec<M, M>>
where
    M: prost::Message + Default + Send + 'static,
{
    let limit = Some(crate::session::MAX_MESSAGE_SIZE);
    Grpc::new(ProstCodec::default()).apply_max_message_size_config(limit, limit)
}

fn exporter_id(headers: &http::HeaderMap) -> usize {
    headers.get(EXPORTER_ID_KEY).and_then(|value| value.to_str().ok()).and_then(|id| id.parse().ok()).unwrap_or(0)
}

/// Receives a tar/oci/docker output (`None`: to stdout). Errors drop the sink, which removes
/// the partial file.
///
/// The daemon ends a complete output by closing its side of the stream; a
/// cancelled export resets the stream instead. tonic's server reports a
/// reset request stream as a clean end, so `reset` (set by [`WatchedBody`])
/// tells the two apart: a reset output is never committed.
async fn receive_file(
    path: Option<PathBuf>,
    mut inbound: Streaming<BytesMessage>,
    reset: &AtomicBool,
) -> Result<(), Status> {
    let mut sink = match &path {
        None => Sink::Stdout(tokio::io::stdout()),
        Some(path) => Sink::for_path(path).await.map_err(|err| internal(&err))?,
    };
    let mut received: u64 = 0;
    while let Some(message) = inbound.message().await? {
        received += message.data.len() as u64;
        sink.write(&message.data).await.map_err(|err| internal(&err))?;
    }
    if reset.load(Ordering::SeqCst) {
        return Err(Status::cancelled(format!("the daemon cancelled the output after {received} bytes")));
    }
    sink.commit().await.map_err(|err| internal(&err))?;
    tracing::debug!(?path, bytes = received, "received a file output");
    Ok(())
}

/// Receives a local (folder) output over fsutil's packet protocol with
/// `crate::fsync`'s receiver, which stages the tree and moves it into `dir`
/// only once complete. Returns the packets we send back (requests for file
/// data, our FIN), ending with an error status if the transfer failed (the
/// receiver has then told the sender why in an ERR packet too).
fn receive_dir(
    dir: PathBuf,
    inbound: Streaming<Packet>,
    receivers: &TaskTracker,
    failures: Arc<std::sync::Mutex<Vec<OutputFailure>>>,
) -> PacketStream {
    let (tx, rx) = mpsc::channel(64);
    let (done_tx, done_rx) = oneshot::channel();
    receivers.spawn(async move {
        let result = crate::fsync::receive::receive_diffcopy(inbound, tx, &dir).await;
        match &result {
            Ok(stats) => tracing::debug!(dir = %dir.display(), ?stats, "received a folder output"),
            Err(err) => {
                tracing::debug!(dir = %dir.display(), error = %err, "receiving a folder output failed");
                let failure = OutputFailure { dest: dir.clone(), reason: error_chain(err) };
                failures.lock().expect("not poisoned").push(failure);
            }
        }
        let _ = done_tx.send(result.map(|_| ()));
    });
    let outcome = futures::stream::once(done_rx).filter_map(|done| async move {
        match done {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(Err(internal(&err))),
            Err(_) => Some(Err(Status::internal("the folder receiver stopped unexpectedly"))),
        }
    });
    Box::pin(ReceiverStream::new(rx).map(Ok).chain(outcome))
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send + 'static>>;

/// A request body that remembers whether it ended in an error (a reset
/// stream) rather than a clean end of stream.
struct WatchedBody<B> {
    inner: Pin<Box<B>>,
    reset: Arc<AtomicBool>,
}

impl<B: HttpBody> HttpBody for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            this.reset.store(true, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A status carrying the whole error chain: the daemon shows it to the user.
fn internal(err: &dyn std::error::Error) -> Status {
    Status::internal(error_chain(err))
}

impl NamedService for FileSendService {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for FileSendService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() == DIFF_COPY {
                Ok(service.diff_copy(request).await)
            } else {
                Ok(Status::unimplemented(format!("{} is not served", request.uri().path())).into_http())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::transport::Channel;

    use super::*;
    use crate::output::parse_output;
    use crate::proto::moby::filesync::v1::file_send_client::FileSendClient;

    async fn channel(exports: &[ExportEntry]) -> Channel {
        crate::services::serve_in_memory(FileSendService::new(exports)).await
    }

    fn export(spec: &str) -> ExportEntry {
        parse_output(spec).unwrap()
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Sends `chunks` as the daemon's tar exporter does, naming output `id`.
    async fn send_file(channel: Channel, id: Option<&str>, chunks: Vec<&'static [u8]>) -> Result<(), Status> {
        let messages = tokio_stream::iter(chunks.into_iter().map(|c| BytesMessage { data: c.into() }));
        let mut request = Request::new(messages);
        if let Some(id) = id {
            request.metadata_mut().insert(EXPORTER_ID_KEY, id.parse().unwrap());
        }
        let mut replies = FileSendClient::new(channel).diff_copy(request).await?.into_inner();
        while replies.message().await?.is_some() {}
        Ok(())
    }

    #[tokio::test]
    async fn file_outputs_land_by_exporter_id() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.tar");
        let second = dir.path().join("second.tar");
        let exports = [
            export("type=image,name=r/a"),
            export(&format!("type=tar,dest={}", first.display())),
            export(&format!("type=oci,dest={}", second.display())),
        ];
        let channel = channel(&exports).await;
        send_file(channel.clone(), Some("2"), vec![b"oci ", b"layout"]).await.unwrap();
        send_file(channel.clone(), Some("1"), vec![b"tar bytes"]).await.unwrap();
        assert_eq!(std::fs::read(&first).unwrap(), b"tar bytes");
        assert_eq!(std::fs::read(&second).unwrap(), b"oci layout");
        assert_eq!(names(dir.path()), ["first.tar", "second.tar"]);

        // No id means 0, the image, which sends nothing back.
        let err = send_file(channel, None, vec![b"x"]).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("exporter 0 not found"), "{}", err.message());
    }

    #[tokio::test]
    async fn interrupted_transfer_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        std::fs::write(&dest, b"previous").unwrap();
        let channel = channel(&[export(&format!("type=tar,dest={}", dest.display()))]).await;

        // One chunk, then the daemon goes silent and cancels the call
        // (its stream is reset, never ended cleanly: an ended stream is a
        // complete output).
        let (tx, rx) = mpsc::channel::<BytesMessage>(1);
        tx.send(BytesMessage { data: vec![1u8; 1 << 20].into() }).await.unwrap();
        let call = tokio::spawn(async move {
            let mut request = Request::new(ReceiverStream::new(rx));
            request.metadata_mut().insert(EXPORTER_ID_KEY, "0".parse().unwrap());
            FileSendClient::new(channel).diff_copy(request).await
        });
        // Abort once the service has taken the chunk (the queue has room
        // again): waited for, not guessed, so a slow machine cannot abort
        // before anything was received. (Polled with tokio's sleep: this
        // runtime's one thread runs the service too.)
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tx.capacity() == 0 {
            assert!(std::time::Instant::now() < deadline, "the service never took the chunk");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        call.abort();
        // The staging file is unnamed where the kernel allows (O_TMPFILE),
        // so its removal cannot be watched: give the service time to end.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(std::fs::read(&dest).unwrap() == b"previous", "the old output is untouched");
        assert_eq!(names(dir.path()), ["out.tar"]);
        drop(tx);
    }

    #[tokio::test]
    async fn file_output_refuses_a_link_at_dest() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let dest = dir.path().join("out.tar");
        let channel = channel(&[export(&format!("type=tar,dest={}", dest.display()))]).await;
        std::os::unix::fs::symlink(&target, &dest).unwrap();
        let err = send_file(channel, Some("0"), vec![b"payload"]).await.unwrap_err();
        assert!(err.message().contains("symbolic link"), "{}", err.message());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(names(dir.path()), ["out.tar", "target"]);
    }

    #[tokio::test]
    async fn folder_outputs_are_received_as_fsutil_packets() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/hello.txt"), b"hello").unwrap();
        std::fs::write(src.path().join("top"), b"top file").unwrap();
        std::os::unix::fs::symlink("sub/hello.txt", src.path().join("link")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("result");
        let channel =
            channel(&[export("type=image,name=r/a"), export(&format!("type=local,dest={}", dest.display()))]).await;

        // The daemon's side: fsync's sender over the Packet codec.
        let (tx, rx) = mpsc::channel::<Packet>(64);
        let mut request = Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert(EXPORTER_ID_KEY, "1".parse().unwrap());
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(DIFF_COPY);
        let mut replies =
            grpc.streaming(request, path, ProstCodec::<Packet, Packet>::default()).await.unwrap().into_inner();
        // Like Go's client, keep reading the call to its end after the
        // sender is done (dropping it early would reset the stream).
        let (reply_tx, reply_rx) = mpsc::channel(64);
        let call = tokio::spawn(async move {
            while let Some(packet) = replies.message().await? {
                let _ = reply_tx.send(Ok(packet)).await;
            }
            Ok::<_, Status>(())
        });
        let walker = crate::fsync::walk::Walker::new(src.path(), &Default::default()).unwrap();
        crate::fsync::send::send_diffcopy(walker, ReceiverStream::new(reply_rx), tx, Default::default()).await.unwrap();
        call.await.unwrap().expect("the call ends with OK once the output is in place");

        assert_eq!(std::fs::read(dest.join("sub/hello.txt")).unwrap(), b"hello");
        assert_eq!(std::fs::read(dest.join("top")).unwrap(), b"top file");
        assert_eq!(std::fs::read_link(dest.join("link")).unwrap(), std::path::Path::new("sub/hello.txt"));
        assert_eq!(names(out.path()), ["result"], "no staging folder left");
    }
}
