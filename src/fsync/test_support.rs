//! Test helpers: a tonic server and channel joined by an in-memory pipe,
//! the same shape as the session tunnel, and test files written into a tree.

use std::io;
use std::path::Path;

use hyper_util::rt::TokioIo;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint};

/// Serves `router` over an in-memory duplex and returns a channel to it.
pub(crate) async fn serve_in_memory(router: Router) -> Channel {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let incoming = tokio_stream::once(Ok::<_, io::Error>(server_io));
        let _ = router.serve_with_incoming(incoming).await;
    });
    let mut client_io = Some(client_io);
    Endpoint::from_static("http://in-memory.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let io = client_io.take();
            async move { io.map(TokioIo::new).ok_or_else(|| io::Error::other("connection already used")) }
        }))
        .await
        .expect("in-memory channel")
}

/// Writes `content` to `root/rel`, creating its folders.
pub(crate) fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    fs_err::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    fs_err::write(path, content).expect("write");
}
