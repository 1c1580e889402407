//! Rust types generated from `proto/`, our statement of BuildKit's wire schema.
//!
//! Modules mirror the protobuf packages, so `moby.buildkit.v1.SolveRequest`
//! is `proto::moby::buildkit::v1::SolveRequest`.
#![allow(clippy::all, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/fbuild_protos.rs"));

#[cfg(test)]
mod tests {
    //! The generated code must speak BuildKit's wire format: these tests pin
    //! field tags and gRPC method paths to the values in BuildKit v0.32.2.

    use std::sync::{Arc, Mutex};

    use prost::Message;

    use super::moby::buildkit::v1 as control;
    use super::moby::buildkit::v1::frontend as gateway;
    use super::pb;

    fn image_source_op() -> pb::Op {
        pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: "docker-image://docker.io/library/busybox:latest".into(),
                attrs: Default::default(),
            })),
            platform: Some(pb::Platform { architecture: "amd64".into(), os: "linux".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn source_op_uses_buildkit_field_tags() {
        let bytes = image_source_op().encode_to_vec();
        // Op.source is field 3, length-delimited: tag byte (3 << 3) | 2.
        assert_eq!(bytes[0], 0x1a);
        // Inside it, SourceOp.identifier is field 1: (1 << 3) | 2.
        assert_eq!(bytes[2], 0x0a);
        // Op.platform is field 10: (10 << 3) | 2 = 0x52, after the source.
        let source_len = usize::from(bytes[1]);
        assert_eq!(bytes[2 + source_len], 0x52);

        let decoded = pb::Op::decode(bytes.as_slice()).expect("our own encoding decodes");
        assert_eq!(decoded, image_source_op());
    }

    #[test]
    fn mount_options_use_high_field_numbers() {
        let mount = pb::Mount { tmpfs_opt: Some(pb::TmpfsOpt { size: 1 }), ..Default::default() };
        // Mount.TmpfsOpt is field 19: tag (19 << 3) | 2 = 154, a two-byte
        // varint. Numbers above 15 are where hand-written schemas drift.
        assert_eq!(mount.encode_to_vec(), vec![0x9a, 0x01, 0x02, 0x08, 0x01]);
    }

    #[test]
    fn definition_round_trips_with_metadata() {
        let op = image_source_op().encode_to_vec();
        let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let mut definition = pb::Definition { def: vec![op.clone().into()], ..Default::default() };
        definition.metadata.insert(digest.to_owned(), pb::OpMetadata { ignore_cache: true, ..Default::default() });
        let bytes = definition.encode_to_vec();
        // Definition.def is field 1, so the op's bytes come first, verbatim.
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(&bytes[2..2 + op.len()], op.as_slice());
        // Then one metadata map entry, field 2.
        assert_eq!(bytes[2 + op.len()], 0x12);

        let decoded = pb::Definition::decode(bytes.as_slice()).expect("our own encoding decodes");
        assert_eq!(decoded, definition);
        assert!(decoded.metadata[digest].ignore_cache);
    }

    #[test]
    fn enum_values_match_buildkit() {
        assert_eq!(pb::NetMode::Host as i32, 1);
        assert_eq!(pb::NetMode::None as i32, 2);
        assert_eq!(pb::MountType::Cache as i32, 3);
        assert_eq!(pb::MountType::Tmpfs as i32, 4);
        assert_eq!(pb::CacheSharingOpt::Locked as i32, 2);
        assert_eq!(control::BuildHistoryEventType::Deleted as i32, 2);
    }

    /// A transport that records the request path and then fails, so a
    /// generated client can be driven without a daemon.
    fn recording_transport(
        seen: Arc<Mutex<Vec<String>>>,
    ) -> impl tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::io::Error,
        Future = std::future::Ready<Result<http::Response<tonic::body::Body>, std::io::Error>>,
    > + Clone {
        tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(request.uri().path().to_owned());
            }
            std::future::ready(Err(std::io::Error::other("recording transport")))
        })
    }

    #[tokio::test]
    async fn control_client_calls_buildkit_paths() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut client = control::control_client::ControlClient::with_origin(
            recording_transport(seen.clone()),
            http::Uri::from_static("http://buildkitd"),
        );
        assert!(client.info(control::InfoRequest {}).await.is_err());
        assert!(client.solve(control::SolveRequest::default()).await.is_err());
        assert!(client.disk_usage(control::DiskUsageRequest::default()).await.is_err());
        let seen = seen.lock().expect("no test thread panicked").clone();
        assert_eq!(
            seen,
            [
                "/moby.buildkit.v1.Control/Info",
                "/moby.buildkit.v1.Control/Solve",
                "/moby.buildkit.v1.Control/DiskUsage",
            ]
        );
    }

    #[tokio::test]
    async fn llb_bridge_client_calls_buildkit_paths() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut client = gateway::llb_bridge_client::LlbBridgeClient::with_origin(
            recording_transport(seen.clone()),
            http::Uri::from_static("http://buildkitd"),
        );
        assert!(client.ping(gateway::PingRequest {}).await.is_err());
        assert!(client.resolve_image_config(gateway::ResolveImageConfigRequest::default()).await.is_err());
        assert!(client.r#return(gateway::ReturnRequest::default()).await.is_err());
        let seen = seen.lock().expect("no test thread panicked").clone();
        assert_eq!(
            seen,
            [
                "/moby.buildkit.v1.frontend.LLBBridge/Ping",
                "/moby.buildkit.v1.frontend.LLBBridge/ResolveImageConfig",
                "/moby.buildkit.v1.frontend.LLBBridge/Return",
            ]
        );
    }

    #[test]
    fn server_names_match_buildkit() {
        assert_eq!(control::control_server::SERVICE_NAME, "moby.buildkit.v1.Control");
        assert_eq!(gateway::llb_bridge_server::SERVICE_NAME, "moby.buildkit.v1.frontend.LLBBridge");
    }
}

/// Every service in `proto/` with its methods, generated by `build.rs`.
pub mod methods {
    include!(concat!(env!("OUT_DIR"), "/fbuild_service_methods.rs"));
}
