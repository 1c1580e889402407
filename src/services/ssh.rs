//! SSH agent forwarding (`--ssh`, read by `RUN --mount=type=ssh`) and the
//! session's `moby.sshforward.v1.SSH` service.
//!
//! `--ssh default` forwards the agent at `$SSH_AUTH_SOCK`; `--ssh ID=PATH`
//! forwards the agent listening on the unix socket `PATH` under the id `ID`
//! (an empty `PATH` means `$SSH_AUTH_SOCK` too). `--ssh ID=KEY[,KEY…]` with
//! private key files (anything that is not a socket) serves those keys from
//! an agent of our own (`ssh_keys.rs`), as buildx does.
//! `raw=true` (`--ssh ID=PATH,raw=true`) forwards the socket's bytes
//! untouched, for sockets that are not SSH agents.
//!
//! Each connection a build makes to its agent socket becomes one
//! `ForwardAgent` call, with the id in the metadata `buildkit.ssh.id`.
//! Like buildctl, the forwarded agent is read-only: the build may list keys
//! and ask for signatures; requests to add, remove or lock keys (and
//! extensions) are answered with `SSH_AGENT_FAILURE` without reaching the
//! agent.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

// The key-file errors are part of `SshProblem`: callers must be able to name them.
pub use super::ssh_keys::{KeyProblem, RsaProblem};

use crate::proto::moby::sshforward::v1::ssh_server::{Ssh, SshServer};
use crate::proto::moby::sshforward::v1::{BytesMessage, CheckAgentRequest, CheckAgentResponse};

/// The id of `--ssh default` and of a mount without `id=`.
pub const DEFAULT_ID: &str = "default";
/// Request metadata naming the agent a `ForwardAgent` call is for.
const SSH_ID_KEY: &str = "buildkit.ssh.id";
/// The largest agent message accepted either way (Go's agent uses the same).
const MAX_AGENT_MESSAGE: usize = 16 << 20;
/// Agent protocol message types (draft-miller-ssh-agent).
const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;

/// A `--ssh` value that cannot be used. [`SshError::value`] is the flag's
/// value; the message says what is wrong (callers name the flag).
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct SshError {
    value: String,
    problem: SshProblem,
}

impl SshError {
    /// The `--ssh` value that was refused.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &SshProblem {
        &self.problem
    }
}

/// What is wrong with one `--ssh` value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshProblem {
    #[error("SSH_AUTH_SOCK is not set; start an ssh-agent or pass ID=/path/to/agent.sock")]
    NoAuthSock,
    #[error("raw={0} is not a boolean")]
    NotBool(String),
    #[error("only one agent socket per id, and not mixed with key files")]
    SeveralPaths,
    #[error("{0}")]
    Key(#[from] super::ssh_keys::KeyProblem),
    // The io error is part of the message: callers fold this into one line.
    #[error("cannot use agent socket or key file {}: {error}", path.display())]
    Inspect { path: PathBuf, error: std::io::Error },
    #[error("{} is not a unix socket", .0.display())]
    NotASocket(PathBuf),
    #[error("the id {0:?} is given twice")]
    DuplicateId(String),
}

/// One `--ssh` value: an id and the agent socket it forwards, or the
/// private key files an agent of our own serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// The id a `RUN --mount=type=ssh,id=...` asks for.
    pub id: String,
    /// The agent's unix socket (empty when `keys` are served instead).
    pub socket: PathBuf,
    /// Forward bytes untouched instead of as a read-only SSH agent.
    pub raw: bool,
    /// OpenSSH private key files, read into memory when the build starts.
    pub keys: Vec<PathBuf>,
}

