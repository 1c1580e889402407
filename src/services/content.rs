//! containerd's content service on the session: how the daemon reads and
//! writes blobs of a client-side store (a local cache folder, an OCI layout
//! output or context).
//!
//! Each request names its store in the `buildkit-attachable-store-id`
//! metadata (`local:<dir>` for a local cache, as `session/content` in
//! BuildKit reads it). Only the stores the build registered exist: any other
//! id gets NotFound, so the daemon never chooses a path. Digests are checked
//! to be `sha256:<hex>` before they name a file. A store registered for
//! reading refuses writes; a written blob lands only once its digest checks
//! ([`crate::cache::layout::BlobWriter`]), and a stream that ends without a
//! commit leaves nothing behind.

use std::collections::BTreeMap;
use std::io::{IoSlice, Write};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::content_read::ContentRoutes;
use crate::cache::layout::{BlobDigest, BlobWriter, CommitError, LayoutError, OciLayout};
use crate::proto::containerd::services::content::v1 as pb;
use crate::proto::containerd::services::content::v1::content_server::{Content, ContentServer};

/// The metadata key that selects a store (BuildKit's `GRPCHeaderID`).
pub const STORE_ID_HEADER: &str = "buildkit-attachable-store-id";
/// Reads and writes up to this size are done on the runtime's thread, not
/// handed to a blocking one (see `read` and `ingest`).
const INLINE_IO: u64 = 4 << 20;
/// The largest piece of a blob sent in one message.
const READ_CHUNK: usize = 1 << 20;

/// A store the daemon may use, and whether it may write to it.
#[derive(Debug, Clone)]
pub struct ContentStore {
    pub layout: OciLayout,
    pub writable: bool,
}

/// The session's content service over the build's registered stores.
#[derive(Debug, Clone, Default)]
pub struct ContentService {
    stores: Arc<BTreeMap<String, ContentStore>>,
}

impl ContentService {
    /// A service for `stores`, keyed by store id.
    pub fn new(stores: BTreeMap<String, ContentStore>) -> ContentService {
        ContentService { stores: Arc::new(stores) }
    }

    /// The server, with the session's message limits (`Read` is served by
    /// [`ContentRoutes`] itself).
    pub fn into_server(self) -> ContentRoutes {
        let server = ContentServer::new(self.clone())
            .max_decoding_message_size(crate::session::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::session::MAX_MESSAGE_SIZE);
        ContentRoutes::new(self, server)
    }

    fn store<T>(&self, request: &Request<T>) -> Result<&ContentStore, Status> {
        let id = request
            .metadata()
            .get(STORE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::invalid_argument(format!("request lacks metadata {STORE_ID_HEADER:?}")))?;
        self.stores.get(id).ok_or_else(|| {
            tracing::warn!(store = id, "the daemon asked for a content store this build did not register");
            Status::not_found(format!("unknown store {id}"))
        })
    }
}

/// A `WriteContentRequest` with its data apart, in the pieces it arrived in
/// ([`super::content_write`] keeps them as slices of the received frames).
#[derive(Debug)]
pub(super) struct WriteChunk {
    /// The message, its `data` empty.
    pub request: pb::WriteContentRequest,
    pub data: Vec<Bytes>,
}

impl From<pb::WriteContentRequest> for WriteChunk {
    fn from(mut request: pb::WriteContentRequest) -> WriteChunk {
        let data = vec![std::mem::take(&mut request.data)];
        WriteChunk { request, data }
    }
}

