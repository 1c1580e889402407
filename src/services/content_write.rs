//! The content service's `Write`, decoded without tonic's decoder.
//!
//! A cache export sends every layer through `Write`, a megabyte per
//! message in 16 KiB DATA frames; tonic's decoder copies each frame into
//! its decode buffer, growing it by reallocations, before prost copies the
//! data out again. Here the messages are cut from the frames as they came
//! (gRPC's 5-byte header, then protobuf), and the `data` field is kept as
//! slices of the received frames, which [`ContentService::write_chunks`]
//! writes to the file as they are. The responses are small and encoded with
//! prost; the status goes in the trailers as for `Read`.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes};
use futures::Stream;
use http_body::Frame;
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::content::{BoxStream, ContentService, WriteChunk};
use super::content_read::trailers;
use crate::proto::containerd::services::content::v1 as pb;
use crate::session::frame::{split_field, Messages};

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
    let mut response = http::Response::new(Body::new(WriteBody { responses, done: false }));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    Ok(response)
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
        let chunk = split_field(message, DATA_FIELD).and_then(|(rest, data)| {
            let request = pb::WriteContentRequest::decode(&rest[..]).map_err(|error| error.to_string())?;
            Ok(WriteChunk { request, data: data.into_chunks().into() })
        });
        Poll::Ready(Some(chunk.map_err(|reason| Status::internal(format!("invalid WriteContentRequest: {reason}")))))
    }
}

/// The response body: each response framed, the call's status in trailers.
struct WriteBody {
    responses: BoxStream<pb::WriteContentResponse>,
    done: bool,
}

impl http_body::Body for WriteBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let status = match ready!(self.responses.as_mut().poll_next(cx)) {
            Some(Ok(response)) => {
                let len = response.encoded_len();
                let mut frame = Vec::with_capacity(5 + len);
                frame.put_u8(0);
                frame.put_u32(len as u32);
                response.encode(&mut frame).expect("the buffer has room for the message");
                return Poll::Ready(Some(Ok(Frame::data(frame.into()))));
            }
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.done = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(status)))))
    }
}
