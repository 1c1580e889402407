//! The session services that answer the daemon's questions during a build:
//! registry credentials ([`auth`]), build secrets ([`secrets`]) and SSH
//! agents ([`ssh`]); plus [`register`], which puts them and the outputs'
//! `FileSend` service (`crate::output`) on a session. The context upload
//! (`FileSync`) belongs to `crate::fsync`.
//!
//! Each service is a tonic server built by `into_server()` with the
//! session's message limits, and lists its full gRPC method names in
//! `methods()`.

pub mod auth;
pub mod content;
mod content_read;
mod content_write;
pub mod secrets;
pub mod ssh;
mod ssh_keys;
pub mod upload;

use crate::output::{ExportEntry, FileSendService, PendingOutputs};
use crate::session::{SessionBuilder, SessionError};

pub use auth::{AuthService, DockerConfig};
pub use content::{ContentService, ContentStore};
pub use content_read::ContentRoutes;
pub use secrets::{SecretSource, SecretsService};
pub use ssh::{AgentSpec, SshService};

/// A service that cannot be set up; nothing has been sent yet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServicesError {
    #[error("invalid --ssh value {:?}: {}", .0.value(), .0)]
    Ssh(ssh::SshError),
    #[error("cannot register a session service")]
    Session(#[source] SessionError),
}

/// Registers the build's services on `session`: `FileSend` when an output
/// comes back to us, `Auth` always (pulls and pushes may need it; an
/// unreadable docker config is a warning, as with docker), `Secrets`
/// always (a build without `--secret` answers NotFound, which
/// `required=false` mounts accept), and `SSH` when `--ssh` was given (without
/// it the daemon reports the missing agent by its id).
///
/// `exports` must be the list sent as `SolveRequest.exporters`, in order.
/// The build waits for the returned outputs before it ends.
pub fn register(
    session: &mut SessionBuilder,
    exports: &[ExportEntry],
    secrets: &[SecretSource],
    agents: &[AgentSpec],
    uploads: &std::collections::BTreeMap<String, bytes::Bytes>,
) -> Result<PendingOutputs, ServicesError> {
    let file_send = FileSendService::new(exports);
    let pending = file_send.pending();
    if !file_send.is_empty() {
        session.add_service(file_send).map_err(ServicesError::Session)?;
    }
    // Like docker, a broken config is a warning, not a failed build: the
    // build may not need a login at all, and a push that does fails clearly.
    let config = DockerConfig::load().unwrap_or_else(|err| {
        tracing::warn!("{}; continuing without registry credentials", crate::error::error_chain(&err));
        DockerConfig::empty()
    });
    session.add_service(AuthService::new(config).into_server()).map_err(ServicesError::Session)?;
    session.add_service(SecretsService::new(secrets).into_server()).map_err(ServicesError::Session)?;
    if !agents.is_empty() {
        let ssh = SshService::new(agents).map_err(ServicesError::Ssh)?;
        session.add_service(ssh.into_server()).map_err(ServicesError::Session)?;
    }
    if !uploads.is_empty() {
        let upload = upload::UploadService::new(uploads.clone());
        session.add_service(upload.into_server()).map_err(ServicesError::Session)?;
    }
    Ok(pending)
}

/// Test support: serves one service over an in-memory connection, the way
/// the session serves them over its tunnel.
#[cfg(test)]
pub(crate) async fn serve_in_memory<S>(service: S) -> tonic::transport::Channel
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut client_io = Some(client_io);
    tonic::transport::Endpoint::from_static("http://session")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move { io.map(hyper_util::rt::TokioIo::new).ok_or_else(|| std::io::Error::other("one connection only")) }
        }))
        .await
        .expect("an in-memory connection does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::parse_output;

    /// Every method a service claims to serve is in the schema, and the
    /// other way round, so the session exposes exactly what is served.
    #[test]
    fn method_lists_match_the_schema() {
        let schema = |service: &str| -> Vec<String> {
            let (_, methods) = crate::proto::methods::SERVICE_METHODS
                .iter()
                .find(|(name, _)| *name == service)
                .unwrap_or_else(|| panic!("{service} is not in proto/"));
            methods.iter().map(|method| format!("/{service}/{method}")).collect()
        };
        let ours = |methods: &[&str]| methods.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(ours(AuthService::methods()), schema("moby.filesync.v1.Auth"));
        assert_eq!(ours(SecretsService::methods()), schema("moby.buildkit.secrets.v1.Secrets"));
        assert_eq!(ours(SshService::methods()), schema("moby.sshforward.v1.SSH"));
        assert_eq!(ours(FileSendService::methods()), schema("moby.filesync.v1.FileSend"));
    }

    #[test]
    fn register_adds_file_send_only_for_outputs_that_come_back() {
        let image = parse_output("type=image,name=r/a").unwrap();
        let mut session = SessionBuilder::new("test", "key");
        register(&mut session, std::slice::from_ref(&image), &[], &[], &Default::default()).unwrap();
        let methods = session.methods().join(" ");
        assert!(methods.contains("/moby.filesync.v1.Auth/Credentials"));
        assert!(methods.contains("/moby.buildkit.secrets.v1.Secrets/GetSecret"));
        assert!(!methods.contains("FileSend"), "{methods}");
        assert!(!methods.contains("SSH"), "{methods}");
        assert!(!methods.contains("Upload"), "{methods}");

        let tar = parse_output("type=tar,dest=out.tar").unwrap();
        let mut session = SessionBuilder::new("test", "key");
        let uploads = [("id1".to_string(), bytes::Bytes::from_static(b"tar"))].into();
        register(&mut session, &[image, tar], &[], &[], &uploads).unwrap();
        assert!(session.methods().iter().any(|m| m == "/moby.filesync.v1.FileSend/DiffCopy"));
        assert!(session.methods().iter().any(|m| m == "/moby.upload.v1.Upload/Pull"));
    }
}
