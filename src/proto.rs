//! Rust types generated from `proto/`, our statement of BuildKit's wire schema.
//!
//! Modules mirror the protobuf packages, so `moby.buildkit.v1.SolveRequest`
//! is `proto::moby::buildkit::v1::SolveRequest`.
#![allow(clippy::all, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/fbuild_protos.rs"));