impl AgentSpec {
    /// Parses a `--ssh` value and checks that its socket exists.
    pub fn parse(spec: &str) -> Result<AgentSpec, SshError> {
        AgentSpec::parse_with_auth_sock(spec, std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from))
    }

    /// [`AgentSpec::parse`] with `$SSH_AUTH_SOCK` given (tests must not
    /// change the process environment).
    pub fn parse_with_auth_sock(spec: &str, auth_sock: Option<PathBuf>) -> Result<AgentSpec, SshError> {
        let fail = |problem| SshError { value: spec.to_owned(), problem };
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (id, Some(paths)),
            None => (spec, None),
        };
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        let mut raw = false;
        let mut sockets = Vec::new();
        for part in paths.into_iter().flat_map(|paths| paths.split(',')) {
            match part.split_once('=') {
                Some(("raw", value)) => {
                    raw = crate::gostrconv::parse_bool(value)
                        .ok_or_else(|| fail(SshProblem::NotBool(value.to_owned())))?;
                }
                _ => sockets.push(part),
            }
        }
        // buildkit's sshprovider: a path that is not a socket is a key file.
        let is_socket = |path: &str| std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket());
        for path in sockets.iter().filter(|path| !path.is_empty()) {
            if let Err(error) = std::fs::metadata(path) {
                return Err(fail(SshProblem::Inspect { path: PathBuf::from(path), error }));
            }
        }
        let keys: Vec<PathBuf> =
            sockets.iter().filter(|path| !path.is_empty() && !is_socket(path)).map(PathBuf::from).collect();
        if !keys.is_empty() {
            if keys.len() != sockets.len() || raw {
                return Err(fail(SshProblem::SeveralPaths));
            }
            super::ssh_keys::check_keys(&keys).map_err(|problem| fail(problem.into()))?;
            return Ok(AgentSpec { id: id.to_owned(), socket: PathBuf::new(), raw, keys });
        }
        let socket = match sockets.as_slice() {
            [] | [""] => {
                auth_sock.filter(|path| !path.as_os_str().is_empty()).ok_or_else(|| fail(SshProblem::NoAuthSock))?
            }
            [one] => PathBuf::from(one),
            _ => return Err(fail(SshProblem::SeveralPaths)),
        };
        check_socket(&socket).map_err(fail)?;
        Ok(AgentSpec { id: id.to_owned(), socket, raw, keys: Vec::new() })
    }
}

fn check_socket(path: &Path) -> Result<(), SshProblem> {
    // Followed: an agent socket is often reached through a link.
    let meta = std::fs::metadata(path).map_err(|error| SshProblem::Inspect { path: path.to_owned(), error })?;
    if meta.file_type().is_socket() {
        Ok(())
    } else {
        Err(SshProblem::NotASocket(path.to_owned()))
    }
}

/// The session's SSH service: forwards each agent connection of the build
/// to the agent socket named for its id.
#[derive(Clone, Debug)]
pub struct SshService {
    agents: Arc<BTreeMap<String, AgentSpec>>,
    /// The in-memory agents of the ids given key files.
    keyrings: Arc<BTreeMap<String, Arc<super::ssh_keys::KeyRing>>>,
}

impl SshService {
    /// A service for `specs`; two specs with the same id are refused.
    pub fn new(specs: &[AgentSpec]) -> Result<SshService, SshError> {
        let mut agents = BTreeMap::new();
        let mut keyrings = BTreeMap::new();
        for spec in specs {
            if agents.insert(spec.id.clone(), spec.clone()).is_some() {
                return Err(SshError { value: spec.id.clone(), problem: SshProblem::DuplicateId(spec.id.clone()) });
            }
            if !spec.keys.is_empty() {
                let ring = super::ssh_keys::KeyRing::load(&spec.keys)
                    .map_err(|problem| SshError { value: spec.id.clone(), problem: problem.into() })?;
                keyrings.insert(spec.id.clone(), Arc::new(ring));
            }
        }
        Ok(SshService { agents: Arc::new(agents), keyrings: Arc::new(keyrings) })
    }

    /// The tonic server, with the session's message limits.
    pub fn into_server(self) -> SshServer<SshService> {
        SshServer::new(self)
            .max_decoding_message_size(crate::session::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::session::MAX_MESSAGE_SIZE)
    }

    /// The full gRPC method names this service serves.
    pub fn methods() -> &'static [&'static str] {
        &["/moby.sshforward.v1.SSH/CheckAgent", "/moby.sshforward.v1.SSH/ForwardAgent"]
    }

    fn agent(&self, id: &str) -> Result<&AgentSpec, Status> {
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        self.agents.get(id).ok_or_else(|| {
            Status::not_found(format!("no SSH agent is forwarded with id {id:?} (pass --ssh {id}=SOCKET)"))
        })
    }
}

