//! A hostile daemon: an in-process gRPC server that speaks `Control`
//! (Info, Status, Session, Solve) well enough for `fbuild solve` to run
//! against it, and answers the build by sending a scripted local output
//! over the session's `FileSend.DiffCopy`, the way buildkitd's local
//! exporter does. This is the one place for a test double: a real daemon
//! will not misbehave on cue.
//!
//! Every case runs the real CLI and asserts that the folder around the
//! destination hashes the same before and after (nothing written outside,
//! no half-written output, no staging folder), not merely that it failed.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fbuild::proto::fsutil::types::packet::PacketType;
use fbuild::proto::fsutil::types::{Packet, Stat};
use fbuild::proto::moby::buildkit::v1 as control_pb;
use fbuild::proto::moby::buildkit::v1::control_server::{Control, ControlServer};
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

use crate::trust::tree_hash;
use crate::util;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Go's `os.FileMode` bits used below.
const DIR: u32 = 1 << 31;
const SYMLINK: u32 = 1 << 27;

/// The daemon: sessions by id, and the packets its "local exporter" sends.
#[derive(Clone)]
struct Hostile {
    sessions: Arc<Mutex<HashMap<String, Channel>>>,
    script: Arc<Vec<Packet>>,
}

fn stat(path: &str, mode: u32) -> Packet {
    let stat = Stat { path: path.to_owned().into(), mode, ..Stat::default() };
    Packet { r#type: PacketType::PacketStat as i32, stat: Some(stat), ..Packet::default() }
}

fn file(path: &str) -> Packet {
    stat(path, 0o644)
}

fn linked(path: &[u8], mode: u32, linkname: &str) -> Packet {
    let stat = Stat { path: path.to_vec().into(), mode, linkname: linkname.to_owned().into(), ..Stat::default() };
    Packet { r#type: PacketType::PacketStat as i32, stat: Some(stat), ..Packet::default() }
}

/// A script's last packet that makes the double stop sending without
/// closing its stream (a stalled daemon or tunnel).
fn go_silent() -> Packet {
    Packet { r#type: PacketType::PacketErr as i32, data: b"go silent".to_vec().into(), ..Packet::default() }
}

fn is_go_silent(packet: &Packet) -> bool {
    packet.r#type == PacketType::PacketErr as i32 && &packet.data[..] == b"go silent"
}

fn end_of_listing() -> Packet {
    Packet { r#type: PacketType::PacketStat as i32, ..Packet::default() }
}

impl Hostile {
    /// Plays the local exporter on the session: sends the script, answers
    /// every request with "data" and the FIN with FIN; returns how the
    /// transfer ended for the client.
    async fn export(&self, session: &str) -> Result<(), Status> {
        let channel = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(channel) = self.sessions.lock().expect("lock").get(session).cloned() {
                    return channel;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .map_err(|_| Status::internal("the client never opened its session"))?;
        let (tx, rx) = mpsc::channel(64);
        for packet in self.script.iter().filter(|p| !is_go_silent(p)) {
            tx.send(packet.clone()).await.map_err(|_| Status::internal("queue"))?;
        }
        // A script without the end of the listing is a sender that hangs up
        // half-way: its stream ends there; one that ends with GO_SILENT
        // keeps its stream open and sends nothing more.
        let silent = self.script.last().is_some_and(is_go_silent);
        let ends_early = !silent && self.script.last().is_none_or(|p| p.stat.is_some());
        let tx = if ends_early {
            drop(tx);
            None
        } else {
            Some(tx)
        };
        let mut request = Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert("buildkit-attachable-exporter-id", "0".parse().expect("ascii"));
        // The local exporter sends fsutil packets on FileSend.DiffCopy,
        // whose schema names BytesMessage: a raw call with the packet codec.
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::internal(format!("the session is not ready: {e}")))?;
        let mut replies = grpc
            .streaming(
                request,
                http::uri::PathAndQuery::from_static("/moby.filesync.v1.FileSend/DiffCopy"),
                tonic_prost::ProstCodec::<Packet, Packet>::default(),
            )
            .await?
            .into_inner();
        while let Some(packet) = replies.message().await? {
            let answer = match PacketType::try_from(packet.r#type) {
                Ok(PacketType::PacketReq) => vec![
                    Packet {
                        r#type: PacketType::PacketData as i32,
                        id: packet.id,
                        data: b"data".to_vec().into(),
                        ..Packet::default()
                    },
                    Packet { r#type: PacketType::PacketData as i32, id: packet.id, ..Packet::default() },
                ],
                Ok(PacketType::PacketFin) => vec![Packet { r#type: PacketType::PacketFin as i32, ..Packet::default() }],
                _ => vec![],
            };
            for packet in answer {
                if let Some(tx) = &tx {
                    let _ = tx.send(packet).await;
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Control for Hostile {
    async fn disk_usage(
        &self,
        _: Request<control_pb::DiskUsageRequest>,
    ) -> Result<Response<control_pb::DiskUsageResponse>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    type PruneStream = BoxStream<control_pb::UsageRecord>;

    async fn prune(&self, _: Request<control_pb::PruneRequest>) -> Result<Response<Self::PruneStream>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    async fn solve(
        &self,
        request: Request<control_pb::SolveRequest>,
    ) -> Result<Response<control_pb::SolveResponse>, Status> {
        let session = request.into_inner().session;
        self.export(&session).await?;
        Ok(Response::new(control_pb::SolveResponse::default()))
    }

    type StatusStream = BoxStream<control_pb::StatusResponse>;

    async fn status(&self, _: Request<control_pb::StatusRequest>) -> Result<Response<Self::StatusStream>, Status> {
        // No progress.
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    type SessionStream = BoxStream<control_pb::BytesMessage>;

    /// The tunnel, from the daemon's side: the client serves HTTP/2 on it,
    /// so a tonic channel is made over a pipe fed by the stream.
    async fn session(
        &self,
        request: Request<Streaming<control_pb::BytesMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let id = request
            .metadata()
            .get("x-docker-expose-session-uuid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut inbound = request.into_inner();
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (mut read_half, mut write_half) = tokio::io::split(ours);
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if write_half.write_all(&message.data).await.is_err() {
                    break;
                }
            }
            let _ = write_half.shutdown().await;
        });
        let (out_tx, out_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match read_half.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let message = control_pb::BytesMessage { data: buf[..n].to_vec().into() };
                        if out_tx.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let pipe = Arc::new(Mutex::new(Some(theirs)));
        let channel = Endpoint::from_static("http://session").connect_with_connector_lazy(tower::service_fn(
            move |_: http::Uri| {
                let pipe = pipe.lock().expect("lock").take();
                async move {
                    pipe.map(hyper_util::rt::TokioIo::new)
                        .ok_or_else(|| std::io::Error::other("the session pipe is used once"))
                }
            },
        ));
        self.sessions.lock().expect("lock").insert(id, channel);
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn list_workers(
        &self,
        _: Request<control_pb::ListWorkersRequest>,
    ) -> Result<Response<control_pb::ListWorkersResponse>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    async fn info(&self, _: Request<control_pb::InfoRequest>) -> Result<Response<control_pb::InfoResponse>, Status> {
        Ok(Response::new(control_pb::InfoResponse::default()))
    }

    type ListenBuildHistoryStream = BoxStream<control_pb::BuildHistoryEvent>;

    async fn listen_build_history(
        &self,
        _: Request<control_pb::BuildHistoryRequest>,
    ) -> Result<Response<Self::ListenBuildHistoryStream>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    async fn update_build_history(
        &self,
        _: Request<control_pb::UpdateBuildHistoryRequest>,
    ) -> Result<Response<control_pb::UpdateBuildHistoryResponse>, Status> {
        Err(Status::unimplemented("hostile"))
    }
}

/// Serves a hostile daemon with `script` on a unix socket, runs
/// `fbuild solve -o type=local,dest=DEST` against it, and returns the
/// exit code and stderr.
fn solve_against(script: Vec<Packet>, project: &Path, dest: &Path) -> (Option<i32>, String) {
    solve_against_within(script, project, dest, Duration::from_secs(20))
}

fn solve_against_within(script: Vec<Packet>, project: &Path, dest: &Path, limit: Duration) -> (Option<i32>, String) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = util::tempdir();
    let socket = dir.path().join("hostile.sock");
    let daemon = Hostile { sessions: Arc::default(), script: Arc::new(script) };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let listener = runtime.block_on(async { tokio::net::UnixListener::bind(&socket) }).expect("bind");
    let server = runtime.spawn(Server::builder().add_service(ControlServer::new(daemon)).serve_with_incoming_shutdown(
        tokio_stream::wrappers::UnixListenerStream::new(listener),
        async {
            let _ = stop_rx.await;
        },
    ));
    let output = assert_cmd::Command::new(util::fbuild_binary())
        // This daemon speaks Control only, not the gateway a native compile
        // needs: the build goes to "its" Dockerfile frontend.
        .env("FBUILD_FRONTEND", "dockerfile.v0")
        .args(["--addr", &format!("unix://{}", socket.display()), "solve", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(project)
        .env_remove("BUILDKIT_HOST")
        .timeout(limit)
        .output()
        .expect("run fbuild");
    let _ = stop_tx.send(());
    server.abort();
    (output.status.code(), util::text(&output.stderr))
}

/// A scripted export that is well-formed lands (the double is faithful
/// enough, names that are not UTF-8 included); each adversarial one fails the build with a reason and leaves
/// everything around the destination as it was.
#[test]
fn a_hostile_daemon_cannot_write_outside_or_leave_a_half_output() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n")]);

    let work = util::tempdir();
    // A name need not be UTF-8 (fsutil sends Go strings).
    let good = vec![linked(b"a-\xff", 0o644, ""), stat("d", DIR | 0o755), file("d/f"), end_of_listing()];
    let (code, stderr) = solve_against(good, project.path(), &work.path().join("good"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(std::fs::read(work.path().join("good/d/f")).expect("the output landed"), b"data");
    let raw_name =
        work.path().join("good").join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"a-\xff"));
    assert_eq!(std::fs::read(raw_name).expect("the non-UTF-8 name landed"), b"data");

    let cases: Vec<(&str, Vec<Packet>, &str)> = vec![
        ("parent escape", vec![file("../escaped"), end_of_listing()], "leaves the destination"),
        ("absolute path", vec![file("/tmp/fbuild-hostile-abs"), end_of_listing()], "absolute path"),
        (
            "write through a symlink",
            vec![linked(b"l", SYMLINK | 0o777, "/tmp"), file("l/f"), end_of_listing()],
            "is a symlink",
        ),
        ("unclean path", vec![file("a/./b"), end_of_listing()], "not a clean relative path"),
        ("out of order", vec![file("b"), file("a"), end_of_listing()], "out of order"),
        ("file under a file", vec![file("f"), file("f/g"), end_of_listing()], "is a file"),
        ("hard link to a file outside", vec![linked(b"h", 0o644, "/etc/passwd"), end_of_listing()], "hard link"),
        (
            "a good tree, then a bad entry",
            vec![stat("d", DIR | 0o755), file("d/f"), file("../x"), end_of_listing()],
            "leaves the destination",
        ),
        ("the stream ends mid-listing", vec![stat("d", DIR | 0o755), file("d/f")], "closed"),
    ];
    for (name, script, reason) in cases {
        let work = util::tempdir();
        util::write_files(work.path(), &[("existing/keep", "the user's"), ("sibling", "x")]);
        // The symlink case points at a folder outside: nothing may land there.
        std::os::unix::fs::symlink(work.path().join("existing"), work.path().join("link-out")).expect("symlink");
        let before = tree_hash(work.path());
        for dest in ["new-dest", "existing"] {
            let (code, stderr) = solve_against(script.clone(), project.path(), &work.path().join(dest));
            assert_eq!(code, Some(1), "{name} into {dest}: {stderr}");
            assert!(stderr.contains(reason), "{name} into {dest}: expected {reason:?} in\n{stderr}");
            assert_eq!(tree_hash(work.path()), before, "{name} into {dest}: the folder changed");
        }
        assert!(!Path::new("/tmp/fbuild-hostile-abs").exists());
    }
}

/// A daemon that starts an export and then goes silent (a stalled daemon or
/// tunnel) fails the build after the receiver's 30 s idle limit, naming the
/// stall, with nothing left at or around the destination.
#[test]
fn a_stalled_export_fails_within_the_idle_limit() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n")]);
    let work = util::tempdir();
    let dest = work.path().join("out");
    let started = std::time::Instant::now();
    let script = vec![stat("d", DIR | 0o755), file("d/f"), go_silent()];
    let (code, stderr) = solve_against_within(script, project.path(), &dest, Duration::from_secs(60));
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the daemon sent nothing for 30 s; the transfer is stalled"), "{stderr}");
    assert!(took < Duration::from_secs(40), "took {took:?}");
    assert!(!dest.exists(), "no output");
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing beside it either: {left:?}");
}