impl ContentService {
    /// `Write`, whichever decoder produced the messages.
    ///
    /// One ingestion per stream, as containerd's content server runs it:
    /// the first message names it (and may announce the size and digest,
    /// which answers AlreadyExists when the blob is there), `WRITE`s append
    /// at the current offset (offset 0 starts again), `COMMIT` checks and
    /// stores the blob and ends the stream.
    pub(super) async fn write_chunks<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<BoxStream<pb::WriteContentResponse>>, Status>
    where
        S: Stream<Item = Result<WriteChunk, Status>> + Send + Unpin + 'static,
    {
        let store = self.store(&request)?.clone();
        if !store.writable {
            return Err(Status::permission_denied("this content store is read-only"));
        }
        let mut incoming = request.into_inner();
        let first = incoming.next().await.transpose()?.ok_or_else(|| Status::invalid_argument("empty write stream"))?;
        if first.request.r#ref.is_empty() {
            return Err(Status::invalid_argument("first message must have a reference"));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let result = ingest(&store.layout, first, &mut incoming, &tx).await;
            if let Err(status) = result {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

fn digest(value: &str) -> Result<BlobDigest, Status> {
    BlobDigest::parse(value).map_err(|error| Status::invalid_argument(error.to_string()))
}

fn status(error: LayoutError) -> Status {
    match error {
        LayoutError::MissingBlob { digest, .. } => Status::not_found(format!("content digest {digest}: not found")),
        other => Status::internal(crate::error::error_chain(&other)),
    }
}

fn info(layout: &OciLayout, digest: &BlobDigest) -> Result<pb::Info, Status> {
    let Some(blob) = layout.blob_info(digest).map_err(status)? else {
        return Err(Status::not_found(format!("content digest {digest}: not found")));
    };
    let time = Some(prost_types::Timestamp::from(blob.modified));
    Ok(pb::Info {
        digest: digest.to_string(),
        size: blob.size as i64,
        created_at: time,
        updated_at: time,
        labels: Default::default(),
    })
}

/// An I/O error without the temporary file's name that `tempfile` adds:
/// the user knows the folder, not our staging names.
fn plain(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => error.kind().to_string(),
    }
}

/// Reads `len` bytes at `offset` into a fresh buffer, with preads straight
/// into its spare capacity: zeroing the buffer first (what safe reads need)
/// cost about as much CPU as the read itself on a large import, and
/// `read_to_end` probes with small reads first (seven syscalls a MiB).
fn read_exact_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut data = Vec::<u8>::with_capacity(len);
    while data.len() < len {
        let spare = data.spare_capacity_mut();
        let at = offset + (len - spare.len()) as u64;
        // SAFETY: `spare` is writable memory of `spare.len()` bytes that
        // `data` owns; pread writes at most that many.
        let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at as libc::off_t) };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            // SAFETY: pread initialised the first `n` spare bytes.
            n => unsafe { data.set_len(data.len() + n as usize) },
        }
    }
    Ok(data)
}

