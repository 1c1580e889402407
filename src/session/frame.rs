//! gRPC messages that end in one large `bytes` field, framed and cut apart
//! by hand so their payload is never copied on the way. tonic's encoder
//! copies every message into its encode buffer, and its decoder copies every
//! DATA frame into a decode buffer (growing it by reallocation) before prost
//! copies the field out again; a session moves its bulk (cache blobs, the
//! tunnel itself) in exactly such messages: `BytesMessage`,
//! `ReadContentResponse`, `WriteContentRequest`.
//!
//! Protobuf fields may come in any order and a field's bytes are not looked
//! at by the framing, so an outgoing message is the other fields, then the
//! payload field's key and length, then the payload; an incoming one is cut
//! from the frames as they came ([`Messages`]) and its payload kept as
//! slices of them ([`Pieces`], [`split_field`]).

use std::collections::VecDeque;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Body as _;
use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use tonic::Status;

/// Payloads up to this size are copied behind their header: a copy that
/// small costs less than a DATA frame of its own.
const SMALL: usize = 1024;

/// One message as body pieces: the gRPC frame header (uncompressed, its
/// length), the encoded fields `head`, and `payload` as field number
/// `field`. The payload comes back as a second piece unless it is small.
pub(crate) fn message(head: &[u8], field: u32, payload: Bytes) -> (Bytes, Option<Bytes>) {
    let field_len = key_len(field) + encoded_len_varint(payload.len() as u64);
    let len = head.len() + field_len + payload.len();
    let inline = payload.len() <= SMALL;
    let mut header = BytesMut::with_capacity(5 + head.len() + field_len + if inline { payload.len() } else { 0 });
    header.put_u8(0);
    header.put_u32(len as u32);
    header.put_slice(head);
    encode_key(field, WireType::LengthDelimited, &mut header);
    encode_varint(payload.len() as u64, &mut header);
    if inline {
        header.put_slice(&payload);
        return (header.freeze(), None);
    }
    (header.freeze(), Some(payload))
}

/// One small message framed whole: the gRPC frame header, then its encoding.
pub(crate) fn whole(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + len);
    frame.put_u8(0);
    frame.put_u32(len as u32);
    message.encode(&mut frame).expect("the buffer has room for the message");
    frame.freeze()
}

/// Bytes received and not yet decoded, as the frames that brought them.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Pieces {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if !chunk.is_empty() {
            self.chunks.push_back(chunk);
        }
    }

    /// The first `n` bytes (at most all of them), sharing the frames' memory.
    pub(crate) fn split_to(&mut self, n: usize) -> Pieces {
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

    pub(crate) fn into_chunks(self) -> VecDeque<Bytes> {
        self.chunks
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

/// The gRPC messages of a request or response body, each cut from the
/// DATA frames that brought it without a copy.
pub(crate) struct Messages {
    body: tonic::body::Body,
    buffered: Pieces,
    /// The length of the message whose 5-byte header was read last.
    pending: Option<usize>,
}

impl Messages {
    pub(crate) fn new(body: tonic::body::Body) -> Messages {
        Messages { body, buffered: Pieces::default(), pending: None }
    }

    /// The next message's protobuf bytes; `None` at the body's end. The
    /// trailers are not read: the callers end on the messages they got.
    pub(crate) fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Pieces, Status>>> {
        loop {
            if self.pending.is_none() && self.buffered.len >= 5 {
                if self.buffered.get_u8() != 0 {
                    // Nothing on the session offers a grpc-encoding, so a
                    // peer never compresses.
                    return Poll::Ready(Some(Err(Status::unimplemented("compressed messages are not accepted"))));
                }
                let len = self.buffered.get_u32() as usize;
                if len > crate::control::MAX_MESSAGE_SIZE {
                    let message = format!("a message of {len} bytes is over the limit");
                    return Poll::Ready(Some(Err(Status::resource_exhausted(message))));
                }
                self.pending = Some(len);
            }
            if let Some(len) = self.pending.filter(|&len| self.buffered.len >= len) {
                self.pending = None;
                return Poll::Ready(Some(Ok(self.buffered.split_to(len))));
            }
            match ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffered.push(data);
                    }
                }
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None if self.buffered.len == 0 && self.pending.is_none() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Err(Status::internal("the body ended inside a message")))),
            }
        }
    }
}

/// A message [`split_field`] cannot read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FieldError {
    /// A key or length that is not a valid varint.
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    #[error("groups are not used by these messages")]
    Group,
    #[error("a field runs past the message's end")]
    PastEnd,
}

