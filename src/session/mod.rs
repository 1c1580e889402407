//! The session: the channel on which the daemon calls back into fbuild.
//!
//! `Control.Session` is a bidirectional stream of `BytesMessage`s that carries
//! raw HTTP/2. On it the daemon is the gRPC *client* and fbuild the *server*:
//! it asks for the build context (FileSync), hands over outputs (FileSend),
//! asks for registry credentials (Auth), secrets and SSH agents, and polls
//! `grpc.health.v1.Health/Check` to know we are alive.
//!
//! [`tunnel`] turns the stream into an in-memory byte pipe that tonic's
//! server reads like a socket, so no HTTP/2 or gRPC framing is written here.
//! This module only assembles the services (a [`SessionBuilder`]), tells the
//! daemon which methods they serve, and runs and stops the whole thing.
//! The services themselves live next to the data they move (`fsync`,
//! `output`, `services`).

pub(crate) mod frame;
mod tunnel;

use std::convert::Infallible;

use crate::control::Control;
pub use crate::control::MAX_MESSAGE_SIZE;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

/// Failures of the session itself (not of the services it carries).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
/// Public as `fbuild::build::SessionError` (it is what
/// `BuildError::Session` and `ServicesError::Session` hold).
pub enum SessionError {
    /// The daemon refused the `Session` call.
    #[error("the daemon refused to open a session")]
    Open(#[source] crate::control::ControlError),
    /// A session header (name, shared key, method) is not ASCII.
    #[error("session header value is not ASCII: {0:?}")]
    InvalidHeader(String),
    /// A service whose methods are not in the bundled protocol files.
    #[error("service {0} has no methods in proto/: cannot expose it to the daemon")]
    UnknownService(&'static str),
    /// Serving the session's services over the tunnel failed.
    #[error("the session's server failed")]
    Serve(#[source] tonic::transport::Error),
    /// The task serving the session ended abnormally.
    #[error("the session task panicked or was aborted")]
    Join(#[source] tokio::task::JoinError),
}

/// Collects the services one build exposes to the daemon.
pub struct SessionBuilder {
    name: String,
    shared_key: String,
    routes: tonic::service::RoutesBuilder,
    methods: Vec<String>,
}

impl SessionBuilder {
    /// A session with the health service already registered.
    ///
    /// `shared_key` lets the daemon reuse what an earlier session uploaded for
    /// the same local folder: it must be stable for a given context folder.
    pub fn new(name: impl Into<String>, shared_key: impl Into<String>) -> Self {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let mut builder = SessionBuilder {
            name: name.into(),
            shared_key: shared_key.into(),
            routes: Routes::builder(),
            methods: Vec::new(),
        };
        builder.routes.add_service(health);
        // The health service is not in proto/ (tonic-health ships it).
        builder
            .methods
            .extend(["/grpc.health.v1.Health/Check".to_string(), "/grpc.health.v1.Health/Watch".to_string()]);
        builder
    }

    /// Registers a tonic server (already configured with [`MAX_MESSAGE_SIZE`]).
    pub fn add_service<S>(&mut self, service: S) -> Result<&mut Self, SessionError>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let methods = crate::proto::methods::SERVICE_METHODS
            .iter()
            .find(|(name, _)| *name == S::NAME)
            .map(|(_, methods)| *methods)
            .ok_or(SessionError::UnknownService(S::NAME))?;
        self.methods.extend(methods.iter().map(|method| format!("/{}/{method}", S::NAME)));
        self.routes.add_service(service);
        Ok(self)
    }

    /// The full gRPC method names the session exposes.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Opens `Control.Session` and serves the registered services on it
    /// until [`RunningSession::close`] or until the daemon hangs up.
    pub async fn start(self, control: &Control) -> Result<RunningSession, SessionError> {
        let id = new_id();
        let headers =
            SessionHeaders { id: id.clone(), name: self.name, shared_key: self.shared_key, methods: self.methods };
        let (io, ours) = tunnel::pipe();
        let routes = self.routes.routes();
        let incoming = futures::StreamExt::chain(
            futures::stream::once(async { Ok::<_, std::io::Error>(io) }),
            futures::stream::pending(),
        );
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                // Outputs flow daemon → us on this connection; a large window
                // keeps a tar export from stalling on flow control.
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .max_frame_size(Some((1 << 20) - 1))
                // The daemon's calls carry metadata as grpc-go allows it.
                .http2_max_header_list_size(crate::connect::MAX_HEADER_LIST_SIZE)
                .add_routes(routes)
                // tonic shuts a server down gracefully (GOAWAY) as soon as
                // its incoming stream ends: the one connection is followed by
                // a stream that never ends; `close` stops the task instead.
                .serve_with_incoming(incoming)
                .await
                .map_err(SessionError::Serve)
        });
        // The server runs before the call opens, so its preface is waiting.
        let mut session = RunningSession { id, task: Some(task), pump: None };
        session.pump = Some(tunnel::connect(control, &headers, ours).await?);
        Ok(session)
    }
}

/// What the daemon needs to know about a session, sent as request metadata
/// on `Control.Session`.
pub(crate) struct SessionHeaders {
    pub id: String,
    pub name: String,
    pub shared_key: String,
    pub methods: Vec<String>,
}

/// A session being served. Its id goes into `SolveRequest.session`.
pub struct RunningSession {
    id: String,
    /// `None` once stopped.
    task: Option<JoinHandle<Result<(), SessionError>>>,
    /// The pipe's inbound pump (see [`tunnel::connect`]), stopped with the server.
    pump: Option<tokio::task::AbortHandle>,
}

impl RunningSession {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops serving. Called once the solve has returned: by then the
    /// daemon has everything it asked for and every output has landed, so
    /// there is nothing to drain. (A graceful HTTP/2 shutdown would wait for
    /// the daemon to close its end, which it does not do promptly: that wait
    /// cost two seconds per build.) The pipe's pump is stopped, which ends
    /// the `Control.Session` call and the server's connection with it.
    pub async fn close(mut self) -> Result<(), SessionError> {
        self.stop().await
    }