/// A failed read of blob `digest` (`len` bytes when opened), as the daemon
/// is told: a blob cut short on disk is lost data, anything else internal.
fn read_status(error: &std::io::Error, digest: &BlobDigest, len: u64) -> Status {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => Status::data_loss(format!("blob {digest} is shorter than {len} bytes")),
        _ => Status::internal(plain(error)),
    }
}

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Content for ContentService {
    async fn info(&self, request: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        let store = self.store(&request)?;
        let digest = digest(&request.get_ref().digest)?;
        Ok(Response::new(pb::InfoResponse { info: Some(info(&store.layout, &digest)?) }))
    }

    /// Labels are not kept (a plain OCI layout has nowhere to keep them, as
    /// with containerd's local store without a label store): the blob's
    /// info comes back unchanged.
    async fn update(&self, request: Request<pb::UpdateRequest>) -> Result<Response<pb::UpdateResponse>, Status> {
        let store = self.store(&request)?;
        let wanted = request.get_ref().info.as_ref().map(|i| i.digest.as_str()).unwrap_or_default();
        let digest = digest(wanted)?;
        Ok(Response::new(pb::UpdateResponse { info: Some(info(&store.layout, &digest)?) }))
    }

    type ListStream = BoxStream<pb::ListContentResponse>;

    async fn list(&self, request: Request<pb::ListContentRequest>) -> Result<Response<Self::ListStream>, Status> {
        let store = self.store(&request)?;
        let blobs = store.layout.blobs().map_err(status)?;
        let infos: Vec<pb::Info> = blobs.keys().filter_map(|d| info(&store.layout, d).ok()).collect();
        let response = pb::ListContentResponse { info: infos };
        Ok(Response::new(Box::pin(futures::stream::once(async { Ok(response) }))))
    }

    /// Nothing the daemon does through a session deletes content; a store
    /// of the user's is not the daemon's to shrink.
    async fn delete(&self, request: Request<pb::DeleteContentRequest>) -> Result<Response<()>, Status> {
        self.store(&request)?;
        Err(Status::permission_denied("this content store does not delete blobs"))
    }

    type ReadStream = BoxStream<pb::ReadContentResponse>;

    async fn read(&self, request: Request<pb::ReadContentRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let store = self.store(&request)?;
        let message = request.get_ref();
        let digest = digest(&message.digest)?;
        let file = store.layout.open_blob(&digest).map_err(status)?;
        let len = file.metadata().map_err(|e| Status::internal(e.to_string()))?.len();
        let start = message.offset.max(0) as u64;
        if start > len {
            return Err(Status::out_of_range(format!("offset {start} is past the blob's end ({len} bytes)")));
        }
        let end = if message.size > 0 { (start + message.size as u64).min(len) } else { len };
        // The daemon reads a blob 1 MiB at a time, each read waiting for the
        // last: a piece that small is read here and now (page cache speed),
        // without a thread hop and a queue in every round trip.
        let whole = start == 0 && end == len;
        if end - start <= INLINE_IO && !whole {
            let data = read_exact_at(&file, start, (end - start) as usize)
                .map_err(|error| read_status(&error, &digest, len))?;
            let response = pb::ReadContentResponse { offset: start as i64, data: data.into() };
            return Ok(Response::new(Box::pin(futures::stream::once(async { Ok(response) }))));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::ReadContentResponse, Status>>(4);
        // A whole read is checked against its digest: a blob changed on disk
        // fails the daemon's read instead of entering its cache.
        let check = (start == 0 && end == len).then(sha2::Sha256::default);
        tokio::task::spawn_blocking(move || {
            use sha2::Digest as _;
            let mut check = check;
            let mut offset = start;
            while offset < end {
                let want = READ_CHUNK.min((end - offset) as usize);
                let data = match read_exact_at(&file, offset, want) {
                    Ok(data) => data,
                    Err(error) => {
                        let _ = tx.blocking_send(Err(read_status(&error, &digest, len)));
                        return;
                    }
                };
                if let Some(hasher) = check.as_mut() {
                    hasher.update(&data);
                    if offset + data.len() as u64 == end {
                        let actual = format!("sha256:{}", hex::encode(check.take().expect("checked").finalize()));
                        if actual != digest.as_str() {
                            let message = format!("blob {digest} is corrupt: its content hashes to {actual}");
                            let _ = tx.blocking_send(Err(Status::data_loss(message)));
                            return;
                        }
                    }
                }
                let response = pb::ReadContentResponse { offset: offset as i64, data: data.into() };
                offset += response.data.len() as u64;
                if tx.blocking_send(Ok(response)).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    /// Ingestions live only as long as their write stream, so there is
    /// never one to report.
    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        self.store(&request)?;
        Err(Status::not_found(format!("no ingestion {:?}", request.get_ref().r#ref)))
    }

    async fn list_statuses(
        &self,
        request: Request<pb::ListStatusesRequest>,
    ) -> Result<Response<pb::ListStatusesResponse>, Status> {
        self.store(&request)?;
        Ok(Response::new(pb::ListStatusesResponse { statuses: Vec::new() }))
    }

    type WriteStream = BoxStream<pb::WriteContentResponse>;

    /// One ingestion per stream, as containerd's content server runs it:
    /// the first message names it (and may announce the size and digest,
    /// which answers AlreadyExists when the blob is there), `WRITE`s append
    /// at the current offset (offset 0 starts again), `COMMIT` checks and
    /// stores the blob and ends the stream.
    async fn write(
        &self,
        request: Request<Streaming<pb::WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        self.write_chunks(request.map(|messages| messages.map(|message| message.map(WriteChunk::from)))).await
    }

    async fn abort(&self, request: Request<pb::AbortRequest>) -> Result<Response<()>, Status> {
        self.store(&request)?;
        // The ingestion of a stream that ended without COMMIT is already gone.
        Ok(Response::new(()))
    }
}

/// The most disk a write reserves up front from the `total` the daemon
/// announces: a daemon that announces more than it sends holds no more than
/// this much of the disk for as long as the write lasts. Larger blobs are
/// reserved this far and allocated as written beyond it.
const PREALLOCATE_MAX: u64 = 512 << 20;

/// Writes `pieces` in order with as few syscalls as the kernel allows (the
/// pieces of a large message are its 16 KiB DATA frames).
fn write_pieces(writer: &mut BlobWriter, pieces: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|piece| IoSlice::new(piece)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match writer.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Runs one write stream to its commit (or its end, which drops the
/// temporary file).
async fn ingest(
    layout: &OciLayout,
    first: WriteChunk,
    incoming: &mut (impl Stream<Item = Result<WriteChunk, Status>> + Unpin),
    tx: &tokio::sync::mpsc::Sender<Result<pb::WriteContentResponse, Status>>,
) -> Result<(), Status> {
    let started = prost_types::Timestamp::from(std::time::SystemTime::now());
    let mut expected: Option<BlobDigest> = None;
    let mut total = 0i64;
    let mut writer: Option<BlobWriter> = Some(layout.writer().map_err(status)?);
    let WriteChunk { mut request, mut data } = first;
    loop {
        if !request.expected.is_empty() {
            let wanted = digest(&request.expected)?;
            if layout.blob_size(&wanted).map_err(status)?.is_some() {
                return Err(Status::already_exists(format!("blob with expected digest {wanted} exists")));
            }
            expected = Some(wanted);
        }
        let mut current = writer.take().expect("the writer is put back after each message");
        if request.total > 0 {
            if total == 0 && current.written() == 0 {
                current.preallocate((request.total as u64).min(PREALLOCATE_MAX));
            }
            total = request.total;
        }
        let action = pb::WriteAction::try_from(request.action)
            .map_err(|_| Status::invalid_argument(format!("unknown write action {}", request.action)))?;
        let mut response = pb::WriteContentResponse {
            action: request.action,
            started_at: Some(started),
            updated_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            offset: current.written() as i64,
            total,
            digest: String::new(),
        };
        match action {
            pb::WriteAction::Stat => {
                response.digest = current.digest().to_string();
                writer = Some(current);
            }
            pb::WriteAction::Write | pb::WriteAction::Commit => {
                if request.offset > 0 && request.offset as u64 != current.written() {
                    return Err(Status::out_of_range(format!(
                        "write @{} must occur at current offset {}",
                        request.offset,
                        current.written()
                    )));
                }
                let data = std::mem::take(&mut data);
                let restart = request.offset == 0 && current.written() > 0;
                let len: usize = data.iter().map(Bytes::len).sum();
                let write = move || -> std::io::Result<BlobWriter> {
                    if restart {
                        current.restart()?;
                    }
                    write_pieces(&mut current, &data)?;
                    Ok(current)
                };
                // The daemon writes a blob a MiB per message, each waiting
                // for its answer: a message that small goes to the page cache
                // here and now, without a thread hop in every round trip (as
                // `read` answers small reads). Anything larger is written off
                // the runtime's threads.
                let written = if len <= INLINE_IO as usize {
                    write()
                } else {
                    tokio::task::spawn_blocking(write).await.map_err(|error| Status::internal(error.to_string()))?
                };
                current = written.map_err(|error| {
                    Status::internal(format!("cannot write a blob into {}: {}", layout.dir().display(), plain(&error)))
                })?;
                response.offset = current.written() as i64;
                if action == pb::WriteAction::Commit {
                    let size = (total > 0).then_some(total as u64);
                    let wanted = expected.clone();
                    let stored = tokio::task::spawn_blocking(move || current.commit(wanted.as_ref(), size))
                        .await
                        .map_err(|error| Status::internal(error.to_string()))?
                        .map_err(|error| match error {
                            CommitError::Io(error) => Status::internal(format!(
                                "cannot store a blob in {}: {}",
                                layout.dir().display(),
                                plain(&error)
                            )),
                            CommitError::Folder(error) => Status::internal(crate::error::error_chain(&*error)),
                            other => Status::failed_precondition(format!("commit failed: {other}")),
                        })?;
                    response.digest = stored.to_string();
                    let _ = tx.send(Ok(response)).await;
                    return Ok(());
                }
                response.digest = current.digest().to_string();
                writer = Some(current);
            }
        }
        if tx.send(Ok(response)).await.is_err() {
            return Ok(());
        }
        WriteChunk { request, data } = match incoming.next().await.transpose()? {
            Some(next) => next,
            None => return Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::containerd::services::content::v1::content_client::ContentClient;

    fn with_store<T>(message: T, id: &str) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(STORE_ID_HEADER, id.parse().unwrap());
        request
    }

    async fn client(dir: &std::path::Path, writable: bool) -> ContentClient<tonic::transport::Channel> {
        let layout = OciLayout::create(dir).unwrap();
        let stores = BTreeMap::from([("local:cache".to_string(), ContentStore { layout, writable })]);
        ContentClient::new(crate::services::serve_in_memory(ContentService::new(stores).into_server()).await)
    }

    fn write(action: pb::WriteAction, data: &[u8], expected: &str, total: i64) -> pb::WriteContentRequest {
        pb::WriteContentRequest {
            action: action as i32,
            r#ref: "layer-1".into(),
            total,
            expected: expected.into(),
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_daemon_writes_and_reads_back_a_blob_as_containerd_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = client(dir.path(), true).await;
        let expected = BlobDigest::of(b"hello world");
        let messages = vec![
            write(pb::WriteAction::Stat, b"", expected.as_str(), 11),
            write(pb::WriteAction::Write, b"hello ", "", 0),
            pb::WriteContentRequest { offset: 6, ..write(pb::WriteAction::Commit, b"world", expected.as_str(), 11) },
        ];
        let mut responses =
            client.write(with_store(futures::stream::iter(messages), "local:cache")).await.unwrap().into_inner();
        let mut last = None;
        while let Some(response) = responses.message().await.unwrap() {
            last = Some(response);
        }
        let last = last.unwrap();
        assert_eq!((last.offset, last.digest.as_str()), (11, expected.as_str()));

        let info = client
            .info(with_store(pb::InfoRequest { digest: expected.to_string() }, "local:cache"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.info.unwrap().size, 11);
        let request = pb::ReadContentRequest { digest: expected.to_string(), offset: 6, size: 0 };
        let mut read = client.read(with_store(request, "local:cache")).await.unwrap().into_inner();
        let chunk = read.message().await.unwrap().unwrap();
        assert_eq!((chunk.offset, &chunk.data[..]), (6, &b"world"[..]));

        // A blob changed on disk fails a whole read.
        std::fs::write(OciLayout::create(dir.path()).unwrap().blob_path(&expected), b"hello w0rld").unwrap();
        let request = pb::ReadContentRequest { digest: expected.to_string(), offset: 0, size: 0 };
        let mut read = client.read(with_store(request, "local:cache")).await.unwrap().into_inner();
        assert_eq!(read.message().await.unwrap_err().code(), tonic::Code::DataLoss);

        // Announcing a blob that is there answers AlreadyExists, which the
        // daemon takes as done.
        let again = vec![write(pb::WriteAction::Stat, b"", expected.as_str(), 11)];
        let mut responses =
            client.write(with_store(futures::stream::iter(again), "local:cache")).await.unwrap().into_inner();
        assert_eq!(responses.message().await.unwrap_err().code(), tonic::Code::AlreadyExists);
    }

    #[tokio::test]
    async fn a_blob_that_does_not_hash_to_its_digest_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = client(dir.path(), true).await;
        let claimed = BlobDigest::of(b"the real thing");
        let messages = vec![write(pb::WriteAction::Commit, b"something else", claimed.as_str(), 0)];
        let mut responses =
            client.write(with_store(futures::stream::iter(messages), "local:cache")).await.unwrap().into_inner();
        let error = responses.message().await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error}");
        let layout = OciLayout::create(dir.path()).unwrap();
        assert!(layout.blobs().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join(".fbuild-ingest")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn unknown_stores_bad_digests_and_read_only_stores_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = client(dir.path(), false).await;
        let info = |digest: &str, id: &str| with_store(pb::InfoRequest { digest: digest.into() }, id);
        let good = BlobDigest::of(b"x").to_string();
        let code = |r: Result<Response<pb::InfoResponse>, Status>| r.unwrap_err().code();
        assert_eq!(code(client.info(info(&good, "local:/etc")).await), tonic::Code::NotFound);
        assert_eq!(
            code(client.info(info("sha256:../../../etc/passwd", "local:cache")).await),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(client.info(Request::new(pb::InfoRequest { digest: good.clone() })).await),
            tonic::Code::InvalidArgument
        );
        let messages = vec![write(pb::WriteAction::Commit, b"x", &good, 1)];
        let error = client.write(with_store(futures::stream::iter(messages), "local:cache")).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        let delete = with_store(pb::DeleteContentRequest { digest: good }, "local:cache");
        assert_eq!(client.delete(delete).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    }
}