#[tonic::async_trait]
impl Ssh for SshService {
    async fn check_agent(&self, request: Request<CheckAgentRequest>) -> Result<Response<CheckAgentResponse>, Status> {
        self.agent(&request.get_ref().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream = ReceiverStream<Result<BytesMessage, Status>>;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request.metadata().get(SSH_ID_KEY).and_then(|v| v.to_str().ok()).unwrap_or(DEFAULT_ID).to_owned();
        let agent = self.agent(&id)?.clone();
        if let Some(ring) = self.keyrings.get(&agent.id).cloned() {
            tracing::debug!(id, "serving an SSH agent connection from key files");
            let (tx, rx) = mpsc::channel(16);
            let inbound = request.into_inner();
            tokio::spawn(async move {
                if let Err(status) = serve_keyring(inbound, &ring, tx.clone()).await {
                    let _ = tx.send(Err(status)).await;
                }
            });
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        let socket = UnixStream::connect(&agent.socket).await.map_err(|err| {
            Status::unavailable(format!(
                "cannot connect to the SSH agent {} for id {id:?}: {err}",
                agent.socket.display()
            ))
        })?;
        tracing::debug!(id, socket = %agent.socket.display(), raw = agent.raw, "forwarding an SSH agent connection");
        let (tx, rx) = mpsc::channel(16);
        let inbound = request.into_inner();
        tokio::spawn(async move {
            let result = if agent.raw {
                proxy_raw(inbound, socket, tx.clone()).await
            } else {
                proxy_read_only(inbound, socket, tx.clone()).await
            };
            if let Err(status) = result {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

type Outbound = mpsc::Sender<Result<BytesMessage, Status>>;

/// Serves agent requests one at a time: each request from the build is
/// either answered with a failure (if it would change the agent) or passed
/// to the agent, whose one reply goes back. The agent protocol is strictly
/// request/response, so this keeps replies in order.
async fn proxy_read_only(mut inbound: Streaming<BytesMessage>, socket: UnixStream, tx: Outbound) -> Result<(), Status> {
    let (mut from_agent, mut to_agent) = socket.into_split();
    let mut pending = BytesMut::new();
    while let Some(request) = next_request(&mut inbound, &mut pending).await? {
        let reply = if allowed(&request) {
            to_agent.write_all(&request).await.map_err(agent_io)?;
            read_frame(&mut from_agent).await?
        } else {
            tracing::debug!(message_type = request.get(4), "refused an agent request that would change the agent");
            failure_frame()
        };
        if tx.send(Ok(BytesMessage { data: reply.into() })).await.is_err() {
            return Ok(());
        }
    }
    // The build closed its connection.
    Ok(())
}

/// The build's next whole agent request, gathered from its messages into
/// `pending`; `None` once the build closed its connection.
async fn next_request(
    inbound: &mut Streaming<BytesMessage>,
    pending: &mut BytesMut,
) -> Result<Option<Vec<u8>>, Status> {
    loop {
        if let Some(frame) = take_frame(pending)? {
            return Ok(Some(frame));
        }
        match inbound.message().await? {
            Some(message) => pending.extend_from_slice(&message.data),
            None => return Ok(None),
        }
    }
}

/// Answers the build's agent requests from our own keys, one at a time.
async fn serve_keyring(
    mut inbound: Streaming<BytesMessage>,
    ring: &super::ssh_keys::KeyRing,
    tx: Outbound,
) -> Result<(), Status> {
    let mut pending = BytesMut::new();
    while let Some(request) = next_request(&mut inbound, &mut pending).await? {
        if tx.send(Ok(BytesMessage { data: ring.answer(&request).into() })).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Copies bytes both ways until both sides are done (`raw=true`).
async fn proxy_raw(mut inbound: Streaming<BytesMessage>, socket: UnixStream, tx: Outbound) -> Result<(), Status> {
    let (mut from_agent, mut to_agent) = socket.into_split();
    let upstream = async move {
        while let Some(message) = inbound.message().await? {
            to_agent.write_all(&message.data).await.map_err(agent_io)?;
        }
        // The build closed its side: let the agent see EOF, keep reading.
        to_agent.shutdown().await.map_err(agent_io)
    };
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = from_agent.read(&mut buf).await.map_err(agent_io)?;
            if n == 0 || tx.send(Ok(BytesMessage { data: buf[..n].to_vec().into() })).await.is_err() {
                return Ok::<(), Status>(());
            }
        }
    };
    let (up, down) = tokio::join!(upstream, downstream);
    up.and(down)
}

/// Requests a read-only agent passes on: list keys, sign.
fn allowed(frame: &[u8]) -> bool {
    matches!(frame.get(4), Some(&SSH_AGENTC_REQUEST_IDENTITIES) | Some(&SSH_AGENTC_SIGN_REQUEST))
}

fn failure_frame() -> Vec<u8> {
    vec![0, 0, 0, 1, SSH_AGENT_FAILURE]
}

/// Takes one complete length-prefixed message (prefix included) off the
/// front of `pending`, if there is one.
fn take_frame(pending: &mut BytesMut) -> Result<Option<Vec<u8>>, Status> {
    if pending.len() < 4 {
        return Ok(None);
    }
    let len = frame_len(&pending[..4])?;
    if pending.len() < 4 + len {
        return Ok(None);
    }
    let frame = pending[..4 + len].to_vec();
    pending.advance(4 + len);
    Ok(Some(frame))
}

async fn read_frame(from_agent: &mut (impl AsyncReadExt + Unpin)) -> Result<Vec<u8>, Status> {
    let mut frame = vec![0u8; 4];
    from_agent.read_exact(&mut frame).await.map_err(agent_io)?;
    let len = frame_len(&frame)?;
    frame.resize(4 + len, 0);
    from_agent.read_exact(&mut frame[4..]).await.map_err(agent_io)?;
    Ok(frame)
}

fn frame_len(prefix: &[u8]) -> Result<usize, Status> {
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len == 0 || len > MAX_AGENT_MESSAGE {
        return Err(Status::invalid_argument(format!("invalid SSH agent message length {len}")));
    }
    Ok(len)
}

fn agent_io(err: std::io::Error) -> Status {
    Status::unavailable(format!("SSH agent connection failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::moby::sshforward::v1::ssh_client::SshClient;
    use tokio::net::UnixListener;

    /// A fake agent: replies to every message with the same message, so a
    /// test sees exactly what reached the agent.
    fn echo_agent(dir: &Path) -> PathBuf {
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        path
    }

    fn frame(message_type: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        frame.push(message_type);
        frame.extend_from_slice(body);
        frame
    }

    async fn client(service: SshService) -> SshClient<tonic::transport::Channel> {
        SshClient::new(crate::services::serve_in_memory(service.into_server()).await)
    }

    async fn forward(
        client: &mut SshClient<tonic::transport::Channel>,
        id: &str,
        chunks: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, Status> {
        let messages = tokio_stream::iter(chunks.into_iter().map(|data| BytesMessage { data: data.into() }));
        let mut request = Request::new(messages);
        request.metadata_mut().insert(SSH_ID_KEY, id.parse().unwrap());
        let mut replies = client.forward_agent(request).await?.into_inner();
        let mut received = Vec::new();
        while let Some(message) = replies.message().await? {
            received.extend_from_slice(&message.data);
        }
        Ok(received)
    }

    #[test]
    fn parse_default_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();

        let spec = AgentSpec::parse_with_auth_sock("default", Some(sock.clone())).unwrap();
        assert_eq!(spec, AgentSpec { id: "default".into(), socket: sock.clone(), raw: false, keys: Vec::new() });
        let spec = AgentSpec::parse_with_auth_sock(&format!("git={}", sock.display()), None).unwrap();
        assert_eq!((spec.id.as_str(), spec.socket.as_path()), ("git", sock.as_path()));
        let spec = AgentSpec::parse_with_auth_sock(&format!("x={},raw=true", sock.display()), None).unwrap();
        assert!(spec.raw);
        // `ID=` with no path is the default agent under another id.
        let spec = AgentSpec::parse_with_auth_sock("other=", Some(sock.clone())).unwrap();
        assert_eq!(spec.socket, sock);
    }

    #[test]
    fn parse_refuses_what_it_cannot_forward() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();

        let problem = |spec: &str, auth_sock: Option<PathBuf>| {
            let err = AgentSpec::parse_with_auth_sock(spec, auth_sock).unwrap_err();
            assert_eq!(err.value(), spec);
            err.to_string()
        };
        assert!(problem("default", None).starts_with("SSH_AUTH_SOCK is not set"));
        assert!(problem("default", Some(PathBuf::new())).starts_with("SSH_AUTH_SOCK is not set"));
        assert!(problem(&format!("k={}", key.display()), None).contains("is not an OpenSSH private key"));
        assert!(problem("k=/nonexistent/agent.sock", None)
            .starts_with("cannot use agent socket or key file /nonexistent/agent.sock: "));
        assert_eq!(
            problem(&format!("k={},{}", sock.display(), key.display()), None),
            "only one agent socket per id, and not mixed with key files"
        );
        assert_eq!(problem(&format!("k={},raw=maybe", sock.display()), None), "raw=maybe is not a boolean");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let spec = AgentSpec { id: "default".into(), socket: "/s".into(), raw: false, keys: Vec::new() };
        let err = SshService::new(&[spec.clone(), spec]).unwrap_err();
        assert_eq!(err.to_string(), r#"the id "default" is given twice"#);
    }

    #[tokio::test]
    async fn check_agent_knows_the_ids() {
        let spec = AgentSpec { id: "default".into(), socket: "/s".into(), raw: false, keys: Vec::new() };
        let service = SshService::new(&[spec]).unwrap();
        let check = |id: &str| service.check_agent(Request::new(CheckAgentRequest { id: id.into() }));
        assert!(check("default").await.is_ok());
        assert!(check("").await.is_ok(), "an empty id is the default");
        let err = check("git").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("--ssh git="), "{}", err.message());
    }

    #[tokio::test]
    async fn forwards_reads_and_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let socket = echo_agent(dir.path());
        let service =
            SshService::new(&[AgentSpec { id: "default".into(), socket, raw: false, keys: Vec::new() }]).unwrap();
        let mut client = client(service).await;

        let list = frame(SSH_AGENTC_REQUEST_IDENTITIES, b"");
        let sign = frame(SSH_AGENTC_SIGN_REQUEST, b"key-blob and data");
        let add = frame(17, b"a private key");
        let lock = frame(22, b"passphrase");
        // Split across messages and glued together, as a byte stream may be.
        let mut glued = sign.clone();
        glued.extend_from_slice(&add[..3]);
        let chunks = vec![list[..2].to_vec(), list[2..].to_vec(), glued, add[3..].to_vec(), lock.clone()];

        let replies = forward(&mut client, "default", chunks).await.unwrap();
        let mut expected = list.clone();
        expected.extend_from_slice(&sign);
        expected.extend_from_slice(&failure_frame());
        expected.extend_from_slice(&failure_frame());
        assert_eq!(replies, expected, "reads reach the agent in order; changes never do");
    }

    #[tokio::test]
    async fn raw_mode_forwards_bytes_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let socket = echo_agent(dir.path());
        let service = SshService::new(&[AgentSpec { id: "raw".into(), socket, raw: true, keys: Vec::new() }]).unwrap();
        let mut client = client(service).await;
        let replies = forward(&mut client, "raw", vec![b"not an agent ".to_vec(), b"protocol".to_vec()]).await.unwrap();
        assert_eq!(replies, b"not an agent protocol");
    }

    #[tokio::test]
    async fn unknown_ids_and_dead_sockets_fail_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone.sock");
        drop(std::os::unix::net::UnixListener::bind(&gone).unwrap());
        let service =
            SshService::new(&[AgentSpec { id: "default".into(), socket: gone, raw: false, keys: Vec::new() }]).unwrap();
        let mut client = client(service).await;
        let err = forward(&mut client, "nope", vec![]).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        let err = forward(&mut client, "default", vec![frame(SSH_AGENTC_REQUEST_IDENTITIES, b"")]).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.message().contains("gone.sock"), "{}", err.message());
    }

    #[tokio::test]
    async fn malformed_lengths_end_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let socket = echo_agent(dir.path());
        let service =
            SshService::new(&[AgentSpec { id: "default".into(), socket, raw: false, keys: Vec::new() }]).unwrap();
        let mut client = client(service).await;
        let err = forward(&mut client, "default", vec![vec![0xff, 0xff, 0xff, 0xff, 1]]).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
