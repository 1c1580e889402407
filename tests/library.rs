//! The build path as a library, on the real daemon: a Rust program builds
//! with `fbuild::build::build`, collects progress events, reads the typed
//! errors, cancels, and runs several builds on one connection. Also the
//! per-folder shared keys (a folder's upload survives a change to the rest
//! of the build) and connection failures against a listener that hangs up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fbuild::build::{build, BuildEnd, BuildError, BuildRequest, CancellationToken, NoProgress, ProgressSink};
use fbuild::connect::{connect, ConnectOptions, Connection};
use fbuild::output::parse_output;
use fbuild::proto::moby::buildkit::v1::StatusResponse;

use crate::util::{self, testenv};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

async fn connection() -> Connection {
    let opts = ConnectOptions { addr: Some(testenv().addr.clone()), ..Default::default() };
    connect(&opts).await.expect("the test daemon answers")
}

/// A sink that keeps what a program would: every vertex seen, and the end.
#[derive(Default)]
struct Collector {
    vertexes: BTreeMap<String, (String, bool)>,
    logs: Vec<u8>,
    end: Option<String>,
}

impl ProgressSink for Collector {
    fn on_status(&mut self, status: &StatusResponse) {
        for vertex in &status.vertexes {
            let entry = self.vertexes.entry(vertex.digest.clone()).or_default();
            entry.0 = vertex.name.clone();
            entry.1 |= vertex.cached;
        }
        for log in &status.logs {
            self.logs.extend_from_slice(&log.msg);
        }
    }

