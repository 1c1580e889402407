//! The session's `moby.upload.v1.Upload` service: bytes the daemon pulls
//! by URL, as buildx's `uploadprovider` serves a context tarball read from
//! stdin. The build names the upload in its `context` attribute as
//! `http://buildkit-session/ID`; the daemon's HTTP source then calls `Pull`
//! with the URL's path in the `urlpath` metadata, and receives the bytes in
//! chunks. Each upload is served once, as in Go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::moby::upload::v1::upload_server::{Upload, UploadServer};
use crate::proto::moby::upload::v1::BytesMessage;

/// How an upload is named in a frontend attribute; the id follows.
pub const URL_PREFIX: &str = "http://buildkit-session/";

/// The largest message sent (Go's provider uses the same).
const CHUNK: usize = 3 << 20;

/// Serves the uploads of one build.
#[derive(Clone, Debug)]
pub struct UploadService {
    uploads: Arc<Mutex<BTreeMap<String, Bytes>>>,
}

impl UploadService {
    /// A service for `uploads`, by id.
    pub fn new(uploads: BTreeMap<String, Bytes>) -> UploadService {
        UploadService { uploads: Arc::new(Mutex::new(uploads)) }
    }

    /// The tonic server, with the session's message limits.
    pub fn into_server(self) -> UploadServer<UploadService> {
        UploadServer::new(self)
            .max_decoding_message_size(crate::session::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::session::MAX_MESSAGE_SIZE)
    }
}

#[tonic::async_trait]
impl Upload for UploadService {
    type PullStream = futures::stream::Iter<std::vec::IntoIter<Result<BytesMessage, Status>>>;

    async fn pull(&self, request: Request<Streaming<BytesMessage>>) -> Result<Response<Self::PullStream>, Status> {
        let path = request.metadata().get("urlpath").and_then(|v| v.to_str().ok()).unwrap_or_default();
        // Go takes path.Base of the URL's path.
        let id = path.rsplit('/').next().unwrap_or_default().to_owned();
        let bytes = self
            .uploads
            .lock()
            .map_err(|_| Status::internal("the upload table is poisoned"))?
            .remove(&id)
            .ok_or_else(|| Status::not_found(format!("no upload {id:?} in this session")))?;
        tracing::debug!(id, bytes = bytes.len(), "serving an upload");
        let chunks: Vec<Result<BytesMessage, Status>> =
            bytes.chunks(CHUNK).map(|chunk| Ok(BytesMessage { data: bytes.slice_ref(chunk) })).collect();
        Ok(Response::new(futures::stream::iter(chunks)))
    }
}
