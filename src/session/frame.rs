//! gRPC messages that end in one large `bytes` field, framed by hand so the
//! payload reaches h2 as it is. tonic's encoder copies every message into
//! its encode buffer, and a session moves its bulk (cache blobs, the tunnel
//! itself) in exactly such messages: `BytesMessage`, `ReadContentResponse`.
//! Protobuf fields may come in any order and a field's bytes are not looked
//! at by the framing, so the message is the other fields, then the payload
//! field's key and length, then the payload.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

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
}