    fn on_end(&mut self, end: BuildEnd<'_>) {
        self.end = Some(match end {
            BuildEnd::Succeeded => "succeeded".into(),
            BuildEnd::Failed(failure) => format!("failed: {}", failure.message),
            BuildEnd::Cancelled => "cancelled".into(),
            _ => "ended otherwise".into(),
        });
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[test]
fn a_program_builds_collects_progress_and_reads_the_report() {
    let project = util::tempdir();
    let token = unique();
    util::write_files(
        project.path(),
        &[
            (
                "Dockerfile",
                &format!("FROM {}\nCOPY hello.txt /\nRUN echo {token} && cp /hello.txt /copy.txt\n", testenv().busybox),
            ),
            ("hello.txt", "hello\n"),
        ],
    );
    let out = util::tempdir();
    let dest = out.path().join("oci.tar");
    let export = parse_output(&format!("type=oci,dest={}", dest.display())).unwrap();
    runtime().block_on(async {
        let connection = connection().await;
        let request = BuildRequest::dockerfile(project.path()).export(export.clone());
        let mut progress = Collector::default();
        let report = build(&connection.channel, request, &mut progress, &CancellationToken::new()).await.unwrap();
        assert_eq!(progress.end.as_deref(), Some("succeeded"));
        assert!(String::from_utf8_lossy(&progress.logs).contains(&token), "the RUN step's output reached the sink");
        let run = progress.vertexes.values().find(|(name, _)| name.contains("RUN echo")).expect("the RUN step");
        assert!(!run.1, "a new RUN step is not cached");
        assert!(report.summary.steps >= 3, "{:?}", report.summary);
        assert!(report.image_digest().is_some_and(|d| d.starts_with("sha256:")), "{:?}", report.exporter_response);
        assert!(report.transfer.files >= 1, "the context was sent: {:?}", report.transfer);
        assert!(std::fs::metadata(&dest).unwrap().len() > 0, "the OCI tarball was written before build returned");

        // The same build again: the COPY and RUN steps cached (the FROM step
        // of a build without an exporter is only resolved, never "cached"),
        // nothing new sent but the Dockerfile.
        let request = BuildRequest::dockerfile(project.path());
        let mut progress = Collector::default();
        let again = build(&connection.channel, request, &mut progress, &CancellationToken::new()).await.unwrap();
        let run = progress.vertexes.values().find(|(name, _)| name.contains("RUN echo")).expect("the RUN step");
        assert!(run.1, "the RUN step is cached the second time");
        assert_eq!(again.summary.cached, 2, "{:?}", again.summary);
        assert!(again.transfer.files <= 1, "{:?}", again.transfer);
    });
}

#[test]
fn a_failed_step_is_a_typed_error_with_the_step_and_its_log() {
    let project = util::tempdir();
    let token = unique();
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {token}-out && exit 3\n", testenv().busybox))],
    );
    runtime().block_on(async {
        let connection = connection().await;
        let mut progress = Collector::default();
        let err = build(
            &connection.channel,
            BuildRequest::dockerfile(project.path()),
            &mut progress,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        let BuildError::Failed(failed) = &err else { panic!("expected a failed build, got {err:?}") };
        assert!(failed.failure.message.contains("exit code: 3"), "{}", failed.failure.message);
        assert!(failed.step.as_deref().is_some_and(|s| s.contains("RUN echo")), "{failed:?}");
        assert!(failed.log.iter().any(|l| l.ends_with(&format!("{token}-out"))), "{:?}", failed.log);
        assert!(failed.failure.sources.iter().any(|s| s.filename == "Dockerfile"), "{:?}", failed.failure.sources);
        assert!(progress.end.as_deref().is_some_and(|e| e.starts_with("failed: ")), "{:?}", progress.end);
    });
}

#[test]
fn a_request_the_daemon_refuses_is_not_a_failed_build() {
    let project = util::tempdir();
    util::write_files(project.path(), &[("Dockerfile", "FROM scratch\n")]);
    runtime().block_on(async {
        let connection = connection().await;
        let mut request = BuildRequest::dockerfile(project.path());
        if let fbuild::build::Frontend::Daemon { name, .. } = &mut request.frontend {
            *name = "no-such-frontend.v9".into();
        }
        let err = build(&connection.channel, request, &mut NoProgress, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, BuildError::Rejected(_)), "{err:?}");
        let cause = std::error::Error::source(&err).and_then(std::error::Error::source).map(|s| s.to_string());
        assert_eq!(cause.as_deref(), Some("invalid frontend: no-such-frontend.v9"), "{err:?}");
    });
}

/// Cancels its build when the RUN step's first log line arrives: the test
/// waits for the step to run, not for a guessed number of seconds.
struct CancelWhenRunning {
    inner: Collector,
    marker: String,
    cancel: CancellationToken,
    cancelled_at: Option<Instant>,
}

impl ProgressSink for CancelWhenRunning {
    fn on_status(&mut self, status: &StatusResponse) {
        self.inner.on_status(status);
        let running = String::from_utf8_lossy(&self.inner.logs).contains(&self.marker);
        if running && self.cancelled_at.is_none() {
            self.cancelled_at = Some(Instant::now());
            self.cancel.cancel();
        }
    }

    fn on_end(&mut self, end: BuildEnd<'_>) {
        self.inner.on_end(end);
    }
}

#[test]
fn cancelling_stops_the_build_at_once() {
    let project = util::tempdir();
    let marker = format!("running-{}", unique());
    util::write_files(
        project.path(),
        &[("Dockerfile", &format!("FROM {}\nRUN echo {marker} && sleep 120\n", testenv().busybox))],
    );
    runtime().block_on(async {
        let connection = connection().await;
        let cancel = CancellationToken::new();
        let mut progress =
            CancelWhenRunning { inner: Collector::default(), marker, cancel: cancel.clone(), cancelled_at: None };
        let err = build(&connection.channel, BuildRequest::dockerfile(project.path()), &mut progress, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, BuildError::Cancelled), "{err:?}");
        // The step sleeps 120 s: ending well before that means the build
        // did not wait for it (a loaded machine still ends in seconds).
        let after = progress.cancelled_at.expect("the RUN step ran").elapsed();
        assert!(after < Duration::from_secs(60), "took {after:?} after the cancel");
        assert_eq!(progress.inner.end.as_deref(), Some("cancelled"));
    });
}

