//! Compiles our statement of BuildKit's wire schema (`proto/`) into Rust.
//!
//! `protox` is a pure-Rust protobuf compiler, so building fbuild needs neither
//! `protoc` nor the network. Every protobuf `map` becomes a `BTreeMap`, which
//! keeps the encoding of LLB deterministic: the same build always gives the
//! same op digests.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");

    let mut files = Vec::new();
    collect_protos(&proto_root, &proto_root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Ok(());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    write_service_methods(&descriptors)?;
    tonic_prost_build::configure()
        .btree_map(".")
        .bytes(".")
        .include_file("fbuild_protos.rs")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// Writes `SERVICE_METHODS`: each service's full name and its method names.
///
/// A session must tell the daemon every gRPC method it serves
/// (`X-Docker-Expose-Session-Grpc-Method`). tonic's generated servers only
/// know their service name, so the method list comes from the schema itself:
/// a session built from its registered services can never expose a method it
/// does not serve, nor forget one it does.
fn write_service_methods(descriptors: &prost_types::FileDescriptorSet) -> std::io::Result<()> {
    let mut out = String::from("/// (service full name, method names) for every service in `proto/`.\n");
    out.push_str("pub const SERVICE_METHODS: &[(&str, &[&str])] = &[\n");
    for file in &descriptors.file {
        let package = file.package();
        for service in &file.service {
            let full_name =
                if package.is_empty() { service.name().to_string() } else { format!("{package}.{}", service.name()) };
            let methods: Vec<String> = service.method.iter().map(|m| format!("{:?}", m.name())).collect();
            out.push_str(&format!("    ({full_name:?}, &[{}]),\n", methods.join(", ")));
        }
    }
    out.push_str("];\n");
    let path = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("fbuild_service_methods.rs");
    std::fs::write(path, out)
}

/// Every `.proto` below `dir`, as a path relative to `root` (the import root).
fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path.strip_prefix(root).expect("walked below root").to_path_buf());
        }
    }
    Ok(())
}
