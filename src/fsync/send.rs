//! The DiffCopy sender: serves a local folder to the daemon over a stream
//! of fsutil `Packet`s, and the `FileSync` session service built on it.
//!
//! The exchange (the daemon is the receiver):
//! 1. we stream one `STAT` per entry of the walk, then an empty `STAT`;
//! 2. the daemon numbers the STATs in arrival order and sends `REQ{id}` for
//!    the regular files it needs (those whose metadata changed since the
//!    last upload under the same shared key);
//! 3. we answer each with `DATA{id}` chunks and an empty `DATA{id}`;
//! 4. the daemon sends `FIN`, we answer `FIN` and end the stream.
//!
//! As in fsutil, requests are served while STATs are still streaming, by
//! four concurrent readers. A request may only name a regular file of this
//! walk, each at most once; anything else ends the transfer with an error,
//! so the daemon can never make us read outside the folder.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::walk::{file_mode, DirCache, FilterOptions, WalkError, Walker};
use crate::proto::fsutil::types::packet::PacketType;
use crate::proto::fsutil::types::{Packet, Stat};
use crate::proto::moby::filesync::v1::file_sync_server::{FileSync, FileSyncServer};
use crate::session::MAX_MESSAGE_SIZE;

/// Bytes of file content per `DATA` packet.
///
/// Measured with `cargo test --release --lib chunk_size_benchmark --
/// --ignored --nocapture`: a 207 MB folder (100 x 1 MiB, 1000 x 64 KiB,
/// 9000 x 4 KiB files) served by [`FileSyncService`] through tonic over an
/// in-memory HTTP/2 connection into our receiver on tmpfs, 2-core machine
/// under load from other builds, medians of 3 and 5 alternating rounds:
///
/// | chunk   | run 1  | run 2  |
/// |---------|--------|--------|
/// | 32 KiB  | 524 ms | 554 ms |
/// | 64 KiB  | 503 ms | 521 ms |
/// | 128 KiB | 506 ms | 597 ms |
/// | 256 KiB | 515 ms | 596 ms |
/// | 512 KiB | 565 ms | 567 ms |
/// | 1 MiB   | 676 ms | 769 ms |
///
/// 64 KiB was fastest in both runs; larger messages lose because HTTP/2's
/// default 64 KiB flow-control windows make them wait for window updates.
/// All sizes are far below the 16 MiB message limit.
pub(crate) const CHUNK_SIZE: usize = 64 * 1024;

/// Concurrent file readers per transfer, as in fsutil.
const READERS: usize = 4;

/// Outgoing packets buffered before the sender waits for the transport.
const OUT_QUEUE: usize = 64;

/// STAT records the walk may run ahead of the network.
const STAT_QUEUE: usize = 1024;