#[test]
fn several_builds_share_one_connection() {
    let projects: Vec<_> = (0..3)
        .map(|i| {
            let dir = util::tempdir();
            util::write_files(
                dir.path(),
                &[("Dockerfile", &format!("FROM {}\nRUN echo {i}-{} > /out\n", testenv().busybox, unique()))],
            );
            dir
        })
        .collect();
    let out = util::tempdir();
    runtime().block_on(async {
        let connection = connection().await;
        let builds = projects.iter().enumerate().map(|(i, project)| {
            let channel = connection.channel.clone();
            let dest = out.path().join(format!("out{i}"));
            let export = parse_output(&format!("type=local,dest={}", dest.display())).unwrap();
            async move {
                let request = BuildRequest::dockerfile(project.path()).export(export);
                build(&channel, request, &mut NoProgress, &CancellationToken::new()).await
            }
        });
        for result in futures::future::join_all(builds).await {
            result.expect("each build succeeds");
        }
    });
    for i in 0..3 {
        let text = std::fs::read_to_string(out.path().join(format!("out{i}/out"))).unwrap();
        assert!(text.starts_with(&format!("{i}-")), "build {i} wrote its own result: {text}");
    }
}

/// Adding a named context, or building another target from the same folder,
/// does not send the unchanged context folder again: its shared key is its
/// own (before, one key covered every folder of the build, so adding a
/// `--build-context` re-sent everything).
#[test]
fn a_folders_upload_survives_changes_to_the_rest_of_the_build() {
    let project = util::tempdir();
    let dir = project.path();
    for i in 0..2_000 {
        std::fs::write(dir.join(format!("f{i:04}.txt")), format!("file {i} {}\n", "x".repeat(500))).unwrap();
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch AS a\nCOPY . /a\nFROM scratch AS b\nCOPY . /b\nFROM scratch AS c\nCOPY --from=extra . /c\nCOPY . /c\n",
    )
    .unwrap();
    let extra = util::tempdir();
    util::write_files(extra.path(), &[("extra.txt", "extra\n")]);
    let build = |args: &[String]| {
        let output =
            util::fbuild().arg("solve").arg(dir).args(["--progress", "rawjson", "-v"]).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        (util::context_bytes(&stderr), util::files_sent(&stderr))
    };
    let (first, first_files) = build(&["--target".into(), "a".into()]);
    assert!(
        first > 1_000_000 && first_files >= 2_000,
        "the first build sends everything: {first} B, {first_files} files"
    );

    let (second, second_files) = build(&["--target".into(), "b".into()]);
    assert!(second < first / 4, "another target, same folder: {second} bytes after {first}");
    assert!(second_files <= 1, "only the Dockerfile is read again: {second_files} files");

    let with_extra = format!("extra={}", extra.path().display());
    let (third, third_files) = build(&["--target".into(), "c".into(), "--build-context".into(), with_extra]);
    assert!(third < first / 4, "a named context added: {third} bytes after {first}");
    assert!(third_files <= 2, "the Dockerfile and extra.txt: {third_files} files");
}

/// A server that accepts TCP connections and closes them at once: fbuild
/// must fail naming the address, never exit 0 in silence (a broken pipe from
/// the daemon's side is not `fbuild du | head`).
#[test]
fn a_listener_that_hangs_up_is_an_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor = std::thread::spawn({
        let stop = stop.clone();
        move || {
            listener.set_nonblocking(true).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => drop(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    });
    let ca = util::tempdir();
    let ca_file = ca.path().join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    for tls in [false, true] {
        for command in [&["info"][..], &["du"][..]] {
            let mut cmd = util::fbuild();
            cmd.args(["--addr", &addr]);
            if tls {
                cmd.arg("--tlscacert").arg(&ca_file);
            }
            let output = cmd.args(command).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "tls={tls} {command:?}: {stderr}");
            assert!(stderr.contains(&format!("cannot connect to buildkitd at {addr}")), "tls={tls}: {stderr}");
            assert!(output.stdout.is_empty());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    acceptor.join().unwrap();
}
