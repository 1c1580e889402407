//! File sync: fsutil's DiffCopy protocol, both directions.
//!
//! This module owns everything between a local folder and a stream of
//! fsutil `Packet`s:
//! - [`patterns`]: moby patternmatcher semantics and `.dockerignore`
//!   parsing;
//! - [`walk`]: listing a folder in fsutil's order with its filters, as
//!   `Stat` records carrying Go file modes;
//! - [`send`]: the sender (the daemon pulls the build context) and the
//!   `FileSync` session service ([`FileSyncService`]);
//! - [`receive`]: the receiver for the local exporter (the daemon pushes
//!   an output tree), [`receive_diffcopy`], which the `FileSend` service
//!   (owned by the output module) calls.
//!
//! It touches its neighbours only through those entry points: the session
//! registers [`FileSyncService`] on its tonic server, and the output module
//! hands `receive_diffcopy` the packet streams of a `FileSend.DiffCopy`
//! call. Nothing here knows about the session tunnel or the CLI.
//!
//! On the wire: `FileSend.DiffCopy` is declared with `BytesMessage`, but
//! the local exporter sends fsutil `Packet`s on it (grpc-go marshals
//! whatever message it is given). The two encodings cannot be told apart
//! from the bytes, only from the call's `buildkit-attachable-exporter-id`
//! metadata, so the `FileSend` service must pick the message type per call
//! (for example with [`tonic_prost::ProstCodec`]`<Packet, Packet>` for a
//! local-directory target); see the `filesend_packets_over_grpc` test in
//! [`receive`] for a working shape.

pub(crate) mod patterns;
pub(crate) mod receive;
pub(crate) mod send;
#[cfg(test)]
mod test_support;
pub(crate) mod walk;
