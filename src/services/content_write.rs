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

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use futures::Stream;
use http_body::{Body as _, Frame};
use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, WireType};
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::content::{BoxStream, ContentService, WriteChunk};
use super::content_read::trailers;
use crate::proto::containerd::services::content::v1 as pb;

/// `WriteContentRequest.data`'s field number.
const DATA_FIELD: u32 = 6;

/// Runs `Write` on the request's hand-decoded messages.
pub(super) async fn write(
    service: ContentService,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    let (parts, body) = request.into_parts();
    let messages = WriteRequests { body, buffered: Pieces::default(), pending: None };
    let request = tonic::Request::from_parts(MetadataMap::from_headers(parts.headers), parts.extensions, messages);
    let responses = service.write_chunks(request).await?.into_inner();
    let mut response = http::Response::new(Body::new(WriteBody { responses, done: false }));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    Ok(response)
}

/// Bytes received and not yet decoded, as the frames that brought them.
#[derive(Debug, Default)]
struct Pieces {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Pieces {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    /// The first `n` bytes (at most `remaining`), sharing the frames' memory.
    fn split_to(&mut self, n: usize) -> Pieces {
        let mut taken = Pieces::default();
        while taken.len < n {
            let Some(mut front) = self.chunks.pop_front() else { break };
            let want = n - taken.len;
            if front.len() > want {
                self.chunks.push_front(front.split_off(want));
            }
            self.len -= front.len();
            taken.push(front);
        }
        taken
    }
}

impl Buf for Pieces {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map(|c| &c[..]).unwrap_or_default()
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let front = self.chunks.front_mut().expect("advance past the end of the buffered bytes");
            let step = cnt.min(front.len());
            front.advance(step);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            self.len -= step;
            cnt -= step;
        }
    }
}

/// The request body as `WriteContentRequest`s.
struct WriteRequests {
    body: Body,
    buffered: Pieces,
    /// The length of the message whose gRPC header was read last.
    pending: Option<usize>,
}

impl Stream for WriteRequests {
    type Item = Result<WriteChunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.pending.is_none() && self.buffered.len >= 5 {
                if self.buffered.get_u8() != 0 {
                    // Nothing on the session offers grpc-encoding, so the
                    // daemon never compresses.
                    return Poll::Ready(Some(Err(Status::unimplemented("compressed messages are not accepted"))));
                }
                let len = self.buffered.get_u32() as usize;
                if len > crate::session::MAX_MESSAGE_SIZE {
                    let message = format!("a message of {len} bytes is over the limit");
                    return Poll::Ready(Some(Err(Status::resource_exhausted(message))));
                }
                self.pending = Some(len);
            }
            if let Some(len) = self.pending.filter(|&len| self.buffered.len >= len) {
                self.pending = None;
                let message = self.buffered.split_to(len);
                return Poll::Ready(Some(decode(message)));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffered.push(data);
                    }
                }
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None if self.buffered.len == 0 && self.pending.is_none() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Err(Status::internal("the request ended inside a message")))),
            }
        }
    }
}

/// One message: `data` as slices, every other field decoded by prost from
/// a copy (they are a few dozen bytes).
fn decode(mut message: Pieces) -> Result<WriteChunk, Status> {
    let invalid = |reason: &dyn std::fmt::Display| Status::internal(format!("invalid WriteContentRequest: {reason}"));
    let mut rest = Vec::new();
    let mut data = Pieces::default();
    while message.has_remaining() {
        let (field, wire_type) = decode_key(&mut message).map_err(|error| invalid(&error))?;
        encode_key(field, wire_type, &mut rest);
        let len = match wire_type {
            WireType::Varint => {
                encode_varint(decode_varint(&mut message).map_err(|error| invalid(&error))?, &mut rest);
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => decode_varint(&mut message).map_err(|error| invalid(&error))? as usize,
            WireType::StartGroup | WireType::EndGroup => return Err(invalid(&"groups are not used by this message")),
        };
        if len > message.remaining() {
            return Err(invalid(&"a field runs past the message's end"));
        }
        if field == DATA_FIELD && wire_type == WireType::LengthDelimited {
            rest.truncate(rest.len() - prost::encoding::key_len(field));
            // The last occurrence wins, as for any non-repeated field.
            data = message.split_to(len);
        } else {
            if wire_type == WireType::LengthDelimited {
                encode_varint(len as u64, &mut rest);
            }
            rest.put((&mut message).take(len));
        }
    }
    let request = pb::WriteContentRequest::decode(&rest[..]).map_err(|error| invalid(&error))?;
    Ok(WriteChunk { request, data: data.chunks.into() })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_cut_anywhere_decodes_as_prost_decodes_it() {
        let message = pb::WriteContentRequest {
            action: pb::WriteAction::Commit as i32,
            r#ref: "layer-1".into(),
            total: 70_000,
            expected: "sha256:abc".into(),
            offset: 300,
            data: (0..70_000).map(|i| i as u8).collect::<Vec<_>>().into(),
            labels: [("a".to_string(), "b".to_string())].into(),
        };
        let wire = Bytes::from(message.encode_to_vec());
        for cut in [1, 7, 16_384, 50_000] {
            let mut pieces = Pieces::default();
            for chunk in wire.chunks(cut) {
                pieces.push(wire.slice_ref(chunk));
            }
            let chunk = decode(pieces).unwrap();
            let data: Vec<u8> = chunk.data.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(data, message.data);
            assert_eq!(chunk.request, pb::WriteContentRequest { data: Bytes::new(), ..message.clone() });
        }
    }

    #[test]
    fn a_field_longer_than_its_message_is_refused() {
        let mut wire = Vec::new();
        encode_key(DATA_FIELD, WireType::LengthDelimited, &mut wire);
        encode_varint(10, &mut wire);
        wire.extend_from_slice(b"short");
        let mut pieces = Pieces::default();
        pieces.push(wire.into());
        assert_eq!(decode(pieces).unwrap_err().code(), tonic::Code::Internal);
    }
}