/// Errors that end a DiffCopy transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The folder could not be opened or walked.
    #[error("failed to walk the local folder")]
    Walk(#[source] WalkError),
    /// The receiver asked for an id that is not an unserved regular file.
    #[error("the receiver asked for invalid file id {0}")]
    InvalidFileId(u32),
    /// A requested file could not be read.
    #[error("failed to read {path}")]
    ReadFile {
        /// The file, relative to the folder.
        path: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The receiver sent an error packet.
    #[error("error from receiver: {0}")]
    Receiver(String),
    /// The receiver's stream ended before `FIN`.
    #[error("the receiver closed the stream before the transfer finished")]
    ReceiverClosed,
    /// The receiver's stream failed.
    #[error("receiving from the receiver failed")]
    Stream(#[source] Status),
    /// Nobody reads our packets any more (the call was cancelled).
    #[error("the receiver stopped reading")]
    OutputClosed,
    /// The walk or a reader task died without reporting.
    #[error("a transfer task stopped unexpectedly")]
    TaskFailed,
}

/// Counts what the sender has sent, for progress reports. Shared by all
/// transfers of a [`FileSyncService`].
#[derive(Debug, Default)]
pub struct TransferProgress {
    bytes: AtomicU64,
    files: AtomicU64,
}

impl TransferProgress {
    /// Bytes sent so far: encoded STAT and DATA packets, as BuildKit counts
    /// its "transferring context" progress.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Files whose content was sent so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    fn add_packet(&self, packet: &Packet) {
        self.bytes.fetch_add(packet.encoded_len() as u64, Ordering::Relaxed);
    }
}

/// The `moby.filesync.v1.FileSync` session service: serves the named
/// local folders (`context`, `dockerfile`, named contexts).
#[derive(Debug, Clone)]
pub struct FileSyncService {
    dirs: Arc<Dirs>,
    progress: Arc<TransferProgress>,
    chunk_size: usize,
}

impl FileSyncService {
    /// A service serving the folders `dirs`, keyed by the `dir-name` the
    /// daemon asks for.
    pub fn new(dirs: BTreeMap<String, PathBuf>) -> Self {
        Self { dirs: Arc::new(Dirs::Named(dirs)), progress: Arc::default(), chunk_size: CHUNK_SIZE }
    }

    /// A service for a session of one folder's own, which serves it under
    /// whatever local name a build gives it (builds that share the session
    /// name it differently: `context`, `dockerfile`, a named context).
    pub fn for_folder(folder: PathBuf) -> Self {
        Self { dirs: Arc::new(Dirs::Any(folder)), progress: Arc::default(), chunk_size: CHUNK_SIZE }
    }

    /// Overrides the DATA chunk size (for measurements).
    #[cfg(test)]
    pub(crate) fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// The byte counter shared by all transfers of this service.
    pub fn progress(&self) -> Arc<TransferProgress> {
        Arc::clone(&self.progress)
    }

    /// The tonic server, with BuildKit's message limits.
    pub fn into_server(self) -> FileSyncServer<Self> {
        FileSyncServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// The folders a service serves: by local name, or one folder whatever the
/// name.
#[derive(Debug)]
enum Dirs {
    Named(BTreeMap<String, PathBuf>),
    Any(PathBuf),
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(&self, request: Request<Streaming<Packet>>) -> Result<Response<Self::DiffCopyStream>, Status> {
        let (dir_name, filter) = request_options(request.metadata());
        let dir = match self.dirs.as_ref() {
            Dirs::Named(dirs) => dirs.get(&dir_name),
            Dirs::Any(folder) => Some(folder),
        };
        let Some(dir) = dir else {
            return Err(Status::not_found(format!("no access allowed to dir {dir_name:?}")));
        };
        let path = dir.clone();
        let walker = tokio::task::spawn_blocking(move || Walker::new(&path, &filter))
            .await
            .map_err(|_| Status::internal("preparing the walk failed"))?
            .map_err(|e| Status::invalid_argument(crate::error::error_chain(&e)))?;

        let incoming = request.into_inner();
        let (tx, mut rx) = mpsc::channel(OUT_QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let progress = Arc::clone(&self.progress);
        let chunk_size = self.chunk_size;
        tokio::spawn(async move {
            let result = run_sender(walker, incoming, tx, progress, chunk_size).await;
            if let Err(err) = &result {
                tracing::debug!(dir = %dir_name, error = %crate::error::error_chain(err), "DiffCopy failed");
            }
            let _ = done_tx.send(result);
        });
        let stream = async_stream::stream! {
            while let Some(packet) = rx.recv().await {
                yield Ok(packet);
            }
            if let Ok(Err(err)) = done_rx.await {
                yield Err(Status::unknown(crate::error::error_chain(&err)));
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        // buildkitd only uses DiffCopy; fsutil's client never negotiates
        // the tar protocol.
        Err(Status::unimplemented("TarStream is not supported; use DiffCopy"))
    }
}

/// Reads `dir-name`, `include-patterns`, `exclude-patterns` and
/// `followpaths` from the call's metadata (each possibly repeated, and
/// URL-escaped when `<key>-encoded` is true).
pub(crate) fn request_options(md: &MetadataMap) -> (String, FilterOptions) {
    let values = |key: &str| -> Vec<String> {
        let raw: Vec<String> =
            md.get_all(key).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        let encoded = md
            .get(format!("{key}-encoded"))
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| crate::gostrconv::parse_bool(v) == Some(true));
        if !encoded {
            return raw;
        }
        // Go keeps an empty string for a value that fails to decode.
        raw.iter().map(|v| query_unescape(v).unwrap_or_default()).collect()
    };
    let dir_name = values("dir-name").into_iter().next().unwrap_or_default();
    let filter = FilterOptions {
        include_patterns: values("include-patterns"),
        exclude_patterns: values("exclude-patterns"),
        follow_paths: values("followpaths"),
    };
    (dir_name, filter)
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a malformed
/// escape is an error (`None`).
fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

enum WalkMsg {
    Entry(Stat),
    Done,
    Failed(WalkError),
}

/// Runs the sender side of one DiffCopy exchange: walks `walker`'s folder,
/// streams its STATs into `out` and serves the requests arriving on
/// `incoming`, until the receiver's `FIN` (answered with `FIN`).
#[cfg(test)]
pub(crate) async fn send_diffcopy<S>(
    walker: Walker,
    incoming: S,
    out: mpsc::Sender<Packet>,
    progress: Arc<TransferProgress>,
) -> Result<(), SendError>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send,
{
    run_sender(walker, incoming, out, progress, CHUNK_SIZE).await
}

async fn run_sender<S>(
    walker: Walker,
    mut incoming: S,
    out: mpsc::Sender<Packet>,
    progress: Arc<TransferProgress>,
    chunk_size: usize,
) -> Result<(), SendError>
where
    S: Stream<Item = Result<Packet, Status>> + Unpin + Send,
{
    let walker = Arc::new(walker);
    let (stat_tx, mut stat_rx) = mpsc::channel(STAT_QUEUE);
    {
        let walker = Arc::clone(&walker);
        tokio::task::spawn_blocking(move || {
            let result = walker.walk(&mut |stat| match stat_tx.blocking_send(WalkMsg::Entry(stat)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            });
            let _ = stat_tx.blocking_send(match result {
                Ok(()) => WalkMsg::Done,
                Err(err) => WalkMsg::Failed(err),
            });
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut files: HashMap<u32, (bytes::Bytes, u64)> = HashMap::new();
    let mut next_id: u32 = 0;
    let mut walking = true;

    // A few long-lived readers take requests from one queue. (A blocking
    // task per file costs a thread hand-off per file: with 20,000 small files
    // that was most of the client's CPU time.)
    let (request_tx, request_rx) = std::sync::mpsc::channel::<(u32, bytes::Bytes, u64)>();
    let request_rx = Arc::new(std::sync::Mutex::new(request_rx));
    let mut request_tx = Some(request_tx);
    let mut readers: JoinSet<Result<(), SendError>> = JoinSet::new();
    for _ in 0..READERS {
        let reader = FileReader {
            walker: Arc::clone(&walker),
            out: out.clone(),
            progress: Arc::clone(&progress),
            stop: Arc::clone(&stop),
            chunk_size,
        };
        let requests = Arc::clone(&request_rx);
        readers.spawn_blocking(move || {
            let mut dirs = DirCache::default();
            loop {
                // The lock is held only while waiting for the next request.
                let next = requests.lock().map_err(|_| SendError::TaskFailed)?.recv();
                match next {
                    Ok((id, path, size)) => reader.send_file(id, &path, size, &mut dirs)?,
                    Err(_) => return Ok(()), // the queue is closed: the transfer is over
                }
            }
        });
    }

    let mut dirs = DirCache::default();
    let result = loop {
        tokio::select! {
            msg = stat_rx.recv(), if walking => match msg {
                Some(WalkMsg::Entry(stat)) => {
                    if file_mode::can_request_data(stat.mode) {
                        files.insert(next_id, (stat.path.clone(), stat.size.max(0) as u64));
                    }
                    next_id = next_id.wrapping_add(1);
                    let packet = Packet {
                        r#type: PacketType::PacketStat as i32,
                        stat: Some(stat),
                        ..Packet::default()
                    };
                    progress.add_packet(&packet);
                    if out.send(packet).await.is_err() {
                        break Err(SendError::OutputClosed);
                    }
                }
                Some(WalkMsg::Done) => {
                    walking = false;
                    let end = Packet { r#type: PacketType::PacketStat as i32, ..Packet::default() };
                    if out.send(end).await.is_err() {
                        break Err(SendError::OutputClosed);
                    }
                }
                Some(WalkMsg::Failed(err)) => {
                    // Tell the receiver why, as fsutil does, then fail.
                    let packet = Packet {
                        r#type: PacketType::PacketErr as i32,
                        data: crate::error::error_chain(&err).into_bytes().into(),
                        ..Packet::default()
                    };
                    let _ = out.send(packet).await;
                    break Err(SendError::Walk(err));
                }
                None => break Err(SendError::TaskFailed),
            },
            packet = incoming.next() => match packet {
                None => break Err(SendError::ReceiverClosed),
                Some(Err(status)) => break Err(SendError::Stream(status)),
                Some(Ok(packet)) => match PacketType::try_from(packet.r#type) {
                    Ok(PacketType::PacketReq) => match files.remove(&packet.id) {
                        // A file of at most one chunk is read right here: a
                        // page-cached read of a few KiB costs less than
                        // handing the file to a reader thread and its packets
                        // back (two thread wake-ups per file).
                        Some((path, size)) if size <= chunk_size as u64 => {
                            let sent = send_small_file(walker.root(), packet.id, &path, size, &mut dirs, &out, &progress).await;
                            if let Err(err) = sent {
                                break Err(err);
                            }
                        }
                        Some((path, size)) => {
                            let queue = request_tx.as_ref().ok_or(SendError::TaskFailed);
                            if queue.and_then(|q| q.send((packet.id, path, size)).map_err(|_| SendError::TaskFailed)).is_err() {
                                // Every reader has stopped: its error comes from the join below.
                                request_tx = None;
                            }
                        }
                        None => break Err(SendError::InvalidFileId(packet.id)),
                    },
                    Ok(PacketType::PacketFin) => {
                        // The receiver has everything it asked for: close the
                        // queue, let the readers drain, then confirm.
                        request_tx = None;
                        let mut failed = None;
                        while let Some(joined) = readers.join_next().await {
                            if let Err(err) = joined.unwrap_or(Err(SendError::TaskFailed)) {
                                failed.get_or_insert(err);
                            }
                        }
                        if let Some(err) = failed {
                            break Err(err);
                        }
                        let fin = Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() };
                        break out.send(fin).await.map_err(|_| SendError::OutputClosed);
                    }
                    Ok(PacketType::PacketErr) => {
                        break Err(SendError::Receiver(
                            String::from_utf8_lossy(&packet.data).into_owned(),
                        ));
                    }
                    // fsutil's sender ignores anything else.
                    _ => {}
                },
            },
            Some(joined) = readers.join_next(), if !readers.is_empty() => {
                // Readers only end early on an error (or a panic).
                match joined.unwrap_or(Err(SendError::TaskFailed)) {
                    Err(err) => break Err(err),
                    Ok(()) => break Err(SendError::TaskFailed),
                }
            }
        }
    };
    drop(request_tx);
    // Stop readers still running (they check between chunks); the walk
    // stops when its channel closes.
    stop.store(true, Ordering::Relaxed);
    result
}

/// Reads one requested file into DATA packets (runs on a blocking thread).
struct FileReader {
    walker: Arc<Walker>,
    out: mpsc::Sender<Packet>,
    progress: Arc<TransferProgress>,
    stop: Arc<AtomicBool>,
    chunk_size: usize,
}

/// Sends a file of at most one chunk: its DATA packet (none when empty), then
/// the empty DATA that ends it.
async fn send_small_file(
    root: &super::walk::Root,
    id: u32,
    path: &[u8],
    size: u64,
    dirs: &mut DirCache,
    out: &mpsc::Sender<Packet>,
    progress: &TransferProgress,
) -> Result<(), SendError> {
    let read_err = |source| SendError::ReadFile { path: String::from_utf8_lossy(path).into_owned(), source };
    let data = match root.open_file_cached(path, dirs) {
        Ok(mut file) => {
            let mut buf = vec![0u8; size as usize];
            let n = read_full(&mut file, &mut buf).map_err(read_err)?;
            buf.truncate(n); // the file may have shrunk since the walk
            buf
        }
        // A socket is walked as an empty regular file and cannot be opened.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Vec::new(),
        Err(e) => return Err(read_err(e)),
    };
    let mut packets = Vec::with_capacity(2);
    if !data.is_empty() {
        packets.push(Packet { r#type: PacketType::PacketData as i32, id, data: data.into(), ..Packet::default() });
    }
    packets.push(Packet { r#type: PacketType::PacketData as i32, id, ..Packet::default() });
    for packet in packets {
        progress.add_packet(&packet);
        out.send(packet).await.map_err(|_| SendError::OutputClosed)?;
    }
    progress.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

impl FileReader {
    /// Sends the file's content as DATA packets, then an empty DATA. Reads
    /// at most the size its STAT announced: the receiver was promised that
    /// much, and knowing it saves a read per file to find the end.
    fn send_file(&self, id: u32, path: &[u8], size: u64, dirs: &mut DirCache) -> Result<(), SendError> {
        let read_err = |source| SendError::ReadFile { path: String::from_utf8_lossy(path).into_owned(), source };
        match self.walker.root().open_file_cached(path, dirs) {
            Ok(mut file) => {
                let mut remaining = size;
                while remaining > 0 {
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let mut buf = vec![0u8; remaining.min(self.chunk_size as u64) as usize];
                    let n = read_full(&mut file, &mut buf).map_err(read_err)?;
                    if n == 0 {
                        break; // the file shrank since the walk
                    }
                    buf.truncate(n);
                    remaining -= n as u64;
                    let packet =
                        Packet { r#type: PacketType::PacketData as i32, id, data: buf.into(), ..Packet::default() };
                    self.progress.add_packet(&packet);
                    self.out.blocking_send(packet).map_err(|_| SendError::OutputClosed)?;
                }
            }
            // A socket is walked as an empty regular file (fsutil clears its
            // type bit) and cannot be opened; fsutil sends it empty.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => return Err(read_err(e)),
        }
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        let eof = Packet { r#type: PacketType::PacketData as i32, id, ..Packet::default() };
        self.out.blocking_send(eof).map_err(|_| SendError::OutputClosed)
    }
}

/// Fills `buf` as far as the file allows; returns the bytes read (less than
/// `buf.len()` only at end of file).
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsync::receive::receive_diffcopy;
    use crate::fsync::test_support::{serve_in_memory, write};
    use crate::proto::moby::filesync::v1::file_sync_client::FileSyncClient;
    use std::path::Path;
    use std::time::{Duration, Instant};
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::metadata::MetadataValue;
    use tonic::transport::Server;

    /// Plays the daemon: calls DiffCopy with `metadata` and receives into
    /// `dest` with our receiver.
    async fn pull(
        service: FileSyncService,
        metadata: &[(&'static str, &str)],
        dest: &Path,
    ) -> Result<crate::fsync::receive::ReceiveStats, String> {
        let channel = serve_in_memory(Server::builder().add_service(service.into_server())).await;
        let mut client = FileSyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let (tx, rx) = mpsc::channel(16);
        let mut request = Request::new(ReceiverStream::new(rx));
        for (key, value) in metadata {
            let value: MetadataValue<_> = value.parse().expect("ascii metadata");
            request.metadata_mut().append(*key, value);
        }
        let response = client.diff_copy(request).await.map_err(|s| s.message().to_owned())?;
        receive_diffcopy(response.into_inner(), tx, dest).await.map_err(|e| crate::error::error_chain(&e))
    }

    fn service_for(root: &Path) -> FileSyncService {
        let mut dirs = BTreeMap::new();
        dirs.insert("context".to_owned(), root.to_owned());
        FileSyncService::new(dirs)
    }

    #[tokio::test]
    async fn diff_copy_over_grpc_honours_the_request_metadata() {
        let src = tempfile::tempdir().expect("tempdir");
        for rel in ["keep.txt", "debug.log", "skip/x", "node_modules/a/b", "node_modules/keep/k", "ünï.txt"] {
            write(src.path(), rel, rel.as_bytes());
        }
        let out = tempfile::tempdir().expect("tempdir");
        let dest = out.path().join("dest");
        let service = service_for(src.path());
        let progress = service.progress();
        let stats = pull(
            service,
            &[
                ("dir-name", "context"),
                // Repeated values, URL-escaped because one is not ASCII.
                ("exclude-patterns", "skip"),
                ("exclude-patterns", "%2A.log"),
                ("exclude-patterns", "node_modules"),
                ("exclude-patterns", "%21node_modules%2Fkeep"),
                ("exclude-patterns", "%C3%BCn%C3%AF.txt"),
                ("exclude-patterns-encoded", "1"),
            ],
            &dest,
        )
        .await
        .expect("transfer succeeds");
        let mut got: Vec<String> = walkdir::WalkDir::new(&dest)
            .min_depth(1)
            .into_iter()
            .map(|e| e.expect("entry").path().strip_prefix(&dest).expect("below").display().to_string())
            .collect();
        got.sort();
        assert_eq!(got, ["keep.txt", "node_modules", "node_modules/keep", "node_modules/keep/k"]);
        assert_eq!(fs_err::read(dest.join("node_modules/keep/k")).expect("read"), b"node_modules/keep/k");
        assert_eq!(stats.files, 2);
        assert!(progress.bytes() > 0);
        assert_eq!(progress.files(), 2);
    }

    #[tokio::test]
    async fn unknown_dir_names_are_not_found() {
        let src = tempfile::tempdir().expect("tempdir");
        let out = tempfile::tempdir().expect("tempdir");
        let err = pull(service_for(src.path()), &[("dir-name", "secret")], &out.path().join("d"))
            .await
            .expect_err("must fail");
        assert_eq!(err, "no access allowed to dir \"secret\"");
        let err =
            pull(service_for(src.path()), &[("dir-name", "context"), ("exclude-patterns", "!")], &out.path().join("d"))
                .await
                .expect_err("must fail");
        assert_eq!(err, "invalid exclude patterns: illegal exclusion pattern: \"!\"");
    }

    /// Plays the receiver's side of one exchange by hand: starts the sender
    /// on `root` and reads its STATs up to the empty one that ends the
    /// listing, so that requests sent afterwards meet a sender that knows
    /// every id. (A request sent before the listing met an empty table and
    /// was refused whatever the protections did.)
    async fn listed_sender(
        root: &Path,
    ) -> (mpsc::Sender<Packet>, mpsc::Receiver<Packet>, tokio::task::JoinHandle<Result<(), SendError>>, Vec<String>)
    {
        let walker = Walker::new(root, &FilterOptions::default()).expect("walker");
        let (to_sender, from_receiver) = mpsc::channel(4);
        let (to_receiver, mut from_sender) = mpsc::channel(16);
        let sender = tokio::spawn(send_diffcopy(
            walker,
            ReceiverStream::new(from_receiver).map(Ok),
            to_receiver,
            Arc::default(),
        ));
        let mut listed = Vec::new();
        loop {
            let packet = tokio::time::timeout(Duration::from_secs(5), from_sender.recv())
                .await
                .expect("the listing arrives")
                .expect("the sender is running");
            assert_eq!(packet.r#type, PacketType::PacketStat as i32);
            match packet.stat {
                Some(stat) => listed.push(String::from_utf8_lossy(&stat.path).into_owned()),
                None => break,
            }
        }
        (to_sender, from_sender, sender, listed)
    }

    fn request(id: u32) -> Packet {
        Packet { r#type: PacketType::PacketReq as i32, id, ..Packet::default() }
    }

    /// The sender's result, or a failure instead of a hang when it goes on
    /// serving.
    async fn ended(sender: tokio::task::JoinHandle<Result<(), SendError>>) -> Result<(), SendError> {
        tokio::time::timeout(Duration::from_secs(5), sender)
            .await
            .expect("the sender stops at the bad request")
            .expect("task")
    }

    #[tokio::test]
    async fn requests_for_non_files_are_refused() {
        let src = tempfile::tempdir().expect("tempdir");
        write(src.path(), "d/f", b"x");
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("l")).expect("symlink");
        std::fs::create_dir(src.path().join("e")).expect("mkdir");
        for bad_id in [0u32, 2, 3, 4, 99] {
            let (to_sender, mut from_sender, sender, listed) = listed_sender(src.path()).await;
            // ids: 0 = d, 1 = d/f, 2 = e, 3 = l; 4 and 99 do not exist.
            assert_eq!(listed, ["d", "d/f", "e", "l"]);
            to_sender.send(request(bad_id)).await.expect("send");
            let result = ended(sender).await;
            assert!(matches!(result, Err(SendError::InvalidFileId(id)) if id == bad_id), "{bad_id}: {result:?}");
            // No DATA was produced for it.
            while let Ok(p) = from_sender.try_recv() {
                assert_ne!(p.r#type, PacketType::PacketData as i32, "{bad_id}: {p:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_file_is_served_once() {
        let src = tempfile::tempdir().expect("tempdir");
        write(src.path(), "f", b"x");
        let (to_sender, mut from_sender, sender, listed) = listed_sender(src.path()).await;
        assert_eq!(listed, ["f"]);
        // The first request is served: DATA "x", then the empty DATA.
        to_sender.send(request(0)).await.expect("send");
        let mut data = Vec::new();
        loop {
            let packet = tokio::time::timeout(Duration::from_secs(5), from_sender.recv())
                .await
                .expect("the file is served")
                .expect("the sender is running");
            assert_eq!((packet.r#type, packet.id), (PacketType::PacketData as i32, 0));
            if packet.data.is_empty() {
                break;
            }
            data.extend_from_slice(&packet.data);
        }
        assert_eq!(data, b"x");
        // The second is refused: a daemon cannot make us read a file twice.
        to_sender.send(request(0)).await.expect("send");
        assert!(matches!(ended(sender).await, Err(SendError::InvalidFileId(0))));
        assert!(from_sender.try_recv().is_err(), "nothing more was sent");
    }

    #[test]
    fn metadata_values_are_decoded_like_buildkit() {
        let mut md = MetadataMap::new();
        md.append("dir-name", "dockerfile".parse().expect("value"));
        md.append("dir-name", "ignored".parse().expect("value"));
        md.append("include-patterns", "a+b%2Fc".parse().expect("value"));
        md.append("include-patterns", "bad%zz".parse().expect("value"));
        md.append("include-patterns-encoded", "true".parse().expect("value"));
        md.append("followpaths", "a+b".parse().expect("value"));
        let (dir, filter) = request_options(&md);
        assert_eq!(dir, "dockerfile");
        assert_eq!(filter.include_patterns, ["a b/c", ""]);
        assert_eq!(filter.follow_paths, ["a+b"], "not decoded without the -encoded flag");
        assert!(filter.exclude_patterns.is_empty());
        assert_eq!(query_unescape("%41%"), None);
        assert_eq!(query_unescape("%e2%98%ba"), Some("☺".to_owned()));
    }

    /// Picks the DATA chunk size: run with
    /// `cargo test --release --lib chunk_size_benchmark -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark, takes a minute"]
    #[allow(clippy::print_stderr)] // the measurements are the output
    async fn chunk_size_benchmark() {
        let base = if Path::new("/dev/shm").is_dir() { Path::new("/dev/shm") } else { Path::new("/tmp") };
        let src = tempfile::tempdir_in(base).expect("tempdir");
        let mut total = 0;
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut content = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        for (count, size) in [(100, 1 << 20), (1000, 64 << 10), (9000, 4 << 10)] {
            for i in 0..count {
                write(src.path(), &format!("s{size}/{}/{i}", i % 50), &content(size));
                total += size;
            }
        }
        eprintln!("context: {} MB", total / 1_000_000);
        let sizes = [32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];
        let mut times: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
        for round in 0..5 {
            for &size in &sizes {
                let out = tempfile::tempdir_in(base).expect("tempdir");
                let start = Instant::now();
                pull(service_for(src.path()).with_chunk_size(size), &[("dir-name", "context")], &out.path().join("d"))
                    .await
                    .expect("transfer");
                let took = start.elapsed();
                eprintln!("round {round} chunk {:>4} KiB: {took:.2?}", size >> 10);
                times.entry(size).or_default().push(took);
            }
        }
        for (size, mut t) in times {
            t.sort();
            eprintln!("chunk {:>4} KiB: median {:.2?}", size >> 10, t[t.len() / 2]);
        }
    }
}