/// Takes field `field` (length-delimited) out of one message: the other
/// fields re-encoded for prost (they are a few dozen bytes), and the field's
/// bytes as slices of the message. An absent field is empty; repeated, the
/// last occurrence wins, as for any non-repeated field.
pub(crate) fn split_field(mut message: Pieces, field: u32) -> Result<(Vec<u8>, Pieces), FieldError> {
    let mut rest = Vec::new();
    let mut payload = Pieces::default();
    while message.has_remaining() {
        let (number, wire_type) = decode_key(&mut message)?;
        let len = match wire_type {
            WireType::Varint => {
                encode_key(number, wire_type, &mut rest);
                encode_varint(decode_varint(&mut message)?, &mut rest);
                continue;
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => decode_varint(&mut message)? as usize,
            WireType::StartGroup | WireType::EndGroup => return Err(FieldError::Group),
        };
        if len > message.remaining() {
            return Err(FieldError::PastEnd);
        }
        if number == field && wire_type == WireType::LengthDelimited {
            payload = message.split_to(len);
            continue;
        }
        encode_key(number, wire_type, &mut rest);
        if wire_type == WireType::LengthDelimited {
            encode_varint(len as u64, &mut rest);
        }
        rest.put((&mut message).take(len));
    }
    Ok((rest, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::containerd::services::content::v1::ReadContentResponse;
    use prost::Message;

    #[test]
    fn a_framed_message_decodes_as_prost_encodes_it() {
        for size in [0, 5, SMALL, SMALL + 1, 70_000] {
            let data = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<_>>());
            let head = ReadContentResponse { offset: 300, data: Bytes::new() }.encode_to_vec();
            let (header, payload) = message(&head, 2, data.clone());
            let mut wire = header.to_vec();
            wire.extend_from_slice(&payload.unwrap_or_default());
            assert_eq!(wire[0], 0);
            assert_eq!(u32::from_be_bytes(wire[1..5].try_into().unwrap()) as usize, wire.len() - 5);
            let decoded = ReadContentResponse::decode(&wire[5..]).unwrap();
            assert_eq!((decoded.offset, decoded.data), (300, data));
        }
    }

    #[test]
    fn a_whole_message_is_its_header_and_encoding() {
        let response = ReadContentResponse { offset: 300, data: Bytes::from_static(b"abc") };
        let wire = whole(&response);
        assert_eq!(wire[..5], [0, 0, 0, 0, response.encoded_len() as u8]);
        assert_eq!(ReadContentResponse::decode(&wire[5..]).unwrap(), response);
    }

    #[test]
    fn a_message_cut_anywhere_splits_as_prost_decodes_it() {
        use crate::proto::containerd::services::content::v1::{WriteAction, WriteContentRequest};
        let message = WriteContentRequest {
            action: WriteAction::Commit as i32,
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
            let (rest, data) = split_field(pieces, 6).unwrap();
            let data: Vec<u8> = data.into_chunks().iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(data, message.data);
            let rest = WriteContentRequest::decode(&rest[..]).unwrap();
            assert_eq!(rest, WriteContentRequest { data: Bytes::new(), ..message.clone() });
        }
    }

    #[test]
    fn a_field_longer_than_its_message_is_refused() {
        let mut wire = Vec::new();
        encode_key(6, WireType::LengthDelimited, &mut wire);
        encode_varint(10, &mut wire);
        wire.extend_from_slice(b"short");
        let mut pieces = Pieces::default();
        pieces.push(wire.into());
        assert!(matches!(split_field(pieces, 6), Err(FieldError::PastEnd)));
    }

    #[tokio::test]
    async fn messages_are_cut_from_any_framing_and_a_truncated_one_is_an_error() {
        let payloads = [Bytes::from_static(b"first"), Bytes::from(vec![9u8; 40_000]), Bytes::new()];
        let mut wire = Vec::new();
        for payload in &payloads {
            let (header, rest) = message(&[], 1, payload.clone());
            wire.extend_from_slice(&header);
            wire.extend_from_slice(&rest.unwrap_or_default());
        }
        for cut in [1, 3, 16_384, wire.len()] {
            let frames = wire.chunks(cut).map(Bytes::copy_from_slice).collect();
            let mut messages = Messages::new(tonic::body::Body::new(Frames(frames)));
            for payload in &payloads {
                let message = std::future::poll_fn(|cx| messages.poll_message(cx)).await.unwrap().unwrap();
                let (_, data) = split_field(message, 1).unwrap();
                assert_eq!(Vec::from(data.into_chunks()).concat(), payload.to_vec(), "cut {cut}");
            }
            assert!(std::future::poll_fn(|cx| messages.poll_message(cx)).await.is_none());
        }
        // Without its last byte, the third message (7 bytes: header, key,
        // zero length) is cut short.
        let truncated = Bytes::copy_from_slice(&wire[..wire.len() - 1]);
        let mut messages = Messages::new(tonic::body::Body::new(Frames([truncated].into())));
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(std::future::poll_fn(|cx| messages.poll_message(cx)).await.map(|r| r.map(|_| ())));
        }
        assert!(matches!(results[..], [Some(Ok(())), Some(Ok(())), Some(Err(_))]), "{results:?}");
    }

    #[tokio::test]
    async fn a_compressed_or_oversized_message_is_refused_before_it_is_buffered() {
        let too_long = crate::control::MAX_MESSAGE_SIZE as u32 + 1;
        for (header, code) in [
            ([1u8, 0, 0, 0, 1], tonic::Code::Unimplemented),
            (
                [0, (too_long >> 24) as u8, (too_long >> 16) as u8, (too_long >> 8) as u8, too_long as u8],
                tonic::Code::ResourceExhausted,
            ),
        ] {
            let mut messages = Messages::new(tonic::body::Body::new(Frames([Bytes::copy_from_slice(&header)].into())));
            let result = std::future::poll_fn(|cx| messages.poll_message(cx)).await;
            assert_eq!(result.unwrap().unwrap_err().code(), code);
        }
    }

    /// A body of the given DATA frames.
    struct Frames(VecDeque<Bytes>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
            Poll::Ready(self.0.pop_front().map(|data| Ok(http_body::Frame::data(data))))
        }
    }
}
