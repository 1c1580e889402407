//! The content service's `Write`, decoded without tonic's decoder.
//!
//! A cache export sends every layer through `Write`, a megabyte per
//! message in 16 KiB DATA frames; tonic's decoder copies each frame into
//! its decode buffer, growing it by reallocations, before prost copies the
//! data out again. Here the messages are cut from the frames as they came
//! (gRPC's 5-byte header, then protobuf), and the `data` field is kept as
//! slices of the received frames, which [`ContentService::write_chunks`]
//! writes to the file as they are. The responses are small and encoded with
//! prost, and sent as `Read`'s are ([`FramedResponses`]).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::Stream;
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::content::{ContentService, WriteChunk};
use super::content_read::FramedResponses;
use crate::proto::containerd::services::content::v1 as pb;
use crate::session::frame::{self, split_field, Messages};

/// `WriteContentRequest.data`'s field number.
const DATA_FIELD: u32 = 6;

/// Runs `Write` on the request's hand-decoded messages.
pub(super) async fn write(
    service: ContentService,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    let (parts, body) = request.into_parts();
    let messages = WriteRequests(Messages::new(body));
    let request = tonic::Request::from_parts(MetadataMap::from_headers(parts.headers), parts.extensions, messages);
    let responses = service.write_chunks(request).await?.into_inner();
    // The responses are a few fields each: framed whole.
    Ok(FramedResponses::response(responses, |response| (frame::whole(&response), None)))
}

/// The request body as `WriteContentRequest`s, `data` left as slices of the
/// received frames.
struct WriteRequests(Messages);

impl Stream for WriteRequests {
    type Item = Result<WriteChunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let message = match ready!(self.0.poll_message(cx)) {
            Some(Ok(message)) => message,
            Some(Err(status)) => return Poll::Ready(Some(Err(status))),
            None => return Poll::Ready(None),
        };
        let chunk = split_field(message, DATA_FIELD).map_err(|error| error.to_string()).and_then(|(rest, data)| {
            let request = pb::WriteContentRequest::decode(&rest[..]).map_err(|error| error.to_string())?;
            Ok(WriteChunk { request, data: data.into_chunks().into() })
        });
        Poll::Ready(Some(chunk.map_err(|reason| Status::internal(format!("invalid WriteContentRequest: {reason}")))))
    }
}
