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
    tonic_prost_build::configure()
        .btree_map(".")
        .bytes(".")
        .include_file("fbuild_protos.rs")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
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