    /// [`RunningSession::close`] for a session that is kept (e.g. in a
    /// struct field); later calls do nothing.
    pub async fn stop(&mut self) -> Result<(), SessionError> {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        let Some(task) = self.task.take() else { return Ok(()) };
        if task.is_finished() {
            // The server stopped on its own: report how.
            return match task.await {
                Ok(result) => result,
                Err(error) if error.is_cancelled() => Ok(()),
                Err(error) => Err(SessionError::Join(error)),
            };
        }
        task.abort();
        Ok(())
    }
}

impl Drop for RunningSession {
    fn drop(&mut self) {
        // A cancelled build drops the session: stop serving at once.
        if let Some(task) = &self.task {
            task.abort();
        }
        if let Some(pump) = &self.pump {
            pump.abort();
        }
    }
}

/// A fresh random id for a session or a build, never reused (25 lowercase
/// alphanumerics, the shape of BuildKit's `identity.NewID`).
pub(crate) fn new_id() -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes from the system's generator (ring's, already here for TLS and
    // SSH signatures); those at or above the largest multiple of 36 are
    // dropped so every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let random = ring::rand::SystemRandom::new();
    let mut id = String::with_capacity(25);
    let mut bytes = [0u8; 32];
    while id.len() < 25 {
        random.fill(&mut bytes).expect("the system's random number generator is available");
        let usable = bytes.iter().filter(|&&byte| byte < limit);
        id.extend(usable.map(|&byte| ALPHABET[usize::from(byte) % ALPHABET.len()] as char).take(25 - id.len()));
    }
    id
}

/// The shared key of a local folder: the daemon keeps its copy of an
/// uploaded folder under it, so the same folder gets the same key on every
/// build and only changed files are sent again, whatever else the build
/// reads. Derived from this machine's name and the folder's path, which the
/// caller has made absolute (symbolic links resolved).
pub(crate) fn shared_key_for(folder: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"fbuild-local-v2\0");
    if let Ok(host) = nix::unistd::gethostname() {
        hasher.update(host.as_encoded_bytes());
    }
    hasher.update(b"\0");
    hasher.update(folder.as_os_str().as_encoded_bytes());
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_fresh() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn shared_key_is_stable_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        assert_eq!(shared_key_for(dir.path()), shared_key_for(dir.path()));
        assert_ne!(shared_key_for(dir.path()), shared_key_for(other.path()));
    }

    #[test]
    fn methods_come_from_registered_services() {
        use crate::proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
        use crate::proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
        #[derive(Clone)]
        struct NoSecrets;
        #[tonic::async_trait]
        impl Secrets for NoSecrets {
            async fn get_secret(
                &self,
                _: tonic::Request<GetSecretRequest>,
            ) -> Result<tonic::Response<GetSecretResponse>, tonic::Status> {
                Err(tonic::Status::not_found("none"))
            }
        }
        let mut builder = SessionBuilder::new("test", "key");
        builder.add_service(SecretsServer::new(NoSecrets)).unwrap();
        assert_eq!(
            builder.methods(),
            [
                "/grpc.health.v1.Health/Check",
                "/grpc.health.v1.Health/Watch",
                "/moby.buildkit.secrets.v1.Secrets/GetSecret"
            ]
        );
    }
}
